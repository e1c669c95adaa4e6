//! The operator's configuration file (mounted from the chart). Credentials are not in it: it names
//! the Secrets that hold them.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::providers::throttle::Limits;

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
    /// Client-side limits on the calls to Namesilo; [`NAMESILO_LIMITS`] by default.
    #[serde(default)]
    pub rate_limit: RateLimit,
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
    /// Client-side limits on the calls to the Proxmox VE API; [`PROXMOX_LIMITS`] by default.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Where CloudPods' cloud-init user data is written as snippets; without it a CloudPod with
    /// `cloudInitSecretRef` is not configured.
    #[serde(default)]
    pub snippets: Option<SnippetStorage>,
}

/// A Proxmox storage with `snippets` content that the operator has mounted (e.g. CephFS or NFS
/// shared by every node): Proxmox's API cannot upload snippets, so the operator writes the files.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnippetStorage {
    /// The storage's ID in Proxmox, e.g. `cephfs`.
    pub storage: String,
    /// The storage's directory as mounted into the operator, e.g. `/mnt/pve/cephfs`; snippets go
    /// to its `snippets/` folder, where Proxmox looks for them.
    pub directory: std::path::PathBuf,
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
    /// Client-side limits on the queries to mail-core's database; [`MAILCORE_LIMITS`] by default.
    #[serde(default)]
    pub rate_limit: RateLimit,
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
    /// Client-side limits on the calls to the PowerDNS API (DnsZones and DNS-01 records together);
    /// [`POWERDNS_LIMITS`] by default.
    #[serde(default)]
    pub rate_limit: RateLimit,
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
    /// Client-side limits on the calls to each issuer's CA (each issuer has its own);
    /// [`ACME_LIMITS`] by default.
    #[serde(default)]
    pub rate_limit: RateLimit,
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

/// Client-side limits on the calls to one external system: over them a call waits for its turn,
/// it is never refused. Either key may be left out for its default.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests started per second, e.g. `5` or `0.5`.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests waiting for their answer at once.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

impl RateLimit {
    /// These limits, with `default`'s where a key is left out.
    pub fn or(&self, default: Limits) -> Limits {
        Limits {
            requests_per_second: self.requests_per_second.unwrap_or(default.requests_per_second),
            max_in_flight: self.max_in_flight.unwrap_or(default.max_in_flight),
        }
    }

    /// Refuses a rate below one request every 1000 s and an in-flight cap below one; `key` names
    /// the block in the message (`namesilo.rateLimit`).
    fn check(&self, key: &str) -> Result<(), String> {
        if let Some(rate) = self.requests_per_second
            && !(rate.is_finite() && rate >= Limits::SLOWEST)
        {
            return Err(format!(
                "{key}.requestsPerSecond must be a number of at least {} (one request every 1000 s), e.g. 5 or 0.5; not {rate}",
                Limits::SLOWEST
            ));
        }
        if self.max_in_flight == Some(0) {
            return Err(format!("{key}.maxInFlight must be at least 1"));
        }
        Ok(())
    }
}

