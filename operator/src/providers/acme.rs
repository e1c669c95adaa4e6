//! An ACME (RFC 8555) CA: one account, its orders, their DNS-01 challenges, finalisation and the
//! issued chain.
//!
//! The client never waits for the CA: every call is one request (or one order with its
//! authorizations), and the caller polls by reconciling again. The CA's problem documents are kept
//! verbatim, so a condition shows exactly what the CA said.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder,
    OrderStatus, Problem,
};
use mpanel_crds::reasons;

use super::throttle::Throttle;
use crate::metrics::Metrics;
use crate::tls;

/// Where the CA is and who the account is.
#[derive(Clone)]
pub struct Config {
    /// The directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Contact addresses, e.g. `mailto:hostmaster@example.com`.
    pub contact: Vec<String>,
    /// PEM file of the CA that signed the directory's HTTPS certificate, for test CAs; the
    /// platform's trust otherwise.
    pub ca_bundle: Option<PathBuf>,
    /// External account binding (key id, HMAC key) for CAs that require one.
    pub external_account: Option<(String, Vec<u8>)>,
    /// Deadline of one call.
    pub timeout: Duration,
}

// the HMAC key of the external account binding is never printed
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("directory_url", &self.directory_url)
            .field("contact", &self.contact)
            .field("ca_bundle", &self.ca_bundle)
            .field("external_account", &self.external_account.as_ref().map(|(kid, _)| (kid, super::REDACTED)))
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with a problem document; `detail` is its own text.
    #[error("the ACME server refused: {detail}")]
    Problem { kind: String, detail: String },
    #[error("the ACME server could not be reached: {0}")]
    Unreachable(String),
    #[error("the ACME server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the ACME server sent an answer that could not be read: {0}")]
    BadResponse(String),
    #[error("the ACME account credentials are unusable: {0}")]
    Credentials(String),
}

impl AcmeError {
    /// Stable reason for conditions, metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Problem { kind, .. } if kind.ends_with(":rateLimited") => reasons::ACME_RATE_LIMITED.name,
            Self::Problem { kind, .. } if kind.ends_with(":malformed") && is_unknown_order(self) => {
                reasons::ACME_ORDER_GONE.name
            }
            Self::Problem { .. } => reasons::ACME_REJECTED.name,
            Self::Unreachable(_) => reasons::ACME_UNREACHABLE.name,
            Self::Timeout(_) => reasons::ACME_TIMEOUT.name,
            Self::BadResponse(_) => reasons::ACME_BAD_RESPONSE.name,
            Self::Credentials(_) => reasons::ACME_ACCOUNT_INVALID.name,
        }
    }

    /// The CA no longer knows the order (it expired, or a test CA restarted): order again.
    pub fn is_order_gone(&self) -> bool {
        match self {
            Self::Problem { .. } => is_unknown_order(self),
            _ => false,
        }
    }
}

fn is_unknown_order(e: &AcmeError) -> bool {
    match e {
        AcmeError::Problem { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            d.contains("no order") || d.contains("order not found") || d.contains("unable to find order")
        }
        _ => false,
    }
}

/// The problem's own words: its detail, then the subproblems per identifier.
pub fn problem_text(p: &Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| p.r#type.clone().unwrap_or_else(|| "no detail".to_owned()));
    for sub in &p.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str("; ");
            text.push_str(detail);
        }
    }
    text
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        use instant_acme::Error as E;
        match e {
            E::Api(p) => Self::Problem { kind: p.r#type.clone().unwrap_or_default(), detail: problem_text(&p) },
            E::Json(e) => Self::BadResponse(e.to_string()),
            E::Str(s) => Self::BadResponse(s.to_owned()),
            E::Crypto | E::KeyRejected => Self::Credentials(e.to_string()),
            other => Self::Unreachable(other.to_string()),
        }
    }
}

/// Where an order stands, as the CA sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderPhase {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
}

/// An order with its authorizations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub url: String,
    pub phase: OrderPhase,
    /// The order's problem, else the first failed challenge's, verbatim.
    pub problem: Option<String>,
    pub authorizations: Vec<AuthzView>,
}

/// One identifier's authorization and its DNS-01 challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzView {
    /// The name without a wildcard label: the TXT record goes to `_acme-challenge.<name>`.
    pub name: String,
    pub wildcard: bool,
    /// The authorization no longer needs anything from us (valid, or failed for good).
    pub settled: bool,
    pub dns01: Option<Dns01>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns01 {
    pub url: String,
    /// The TXT value the CA expects.
    pub txt_value: String,
    /// The CA was told to validate (processing), or has validated it.
    pub answered: bool,
}

