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
            budget: Budget { api: Api::namespaced(client, BUDGET_NS), name: BUDGET.to_owned(), limit: BUDGET_LIMIT },
            dnszones: store_of(zones),
            guest_agent: Some(pve.clone()),
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

/// The Certificate is issued into its Secret: a kubernetes.io/tls Secret of the operator whose
/// chain verifies against the CA's root, for the order's key and names; notAfter and renewalTime
/// in the status, one order, no challenge record left and the order's key Secret gone.
#[tokio::test]
async fn a_certificate_is_issued_into_its_secret_and_the_chain_verifies_against_the_ca() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;

    let secret = bed.secret(NS, "example-com-tls").expect("the Secret was written");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(secret.labels().get(CERTIFICATE_LABEL).map(String::as_str), Some("example-com"));
    let uid = bed.stored(&cert).uid().unwrap();
    assert!(secret.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true)));
    let chain = data(&secret, "tls.crt");
    assert!(chain.ends_with(&bed.ca.ca_pem()), "the chain ends with the CA's root");
    verify_chain(&chain, &bed.ca.ca_pem(), "www.example.com", t0() + SignedDuration::from_hours(1));
    let key = keys::load(&data(&secret, "tls.key")).unwrap();
    let issued = keys::inspect(chain.as_bytes(), &key).unwrap();
    assert!(issued.key_matches, "tls.key is the leaf's key");
    assert_eq!(issued.dns_names, ["*.example.com".to_owned(), "example.com".to_owned()].into());

    let status = bed.status(&cert);
    assert_eq!(status.phase, Some(CertificatePhase::Ready));
    assert_eq!(status.not_after.as_ref().map(|t| t.0), Some(t0() + days(90)));
    assert_eq!(status.renewal_time.as_ref().map(|t| t.0), Some(t0() + days(60)), "30 days before the end");
    assert_eq!(status.order_url, None);
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("True", reasons::ISSUED.name));
    assert!(message.contains("valid until"), "{message}");
    assert!(bed.events(&cert).iter().any(|e| e.type_ == "Normal" && e.reason == reasons::ISSUED.name));
    assert_eq!(bed.ca.count("new_order"), 1);
    assert_eq!(bed.ca.orders()[0].names, ["example.com", "*.example.com"]);
    assert!(bed.challenge_txt().is_empty(), "the challenge values came out again");
    assert!(bed.secret(NS, "example-com-next-key").is_none(), "the order's key Secret is gone");
}

/// Once issued, a resync changes nothing: no write to the API, PowerDNS or the CA.
#[tokio::test]
async fn an_unchanged_resync_writes_nothing() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();
    let (writes, events) = (bed.api.writes(), bed.api.events().len());
    bed.dns.clear_calls();
    bed.ca.clear_calls();
    for _ in 0..2 {
        let next = bed.reconcile(&cert).await.unwrap();
        assert_eq!(next, bed.on_resync(&cert), "looked at again on the resync");
    }
    assert_eq!(bed.api.writes(), writes, "no write to the API: {:?}", bed.api.requests());
    assert_eq!(bed.api.events().len(), events, "no Event");
    assert!(bed.dns.writes().is_empty(), "{:?}", bed.dns.writes());
    assert!(bed.ca.calls().is_empty(), "{:?}", bed.ca.calls());
}

/// A Secret deleted by hand is issued again; a Secret whose certificate was replaced by hand with
/// one for another key is too.
#[tokio::test]
async fn a_secret_deleted_or_broken_by_hand_is_issued_again() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let first = serial_of(&bed.secret(NS, "example-com-tls").unwrap());

    bed.api.delete::<Secret>(NS, "example-com-tls");
    assert!(bed.secret(NS, "example-com-tls").is_none());
    bed.issue(&cert).await;
    let second = bed.secret(NS, "example-com-tls").expect("written again");
    assert_ne!(serial_of(&second), first, "a new certificate");
    assert_eq!(bed.ca.count("new_order"), 2);

    // another key put in by hand: the certificate no longer matches it
    let mut broken = second.clone();
    let other = keys::generate(&cert.spec.private_key).unwrap();
    broken.data.as_mut().unwrap().insert("tls.key".into(), k8s_openapi::ByteString(other.serialize_pem().into()));
    bed.api.put(&broken);
    bed.reconcile(&cert).await.unwrap();
    let (_, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(reason, reasons::ORDER_PLACED.name);
    assert!(message.contains("does not match the private key"), "{message}");
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 3);
    let third = bed.secret(NS, "example-com-tls").unwrap();
    assert!(
        keys::inspect(data(&third, "tls.crt").as_bytes(), &keys::load(&data(&third, "tls.key")).unwrap())
            .unwrap()
            .key_matches
    );
}

