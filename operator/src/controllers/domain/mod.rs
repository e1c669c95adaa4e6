//! The Domain controller: converges a registration at Namesilo to its Domain.
//!
//! Money: register, renew and transfer are the only paid calls, at most one per reconcile. Each is
//! recorded in `status.lastOrder` (state `Sent`) before it is sent, and the domain is looked up in
//! the account before any of them, so a retry after a crash finds what the lost answer would have
//! said instead of paying again. Renewals go to `paidUntil` and are recorded with it: one renewal
//! per payment. Status writes do not trigger reconciles ([`super::intent`]), so a failing paid call
//! is retried on the backoff only.
//!
//! Tenancy: a Domain acts only for a name its namespace holds in the name index, and a
//! registration found in the account is managed only by the Domain whose own order brought it
//! there (`status.lastOrder`, then `status.adopted`) or that staff granted it with the adoption
//! annotation. Any other Domain for it changes nothing at the registrar.

mod claims;
pub mod orders;
mod registered;
pub mod renewal;
mod settings;
mod sync;
pub mod zone;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::conditions::{self, Observation};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::{
    ADOPT_REGISTRATION_ANNOTATION, Domain, DomainPhase, DomainStatus, OrderOperation, RegistrationMode,
};
use mpanel_crds::reasons::{self, condition_types};

use super::{Changes, Hub, Reconcile, ReconcileError, publish, read_again, resync_after};
use crate::config::ZoneDefaults;
use crate::providers::namesilo::{DomainInfo, NamesiloApi, NamesiloError};
use claims::{adoption, earlier_claim, name_granted};
use registered::registered;
use settings::wanted_nameservers;
pub use sync::RegistrarSync;
use zone::ZoneState;

pub const KIND: &str = "Domain";
const FIELD_MANAGER: &str = "mpanel-domain";
pub const REGISTERED: &str = condition_types::REGISTERED.name;
pub const RENEWED: &str = condition_types::RENEWED.name;
pub const NAMESERVERS_SYNCED: &str = condition_types::NAMESERVERS_SYNCED.name;
pub const SETTINGS_SYNCED: &str = condition_types::SETTINGS_SYNCED.name;
pub const ZONE_READY: &str = condition_types::ZONE_READY.name;
pub const CONFLICT: &str = condition_types::CONFLICT.name;
/// How soon the next step follows one that changed something at the registrar.
const NEXT_STEP: Duration = Duration::from_millis(200);
/// How often a pending transfer is looked at.
const TRANSFER_POLL: Duration = Duration::from_secs(5);

/// The Domain controller's own state; the rest of its context is shared by every controller.
pub struct State<R> {
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    pub registrar: R,
    /// Delegation for Domains without `spec.nameservers`, normalised.
    pub nameservers: Vec<String>,
    pub zone_defaults: ZoneDefaults,
    /// Every Domain this controller reconciles ([`Watches::store`]).
    pub domains: Store<Domain>,
    /// When each Domain's registration is read at the registrar (`namesilo.registrarSyncInterval`).
    pub sync: RegistrarSync,
    /// Test-only fault point: exit the process right after this paid call was answered, before the
    /// answer is recorded.
    pub exit_after: Option<OrderOperation>,
}

pub type Context<R> = super::Context<State<R>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    Registrar(#[from] NamesiloError),
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Registrar(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }
}

/// The fault point `MPANEL_FAULT_EXIT_AFTER` names (`register`, `renew` or `transfer`).
pub fn fault_point(value: Option<&str>) -> Option<OrderOperation> {
    match value? {
        "register" => Some(OrderOperation::Register),
        "renew" => Some(OrderOperation::Renew),
        "transfer" => Some(OrderOperation::Transfer),
        _ => None,
    }
}

/// What the Domain controller follows, taken from the operator's one watch per kind.
pub struct Watches {
    domains: (Changes<Domain>, Store<Domain>),
    dnszones: Changes<DnsZone>,
    secrets: Changes<PartialObjectMeta<Secret>>,
}

