//! Fulfilment: every paid invoice, whoever marked it paid, is turned into its subscription's new
//! state once, with an outbox entry for the Kubernetes side, in one transaction. A first invoice
//! creates the subscription from its order; a renewal extends the period and lifts an `Overdue`
//! suspension. Woken by the database's `mpanel_invoice_paid` notification; a periodic scan
//! catches what a lost connection missed.
//!
//! Each invoice is claimed (`FOR UPDATE SKIP LOCKED`) while it is fulfilled, so bridge replicas on
//! one ledger fulfil it once. An invoice that cannot be fulfilled (a template that no longer
//! renders) is recorded as failing and tried again after a backoff; the other invoices go on, and
//! only later invoices of the same subscription wait behind it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::lanes::{self, Order};
use crate::ledger::invoices::{self, Invoice};
use crate::ledger::notifications;
use crate::ledger::outbox::{self, Action};
use crate::ledger::plan_changes::{self, PlanChange};
use crate::ledger::subscriptions::{self, New};
use crate::ledger::work_attempts::{self, Item, Worker};
use crate::ledger::{LedgerError, audit, catalog, customers, orders};
use crate::metrics::Metrics;
use crate::periods;
use crate::plan_change;
use crate::render::{self, Placeholders};
use crate::wakeup::Wakeup;

pub const CHANNEL: &str = "mpanel_invoice_paid";

/// Invoices fulfilled at once (lanes); the work is the ledger's alone and quick.
const PARALLEL: usize = 4;

/// Why a paid invoice could not be fulfilled; `reason()` is stable (metrics, the admin API).
#[derive(Debug, thiserror::Error)]
pub enum FulfilmentError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("product {product:?}: {error}")]
    Template { product: String, error: String },
    #[error("order {0} has no items")]
    NoItems(Uuid),
    #[error("invoice {0} pays for nothing")]
    PaysForNothing(Uuid),
}

impl FulfilmentError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Template { .. } => "TemplateNotRendered",
            Self::NoItems(_) => "OrderHasNoItems",
            Self::PaysForNothing(_) => "InvoicePaysForNothing",
        }
    }
}

/// Claims the next ready paid invoice and fulfils it: whether there was one. A failure is recorded
/// against the invoice (backoff), not returned; an `Err` is the ledger failing.
pub async fn fulfil_next(pool: &PgPool, metrics: &Metrics, order: Order, wakeup: &Wakeup) -> Result<bool, LedgerError> {
    let mut tx = pool.begin().await?;
    let Some(invoice) = invoices::claim_to_fulfil(&mut tx, order).await? else { return Ok(false) };
    wakeup.pass_on();
    let item = Item::invoice(invoice.id, invoice.number.as_deref(), invoice.customer_id, invoice.subscription_id);
    // a savepoint: a failure undoes the attempt, not the claim or its record
    let mut attempt = tx.begin().await?;
    match fulfil(&mut attempt, &invoice).await {
        Ok(()) => {
            attempt.commit().await?;
            work_attempts::succeeded(&mut tx, &item).await?;
            tx.commit().await?;
        }
        Err(e) => {
            attempt.rollback().await?;
            let words = e.to_string();
            let failure = work_attempts::failed(&mut tx, &item, e.reason(), &words).await?;
            tx.commit().await?;
            metrics.work_failed(Worker::Fulfilment, e.reason());
            tracing::warn!(
                invoice = ?invoice.number, attempts = failure.attempts, retry_at = %failure.next_attempt_at,
                error = %words, reason = e.reason(), "paid invoice not fulfilled; the others go on"
            );
        }
    }
    Ok(true)
}

async fn fulfil(tx: &mut sqlx::PgConnection, invoice: &Invoice) -> Result<(), FulfilmentError> {
    let subscription = match (invoice.subscription_id, invoice.order_id) {
        (Some(subscription), _) => match plan_changes::upgrade_of_invoice(&mut *tx, invoice.id).await? {
            Some(change) => upgrade(tx, subscription, &change).await?,
            None => renew(tx, invoice, subscription).await?,
        },
        (None, Some(order)) => subscribe(tx, invoice, order).await?,
        (None, None) => return Err(FulfilmentError::PaysForNothing(invoice.id)),
    };
    invoices::fulfilled(&mut *tx, invoice.id, subscription).await?;
    outbox::enqueue(&mut *tx, subscription, Action::Apply).await?;
    notifications::receipt(&mut *tx, invoice, subscription).await?;
    audit::record(
        &mut *tx,
        "bridge",
        "invoice.fulfilled",
        "invoice",
        invoice.number.as_deref().unwrap_or_default(),
        json!({"subscription": subscription}),
    )
    .await?;
    Ok(())
}

