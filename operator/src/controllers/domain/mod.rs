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

pub mod orders;
pub mod renewal;
pub mod zone;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::{
    ADOPT_REGISTRATION_ANNOTATION, Adoption, Domain, DomainPhase, DomainStatus, OrderOperation, OrderState,
    RegistrationMode,
};
use mpanel_crds::reasons::{self, condition_types};

use super::{
    Backoff, StatusOf, finalizer_reason, intent, measured, publish, reconcile_in_mode, resync_after, retry_later,
    scoped,
};
use crate::config::ZoneDefaults;
use crate::metrics::Metrics;
use crate::names::Claim;
use crate::providers::namesilo::{DomainInfo, NamesiloApi, NamesiloError, normalise_host};
use renewal::Plan;
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

pub struct Context<R> {
    pub client: Client,
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    pub namespace: Option<String>,
    pub registrar: R,
    /// Delegation for Domains without `spec.nameservers`, normalised.
    pub nameservers: Vec<String>,
    pub zone_defaults: ZoneDefaults,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub resync: Duration,
    pub backoff: Backoff,
    /// Test-only fault point: exit the process right after this paid call was answered, before the
    /// answer is recorded.
    pub exit_after: Option<OrderOperation>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    Registrar(#[from] NamesiloError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Registrar(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
            Self::Finalizer(inner) => finalizer_reason(inner, Self::reason),
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

pub async fn run<R: NamesiloApi + 'static>(
    ctx: Arc<Context<R>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let domains_api = scoped::<Domain>(&ctx.client, ctx.namespace.as_deref());
    let (reader, writer) = reflector::store();
    // the store sees every change; reconciles start on changes of intent only
    let domains = reflector::reflector(writer, watcher(domains_api, watcher::Config::default().any_semantic()))
        .default_backoff()
        .touched_objects()
        .predicate_filter(intent, PredicateConfig::default());
    let store = reader.clone();
    let by_secret = reader.clone();
    ctx.metrics.inventory.watch(KIND, reader.clone(), Some(crate::inventory::DOMAIN_EXPIRY), |d| {
        let date: jiff::civil::Date = d.status.as_ref()?.expires_at.as_deref()?.parse().ok()?;
        Some(date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp().as_second())
    });
    Controller::for_stream(domains, reader)
        .with_config(ControllerConfig::default().concurrency(4))
        .owns(scoped::<DnsZone>(&ctx.client, ctx.namespace.as_deref()), watcher::Config::default())
        .watches_stream(super::secret_changes(&ctx.client, ctx.namespace.as_deref()), move |secret| {
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
        })
        .graceful_shutdown_on(shutdown)
        .run(move |domain, ctx| reconcile(domain, ctx, store.clone()), error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "Domain reconcile ended with an error");
            }
        })
        .await;
}

async fn reconcile<R: NamesiloApi>(
    domain: Arc<Domain>,
    ctx: Arc<Context<R>>,
    store: Store<Domain>,
) -> Result<Action, Error> {
    measured(
        KIND,
        &ctx.client,
        domain.as_ref(),
        &ctx.metrics,
        &ctx.backoff,
        Error::reason,
        reconcile_inner(domain.clone(), &ctx, store),
    )
    .await
}

fn error_policy<R: NamesiloApi>(domain: Arc<Domain>, error: &Error, ctx: Arc<Context<R>>) -> Action {
    retry_later(KIND, domain.as_ref(), error.reason(), error, &ctx.backoff)
}

async fn reconcile_inner<R: NamesiloApi>(
    domain: Arc<Domain>,
    ctx: &Context<R>,
    store: Store<Domain>,
) -> Result<Action, Error> {
    let api: Api<Domain> = Api::namespaced(ctx.client.clone(), &domain.namespace().unwrap_or_default());
    // the order on record decides what may be paid for: act on the object itself, not the cache
    let Some(domain) = api.get_opt(&domain.name_any()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let api = &api;
    reconcile_in_mode(
        api,
        domain,
        |step, message| {
            step.not_ready(None, reasons::INVALID_RECONCILE_MODE.name, message);
        },
        |domain, mode| async move { apply(api, &domain, mode, ctx, &store).await },
        |domain, mode| async move { cleanup(&domain, mode, ctx).await },
    )
    .await
}

impl StatusOf for Domain {
    type Status = DomainStatus;
    type Phase = DomainPhase;
    const FIELD_MANAGER: &'static str = FIELD_MANAGER;
    fn status(&self) -> Option<&DomainStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &mut DomainStatus) -> &mut Vec<mpanel_crds::conditions::Condition> {
        &mut status.conditions
    }
    fn observed_generation(status: &mut DomainStatus) -> &mut Option<i64> {
        &mut status.observed_generation
    }
    fn phase(status: &mut DomainStatus) -> &mut Option<DomainPhase> {
        &mut status.phase
    }
}

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

