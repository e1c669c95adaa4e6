//! One controller per kind, and what they share: status written by server-side apply, Events, and
//! per-object exponential backoff with jitter.

pub mod backup;
pub mod certificate;
pub mod cloudpod;
pub mod dnszone;
pub mod domain;
pub mod mailbox;
pub mod subscription;
pub mod unmanaged;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
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

/// `namespace/name`: how logs and the backoff name an object.
pub fn object_key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The stable reason of a finalizer error: the reason of the apply or cleanup error inside it.
pub fn finalizer_reason<E: std::error::Error + 'static>(
    error: &kube::runtime::finalizer::Error<E>,
    reason: impl Fn(&E) -> &'static str,
) -> &'static str {
    use kube::runtime::finalizer::Error as F;
    match error {
        F::ApplyFailed(e) | F::CleanupFailed(e) => reason(e),
        _ => mpanel_crds::reasons::FINALIZER_ERROR.name,
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
}

impl Unfinished {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TimedOut(_) => mpanel_crds::reasons::RECONCILE_TIMED_OUT.name,
            Self::Panicked(_) => mpanel_crds::reasons::RECONCILE_PANICKED.name,
        }
    }
}

/// Runs one reconcile of `obj` within the backoff's time bound, catching a panic: times and counts
/// it as `kind`, with the error's stable reason, and forgets the object's backoff after a success.
/// A reconcile that did not finish sets the object's Ready condition saying so.
pub async fn measured<K, E>(
    kind: &'static str,
    client: &Client,
    obj: &K,
    metrics: &crate::metrics::Metrics,
    backoff: &Backoff,
    reason: fn(&E) -> &'static str,
    run: impl std::future::Future<Output = Result<kube::runtime::controller::Action, E>>,
) -> Result<kube::runtime::controller::Action, E>
where
    K: StatusOf<Scope = kube::core::NamespaceResourceScope> + Serialize,
    E: From<Unfinished>,
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
    metrics.reconciled(kind, started.elapsed(), result.as_ref().err().map(reason));
    if result.is_ok() {
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
        let key = super::object_key(obj);
        if named("MPANEL_FAULT_STALL") == Some(key.as_str()) {
            std::future::pending::<()>().await;
        }
        if named("MPANEL_FAULT_PANIC") == Some(key.as_str()) {
            panic!("test fault point for {key}");
        }
        run.await
    }
}

/// The retry after a failed reconcile of `obj`: logged with its stable reason and delayed by the
/// object's own backoff.
pub fn retry_later<K: ResourceExt>(
    kind: &'static str,
    obj: &K,
    reason: &'static str,
    error: &dyn std::fmt::Display,
    backoff: &Backoff,
) -> kube::runtime::controller::Action {
    let key = object_key(obj);
    let delay = backoff.failed(&key);
    tracing::warn!(kind, object = %key, reason, error = %error, ?delay, "reconcile failed");
    kube::runtime::controller::Action::requeue(delay)
}

/// When to look at `obj` again after a reconcile that left nothing pending: `interval` ±10 %, by
/// a fraction fixed per object (a hash of its UID), so resyncs are spread over time instead of
/// every object's falling at the same moment. Fixed rather than drawn anew each time: objects
/// that started together (a restart, a bulk apply) drift apart by their different periods every
/// cycle, which spreads them faster than a random walk would, each object's own resyncs stay
/// evenly spaced, and every replica computes the same delay.
pub fn resync_after<K: Resource>(obj: &K, interval: Duration) -> Duration {
    let meta = obj.meta();
    let id = meta.uid.as_deref().or(meta.name.as_deref()).unwrap_or_default();
    // FNV-1a: stable across processes and Rust versions, unlike the std hashers
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let spread = (hash % 2001) as f64 / 10_000.0 - 0.1;
    interval.mul_f64(1.0 + spread)
}

/// A kind whose status the shared [`Step`] works on.
pub trait StatusOf: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug {
    type Status: Clone + Default + PartialEq + Serialize;
    type Phase;
    /// The field manager this kind's controller writes its status as.
    const FIELD_MANAGER: &'static str;
    fn status(&self) -> Option<&Self::Status>;
    fn conditions(status: &mut Self::Status) -> &mut Vec<mpanel_crds::conditions::Condition>;
    fn observed_generation(status: &mut Self::Status) -> &mut Option<i64>;
    fn phase(status: &mut Self::Status) -> &mut Option<Self::Phase>;
}

