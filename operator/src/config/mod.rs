//! The operator's configuration file (mounted from the chart). Credentials are not in it: it names
//! the Secrets that hold them.

mod load;
mod providers;
mod rate_limits;

use serde::Deserialize;

pub use providers::{
    AcmeConfig, ExternalAccountBinding, IpPool, IssuerConfig, MailCoreConfig, NamesiloConfig, PowerDnsConfig,
    ProxmoxAllowed, ProxmoxConfig, SnippetStorage, VmidRange, ZoneDefaults,
};
pub use rate_limits::{ACME_LIMITS, MAILCORE_LIMITS, NAMESILO_LIMITS, POWERDNS_LIMITS, PROXMOX_LIMITS, RateLimit};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid configuration: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// How often every object is re-checked against its external system (drift detection),
    /// e.g. `5m`.
    #[serde(default = "default_resync")]
    pub resync_interval: String,
    /// The longest one reconcile of one object may run, e.g. `2m`; past it the object is marked
    /// not Ready and retried on its backoff, while the others go on.
    #[serde(default = "default_reconcile_timeout")]
    pub reconcile_timeout: String,
    /// Reconcile objects in this namespace only; every namespace when absent.
    #[serde(default)]
    pub watch_namespace: Option<String>,
    /// Reconcile objects only in the namespaces this shard's selector picks (one of several
    /// operator Deployments, each with its own Lease); every namespace when absent. Not together
    /// with `watchNamespace`.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Only the holder of this Lease reconciles and writes.
    #[serde(default)]
    pub leader_election: LeaderElection,
    /// The PowerDNS server DnsZones are written to; without it the DnsZone controller is off.
    #[serde(default)]
    pub powerdns: Option<PowerDnsConfig>,
    /// ACME CAs that Certificates name as their `issuer`; Certificates need `powerdns` too (DNS-01).
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// mail-core's database; without it the Mailbox controller is off.
    #[serde(default)]
    pub mailcore: Option<MailCoreConfig>,
    /// The Proxmox VE cluster CloudPods run on; without it the CloudPod controller is off.
    #[serde(default)]
    pub proxmox: Option<ProxmoxConfig>,
    /// The Namesilo account Domains are registered in; without it the Domain controller is off.
    #[serde(default)]
    pub namesilo: Option<NamesiloConfig>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_lease_namespace")]
    pub namespace: String,
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// A new leader takes over at most this long after the old one stopped renewing.
    #[serde(default = "default_lease_seconds")]
    pub lease_duration_seconds: u64,
}

impl Default for LeaderElection {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: default_lease_namespace(),
            lease_name: default_lease_name(),
            lease_duration_seconds: default_lease_seconds(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_lease_namespace() -> String {
    "mpanel-system".to_owned()
}
fn default_lease_name() -> String {
    "mpanel-operator".to_owned()
}
fn default_lease_seconds() -> u64 {
    15
}

/// The namespaces one operator Deployment reconciles when several share the cluster.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shard {
    /// A label selector over Namespaces of equality terms, comma-separated, all of which must
    /// hold: `key=value` (or `key==value`), `key!=value`; e.g.
    /// `mpanel.migrahosting.com/shard=a`. A namespace that gains or loses the labels is taken up or
    /// let go while the operator runs.
    pub namespace_selector: String,
}

/// A Secret in a named namespace.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

/// A key of a Secret in a named namespace.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

fn default_resync() -> String {
    "5m".to_owned()
}

fn default_reconcile_timeout() -> String {
    "2m".to_owned()
}

fn default_timeout_seconds() -> u64 {
    10
}
