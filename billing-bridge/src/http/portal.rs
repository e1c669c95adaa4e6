//! The customer portal API (`/v1/portal`): customers sign in without staff and see and manage what
//! is theirs. `POST /sign-in` mails a link (the answer is the same whether or not the address is a
//! customer's); `POST /sessions` opens a session with the link's token, once; the session token
//! then reads the customer's invoices (and their PDFs) and subscriptions (with live provisioning
//! status), cancels a subscription at the end of its period and opens a Stripe Billing Portal
//! session to manage payment methods, and sets the password of a subscription's mailboxes;
//! `POST /v1/invoices/{number}/pay` (outside `/v1/portal`) gives a Checkout Session for an open
//! invoice. Whatever is not the session's customer's is a `404`, as if it did not exist.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiError, AppState, bad_body, bearer, invoice_pdf_reply, provisioning_of};
use crate::cancellation;
use crate::ledger::audit;
use crate::ledger::invoices::{self, Invoice};
use crate::ledger::portal::{self as sessions, LinkAsked, LinkOpened, SessionPresented};
use crate::ledger::subscriptions::{self, Subscription};
use crate::ledger::{LedgerError, customers, tokens};
use crate::mailbox_password::{self, SetError};
use crate::pay_links;
use crate::portal::{LINK_LIFETIME, LINKS_PER_HOUR, SESSION_LIFETIME};
use crate::render;

type Shared = State<Arc<AppState>>;
type Reply = Result<Json<Value>, ApiError>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sign-in", post(sign_in))
        .route("/sessions", post(open_session))
        .route("/session", delete(sign_out))
        .route("/invoices", get(list_invoices))
        .route("/invoices/{number}", get(get_invoice))
        .route("/invoices/{number}/pdf", get(invoice_pdf))
        .route("/subscriptions", get(list_subscriptions))
        .route("/subscriptions/{id}", get(get_subscription))
        .route("/subscriptions/{id}/cancel", post(cancel_subscription))
        .route("/subscriptions/{id}/mailbox-password", post(set_mailbox_password))
        .route("/billing-portal", post(billing_portal))
}

fn unauthenticated(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{what} not found"))
}

/// The customer whose session token the request carries.
pub(super) async fn customer(state: &AppState, headers: &HeaderMap) -> Result<Uuid, ApiError> {
    let token =
        bearer(headers).ok_or_else(|| unauthenticated("Unauthenticated", "a portal session token is required"))?;
    match sessions::session(&state.pool, state.tenant, &tokens::digest(token)).await? {
        SessionPresented::Valid(customer) => Ok(customer),
        SessionPresented::Unknown => Err(unauthenticated("Unauthenticated", "unknown session")),
        SessionPresented::Expired => Err(unauthenticated("SessionExpired", "this session expired: sign in again")),
        SessionPresented::SignedOut => Err(unauthenticated("SignedOut", "this session was signed out")),
    }
}

/// The customer's issued invoice `key` (its number); anyone else's, or a draft, is not found.
pub(super) async fn own_invoice(state: &AppState, customer: Uuid, key: &str) -> Result<Invoice, ApiError> {
    match invoices::find(&state.pool, state.tenant, key).await {
        Ok(invoice) if invoice.customer_id == customer && invoice.status != "draft" => Ok(invoice),
        Ok(_) | Err(LedgerError::NotFound(_)) => Err(not_found(&format!("invoice {key}"))),
        Err(e) => Err(e.into()),
    }
}

