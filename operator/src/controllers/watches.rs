//! What controllers watch: the API of a kind in the operator's scope, stores of related objects kept
//! filled in the background, Secret changes as metadata, and the filter that drops a controller's
//! own status writes.

use std::sync::Arc;

use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// The API of `K` in the one namespace a controller watches, or in all namespaces.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Keeps the store behind `writer` filled from a watch of `api`, in the background, so a
/// controller can look up related objects; returns once the store holds the first full list, or
/// false (logged) when the watch ended before that.
pub async fn follow<K>(writer: kube::runtime::reflector::store::Writer<K>, api: Api<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    follow_counting(writer, api, Arc::default()).await
}

/// [`follow`], adding one to `changes` after each watch event reached the store, so that a reader
/// can tell whether what it derived from the store is still current.
pub async fn follow_counting<K>(
    writer: kube::runtime::reflector::store::Writer<K>,
    api: Api<K>,
    changes: Arc<std::sync::atomic::AtomicU64>,
) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let store = writer.as_reader();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff().for_each(move |_| {
            changes.fetch_add(1, std::sync::atomic::Ordering::Release);
            std::future::ready(())
        });
    tokio::spawn(stream);
    let ready = store.wait_until_ready().await.is_ok();
    if !ready {
        tracing::error!(kind = %K::kind(&()), "the watch ended before it was ready");
    }
    ready
}

/// Changes of the Secrets in scope, as metadata only: a controller that follows the Secrets it
/// refers to reads the one it needs when it reconciles, so tenants' large Secrets never sit in the
/// operator's memory. A change of a Secret's data changes its metadata (resourceVersion) too.
pub fn secret_changes(
    client: &Client,
    namespace: Option<&str>,
) -> impl futures::Stream<
    Item = Result<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>, kube::runtime::watcher::Error>,
> + Send
+ 'static {
    use kube::core::PartialObjectMeta;
    use kube::runtime::{WatchStreamExt, watcher};
    type SecretMeta = PartialObjectMeta<k8s_openapi::api::core::v1::Secret>;
    // an Api of PartialObjectMeta makes metadata-only requests
    watcher(scoped::<SecretMeta>(client, namespace), watcher::Config::default()).default_backoff().touched_objects()
}

/// A watch filter that lets through what a person or GitOps changed (spec, annotations such as the
/// reconcile mode, finalizers, deletion) and drops the controller's own status writes. For kinds
/// that spend money, a status write must not start the next attempt early: retries follow the
/// backoff.
pub fn intent<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.as_ref().map(|t| t.0.as_second()).hash(&mut hasher);
    Some(hasher.finish())
}
