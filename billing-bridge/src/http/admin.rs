//! The admin API: bearer tokens (stored hashed, may expire, may be revoked) with roles. read-only
//! reads; support also resends notifications and suspends for abuse; billing also changes invoices,
//! subscriptions and customers; admin also edits the catalog and manages tokens (README's table).

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiError, AppState, bad_body, bearer, provisioning_of};
use crate::cancellation;
use crate::ledger::catalog::{self, ProductInput};
use crate::ledger::pay_links;
use crate::ledger::payments::{self, MarkPaidError};
use crate::ledger::tokens::{self, Presented, Principal, Role};
use crate::ledger::{LedgerError, audit, charge_attempts, customers, invoices, orders, plan_changes, subscriptions};
use crate::money_follows;
use crate::refunds::{self, RefundError, StaffRefundError};
use crate::render;

#[path = "admin_customers.rs"]
mod admin_customers;
#[path = "admin_invoice_pdf.rs"]
mod admin_invoice_pdf;
#[path = "admin_notifications.rs"]
mod admin_notifications;
#[path = "admin_plan_change.rs"]
mod admin_plan_change;
#[path = "admin_suspension.rs"]
mod admin_suspension;
#[path = "admin_tokens.rs"]
mod admin_tokens;
#[path = "admin_work.rs"]
mod admin_work;

type Shared = State<Arc<AppState>>;
type Reply = Result<Json<Value>, ApiError>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{slug}", get(get_product).put(put_product).delete(delete_product))
        .route("/customers", get(list_customers).post(admin_customers::create))
        .route("/customers/{id}", get(get_customer).patch(admin_customers::edit))
        .route("/customers/{id}/notifications", get(admin_notifications::of_customer))
        .route("/notifications/{id}/resend", post(admin_notifications::resend))
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/invoices", get(list_invoices))
        .route("/invoices/{key}", get(get_invoice))
        .route("/invoices/{key}/pdf", get(admin_invoice_pdf::get))
        .route("/invoices/{key}/{action}", post(invoice_action))
        .route("/subscriptions", get(list_subscriptions))
        .route("/subscriptions/{id}", get(get_subscription))
        .route("/subscriptions/{id}/cancel", post(cancel_subscription))
        .route("/subscriptions/{id}/change-plan", post(admin_plan_change::change_plan))
        .route("/subscriptions/{id}/suspend", post(admin_suspension::suspend))
        .route("/subscriptions/{id}/resume", post(admin_suspension::resume))
        .route("/tokens", get(admin_tokens::list))
        .route("/tokens/{id}/revoke", post(admin_tokens::revoke))
        .route("/tokens/{id}/expire", post(admin_tokens::expire))
        .route("/work/failing", get(admin_work::list_failing))
}

/// The caller, if its token is valid (known, not revoked, not expired: else a 401 saying which)
/// and its role is at least `needed`.
pub(super) async fn require(state: &AppState, headers: &HeaderMap, needed: Role) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthenticated", "an admin bearer token is required")
    })?;
    let principal = match tokens::authenticate(&state.pool, token).await? {
        Presented::Valid(principal) => principal,
        Presented::Unknown => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthenticated", "unknown token")),
        Presented::Revoked => {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "TokenRevoked", "this token was revoked"));
        }
        Presented::Expired => {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "TokenExpired", "this token expired"));
        }
    };
    if principal.role < needed {
        return Err(forbidden(&principal, needed));
    }
    Ok(principal)
}

/// The caller's role may not do what needs `needed`.
pub(super) fn forbidden(principal: &Principal, needed: Role) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("role {} may not do this; it needs {}", principal.role.as_str(), needed.as_str()),
    )
}

fn to_json(value: impl serde::Serialize) -> Reply {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "EncodingFailed", e.to_string()))
}

fn uuid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{s} not found")))
}

async fn list_products(State(s): Shared, headers: HeaderMap) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    to_json(json!({"products": catalog::list(&s.pool, s.tenant, true).await?}))
}

