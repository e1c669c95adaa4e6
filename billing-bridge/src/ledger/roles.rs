//! The database roles the bridge runs as.

use sqlx::PgPool;

/// As the tables' owner: grants `role` what the bridge uses at run time, and nothing more
/// (`grant_bridge_runtime` in the migrations).
pub async fn grant_runtime(owner: &PgPool, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT grant_bridge_runtime($1)").bind(role).execute(owner).await?;
    Ok(())
}
