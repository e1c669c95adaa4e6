//! Failing work: an item a worker tried and could not do yet, with its attempts, its last error
//! and when it is tried next (backoff doubling from 1 s to 5 min). A worker leaves an item alone
//! while it waits and works on every other; the row goes when the item succeeds. The audit log gets
//! a row on the first failure and on every change of error, not one per retry.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::{LedgerError, audit};

/// The longest wait between two attempts at one item, in seconds.
pub const MAX_BACKOFF_SECS: f64 = 300.0;
/// Error words kept per item; the rest is cut.
const MAX_ERROR_CHARS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Worker {
    Outbox,
    Fulfilment,
    Activation,
    Lifecycle,
}

impl Worker {
    pub const ALL: [Worker; 4] = [Self::Outbox, Self::Fulfilment, Self::Activation, Self::Lifecycle];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Fulfilment => "fulfilment",
            Self::Activation => "activation",
            Self::Lifecycle => "lifecycle",
        }
    }

    /// A query condition that is true unless the item keyed by the SQL expression `key` (text) of
    /// this worker waits for its next attempt.
    pub fn not_waiting(self, key: &str) -> String {
        format!(
            "NOT EXISTS (SELECT 1 FROM work_attempts w WHERE w.worker = '{}' AND w.item = {key} \
             AND w.next_attempt_at > now())",
            self.as_str()
        )
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Worker {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|w| w.as_str() == s).ok_or_else(|| {
            LedgerError::Invalid(format!("unknown worker {s:?}: outbox, fulfilment, activation or lifecycle"))
        })
    }
}

/// One item of a worker's work, and the ledger object its audit rows are about.
#[derive(Debug, Clone)]
pub struct Item {
    pub worker: Worker,
    pub key: String,
    pub subscription: Option<Uuid>,
    pub customer: Option<Uuid>,
    pub entity: &'static str,
    pub entity_id: String,
}

impl Item {
    /// An outbox entry of `subscription`.
    pub fn outbox(entry: i64, subscription: Uuid) -> Self {
        Self::of_subscription(Worker::Outbox, entry.to_string(), subscription)
    }

    /// A subscription's step of `worker` (activation, lifecycle).
    pub fn subscription(worker: Worker, subscription: Uuid) -> Self {
        Self::of_subscription(worker, subscription.to_string(), subscription)
    }

    /// A paid invoice to fulfil.
    pub fn invoice(id: Uuid, number: Option<&str>, customer: Uuid, subscription: Option<Uuid>) -> Self {
        Self {
            worker: Worker::Fulfilment,
            key: id.to_string(),
            subscription,
            customer: Some(customer),
            entity: "invoice",
            entity_id: number.map_or_else(|| id.to_string(), str::to_owned),
        }
    }

    fn of_subscription(worker: Worker, key: String, subscription: Uuid) -> Self {
        Self {
            worker,
            key,
            subscription: Some(subscription),
            customer: None,
            entity: "subscription",
            entity_id: subscription.to_string(),
        }
    }
}

/// Claims `item` for the rest of the transaction without locking a row (a transaction-scoped
/// advisory lock): whether this transaction holds it; another replica's claim makes it false.
pub async fn try_claim(tx: &mut sqlx::PgConnection, item: &Item) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("mpanel-{}:{}", item.worker.as_str(), item.key))
        .fetch_one(tx)
        .await?)
}

/// What a recorded failure came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// The first failure of the item, or one with another error than the last: audited.
    pub new_error: bool,
}

/// Records a failed attempt at `item` and when to try it next; audits a first or changed error.
/// The caller holds the item's claim, so no one else records it at the same time.
pub async fn failed(
    tx: &mut sqlx::PgConnection,
    item: &Item,
    reason: &str,
    error: &str,
) -> Result<Failure, LedgerError> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let before: Option<(String, String)> =
        sqlx::query_as("SELECT reason, last_error FROM work_attempts WHERE worker = $1 AND item = $2 FOR UPDATE")
            .bind(item.worker.as_str())
            .bind(&item.key)
            .fetch_optional(&mut *tx)
            .await?;
    let (attempts, next_attempt_at): (i32, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO work_attempts (worker, item, subscription_id, customer_id, attempts, reason, last_error, \
                                    next_attempt_at) \
         VALUES ($1, $2, $3, coalesce($4, (SELECT customer_id FROM subscriptions WHERE id = $3)), 1, $5, $6, \
                 clock_timestamp() + interval '1 second') \
         ON CONFLICT (worker, item) DO UPDATE SET attempts = work_attempts.attempts + 1, reason = EXCLUDED.reason, \
             last_error = EXCLUDED.last_error, last_failed_at = clock_timestamp(), \
             subscription_id = coalesce(EXCLUDED.subscription_id, work_attempts.subscription_id), \
             next_attempt_at = clock_timestamp() \
                 + make_interval(secs => least($7, power(2, least(work_attempts.attempts, 30)))) \
         RETURNING attempts, next_attempt_at",
    )
    .bind(item.worker.as_str())
    .bind(&item.key)
    .bind(item.subscription)
    .bind(item.customer)
    .bind(reason)
    .bind(&error)
    .bind(MAX_BACKOFF_SECS)
    .fetch_one(&mut *tx)
    .await?;
    let new_error = before.is_none_or(|(r, e)| r != reason || e != error);
    if new_error {
        audit::record(
            &mut *tx,
            "bridge",
            "work.failed",
            item.entity,
            &item.entity_id,
            json!({"worker": item.worker.as_str(), "item": item.key, "reason": reason, "error": error,
                   "attempts": attempts}),
        )
        .await?;
    }
    Ok(Failure { attempts, next_attempt_at, new_error })
}

