//! The one shape every controller has. A kind supplies its own state and how it converges an
//! object (`apply`) and lets one go (`cleanup`), each observing first, deciding what differs and
//! acting on that; running the controller, bounding and counting each attempt, the reconcile-mode
//! annotation, the finalizer and the retry after a failure are the same code for every kind.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::common::ReconcileMode;
use serde::Serialize;

use super::{
    Backoff, Clock, During, KubeCall, ReconcileError, StatusOf, Step, Watchable, measured, reconcile_in_mode,
    retry_later,
};
use crate::metrics::Metrics;

/// What every controller works with, and the kind's own state `S` (its provider client, caches,
/// limits), reached through `Deref` so a kind's code reads `ctx.client` and `ctx.dns` alike.
pub struct Context<S> {
    pub client: Client,
    /// The only namespace reconciled; all when `None`.
    pub namespace: Option<String>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Drift detection interval.
    pub resync: Duration,
    pub backoff: Backoff,
    pub clock: Clock,
    pub state: S,
}

impl<S> Deref for Context<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

/// A kind the shared reconcile works on.
pub trait Kind: Watchable + StatusOf + Serialize {}
impl<K: Watchable + StatusOf + Serialize> Kind for K {}

/// How a kind's state `Self` converges objects of kind `K`.
pub trait Reconcile<K: Kind>: Sized + Send + Sync + 'static {
    type Error: ReconcileError + From<KubeCall> + Send + 'static;

    /// The kind's name in metrics, logs and the backoff.
    const KIND: &'static str;

    /// Converges the external system to `obj` (under the finalizer, in `mode`).
    fn apply(
        ctx: &Context<Self>,
        api: &Api<K>,
        obj: Arc<K>,
        mode: ReconcileMode,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// Lets the external object go as `obj`'s deletion policy says; the finalizer is removed when
    /// this succeeds.
    fn cleanup(
        ctx: &Context<Self>,
        api: &Api<K>,
        obj: Arc<K>,
        mode: ReconcileMode,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// Says in the status that the reconcile-mode annotation is not a mode.
    fn invalid_mode(step: &mut Step<K>, message: String) {
        step.not_ready(None, mpanel_crds::reasons::INVALID_RECONCILE_MODE.name, message);
    }

    /// The object to act on. The cached one, unless the kind must see its own last status write at
    /// once (the cache may lag behind it); `None` when it is gone.
    fn current(api: &Api<K>, cached: Arc<K>) -> impl Future<Output = Result<Option<Arc<K>>, KubeCall>> + Send {
        let _ = api;
        async move { Ok(Some(cached)) }
    }
}

/// `obj` as the API server has it now, for [`Reconcile::current`]; `None` when it is gone.
pub async fn read_again<K: Kind>(api: &Api<K>, cached: Arc<K>) -> Result<Option<Arc<K>>, KubeCall> {
    Ok(api.get_opt(&cached.name_any()).await.during("reading the object again")?.map(Arc::new))
}

/// How often [`ready`] looks at a store again while it waits.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `store` holds its first full list, which a controller that reads it needs before it
/// starts; false, logged, when its watch ended before that.
///
/// The hub's stores are shared by several controllers, and kube's readiness signal wakes only the
/// waiter that polled it last: a second waiter would sleep forever. So this looks again every
/// [`READY_POLL`] instead of counting on a wake-up, and [`run`] waits here before it starts a
/// controller, so that kube's own wait inside it finds the store ready.
pub async fn ready<K: Watchable>(store: &kube::runtime::reflector::Store<K>) -> bool {
    let ready = loop {
        if let Ok(ready) = tokio::time::timeout(READY_POLL, store.wait_until_ready()).await {
            break ready.is_ok();
        }
    };
    if !ready {
        tracing::error!(kind = %K::kind(&()), "the watch ended before it was ready");
    }
    ready
}

/// Runs `controller` (the kind's watches already added) until `shutdown` resolves.
pub async fn run<K, S>(
    ctx: Arc<Context<S>>,
    controller: Controller<K>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Kind,
    S: Reconcile<K>,
{
    if !ready(&controller.store()).await {
        return;
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K, S>, error_policy::<K, S>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind = S::KIND, error = %e, "reconcile ended with an error");
            }
        })
        .await;
}

/// One reconcile of `obj`: bounded, timed and counted, as its reconcile mode says, under the
/// finalizer.
pub async fn reconcile<K, S>(obj: Arc<K>, ctx: Arc<Context<S>>) -> Result<Action, S::Error>
where
    K: Kind,
    S: Reconcile<K>,
{
    let attempt = in_mode::<K, S>(obj.clone(), &ctx);
    // on the heap: a kind's whole reconcile is one large future
    let measured = Box::pin(measured(S::KIND, &ctx.client, obj.as_ref(), &ctx.metrics, &ctx.backoff, attempt));
    ctx.clock.clone().during(measured).await
}

/// When `obj` is looked at again after `error`.
pub fn error_policy<K, S>(obj: Arc<K>, error: &S::Error, ctx: Arc<Context<S>>) -> Action
where
    K: Kind,
    S: Reconcile<K>,
{
    retry_later(S::KIND, obj.as_ref(), error, &ctx.backoff)
}

async fn in_mode<K, S>(obj: Arc<K>, ctx: &Context<S>) -> Result<Action, S::Error>
where
    K: Kind,
    S: Reconcile<K>,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let Some(obj) = S::current(&api, obj).await? else {
        return Ok(Action::await_change());
    };
    let api = &api;
    reconcile_in_mode(
        api,
        obj,
        S::invalid_mode,
        |obj, mode| async move { S::apply(ctx, api, obj, mode).await },
        |obj, mode| async move { S::cleanup(ctx, api, obj, mode).await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher};

    use super::ready;

    #[tokio::test]
    async fn every_controller_waiting_for_a_shared_store_starts_once_it_listed() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { ready(&store).await })
            })
            .collect();
        // every waiter is waiting before the list completes
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let started = tokio::time::timeout(Duration::from_secs(2), waiter).await;
            assert!(matches!(started, Ok(Ok(true))), "a waiter never saw the store ready: {started:?}");
        }
    }
}