/// Before the renewal time nothing is ordered; past it a new order is placed while the old
/// certificate keeps serving (Ready stays True), and the new one replaces it.
#[tokio::test]
async fn the_certificate_is_renewed_at_its_renewal_time_and_not_before() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let first = serial_of(&bed.secret(NS, "example-com-tls").unwrap());

    bed.ctx.clock.advance(days(60) - SignedDuration::from_hours(1));
    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, bed.on_resync(&cert), "looked at again on the resync");
    assert_eq!(bed.ca.count("new_order"), 1, "not yet");

    bed.ctx.clock.advance(SignedDuration::from_hours(2));
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(bed.ca.count("new_order"), 2, "renewal time passed: a new order");
    let (_, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(reason, reasons::ORDER_PLACED.name);
    assert!(message.contains("renewal time"), "{message}");
    assert_eq!(shown(bed.ready(&cert)).0, "True", "the old certificate still serves");
    assert!(bed.status(&cert).order_url.is_some());

    bed.issue(&cert).await;
    let renewed = bed.secret(NS, "example-com-tls").unwrap();
    assert_ne!(serial_of(&renewed), first);
    let now = t0() + days(60) + SignedDuration::from_hours(1);
    assert_eq!(bed.status(&cert).renewal_time.map(|t| t.0), Some(now + days(60)));
}

/// An order in flight is resumed by a restarted operator from status.orderURL, not ordered again.
#[tokio::test]
async fn an_order_in_flight_is_resumed_not_ordered_again() {
    let mut bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap(); // the finalizer
    bed.reconcile(&cert).await.unwrap();
    let url = bed.status(&cert).order_url.expect("orderURL in the status");
    assert_eq!(bed.ca.orders().len(), 1);
    assert_eq!(bed.status(&cert).phase, Some(CertificatePhase::Issuing));

    bed.h.ctx = bed.restarted();
    bed.ca.clear_calls();
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 0, "not ordered again");
    assert!(bed.ca.calls().iter().all(|c| c.target == url || c.op == "new_order"), "{:?}", bed.ca.calls());
    assert_eq!(bed.ca.orders().len(), 1);
    assert_eq!(bed.ca.orders()[0].chain.as_deref().map(|c| c.ends_with(&bed.ca.ca_pem())), Some(true));
}

/// While PowerDNS's listener does not serve the challenge value yet, the CA is not told to look.
#[tokio::test]
async fn the_ca_is_told_only_once_the_value_is_served() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    bed.listener.set_serving(false);
    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, Action::requeue(POLL));
    assert_eq!(bed.challenge_txt().len(), 2, "apex and wildcard values in one rrset: {:?}", bed.challenge_txt());
    assert_eq!(bed.ca.count("answer"), 0, "not answered while not served");
    let (status, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((status.as_str(), reason.as_str()), ("True", reasons::VALIDATING.name));
    assert!(message.contains("waiting for PowerDNS to serve _acme-challenge.example.com."), "{message}");
    bed.listener.set_serving(true);
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("answer"), 2);
}

