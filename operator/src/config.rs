//! The operator's configuration file (mounted from the chart). Credentials are not in it: it names
//! the Secrets that hold them.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

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
    /// Reconcile objects in this namespace only; every namespace when absent.
    #[serde(default)]
    pub watch_namespace: Option<String>,
    /// Only the holder of this Lease reconciles and writes.
    #[serde(default)]
    pub leader_election: LeaderElection,
    /// The PowerDNS server DnsZones are written to; without it the DnsZone controller is off.
    #[serde(default)]
    pub powerdns: Option<PowerDnsConfig>,
}

fn default_resync() -> String {
    "5m".to_owned()
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

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PowerDnsConfig {
    /// e.g. `http://powerdns-api.dns.svc:8081`
    pub api_url: String,
    #[serde(default = "default_server_id")]
    pub server_id: String,
    /// The Secret key holding the API key.
    pub api_key_secret_ref: SecretRef,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_server_id() -> String {
    "localhost".to_owned()
}
fn default_timeout_seconds() -> u64 {
    10
}

/// A key of a Secret in a named namespace.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.display().to_string(), message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        config.resync()?;
        Ok(config)
    }

    pub fn resync(&self) -> Result<Duration, String> {
        mpanel_crds::formats::parse_duration(&self.resync_interval)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("resyncInterval {:?} is not a duration like 30s or 5m", self.resync_interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(c.resync().unwrap(), Duration::from_secs(300));
        assert!(c.leader_election.enabled);
        assert_eq!(c.leader_election.lease_duration_seconds, 15);
        assert_eq!(c.powerdns, None);
    }

    #[test]
    fn powerdns_is_read_with_its_secret_reference() {
        let c = Config::parse(
            "resyncInterval: 30s\npowerdns:\n  apiUrl: http://127.0.0.1:8081\n  apiKeySecretRef: {namespace: mpanel-system, name: pdns, key: api-key}\n",
        )
        .unwrap();
        let p = c.powerdns.unwrap();
        assert_eq!(p.server_id, "localhost");
        assert_eq!(p.api_key_secret_ref.name, "pdns");
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_with_the_reason() {
        assert!(Config::parse("resync: 5m").unwrap_err().contains("resync"));
        assert!(Config::parse("resyncInterval: soon").unwrap_err().contains("soon"));
    }
}
