//! Every condition type and every reason the operator reports, each with what it means and what a
//! user should do about it. Controllers take the strings from here, and `docs/reasons.md` is
//! generated from the text here (`cargo run -p mpanel-crds --bin reasongen`).
//!
//! A reason is reported in conditions of the object's status (most failures also in a Warning
//! Event when they first appear), only in an Event about the object, or only as the reason of a
//! failed reconcile: in the operator's log and the `mpanel_reconcile_errors_total` metric. The
//! strings are stable: dashboards, alerts and the Subscription controller match on them.

use std::fmt::Write as _;
use std::path::PathBuf;

use self::ReportedIn::{Conditions, Event, ReconcileError};
use self::condition_types as types;

const CLOUD_POD: &str = "CloudPod";
const DOMAIN: &str = "Domain";
const DNS_ZONE: &str = "DnsZone";
const MAILBOX: &str = "Mailbox";
const CERTIFICATE: &str = "Certificate";
const SUBSCRIPTION: &str = "Subscription";
const BACKUP_POLICY: &str = "BackupPolicy";
const CLOUD_POD_RESTORE: &str = "CloudPodRestore";

/// Every kind, in the order of the reference.
pub const KINDS: &[&str] =
    &[CLOUD_POD, DOMAIN, DNS_ZONE, MAILBOX, CERTIFICATE, SUBSCRIPTION, BACKUP_POLICY, CLOUD_POD_RESTORE];

/// A condition type: the `type` of one entry of `status.conditions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConditionType {
    pub name: &'static str,
    /// The kinds whose status has it.
    pub kinds: &'static [&'static str],
    /// What its status says.
    pub meaning: &'static str,
}

/// Where some kinds report a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportedIn {
    /// As the reason of these conditions.
    Conditions(&'static [ConditionType]),
    /// Only as the reason of an Event about the object.
    Event,
    /// Only as the reason of a failed reconcile (the log and the reconcile error metric); the
    /// status keeps what it said before.
    ReconcileError,
}

/// A reason: the stable, UpperCamelCase word in a condition's or an Event's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    pub name: &'static str,
    /// Which kinds report it, and where.
    pub reported_in: &'static [(&'static [&'static str], ReportedIn)],
    /// What it means, in one sentence or two.
    pub meaning: &'static str,
    /// What a user should do about it.
    pub action: &'static str,
}

impl Reason {
    /// Where `kind` reports this reason, if it does.
    pub fn reported_by(&self, kind: &str) -> Option<ReportedIn> {
        self.reported_in.iter().find(|(kinds, _)| kinds.contains(&kind)).map(|(_, r)| *r)
    }
}

/// The condition types, per kind.
pub mod condition_types {
    use super::{CERTIFICATE, CLOUD_POD, ConditionType, DNS_ZONE, DOMAIN, KINDS, MAILBOX, SUBSCRIPTION};

    // every kind

    pub const READY: ConditionType = ConditionType {
        name: "Ready",
        kinds: KINDS,
        meaning: "True: the object matches its spec (at `status.observedGeneration`) and what it stands for is usable. \
                  False: the reason says what stands in the way.",
    };

    pub const CONFLICT: ConditionType = ConditionType {
        name: "Conflict",
        kinds: &[CLOUD_POD, DOMAIN, DNS_ZONE, MAILBOX],
        meaning: "True: something the object would manage (a guest, a name, a zone, a mailbox row) belongs to \
                  another object, and it is left untouched. False: it is this object's.",
    };

    // CloudPod

    pub const CLONED: ConditionType = ConditionType {
        name: "Cloned",
        kinds: &[CLOUD_POD],
        meaning: "True: the guest exists in Proxmox at `status.vmid`. False: it is being created, or the reason \
                  says why it cannot be.",
    };

    pub const CONFIGURED: ConditionType = ConditionType {
        name: "Configured",
        kinds: &[CLOUD_POD],
        meaning: "True: the guest's cores, memory, disk, name and network match the spec. False: a change is under \
                  way or refused.",
    };

    pub const STARTED: ConditionType = ConditionType {
        name: "Started",
        kinds: &[CLOUD_POD],
        meaning: "True: the guest is running. False: it is stopped, starting or stopping.",
    };

    // Domain

    pub const REGISTERED: ConditionType = ConditionType {
        name: "Registered",
        kinds: &[DOMAIN],
        meaning: "True: the name is in the registrar account and this Domain may manage it. False: an order or a \
                  transfer is under way, or the reason says why none can be.",
    };

    pub const RENEWED: ConditionType = ConditionType {
        name: "Renewed",
        kinds: &[DOMAIN],
        meaning: "True: the registration's expiry covers `paidUntil`, or there is no `paidUntil`. False: a renewal \
                  is under way or cannot be made.",
    };

    pub const NAMESERVERS_SYNCED: ConditionType = ConditionType {
        name: "NameserversSynced",
        kinds: &[DOMAIN],
        meaning: "True: the registrar delegates the name to the wanted nameservers (`spec.nameservers`, else the \
                  operator's).",
    };

    pub const SETTINGS_SYNCED: ConditionType = ConditionType {
        name: "SettingsSynced",
        kinds: &[DOMAIN],
        meaning: "True: lock, privacy and auto-renew at the registrar match `spec.registration`.",
    };

    pub const ZONE_READY: ConditionType = ConditionType {
        name: "ZoneReady",
        kinds: &[DOMAIN],
        meaning: "Only with `dns.createZone`. True: the DnsZone of the same name that the Domain owns is Ready.",
    };

    // DnsZone

    pub const PROGRAMMED: ConditionType = ConditionType {
        name: "Programmed",
        kinds: &[DNS_ZONE],
        meaning: "True: PowerDNS holds the zone with every rrset of the spec. False: the reason says why it does \
                  not.",
    };

    // Mailbox

    pub const DOMAIN_READY: ConditionType = ConditionType {
        name: "DomainReady",
        kinds: &[MAILBOX],
        meaning: "True: the mail domains of the address and the aliases are on mail-core and this namespace may \
                  use them.",
    };

    pub const PASSWORD_SYNCED: ConditionType = ConditionType {
        name: "PasswordSynced",
        kinds: &[MAILBOX],
        meaning: "True: the password hash on mail-core matches the password Secret.",
    };

    pub const DKIM_SIGNING: ConditionType = ConditionType {
        name: "DkimSigning",
        kinds: &[MAILBOX],
        meaning: "True: mail-core signs mail from the Mailbox's mail domains with the DKIM key the operator made \
                  for each (kept in the Secret `dkim-<domain>`, published by the domain's DnsZone). False: the \
                  reason says why mail from one of them is not signed.",
    };

    // Certificate

    pub const ISSUING: ConditionType = ConditionType {
        name: "Issuing",
        kinds: &[CERTIFICATE],
        meaning: "True: an order is in flight and the reason says at which step. False: none is; the reason says \
                  how the last one ended or why none is placed.",
    };

    pub const DELIVERED: ConditionType = ConditionType {
        name: "Delivered",
        kinds: &[CERTIFICATE],
        meaning: "True: the certificate in the Secret is in every CloudPod of `spec.deliverTo` (`status.deliveries` \
                  says where and when). False: the reason is the first failing CloudPod's, the message names each \
                  one with its own error. Absent without `deliverTo`.",
    };

    // Subscription

    pub const CHILDREN_READY: ConditionType = ConditionType {
        name: "ChildrenReady",
        kinds: &[SUBSCRIPTION],
        meaning: "True: every child object is Ready at its current generation. False: the reason is the first \
                  waiting child's own Ready reason (look it up under the child's kind) or one listed here.",
    };

    pub const SUSPENDED: ConditionType = ConditionType {
        name: "Suspended",
        kinds: &[SUBSCRIPTION],
        meaning: "True: the subscription is suspended (its CloudPods stopped, its Mailboxes disabled) and the \
                  reason is `spec.suspension.reason`. False: it is not.",
    };

