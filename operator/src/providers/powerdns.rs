//! The PowerDNS authoritative server's HTTP API (v1): zones and their rrsets.
//!
//! Every error carries PowerDNS's own message verbatim, so a condition can show it. Only idempotent
//! calls are retried (GET, PUT, DELETE, and PATCH, which here only ever REPLACEs or DELETEs whole
//! rrsets); creating a zone is not.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use mpanel_crds::reasons;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::throttle::Throttle;
use crate::metrics::Metrics;
use crate::tls;

/// Where the API is and how to authenticate.
#[derive(Clone)]
pub struct Config {
    /// e.g. `http://127.0.0.1:8081`
    pub api_url: String,
    pub api_key: String,
    /// The server id in API paths; `localhost` for an authoritative server.
    pub server_id: String,
    /// Deadline of one HTTP request.
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_url", &self.api_url)
            .field("api_key", &super::REDACTED)
            .field("server_id", &self.server_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PowerDnsError {
    /// PowerDNS answered with an error status; `message` is its own text.
    #[error("PowerDNS answered {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("PowerDNS could not be reached: {0}")]
    Unreachable(String),
    #[error("PowerDNS sent an answer that could not be read: {0}")]
    BadResponse(String),
}

impl PowerDnsError {
    /// Stable reason for conditions, metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected { status: 409, .. } => reasons::POWER_DNS_CONFLICT.name,
            Self::Rejected { status, .. } if *status >= 500 => reasons::POWER_DNS_SERVER_ERROR.name,
            Self::Rejected { .. } => reasons::POWER_DNS_REJECTED.name,
            Self::Unreachable(_) => reasons::POWER_DNS_UNREACHABLE.name,
            Self::BadResponse(_) => reasons::POWER_DNS_BAD_RESPONSE.name,
        }
    }

    /// PowerDNS says there is no such zone: 404 from 4.7, 422 "Could not find domain" from older
    /// versions.
    fn is_unknown_zone(&self) -> bool {
        match self {
            Self::Rejected { status: 404, .. } => true,
            Self::Rejected { status: 422, message } => message.contains("Could not find domain"),
            _ => false,
        }
    }

    /// Worth retrying: the request may not have been processed.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_)) || matches!(self, Self::Rejected { status, .. } if *status >= 500)
    }
}

/// A zone as `GET /zones/{id}` returns it; in the listing of `GET /zones`, without rrsets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    /// Canonical name with the trailing dot.
    pub name: String,
    pub kind: String,
    /// Free-form account field; the operator's ownership marker lives here.
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub serial: u32,
    #[serde(default)]
    pub rrsets: Vec<RrSet>,
}

/// All records of one name and type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RrSet {
    /// Absolute owner name with the trailing dot.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub records: Vec<RecordData>,
    /// Set in PATCH requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changetype: Option<ChangeType>,
}

impl RrSet {
    /// A PATCH entry that replaces the whole rrset with `contents`.
    pub fn replace(
        name: impl Into<String>,
        rtype: impl Into<String>,
        ttl: u32,
        contents: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            name: name.into(),
            rtype: rtype.into(),
            ttl: Some(ttl),
            records: contents.into_iter().map(|content| RecordData { content, disabled: false }).collect(),
            changetype: Some(ChangeType::Replace),
        }
    }

    /// A PATCH entry that deletes the whole rrset.
    pub fn delete(name: impl Into<String>, rtype: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            rtype: rtype.into(),
            ttl: None,
            records: Vec::new(),
            changetype: Some(ChangeType::Delete),
        }
    }
}

/// One record's data in zone-file form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordData {
    pub content: String,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    Replace,
    Delete,
}

/// The body of `POST /zones`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct NewZone {
    pub name: String,
    pub kind: String,
    pub nameservers: Vec<String>,
    pub account: String,
    /// How PowerDNS moves the SOA serial on API edits; `DEFAULT` bumps it.
    pub soa_edit_api: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rrsets: Vec<RrSet>,
}

#[derive(Serialize)]
struct RrSetPatch<'a> {
    rrsets: &'a [RrSet],
}

