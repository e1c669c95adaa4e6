//! One reconcile attempt: bounded in time, a panic caught, timed and counted; an attempt that did
//! not finish is reported in the object's Ready condition.

use std::time::Duration;

use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use super::{Backoff, StatusOf, Step, object_key};

/// What the shared reconcile steps (timing and counting an attempt, the backoff after a failure)
/// need of a controller's error: its stable reason, for the metric, the log and conditions.
pub trait ReconcileError: std::error::Error + From<Unfinished> {
    fn reason(&self) -> &'static str;

    /// A state the reconcile waits in rather than a failure (a Proxmox task still running while a
    /// finalizer must stay): looked at again after this long, without growing the object's
    /// backoff and without counting as a reconcile error.
    fn waiting(&self) -> Option<Duration> {
        None
    }
}

/// A reconcile that did not finish: it ran past its time bound or panicked. Either fails that
/// object only; the controller goes on with the others.
#[derive(Debug, thiserror::Error)]
pub enum Unfinished {
    #[error("the reconcile ran longer than {0:?} and was stopped; it is retried on the object's backoff")]
    TimedOut(Duration),
    #[error("the reconcile failed unexpectedly ({0}); it is retried on the object's backoff")]
    Panicked(String),
    #[error("the operator's finalizer could not be handled: {0}")]
    Finalizer(&'static str),
}

impl Unfinished {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TimedOut(_) => mpanel_crds::reasons::RECONCILE_TIMED_OUT.name,
            Self::Panicked(_) => mpanel_crds::reasons::RECONCILE_PANICKED.name,
            Self::Finalizer(_) => mpanel_crds::reasons::FINALIZER_ERROR.name,
        }
    }
}

/// Runs one reconcile of `obj` within the backoff's time bound, catching a panic: times and counts
/// it as `kind`, with the error's stable reason ([`ReconcileError`]), and forgets the object's backoff after a success.
/// A reconcile that did not finish sets the object's Ready condition saying so.
pub async fn measured<K, E>(
    kind: &'static str,
    client: &Client,
    obj: &K,
    metrics: &crate::metrics::Metrics,
    backoff: &Backoff,
    run: impl std::future::Future<Output = Result<kube::runtime::controller::Action, E>>,
) -> Result<kube::runtime::controller::Action, E>
where
    K: StatusOf<Scope = kube::core::NamespaceResourceScope> + Serialize,
    E: ReconcileError,
{
    use futures::FutureExt;
    let started = std::time::Instant::now();
    let run = faults::around(obj, run);
    let result =
        match tokio::time::timeout(backoff.attempt_bound, std::panic::AssertUnwindSafe(run).catch_unwind()).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(unfinished(client, obj, Unfinished::Panicked(panic_text(panic.as_ref()))).await),
            Err(_) => Err(unfinished(client, obj, Unfinished::TimedOut(backoff.attempt_bound)).await),
        };
    let failed = result.as_ref().err().filter(|e| e.waiting().is_none());
    metrics.reconciled(kind, started.elapsed(), failed.map(E::reason));
    if failed.is_none() {
        backoff.succeeded(&object_key(obj));
    }
    result
}

/// Reports `why` in the object's Ready condition (best effort) and turns it into the error.
async fn unfinished<K, E>(client: &Client, obj: &K, why: Unfinished) -> E
where
    K: StatusOf<Scope = kube::core::NamespaceResourceScope> + Serialize,
    E: From<Unfinished>,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let mut step = Step::new(obj);
    step.not_ready(None, why.reason(), why.to_string());
    if let Err(e) = step.write(&api, obj).await {
        tracing::warn!(object = %object_key(obj), error = %e, "could not record an unfinished reconcile");
    }
    E::from(why)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Test-only fault points: `MPANEL_FAULT_STALL=<namespace>/<name>` makes that object's reconciles
/// never finish, `MPANEL_FAULT_PANIC=<namespace>/<name>` makes them panic.
mod faults {
    use std::sync::OnceLock;

    fn named(var: &str) -> Option<&'static str> {
        static STALL: OnceLock<Option<String>> = OnceLock::new();
        static PANIC: OnceLock<Option<String>> = OnceLock::new();
        let cell = if var == "MPANEL_FAULT_STALL" { &STALL } else { &PANIC };
        cell.get_or_init(|| std::env::var(var).ok().filter(|v| !v.is_empty())).as_deref()
    }

    pub async fn around<K: kube::ResourceExt, T>(obj: &K, run: impl std::future::Future<Output = T>) -> T {
        let key = crate::controllers::object_key(obj);
        if named("MPANEL_FAULT_STALL") == Some(key.as_str()) {
            std::future::pending::<()>().await;
        }
        if named("MPANEL_FAULT_PANIC") == Some(key.as_str()) {
            panic!("test fault point for {key}");
        }
        run.await
    }
}
