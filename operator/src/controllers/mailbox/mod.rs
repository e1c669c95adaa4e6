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

mod act;
mod decide;
mod deletion;
pub mod dkim;
pub mod domains;
mod observe;
pub mod password;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::{self, DnsZone};
use mpanel_crds::mailbox::{Mailbox, MailboxPhase, MailboxStatus};
use mpanel_crds::reasons::{self, condition_types};

use super::{Changes, Hub, Reconcile, ReconcileError, read_secret_key, resync_after};
use crate::providers::mailcore::{MailApi, MailCoreError};
use crate::providers::powerdns::canonical;
use deletion::cleanup;
use observe::{Addresses, conflicts, observe_domains, observe_rows, refused_domains};
use password::PasswordError;

pub const KIND: &str = "Mailbox";
const FIELD_MANAGER: &str = "mpanel-mailbox";
const DOMAIN_READY: &str = condition_types::DOMAIN_READY.name;
const PASSWORD_SYNCED: &str = condition_types::PASSWORD_SYNCED.name;
const DKIM_SIGNING: &str = condition_types::DKIM_SIGNING.name;
const CONFLICT: &str = condition_types::CONFLICT.name;
const MIB: i64 = 1024 * 1024;

/// The Mailbox controller's own state; the rest of its context is shared by every controller.
pub struct State<M> {
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    pub mail: M,
    /// mail-core's maildir root as mounted here; maildirs of deleted Mailboxes are removed below it.
    pub maildir_root: Option<PathBuf>,
    /// DnsZones, to say whether the mail domain's MX is published.
    pub dnszones: Store<DnsZone>,
    /// Mail domains made outside the operator, each granted to one namespace (`mailcore.domainGrants`).
    pub domain_grants: std::collections::BTreeMap<String, String>,
    /// What the password verifies found, so an unchanged password is not verified at every resync.
    pub verified: password::Verified,
}

pub type Context<M> = super::Context<State<M>>;

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
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::MailCore(e) => e.reason(),
            Self::Password(e) => e.reason(),
            Self::Dkim(_) => reasons::KEY_ERROR.name,
            Self::Maildir { .. } => reasons::MAILDIR_NOT_REMOVED.name,
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }
}

/// Runs the controller until `shutdown` resolves; `dnszone_writer` feeds `ctx.dnszones`.
/// What the Mailbox controller follows, taken from the operator's one watch per kind.
pub struct Watches {
    mailboxes: (Changes<Mailbox>, Store<Mailbox>),
    secrets: Changes<PartialObjectMeta<Secret>>,
    dnszones: Changes<DnsZone>,
}

impl Watches {
    pub fn new(hub: &Hub) -> Self {
        Self { mailboxes: hub.primary(), secrets: hub.secret_changes(), dnszones: hub.changes() }
    }
}

pub async fn run<M: MailApi + 'static>(
    ctx: Arc<Context<M>>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if !super::ready(&ctx.dnszones).await {
        return;
    }
    let Watches { mailboxes: (changes, mailboxes), secrets, dnszones } = watches;
    // the store sees every change; reconciles start on changes of intent only, not on this
    // controller's own status writes (each reconcile asks for the next one itself)
    let changes = super::on_intent(changes);
    let controller = Controller::for_shared_stream(changes, mailboxes.clone())
        .with_config(ControllerConfig::default().concurrency(16));
    ctx.metrics.inventory.watch(KIND, mailboxes.clone(), None, |_| None);
    let in_zone = mailboxes.clone();
    let controller = controller
        .watches_shared_stream(secrets, move |secret| {
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
        .watches_shared_stream(dnszones, move |zone| {
            let (ns, wanted) = (zone.namespace(), canonical(&zone.spec.zone.to_ascii_lowercase()));
            in_zone
                .state()
                .iter()
                .filter(|m| m.namespace() == ns && mail_domains(m).iter().any(|d| canonical(d) == wanted))
                .map(|m| ObjectRef::from_obj(m.as_ref()))
                .collect::<Vec<_>>()
        });
    super::run(ctx, controller, shutdown).await;
}

impl<M: MailApi + 'static> Reconcile<Mailbox> for State<M> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<M>,
        api: &Api<Mailbox>,
        mailbox: Arc<Mailbox>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &mailbox, mode, ctx).await
    }

    async fn cleanup(
        ctx: &Context<M>,
        _: &Api<Mailbox>,
        mailbox: Arc<Mailbox>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        cleanup(&mailbox, mode, ctx).await
    }
}

super::status_of!(Mailbox, MailboxStatus, MailboxPhase, FIELD_MANAGER);

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

