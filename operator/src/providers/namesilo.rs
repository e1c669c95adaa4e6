//! The Namesilo registrar API: `GET {apiUrl}/{operation}?version=1&type=json&key=…`.
//!
//! Namesilo answers HTTP 200 to everything and puts the outcome in `reply.code`: 300–302 are
//! success, 250–256 "already in that state" (success for the state-changing calls), anything else
//! an error whose `detail` is kept verbatim. Its JSON is its XML converted, so a list of one comes
//! back as a bare value; the readers here take either. The API key travels in the query string and
//! must never reach a log, an error or a condition. Reads are retried; the paid calls (register,
//! renew, transfer) are sent exactly once and never retried here.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use mpanel_crds::reasons;
use serde_json::Value;

use super::throttle::Throttle;
use crate::metrics::Metrics;
use crate::tls;

#[derive(Clone)]
pub struct Config {
    /// e.g. `https://www.namesilo.com/api`
    pub api_url: String,
    pub api_key: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the key
        f.debug_struct("Config").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

/// Namesilo reply codes the operator acts on.
pub mod code {
    pub const NO_API_KEY: u16 = 109;
    pub const INVALID_API_KEY: u16 = 110;
    pub const MISSING_PARAMETERS: u16 = 108;
    pub const REGISTRY_UNAVAILABLE: u16 = 115;
    pub const INSUFFICIENT_FUNDS: u16 = 119;
    pub const NOT_IN_ACCOUNT: u16 = 200;
    pub const UNAVAILABLE: u16 = 261;
    pub const ALREADY_ACTIVE: u16 = 262;
    pub const INVALID_YEARS: u16 = 263;
    pub const CANNOT_RENEW_YEARS: u16 = 264;
    pub const CANNOT_TRANSFER: u16 = 265;
    pub const NO_TRANSFER: u16 = 266;

    /// 300 success, 301 registered with the registrar's nameservers, 302 with the default contact.
    pub fn is_success(code: u16) -> bool {
        (300..=302).contains(&code)
    }

    /// "Already locked", "already set to auto-renew" and the like: nothing was changed because
    /// nothing needed to be.
    pub fn is_already_in_state(code: u16) -> bool {
        (250..=256).contains(&code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NamesiloError {
    /// Namesilo answered with a reply code that is not success; `detail` is its own text.
    #[error("Namesilo {operation}: {code} {detail}")]
    Reply { operation: &'static str, code: u16, detail: String },
    #[error("Namesilo could not be reached: {0}")]
    Unreachable(String),
    #[error("Namesilo sent an answer that could not be read: {0}")]
    BadResponse(String),
}

impl NamesiloError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Reply { code, .. } => match *code {
                code::NO_API_KEY | code::INVALID_API_KEY | 111..=113 => reasons::NAMESILO_UNAUTHORIZED.name,
                code::MISSING_PARAMETERS => reasons::NAMESILO_MISSING_PARAMETERS.name,
                code::REGISTRY_UNAVAILABLE => reasons::NAMESILO_REGISTRY_UNAVAILABLE.name,
                code::INSUFFICIENT_FUNDS => reasons::NAMESILO_INSUFFICIENT_FUNDS.name,
                code::NOT_IN_ACCOUNT => reasons::NAMESILO_NOT_IN_ACCOUNT.name,
                code::UNAVAILABLE | code::ALREADY_ACTIVE => reasons::NAMESILO_UNAVAILABLE.name,
                code::INVALID_YEARS | code::CANNOT_RENEW_YEARS => reasons::NAMESILO_INVALID_YEARS.name,
                code::CANNOT_TRANSFER => reasons::NAMESILO_TRANSFER_REFUSED.name,
                code::NO_TRANSFER => reasons::NAMESILO_NO_TRANSFER.name,
                _ => reasons::NAMESILO_ERROR.name,
            },
            Self::Unreachable(_) => reasons::NAMESILO_UNREACHABLE.name,
            Self::BadResponse(_) => reasons::NAMESILO_BAD_RESPONSE.name,
        }
    }

    fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_)) || matches!(self, Self::Reply { code: code::REGISTRY_UNAVAILABLE, .. })
    }

    fn code(&self) -> Option<u16> {
        match self {
            Self::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A domain in the account, as `getDomainInfo` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub created: Option<String>,
    /// `YYYY-MM-DD`
    pub expires: String,
    /// e.g. `Active`, `Expired`
    pub status: String,
    pub locked: bool,
    pub private: bool,
    pub auto_renew: bool,
    /// Lowercase, without a trailing dot, in the registrar's order.
    pub nameservers: Vec<String>,
}

/// An inbound transfer, as `checkTransferStatus` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub status: String,
    pub message: Option<String>,
}

