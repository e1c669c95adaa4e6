//! An in-memory ACME CA for the reconcilers' unit tests: [`FakeAcme`] implements [`AcmeApi`].
//!
//! Orders carry one authorization per name with a DNS-01 challenge (a wildcard's name without its
//! `*.`, as the real client reports it). By default the CA is prompt: an answered challenge is
//! valid at once (the order ready when all are) and a finalised order is issued at once. Turned
//! off ([`FakeAcme::set_auto_validate`], [`FakeAcme::set_auto_issue`]), the test moves the order
//! on itself ([`FakeAcme::validate`], [`FakeAcme::issue`], [`FakeAcme::fail_challenge`],
//! [`FakeAcme::fail_order`]). Issued chains are real: a leaf for the CSR's key and names, signed by
//! the fake's own root ([`FakeAcme::ca_pem`]), valid for [`FakeAcme::set_validity`] days. Errors
//! are `AcmeError::Problem` with the ACME error type and the CA's words verbatim, as the real
//! client maps them.

#![allow(dead_code, reason = "helpers for the controllers' tests: not every test uses every one")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SignatureAlgorithm,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::controllers::Clock;
use crate::providers::acme::{AcmeApi, AcmeError, AuthzView, Dns01, OrderPhase, OrderView};
use crate::testing::calls::{Call, Recorder};

const BASE: &str = "https://acme.fake";

/// One call made to the fake: the trait method's name (`new_order`, `order`, `phase`, `answer`,
/// `finalize`, `certificate`) and what it was about (the order URL, or the names ordered).
pub type AcmeCall = Call;

/// An order as the fake keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeOrder {
    pub url: String,
    /// The names ordered, as asked.
    pub names: Vec<String>,
    pub phase: OrderPhase,
    /// The order's own problem (see [`FakeAcme::fail_order`]).
    pub error: Option<String>,
    /// The URLs of the challenges answered, in order.
    pub answered: Vec<String>,
    /// The names of the CSR sent with `finalize`.
    pub csr_names: Option<Vec<String>>,
    /// The chain issued (PEM, leaf first).
    pub chain: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Processing,
    Valid,
    Invalid,
}

#[derive(Clone, Debug)]
struct Authz {
    name: String,
    wildcard: bool,
    status: Status,
    challenge_url: String,
    txt_value: String,
    challenge: Status,
    error: Option<String>,
}

struct Order {
    public: FakeOrder,
    authzs: Vec<Authz>,
    csr: Option<Csr>,
}

/// What the CA takes from a CSR: its DNS names (lower case) and public key. Its signature is not
/// checked.
struct Csr {
    names: Vec<String>,
    key: CsrKey,
}

/// A CSR's public key, as rcgen signs a certificate for it.
struct CsrKey {
    der: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.der
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Reads a CSR as a CA does, or refuses it with `badCSR`.
fn parse_csr(der: &[u8]) -> Result<Csr, AcmeError> {
    let bad = |m: String| problem("badCSR", format!("Error parsing certificate request: {m}"));
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|e| bad(e.to_string()))?;
    let spki = &csr.certification_request_info.subject_pki;
    let key = spki.subject_public_key.data.to_vec();
    let alg = match (spki.algorithm.algorithm.to_id_string().as_str(), key.len()) {
        ("1.2.840.10045.2.1", 65) => &rcgen::PKCS_ECDSA_P256_SHA256,
        ("1.2.840.10045.2.1", 97) => &rcgen::PKCS_ECDSA_P384_SHA384,
        ("1.2.840.113549.1.1.1", _) => &rcgen::PKCS_RSA_SHA256,
        ("1.3.101.112", _) => &rcgen::PKCS_ED25519,
        (other, _) => return Err(bad(format!("unsupported public key algorithm {other}"))),
    };
    let mut names = Vec::new();
    for extension in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                if let GeneralName::DNSName(name) = name {
                    names.push(name.to_ascii_lowercase());
                }
            }
        }
    }
    Ok(Csr { names, key: CsrKey { der: key, alg } })
}