impl OrderView {
    /// The TXT values every authorization of this order needs, by name.
    pub fn txt_values(&self) -> Vec<(String, String)> {
        self.authorizations
            .iter()
            .filter_map(|a| a.dns01.as_ref().map(|c| (a.name.clone(), c.txt_value.clone())))
            .collect()
    }
}

/// What the Certificate controller needs from a CA.
pub trait AcmeApi: Send + Sync {
    /// Places an order for `dns_names`.
    fn new_order(&self, dns_names: &[String]) -> impl Future<Output = Result<OrderView, AcmeError>> + Send;
    /// The order at `url`, with its authorizations.
    fn order(&self, url: &str) -> impl Future<Output = Result<OrderView, AcmeError>> + Send;
    /// Tells the CA that the DNS-01 challenge at `challenge_url` of the order can be validated.
    fn answer(&self, order_url: &str, challenge_url: &str) -> impl Future<Output = Result<(), AcmeError>> + Send;
    /// Sends the CSR of a ready order.
    fn finalize(&self, order_url: &str, csr_der: &[u8]) -> impl Future<Output = Result<(), AcmeError>> + Send;
    /// The issued chain (PEM, leaf first) of a valid order.
    fn certificate(&self, order_url: &str) -> impl Future<Output = Result<String, AcmeError>> + Send;
}

/// An ACME account at one CA.
#[derive(Clone)]
pub struct Acme {
    account: Account,
    timeout: Duration,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the account key
        f.debug_struct("Acme").field("account", &self.account.id()).finish()
    }
}

impl Acme {
    fn builder(config: &Config) -> Result<instant_acme::AccountBuilder, AcmeError> {
        tls::install_crypto_provider();
        match &config.ca_bundle {
            Some(pem) => Account::builder_with_root(pem)
                .map_err(|e| AcmeError::Credentials(format!("cannot use the CA bundle {}: {e}", pem.display()))),
            None => Account::builder().map_err(AcmeError::from),
        }
    }

    /// Registers a new account; returns it with its credentials (JSON, secret: keep them in a Secret).
    /// Every call to the CA, this one included, goes through `throttle`.
    pub async fn register(
        config: &Config,
        metrics: Arc<Metrics>,
        throttle: Throttle,
    ) -> Result<(Self, String), AcmeError> {
        let builder = Self::builder(config)?;
        let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
        let eab = config.external_account.as_ref().map(|(id, key)| ExternalAccountKey::new(id.clone(), key));
        let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
        let turn = throttle.turn().await;
        let started = Instant::now();
        let result = timed(config.timeout, builder.create(&new, config.directory_url.clone(), eab.as_ref())).await;
        drop(turn);
        metrics.provider_call("acme", "new_account", true, result.is_ok(), started.elapsed());
        let (account, credentials) = result?;
        let json = serde_json::to_string(&credentials).map_err(|e| AcmeError::Credentials(e.to_string()))?;
        Ok((Self { account, timeout: config.timeout, metrics, throttle }, json))
    }

    /// The account whose credentials `register` returned; its calls go through `throttle`.
    pub async fn restore(
        config: &Config,
        credentials: &str,
        metrics: Arc<Metrics>,
        throttle: Throttle,
    ) -> Result<Self, AcmeError> {
        let credentials =
            serde_json::from_str(credentials).map_err(|e| AcmeError::Credentials(format!("not account JSON: {e}")))?;
        let builder = Self::builder(config)?;
        // reads the directory
        let account = throttle.run(timed(config.timeout, builder.from_credentials(credentials))).await?;
        Ok(Self { account, timeout: config.timeout, metrics, throttle })
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        write: bool,
        f: impl Future<Output = Result<T, instant_acme::Error>>,
    ) -> Result<T, AcmeError> {
        let _turn = self.throttle.turn().await;
        let started = Instant::now();
        let result = timed(self.timeout, f).await;
        self.metrics.provider_call("acme", operation, write, result.is_ok(), started.elapsed());
        result
    }