impl Watches {
    pub fn new(hub: &Hub) -> Self {
        Self { domains: hub.primary(), dnszones: hub.changes(), secrets: hub.secret_changes() }
    }

    /// The Domains followed, for the controller's [`State`].
    pub fn store(&self) -> Store<Domain> {
        self.domains.1.clone()
    }
}

pub async fn run<R: NamesiloApi + 'static>(
    ctx: Arc<Context<R>>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watches { domains: (changes, reader), dnszones, secrets } = watches;
    // the store sees every change; reconciles start on changes of intent only
    let domains = super::on_intent(changes);
    let by_secret = reader.clone();
    ctx.metrics.inventory.watch(KIND, reader.clone(), Some(crate::inventory::DOMAIN_EXPIRY), |d| {
        let date: jiff::civil::Date = d.status.as_ref()?.expires_at.as_deref()?.parse().ok()?;
        Some(date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp().as_second())
    });
    let controller = Controller::for_shared_stream(domains, reader)
        .with_config(ControllerConfig::default().concurrency(4))
        .owns_shared_stream(dnszones)
        .watches_shared_stream(secrets, move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            by_secret
                .state()
                .iter()
                .filter(|d| {
                    d.namespace() == ns
                        && d.spec.registration.auth_code_secret_ref.as_ref().is_some_and(|r| r.name == name)
                })
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        });
    super::run(ctx, controller, shutdown).await;
}

impl<R: NamesiloApi + 'static> Reconcile<Domain> for State<R> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<R>,
        api: &Api<Domain>,
        domain: Arc<Domain>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        let result = apply(api, &domain, mode, ctx, &ctx.domains).await;
        if result.is_err() {
            // a failed step is retried on a fresh look
            ctx.sync.forget(&domain);
        }
        result
    }

    async fn cleanup(
        ctx: &Context<R>,
        _: &Api<Domain>,
        domain: Arc<Domain>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        ctx.sync.forget(&domain);
        cleanup(&domain, mode, ctx).await
    }

    // the order on record decides what may be paid for: act on the object itself, not the cache
    async fn current(api: &Api<Domain>, cached: Arc<Domain>) -> Result<Option<Arc<Domain>>, super::KubeCall> {
        read_again(api, cached).await
    }
}

super::status_of!(Domain, DomainStatus, DomainPhase, FIELD_MANAGER);

pub type Step = super::Step<Domain>;

impl Step {
    /// Whether `type_` was True for this generation before this reconcile (a difference found now
    /// is drift, not a new spec).
    fn was_synced(&self, type_: &str) -> bool {
        conditions::find(&self.status.conditions, type_)
            .is_some_and(|c| c.status == "True" && c.observed_generation == self.generation)
    }

    /// Records what the registrar reports.
    fn observe(&mut self, info: &DomainInfo) {
        self.status.registered = Some(true);
        self.status.expires_at = Some(info.expires.clone());
        self.status.nameservers = info.nameservers.clone();
        self.status.locked = Some(info.locked);
        self.status.auto_renew = Some(info.auto_renew);
        self.status.privacy = Some(info.private);
    }
}