/// The leaf's validity: days from the moment of issue, or a fixed window.
#[derive(Clone, Copy)]
enum Validity {
    Days(u32),
    Window(jiff::Timestamp, jiff::Timestamp),
}

struct State {
    orders: BTreeMap<String, Order>,
    next: u64,
    calls: Recorder<AcmeCall, AcmeError>,
    auto_validate: bool,
    auto_issue: bool,
    validity: Validity,
    /// What issuance is dated by; the system clock when unset.
    clock: Option<Clock>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// The in-memory ACME CA. Clones share one state: keep one in the test, give one to the
/// controller.
#[derive(Clone)]
pub struct FakeAcme {
    state: Arc<Mutex<State>>,
}

impl Default for FakeAcme {
    fn default() -> Self {
        Self::new()
    }
}

fn problem(kind: &str, detail: impl Into<String>) -> AcmeError {
    AcmeError::Problem { kind: format!("urn:ietf:params:acme:error:{kind}"), detail: detail.into() }
}

/// What a CA says of an order URL it does not know (the real client reads it as "order gone").
fn unknown(url: &str) -> AcmeError {
    let id = url.rsplit('/').next().unwrap_or(url);
    problem("malformed", format!("No order for ID {id}"))
}

impl Order {
    fn view(&self) -> OrderView {
        let problem = self.public.error.clone().or_else(|| {
            self.authzs.iter().find_map(|a| {
                a.error.as_ref().map(|p| format!("{}{}: {p}", if a.wildcard { "*." } else { "" }, a.name))
            })
        });
        let authorizations = self
            .authzs
            .iter()
            .map(|a| AuthzView {
                name: a.name.clone(),
                wildcard: a.wildcard,
                settled: a.status != Status::Pending,
                dns01: Some(Dns01 {
                    url: a.challenge_url.clone(),
                    txt_value: a.txt_value.clone(),
                    answered: a.challenge != Status::Pending,
                }),
            })
            .collect();
        OrderView { url: self.public.url.clone(), phase: self.public.phase, problem, authorizations }
    }

    /// Answered challenges become valid; the order is ready once every authorization is.
    fn validate(&mut self) {
        if self.public.phase != OrderPhase::Pending {
            return;
        }
        for a in self.authzs.iter_mut().filter(|a| a.challenge == Status::Processing) {
            a.challenge = Status::Valid;
            a.status = Status::Valid;
        }
        if self.authzs.iter().all(|a| a.status == Status::Valid) {
            self.public.phase = OrderPhase::Ready;
        }
    }
}

impl State {
    fn record(&mut self, op: &'static str, target: &str) -> Result<(), AcmeError> {
        self.calls.begin(AcmeCall { op, target: target.to_owned() })
    }

    fn order(&mut self, url: &str) -> Result<&mut Order, AcmeError> {
        self.orders.get_mut(url).ok_or_else(|| unknown(url))
    }