async fn apply<M: MailApi>(
    api: &Api<Mailbox>,
    mailbox: &Mailbox,
    mode: ReconcileMode,
    ctx: &Context<M>,
) -> Result<Action, Error> {
    match converge(api, mailbox, mode, ctx).await {
        // mail-core's own words reach the Mailbox's owner in Ready, with a Warning Event
        Err(Error::MailCore(e)) => {
            let failure = (e.reason(), e.to_string());
            Step::new(mailbox).record_failure(api, mailbox, None, failure, &ctx.recorder, "Converge").await?;
            Err(e.into())
        }
        other => other,
    }
}

/// Observes mail-core's rows and writes what differs from `mailbox`.
async fn converge<M: MailApi>(
    api: &Api<Mailbox>,
    mailbox: &Mailbox,
    mode: ReconcileMode,
    ctx: &Context<M>,
) -> Result<Action, Error> {
    let mut step = Step::new(mailbox);
    let requeue = Action::requeue(resync_after(mailbox, ctx.resync));
    let at = Addresses::of(mailbox);
    let password =
        read_secret_key(&ctx.client, &mailbox.namespace().unwrap_or_default(), &mailbox.spec.password_secret_ref)
            .await?;

    // observe: first whether every mail domain of the object is this namespace's to use
    let domain_rows = observe_domains(mailbox, ctx).await?;
    let refused = refused_domains(mailbox, &domain_rows, ctx);
    if !refused.is_empty() {
        decide::refuse_domains(&mut step, mailbox, ctx, &refused).await;
        step.write(api, mailbox).await?;
        return Ok(requeue);
    }
    let rows = observe_rows(&at, domain_rows, ctx).await?;
    let conflicts = conflicts(&at, &rows);
    if !conflicts.is_empty() {
        decide::refuse_conflicts(&mut step, mailbox, ctx, &conflicts).await;
        step.write(api, mailbox).await?;
        return Ok(requeue);
    }
    step.set(Observation::new(CONFLICT, false, reasons::OWNED.name, "the rows are this object's".to_owned()));

    let password = match password {
        Ok(p) => Some(p),
        Err(message) => {
            step.set(Observation::new(PASSWORD_SYNCED, false, reasons::PASSWORD_SECRET_MISSING.name, message.clone()));
            if rows.mailbox.is_none() {
                // a mailbox is not created without its password
                step.not_ready(Some(MailboxPhase::Pending), reasons::PASSWORD_SECRET_MISSING.name, message);
                step.write(api, mailbox).await?;
                return Ok(requeue);
            }
            None
        }
    };
    let plan = decide::plan(mailbox, &at, &rows, password.as_ref(), &ctx.verified).await;
    if plan.differs && mode == ReconcileMode::ObserveOnly {
        step.not_ready(
            None,
            reasons::OUT_OF_SYNC.name,
            format!("mailbox {} differs from the spec on mail-core (ObserveOnly: not written)", at.address),
        );
        step.write(api, mailbox).await?;
        return Ok(requeue);
    }

    // act on what differs
    let Some(password_written) = act::converge(&mut step, mailbox, mode, ctx, &plan, password.as_ref()).await? else {
        // someone made a row since it was read: look again at whose it is
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    report(&mut step, mailbox, &at, password.map(|(_, version)| (version, password_written)));
    step.write(api, mailbox).await?;
    Ok(requeue)
}

/// Sets the status after the rows were converged: PasswordSynced when the Secret was read
/// (`password`: its resourceVersion and whether a new hash was written), then the phase and Ready.
fn report(step: &mut Step, mailbox: &Mailbox, at: &Addresses, password: Option<(String, bool)>) {
    let synced = password.is_some();
    if let Some((secret_version, password_written)) = password {
        if password_written {
            step.status.last_password_sync = Some(step.at.clone());
        }
        step.status.password_secret_version = Some(secret_version);
        step.set(Observation::new(
            PASSWORD_SYNCED,
            true,
            reasons::SYNCED.name,
            "the stored hash matches the Secret".to_owned(),
        ));
    }
    step.status.quota_mib = Some(mailbox.spec.quota_mib);
    if !synced {
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
            format!("mailbox {} is {state} on mail-core with {} aliases", at.address, at.aliases.len()),
        ));
    }
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
    fn addresses_split_at_the_last_at_sign_in_lower_case() {
        assert_eq!(split("Info@Example.com"), ("info".to_owned(), "example.com".to_owned()));
    }
}

#[cfg(test)]
mod reconcile_tests;
