//! The audit log: who did what to which ledger object.

use serde_json::Value;
use sqlx::PgExecutor;

use super::LedgerError;

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
