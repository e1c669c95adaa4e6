//! Reconcile-level unit tests of the certificate controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use std::collections::BTreeMap;

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::ConfigMap;
use mpanel_crds::conditions::Condition;
use serde_json::json;

use crate::providers::proxmox::Kind as GuestKind;
use crate::providers::proxmox_agent::ExecStatus;
use crate::testing::acme::FakeAcme;
use crate::testing::apiserver::{FakeApiServer, RecordedEvent};
use crate::testing::dns_listener::DnsListener;
use crate::testing::harness::{Harness, derefs_to_harness};
use crate::testing::powerdns::FakePowerDns;
use crate::testing::proxmox::{FakeAgent, FakeGuest, FakeProxmox};
use crate::testing::{self, store_of};

mod deletion;
mod delivery;
mod failures;
mod issuance;
mod modes;
mod refusals;

const NS: &str = "customer-acme";
const ISSUER: &str = "letsencrypt";
const BUDGET_NS: &str = "mpanel-system";
const BUDGET: &str = "mpanel-acme-order-budget";
const BUDGET_LIMIT: u32 = 3;
const MODE: &str = "mpanel.migrahosting.com/reconcile-mode";

/// The issuers of the tests: each name an account at a fake CA.
struct TestIssuers(BTreeMap<String, FakeAcme>);

impl AcmeAccounts for TestIssuers {
    type Account = FakeAcme;

    fn check(&self, name: &str) -> Result<(), IssuerError> {
        self.0.get(name).map(drop).ok_or_else(|| IssuerError::Unknown {
            name: name.to_owned(),
            known: self.0.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    async fn account(&self, name: &str) -> Result<Arc<FakeAcme>, IssuerError> {
        self.check(name)?;
        Ok(Arc::new(self.0[name].clone()))
    }
}

/// The fakes in place of PowerDNS, the issuers and Proxmox.
struct Fakes;

impl Providers for Fakes {
    type Dns = FakePowerDns;
    type Accounts = TestIssuers;
    type Agent = FakeProxmox;
}

/// An established DnsZone: created long ago, its claim acted on (Conflict=False).
fn zone(ns: &str, name: &str, zone: &str, uid: &str) -> DnsZone {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"zone": zone, "nameservers": ["ns1.migrahosting.com."], "records": []},
        "status": {"conditions": [{"type": "Conflict", "status": "False", "reason": "NoConflict", "message": "",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .unwrap()
}

/// A DnsZone just made, whose claim nothing acted on yet.
fn new_zone(ns: &str, name: &str, zone_name: &str, uid: &str) -> DnsZone {
    let mut z = zone(ns, name, zone_name, uid);
    z.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()));
    z.status = None;
    z
}

/// The example's Certificate (example.com and its wildcard) in `ns`, with `spec` merged over it.
fn certificate(ns: &str, name: &str, spec: serde_json::Value) -> Certificate {
    let mut manifest = json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"dnsNames": ["example.com", "*.example.com"], "secretName": format!("{name}-tls"),
                 "issuer": ISSUER, "renewBefore": "720h", "privateKey": {"algorithm": "ECDSA", "size": 256}}
    });
    if let serde_json::Value::Object(extra) = spec {
        for (k, v) in extra {
            manifest["spec"][k] = v;
        }
    }
    serde_json::from_value(manifest).unwrap()
}

/// The operator around one Certificate controller, on fakes.
struct Bed {
    h: Harness<State<Fakes>>,
    dns: FakePowerDns,
    ca: FakeAcme,
    pve: FakeProxmox,
    listener: DnsListener,
    zones: Vec<DnsZone>,
}

derefs_to_harness!(Bed, State<Fakes>);

impl Bed {
    /// `zones` known to the cluster; those of namespace `NS` (and the first of any other) are in
    /// PowerDNS, owned by their DnsZone.
    async fn new(zones: Vec<DnsZone>) -> Self {
        let api = FakeApiServer::new();
        let dns = FakePowerDns::new();
        for z in &zones {
            dns.insert_zone(&z.spec.zone, z.metadata.uid.as_deref().unwrap(), vec![]);
        }
        let listener = DnsListener::start(dns.clone()).await;
        let ca = FakeAcme::new();
        let pve = FakeProxmox::new();
        let h = Harness::on(api.clone(), Self::state(&api, &dns, &ca, &pve, &listener, &zones));
        ca.set_clock(h.ctx.clock.clone());
        Self { h, dns, ca, pve, listener, zones }
    }

    /// The example's setup: namespace `NS` holds example.com through its DnsZone.
    async fn example() -> Self {
        Self::new(vec![zone(NS, "example-com", "example.com", "zone-uid-example")]).await
    }

