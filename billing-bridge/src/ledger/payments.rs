//! Payments: one row per provider payment. Every report about a payment (succeeded, failed,
//! refunded), in whatever order and however often it arrives, folds into that row, and the
//! invoice's state follows from its payments (`settle_invoice`).

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::{LedgerError, invoices};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub invoice_id: Option<Uuid>,
    pub provider: String,
    pub reference: String,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub refunded_amount: Decimal,
    pub failure_message: Option<String>,
}

/// What a report says of a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    /// Refunded, `Decimal` in total so far.
    Refunded(Decimal),
}

#[derive(Debug, Clone)]
pub struct Report {
    pub provider: &'static str,
    pub reference: String,
    pub invoice: Option<Uuid>,
    pub amount: Decimal,
    pub currency: String,
    pub outcome: Outcome,
}

const COLUMNS: &str = "id, invoice_id, provider, reference, amount, currency, status, refunded_amount, failure_message";

/// Folds a report into the payment's row: refunded beats succeeded beats failed, whatever came first.
pub async fn record(db: impl PgExecutor<'_>, report: &Report) -> Result<Payment, LedgerError> {
    let (status, refunded, failure) = match &report.outcome {
        Outcome::Succeeded => ("succeeded", Decimal::ZERO, None),
        Outcome::Failed(message) => ("failed", Decimal::ZERO, Some(message.as_str())),
        Outcome::Refunded(amount) => ("refunded", *amount, None),
    };
    Ok(sqlx::query_as(sql!(
        "INSERT INTO payments (invoice_id, provider, reference, amount, currency, status, refunded_amount, failure_message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (provider, reference) DO UPDATE SET \
           invoice_id = coalesce(payments.invoice_id, EXCLUDED.invoice_id), \
           status = CASE WHEN 'refunded' IN (payments.status, EXCLUDED.status) THEN 'refunded' \
                         WHEN 'succeeded' IN (payments.status, EXCLUDED.status) THEN 'succeeded' \
                         ELSE 'failed' END, \
           refunded_amount = greatest(payments.refunded_amount, EXCLUDED.refunded_amount), \
           failure_message = coalesce(payments.failure_message, EXCLUDED.failure_message), \
           updated_at = now() \
         RETURNING {COLUMNS}"
    ))
    .bind(report.invoice)
    .bind(report.provider)
    .bind(&report.reference)
    .bind(report.amount)
    .bind(&report.currency)
    .bind(status)
    .bind(refunded)
    .bind(failure)
    .fetch_one(db)
    .await?)
}

/// Brings the invoice in line with its payments: paid once succeeded payments cover its total, refunded once the
/// refunds cover its total. Never moves it back.
pub async fn settle_invoice(tx: &mut sqlx::PgConnection, invoice: Uuid) -> Result<invoices::Invoice, LedgerError> {
    let current = invoices::get(&mut *tx, invoice).await?;
    let (received, refunded): (Option<Decimal>, Decimal) = sqlx::query_as(
        "SELECT sum(amount) FILTER (WHERE status IN ('succeeded', 'refunded')), coalesce(sum(refunded_amount), 0) \
         FROM payments WHERE invoice_id = $1",
    )
    .bind(invoice)
    .fetch_one(&mut *tx)
    .await?;
    let mut settled = current;
    // paid in full: a payment short of the total leaves the invoice open
    if received.is_some_and(|r| r >= settled.total) && settled.status == "issued" {
        settled = invoices::mark_paid(&mut *tx, invoice).await?;
    }
    if settled.status == "paid" && refunded > Decimal::ZERO && refunded >= settled.total {
        settled = invoices::mark_refunded(&mut *tx, invoice).await?;
    }
    Ok(settled)
}

pub async fn of_invoice(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Vec<Payment>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM payments WHERE invoice_id = $1 ORDER BY created_at"))
        .bind(invoice)
        .fetch_all(db)
        .await?)
}

/// The succeeded (or refunded) Stripe payment of an invoice, to refund.
pub async fn refundable(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Option<Payment>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM payments WHERE invoice_id = $1 AND provider = 'stripe' \
         AND status IN ('succeeded', 'refunded') ORDER BY created_at LIMIT 1"
    ))
    .bind(invoice)
    .fetch_optional(db)
    .await?)
}