impl Transfer {
    pub fn completed(&self) -> bool {
        is_completed(&self.status)
    }
}

/// Whether a transfer status (as `checkTransferStatus` words it) is the final one.
pub fn is_completed(status: &str) -> bool {
    status.eq_ignore_ascii_case("Transfer Completed")
}

/// The answer to a paid call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub code: u16,
    pub message: Option<String>,
    /// What was charged, as Namesilo wrote it.
    pub amount: Option<String>,
}

/// Registrant contact, in Namesilo's parameter names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub first_name: String,
    pub last_name: String,
    pub organization: Option<String>,
    pub email: String,
    pub phone: String,
    pub street: String,
    pub city: String,
    pub state_province: Option<String>,
    pub postal_code: String,
    pub country: String,
}

/// What a registration or transfer order asks for besides the name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderOptions {
    pub nameservers: Vec<String>,
    pub private: bool,
    pub auto_renew: bool,
    /// Without one, the account's default contact profile is used.
    pub contact: Option<Contact>,
}

/// What the Domain controller needs from the registrar.
pub trait NamesiloApi: Send + Sync {
    /// The domain, when it is in the account.
    fn domain_info(&self, domain: &str) -> impl Future<Output = Result<Option<DomainInfo>, NamesiloError>> + Send;
    /// Whether the name can be registered now.
    fn available(&self, domain: &str) -> impl Future<Output = Result<bool, NamesiloError>> + Send;
    /// Paid. Sent once; never retried here.
    fn register(
        &self,
        domain: &str,
        years: u8,
        options: &OrderOptions,
    ) -> impl Future<Output = Result<Receipt, NamesiloError>> + Send;
    /// Paid. Sent once; never retried here.
    fn renew(&self, domain: &str, years: u8) -> impl Future<Output = Result<Receipt, NamesiloError>> + Send;
    /// Paid. Sent once; never retried here.
    fn transfer(
        &self,
        domain: &str,
        auth_code: &str,
        options: &OrderOptions,
    ) -> impl Future<Output = Result<Receipt, NamesiloError>> + Send;
    /// The inbound transfer of `domain`, when there is one.
    fn transfer_status(&self, domain: &str) -> impl Future<Output = Result<Option<Transfer>, NamesiloError>> + Send;
    /// Gives a pending transfer a new auth code.
    fn change_auth_code(&self, domain: &str, auth_code: &str)
    -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_nameservers(
        &self,
        domain: &str,
        nameservers: &[String],
    ) -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_lock(&self, domain: &str, locked: bool) -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_privacy(&self, domain: &str, private: bool) -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_auto_renew(&self, domain: &str, auto_renew: bool) -> impl Future<Output = Result<(), NamesiloError>> + Send;
}

pub struct Namesilo {
    http: reqwest::Client,
    config: Config,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl std::fmt::Debug for Namesilo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namesilo").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How a call may be sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Changes nothing: retried on transport errors.
    Read,
    /// Changes settings; sending it twice does no harm, but it is sent once.
    Write,
    /// Spends money: sent once, whatever happens.
    Paid,
}