/// The status of one object being worked out in one reconcile, written once at the end.
pub struct Step<K: StatusOf> {
    pub status: K::Status,
    pub generation: Option<i64>,
    pub at: Time,
}

impl<K: StatusOf> Step<K> {
    pub fn new(obj: &K) -> Self {
        Self { status: obj.status().cloned().unwrap_or_default(), generation: obj.meta().generation, at: now() }
    }

    /// Sets a condition at this generation; true when it changed (news worth an Event).
    pub fn set(&mut self, o: mpanel_crds::conditions::Observation) -> bool {
        *K::observed_generation(&mut self.status) = self.generation;
        mpanel_crds::conditions::set(K::conditions(&mut self.status), o, self.generation, &self.at)
    }

    /// Sets Ready=False (and the phase, if given); true when Ready changed.
    pub fn not_ready(&mut self, phase: Option<K::Phase>, reason: &str, message: String) -> bool {
        if phase.is_some() {
            *K::phase(&mut self.status) = phase;
        }
        self.set(mpanel_crds::conditions::Observation::new(mpanel_crds::conditions::READY, false, reason, message))
    }

    /// Records an external system's error verbatim: in `condition` (if given) and Ready, with a
    /// Warning Event when Ready changed; then writes the status.
    pub async fn record_failure(
        mut self,
        api: &Api<K>,
        obj: &K,
        condition: Option<&'static str>,
        (reason, message): (&'static str, String),
        recorder: &Recorder,
        action: &str,
    ) -> Result<(), kube::Error> {
        if let Some(c) = condition {
            self.set(mpanel_crds::conditions::Observation::new(c, false, reason, message.clone()));
        }
        if self.not_ready(None, reason, message.clone()) {
            publish(recorder, obj, true, reason, action, message).await;
        }
        self.write(api, obj).await
    }

    /// Writes the status unless it equals what is stored (a resync that finds nothing new writes nothing).
    pub async fn write(self, api: &Api<K>, obj: &K) -> Result<(), kube::Error> {
        write_changed_status(api, obj, &self.status).await
    }
}

/// Writes `status` by server-side apply as `K`'s field manager, unless it equals what is stored;
/// `Stalled` follows Ready (see [`with_stalled`]).
pub async fn write_changed_status<K: StatusOf>(api: &Api<K>, obj: &K, status: &K::Status) -> Result<(), kube::Error> {
    let status = with_stalled::<K>(status);
    if obj.status() == Some(&status) {
        return Ok(());
    }
    apply_status(api, obj, K::FIELD_MANAGER, &status).await
}

/// `status` with the kstatus `Stalled` condition: True, with Ready's reason, message and
/// generation, while Ready is False for a reason no retry changes; absent otherwise.
fn with_stalled<K: StatusOf>(status: &K::Status) -> K::Status {
    use mpanel_crds::conditions::{self, Observation};
    use mpanel_crds::reasons::{condition_types::STALLED, stalls};
    let mut status = status.clone();
    let all = K::conditions(&mut status);
    let ready = conditions::find(all, conditions::READY).cloned();
    match ready {
        Some(ready) if ready.status == "False" && stalls(&ready.reason) => {
            let observation = Observation::new(STALLED.name, true, ready.reason, ready.message);
            conditions::set(all, observation, ready.observed_generation, &ready.last_transition_time);
        }
        _ => all.retain(|c| c.type_ != STALLED.name),
    }
    status
}

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
    E: std::error::Error + From<kube::Error> + From<Box<kube::runtime::finalizer::Error<E>>> + 'static,
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
    .map_err(|e| E::from(Box::new(e)))
}

/// Removes the operator's finalizer from `obj` without touching the external object (which is
/// left as it is), logging `why`. Other finalizers stay.
pub async fn release_finalizer<K>(api: &Api<K>, obj: &K, why: &str) -> Result<(), kube::Error>
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
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    tracing::info!(kind = %K::kind(&()), object = %object_key(obj), why, "finalizer released; the external object was left");
    Ok(())
}

