//! Pay links: an open invoice is paid by its customer on a Stripe Checkout Session for what is left
//! of it (its total less what its payments kept), in its currency, `invoice_id` in the session's
//! metadata so that its webhooks pay the invoice as every other payment does. A session is reused
//! while it is open for the same amount; otherwise a new one is made. Its mails carry the invoice's
//! stable pay address (`GET /v1/pay/{token}`), which leads to the current session.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::checkout::ReturnUrls;
use crate::ledger::charge_attempts::Taken;
use crate::ledger::pay_links::{self, Session};
use crate::ledger::payments::{self, Outcome, Report};
use crate::ledger::{LedgerError, audit, customers, invoices};
use crate::money;
use crate::stripe::api::{CheckoutLine, CheckoutRequest, StripeClient, StripeError};

/// How long a new session stays payable (Stripe allows 30 minutes to 24 hours).
const SESSION_HOURS: i64 = 23;
/// A session expiring sooner than this is not handed out again: a new one is made.
const REUSE_MINUTES: i64 = 30;
/// How often a request waits for another one asking Stripe for the same session.
const IN_PROGRESS_RETRIES: u32 = 5;
const IN_PROGRESS_WAIT: Duration = Duration::from_millis(500);
/// The metadata key naming the session's row (its `seq`), next to `invoice_id`.
pub const SEQ_METADATA: &str = "pay_link";

/// Where the customer pays, for how much, until when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub amount: Decimal,
    pub currency: String,
}

/// Why an invoice cannot be paid on a session; `code()` is stable (the API's error code).
#[derive(Debug, thiserror::Error)]
pub enum PayLinkError {
    /// Draft, paid, refunded or void.
    #[error("invoice {number} is {status}: there is nothing to pay on it")]
    NotOpen { number: String, status: String },
    /// Issued, but its payments cover it already (it is being settled).
    #[error("nothing is left to pay on invoice {0}")]
    NothingDue(String),
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl PayLinkError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotOpen { .. } => "invoice_not_open",
            Self::NothingDue(_) => "nothing_due",
            Self::Stripe(e) => e.reason(),
            Self::Ledger(e) => e.reason(),
        }
    }
}

/// The Checkout Session paying the rest of the tenant's open invoice: the current one when it is
/// for that amount and open for a while yet, else a new one. An invoice of another tenant is
/// `NotFound`.
pub async fn checkout_for(
    pool: &PgPool,
    stripe: &StripeClient,
    urls: &ReturnUrls,
    tenant: Uuid,
    invoice: Uuid,
) -> Result<PayLink, PayLinkError> {
    let mut tx = pool.begin().await.map_err(LedgerError::from)?;
    let invoice = invoices::find(&mut *tx, tenant, &invoice.to_string()).await?;
    let number = invoice.number.clone().unwrap_or_else(|| invoice.id.to_string());
    if invoice.status != "issued" {
        return Err(PayLinkError::NotOpen { number, status: invoice.status });
    }
    pay_links::lock(&mut tx, invoice.id).await?;
    let rest = invoice.total - payments::kept(&mut *tx, invoice.id).await?;
    if rest <= Decimal::ZERO {
        return Err(PayLinkError::NothingDue(number));
    }
    let now = Utc::now();
    let reusable = pay_links::latest(&mut *tx, invoice.id).await?.filter(|s| {
        s.expired_at.is_none()
            && s.amount == rest
            && s.currency.eq_ignore_ascii_case(&invoice.currency)
            && s.expires_at > now + chrono::Duration::minutes(REUSE_MINUTES)
    });
    let row = match reusable {
        Some(Session { session_id: Some(_), url: Some(url), expires_at, amount, currency, .. }) => {
            tx.commit().await.map_err(LedgerError::from)?;
            return Ok(PayLink { url, expires_at, amount, currency });
        }
        // being asked for by another request (or one that ended before the answer): asked again
        // with the same key, Stripe answers with the same session
        Some(pending) => pending,
        None => {
            let expires_at =
                DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now) + chrono::Duration::hours(SESSION_HOURS);
            pay_links::open(&mut *tx, invoice.id, rest, &invoice.currency, expires_at).await?
        }
    };
    tx.commit().await.map_err(LedgerError::from)?;

    let customer = customers::get(pool, invoice.customer_id).await?;
    let amount_minor = money::to_minor(row.amount, &row.currency).ok_or_else(|| {
        StripeError::InvalidRequest(format!("{} {} has no amount Stripe can take", row.amount, row.currency))
    })?;
    let request = CheckoutRequest {
        idempotency_key: row.idempotency_key(),
        customer_email: customer.email,
        stripe_customer: customer.stripe_customer_id,
        currency: row.currency.to_ascii_lowercase(),
        lines: vec![CheckoutLine {
            description: format!("Invoice {number}"),
            unit_amount_cents: amount_minor,
            quantity: 1,
        }],
        success_url: urls.success.clone(),
        cancel_url: urls.cancel.clone(),
        // not an order's id: an expiry of this session never ends an order
        client_reference_id: format!("pay-link:{}:{}", row.invoice_id, row.seq),
        metadata: BTreeMap::from([
            ("invoice_id".to_owned(), row.invoice_id.to_string()),
            (SEQ_METADATA.to_owned(), row.seq.to_string()),
        ]),
    };
    let session = ask(stripe, &request, row.expires_at.timestamp()).await?;
    let url = session.url.ok_or_else(|| StripeError::InvalidResponse("the Checkout Session has no url".into()))?;
    let made = pay_links::made(pool, &row, &session.id, &url).await?;
    Ok(PayLink { url, expires_at: made.expires_at, amount: made.amount, currency: made.currency })
}

