//! The Mailbox controller: converges mail-core's SQL rows (domain, mailbox, aliases) to a Mailbox.
//!
//! Each reconcile observes the rows first and writes only what differs. The password comes from a
//! Secret (watched, so rotating it re-hashes) and is checked against the stored hash, so an
//! out-of-band change is repaired too. Rows carry the object's marker in `owner`; a row without it
//! is a Conflict and is never written. A mail domain belongs to one namespace (`domains`): a Mailbox
//! whose address or alias is in another namespace's domain is refused before anything is written.
//! The domain row is created with the first mailbox of a namespace and removed with the last one,
//! unless it was there before (then it is never removed).
//! DNS for the mail domain (MX, SPF, DMARC, DKIM) is the DnsZone's `mail` block; this controller
//! reports whether such a zone publishes MX, and makes the DKIM key that zone asks for and that
//! mail-core signs with (`dkim`).

pub mod dkim;
pub mod domains;
pub mod password;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::{self, DnsZone};
use mpanel_crds::mailbox::{Mailbox, MailboxPhase, MailboxStatus};
use mpanel_crds::reasons::{self, condition_types};

use super::{
    Backoff, StatusOf, finalizer_reason, follow, measured, publish, read_secret_key, reconcile_in_mode, resync_after,
    retry_later, scoped,
};
use crate::metrics::Metrics;
use crate::providers::mailcore::{AliasRow, DomainRow, MailApi, MailCoreError, MailboxChange, MailboxRow};
use crate::providers::powerdns::canonical;
use password::PasswordError;

pub const KIND: &str = "Mailbox";
const FIELD_MANAGER: &str = "mpanel-mailbox";
const DOMAIN_READY: &str = condition_types::DOMAIN_READY.name;
const PASSWORD_SYNCED: &str = condition_types::PASSWORD_SYNCED.name;
const DKIM_SIGNING: &str = condition_types::DKIM_SIGNING.name;
const CONFLICT: &str = condition_types::CONFLICT.name;
const MIB: i64 = 1024 * 1024;

pub struct Context<M> {
    pub client: Client,
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    /// The only namespace reconciled; all when `None`.
    pub namespace: Option<String>,
    pub mail: M,
    /// mail-core's maildir root as mounted here; maildirs of deleted Mailboxes are removed below it.
    pub maildir_root: Option<PathBuf>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub resync: Duration,
    pub backoff: Backoff,
    /// DnsZones, to say whether the mail domain's MX is published.
    pub dnszones: Store<DnsZone>,
    /// Mail domains made outside the operator, each granted to one namespace (`mailcore.domainGrants`).
    pub domain_grants: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    MailCore(#[from] MailCoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Dkim(#[from] dkim::KeyError),
    #[error("cannot remove the maildir {path}: {message}")]
    Maildir { path: String, message: String },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::MailCore(e) => e.reason(),
            Self::Password(e) => e.reason(),
            Self::Dkim(_) => reasons::KEY_ERROR.name,
            Self::Maildir { .. } => reasons::MAILDIR_NOT_REMOVED.name,
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
            Self::Finalizer(inner) => finalizer_reason(inner, Self::reason),
        }
    }
}

/// Runs the controller until `shutdown` resolves; `dnszone_writer` feeds `ctx.dnszones`.
pub async fn run<M: MailApi + 'static>(
    ctx: Arc<Context<M>>,
    dnszone_writer: reflector::store::Writer<DnsZone>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if !follow(dnszone_writer, scoped::<DnsZone>(&ctx.client, ctx.namespace.as_deref())).await {
        return;
    }
    let controller = Controller::new(
        scoped::<Mailbox>(&ctx.client, ctx.namespace.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .with_config(ControllerConfig::default().concurrency(16));
    let mailboxes = controller.store();
    ctx.metrics.inventory.watch(KIND, mailboxes.clone(), None, |_| None);
    let in_zone = mailboxes.clone();
    controller
        .watches_stream(super::secret_changes(&ctx.client, ctx.namespace.as_deref()), move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            mailboxes
                .state()
                .iter()
                .filter(|m| {
                    m.namespace() == ns
                        && (m.spec.password_secret_ref.name == name
                            || mail_domains(m).iter().any(|d| dnszone::dkim_secret_name(d) == name))
                })
                .map(|m| ObjectRef::from_obj(m.as_ref()))
                .collect::<Vec<_>>()
        })
        // a DnsZone asking for a DKIM key (or no longer) changes what mail-core signs
        .watches(scoped::<DnsZone>(&ctx.client, ctx.namespace.as_deref()), watcher::Config::default(), move |zone| {
            let (ns, wanted) = (zone.namespace(), canonical(&zone.spec.zone.to_ascii_lowercase()));
            in_zone
                .state()
                .iter()
                .filter(|m| m.namespace() == ns && mail_domains(m).iter().any(|d| canonical(d) == wanted))
                .map(|m| ObjectRef::from_obj(m.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "Mailbox reconcile ended with an error");
            }
        })
        .await;
}