/// The item succeeded: its failures are forgotten, and the audit log says it recovered after how
/// many attempts (when it had failed).
pub async fn succeeded(tx: &mut sqlx::PgConnection, item: &Item) -> Result<(), LedgerError> {
    let failed: Option<i32> =
        sqlx::query_scalar("DELETE FROM work_attempts WHERE worker = $1 AND item = $2 RETURNING attempts")
            .bind(item.worker.as_str())
            .bind(&item.key)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(attempts) = failed {
        audit::record(
            &mut *tx,
            "bridge",
            "work.recovered",
            item.entity,
            &item.entity_id,
            json!({"worker": item.worker.as_str(), "item": item.key, "failedAttempts": attempts}),
        )
        .await?;
    }
    Ok(())
}

/// Whether `item` waits for its next attempt now.
pub async fn waiting(db: impl PgExecutor<'_>, item: &Item) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM work_attempts WHERE worker = $1 AND item = $2 AND next_attempt_at > now())",
    )
    .bind(item.worker.as_str())
    .bind(&item.key)
    .fetch_one(db)
    .await?)
}

/// The keys of `worker`'s items that wait for their next attempt now.
pub async fn waiting_keys(db: impl PgExecutor<'_>, worker: Worker) -> Result<HashSet<String>, LedgerError> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT item FROM work_attempts WHERE worker = $1 AND next_attempt_at > now()")
            .bind(worker.as_str())
            .fetch_all(db)
            .await?;
    Ok(keys.into_iter().collect())
}

/// Forgets `worker`'s failing items that are due again and for which `still_to_do` (an SQL
/// condition on the row `w`) no longer holds: nothing is left to retry (an invoice refunded before
/// it was fulfilled, a subscription cancelled meanwhile). How many it forgot.
pub async fn forget_moot(db: impl PgExecutor<'_>, worker: Worker, still_to_do: &str) -> Result<u64, LedgerError> {
    Ok(sqlx::query(sql!(
        "DELETE FROM work_attempts w WHERE w.worker = $1 AND w.next_attempt_at <= now() AND NOT ({still_to_do})"
    ))
    .bind(worker.as_str())
    .execute(db)
    .await?
    .rows_affected())
}

/// As `forget_moot`, for a worker that knows every item it still has to do: forgets the due
/// items not among `to_do`.
pub async fn forget_all_but(db: impl PgExecutor<'_>, worker: Worker, to_do: &[String]) -> Result<u64, LedgerError> {
    Ok(sqlx::query("DELETE FROM work_attempts WHERE worker = $1 AND next_attempt_at <= now() AND item <> ALL($2)")
        .bind(worker.as_str())
        .bind(to_do)
        .execute(db)
        .await?
        .rows_affected())
}

/// How many failing items `worker` has.
pub async fn count(db: impl PgExecutor<'_>, worker: Worker) -> Result<i64, LedgerError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM work_attempts WHERE worker = $1")
        .bind(worker.as_str())
        .fetch_one(db)
        .await?)
}

/// A worker's failing items: how many, and when the first is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub items: i64,
    pub next_due: Option<DateTime<Utc>>,
}

pub async fn backoff(db: impl PgExecutor<'_>, worker: Worker) -> Result<Backoff, LedgerError> {
    let (items, next_due) =
        sqlx::query_as("SELECT count(*), min(next_attempt_at) FROM work_attempts WHERE worker = $1")
            .bind(worker.as_str())
            .fetch_one(db)
            .await?;
    Ok(Backoff { items, next_due })
}

/// How long a worker sleeps when its first failing item is `due` and nothing else wakes it: until
/// then (at least 100 ms), at most `scan`.
pub fn wait_for(due: Option<DateTime<Utc>>, scan: Duration) -> Duration {
    let floor = Duration::from_millis(100);
    let Some(due) = due else { return scan };
    (due - Utc::now()).to_std().unwrap_or_default().clamp(floor, scan.max(floor))
}

/// A failing item as the admin API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Failing {
    pub worker: String,
    pub item: String,
    pub subscription_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub customer_handle: Option<String>,
    pub attempts: i32,
    pub reason: String,
    pub last_error: String,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
}

/// Failing items, the longest failing first; of one worker and one customer when given.
pub async fn failing(
    db: impl PgExecutor<'_>,
    worker: Option<Worker>,
    customer: Option<Uuid>,
) -> Result<Vec<Failing>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT w.worker, w.item, w.subscription_id, w.customer_id, c.handle AS customer_handle, w.attempts, \
                w.reason, w.last_error, w.first_failed_at, w.last_failed_at, w.next_attempt_at \
         FROM work_attempts w LEFT JOIN customers c ON c.id = w.customer_id \
         WHERE ($1::text IS NULL OR w.worker = $1) AND ($2::uuid IS NULL OR w.customer_id = $2) \
         ORDER BY w.first_failed_at, w.worker, w.item LIMIT 500",
    )
    .bind(worker.map(Worker::as_str))
    .bind(customer)
    .fetch_all(db)
    .await?)
}