/// Asks Stripe for the session, waiting a little while another request asks with the same key.
async fn ask(
    stripe: &StripeClient,
    request: &CheckoutRequest,
    expires_at: i64,
) -> Result<crate::stripe::api::CheckoutSession, StripeError> {
    let mut tries = 0;
    loop {
        match stripe.create_checkout_session_until(request, Some(expires_at)).await {
            Err(StripeError::Rejected { status: 409, .. }) if tries < IN_PROGRESS_RETRIES => {
                tries += 1;
                tokio::time::sleep(IN_PROGRESS_WAIT).await;
            }
            answered => return answered,
        }
    }
}

/// The Checkout Session paying the invoice `token` is the pay token of (`GET /v1/pay/{token}`);
/// an unknown token is `NotFound`.
pub async fn checkout_for_token(
    pool: &PgPool,
    stripe: &StripeClient,
    urls: &ReturnUrls,
    tenant: Uuid,
    token: &str,
) -> Result<PayLink, PayLinkError> {
    let unknown = || PayLinkError::Ledger(LedgerError::NotFound("pay link".into()));
    if !is_token(token) {
        return Err(unknown());
    }
    let invoice = pay_links::invoice_of_token(pool, tenant, token).await?.ok_or_else(unknown)?;
    checkout_for(pool, stripe, urls, tenant, invoice).await
}

/// Whether `s` looks like a pay token (64 lower-case hex digits), before asking the ledger.
fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An off-session renewal charge Stripe left waiting for the customer (3-D Secure): recorded as a
/// failed payment of the invoice, whose mail (written by the database with it, once per payment,
/// however Stripe's own `payment_intent.payment_failed` for it comes) carries the pay link. The
/// invoice stays open.
pub async fn customer_must_act(
    pool: &PgPool,
    taken: &Taken,
    payment_intent: &str,
    message: &str,
) -> Result<(), LedgerError> {
    let report = Report {
        provider: "stripe",
        reference: payment_intent.to_owned(),
        invoice: Some(taken.invoice_id),
        amount: taken.amount,
        currency: taken.currency.to_ascii_lowercase(),
        outcome: Outcome::Failed(message.to_owned()),
    };
    payments::record(pool, &report).await?;
    Ok(())
}

/// Sessions of void invoices expired at a time.
const EXPIRE_BATCH: i64 = 100;

/// Expires at Stripe the pay-link sessions whose invoice was voided after they were made, so the
/// customer can no longer pay them (what is paid anyway is refunded: `refunds::stray_payments`).
/// Each gets an audit row `checkout.session.expire` with Stripe's answer; a refusal (the session
/// completed or expired meanwhile) marks it as well, no answer leaves it for the next pass. The
/// number of sessions marked.
pub async fn expire_on_void_invoices(pool: &PgPool, stripe: &StripeClient) -> Result<usize, LedgerError> {
    let mut marked = 0;
    for session in pay_links::open_on_void_invoices(pool, EXPIRE_BATCH).await? {
        let Some(id) = session.session_id.as_deref() else { continue };
        let answer = match stripe.expire_checkout_session(id).await {
            Ok(status) => serde_json::json!({"session": id, "status": status}),
            Err(e @ StripeError::Rejected { .. }) => {
                serde_json::json!({"session": id, "error": e.reason(), "message": e.to_string()})
            }
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "expiring the pay-link session of a void invoice failed; will retry");
                continue;
            }
        };
        let mut tx = pool.begin().await?;
        pay_links::expire(&mut *tx, id, None).await?;
        audit::record(
            &mut *tx,
            "bridge",
            "checkout.session.expire",
            "invoice",
            &session.invoice_id.to_string(),
            answer,
        )
        .await?;
        tx.commit().await?;
        marked += 1;
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_64_lower_case_hex_digits() {
        assert!(is_token(&"0a".repeat(32)));
        assert!(!is_token(&"0A".repeat(32)));
        assert!(!is_token("0a"));
        assert!(!is_token(&format!("{}/", "0".repeat(63))));
    }

    #[test]
    fn codes_are_stable() {
        let not_open = PayLinkError::NotOpen { number: "INV-1".into(), status: "paid".into() };
        assert_eq!(not_open.code(), "invoice_not_open");
        assert_eq!(PayLinkError::NothingDue("INV-1".into()).code(), "nothing_due");
        assert_eq!(PayLinkError::Ledger(LedgerError::NotFound("x".into())).code(), "NotFound");
    }
}
