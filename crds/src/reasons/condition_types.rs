//! The condition types, per kind: the `type` of the entries of `status.conditions`.

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
