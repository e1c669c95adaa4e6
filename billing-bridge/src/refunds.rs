//! Refunding a paid invoice in full: through Stripe when Stripe took the money (the idempotency key
//! is per invoice, so asking again refunds nothing twice), then in the ledger. Used by the admin
//! API and by the activation gate when provisioning failed.

use serde_json::json;
use sqlx::PgPool;

use crate::ledger::invoices::Invoice;
use crate::ledger::payments::{self, Outcome, Report};
use crate::ledger::{LedgerError, audit};
use crate::money;
use crate::stripe::api::{StripeClient, StripeError};

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

/// Refunds the Stripe payment of `invoice` and records the refund, with `actor` and `reason` in the
/// audit log. The invoice as refunded, or None when no Stripe payment paid it.
pub async fn through_stripe(
    pool: &PgPool,
    stripe: &StripeClient,
    invoice: &Invoice,
    actor: &str,
    reason: &str,
) -> Result<Option<Invoice>, RefundError> {
    let Some(payment) = payments::refundable(pool, invoice.id).await? else { return Ok(None) };
    let cents = money::to_cents(invoice.total);
    let refund = stripe.create_refund(&payment.reference, cents, &format!("refund-{}", invoice.id)).await?;
    let detail = json!({"refund": refund, "reason": reason});
    let report = Report { provider: "stripe", reference: payment.reference, ..full_refund(invoice) };
    Ok(Some(record(pool, invoice, report, actor, detail).await?))
}

/// Records a full refund made outside Stripe.
pub async fn by_hand(pool: &PgPool, invoice: &Invoice, actor: &str) -> Result<Invoice, LedgerError> {
    let report = full_refund(invoice);
    record(pool, invoice, report, actor, json!({"reason": "refunded outside Stripe"})).await
}

fn full_refund(invoice: &Invoice) -> Report {
    Report {
        provider: "manual",
        reference: format!("manual:{}", invoice.id),
        invoice: Some(invoice.id),
        amount: invoice.total,
        currency: invoice.currency.clone(),
        outcome: Outcome::Refunded(invoice.total),
    }
}

async fn record(
    pool: &PgPool,
    invoice: &Invoice,
    report: Report,
    actor: &str,
    detail: serde_json::Value,
) -> Result<Invoice, LedgerError> {
    let mut tx = pool.begin().await?;
    payments::record(&mut *tx, &report).await?;
    let refunded = payments::settle_invoice(&mut tx, invoice.id).await?;
    audit::record(&mut *tx, actor, "refund", "invoice", invoice.number.as_deref().unwrap_or_default(), detail).await?;
    tx.commit().await?;
    Ok(refunded)
}