async fn get_product(State(s): Shared, headers: HeaderMap, Path(slug): Path<String>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let product = catalog::by_slug(&s.pool, s.tenant, &slug).await?;
    let prices = catalog::prices(&s.pool, product.id).await?;
    to_json(catalog::Listed { product, prices })
}

async fn put_product(
    State(s): Shared,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Result<Json<ProductInput>, JsonRejection>,
) -> Reply {
    let who = require(&s, &headers, Role::Admin).await?;
    let Json(input) = body.map_err(bad_body)?;
    render::check_template(&input.template).map_err(LedgerError::Invalid)?;
    if input.prices.is_empty() {
        return Err(LedgerError::Invalid("a product needs at least one price".into()).into());
    }
    let product = catalog::upsert(&s.pool, s.tenant, &slug, &input).await?;
    audit::record(&s.pool, &who.name, "product.put", "product", &slug, json!({"active": input.active})).await?;
    let prices = catalog::prices(&s.pool, product.id).await?;
    to_json(catalog::Listed { product, prices })
}

async fn delete_product(State(s): Shared, headers: HeaderMap, Path(slug): Path<String>) -> Reply {
    let who = require(&s, &headers, Role::Admin).await?;
    catalog::delete(&s.pool, s.tenant, &slug).await?;
    audit::record(&s.pool, &who.name, "product.delete", "product", &slug, json!({})).await?;
    to_json(json!({"deleted": slug}))
}

async fn list_customers(State(s): Shared, headers: HeaderMap) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    to_json(json!({"customers": customers::list(&s.pool, s.tenant).await?}))
}

async fn get_customer(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let customer = customers::get(&s.pool, uuid(&id)?).await?;
    let orders = orders::list(&s.pool, Some(customer.id)).await?;
    to_json(json!({"customer": customer, "orders": orders}))
}

#[derive(Deserialize)]
struct Filter {
    status: Option<String>,
    customer: Option<Uuid>,
}

async fn list_orders(State(s): Shared, headers: HeaderMap, Query(f): Query<Filter>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    to_json(json!({"orders": orders::list(&s.pool, f.customer).await?}))
}

async fn get_order(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let order = orders::get(&s.pool, uuid(&id)?).await?;
    let items = orders::items(&s.pool, order.id).await?;
    to_json(json!({"order": order, "items": items}))
}

async fn list_invoices(State(s): Shared, headers: HeaderMap, Query(f): Query<Filter>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    to_json(json!({"invoices": invoices::list(&s.pool, f.status.as_deref()).await?}))
}

async fn get_invoice(State(s): Shared, headers: HeaderMap, Path(key): Path<String>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let invoice = invoices::find(&s.pool, s.tenant, &key).await?;
    let lines = invoices::lines(&s.pool, invoice.id).await?;
    let payments = payments::of_invoice(&s.pool, invoice.id).await?;
    let charges = charge_attempts::of_invoice(&s.pool, invoice.id).await?;
    // an open invoice's stable pay address, and the Checkout Session it leads to now
    let (pay_url, pay_session) = match invoice.status.as_str() {
        "issued" => (pay_links::url_of(&s.pool, invoice.id).await?, pay_links::current(&s.pool, invoice.id).await?),
        _ => (None, None),
    };
    to_json(json!({"invoice": invoice, "lines": lines, "payments": payments, "chargeAttempts": charges,
                   "payUrl": pay_url, "paySession": pay_session}))
}

