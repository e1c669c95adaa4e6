//! Payments: one row per provider payment. Every report about a payment (succeeded, failed,
//! refunded), in whatever order and however often it arrives, folds into that row, and the
//! invoice's state follows from its payments (`settle_invoice`).

use chrono::{DateTime, Utc};
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
    pub created_at: DateTime<Utc>,
}

impl Payment {
    /// What of it is not refunded; nothing for a failed payment.
    pub fn kept(&self) -> Decimal {
        if self.status == "failed" { Decimal::ZERO } else { self.amount - self.refunded_amount }
    }
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

const COLUMNS: &str =
    "id, invoice_id, provider, reference, amount, currency, status, refunded_amount, failure_message, created_at";

/// Folds a report into the payment's row, whatever came first: refunds (reported as a total so
/// far) only grow; a payment is `refunded` once its refunds cover it, else `succeeded` once
/// anything says it succeeded or was refunded, else `failed`.
pub async fn record(db: impl PgExecutor<'_>, report: &Report) -> Result<Payment, LedgerError> {
    let (status, refunded, failure) = match &report.outcome {
        Outcome::Succeeded => ("succeeded", Decimal::ZERO, None),
        Outcome::Failed(message) => ("failed", Decimal::ZERO, Some(message.as_str())),
        Outcome::Refunded(amount) if *amount > Decimal::ZERO && *amount >= report.amount => ("refunded", *amount, None),
        // a partial refund: the payment succeeded and keeps the rest
        Outcome::Refunded(amount) => ("succeeded", *amount, None),
    };
    Ok(sqlx::query_as(sql!(
        "INSERT INTO payments (invoice_id, provider, reference, amount, currency, status, refunded_amount, failure_message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (provider, reference) DO UPDATE SET \
           invoice_id = coalesce(payments.invoice_id, EXCLUDED.invoice_id), \
           status = CASE WHEN greatest(payments.refunded_amount, EXCLUDED.refunded_amount) > 0 \
                              AND greatest(payments.refunded_amount, EXCLUDED.refunded_amount) >= payments.amount \
                              THEN 'refunded' \
                         WHEN payments.status <> 'failed' OR EXCLUDED.status <> 'failed' THEN 'succeeded' \
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

/// Brings the invoice in line with its payments in its own currency (money in another is never
/// summed toward it): paid once what its payments received covers its total,
/// refunded once every payment is refunded in full (a partial refund leaves it paid). Never moves it back.
pub async fn settle_invoice(tx: &mut sqlx::PgConnection, invoice: Uuid) -> Result<invoices::Invoice, LedgerError> {
    let current = invoices::get(&mut *tx, invoice).await?;
    let (received, refunded): (Option<Decimal>, Decimal) = sqlx::query_as(
        "SELECT sum(amount) FILTER (WHERE status IN ('succeeded', 'refunded')), coalesce(sum(refunded_amount), 0) \
         FROM payments WHERE invoice_id = $1 AND currency = $2",
    )
    .bind(invoice)
    .bind(&current.currency)
    .fetch_one(&mut *tx)
    .await?;
    let mut settled = current;
    // paid in full: a payment short of the total leaves the invoice open
    if received.is_some_and(|r| r >= settled.total) && settled.status == "issued" {
        settled = invoices::mark_paid(&mut *tx, invoice).await?;
    }
    if settled.status == "paid" && refunded > Decimal::ZERO && received.is_some_and(|r| refunded >= r) {
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

/// The payment a provider knows by `reference` (Stripe: its PaymentIntent), if recorded.
pub async fn by_reference(
    db: impl PgExecutor<'_>,
    provider: &str,
    reference: &str,
) -> Result<Option<Payment>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM payments WHERE provider = $1 AND reference = $2"))
        .bind(provider)
        .bind(reference)
        .fetch_optional(db)
        .await?)
}

/// One Stripe payment that kept money on a void invoice, locked until the transaction ends (one
/// another transaction holds is skipped: it is being refunded there).
pub async fn lock_one_kept_on_void_invoice(tx: &mut sqlx::PgConnection) -> Result<Option<Payment>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM payments \
         WHERE invoice_id IN (SELECT id FROM invoices WHERE status = 'void') \
           AND provider = 'stripe' AND status = 'succeeded' AND amount > refunded_amount \
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    ))
    .fetch_optional(tx)
    .await?)
}

/// The invoice's payments that kept money, newest first, locked until the transaction ends: a
/// concurrent refund of the same invoice, or a Stripe report about one of them, waits.
pub async fn lock_refundable(tx: &mut sqlx::PgConnection, invoice: Uuid) -> Result<Vec<Payment>, LedgerError> {
    let locked: Vec<Payment> =
        sqlx::query_as(sql!("SELECT {COLUMNS} FROM payments WHERE invoice_id = $1 ORDER BY id FOR UPDATE"))
            .bind(invoice)
            .fetch_all(&mut *tx)
            .await?;
    let mut refundable: Vec<Payment> = locked.into_iter().filter(|p| p.kept() > Decimal::ZERO).collect();
    refundable.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(refundable)
}

/// Adds `amount` to the refunds of a payment; the database refuses refunds beyond the payment.
pub async fn add_refund(db: impl PgExecutor<'_>, payment: Uuid, amount: Decimal) -> Result<Payment, LedgerError> {
    sqlx::query_as(sql!(
        "UPDATE payments SET refunded_amount = refunded_amount + $2, \
           status = CASE WHEN refunded_amount + $2 >= amount THEN 'refunded' ELSE status END, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(payment)
    .bind(amount)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| LedgerError::NotFound(format!("payment {payment}")))
}

/// What the invoice's payments kept: received, less what was refunded.
pub async fn kept(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Decimal, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(amount - refunded_amount), 0) FROM payments \
         WHERE invoice_id = $1 AND status IN ('succeeded', 'refunded')",
    )
    .bind(invoice)
    .fetch_one(db)
    .await?)
}