    pub const STALLED: ConditionType = ConditionType {
        name: "Stalled",
        kinds: KINDS,
        meaning: "True while Ready is False for a reason no retry changes (listed as stalling below); it carries \
                  Ready's reason and message, so Flux, kstatus and `kubectl wait --for=condition=Stalled` see a \
                  failure at once. Absent otherwise.",
    };

    /// Every condition type, in the order of the reference.
    pub const ALL: &[ConditionType] = &[
        READY,
        STALLED,
        CONFLICT,
        CLONED,
        CONFIGURED,
        STARTED,
        REGISTERED,
        RENEWED,
        NAMESERVERS_SYNCED,
        SETTINGS_SYNCED,
        ZONE_READY,
        PROGRAMMED,
        DOMAIN_READY,
        PASSWORD_SYNCED,
        DKIM_SIGNING,
        ISSUING,
        DELIVERED,
        CHILDREN_READY,
        SUSPENDED,
    ];
}

const ON_READY: ReportedIn = Conditions(&[types::READY]);

// ---------------------------------------------------------------------------------------------
// shared by several kinds

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

// ---------------------------------------------------------------------------------------------
// CloudPod

pub const VMID_RESERVED: Reason = Reason {
    name: "VmidReserved",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED]))],
    meaning: "A VMID was reserved in `status.vmid`; the clone comes next.",
    action: "Wait.",
};

pub const CLONING: Reason = Reason {
    name: "Cloning",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED]))],
    meaning: "The template is being cloned to the guest's VMID.",
    action: "Wait.",
};

pub const RECREATING: Reason = Reason {
    name: "Recreating",
    reported_in: &[(&[CLOUD_POD], Event)],
    meaning: "The guest was deleted outside the operator and is cloned again at the same VMID, from the template.",
    action: "Nothing; to remove a guest, delete its CloudPod.",
};

pub const CLONED: Reason = Reason {
    name: "Cloned",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED]))],
    meaning: "The guest exists on a node of the cluster.",
    action: "Nothing.",
};

pub const NOT_CREATED: Reason = Reason {
    name: "NotCreated",
    reported_in: &[(&[CLOUD_POD], ON_READY)],
    meaning: "There is no guest, and the CloudPod is `ObserveOnly`, so none is created.",
    action: "Set the reconcile mode to `Reconcile` to have it created.",
};

pub const NO_FREE_VMID: Reason = Reason {
    name: "NoFreeVmid",
    reported_in: &[(&[CLOUD_POD], ON_READY)],
    meaning: "Every VMID of the operator's range is taken; it is tried again at the next resync.",
    action: "Ask the operators to widen the VMID range or free VMIDs.",
};

pub const NO_NODE: Reason = Reason {
    name: "NoNode",
    reported_in: &[(&[CLOUD_POD], ON_READY)],
    meaning: "No node of the cluster (or of `placement.nodes`) is online to clone to.",
    action: "Check `placement.nodes`; otherwise ask the operators to bring a node back.",
};

pub const TEMPLATE_NOT_FOUND: Reason = Reason {
    name: "TemplateNotFound",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED, types::READY]))],
    meaning: "No template of the spec's name and type is in the Proxmox cluster.",
    action: "Create the CloudPod again with a template that exists, or ask the operators to provide it.",
};

pub const GUEST_OWNED_ELSEWHERE: Reason = Reason {
    name: "GuestOwnedElsewhere",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFLICT]))],
    meaning: "The guest at `status.vmid` does not carry this CloudPod's tag (or is of the other type); it is left \
              untouched.",
    action: "Ask the operators to look at the guest at that VMID.",
};

pub const UNKNOWN_PLAN: Reason = Reason {
    name: "UnknownPlan",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "`plan` is not in the operator configuration and `resources` is not set.",
    action: "Use a configured plan, or set `resources`.",
};

pub const NO_ADDRESS: Reason = Reason {
    name: "NoAddress",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "No IPv4 address could be given: the pool is not in the operator configuration or has no free \
              address.",
    action: "Use a configured pool or a static address; ask the operators to grow a full pool.",
};

pub const NETWORK_NOT_ALLOWED: Reason = Reason {
    name: "NetworkNotAllowed",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The bridge or the VLAN is not one the operator configuration allows; an existing guest keeps its \
              configuration.",
    action: "Use an allowed bridge and VLAN.",
};

pub const TEMPLATE_NOT_ALLOWED: Reason = Reason {
    name: "TemplateNotAllowed",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The template is not one the operator configuration allows.",
    action: "Create the CloudPod again with an allowed template.",
};

pub const ADDRESS_IN_POOL: Reason = Reason {
    name: "AddressInPool",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The static address lies inside an IPv4 pool the operator gives out.",
    action: "Use the pool (`network.ipv4.pool`) or an address outside it.",
};

pub const ADDRESS_IN_USE: Reason = Reason {
    name: "AddressInUse",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "Another CloudPod asked for the same static address first.",
    action: "Use another address.",
};

pub const RESIZING: Reason = Reason {
    name: "Resizing",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED]))],
    meaning: "The root disk is being grown to `diskGiB`.",
    action: "Wait.",
};

pub const DISK_LARGER_THAN_SPEC: Reason = Reason {
    name: "DiskLargerThanSpec",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED]))],
    meaning: "The disk is larger than `diskGiB`; a disk is never shrunk, so the larger size stays.",
    action: "Nothing; raise `diskGiB` if the spec should say so.",
};

pub const CONFIGURED: Reason = Reason {
    name: "Configured",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED]))],
    meaning: "The guest's cores, memory, disk, name and network match the spec.",
    action: "Nothing.",
};

pub const STARTING: Reason = Reason {
    name: "Starting",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED]))],
    meaning: "The guest is being started.",
    action: "Wait.",
};

pub const STOPPING: Reason = Reason {
    name: "Stopping",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED]))],
    meaning: "The guest is being stopped (`powerState: Stopped`, or the CloudPod is suspended).",
    action: "Wait.",
};

pub const RUNNING: Reason = Reason {
    name: "Running",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED, types::READY]))],
    meaning: "The guest runs and matches the spec.",
    action: "Nothing.",
};

pub const STOPPED: Reason = Reason {
    name: "Stopped",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED, types::READY]))],
    meaning: "The guest is stopped, as `powerState: Stopped` asks, and otherwise matches the spec.",
    action: "Nothing; set `powerState: Running` to start it.",
};

pub const REBOOTING: Reason = Reason {
    name: "Rebooting",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED]))],
    meaning: "The guest is being rebooted, as a new `rebootRequestedAt` asked; `status.reboot` records the value.",
    action: "Wait.",
};

pub const USER_DATA_SECRET_MISSING: Reason = Reason {
    name: "UserDataSecretMissing",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The Secret of `cloudInitSecretRef`, or its key, is missing or not text, so the guest is not configured.",
    action: "Create the Secret with the cloud-init user data under the named key.",
};

pub const USER_DATA_NOT_WRITTEN: Reason = Reason {
    name: "UserDataNotWritten",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The cloud-init user data of `cloudInitSecretRef` could not be written as a snippet: the operator \
              configuration has no `proxmox.snippets`, or its directory cannot be written.",
    action: "Configure `proxmox.snippets` with a snippet storage mounted into the operator, or remove \
             `cloudInitSecretRef`.",
};

pub const PROXMOX_TASK_FAILED: Reason = Reason {
    name: "ProxmoxTaskFailed",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED, types::CONFIGURED, types::STARTED, types::READY]))],
    meaning: "A Proxmox task (clone, resize, start, stop) failed; the message is Proxmox's own. It is retried on \
              the object's backoff.",
    action: "Read the message; if the retry fails the same way, ask the operators to look at the task in Proxmox.",
};

pub const DESTROYING: Reason = Reason {
    name: "Destroying",
    reported_in: &[(&[CLOUD_POD], ReconcileError)],
    meaning: "The deletion waits for Proxmox to stop and destroy the guest.",
    action: "Wait.",
};

