//! The activation gate: the bridge watches the Subscription resources it made, and the ledger
//! subscription becomes `active` (its first period starting then) only when the resource is
//! Active and Ready at its generation. `Failed` makes it `provisioning_failed`, for good, and
//! refunds the payment when the product says so.
//!
//! Every bridge replica watches; one observation of a subscription at a time is done (an advisory
//! lock), and the status changes are guarded by the status they start from, so a subscription is
//! activated, failed and refunded once. A subscription whose observation fails (a refund Stripe
//! refused) is retried after a backoff without holding back the others.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use mpanel_crds::conditions::{self, READY};
use mpanel_crds::subscription::{Subscription, SubscriptionPhase};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::outbox::{self, Action};
use crate::ledger::work_attempts::{self, Item, Worker};
use crate::ledger::{Cycle, LedgerError, audit, catalog, invoices, notifications, subscriptions};
use crate::metrics::Metrics;
use crate::refunds::{self, RefundError};
use crate::render::LEDGER_LABEL;
use crate::stripe::api::{StripeClient, StripeError};

/// Subscriptions observed at once in a resync (each on up to two connections: the claim and the work).
const PARALLEL: usize = 4;

/// An activation failure still matters while the subscription waits for activation or a refund.
const STILL_TO_DO: &str = "EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = w.subscription_id \
                           AND s.status IN ('pending_activation', 'provisioning_failed'))";

/// What the resource's status means for the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Failed,
    Waiting,
}

pub fn verdict(object: &Subscription) -> Verdict {
    let Some(status) = &object.status else { return Verdict::Waiting };
    match status.phase {
        Some(SubscriptionPhase::Failed) => Verdict::Failed,
        Some(SubscriptionPhase::Active) if conditions::is_ready_at(&status.conditions, object.metadata.generation) => {
            Verdict::Ready
        }
        _ => Verdict::Waiting,
    }
}

/// Why the ledger could not take what a resource reports; `reason()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("refunding a subscription that never ran: {0}")]
    Refund(#[source] StripeError),
}

impl ActivationError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Refund(e) => e.reason(),
        }
    }
}

/// Brings the ledger in line with what the resource reports, once across bridge replicas: the
/// subscription is claimed for the observation (an advisory lock; a replica that finds it taken
/// leaves it to the holder, which sees the same events). One whose last observation failed waits
/// for its next attempt; its failure is recorded, every other subscription goes on. An `Err` is
/// the ledger failing.
pub async fn observe(
    pool: &PgPool,
    stripe: &StripeClient,
    object: &Subscription,
    metrics: &Metrics,
) -> Result<(), LedgerError> {
    let Some(id) = object.labels().get(LEDGER_LABEL).and_then(|v| Uuid::parse_str(v).ok()) else { return Ok(()) };
    // another ledger's resource (a second bridge on the cluster): not ours to judge
    let Ok(sub) = subscriptions::get(pool, id).await else { return Ok(()) };
    if sub.namespace != object.namespace().unwrap_or_default() || sub.resource_name != object.name_any() {
        return Ok(());
    }
    // a resource the operator has not reported on yet, of a subscription whose provisioning the
    // ledger has no word of either (the bridge's own apply, seen back): nothing to judge or record
    if object.status.is_none()
        && sub.provisioning_phase.is_none()
        && sub.provisioning_message.is_none()
        && sub.status != "provisioning_failed"
    {
        return Ok(());
    }
    // the claim holds no row lock, so the refund (which locks payments and may end the
    // subscription) never waits for it
    let mut claim = pool.begin().await?;
    let item = Item::subscription(Worker::Activation, id);
    let claimed = work_attempts::try_claim(&mut claim, &item).await?;
    if !claimed || work_attempts::waiting(&mut *claim, &item).await? {
        return Ok(());
    }
    match judge(pool, stripe, object, &sub).await {
        Ok(()) => work_attempts::succeeded(&mut claim, &item).await?,
        Err(e) => {
            let words = e.to_string();
            let failure = work_attempts::failed(&mut claim, &item, e.reason(), &words).await?;
            metrics.activation_errors.inc();
            metrics.work_failed(Worker::Activation, e.reason());
            tracing::warn!(
                subscription = %id, attempts = failure.attempts, retry_at = %failure.next_attempt_at, error = %words,
                reason = e.reason(), "observing a Subscription failed; the others go on"
            );
        }
    }
    claim.commit().await?;
    Ok(())
}

