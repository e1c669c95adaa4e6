//! Kinds whose controller this configuration does not run (say the registrar was taken out of the
//! configuration): an object of such a kind that is deleted loses the operator's finalizer, and
//! its external object is left as it is. A disabled controller never leaves undeletable objects.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{Changes, publish, release_finalizer};

struct Context {
    client: Client,
    recorder: Recorder,
}

/// Releases the finalizer of deleted `K`s in the operator's namespace until `shutdown`, following
/// them on the operator's one watch of `K` (`changes` and `store` from the [`super::Hub`]).
pub async fn release<K>(
    client: Client,
    (changes, store): (Changes<K>, Store<K>),
    recorder: Recorder,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) where
    K: super::Watchable,
{
    if !super::ready(&store).await {
        return;
    }
    Controller::for_shared_stream(changes, store)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, |_, _, _| Action::requeue(Duration::from_secs(5)), Arc::new(Context { client, recorder }))
        .for_each(|_| std::future::ready(()))
        .await;
}

async fn reconcile<K>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, super::KubeCall>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let held = obj.finalizers().iter().any(|f| f == mpanel_crds::FINALIZER);
    if obj.meta().deletion_timestamp.is_none() || !held {
        return Ok(Action::await_change());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let why = format!("no {} controller is configured; the external object was left as it is", K::kind(&()));
    release_finalizer(&api, obj.as_ref(), &why).await?;
    publish(&ctx.recorder, obj.as_ref(), false, mpanel_crds::reasons::ORPHANED.name, "Delete", why).await;
    Ok(Action::await_change())
}