/// An invalid order shows the CA's problem verbatim, its records come out, and the next order
/// waits for the backoff of the failed attempts.
#[tokio::test]
async fn an_invalid_order_shows_the_cas_words_and_backs_off() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    bed.listener.set_serving(false);
    bed.reconcile(&cert).await.unwrap();
    assert!(!bed.challenge_txt().is_empty());
    let url = bed.status(&cert).order_url.unwrap();
    let detail = "Incorrect TXT record \"nope\" found at _acme-challenge.example.com";
    bed.ca.fail_order(&url, detail);

    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, Action::requeue(Duration::from_secs(5)), "retried after 5 s");
    let status = bed.status(&cert);
    assert_eq!(status.failed_attempts, Some(1));
    assert_eq!(status.order_url, None);
    assert_eq!(status.phase, Some(CertificatePhase::Failed));
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("False", reasons::ORDER_FAILED.name));
    assert_eq!(message, format!("order {url} failed: {detail}"));
    assert_eq!(shown(bed.ready(&cert)).0, "False");
    assert!(bed.challenge_txt().is_empty(), "the challenge records came out");
    let warned = bed.warnings(&cert, reasons::ORDER_FAILED.name);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].note.contains(detail), "{warned:?}");

    // within the backoff: no order
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(bed.ca.count("new_order"), 1);
    assert_eq!(shown(bed.issuing(&cert)).1, reasons::ORDER_FAILED.name, "the failure stays readable");
    // after it: ordered again, and issued
    bed.ctx.clock.advance(SignedDuration::from_secs(10));
    bed.listener.set_serving(true);
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 2);
    assert_eq!(bed.status(&cert).failed_attempts, None);
}

/// A rate-limited order is a failed attempt with the CA's words.
#[tokio::test]
async fn a_rate_limited_order_is_shown_verbatim() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    let detail = "too many certificates (5) already issued for this exact set of domains in the last 168h0m0s";
    bed.ca.rate_limit_next("new_order", detail);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("False", "AcmeRateLimited"));
    assert!(message.contains(detail), "{message}");
    assert_eq!(bed.status(&cert).failed_attempts, Some(1));
    assert!(bed.ca.orders().is_empty());
    assert_eq!(bed.warnings(&cert, "AcmeRateLimited").len(), 1);
}

/// PowerDNS refusing the challenge record: its words in Issuing and a Warning Event; the order
/// stays in flight and goes on once PowerDNS takes the record.
#[tokio::test]
async fn a_powerdns_failure_is_shown_verbatim_and_the_order_goes_on() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let words = "RRset _acme-challenge.example.com. IN TXT: Conflicts with pre-existing RRset";
    bed.dns.fail_next("patch_rrsets", words);
    let failed = bed.reconcile(&cert).await.unwrap_err();
    assert!(failed.to_string().contains(words), "{failed}");
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(issuing, "True", "still issuing");
    assert_eq!(reason, failed.reason());
    assert!(message.contains(words), "{message}");
    assert!(bed.events(&cert).iter().any(|e| e.type_ == "Warning" && e.note.contains(words)));
    assert!(bed.status(&cert).order_url.is_some(), "the order stays in flight");
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 1);
}

/// A name no DnsZone of the namespace serves is refused before the budget and the CA.
#[tokio::test]
async fn a_name_no_zone_of_the_namespace_serves_is_not_ordered() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "nobody", json!({"dnsNames": ["www.nobody.test"]}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::NO_ZONE_FOR_NAME.name));
    assert!(message.contains("no DnsZone in this namespace serves www.nobody.test: no order is placed"), "{message}");
    assert!(bed.ca.calls().is_empty());
    assert!(bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).is_none(), "nothing counted");
    assert_eq!(bed.warnings(&cert, reasons::NO_ZONE_FOR_NAME.name).len(), 1);
}

/// Another customer's name: refused without an order, nothing written into their zone, and the
/// holder is not named.
#[tokio::test]
async fn another_namespaces_name_is_refused_without_an_order() {
    let victim = zone("customer-victim", "example-com", "example.com", "zone-uid-victim");
    let bed = Bed::new(vec![victim]).await;
    // the attacker's own DnsZone inside the victim's zone is not granted, and not in PowerDNS
    let inside = new_zone("attacker", "shop", "shop.example.com", "zone-uid-attacker");
    let ctx = bed.context_knowing(&[bed.zones[0].clone(), inside]);
    let cert = certificate("attacker", "steal", json!({"dnsNames": ["shop.example.com", "www.example.com"]}));
    bed.api.put(&cert);
    for _ in 0..3 {
        testing::reconcile_once(&ctx, &bed.api, &cert).await.unwrap();
    }
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "NameHeldElsewhere"));
    assert!(message.contains("www.example.com is in a zone another namespace holds"), "{message}");
    assert!(!message.contains("customer-victim"), "the holder is not named: {message}");
    assert!(bed.ca.calls().is_empty(), "no order");
    assert!(bed.dns.writes().is_empty(), "nothing written into the victim's zone");
    assert!(bed.challenge_txt().is_empty());
    assert!(bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).is_none(), "nothing counted against example.com");
    assert!(bed.secret("attacker", "steal-tls").is_none());
}