/// What the resource's status means for the ledger subscription `sub`, done.
async fn judge(
    pool: &PgPool,
    stripe: &StripeClient,
    object: &Subscription,
    sub: &subscriptions::Subscription,
) -> Result<(), ActivationError> {
    let id = sub.id;
    let status = object.status.as_ref();
    let phase = status.and_then(|s| s.phase).map(|p| format!("{p:?}"));
    let message = status.and_then(|s| conditions::find(&s.conditions, READY)).map(|c| c.message.clone());
    subscriptions::observe_provisioning(pool, id, phase.as_deref(), message.as_deref()).await?;
    match (verdict(object), sub.status.as_str()) {
        (Verdict::Ready, "pending_activation") => {
            let cycle: Cycle = sub.cycle.parse()?;
            let now = Utc::now();
            let mut tx = pool.begin().await.map_err(LedgerError::from)?;
            if subscriptions::activate(&mut *tx, id, now, cycle.after(now)).await?.is_some() {
                // the resource's paidUntil follows the period that starts now
                outbox::enqueue(&mut *tx, id, Action::Apply).await?;
                audit::record(&mut *tx, "bridge", "subscription.activated", "subscription", &id.to_string(), json!({}))
                    .await?;
                tracing::info!(subscription = %id, "provisioned: subscription active");
            }
            tx.commit().await.map_err(LedgerError::from)?;
        }
        (Verdict::Failed, "pending_activation") => {
            let mut tx = pool.begin().await.map_err(LedgerError::from)?;
            if subscriptions::transition(&mut *tx, id, &["pending_activation"], "provisioning_failed").await?.is_some()
            {
                audit::record(
                    &mut *tx,
                    "bridge",
                    "subscription.provisioning_failed",
                    "subscription",
                    &id.to_string(),
                    json!({"message": message}),
                )
                .await?;
                tracing::warn!(subscription = %id, message = ?message, "provisioning failed");
            }
            tx.commit().await.map_err(LedgerError::from)?;
            refund_if_due(pool, stripe, sub).await?;
        }
        (_, "provisioning_failed") => refund_if_due(pool, stripe, sub).await?,
        _ => {}
    }
    Ok(())
}

/// Refunds the order's payment of a subscription that never ran, when its product says so.
async fn refund_if_due(
    pool: &PgPool,
    stripe: &StripeClient,
    sub: &subscriptions::Subscription,
) -> Result<(), ActivationError> {
    let product = catalog::by_id(pool, sub.product_id).await?;
    if !product.refund_on_failure {
        // told once (the notification's key is the subscription), that staff will be in touch
        let mut tx = pool.begin().await.map_err(LedgerError::from)?;
        notifications::provisioning_failed(&mut tx, sub.id, None).await?;
        tx.commit().await.map_err(LedgerError::from)?;
        return Ok(());
    }
    let Some(invoice) = invoices::paid_of_order(pool, sub.order_id).await? else { return Ok(()) };
    match refunds::through_stripe(pool, stripe, &invoice, "bridge", "provisioning failed").await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let mut tx = pool.begin().await.map_err(LedgerError::from)?;
            audit::record(
                &mut *tx,
                "bridge",
                "refund.manual",
                "invoice",
                invoice.number.as_deref().unwrap_or_default(),
                json!({"why": "paid outside Stripe: refund it by hand"}),
            )
            .await?;
            notifications::provisioning_failed(&mut tx, sub.id, None).await?;
            tx.commit().await.map_err(LedgerError::from)?;
        }
        Err(RefundError::Ledger(e)) => return Err(e.into()),
        Err(RefundError::Stripe(e)) => return Err(ActivationError::Refund(e)),
    }
    Ok(())
}

/// Runs until the process ends: every change of a bridge-made Subscription is observed, and every
/// `resync` all of them are again (a change the ledger could not take, a refund Stripe refused),
/// `PARALLEL` at a time.
pub async fn run(pool: PgPool, client: Client, stripe: Arc<StripeClient>, metrics: Arc<Metrics>, resync: Duration) {
    let api: Api<Subscription> = Api::all(client);
    let config = watcher::Config::default().labels(LEDGER_LABEL);
    let mut events = watcher(api.clone(), config).default_backoff().applied_objects().boxed();
    let mut ticker = tokio::time::interval(resync);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (objects, resync) = tokio::select! {
            next = events.try_next() => match next {
                Ok(Some(object)) => (vec![object], false),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "watching Subscriptions");
                    continue;
                }
            },
            _ = ticker.tick() => match api.list(&ListParams::default().labels(LEDGER_LABEL)).await {
                Ok(list) => (list.items, true),
                Err(e) => {
                    tracing::warn!(error = %e, "listing Subscriptions");
                    continue;
                }
            },
        };
        futures::stream::iter(&objects)
            .for_each_concurrent(PARALLEL, |object| {
                let (pool, stripe, metrics) = (&pool, &stripe, &metrics);
                async move {
                    if let Err(e) = observe(pool, stripe, object, metrics).await {
                        metrics.activation_errors.inc();
                        tracing::warn!(error = %e, reason = e.reason(), name = %object.name_any(), "observing a Subscription failed");
                    }
                }
            })
            .await;
        if resync {
            let _ = work_attempts::forget_moot(&pool, Worker::Activation, STILL_TO_DO).await;
            if let Ok(n) = work_attempts::count(&pool, Worker::Activation).await {
                metrics.set_work_in_backoff(Worker::Activation, n);
            }
        }
    }
}
