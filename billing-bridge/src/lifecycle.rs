//! The billing lifecycle, walked by a clock: renewal invoices `renewal_notice_days` before a
//! period ends; an unpaid renewal past its due date makes the subscription `past_due`, after
//! `grace_days` it is suspended (`Overdue`), after `termination_days` it is cancelled and its
//! resource deleted. A subscription cancelled at period end gets no renewal invoice (an open one is
//! voided) and ends when its period does. Each step is a transaction of its own with its outbox
//! entry, and a second tick at the same time does nothing.
//!
//! A pass first reads what is due (`agenda`, no locks), then works through it: each step claims its
//! rows (`FOR NO KEY UPDATE SKIP LOCKED`: the overdue invoice, then the subscription) and decides
//! again from them as they are under the claim. A payment that landed after the agenda was read
//! therefore finds its subscription untouched (its invoice is no longer unpaid), one that is being
//! recorded holds the invoice and the step is left to a later pass, and two bridge replicas running
//! a pass at once issue every renewal invoice and audit row once. Periods end on their anchor
//! (`periods::end_after`). A subscription whose step fails (its product lost its price) is
//! recorded as failing and left alone until its next attempt; its later steps wait behind it,
//! every other subscription goes on.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::ledger::catalog::Product;
use crate::ledger::invoices::{self, NewLine, Purpose};
use crate::ledger::outbox::{self, Action};
use crate::ledger::subscriptions::Subscription;
use crate::ledger::work_attempts::{self, Item, Worker};
use crate::ledger::{Cycle, LedgerError, audit, catalog, notifications, orders, plan_changes, subscriptions};
use crate::metrics::Metrics;
use crate::money;
use crate::periods;

/// Subscriptions walked at once; the work is the ledger's alone and quick.
const PARALLEL: usize = 4;

/// Why a subscription's step failed; `reason()` is stable (metrics, the admin API).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("no renewal price: {0}")]
    NoRenewalPrice(String),
}

impl LifecycleError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::NoRenewalPrice(_) => "NoRenewalPrice",
        }
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Tick {
    pub renewal_invoices: usize,
    pub past_due: usize,
    pub suspended: usize,
    pub cancelled: usize,
    /// Subscriptions whose step failed; tried again after a backoff.
    pub failed: usize,
}

impl std::ops::AddAssign for Tick {
    fn add_assign(&mut self, other: Self) {
        self.renewal_invoices += other.renewal_invoices;
        self.past_due += other.past_due;
        self.suspended += other.suspended;
        self.cancelled += other.cancelled;
        self.failed += other.failed;
    }
}

/// A step due for a subscription.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Its period ends within the renewal notice: a renewal invoice, or its end when cancelled at
    /// period end.
    PeriodEnd,
    /// This renewal invoice is unpaid past its due date.
    Overdue(Uuid),
}

/// What a pass found due as of a time, read without locks. Every step is decided again from its
/// rows under their claim when it is worked through, so what changed in between counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agenda {
    /// Subscriptions whose period ends within the renewal notice and has no renewal invoice yet,
    /// or, cancelled at period end, whose period is over.
    ending: Vec<Uuid>,
    /// Unpaid renewal invoices past their due date, with their subscription, oldest first.
    overdue: Vec<(Uuid, Uuid)>,
}

impl Agenda {
    pub fn is_empty(&self) -> bool {
        self.ending.is_empty() && self.overdue.is_empty()
    }
}

/// One pass of the lifecycle as of `now`.
pub async fn tick(pool: &PgPool, now: DateTime<Utc>) -> Result<Tick, LedgerError> {
    pass(pool, now, None).await
}

/// As `tick`, counting failed steps in `metrics`.
pub async fn pass(pool: &PgPool, now: DateTime<Utc>, metrics: Option<&Metrics>) -> Result<Tick, LedgerError> {
    let due = agenda(pool, now).await?;
    work_through(pool, &due, now, metrics).await
}

/// What is due as of `now`.
pub async fn agenda(pool: &PgPool, now: DateTime<Utc>) -> Result<Agenda, LedgerError> {
    let ending = subscriptions::period_ending_by(pool, now).await?;
    let overdue = invoices::overdue_by(pool, now).await?;
    Ok(Agenda { ending, overdue })
}

