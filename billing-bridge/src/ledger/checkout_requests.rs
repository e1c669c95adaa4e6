//! What the ledger keeps of checkout requests: each Idempotency-Key with a digest of its request,
//! the order it made and the answer given (`checkout_requests`), and the attempts counted against
//! the per-email and per-client-address limits (`checkout_attempts`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::LedgerError;

/// An Idempotency-Key as the ledger holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyedRequest {
    pub request_sha256: Vec<u8>,
    pub order_id: Uuid,
    /// The answer given, once there is a final one; none while its order is still opening.
    pub status: Option<i16>,
    pub response: Option<Json<Value>>,
}

/// The tenant's request under `key`, if any.
pub async fn find(db: impl PgExecutor<'_>, tenant: Uuid, key: &str) -> Result<Option<KeyedRequest>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT request_sha256, order_id, status, response FROM checkout_requests \
         WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(db)
    .await?)
}

/// The Idempotency-Key request that made `order`, if one did.
pub async fn of_order(db: impl PgExecutor<'_>, order: Uuid) -> Result<Option<KeyedRequest>, LedgerError> {
    Ok(sqlx::query_as("SELECT request_sha256, order_id, status, response FROM checkout_requests WHERE order_id = $1")
        .bind(order)
        .fetch_optional(db)
        .await?)
}

/// Takes `key` for `order`, in the transaction that writes the order. False when another request
/// took it first (this waits until that one's transaction ends): the caller rolls back and
/// answers as that request.
pub async fn claim(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    key: &str,
    request_sha256: &[u8],
    order: Uuid,
) -> Result<bool, LedgerError> {
    let taken = sqlx::query(
        "INSERT INTO checkout_requests (tenant_id, idempotency_key, request_sha256, order_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(key)
    .bind(request_sha256)
    .bind(order)
    .execute(db)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Keeps the final answer for the order's key, if it has one; the first answer stays.
pub async fn answer(db: impl PgExecutor<'_>, order: Uuid, status: u16, response: &Value) -> Result<(), LedgerError> {
    sqlx::query(
        "UPDATE checkout_requests SET status = $2, response = $3, answered_at = now() \
         WHERE order_id = $1 AND status IS NULL",
    )
    .bind(order)
    .bind(status as i16)
    .bind(Json(response))
    .execute(db)
    .await?;
    Ok(())
}

/// What a checkout attempt is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The client's address (see `http::public`).
    Address,
    /// The SHA-256 of the buyer's email, normalised as customers are.
    Email,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Email => "email",
        }
    }
}

/// At most `max` attempts per `window` for `key` of `scope`; a `max` of 0 is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub scope: Scope,
    pub key: String,
    pub max: u32,
}

/// Counts one attempt against each limit, all or none. `None` when it was counted (or, for a
/// `request_key` counted before within the window, is counted already); else how long until every
/// limit it reached has room again (then nothing was counted). Rows are locked in (scope, key)
/// order, so concurrent attempts never deadlock, and the database's clock is the one every replica
/// counts by.
pub async fn count_attempt(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    limits: &[Limit],
    window: Duration,
    request_key: Option<&str>,
) -> Result<Option<Duration>, LedgerError> {
    let mut limits: Vec<&Limit> = limits.iter().filter(|l| l.max > 0).collect();
    limits.sort_by(|a, b| (a.scope, &a.key).cmp(&(b.scope, &b.key)));
    let mut wait: Option<Duration> = None;
    let mut uncounted = Vec::new();
    for limit in limits {
        // the row, locked, with only the attempts still inside the window
        let (attempts, keys, now): (Vec<DateTime<Utc>>, Vec<String>, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO checkout_attempts (tenant_id, scope, key) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, scope, key) DO UPDATE SET (attempts, request_keys) = ( \
               SELECT coalesce(array_agg(t ORDER BY t), '{}'), coalesce(array_agg(k ORDER BY t), '{}') \
               FROM unnest(checkout_attempts.attempts, checkout_attempts.request_keys) AS a(t, k) \
               WHERE t > now() - make_interval(secs => $4)) \
             RETURNING attempts, request_keys, now()",
        )
        .bind(tenant)
        .bind(limit.scope.as_str())
        .bind(&limit.key)
        .bind(window.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        if request_key.is_some_and(|k| keys.iter().any(|seen| seen == k)) {
            continue;
        }
        if let Some(until) = room_after(&attempts, limit.max, window, now) {
            wait = Some(wait.map_or(until, |w| w.max(until)));
        }
        uncounted.push(limit);
    }
    if wait.is_some() {
        return Ok(wait);
    }
    for limit in uncounted {
        sqlx::query(
            "UPDATE checkout_attempts SET attempts = attempts || now(), request_keys = request_keys || $4 \
             WHERE tenant_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(tenant)
        .bind(limit.scope.as_str())
        .bind(&limit.key)
        .bind(request_key.unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    }
    Ok(None)
}

/// With `attempts` (ascending, all inside the window) made, how long until one more fits under
/// `max` (whole seconds, at least one); `None` when it fits now.
fn room_after(attempts: &[DateTime<Utc>], max: u32, window: Duration, now: DateTime<Utc>) -> Option<Duration> {
    let over = (attempts.len() + 1).checked_sub(max as usize).filter(|n| *n > 0)?;
    // once the `over` oldest attempts have left the window, there is room for one more
    let frees_at = attempts[over - 1] + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let wait = (frees_at - now).num_milliseconds().max(0) as u64;
    Some(Duration::from_secs(wait.div_ceil(1000).max(1)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn room_comes_when_the_oldest_attempt_leaves_the_window() {
        let t0 = Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).single().unwrap_or_default();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let window = Duration::from_secs(600);
        let four: Vec<_> = (0..4).map(at).collect();
        assert_eq!(room_after(&four, 5, window, at(10)), None, "the fifth of five fits");
        let five: Vec<_> = (0..5).map(at).collect();
        assert_eq!(room_after(&five, 5, window, at(10)), Some(Duration::from_secs(590)));
        assert_eq!(
            room_after(&five, 5, window, at(599) + chrono::Duration::milliseconds(500)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(room_after(&five, 1, window, at(10)), Some(Duration::from_secs(594)), "the newest decides");
        assert_eq!(room_after(&[], 1, window, at(10)), None);
    }
}
