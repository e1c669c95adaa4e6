//! The Proxmox VE API (`/api2/json`) with an API token: nodes, guests, clone, config, resize,
//! power (start, stop, reboot), delete, tasks, and the guest agent's read-only commands.
//!
//! Long operations (clone, start, stop, delete, LXC resize) return a task id (UPID) at once; the
//! caller keeps it and reads the task later, so nothing here waits for a task. Every error carries
//! Proxmox's own message (and its per-parameter errors) verbatim. Only reads are retried.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use mpanel_crds::reasons;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::throttle::Throttle;
use crate::metrics::Metrics;
use crate::tls;

#[derive(Clone)]
pub struct Config {
    /// e.g. `https://pve.example.net:8006`
    pub url: String,
    /// `user@realm!tokenid=secret`, the part after `PVEAPIToken=`.
    pub token: String,
    /// PEM of the CA that signed the API's certificate; the platform's roots otherwise.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("token", &super::REDACTED)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxmoxError {
    /// Proxmox answered with an error status; `message` is its own text.
    #[error("Proxmox answered {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("Proxmox could not be reached: {0}")]
    Unreachable(String),
    #[error("Proxmox sent an answer that could not be read: {0}")]
    BadResponse(String),
}

impl ProxmoxError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected { status: 401 | 403, .. } => reasons::PROXMOX_UNAUTHORIZED.name,
            Self::Rejected { status, .. } if *status >= 500 => reasons::PROXMOX_ERROR.name,
            Self::Rejected { .. } => reasons::PROXMOX_REJECTED.name,
            Self::Unreachable(_) => reasons::PROXMOX_UNREACHABLE.name,
            Self::BadResponse(_) => reasons::PROXMOX_BAD_RESPONSE.name,
        }
    }

    fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// `lxc` or `qemu`, as in API paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Lxc,
    Qemu,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Self::Lxc => "lxc",
            Self::Qemu => "qemu",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Node {
    pub node: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub maxmem: u64,
    #[serde(default)]
    pub mem: u64,
}

/// A guest as `cluster/resources?type=vm` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Guest {
    pub vmid: u32,
    pub node: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "flag")]
    pub template: bool,
    /// `;`-separated.
    #[serde(default)]
    pub tags: String,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_u64() == Some(1),
        Value::String(s) => s == "1",
        _ => false,
    })
}

/// A task as `tasks/{upid}/status` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Task {
    /// `running` or `stopped`.
    pub status: String,
    /// `OK` or the error, once stopped.
    #[serde(default)]
    pub exitstatus: Option<String>,
}

impl Task {
    pub fn running(&self) -> bool {
        self.status == "running"
    }
    /// The task's error, once it stopped with one.
    pub fn failure(&self) -> Option<&str> {
        match (&*self.status, self.exitstatus.as_deref()) {
            ("running", _) | (_, Some("OK")) => None,
            (_, Some(e)) => Some(e),
            (_, None) => Some("the task stopped without an exit status"),
        }
    }
}

/// The node a UPID (`UPID:node:pid:…`) ran on.
pub fn upid_node(upid: &str) -> Option<&str> {
    upid.strip_prefix("UPID:")?.split(':').next()
}

