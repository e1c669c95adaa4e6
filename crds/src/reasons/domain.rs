//! The reasons of Domains: claims, registration, transfers, renewal and settings at the registrar.

use super::*;

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
