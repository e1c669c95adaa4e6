//! Customer notifications: what the customer is to be told by email, written in the transaction of
//! the ledger event that causes it, one row per event and recipient (`kind`, `event_key`,
//! `recipient` is unique, so a repeated event writes nothing). The delivery worker (`notify`)
//! claims the unsent rows one at a time and records what became of each. A payment that failed is
//! written by the database itself (`notify_payment_failed`, migration 0011), whoever records it.
//!
//! `facts` is what the mail says: invoice numbers, amounts, the product, a reason. Never a
//! credential: a generated mailbox password lives only in its Kubernetes Secret.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::LedgerError;
use super::invoices::Invoice;

/// Error words kept per notification; the rest is cut.
const MAX_ERROR_CHARS: usize = 2000;
/// The longest wait between two attempts at one notification, in seconds.
pub const MAX_BACKOFF_SECS: f64 = 300.0;

/// What a notification tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An invoice was paid and fulfilled: an order, or a renewal.
    Receipt,
    /// A payment of an open invoice failed.
    PaymentFailed,
    /// The subscription is suspended (overdue, disputed payment).
    Suspended,
    /// A suspension is lifted.
    Resumed,
    /// The subscription ended.
    Cancelled,
    /// The order could not be provisioned (and was refunded).
    ProvisioningFailed,
    /// A renewal invoice was issued: what is due, and when.
    InvoiceIssued,
    /// A renewal is unpaid after its due date; suspension follows after the grace days.
    PastDue,
    /// A link to sign in to the customer portal (its facts name the link, never its token).
    SignInLink,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Self::Receipt,
        Self::PaymentFailed,
        Self::Suspended,
        Self::Resumed,
        Self::Cancelled,
        Self::ProvisioningFailed,
        Self::InvoiceIssued,
        Self::PastDue,
        Self::SignInLink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::PaymentFailed => "payment_failed",
            Self::Suspended => "suspended",
            Self::Resumed => "resumed",
            Self::Cancelled => "cancelled",
            Self::ProvisioningFailed => "provisioning_failed",
            Self::InvoiceIssued => "invoice_issued",
            Self::PastDue => "past_due",
            Self::SignInLink => "sign_in_link",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The receipt for `invoice`, paid and fulfilled for `subscription`: its number, lines and total,
/// and whether a mailbox password was generated (the mail says where to set it, never what it is).
/// One statement: it runs in the fulfilment of every paid invoice.
pub async fn receipt(db: impl PgExecutor<'_>, invoice: &Invoice, subscription: Uuid) -> Result<(), LedgerError> {
    let facts = json!({
        "invoice": invoice.number, "total": invoice.total.to_string(), "currency": invoice.currency,
        "renewal": invoice.period_start.is_some(),
    });
    let event = format!("invoice:{}", invoice.id);
    about_subscription(db, subscription, Kind::Receipt, &event, facts, Some(invoice.id)).await
}

/// A renewal invoice of `subscription` was issued: its number, lines, total and due date.
pub async fn invoice_issued(db: impl PgExecutor<'_>, invoice: &Invoice, subscription: Uuid) -> Result<(), LedgerError> {
    let facts = json!({
        "invoice": invoice.number, "total": invoice.total.to_string(), "currency": invoice.currency,
        "due": invoice.due_at.map(|d| d.format("%Y-%m-%d").to_string()),
    });
    let event = format!("invoice:{}", invoice.id);
    about_open_invoice(db, subscription, Kind::InvoiceIssued, &event, facts, Some(invoice.id), invoice.id).await
}

/// The renewal `invoice` of `subscription` is unpaid after its due date (told once per invoice).
pub async fn past_due(db: impl PgExecutor<'_>, invoice: &Invoice, subscription: Uuid) -> Result<(), LedgerError> {
    let facts = json!({
        "invoice": invoice.number, "total": invoice.total.to_string(), "currency": invoice.currency,
        "due": invoice.due_at.map(|d| d.format("%Y-%m-%d").to_string()),
    });
    let event = format!("invoice:{}", invoice.id);
    about_open_invoice(db, subscription, Kind::PastDue, &event, facts, None, invoice.id).await
}

