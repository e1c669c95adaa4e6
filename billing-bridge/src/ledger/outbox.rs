//! The outbox: what the Kubernetes side must be told, written in the transaction that changed the
//! ledger, worked off in order by `outbox_worker`.

use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;
use super::work_attempts::Worker;
use crate::lanes::Order;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Apply the subscription's resource as the ledger now says.
    Apply,
    /// Delete the subscription's resource.
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub subscription_id: Uuid,
    pub action: String,
    pub attempts: i32,
}

impl Entry {
    pub fn action(&self) -> Action {
        if self.action == "delete" { Action::Delete } else { Action::Apply }
    }
}

pub async fn enqueue(db: impl PgExecutor<'_>, subscription: Uuid, action: Action) -> Result<(), LedgerError> {
    let queued = sqlx::query(
        "INSERT INTO outbox (subscription_id, action, customer_id) \
         SELECT id, $2, customer_id FROM subscriptions WHERE id = $1",
    )
    .bind(subscription)
    .bind(action.as_str())
    .execute(db)
    .await?
    .rows_affected();
    if queued == 0 {
        return Err(LedgerError::NotFound(format!("subscription {subscription}")));
    }
    Ok(())
}

/// The next pending entry, claimed (locked until the transaction ends; another worker or bridge
/// replica skips it): entries of one subscription come out in the order written, one at a time, and
/// an entry waiting for its next attempt holds back the later entries of its subscription only.
/// In `order`: by turns, the first pending entry of the customer with the fewest pending comes
/// first (then the oldest of all), so a customer's single entry is not held behind another's burst.
pub async fn next(tx: &mut sqlx::PgConnection, order: Order) -> Result<Option<Entry>, LedgerError> {
    const OLDEST: (&str, &str) = ("outbox o", "o.id");
    const TURNS: (&str, &str) = (
        "outbox o JOIN (SELECT min(id) AS head, count(*) AS queued FROM outbox WHERE done_at IS NULL \
         GROUP BY customer_id) h ON h.head = o.id",
        "h.queued, o.id",
    );
    super::claim_first(tx, order, TURNS, OLDEST, |from, order_by| {
        format!(
            "SELECT id, subscription_id, action, attempts FROM {from} WHERE o.done_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.subscription_id = o.subscription_id \
                             AND e.done_at IS NULL AND e.id < o.id) \
             AND {} ORDER BY {order_by} LIMIT 1 FOR UPDATE OF o SKIP LOCKED",
            Worker::Outbox.not_waiting("o.id::text")
        )
    })
    .await
}

pub async fn done(db: impl PgExecutor<'_>, entry: &Entry) -> Result<(), LedgerError> {
    sqlx::query("UPDATE outbox SET done_at = clock_timestamp(), attempts = attempts + 1 WHERE id = $1")
        .bind(entry.id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn failed(db: impl PgExecutor<'_>, entry: &Entry, error: &str) -> Result<(), LedgerError> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(entry.id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// Whether a deletion of the subscription's resource was ever queued (carried out or not).
pub async fn delete_queued(db: impl PgExecutor<'_>, subscription: Uuid) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE subscription_id = $1 AND action = 'delete')")
        .bind(subscription)
        .fetch_one(db)
        .await?)
}

pub async fn pending(db: impl PgExecutor<'_>) -> Result<i64, LedgerError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetch_one(db).await?)
}
