//! The billing lifecycle, walked by a clock: renewal invoices `renewal_notice_days` before a
//! period ends; an unpaid renewal past its due date makes the subscription `past_due`, after
//! `grace_days` it is suspended (`Overdue`), after `termination_days` it is cancelled and its
//! resource deleted. Cancelling at period end happens when the period ends. Each step is a
//! transaction of its own with its outbox entry, and a second tick at the same time does nothing.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::invoices::{self, NewLine, Purpose};
use crate::ledger::outbox::{self, Action};
use crate::ledger::{Cycle, LedgerError, audit, catalog, orders, subscriptions};
use crate::money;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Tick {
    pub renewal_invoices: usize,
    pub past_due: usize,
    pub suspended: usize,
    pub cancelled: usize,
}

/// A subscription with an unpaid renewal invoice past its due date.
#[derive(sqlx::FromRow)]
struct Overdue {
    id: Uuid,
    invoice: Uuid,
    due_at: DateTime<Utc>,
    grace: i32,
    termination: i32,
    status: String,
    suspension: Option<String>,
}

/// One pass of the lifecycle as of `now`.
pub async fn tick(pool: &PgPool, now: DateTime<Utc>) -> Result<Tick, LedgerError> {
    let mut done = Tick::default();
    // periods ending: renewal invoices, and the end of subscriptions cancelled at period end
    let due: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT s.id, s.cancel_at_period_end FROM subscriptions s JOIN products p ON p.id = s.product_id \
         WHERE s.status IN ('active', 'past_due', 'suspended') AND s.current_period_end IS NOT NULL \
           AND s.current_period_end - make_interval(days => p.renewal_notice_days) <= $1 \
           AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.subscription_id = s.id AND i.status <> 'void' \
                           AND i.period_start = s.current_period_end)",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    for (id, cancel_at_end) in due {
        if cancel_at_end {
            if end_cancelled(pool, id, now).await? {
                done.cancelled += 1;
            }
        } else if issue_renewal(pool, id).await? {
            done.renewal_invoices += 1;
        }
    }
    // unpaid renewals: past due, then suspended, then cancelled, by the product's periods
    let overdue: Vec<Overdue> = sqlx::query_as(
        "SELECT s.id, i.id AS invoice, i.due_at, p.grace_days AS grace, p.termination_days AS termination, s.status, \
                s.suspension_reason AS suspension \
         FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id JOIN products p ON p.id = s.product_id \
         WHERE i.status = 'issued' AND i.due_at < $1 AND s.status IN ('active', 'past_due', 'suspended')",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    for Overdue { id, invoice, due_at, grace, termination, status, suspension } in overdue {
        let mut tx = pool.begin().await?;
        let action = if now >= due_at + Duration::days(termination.into()) {
            // the invoice first, as a payment locks it first: a payment racing this pass wins
            invoices::void(&mut *tx, invoice).await?;
            subscriptions::transition(&mut *tx, id, &["active", "past_due", "suspended"], "cancelled").await?;
            done.cancelled += 1;
            Some((Action::Delete, "subscription.terminated"))
        } else if now >= due_at + Duration::days(grace.into()) && suspension.is_none() {
            subscriptions::transition(&mut *tx, id, &["active", "past_due"], "suspended").await?;
            subscriptions::set_suspension(&mut *tx, id, Some("Overdue")).await?;
            done.suspended += 1;
            Some((Action::Apply, "subscription.suspended"))
        } else if status == "active" {
            subscriptions::transition(&mut *tx, id, &["active"], "past_due").await?;
            done.past_due += 1;
            Some((Action::Apply, "subscription.past_due"))
        } else {
            None
        };
        if let Some((action, what)) = action {
            outbox::enqueue(&mut *tx, id, action).await?;
            audit::record(&mut *tx, "lifecycle", what, "subscription", &id.to_string(), json!({"at": now})).await?;
        }
        tx.commit().await?;
    }
    Ok(done)
}

/// Runs until the process ends: a pass as of now, `every` so often.
pub async fn run(pool: PgPool, every: std::time::Duration) {
    loop {
        match tick(&pool, Utc::now()).await {
            Ok(done) if done != Tick::default() => tracing::info!(?done, "lifecycle pass"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, reason = e.reason(), "lifecycle pass failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The invoice for the period after the current one, due when the current one ends.
async fn issue_renewal(pool: &PgPool, id: Uuid) -> Result<bool, LedgerError> {
    let mut tx = pool.begin().await?;
    let sub = subscriptions::lock(&mut tx, id).await?;
    let Some(start) = sub.current_period_end else { return Ok(false) };
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = $1 AND status <> 'void' AND period_start = $2)",
    )
    .bind(id)
    .bind(start)
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Ok(false);
    }
    let cycle: Cycle = sub.cycle.parse()?;
    let end = cycle.after(start);
    let mut lines = Vec::new();
    for item in orders::items(&mut *tx, sub.order_id).await? {
        let product = catalog::by_id(&mut *tx, item.product_id).await?;
        let cents = catalog::price_cents(&mut *tx, &product, cycle, "renewal").await?;
        lines.push(NewLine {
            kind: "item",
            description: format!(
                "{} ({cycle}) {} to {}",
                product.name,
                start.format("%Y-%m-%d"),
                end.format("%Y-%m-%d")
            ),
            product_id: Some(product.id),
            quantity: item.quantity,
            unit_amount: money::from_cents(cents),
        });
    }
    let order = orders::get(&mut *tx, sub.order_id).await?;
    let invoice = invoices::create_draft(
        &mut tx,
        sub.tenant_id,
        sub.customer_id,
        &order.currency,
        Purpose::Renewal { subscription: id, period_start: start, period_end: end },
        &lines,
    )
    .await?;
    let issued = invoices::issue(&mut *tx, invoice, start).await?;
    audit::record(
        &mut *tx,
        "lifecycle",
        "invoice.renewal",
        "invoice",
        issued.number.as_deref().unwrap_or_default(),
        json!({"subscription": id, "total": issued.total, "due": start}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn end_cancelled(pool: &PgPool, id: Uuid, now: DateTime<Utc>) -> Result<bool, LedgerError> {
    let mut tx = pool.begin().await?;
    let sub = subscriptions::lock(&mut tx, id).await?;
    if sub.current_period_end.is_none_or(|end| end > now) {
        return Ok(false);
    }
    if subscriptions::transition(&mut *tx, id, &["active", "past_due", "suspended"], "cancelled").await?.is_none() {
        return Ok(false);
    }
    outbox::enqueue(&mut *tx, id, Action::Delete).await?;
    audit::record(&mut *tx, "lifecycle", "subscription.ended", "subscription", &id.to_string(), json!({"at": now}))
        .await?;
    tx.commit().await?;
    Ok(true)
}