/// `issue`, `mark-paid`, `void` or `refund` (body `{"amount": "5.00"}`, optional: all that is left).
async fn invoice_action(
    State(s): Shared,
    headers: HeaderMap,
    Path((key, action)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let who = require(&s, &headers, Role::Billing).await?;
    let invoice = invoices::find(&s.pool, s.tenant, &key).await?;
    let changed = match action.as_str() {
        "issue" => invoices::issue(&s.pool, invoice.id, chrono::Utc::now()).await?,
        "void" => {
            let voided = invoices::void(&s.pool, invoice.id).await?;
            money_follows::expire_checkout_of(&s.pool, &s.stripe, &voided, &who.name).await?;
            // its pay-link sessions are expired by the worker that keeps void invoices from taking money
            s.refund_stray.notify_one();
            voided
        }
        "mark-paid" => mark_paid(&s, &invoice).await?,
        "refund" => refund(&s, &invoice, &body, &who.name).await?,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no invoice action {other:?}: issue, mark-paid, void or refund"),
            ));
        }
    };
    audit::record(&s.pool, &who.name, &format!("invoice.{action}"), "invoice", &key, json!({"status": changed.status}))
        .await?;
    to_json(changed)
}

/// Records the rest of an issued invoice as paid by hand; a draft, void or paid one is a 409.
async fn mark_paid(s: &AppState, invoice: &invoices::Invoice) -> Result<invoices::Invoice, ApiError> {
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let (paid, _) = payments::pay_rest_by_hand(&mut tx, invoice.id).await.map_err(|e| match e {
        MarkPaidError::Ledger(e) => ApiError::from(e),
        refused => ApiError::new(StatusCode::CONFLICT, refused.code(), refused.to_string()),
    })?;
    tx.commit().await.map_err(LedgerError::from)?;
    s.fulfil.notify_one();
    Ok(paid)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    /// A decimal string in the invoice's currency, as invoice amounts are written (`"5.00"`).
    amount: Option<String>,
}

/// Refunds a paid invoice, all of it or `amount`: through Stripe what Stripe took.
async fn refund(
    s: &AppState,
    invoice: &invoices::Invoice,
    body: &[u8],
    actor: &str,
) -> Result<invoices::Invoice, ApiError> {
    let request: RefundRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RefundRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidRequest", e.to_string()))?
    };
    let refused = |e: StaffRefundError| {
        let status = match e {
            StaffRefundError::Failed(RefundError::Ledger(e)) => return ApiError::from(e),
            StaffRefundError::NotPaid { .. } => StatusCode::CONFLICT,
            StaffRefundError::InvalidAmount(_) | StaffRefundError::ExceedsPaid { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            StaffRefundError::Failed(RefundError::Stripe(_)) => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.code(), e.to_string())
    };
    let amount = match request.amount {
        Some(text) => {
            Some(Decimal::from_str(text.trim()).map_err(|_| refused(StaffRefundError::InvalidAmount(text.clone())))?)
        }
        None => None,
    };
    refunds::by_staff(&s.pool, &s.stripe, invoice, amount, actor).await.map_err(refused)
}

async fn list_subscriptions(State(s): Shared, headers: HeaderMap, Query(f): Query<Filter>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    to_json(json!({"subscriptions": subscriptions::list(&s.pool, f.status.as_deref()).await?}))
}

/// A subscription with its invoices and how provisioning goes: the ledger's last observation and,
/// when the cluster answers, the resource's status now.
async fn get_subscription(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let sub = subscriptions::get(&s.pool, uuid(&id)?).await?;
    let invoices = invoices::of_subscription(&s.pool, sub.id, sub.order_id).await?;
    let provisioning = provisioning_of(&s, &sub).await;
    let plan_changes = plan_changes::of_subscription(&s.pool, sub.id).await?;
    to_json(
        json!({"subscription": sub, "invoices": invoices, "provisioning": provisioning, "planChanges": plan_changes}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cancel {
    #[serde(default)]
    at_period_end: bool,
}

/// Cancels now or at the end of the period (`cancellation::cancel`).
async fn cancel_subscription(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Cancel>, JsonRejection>,
) -> Reply {
    let who = require(&s, &headers, Role::Billing).await?;
    let Json(cancel) = body.map_err(bad_body)?;
    to_json(cancellation::cancel(&s.pool, uuid(&id)?, cancel.at_period_end, &who.name).await?)
}