async fn reconcile<M: MailApi>(mailbox: Arc<Mailbox>, ctx: Arc<Context<M>>) -> Result<Action, Error> {
    measured(
        KIND,
        &ctx.client,
        mailbox.as_ref(),
        &ctx.metrics,
        &ctx.backoff,
        Error::reason,
        reconcile_inner(mailbox.clone(), &ctx),
    )
    .await
}

fn error_policy<M: MailApi>(mailbox: Arc<Mailbox>, error: &Error, ctx: Arc<Context<M>>) -> Action {
    retry_later(KIND, mailbox.as_ref(), error.reason(), error, &ctx.backoff)
}

async fn reconcile_inner<M: MailApi>(mailbox: Arc<Mailbox>, ctx: &Context<M>) -> Result<Action, Error> {
    let api: Api<Mailbox> = Api::namespaced(ctx.client.clone(), &mailbox.namespace().unwrap_or_default());
    let api = &api;
    reconcile_in_mode(
        api,
        mailbox,
        |step, message| {
            step.not_ready(None, reasons::INVALID_RECONCILE_MODE.name, message);
        },
        |mailbox, mode| async move { apply(api, &mailbox, mode, ctx).await },
        |mailbox, mode| async move { cleanup(&mailbox, mode, ctx).await },
    )
    .await
}

impl StatusOf for Mailbox {
    type Status = MailboxStatus;
    type Phase = MailboxPhase;
    const FIELD_MANAGER: &'static str = FIELD_MANAGER;
    fn status(&self) -> Option<&MailboxStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &mut MailboxStatus) -> &mut Vec<mpanel_crds::conditions::Condition> {
        &mut status.conditions
    }
    fn observed_generation(status: &mut MailboxStatus) -> &mut Option<i64> {
        &mut status.observed_generation
    }
    fn phase(status: &mut MailboxStatus) -> &mut Option<MailboxPhase> {
        &mut status.phase
    }
}

type Step = super::Step<Mailbox>;

/// The marker in the `owner` column of this Mailbox's mailbox and alias rows.
fn owner(mailbox: &Mailbox) -> String {
    let (ns, name, uid) =
        (mailbox.namespace().unwrap_or_default(), mailbox.name_any(), mailbox.uid().unwrap_or_default());
    let full = format!("{ns}/{name}/{uid}");
    // the column holds 255 characters; the UID alone identifies the object
    if full.len() <= 255 { full } else { format!("{ns}/{uid}") }
}

/// The marker of a domain row: the namespace whose Mailboxes use it.
fn domain_owner(mailbox: &Mailbox) -> String {
    domains::marker(&mailbox.namespace().unwrap_or_default())
}

/// `(local part, domain)` of the address (the CRD has checked its form).
fn split(address: &str) -> (String, String) {
    let address = address.to_ascii_lowercase();
    match address.rsplit_once('@') {
        Some((local, domain)) => (local.to_owned(), domain.to_owned()),
        None => (address.clone(), String::new()),
    }
}

