//! Reconcile-level unit tests of the subscription controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::testing;
use crate::testing::harness::{Harness, phase_of, shown, with_mode};
use children::CUSTOMER_LABEL;

const NS: &str = "customer-acme";

fn mailbox_template(name: &str, address: &str) -> Value {
    json!({"name": name, "spec": {"address": address, "quotaMiB": 100, "passwordSecretRef": {"name": "pw", "key": "password"}}})
}

fn zone_template(name: &str) -> Value {
    json!({"name": name, "spec": {"zone": "example.com.", "nameservers": ["ns1.migrahosting.com.", "ns2.migrahosting.com."]}})
}

/// A Subscription `hosting` of customer `acme` with `resources` (templates) and `suspension`.
fn subscription(resources: Value, suspension: Value) -> Subscription {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Subscription",
        "metadata": {"name": "hosting", "namespace": NS},
        "spec": {
            "customer": {"id": "acme", "email": "billing@acme.example"},
            "product": "business-hosting",
            "billing": {"state": "Paid", "paidUntil": "2027-11-23"},
            "suspension": suspension,
            "resources": resources,
            "provisioningTimeout": "30m",
        },
    }))
    .expect("a valid Subscription")
}

/// A mailbox `box` and a zone `zone`.
fn two_children() -> Value {
    json!({"mailboxes": [mailbox_template("box", "admin@example.com")], "dnsZones": [zone_template("zone")]})
}

type World = Harness<State>;

fn world() -> World {
    Harness::new(State)
}

/// The subscription-specific questions and edits of the shared harness.
trait Stored {
    /// The Subscription `hosting` as stored.
    fn get(&self) -> Subscription;
    fn set_ready<K>(&self, name: &str, status: &str, reason: &str, behind: i64)
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned;
}

impl Stored for World {
    fn get(&self) -> Subscription {
        self.api.get(NS, "hosting").expect("the Subscription is stored")
    }

    /// Sets child `name`'s Ready condition to `status`, observed at its generation minus `behind`.
    fn set_ready<K>(&self, name: &str, status: &str, reason: &str, behind: i64)
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let child: K = self.api.get(NS, name).unwrap_or_else(|| panic!("no child {name}"));
        let generation = child.meta().generation.unwrap_or(1);
        let mut value = serde_json::to_value(&child).unwrap();
        value["status"] = json!({"conditions": [{"type": "Ready", "status": status, "reason": reason,
            "message": format!("{name} says {reason}"), "lastTransitionTime": testing::T0,
            "observedGeneration": generation - behind}]});
        let child: K = serde_json::from_value(value).unwrap();
        self.api.put(&child);
    }
}

#[tokio::test]
async fn children_are_created_from_the_templates_owned_and_labelled() {
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();

    let mailbox: Mailbox = w.api.get(NS, "box").expect("the Mailbox was created");
    let zone: DnsZone = w.api.get(NS, "zone").expect("the DnsZone was created");
    for (meta, kind) in [(mailbox.meta(), "Mailbox"), (zone.meta(), "DnsZone")] {
        let owner = &meta.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), Some(&owner.uid), owner.controller),
            ("Subscription", sub.uid().as_ref(), Some(true)),
            "{kind}"
        );
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels.get(SUBSCRIPTION_LABEL).map(String::as_str), Some("hosting"), "{kind}");
        assert_eq!(labels.get(CUSTOMER_LABEL).map(String::as_str), Some("acme"), "{kind}");
    }
    assert_eq!(mailbox.spec.address, "admin@example.com");
    assert!(!mailbox.spec.suspended);

    let sub = w.get();
    assert_eq!(phase_of(&sub), Some(SubscriptionPhase::Provisioning));
    assert_eq!(shown(&sub, "Ready").1, reasons::PROVISIONING.name);
    let (status, _, message) = shown(&sub, CHILDREN_READY);
    assert_eq!(status, "False");
    assert_eq!(message, "DnsZone zone: not reconciled yet");
    let resources = &sub.status.as_ref().unwrap().resources;
    let listed: Vec<(&str, &str, bool)> =
        resources.iter().map(|r| (r.kind.as_str(), r.name.as_str(), r.ready)).collect();
    assert_eq!(listed, [("DnsZone", "zone", false), ("Mailbox", "box", false)]);
    assert_eq!(w.events("Normal", "Provisioning").len(), 1);
}