/// What the CloudPod controller needs from Proxmox VE.
pub trait ProxmoxApi: Send + Sync {
    fn nodes(&self) -> impl Future<Output = Result<Vec<Node>, ProxmoxError>> + Send;
    fn guests(&self) -> impl Future<Output = Result<Vec<Guest>, ProxmoxError>> + Send;
    /// Starts a full clone of template `source` (on `node`) to `newid`; returns the task.
    fn clone_guest(
        &self,
        node: &str,
        kind: Kind,
        source: u32,
        newid: u32,
        params: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<String, ProxmoxError>> + Send;
    fn task(&self, node: &str, upid: &str) -> impl Future<Output = Result<Task, ProxmoxError>> + Send;
    fn config(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
    ) -> impl Future<Output = Result<BTreeMap<String, Value>, ProxmoxError>> + Send;
    /// Sets config keys (and `delete` to remove keys).
    fn set_config(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), ProxmoxError>> + Send;
    /// Grows `disk` to `size` (e.g. `50G`); returns the task when Proxmox runs it as one.
    fn resize(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> impl Future<Output = Result<Option<String>, ProxmoxError>> + Send;
    /// `start`, `stop`, `shutdown` or `reboot`; returns the task.
    fn power(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        action: &str,
    ) -> impl Future<Output = Result<String, ProxmoxError>> + Send;
    /// `running` or `stopped`.
    fn power_state(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
    ) -> impl Future<Output = Result<String, ProxmoxError>> + Send;
    /// Destroys the guest and its disks; returns the task.
    fn destroy(&self, node: &str, kind: Kind, vmid: u32) -> impl Future<Output = Result<String, ProxmoxError>> + Send;
    /// The `result` of a read-only QEMU guest agent command, e.g. `get-osinfo`,
    /// `network-get-interfaces`. Proxmox answers 500 when the guest has no agent running.
    fn agent_read(
        &self,
        node: &str,
        vmid: u32,
        command: &str,
    ) -> impl Future<Output = Result<Value, ProxmoxError>> + Send;
}

pub struct Proxmox {
    http: reqwest::Client,
    config: Config,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl std::fmt::Debug for Proxmox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the token
        f.debug_struct("Proxmox").field("url", &self.config.url).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

/// Proxmox's own error text: `message`, then the per-parameter `errors`.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ApiError {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        errors: Option<BTreeMap<String, String>>,
    }
    let parsed: Option<ApiError> = serde_json::from_slice(body).ok();
    let mut text = parsed
        .as_ref()
        .and_then(|e| e.message.as_deref())
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let plain = String::from_utf8_lossy(body).trim().to_owned();
            if plain.is_empty() || plain.starts_with('{') {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                plain
            }
        });
    if let Some(errors) = parsed.and_then(|e| e.errors) {
        for (field, message) in errors {
            text.push_str(&format!("; {field}: {}", message.trim()));
        }
    }
    text
}

impl Proxmox {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, ProxmoxError> {
        tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)));
        if let Some(pem) = &config.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem).map_err(|e| ProxmoxError::Unreachable(format!("CA: {e}")))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder.build().map_err(|e| ProxmoxError::Unreachable(e.to_string()))?;
        Ok(Self { http, config, metrics, throttle: Throttle::unlimited() })
    }

    /// Sends every request through `throttle`.
    pub fn with_throttle(self, throttle: Throttle) -> Self {
        Self { throttle, ..self }
    }

    async fn send_once(
        &self,
        operation: &'static str,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProxmoxError> {
        let _turn = self.throttle.turn().await;
        let started = Instant::now();
        let url = format!("{}/api2/json{path}", self.config.url.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("Authorization", format!("PVEAPIToken={}", self.config.token));
        if let Some(body) = body {
            request = request.json(body);
        }
        let result = async {
            let response = request.send().await.map_err(|e| ProxmoxError::Unreachable(e.to_string()))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| ProxmoxError::Unreachable(e.to_string()))?;
            if !status.is_success() {
                return Err(ProxmoxError::Rejected { status: status.as_u16(), message: error_message(status, &bytes) });
            }
            let envelope: Envelope<Value> =
                serde_json::from_slice(&bytes).map_err(|e| ProxmoxError::BadResponse(e.to_string()))?;
            Ok(envelope.data)
        }
        .await;
        self.metrics.provider_call("proxmox", operation, *method != Method::GET, result.is_ok(), started.elapsed());
        result
    }

    pub(crate) async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ProxmoxError> {
        if method != Method::GET {
            return self.send_once(operation, &method, path, body.as_ref()).await;
        }
        (|| self.send_once(operation, &method, path, body.as_ref()))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_times(3)
                    .with_jitter(),
            )
            .when(ProxmoxError::is_transient)
            .await
    }

    pub(crate) fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ProxmoxError> {
        serde_json::from_value(value).map_err(|e| ProxmoxError::BadResponse(e.to_string()))
    }

    pub(crate) fn upid(value: Value) -> Result<String, ProxmoxError> {
        match value {
            Value::String(upid) if upid.starts_with("UPID:") => Ok(upid),
            other => Err(ProxmoxError::BadResponse(format!("expected a task id, got {other}"))),
        }
    }
}

/// The parameters a full clone into `newid` sends: `params` with `newid` and `full=1`.
pub(crate) fn clone_params(params: &BTreeMap<String, String>, newid: u32) -> BTreeMap<String, String> {
    let mut body = params.clone();
    body.insert("newid".into(), newid.to_string());
    body.insert("full".into(), "1".into());
    body
}