/// The conditions a Proxmox error is reported in: the step that failed, and Ready.
const PROXMOX_FAILURE: ReportedIn = Conditions(&[types::CLONED, types::CONFIGURED, types::STARTED, types::READY]);

pub const PROXMOX_UNAUTHORIZED: Reason = Reason {
    name: "ProxmoxUnauthorized",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox refused the operator's API token (401 or 403).",
    action: "Operators: check the token and its permissions in the operator configuration.",
};

pub const PROXMOX_ERROR: Reason = Reason {
    name: "ProxmoxError",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox answered with a server error (5xx); the message is its own. It is retried.",
    action: "Wait for the retry; if it persists, operators check Proxmox.",
};

pub const PROXMOX_REJECTED: Reason = Reason {
    name: "ProxmoxRejected",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox refused the request (4xx); the message is its own.",
    action: "If the message names something of the spec (a storage, a size), change it; otherwise ask the \
             operators.",
};

pub const PROXMOX_UNREACHABLE: Reason = Reason {
    name: "ProxmoxUnreachable",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox could not be reached. It is retried.",
    action: "Wait for the retry; if it persists, operators check the network to Proxmox.",
};

pub const PROXMOX_BAD_RESPONSE: Reason = Reason {
    name: "ProxmoxBadResponse",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox sent an answer the operator could not read.",
    action: "Ask the operators: the Proxmox version may not be one the operator supports.",
};

// ---------------------------------------------------------------------------------------------
// Domain

pub const CLAIMED_BY_ANOTHER_DOMAIN: Reason = Reason {
    name: "ClaimedByAnotherDomain",
    reported_in: &[(&[DOMAIN], Conditions(&[types::CONFLICT]))],
    meaning: "Another Domain of this namespace claimed the same name first and manages it; this one leaves the \
              registrar alone.",
    action: "Delete one of the two Domains.",
};

pub const NOT_IN_ACCOUNT: Reason = Reason {
    name: "NotInAccount",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The name is not in the registrar account, and nothing is bought: the Domain is `registration.mode: \
              External` or `ObserveOnly`.",
    action: "Bring the name into the account another way, or use `registration.mode: Register` or `Transfer` \
             with the reconcile mode `Reconcile`.",
};

pub const REGISTRATION_NOT_ADOPTED: Reason = Reason {
    name: "RegistrationNotAdopted",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The name is already in the registrar account and this Domain did not order it; nothing is changed \
              at the registrar until staff grant adoption.",
    action: "If the registration is yours, ask staff to set the annotation \
             `mpanel.migrahosting.com/adopt-registration: \"true\"`.",
};

pub const REGISTERED: Reason = Reason {
    name: "Registered",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED]))],
    meaning: "The registration order went through, and the name is in the account.",
    action: "Nothing.",
};

pub const TRANSFERRED: Reason = Reason {
    name: "Transferred",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED]))],
    meaning: "The name was transferred in and is in the account.",
    action: "Nothing.",
};

pub const IN_ACCOUNT: Reason = Reason {
    name: "InAccount",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED]))],
    meaning: "The name is in the registrar account (`registration.mode: External`: observed, never bought).",
    action: "Nothing.",
};

pub const UNAVAILABLE: Reason = Reason {
    name: "Unavailable",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The name is not available for registration.",
    action: "Choose another name; if the name is yours at another registrar, use `registration.mode: Transfer`.",
};

pub const ORDER_SENT: Reason = Reason {
    name: "OrderSent",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::RENEWED]))],
    meaning: "A paid order (register, renew, transfer) was sent to the registrar and its answer is awaited; a \
              crash meanwhile never pays twice.",
    action: "Wait.",
};

pub const TRANSFER_REQUESTED: Reason = Reason {
    name: "TransferRequested",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED]))],
    meaning: "The registrar accepted the transfer order; the transfer now runs at the registry.",
    action: "Wait; approve the transfer at the current registrar if it asks.",
};

pub const AUTH_CODE_SECRET_MISSING: Reason = Reason {
    name: "AuthCodeSecretMissing",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The Secret of `registration.authCodeSecretRef`, or its key, is missing or not text.",
    action: "Create the Secret with the auth code under the named key.",
};

pub const TRANSFER_LOST: Reason = Reason {
    name: "TransferLost",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The registrar accepted a transfer but knows none now, and the name is not in the account; another \
              transfer is not bought automatically.",
    action: "Ask staff to check the transfer with the registrar.",
};

pub const TRANSFER_AUTH_CODE_REJECTED: Reason = Reason {
    name: "TransferAuthCodeRejected",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The pending transfer is held up by its auth code; the message is the registrar's status.",
    action: "Get a new auth code from the current registrar and put it in the Secret: it is handed to the \
             pending transfer.",
};

pub const TRANSFER_PENDING: Reason = Reason {
    name: "TransferPending",
    reported_in: &[(&[DOMAIN], Conditions(&[types::REGISTERED, types::READY]))],
    meaning: "The transfer is under way at the registry; the message is the registrar's status.",
    action: "Wait; a transfer can take days.",
};

pub const AUTH_CODE_UPDATED: Reason = Reason {
    name: "AuthCodeUpdated",
    reported_in: &[(&[DOMAIN], Event)],
    meaning: "The changed auth code Secret was handed to the pending transfer.",
    action: "Nothing.",
};

pub const NO_PAID_UNTIL: Reason = Reason {
    name: "NoPaidUntil",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED]))],
    meaning: "There is no `paidUntil`, so there is nothing to renew.",
    action: "Nothing.",
};

pub const COVERED: Reason = Reason {
    name: "Covered",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED]))],
    meaning: "The registrar's expiry covers `paidUntil`.",
    action: "Nothing.",
};

pub const RENEWAL_DUE: Reason = Reason {
    name: "RenewalDue",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED]))],
    meaning: "The expiry is before `paidUntil`, and the Domain is `registration.mode: External` or `ObserveOnly`, \
              so it is not renewed.",
    action: "Renew it where it is managed, or set the reconcile mode to `Reconcile`.",
};

pub const RENEWED_ONCE: Reason = Reason {
    name: "RenewedOnce",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED]))],
    meaning: "A renewal for this `paidUntil` went through, yet the expiry still falls short; the operator never \
              pays twice for one payment.",
    action: "Ask staff to check the renewal at the registrar.",
};

pub const PAID_UNTIL_TOO_FAR: Reason = Reason {
    name: "PaidUntilTooFar",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED]))],
    meaning: "Reaching `paidUntil` needs more years than a registrar renews ahead (10).",
    action: "Set a `paidUntil` at most 10 years past the expiry.",
};

pub const BAD_DATE: Reason = Reason {
    name: "BadDate",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED]))],
    meaning: "`paidUntil` or the registrar's expiry is not a date the operator can compare.",
    action: "Write `paidUntil` as a date (`YYYY-MM-DD`); if it is one, ask the operators.",
};

pub const RENEWED: Reason = Reason {
    name: "Renewed",
    reported_in: &[(&[DOMAIN], Conditions(&[types::RENEWED, types::READY]))],
    meaning: "On Renewed: a renewal order went through. On Ready: the Renewed condition is False.",
    action: "On Ready: see the Renewed condition's reason.",
};

pub const NAMESERVERS_SYNCED: Reason = Reason {
    name: "NameserversSynced",
    reported_in: &[(&[DOMAIN], ON_READY)],
    meaning: "The NameserversSynced condition is False: the delegation is not the wanted one yet.",
    action: "See the NameserversSynced condition's reason.",
};

pub const SETTINGS_SYNCED: Reason = Reason {
    name: "SettingsSynced",
    reported_in: &[(&[DOMAIN], ON_READY)],
    meaning: "The SettingsSynced condition is False: lock, privacy or auto-renew differ at the registrar.",
    action: "See the SettingsSynced condition's reason.",
};