async fn apply<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mode: ReconcileMode,
    ctx: &Context<R>,
    store: &Store<Domain>,
) -> Result<Action, Error> {
    let mut step = Step::new(domain);
    let name = &domain.spec.name;
    if !name_granted(domain, ctx).await? {
        ctx.sync.forget(domain);
        let message = format!("{name} is held by another namespace; this Domain leaves the registrar alone");
        step.status.registered = None;
        step.set(Observation::new(REGISTERED, false, reasons::NAME_HELD_ELSEWHERE.name, message.clone()));
        if step.not_ready(Some(DomainPhase::Failed), reasons::NAME_HELD_ELSEWHERE.name, message.clone()) {
            publish(&ctx.recorder, domain, true, reasons::NAME_HELD_ELSEWHERE.name, "Observe", message).await;
        }
        step.write(api, domain).await?;
        return Ok(Action::requeue(resync_after(domain, ctx.resync)));
    }
    if let Some(other) = earlier_claim(domain, store) {
        ctx.sync.forget(domain);
        let message = format!("{name} is managed by Domain {other}; this one leaves the registrar alone");
        if step.set(Observation::new(CONFLICT, true, reasons::CLAIMED_BY_ANOTHER_DOMAIN.name, message.clone())) {
            publish(&ctx.recorder, domain, true, reasons::CONFLICT.name, "Observe", message.clone()).await;
        }
        step.not_ready(Some(DomainPhase::Failed), reasons::CONFLICT.name, message);
        step.write(api, domain).await?;
        return Ok(Action::requeue(resync_after(domain, ctx.resync)));
    }
    step.status.conditions.retain(|c| c.type_ != CONFLICT);

    // observe first: the account is the truth about what was bought (a recent look stands in
    // between the registrar syncs, never for a purchase)
    let (info, look) = match ctx.sync.recent(domain, mode, &ctx.clock) {
        Some(info) => (info, Look::Remembered),
        None => {
            ctx.sync.forget(domain);
            match ctx.registrar.domain_info(name).await {
                Ok(info) => (info, Look::Fresh),
                Err(e) => return fail(api, domain, step, Some(REGISTERED), e, ctx).await,
            }
        }
    };
    match info {
        Some(info) => match (adoption(domain), domain.spec.registration.mode) {
            (Some(adopted), _) => {
                step.status.adopted = Some(adopted);
                registered(api, domain, step, &info, mode, look, ctx).await
            }
            // observed only: nothing is changed, nothing is bought
            (None, RegistrationMode::External) => registered(api, domain, step, &info, mode, look, ctx).await,
            (None, _) => {
                if look == Look::Fresh {
                    ctx.sync.observed(domain, mode, Some(&info), &ctx.clock);
                }
                not_adopted(api, domain, step, ctx).await
            }
        },
        None => match (domain.spec.registration.mode, mode) {
            (RegistrationMode::External, _) | (_, ReconcileMode::ObserveOnly) => {
                let why = if mode == ReconcileMode::ObserveOnly { "ObserveOnly" } else { "External" };
                let message = format!("{name} is not in the registrar account ({why}: nothing is bought)");
                step.status.registered = Some(false);
                step.set(Observation::new(REGISTERED, false, reasons::NOT_IN_ACCOUNT.name, message.clone()));
                zone_step(domain, &mut step, mode, ctx).await?;
                step.not_ready(Some(DomainPhase::Pending), reasons::NOT_IN_ACCOUNT.name, message);
                step.write(api, domain).await?;
                if look == Look::Fresh {
                    ctx.sync.observed(domain, mode, None, &ctx.clock);
                }
                Ok(Action::requeue(resync_after(domain, ctx.resync)))
            }
            (RegistrationMode::Register, _) => orders::register(api, domain, step, ctx).await,
            (RegistrationMode::Transfer, _) => orders::transfer(api, domain, step, ctx).await,
        },
    }
}

/// Where this reconcile's view of the registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// Read from the registrar now.
    Fresh,
    /// The last sync's observation ([`RegistrarSync`]).
    Remembered,
}