/// A spent order budget (the ConfigMap's count) is a condition with when the next order is
/// possible, and no order reaches the CA.
#[tokio::test]
async fn a_spent_order_budget_places_no_order() {
    let bed = Bed::example().await;
    let hour_ago = (t0() - SignedDuration::from_hours(1)).as_second();
    let spent: Vec<String> = (0..BUDGET_LIMIT).map(|i| format!("{}@other", hour_ago + i64::from(i))).collect();
    let budget: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": BUDGET, "namespace": BUDGET_NS},
        "data": {"example.com": spent.join(" ")}
    }))
    .unwrap();
    bed.api.put(&budget);
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::ORDER_BUDGET_EXHAUSTED.name));
    let free_at = Timestamp::from_second(hour_ago).unwrap() + days(7);
    assert!(message.contains("the order budget of example.com is spent (3 orders in 7 days)"), "{message}");
    assert!(message.contains(&format!("next order possible at {free_at}")), "{message}");
    assert_eq!(bed.ca.count("new_order"), 0);
    let kept = bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).unwrap();
    assert_eq!(kept.data.unwrap()["example.com"], spent.join(" "), "not counted");
    assert_eq!(bed.warnings(&cert, reasons::ORDER_BUDGET_EXHAUSTED.name).len(), 1);
}

/// An order is counted in the budget ConfigMap before it is placed.
#[tokio::test]
async fn an_order_is_counted_in_the_budget() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let budget = bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).expect("the budget ConfigMap");
    assert_eq!(budget.data.unwrap()["example.com"], format!("{}@{NS}", t0().as_second()));
}

/// An issuer the configuration does not have: said so, nothing ordered.
#[tokio::test]
async fn an_unknown_issuer_is_reported_and_nothing_is_ordered() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"issuer": "nope"}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, Action::await_change());
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::UNKNOWN_ISSUER.name));
    assert_eq!(message, "issuer \"nope\" is not configured (configured: letsencrypt)");
    assert_eq!(bed.status(&cert).phase, Some(CertificatePhase::Failed));
    assert!(bed.ca.calls().is_empty());
    assert!(bed.secret(NS, "example-com-tls").is_none());
}

/// A Secret of that name the operator did not make is never replaced, and nothing is ordered.
#[tokio::test]
async fn a_secret_not_made_by_the_operator_is_never_replaced() {
    let bed = Bed::example().await;
    let theirs: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "example-com-tls", "namespace": NS},
        "type": "kubernetes.io/tls", "stringData": {"tls.crt": "theirs", "tls.key": "theirs"}
    }))
    .unwrap();
    bed.api.put(&theirs);
    let before = bed.secret(NS, "example-com-tls").unwrap();
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    for _ in 0..3 {
        bed.reconcile(&cert).await.unwrap();
    }
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::SECRET_OWNED_ELSEWHERE.name));
    assert!(message.contains("Secret example-com-tls exists and is not this Certificate's"), "{message}");
    let after = bed.secret(NS, "example-com-tls").unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "not written");
    assert!(bed.ca.calls().is_empty(), "no order");
    assert_eq!(bed.warnings(&cert, reasons::SECRET_OWNED_ELSEWHERE.name).len(), 1, "one Event, not one per try");
}

/// `deletionPolicy: Delete` removes the Secret; the finalizer goes and the Certificate with it.
#[tokio::test]
async fn deletion_policy_delete_removes_the_secret() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"deletionPolicy": "Delete"}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    assert!(bed.stored(&cert).finalizers().iter().any(|f| f == mpanel_crds::FINALIZER));
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    assert!(bed.secret(NS, "example-com-tls").is_none(), "the Secret was deleted");
}

