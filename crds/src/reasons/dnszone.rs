//! The reasons of DnsZones: records served by PowerDNS and DNSSEC.

use super::*;

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
