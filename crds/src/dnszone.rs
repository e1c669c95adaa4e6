//! DnsZone: an authoritative zone on our PowerDNS.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, LocalObjectReference};
use crate::conditions::Condition;
use crate::formats;

/// A DnsZone is an authoritative zone served by PowerDNS. Records are written whole-rrset and
/// atomically per zone; a zone that already exists and belongs to someone else is reported as a
/// Conflict and never overwritten.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "DnsZone",
    plural = "dnszones",
    shortname = "dz",
    category = "mpanel",
    namespaced,
    status = "DnsZoneStatus",
    derive = "PartialEq",
    doc = "An authoritative DNS zone on PowerDNS.",
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.zone"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Records", type_ = "integer", json_path = ".status.records"),
    printcolumn(name = "Serial", type_ = "integer", json_path = ".status.serial", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DnsZoneSpec {
    /// Zone name, a lowercase FQDN; the trailing dot is optional (`example.com` or `example.com.`).
    /// Cannot be changed.
    #[schemars(length(min = 3, max = 254), pattern(formats::FQDN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("zone is immutable"))]
    pub zone: String,

    /// PowerDNS zone kind: `Native` (replicated by the database) or `Master` (AXFR to secondaries).
    #[serde(default = "ZoneKind::native")]
    pub kind: ZoneKind,

    /// Authoritative nameservers (the apex NS rrset), e.g. `ns1.migrahosting.com`.
    #[schemars(length(min = 1, max = 13), inner(length(min = 3, max = 254), pattern(formats::FQDN)))]
    pub nameservers: Vec<String>,

    /// SOA settings; PowerDNS defaults apply to whatever is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soa: Option<Soa>,

    /// Records, one entry per name and type (an rrset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2000))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into(), "type".into()]))]
    pub records: Vec<Record>,

    /// Mail shorthands: MX, SPF, DMARC and DKIM records written for you.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailRecords>,

    /// `Sync` (default) removes records that are not in the spec; `UpsertOnly` never deletes.
    #[serde(default = "RecordPolicy::sync")]
    pub policy: RecordPolicy,

    /// `Delete` (default) deletes the zone from PowerDNS when this resource is deleted; `Orphan`
    /// leaves it.
    #[serde(default = "DeletionPolicy::delete")]
    pub deletion_policy: DeletionPolicy,
}

/// PowerDNS zone kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ZoneKind {
    Native,
    Master,
}

impl ZoneKind {
    pub fn native() -> Self {
        Self::Native
    }
}

/// Whether records missing from the spec are removed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RecordPolicy {
    Sync,
    UpsertOnly,
}

impl RecordPolicy {
    pub fn sync() -> Self {
        Self::Sync
    }
}

/// SOA settings (times in seconds).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Soa {
    /// Primary nameserver (MNAME); the first of `nameservers` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 254), pattern(formats::FQDN))]
    pub primary: Option<String>,
    /// Responsible mailbox (RNAME) as an address, e.g. `hostmaster@example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254), pattern(formats::MAIL_ADDRESS))]
    pub hostmaster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 2_419_200))]
    pub refresh: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 2_419_200))]
    pub retry: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3600, max = 31_536_000))]
    pub expire: Option<u32>,
    /// Negative-caching TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub minimum: Option<u32>,
    /// TTL of the SOA record itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 604_800))]
    pub ttl: Option<u32>,
}

/// One rrset: every value of one type at one name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.values) != has(self.cloudPodRef)").message("set either values or cloudPodRef, not both or neither"),
    validation = Rule::new("!has(self.cloudPodRef) || self.type in ['A', 'AAAA']").message("cloudPodRef is only for A and AAAA records").field_path(".cloudPodRef")
)]
pub struct Record {
    /// Owner name relative to the zone: `@` for the apex, `www`, `*`, `_dmarc`, `_sip._tcp`.
    #[schemars(length(min = 1, max = 253), pattern(formats::RECORD_NAME))]
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub type_: RecordType,
    /// Time to live in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604_800))]
    pub ttl: Option<u32>,
    /// Record data in zone-file form, e.g. `10 mail.example.com.` for MX or `"v=spf1 -all"` for TXT.
    /// Host names get a trailing dot and TXT values quotes if they lack them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 4096)))]
    pub values: Option<Vec<String>>,
    /// A CloudPod whose `status.ipAddress` is the value (A/AAAA only); follows it when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_pod_ref: Option<LocalObjectReference>,
}