#[tokio::test]
async fn active_only_when_every_child_is_ready_at_its_current_generation() {
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();

    w.set_ready::<Mailbox>("box", "True", "Provisioned", 0);
    // the zone says Ready, but of an older spec
    w.set_ready::<DnsZone>("zone", "True", "Served", 1);
    w.reconcile(&sub, 1).await.unwrap();
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Provisioning));
    assert_eq!(shown(&now, CHILDREN_READY).1, reasons::RECONCILING.name);
    assert_eq!(shown(&now, "Ready").0, "False");

    w.set_ready::<DnsZone>("zone", "True", "Served", 0);
    w.reconcile(&sub, 1).await.unwrap();
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Active));
    assert_eq!(
        shown(&now, "Ready"),
        ("True".to_owned(), reasons::ACTIVE.name.to_owned(), "every child resource is Ready".to_owned())
    );
    assert_eq!(shown(&now, CHILDREN_READY).2, "all 2 child resources are Ready");
    assert!(now.status.as_ref().unwrap().activated_at.is_some());
    assert_eq!(w.events("Normal", "Active").len(), 1);

    // an unchanged resync writes nothing
    let writes = w.api.writes();
    w.reconcile(&sub, 2).await.unwrap();
    assert_eq!(w.api.writes(), writes, "{:?}", w.api.requests());

    // a child that falls back takes the Subscription out of Active
    w.set_ready::<Mailbox>("box", "False", "ProviderUnavailable", 0);
    w.reconcile(&sub, 1).await.unwrap();
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Provisioning));
    assert_eq!(shown(&now, CHILDREN_READY).2, "Mailbox box: box says ProviderUnavailable");
}

#[tokio::test]
async fn a_child_that_failed_for_good_fails_the_subscription_with_its_words() {
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();
    w.set_ready::<DnsZone>("zone", "True", "Served", 0);
    w.set_ready::<Mailbox>("box", "False", reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, 0);
    w.reconcile(&sub, 1).await.unwrap();

    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Failed));
    let (status, reason, message) = shown(&now, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", reasons::CHILD_FAILED.name));
    assert_eq!(message, format!("Mailbox box failed: box says {}", reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name));
    assert_eq!(w.events("Warning", "Failed").len(), 1);
}

#[tokio::test]
async fn provisioning_past_its_deadline_fails_the_subscription() {
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();
    // an hour later (the deadline is 30 minutes) the children are still not Ready
    w.ctx.clock.advance(jiff::SignedDuration::from_hours(1));
    let late = w.get();
    w.reconcile(&late, 1).await.unwrap();

    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Failed));
    let (status, reason, message) = shown(&now, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", reasons::PROVISIONING_TIMEOUT.name));
    assert!(message.starts_with("not every child was Ready within 30m; waiting on DnsZone zone"), "{message}");
    assert_eq!(w.events("Warning", "Failed").len(), 1);

    // the children becoming Ready still activates it
    w.set_ready::<Mailbox>("box", "True", "Provisioned", 0);
    w.set_ready::<DnsZone>("zone", "True", "Served", 0);
    w.reconcile(&late, 1).await.unwrap();
    assert_eq!(phase_of(&w.get()), Some(SubscriptionPhase::Active));
}

#[tokio::test]
async fn a_suspension_reaches_the_children_and_payment_lifts_an_overdue_one() {
    let w = world();
    let templates = json!({"mailboxes": [mailbox_template("box", "admin@example.com")]});
    let sub = w.put(&subscription(templates.clone(), json!({"suspended": true, "reason": "Abuse"})));
    w.reconcile(&sub, 2).await.unwrap();

    let mailbox: Mailbox = w.api.get(NS, "box").unwrap();
    assert!(mailbox.spec.suspended, "the Mailbox of a suspended Subscription is not suspended");
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Suspended));
    assert_eq!(shown(&now, SUSPENDED).0, "True");
    assert_eq!(shown(&now, SUSPENDED).1, reasons::ABUSE.name);
    assert_eq!(shown(&now, "Ready").1, reasons::SUSPENDED.name);

    // an Overdue suspension of a paid Subscription is lifted
    let mut paid = w.get();
    paid.spec.suspension = serde_json::from_value(json!({"suspended": true, "reason": "Overdue"})).unwrap();
    let paid = w.put(&paid);
    w.reconcile(&paid, 1).await.unwrap();
    let mailbox: Mailbox = w.api.get(NS, "box").unwrap();
    assert!(!mailbox.spec.suspended);
    let now = w.get();
    assert_eq!(shown(&now, SUSPENDED).0, "False");
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Provisioning));
}