async fn own_subscription(state: &AppState, customer: Uuid, id: &str) -> Result<Subscription, ApiError> {
    let Ok(uuid) = Uuid::parse_str(id) else { return Err(not_found(&format!("subscription {id}"))) };
    match subscriptions::get(&state.pool, uuid).await {
        Ok(sub) if sub.customer_id == customer && sub.tenant_id == state.tenant => Ok(sub),
        Ok(_) | Err(LedgerError::NotFound(_)) => Err(not_found(&format!("subscription {id}"))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
}

/// Mails a sign-in link to the customer with that address, if there is one (`202` either way, so
/// the answer tells nobody who is a customer); a few an hour at most.
async fn sign_in(
    State(s): Shared,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(asked) = body.map_err(bad_body)?;
    let Some(links) = s.sign_in.as_deref() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "PortalUnavailable", "signing in is not set up"));
    };
    let email = customers::normalize_email(&asked.email)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))?;
    let id = Uuid::new_v4();
    let expires_at = chrono::Utc::now() + LINK_LIFETIME;
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let digest = tokens::digest(&links.token(id));
    let asked = sessions::ask_link(&mut tx, s.tenant, &email, id, &digest, expires_at, LINKS_PER_HOUR).await?;
    tx.commit().await.map_err(LedgerError::from)?;
    if asked != LinkAsked::Sent {
        tracing::info!(outcome = ?asked, "portal sign-in asked; no link sent");
    }
    let message = "if this address is a customer's, a sign-in link is on its way";
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "accepted", "message": message}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSession {
    token: String,
}

/// Opens a session with a sign-in link's token: `201` with the session token, shown this once.
async fn open_session(
    State(s): Shared,
    body: Result<Json<OpenSession>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(open) = body.map_err(bad_body)?;
    let token = tokens::new_token("mps_");
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let link = tokens::digest(open.token.trim());
    let opened = sessions::open_session(&mut tx, s.tenant, &link, &tokens::digest(&token), SESSION_LIFETIME).await?;
    tx.commit().await.map_err(LedgerError::from)?;
    match opened {
        LinkOpened::Session { expires_at, .. } => {
            Ok((StatusCode::CREATED, Json(json!({"token": token, "expiresAt": expires_at}))))
        }
        LinkOpened::Unknown => Err(unauthenticated("SignInLinkUnknown", "this sign-in link is not known")),
        LinkOpened::Used => Err(unauthenticated("SignInLinkUsed", "this sign-in link was used already: ask another")),
        LinkOpened::Expired => Err(unauthenticated("SignInLinkExpired", "this sign-in link expired: ask another")),
    }
}

async fn sign_out(State(s): Shared, headers: HeaderMap) -> Reply {
    customer(&s, &headers).await?;
    let token = bearer(&headers).unwrap_or_default();
    sessions::sign_out(&s.pool, &tokens::digest(token)).await?;
    Ok(Json(json!({"status": "signed out"})))
}

async fn list_invoices(State(s): Shared, headers: HeaderMap) -> Reply {
    let customer = customer(&s, &headers).await?;
    Ok(Json(json!({"invoices": invoices::of_customer(&s.pool, customer).await?})))
}

async fn get_invoice(State(s): Shared, headers: HeaderMap, Path(number): Path<String>) -> Reply {
    let customer = customer(&s, &headers).await?;
    let invoice = own_invoice(&s, customer, &number).await?;
    let lines = invoices::lines(&s.pool, invoice.id).await?;
    Ok(Json(json!({"invoice": invoice, "lines": lines})))
}

async fn invoice_pdf(State(s): Shared, headers: HeaderMap, Path(number): Path<String>) -> Result<Response, ApiError> {
    let customer = customer(&s, &headers).await?;
    let invoice = own_invoice(&s, customer, &number).await?;
    invoice_pdf_reply(&s, &invoice.id.to_string()).await
}

async fn list_subscriptions(State(s): Shared, headers: HeaderMap) -> Reply {
    let customer = customer(&s, &headers).await?;
    Ok(Json(json!({"subscriptions": subscriptions::of_customer(&s.pool, customer).await?})))
}

/// A subscription with its invoices and how its provisioning goes now.
async fn get_subscription(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let customer = customer(&s, &headers).await?;
    let sub = own_subscription(&s, customer, &id).await?;
    let invoices: Vec<Invoice> = invoices::of_subscription(&s.pool, sub.id, sub.order_id)
        .await?
        .into_iter()
        .filter(|i| i.status != "draft")
        .collect();
    let provisioning = provisioning_of(&s, &sub).await;
    Ok(Json(json!({"subscription": sub, "invoices": invoices, "provisioning": provisioning})))
}

