//! `GET /v1/pay/{token}`: the stable pay address of an open invoice, as its mails carry it. It
//! answers 303 to the invoice's current Checkout Session (made on demand); 409 `invoice_not_open`
//! once the invoice is paid, refunded or void (`nothing_due` while a payment covering it is being
//! settled); 404 for a token the ledger does not know. The token lets its holder pay that invoice
//! and read nothing; it is never logged.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{ApiError, AppState};
use crate::checkout::STRIPE_FAILED_STATUS;
use crate::pay_links::{self, PayLinkError};

pub(super) async fn pay(State(s): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    match pay_links::checkout_for_token(&s.pool, &s.stripe, &s.return_urls, s.tenant, &token).await {
        Ok(link) => Redirect::to(&link.url).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

impl From<PayLinkError> for ApiError {
    fn from(e: PayLinkError) -> Self {
        let e = match e {
            PayLinkError::Ledger(e) => return e.into(),
            e => e,
        };
        let status = match &e {
            // (a ledger error was answered above)
            PayLinkError::Ledger(_) => StatusCode::SERVICE_UNAVAILABLE,
            PayLinkError::NotOpen { .. } | PayLinkError::NothingDue(_) => StatusCode::CONFLICT,
            PayLinkError::Stripe(stripe) => {
                tracing::warn!(error = %stripe, reason = stripe.reason(), "no Checkout Session for a pay link");
                StatusCode::from_u16(STRIPE_FAILED_STATUS).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}