pub const ZONE_READY: Reason = Reason {
    name: "ZoneReady",
    reported_in: &[(&[DOMAIN], ON_READY)],
    meaning: "The ZoneReady condition is False: the Domain's DnsZone is not Ready.",
    action: "See the ZoneReady condition, and the DnsZone's own Ready condition.",
};

pub const EXPIRED: Reason = Reason {
    name: "Expired",
    reported_in: &[(&[DOMAIN], ON_READY)],
    meaning: "The registration has expired.",
    action: "Renew it: raise `paidUntil` (for a Subscription's Domain, settle its billing).",
};

pub const SERVED: Reason = Reason {
    name: "Served",
    reported_in: &[(&[DOMAIN], Conditions(&[types::ZONE_READY]))],
    meaning: "The Domain's DnsZone is Ready: the zone is served.",
    action: "Nothing.",
};

pub const WAITING: Reason = Reason {
    name: "Waiting",
    reported_in: &[(&[DOMAIN], Conditions(&[types::ZONE_READY]))],
    meaning: "The Domain's DnsZone is not Ready yet (or, `ObserveOnly`, does not exist); the message is the \
              zone's.",
    action: "Wait; if it stays, see the DnsZone's Ready condition.",
};

pub const AUTO_RENEW_OFF: Reason = Reason {
    name: "AutoRenewOff",
    reported_in: &[(&[DOMAIN], Event)],
    meaning: "On deletion, auto-renew was turned off at the registrar (a registration cannot be undone).",
    action: "Nothing.",
};

/// The conditions a registrar error is reported in: the step that failed, and Ready.
const REGISTRAR_FAILURE: ReportedIn =
    Conditions(&[types::REGISTERED, types::RENEWED, types::NAMESERVERS_SYNCED, types::SETTINGS_SYNCED, types::READY]);

pub const NAMESILO_UNAUTHORIZED: Reason = Reason {
    name: "NamesiloUnauthorized",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo refused the operator's API key (reply 109 to 113).",
    action: "Operators: check the API key and the addresses Namesilo allows it from.",
};

pub const NAMESILO_MISSING_PARAMETERS: Reason = Reason {
    name: "NamesiloMissingParameters",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo said a parameter is missing (reply 108).",
    action: "Check `registration.contact`; otherwise report it to the operators.",
};

pub const NAMESILO_REGISTRY_UNAVAILABLE: Reason = Reason {
    name: "NamesiloRegistryUnavailable",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "The registry behind Namesilo is unavailable (reply 115). It is retried.",
    action: "Wait.",
};

pub const NAMESILO_INSUFFICIENT_FUNDS: Reason = Reason {
    name: "NamesiloInsufficientFunds",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "The registrar account lacks the funds for the order (reply 119). It is retried.",
    action: "Operators: top up the registrar account.",
};

pub const NAMESILO_NOT_IN_ACCOUNT: Reason = Reason {
    name: "NamesiloNotInAccount",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo says the name is not in the account (reply 200).",
    action: "Ask staff to check the account.",
};

pub const NAMESILO_UNAVAILABLE: Reason = Reason {
    name: "NamesiloUnavailable",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo says the name cannot be registered or is already active (reply 261 or 262).",
    action: "Choose another name, or transfer it in if it is yours elsewhere.",
};

pub const NAMESILO_INVALID_YEARS: Reason = Reason {
    name: "NamesiloInvalidYears",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "The number of years is not allowed for this name (reply 263 or 264).",
    action: "Change `registration.years` or `paidUntil`.",
};

pub const NAMESILO_TRANSFER_REFUSED: Reason = Reason {
    name: "NamesiloTransferRefused",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo says the name cannot be transferred (reply 265): it may be locked, or registered or \
              transferred too recently.",
    action: "Unlock it at the current registrar, or wait until it may be transferred.",
};

pub const NAMESILO_NO_TRANSFER: Reason = Reason {
    name: "NamesiloNoTransfer",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo knows no transfer for the name (reply 266).",
    action: "Ask staff to check the transfer with the registrar.",
};

pub const NAMESILO_ERROR: Reason = Reason {
    name: "NamesiloError",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo answered with another error; the message has its code and words.",
    action: "Read the message; if the spec is not at fault, ask the operators.",
};

pub const NAMESILO_UNREACHABLE: Reason = Reason {
    name: "NamesiloUnreachable",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo could not be reached; a paid order without an answer is not sent again until the account \
              shows what happened. It is retried.",
    action: "Wait; if it persists, operators check the network to Namesilo.",
};

pub const NAMESILO_BAD_RESPONSE: Reason = Reason {
    name: "NamesiloBadResponse",
    reported_in: &[(&[DOMAIN], REGISTRAR_FAILURE)],
    meaning: "Namesilo sent an answer the operator could not read.",
    action: "Ask the operators.",
};

// ---------------------------------------------------------------------------------------------
// DnsZone

pub const INVALID_RECORD: Reason = Reason {
    name: "InvalidRecord",
    reported_in: &[(&[DNS_ZONE], Conditions(&[types::PROGRAMMED, types::READY]))],
    meaning: "A record of the spec cannot be written (the message names it and says why); nothing is written.",
    action: "Correct the record.",
};

pub const PUBLIC_SUFFIX: Reason = Reason {
    name: "PublicSuffix",
    reported_in: &[(&[DNS_ZONE], Conditions(&[types::PROGRAMMED, types::READY]))],
    meaning: "The zone is a public suffix (such as `com` or `co.uk`); a zone must be a registered domain or a \
              name under one. Nothing is written.",
    action: "Use your registered domain, or a name under it, as `zone`.",
};

pub const ZONE_MISSING: Reason = Reason {
    name: "ZoneMissing",
    reported_in: &[(&[DNS_ZONE], Conditions(&[types::PROGRAMMED, types::READY]))],
    meaning: "The zone is not in PowerDNS, and the DnsZone is `ObserveOnly`, so it is not created.",
    action: "Set the reconcile mode to `Reconcile` to have it created.",
};

pub const READY: Reason = Reason {
    name: "Ready",
    reported_in: &[(&[DNS_ZONE], ON_READY)],
    meaning: "The zone is served with every rrset of the spec.",
    action: "Nothing.",
};

pub const WAITING_FOR_CLOUD_POD: Reason = Reason {
    name: "WaitingForCloudPod",
    reported_in: &[(&[DNS_ZONE], ON_READY)],
    meaning: "A record follows a CloudPod's address and that CloudPod has none yet; the other records are served.",
    action: "Wait for the CloudPod; check that `cloudPodRef` names one in this namespace.",
};

pub const WAITING_FOR_DKIM_KEY: Reason = Reason {
    name: "WaitingForDkimKey",
    reported_in: &[(&[DNS_ZONE], ON_READY)],
    meaning: "`mail.dkim` asks for a key the operator makes, and the Secret `dkim-<zone>` (with the operator's \
              mark) holds none for the selector yet; the other records are served.",
    action: "The key is made once a Mailbox of this namespace uses the zone's mail domain: create one, or look \
             at its DkimSigning condition.",
};

/// The conditions a PowerDNS error is reported in.
const POWER_DNS_FAILURE: &[(&[&str], ReportedIn)] =
    &[(&[DNS_ZONE], Conditions(&[types::PROGRAMMED, types::READY])), (&[CERTIFICATE], Conditions(&[types::ISSUING]))];

pub const POWER_DNS_CONFLICT: Reason = Reason {
    name: "PowerDnsConflict",
    reported_in: POWER_DNS_FAILURE,
    meaning: "PowerDNS refused a change as conflicting (409); the message is its own.",
    action: "Ask the operators to look at the zone in PowerDNS.",
};

pub const POWER_DNS_SERVER_ERROR: Reason = Reason {
    name: "PowerDnsServerError",
    reported_in: POWER_DNS_FAILURE,
    meaning: "PowerDNS answered with a server error (5xx); the message is its own. It is retried.",
    action: "Wait; if it persists, operators check PowerDNS.",
};

pub const POWER_DNS_REJECTED: Reason = Reason {
    name: "PowerDnsRejected",
    reported_in: POWER_DNS_FAILURE,
    meaning: "PowerDNS refused the request (4xx); the message is its own.",
    action: "If the message names a record of the spec, correct it; otherwise ask the operators.",
};