/// The Domain of the same namespace that claimed the same name first, if it is not this one: only
/// one Domain acts for a name. (Other namespaces' claims are the name index's business.)
fn earlier_claim(domain: &Domain, store: &Store<Domain>) -> Option<String> {
    let key = |d: &Domain| Claim::of_domain(d).precedence;
    store
        .state()
        .iter()
        .filter(|d| d.uid() != domain.uid() && d.namespace() == domain.namespace())
        .filter(|d| d.spec.name == domain.spec.name && d.meta().deletion_timestamp.is_none())
        .filter(|d| key(d) < key(domain))
        .map(|d| d.name_any())
        .min()
}

/// Whether this Domain's claim on its name is granted. Before the operator first acts on the claim
/// it is decided over what the API server holds, not the watches.
async fn name_granted<R>(domain: &Domain, ctx: &Context<R>) -> Result<bool, Error> {
    let claim = Claim::of_domain(domain);
    let acted_on = claim.precedence.acted_on();
    let uid = domain.uid().unwrap_or_default();
    let mut names = ctx.names.names_with([claim]);
    if names.granted(&domain.spec.name, &uid) && !acted_on {
        names = ctx.names.names_fresh(&ctx.client).await?;
    }
    Ok(names.granted(&domain.spec.name, &uid))
}

/// Why this Domain may manage the registration under its name that is in the account, if it may:
/// recorded before, its own order on record (a `Sent` one included: the operator may have died
/// before recording the answer), or the adoption annotation staff set.
fn adoption(domain: &Domain) -> Option<Adoption> {
    let status = domain.status.as_ref();
    if let Some(adopted) = status.and_then(|s| s.adopted) {
        return Some(adopted);
    }
    let ordered = status.and_then(|s| s.last_order.as_ref()).is_some_and(|o| match o.operation {
        OrderOperation::Register | OrderOperation::Transfer => o.state != OrderState::Failed,
        OrderOperation::Renew => o.state == OrderState::Succeeded,
    });
    if ordered {
        return Some(Adoption::Ordered);
    }
    let granted = domain.annotations().get(ADOPT_REGISTRATION_ANNOTATION).is_some_and(|v| v == "true");
    granted.then_some(Adoption::Granted)
}

/// The nameservers `domain` is delegated to.
fn wanted_nameservers<R>(domain: &Domain, ctx: &Context<R>) -> Vec<String> {
    if domain.spec.nameservers.is_empty() {
        ctx.nameservers.clone()
    } else {
        domain.spec.nameservers.iter().map(|n| normalise_host(n)).collect()
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let set = |l: &[String]| l.iter().map(|n| normalise_host(n)).collect::<std::collections::BTreeSet<_>>();
    set(a) == set(b)
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
        let message = format!("{name} is managed by Domain {other}; this one leaves the registrar alone");
        if step.set(Observation::new(CONFLICT, true, reasons::CLAIMED_BY_ANOTHER_DOMAIN.name, message.clone())) {
            publish(&ctx.recorder, domain, true, reasons::CONFLICT.name, "Observe", message.clone()).await;
        }
        step.not_ready(Some(DomainPhase::Failed), reasons::CONFLICT.name, message);
        step.write(api, domain).await?;
        return Ok(Action::requeue(resync_after(domain, ctx.resync)));
    }
    step.status.conditions.retain(|c| c.type_ != CONFLICT);

    // observe first: the account is the truth about what was bought
    let info = match ctx.registrar.domain_info(name).await {
        Ok(info) => info,
        Err(e) => return fail(api, domain, step, Some(REGISTERED), e, ctx).await,
    };
    match info {
        Some(info) => match (adoption(domain), domain.spec.registration.mode) {
            (Some(adopted), _) => {
                step.status.adopted = Some(adopted);
                registered(api, domain, step, &info, mode, ctx).await
            }
            // observed only: nothing is changed, nothing is bought
            (None, RegistrationMode::External) => registered(api, domain, step, &info, mode, ctx).await,
            (None, _) => not_adopted(api, domain, step, ctx).await,
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
                Ok(Action::requeue(resync_after(domain, ctx.resync)))
            }
            (RegistrationMode::Register, _) => orders::register(api, domain, step, ctx).await,
            (RegistrationMode::Transfer, _) => orders::transfer(api, domain, step, ctx).await,
        },
    }
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

