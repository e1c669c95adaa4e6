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
    /// The longest one reconcile of one object may run, e.g. `2m`; past it the object is marked
    /// not Ready and retried on its backoff, while the others go on.
    #[serde(default = "default_reconcile_timeout")]
    pub reconcile_timeout: String,
    /// Reconcile objects in this namespace only; every namespace when absent.
    #[serde(default)]
    pub watch_namespace: Option<String>,
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
pub struct NamesiloConfig {
    /// The API base, operations are appended to it: `https://www.namesilo.com/api`.
    #[serde(default = "default_namesilo_url")]
    pub api_url: String,
    /// The Secret key holding the API key.
    pub api_key_secret_ref: SecretRef,
    /// Nameservers a Domain without `spec.nameservers` is delegated to (at least two).
    pub nameservers: Vec<String>,
    /// Records of the DnsZone a Domain with `dns.createZone` gets.
    #[serde(default)]
    pub zone_defaults: ZoneDefaults,
    #[serde(default = "default_namesilo_timeout_seconds")]
    pub timeout_seconds: u64,
}

/// The apex records of a zone a Domain creates.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneDefaults {
    /// Addresses of the apex A record, e.g. the shared web server.
    #[serde(default)]
    pub a: Vec<std::net::Ipv4Addr>,
    /// Mail exchangers of the apex.
    #[serde(default)]
    pub mx: Vec<mpanel_crds::dnszone::MailExchanger>,
}

fn default_reconcile_timeout() -> String {
    "2m".to_owned()
}