pub const POWER_DNS_UNREACHABLE: Reason = Reason {
    name: "PowerDnsUnreachable",
    reported_in: POWER_DNS_FAILURE,
    meaning: "PowerDNS's API could not be reached. It is retried.",
    action: "Wait; if it persists, operators check PowerDNS.",
};

pub const POWER_DNS_BAD_RESPONSE: Reason = Reason {
    name: "PowerDnsBadResponse",
    reported_in: POWER_DNS_FAILURE,
    meaning: "PowerDNS sent an answer the operator could not read.",
    action: "Ask the operators.",
};

// ---------------------------------------------------------------------------------------------
// Mailbox

pub const MAIL_DOMAIN_HELD_ELSEWHERE: Reason = Reason {
    name: "MailDomainHeldElsewhere",
    reported_in: &[(&[MAILBOX], Conditions(&[types::DOMAIN_READY, types::CONFLICT, types::READY]))],
    meaning: "A mail domain of the address or of an alias is used by another namespace, or was on mail-core \
              before the operator and is not granted to this namespace; nothing is written.",
    action: "Use a domain your namespace holds (through a DnsZone or a Domain); for a domain that was on \
             mail-core before, ask the operators to grant it.",
};

pub const DOMAIN_ON_MAIL_CORE: Reason = Reason {
    name: "DomainOnMailCore",
    reported_in: &[(&[MAILBOX], Conditions(&[types::DOMAIN_READY]))],
    meaning: "The mail domain is on mail-core; the message says whether a DnsZone of this namespace publishes its \
              MX.",
    action: "Nothing.",
};

pub const ROW_OWNED_ELSEWHERE: Reason = Reason {
    name: "RowOwnedElsewhere",
    reported_in: &[(&[MAILBOX], Conditions(&[types::CONFLICT, types::DKIM_SIGNING]))],
    meaning: "The mailbox, an alias or a mail domain's DKIM key already exists on mail-core and is not this \
              object's (its namespace's); nothing is changed.",
    action: "Use another address or alias, or delete the Mailbox that has it.",
};

pub const PASSWORD_SECRET_MISSING: Reason = Reason {
    name: "PasswordSecretMissing",
    reported_in: &[(&[MAILBOX], Conditions(&[types::PASSWORD_SYNCED, types::READY]))],
    meaning: "The Secret of `passwordSecretRef`, or its key, is missing or not text. A new mailbox is not created \
              without it; an existing one keeps its password.",
    action: "Create the Secret with the password under the named key.",
};

pub const PASSWORD_UNUSABLE: Reason = Reason {
    name: "PasswordUnusable",
    reported_in: &[(&[MAILBOX], ReconcileError)],
    meaning: "The password in the Secret is empty or longer than 72 bytes, which bcrypt cannot hash.",
    action: "Put a password of 1 to 72 bytes in the Secret.",
};

pub const PASSWORD_HASH_FAILED: Reason = Reason {
    name: "PasswordHashFailed",
    reported_in: &[(&[MAILBOX], ReconcileError)],
    meaning: "The password could not be hashed.",
    action: "Ask the operators.",
};

pub const MAILDIR_NOT_REMOVED: Reason = Reason {
    name: "MaildirNotRemoved",
    reported_in: &[(&[MAILBOX], ReconcileError)],
    meaning: "On deletion, the mailbox's maildir could not be removed; the deletion waits and it is retried.",
    action: "Operators: check the maildir root and its permissions.",
};

pub const MAIL_CORE_UNREACHABLE: Reason = Reason {
    name: "MailCoreUnreachable",
    reported_in: &[(&[MAILBOX], ReconcileError)],
    meaning: "mail-core's database could not be reached. It is retried.",
    action: "Wait; if it persists, operators check mail-core's database.",
};

pub const MAIL_CORE_REJECTED: Reason = Reason {
    name: "MailCoreRejected",
    reported_in: &[(&[MAILBOX], ReconcileError)],
    meaning: "mail-core's database refused a statement.",
    action: "Operators: read the log, and check mail-core's schema.",
};

pub const MAIL_CORE_BAD_CONFIG: Reason = Reason {
    name: "MailCoreBadConfig",
    reported_in: &[(&[MAILBOX], ReconcileError)],
    meaning: "The operator's configuration for mail-core's database is invalid.",
    action: "Operators: correct the mail-core settings of the operator configuration.",
};

pub const SIGNING: Reason = Reason {
    name: "Signing",
    reported_in: &[(&[MAILBOX], Conditions(&[types::DKIM_SIGNING]))],
    meaning: "mail-core signs mail from each mail domain with the key of the selector its DnsZone names.",
    action: "Nothing.",
};

pub const DKIM_NOT_REQUESTED: Reason = Reason {
    name: "DkimNotRequested",
    reported_in: &[(&[MAILBOX], Conditions(&[types::DKIM_SIGNING]))],
    meaning: "No DnsZone of this namespace for a mail domain asks for a key the operator makes (`mail.dkim` \
              without `publicKey`); mail from it is not signed.",
    action: "To sign, set `spec.mail.dkim.selector` (without `publicKey`) in the DnsZone of the mail domain.",
};

// ---------------------------------------------------------------------------------------------
// Certificate

pub const UNKNOWN_ISSUER: Reason = Reason {
    name: "UnknownIssuer",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "`issuer` names no ACME issuer of the operator configuration; the message lists the configured ones.",
    action: "Use one of the configured issuers.",
};

pub const ISSUER_SECRET_UNUSABLE: Reason = Reason {
    name: "IssuerSecretUnusable",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "The Secret holding the issuer's ACME account could not be read or written.",
    action: "Ask the operators.",
};

pub const SECRET_OWNED_ELSEWHERE: Reason = Reason {
    name: "SecretOwnedElsewhere",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "A Secret named `secretName` exists and is not this Certificate's; it is left untouched.",
    action: "Use another `secretName`, or delete that Secret.",
};

pub const SECRET_NOT_OWNED: Reason = Reason {
    name: "SecretNotOwned",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING])), (&[MAILBOX], Conditions(&[types::DKIM_SIGNING]))],
    meaning: "The Secret `<name>-next-key` (a Certificate's) or `dkim-<domain>` (a mail domain's DKIM keys) exists \
              without the operator's mark; it is never replaced, and no key in it is used.",
    action: "Delete it, or label it `mpanel.migrahosting.com/managed-by=mpanel-operator` to hand it over.",
};

pub const KEY_ERROR: Reason = Reason {
    name: "KeyError",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING])), (&[MAILBOX], ReconcileError)],
    meaning: "A private key or a certificate request could not be made, or the issued chain could not be read; \
              for a Mailbox, a DKIM key could not be made, or the one in the Secret `dkim-<domain>` is not an RSA \
              key in PKCS#8 PEM.",
    action: "Check `privateKey` (a Certificate's) or the DKIM key Secret (delete the unreadable selector's key: a \
             new one is made); if they are valid, ask the operators.",
};

pub const UP_TO_DATE: Reason = Reason {
    name: "UpToDate",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "The Secret holds a valid certificate for the spec; nothing is ordered before the renewal time.",
    action: "Nothing.",
};

pub const ISSUED: Reason = Reason {
    name: "Issued",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "A certificate was issued and stored in the Secret (on Ready: the Secret holds a valid certificate).",
    action: "Nothing.",
};

pub const NOT_ISSUED: Reason = Reason {
    name: "NotIssued",
    reported_in: &[(&[CERTIFICATE], ON_READY)],
    meaning: "The Secret holds no usable certificate yet; the message says why one is needed, Issuing shows the \
              progress.",
    action: "Wait; if it stays, see the Issuing condition.",
};

