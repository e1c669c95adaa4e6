//! The audit log: who did what to which ledger object.

use serde_json::Value;
use sqlx::PgExecutor;

use super::LedgerError;

/// Whether an audit row of `action` about the entity is there already.
pub async fn recorded(
    db: impl PgExecutor<'_>,
    action: &str,
    entity: &str,
    entity_id: &str,
) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM audit_log WHERE action = $1 AND entity = $2 AND entity_id = $3)",
    )
    .bind(action)
    .bind(entity)
    .bind(entity_id)
    .fetch_one(db)
    .await?)
}

pub async fn record(
    db: impl PgExecutor<'_>,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    detail: Value,
) -> Result<(), LedgerError> {
    sqlx::query("INSERT INTO audit_log (actor, action, entity, entity_id, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(actor)
        .bind(action)
        .bind(entity)
        .bind(entity_id)
        .bind(sqlx::types::Json(detail))
        .execute(db)
        .await?;
    Ok(())
}