/// The name is in the account, but nothing shows this Domain bought it: it is not touched (no
/// setting, no payment) and its registrar details are not shown, until staff grant adoption.
async fn not_adopted<R>(api: &Api<Domain>, domain: &Domain, mut step: Step, ctx: &Context<R>) -> Result<Action, Error> {
    let message = format!(
        "{} is already registered in the registrar account and this Domain did not order it; \
         nothing is changed at the registrar until staff grant adoption (annotation {ADOPT_REGISTRATION_ANNOTATION}: \"true\")",
        domain.spec.name
    );
    step.status.registered = Some(false);
    step.set(Observation::new(REGISTERED, false, reasons::REGISTRATION_NOT_ADOPTED.name, message.clone()));
    if step.not_ready(Some(DomainPhase::Failed), reasons::REGISTRATION_NOT_ADOPTED.name, message.clone()) {
        publish(&ctx.recorder, domain, true, reasons::REGISTRATION_NOT_ADOPTED.name, "Observe", message).await;
    }
    step.write(api, domain).await?;
    Ok(Action::requeue(resync_after(domain, ctx.resync)))
}

/// Creates the owned zone when `dns.createZone` asks for one and sets ZoneReady; true when there
/// is nothing to wait for.
async fn zone_step<R>(domain: &Domain, step: &mut Step, mode: ReconcileMode, ctx: &Context<R>) -> Result<bool, Error> {
    if !domain.spec.dns.as_ref().is_some_and(|d| d.create_zone) {
        step.status.conditions.retain(|c| c.type_ != ZONE_READY);
        return Ok(true);
    }
    let nameservers = wanted_nameservers(domain, ctx);
    let write = mode != ReconcileMode::ObserveOnly;
    let state = zone::ensure(&ctx.client, domain, &nameservers, &ctx.zone_defaults, write).await?;
    step.status.zone_ref = Some(domain.name_any());
    let (ok, reason, message) = match state {
        ZoneState::Ready(m) => (true, reasons::SERVED.name, m),
        ZoneState::NotReady(m) => (false, reasons::WAITING.name, m),
        ZoneState::OwnedElsewhere(m) => (false, reasons::ZONE_OWNED_ELSEWHERE.name, m),
    };
    step.set(Observation::new(ZONE_READY, ok, reason, message));
    Ok(ok)
}

/// Records a registrar error verbatim (in `condition` too, if given) and hands it to the backoff.
async fn fail<R>(
    api: &Api<Domain>,
    domain: &Domain,
    step: Step,
    condition: Option<&'static str>,
    error: NamesiloError,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let said = (error.reason(), error.to_string());
    step.record_failure(api, domain, condition, said, &ctx.recorder, "Registrar").await?;
    Err(error.into())
}

/// `Delete` turns auto-renew off at the registrar (a registration cannot be undone); `Orphan`
/// leaves it. The owned DnsZone goes with the Domain through its owner reference.
async fn cleanup<R: NamesiloApi>(domain: &Domain, mode: ReconcileMode, ctx: &Context<R>) -> Result<Action, Error> {
    let hands_off = mode == ReconcileMode::ObserveOnly || domain.spec.registration.mode == RegistrationMode::External;
    // a registration this Domain never managed is not its to change
    let managed = adoption(domain).is_some() && name_granted(domain, ctx).await?;
    if domain.spec.deletion_policy == DeletionPolicy::Orphan || hands_off || !managed {
        return Ok(Action::await_change());
    }
    let name = &domain.spec.name;
    if ctx.registrar.domain_info(name).await?.is_some() {
        ctx.registrar.set_auto_renew(name, false).await?;
        publish(
            &ctx.recorder,
            domain,
            false,
            reasons::AUTO_RENEW_OFF.name,
            "Delete",
            format!("auto-renew of {name} turned off"),
        )
        .await;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::settings::same_set;
    use super::*;

    #[test]
    fn nameserver_sets_compare_without_case_order_or_trailing_dot() {
        let a = vec!["NS1.example.net.".to_owned(), "ns2.example.net".to_owned()];
        let b = vec!["ns2.example.net".to_owned(), "ns1.example.net".to_owned()];
        assert!(same_set(&a, &b));
        assert!(!same_set(&a, &b[..1]));
        assert_eq!(fault_point(Some("renew")), Some(OrderOperation::Renew));
        assert_eq!(fault_point(Some("clone")), None);
    }
}

#[cfg(test)]
mod reconcile_tests;
