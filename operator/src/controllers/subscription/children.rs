//! The child objects a Subscription's templates stand for: one per template, named as the
//! template says, labelled with the customer and the Subscription, owned by the Subscription, with
//! suspension and `paidUntil` passed down.

use std::collections::BTreeMap;

use kube::Resource;
use kube::core::ApiResource;
use mpanel_crds::backup::BackupPolicy;
use mpanel_crds::certificate::Certificate;
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::conditions::READY;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::Domain;
use mpanel_crds::mailbox::Mailbox;
use mpanel_crds::reasons;
use mpanel_crds::subscription::{BillingState, Subscription, SuspensionReason};
use serde::Serialize;
use serde_json::{Value, json};

pub const SUBSCRIPTION_LABEL: &str = "mpanel.migrahosting.com/subscription";
pub const CUSTOMER_LABEL: &str = "mpanel.migrahosting.com/customer";

/// One of the kinds a Subscription composes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChildKind {
    CloudPod,
    Domain,
    DnsZone,
    Mailbox,
    Certificate,
    BackupPolicy,
}

impl ChildKind {
    pub const ALL: [ChildKind; 6] =
        [Self::CloudPod, Self::Domain, Self::DnsZone, Self::Mailbox, Self::Certificate, Self::BackupPolicy];

    pub fn api_resource(self) -> ApiResource {
        match self {
            Self::CloudPod => ApiResource::erase::<CloudPod>(&()),
            Self::Domain => ApiResource::erase::<Domain>(&()),
            Self::DnsZone => ApiResource::erase::<DnsZone>(&()),
            Self::Mailbox => ApiResource::erase::<Mailbox>(&()),
            Self::Certificate => ApiResource::erase::<Certificate>(&()),
            Self::BackupPolicy => ApiResource::erase::<BackupPolicy>(&()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::CloudPod => "CloudPod",
            Self::Domain => "Domain",
            Self::DnsZone => "DnsZone",
            Self::Mailbox => "Mailbox",
            Self::Certificate => "Certificate",
            Self::BackupPolicy => "BackupPolicy",
        }
    }
}

/// The objects the Subscription `name` (UID `uid`) in `namespace` controls, by kind then name.
pub async fn controlled(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Vec<(ChildKind, kube::api::DynamicObject)>, kube::Error> {
    use kube::ResourceExt;
    use kube::api::{Api, DynamicObject, ListParams};
    let selector = format!("{SUBSCRIPTION_LABEL}={name}");
    let mut found = Vec::new();
    for kind in ChildKind::ALL {
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &kind.api_resource());
        let mut items = api.list(&ListParams::default().labels(&selector)).await?.items;
        items.retain(|o| o.owner_references().iter().any(|r| r.controller == Some(true) && r.uid == uid));
        items.sort_by_key(|o| o.name_any());
        found.extend(items.into_iter().map(|o| (kind, o)));
    }
    Ok(found)
}

/// A child as the Subscription wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub kind: ChildKind,
    pub name: String,
    /// The whole object, for server-side apply.
    pub object: Value,
}

/// The hold in effect: a suspension, unless it is for being overdue and billing says paid again
/// (payment lifts an Overdue suspension by itself; Abuse, Manual and Dispute ones only a spec change
/// lifts).
pub fn suspended(sub: &Subscription) -> Option<SuspensionReason> {
    let s = sub.spec.suspension.as_ref().filter(|s| s.suspended)?;
    let reason = s.reason.unwrap_or(SuspensionReason::Manual);
    let paid = sub.spec.billing.state == BillingState::Paid;
    (!(reason == SuspensionReason::Overdue && paid)).then_some(reason)
}

/// Every child the templates describe.
pub fn desired(sub: &Subscription) -> Vec<Child> {
    let Some(owner) = sub.controller_owner_ref(&()) else { return Vec::new() };
    let hold = suspended(sub).is_some();
    let base_labels = BTreeMap::from([
        (SUBSCRIPTION_LABEL.to_owned(), sub.meta().name.clone().unwrap_or_default()),
        (CUSTOMER_LABEL.to_owned(), sub.spec.customer.id.clone()),
    ]);
    let mut out = Vec::new();
    let mut add = |kind: ChildKind, name: &str, labels: &BTreeMap<String, String>, spec: Value| {
        let mut all = base_labels.clone();
        all.extend(labels.clone());
        let ar = kind.api_resource();
        out.push(Child {
            kind,
            name: name.to_owned(),
            object: json!({
                "apiVersion": ar.api_version,
                "kind": ar.kind,
                "metadata": {"name": name, "labels": all, "ownerReferences": [owner]},
                "spec": spec,
            }),
        });
    };
    let r = &sub.spec.resources;
    for t in &r.cloud_pods {
        let mut spec = to_value(&t.spec);
        spec["suspended"] = json!(t.spec.suspended || hold);
        add(ChildKind::CloudPod, &t.name, &t.labels, spec);
    }
    for t in &r.domains {
        let mut spec = to_value(&t.spec);
        if let Some(paid_until) = &sub.spec.billing.paid_until {
            spec["paidUntil"] = json!(paid_until);
        }
        add(ChildKind::Domain, &t.name, &t.labels, spec);
    }
    for t in &r.dns_zones {
        add(ChildKind::DnsZone, &t.name, &t.labels, to_value(&t.spec));
    }
    for t in &r.mailboxes {
        let mut spec = to_value(&t.spec);
        spec["suspended"] = json!(t.spec.suspended || hold);
        add(ChildKind::Mailbox, &t.name, &t.labels, spec);
    }
    for t in &r.certificates {
        add(ChildKind::Certificate, &t.name, &t.labels, to_value(&t.spec));
    }
    for t in &r.backup_policies {
        add(ChildKind::BackupPolicy, &t.name, &t.labels, to_value(&t.spec));
    }
    out
}

