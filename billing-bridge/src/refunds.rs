//! Refunding a paid invoice, in full or in part, across its payments newest first: a Stripe
//! payment through Stripe, a manual one recorded as given back by staff. The payments are locked
//! while the refund is worked out, sent and recorded, so two refunds of one invoice happen one after
//! the other. The idempotency key of a Stripe refund is the payment and its refunded total after
//! it, so asking again after a failure refunds nothing twice. Used by the admin API and by the
//! activation gate when provisioning failed. A refund of all that was paid ends the service
//! (`money_follows`).

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::ledger::invoices::Invoice;
use crate::ledger::payments::{self, Payment};
use crate::ledger::{LedgerError, audit};
use crate::stripe::api::{StripeClient, StripeError};
use crate::{money, money_follows, pay_links};

/// Why a refund failed after it was found allowed.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

/// Why a staff refund did not happen: refused before anything was written or sent, or failed.
#[derive(Debug, thiserror::Error)]
pub enum StaffRefundError {
    #[error("invoice {number} is {status}, not paid")]
    NotPaid { number: String, status: String },
    #[error("a refund is a positive amount of whole cents, such as \"5.00\", not {0:?}")]
    InvalidAmount(String),
    #[error("{asked} is more than the {left} of invoice {number} left to refund")]
    ExceedsPaid { number: String, asked: Decimal, left: Decimal },
    #[error(transparent)]
    Failed(#[from] RefundError),
}

impl From<LedgerError> for StaffRefundError {
    fn from(e: LedgerError) -> Self {
        Self::Failed(RefundError::Ledger(e))
    }
}

impl StaffRefundError {
    /// Stable: the admin API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotPaid { .. } => "invoice_not_paid",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::ExceedsPaid { .. } => "refund_exceeds_paid",
            Self::Failed(RefundError::Ledger(e)) => e.reason(),
            Self::Failed(RefundError::Stripe(e)) => e.reason(),
        }
    }
}

/// Which payments a refund may give money back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payers {
    /// Stripe payments only: the bridge cannot give back what was paid outside Stripe.
    Stripe,
    /// Every payment: staff give back by hand what was paid outside Stripe.
    All,
}

/// Staff refund `asked` of a paid invoice (all that is left when None), across its payments newest
/// first. More than is left is refused and nothing is written or sent.
pub async fn by_staff(
    pool: &PgPool,
    stripe: &StripeClient,
    invoice: &Invoice,
    asked: Option<Decimal>,
    actor: &str,
) -> Result<Invoice, StaffRefundError> {
    if let Some(amount) = asked
        && (amount <= Decimal::ZERO || money::to_cents(amount).is_none())
    {
        return Err(StaffRefundError::InvalidAmount(amount.to_string()));
    }
    let refunded = refund(pool, stripe, invoice, asked, Payers::All, actor, "refunded by staff").await?;
    // staff asked for nothing when nothing is left: the invoice as it is
    Ok(refunded.unwrap_or_else(|| invoice.clone()))
}

/// Refunds all that the Stripe payments of `invoice` kept, through Stripe, with `actor` and `reason`
/// in the audit log. The invoice after the refund, or None when no Stripe payment has anything left.
pub async fn through_stripe(
    pool: &PgPool,
    stripe: &StripeClient,
    invoice: &Invoice,
    actor: &str,
    reason: &str,
) -> Result<Option<Invoice>, RefundError> {
    match refund(pool, stripe, invoice, None, Payers::Stripe, actor, reason).await {
        Ok(refunded) => Ok(refunded),
        // refunded meanwhile (or never paid): nothing left to give back
        Err(StaffRefundError::NotPaid { .. }) => Ok(None),
        Err(StaffRefundError::Failed(e)) => Err(e),
        Err(e @ (StaffRefundError::InvalidAmount(_) | StaffRefundError::ExceedsPaid { .. })) => {
            Err(LedgerError::Invalid(e.to_string()).into())
        }
    }
}

async fn refund(
    pool: &PgPool,
    stripe: &StripeClient,
    invoice: &Invoice,
    asked: Option<Decimal>,
    payers: Payers,
    actor: &str,
    reason: &str,
) -> Result<Option<Invoice>, StaffRefundError> {
    let mut tx = pool.begin().await.map_err(LedgerError::from)?;
    let refundable: Vec<Payment> = payments::lock_refundable(&mut tx, invoice.id)
        .await?
        .into_iter()
        .filter(|p| payers == Payers::All || p.provider == "stripe")
        .collect();
    let current = crate::ledger::invoices::get(&mut *tx, invoice.id).await?;
    let number = current.number.clone().unwrap_or_else(|| current.id.to_string());
    if current.status != "paid" {
        return Err(StaffRefundError::NotPaid { number, status: current.status });
    }
    let left: Decimal = refundable.iter().map(Payment::kept).sum();
    let amount = asked.unwrap_or(left);
    if amount > left {
        return Err(StaffRefundError::ExceedsPaid { number, asked: amount, left });
    }
    if amount <= Decimal::ZERO {
        return Ok(None);
    }
    let mut steps = Vec::new();
    for (payment, part) in split(amount, &refundable) {
        let stripe_refund = match payment.provider.as_str() {
            "stripe" => Some(send(stripe, payment, part).await?),
            _ => None,
        };
        payments::add_refund(&mut *tx, payment.id, part).await?;
        steps.push(json!({"payment": payment.reference, "amount": part, "stripeRefund": stripe_refund}));
    }
    let settled = payments::settle_invoice(&mut tx, invoice.id).await?;
    let detail = json!({"amount": amount, "payments": Value::Array(steps), "reason": reason});
    audit::record(&mut *tx, actor, "refund", "invoice", &number, detail).await?;
    money_follows::after_refund(&mut tx, &settled, actor, reason).await?;
    tx.commit().await.map_err(LedgerError::from)?;
    Ok(Some(settled))
}