/// Record types the operator manages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum RecordType {
    A,
    AAAA,
    CNAME,
    MX,
    TXT,
    SRV,
    CAA,
    NS,
}

/// Mail shorthands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MailRecords {
    /// Mail exchangers for the apex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub mx: Vec<MailExchanger>,
    /// SPF policy for the apex TXT, e.g. `v=spf1 mx -all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 450))]
    #[x_kube(validation = Rule::new("self.startsWith('v=spf1')").message("spf must start with v=spf1"))]
    pub spf: Option<String>,
    /// DMARC policy for `_dmarc`, e.g. `v=DMARC1; p=quarantine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 450))]
    #[x_kube(validation = Rule::new("self.startsWith('v=DMARC1')").message("dmarc must start with v=DMARC1"))]
    pub dmarc: Option<String>,
    /// DKIM: the key published at `<selector>._domainkey`; without `publicKey` the operator makes
    /// it, and mail-core signs the mail of this zone's domain with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<Dkim>,
}

/// A mail exchanger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailExchanger {
    /// Host name of the mail server, e.g. `mail.migrahosting.com`.
    #[schemars(length(min = 3, max = 254), pattern(formats::FQDN))]
    pub host: String,
    /// Preference; lower is tried first.
    #[schemars(range(min = 0, max = 65535))]
    pub priority: u16,
}

/// A DKIM key record, and whether mail-core signs with it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.previousSelectors) || !self.previousSelectors.exists(s, s == self.selector)").message("the selector that signs cannot also be a previous selector").field_path(".previousSelectors"))]
pub struct Dkim {
    /// Selector, e.g. `mail2026`: the record is `<selector>._domainkey`. Without `publicKey`, a new
    /// selector gets a new key, and mail-core signs this zone's mail with it.
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_LABEL))]
    pub selector: String,
    /// Base64 public key (the `p=` tag) of a key made elsewhere, published as it is; mail-core does
    /// not sign with it. Left out (recommended), the operator makes the key pair for the zone's mail
    /// domain, keeps it in the Secret `dkim-<zone>` and publishes its public half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 16, max = 2048), pattern(r"^[A-Za-z0-9+/]+={0,2}$"))]
    pub public_key: Option<String>,
    /// Size of the RSA keys the operator makes, in bits: 2048 (default), 3072 or 4096. A key keeps
    /// the size it was made with; a new size comes with a new selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in [2048, 3072, 4096]").message("keyBits must be 2048, 3072 or 4096"))]
    pub key_bits: Option<u32>,
    /// Selectors of earlier keys the operator made (in the Secret `dkim-<zone>`) that no longer
    /// sign: their records stay published, so mail signed before a rotation still verifies, until
    /// they are removed from this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(min = 1, max = 63), pattern(formats::DNS_LABEL)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub previous_selectors: Vec<String>,
}

impl Dkim {
    /// Whether the operator makes this key (no `publicKey` given), so mail-core signs with it.
    pub fn generated(&self) -> bool {
        self.public_key.is_none()
    }
}

/// The Secret in a DnsZone's namespace holding the DKIM keys the operator made for `zone`'s mail
/// domain: `dkim-<zone>` (lowercase, no trailing dot).
pub fn dkim_secret_name(zone: &str) -> String {
    format!("dkim-{}", zone.trim_end_matches('.').to_ascii_lowercase())
}

/// Observed state of a DnsZone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DnsZoneStatus {
    /// Pending, Ready, Conflict, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DnsZonePhase>,
    /// SOA serial PowerDNS serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// Number of rrsets the operator manages in the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u32>,
    /// When the zone was last found in sync with the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Programmed, Conflict and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a DnsZone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DnsZonePhase {
    Pending,
    Ready,
    Conflict,
    Failed,
    Deleting,
}