/// A link to sign in to the portal, for the customer at `recipient`: its facts name the link and
/// when it expires, never its token (the mail worker signs it again when it sends).
pub async fn sign_in_link(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    customer: Uuid,
    recipient: &str,
    link: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let facts = json!({"link": link, "expires": expires_at.format("%Y-%m-%d %H:%M UTC").to_string()});
    sqlx::query(
        "INSERT INTO notifications (tenant_id, customer_id, kind, event_key, recipient, facts) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(customer)
    .bind(Kind::SignInLink.as_str())
    .bind(format!("sign_in_link:{link}"))
    .bind(recipient)
    .bind(Json(facts))
    .execute(db)
    .await?;
    Ok(())
}

/// The subscription is suspended for `reason` (`Overdue`, `Dispute`); `event` names what caused it
/// (the overdue invoice, the dispute), so a later suspension is told again and a repeated one not.
pub async fn suspended(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    reason: &str,
    event: &str,
) -> Result<(), LedgerError> {
    about_subscription(db, subscription, Kind::Suspended, event, json!({"reason": reason}), None).await
}

/// A suspension is lifted; `event` names what lifted it (the renewal paid, the dispute won).
pub async fn resumed(db: impl PgExecutor<'_>, subscription: Uuid, event: &str) -> Result<(), LedgerError> {
    about_subscription(db, subscription, Kind::Resumed, event, json!({}), None).await
}

/// The subscription ended (it never comes back: one mail per subscription), `why` in words.
pub async fn cancelled(db: impl PgExecutor<'_>, subscription: Uuid, why: &str) -> Result<(), LedgerError> {
    let event = format!("subscription:{subscription}");
    about_subscription(db, subscription, Kind::Cancelled, &event, json!({"reason": why}), None).await
}

/// The subscription could not be provisioned; `refunded` is the invoice whose payments were given
/// back (the amount refunded is read from them), None when nothing was refunded.
pub async fn provisioning_failed(
    tx: &mut sqlx::PgConnection,
    subscription: Uuid,
    refunded: Option<&Invoice>,
) -> Result<(), LedgerError> {
    let refund = match refunded {
        Some(invoice) => {
            let amount: Option<rust_decimal::Decimal> =
                sqlx::query_scalar("SELECT sum(refunded_amount) FROM payments WHERE invoice_id = $1 AND currency = $2")
                    .bind(invoice.id)
                    .bind(&invoice.currency)
                    .fetch_one(&mut *tx)
                    .await?;
            json!({"refund": amount.map(|a| a.to_string()), "currency": invoice.currency, "invoice": invoice.number})
        }
        None => json!({"refund": null}),
    };
    let event = format!("subscription:{subscription}");
    about_subscription(&mut *tx, subscription, Kind::ProvisioningFailed, &event, refund, None).await
}

/// Writes a notification of `kind` about `subscription` to its customer, with the product's name,
/// the domain and, given an invoice, its lines added to `facts`; nothing when this event was told
/// already.
async fn about_subscription(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    kind: Kind,
    event: &str,
    facts: Value,
    lines_of: Option<Uuid>,
) -> Result<(), LedgerError> {
    write(db, subscription, kind, event, facts, lines_of, None).await
}

/// As `about_subscription`, about the open invoice `pay_of`: its pay address (`payUrl`) added to
/// the facts.
async fn about_open_invoice(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    kind: Kind,
    event: &str,
    facts: Value,
    lines_of: Option<Uuid>,
    pay_of: Uuid,
) -> Result<(), LedgerError> {
    write(db, subscription, kind, event, facts, lines_of, Some(pay_of)).await
}

async fn write(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    kind: Kind,
    event: &str,
    facts: Value,
    lines_of: Option<Uuid>,
    pay_of: Option<Uuid>,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO notifications (tenant_id, customer_id, kind, event_key, recipient, facts) \
         SELECT s.tenant_id, s.customer_id, $2, $3, c.email, \
                jsonb_build_object('product', p.name, 'domain', s.domain, \
                                   'mailboxPassword', s.resources::text LIKE '%passwordSecretRef%') || $4 \
                || CASE WHEN $5::uuid IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('lines', \
                     (SELECT coalesce(jsonb_agg(jsonb_build_object('description', l.description, \
                                                                   'amount', l.amount::text) ORDER BY l.position), '[]') \
                        FROM invoice_lines l WHERE l.invoice_id = $5)) END \
                || jsonb_strip_nulls(jsonb_build_object('payUrl', pay_url($6))) \
           FROM subscriptions s JOIN customers c ON c.id = s.customer_id JOIN products p ON p.id = s.product_id \
          WHERE s.id = $1 \
         ON CONFLICT (kind, event_key, recipient) DO NOTHING",
    )
    .bind(subscription)
    .bind(kind.as_str())
    .bind(event)
    .bind(Json(facts))
    .bind(lines_of)
    .bind(pay_of)
    .execute(db)
    .await?;
    Ok(())
}

/// A tenant's look in its mails; unset parts fall back to its name, a no-reply sender of its own,
/// the sender as support address and no logo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    pub name: String,
    pub sender: String,
    pub support: String,
    pub logo_url: Option<String>,
}

/// A notification to send, claimed, with its tenant's branding.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub message_id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub facts: Value,
    pub attempts: i32,
    pub branding: Branding,
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: i64,
    message_id: Uuid,
    kind: String,
    recipient: String,
    facts: Json<Value>,
    attempts: i32,
    tenant_slug: String,
    tenant_name: String,
    mail_from: Option<String>,
    support_email: Option<String>,
    logo_url: Option<String>,
}