pub const OBSERVE_ONLY: Reason = Reason {
    name: "ObserveOnly",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::DELIVERED]))],
    meaning: "A certificate is needed, or one is to be delivered to a CloudPod, but the Certificate is \
              `ObserveOnly`, so nothing is ordered or written into a guest.",
    action: "Set the reconcile mode to `Reconcile` to have it ordered and delivered.",
};

pub const NO_ZONE_FOR_NAME: Reason = Reason {
    name: "NoZoneForName",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "No DnsZone of this namespace serves one of `dnsNames`, so no challenge record can be placed; nothing \
              is ordered.",
    action: "Create a DnsZone for the name in this namespace, and delegate the name to its nameservers.",
};

pub const ORDER_BUDGET_EXHAUSTED: Reason = Reason {
    name: "OrderBudgetExhausted",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "The orders allowed for the registered domain in 7 days are spent (or this namespace's share, when \
              others hold names under it); the message says when the next is possible.",
    action: "Wait until then; avoid changing `dnsNames` or the key more often than needed.",
};

pub const ORDER_PLACED: Reason = Reason {
    name: "OrderPlaced",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "An order was placed with the CA.",
    action: "Wait.",
};

pub const VALIDATING: Reason = Reason {
    name: "Validating",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "The DNS-01 challenge records are being published, or the CA is validating them.",
    action: "Wait.",
};

pub const FINALIZING: Reason = Reason {
    name: "Finalizing",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "The order was finalised with a certificate request; the CA is issuing.",
    action: "Wait.",
};

pub const KEY_LOST: Reason = Reason {
    name: "KeyLost",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "The private key of a finalised order was lost; the order is dropped and a new one placed.",
    action: "Nothing; do not delete the `<name>-next-key` Secret while an order is in flight.",
};

pub const KEY_MISMATCH: Reason = Reason {
    name: "KeyMismatch",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "The CA's certificate is not for the order's private key; a new order is placed.",
    action: "Nothing; if it repeats, ask the operators.",
};

pub const ORDER_FAILED: Reason = Reason {
    name: "OrderFailed",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING, types::READY]))],
    meaning: "The CA found the order invalid, usually a failed DNS-01 challenge; the message has its words. A new \
              order follows after a backoff.",
    action: "Check that each name is in a DnsZone of this namespace and that the registered domain is delegated \
             to the operator's nameservers.",
};

/// The conditions an error of the CA is reported in.
const ACME_FAILURE: ReportedIn = Conditions(&[types::ISSUING, types::READY]);

pub const ACME_RATE_LIMITED: Reason = Reason {
    name: "AcmeRateLimited",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The CA refused the order under one of its rate limits; the message has its words.",
    action: "Wait; it is retried after a backoff.",
};

pub const ACME_ORDER_GONE: Reason = Reason {
    name: "AcmeOrderGone",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The CA no longer knows the order in flight (it expired); a new one is placed.",
    action: "Nothing.",
};

pub const ACME_REJECTED: Reason = Reason {
    name: "AcmeRejected",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The CA refused a request; the message has its words (for example a name it will not certify).",
    action: "Read the message: correct `dnsNames` if it names one; otherwise ask the operators.",
};

pub const ACME_UNREACHABLE: Reason = Reason {
    name: "AcmeUnreachable",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The CA could not be reached. It is retried.",
    action: "Wait; if it persists, operators check the network to the CA.",
};

pub const ACME_TIMEOUT: Reason = Reason {
    name: "AcmeTimeout",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The CA did not answer in time. It is retried.",
    action: "Wait.",
};

pub const ACME_BAD_RESPONSE: Reason = Reason {
    name: "AcmeBadResponse",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The CA sent an answer the operator could not read.",
    action: "Ask the operators.",
};

pub const ACME_ACCOUNT_INVALID: Reason = Reason {
    name: "AcmeAccountInvalid",
    reported_in: &[(&[CERTIFICATE], ACME_FAILURE)],
    meaning: "The ACME account credentials the issuer keeps are unusable.",
    action: "Ask the operators to check the issuer's account Secret.",
};

pub const INVALID_DNS_NAME: Reason = Reason {
    name: "InvalidDnsName",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "A challenge record's name is not a DNS name the operator can ask about.",
    action: "Check `dnsNames`.",
};

pub const DNS_SERVER_UNREACHABLE: Reason = Reason {
    name: "DnsServerUnreachable",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "The authoritative DNS server did not answer whether it serves the challenge record. It is retried.",
    action: "Wait; if it persists, operators check PowerDNS's DNS listener.",
};

pub const DNS_QUERY_FAILED: Reason = Reason {
    name: "DnsQueryFailed",
    reported_in: &[(&[CERTIFICATE], Conditions(&[types::ISSUING]))],
    meaning: "The authoritative DNS server answered the challenge record's query with an error.",
    action: "Check that the DnsZone serving the name is Ready.",
};

const ON_DELIVERED: ReportedIn = Conditions(&[types::DELIVERED]);

pub const DELIVERED: Reason = Reason {
    name: "Delivered",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "The key and chain of the certificate in the Secret were written into every CloudPod of `deliverTo` \
              and each reload command exited 0.",
    action: "Nothing.",
};

pub const CLOUD_POD_NOT_FOUND: Reason = Reason {
    name: "CloudPodNotFound",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "No CloudPod of that name is in the Certificate's namespace (CloudPods of other namespaces are never \
              used); nothing is written. It is tried again when the CloudPod appears, and on a backoff.",
    action: "Check the name in `deliverTo`, or create the CloudPod.",
};

pub const CLOUD_POD_NOT_READY: Reason = Reason {
    name: "CloudPodNotReady",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "The CloudPod has no guest yet, or it is not Ready and running; nothing is written until it is.",
    action: "Wait for the CloudPod, or start it (`powerState: Running`).",
};

pub const GUEST_AGENT_UNSUPPORTED: Reason = Reason {
    name: "GuestAgentUnsupported",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "The CloudPod is a container (LXC), which has no QEMU guest agent; nothing is written.",
    action: "Deliver to QEMU CloudPods only, or mount the Secret's content some other way.",
};

pub const GUEST_AGENT_NOT_RUNNING: Reason = Reason {
    name: "GuestAgentNotRunning",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "Proxmox could not reach the QEMU guest agent in the guest (not installed, not running, or not \
              answering); the message is Proxmox's own. It is retried on a backoff.",
    action: "Install and start `qemu-guest-agent` in the guest.",
};

pub const GUEST_COMMAND_FAILED: Reason = Reason {
    name: "GuestCommandFailed",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "A command run in the guest exited non-zero: preparing the files' directories, or `reloadCommand`; \
              the message has its exit code and its standard error. It is retried on a backoff.",
    action: "Fix the command or the service in the guest (the files may already be written).",
};

pub const DELIVERY_FAILED: Reason = Reason {
    name: "DeliveryFailed",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "Proxmox refused or failed a guest agent request, or could not be reached; the message is its own. \
              It is retried on a backoff.",
    action: "If the message names a path, change `keyPath` or `chainPath`; otherwise ask the operators.",
};

pub const DELIVERY_UNAVAILABLE: Reason = Reason {
    name: "DeliveryUnavailable",
    reported_in: &[(&[CERTIFICATE], ON_DELIVERED)],
    meaning: "The operator's configuration has no `proxmox` block, so it cannot reach any guest.",
    action: "Ask the operators to configure Proxmox, or remove `deliverTo`.",
};

// ---------------------------------------------------------------------------------------------
// Subscription

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
    reported_in: &[(&[SUBSCRIPTION], ReconcileError)],
    meaning: "The deletion waits for child objects to be gone.",
    action: "Wait; if it stays, see why the children are not deleted (their own Ready reasons).",
};

// ---------------------------------------------------------------------------------------------
// BackupPolicy, CloudPodRestore

pub const BACKUPS_SCHEDULED: Reason = Reason {
    name: "BackupsScheduled",
    reported_in: &[(&[BACKUP_POLICY], ON_READY)],
    meaning: "Every CloudPod of the policy is backed up on schedule and its latest backup succeeded; \
              `status.cloudPods` lists each one's archives, task in flight and next backup.",
    action: "Nothing.",
};

