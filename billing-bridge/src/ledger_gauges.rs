//! Keeps the bridge's ledger gauges current: subscriptions by status, invoices by status and
//! currency, and what is owed on issued invoices, read from the ledger every `every`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::tallies;
use crate::metrics::Metrics;

pub async fn run(pool: PgPool, tenant: Uuid, metrics: Arc<Metrics>, every: Duration) {
    loop {
        match tallies::of_tenant(&pool, tenant).await {
            Ok(t) => metrics.set_tallies(&t),
            Err(e) => tracing::warn!(error = %e, "reading the ledger's tallies for the gauges"),
        }
        tokio::time::sleep(every).await;
    }
}