/// The text under `key` of a Secret in `namespace`, with the Secret's resourceVersion (which says
/// when it changed without keeping its content anywhere); or, for a condition, why there is none.
pub async fn read_secret_key(
    client: &Client,
    namespace: &str,
    key: &mpanel_crds::common::SecretKeySelector,
) -> Result<Result<(String, String), String>, kube::Error> {
    use k8s_openapi::api::core::v1::Secret;
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), namespace).get_opt(&key.name).await? else {
        return Ok(Err(format!("Secret {} does not exist", key.name)));
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(&key.key)) else {
        return Ok(Err(format!("Secret {} has no key {:?}", key.name, key.key)));
    };
    let Ok(text) = String::from_utf8(bytes.0.clone()) else {
        return Ok(Err(format!("key {:?} of Secret {} is not UTF-8 text", key.key, key.name)));
    };
    Ok(Ok((text, secret.resource_version().unwrap_or_default())))
}

/// The annotation with a digest of the configuration a controller last applied to an object.
pub const APPLIED_ANNOTATION: &str = "mpanel.migrahosting.com/applied";

/// Server-side applies `want` to `name` as `field_manager`, so that among the fields this manager
/// owns the object has exactly what `want` says: a field `want` no longer carries (a record, an
/// alias, a name) is removed, unless another writer owns it too. A resync that finds the object
/// carrying this very configuration (its digest in [`APPLIED_ANNOTATION`]) and holding every field
/// of it writes nothing. Returns the object as it is now.
pub async fn apply_owned<K>(
    api: &Api<K>,
    existing: Option<K>,
    name: &str,
    field_manager: &str,
    want: &serde_json::Value,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let digest = digest(want);
    let mut want = want.clone();
    want["metadata"]["annotations"][APPLIED_ANNOTATION] = serde_json::Value::String(digest.clone());
    match existing {
        Some(obj) if obj.annotations().get(APPLIED_ANNOTATION) == Some(&digest) && holds(&obj, &want) => Ok(obj),
        _ => api.patch(name, &PatchParams::apply(field_manager).force(), &Patch::Apply(&want)).await,
    }
}

/// A digest of a configuration (64-bit FNV-1a of its JSON text, in hex): the same on every
/// replica and release, unlike the standard library's hasher.
fn digest(want: &serde_json::Value) -> String {
    let hash = want
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{hash:016x}")
}

/// Whether `obj` holds every field of `want` (an object another writer may have added to):
/// objects key by key, lists element by element in any order.
fn holds(obj: &impl Serialize, want: &serde_json::Value) -> bool {
    serde_json::to_value(obj).is_ok_and(|have| contains(&have, want))
}

fn contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => w.iter().all(|wv| h.iter().any(|hv| contains(hv, wv))),
        (h, w) => h == w,
    }
}

/// The current time as a Kubernetes timestamp.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Writes `status` with server-side apply as `field_manager` (one per controller).
async fn apply_status<K>(api: &Api<K>, obj: &K, field_manager: &str, status: &impl Serialize) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &PatchParams::apply(field_manager).force(), &Patch::Apply(patch)).await.map(drop)
}

/// Publishes an Event about `obj`; failing to record one never fails a reconcile.
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not record an Event");
    }
}

/// How one object's reconciles are retried: each attempt runs at most `attempt_bound`; after a
/// failure the next waits 1 s doubling to 5 min, ±20 % jitter, reset by a success.
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
    jitter: RandomState,
    pub attempt_bound: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::bounded(Duration::from_secs(120))
    }
}

impl Backoff {
    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    pub fn bounded(attempt_bound: Duration) -> Self {
        Self { failures: Mutex::default(), jitter: RandomState::new(), attempt_bound }
    }

