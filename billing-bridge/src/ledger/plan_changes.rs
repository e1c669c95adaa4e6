//! Plan changes (migration 0019): one waiting change per subscription; an upgrade names its
//! proration invoice and is applied when that invoice is fulfilled, a downgrade is applied when
//! the first renewal after it is.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PlanChange {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub from_product: Uuid,
    pub to_product: Uuid,
    pub direction: String,
    pub invoice_id: Option<Uuid>,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, subscription_id, from_product, to_product, direction, invoice_id, requested_by, \
                       created_at, applied_at, withdrawn_at";

/// Records a change; a change still waiting for the subscription is a conflict. An upgrade whose
/// invoice was voided no longer waits.
pub async fn record(
    tx: &mut sqlx::PgConnection,
    subscription: Uuid,
    from: Uuid,
    to: Uuid,
    invoice: Option<Uuid>,
    requested_by: &str,
) -> Result<PlanChange, LedgerError> {
    sqlx::query(
        "UPDATE plan_changes c SET withdrawn_at = now() FROM invoices i \
          WHERE c.subscription_id = $1 AND c.applied_at IS NULL AND c.withdrawn_at IS NULL \
            AND i.id = c.invoice_id AND i.status = 'void'",
    )
    .bind(subscription)
    .execute(&mut *tx)
    .await?;
    let direction = if invoice.is_some() { "upgrade" } else { "downgrade" };
    sqlx::query_as(sql!(
        "INSERT INTO plan_changes (subscription_id, from_product, to_product, direction, invoice_id, requested_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(subscription)
    .bind(from)
    .bind(to)
    .bind(direction)
    .bind(invoice)
    .bind(requested_by)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| LedgerError::Conflict(format!("subscription {subscription} has a plan change waiting already")))
}

/// The waiting change of the subscription, if any.
pub async fn waiting(db: impl PgExecutor<'_>, subscription: Uuid) -> Result<Option<PlanChange>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM plan_changes WHERE subscription_id = $1 AND applied_at IS NULL AND withdrawn_at IS NULL"
    ))
    .bind(subscription)
    .fetch_optional(db)
    .await?)
}

/// The waiting upgrade that `invoice` bills, if it is one.
pub async fn upgrade_of_invoice(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Option<PlanChange>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM plan_changes WHERE invoice_id = $1 AND applied_at IS NULL AND withdrawn_at IS NULL"
    ))
    .bind(invoice)
    .fetch_optional(db)
    .await?)
}

pub async fn applied(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), LedgerError> {
    sqlx::query("UPDATE plan_changes SET applied_at = now() WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Every change of the subscription, newest first.
pub async fn of_subscription(db: impl PgExecutor<'_>, subscription: Uuid) -> Result<Vec<PlanChange>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM plan_changes WHERE subscription_id = $1 ORDER BY created_at DESC"))
        .bind(subscription)
        .fetch_all(db)
        .await?)
}