impl Namesilo {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, NamesiloError> {
        tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| NamesiloError::Unreachable(e.without_url().to_string()))?;
        Ok(Self { http, config, metrics, throttle: Throttle::unlimited() })
    }

    /// Sends every request through `throttle`.
    pub fn with_throttle(self, throttle: Throttle) -> Self {
        Self { throttle, ..self }
    }

    async fn send_once(&self, operation: &'static str, params: &[(&str, String)]) -> Result<Value, NamesiloError> {
        let _turn = self.throttle.turn().await;
        let started = Instant::now();
        let result = async {
            let mut url = reqwest::Url::parse(&format!("{}/{operation}", self.config.api_url.trim_end_matches('/')))
                .map_err(|e| NamesiloError::Unreachable(format!("apiUrl: {e}")))?;
            url.query_pairs_mut()
                .extend_pairs([("version", "1"), ("type", "json"), ("key", self.config.api_key.as_str())])
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            let response = self
                .http
                .get(url)
                .send()
                .await
                // the URL holds the key
                .map_err(|e| NamesiloError::Unreachable(e.without_url().to_string()))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| NamesiloError::Unreachable(e.without_url().to_string()))?;
            if !status.is_success() {
                return Err(NamesiloError::Unreachable(format!("HTTP {status}")));
            }
            reply(operation, &bytes)
        }
        .await;
        let write = operation_writes(operation);
        self.metrics.provider_call("namesilo", operation, write, result.is_ok(), started.elapsed());
        result
    }

    async fn send(
        &self,
        call: Call,
        operation: &'static str,
        params: &[(&str, String)],
    ) -> Result<Value, NamesiloError> {
        if call != Call::Read {
            return self.send_once(operation, params).await;
        }
        (|| self.send_once(operation, params))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(3)
                    .with_jitter(),
            )
            .when(NamesiloError::is_transient)
            .await
    }

    /// A state change where "already in that state" is success.
    async fn toggle(&self, operation: &'static str, domain: &str) -> Result<(), NamesiloError> {
        match self.send(Call::Write, operation, &[("domain", domain.to_owned())]).await {
            Ok(_) => Ok(()),
            Err(e) if e.code().is_some_and(code::is_already_in_state) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn paid(&self, operation: &'static str, params: &[(&str, String)]) -> Result<Receipt, NamesiloError> {
        let reply = self.send(Call::Paid, operation, params).await?;
        Ok(Receipt {
            code: reply_code(&reply).unwrap_or(300),
            message: text(&reply, "message"),
            amount: text(&reply, "order_amount"),
        })
    }
}

fn operation_writes(operation: &str) -> bool {
    !matches!(operation, "getDomainInfo" | "checkRegisterAvailability" | "checkTransferStatus" | "listDomains")
}

/// The `reply` of an answer, or the error its code stands for.
fn reply(operation: &'static str, body: &[u8]) -> Result<Value, NamesiloError> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| NamesiloError::BadResponse(e.to_string()))?;
    let reply = answer
        .get("reply")
        .cloned()
        .ok_or_else(|| NamesiloError::BadResponse(format!("{operation}: no reply in the answer")))?;
    let code =
        reply_code(&reply).ok_or_else(|| NamesiloError::BadResponse(format!("{operation}: the reply has no code")))?;
    if code::is_success(code) {
        Ok(reply)
    } else {
        let detail = text(&reply, "detail").unwrap_or_default();
        Err(NamesiloError::Reply { operation, code, detail })
    }
}

fn reply_code(reply: &Value) -> Option<u16> {
    match reply.get("code")? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A scalar field as text (Namesilo writes numbers and strings interchangeably).
fn text(reply: &Value, key: &str) -> Option<String> {
    match reply.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn yes(reply: &Value, key: &str) -> bool {
    text(reply, key).is_some_and(|v| v.eq_ignore_ascii_case("yes") || v == "1")
}

/// The members of a list that may come as an array, a single value, or wrapped in an object
/// (`{"domain": [...]}`), as XML converted to JSON does.
fn members<'a>(value: &'a Value, inner: &str) -> Vec<&'a Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) if map.contains_key(inner) && map.len() == 1 => members(&map[inner], inner),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A hostname the way the operator compares them: lowercase, no trailing dot.
pub fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn nameservers(reply: &Value) -> Vec<String> {
    let Some(list) = reply.get("nameservers") else { return Vec::new() };
    let mut found: Vec<(u64, String)> = members(list, "nameserver")
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let (position, name) = match item {
                Value::String(s) => (i as u64 + 1, s.clone()),
                Value::Object(o) => {
                    let name = o.get("nameserver").or_else(|| o.get("#text")).and_then(Value::as_str)?.to_owned();
                    let position = o
                        .get("position")
                        .and_then(|p| p.as_u64().or_else(|| p.as_str().and_then(|s| s.parse().ok())))
                        .unwrap_or(i as u64 + 1);
                    (position, name)
                }
                _ => return None,
            };
            Some((position, normalise_host(&name)))
        })
        .filter(|(_, n)| !n.is_empty())
        .collect();
    found.sort_by_key(|(p, _)| *p);
    found.into_iter().map(|(_, n)| n).collect()
}