#[tokio::test]
async fn a_child_dropped_from_the_templates_is_deleted_and_objects_not_its_own_are_not() {
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    // a DnsZone that carries the Subscription's label but is not owned by it
    let stranger: DnsZone = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "stranger", "namespace": NS, "labels": {SUBSCRIPTION_LABEL: "hosting"}},
        "spec": {"zone": "stranger.example.", "nameservers": ["ns1.migrahosting.com.", "ns2.migrahosting.com."]}
    }))
    .unwrap();
    w.api.put(&stranger);
    w.reconcile(&sub, 2).await.unwrap();
    assert!(w.api.get::<DnsZone>(NS, "zone").is_some());

    let mut fewer = w.get();
    fewer.spec.resources =
        serde_json::from_value(json!({"mailboxes": [mailbox_template("box", "admin@example.com")]})).unwrap();
    let fewer = w.put(&fewer);
    w.reconcile(&fewer, 1).await.unwrap();

    assert!(w.api.get::<DnsZone>(NS, "zone").is_none(), "the dropped DnsZone is still there");
    assert!(w.api.get::<Mailbox>(NS, "box").is_some());
    assert!(w.api.get::<DnsZone>(NS, "stranger").is_some(), "an object it does not own was deleted");
    let deleted = w.events("Normal", reasons::CHILD_DELETED.name);
    assert_eq!(deleted, ["DnsZone zone is no longer in the templates; deleted"]);
    let listed: Vec<String> = w.get().status.unwrap().resources.into_iter().map(|r| r.name).collect();
    assert_eq!(listed, ["box"]);
}

#[tokio::test]
async fn a_same_named_object_it_does_not_own_is_not_taken_over() {
    let w = world();
    let theirs: Mailbox = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Mailbox",
        "metadata": {"name": "box", "namespace": NS},
        "spec": {"address": "someone@example.com", "quotaMiB": 50, "passwordSecretRef": {"name": "theirs", "key": "password"}}
    }))
    .unwrap();
    w.api.put(&theirs);
    let before = serde_json::to_value(w.api.get::<Mailbox>(NS, "box").unwrap()).unwrap();
    let sub = w.put(&subscription(json!({"mailboxes": [mailbox_template("box", "admin@example.com")]}), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();

    let after = serde_json::to_value(w.api.get::<Mailbox>(NS, "box").unwrap()).unwrap();
    assert_eq!(after, before, "a Mailbox the Subscription does not own was changed");
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Failed));
    let (status, reason, message) = shown(&now, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", reasons::CHILD_FAILED.name));
    assert_eq!(message, "Mailbox box failed: Mailbox box exists and is not this Subscription's; it is left untouched");
    let child = &now.status.as_ref().unwrap().resources[0];
    assert_eq!((child.ready, child.reason.as_deref()), (false, Some(reasons::CONFLICT.name)));
    assert_eq!(w.events("Warning", "Failed").len(), 1);

    // deleting the Subscription leaves it alone too
    w.api.delete::<Subscription>(NS, "hosting");
    w.reconcile(&sub, 1).await.unwrap();
    assert!(w.api.get::<Subscription>(NS, "hosting").is_none());
    let after = serde_json::to_value(w.api.get::<Mailbox>(NS, "box").expect("not deleted")).unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn deleting_waits_for_the_children_to_be_gone() {
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();
    // the mailbox has a finalizer of its own (its controller deprovisions it)
    let mut mailbox: Mailbox = w.api.get(NS, "box").unwrap();
    mailbox.metadata.finalizers = Some(vec![mpanel_crds::FINALIZER.to_owned()]);
    w.api.put(&mailbox);

    w.api.delete::<Subscription>(NS, "hosting");
    let waiting = w.reconcile(&sub, 1).await;
    assert!(matches!(waiting, Err(Error::ChildrenRemaining(2))), "{waiting:?}");
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Terminating));
    assert_eq!(shown(&now, "Ready").2, "deleting 2 child resources");
    assert!(w.api.get::<DnsZone>(NS, "zone").is_none());
    let mailbox: Mailbox = w.api.get(NS, "box").expect("held by its finalizer");
    assert!(mailbox.metadata.deletion_timestamp.is_some());

    let waiting = w.reconcile(&sub, 1).await;
    assert!(matches!(waiting, Err(Error::ChildrenRemaining(1))), "{waiting:?}");
    assert!(w.api.get::<Subscription>(NS, "hosting").is_some());

    // the mailbox is deprovisioned: its finalizer goes, and so does the Subscription's
    let mut mailbox: Mailbox = w.api.get(NS, "box").unwrap();
    mailbox.metadata.finalizers = None;
    w.api.put(&mailbox);
    w.api.delete::<Mailbox>(NS, "box");
    w.reconcile(&sub, 1).await.unwrap();
    assert!(w.api.get::<Mailbox>(NS, "box").is_none());
    assert!(w.api.get::<Subscription>(NS, "hosting").is_none(), "the Subscription outlived its children");
}

