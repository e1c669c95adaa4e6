//! The bridge's HTTP API (axum): the public catalog and checkout, the Stripe webhook, the admin
//! API, `/healthz` (anonymous, says only whether the ledger answers) and `/metrics` (an admin API
//! token of any role). Errors are JSON `{"error": {"code", "message"}}` with a stable code.

mod admin;
mod pay;
mod portal;
mod public;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use kube::Api;
use mpanel_crds::subscription::Subscription;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::auth_code::AuthCodeRefused;
use crate::checkout::{CheckoutError, DomainRefused, ReturnUrls, STRIPE_FAILED_STATUS};
use crate::invoice_pdf::{self, PdfError};
use crate::ledger::{LedgerError, subscriptions};
use crate::metrics::Metrics;
use crate::portal::SignInLinks;
use crate::recent_events::RecentEvents;
use crate::registrar::Registrar;
use crate::stripe::api::StripeClient;

/// What every handler shares.
pub struct AppState {
    pub pool: PgPool,
    pub tenant: Uuid,
    pub stripe: Arc<StripeClient>,
    pub webhook_secret: String,
    pub webhook_tolerance_secs: i64,
    pub return_urls: ReturnUrls,
    pub metrics: Arc<Metrics>,
    /// Wakes the fulfilment loop after a payment landed.
    pub fulfil: Arc<Notify>,
    /// Wakes the refunds of payments that landed on void invoices.
    pub refund_stray: Arc<Notify>,
    /// Event ids known to be in the ledger: their redeliveries are answered without a query.
    pub recent_events: RecentEvents,
    /// For the provisioning status of subscriptions in the admin API.
    pub kube: Option<kube::Client>,
    /// Asked at checkout whether a domain can be bought; without it domain purchases are refused.
    pub registrar: Option<Arc<Registrar>>,
    /// Signs the customer portal's sign-in links; without it customers cannot sign in.
    pub sign_in: Option<Arc<SignInLinks>>,
}

/// The bridge's HTTP service: every route, each request knowing its connection's peer address
/// (the checkout's per-client limit). The checkout's settings are read from the environment here
/// (`public::CheckoutSettings::from_env`).
pub fn router(state: Arc<AppState>) -> IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    let checkout = Arc::new(public::CheckoutSettings::from_env());
    routes(state, checkout).into_make_service_with_connect_info::<SocketAddr>()
}

fn routes(state: Arc<AppState>, checkout: Arc<public::CheckoutSettings>) -> Router {
    Router::new()
        .route("/healthz", get(public::healthz))
        .route("/metrics", get(public::metrics))
        .route("/v1/catalog", get(public::catalog))
        .route("/v1/checkout", post(public::checkout).layer(Extension(checkout)))
        .route("/v1/stripe/webhook", post(webhook::receive))
        .route("/v1/pay/{token}", get(pay::pay))
        .nest("/v1/admin", admin::router())
        .nest("/v1/portal", portal::router())
        .route("/v1/invoices/{number}/pay", post(portal::pay))
        .with_state(state)
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        let status = match &e {
            LedgerError::NotFound(_) => StatusCode::NOT_FOUND,
            LedgerError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            LedgerError::Conflict(_) | LedgerError::Refused(_) => StatusCode::CONFLICT,
            LedgerError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "ledger unavailable");
        }
        Self::new(status, e.reason(), e.to_string())
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        let e = match e {
            CheckoutError::Ledger(e) => return e.into(),
            e => e,
        };
        let status = match &e {
            CheckoutError::Domain(DomainRefused::RegistrarUnavailable)
            | CheckoutError::AuthCode(AuthCodeRefused::NotKept) => StatusCode::SERVICE_UNAVAILABLE,
            CheckoutError::Domain(_)
            | CheckoutError::Currency(_)
            | CheckoutError::AuthCode(_)
            | CheckoutError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            CheckoutError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            CheckoutError::InProgress | CheckoutError::Ended(_) => StatusCode::CONFLICT,
            // (a ledger error was answered above)
            CheckoutError::Stripe(_) | CheckoutError::Ledger(_) => {
                StatusCode::from_u16(STRIPE_FAILED_STATUS).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}

/// How a subscription's provisioning goes: the ledger's last observation and, when the cluster
/// answers, its Subscription resource's status now.
pub(crate) async fn provisioning_of(state: &AppState, sub: &subscriptions::Subscription) -> Value {
    let live = match &state.kube {
        Some(client) => {
            let api: Api<Subscription> = Api::namespaced(client.clone(), &sub.namespace);
            match api.get_opt(&sub.resource_name).await {
                Ok(found) => json!(found.and_then(|o| o.status)),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        None => Value::Null,
    };
    json!({"phase": sub.provisioning_phase, "message": sub.provisioning_message, "resourceStatus": live})
}

/// An issued invoice of the tenant as its PDF document, the same bytes while the invoice is
/// unchanged. A draft has none yet (`409 InvoiceNotIssued`).
pub(crate) async fn invoice_pdf_reply(state: &AppState, key: &str) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(LedgerError::from)?;
    let document = invoice_pdf::load(&mut conn, state.tenant, key).await.map_err(|e| match e {
        PdfError::Ledger(e) => ApiError::from(e),
        draft @ PdfError::Draft(_) => ApiError::new(StatusCode::CONFLICT, draft.reason(), draft.to_string()),
    })?;
    drop(conn);
    let disposition = format!("inline; filename=\"{}\"", invoice_pdf::file_name(&document));
    let headers = [(CONTENT_TYPE, "application/pdf".to_owned()), (CONTENT_DISPOSITION, disposition)];
    Ok((headers, invoice_pdf::render(&document)).into_response())
}

/// The bearer credential a request carries (`Authorization: Bearer …`), trimmed.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A JSON body that failed to parse is a 422 with the parser's words.
pub fn bad_body(e: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidRequest", e.body_text())
}