pub const INVALID_SCHEDULE: Reason = Reason {
    name: "InvalidSchedule",
    reported_in: &[(&[BACKUP_POLICY], ON_READY)],
    meaning: "`schedule.every` is not an interval, so nothing is backed up.",
    action: "Set `schedule.every` to a number and a unit, e.g. `24h`.",
};

pub const CLOUD_POD_WITHOUT_GUEST: Reason = Reason {
    name: "CloudPodWithoutGuest",
    reported_in: &[(&[BACKUP_POLICY, CLOUD_POD_RESTORE], ON_READY)],
    meaning: "A CloudPod named here does not exist in the namespace or has no guest yet (no VMID or node).",
    action: "Wait for the CloudPod to be provisioned, or correct the name.",
};

pub const BACKUP_FAILED: Reason = Reason {
    name: "BackupFailed",
    reported_in: &[(&[BACKUP_POLICY], ON_READY)],
    meaning: "The latest vzdump of a CloudPod failed; the message is Proxmox's own. The next one runs on schedule.",
    action: "Read the message (storage full, guest locked); if it repeats, ask the operators to look at the \
             vzdump task in Proxmox.",
};

pub const RESTORING: Reason = Reason {
    name: "Restoring",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The CloudPod's reconciles are paused and its guest is being stopped or restored from the archive.",
    action: "Wait.",
};

pub const RESTORED: Reason = Reason {
    name: "Restored",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The guest was restored from the archive and handed back to the CloudPod, which starts it again \
              and puts its spec back on it. It is not restored again.",
    action: "Nothing; to restore again, create another CloudPodRestore.",
};

pub const NOT_RESTORED: Reason = Reason {
    name: "NotRestored",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The restore is `ObserveOnly`: the archive was checked, nothing is stopped or restored.",
    action: "Set the reconcile mode to `Reconcile` to restore.",
};

pub const RESTORE_FAILED: Reason = Reason {
    name: "RestoreFailed",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The stop or restore task failed (Proxmox's own words); the CloudPod got its reconciles back. The \
              restore is not tried again.",
    action: "Read the message; create another CloudPodRestore once the cause is fixed.",
};

pub const ARCHIVE_NOT_FOUND: Reason = Reason {
    name: "ArchiveNotFound",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The archive is not in its storage (pruned, or never made). Nothing was changed.",
    action: "Pick an archive the BackupPolicy's status lists and create another CloudPodRestore.",
};

pub const ARCHIVE_NOT_OWNED: Reason = Reason {
    name: "ArchiveNotOwned",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The archive is not one a BackupPolicy made of this CloudPod (another VMID or kind, or without its \
              marker), so it is never restored onto it. Nothing was changed.",
    action: "Pick an archive the BackupPolicy's status lists for this CloudPod.",
};

/// Every reason, in the order of this file.
pub const ALL: &[Reason] = &[
    // BackupPolicy, CloudPodRestore
    BACKUPS_SCHEDULED,
    INVALID_SCHEDULE,
    CLOUD_POD_WITHOUT_GUEST,
    BACKUP_FAILED,
    RESTORING,
    RESTORED,
    NOT_RESTORED,
    RESTORE_FAILED,
    ARCHIVE_NOT_FOUND,
    ARCHIVE_NOT_OWNED,
    RECONCILE_TIMED_OUT,
    RECONCILE_PANICKED,
    FINALIZER_ERROR,
    KUBERNETES_API_ERROR,
    INVALID_RECONCILE_MODE,
    ORPHANED,
    CONFLICT,
    OWNED,
    OUT_OF_SYNC,
    SYNCED,
    DRIFT_REPAIRED,
    NOT_OWNER,
    CREATED,
    NAME_HELD_ELSEWHERE,
    ZONE_OWNED_ELSEWHERE,
    SUSPENDED,
    ACTIVE,
    PROVISIONING,
    // CloudPod
    VMID_RESERVED,
    CLONING,
    RECREATING,
    CLONED,
    NOT_CREATED,
    NO_FREE_VMID,
    NO_NODE,
    TEMPLATE_NOT_FOUND,
    GUEST_OWNED_ELSEWHERE,
    UNKNOWN_PLAN,
    NO_ADDRESS,
    NETWORK_NOT_ALLOWED,
    TEMPLATE_NOT_ALLOWED,
    ADDRESS_IN_POOL,
    ADDRESS_IN_USE,
    RESIZING,
    DISK_LARGER_THAN_SPEC,
    CONFIGURED,
    STARTING,
    REBOOTING,
    USER_DATA_SECRET_MISSING,
    USER_DATA_NOT_WRITTEN,
    STOPPING,
    RUNNING,
    STOPPED,
    PROXMOX_TASK_FAILED,
    DESTROYING,
    PROXMOX_UNAUTHORIZED,
    PROXMOX_ERROR,
    PROXMOX_REJECTED,
    PROXMOX_UNREACHABLE,
    PROXMOX_BAD_RESPONSE,
    // Domain
    CLAIMED_BY_ANOTHER_DOMAIN,
    NOT_IN_ACCOUNT,
    REGISTRATION_NOT_ADOPTED,
    REGISTERED,
    TRANSFERRED,
    IN_ACCOUNT,
    UNAVAILABLE,
    ORDER_SENT,
    TRANSFER_REQUESTED,
    AUTH_CODE_SECRET_MISSING,
    TRANSFER_LOST,
    TRANSFER_AUTH_CODE_REJECTED,
    TRANSFER_PENDING,
    AUTH_CODE_UPDATED,
    NO_PAID_UNTIL,
    COVERED,
    RENEWAL_DUE,
    RENEWED_ONCE,
    PAID_UNTIL_TOO_FAR,
    BAD_DATE,
    RENEWED,
    NAMESERVERS_SYNCED,
    SETTINGS_SYNCED,
    ZONE_READY,
    EXPIRED,
    SERVED,
    WAITING,
    AUTO_RENEW_OFF,
    NAMESILO_UNAUTHORIZED,
    NAMESILO_MISSING_PARAMETERS,
    NAMESILO_REGISTRY_UNAVAILABLE,
    NAMESILO_INSUFFICIENT_FUNDS,
    NAMESILO_NOT_IN_ACCOUNT,
    NAMESILO_UNAVAILABLE,
    NAMESILO_INVALID_YEARS,
    NAMESILO_TRANSFER_REFUSED,
    NAMESILO_NO_TRANSFER,
    NAMESILO_ERROR,
    NAMESILO_UNREACHABLE,
    NAMESILO_BAD_RESPONSE,
    // DnsZone
    INVALID_RECORD,
    PUBLIC_SUFFIX,
    ZONE_MISSING,
    READY,
    WAITING_FOR_CLOUD_POD,
    WAITING_FOR_DKIM_KEY,
    POWER_DNS_CONFLICT,
    POWER_DNS_SERVER_ERROR,
    POWER_DNS_REJECTED,
    POWER_DNS_UNREACHABLE,
    POWER_DNS_BAD_RESPONSE,
    // Mailbox
    MAIL_DOMAIN_HELD_ELSEWHERE,
    DOMAIN_ON_MAIL_CORE,
    ROW_OWNED_ELSEWHERE,
    PASSWORD_SECRET_MISSING,
    PASSWORD_UNUSABLE,
    PASSWORD_HASH_FAILED,
    MAILDIR_NOT_REMOVED,
    MAIL_CORE_UNREACHABLE,
    MAIL_CORE_REJECTED,
    MAIL_CORE_BAD_CONFIG,
    SIGNING,
    DKIM_NOT_REQUESTED,
    // Certificate
    UNKNOWN_ISSUER,
    ISSUER_SECRET_UNUSABLE,
    SECRET_OWNED_ELSEWHERE,
    SECRET_NOT_OWNED,
    KEY_ERROR,
    UP_TO_DATE,
    ISSUED,
    NOT_ISSUED,
    OBSERVE_ONLY,
    DELIVERED,
    CLOUD_POD_NOT_FOUND,
    CLOUD_POD_NOT_READY,
    GUEST_AGENT_UNSUPPORTED,
    GUEST_AGENT_NOT_RUNNING,
    GUEST_COMMAND_FAILED,
    DELIVERY_FAILED,
    DELIVERY_UNAVAILABLE,
    NO_ZONE_FOR_NAME,
    ORDER_BUDGET_EXHAUSTED,
    ORDER_PLACED,
    VALIDATING,
    FINALIZING,
    KEY_LOST,
    KEY_MISMATCH,
    ORDER_FAILED,
    ACME_RATE_LIMITED,
    ACME_ORDER_GONE,
    ACME_REJECTED,
    ACME_UNREACHABLE,
    ACME_TIMEOUT,
    ACME_BAD_RESPONSE,
    ACME_ACCOUNT_INVALID,
    INVALID_DNS_NAME,
    DNS_SERVER_UNREACHABLE,
    DNS_QUERY_FAILED,
    // Subscription
    NOT_SUSPENDED,
    OVERDUE,
    ABUSE,
    MANUAL,
    DISPUTE,
    ALL_READY,
    PENDING,
    RECONCILING,
    NOT_READY,
    CHILD_FAILED,
    PROVISIONING_TIMEOUT,
    TERMINATING,
    CHILD_DELETED,
    CHILDREN_REMAINING,
];

/// Ready reasons that no retry changes: only a spec change, or a person, can. While Ready says one
/// of them the object is also `Stalled`, and a Subscription with such a child fails.
pub const STALLING: &[Reason] = &[
    CONFLICT,
    UNAVAILABLE,
    TEMPLATE_NOT_FOUND,
    TRANSFER_LOST,
    INVALID_RECORD,
    // what another tenant holds, or the configuration does not allow, stays so
    NAME_HELD_ELSEWHERE,
    PUBLIC_SUFFIX,
    REGISTRATION_NOT_ADOPTED,
    MAIL_DOMAIN_HELD_ELSEWHERE,
    ADDRESS_IN_USE,
    ADDRESS_IN_POOL,
    NETWORK_NOT_ALLOWED,
    TEMPLATE_NOT_ALLOWED,
    // a Subscription's own
    CHILD_FAILED,
    PROVISIONING_TIMEOUT,
];

/// Whether a Ready reason is one that no retry changes.
pub fn stalls(reason: &str) -> bool {
    STALLING.iter().any(|r| r.name == reason)
}

/// What the reference says of a kind beyond its conditions and reasons.
const KIND_NOTES: &[(&str, &str)] = &[(
    SUBSCRIPTION,
    "Each change of `status.phase` is also an Event whose reason is the new phase (`Pending`, `Provisioning`, \
     `Active`, `Failed`, `Suspended`, `Terminating`), a Warning for `Failed`. `status.resources` carries each \
     child's own Ready reason.",
)];

/// Where the reference is committed: `docs/reasons.md` of the repository.
pub fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/reasons.md")
}

