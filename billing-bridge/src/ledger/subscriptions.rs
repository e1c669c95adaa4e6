//! Subscriptions in the ledger. The allowed status changes are a rule of the database; a function
//! here changes a subscription only from the statuses it names, and says whether it did.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Cycle, LedgerError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Subscription {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub customer_id: Uuid,
    pub product_id: Uuid,
    pub order_id: Uuid,
    pub cycle: String,
    pub status: String,
    pub namespace: String,
    pub resource_name: String,
    pub domain: Option<String>,
    pub resources: Json<Value>,
    pub suspension_reason: Option<String>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub activated_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub provisioning_phase: Option<String>,
    pub provisioning_message: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    /// Where its periods count from: the first period's start. Every period ends a whole number of
    /// cycles after it (`periods::end_after`), so a day clamped in a short month is not carried on.
    pub fn period_anchor(&self) -> Option<DateTime<Utc>> {
        self.activated_at.or(self.current_period_start)
    }

    /// Cancelled or expired: it never comes back, and has no resource.
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "cancelled" | "expired")
    }
}

/// What the customer of a subscription paid for its domains, counted as a registrar counts a
/// registration: from the order's date, the first invoice's term and then every paid renewal that
/// billed them (with mixed cycles, a monthly subscription's domains are billed once a year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidTerm {
    pub ordered_at: DateTime<Utc>,
    /// The cycle the order's domain products are billed in; None when it has none.
    pub domain_cycle: Option<Cycle>,
    /// Renewal invoices paid (not void, not refunded) with a domain product's line.
    pub domain_renewals_paid: u32,
}

pub async fn paid_term(db: &mut sqlx::PgConnection, sub: &Subscription) -> Result<PaidTerm, LedgerError> {
    let (ordered_at, renewals): (DateTime<Utc>, i64) = sqlx::query_as(
        "SELECT o.created_at, (SELECT count(*) FROM invoices i WHERE i.subscription_id = $1 \
                                AND i.period_start IS NOT NULL AND i.status = 'paid' \
                                AND EXISTS (SELECT 1 FROM invoice_lines l JOIN products p ON p.id = l.product_id \
                                            WHERE l.invoice_id = i.id AND p.type = 'domain')) \
         FROM orders o WHERE o.id = $2",
    )
    .bind(sub.id)
    .bind(sub.order_id)
    .fetch_optional(&mut *db)
    .await?
    .ok_or_else(|| LedgerError::NotFound(format!("order {} of subscription {}", sub.order_id, sub.id)))?;
    let cycles: Vec<String> = sqlx::query_scalar(
        "SELECT oi.cycle FROM order_items oi JOIN products p ON p.id = oi.product_id \
         WHERE oi.order_id = $1 AND p.type = 'domain'",
    )
    .bind(sub.order_id)
    .fetch_all(&mut *db)
    .await?;
    let cycles = cycles.iter().map(|c| c.parse::<Cycle>()).collect::<Result<Vec<_>, _>>()?;
    Ok(PaidTerm {
        ordered_at,
        domain_cycle: crate::periods::shortest(cycles),
        domain_renewals_paid: u32::try_from(renewals).unwrap_or(u32::MAX),
    })
}

pub struct New<'a> {
    pub tenant: Uuid,
    pub customer: Uuid,
    pub product: Uuid,
    pub order: Uuid,
    pub cycle: &'a str,
    pub namespace: &'a str,
    pub resource_name: &'a str,
    pub domain: Option<&'a str>,
    pub resources: &'a Value,
}

pub const COLUMNS: &str = "id, tenant_id, customer_id, product_id, order_id, cycle, status, namespace, resource_name, domain, \
                           resources, suspension_reason, current_period_start, current_period_end, \
                           cancel_at_period_end, activated_at, ended_at, provisioning_phase, \
                           provisioning_message, created_at";

/// The order's subscription, created if it has none yet (one per order, whoever asks twice).
pub async fn create_for_order(tx: &mut sqlx::PgConnection, new: &New<'_>) -> Result<Subscription, LedgerError> {
    sqlx::query(
        "INSERT INTO subscriptions (tenant_id, customer_id, product_id, order_id, cycle, namespace, resource_name, \
         domain, resources) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(new.tenant)
    .bind(new.customer)
    .bind(new.product)
    .bind(new.order)
    .bind(new.cycle)
    .bind(new.namespace)
    .bind(new.resource_name)
    .bind(new.domain)
    .bind(Json(new.resources))
    .execute(&mut *tx)
    .await?;
    by_order(&mut *tx, new.order).await
}

/// Running subscriptions whose period ends by `now`: cancelled at period end and past it, or within
/// their product's renewal notice with no renewal invoice for the next period yet.
pub async fn period_ending_by(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Vec<Uuid>, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT s.id FROM subscriptions s JOIN products p ON p.id = s.product_id \
         WHERE s.status IN ('active', 'past_due', 'suspended') AND s.current_period_end IS NOT NULL \
           AND CASE WHEN s.cancel_at_period_end THEN s.current_period_end <= $1 \
               ELSE s.current_period_end - make_interval(days => p.renewal_notice_days) <= $1 \
                    AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.subscription_id = s.id AND i.status <> 'void' \
                                    AND i.period_start = s.current_period_end) END",
    )
    .bind(now)
    .fetch_all(db)
    .await?)
}