/// PowerDNS documents no API rate limit; every API write is a transaction on its backend database
/// that also serves the DNS queries. 32 in flight is the DnsZone controller's concurrency, so a
/// burst of zones is not held back by the cap alone, and 200/s keeps a cold start of thousands of
/// zones from crowding out the queries.
pub const POWERDNS_LIMITS: Limits = Limits { requests_per_second: 200.0, max_in_flight: 32 };
/// Let's Encrypt's overall request limits (letsencrypt.org/docs/rate-limits, per IP): the lowest
/// is `/acme/new-nonce` at 20/s, and an operation makes its request plus at most one nonce
/// request, so 10 operations/s stay within it (`/acme/new-account` 5/s is one call per issuer).
pub const ACME_LIMITS: Limits = Limits { requests_per_second: 10.0, max_in_flight: 4 };
/// mail-core's PostgreSQL also answers every Postfix and Dovecot lookup (its `max_connections`
/// defaults to 100 for all of them); the operator keeps to its pool (`maxConnections`, 4: more in
/// flight would only wait for a connection) and 50 queries/s.
pub const MAILCORE_LIMITS: Limits = Limits { requests_per_second: 50.0, max_in_flight: 4 };
/// Proxmox VE documents no API rate limit; its API daemons pveproxy and pvedaemon (which runs the
/// calls needing root: clone, config, resize, power) each run 3 worker processes
/// (`max_workers => 3` in pve-manager's `PVE/Service/pveproxy.pm` and `pvedaemon.pm`), so more
/// than 3 at once only queue there; 20/s leaves room for the web UI and other clients.
pub const PROXMOX_LIMITS: Limits = Limits { requests_per_second: 20.0, max_in_flight: 3 };
/// Namesilo publishes no number; its "API Automated Batch Processing" policy
/// (namesilo.com/support/v2/articles/account-options/api-automated-batch) monitors automated,
/// repetitive calls and throttles or suspends accounts whose calls burden the API, so the operator
/// keeps to a modest 5/s, 4 at once (the Domain controller's concurrency).
pub const NAMESILO_LIMITS: Limits = Limits { requests_per_second: 5.0, max_in_flight: 4 };

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
        config.check_rate_limits()?;
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

    fn check_rate_limits(&self) -> Result<(), String> {
        let blocks = [
            ("powerdns", self.powerdns.as_ref().map(|c| &c.rate_limit)),
            ("acme", self.acme.as_ref().map(|c| &c.rate_limit)),
            ("mailcore", self.mailcore.as_ref().map(|c| &c.rate_limit)),
            ("proxmox", self.proxmox.as_ref().map(|c| &c.rate_limit)),
            ("namesilo", self.namesilo.as_ref().map(|c| &c.rate_limit)),
        ];
        for (provider, limit) in blocks {
            if let Some(limit) = limit {
                limit.check(&format!("{provider}.rateLimit"))?;
            }
        }
        Ok(())
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
    fn rate_limits_default_per_provider_and_a_partial_block_keeps_the_other_default() {
        let key =
            "  apiKeySecretRef: {namespace: s, name: namesilo, key: api-key}\n  nameservers: [a.example, b.example]\n";
        let c = Config::parse(&format!("namesilo:\n{key}")).unwrap();
        assert_eq!(c.namesilo.unwrap().rate_limit.or(NAMESILO_LIMITS), NAMESILO_LIMITS);
        let c = Config::parse(&format!("namesilo:\n{key}  rateLimit: {{requestsPerSecond: 20}}\n")).unwrap();
        let limits = c.namesilo.unwrap().rate_limit.or(NAMESILO_LIMITS);
        assert_eq!(limits, Limits { requests_per_second: 20.0, max_in_flight: NAMESILO_LIMITS.max_in_flight });
        let c = Config::parse(&format!("namesilo:\n{key}  rateLimit: {{requestsPerSecond: 0.5, maxInFlight: 1}}\n"))
            .unwrap();
        assert_eq!(
            c.namesilo.unwrap().rate_limit.or(NAMESILO_LIMITS),
            Limits { requests_per_second: 0.5, max_in_flight: 1 }
        );
    }

    #[test]
    fn rate_limits_that_would_stop_every_call_are_refused_naming_the_key() {
        let pdns =
            "powerdns:\n  apiUrl: http://127.0.0.1:8081\n  apiKeySecretRef: {namespace: s, name: pdns, key: k}\n";
        let err = Config::parse(&format!("{pdns}  rateLimit: {{requestsPerSecond: 0}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.requestsPerSecond must be a number of at least 0.001"), "{err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{requestsPerSecond: 0.0001}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.requestsPerSecond"), "slower than one every 1000 s: {err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{requestsPerSecond: -3}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.requestsPerSecond"), "{err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{maxInFlight: 0}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.maxInFlight must be at least 1"), "{err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{rps: 5}}\n")).unwrap_err();
        assert!(err.contains("rps"), "an unknown key is named: {err}");
        let proxmox = "proxmox:\n  url: https://pve\n  tokenSecretRef: {namespace: s, name: t, key: k}\n  vmidRange: {first: 100, last: 200}\n";
        let err = Config::parse(&format!("{proxmox}  rateLimit: {{maxInFlight: 0}}\n")).unwrap_err();
        assert!(err.contains("proxmox.rateLimit.maxInFlight"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_with_the_reason() {
        assert!(Config::parse("resync: 5m").unwrap_err().contains("resync"));
        assert!(Config::parse("resyncInterval: soon").unwrap_err().contains("soon"));
    }
}
