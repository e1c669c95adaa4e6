//! The mPanel API: group `mpanel.migrahosting.com`, version `v1alpha1`.
//!
//! Every kind sold to a customer is a namespaced custom resource defined here. The types carry their
//! validation (OpenAPI formats, ranges and CEL rules) so the API server refuses a bad manifest before
//! any reconciler sees it; doc comments become the descriptions `kubectl explain` prints.

// `#[kube(printcolumn(...))]` repeats `type_ = "string"` once per column, which clippy takes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod backup;
pub mod certificate;
pub mod cloudpod;
pub mod common;
pub mod conditions;
pub mod dnszone;
pub mod domain;

pub mod formats;
pub mod generated;
pub mod mailbox;
pub mod manifests;
pub mod reasons;
pub mod subscription;

pub use backup::{BackupPolicy, BackupPolicySpec, BackupPolicyStatus, CloudPodRestore, CloudPodRestoreSpec};
pub use certificate::{Certificate, CertificateSpec, CertificateStatus};
pub use cloudpod::{CloudPod, CloudPodSpec, CloudPodStatus};
pub use common::{DeletionPolicy, ReconcileMode};
pub use dnszone::{DnsZone, DnsZoneSpec, DnsZoneStatus};
pub use domain::{Domain, DomainSpec, DomainStatus};
pub use mailbox::{Mailbox, MailboxSpec, MailboxStatus};
pub use subscription::{Subscription, SubscriptionSpec, SubscriptionStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every mPanel kind.
pub const GROUP: &str = "mpanel.migrahosting.com";
/// API version of every mPanel kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "mpanel.migrahosting.com/v1alpha1";
/// Finalizer that removes the external object (unless `spec.deletionPolicy: Orphan`).
pub const FINALIZER: &str = "mpanel.migrahosting.com/cleanup";
/// Annotation selecting how the operator treats an object: `Reconcile`, `ObserveOnly` or `Paused`.
pub const RECONCILE_MODE_ANNOTATION: &str = "mpanel.migrahosting.com/reconcile-mode";
/// `kubectl get mpanel` lists every kind in this category.
pub const CATEGORY: &str = "mpanel";

/// The CustomResourceDefinitions of every kind, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        CloudPod::crd(),
        Domain::crd(),
        DnsZone::crd(),
        Mailbox::crd(),
        Certificate::crd(),
        Subscription::crd(),
        BackupPolicy::crd(),
        CloudPodRestore::crd(),
    ]
}