/// Why staff may not mark an invoice paid; `code()` is stable (the admin API's error code).
#[derive(Debug, thiserror::Error)]
pub enum MarkPaidError {
    #[error("invoice {0} is a draft: issue it first")]
    Draft(String),
    #[error("invoice {0} is void")]
    Void(String),
    #[error("invoice {0} is {1} already")]
    AlreadyPaid(String, String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl MarkPaidError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Draft(_) => "invoice_draft",
            Self::Void(_) => "invoice_void",
            Self::AlreadyPaid(..) => "invoice_already_paid",
            Self::Ledger(e) => e.reason(),
        }
    }
}

/// Staff say the rest of an issued invoice was paid outside Stripe: one manual payment of its
/// remaining balance (the total less what its payments kept) makes it paid. A draft, void, paid or
/// refunded invoice is refused and nothing is written. The invoice and the payment recorded (none
/// when its payments already covered it).
pub async fn pay_rest_by_hand(
    tx: &mut sqlx::PgConnection,
    invoice: Uuid,
) -> Result<(invoices::Invoice, Option<Payment>), MarkPaidError> {
    let current = invoices::lock(&mut *tx, invoice).await?;
    let number = current.number.clone().unwrap_or_else(|| current.id.to_string());
    match current.status.as_str() {
        "issued" => {}
        "draft" => return Err(MarkPaidError::Draft(number)),
        "void" => return Err(MarkPaidError::Void(number)),
        other => return Err(MarkPaidError::AlreadyPaid(number, other.to_owned())),
    }
    let rest = current.total - kept(&mut *tx, invoice).await?;
    if rest <= Decimal::ZERO {
        return Ok((invoices::mark_paid(&mut *tx, invoice).await?, None));
    }
    let payment: Payment = sqlx::query_as(sql!(
        "INSERT INTO payments (invoice_id, provider, reference, amount, currency, status) \
         VALUES ($1, 'manual', $2, $3, $4, 'succeeded') RETURNING {COLUMNS}"
    ))
    .bind(invoice)
    .bind(format!("manual:{invoice}"))
    .bind(rest)
    .bind(&current.currency)
    .fetch_one(&mut *tx)
    .await
    .map_err(LedgerError::from)?;
    let paid = settle_invoice(tx, invoice).await?;
    Ok((paid, Some(payment)))
}
