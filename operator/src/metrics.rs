//! Prometheus metrics: reconciles, errors by reason, durations, provider calls, drift repairs, the
//! requests the operator sends to the Kubernetes API (see [`ApiRequestsLayer`]), and the objects
//! the controllers watch (see [`crate::inventory`]).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, Uri, header};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`, `deletecollection`
    /// or `other`
    pub verb: &'static str,
    /// The resource's plural, with its subresource (`cloudpods/status`); the path's first segment
    /// for requests that name no resource (`version`, `apis`).
    pub resource: String,
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
    api_requests: Family<ApiRequestLabels, Counter>,
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
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests sent to the Kubernetes API, by verb (a watch is a list with watch=true) and resource",
            api_requests.clone(),
        );
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
            api_requests,
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

    /// A request to the Kubernetes API is being sent.
    pub fn api_request(&self, verb: &'static str, resource: String) {
        self.api_requests.get_or_create(&ApiRequestLabels { verb, resource }).inc();
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A layer of the operator's Kubernetes client that counts each request it sends, by verb and
/// resource, in `mpanel_api_requests_total`: what the operator asks of the API server, watches
/// included, measured on the wire rather than from the controllers' own bookkeeping.
#[derive(Clone)]
pub struct ApiRequestsLayer {
    metrics: Arc<Metrics>,
}

impl ApiRequestsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for ApiRequestsLayer {
    type Service = ApiRequests<S>;

    fn layer(&self, inner: S) -> ApiRequests<S> {
        ApiRequests { inner, metrics: self.metrics.clone() }
    }
}

/// The service [`ApiRequestsLayer`] wraps the client's stack in.
#[derive(Clone)]
pub struct ApiRequests<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<Request<B>> for ApiRequests<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (verb, resource) = api_request_kind(request.method(), request.uri(), request.headers());
        self.metrics.api_request(verb, resource);
        self.inner.call(request)
    }
}

/// The verb and the resource of a request to the Kubernetes API: `/api/v1/namespaces/a/secrets`
/// with `watch=true` is a `watch` of `secrets`, a PATCH of `.../cloudpods/x/status` in the apply
/// content type an `apply` of `cloudpods/status`.
pub fn api_request_kind(method: &Method, uri: &Uri, headers: &HeaderMap) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // after /api/<version> or /apis/<group>/<version>
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        other => other,
    };
    // a namespaced resource: namespaces/<ns>/<plural>/...; the namespace itself otherwise
    let rest = match rest {
        ["namespaces", _, resource, tail @ ..] => {
            let mut r = vec![*resource];
            r.extend_from_slice(tail);
            r
        }
        other => other.to_vec(),
    };
    let resource = match rest.as_slice() {
        [] => segments.first().copied().unwrap_or_default().to_owned(),
        [plural] | [plural, _] => (*plural).to_owned(),
        [plural, _, sub, ..] => format!("{plural}/{sub}"),
    };
    let named = rest.len() >= 2;
    let watch = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|pair| matches!(pair.split_once('='), Some(("watch", "true" | "1"))));
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => {
            let apply = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/apply-patch"));
            if apply { "apply" } else { "patch" }
        }
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, uri: &str, content_type: Option<&str>) -> (&'static str, String) {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, ct.parse().unwrap_or_else(|_| unreachable!()));
        }
        api_request_kind(&method, &uri.parse().unwrap_or_else(|_| unreachable!()), &headers)
    }

    #[test]
    fn requests_are_told_apart_by_verb_and_resource() {
        let cases = [
            (
                Method::GET,
                "/apis/mpanel.migrahosting.com/v1alpha1/namespaces/a/cloudpods?watch=true&timeoutSeconds=290",
                None,
                "watch",
                "cloudpods",
            ),
            (
                Method::GET,
                "/apis/mpanel.migrahosting.com/v1alpha1/cloudpods?&watch=1&resourceVersion=5",
                None,
                "watch",
                "cloudpods",
            ),
            (
                Method::GET,
                "/apis/mpanel.migrahosting.com/v1alpha1/dnszones?resourceVersion=0",
                None,
                "list",
                "dnszones",
            ),
            (Method::GET, "/api/v1/namespaces/a/secrets?watch=false", None, "list", "secrets"),
            (Method::GET, "/api/v1/namespaces/a/secrets/dkim-x", None, "get", "secrets"),
            (
                Method::PATCH,
                "/apis/g/v1/namespaces/a/mailboxes/m/status",
                Some("application/apply-patch+yaml"),
                "apply",
                "mailboxes/status",
            ),
            (
                Method::PATCH,
                "/apis/g/v1/namespaces/a/mailboxes/m",
                Some("application/merge-patch+json"),
                "patch",
                "mailboxes",
            ),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events", None, "create", "events"),
            (Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", None, "update", "leases"),
            (Method::DELETE, "/apis/g/v1/namespaces/a/domains/d", None, "delete", "domains"),
            (Method::GET, "/api/v1/namespaces/a", None, "get", "namespaces"),
            (
                Method::GET,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x",
                None,
                "get",
                "customresourcedefinitions",
            ),
            (Method::GET, "/version", None, "list", "version"),
        ];
        for (method, uri, ct, verb, resource) in cases {
            assert_eq!(kind(method, uri, ct), (verb, resource.to_owned()), "{uri}");
        }
    }
}