/// `deletionPolicy: Orphan` keeps the Secret without the owner reference; a new Certificate of the
/// same name adopts it (its label) without ordering.
#[tokio::test]
async fn deletion_policy_orphan_keeps_the_secret_and_a_new_certificate_adopts_it() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"deletionPolicy": "Orphan"}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let serial = serial_of(&bed.secret(NS, "example-com-tls").unwrap());
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    let kept = bed.secret(NS, "example-com-tls").expect("the Secret stays");
    assert!(kept.owner_references().is_empty(), "{:?}", kept.owner_references());

    let again = certificate(NS, "example-com", json!({}));
    bed.api.put(&again);
    for _ in 0..2 {
        bed.reconcile(&again).await.unwrap();
    }
    let (ready, reason, _) = shown(bed.ready(&again));
    assert_eq!((ready.as_str(), reason.as_str()), ("True", reasons::ISSUED.name));
    assert_eq!(shown(bed.issuing(&again)).1, reasons::UP_TO_DATE.name);
    assert_eq!(bed.ca.count("new_order"), 1, "adopted, not ordered again");
    assert_eq!(serial_of(&bed.secret(NS, "example-com-tls").unwrap()), serial);
}

/// ObserveOnly reports what it would do and orders nothing; Paused does nothing at all; an
/// annotation that is not a mode is reported.
#[tokio::test]
async fn reconcile_modes_observe_pause_and_report_an_invalid_one() {
    let bed = Bed::example().await;
    let mut cert = certificate(NS, "example-com", json!({}));
    cert.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "ObserveOnly".to_owned())]));
    bed.api.put(&cert);
    for _ in 0..3 {
        bed.reconcile(&cert).await.unwrap();
    }
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("False", reasons::OBSERVE_ONLY.name));
    assert!(message.contains("holds no certificate yet (ObserveOnly: not ordered)"), "{message}");
    assert_eq!(shown(bed.ready(&cert)).0, "False");
    assert!(bed.ca.calls().is_empty());
    assert!(bed.dns.writes().is_empty());
    assert!(bed.secret(NS, "example-com-tls").is_none());
    assert!(bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).is_none());

    let mut paused = certificate(NS, "paused", json!({}));
    paused.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "Paused".to_owned())]));
    bed.api.put(&paused);
    let writes = bed.api.writes();
    assert_eq!(bed.reconcile(&paused).await.unwrap(), Action::await_change());
    assert_eq!(bed.api.writes(), writes, "Paused writes nothing");
    assert!(bed.stored(&paused).status.is_none());
    assert!(bed.stored(&paused).finalizers().is_empty());
    assert!(bed.ca.calls().is_empty());

    let mut odd = certificate(NS, "odd", json!({}));
    odd.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "Sometimes".to_owned())]));
    bed.api.put(&odd);
    bed.reconcile(&odd).await.unwrap();
    let (ready, reason, message) = shown(bed.ready(&odd));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::INVALID_RECONCILE_MODE.name));
    assert!(message.contains("Sometimes"), "{message}");
    assert!(bed.ca.calls().is_empty());
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

/// The certificate goes into the CloudPods of deliverTo through the guest agent, byte for byte as
/// in the Secret, and the reload command runs; a resync writes it again nowhere.
#[tokio::test]
async fn the_certificate_is_delivered_into_a_cloudpod_through_the_agent() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod(NS, "vm-1", 4242));
    running_guest(&bed.pve, 4242);
    let reload = ["systemctl", "reload", "nginx"];
    let cert = certificate(NS, "example-com", json!({"deliverTo": [{"cloudPod": "vm-1", "reloadCommand": reload}]}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();

    let secret = bed.secret(NS, "example-com-tls").unwrap();
    let agent = bed.pve.agent(4242).unwrap();
    assert_eq!(agent.files.get("/etc/ssl/mpanel/example-com-tls/tls.key"), Some(&data(&secret, "tls.key")));
    assert_eq!(agent.files.get("/etc/ssl/mpanel/example-com-tls/fullchain.pem"), Some(&data(&secret, "tls.crt")));
    assert_eq!(agent.ran.last().map(|c| c.join(" ")), Some(reload.join(" ")));
    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("True", "Delivered"));
    assert!(message.contains("is in CloudPod vm-1"), "{message}");
    let deliveries = bed.status(&cert).deliveries;
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].vmid, deliveries[0].serial.clone()), (Some(4242), Some(serial_of(&secret))));

    bed.pve.clear_calls();
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.pve.calls().is_empty(), "already there: {:?}", bed.pve.calls());
}

