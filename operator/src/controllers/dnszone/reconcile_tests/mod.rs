//! Reconcile-level unit tests of the dnszone controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use serde_json::{Value, json};

use crate::controllers::certificate::keys::managed_labels;
use crate::controllers::mailbox::dkim;
use crate::providers::powerdns::RrSet;
use crate::testing::harness::{Harness, assert_condition, derefs_to_harness, merged, object, with_mode};
use crate::testing::powerdns::FakePowerDns;
use crate::testing::{names_of, store_of};

const NS: &str = "acme";
const NAME: &str = "example";
const ZONE: &str = "example.com.";

/// A DnsZone `name` in `ns` with `spec` over the plain zone spec (one `www` A record).
fn zone_in(ns: &str, name: &str, spec: Value) -> DnsZone {
    let plain = json!({
        "zone": ZONE,
        "nameservers": ["ns1.migrahosting.com."],
        "records": [{"name": "www", "type": "A", "ttl": 300, "values": ["192.0.2.10"]}]
    });
    object("DnsZone", ns, name, merged(plain, spec))
}

fn zone(spec: Value) -> DnsZone {
    zone_in(NS, NAME, spec)
}

struct Setup {
    h: Harness<State<FakePowerDns>>,
    dns: FakePowerDns,
}

fn setup_with(names: crate::names::NameIndex, pods: &[CloudPod]) -> Setup {
    let dns = FakePowerDns::new();
    let h = Harness::new(State { names, dns: dns.clone(), cloudpods: store_of(pods) });
    Setup { h, dns }
}

fn setup() -> Setup {
    setup_with(names_of(&[], &[]), &[])
}

derefs_to_harness!(Setup, State<FakePowerDns>);

impl Setup {
    /// This setup on the same API and PowerDNS with `ctx` instead.
    fn with_ctx(self, ctx: Arc<Context<FakePowerDns>>) -> Setup {
        Setup { h: Harness { api: self.h.api.clone(), ctx }, dns: self.dns.clone() }
    }

    /// This setup's state (names, CloudPods) on `other`'s API and PowerDNS.
    fn ctx_on(self, other: &Setup) -> Arc<Context<FakePowerDns>> {
        let state = Arc::try_unwrap(self.h.ctx).ok().expect("the context is not shared").state;
        crate::testing::context(&other.api, State { dns: other.dns.clone(), ..state })
    }
}

mod creation;
mod deletion;
mod drift;
mod failures;
mod mail;
mod modes;
mod tenancy;
