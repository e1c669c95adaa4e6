//! The reasons of Subscriptions: their children, the provisioning deadline and billing.

use super::*;

pub const NOT_SUSPENDED: Reason = Reason {
    name: "NotSuspended",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::SUSPENDED]))],
    meaning: "The subscription is not suspended.",
    action: "Nothing.",
};

pub const OVERDUE: Reason = Reason {
    name: "Overdue",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::SUSPENDED]))],
    meaning: "Suspended for an overdue payment; `billing.state: Paid` lifts it.",
    action: "Pay the open invoice.",
};

pub const ABUSE: Reason = Reason {
    name: "Abuse",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::SUSPENDED]))],
    meaning: "Suspended for abuse; only a change of `suspension` lifts it.",
    action: "Contact support.",
};

pub const MANUAL: Reason = Reason {
    name: "Manual",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::SUSPENDED]))],
    meaning: "Suspended by staff (also a suspension without a reason); only a change of `suspension` lifts it.",
    action: "Contact support.",
};

pub const DISPUTE: Reason = Reason {
    name: "Dispute",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::SUSPENDED]))],
    meaning: "Suspended while a payment is disputed (a chargeback); only a change of `suspension` lifts it.",
    action: "Contact support about the disputed payment.",
};

pub const ALL_READY: Reason = Reason {
    name: "AllReady",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::CHILDREN_READY]))],
    meaning: "Every child object is Ready at its current generation.",
    action: "Nothing.",
};

pub const PENDING: Reason = Reason {
    name: "Pending",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::CHILDREN_READY]))],
    meaning: "A child has no Ready condition yet: its controller has not reconciled it.",
    action: "Wait; if it stays, check that the operator runs the child's controller.",
};

pub const RECONCILING: Reason = Reason {
    name: "Reconciling",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::CHILDREN_READY]))],
    meaning: "A child is Ready for an older generation; its latest spec is not reconciled yet.",
    action: "Wait.",
};

pub const NOT_READY: Reason = Reason {
    name: "NotReady",
    reported_in: &[(&[SUBSCRIPTION], Conditions(&[types::CHILDREN_READY]))],
    meaning: "A child is not Ready and its Ready condition gives no reason.",
    action: "See the child's status (`status.resources` names it).",
};

pub const CHILD_FAILED: Reason = Reason {
    name: "ChildFailed",
    reported_in: &[(&[SUBSCRIPTION], ON_READY)],
    meaning: "A child failed in a way no retry changes (its reason is in `status.resources` and ChildrenReady).",
    action: "Look up the child's reason under its kind and do what it says; often the template must change.",
};

pub const PROVISIONING_TIMEOUT: Reason = Reason {
    name: "ProvisioningTimeout",
    reported_in: &[(&[SUBSCRIPTION], ON_READY)],
    meaning: "Not every child was Ready within `provisioningTimeout`; the message names the one waited on.",
    action: "Look up that child's reason under its kind; the Subscription becomes Active once all are Ready.",
};

pub const TERMINATING: Reason = Reason {
    name: "Terminating",
    reported_in: &[(&[SUBSCRIPTION], ON_READY)],
    meaning: "The Subscription is being deleted; its children are deleted first and deprovision what they stand \
              for.",
    action: "Wait.",
};

pub const CHILD_DELETED: Reason = Reason {
    name: "ChildDeleted",
    reported_in: &[(&[SUBSCRIPTION], Event)],
    meaning: "A child that is no longer in the templates was deleted.",
    action: "Nothing.",
};

pub const CHILDREN_REMAINING: Reason = Reason {
    name: "ChildrenRemaining",
    reported_in: &[(&[SUBSCRIPTION], Waiting)],
    meaning: "The deletion waits for child objects to be gone.",
    action: "Wait; if it stays, see why the children are not deleted (their own Ready reasons).",
};