#[derive(Serialize)]
struct AccountUpdate<'a> {
    account: &'a str,
}

/// What the DnsZone controller needs from PowerDNS.
pub trait DnsApi: Send + Sync {
    /// The zone with its rrsets; `None` when there is no such zone.
    fn zone(&self, name: &str) -> impl Future<Output = Result<Option<Zone>, PowerDnsError>> + Send;
    /// Every zone on the server, without rrsets.
    fn zones(&self) -> impl Future<Output = Result<Vec<Zone>, PowerDnsError>> + Send;
    /// Creates a zone; refused with 409 when it exists.
    fn create_zone(&self, zone: &NewZone) -> impl Future<Output = Result<Zone, PowerDnsError>> + Send;
    /// Applies whole-rrset REPLACE/DELETE changes atomically.
    fn patch_rrsets(&self, zone: &str, rrsets: &[RrSet]) -> impl Future<Output = Result<(), PowerDnsError>> + Send;
    /// Sets the zone's account field.
    fn set_account(&self, zone: &str, account: &str) -> impl Future<Output = Result<(), PowerDnsError>> + Send;
    /// Deletes the zone; `false` when it was already gone.
    fn delete_zone(&self, zone: &str) -> impl Future<Output = Result<bool, PowerDnsError>> + Send;
}

/// `name` with exactly one trailing dot, as PowerDNS writes names and zone ids.
pub fn canonical(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// The HTTP client.
#[derive(Clone)]
pub struct PowerDns {
    http: reqwest::Client,
    config: Config,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl std::fmt::Debug for PowerDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the API key
        f.debug_struct("PowerDns")
            .field("api_url", &self.config.api_url)
            .field("server_id", &self.config.server_id)
            .finish()
    }
}

impl PowerDns {
    /// Every call is counted in `metrics` (`mpanel_provider_calls_total{provider="powerdns"}`).
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, PowerDnsError> {
        tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| PowerDnsError::Unreachable(e.to_string()))?;
        Ok(Self { http, config, metrics, throttle: Throttle::unlimited() })
    }

    /// Sends every request through `throttle` (shared with the other clients of this server).
    pub fn with_throttle(self, throttle: Throttle) -> Self {
        Self { throttle, ..self }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/servers/{}{path}", self.config.api_url.trim_end_matches('/'), self.config.server_id)
    }

    /// One request; the body of a 2xx answer, or the error PowerDNS gave.
    async fn send_once(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, PowerDnsError> {
        let _turn = self.throttle.turn().await;
        let started = Instant::now();
        let write = method != Method::GET;
        let result = self.request(method, path, body).await;
        self.metrics.provider_call("powerdns", operation, write, result.is_ok(), started.elapsed());
        result
    }

    async fn request(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<Vec<u8>, PowerDnsError> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("X-API-Key", &self.config.api_key)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_vec());
        }
        let response = request.send().await.map_err(|e| PowerDnsError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| PowerDnsError::Unreachable(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(PowerDnsError::Rejected { status: status.as_u16(), message: error_message(status, &bytes) })
    }

    /// A request, retried with backoff on transient failures when `idempotent`.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotent: bool,
    ) -> Result<Vec<u8>, PowerDnsError> {
        let attempt = || self.send_once(operation, method.clone(), path, body.as_deref());
        if !idempotent {
            return attempt().await;
        }
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_times(3)
                    .with_jitter(),
            )
            .when(PowerDnsError::is_transient)
            .await
    }

    fn encode(value: &impl Serialize) -> Result<Vec<u8>, PowerDnsError> {
        serde_json::to_vec(value).map_err(|e| PowerDnsError::BadResponse(format!("encoding the request: {e}")))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PowerDnsError> {
        serde_json::from_slice(bytes).map_err(|e| PowerDnsError::BadResponse(e.to_string()))
    }
}

/// PowerDNS's own error text: the `error` field of a JSON body (422), else the plain body (404, 409).
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ApiError {
        error: String,
    }
    if let Ok(ApiError { error }) = serde_json::from_slice::<ApiError>(body) {
        return error;
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text }
}

