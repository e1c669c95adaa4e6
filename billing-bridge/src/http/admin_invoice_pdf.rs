//! `GET /invoices/{id|number}/pdf` (any role): an issued invoice as its PDF document
//! (`invoice_pdf_reply`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::super::{ApiError, invoice_pdf_reply};
use super::{Shared, require};
use crate::ledger::tokens::Role;

pub(super) async fn get(State(s): Shared, headers: HeaderMap, Path(key): Path<String>) -> Result<Response, ApiError> {
    require(&s, &headers, Role::ReadOnly).await?;
    invoice_pdf_reply(&s, &key).await
}
