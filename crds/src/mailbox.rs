//! Mailbox: a mailbox on mail-core (Postfix + Dovecot, users in SQL).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, SecretKeySelector};
use crate::conditions::Condition;
use crate::formats;

/// A Mailbox is a mail account on mail-core. Its domain row is created on first use, the password
/// comes from a Secret and is stored as a Dovecot-compatible hash, and suspension disables login
/// without deleting mail.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "Mailbox",
    plural = "mailboxes",
    shortname = "mbox",
    category = "mpanel",
    namespaced,
    status = "MailboxStatus",
    derive = "PartialEq",
    doc = "A mailbox on mail-core.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Quota-MiB", type_ = "integer", json_path = ".spec.quotaMiB"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.aliases) || !self.aliases.exists(a, a == self.address)").message("an alias cannot be the mailbox's own address").field_path(".aliases"))]
pub struct MailboxSpec {
    /// Mailbox address, lowercase, e.g. `info@example.com`. Cannot be changed.
    #[schemars(length(min = 3, max = 254), pattern(formats::MAIL_ADDRESS))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("address is immutable"))]
    pub address: String,

    /// Display name stored with the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub display_name: Option<String>,

    /// Storage quota in MiB, 1–1048576.
    #[serde(rename = "quotaMiB")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub quota_mib: u32,

    /// Secret key holding the plain-text password. Changing the Secret rotates the password.
    pub password_secret_ref: SecretKeySelector,

    /// Further addresses delivered to this mailbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 3, max = 254), pattern(formats::MAIL_ADDRESS)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub aliases: Vec<String>,

    /// Login disabled (mail is kept) while true.
    #[serde(default)]
    pub suspended: bool,

    /// `Delete` (default) removes the mailbox and its aliases from mail-core when this resource is
    /// deleted; `Orphan` leaves them.
    #[serde(default = "DeletionPolicy::delete")]
    pub deletion_policy: DeletionPolicy,
}

/// Observed state of a Mailbox.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MailboxStatus {
    /// Pending, Active, Suspended, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MailboxPhase>,
    /// Quota in force on mail-core, MiB.
    #[serde(default, rename = "quotaMiB", skip_serializing_if = "Option::is_none")]
    pub quota_mib: Option<u32>,
    /// When the password hash was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_password_sync: Option<Time>,
    /// `resourceVersion` of the password Secret that was last hashed, to notice rotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_version: Option<String>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// DomainReady, PasswordSynced and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a Mailbox.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MailboxPhase {
    Pending,
    Active,
    Suspended,
    Failed,
    Deleting,
}