    /// The delay before retrying `key` after one more failure.
    pub fn failed(&self, key: &str) -> Duration {
        let attempts = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key.to_owned()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        let exp = Self::BASE.saturating_mul(1u32 << (attempts - 1).min(16)).min(Self::MAX);
        // a hash of (key, attempts) spreads retries of objects that failed together
        let spread = (self.jitter.hash_one((key, attempts)) % 401) as f64 / 1000.0 - 0.2;
        exp.mul_f64(1.0 + spread)
    }

    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_follows_a_ready_reason_no_retry_changes() {
        use mpanel_crds::dnszone::{DnsZone, DnsZoneStatus};
        let status = |reason: &str, ready: &str| -> DnsZoneStatus {
            serde_json::from_value(serde_json::json!({"conditions": [
                {"type": "Ready", "status": ready, "reason": reason, "message": "why", "observedGeneration": 3,
                 "lastTransitionTime": "2027-01-15T08:00:00Z"}]}))
            .expect("a DnsZone status")
        };
        let stalled = |s: &DnsZoneStatus| s.conditions.iter().find(|c| c.type_ == "Stalled").cloned();
        let held = with_stalled::<DnsZone>(&status("NameHeldElsewhere", "False"));
        let c = stalled(&held).expect("Stalled while the name is held elsewhere");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str(), c.observed_generation),
            ("True", "NameHeldElsewhere", "why", Some(3))
        );
        assert_eq!(with_stalled::<DnsZone>(&held), held, "deriving it again changes nothing");
        assert_eq!(
            stalled(&with_stalled::<DnsZone>(&status("ProviderUnavailable", "False"))),
            None,
            "a retry may help"
        );
        let mut recovered = held.clone();
        recovered.conditions[0].status = "True".into();
        assert_eq!(stalled(&with_stalled::<DnsZone>(&recovered)), None, "Ready again: no longer stalled");
    }

    #[test]
    fn a_configuration_has_one_digest_and_a_smaller_one_another() {
        let full = serde_json::json!({"spec": {"records": [{"name": "www"}, {"name": "old"}]}});
        let smaller = serde_json::json!({"spec": {"records": [{"name": "www"}]}});
        assert_eq!(digest(&full), digest(&full.clone()));
        assert_ne!(
            digest(&full),
            digest(&smaller),
            "a removal must be applied although the object still holds the rest"
        );
        assert!(holds(&full, &smaller));
    }

    #[test]
    fn holding_ignores_what_others_added() {
        let have = serde_json::json!({"spec": {"zone": "a.com", "records": [{"name": "www", "type": "A"}, {"name": "@", "type": "A", "values": ["192.0.2.1"], "ttl": 300}]}});
        assert!(holds(
            &have,
            &serde_json::json!({"spec": {"zone": "a.com", "records": [{"name": "@", "type": "A", "values": ["192.0.2.1"]}]}})
        ));
        assert!(!holds(
            &have,
            &serde_json::json!({"spec": {"records": [{"name": "@", "type": "A", "values": ["192.0.2.2"]}]}})
        ));
        assert!(!holds(&have, &serde_json::json!({"spec": {"nameservers": ["ns1.a.net"]}})));
    }

    #[test]
    fn resyncs_of_many_objects_are_spread_within_ten_percent_and_each_object_keeps_its_own() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let object = |uid: String| ConfigMap {
            metadata: ObjectMeta { name: Some("z".into()), uid: Some(uid), ..ObjectMeta::default() },
            ..ConfigMap::default()
        };
        let interval = Duration::from_secs(300);
        let delays: Vec<Duration> =
            (0..1000).map(|i| resync_after(&object(format!("6f1c2a4e-0000-4000-8000-{i:012x}")), interval)).collect();
        let (low, high) = (Duration::from_secs(270), Duration::from_secs(330));
        assert!(delays.iter().all(|d| *d >= low && *d <= high), "all within 300 s ± 10 %");
        // spread over the whole band: every tenth of it holds some of the 1,000 objects
        for tenth in 0..10 {
            let from = low + Duration::from_secs(6 * tenth);
            let held = delays.iter().filter(|d| **d >= from && **d < from + Duration::from_secs(6)).count();
            assert!((50..=150).contains(&held), "{held} of 1000 delays in [{from:?}, +6 s)");
        }
        let first = object("6f1c2a4e-0000-4000-8000-000000000000".into());
        assert_eq!(resync_after(&first, interval), delays[0], "the same object gets the same delay every time");
    }

    #[test]
    fn backoff_doubles_with_jitter_caps_and_resets() {
        let b = Backoff::default();
        let first = b.failed("ns/a");
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200), "{first:?}");
        let second = b.failed("ns/a");
        assert!(second >= Duration::from_millis(1600) && second <= Duration::from_millis(2400), "{second:?}");
        for _ in 0..20 {
            b.failed("ns/a");
        }
        assert!(b.failed("ns/a") <= Backoff::MAX.mul_f64(1.2));
        b.succeeded("ns/a");
        assert!(b.failed("ns/a") <= Duration::from_millis(1200));
        assert!(b.failed("ns/other") <= Duration::from_millis(1200), "objects back off independently");
    }
}
