//! An ACME (RFC 8555) CA: one account, its orders, their DNS-01 challenges, finalisation and the
//! issued chain.
//!
//! The client never waits for the CA: every call is one request (or one order with its
//! authorizations), and the caller polls. The CA's problem documents are kept verbatim, so a
//! condition shows exactly what the CA said.
//!
//! Every HTTP request takes a turn of the issuer's throttle (`requestsPerSecond` counts requests,
//! nonce requests included). A signed request needs a nonce: the nonces the CA hands out with its
//! answers are kept and used for the next requests, so `newNonce` is asked only when none is kept
//! (at the start of a burst), and then also within [`NEW_NONCE_PER_SECOND`]. The order last worked
//! on is kept too, with its authorizations, so following it does not fetch it again when it cannot
//! have changed (ready, valid or invalid, or pending with no challenge answered) and a challenge is
//! answered without fetching its authorization again.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder,
    OrderStatus,
};

use super::throttle::Throttle;
use crate::metrics::Metrics;
use crate::tls;

mod error;
mod transport;

pub use error::{AcmeError, problem_text};
use transport::{Transport, nonce_throttle};

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

/// Requests for a fresh nonce per second, at most: Let's Encrypt allows 20 per second per IP
/// address on `/acme/new-nonce` (letsencrypt.org/docs/rate-limits, "Overall Requests"), the lowest
/// of its per-endpoint limits; half of it leaves the rest to other clients on the same address.
pub const NEW_NONCE_PER_SECOND: f64 = 10.0;

/// How many orders are kept with their nonce at most; more than the Certificates in flight at once.
const KEPT_AT_MOST: usize = 1024;

/// What the Certificate controller needs from a CA.
pub trait AcmeApi: Send + Sync {
    /// Places an order for `dns_names`.
    fn new_order(&self, dns_names: &[String]) -> impl Future<Output = Result<OrderView, AcmeError>> + Send;
    /// The order at `url`, with its authorizations.
    fn order(&self, url: &str) -> impl Future<Output = Result<OrderView, AcmeError>> + Send;
    /// Where the order at `url` stands, without its authorizations: one request at most.
    fn phase(&self, url: &str) -> impl Future<Output = Result<OrderPhase, AcmeError>> + Send;
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
    /// The orders last worked on, by URL, each with the nonce of the CA's last answer.
    orders: Arc<Mutex<HashMap<String, Kept>>>,
}

/// An order as last seen, with its nonce (inside) and its authorizations once read.
struct Kept {
    order: instant_acme::Order,
    authorizations: Option<Vec<AuthzView>>,
    /// A challenge of the order was answered: the CA may move it on by itself.
    asked: bool,
}

fn phase_of(status: OrderStatus) -> OrderPhase {
    match status {
        OrderStatus::Pending => OrderPhase::Pending,
        OrderStatus::Ready => OrderPhase::Ready,
        OrderStatus::Processing => OrderPhase::Processing,
        OrderStatus::Valid => OrderPhase::Valid,
        OrderStatus::Invalid => OrderPhase::Invalid,
    }
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the account key
        f.debug_struct("Acme").field("account", &self.account.id()).finish()
    }
}

