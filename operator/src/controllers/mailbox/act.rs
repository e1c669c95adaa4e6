//! Writes what differs to mail-core: the domain rows, the mailbox row (with a new hash when the
//! password changed), the aliases, and the DKIM keys of the mail domains.
//!
//! Each step returns `None` when a row it was to create appeared since it was read: the reconcile
//! then looks again shortly instead of writing over it.

use kube::ResourceExt;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::mailbox::Mailbox;
use mpanel_crds::reasons;

use super::decide::{Plan, secret_version};
use super::observe::dns_note;
use super::{Context, DKIM_SIGNING, DOMAIN_READY, Error, KIND, Step, dkim, hash_off_thread, split};
use crate::controllers::publish;
use crate::providers::mailcore::{AliasRow, MailApi, MailboxChange, MailboxRow};

/// Writes every row that differs; `Some(true)` when a password hash was written. `password` is the
/// Secret's (text, resourceVersion).
pub(super) async fn converge<M: MailApi>(
    step: &mut Step,
    mailbox: &Mailbox,
    mode: ReconcileMode,
    ctx: &Context<M>,
    plan: &Plan<'_>,
    password: Option<&(String, String)>,
) -> Result<Option<bool>, Error> {
    let at = plan.at;
    for (missing, _) in plan.rows.domains.iter().filter(|(_, r)| r.is_none()) {
        if !ctx.mail.add_domain(missing, &at.domain_owner).await? {
            return Ok(None);
        }
    }
    step.set(Observation::new(
        DOMAIN_READY,
        true,
        reasons::DOMAIN_ON_MAIL_CORE.name,
        format!("domain {} is on mail-core; {}", at.domain, dns_note(mailbox, &at.domain, ctx)),
    ));
    let password_written = match (&plan.rows.mailbox, password) {
        (None, Some((p, version))) => match create_mailbox(mailbox, ctx, plan, (p, version)).await? {
            Some(()) => true,
            None => return Ok(None),
        },
        (Some(_), _) => match change_mailbox(step, mailbox, ctx, plan, password).await? {
            Some(written) => written,
            None => return Ok(None),
        },
        // without a password no row is created: the reconcile stopped before
        (None, None) => false,
    };
    if write_aliases(ctx, plan).await?.is_none() {
        return Ok(None);
    }
    // DKIM keys are made and written only when the object may write (not ObserveOnly)
    if mode == ReconcileMode::Reconcile && sync_dkim(step, mailbox, ctx, plan).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(password_written))
}

async fn create_mailbox<M: MailApi>(
    mailbox: &Mailbox,
    ctx: &Context<M>,
    plan: &Plan<'_>,
    (password, version): (&str, &str),
) -> Result<Option<()>, Error> {
    let new = MailboxRow { password: hash_off_thread(password).await?, ..plan.wanted.clone() };
    if !ctx.mail.add_mailbox(&new).await? {
        return Ok(None);
    }
    remember_written(mailbox, ctx, version, &new.password);
    publish(
        &ctx.recorder,
        mailbox,
        false,
        reasons::CREATED.name,
        "AddMailbox",
        format!("mailbox {} created on mail-core", plan.at.address),
    )
    .await;
    Ok(Some(()))
}

/// Changes the fields of the existing mailbox row that differ; `Some(true)` when that wrote a new
/// password hash.
async fn change_mailbox<M: MailApi>(
    step: &Step,
    mailbox: &Mailbox,
    ctx: &Context<M>,
    plan: &Plan<'_>,
    password: Option<&(String, String)>,
) -> Result<Option<bool>, Error> {
    let address = &plan.at.address;
    let change = MailboxChange {
        password: match (password, plan.password_stale) {
            (Some((p, _)), true) => Some(hash_off_thread(p).await?),
            _ => None,
        },
        ..plan.change.clone()
    };
    if change.is_empty() {
        return Ok(Some(false));
    }
    if !ctx.mail.change_mailbox(address, &plan.at.owner, &change).await? {
        return Ok(None);
    }
    if let (Some(stored), Some((_, version))) = (&change.password, password) {
        remember_written(mailbox, ctx, version, stored);
    }
    // the same spec and Secret as last time, yet the row differed: changed out of band
    let same_inputs = step.status.observed_generation == step.generation
        && step.status.password_secret_version == password.map(|(_, version)| version.clone())
        && conditions::find(&step.status.conditions, READY).is_some_and(|c| c.status == "True");
    if same_inputs {
        ctx.metrics.drift_repaired(KIND);
        publish(
            &ctx.recorder,
            mailbox,
            true,
            reasons::DRIFT_REPAIRED.name,
            "ChangeMailbox",
            format!("mailbox {address} was changed outside the operator and restored"),
        )
        .await;
    }
    Ok(Some(change.password.is_some()))
}

/// Remembers that the hash just written matches the password of the Secret at `version`, so the
/// next resync needs no bcrypt verify to know it.
fn remember_written<M>(mailbox: &Mailbox, ctx: &Context<M>, version: &str, stored: &str) {
    let uid = mailbox.uid().unwrap_or_default();
    ctx.verified.wrote(&uid, &secret_version(mailbox, version), stored);
}

/// Puts the aliases that differ and deletes this object's aliases the spec no longer names.
async fn write_aliases<M: MailApi>(ctx: &Context<M>, plan: &Plan<'_>) -> Result<Option<()>, Error> {
    let at = plan.at;
    for a in &plan.alias_changes {
        let (_, alias_domain) = split(a);
        let alias = AliasRow {
            address: (*a).clone(),
            goto: at.address.clone(),
            domain: alias_domain.clone(),
            active: true,
            owner: Some(at.owner.clone()),
        };
        if !ctx.mail.put_alias(&alias).await? {
            return Ok(None);
        }
    }
    for stale in &plan.stale_aliases {
        ctx.mail.delete_alias(&stale.address, &at.owner).await?;
    }
    Ok(Some(()))
}

/// Makes and writes the DKIM key of each mail domain and sets DkimSigning.
async fn sync_dkim<M: MailApi>(
    step: &mut Step,
    mailbox: &Mailbox,
    ctx: &Context<M>,
    plan: &Plan<'_>,
) -> Result<Option<()>, Error> {
    let namespace = mailbox.namespace().unwrap_or_default();
    let mut signing = Vec::with_capacity(plan.rows.domains.len());
    for (mail_domain, _) in &plan.rows.domains {
        let outcome =
            dkim::sync_domain(&ctx.client, &ctx.mail, &ctx.dnszones, &namespace, mail_domain, &plan.at.domain_owner)
                .await?;
        signing.push((mail_domain.clone(), outcome));
    }
    let Some((signs, reason, message)) = dkim::condition(&signing) else {
        // another Mailbox of the domain wrote its key Secret first: use that key
        return Ok(None);
    };
    step.set(Observation::new(DKIM_SIGNING, signs, reason, message));
    Ok(Some(()))
}
