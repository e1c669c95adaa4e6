//! Stand-ins for the reconcilers' unit tests: an in-memory Kubernetes API the real kube client
//! talks to, and an in-memory fake of every provider trait. Nothing here runs outside `cargo test`.

#![allow(dead_code, reason = "stand-ins for the unit tests: not every test uses every helper")]

pub mod acme;
pub mod apiserver;
pub mod calls;
pub mod dns_listener;
pub mod harness;
pub mod mailcore;
pub mod namesilo;
pub mod powerdns;
pub mod proxmox;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::Domain;

use crate::controllers::{Backoff, Clock, Context, Kind, Reconcile};
use crate::metrics::Metrics;
use crate::names::NameIndex;

/// The moment a unit test's clock starts at, unless the test sets another.
pub const T0: &str = "2026-06-01T12:00:00Z";

/// A controller's context on `api`, around the kind's own `state`: fresh metrics, a one-minute
/// resync, the default backoff and a clock standing still at [`T0`] (move it with
/// `ctx.clock.advance`).
pub fn context<S>(api: &apiserver::FakeApiServer, state: S) -> Arc<Context<S>> {
    let client = api.client();
    let recorder = Recorder::new(client.clone(), Reporter { controller: "mpanel-operator".into(), instance: None });
    Arc::new(Context {
        client,
        namespace: None,
        metrics: Arc::new(Metrics::default()),
        recorder,
        resync: Duration::from_secs(60),
        backoff: Backoff::default(),
        clock: Clock::fixed(T0.parse().expect("T0 is a timestamp")),
        state,
    })
}

/// A store holding exactly `objects`, as a watch that listed them would.
pub fn store_of<K: Kind>(objects: &[K]) -> Store<K> {
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for obj in objects {
        writer.apply_watcher_event(&Event::InitApply(obj.clone()));
    }
    writer.apply_watcher_event(&Event::InitDone);
    reader
}

/// The name index over `zones` and `domains`, as every namespace's claims stand in them.
pub fn names_of(zones: &[DnsZone], domains: &[Domain]) -> NameIndex {
    NameIndex::new(store_of(zones), Some(store_of(domains)))
}

/// One reconcile of `obj` as the controller runs it (attempt bound, reconcile mode, finalizer),
/// on the object as the API server holds it now.
pub async fn reconcile_once<K, S>(
    ctx: &Arc<Context<S>>,
    api: &apiserver::FakeApiServer,
    obj: &K,
) -> Result<kube::runtime::controller::Action, S::Error>
where
    K: Kind + serde::Serialize,
    S: Reconcile<K>,
{
    use kube::ResourceExt;
    let ns = obj.namespace().unwrap_or_default();
    let current: K = api.get(&ns, &obj.name_any()).unwrap_or_else(|| obj.clone());
    crate::controllers::reconcile(Arc::new(current), ctx.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::dnszone;
    use mpanel_crds::dnszone::DnsZone;

    /// The stand-ins fit together: a DnsZone applied to the fake API is reconciled by the real
    /// controller code into the fake PowerDNS, and its status says so.
    #[tokio::test]
    async fn a_dnszone_reconciled_against_the_fakes_is_ready_and_served() {
        let api = apiserver::FakeApiServer::new();
        let zone: DnsZone = serde_json::from_value(serde_json::json!({
            "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
            "metadata": {"name": "example", "namespace": "acme"},
            "spec": {"zone": "example.com.", "nameservers": ["ns1.migrahosting.com."], "records": [{"name": "www", "type": "A", "ttl": 300, "values": ["192.0.2.10"]}]}
        }))
        .unwrap();
        api.put(&zone);
        let dns = powerdns::FakePowerDns::new();
        let state = dnszone::State { names: names_of(&[], &[]), dns: dns.clone(), cloudpods: store_of(&[]) };
        let ctx = context(&api, state);
        for _ in 0..3 {
            reconcile_once(&ctx, &api, &zone).await.unwrap();
        }
        let stored: DnsZone = api.get("acme", "example").unwrap();
        let ready = stored.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).cloned();
        assert_eq!(ready.map(|c| c.status), Some("True".to_owned()), "{:?}", stored.status);
        assert_eq!(dns.contents("example.com.", "www.example.com.", "A"), vec!["192.0.2.10".to_owned()]);
    }
}
