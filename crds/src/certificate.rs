//! Certificate: a TLS certificate from an ACME CA, validated with DNS-01 through our PowerDNS.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::DeletionPolicy;
use crate::conditions::Condition;
use crate::formats;

/// A Certificate is issued by an ACME CA for `dnsNames` (wildcards allowed) and stored in the
/// `kubernetes.io/tls` Secret `secretName`. It is renewed `renewBefore` ahead of expiry. Field names
/// follow cert-manager's Certificate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "Certificate",
    plural = "certificates",
    shortname = "mcert",
    category = "mpanel",
    namespaced,
    status = "CertificateStatus",
    derive = "PartialEq",
    doc = "A TLS certificate from an ACME CA.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Not-After", type_ = "string", json_path = ".status.notAfter"),
    printcolumn(name = "Renewal", type_ = "string", json_path = ".status.renewalTime", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Names the certificate is for, e.g. `example.com` and `*.example.com`.
    #[schemars(length(min = 1, max = 100), inner(length(min = 3, max = 253), pattern(formats::CERTIFICATE_DNS_NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub dns_names: Vec<String>,

    /// Name of the `kubernetes.io/tls` Secret that receives the chain and key.
    #[schemars(length(min = 1, max = 253), pattern(formats::OBJECT_NAME))]
    pub secret_name: String,

    /// Named ACME directory from the operator configuration, e.g. `letsencrypt`.
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_LABEL))]
    pub issuer: String,

    /// How long before expiry to renew, e.g. `30d` or `720h` (default `720h`).
    #[serde(default = "default_renew_before")]
    #[schemars(length(max = 32), pattern(formats::DURATION))]
    pub renew_before: String,

    /// The private key.
    #[serde(default)]
    pub private_key: PrivateKey,

    /// `Orphan` (default) keeps the Secret when this resource is deleted; `Delete` removes it.
    #[serde(default = "DeletionPolicy::orphan")]
    pub deletion_policy: DeletionPolicy,

    /// QEMU CloudPods of this namespace that receive the key and chain through the QEMU guest agent,
    /// at every issuance and renewal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["cloudPod".into()]))]
    pub deliver_to: Vec<DeliveryTarget>,
}

/// An absolute path in a guest: `/`-separated names of letters, digits and `._@+-`.
pub const GUEST_PATH: &str = r"^(/[A-Za-z0-9._@+-]+)+$";

/// A CloudPod the key and chain are written into.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryTarget {
    /// Name of a QEMU CloudPod in the Certificate's own namespace, with the guest agent running.
    #[schemars(length(min = 1, max = 253), pattern(formats::OBJECT_NAME))]
    pub cloud_pod: String,
    /// Where the private key goes (mode 0600); default `/etc/ssl/mpanel/<secretName>/tls.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), pattern(GUEST_PATH))]
    #[x_kube(validation = Rule::new("!self.split('/').exists(p, p == '.' || p == '..')").message("the path has no . or .. component"))]
    pub key_path: Option<String>,
    /// Where the certificate and its chain go; default `/etc/ssl/mpanel/<secretName>/fullchain.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), pattern(GUEST_PATH))]
    #[x_kube(validation = Rule::new("!self.split('/').exists(p, p == '.' || p == '..')").message("the path has no . or .. component"))]
    pub chain_path: Option<String>,
    /// Command run in the guest after the files are written, e.g. `["systemctl", "reload", "nginx"]`;
    /// a non-zero exit is a delivery failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 1024)))]
    pub reload_command: Vec<String>,
}

impl DeliveryTarget {
    pub fn key_path(&self, secret_name: &str) -> String {
        self.key_path.clone().unwrap_or_else(|| format!("/etc/ssl/mpanel/{secret_name}/tls.key"))
    }

    pub fn chain_path(&self, secret_name: &str) -> String {
        self.chain_path.clone().unwrap_or_else(|| format!("/etc/ssl/mpanel/{secret_name}/fullchain.pem"))
    }
}

fn default_renew_before() -> String {
    "720h".to_owned()
}

/// Private key settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.size) || (self.algorithm == 'RSA' ? self.size in [2048, 3072, 4096] : self.size in [256, 384])").message("size must be 2048, 3072 or 4096 for RSA, and 256 or 384 for ECDSA").field_path(".size"))]
pub struct PrivateKey {
    /// Key algorithm (default ECDSA).
    #[serde(default = "KeyAlgorithm::ecdsa")]
    pub algorithm: KeyAlgorithm,
    /// Key size in bits: 2048/3072/4096 for RSA, 256/384 for ECDSA (curve P-256/P-384). Defaults to
    /// 2048 for RSA and 256 for ECDSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// `Always` (default) makes a new key at each renewal; `Never` reuses the key in the Secret.
    #[serde(default = "RotationPolicy::always")]
    pub rotation_policy: RotationPolicy,
}

impl Default for PrivateKey {
    fn default() -> Self {
        Self { algorithm: KeyAlgorithm::Ecdsa, size: None, rotation_policy: RotationPolicy::Always }
    }
}

/// Private key algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KeyAlgorithm {
    #[serde(rename = "ECDSA")]
    Ecdsa,
    #[serde(rename = "RSA")]
    Rsa,
}

impl KeyAlgorithm {
    pub fn ecdsa() -> Self {
        Self::Ecdsa
    }
}

/// Whether a renewal makes a new private key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RotationPolicy {
    Always,
    Never,
}

impl RotationPolicy {
    pub fn always() -> Self {
        Self::Always
    }
}

/// Observed state of a Certificate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// Pending, Issuing, Ready, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CertificatePhase>,
    /// Start of validity of the certificate in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    /// End of validity of the certificate in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// When the operator will renew: `notAfter - renewBefore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    /// URL of the ACME order in flight, resumed after a restart instead of ordering again.
    #[serde(default, rename = "orderURL", skip_serializing_if = "Option::is_none")]
    pub order_url: Option<String>,
    /// Failed issuance attempts since the last success; drives the backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// When the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What was delivered to each of `spec.deliverTo`, and the last failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["cloudPod".into()]))]
    pub deliveries: Vec<Delivery>,
    /// Issuing, Delivered and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The certificate delivered to one CloudPod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The CloudPod, in the Certificate's namespace.
    pub cloud_pod: String,
    /// The guest it was delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Where the key and the chain were written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_path: Option<String>,
    /// Serial number (hex) of the certificate delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// End of validity of the certificate delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// When it was delivered (the files written and the reload command done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Time>,
    /// Failed attempts since the last delivery; the next one waits 5 s doubling, at most 10 min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// When the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Why the last attempt failed: a reason of the Delivered condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_reason: Option<String>,
    /// The last attempt's error: Proxmox's or the guest's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Lifecycle phase of a Certificate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CertificatePhase {
    Pending,
    Issuing,
    Ready,
    Failed,
    Deleting,
}