/// Does what `agenda` found due, each step as its rows say under the claim as of `now`.
pub async fn work_through(
    pool: &PgPool,
    agenda: &Agenda,
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Result<Tick, LedgerError> {
    // periods ending: renewal invoices, and the end of subscriptions cancelled at period end
    let ending = agenda.ending.iter().map(|id| (*id, vec![Due::PeriodEnd])).collect();
    let mut done = walk_all(pool, ending, now, metrics).await?;
    // unpaid renewals: past due, then suspended, then cancelled, by the product's periods
    let mut by_subscription: BTreeMap<Uuid, Vec<Due>> = BTreeMap::new();
    for (id, invoice) in &agenda.overdue {
        by_subscription.entry(*id).or_default().push(Due::Overdue(*invoice));
    }
    done += walk_all(pool, by_subscription, now, metrics).await?;
    let to_do: Vec<String> =
        agenda.ending.iter().chain(agenda.overdue.iter().map(|(id, _)| id)).map(Uuid::to_string).collect();
    work_attempts::forget_all_but(pool, Worker::Lifecycle, &to_do).await?;
    Ok(done)
}

/// Walks each subscription's steps, `PARALLEL` subscriptions at a time; those waiting for their
/// next attempt are left alone.
async fn walk_all(
    pool: &PgPool,
    work: BTreeMap<Uuid, Vec<Due>>,
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Result<Tick, LedgerError> {
    let waiting = work_attempts::waiting_keys(pool, Worker::Lifecycle).await?;
    let walks: Vec<Result<Tick, LedgerError>> = futures::stream::iter(work)
        .filter(|(id, _)| std::future::ready(!waiting.contains(&id.to_string())))
        .map(|(id, steps)| walk(pool, id, steps, now, metrics))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut done = Tick::default();
    for walked in walks {
        done += walked?;
    }
    Ok(done)
}

/// A subscription's steps in order, each claimed and done in a transaction of its own; a failing
/// step is recorded, and the steps after it wait for the next pass after its backoff.
async fn walk(
    pool: &PgPool,
    id: Uuid,
    steps: Vec<Due>,
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Result<Tick, LedgerError> {
    let item = Item::subscription(Worker::Lifecycle, id);
    let mut done = Tick::default();
    for due in steps {
        let mut tx = pool.begin().await?;
        // claimed by another replica, or paid meanwhile: not this pass's to do
        let Some(claimed) = claim(&mut tx, id, due).await? else { continue };
        // a savepoint: a failure undoes the step, not the claim or its record
        let mut attempt = tx.begin().await?;
        match step(&mut attempt, &claimed, now).await {
            Ok(did) => {
                attempt.commit().await?;
                work_attempts::succeeded(&mut tx, &item).await?;
                tx.commit().await?;
                done += did;
            }
            Err(e) => {
                attempt.rollback().await?;
                let words = e.to_string();
                let failure = work_attempts::failed(&mut tx, &item, e.reason(), &words).await?;
                tx.commit().await?;
                if let Some(metrics) = metrics {
                    metrics.work_failed(Worker::Lifecycle, e.reason());
                }
                tracing::warn!(
                    subscription = %id, attempts = failure.attempts, retry_at = %failure.next_attempt_at,
                    error = %words, reason = e.reason(), "lifecycle step failed; the other subscriptions go on"
                );
                done.failed += 1;
                break;
            }
        }
    }
    Ok(done)
}

/// The rows a step works on, claimed.
struct Claimed {
    subscription: Subscription,
    overdue: Option<Overdue>,
}

/// An unpaid renewal invoice past its due date, as it is under the claim.
#[derive(Debug, Clone, Copy)]
struct Overdue {
    invoice: Uuid,
    due_at: DateTime<Utc>,
    /// The start of the period it bills.
    period_start: Option<DateTime<Utc>>,
}

/// Claims the step's rows in the order a payment locks them (the invoice, then the subscription),
/// so a payment racing this pass waits or is waited for, never deadlocks. None when another
/// transaction holds one of them, or the invoice is no longer unpaid.
async fn claim(tx: &mut sqlx::PgConnection, id: Uuid, due: Due) -> Result<Option<Claimed>, LedgerError> {
    let overdue = match due {
        Due::PeriodEnd => None,
        Due::Overdue(invoice) => {
            // still unpaid, as it is now: a payment recorded since the agenda was read leaves no row,
            // one being recorded holds it (skipped: this step waits for a later pass)
            let row = invoices::lock_unpaid(&mut *tx, invoice, id).await?;
            let Some((Some(due_at), period_start)) = row else { return Ok(None) };
            Some(Overdue { invoice, due_at, period_start })
        }
    };
    Ok(subscriptions::claim(tx, id).await?.map(|subscription| Claimed { subscription, overdue }))
}

/// Does what is due as the claimed rows say now (another replica may have done it already).
async fn step(tx: &mut sqlx::PgConnection, claimed: &Claimed, now: DateTime<Utc>) -> Result<Tick, LifecycleError> {
    let sub = &claimed.subscription;
    if !matches!(sub.status.as_str(), "active" | "past_due" | "suspended") {
        return Ok(Tick::default());
    }
    // cancelled at period end: it ends then, whatever else was due
    if sub.cancel_at_period_end {
        return end_cancelled(tx, sub, now).await;
    }
    let product = catalog::by_id(&mut *tx, sub.product_id).await?;
    match claimed.overdue {
        None => issue_renewal(tx, sub, &product, now).await,
        Some(unpaid) => overdue(tx, sub, &product, unpaid, now).await.map_err(Into::into),
    }
}

/// Past due, then suspended, then cancelled, by the product's periods counted from the due date;
/// nothing when the subscription's period has moved past the one the invoice bills (paid otherwise).
async fn overdue(
    tx: &mut sqlx::PgConnection,
    sub: &Subscription,
    product: &Product,
    unpaid: Overdue,
    now: DateTime<Utc>,
) -> Result<Tick, LedgerError> {
    let id = sub.id;
    let mut done = Tick::default();
    if let (Some(billed), Some(paid_to)) = (unpaid.period_start, sub.current_period_end)
        && paid_to > billed
    {
        return Ok(done);
    }
    let (invoice, due_at) = (unpaid.invoice, unpaid.due_at);
    let action = if now >= due_at + Duration::days(product.termination_days.into()) {
        invoices::void(&mut *tx, invoice).await?;
        let changed =
            subscriptions::transition(&mut *tx, id, &["active", "past_due", "suspended"], "cancelled").await?;
        if changed.is_some() {
            notifications::cancelled(&mut *tx, id, "an invoice stayed unpaid past the termination date").await?;
        }
        done.cancelled = usize::from(changed.is_some());
        changed.map(|_| (Action::Delete, "subscription.terminated"))
    } else if now >= due_at + Duration::days(product.grace_days.into()) && sub.suspension_reason.is_none() {
        let changed = subscriptions::transition(&mut *tx, id, &["active", "past_due"], "suspended").await?;
        if changed.is_some() {
            subscriptions::set_suspension(&mut *tx, id, Some("Overdue")).await?;
            notifications::suspended(&mut *tx, id, "Overdue", &format!("invoice:{invoice}")).await?;
        }
        done.suspended = usize::from(changed.is_some());
        changed.map(|_| (Action::Apply, "subscription.suspended"))
    } else if sub.status == "active" {
        let changed = subscriptions::transition(&mut *tx, id, &["active"], "past_due").await?;
        if changed.is_some() {
            let unpaid = invoices::get(&mut *tx, invoice).await?;
            notifications::past_due(&mut *tx, &unpaid, id).await?;
        }
        done.past_due = usize::from(changed.is_some());
        changed.map(|_| (Action::Apply, "subscription.past_due"))
    } else {
        None
    };
    if let Some((action, what)) = action {
        outbox::enqueue(&mut *tx, id, action).await?;
        audit::record(&mut *tx, "lifecycle", what, "subscription", &id.to_string(), json!({"at": now})).await?;
    }
    Ok(done)
}

/// Runs until the process ends: a pass as of now, `every` so often.
pub async fn run(pool: PgPool, every: std::time::Duration, metrics: std::sync::Arc<Metrics>) {
    loop {
        match pass(&pool, Utc::now(), Some(&metrics)).await {
            Ok(done) if done != Tick::default() => tracing::info!(?done, "lifecycle pass"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, reason = e.reason(), "lifecycle pass failed"),
        }
        if let Ok(n) = work_attempts::count(&pool, Worker::Lifecycle).await {
            metrics.set_work_in_backoff(Worker::Lifecycle, n);
        }
        tokio::time::sleep(every).await;
    }
}

/// The invoice for the period after the current one, due when the current one ends; none when the
/// period is not within the notice yet or its invoice exists.
async fn issue_renewal(
    tx: &mut sqlx::PgConnection,
    sub: &Subscription,
    product: &Product,
    now: DateTime<Utc>,
) -> Result<Tick, LifecycleError> {
    let id = sub.id;
    let Some(start) = sub.current_period_end else { return Ok(Tick::default()) };
    if start - Duration::days(product.renewal_notice_days.into()) > now {
        return Ok(Tick::default());
    }
    if invoices::renewal_of_period(&mut *tx, id, start).await? {
        return Ok(Tick::default());
    }
    let cycle: Cycle = sub.cycle.parse()?;
    let anchor = sub.period_anchor().unwrap_or(start);
    let end = periods::end_after(anchor, cycle, start);
    let order = orders::get(&mut *tx, sub.order_id).await?;
    // the plan is the subscription's (changed since the order, or to change with this period);
    // the order's other items are its add-ons
    let next_plan = match plan_changes::waiting(&mut *tx, id).await? {
        Some(change) if change.direction == "downgrade" => change.to_product,
        _ => sub.product_id,
    };
    let mut lines = Vec::new();
    for (n, item) in orders::items(&mut *tx, sub.order_id).await?.into_iter().enumerate() {
        // an item of a longer cycle than the subscription's is billed when its own period ends
        let item_cycle: Cycle = item.cycle.parse()?;
        if item_cycle != cycle && !periods::ends_at(anchor, item_cycle, start) {
            continue;
        }
        let item_end = if item_cycle == cycle { end } else { periods::end_after(anchor, item_cycle, start) };
        let product = catalog::by_id(&mut *tx, if n == 0 { next_plan } else { item.product_id }).await?;
        let price = catalog::priced(&mut *tx, &product, item_cycle, "renewal").await.map_err(|e| match e {
            LedgerError::Invalid(words) => LifecycleError::NoRenewalPrice(words),
            other => other.into(),
        })?;
        // the renewal is billed in the order's currency, or not at all
        if !price.currency.eq_ignore_ascii_case(&order.currency) {
            let words =
                format!("product {:?} is priced in {}, its order in {}", product.slug, price.currency, order.currency);
            return Err(LifecycleError::NoRenewalPrice(words));
        }
        lines.push(NewLine {
            kind: "item",
            description: format!(
                "{} ({item_cycle}) {} to {}",
                product.name,
                start.format("%Y-%m-%d"),
                item_end.format("%Y-%m-%d")
            ),
            product_id: Some(product.id),
            quantity: item.quantity,
            unit_amount: money::from_minor(price.amount_cents, &order.currency),
        });
    }
    let invoice = invoices::create_draft(
        tx,
        sub.tenant_id,
        sub.customer_id,
        &order.currency,
        Purpose::Renewal { subscription: id, period_start: start, period_end: end },
        &lines,
    )
    .await?;
    let issued = invoices::issue(&mut *tx, invoice, start).await?;
    notifications::invoice_issued(&mut *tx, &issued, id).await?;
    audit::record(
        &mut *tx,
        "lifecycle",
        "invoice.renewal",
        "invoice",
        issued.number.as_deref().unwrap_or_default(),
        json!({"subscription": id, "total": issued.total, "due": start}),
    )
    .await?;
    Ok(Tick { renewal_invoices: 1, ..Tick::default() })
}

/// A subscription cancelled at period end ends when the period does: its open renewal invoices
/// are voided, it is cancelled and its resource deleted. Not yet while a paid renewal is still to
/// be fulfilled (that moves the period on), or while a payment of an open one is being recorded (a
/// later pass decides).
async fn end_cancelled(
    tx: &mut sqlx::PgConnection,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> Result<Tick, LifecycleError> {
    let id = sub.id;
    let Some(end) = sub.current_period_end.filter(|end| *end <= now) else { return Ok(Tick::default()) };
    if invoices::paid_unfulfilled_beyond(&mut *tx, id, end).await? {
        return Ok(Tick::default());
    }
    let Some(open) = invoices::claim_open_renewals(tx, id).await? else { return Ok(Tick::default()) };
    let mut voided = Vec::with_capacity(open.len());
    for invoice in &open {
        voided.push(invoices::void(&mut *tx, invoice.id).await?.number);
    }
    if subscriptions::transition(&mut *tx, id, &["active", "past_due", "suspended"], "cancelled").await?.is_none() {
        return Ok(Tick::default());
    }
    outbox::enqueue(&mut *tx, id, Action::Delete).await?;
    notifications::cancelled(&mut *tx, id, "it was cancelled at the end of its period").await?;
    audit::record(
        &mut *tx,
        "lifecycle",
        "subscription.ended",
        "subscription",
        &id.to_string(),
        json!({"at": now, "periodEnd": end, "voided": voided}),
    )
    .await?;
    Ok(Tick { cancelled: 1, ..Tick::default() })
}
