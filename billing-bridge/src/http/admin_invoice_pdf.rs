//! `GET /invoices/{id|number}/pdf` (any role): an issued invoice as its PDF document, the same bytes
//! while the invoice is unchanged. A draft has none yet (`409 InvoiceNotIssued`).

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::super::ApiError;
use super::{Shared, require};
use crate::invoice_pdf::{self, PdfError};
use crate::ledger::LedgerError;
use crate::ledger::tokens::Role;

pub(super) async fn get(State(s): Shared, headers: HeaderMap, Path(key): Path<String>) -> Result<Response, ApiError> {
    require(&s, &headers, Role::ReadOnly).await?;
    let mut conn = s.pool.acquire().await.map_err(LedgerError::from)?;
    let document = invoice_pdf::load(&mut conn, s.tenant, &key).await.map_err(|e| match e {
        PdfError::Ledger(e) => ApiError::from(e),
        draft @ PdfError::Draft(_) => ApiError::new(StatusCode::CONFLICT, draft.reason(), draft.to_string()),
    })?;
    drop(conn);
    let disposition = format!("inline; filename=\"{}\"", invoice_pdf::file_name(&document));
    let headers = [(CONTENT_TYPE, "application/pdf".to_owned()), (CONTENT_DISPOSITION, disposition)];
    Ok((headers, invoice_pdf::render(&document)).into_response())
}