impl DnsApi for PowerDns {
    async fn zone(&self, name: &str) -> Result<Option<Zone>, PowerDnsError> {
        match self.send("get_zone", Method::GET, &format!("/zones/{}", canonical(name)), None, true).await {
            Ok(body) => Self::decode(&body).map(Some),
            Err(e) if e.is_unknown_zone() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn zones(&self) -> Result<Vec<Zone>, PowerDnsError> {
        Self::decode(&self.send("list_zones", Method::GET, "/zones", None, true).await?)
    }

    async fn create_zone(&self, zone: &NewZone) -> Result<Zone, PowerDnsError> {
        let body = Self::encode(zone)?;
        Self::decode(&self.send("create_zone", Method::POST, "/zones", Some(body), false).await?)
    }

    async fn patch_rrsets(&self, zone: &str, rrsets: &[RrSet]) -> Result<(), PowerDnsError> {
        let body = Self::encode(&RrSetPatch { rrsets })?;
        self.send("patch_rrsets", Method::PATCH, &format!("/zones/{}", canonical(zone)), Some(body), true)
            .await
            .map(drop)
    }

    async fn set_account(&self, zone: &str, account: &str) -> Result<(), PowerDnsError> {
        let body = Self::encode(&AccountUpdate { account })?;
        self.send("set_account", Method::PUT, &format!("/zones/{}", canonical(zone)), Some(body), true).await.map(drop)
    }

    async fn delete_zone(&self, zone: &str) -> Result<bool, PowerDnsError> {
        match self.send("delete_zone", Method::DELETE, &format!("/zones/{}", canonical(zone)), None, true).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_unknown_zone() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_adds_exactly_one_trailing_dot() {
        assert_eq!(canonical("example.com"), "example.com.");
        assert_eq!(canonical("example.com."), "example.com.");
    }

    #[test]
    fn error_message_prefers_the_json_error_field_then_the_plain_body() {
        assert_eq!(
            error_message(StatusCode::UNPROCESSABLE_ENTITY, br#"{"error": "Record x/A 'y': Parsing failed"}"#),
            "Record x/A 'y': Parsing failed"
        );
        assert_eq!(error_message(StatusCode::CONFLICT, b"Conflict\n"), "Conflict");
        assert_eq!(error_message(StatusCode::NOT_FOUND, b""), "Not Found");
    }

    #[test]
    fn patch_entries_serialise_as_powerdns_expects() {
        let replace = serde_json::to_value(RrSet::replace("www.example.com.", "A", 300, ["192.0.2.1".to_owned()]))
            .unwrap_or_default();
        assert_eq!(
            replace,
            serde_json::json!({"name": "www.example.com.", "type": "A", "ttl": 300, "changetype": "REPLACE",
                               "records": [{"content": "192.0.2.1", "disabled": false}]})
        );
        let delete = serde_json::to_value(RrSet::delete("old.example.com.", "TXT")).unwrap_or_default();
        assert_eq!(
            delete,
            serde_json::json!({"name": "old.example.com.", "type": "TXT", "changetype": "DELETE", "records": []})
        );
    }

    #[test]
    fn an_unknown_zone_is_recognised_in_both_forms_powerdns_uses() {
        assert!(PowerDnsError::Rejected { status: 404, message: "Not Found".into() }.is_unknown_zone());
        assert!(
            PowerDnsError::Rejected { status: 422, message: "Could not find domain 'x.'".into() }.is_unknown_zone()
        );
        assert!(
            !PowerDnsError::Rejected { status: 422, message: "Record x/A 'y': Parsing failed".into() }
                .is_unknown_zone()
        );
        assert!(!PowerDnsError::Unreachable("refused".into()).is_unknown_zone());
    }

    #[test]
    fn only_transport_failures_and_server_errors_are_retried() {
        assert!(PowerDnsError::Unreachable("refused".into()).is_transient());
        assert!(PowerDnsError::Rejected { status: 503, message: String::new() }.is_transient());
        assert!(!PowerDnsError::Rejected { status: 422, message: String::new() }.is_transient());
        assert!(!PowerDnsError::Rejected { status: 409, message: String::new() }.is_transient());
    }
}