/// A CloudPod of that name in another namespace is not a target: nothing is written into its guest.
#[tokio::test]
async fn another_namespaces_cloudpod_is_never_delivered_to() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod("customer-victim", "vm-1", 4343));
    running_guest(&bed.pve, 4343);
    let cert = certificate(NS, "example-com", json!({"deliverTo": [{"cloudPod": "vm-1"}]}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();
    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("False", reasons::CLOUD_POD_NOT_FOUND.name));
    assert!(message.contains("no CloudPod vm-1 in this namespace"), "{message}");
    assert!(bed.pve.calls().is_empty(), "{:?}", bed.pve.calls());
    assert!(bed.pve.agent(4343).unwrap().files.is_empty());
    assert_eq!(bed.warnings(&cert, reasons::CLOUD_POD_NOT_FOUND.name).len(), 1);
}

/// Deleting a Certificate whose order is in flight takes its challenge values out of PowerDNS.
#[tokio::test]
async fn deleting_during_an_order_removes_its_challenge_records() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"deletionPolicy": "Delete"}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    bed.listener.set_serving(false);
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(bed.challenge_txt().len(), 2);
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    assert!(bed.challenge_txt().is_empty(), "{:?}", bed.challenge_txt());
}

/// An issuer taken out of the configuration does not keep a Certificate with an order in flight
/// from going away: the finalizer goes, with a Warning that records may remain.
#[tokio::test]
async fn deleting_with_an_issuer_no_longer_configured_still_releases_the_certificate() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let url = bed.status(&cert).order_url.unwrap();
    let mut gone = bed.stored(&cert);
    gone.spec.issuer = "retired".into();
    bed.api.put(&gone);
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    let warned = bed.warnings(&cert, reasons::UNKNOWN_ISSUER.name);
    assert_eq!(warned.len(), 1, "{:?}", bed.events(&cert));
    assert!(warned[0].note.contains(&format!("challenge records of order {url} may remain")), "{warned:?}");
}

/// A PowerDNS zone of that name that is not the DnsZone's (another account) is never written into:
/// the order waits with the reason, and the zone keeps its records.
#[tokio::test]
async fn a_powerdns_zone_that_is_not_the_dnszones_is_never_written() {
    let bed = Bed::example().await;
    let theirs = RrSetOf::txt("_acme-challenge.example.com.", "theirs");
    bed.dns.insert_zone("example.com.", "someone-else", vec![theirs]);
    bed.dns.clear_calls();
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let refused = bed.reconcile(&cert).await.unwrap_err();
    assert_eq!(refused.reason(), "ZoneOwnedElsewhere");
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("True", "ZoneOwnedElsewhere"));
    assert!(message.contains("zone example.com. in PowerDNS is not the DnsZone's"), "{message}");
    assert!(!message.contains("someone-else"), "the other account is not shown: {message}");
    assert!(bed.dns.writes().is_empty(), "{:?}", bed.dns.writes());
    assert_eq!(bed.challenge_txt(), ["\"theirs\""]);
    assert_eq!(bed.ca.count("answer"), 0);
    assert!(bed.events(&cert).iter().any(|e| e.type_ == "Warning" && e.reason == "ZoneOwnedElsewhere"));
}

/// The Kubernetes API failing to take the Secret: the reconcile fails with its words, and the next
/// one stores the chain of the same order.
#[tokio::test]
async fn a_failed_secret_write_is_retried_with_the_same_order() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.api.fail_next("PATCH", "secrets/example-com-tls", 500, "etcdserver: request timed out");
    let mut failure = None;
    for _ in 0..8 {
        if let Err(e) = bed.reconcile(&cert).await {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("the Secret write failed");
    assert_eq!(failure.reason(), "KubernetesApiError");
    assert!(failure.to_string().contains("etcdserver: request timed out"), "{failure}");
    assert!(bed.secret(NS, "example-com-tls").is_none());
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 1, "the same order");
    assert!(bed.secret(NS, "example-com-tls").is_some());
}