/// Gives back, through Stripe, what was paid on void invoices (a payment that landed after the
/// invoice was voided by expiry, staff or a cancellation), each payment once: the idempotency key
/// is the payment's id, and the payment is marked refunded in the transaction that asked Stripe.
/// Each refund has an audit row `refund.on_void_invoice`. The number of payments refunded.
pub async fn stray_payments(pool: &PgPool, stripe: &StripeClient) -> Result<usize, RefundError> {
    let mut refunded = 0;
    loop {
        let mut tx = pool.begin().await.map_err(LedgerError::from)?;
        let Some(payment) = payments::lock_one_kept_on_void_invoice(&mut tx).await? else {
            return Ok(refunded);
        };
        let part = payment.kept();
        let minor = money::to_minor(part, &payment.currency)
            .ok_or_else(|| LedgerError::Invalid(format!("refund of {part}")))?;
        let key = format!("refund-void-invoice-{}", payment.id);
        let stripe_refund = stripe.create_refund(&payment.reference, Some(minor), &key).await?;
        payments::add_refund(&mut *tx, payment.id, part).await?;
        let detail = json!({"amount": part, "invoice": payment.invoice_id, "stripeRefund": stripe_refund});
        audit::record(&mut *tx, "bridge", "refund.on_void_invoice", "payment", &payment.reference, detail).await?;
        tx.commit().await.map_err(LedgerError::from)?;
        refunded += 1;
    }
}

/// Runs until the process ends: keeps void invoices from taking money. Whenever `kick` says a
/// payment landed on one or one was voided, and every `scan` (so a refund Stripe refused, or a
/// replica that died before asking, is tried again): expires their pay-link sessions at Stripe,
/// then refunds what was paid on them.
pub async fn run_stray(pool: PgPool, stripe: Arc<StripeClient>, kick: Arc<Notify>, scan: Duration) {
    loop {
        match pay_links::expire_on_void_invoices(&pool, &stripe).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "pay-link sessions of void invoices expired"),
            Err(e) => tracing::warn!(error = %e, "expiring pay-link sessions of void invoices failed; will retry"),
        }
        match stray_payments(&pool, &stripe).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(refunded = n, "payments on void invoices refunded"),
            Err(e) => tracing::warn!(error = %e, "refunding payments on void invoices failed; will retry"),
        }
        let _ = tokio::time::timeout(scan, kick.notified()).await;
    }
}

/// `amount` taken from the payments in their order, each up to what it kept.
fn split(amount: Decimal, payments: &[Payment]) -> Vec<(&Payment, Decimal)> {
    let mut rest = amount;
    let mut parts = Vec::new();
    for payment in payments {
        if rest <= Decimal::ZERO {
            break;
        }
        let part = rest.min(payment.kept());
        parts.push((payment, part));
        rest -= part;
    }
    parts
}

/// Refunds `part` of a Stripe payment; the refund's id.
async fn send(stripe: &StripeClient, payment: &Payment, part: Decimal) -> Result<String, StaffRefundError> {
    let minor =
        money::to_minor(part, &payment.currency).ok_or_else(|| StaffRefundError::InvalidAmount(part.to_string()))?;
    let total_after = money::to_cents(payment.refunded_amount + part)
        .ok_or_else(|| StaffRefundError::InvalidAmount(payment.refunded_amount.to_string()))?;
    let key = format!("refund-{}-{total_after}", payment.id);
    stripe.create_refund(&payment.reference, Some(minor), &key).await.map_err(|e| RefundError::Stripe(e).into())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    fn payment(amount: i64, refunded: i64) -> Payment {
        Payment {
            id: Uuid::new_v4(),
            invoice_id: None,
            provider: "stripe".into(),
            reference: "pi_1".into(),
            amount: money::from_cents(amount),
            currency: "usd".into(),
            status: "succeeded".into(),
            refunded_amount: money::from_cents(refunded),
            failure_message: None,
            created_at: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
        }
    }

    #[test]
    fn a_refund_takes_from_each_payment_in_turn_up_to_what_it_kept() {
        let payments = [payment(1000, 400), payment(999, 0)];
        let parts: Vec<i64> =
            split(money::from_cents(1200), &payments).iter().filter_map(|(_, d)| money::to_cents(*d)).collect();
        assert_eq!(parts, vec![600, 600]);
        let parts: Vec<i64> =
            split(money::from_cents(300), &payments).iter().filter_map(|(_, d)| money::to_cents(*d)).collect();
        assert_eq!(parts, vec![300]);
    }
}
