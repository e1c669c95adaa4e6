//! The reasons of Mailboxes: the mail domain, the mailbox and its aliases at mail-core, DKIM.

use super::*;

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
