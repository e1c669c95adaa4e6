//! Domain: a domain name held at the registrar (Namesilo).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, SecretKeySelector};
use crate::conditions::Condition;
use crate::formats;

/// Staff grant a Domain the registration already in the account under its name with this
/// annotation set to `"true"`. Only subjects allowed to set billing-owned fields may set it.
pub const ADOPT_REGISTRATION_ANNOTATION: &str = "mpanel.migrahosting.com/adopt-registration";

/// A Domain is a name registered, transferred in, or merely tracked (`External`) at the registrar.
/// Billing sets `paidUntil`; the operator renews at the registrar until the registrar's expiry
/// reaches it, and never renews twice for one payment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "Domain",
    plural = "domains",
    shortname = "dom",
    category = "mpanel",
    namespaced,
    status = "DomainStatus",
    derive = "PartialEq",
    doc = "A domain name held at the registrar.",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Paid-Until", type_ = "string", json_path = ".spec.paidUntil", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpec {
    /// The domain name, lowercase, without a trailing dot, e.g. `example.com`. Cannot be changed.
    #[schemars(length(min = 3, max = 253), pattern(formats::DOMAIN_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("name is immutable"))]
    pub name: String,

    /// How the domain comes under management.
    pub registration: Registration,

    /// Date (`YYYY-MM-DD`) up to which the customer has paid; set by billing. The operator renews at
    /// the registrar until the registrar's expiry is on or after this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(formats::DATE))]
    pub paid_until: Option<String>,

    /// Nameservers to delegate to. Empty means the operator's configured defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 13), inner(length(min = 3, max = 253), pattern(formats::DOMAIN_NAME)))]
    #[x_kube(validation = Rule::new("size(self) == 0 || size(self) >= 2").message("give at least two nameservers, or none for the defaults"))]
    pub nameservers: Vec<String>,

    /// DNS hosting for the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DomainDns>,

    /// `Orphan` (default) leaves the registration untouched when this resource is deleted; `Delete`
    /// turns auto-renew off at the registrar (a registration cannot be undone).
    #[serde(default = "DeletionPolicy::orphan")]
    pub deletion_policy: DeletionPolicy,
}

/// How the domain comes under management.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Transfer' || has(self.authCodeSecretRef)").message("a Transfer needs authCodeSecretRef (the EPP auth code from the losing registrar)").field_path(".authCodeSecretRef"))]
pub struct Registration {
    /// `Register` a new name, `Transfer` it in from another registrar, or track an `External`
    /// registration without buying anything.
    pub mode: RegistrationMode,
    /// Years to register, transfer or renew at a time, 1–10.
    #[serde(default = "one_year")]
    #[schemars(range(min = 1, max = 10))]
    pub years: u8,
    /// Secret key holding the EPP auth code; required for `Transfer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code_secret_ref: Option<SecretKeySelector>,
    /// Registrant contact. Without it the registrar account's default contact profile is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// WHOIS privacy.
    #[serde(default = "yes")]
    pub privacy: bool,
    /// Registrar lock (prevents unauthorised transfers).
    #[serde(default = "yes")]
    pub lock: bool,
    /// Let the registrar renew on its own. Usually off: renewals follow `paidUntil`.
    #[serde(default)]
    pub auto_renew: bool,
}

fn one_year() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// How a domain comes under management.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RegistrationMode {
    Register,
    Transfer,
    External,
}

/// Registrant contact details.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[schemars(length(min = 1, max = 64))]
    pub first_name: String,
    #[schemars(length(min = 1, max = 64))]
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub organization: Option<String>,
    #[schemars(length(max = 254), pattern(formats::CONTACT_EMAIL))]
    pub email: String,
    /// Telephone number, e.g. `+1 555 0100`.
    #[schemars(length(max = 24), pattern(formats::PHONE))]
    pub phone: String,
    #[schemars(length(min = 1, max = 128))]
    pub street: String,
    #[schemars(length(min = 1, max = 64))]
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub state_province: Option<String>,
    #[schemars(length(min = 1, max = 16))]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, e.g. `US`.
    #[schemars(pattern(formats::COUNTRY_CODE))]
    pub country: String,
}

/// DNS hosting for a domain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainDns {
    /// Create a DnsZone for the domain with NS, A and MX defaults.
    #[serde(default)]
    pub create_zone: bool,
}

/// Observed state of a Domain.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    /// Pending, Registering, Transferring, Active, Expired, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DomainPhase>,
    /// The domain is in the registrar account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    /// Expiry date at the registrar, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Nameservers the registrar reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Registrar lock as the registrar reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// Auto-renew as the registrar reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
    /// WHOIS privacy as the registrar reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<bool>,
    /// The DnsZone this Domain created (`dns.createZone`), in its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_ref: Option<String>,
    /// State of an inbound transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStatus>,
    /// The last money-spending call sent to the registrar, recorded before it is sent so a retry
    /// after a crash looks the domain up instead of paying again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_order: Option<RegistrarOrder>,
    /// Why this Domain manages the registration in the account: `Ordered` (its own registration,
    /// transfer or renewal) or `Granted` (staff set the adoption annotation). Recorded once; a
    /// registration found in the account without a reason is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<Adoption>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Registered, Renewed, NameserversSynced, SettingsSynced, ZoneReady (with `dns.createZone`),
    /// Conflict and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Why a Domain manages a registration it found in the registrar account: `Ordered` (its own
/// register, transfer or renew order) or `Granted` (the adoption annotation).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Adoption {
    Ordered,
    Granted,
}

/// Lifecycle phase of a Domain.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DomainPhase {
    Pending,
    Registering,
    Transferring,
    Active,
    Expired,
    Failed,
    Deleting,
}

/// State of an inbound transfer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    /// The registrar's transfer status text, verbatim.
    pub state: String,
    /// The registrar's explanation of that status, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the transfer was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    /// `resourceVersion` of the auth code Secret last handed to the registrar: a change of the
    /// Secret is sent on, an unchanged one is not sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code_version: Option<String>,
}

/// A money-spending registrar call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrarOrder {
    /// Register, Renew or Transfer.
    pub operation: OrderOperation,
    /// Years bought.
    pub years: u8,
    /// The `paidUntil` this order covers: one renewal per payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_paid_until: Option<String>,
    /// What the registrar charged, as it reported it (e.g. `10.95`), once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Sent, Succeeded or Failed.
    pub state: OrderState,
    /// When the order was recorded.
    pub at: Time,
}

/// Kind of money-spending registrar call.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OrderOperation {
    Register,
    Renew,
    Transfer,
}

/// Outcome of a registrar order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OrderState {
    /// Recorded and sent; the answer was not recorded yet.
    Sent,
    Succeeded,
    Failed,
}