fn to_value(spec: &impl Serialize) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// What a child's Ready condition says, at the child's current generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
}

pub fn readiness(object: &Value) -> Readiness {
    let ready = object["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == READY);
    let Some(c) = ready else {
        return Readiness {
            ready: false,
            reason: Some(reasons::PENDING.name.into()),
            message: Some("not reconciled yet".into()),
        };
    };
    let current = c["observedGeneration"] == object["metadata"]["generation"];
    let text = |k: &str| c[k].as_str().map(str::to_owned);
    match (c["status"] == "True", current) {
        (true, true) => Readiness { ready: true, reason: text("reason"), message: text("message") },
        (true, false) => Readiness {
            ready: false,
            reason: Some(reasons::RECONCILING.name.into()),
            message: Some("its latest spec is not reconciled yet".into()),
        },
        (false, _) => Readiness { ready: false, reason: text("reason"), message: text("message") },
    }
}

/// Whether a child's Ready reason is one that no retry will change.
pub fn is_terminal(reason: Option<&str>) -> bool {
    reason.is_some_and(reasons::stalls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpanel_crds::subscription::{Billing, Customer, SubscriptionSpec, Suspension};

    fn sub(state: BillingState, suspension: Option<(bool, SuspensionReason)>) -> Subscription {
        let mut s = Subscription::new(
            "hosting",
            SubscriptionSpec {
                customer: Customer { id: "acme".into(), email: "a@example.com".into() },
                product: "p".into(),
                billing: Billing { state, paid_until: Some("2027-01-01".into()), invoice: None },
                suspension: suspension.map(|(suspended, reason)| Suspension { suspended, reason: Some(reason) }),
                resources: serde_json::from_value(json!({
                    "mailboxes": [{"name": "box", "spec": {"address": "a@example.com", "quotaMiB": 100, "passwordSecretRef": {"name": "p", "key": "k"}}}],
                    "domains": [{"name": "dom", "spec": {"name": "example.com", "registration": {"mode": "Register"}}}]
                }))
                .unwrap(),
                provisioning_timeout: "30m".into(),
            },
        );
        s.metadata.namespace = Some("customer-acme".into());
        s.metadata.uid = Some("u-1".into());
        s
    }

    #[test]
    fn overdue_suspensions_lift_with_payment_and_others_do_not() {
        assert_eq!(suspended(&sub(BillingState::Paid, None)), None);
        assert_eq!(
            suspended(&sub(BillingState::PastDue, Some((true, SuspensionReason::Overdue)))),
            Some(SuspensionReason::Overdue)
        );
        assert_eq!(suspended(&sub(BillingState::Paid, Some((true, SuspensionReason::Overdue)))), None);
        assert_eq!(
            suspended(&sub(BillingState::Paid, Some((true, SuspensionReason::Abuse)))),
            Some(SuspensionReason::Abuse)
        );
        assert_eq!(suspended(&sub(BillingState::PastDue, Some((false, SuspensionReason::Manual)))), None);
        assert_eq!(
            suspended(&sub(BillingState::Paid, Some((true, SuspensionReason::Dispute)))),
            Some(SuspensionReason::Dispute)
        );
    }

    #[test]
    fn children_are_owned_labelled_and_carry_suspension_and_paid_until() {
        let children = desired(&sub(BillingState::PastDue, Some((true, SuspensionReason::Overdue))));
        let mailbox = children.iter().find(|c| c.kind == ChildKind::Mailbox).unwrap();
        assert_eq!(mailbox.object["spec"]["suspended"], true);
        assert_eq!(mailbox.object["metadata"]["labels"][SUBSCRIPTION_LABEL], "hosting");
        assert_eq!(mailbox.object["metadata"]["labels"][CUSTOMER_LABEL], "acme");
        assert_eq!(mailbox.object["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let domain = children.iter().find(|c| c.kind == ChildKind::Domain).unwrap();
        assert_eq!(domain.object["spec"]["paidUntil"], "2027-01-01");
        assert_eq!(domain.object["kind"], "Domain");
    }

    #[test]
    fn readiness_counts_only_at_the_current_generation() {
        let obj = |status: &str, observed: i64| json!({"metadata": {"generation": 2}, "status": {"conditions": [{"type": "Ready", "status": status, "reason": "R", "message": "m", "observedGeneration": observed}]}});
        assert!(readiness(&obj("True", 2)).ready);
        assert!(!readiness(&obj("True", 1)).ready);
        assert_eq!(readiness(&obj("False", 2)).message.as_deref(), Some("m"));
        assert!(!readiness(&json!({})).ready);
    }

    #[test]
    fn a_backup_policy_template_is_a_child_backup_policy_of_the_subscription() {
        let mut with_backups = sub(BillingState::Paid, None);
        with_backups.spec.resources = serde_json::from_value(json!({
            "backupPolicies": [{"name": "hosting-backups", "spec": {"cloudPods": ["hosting"], "schedule": {"every": "24h"},
                                 "keep": 30, "storage": "backups"}}]
        }))
        .unwrap();
        let children = desired(&with_backups);
        let policy = children.iter().find(|c| c.kind == ChildKind::BackupPolicy).expect("a BackupPolicy child");
        assert_eq!((policy.object["kind"].as_str(), policy.name.as_str()), (Some("BackupPolicy"), "hosting-backups"));
        assert_eq!(policy.object["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(policy.object["metadata"]["labels"][SUBSCRIPTION_LABEL], "hosting");
        assert_eq!(
            policy.object["spec"],
            json!({"cloudPods": ["hosting"], "schedule": {"every": "24h"}, "keep": 30, "storage": "backups", "mode": "snapshot"})
        );
    }
}
