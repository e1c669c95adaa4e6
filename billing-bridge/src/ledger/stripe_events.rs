//! Stripe's events as the ledger keeps them: each id once, with its payload, in the transaction
//! that applied it.

use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;

use super::LedgerError;

/// Whether the event `id` is in the ledger already (committed).
pub async fn seen(db: impl PgExecutor<'_>, id: &str) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM stripe_events WHERE id = $1)").bind(id).fetch_one(db).await?)
}

/// Records the event; false when it was recorded before (a concurrent delivery of the same event
/// waits on the key, then finds it taken).
pub async fn record(
    db: impl PgExecutor<'_>,
    id: &str,
    kind: &str,
    created: i64,
    payload: &Value,
) -> Result<bool, LedgerError> {
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (id, type, created, payload) VALUES ($1, $2, to_timestamp($3), $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(created as f64)
    .bind(Json(payload))
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether Stripe has told of the close of `dispute` (`du_…`) already.
pub async fn dispute_closed(db: impl PgExecutor<'_>, dispute: &str) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM stripe_events WHERE type = 'charge.dispute.closed' \
         AND payload #>> '{data,object,id}' = $1)",
    )
    .bind(dispute)
    .fetch_one(db)
    .await?)
}
