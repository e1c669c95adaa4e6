//! One reconcile as the object's reconcile-mode annotation says, under the operator's finalizer;
//! releasing that finalizer when an object is deleted while not reconciled.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{During, KubeCall, StatusOf, Step, Unfinished, object_key};

/// One reconcile of `obj` as its reconcile-mode annotation says: `Paused` leaves it alone; an
/// annotation that is not a mode is reported (`invalid` sets the conditions saying so) and waits for
/// a change; otherwise `apply` or `cleanup` runs under the finalizer.
pub async fn reconcile_in_mode<K, E, FA, FC>(
    api: &Api<K>,
    obj: std::sync::Arc<K>,
    invalid: impl FnOnce(&mut Step<K>, String),
    apply: impl FnOnce(std::sync::Arc<K>, mpanel_crds::common::ReconcileMode) -> FA,
    cleanup: impl FnOnce(std::sync::Arc<K>, mpanel_crds::common::ReconcileMode) -> FC,
) -> Result<kube::runtime::controller::Action, E>
where
    K: StatusOf + Serialize,
    E: std::error::Error + From<KubeCall> + From<Unfinished> + 'static,
    FA: std::future::Future<Output = Result<kube::runtime::controller::Action, E>>,
    FC: std::future::Future<Output = Result<kube::runtime::controller::Action, E>>,
{
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    use mpanel_crds::common::ReconcileMode;
    let mode = ReconcileMode::of(obj.meta());
    // deleting a Paused object, or one whose mode is not understood, orphans its external object:
    // a deletion never waits for a change of annotation
    if obj.meta().deletion_timestamp.is_some()
        && !matches!(mode, Ok(ReconcileMode::Reconcile | ReconcileMode::ObserveOnly))
    {
        release_finalizer(api, obj.as_ref(), "the object was deleted while not reconciled").await?;
        return Ok(Action::await_change());
    }
    let mode = match mode {
        Ok(mode) => mode,
        Err(bad) => {
            let mut step = Step::new(obj.as_ref());
            invalid(&mut step, bad.to_string());
            step.write(api, &obj).await?;
            return Ok(Action::await_change());
        }
    };
    if mode == ReconcileMode::Paused {
        return Ok(Action::await_change());
    }
    finalizer(api, mpanel_crds::FINALIZER, obj, |event| async move {
        match event {
            Event::Apply(obj) => apply(obj, mode).await,
            Event::Cleanup(obj) => cleanup(obj, mode).await,
        }
    })
    .await
    .map_err(unwrap_finalizer_error)
}

/// The error of the apply or cleanup inside a finalizer error, or what kept the finalizer from
/// being added or removed.
fn unwrap_finalizer_error<E>(error: kube::runtime::finalizer::Error<E>) -> E
where
    E: std::error::Error + From<KubeCall> + From<Unfinished> + 'static,
{
    use kube::runtime::finalizer::Error as F;
    match error {
        F::ApplyFailed(e) | F::CleanupFailed(e) => e,
        F::AddFinalizer(e) => KubeCall::new("adding the finalizer", e).into(),
        F::RemoveFinalizer(e) => KubeCall::new("removing the finalizer", e).into(),
        F::UnnamedObject => Unfinished::Finalizer("the object has no name").into(),
        F::InvalidFinalizer => Unfinished::Finalizer("the finalizer name is not valid").into(),
    }
}

/// Removes the operator's finalizer from `obj` without touching the external object (which is
/// left as it is), logging `why`. Other finalizers stay.
pub async fn release_finalizer<K>(api: &Api<K>, obj: &K, why: &str) -> Result<(), KubeCall>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers = obj.meta().finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == mpanel_crds::FINALIZER) {
        return Ok(());
    }
    let rest: Vec<String> = finalizers.into_iter().filter(|f| f != mpanel_crds::FINALIZER).collect();
    // the resourceVersion makes this fail with a conflict if the list changed since it was read
    let patch = serde_json::json!({"metadata": {"finalizers": rest, "resourceVersion": obj.resource_version()}});
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .during("releasing the finalizer")?;
    tracing::info!(kind = %K::kind(&()), object = %object_key(obj), why, "finalizer released; the external object was left");
    Ok(())
}