fn default_namesilo_url() -> String {
    "https://www.namesilo.com/api".to_owned()
}
// registrations wait on the registry: Namesilo answers slower than the other systems
fn default_namesilo_timeout_seconds() -> u64 {
    60
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxmoxConfig {
    /// e.g. `https://pve.example.net:8006`
    pub url: String,
    /// The Secret key holding the API token, `user@realm!tokenid=secret`.
    pub token_secret_ref: SecretRef,
    /// PEM file of the CA that signed the API's certificate; the platform's roots otherwise.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// VMIDs the operator gives out, e.g. `{first: 10000, last: 19999}`: it never takes one outside.
    pub vmid_range: VmidRange,
    /// Storage for cloned disks; the template's when absent.
    #[serde(default)]
    pub storage: Option<String>,
    /// IPv4 pools a CloudPod's `network.ipv4.pool` names.
    #[serde(default)]
    pub ip_pools: std::collections::BTreeMap<String, IpPool>,
    /// Bridges, VLANs and templates CloudPods may use; each list, when present, is all there is.
    #[serde(default)]
    pub allowed: ProxmoxAllowed,
    /// Sizes of the plans a CloudPod without `resources` gets.
    #[serde(default = "default_plans")]
    pub plans: std::collections::BTreeMap<String, mpanel_crds::cloudpod::Resources>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_plans() -> std::collections::BTreeMap<String, mpanel_crds::cloudpod::Resources> {
    [("mini", 1, 20), ("pro", 2, 50), ("business", 4, 100), ("enterprise", 8, 200)]
        .into_iter()
        .map(|(name, n, disk)| {
            let size = mpanel_crds::cloudpod::Resources { cores: n, memory_mib: n * 1024, disk_gib: disk };
            (name.to_owned(), size)
        })
        .collect()
}

/// What CloudPods may attach to; an empty (or absent) list leaves that choice open.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxmoxAllowed {
    #[serde(default)]
    pub bridges: Vec<String>,
    #[serde(default)]
    pub vlans: Vec<u16>,
    /// Template names or VMIDs, as `spec.template` gives them.
    #[serde(default)]
    pub templates: Vec<String>,
}

/// Addresses `first..=last` of one subnet, given out one per CloudPod.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPool {
    pub first: std::net::Ipv4Addr,
    pub last: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmidRange {
    pub first: u32,
    pub last: u32,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailCoreConfig {
    /// The Secret key holding the database URL (`postgres://user:password@host:port/db`).
    pub database_url_secret_ref: SecretRef,
    /// Where mail-core keeps maildirs, as mounted into the operator (e.g. `/var/vmail`): a deleted
    /// Mailbox's maildir is removed there. Without it maildirs are left for mail-core to clean up.
    #[serde(default)]
    pub maildir_root: Option<String>,
    /// Mail domains that were on mail-core before the operator (rows without its marker), each
    /// given to the one namespace whose Mailboxes may use it: `{example.com: customer-42}`.
    /// Without a grant such a domain is refused to every namespace.
    #[serde(default)]
    pub domain_grants: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_mailcore_connections")]
    pub max_connections: u32,
}

fn default_mailcore_connections() -> u32 {
    4
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
    /// `host:port` of the server's DNS listener, asked directly to see that a DNS-01 record is
    /// served before the CA is told to validate. Needed for Certificates.
    #[serde(default)]
    pub dns_address: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeConfig {
    /// Issuers by the name a Certificate's `spec.issuer` uses, e.g. `letsencrypt`.
    pub issuers: std::collections::BTreeMap<String, IssuerConfig>,
    /// New orders allowed per registered domain in any 7 days, across all Certificates (Let's
    /// Encrypt allows 50 certificates); past it a Certificate waits with a condition saying so.
    #[serde(default = "default_orders_per_week")]
    pub orders_per_registered_domain_per_week: u32,
    /// The ConfigMap (in the Lease's namespace) where orders are counted, so a restart keeps the count.
    #[serde(default = "default_budget_config_map")]
    pub budget_config_map: String,
}

fn default_orders_per_week() -> u32 {
    40
}
fn default_budget_config_map() -> String {
    "mpanel-acme-orders".to_owned()
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerConfig {
    /// The ACME directory URL.
    pub directory_url: String,
    /// Contact address given to the CA.
    #[serde(default)]
    pub email: Option<String>,
    /// Secret holding the account (key `credentials`); the operator registers an account and
    /// creates the Secret when it does not exist.
    pub account_secret_ref: SecretName,
    /// PEM file trusted for the directory's HTTPS (test CAs such as pebble); the platform's roots
    /// otherwise.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// External account binding, for CAs that require one.
    #[serde(default)]
    pub external_account_binding: Option<ExternalAccountBinding>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalAccountBinding {
    pub key_id: String,
    /// The HMAC key, base64url as CAs hand it out.
    pub hmac_key_secret_ref: SecretRef,
}

/// A Secret in a named namespace.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
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
        if let Some(px) = &config.proxmox
            && (px.vmid_range.first < 100 || px.vmid_range.first > px.vmid_range.last)
        {
            return Err("proxmox.vmidRange must have 100 <= first <= last".into());
        }
        if let Some(ns) = &config.namesilo
            && ns.nameservers.len() < 2
        {
            return Err("namesilo.nameservers needs at least two nameservers".into());
        }
        if let Some(acme) = &config.acme {
            if config.powerdns.as_ref().and_then(|p| p.dns_address.as_ref()).is_none() {
                return Err("acme needs powerdns with its dnsAddress: DNS-01 records are written to PowerDNS".into());
            }
            if acme.orders_per_registered_domain_per_week == 0 {
                return Err("acme.ordersPerRegisteredDomainPerWeek must be at least 1".into());
            }
        }
        Ok(config)
    }

    pub fn reconcile_timeout(&self) -> Result<Duration, String> {
        mpanel_crds::formats::parse_duration(&self.reconcile_timeout)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("reconcileTimeout {:?} is not a duration like 30s or 2m", self.reconcile_timeout))
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
    fn acme_issuers_are_read_and_need_powerdns_dns_address() {
        let pdns =
            "powerdns:\n  apiUrl: http://127.0.0.1:8081\n  apiKeySecretRef: {namespace: s, name: pdns, key: k}\n";
        let acme = "acme:\n  issuers:\n    letsencrypt:\n      directoryUrl: https://acme.test/dir\n      accountSecretRef: {namespace: s, name: le}\n";
        let err = Config::parse(&format!("{pdns}{acme}")).unwrap_err();
        assert!(err.contains("dnsAddress"), "{err}");
        let c = Config::parse(&format!("{pdns}  dnsAddress: 127.0.0.1:53\n{acme}")).unwrap();
        let a = c.acme.unwrap();
        assert_eq!(a.orders_per_registered_domain_per_week, 40);
        assert_eq!(a.issuers["letsencrypt"].account_secret_ref.name, "le");
    }

    #[test]
    fn namesilo_needs_two_default_nameservers() {
        let key = "  apiKeySecretRef: {namespace: s, name: namesilo, key: api-key}\n";
        let err = Config::parse(&format!("namesilo:\n{key}  nameservers: [ns1.example.net]\n")).unwrap_err();
        assert!(err.contains("at least two"), "{err}");
        let c = Config::parse(&format!(
            "namesilo:\n{key}  nameservers: [ns1.example.net, ns2.example.net]\n  zoneDefaults: {{a: [192.0.2.1], mx: [{{host: mx.example.net, priority: 10}}]}}\n"
        ))
        .unwrap();
        let n = c.namesilo.unwrap();
        assert_eq!(n.api_url, "https://www.namesilo.com/api");
        assert_eq!(n.zone_defaults.mx[0].priority, 10);
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_with_the_reason() {
        assert!(Config::parse("resync: 5m").unwrap_err().contains("resync"));
        assert!(Config::parse("resyncInterval: soon").unwrap_err().contains("soon"));
    }
}
