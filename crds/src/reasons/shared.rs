//! Reasons several kinds report: failed reconciles, ownership and conflicts, sync and suspension.

use super::*;

pub const RECONCILE_TIMED_OUT: Reason = Reason {
    name: "ReconcileTimedOut",
    reported_in: &[(KINDS, ON_READY)],
    meaning: "A reconcile ran longer than its time bound and was stopped; it is retried on the object's backoff.",
    action: "Usually nothing: the next reconcile that finishes replaces it. If it stays, an external system answers \
             slowly: operators look for the object in the operator's log.",
};

pub const RECONCILE_PANICKED: Reason = Reason {
    name: "ReconcilePanicked",
    reported_in: &[(KINDS, ON_READY)],
    meaning: "A reconcile failed unexpectedly (a fault in the operator); it is retried on the object's backoff.",
    action: "Report it to the operators with the object's namespace and name; the message and the log say more.",
};

pub const FINALIZER_ERROR: Reason = Reason {
    name: "FinalizerError",
    reported_in: &[(KINDS, ReconcileError)],
    meaning: "Adding or removing the operator's finalizer failed; it is retried.",
    action: "Usually nothing. If it persists, operators check the log and the operator's permissions.",
};

pub const KUBERNETES_API_ERROR: Reason = Reason {
    name: "KubernetesApiError",
    reported_in: &[(KINDS, ReconcileError)],
    meaning: "A call to the Kubernetes API server failed (a write conflict, a timeout, a missing permission); the \
              reconcile is retried on the object's backoff.",
    action: "Nothing for a passing conflict. If it persists, operators check the log (RBAC, API server health).",
};

pub const INVALID_RECONCILE_MODE: Reason = Reason {
    name: "InvalidReconcileMode",
    reported_in: &[
        (&[CLOUD_POD, DOMAIN, DNS_ZONE, MAILBOX, SUBSCRIPTION], ON_READY),
        (&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY])),
    ],
    meaning: "The annotation `mpanel.migrahosting.com/reconcile-mode` is not `Reconcile`, `ObserveOnly` or \
              `Paused`; nothing is done until it changes.",
    action: "Correct the annotation or remove it (the default is `Reconcile`).",
};

pub const ORPHANED: Reason = Reason {
    name: "Orphaned",
    reported_in: &[(KINDS, Event)],
    meaning: "The object was deleted while the operator runs no controller for its kind: the finalizer was \
              released and the external object left as it is.",
    action: "If the external object should go too, ask the operators to remove it.",
};

pub const CONFLICT: Reason = Reason {
    name: "Conflict",
    reported_in: &[(&[CLOUD_POD, DOMAIN, DNS_ZONE, MAILBOX], ON_READY)],
    meaning: "Something this object would manage belongs to another object and is left untouched; the Conflict \
              condition says what.",
    action: "See the Conflict condition's reason.",
};

pub const OWNED: Reason = Reason {
    name: "Owned",
    reported_in: &[(&[CLOUD_POD, DNS_ZONE, MAILBOX], Conditions(&[types::CONFLICT]))],
    meaning: "What the object manages carries its mark: there is no conflict.",
    action: "Nothing.",
};

pub const OUT_OF_SYNC: Reason = Reason {
    name: "OutOfSync",
    reported_in: &[
        (&[CLOUD_POD, MAILBOX], ON_READY),
        (&[DOMAIN], Conditions(&[types::NAMESERVERS_SYNCED, types::SETTINGS_SYNCED])),
        (&[DNS_ZONE], Conditions(&[types::PROGRAMMED, types::READY])),
    ],
    meaning: "The external object differs from the spec, and nothing is written because the object is \
              `ObserveOnly` (or, for a Domain, `registration.mode: External`). The message says what differs.",
    action: "Set the reconcile mode to `Reconcile` to have the spec applied, or change the spec to match.",
};

pub const SYNCED: Reason = Reason {
    name: "Synced",
    reported_in: &[
        (&[DOMAIN], Conditions(&[types::NAMESERVERS_SYNCED, types::SETTINGS_SYNCED])),
        (&[DNS_ZONE], Conditions(&[types::PROGRAMMED])),
        (&[MAILBOX], Conditions(&[types::PASSWORD_SYNCED])),
    ],
    meaning: "The external system matches the spec.",
    action: "Nothing.",
};

pub const DRIFT_REPAIRED: Reason = Reason {
    name: "DriftRepaired",
    reported_in: &[(&[CLOUD_POD, DOMAIN, DNS_ZONE, MAILBOX], Event)],
    meaning: "The external object was changed outside the operator, and the operator restored the spec.",
    action: "Make changes through the spec: a change made elsewhere is undone.",
};

pub const NOT_OWNER: Reason = Reason {
    name: "NotOwner",
    reported_in: &[(&[CLOUD_POD, DNS_ZONE, MAILBOX], Event)],
    meaning: "On deletion, the external object turned out not to be this object's; it was left in place.",
    action: "Nothing, unless it should go: then ask the operators to remove it.",
};

pub const CREATED: Reason = Reason {
    name: "Created",
    reported_in: &[(&[DNS_ZONE, MAILBOX], Event)],
    meaning: "The external object (a PowerDNS zone, a mailbox on mail-core) was created.",
    action: "Nothing.",
};

pub const NAME_HELD_ELSEWHERE: Reason = Reason {
    name: "NameHeldElsewhere",
    reported_in: &[
        (&[DOMAIN], Conditions(&[types::REGISTERED, types::READY])),
        (&[DNS_ZONE], Conditions(&[types::CONFLICT, types::PROGRAMMED, types::READY])),
        (&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY])),
    ],
    meaning: "The name, or a name above or below it, is held by another namespace that claimed it first; nothing \
              is done for it here.",
    action: "Use a name your namespace holds. If the name is yours, ask the operators about the other claim.",
};

pub const ZONE_OWNED_ELSEWHERE: Reason = Reason {
    name: "ZoneOwnedElsewhere",
    reported_in: &[
        (&[DNS_ZONE], Conditions(&[types::CONFLICT])),
        (&[DOMAIN], Conditions(&[types::ZONE_READY])),
        (&[CERTIFICATE], Conditions(&[types::ISSUING])),
    ],
    meaning: "The zone exists and is not this object's: in PowerDNS (made by another object or outside the \
              operator) or, for a Domain, as a DnsZone of the same name it does not own. It is left untouched.",
    action: "Delete the other DnsZone if it is yours; for a zone made outside the operator, ask the operators.",
};

pub const SUSPENDED: Reason = Reason {
    name: "Suspended",
    reported_in: &[(&[CLOUD_POD, MAILBOX, SUBSCRIPTION], ON_READY)],
    meaning: "The object is suspended: a CloudPod is stopped, a Mailbox cannot log in, a Subscription holds its \
              children so.",
    action: "Lift the suspension (`suspended: false`; for a Subscription, settle its billing or change \
             `suspension`).",
};

pub const ACTIVE: Reason = Reason {
    name: "Active",
    reported_in: &[(&[DOMAIN, MAILBOX, SUBSCRIPTION], ON_READY)],
    meaning: "Everything the object stands for is in place and matches the spec.",
    action: "Nothing.",
};

pub const PROVISIONING: Reason = Reason {
    name: "Provisioning",
    reported_in: &[(&[CLOUD_POD, SUBSCRIPTION], ON_READY)],
    meaning: "Being set up: a CloudPod's VMID is reserved and its guest comes next; a Subscription's children are \
              not all Ready yet.",
    action: "Wait.",
};