impl Acme {
    fn builder(
        config: &Config,
        metrics: &Arc<Metrics>,
        throttle: Throttle,
    ) -> Result<instant_acme::AccountBuilder, AcmeError> {
        tls::install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)));
        if let Some(pem) = &config.ca_bundle {
            let unusable =
                |e: String| AcmeError::Credentials(format!("cannot use the CA bundle {}: {e}", pem.display()));
            let text = std::fs::read(pem).map_err(|e| unusable(e.to_string()))?;
            http =
                http.add_root_certificate(reqwest::Certificate::from_pem(&text).map_err(|e| unusable(e.to_string()))?);
        }
        let http = http.build().map_err(|e| AcmeError::Unreachable(e.to_string()))?;
        let transport =
            Transport { http, throttle, nonces: nonce_throttle(metrics), pool: Arc::default(), kept: Arc::default() };
        Ok(Account::builder_with_http(Box::new(transport)))
    }

    /// Registers a new account; returns it with its credentials (JSON, secret: keep them in a Secret).
    /// Every call to the CA, this one included, goes through `throttle`.
    pub async fn register(
        config: &Config,
        metrics: Arc<Metrics>,
        throttle: Throttle,
    ) -> Result<(Self, String), AcmeError> {
        let builder = Self::builder(config, &metrics, throttle)?;
        let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
        let eab = config.external_account.as_ref().map(|(id, key)| ExternalAccountKey::new(id.clone(), key));
        let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
        let started = Instant::now();
        let result = timed(config.timeout, builder.create(&new, config.directory_url.clone(), eab.as_ref())).await;
        metrics.provider_call("acme", "new_account", true, result.is_ok(), started.elapsed());
        let (account, credentials) = result?;
        let json = serde_json::to_string(&credentials).map_err(|e| AcmeError::Credentials(e.to_string()))?;
        Ok((Self { account, timeout: config.timeout, metrics, orders: Arc::default() }, json))
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
        let builder = Self::builder(config, &metrics, throttle)?;
        // reads the directory
        let account = timed(config.timeout, builder.from_credentials(credentials)).await?;
        Ok(Self { account, timeout: config.timeout, metrics, orders: Arc::default() })
    }

    /// Runs `f` (its requests take their turns in the transport), timed and counted.
    async fn call<T>(
        &self,
        operation: &'static str,
        write: bool,
        f: impl Future<Output = Result<T, instant_acme::Error>>,
    ) -> Result<T, AcmeError> {
        let started = Instant::now();
        let result = timed(self.timeout, f).await;
        self.metrics.provider_call("acme", operation, write, result.is_ok(), started.elapsed());
        result
    }

    /// The order at `url` as kept, else read from the CA (a fresh nonce and the order); whether it
    /// was kept.
    async fn fetch(&self, url: &str) -> Result<(Kept, bool), AcmeError> {
        let kept = self.orders.lock().unwrap_or_else(|e| e.into_inner()).remove(url);
        if let Some(kept) = kept {
            return Ok((kept, true));
        }
        let order = self.call("get_order", false, self.account.order(url.to_owned())).await?;
        Ok((Kept { order, authorizations: None, asked: false }, false))
    }

    /// The order at `url`, asked of the CA again if it was kept and can have changed since: the CA
    /// moves an order on while it validates (pending, once a challenge was answered) or issues
    /// (processing); a pending order nobody answered yet, and a ready, valid or invalid one, change
    /// only by our own calls.
    async fn current(&self, url: &str) -> Result<Kept, AcmeError> {
        let (mut kept, was_kept) = self.fetch(url).await?;
        let status = kept.order.state().status;
        let moving = match status {
            OrderStatus::Pending => kept.asked || kept.authorizations.is_none(),
            OrderStatus::Processing => true,
            OrderStatus::Ready | OrderStatus::Valid | OrderStatus::Invalid => false,
        };
        if was_kept && moving {
            // the authorizations are read again while pending (the order's own copy is gone); the
            // values kept are what a ready, processing or valid order is shown with
            self.call("get_order", false, kept.order.refresh()).await?;
        }
        Ok(kept)
    }

    /// Keeps `kept` for the next call on it.
    fn keep(&self, kept: Kept) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        if orders.len() >= KEPT_AT_MOST
            && let Some(any) = orders.keys().next().cloned()
        {
            orders.remove(&any);
        }
        orders.insert(kept.order.url().to_owned(), kept);
    }

    /// The order's view: its authorizations read unless they are known and cannot have changed
    /// (an order that is ready or further has every authorization valid).
    async fn view(&self, kept: &mut Kept) -> Result<OrderView, AcmeError> {
        let url = kept.order.url().to_owned();
        let state = kept.order.state();
        let phase = phase_of(state.status);
        let mut problem = state.error.as_ref().map(problem_text);
        let unread = state.authorizations.iter().filter(|a| a.state.is_none()).count();
        if let (Some(known), OrderPhase::Ready | OrderPhase::Processing | OrderPhase::Valid) =
            (&kept.authorizations, phase)
        {
            let settled = |a: &AuthzView| AuthzView {
                settled: true,
                dns01: a.dns01.clone().map(|c| Dns01 { answered: true, ..c }),
                ..a.clone()
            };
            let authorizations = known.iter().map(settled).collect();
            return Ok(OrderView { url, phase, problem, authorizations });
        }
        let order = &mut kept.order;
        let read = async {
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
            Ok::<_, instant_acme::Error>(authorizations)
        };
        // authorizations already read are not asked for again: no request, no turn
        let authorizations = match unread {
            0 => timed(self.timeout, read).await?,
            _ => self.call("get_authorizations", false, read).await?,
        };
        kept.authorizations = Some(authorizations.clone());
        Ok(OrderView { url, phase, problem, authorizations })
    }
}

impl AcmeApi for Acme {
    async fn new_order(&self, dns_names: &[String]) -> Result<OrderView, AcmeError> {
        let identifiers: Vec<Identifier> = dns_names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let order = self.call("new_order", true, self.account.new_order(&NewOrder::new(&identifiers))).await?;
        let mut kept = Kept { order, authorizations: None, asked: false };
        let view = self.view(&mut kept).await?;
        self.keep(kept);
        Ok(view)
    }

    async fn order(&self, url: &str) -> Result<OrderView, AcmeError> {
        let mut kept = self.current(url).await?;
        let view = self.view(&mut kept).await?;
        self.keep(kept);
        Ok(view)
    }

    async fn phase(&self, url: &str) -> Result<OrderPhase, AcmeError> {
        let mut kept = self.current(url).await?;
        let phase = phase_of(kept.order.state().status);
        self.keep(kept);
        Ok(phase)
    }

    async fn answer(&self, order_url: &str, challenge_url: &str) -> Result<(), AcmeError> {
        let (mut kept, _) = self.fetch(order_url).await?;
        let order = &mut kept.order;
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
        let answered = self.call("answer_challenge", true, answered).await?;
        // the authorizations read are kept for the next answer; the order is asked again next time
        kept.asked = true;
        self.keep(kept);
        if answered {
            Ok(())
        } else {
            Err(AcmeError::BadResponse(format!("order {order_url} has no challenge {challenge_url}")))
        }
    }

    async fn finalize(&self, order_url: &str, csr_der: &[u8]) -> Result<(), AcmeError> {
        let (mut kept, _) = self.fetch(order_url).await?;
        self.call("finalize", true, kept.order.finalize_csr(csr_der)).await?;
        self.keep(kept);
        Ok(())
    }

    async fn certificate(&self, order_url: &str) -> Result<String, AcmeError> {
        let (mut kept, _) = self.fetch(order_url).await?;
        // a processing order is asked again first
        match self.call("get_certificate", false, kept.order.certificate()).await? {
            // the order is done with: not kept
            Some(chain) => Ok(chain),
            None => {
                self.keep(kept);
                Err(AcmeError::BadResponse(format!("order {order_url} has no certificate yet")))
            }
        }
    }
}

async fn timed<T>(limit: Duration, f: impl Future<Output = Result<T, instant_acme::Error>>) -> Result<T, AcmeError> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(AcmeError::from),
        Err(_) => Err(AcmeError::Timeout(limit)),
    }
}
