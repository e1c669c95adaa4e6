//! What a reconcile decides from what it observed: the conditions that stop it before anything is
//! written, and which rows differ from what the Mailbox asks for.

use kube::ResourceExt;
use mpanel_crds::conditions::Observation;
use mpanel_crds::mailbox::{Mailbox, MailboxPhase};
use mpanel_crds::reasons;

use super::observe::{Addresses, Rows};
use super::{CONFLICT, Context, DOMAIN_READY, MIB, Step, password};
use crate::controllers::publish;
use crate::providers::mailcore::{AliasRow, MailboxChange, MailboxRow};

/// Sets the conditions of a Mailbox with mail domains its namespace may not use.
pub(super) async fn refuse_domains<M>(step: &mut Step, mailbox: &Mailbox, ctx: &Context<M>, refused: &[String]) {
    let message = format!("{}; nothing was written to mail-core", refused.join("; "));
    step.set(Observation::new(DOMAIN_READY, false, reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, message.clone()));
    if step.set(Observation::new(CONFLICT, true, reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, message.clone())) {
        publish(&ctx.recorder, mailbox, true, reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, "Observe", message.clone())
            .await;
    }
    step.not_ready(Some(MailboxPhase::Failed), reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, message);
}

/// Sets the conditions of a Mailbox whose rows exist as another object's (see
/// [`conflicts`](super::observe::conflicts)).
pub(super) async fn refuse_conflicts<M>(step: &mut Step, mailbox: &Mailbox, ctx: &Context<M>, conflicts: &[String]) {
    let message = format!("{}; nothing was changed", conflicts.join("; "));
    if step.set(Observation::new(CONFLICT, true, reasons::ROW_OWNED_ELSEWHERE.name, message.clone())) {
        publish(&ctx.recorder, mailbox, true, reasons::CONFLICT.name, "Observe", message.clone()).await;
    }
    step.not_ready(Some(MailboxPhase::Failed), reasons::CONFLICT.name, message);
}

/// How mail-core's rows differ from what the Mailbox asks for.
pub(super) struct Plan<'a> {
    pub at: &'a Addresses,
    pub rows: &'a Rows,
    /// The mailbox row as the spec wants it (without a password hash).
    pub wanted: MailboxRow,
    /// The fields of an existing mailbox row to change, the password aside.
    pub change: MailboxChange,
    /// Whether the stored hash does not match the Secret's password.
    pub password_stale: bool,
    /// The wanted aliases not on mail-core as they should be.
    pub alias_changes: Vec<&'a String>,
    /// This object's alias rows the spec no longer names.
    pub stale_aliases: Vec<&'a AliasRow>,
    /// Whether anything is to be written.
    pub differs: bool,
}

pub(super) async fn plan<'a>(
    mailbox: &Mailbox,
    at: &'a Addresses,
    rows: &'a Rows,
    password: Option<&(String, String)>,
    verified: &password::Verified,
) -> Plan<'a> {
    let (address, owner) = (&at.address, at.owner.as_str());
    let wanted = MailboxRow {
        username: address.clone(),
        password: String::new(),
        name: mailbox.spec.display_name.clone().unwrap_or_default(),
        maildir: format!("{}/{}/", at.domain, at.local),
        quota_bytes: i64::from(mailbox.spec.quota_mib) * MIB,
        local_part: at.local.clone(),
        domain: at.domain.clone(),
        active: !mailbox.spec.suspended,
        owner: Some(at.owner.clone()),
    };
    let change = match &rows.mailbox {
        Some(r) => MailboxChange {
            password: None,
            name: (r.name != wanted.name).then(|| wanted.name.clone()),
            quota_bytes: (r.quota_bytes != wanted.quota_bytes).then_some(wanted.quota_bytes),
            active: (r.active != wanted.active).then_some(wanted.active),
        },
        None => MailboxChange::default(),
    };
    // a bcrypt verify only when the Secret or the stored hash changed since the last one
    let password_stale = match (&rows.mailbox, password) {
        (Some(r), Some((p, version))) => {
            let uid = mailbox.uid().unwrap_or_default();
            !verified.matches(&uid, &secret_version(mailbox, version), p, &r.password).await
        }
        _ => false,
    };
    let alias_changes: Vec<&String> = at
        .aliases
        .iter()
        .filter(|a| !rows.aliases.iter().any(|r| &r.address == *a && &r.goto == address && r.active))
        .collect();
    let stale_aliases: Vec<&AliasRow> =
        rows.aliases.iter().filter(|r| r.owner.as_deref() == Some(owner) && !at.aliases.contains(&r.address)).collect();
    let differs = rows.mailbox.is_none()
        || rows.domains.iter().any(|(_, r)| r.is_none())
        || !change.is_empty()
        || password_stale
        || !alias_changes.is_empty()
        || !stale_aliases.is_empty();
    Plan { at, rows, wanted, change, password_stale, alias_changes, stale_aliases, differs }
}

/// The password's Secret as [`password::Verified`] names it, at `resource_version`.
pub(super) fn secret_version(mailbox: &Mailbox, resource_version: &str) -> String {
    let at = &mailbox.spec.password_secret_ref;
    password::secret_version(&at.name, &at.key, resource_version)
}
