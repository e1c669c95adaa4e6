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

mod api;
mod controls;
#[cfg(test)]
mod tests;
