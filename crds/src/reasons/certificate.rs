//! The reasons of Certificates: ACME orders, DNS-01 challenges, issuance, renewal and delivery.

use super::*;

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
