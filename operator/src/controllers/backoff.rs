//! When an object is looked at again: after a failure, on its own exponential backoff with jitter;
//! after a success, at a resync spread over time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use kube::{Resource, ResourceExt};

use super::{ReconcileError, object_key};

/// The retry after a failed reconcile of `obj`: logged with its stable reason and delayed by the
/// object's own backoff.
pub fn retry_later<K: ResourceExt, E: ReconcileError>(
    kind: &'static str,
    obj: &K,
    error: &E,
    backoff: &Backoff,
) -> kube::runtime::controller::Action {
    let key = object_key(obj);
    if let Some(after) = error.waiting() {
        tracing::debug!(kind, object = %key, reason = error.reason(), waiting = %error, ?after, "reconcile waits");
        return kube::runtime::controller::Action::requeue(after);
    }
    let delay = backoff.failed(&key);
    tracing::warn!(kind, object = %key, reason = error.reason(), error = %error, ?delay, "reconcile failed");
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