/// The mail domains of the address and of the aliases, each once, the address's first.
fn mail_domains(mailbox: &Mailbox) -> Vec<String> {
    let mut domains = vec![split(&mailbox.spec.address).1];
    for alias in &mailbox.spec.aliases {
        let (_, domain) = split(alias);
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    domains
}

/// What the DnsZone of the mail domain says about mail, for the DomainReady message.
fn dns_note<M>(mailbox: &Mailbox, domain: &str, ctx: &Context<M>) -> String {
    let ns = mailbox.namespace();
    let wanted = canonical(domain);
    let zone = ctx
        .dnszones
        .state()
        .into_iter()
        .find(|z| z.namespace() == ns && canonical(&z.spec.zone.to_ascii_lowercase()) == wanted);
    match zone {
        Some(z) => match z.spec.mail.as_ref().filter(|m| !m.mx.is_empty()) {
            Some(mail) => format!(
                "DnsZone {} publishes MX {}",
                z.name_any(),
                mail.mx.iter().map(|m| format!("{} {}", m.priority, m.host)).collect::<Vec<_>>().join(", ")
            ),
            None => format!("DnsZone {} has no MX in its mail settings", z.name_any()),
        },
        None => format!("no DnsZone for {domain} in this namespace: its MX is managed elsewhere"),
    }
}

async fn apply<M: MailApi>(
    api: &Api<Mailbox>,
    mailbox: &Mailbox,
    mode: ReconcileMode,
    ctx: &Context<M>,
) -> Result<Action, Error> {
    let mut step = Step::new(mailbox);
    let requeue = Action::requeue(resync_after(mailbox, ctx.resync));
    let address = mailbox.spec.address.to_ascii_lowercase();
    let (local, domain) = split(&address);
    let (owner, domain_owner) = (owner(mailbox), domain_owner(mailbox));
    let aliases: Vec<String> = mailbox.spec.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
    let password =
        read_secret_key(&ctx.client, &mailbox.namespace().unwrap_or_default(), &mailbox.spec.password_secret_ref)
            .await?;

    // observe: first whether every mail domain of the object is this namespace's to use
    let domain_rows = observe_domains(mailbox, ctx).await?;
    let refused = refused_domains(mailbox, &domain_rows, ctx);
    if !refused.is_empty() {
        let message = format!("{}; nothing was written to mail-core", refused.join("; "));
        step.set(Observation::new(DOMAIN_READY, false, reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, message.clone()));
        if step.set(Observation::new(CONFLICT, true, reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, message.clone())) {
            publish(&ctx.recorder, mailbox, true, reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, "Observe", message.clone())
                .await;
        }
        step.not_ready(Some(MailboxPhase::Failed), reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, message);
        step.write(api, mailbox).await?;
        return Ok(requeue);
    }
    let row = ctx.mail.mailbox(&address).await?;
    let alias_rows = ctx.mail.aliases(&aliases, &owner).await?;
    // another object's row: its owner marker names another object (maybe another tenant's), so
    // the message does not repeat it
    let mut conflicts = Vec::new();
    if let Some(r) = &row
        && r.owner.as_deref() != Some(owner.as_str())
    {
        conflicts.push(format!("mailbox {address} exists on mail-core and is not this object's"));
    }
    for a in alias_rows.iter().filter(|a| aliases.contains(&a.address) && a.owner.as_deref() != Some(owner.as_str())) {
        conflicts.push(format!("alias {} exists on mail-core and is not this object's", a.address));
    }
    if !conflicts.is_empty() {
        let message = format!("{}; nothing was changed", conflicts.join("; "));
        if step.set(Observation::new(CONFLICT, true, reasons::ROW_OWNED_ELSEWHERE.name, message.clone())) {
            publish(&ctx.recorder, mailbox, true, reasons::CONFLICT.name, "Observe", message.clone()).await;
        }
        step.not_ready(Some(MailboxPhase::Failed), reasons::CONFLICT.name, message);
        step.write(api, mailbox).await?;
        return Ok(requeue);
    }
    step.set(Observation::new(CONFLICT, false, reasons::OWNED.name, "the rows are this object's".to_owned()));

    let (password, secret_version) = match password {
        Ok(p) => (Some(p.0), Some(p.1)),
        Err(message) => {
            step.set(Observation::new(PASSWORD_SYNCED, false, reasons::PASSWORD_SECRET_MISSING.name, message.clone()));
            if row.is_none() {
                // a mailbox is not created without its password
                step.not_ready(Some(MailboxPhase::Pending), reasons::PASSWORD_SECRET_MISSING.name, message);
                step.write(api, mailbox).await?;
                return Ok(requeue);
            }
            (None, None)
        }
    };

    // the mailbox row as the spec wants it
    let wanted = MailboxRow {
        username: address.clone(),
        password: String::new(),
        name: mailbox.spec.display_name.clone().unwrap_or_default(),
        maildir: format!("{domain}/{local}/"),
        quota_bytes: i64::from(mailbox.spec.quota_mib) * MIB,
        local_part: local.clone(),
        domain: domain.clone(),
        active: !mailbox.spec.suspended,
        owner: Some(owner.clone()),
    };
    let change = match &row {
        Some(r) => MailboxChange {
            password: None,
            name: (r.name != wanted.name).then(|| wanted.name.clone()),
            quota_bytes: (r.quota_bytes != wanted.quota_bytes).then_some(wanted.quota_bytes),
            active: (r.active != wanted.active).then_some(wanted.active),
        },
        None => MailboxChange::default(),
    };
    let password_stale = match (&row, &password) {
        (Some(r), Some(p)) => {
            let (p, stored) = (p.clone(), r.password.clone());
            !crate::cpu_bound::run(move || password::matches(&p, &stored)).await
        }
        _ => false,
    };
    let alias_changes: Vec<&String> = aliases
        .iter()
        .filter(|a| !alias_rows.iter().any(|r| &r.address == *a && r.goto == address && r.active))
        .collect();
    let stale_aliases: Vec<&AliasRow> = alias_rows
        .iter()
        .filter(|r| r.owner.as_deref() == Some(owner.as_str()) && !aliases.contains(&r.address))
        .collect();
    let differs = row.is_none()
        || domain_rows.iter().any(|(_, r)| r.is_none())
        || !change.is_empty()
        || password_stale
        || !alias_changes.is_empty()
        || !stale_aliases.is_empty();

    if differs && mode == ReconcileMode::ObserveOnly {
        step.not_ready(
            None,
            reasons::OUT_OF_SYNC.name,
            format!("mailbox {address} differs from the spec on mail-core (ObserveOnly: not written)"),
        );
        step.write(api, mailbox).await?;
        return Ok(requeue);
    }

    // act on what differs
    for (missing, _) in domain_rows.iter().filter(|(_, r)| r.is_none()) {
        if !ctx.mail.add_domain(missing, &domain_owner).await? {
            // someone made the row since it was read: look again at whose it is
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    step.set(Observation::new(
        DOMAIN_READY,
        true,
        reasons::DOMAIN_ON_MAIL_CORE.name,
        format!("domain {domain} is on mail-core; {}", dns_note(mailbox, &domain, ctx)),
    ));
    let mut password_written = false;
    match (&row, &password) {
        (None, Some(p)) => {
            let new = MailboxRow { password: hash_off_thread(p).await?, ..wanted.clone() };
            if !ctx.mail.add_mailbox(&new).await? {
                // someone made the row since it was read: look again
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            password_written = true;
            publish(
                &ctx.recorder,
                mailbox,
                false,
                reasons::CREATED.name,
                "AddMailbox",
                format!("mailbox {address} created on mail-core"),
            )
            .await;
        }
        (Some(_), _) => {
            let change = MailboxChange {
                password: match (&password, password_stale) {
                    (Some(p), true) => Some(hash_off_thread(p).await?),
                    _ => None,
                },
                ..change.clone()
            };
            if !change.is_empty() {
                if !ctx.mail.change_mailbox(&address, &owner, &change).await? {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                password_written = change.password.is_some();
                // the same spec and Secret as last time, yet the row differed: changed out of band
                let same_inputs = step.status.observed_generation == step.generation
                    && step.status.password_secret_version == secret_version
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
            }
        }
        // without a password no row is created: the function returned above
        (None, None) => {}
    }
    for a in &alias_changes {
        let (_, alias_domain) = split(a);
        let alias = AliasRow {
            address: (*a).clone(),
            goto: address.clone(),
            domain: alias_domain.clone(),
            active: true,
            owner: Some(owner.clone()),
        };
        if !ctx.mail.put_alias(&alias).await? {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    for stale in stale_aliases {
        ctx.mail.delete_alias(&stale.address, &owner).await?;
    }
    // DKIM keys are made and written only when the object may write (not ObserveOnly)
    if mode == ReconcileMode::Reconcile {
        let namespace = mailbox.namespace().unwrap_or_default();
        let mut signing = Vec::with_capacity(domain_rows.len());
        for (mail_domain, _) in &domain_rows {
            let outcome =
                dkim::sync_domain(&ctx.client, &ctx.mail, &ctx.dnszones, &namespace, mail_domain, &domain_owner)
                    .await?;
            signing.push((mail_domain.clone(), outcome));
        }
        let Some((signs, reason, message)) = dkim::condition(&signing) else {
            // another Mailbox of the domain wrote its key Secret first: use that key
            return Ok(Action::requeue(Duration::from_secs(1)));
        };
        step.set(Observation::new(DKIM_SIGNING, signs, reason, message));
    }

    // report
    if password.is_some() {
        if password_written {
            step.status.last_password_sync = Some(step.at.clone());
        }
        step.status.password_secret_version = secret_version.clone();
        step.set(Observation::new(
            PASSWORD_SYNCED,
            true,
            reasons::SYNCED.name,
            "the stored hash matches the Secret".to_owned(),
        ));
    }
    step.status.quota_mib = Some(mailbox.spec.quota_mib);
    if password.is_none() {
        let message =
            conditions::find(&step.status.conditions, PASSWORD_SYNCED).map(|c| c.message.clone()).unwrap_or_default();
        step.not_ready(Some(MailboxPhase::Failed), reasons::PASSWORD_SECRET_MISSING.name, message);
    } else {
        let (phase, state) = if mailbox.spec.suspended {
            (MailboxPhase::Suspended, "suspended (login disabled)")
        } else {
            (MailboxPhase::Active, "active")
        };
        step.status.phase = Some(phase);
        step.set(Observation::new(
            READY,
            true,
            if mailbox.spec.suspended { reasons::SUSPENDED.name } else { reasons::ACTIVE.name },
            format!("mailbox {address} is {state} on mail-core with {} aliases", aliases.len()),
        ));
    }
    step.write(api, mailbox).await?;
    Ok(requeue)
}

/// The mail domains of the address and of the aliases (each once, the address's first), with
/// their rows on mail-core.
async fn observe_domains<M: MailApi>(
    mailbox: &Mailbox,
    ctx: &Context<M>,
) -> Result<Vec<(String, Option<DomainRow>)>, Error> {
    let names = mail_domains(mailbox);
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let row = ctx.mail.domain(&name).await?;
        rows.push((name, row));
    }
    Ok(rows)
}

/// What refuses each mail domain the namespace may not use, in words for the Mailbox's owner.
fn refused_domains<M>(mailbox: &Mailbox, domain_rows: &[(String, Option<DomainRow>)], ctx: &Context<M>) -> Vec<String> {
    let namespace = mailbox.namespace().unwrap_or_default();
    let names = ctx.names.names();
    domain_rows
        .iter()
        .filter_map(|(domain, row)| {
            let holding = names.holding(&namespace, domain);
            domains::check(&namespace, domain, &holding, row.as_ref(), &ctx.domain_grants)
                .err()
                .map(|r| r.message(domain))
        })
        .collect()
}

/// Refuses maildir paths that would leave the root.
fn maildir_path(root: &Path, maildir: &str) -> Option<PathBuf> {
    let relative = Path::new(maildir);
    let plain = relative.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !maildir.is_empty()).then(|| root.join(relative))
}

async fn cleanup<M: MailApi>(mailbox: &Mailbox, mode: ReconcileMode, ctx: &Context<M>) -> Result<Action, Error> {
    if mailbox.spec.deletion_policy == DeletionPolicy::Orphan || mode == ReconcileMode::ObserveOnly {
        return Ok(Action::await_change());
    }
    let address = mailbox.spec.address.to_ascii_lowercase();
    let (_, domain) = split(&address);
    let owner = owner(mailbox);
    for alias in ctx.mail.aliases(&[], &owner).await? {
        ctx.mail.delete_alias(&alias.address, &owner).await?;
    }
    let row = ctx.mail.mailbox(&address).await?;
    match row {
        Some(r) if r.owner.as_deref() == Some(owner.as_str()) => {
            ctx.mail.delete_mailbox(&address, &owner).await?;
            if let Some(path) = ctx.maildir_root.as_deref().and_then(|root| maildir_path(root, &r.maildir)) {
                match tokio::fs::remove_dir_all(&path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::Maildir { path: path.display().to_string(), message: e.to_string() }),
                }
            }
        }
        Some(_) => {
            let note = format!("mailbox {address} on mail-core is not this object's; it was left there");
            publish(&ctx.recorder, mailbox, true, reasons::NOT_OWNER.name, "DeleteMailbox", note).await;
        }
        None => {}
    }
    let domain_owner = domain_owner(mailbox);
    ctx.mail.delete_domain_if_unused(&domain, &domain_owner).await?;
    for alias in &mailbox.spec.aliases {
        let (_, alias_domain) = split(alias);
        if alias_domain != domain {
            ctx.mail.delete_domain_if_unused(&alias_domain, &domain_owner).await?;
        }
    }
    Ok(Action::await_change())
}

/// The mail-core hash of `password`, made on a blocking thread (bcrypt is slow on purpose).
async fn hash_off_thread(password: &str) -> Result<String, password::PasswordError> {
    let password = password.to_owned();
    crate::cpu_bound::run(move || password::hash(&password)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildirs_never_leave_the_root() {
        let root = Path::new("/var/vmail");
        assert_eq!(maildir_path(root, "example.com/info/"), Some(PathBuf::from("/var/vmail/example.com/info/")));
        assert_eq!(maildir_path(root, "../etc/"), None);
        assert_eq!(maildir_path(root, "/etc/"), None);
        assert_eq!(maildir_path(root, ""), None);
    }

    #[test]
    fn addresses_split_at_the_last_at_sign_in_lower_case() {
        assert_eq!(split("Info@Example.com"), ("info".to_owned(), "example.com".to_owned()));
    }
}
