//! Prometheus metrics: reconciles, errors by reason, durations, provider calls, drift repairs, and
//! the objects the controllers watch (see [`crate::inventory`]).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    /// `ok` or `error`
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: &'static str,
    pub operation: &'static str,
    /// `read` or `write`: a resync that finds nothing to do makes no `write` calls.
    pub access: &'static str,
    /// `ok` or `error`
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOnlyLabels {
    pub provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOperationLabels {
    pub provider: &'static str,
    pub operation: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Objects by kind and phase, and expiries, read from the controllers' watches at each scrape.
    pub inventory: crate::inventory::Inventory,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    provider_calls: Family<ProviderLabels, Counter>,
    provider_call_duration: Family<ProviderOperationLabels, Histogram>,
    provider_throttle_wait: Family<ProviderOnlyLabels, Histogram>,
    drift_repairs: Family<KindLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mpanel");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register("reconciles", "Reconciles run, by kind and result", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles, by kind and stable reason", reconcile_errors.clone());
        let reconcile_duration =
            Family::<KindLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register("reconcile_duration_seconds", "Time one reconcile took", reconcile_duration.clone());
        let provider_calls = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Calls to external systems, by provider, operation and result",
            provider_calls.clone(),
        );
        let provider_call_duration =
            Family::<ProviderOperationLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "provider_call_duration_seconds",
            "Latency of calls to external systems",
            provider_call_duration.clone(),
        );
        let provider_throttle_wait =
            Family::<ProviderOnlyLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "provider_throttle_wait_seconds",
            "Time a request to an external system waited for its turn under the client-side limits",
            provider_throttle_wait.clone(),
        );
        let drift_repairs = Family::<KindLabels, Counter>::default();
        registry.register("drift_repairs", "Out-of-band changes found and repaired, by kind", drift_repairs.clone());
        let inventory = crate::inventory::Inventory::default();
        registry.register_collector(Box::new(inventory.clone()));
        Self {
            registry,
            inventory,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            provider_calls,
            provider_call_duration,
            provider_throttle_wait,
            drift_repairs,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &'static str, took: Duration, error_reason: Option<&'static str>) {
        let result = if error_reason.is_some() { "error" } else { "ok" };
        self.reconciles.get_or_create(&ReconcileLabels { kind, result }).inc();
        self.reconcile_duration.get_or_create(&KindLabels { kind }).observe(took.as_secs_f64());
        if let Some(reason) = error_reason {
            self.reconcile_errors.get_or_create(&ErrorLabels { kind, reason }).inc();
        }
    }

    pub fn provider_call(
        &self,
        provider: &'static str,
        operation: &'static str,
        write: bool,
        ok: bool,
        took: Duration,
    ) {
        let labels = ProviderLabels {
            provider,
            operation,
            access: if write { "write" } else { "read" },
            result: if ok { "ok" } else { "error" },
        };
        self.provider_calls.get_or_create(&labels).inc();
        self.provider_call_duration
            .get_or_create(&ProviderOperationLabels { provider, operation })
            .observe(took.as_secs_f64());
    }

    /// A request to `provider` waited `waited` for its turn (zero when it went at once).
    pub fn provider_throttled(&self, provider: &'static str, waited: Duration) {
        self.provider_throttle_wait.get_or_create(&ProviderOnlyLabels { provider }).observe(waited.as_secs_f64());
    }

    pub fn drift_repaired(&self, kind: &'static str) {
        self.drift_repairs.get_or_create(&KindLabels { kind }).inc();
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
