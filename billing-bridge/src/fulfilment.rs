//! Fulfilment: every paid invoice, whoever marked it paid, is turned into its subscription's new
//! state once, with an outbox entry for the Kubernetes side, in one transaction. A first invoice
//! creates the subscription from its order; a renewal extends the period and lifts an `Overdue`
//! suspension. Woken by the database's `mpanel_invoice_paid` notification; a periodic scan
//! catches what a lost connection missed.

use crate::ledger::sql;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::ledger::invoices::{self, Invoice};
use crate::ledger::outbox::{self, Action};
use crate::ledger::subscriptions::{self, New};
use crate::ledger::{LedgerError, audit, catalog, customers, orders};
use crate::render::{self, Placeholders};
use crate::wakeup::Wakeup;

pub const CHANNEL: &str = "mpanel_invoice_paid";

/// Fulfils every paid invoice not yet fulfilled; how many it fulfilled.
pub async fn fulfil_pending(pool: &PgPool) -> Result<usize, LedgerError> {
    let mut count = 0;
    while fulfil_next(pool).await? {
        count += 1;
    }
    Ok(count)
}

async fn fulfil_next(pool: &PgPool) -> Result<bool, LedgerError> {
    let mut tx = pool.begin().await?;
    let invoice: Option<Invoice> = sqlx::query_as(sql!(
        "SELECT {} FROM invoices WHERE status = 'paid' AND fulfilled_at IS NULL ORDER BY paid_at LIMIT 1 \
         FOR UPDATE SKIP LOCKED",
        invoices::COLUMNS
    ))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(invoice) = invoice else { return Ok(false) };
    let subscription = match (invoice.subscription_id, invoice.order_id) {
        (Some(subscription), _) => renew(&mut tx, &invoice, subscription).await?,
        (None, Some(order)) => subscribe(&mut tx, &invoice, order).await?,
        (None, None) => return Err(LedgerError::Invalid(format!("invoice {} pays for nothing", invoice.id))),
    };
    sqlx::query("UPDATE invoices SET fulfilled_at = now(), subscription_id = $2 WHERE id = $1")
        .bind(invoice.id)
        .bind(subscription)
        .execute(&mut *tx)
        .await?;
    outbox::enqueue(&mut *tx, subscription, Action::Apply).await?;
    audit::record(
        &mut *tx,
        "bridge",
        "invoice.fulfilled",
        "invoice",
        invoice.number.as_deref().unwrap_or_default(),
        json!({"subscription": subscription}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The order's first invoice: its subscription, created from the products' templates.
async fn subscribe(tx: &mut sqlx::PgConnection, invoice: &Invoice, order_id: Uuid) -> Result<Uuid, LedgerError> {
    let order = orders::get(&mut *tx, order_id).await?;
    // locks in the webhook's order: invoice, order, then customer (the subscription's key)
    orders::set_status(&mut *tx, order_id, "paid").await?;
    let customer = customers::get(&mut *tx, order.customer_id).await?;
    let items = orders::items(&mut *tx, order_id).await?;
    let primary = items.first().ok_or_else(|| LedgerError::Invalid(format!("order {order_id} has no items")))?;
    let resource_name = format!("sub-{}", &order_id.simple().to_string()[..10]);
    let placeholders = Placeholders {
        subscription: resource_name.clone(),
        customer: customer.handle.clone(),
        email: customer.email.clone(),
        domain: order.domain.clone(),
    };
    let mut templates = Vec::with_capacity(items.len());
    for item in &items {
        let product = catalog::by_id(&mut *tx, item.product_id).await?;
        templates.push(
            render::fill(&product.template.0, &placeholders)
                .map_err(|e| LedgerError::Invalid(format!("product {:?}: {e}", product.slug)))?,
        );
    }
    let resources = render::merge(&templates);
    let subscription = subscriptions::create_for_order(
        tx,
        &New {
            tenant: order.tenant_id,
            customer: customer.id,
            product: primary.product_id,
            order: order_id,
            cycle: &order.cycle,
            namespace: &customer.namespace(),
            resource_name: &resource_name,
            domain: order.domain.as_deref(),
            resources: &resources,
        },
    )
    .await?;
    tracing::info!(invoice = ?invoice.number, subscription = %subscription.id, "order paid: subscription created");
    Ok(subscription.id)
}

/// A renewal: the period it pays for is added, and an Overdue suspension is lifted (an Abuse or
/// Manual one stays until staff lift it).
async fn renew(tx: &mut sqlx::PgConnection, invoice: &Invoice, id: Uuid) -> Result<Uuid, LedgerError> {
    let subscription = subscriptions::lock(tx, id).await?;
    if let (Some(start), Some(end)) = (invoice.period_start, invoice.period_end)
        && subscription.current_period_end.is_none_or(|current| end > current)
    {
        subscriptions::set_period(&mut *tx, id, start, end).await?;
    }
    if subscription.suspension_reason.as_deref() == Some("Overdue") {
        subscriptions::set_suspension(&mut *tx, id, None).await?;
        subscriptions::transition(&mut *tx, id, &["suspended", "past_due"], "active").await?;
    } else if subscription.status == "past_due" {
        subscriptions::transition(&mut *tx, id, &["past_due"], "active").await?;
    }
    Ok(id)
}

/// Runs until the process ends: fulfils on every notification, on `kick`, and every `scan`.
pub async fn run(pool: PgPool, kick: Arc<Notify>, scan: Duration, outbox_kick: Arc<Notify>) {
    let mut wakeup = Wakeup::new(pool.clone(), CHANNEL, kick);
    loop {
        match fulfil_pending(&pool).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(invoices = n, "fulfilled paid invoices");
                outbox_kick.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, reason = e.reason(), "fulfilling paid invoices failed"),
        }
        wakeup.wait(scan).await;
    }
}
