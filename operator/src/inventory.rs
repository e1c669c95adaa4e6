//! Gauges of what the operator's watches hold, computed at each scrape: objects by kind, phase
//! and readiness, and the expiry of each Certificate and Domain. Each controller hands over its
//! watch's store; nothing is counted twice and nothing is kept between scrapes.

use std::fmt;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use crate::controllers::StatusOf;

/// One object as the gauges see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub namespace: String,
    pub name: String,
    /// `status.phase` as written, `Unknown` before the first status.
    pub phase: String,
    pub ready: bool,
    /// What the expiry gauge of the kind says, in seconds since the epoch.
    pub expires: Option<i64>,
}

/// What a kind contributes: its name, the gauge its expiry goes to (if any), and its samples now.
struct Source {
    kind: &'static str,
    expiry_metric: Option<&'static str>,
    samples: Box<dyn Fn() -> Vec<Sample> + Send + Sync>,
}

#[derive(Clone, Default)]
pub struct Inventory {
    sources: Arc<Mutex<Vec<Source>>>,
}

impl fmt::Debug for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inventory")
    }
}

/// Expiry gauges (without the registry's `mpanel_` prefix), cert-manager's naming.
pub const CERTIFICATE_EXPIRY: &str = "certificate_expiration_timestamp_seconds";
pub const DOMAIN_EXPIRY: &str = "domain_expiration_timestamp_seconds";

impl Inventory {
    /// Counts the objects of `store` from now on; `expiry` gives an object's expiry for the gauge
    /// `expiry_metric`.
    pub fn watch<K>(
        &self,
        kind: &'static str,
        store: Store<K>,
        expiry_metric: Option<&'static str>,
        expiry: fn(&K) -> Option<i64>,
    ) where
        K: StatusOf + Send + Sync + 'static,
        K::Phase: Serialize,
    {
        let samples = Box::new(move || store.state().iter().map(|obj| sample(obj.as_ref(), expiry)).collect());
        self.sources.lock().unwrap_or_else(|e| e.into_inner()).push(Source { kind, expiry_metric, samples });
    }
}

/// How `obj` stands.
pub fn sample<K: StatusOf>(obj: &K, expiry: fn(&K) -> Option<i64>) -> Sample
where
    K::Phase: Serialize,
{
    // read in place: every object is sampled at every scrape
    let (phase, conditions) = obj.phase_and_conditions();
    let phase = phase
        .and_then(|p| serde_json::to_value(p).ok()?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "Unknown".to_owned());
    let ready = mpanel_crds::conditions::is_ready_at(conditions, obj.meta().generation);
    Sample { namespace: obj.namespace().unwrap_or_default(), name: obj.name_any(), phase, ready, expires: expiry(obj) }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: &'static str,
    phase: String,
    /// `true` or `false`
    ready: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectRefLabels {
    namespace: String,
    name: String,
}

impl Collector for Inventory {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let objects = Family::<ObjectLabels, Gauge>::default();
        let expiries: Vec<(&'static str, Family<ObjectRefLabels, Gauge>)> =
            [CERTIFICATE_EXPIRY, DOMAIN_EXPIRY].into_iter().map(|m| (m, Family::default())).collect();
        for source in self.sources.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for s in (source.samples)() {
                let ready = if s.ready { "true" } else { "false" };
                objects.get_or_create(&ObjectLabels { kind: source.kind, phase: s.phase.clone(), ready }).inc();
                let gauge = expiries.iter().find(|(m, _)| Some(*m) == source.expiry_metric);
                if let (Some((_, family)), Some(at)) = (gauge, s.expires) {
                    family.get_or_create(&ObjectRefLabels { namespace: s.namespace, name: s.name }).set(at);
                }
            }
        }
        let help = "Objects the operator watches, by kind, phase and whether Ready is True at their generation";
        objects.encode(encoder.encode_descriptor("objects", help, None, objects.metric_type())?)?;
        for (metric, family) in &expiries {
            let help = match *metric {
                CERTIFICATE_EXPIRY => {
                    "When a Certificate's current certificate expires (status.notAfter), seconds since the epoch"
                }
                _ => {
                    "When a Domain's registration expires at the registrar (status.expiresAt, 00:00 UTC), seconds since the epoch"
                }
            };
            family.encode(encoder.encode_descriptor(metric, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpanel_crds::dnszone::DnsZone;

    #[test]
    fn objects_are_counted_by_kind_phase_and_readiness_at_scrape_time() {
        let (store, mut writer) = kube::runtime::reflector::store::<DnsZone>();
        let zone = |name: &str, phase: Option<&str>, ready: &str| -> DnsZone {
            let mut z: DnsZone = serde_json::from_value(serde_json::json!({
                "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
                "metadata": {"name": name, "namespace": "ns", "uid": name, "generation": 2},
                "spec": {"zone": format!("{name}.test"), "nameservers": ["ns1.example.net"]}}))
            .expect("a DnsZone");
            if let Some(phase) = phase {
                z.status = serde_json::from_value(serde_json::json!({"phase": phase, "conditions": [
                    {"type": "Ready", "status": ready, "reason": "R", "message": "", "observedGeneration": 2,
                     "lastTransitionTime": "2027-01-15T08:00:00Z"}]}))
                .ok();
            }
            z
        };
        let inventory = Inventory::default();
        inventory.watch("DnsZone", store, None, |_| None);
        let mut registry = prometheus_client::registry::Registry::with_prefix("mpanel");
        registry.register_collector(Box::new(inventory));
        for z in [zone("a", Some("Ready"), "True"), zone("b", Some("Ready"), "True"), zone("c", None, "")] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(z));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoded");
        assert!(text.contains(r#"mpanel_objects{kind="DnsZone",phase="Ready",ready="true"} 2"#), "{text}");
        assert!(text.contains(r#"mpanel_objects{kind="DnsZone",phase="Unknown",ready="false"} 1"#), "{text}");
        // gone from the watch, gone from the next scrape
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(zone("b", Some("Ready"), "True")));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoded");
        assert!(text.contains(r#"mpanel_objects{kind="DnsZone",phase="Ready",ready="true"} 1"#), "{text}");
    }
}