/// The customer's subscriptions that have (or are getting) a resource.
pub async fn running_of_customer(db: impl PgExecutor<'_>, customer: Uuid) -> Result<Vec<Uuid>, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM subscriptions WHERE customer_id = $1 \
         AND status IN ('pending_activation', 'active', 'past_due', 'suspended')",
    )
    .bind(customer)
    .fetch_all(db)
    .await?)
}

pub async fn by_order(db: impl PgExecutor<'_>, order: Uuid) -> Result<Subscription, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM subscriptions WHERE order_id = $1"))
        .bind(order)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("subscription of order {order}")))
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Subscription, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM subscriptions WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("subscription {id}")))
}

/// The subscription, locked until the transaction ends.
pub async fn lock(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Subscription, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM subscriptions WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("subscription {id}")))
}

/// The subscription, locked until the transaction ends, unless another transaction (a worker of
/// another bridge replica) holds it now: then None, and that one does the work. Row locks that
/// only guard references to it (an outbox entry being written) do not count.
pub async fn claim(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Subscription>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM subscriptions WHERE id = $1 FOR NO KEY UPDATE SKIP LOCKED"))
        .bind(id)
        .fetch_optional(tx)
        .await?)
}

pub async fn list(db: impl PgExecutor<'_>, status: Option<&str>) -> Result<Vec<Subscription>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM subscriptions WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC LIMIT 500"
    ))
    .bind(status)
    .fetch_all(db)
    .await?)
}

/// The subscription is on plan `product` now, its resources rendered for it.
pub async fn set_plan(
    db: impl PgExecutor<'_>,
    id: Uuid,
    product: Uuid,
    resources: &serde_json::Value,
) -> Result<(), LedgerError> {
    sqlx::query("UPDATE subscriptions SET product_id = $2, resources = $3 WHERE id = $1")
        .bind(id)
        .bind(product)
        .bind(Json(resources))
        .execute(db)
        .await?;
    Ok(())
}

/// The customer's subscriptions, newest first.
pub async fn of_customer(db: impl PgExecutor<'_>, customer: Uuid) -> Result<Vec<Subscription>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM subscriptions WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 500"
    ))
    .bind(customer)
    .fetch_all(db)
    .await?)
}

/// Moves the subscription to `to` if it is in one of `from`; the changed row, or None.
pub async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: &[&str],
    to: &str,
) -> Result<Option<Subscription>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "UPDATE subscriptions SET status = $3, \
           ended_at = CASE WHEN $3 IN ('cancelled', 'expired') THEN now() ELSE ended_at END \
         WHERE id = $1 AND status = ANY($2) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(from)
    .bind(to)
    .fetch_optional(db)
    .await?)
}

/// Activates a pending subscription: its first period starts now.
pub async fn activate(
    db: impl PgExecutor<'_>,
    id: Uuid,
    at: DateTime<Utc>,
    period_end: DateTime<Utc>,
) -> Result<Option<Subscription>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "UPDATE subscriptions SET status = 'active', activated_at = $2, current_period_start = $2, \
         current_period_end = $3 WHERE id = $1 AND status = 'pending_activation' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(at)
    .bind(period_end)
    .fetch_optional(db)
    .await?)
}

/// Moves the subscription on to the period `start`..`end`; an ended (cancelled, expired)
/// subscription keeps the period it ended in, whatever is paid on it afterwards.
pub async fn set_period(
    db: impl PgExecutor<'_>,
    id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), LedgerError> {
    sqlx::query(
        "UPDATE subscriptions SET current_period_start = $2, current_period_end = $3 \
         WHERE id = $1 AND status NOT IN ('cancelled', 'expired')",
    )
    .bind(id)
    .bind(start)
    .bind(end)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_suspension(db: impl PgExecutor<'_>, id: Uuid, reason: Option<&str>) -> Result<(), LedgerError> {
    sqlx::query("UPDATE subscriptions SET suspension_reason = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_cancel_at_period_end(db: impl PgExecutor<'_>, id: Uuid, value: bool) -> Result<(), LedgerError> {
    sqlx::query("UPDATE subscriptions SET cancel_at_period_end = $2 WHERE id = $1")
        .bind(id)
        .bind(value)
        .execute(db)
        .await?;
    Ok(())
}

/// What the Subscription resource last reported; true when it changed.
pub async fn observe_provisioning(
    db: impl PgExecutor<'_>,
    id: Uuid,
    phase: Option<&str>,
    message: Option<&str>,
) -> Result<bool, LedgerError> {
    let changed = sqlx::query(
        "UPDATE subscriptions SET provisioning_phase = $2, provisioning_message = $3 WHERE id = $1 \
         AND (provisioning_phase, provisioning_message) IS DISTINCT FROM ($2, $3)",
    )
    .bind(id)
    .bind(phase)
    .bind(message)
    .execute(db)
    .await?
    .rows_affected();
    Ok(changed > 0)
}
