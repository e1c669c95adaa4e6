//! Subscription: what a customer bought, composed into child resources and gated on their readiness.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup::BackupPolicySpec;
use crate::certificate::CertificateSpec;
use crate::cloudpod::CloudPodSpec;
use crate::conditions::Condition;
use crate::dnszone::DnsZoneSpec;
use crate::domain::DomainSpec;
use crate::formats;
use crate::mailbox::MailboxSpec;

/// A Subscription is one customer's purchase of a product. The operator creates the child
/// resources from `resources` (owned by the Subscription), passes suspension and `paidUntil` down to
/// them, and reports `Active` only once every child is Ready at its current generation. Written by
/// the billing bridge, or by hand / GitOps.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "Subscription",
    plural = "subscriptions",
    shortname = "sub",
    category = "mpanel",
    namespaced,
    status = "SubscriptionStatus",
    derive = "PartialEq",
    doc = "A customer's purchase, composed into child resources and gated on their readiness.",
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customer.id"),
    printcolumn(name = "Product", type_ = "string", json_path = ".spec.product"),
    printcolumn(name = "Billing", type_ = "string", json_path = ".spec.billing.state"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// The customer who pays.
    pub customer: Customer,

    /// Product slug from the catalog, e.g. `cloudpod-pro`.
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_LABEL))]
    pub product: String,

    /// Billing state as the ledger sees it.
    pub billing: Billing,

    /// A hold on the whole subscription: CloudPods are stopped and Mailboxes disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,

    /// Templates of the child resources to create.
    #[serde(default)]
    pub resources: ResourceTemplates,

    /// How long provisioning may take before the Subscription is `Failed`, e.g. `30m` (the default).
    #[serde(default = "default_provisioning_timeout")]
    #[schemars(length(max = 32), pattern(formats::DURATION))]
    pub provisioning_timeout: String,
}

fn default_provisioning_timeout() -> String {
    "30m".to_owned()
}

/// The customer who pays.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Customer id in the ledger (a DNS label; the namespace is `customer-<id>`). Cannot be changed.
    #[schemars(length(min = 1, max = 54), pattern(formats::DNS_LABEL))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("customer id is immutable"))]
    pub id: String,
    /// Contact email of the customer.
    #[schemars(length(max = 254), pattern(formats::CONTACT_EMAIL))]
    pub email: String,
}

/// Billing state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Billing {
    /// Paid, PastDue, Unpaid or Cancelled.
    pub state: BillingState,
    /// Date (`YYYY-MM-DD`) the subscription is paid up to; passed to Domains as their `paidUntil`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(formats::DATE))]
    pub paid_until: Option<String>,
    /// Invoice that paid for the current period, `INV-YYYY-NNNNNN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(formats::INVOICE_NUMBER))]
    pub invoice: Option<String>,
}

/// Billing state as the ledger sees it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BillingState {
    Paid,
    PastDue,
    Unpaid,
    Cancelled,
}

/// A hold on the subscription.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.suspended || has(self.reason)").message("a suspension needs a reason: Overdue, Abuse or Manual").field_path(".reason"))]
pub struct Suspension {
    /// Suspended while true.
    pub suspended: bool,
    /// Why: `Overdue` (lifted by payment), `Abuse` or `Manual` (lifted by staff), `Dispute` (a
    /// chargeback; lifted when the bank decides for the seller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SuspensionReason>,
}

/// Why a subscription is suspended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SuspensionReason {
    Overdue,
    Abuse,
    Manual,
    Dispute,
}

/// Templates of the child resources. Each child is named `name` in the Subscription's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplates {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub cloud_pods: Vec<CloudPodTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub domains: Vec<DomainTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub dns_zones: Vec<DnsZoneTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub mailboxes: Vec<MailboxTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub certificates: Vec<CertificateTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub backup_policies: Vec<BackupPolicyTemplate>,
}

/// Defines one child template type per kind: its object name, extra labels and spec.
macro_rules! child_template {
    ($(#[$doc:meta])* $name:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Name of the child object.
            #[schemars(length(min = 1, max = 253), pattern(formats::OBJECT_NAME))]
            pub name: String,
            /// Labels added to the child object.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub labels: BTreeMap<String, String>,
            /// Spec of the child object.
            pub spec: $spec,
        }
    };
}

child_template!(
    /// A CloudPod to create.
    CloudPodTemplate, CloudPodSpec
);
child_template!(
    /// A Domain to create.
    DomainTemplate, DomainSpec
);
child_template!(
    /// A DnsZone to create.
    DnsZoneTemplate, DnsZoneSpec
);
child_template!(
    /// A Mailbox to create.
    MailboxTemplate, MailboxSpec
);
child_template!(
    /// A Certificate to create.
    CertificateTemplate, CertificateSpec
);
child_template!(
    /// A BackupPolicy to create (backups of the Subscription's CloudPods).
    BackupPolicyTemplate, BackupPolicySpec
);

/// Observed state of a Subscription.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    /// Pending, Provisioning, Active, Failed, Suspended or Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SubscriptionPhase>,
    /// One entry per child resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ChildStatus>,
    /// When every child first became Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
    /// When provisioning of the current generation started; the deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_started_at: Option<Time>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ChildrenReady, Suspended and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Readiness of one child resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatus {
    /// CloudPod, Domain, DnsZone, Mailbox or Certificate.
    pub kind: String,
    /// Name of the child object.
    pub name: String,
    /// The child is Ready at its current generation.
    pub ready: bool,
    /// The child's Ready reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The child's Ready message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Lifecycle phase of a Subscription.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubscriptionPhase {
    Pending,
    Provisioning,
    Active,
    Failed,
    Suspended,
    Terminating,
}