#[tokio::test]
async fn paused_does_nothing_and_an_invalid_mode_is_reported() {
    let w = world();
    let sub = w.put(&with_mode(subscription(two_children(), Value::Null), "Paused"));
    w.reconcile(&sub, 3).await.unwrap();
    assert_eq!(w.api.writes(), 0, "{:?}", w.api.requests());
    assert!(w.api.get::<Mailbox>(NS, "box").is_none());
    assert!(w.get().status.is_none());

    let sub = w.put(&with_mode(subscription(two_children(), Value::Null), "Whenever"));
    w.reconcile(&sub, 2).await.unwrap();
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Pending));
    let (status, reason, message) = shown(&now, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", reasons::INVALID_RECONCILE_MODE.name));
    assert!(message.contains("Whenever"), "{message}");
    assert!(w.api.get::<Mailbox>(NS, "box").is_none());
}

#[tokio::test]
async fn observe_only_creates_changes_and_deletes_no_children_and_reports() {
    let w = world();
    let sub = w.put(&with_mode(subscription(two_children(), Value::Null), "ObserveOnly"));
    w.reconcile(&sub, 3).await.unwrap();
    assert!(w.api.get::<Mailbox>(NS, "box").is_none(), "ObserveOnly created a child");
    assert!(w.api.get::<DnsZone>(NS, "zone").is_none(), "ObserveOnly created a child");
    let now = w.get();
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Provisioning));
    assert_eq!(shown(&now, "Ready").0, "False");
    assert_eq!(shown(&now, CHILDREN_READY).2, "DnsZone zone: DnsZone zone does not exist (ObserveOnly: not created)");

    // children made while reconciled are looked at, not changed or deleted, once ObserveOnly
    let w = world();
    let sub = w.put(&subscription(two_children(), Value::Null));
    w.reconcile(&sub, 2).await.unwrap();
    w.set_ready::<Mailbox>("box", "True", "Provisioned", 0);
    let mut observed = with_mode(w.get(), "ObserveOnly");
    observed.spec.resources =
        serde_json::from_value(json!({"mailboxes": [mailbox_template("box", "changed@example.com")]})).unwrap();
    let observed = w.put(&observed);
    let writes = w.api.writes();
    w.reconcile(&observed, 2).await.unwrap();
    assert!(w.api.get::<DnsZone>(NS, "zone").is_some(), "ObserveOnly deleted a child");
    let mailbox: Mailbox = w.api.get(NS, "box").unwrap();
    assert_eq!(mailbox.spec.address, "admin@example.com", "ObserveOnly changed a child");
    let now = w.get();
    assert_eq!(now.status.as_ref().unwrap().resources.iter().map(|r| r.ready).collect::<Vec<_>>(), [true]);
    assert_eq!(phase_of(&now), Some(SubscriptionPhase::Active));
    assert_eq!(w.api.writes(), writes + 1, "only the status is written: {:?}", w.api.requests());
}