fn domain_info(reply: &Value) -> Result<DomainInfo, NamesiloError> {
    Ok(DomainInfo {
        created: text(reply, "created"),
        expires: text(reply, "expires")
            .ok_or_else(|| NamesiloError::BadResponse("getDomainInfo: no expires".into()))?,
        status: text(reply, "status").unwrap_or_default(),
        locked: yes(reply, "locked"),
        private: yes(reply, "private"),
        auto_renew: yes(reply, "auto_renew"),
        nameservers: nameservers(reply),
    })
}

fn order_params(options: &OrderOptions) -> Vec<(&'static str, String)> {
    const NS: [&str; 13] =
        ["ns1", "ns2", "ns3", "ns4", "ns5", "ns6", "ns7", "ns8", "ns9", "ns10", "ns11", "ns12", "ns13"];
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut params = vec![("private", flag(options.private)), ("auto_renew", flag(options.auto_renew))];
    params.extend(NS.iter().zip(&options.nameservers).map(|(k, v)| (*k, v.clone())));
    if let Some(c) = &options.contact {
        params.extend([
            ("fn", c.first_name.clone()),
            ("ln", c.last_name.clone()),
            ("ad", c.street.clone()),
            ("cy", c.city.clone()),
            ("st", c.state_province.clone().unwrap_or_default()),
            ("zp", c.postal_code.clone()),
            ("ct", c.country.clone()),
            ("em", c.email.clone()),
            ("ph", c.phone.clone()),
        ]);
        if let Some(org) = &c.organization {
            params.push(("cp", org.clone()));
        }
    }
    params
}

fn nameserver_params(nameservers: &[String]) -> Vec<(String, String)> {
    nameservers.iter().enumerate().map(|(i, ns)| (format!("ns{}", i + 1), ns.clone())).collect()
}