    async fn view(&self, mut order: instant_acme::Order) -> Result<OrderView, instant_acme::Error> {
        let url = order.url().to_owned();
        let state = order.state();
        let phase = match state.status {
            OrderStatus::Pending => OrderPhase::Pending,
            OrderStatus::Ready => OrderPhase::Ready,
            OrderStatus::Processing => OrderPhase::Processing,
            OrderStatus::Valid => OrderPhase::Valid,
            OrderStatus::Invalid => OrderPhase::Invalid,
        };
        let mut problem = state.error.as_ref().map(problem_text);
        let mut authorizations = Vec::new();
        let mut stream = order.authorizations();
        while let Some(authz) = stream.next().await {
            let mut authz = authz?;
            let (name, wildcard) = match authz.identifier().identifier {
                Identifier::Dns(name) => (name.clone(), authz.wildcard),
                other => (format!("{other:?}"), false),
            };
            let settled = authz.status != AuthorizationStatus::Pending;
            let failed = authz.challenges.iter().find_map(|c| c.error.as_ref().map(problem_text));
            if problem.is_none() {
                problem = failed.map(|p| format!("{}{name}: {p}", if wildcard { "*." } else { "" }));
            }
            let dns01 = authz.challenge(ChallengeType::Dns01).map(|c| Dns01 {
                url: c.url.clone(),
                txt_value: c.key_authorization().dns_value(),
                answered: c.status != ChallengeStatus::Pending,
            });
            authorizations.push(AuthzView { name, wildcard, settled, dns01 });
        }
        Ok(OrderView { url, phase, problem, authorizations })
    }
}

impl AcmeApi for Acme {
    async fn new_order(&self, dns_names: &[String]) -> Result<OrderView, AcmeError> {
        let identifiers: Vec<Identifier> = dns_names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let order = self.call("new_order", true, self.account.new_order(&NewOrder::new(&identifiers))).await?;
        self.call("get_authorizations", false, self.view(order)).await
    }

    async fn order(&self, url: &str) -> Result<OrderView, AcmeError> {
        let order = self.call("get_order", false, self.account.order(url.to_owned())).await?;
        self.call("get_authorizations", false, self.view(order)).await
    }

    async fn answer(&self, order_url: &str, challenge_url: &str) -> Result<(), AcmeError> {
        let mut order = self.call("get_order", false, self.account.order(order_url.to_owned())).await?;
        let answered = async {
            let mut stream = order.authorizations();
            while let Some(authz) = stream.next().await {
                let mut authz = authz?;
                if let Some(mut challenge) = authz.challenge(ChallengeType::Dns01)
                    && challenge.url == challenge_url
                {
                    return challenge.set_ready().await.map(|()| true);
                }
            }
            Ok(false)
        };
        if self.call("answer_challenge", true, answered).await? {
            Ok(())
        } else {
            Err(AcmeError::BadResponse(format!("order {order_url} has no challenge {challenge_url}")))
        }
    }

    async fn finalize(&self, order_url: &str, csr_der: &[u8]) -> Result<(), AcmeError> {
        let mut order = self.call("get_order", false, self.account.order(order_url.to_owned())).await?;
        self.call("finalize", true, order.finalize_csr(csr_der)).await
    }

    async fn certificate(&self, order_url: &str) -> Result<String, AcmeError> {
        let mut order = self.call("get_order", false, self.account.order(order_url.to_owned())).await?;
        match self.call("get_certificate", false, order.certificate()).await? {
            Some(chain) => Ok(chain),
            None => Err(AcmeError::BadResponse(format!("order {order_url} has no certificate yet"))),
        }
    }
}

async fn timed<T>(limit: Duration, f: impl Future<Output = Result<T, instant_acme::Error>>) -> Result<T, AcmeError> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(AcmeError::from),
        Err(_) => Err(AcmeError::Timeout(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> Problem {
        serde_json::from_value(serde_json::json!({"type": kind, "detail": detail, "status": 400})).unwrap()
    }

    #[test]
    fn a_problem_keeps_the_servers_words_and_maps_to_a_stable_reason() {
        let e = AcmeError::from(instant_acme::Error::Api(problem(
            "urn:ietf:params:acme:error:rateLimited",
            "too many certificates already issued for example.com",
        )));
        assert_eq!(e.reason(), "AcmeRateLimited");
        assert!(e.to_string().contains("too many certificates already issued for example.com"));
        let e = AcmeError::from(instant_acme::Error::Api(problem(
            "urn:ietf:params:acme:error:malformed",
            "No order for ID abc",
        )));
        assert!(e.is_order_gone());
        assert_eq!(e.reason(), "AcmeOrderGone");
        let e = AcmeError::from(instant_acme::Error::Api(problem("urn:ietf:params:acme:error:dns", "NXDOMAIN")));
        assert!(!e.is_order_gone());
        assert_eq!(e.reason(), "AcmeRejected");
    }

    #[test]
    fn subproblems_are_part_of_the_text() {
        let p: Problem = serde_json::from_value(serde_json::json!({
            "type": "urn:ietf:params:acme:error:compound", "detail": "two names failed",
            "subproblems": [{"type": "urn:ietf:params:acme:error:dns", "detail": "a.test: SERVFAIL"}]
        }))
        .unwrap();
        assert_eq!(problem_text(&p), "two names failed; a.test: SERVFAIL");
    }
}
