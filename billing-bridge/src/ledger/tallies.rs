//! How many subscriptions and invoices the ledger holds by state, and what is owed: the numbers
//! behind the bridge's ledger gauges.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tallies {
    /// (status, count)
    pub subscriptions: Vec<(String, i64)>,
    pub invoices: Vec<InvoiceTally>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceTally {
    pub status: String,
    pub currency: String,
    pub count: i64,
    /// What is still to be paid on the issued invoices (their totals less the payments they kept).
    pub outstanding: f64,
}

/// The tallies of `tenant`.
pub async fn of_tenant(db: impl PgExecutor<'_> + Copy, tenant: Uuid) -> Result<Tallies, LedgerError> {
    let subscriptions = sqlx::query_as::<_, (String, i64)>(
        "SELECT status, count(*) FROM subscriptions WHERE tenant_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let invoices = sqlx::query_as::<_, (String, String, i64, f64)>(
        "SELECT i.status, i.currency, count(*), \
                coalesce(sum(i.total - coalesce(p.kept, 0)) FILTER (WHERE i.status = 'issued'), 0)::float8 \
           FROM invoices i \
           LEFT JOIN (SELECT invoice_id, sum(amount - refunded_amount) AS kept FROM payments \
                       WHERE status IN ('succeeded', 'refunded') GROUP BY invoice_id) p ON p.invoice_id = i.id \
          WHERE i.tenant_id = $1 \
          GROUP BY i.status, i.currency ORDER BY i.status, i.currency",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|(status, currency, count, outstanding)| InvoiceTally { status, currency, count, outstanding })
    .collect();
    Ok(Tallies { subscriptions, invoices })
}