/// The domain is in the account: renew to `paidUntil`, converge nameservers and settings, own the
/// zone, report.
async fn registered<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    info: &DomainInfo,
    mode: ReconcileMode,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let spec = &domain.spec;
    let name = &spec.name;
    let hands_off = match (spec.registration.mode, mode) {
        (RegistrationMode::External, _) => Some("External"),
        (_, ReconcileMode::ObserveOnly) => Some("ObserveOnly"),
        _ => None,
    };
    // the order that brought the domain here is done, whatever its answer said
    if let Some(order) = step.status.last_order.as_mut()
        && order.state == OrderState::Sent
        && order.operation != OrderOperation::Renew
    {
        order.state = OrderState::Succeeded;
    }
    step.observe(info);
    let how = match spec.registration.mode {
        RegistrationMode::Register => reasons::REGISTERED.name,
        RegistrationMode::Transfer => reasons::TRANSFERRED.name,
        RegistrationMode::External => reasons::IN_ACCOUNT.name,
    };
    step.set(Observation::new(
        REGISTERED,
        true,
        how,
        format!("{name} is in the registrar account, expiring {}", info.expires),
    ));
    if spec.registration.mode == RegistrationMode::Transfer {
        orders::finish_transfer(&mut step, name, ctx).await;
    }

    // renewal: at most one paid call, then a fresh look
    let renewal = renewal::plan(spec.paid_until.as_deref(), &info.expires, step.status.last_order.as_ref());
    let paid_until = spec.paid_until.clone().unwrap_or_default();
    let renewed = match (&renewal, hands_off) {
        (Plan::Renew(years), None) => return orders::renew(api, domain, step, *years, ctx).await,
        (Plan::NoPaidUntil, _) => {
            Observation::new(RENEWED, true, reasons::NO_PAID_UNTIL.name, "no paidUntil: nothing to renew")
        }
        (Plan::Covered, _) => {
            if let Some(order) = step.status.last_order.as_mut()
                && order.operation == OrderOperation::Renew
                && order.state == OrderState::Sent
            {
                order.state = OrderState::Succeeded;
            }
            Observation::new(
                RENEWED,
                true,
                reasons::COVERED.name,
                format!("the registrar's expiry {} covers paidUntil {paid_until}", info.expires),
            )
        }
        (Plan::Renew(years), Some(why)) => Observation::new(
            RENEWED,
            false,
            reasons::RENEWAL_DUE.name,
            format!(
                "expiry {} is before paidUntil {paid_until}: {years} year(s) due ({why}: not renewed)",
                info.expires
            ),
        ),
        (Plan::RenewedOnce, _) => Observation::new(
            RENEWED,
            false,
            reasons::RENEWED_ONCE.name,
            format!(
                "renewed once for paidUntil {paid_until}, yet the expiry is {}: not renewing twice for one payment",
                info.expires
            ),
        ),
        (Plan::TooFar { years }, _) => Observation::new(
            RENEWED,
            false,
            reasons::PAID_UNTIL_TOO_FAR.name,
            format!(
                "reaching paidUntil {paid_until} needs {years} years; a registrar renews at most {} ahead",
                renewal::MAX_YEARS
            ),
        ),
        (Plan::BadDate(message), _) => Observation::new(RENEWED, false, reasons::BAD_DATE.name, message.clone()),
    };
    let renewed_ok = renewed.status == conditions::Status::True;
    step.set(renewed);

    // nameservers
    let want_ns = wanted_nameservers(domain, ctx);
    let ns_ok = if same_set(&want_ns, &info.nameservers) {
        step.set(Observation::new(
            NAMESERVERS_SYNCED,
            true,
            reasons::SYNCED.name,
            format!("delegated to {}", want_ns.join(", ")),
        ));
        true
    } else if let Some(why) = hands_off {
        step.set(Observation::new(
            NAMESERVERS_SYNCED,
            false,
            reasons::OUT_OF_SYNC.name,
            format!("the registrar has {} ({why}: not changed)", info.nameservers.join(", ")),
        ));
        false
    } else {
        let drift = step.was_synced(NAMESERVERS_SYNCED);
        if let Err(e) = ctx.registrar.set_nameservers(name, &want_ns).await {
            return fail(api, domain, step, Some(NAMESERVERS_SYNCED), e, ctx).await;
        }
        step.status.nameservers = want_ns.clone();
        if drift {
            repaired(domain, ctx, format!("nameservers were {} at the registrar", info.nameservers.join(", "))).await;
        }
        step.set(Observation::new(
            NAMESERVERS_SYNCED,
            true,
            reasons::SYNCED.name,
            format!("delegated to {}", want_ns.join(", ")),
        ));
        true
    };

    // lock, privacy, auto-renew
    let registration = &spec.registration;
    let differing: Vec<(Setting, bool)> = [
        (Setting::Lock, registration.lock, info.locked),
        (Setting::Privacy, registration.privacy, info.private),
        (Setting::AutoRenew, registration.auto_renew, info.auto_renew),
    ]
    .into_iter()
    .filter(|(_, want, have)| want != have)
    .map(|(setting, want, _)| (setting, want))
    .collect();
    let names = differing.iter().map(|(s, _)| s.label()).collect::<Vec<_>>().join(", ");
    let settings_ok = if differing.is_empty() {
        step.set(Observation::new(
            SETTINGS_SYNCED,
            true,
            reasons::SYNCED.name,
            "lock, privacy and auto-renew match the spec",
        ));
        true
    } else if let Some(why) = hands_off {
        step.set(Observation::new(
            SETTINGS_SYNCED,
            false,
            reasons::OUT_OF_SYNC.name,
            format!("{names} differ at the registrar ({why}: not changed)"),
        ));
        false
    } else {
        let drift = step.was_synced(SETTINGS_SYNCED);
        for (setting, want) in &differing {
            let result = match setting {
                Setting::Lock => ctx.registrar.set_lock(name, *want).await,
                Setting::Privacy => ctx.registrar.set_privacy(name, *want).await,
                Setting::AutoRenew => ctx.registrar.set_auto_renew(name, *want).await,
            };
            if let Err(e) = result {
                return fail(api, domain, step, Some(SETTINGS_SYNCED), e, ctx).await;
            }
        }
        step.status.locked = Some(registration.lock);
        step.status.privacy = Some(registration.privacy);
        step.status.auto_renew = Some(registration.auto_renew);
        if drift {
            repaired(domain, ctx, format!("{names} changed at the registrar")).await;
        }
        step.set(Observation::new(
            SETTINGS_SYNCED,
            true,
            reasons::SYNCED.name,
            "lock, privacy and auto-renew match the spec",
        ));
        true
    };

    let zone_ok = zone_step(domain, &mut step, mode, ctx).await?;

    let expired = renewal::expired(&info.expires);
    step.status.phase = Some(if expired { DomainPhase::Expired } else { DomainPhase::Active });
    // Ready=False names the first step condition that is not True, with its message
    let blocking = [
        (!renewed_ok).then_some((RENEWED, reasons::RENEWED)),
        (!ns_ok).then_some((NAMESERVERS_SYNCED, reasons::NAMESERVERS_SYNCED)),
        (!settings_ok).then_some((SETTINGS_SYNCED, reasons::SETTINGS_SYNCED)),
        (!zone_ok).then_some((ZONE_READY, reasons::ZONE_READY)),
    ];
    match blocking.into_iter().flatten().next() {
        _ if expired => {
            step.not_ready(None, reasons::EXPIRED.name, format!("{name} expired on {}", info.expires));
        }
        Some((type_, reason)) => {
            let message =
                conditions::find(&step.status.conditions, type_).map(|c| c.message.clone()).unwrap_or_default();
            step.not_ready(None, reason.name, message);
        }
        None => {
            step.set(Observation::new(
                READY,
                true,
                reasons::ACTIVE.name,
                format!("{name} is registered until {} and matches the spec", info.expires),
            ));
        }
    }
    step.write(api, domain).await?;
    Ok(Action::requeue(resync_after(domain, ctx.resync)))
}

/// The registrar settings a Domain's spec decides besides its nameservers.
#[derive(Clone, Copy)]
enum Setting {
    Lock,
    Privacy,
    AutoRenew,
}

impl Setting {
    fn label(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Privacy => "privacy",
            Self::AutoRenew => "auto-renew",
        }
    }
}

/// Counts and announces a repaired out-of-band change.
async fn repaired<R>(domain: &Domain, ctx: &Context<R>, note: String) {
    ctx.metrics.drift_repaired(KIND);
    publish(&ctx.recorder, domain, true, reasons::DRIFT_REPAIRED.name, "Registrar", format!("{note}; restored")).await;
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
