//! The ledger's connection pool and its migrations (`billing-bridge/migrations`).

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects to the ledger database and brings its schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let pool = open(url, max_connections).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Connects to the ledger database as it is (a runtime role may not change the schema).
pub async fn open(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10)).connect(url).await
}
