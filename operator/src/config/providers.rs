//! The sections of the configuration file for each external system: where it is, the Secrets
//! holding its credentials, and what the operator may use of it.

use serde::Deserialize;

use super::{RateLimit, SecretName, SecretRef, default_timeout_seconds};

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
    /// [`POWERDNS_LIMITS`](super::POWERDNS_LIMITS) by default.
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
    /// [`ACME_LIMITS`](super::ACME_LIMITS) by default.
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

fn default_server_id() -> String {
    "localhost".to_owned()
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
    /// Client-side limits on the queries to mail-core's database;
    /// [`MAILCORE_LIMITS`](super::MAILCORE_LIMITS) by default.
    #[serde(default)]
    pub rate_limit: RateLimit,
}

fn default_mailcore_connections() -> u32 {
    4
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
    /// Client-side limits on the calls to the Proxmox VE API;
    /// [`PROXMOX_LIMITS`](super::PROXMOX_LIMITS) by default.
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
    /// How often a Domain's registration (expiry, lock, privacy, auto-renew, nameservers) is read
    /// when nothing about it is due, e.g. `1h`; a changed spec, an order in flight or a renewal due
    /// is read at once. Out-of-band changes at the registrar are found and repaired within it.
    #[serde(default = "default_registrar_sync_interval")]
    pub registrar_sync_interval: String,
    /// Client-side limits on the calls to Namesilo; [`NAMESILO_LIMITS`](super::NAMESILO_LIMITS) by
    /// default.
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

fn default_namesilo_url() -> String {
    "https://www.namesilo.com/api".to_owned()
}
fn default_registrar_sync_interval() -> String {
    "1h".to_owned()
}

impl NamesiloConfig {
    pub fn registrar_sync(&self) -> Result<std::time::Duration, String> {
        mpanel_crds::formats::parse_duration(&self.registrar_sync_interval).filter(|d| !d.is_zero()).ok_or_else(|| {
            format!(
                "namesilo.registrarSyncInterval {:?} is not a duration like 30m or 1h",
                self.registrar_sync_interval
            )
        })
    }
}

// registrations wait on the registry: Namesilo answers slower than the other systems
fn default_namesilo_timeout_seconds() -> u64 {
    60
}