/// The order's first invoice: its subscription, created from the products' templates.
async fn subscribe(tx: &mut sqlx::PgConnection, invoice: &Invoice, order_id: Uuid) -> Result<Uuid, FulfilmentError> {
    let order = orders::get(&mut *tx, order_id).await?;
    // locks in the webhook's order: invoice, order, then customer (the subscription's key)
    orders::set_status(&mut *tx, order_id, "paid").await?;
    let customer = customers::get(&mut *tx, order.customer_id).await?;
    let items = orders::items(&mut *tx, order_id).await?;
    let primary = items.first().ok_or(FulfilmentError::NoItems(order_id))?;
    let resource_name = render::resource_name(order_id);
    let product_ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let resources = render_products(tx, &order, &customer, &product_ids).await?;
    // the billing period is the shortest of the items' cycles; the longer ones renew on its ends
    let cycle = periods::shortest(items.iter().filter_map(|i| i.cycle.parse().ok()))
        .map_or(order.cycle.clone(), |c| c.to_string());
    let subscription = subscriptions::create_for_order(
        tx,
        &New {
            tenant: order.tenant_id,
            customer: customer.id,
            product: primary.product_id,
            order: order_id,
            cycle: &cycle,
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

/// The resources of the order's Subscription from `product_ids` (its items, the plan first), for
/// `customer`.
async fn render_products(
    tx: &mut sqlx::PgConnection,
    order: &orders::Order,
    customer: &customers::Customer,
    product_ids: &[Uuid],
) -> Result<serde_json::Value, FulfilmentError> {
    let placeholders = Placeholders {
        subscription: render::resource_name(order.id),
        customer: customer.handle.clone(),
        email: customer.email.clone(),
        domain: order.domain.clone(),
    };
    let mut products = Vec::with_capacity(product_ids.len());
    for id in product_ids {
        products.push(catalog::by_id(&mut *tx, *id).await?);
    }
    let parts: Vec<render::Part<'_>> =
        products.iter().map(|p| render::Part { slug: &p.slug, kind: &p.kind, template: &p.template.0 }).collect();
    render::order_resources(&parts, &placeholders)
        .map_err(|e| FulfilmentError::Template { product: e.product, error: e.error })
}

/// The subscription moves to the plan of `change`: its resources are rendered again from its
/// order's items with the new plan in the old one's place (the outbox applies them).
async fn change_plan(
    tx: &mut sqlx::PgConnection,
    subscription: &subscriptions::Subscription,
    change: &PlanChange,
) -> Result<(), FulfilmentError> {
    let order = orders::get(&mut *tx, subscription.order_id).await?;
    let customer = customers::get(&mut *tx, subscription.customer_id).await?;
    let mut product_ids: Vec<Uuid> = orders::items(&mut *tx, order.id).await?.iter().map(|i| i.product_id).collect();
    let plan = product_ids.first_mut().ok_or(FulfilmentError::NoItems(order.id))?;
    *plan = change.to_product;
    let resources =
        plan_change::keep_disks(render_products(tx, &order, &customer, &product_ids).await?, &subscription.resources.0);
    subscriptions::set_plan(&mut *tx, subscription.id, change.to_product, &resources).await?;
    plan_changes::applied(&mut *tx, change.id).await?;
    audit::record(
        &mut *tx,
        "bridge",
        "subscription.plan_changed",
        "subscription",
        &subscription.id.to_string(),
        json!({"from": change.from_product, "to": change.to_product, "direction": change.direction}),
    )
    .await?;
    Ok(())
}

/// A paid upgrade invoice: the subscription moves to the bigger plan; its period is unchanged.
async fn upgrade(tx: &mut sqlx::PgConnection, id: Uuid, change: &PlanChange) -> Result<Uuid, FulfilmentError> {
    let subscription = subscriptions::lock(tx, id).await?;
    change_plan(tx, &subscription, change).await?;
    Ok(id)
}

/// A renewal: the period it pays for is added, and an Overdue suspension is lifted (an Abuse or
/// Manual one stays until staff lift it).
async fn renew(tx: &mut sqlx::PgConnection, invoice: &Invoice, id: Uuid) -> Result<Uuid, FulfilmentError> {
    let subscription = subscriptions::lock(tx, id).await?;
    // a downgrade asked for before this period was billed takes effect with it, once the plan's
    // own period renews (a plan of a longer cycle than the subscription's is not on every renewal)
    if let (Some(_), Some(change)) = (invoice.period_start, plan_changes::waiting(&mut *tx, id).await?)
        && change.direction == "downgrade"
        && change.created_at < invoice.issued_at.unwrap_or(change.created_at)
        && invoices::lines(&mut *tx, invoice.id).await?.iter().any(|l| l.product_id == Some(change.to_product))
    {
        change_plan(tx, &subscription, &change).await?;
    }
    if let (Some(start), Some(end)) = (invoice.period_start, invoice.period_end)
        && subscription.current_period_end.is_none_or(|current| end > current)
    {
        subscriptions::set_period(&mut *tx, id, start, end).await?;
    }
    if subscription.suspension_reason.as_deref() == Some("Overdue") {
        subscriptions::set_suspension(&mut *tx, id, None).await?;
        subscriptions::transition(&mut *tx, id, &["suspended", "past_due"], "active").await?;
        notifications::resumed(&mut *tx, id, &format!("invoice:{}", invoice.id)).await?;
    } else if subscription.status == "past_due" {
        subscriptions::transition(&mut *tx, id, &["past_due"], "active").await?;
    }
    Ok(id)
}

/// Runs until the process ends, `PARALLEL` lanes: fulfils on every notification and `kick`, when
/// the first failing invoice is due again, and every `scan`; each fulfilled invoice kicks the outbox.
pub async fn run(pool: PgPool, kick: Arc<Notify>, scan: Duration, outbox_kick: Arc<Notify>, metrics: Arc<Metrics>) {
    let wakeup = Wakeup::relay(pool.clone(), CHANNEL, kick);
    let next_due = || lanes::first_in_backoff(&pool, Worker::Fulfilment, &metrics);
    lanes::run("fulfilment", PARALLEL, wakeup, scan, next_due, |order, wakeup| {
        let (pool, metrics, outbox_kick) = (&pool, &metrics, &outbox_kick);
        async move {
            let fulfilled = fulfil_next(pool, metrics, order, &wakeup).await?;
            if fulfilled {
                outbox_kick.notify_one();
            }
            Ok::<_, LedgerError>(fulfilled)
        }
    })
    .await;
}