/// ObserveOnly after issuance: a CloudPod without the certificate is reported, nothing written
/// into its guest.
#[tokio::test]
async fn observe_only_reports_a_missing_delivery_and_writes_nothing() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod(NS, "vm-1", 4242));
    running_guest(&bed.pve, 4242);
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let mut observed = bed.stored(&cert);
    observed.spec.deliver_to = serde_json::from_value(json!([{"cloudPod": "vm-1"}])).unwrap();
    observed.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "ObserveOnly".to_owned())]));
    bed.api.put(&observed);
    bed.reconcile(&cert).await.unwrap();
    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("False", reasons::OBSERVE_ONLY.name));
    assert!(message.contains("is not in CloudPod vm-1 (ObserveOnly: nothing written)"), "{message}");
    assert!(bed.pve.calls().is_empty(), "{:?}", bed.pve.calls());
    assert!(bed.pve.agent(4242).unwrap().files.is_empty());
}

/// TXT rrsets for the tests.
struct RrSetOf;

impl RrSetOf {
    fn txt(name: &str, value: &str) -> crate::providers::powerdns::RrSet {
        crate::providers::powerdns::RrSet::replace(name, "TXT", 60, [format!("\"{value}\"")])
    }
}

/// A reload command failing in the guest: its stderr in Delivered and a Warning Event; the target
/// waits for its backoff, then gets the certificate once the command works.
#[tokio::test]
async fn a_failed_delivery_shows_the_guests_words_and_is_retried_after_its_backoff() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod(NS, "vm-1", 4242));
    running_guest(&bed.pve, 4242);
    let stderr = "Job for nginx.service failed because the control process exited with error code.";
    let mut agent = bed.pve.agent(4242).unwrap();
    let failing = ExecStatus { exited: true, exitcode: Some(1), signal: None, err_data: Some(stderr.to_owned()) };
    agent.exec.insert("systemctl reload nginx".into(), failing);
    bed.pve.set_agent(4242, Some(agent));
    let reload = ["systemctl", "reload", "nginx"];
    let cert = certificate(NS, "example-com", json!({"deliverTo": [{"cloudPod": "vm-1", "reloadCommand": reload}]}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();

    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("False", "GuestCommandFailed"));
    assert!(message.starts_with("CloudPod vm-1: ") && message.contains(stderr), "{message}");
    assert_eq!(bed.status(&cert).deliveries[0].failed_attempts, Some(1));
    let warned = bed.warnings(&cert, "GuestCommandFailed");
    assert_eq!(warned.len(), 1);
    assert!(warned[0].note.contains(stderr), "{warned:?}");
    assert_eq!(shown(bed.ready(&cert)).0, "True", "the certificate itself is fine");

    // within the backoff: the guest is left alone
    bed.pve.clear_calls();
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.pve.calls().is_empty(), "{:?}", bed.pve.calls());
    // after it, with the service fixed: delivered
    let mut agent = bed.pve.agent(4242).unwrap();
    agent.exec.clear();
    bed.pve.set_agent(4242, Some(agent));
    bed.ctx.clock.advance(SignedDuration::from_secs(10));
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(shown(bed.condition(&cert, "Delivered")).0, "True");
    assert_eq!(bed.status(&cert).deliveries[0].failed_attempts, None);
}

/// A change of dnsNames is a new certificate for the new names.
#[tokio::test]
async fn changed_dns_names_are_ordered_again() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let mut changed = bed.stored(&cert);
    changed.spec.dns_names = vec!["example.com".into(), "www.example.com".into()];
    bed.api.put(&changed);
    bed.reconcile(&cert).await.unwrap();
    let (_, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(reason, reasons::ORDER_PLACED.name);
    assert!(message.contains("the certificate's names differ from dnsNames"), "{message}");
    bed.issue(&cert).await;
    let secret = bed.secret(NS, "example-com-tls").unwrap();
    let issued = keys::inspect(data(&secret, "tls.crt").as_bytes(), &keys::load(&data(&secret, "tls.key")).unwrap());
    assert_eq!(issued.unwrap().dns_names, ["example.com".to_owned(), "www.example.com".to_owned()].into());
    assert_eq!(bed.ca.orders()[1].names, ["example.com", "www.example.com"]);
}