/// Cancels the subscription at the end of its paid period (a customer cannot end it at once: the
/// service runs until then).
async fn cancel_subscription(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let customer = customer(&s, &headers).await?;
    let sub = own_subscription(&s, customer, &id).await?;
    let cancelled = cancellation::cancel(&s.pool, sub.id, true, &format!("customer:{customer}")).await?;
    Ok(Json(json!({"subscription": cancelled})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxPassword {
    password: String,
}

/// Sets the password of the subscription's mailboxes (those using its generated credentials): `204`.
/// `409 NoMailboxCredentials` for a subscription without them, `409 SubscriptionNotInService` for
/// one cancelled, expired or failed, `409 MailboxNotReady` before its credentials Secret is made,
/// `422` with the rule's code (`mailbox_password::check`) for a weak password. The password goes
/// into the Secret only: neither the answer, the audit row nor the log holds it.
async fn set_mailbox_password(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<MailboxPassword>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let customer = customers::get(&s.pool, customer(&s, &headers).await?).await?;
    let sub = own_subscription(&s, customer.id, &id).await?;
    let Some(secret) = render::credentials_of(&sub) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NoMailboxCredentials",
            "this subscription has no mailbox whose password is set here",
        ));
    };
    if matches!(sub.status.as_str(), "cancelled" | "expired" | "provisioning_failed") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "SubscriptionNotInService",
            format!("this subscription is {}: it has no mailbox to set a password for", sub.status),
        ));
    }
    let Json(asked) = body.map_err(|_| {
        // the parser's words could quote the body, and so the password
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidRequest", "the body is {\"password\": \"...\"}")
    })?;
    let addresses = mailbox_password::addresses_using(&sub.resources.0, &secret);
    mailbox_password::check(&asked.password, &addresses, &customer.email)
        .map_err(|weak| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, weak.code(), weak.to_string()))?;
    let Some(client) = s.kube.as_ref() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "KubernetesUnavailable", "no cluster to write to"));
    };
    // the audit row commits only once the Secret took the password
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let detail = json!({"namespace": &sub.namespace, "secret": &secret, "mailboxes": addresses});
    audit::record(&mut *tx, &customer.email, "mailbox.password_set", "subscription", &sub.id.to_string(), detail)
        .await?;
    match mailbox_password::set(client, &sub.namespace, &secret, &asked.password).await {
        Ok(()) => {}
        Err(SetError::NotMade) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "MailboxNotReady",
                "the mailbox is not made yet: try again in a few minutes",
            ));
        }
        Err(e @ SetError::Kubernetes(_)) => {
            tracing::warn!(subscription = %sub.id, error = %e, "mailbox password not set");
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "KubernetesUnavailable", e.to_string()));
        }
    }
    tx.commit().await.map_err(LedgerError::from)?;
    tracing::info!(subscription = %sub.id, secret = %secret, "mailbox password set by the customer");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/invoices/{number}/pay`: a Checkout Session for what is left to pay on the customer's
/// open invoice (`{"url", "expiresAt", "amount", "currency"}`); `409 invoice_not_open` once it is
/// paid, refunded or void.
pub(super) async fn pay(State(s): Shared, headers: HeaderMap, Path(number): Path<String>) -> Reply {
    let customer = customer(&s, &headers).await?;
    let invoice = own_invoice(&s, customer, &number).await?;
    let link = pay_links::checkout_for(&s.pool, &s.stripe, &s.return_urls, s.tenant, invoice.id).await?;
    Ok(Json(json!({"url": link.url, "expiresAt": link.expires_at, "amount": link.amount, "currency": link.currency})))
}

/// A Stripe Billing Portal session where the customer manages their payment methods: its URL.
async fn billing_portal(State(s): Shared, headers: HeaderMap) -> Reply {
    let customer = customers::get(&s.pool, customer(&s, &headers).await?).await?;
    let Some(stripe_customer) = customer.stripe_customer_id.as_deref() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NoPaymentProfile",
            "there is no payment profile yet: it is made with the first payment",
        ));
    };
    let return_url = s.sign_in.as_deref().map_or_else(String::new, |l| format!("{}/billing", l.portal_url()));
    let url = s.stripe.create_billing_portal_session(stripe_customer, &return_url).await.map_err(|e| {
        tracing::warn!(error = %e, reason = e.reason(), "Stripe Billing Portal session not made");
        ApiError::new(StatusCode::BAD_GATEWAY, e.reason(), e.to_string())
    })?;
    Ok(Json(json!({"url": url})))
}