    /// Signs the processing order's CSR: it becomes valid with its chain.
    fn issue(&mut self, url: &str) -> Result<(), AcmeError> {
        let (not_before, not_after) = match self.validity {
            Validity::Days(days) => {
                let now = self.clock.as_ref().map_or_else(jiff::Timestamp::now, Clock::now);
                (now, now + jiff::SignedDuration::from_hours(24 * i64::from(days)))
            }
            Validity::Window(from, to) => (from, to),
        };
        self.next += 1;
        let serial = self.next;
        let order = self.orders.get_mut(url).ok_or_else(|| unknown(url))?;
        let Some(csr) = order.csr.as_ref() else {
            return Err(AcmeError::BadResponse(format!("order {url} has no CSR")));
        };
        let internal = |e: rcgen::Error| problem("serverInternal", e.to_string());
        let mut params = CertificateParams::new(csr.names.clone()).map_err(internal)?;
        params.distinguished_name = DistinguishedName::new();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let secs = |t: jiff::Timestamp| Duration::from_secs(u64::try_from(t.as_second()).unwrap_or(0));
        params.not_before = epoch + secs(not_before);
        params.not_after = epoch + secs(not_after);
        params.serial_number = Some(rcgen::SerialNumber::from(0x00fa_ce00_0000_0000 | serial));
        params.is_ca = IsCa::ExplicitNoCa;
        let leaf = params.signed_by(&csr.key, &self.issuer).map_err(internal)?;
        order.public.chain = Some(format!("{}{}", leaf.pem(), self.ca_pem));
        order.public.phase = OrderPhase::Valid;
        Ok(())
    }
}

impl FakeAcme {
    /// A prompt CA (challenges valid once answered, orders issued once finalised) issuing leaves
    /// valid for 90 days.
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("a key for the fake CA: {e}"));
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("CA params: {e}"));
        params.distinguished_name.push(DnType::CommonName, "mpanel fake ACME root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let root = params.self_signed(&key).unwrap_or_else(|e| panic!("the fake CA's root: {e}"));
        let state = State {
            orders: BTreeMap::new(),
            next: 0,
            calls: Recorder::default(),
            auto_validate: true,
            auto_issue: true,
            validity: Validity::Days(90),
            clock: None,
            ca_pem: root.pem(),
            issuer: Issuer::new(params, key),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The root certificate (PEM) every issued chain ends with.
    pub fn ca_pem(&self) -> String {
        self.lock().ca_pem.clone()
    }

    /// Dates issuance by `clock` (the controllers' injectable clock) instead of the system's.
    pub fn set_clock(&self, clock: Clock) {
        self.lock().clock = Some(clock);
    }

    /// Leaves issued from now on are valid for `days` from the moment they are issued.
    pub fn set_validity(&self, days: u32) {
        self.lock().validity = Validity::Days(days);
    }

    /// Leaves issued from now on are valid from `not_before` to `not_after` (e.g. one already
    /// close to its end, to test renewal).
    pub fn set_validity_window(&self, not_before: jiff::Timestamp, not_after: jiff::Timestamp) {
        self.lock().validity = Validity::Window(not_before, not_after);
    }

    /// Whether an answered challenge is valid at once (default); else [`Self::validate`] does it.
    pub fn set_auto_validate(&self, on: bool) {
        self.lock().auto_validate = on;
    }

    /// Whether a finalised order is issued at once (default); else it stays processing until
    /// [`Self::issue`].
    pub fn set_auto_issue(&self, on: bool) {
        self.lock().auto_issue = on;
    }

    /// The CA validates the answered challenges of the order at `url` (the order is ready once
    /// all of its authorizations are valid).
    pub fn validate(&self, url: &str) {
        if let Some(order) = self.lock().orders.get_mut(url) {
            order.validate();
        }
    }

    /// The challenge for `name` (`*.example.com` for a wildcard's) fails with `detail`: its
    /// authorization and the order become invalid.
    pub fn fail_challenge(&self, url: &str, name: &str, detail: &str) {
        let (wildcard, bare) = match name.strip_prefix("*.") {
            Some(bare) => (true, bare),
            None => (false, name),
        };
        if let Some(order) = self.lock().orders.get_mut(url) {
            for a in order.authzs.iter_mut().filter(|a| a.name == bare && a.wildcard == wildcard) {
                a.challenge = Status::Invalid;
                a.status = Status::Invalid;
                a.error = Some(detail.to_owned());
            }
            order.public.phase = OrderPhase::Invalid;
        }
    }

    /// The order at `url` becomes invalid with `detail` as its problem.
    pub fn fail_order(&self, url: &str, detail: &str) {
        if let Some(order) = self.lock().orders.get_mut(url) {
            order.public.phase = OrderPhase::Invalid;
            order.public.error = Some(detail.to_owned());
        }
    }

    /// Issues the processing order at `url`.
    pub fn issue(&self, url: &str) -> Result<(), AcmeError> {
        self.lock().issue(url)
    }

    /// The CA forgets the order at `url` (it expired, or the CA restarted).
    pub fn forget_order(&self, url: &str) {
        self.lock().orders.remove(url);
    }

    /// Every order the CA knows, oldest first.
    pub fn orders(&self) -> Vec<FakeOrder> {
        let state = self.lock();
        let mut orders: Vec<(u64, FakeOrder)> = state
            .orders
            .values()
            .map(|o| (o.public.url.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or(0), o.public.clone()))
            .collect();
        orders.sort_by_key(|(n, _)| *n);
        orders.into_iter().map(|(_, o)| o).collect()
    }

    /// Every call made, oldest first.
    pub fn calls(&self) -> Vec<AcmeCall> {
        self.lock().calls.log.all()
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.lock().calls.log.count(op)
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.lock().calls.log.clear();
    }

    /// The next call of `op` (a trait method's name) fails with the CA's `serverInternal` problem
    /// and `message` verbatim (queued: call again for the one after).
    pub fn fail_next(&self, op: &str, message: &str) {
        self.fail_next_error(op, problem("serverInternal", message));
    }

    /// The next call of `op` is refused as rate-limited (`urn:ietf:params:acme:error:rateLimited`)
    /// with `detail` verbatim.
    pub fn rate_limit_next(&self, op: &str, detail: &str) {
        self.fail_next_error(op, problem("rateLimited", detail));
    }

    /// The next call of `op` fails with `error` (e.g. `AcmeError::Unreachable`).
    pub fn fail_next_error(&self, op: &str, error: AcmeError) {
        self.lock().calls.failures.push(op, error);
    }
}

impl AcmeApi for FakeAcme {
    async fn new_order(&self, dns_names: &[String]) -> Result<OrderView, AcmeError> {
        let mut state = self.lock();
        state.record("new_order", &dns_names.join(","))?;
        if dns_names.is_empty() {
            return Err(problem("malformed", "NewOrder request did not specify any identifiers"));
        }
        state.next += 1;
        let n = state.next;
        let url = format!("{BASE}/order/{n}");
        let authzs = dns_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (wildcard, bare) = match name.strip_prefix("*.") {
                    Some(bare) => (true, bare),
                    None => (false, name.as_str()),
                };
                Authz {
                    name: bare.to_owned(),
                    wildcard,
                    status: Status::Pending,
                    challenge_url: format!("{BASE}/chall/{n}/{i}"),
                    txt_value: format!("fake-dns01-{n}-{i}-{}", bare.replace('.', "-")),
                    challenge: Status::Pending,
                    error: None,
                }
            })
            .collect();
        let public = FakeOrder {
            url: url.clone(),
            names: dns_names.to_vec(),
            phase: OrderPhase::Pending,
            error: None,
            answered: Vec::new(),
            csr_names: None,
            chain: None,
        };
        let order = Order { public, authzs, csr: None };
        let view = order.view();
        state.orders.insert(url, order);
        Ok(view)
    }

    async fn order(&self, url: &str) -> Result<OrderView, AcmeError> {
        let mut state = self.lock();
        state.record("order", url)?;
        Ok(state.order(url)?.view())
    }

    async fn phase(&self, url: &str) -> Result<OrderPhase, AcmeError> {
        let mut state = self.lock();
        state.record("phase", url)?;
        Ok(state.order(url)?.public.phase)
    }

    async fn answer(&self, order_url: &str, challenge_url: &str) -> Result<(), AcmeError> {
        let mut state = self.lock();
        state.record("answer", order_url)?;
        let auto = state.auto_validate;
        let order = state.order(order_url)?;
        let Some(authz) = order.authzs.iter_mut().find(|a| a.challenge_url == challenge_url) else {
            return Err(AcmeError::BadResponse(format!("order {order_url} has no challenge {challenge_url}")));
        };
        if authz.challenge == Status::Pending {
            authz.challenge = Status::Processing;
        }
        order.public.answered.push(challenge_url.to_owned());
        if auto {
            order.validate();
        }
        Ok(())
    }

    async fn finalize(&self, order_url: &str, csr_der: &[u8]) -> Result<(), AcmeError> {
        let mut state = self.lock();
        state.record("finalize", order_url)?;
        let auto = state.auto_issue;
        let order = state.order(order_url)?;
        if order.public.phase != OrderPhase::Ready {
            let status = format!("{:?}", order.public.phase).to_ascii_lowercase();
            return Err(problem(
                "orderNotReady",
                format!("Order's status (\"{status}\") is not acceptable for finalization"),
            ));
        }
        let csr = parse_csr(csr_der)?;
        let asked: BTreeSet<String> = csr.names.iter().cloned().collect();
        let ordered: BTreeSet<String> = order.public.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        if asked != ordered {
            return Err(problem("badCSR", "CSR does not specify same identifiers as Order"));
        }
        order.public.csr_names = Some(csr.names.clone());
        order.csr = Some(csr);
        order.public.phase = OrderPhase::Processing;
        if auto {
            state.issue(order_url)?;
        }
        Ok(())
    }

    async fn certificate(&self, order_url: &str) -> Result<String, AcmeError> {
        let mut state = self.lock();
        state.record("certificate", order_url)?;
        let order = state.order(order_url)?;
        match (&order.public.chain, order.public.phase) {
            (Some(chain), OrderPhase::Valid) => Ok(chain.clone()),
            _ => Err(AcmeError::BadResponse(format!("order {order_url} has no certificate yet"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::certificate::keys;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn an_order_goes_from_pending_to_a_real_chain_for_the_csrs_key_and_names() {
        let ca = FakeAcme::new();
        ca.set_validity(30);
        let order = ca.new_order(&names(&["example.com", "*.example.com"])).await.unwrap();
        assert_eq!(order.phase, OrderPhase::Pending);
        let authz: Vec<(&str, bool, bool)> =
            order.authorizations.iter().map(|a| (a.name.as_str(), a.wildcard, a.settled)).collect();
        assert_eq!(authz, [("example.com", false, false), ("example.com", true, false)]);
        assert_eq!(order.txt_values().len(), 2);

        let key = KeyPair::generate().unwrap();
        let csr = keys::csr(&names(&["example.com", "*.example.com"]), &key).unwrap();
        let early = ca.finalize(&order.url, &csr).await.unwrap_err();
        assert!(early.to_string().contains("Order's status (\"pending\") is not acceptable"), "{early}");

        for a in &order.authorizations {
            ca.answer(&order.url, &a.dns01.as_ref().unwrap().url).await.unwrap();
        }
        assert_eq!(ca.phase(&order.url).await.unwrap(), OrderPhase::Ready);
        ca.finalize(&order.url, &csr).await.unwrap();
        assert_eq!(ca.phase(&order.url).await.unwrap(), OrderPhase::Valid);
        let chain = ca.certificate(&order.url).await.unwrap();
        assert!(chain.ends_with(&ca.ca_pem()));
        let issued = keys::inspect(chain.as_bytes(), &key).unwrap();
        assert!(issued.key_matches);
        assert_eq!(issued.dns_names, BTreeSet::from(["example.com".to_owned(), "*.example.com".to_owned()]));
        let days = issued.not_after.duration_since(issued.not_before).as_hours() / 24;
        assert_eq!(days, 30);
        assert_eq!(ca.count("finalize"), 2);
    }

    #[tokio::test]
    async fn a_failed_challenge_makes_the_order_invalid_with_the_cas_words() {
        let ca = FakeAcme::new();
        ca.set_auto_validate(false);
        let order = ca.new_order(&names(&["a.test"])).await.unwrap();
        let challenge = order.authorizations[0].dns01.clone().unwrap();
        ca.answer(&order.url, &challenge.url).await.unwrap();
        let seen = ca.order(&order.url).await.unwrap();
        assert_eq!(seen.phase, OrderPhase::Pending);
        assert!(seen.authorizations[0].dns01.as_ref().unwrap().answered);
        assert!(!seen.authorizations[0].settled);
        ca.fail_challenge(&order.url, "a.test", "No TXT record found at _acme-challenge.a.test");
        let seen = ca.order(&order.url).await.unwrap();
        assert_eq!(seen.phase, OrderPhase::Invalid);
        assert_eq!(seen.problem.as_deref(), Some("a.test: No TXT record found at _acme-challenge.a.test"));
    }

    #[tokio::test]
    async fn injected_errors_are_the_real_error_type() {
        let ca = FakeAcme::new();
        ca.rate_limit_next("new_order", "too many certificates already issued for example.com");
        let e = ca.new_order(&names(&["example.com"])).await.unwrap_err();
        assert_eq!(e.reason(), "AcmeRateLimited");
        assert!(e.to_string().contains("too many certificates already issued for example.com"));
        let order = ca.new_order(&names(&["example.com"])).await.unwrap();
        ca.forget_order(&order.url);
        let gone = ca.order(&order.url).await.unwrap_err();
        assert!(gone.is_order_gone(), "{gone}");
        ca.fail_next("phase", "internal error");
        assert_eq!(ca.phase("x").await.unwrap_err().reason(), "AcmeRejected");
        assert_eq!(ca.calls().len(), 4);
    }

    #[tokio::test]
    async fn a_fixed_window_and_manual_issuance_are_honoured() {
        let ca = FakeAcme::new();
        ca.set_auto_issue(false);
        let from = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let to = jiff::Timestamp::from_second(1_800_086_400).unwrap();
        ca.set_validity_window(from, to);
        let order = ca.new_order(&names(&["b.test"])).await.unwrap();
        ca.answer(&order.url, &order.authorizations[0].dns01.as_ref().unwrap().url).await.unwrap();
        let key = KeyPair::generate().unwrap();
        let wrong = keys::csr(&names(&["c.test"]), &key).unwrap();
        assert!(ca.finalize(&order.url, &wrong).await.unwrap_err().to_string().contains("same identifiers"));
        ca.finalize(&order.url, &keys::csr(&names(&["b.test"]), &key).unwrap()).await.unwrap();
        assert_eq!(ca.phase(&order.url).await.unwrap(), OrderPhase::Processing);
        assert!(ca.certificate(&order.url).await.is_err());
        ca.issue(&order.url).unwrap();
        let issued = keys::inspect(ca.certificate(&order.url).await.unwrap().as_bytes(), &key).unwrap();
        assert_eq!((issued.not_before, issued.not_after), (from, to));
        assert_eq!(ca.orders()[0].csr_names.as_deref(), Some(&names(&["b.test"])[..]));

        // issued by the controllers' clock, for the days set
        let clock = Clock::fixed(from);
        ca.set_clock(clock.clone());
        ca.set_auto_issue(true);
        ca.set_validity(10);
        clock.advance(jiff::SignedDuration::from_hours(1));
        let order = ca.new_order(&names(&["b.test"])).await.unwrap();
        ca.answer(&order.url, &order.authorizations[0].dns01.as_ref().unwrap().url).await.unwrap();
        ca.finalize(&order.url, &keys::csr(&names(&["b.test"]), &key).unwrap()).await.unwrap();
        let issued = keys::inspect(ca.certificate(&order.url).await.unwrap().as_bytes(), &key).unwrap();
        let hour = from + jiff::SignedDuration::from_hours(1);
        assert_eq!((issued.not_before, issued.not_after), (hour, hour + jiff::SignedDuration::from_hours(240)));
    }
}
