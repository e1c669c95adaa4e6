//! Pay links in the ledger: each issued invoice's pay token (made by the database when the invoice
//! is issued, migration 0017) and the Checkout Sessions made to pay it, one row per session. A
//! session row is written before Stripe is asked and completed after, so no lock is held across
//! the call and every request for the same row asks Stripe with the same idempotency key.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

/// A Checkout Session of a pay link, as the ledger keeps it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub invoice_id: Uuid,
    pub seq: i32,
    pub amount: Decimal,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    /// `cs_…`; None while Stripe is being asked for it.
    pub session_id: Option<String>,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When Stripe said it expired unpaid.
    pub expired_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Stripe's idempotency key: one session per invoice and `seq`, however often it is asked.
    pub fn idempotency_key(&self) -> String {
        format!("pay-link-{}-{}", self.invoice_id, self.seq)
    }
}

const COLUMNS: &str = "invoice_id, seq, amount, currency, expires_at, session_id, url, created_at, expired_at";

/// Makes the tenant's pay addresses start with `public_url` (the bridge's setting, written at start).
pub async fn set_public_url(db: impl PgExecutor<'_>, tenant: Uuid, public_url: &str) -> Result<(), LedgerError> {
    sqlx::query("UPDATE tenants SET public_url = $2 WHERE id = $1 AND public_url IS DISTINCT FROM $2")
        .bind(tenant)
        .bind(public_url)
        .execute(db)
        .await?;
    Ok(())
}

/// The invoice's stable pay address; None when it has no pay token (never issued) or its tenant
/// no public URL.
pub async fn url_of(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Option<String>, LedgerError> {
    Ok(sqlx::query_scalar("SELECT pay_url($1)").bind(invoice).fetch_one(db).await?)
}

/// The tenant's invoice a pay token is for.
pub async fn invoice_of_token(db: impl PgExecutor<'_>, tenant: Uuid, token: &str) -> Result<Option<Uuid>, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT p.invoice_id FROM pay_tokens p JOIN invoices i ON i.id = p.invoice_id \
         WHERE p.token = $1 AND i.tenant_id = $2",
    )
    .bind(token)
    .bind(tenant)
    .fetch_optional(db)
    .await?)
}

/// Locks the invoice's pay token until the transaction ends (made now if the invoice has none):
/// requests for a session of one invoice take turns.
pub async fn lock(tx: &mut sqlx::PgConnection, invoice: Uuid) -> Result<(), LedgerError> {
    sqlx::query("INSERT INTO pay_tokens (invoice_id, token) VALUES ($1, new_pay_token()) ON CONFLICT DO NOTHING")
        .bind(invoice)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT 1 FROM pay_tokens WHERE invoice_id = $1 FOR UPDATE").bind(invoice).execute(&mut *tx).await?;
    Ok(())
}

/// The invoice's latest session row, if any.
pub async fn latest(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Option<Session>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM pay_sessions WHERE invoice_id = $1 ORDER BY seq DESC LIMIT 1"))
        .bind(invoice)
        .fetch_optional(db)
        .await?)
}

/// The session a customer can pay on now: the latest, made, not expired.
pub async fn current(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Option<Session>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM pay_sessions WHERE invoice_id = $1 AND session_id IS NOT NULL \
           AND expired_at IS NULL AND expires_at > now() ORDER BY seq DESC LIMIT 1"
    ))
    .bind(invoice)
    .fetch_optional(db)
    .await?)
}

/// Sessions that may still be paid at Stripe although their invoice is void (voided by staff, a
/// cancellation or the lifecycle after the session was made), oldest first, `limit` of them.
pub async fn open_on_void_invoices(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<Session>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM pay_sessions WHERE session_id IS NOT NULL AND expired_at IS NULL \
           AND expires_at > now() \
           AND invoice_id IN (SELECT id FROM invoices WHERE status = 'void') ORDER BY created_at LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Writes the next session row of the invoice, to ask Stripe for.
pub async fn open(
    db: impl PgExecutor<'_>,
    invoice: Uuid,
    amount: Decimal,
    currency: &str,
    expires_at: DateTime<Utc>,
) -> Result<Session, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "INSERT INTO pay_sessions (invoice_id, seq, amount, currency, expires_at) \
         SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4 FROM pay_sessions WHERE invoice_id = $1 \
         RETURNING {COLUMNS}"
    ))
    .bind(invoice)
    .bind(amount)
    .bind(currency)
    .bind(expires_at)
    .fetch_one(db)
    .await?)
}

/// Records the session Stripe made for the row.
pub async fn made(db: impl PgExecutor<'_>, row: &Session, session_id: &str, url: &str) -> Result<Session, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "UPDATE pay_sessions SET session_id = $3, url = $4 WHERE invoice_id = $1 AND seq = $2 RETURNING {COLUMNS}"
    ))
    .bind(row.invoice_id)
    .bind(row.seq)
    .bind(session_id)
    .bind(url)
    .fetch_one(db)
    .await?)
}

/// Marks the pay-link session `session_id` (or the one its metadata names: invoice and `seq`)
/// expired. The rows it marked; none when it is no pay link's.
pub async fn expire(
    db: impl PgExecutor<'_>,
    session_id: &str,
    named: Option<(Uuid, i32)>,
) -> Result<Vec<Session>, LedgerError> {
    let (invoice, seq) = named.unzip();
    Ok(sqlx::query_as(sql!(
        "UPDATE pay_sessions SET expired_at = coalesce(expired_at, now()) \
         WHERE session_id = $1 OR (invoice_id = $2 AND seq = $3) RETURNING {COLUMNS}"
    ))
    .bind(session_id)
    .bind(invoice)
    .bind(seq)
    .fetch_all(db)
    .await?)
}
