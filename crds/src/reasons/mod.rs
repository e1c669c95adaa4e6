//! Every condition type and every reason the operator reports, each with what it means and what a
//! user should do about it; the reasons of each kind in a module of their own. Controllers take the
//! strings from here, and `docs/reasons.md` is generated from the text here
//! (`cargo run -p mpanel-crds --bin reasongen`).
//!
//! A reason is reported in conditions of the object's status (most failures also in a Warning
//! Event when they first appear), only in an Event about the object, or only as the reason of a
//! failed reconcile: in the operator's log and the `mpanel_reconcile_errors_total` metric. The
//! strings are stable: dashboards, alerts and the Subscription controller match on them.

use std::fmt::Write as _;
use std::path::PathBuf;

use self::ReportedIn::{Conditions, Event, ReconcileError, Waiting};
use self::condition_types as types;

mod backup;
mod certificate;
mod cloudpod;
pub mod condition_types;
mod dnszone;
mod domain;
mod mailbox;
mod shared;
mod subscription;

pub use backup::*;
pub use certificate::*;
pub use cloudpod::*;
pub use dnszone::*;
pub use domain::*;
pub use mailbox::*;
pub use shared::*;
pub use subscription::*;

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
    /// Only in the operator's log, as a state the reconcile waits in: no failure, no backoff, not
    /// counted as a reconcile error; the status keeps what it said before.
    Waiting,
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

const ON_READY: ReportedIn = Conditions(&[types::READY]);

/// Every reason, in the order of the reference: the shared ones, then by kind.
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
        "<!-- Generated by `cargo run -p mpanel-crds --bin reasongen` from crds/src/reasons/. Do not edit. -->\n\n\
         # Conditions and reasons\n\n\
         What each condition type and each reason in the status of an mPanel object means, and what to do \
         about it.\n\n\
         Every kind has `status.conditions`: a top-level `Ready` plus step conditions. A condition's `reason` \
         is one stable word; its `message` says the rest, with an external system's own words where it \
         answered. Most failures are also reported in a Warning Event (`kubectl events --for <kind>/<name>`) \
         when they first appear. Under *condition*, *Event* marks a reason only Events carry, and *reconcile \
         error* one that is only in the operator's log and the `mpanel_reconcile_errors_total{reason}` metric \
         (a failed reconcile, retried with backoff; the status keeps what it said), and *waiting (log)* a \
         state the reconcile waits in, only in the operator's log: no failure, no backoff, not counted.\n",
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
                Waiting => "*waiting (log)*".to_owned(),
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
        let source = [
            include_str!("condition_types.rs"),
            include_str!("shared.rs"),
            include_str!("cloudpod.rs"),
            include_str!("domain.rs"),
            include_str!("dnszone.rs"),
            include_str!("mailbox.rs"),
            include_str!("certificate.rs"),
            include_str!("subscription.rs"),
            include_str!("backup.rs"),
        ]
        .concat();
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