/// The reference as committed: per kind, its condition types, then its reasons by name, each with
/// where it is reported, what it means and what to do.
pub fn reference() -> String {
    let mut out = String::from(
        "<!-- Generated by `cargo run -p mpanel-crds --bin reasongen` from crds/src/reasons.rs. Do not edit. -->\n\n\
         # Conditions and reasons\n\n\
         What each condition type and each reason in the status of an mPanel object means, and what to do \
         about it.\n\n\
         Every kind has `status.conditions`: a top-level `Ready` plus step conditions. A condition's `reason` \
         is one stable word; its `message` says the rest, with an external system's own words where it \
         answered. Most failures are also reported in a Warning Event (`kubectl events --for <kind>/<name>`) \
         when they first appear. Under *condition*, *Event* marks a reason only Events carry, and *reconcile \
         error* one that is only in the operator's log and the `mpanel_reconcile_errors_total{reason}` metric \
         (a failed reconcile, retried with backoff; the status keeps what it said).\n",
    );
    for kind in KINDS {
        let _ = write!(out, "\n## {kind}\n\n");
        for (_, note) in KIND_NOTES.iter().filter(|(k, _)| k == kind) {
            let _ = write!(out, "{note}\n\n");
        }
        out.push_str("| condition | meaning |\n| --- | --- |\n");
        for condition in condition_types::ALL.iter().filter(|c| c.kinds.contains(kind)) {
            let _ = writeln!(out, "| {} | {} |", condition.name, condition.meaning);
        }
        out.push_str("\n| reason | condition | meaning | what to do |\n| --- | --- | --- | --- |\n");
        let mut reasons: Vec<(&Reason, ReportedIn)> =
            ALL.iter().filter_map(|r| Some((r, r.reported_by(kind)?))).collect();
        reasons.sort_by_key(|(r, _)| r.name);
        for (reason, reported_in) in reasons {
            let place = match reported_in {
                Conditions(conditions) => conditions.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
                Event => "*Event*".to_owned(),
                ReconcileError => "*reconcile error*".to_owned(),
            };
            let stalling = if stalls(reason.name) { " (stalls)" } else { "" };
            let _ = writeln!(out, "| `{}`{stalling} | {place} | {} | {} |", reason.name, reason.meaning, reason.action);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_upper_camel_case(name: &str) -> bool {
        name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric())
    }

    #[test]
    fn every_reason_is_named_once_in_upper_camel_case_and_documented() {
        let mut names = std::collections::BTreeSet::new();
        for reason in ALL {
            assert!(is_upper_camel_case(reason.name), "{} is not UpperCamelCase", reason.name);
            assert!(names.insert(reason.name), "{} is declared twice", reason.name);
            assert!(!reason.meaning.trim().is_empty(), "{} has no meaning", reason.name);
            assert!(!reason.action.trim().is_empty(), "{} says nothing to do", reason.name);
            assert!(!reason.reported_in.is_empty(), "{} is reported nowhere", reason.name);
            // a pipe would end the table cell in the reference
            assert!(!reason.meaning.contains('|') && !reason.action.contains('|'), "{}", reason.name);
        }
    }

    #[test]
    fn every_condition_type_is_named_once_and_documented() {
        let mut names = std::collections::BTreeSet::new();
        for condition in condition_types::ALL {
            assert!(is_upper_camel_case(condition.name), "{}", condition.name);
            assert!(names.insert(condition.name), "{} is declared twice", condition.name);
            assert!(!condition.meaning.trim().is_empty() && !condition.meaning.contains('|'), "{}", condition.name);
            assert!(!condition.kinds.is_empty(), "{} belongs to no kind", condition.name);
        }
    }

    #[test]
    fn reasons_are_reported_in_conditions_of_their_kinds_once_per_kind() {
        for reason in ALL {
            let mut seen = std::collections::BTreeSet::new();
            for (kinds, reported_in) in reason.reported_in {
                for kind in *kinds {
                    assert!(KINDS.contains(kind), "{}: unknown kind {kind}", reason.name);
                    assert!(seen.insert(*kind), "{}: {kind} is listed twice", reason.name);
                    if let Conditions(types) = reported_in {
                        assert!(!types.is_empty(), "{}: no condition for {kind}", reason.name);
                        for t in *types {
                            assert!(t.kinds.contains(kind), "{}: {kind} has no condition {}", reason.name, t.name);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_declared_reason_and_condition_type_is_listed() {
        let source = include_str!("reasons.rs");
        let declared = |type_name: &str| {
            source.lines().filter(|l| l.trim_start().starts_with("pub const ") && l.contains(type_name)).count()
        };
        assert_eq!(declared(": Reason = "), ALL.len(), "a Reason constant is missing from ALL");
        assert_eq!(declared(": ConditionType = "), condition_types::ALL.len(), "a condition type is missing from ALL");
    }

    #[test]
    fn the_kinds_are_those_of_the_crds() {
        let crd_kinds: Vec<String> = crate::crds().iter().map(|c| c.spec.names.kind.clone()).collect();
        assert_eq!(crd_kinds, KINDS);
    }
}