impl NamesiloApi for Namesilo {
    async fn domain_info(&self, domain: &str) -> Result<Option<DomainInfo>, NamesiloError> {
        match self.send(Call::Read, "getDomainInfo", &[("domain", domain.to_owned())]).await {
            Ok(reply) => domain_info(&reply).map(Some),
            Err(e) if e.code() == Some(code::NOT_IN_ACCOUNT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn available(&self, domain: &str) -> Result<bool, NamesiloError> {
        let reply = self.send(Call::Read, "checkRegisterAvailability", &[("domains", domain.to_owned())]).await?;
        let wanted = normalise_host(domain);
        let Some(available) = reply.get("available") else { return Ok(false) };
        Ok(members(available, "domain").into_iter().any(|item| {
            let name = match item {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("domain").or_else(|| o.get("#text")).and_then(Value::as_str),
                _ => None,
            };
            name.is_some_and(|n| normalise_host(n) == wanted)
        }))
    }

    async fn register(&self, domain: &str, years: u8, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        let mut params = vec![("domain", domain.to_owned()), ("years", years.to_string())];
        params.extend(order_params(options));
        self.paid("registerDomain", &params).await
    }

    async fn renew(&self, domain: &str, years: u8) -> Result<Receipt, NamesiloError> {
        self.paid("renewDomain", &[("domain", domain.to_owned()), ("years", years.to_string())]).await
    }

    async fn transfer(&self, domain: &str, auth_code: &str, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        let mut params = vec![("domain", domain.to_owned()), ("auth", auth_code.to_owned())];
        // a transfer keeps the nameservers the domain has; they are changed once it arrived
        params.extend(order_params(&OrderOptions { nameservers: Vec::new(), ..options.clone() }));
        self.paid("transferDomain", &params).await
    }

    async fn transfer_status(&self, domain: &str) -> Result<Option<Transfer>, NamesiloError> {
        match self.send(Call::Read, "checkTransferStatus", &[("domain", domain.to_owned())]).await {
            Ok(reply) => Ok(Some(Transfer {
                status: text(&reply, "status").unwrap_or_default(),
                message: text(&reply, "message"),
            })),
            Err(e) if e.code() == Some(code::NO_TRANSFER) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn change_auth_code(&self, domain: &str, auth_code: &str) -> Result<(), NamesiloError> {
        let params = [("domain", domain.to_owned()), ("auth", auth_code.to_owned())];
        self.send(Call::Write, "transferUpdateChangeEPPCode", &params).await.map(drop)
    }

    async fn set_nameservers(&self, domain: &str, nameservers: &[String]) -> Result<(), NamesiloError> {
        let numbered = nameserver_params(nameservers);
        let mut params: Vec<(&str, String)> = vec![("domain", domain.to_owned())];
        params.extend(numbered.iter().map(|(k, v)| (k.as_str(), v.clone())));
        self.send(Call::Write, "changeNameServers", &params).await.map(drop)
    }

    async fn set_lock(&self, domain: &str, locked: bool) -> Result<(), NamesiloError> {
        self.toggle(if locked { "domainLock" } else { "domainUnlock" }, domain).await
    }

    async fn set_privacy(&self, domain: &str, private: bool) -> Result<(), NamesiloError> {
        self.toggle(if private { "addPrivacy" } else { "removePrivacy" }, domain).await
    }

    async fn set_auto_renew(&self, domain: &str, auto_renew: bool) -> Result<(), NamesiloError> {
        self.toggle(if auto_renew { "addAutoRenewal" } else { "removeAutoRenewal" }, domain).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(reply: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"request": {"operation": "x", "ip": "127.0.0.1"}, "reply": reply})).unwrap()
    }

    #[test]
    fn reply_codes_are_read_as_numbers_or_strings_and_errors_keep_the_detail() {
        assert!(reply("getDomainInfo", &body(json!({"code": 300, "detail": "success"}))).is_ok());
        assert!(reply("registerDomain", &body(json!({"code": "301", "detail": "success"}))).is_ok());
        let e = reply(
            "registerDomain",
            &body(json!({"code": 119, "detail": "Insufficient account funds for requested transaction"})),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "NamesiloInsufficientFunds");
        assert_eq!(e.to_string(), "Namesilo registerDomain: 119 Insufficient account funds for requested transaction");
        assert_eq!(
            reply("x", &body(json!({"code": 110, "detail": "Invalid API Key"}))).unwrap_err().reason(),
            "NamesiloUnauthorized"
        );
        assert!(matches!(reply("x", b"<html>"), Err(NamesiloError::BadResponse(_))));
    }

    #[test]
    fn domain_info_reads_flags_and_nameservers_in_position_order() {
        let r = json!({"code": 300, "detail": "success", "created": "2025-01-02", "expires": "2027-01-02",
            "status": "Active", "locked": "Yes", "private": "No", "auto_renew": "No",
            "nameservers": [{"position": 2, "nameserver": "NS2.EXAMPLE.NET"}, {"position": "1", "nameserver": "ns1.example.net."}]});
        let info = domain_info(&r).unwrap();
        assert_eq!(info.expires, "2027-01-02");
        assert!(info.locked && !info.private && !info.auto_renew);
        assert_eq!(info.nameservers, ["ns1.example.net", "ns2.example.net"]);
    }

    #[test]
    fn lists_of_one_come_as_bare_values() {
        let one = json!({"nameservers": {"nameserver": "NS1.EXAMPLE.NET"}});
        assert_eq!(nameservers(&one), ["ns1.example.net"]);
        let wrapped = json!({"domains": {"domain": ["a.com", "b.com"]}});
        assert_eq!(members(&wrapped["domains"], "domain").len(), 2);
        let single = json!({"domains": {"domain": "a.com"}});
        assert_eq!(members(&single["domains"], "domain"), [&json!("a.com")]);
    }

    #[test]
    fn order_parameters_carry_flags_nameservers_and_contact() {
        let options = OrderOptions {
            nameservers: vec!["ns1.example.net".into(), "ns2.example.net".into()],
            private: true,
            auto_renew: false,
            contact: Some(Contact { first_name: "Ada".into(), country: "GB".into(), ..Default::default() }),
        };
        let params = order_params(&options);
        let get = |k: &str| params.iter().find(|(p, _)| *p == k).map(|(_, v)| v.as_str());
        assert_eq!(get("private"), Some("1"));
        assert_eq!(get("auto_renew"), Some("0"));
        assert_eq!(get("ns2"), Some("ns2.example.net"));
        assert_eq!(get("ns3"), None);
        assert_eq!(get("fn"), Some("Ada"));
        assert_eq!(get("cp"), None);
    }
}