impl From<PendingRow> for Pending {
    fn from(r: PendingRow) -> Self {
        let sender = r.mail_from.unwrap_or_else(|| format!("no-reply@{}.invalid", r.tenant_slug));
        Self {
            id: r.id,
            message_id: r.message_id,
            kind: r.kind,
            recipient: r.recipient,
            facts: r.facts.0,
            attempts: r.attempts,
            branding: Branding {
                name: r.tenant_name,
                support: r.support_email.unwrap_or_else(|| sender.clone()),
                sender,
                logo_url: r.logo_url,
            },
        }
    }
}

/// The unsent notification due the longest, claimed until the transaction ends (another lane or
/// bridge replica skips it while it is being sent).
pub async fn claim_due(tx: &mut sqlx::PgConnection) -> Result<Option<Pending>, LedgerError> {
    let row: Option<PendingRow> = sqlx::query_as(
        "SELECT n.id, n.message_id, n.kind, n.recipient, n.facts, n.attempts, t.slug AS tenant_slug, t.name AS tenant_name, \
                t.mail_from, t.support_email, t.logo_url \
           FROM notifications n JOIN tenants t ON t.id = n.tenant_id \
          WHERE n.sent_at IS NULL AND n.failed_at IS NULL AND n.next_attempt_at <= now() \
          ORDER BY n.next_attempt_at, n.id LIMIT 1 FOR UPDATE OF n SKIP LOCKED",
    )
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Pending::from))
}

/// The claimed notification was accepted by the mail server.
pub async fn sent(db: impl PgExecutor<'_>, id: i64) -> Result<(), LedgerError> {
    sqlx::query(
        "UPDATE notifications SET sent_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// A failed attempt at the claimed notification: tried again after a backoff (doubling from 1 s
/// to 5 min), or never again when the server refused it for good (`permanent`). When it is due next.
pub async fn failed(
    db: impl PgExecutor<'_>,
    id: i64,
    error: &str,
    permanent: bool,
) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    Ok(sqlx::query_scalar(
        "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
           failed_at = CASE WHEN $3 THEN clock_timestamp() END, \
           next_attempt_at = clock_timestamp() + make_interval(secs => least($4, power(2, least(attempts, 30)))) \
         WHERE id = $1 RETURNING CASE WHEN failed_at IS NULL THEN next_attempt_at END",
    )
    .bind(id)
    .bind(&error)
    .bind(permanent)
    .bind(MAX_BACKOFF_SECS)
    .fetch_one(db)
    .await?)
}

/// When the first unsent notification waiting for its next attempt is due; None when none waits.
/// One due now is left out: it is being sent (claimed), and its lane goes on by itself.
pub async fn next_due(db: impl PgExecutor<'_>) -> Result<Option<DateTime<Utc>>, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT min(next_attempt_at) FROM notifications \
         WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at > now()",
    )
    .fetch_one(db)
    .await?)
}

/// A notification as staff see it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub id: i64,
    pub customer_id: Uuid,
    pub kind: String,
    pub event_key: String,
    pub recipient: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

const LISTED: &str = "id, customer_id, kind, event_key, recipient, created_at, attempts, last_error, next_attempt_at, \
                      sent_at, failed_at";

/// The customer's notifications, newest first.
pub async fn of_customer(db: impl PgExecutor<'_>, customer: Uuid) -> Result<Vec<Listed>, LedgerError> {
    Ok(sqlx::query_as(super::sql!(
        "SELECT {LISTED} FROM notifications WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500"
    ))
    .bind(customer)
    .fetch_all(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Listed, LedgerError> {
    sqlx::query_as(super::sql!("SELECT {LISTED} FROM notifications WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("notification {id}")))
}

/// Offers a notification that was sent or refused for good once more, due now, as a new message
/// (a new Message-ID: a mail system may drop a message whose Message-ID it has seen) and wakes
/// the delivery worker; None when it is still waiting to be sent (nothing to resend).
pub async fn requeue(tx: &mut sqlx::PgConnection, id: i64) -> Result<Option<Listed>, LedgerError> {
    let requeued: Option<Listed> = sqlx::query_as(super::sql!(
        "UPDATE notifications SET sent_at = NULL, failed_at = NULL, last_error = NULL, next_attempt_at = now(), \
                message_id = gen_random_uuid() \
          WHERE id = $1 AND (sent_at IS NOT NULL OR failed_at IS NOT NULL) RETURNING {LISTED}"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if requeued.is_some() {
        sqlx::query("SELECT pg_notify('mpanel_notification', '')").execute(&mut *tx).await?;
    }
    Ok(requeued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("welcome"), None);
    }
}