    fn state(
        api: &FakeApiServer,
        dns: &FakePowerDns,
        ca: &FakeAcme,
        pve: &FakeProxmox,
        listener: &DnsListener,
        zones: &[DnsZone],
    ) -> State<Fakes> {
        let client = api.client();
        State::<Fakes> {
            names: testing::names_of(zones, &[]),
            dns01: Dns01::new(dns.clone(), listener.addr, Duration::from_secs(2)),
            issuers: TestIssuers(BTreeMap::from([(ISSUER.to_owned(), ca.clone())])),
            budget: Budget::new(Api::namespaced(client, BUDGET_NS), BUDGET.to_owned(), BUDGET_LIMIT),
            dnszones: store_of(zones),
            guest_agent: Some(pve.clone()),
            exit_after_order: false,
        }
    }

    /// A fresh context on the same fakes whose cluster holds `zones`.
    fn context_knowing(&self, zones: &[DnsZone]) -> Arc<Context<Fakes>> {
        testing::context(&self.api, Self::state(&self.api, &self.dns, &self.ca, &self.pve, &self.listener, zones))
    }

    /// A restarted operator: a fresh context on the same fakes, its clock where this one's is.
    fn restarted(&self) -> Arc<Context<Fakes>> {
        let ctx = self.context_knowing(&self.zones);
        let moved = self.ctx.clock.now().duration_since(ctx.clock.now());
        ctx.clock.advance(moved);
        ctx
    }

    async fn reconcile(&self, cert: &Certificate) -> Result<Action, Error> {
        self.h.reconcile(cert, 1).await
    }

    /// Reconciles until the Certificate is Ready by a certificate just issued (at most 10 times).
    async fn issue(&self, cert: &Certificate) {
        for _ in 0..10 {
            self.reconcile(cert).await.unwrap();
            if self.issuing(cert).is_some_and(|c| c.reason == reasons::ISSUED.name) {
                return;
            }
        }
        panic!("not issued: {:?}", self.stored(cert).status);
    }

    /// Looked at again after the object's resync interval (one minute with its spread).
    fn on_resync(&self, cert: &Certificate) -> Action {
        Action::requeue(resync_after(&self.stored(cert), self.ctx.resync))
    }

    fn status(&self, cert: &Certificate) -> CertificateStatus {
        self.stored(cert).status.unwrap_or_default()
    }

    fn ready(&self, cert: &Certificate) -> Option<Condition> {
        self.condition(cert, READY)
    }

    fn issuing(&self, cert: &Certificate) -> Option<Condition> {
        self.condition(cert, ISSUING)
    }

    fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.api.get(ns, name)
    }

    fn events(&self, cert: &Certificate) -> Vec<RecordedEvent> {
        self.api.events().into_iter().filter(|e| e.regarding == cert.name_any()).collect()
    }

    fn warnings(&self, cert: &Certificate, reason: &str) -> Vec<RecordedEvent> {
        self.events(cert).into_iter().filter(|e| e.type_ == "Warning" && e.reason == reason).collect()
    }

    /// The TXT contents at the challenge record of example.com.
    fn challenge_txt(&self) -> Vec<String> {
        self.dns.contents("example.com.", "_acme-challenge.example.com.", "TXT")
    }
}

fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn serial_of(secret: &Secret) -> String {
    let key = keys::load(&data(secret, "tls.key")).unwrap();
    keys::inspect(data(secret, "tls.crt").as_bytes(), &key).unwrap().serial
}

/// Verifies `chain` (PEM, leaf first) as a TLS client would for `name` at `at`, trusting `root`.
fn verify_chain(chain: &str, root: &str, name: &str, at: Timestamp) {
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<_, _>>().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
    let when = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at.as_second()).unwrap()));
    let server = ServerName::try_from(name.to_owned()).unwrap();
    verifier.verify_server_cert(&certs[0], &certs[1..], &server, &[], when).expect("the chain verifies");
}

fn t0() -> Timestamp {
    testing::T0.parse().unwrap()
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// The status, reason and message of `c`.
fn shown(c: Option<Condition>) -> (String, String, String) {
    let c = c.expect("the condition is there");
    (c.status, c.reason, c.message)
}

fn cloud_pod(ns: &str, name: &str, vmid: u32) -> CloudPod {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"plan": "business", "type": "qemu", "template": "tmpl-qemu", "hostname": name,
                 "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.11/24", "gateway": "203.0.113.1"}},
                 "powerState": "Running"},
        "status": {"phase": "Running", "vmid": vmid, "node": "pve1",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "running",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .unwrap()
}

fn running_guest(pve: &FakeProxmox, vmid: u32) {
    let mut guest = FakeGuest::new(vmid, "pve1", GuestKind::Qemu);
    guest.status = "running".into();
    pve.insert_guest(guest);
    pve.set_agent(vmid, Some(FakeAgent::default()));
}
