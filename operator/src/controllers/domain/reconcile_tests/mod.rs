//! Reconcile-level unit tests of the domain controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use mpanel_crds::domain::{Adoption, OrderState};
use serde_json::{Value, json};

use crate::testing;
use crate::testing::apiserver::FakeApiServer;
use crate::testing::harness::{Harness, derefs_to_harness, phase_of, shown, with_annotation};
use crate::testing::namesilo::FakeNamesilo;

mod deletion;
mod modes;
mod registration;
mod renewal;
mod settings;
mod sync;
mod transfer;
mod zone;

const NS: &str = "customer-acme";
/// The registrar's today, the same day as the context's clock ([`testing::T0`]).
const TODAY: &str = "2026-06-01";
const OUR_NS: [&str; 2] = ["ns1.migrahosting.com", "ns2.migrahosting.com"];
/// How often the registrar is read when nothing is due (`namesilo.registrarSyncInterval`).
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Past the registrar sync of every Domain (the interval, spread ±10 % per Domain).
fn past_the_sync() -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(SYNC_INTERVAL.as_secs() * 11 / 10 + 1).unwrap())
}

/// A Domain `name` in [`NS`] with `spec` (registration given in full).
fn domain(name: &str, spec: Value) -> Domain {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Domain",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .expect("a valid Domain")
}

/// A Domain registering `example.com` for a year, delegated to [`OUR_NS`], paid until `paid_until`.
fn register(paid_until: &str) -> Domain {
    domain(
        "example-com",
        json!({"name": "example.com", "registration": {"mode": "Register", "years": 1, "privacy": true, "lock": true},
               "paidUntil": paid_until, "nameservers": OUR_NS}),
    )
}

struct World {
    h: Harness<State<FakeNamesilo>>,
    registrar: FakeNamesilo,
}

/// The fake API and registrar, with the registrar's today aligned to the context's clock.
fn world(domains: &[Domain]) -> World {
    let registrar = FakeNamesilo::new();
    registrar.set_today(TODAY);
    let state = State {
        names: testing::names_of(&[], &[]),
        registrar: registrar.clone(),
        nameservers: OUR_NS.map(String::from).to_vec(),
        zone_defaults: ZoneDefaults::default(),
        domains: testing::store_of(domains),
        sync: RegistrarSync::new(SYNC_INTERVAL),
        exit_after: None,
    };
    World { h: Harness::new(state), registrar }
}

derefs_to_harness!(World, State<FakeNamesilo>);

impl World {
    fn get(&self, name: &str) -> Domain {
        self.stored_at(NS, name)
    }

    fn normals(&self, reason: &str) -> Vec<String> {
        self.events("Normal", reason)
    }
}

fn t0() -> jiff::Timestamp {
    testing::T0.parse().unwrap()
}

fn ops(registrar: &FakeNamesilo) -> Vec<&'static str> {
    registrar.writes().into_iter().map(|c| c.op).collect()
}

/// An External Domain over a registration in the account that matches its spec.
fn external(expires: &str) -> (World, Domain) {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &OUR_NS);
    info.expires = expires.into();
    info.private = true;
    w.registrar.insert_domain("example.com", info);
    let d = w.put(&domain(
        "example-com",
        json!({"name": "example.com", "registration": {"mode": "External"}, "nameservers": OUR_NS}),
    ));
    (w, d)
}