pub(crate) fn json_params(params: &BTreeMap<String, String>) -> Value {
    Value::Object(params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

impl ProxmoxApi for Proxmox {
    async fn nodes(&self) -> Result<Vec<Node>, ProxmoxError> {
        Self::decode(self.send("list_nodes", Method::GET, "/nodes", None).await?)
    }

    async fn guests(&self) -> Result<Vec<Guest>, ProxmoxError> {
        Self::decode(self.send("list_guests", Method::GET, "/cluster/resources?type=vm", None).await?)
    }

    async fn clone_guest(
        &self,
        node: &str,
        kind: Kind,
        source: u32,
        newid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<String, ProxmoxError> {
        let body = clone_params(params, newid);
        let path = format!("/nodes/{node}/{}/{source}/clone", kind.path());
        Self::upid(self.send("clone", Method::POST, &path, Some(json_params(&body))).await?)
    }

    async fn task(&self, node: &str, upid: &str) -> Result<Task, ProxmoxError> {
        Self::decode(self.send("task_status", Method::GET, &format!("/nodes/{node}/tasks/{upid}/status"), None).await?)
    }

    async fn config(&self, node: &str, kind: Kind, vmid: u32) -> Result<BTreeMap<String, Value>, ProxmoxError> {
        let path = format!("/nodes/{node}/{}/{vmid}/config", kind.path());
        Self::decode(self.send("get_config", Method::GET, &path, None).await?)
    }

    async fn set_config(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<(), ProxmoxError> {
        let path = format!("/nodes/{node}/{}/{vmid}/config", kind.path());
        self.send("set_config", Method::PUT, &path, Some(json_params(params))).await.map(drop)
    }

    async fn resize(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Option<String>, ProxmoxError> {
        let path = format!("/nodes/{node}/{}/{vmid}/resize", kind.path());
        let body = serde_json::json!({"disk": disk, "size": size});
        match self.send("resize", Method::PUT, &path, Some(body)).await? {
            Value::Null => Ok(None),
            other => Self::upid(other).map(Some),
        }
    }

    async fn power(&self, node: &str, kind: Kind, vmid: u32, action: &str) -> Result<String, ProxmoxError> {
        let path = format!("/nodes/{node}/{}/{vmid}/status/{action}", kind.path());
        Self::upid(self.send("power", Method::POST, &path, Some(serde_json::json!({}))).await?)
    }

    async fn power_state(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        #[derive(Deserialize)]
        struct Current {
            status: String,
        }
        let path = format!("/nodes/{node}/{}/{vmid}/status/current", kind.path());
        Ok(Self::decode::<Current>(self.send("get_status", Method::GET, &path, None).await?)?.status)
    }

    async fn destroy(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        let path = format!("/nodes/{node}/{}/{vmid}?purge=1&destroy-unreferenced-disks=1", kind.path());
        Self::upid(self.send("destroy", Method::DELETE, &path, None).await?)
    }

    async fn agent_read(&self, node: &str, vmid: u32, command: &str) -> Result<Value, ProxmoxError> {
        #[derive(Deserialize)]
        struct Answer {
            result: Value,
        }
        let path = format!("/nodes/{node}/qemu/{vmid}/agent/{command}");
        Ok(Self::decode::<Answer>(self.send("agent", Method::GET, &path, None).await?)?.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_proxmoxs_message_and_parameter_errors() {
        let body =
            br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"cores":"value must be >= 1\n"}}"#;
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, body),
            "Parameter verification failed.; cores: value must be >= 1"
        );
        assert_eq!(error_message(StatusCode::INTERNAL_SERVER_ERROR, b"{}"), "Internal Server Error");
    }

    #[test]
    fn tasks_report_their_failure_once_stopped() {
        let t = |s: &str, e: Option<&str>| Task { status: s.into(), exitstatus: e.map(Into::into) };
        assert_eq!(t("running", None).failure(), None);
        assert_eq!(t("stopped", Some("OK")).failure(), None);
        assert_eq!(t("stopped", Some("CT is locked (disk)")).failure(), Some("CT is locked (disk)"));
        assert_eq!(upid_node("UPID:pve2:0000:1:2:vzclone:101:root@pam:"), Some("pve2"));
    }
}
