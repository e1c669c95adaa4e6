//! The Certificate controller: obtains a certificate from an ACME CA with DNS-01 through our own
//! PowerDNS and keeps it in a `kubernetes.io/tls` Secret, renewing it before it expires.
//!
//! A reconcile never waits for the CA. It observes the Secret and, when an order is in flight, the
//! order (its URL is kept in `status.orderURL`), then takes the one step the order needs: place the
//! challenge records and tell the CA to look, finalise with a CSR, or collect the chain. A restarted
//! operator resumes the order it finds in the status. The key of an order being finalised is kept
//! in the Secret `<name>-next-key` until the chain is stored, so a crash loses nothing.

pub mod budget;
pub mod dns01;
pub mod issuers;
pub mod keys;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use mpanel_crds::certificate::{Certificate, CertificatePhase, CertificateStatus, RotationPolicy};
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::formats::parse_duration;
use mpanel_crds::reasons::{self, condition_types};
use rcgen::KeyPair;

use super::{
    Backoff, StatusOf, finalizer_reason, follow, measured, publish, reconcile_in_mode, resync_after, retry_later,
    scoped,
};
use crate::metrics::Metrics;
use crate::names::{Claim, Holding, Names};
use crate::providers::acme::{AcmeApi, AcmeError, OrderPhase, OrderView};
use crate::providers::powerdns::DnsApi;
use budget::{Budget, Verdict};
use dns01::{Dns01, Dns01Error, Unorderable};
use issuers::{IssuerError, Issuers};
use keys::{Issued, KeyError};

pub const KIND: &str = "Certificate";
const FIELD_MANAGER: &str = "mpanel-certificate";
const ISSUING: &str = condition_types::ISSUING.name;
/// Marks the Secrets this controller writes, with the Certificate's name.
pub const CERTIFICATE_LABEL: &str = "mpanel.migrahosting.com/certificate";
/// How often an order in flight is looked at again.
const POLL: Duration = Duration::from_secs(1);
const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct Context<P> {
    pub client: Client,
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    /// The only namespace reconciled; all when `None`.
    pub namespace: Option<String>,
    pub dns01: Dns01<P>,
    pub issuers: Issuers,
    pub budget: Budget,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Drift detection interval.
    pub resync: Duration,
    /// Retries after Kubernetes API errors; failed orders back off by `status.failedAttempts`.
    pub backoff: Backoff,
    /// DnsZones: which one serves a name.
    pub dnszones: Store<DnsZone>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error(transparent)]
    Dns01(#[from] Dns01Error),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Acme(e) => e.reason(),
            Self::Dns01(e) => e.reason(),
            Self::Key(e) => e.reason(),
            Self::Issuer(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
            Self::Finalizer(inner) => finalizer_reason(inner, Self::reason),
        }
    }
}

/// Runs the controller until `shutdown` resolves; `dnszone_writer` feeds `ctx.dnszones`.
pub async fn run<P: DnsApi + 'static>(
    ctx: Arc<Context<P>>,
    dnszone_writer: reflector::store::Writer<DnsZone>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if !follow(dnszone_writer, scoped::<DnsZone>(&ctx.client, ctx.namespace.as_deref())).await {
        return;
    }
    let controller = Controller::new(
        scoped::<Certificate>(&ctx.client, ctx.namespace.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .with_config(ControllerConfig::default().concurrency(16));
    let certificates = controller.store();
    ctx.metrics.inventory.watch(KIND, certificates.clone(), Some(crate::inventory::CERTIFICATE_EXPIRY), |c| {
        c.status.as_ref()?.not_after.as_ref().map(|t| t.0.as_second())
    });
    controller
        .owns(
            scoped::<Secret>(&ctx.client, ctx.namespace.as_deref()),
            watcher::Config::default().labels(CERTIFICATE_LABEL),
        )
        .watches(scoped::<DnsZone>(&ctx.client, ctx.namespace.as_deref()), watcher::Config::default(), move |zone| {
            let ns = zone.namespace();
            certificates
                .state()
                .iter()
                .filter(|c| {
                    c.namespace() == ns
                        && c.spec.dns_names.iter().any(|n| dns01::zone_for([&zone], &Names::default(), n).is_some())
                })
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "Certificate reconcile ended with an error");
            }
        })
        .await;
}

async fn reconcile<P: DnsApi>(cert: Arc<Certificate>, ctx: Arc<Context<P>>) -> Result<Action, Error> {
    measured(
        KIND,
        &ctx.client,
        cert.as_ref(),
        &ctx.metrics,
        &ctx.backoff,
        Error::reason,
        reconcile_inner(cert.clone(), &ctx),
    )
    .await
}

fn error_policy<P: DnsApi>(cert: Arc<Certificate>, error: &Error, ctx: Arc<Context<P>>) -> Action {
    retry_later(KIND, cert.as_ref(), error.reason(), error, &ctx.backoff)
}

async fn reconcile_inner<P: DnsApi>(cert: Arc<Certificate>, ctx: &Context<P>) -> Result<Action, Error> {
    let api: Api<Certificate> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    // The cache can lag behind this controller's own last status write (a trigger from the Secret
    // it just wrote may run first), and acting on a stale orderURL would order twice or resume an
    // order already finished: read the object itself.
    let Some(cert) = api.get_opt(&cert.name_any()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let api = &api;
    reconcile_in_mode(
        api,
        cert,
        |step, message| {
            step.not_issued(reasons::INVALID_RECONCILE_MODE.name, message);
        },
        |cert, mode| async move { apply(api, &cert, mode, ctx).await },
        |cert, _| async move { cleanup(&cert, ctx).await },
    )
    .await
}

impl StatusOf for Certificate {
    type Status = CertificateStatus;
    type Phase = CertificatePhase;
    const FIELD_MANAGER: &'static str = FIELD_MANAGER;
    fn status(&self) -> Option<&CertificateStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &mut CertificateStatus) -> &mut Vec<mpanel_crds::conditions::Condition> {
        &mut status.conditions
    }
    fn observed_generation(status: &mut CertificateStatus) -> &mut Option<i64> {
        &mut status.observed_generation
    }
    fn phase(status: &mut CertificateStatus) -> &mut Option<CertificatePhase> {
        &mut status.phase
    }
}

type Step = super::Step<Certificate>;

impl Step {
    /// Issuing=False for `reason`, and Ready=False too unless a certificate still serves (`usable`).
    /// Returns whether Issuing changed.
    fn failed(&mut self, reason: &str, message: &str, usable: bool) -> bool {
        let news = self.set(Observation::new(ISSUING, false, reason, message.to_owned()));
        if usable {
            self.status.phase = Some(CertificatePhase::Ready);
        } else {
            self.set(Observation::new(READY, false, reason, message.to_owned()));
            self.status.phase = Some(CertificatePhase::Failed);
        }
        news
    }

    fn not_issued(&mut self, reason: &str, message: String) -> bool {
        self.set(Observation::new(ISSUING, false, reason, message.clone()));
        self.status.phase = Some(CertificatePhase::Failed);
        self.set(Observation::new(READY, false, reason, message))
    }
}

/// The certificate in the Secret, read with its key.
struct Current {
    issued: Issued,
    key: KeyPair,
}

/// Why a new certificate is needed, if it is.
fn needs_issuing(
    current: Option<&Current>,
    cert: &Certificate,
    now: Timestamp,
    renewal: Option<Timestamp>,
) -> Option<String> {
    let Some(current) = current else {
        return Some(format!("Secret {} holds no certificate yet", cert.spec.secret_name));
    };
    let wanted: std::collections::BTreeSet<String> =
        cert.spec.dns_names.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
    if current.issued.dns_names != wanted {
        return Some("the certificate's names differ from dnsNames".to_owned());
    }
    if !current.issued.key_matches {
        return Some("the certificate does not match the private key in the Secret".to_owned());
    }
    if !keys::fits(&current.key, &cert.spec.private_key) {
        return Some("the private key is not the algorithm or size privateKey asks for".to_owned());
    }
    if now >= current.issued.not_after {
        return Some(format!("the certificate expired at {}", current.issued.not_after));
    }
    match renewal {
        Some(at) if now >= at => Some(format!("renewal time {at} reached")),
        _ => None,
    }
}

/// Delay before the attempt after `failed` failures: 5 s doubling, at most 8 h.
fn retry_delay(failed: u32) -> Duration {
    Duration::from_secs(5).saturating_mul(1u32 << failed.saturating_sub(1).min(13)).min(Duration::from_secs(8 * 3600))
}

fn until(at: Timestamp, now: Timestamp) -> Duration {
    at.duration_since(now).try_into().unwrap_or(Duration::ZERO)
}

async fn apply<P: DnsApi>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let mut step = Step::new(cert);
    if let Err(e) = ctx.issuers.check(&cert.spec.issuer) {
        step.not_issued(e.reason(), e.to_string());
        step.write(api, cert).await?;
        return Ok(Action::await_change());
    }
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);

    // observe the Secret
    let secret = secrets.get_opt(&cert.spec.secret_name).await?;
    if let Some(s) = &secret
        && !is_ours(s, cert)
    {
        let message =
            format!("Secret {} exists and is not this Certificate's; it is left untouched", cert.spec.secret_name);
        if step.not_issued(reasons::SECRET_OWNED_ELSEWHERE.name, message.clone()) {
            publish(&ctx.recorder, cert, true, reasons::SECRET_OWNED_ELSEWHERE.name, "Observe", message).await;
        }
        step.write(api, cert).await?;
        return Ok(Action::requeue(resync_after(cert, ctx.resync)));
    }
    let current = secret.as_ref().and_then(read_secret);
    let renew_before = parse_duration(&cert.spec.renew_before).unwrap_or(DEFAULT_RENEW_BEFORE);
    let renewal = current.as_ref().map(|c| keys::renewal_time(c.issued.not_before, c.issued.not_after, renew_before));
    step.status.not_before = current.as_ref().map(|c| Time(c.issued.not_before));
    step.status.not_after = current.as_ref().map(|c| Time(c.issued.not_after));
    step.status.renewal_time = renewal.map(Time);
    let t = Timestamp::now();
    let need = needs_issuing(current.as_ref(), cert, t, renewal);
    let usable = current.as_ref().is_some_and(|c| c.issued.key_matches && t < c.issued.not_after);
    match (&need, usable) {
        (None, _) => {
            let c = current.as_ref().map(|c| c.issued.not_after.to_string()).unwrap_or_default();
            step.set(Observation::new(READY, true, reasons::ISSUED.name, format!("certificate valid until {c}")));
        }
        // a certificate that still serves stays Ready while its successor is obtained
        (Some(_), true) => {}
        // a Ready=False that says why the last attempt failed is kept until one succeeds
        (Some(why), false) => {
            if conditions::find(&step.status.conditions, READY).is_none_or(|c| c.status == "True") {
                step.set(Observation::new(READY, false, reasons::NOT_ISSUED.name, why.clone()));
            }
        }
    }

    let Some(order_url) = step.status.order_url.clone() else {
        let Some(why) = need else {
            // the last issuance's outcome (and its cleanup) stays readable until the next one
            let issued =
                conditions::find(&step.status.conditions, ISSUING).is_some_and(|c| c.reason == reasons::ISSUED.name);
            if !issued {
                step.set(Observation::new(
                    ISSUING,
                    false,
                    reasons::UP_TO_DATE.name,
                    "the Secret holds a valid certificate".to_owned(),
                ));
            }
            step.status.phase = Some(CertificatePhase::Ready);
            step.write(api, cert).await?;
            let resync = resync_after(cert, ctx.resync);
            let next = renewal.map(|r| until(r, t)).unwrap_or(resync);
            return Ok(Action::requeue(next.min(resync).max(Duration::from_secs(1))));
        };
        return order(api, cert, mode, step, why, usable, ctx).await;
    };
    let result = progress(api, cert, step, &order_url, current, usable, ctx).await;
    if let Err(e) = &result
        && !matches!(e, Error::Kube(_))
    {
        // the order stays in flight and is retried; the CA's or PowerDNS's words are shown meanwhile
        let mut step = Step::new(cert);
        let message = format!("order {order_url}: {e}");
        if step.set(Observation::new(ISSUING, true, e.reason(), message.clone())) {
            publish(&ctx.recorder, cert, true, e.reason(), "Issue", message).await;
        }
        step.write(api, cert).await?;
    }
    result
}

/// Places a new order, unless backoff, the budget or the mode says not to.
#[allow(clippy::too_many_arguments)]
async fn order<P: DnsApi>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mode: ReconcileMode,
    mut step: Step,
    why: String,
    usable: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let t = Timestamp::now();
    if mode == ReconcileMode::ObserveOnly {
        step.set(Observation::new(
            ISSUING,
            false,
            reasons::OBSERVE_ONLY.name,
            format!("{why} (ObserveOnly: not ordered)"),
        ));
        step.write(api, cert).await?;
        return Ok(Action::requeue(resync_after(cert, ctx.resync)));
    }
    // before the budget and the CA: no order, and nothing counted, for a name this namespace may
    // not certify
    let (zones, names) = namespace_zones(cert, ctx);
    let ns = cert.namespace().unwrap_or_default();
    let refused: Vec<Unorderable> = cert
        .spec
        .dns_names
        .iter()
        .filter_map(|n| dns01::orderable(zones.iter().map(Arc::as_ref), &names, &ns, n).err())
        .collect();
    if let Some(first) = refused.iter().find(|r| matches!(r, Unorderable::HeldElsewhere { .. })).or(refused.first()) {
        let reasons: Vec<String> = refused.iter().map(ToString::to_string).collect();
        let message = format!("{why}, but {}: no order is placed", reasons.join("; "));
        if step.failed(first.reason(), &message, usable) {
            publish(&ctx.recorder, cert, true, first.reason(), "Order", message).await;
        }
        step.write(api, cert).await?;
        // a DnsZone of this namespace changing brings it back sooner; a holder elsewhere going away does not
        return Ok(Action::requeue(resync_after(cert, ctx.resync)));
    }
    let failed = step.status.failed_attempts.unwrap_or(0);
    if failed > 0
        && let Some(last) = &step.status.last_failure_time
    {
        let next = last.0.checked_add(jiff::SignedDuration::try_from(retry_delay(failed)).unwrap_or_default());
        if let Ok(next) = next
            && next > t
        {
            // the Issuing condition keeps the failure's message until the retry
            step.write(api, cert).await?;
            return Ok(Action::requeue(until(next, t)));
        }
    }
    let sharing = |domain: &str| match names.holding(&ns, domain) {
        Holding::Held(_) => None,
        _ => Some(names.holders_within(domain)),
    };
    let orderer = budget::Orderer { namespace: &ns, sharing: &sharing };
    match ctx.budget.reserve(&cert.spec.dns_names, &orderer, t).await? {
        Verdict::Granted => {}
        Verdict::Exhausted { domain, used, free_at } | Verdict::ShareExhausted { domain, used, free_at, .. } => {
            let message = match (orderer.sharing)(&domain).map(|holders| budget::share(ctx.budget.limit, holders)) {
                None => format!(
                    "{why}, but the order budget of {domain} is spent ({used} orders in 7 days); next order possible at {free_at}"
                ),
                Some(share) => format!(
                    "{why}, but this namespace's share of the order budget of {domain} is spent ({used} of {share} orders in 7 days; \
                     it does not hold {domain} itself); next order possible at {free_at}"
                ),
            };
            if step.failed(reasons::ORDER_BUDGET_EXHAUSTED.name, &message, usable) {
                publish(&ctx.recorder, cert, true, reasons::ORDER_BUDGET_EXHAUSTED.name, "Order", message).await;
            }
            step.write(api, cert).await?;
            return Ok(Action::requeue(until(free_at, t).min(resync_after(cert, ctx.resync))));
        }
    }
    let acme = match ctx.issuers.account(&cert.spec.issuer).await {
        Ok(acme) => acme,
        Err(e) => return Err(failed_step(api, cert, step, e.reason(), e.to_string(), usable, ctx, e.into()).await),
    };
    match acme.new_order(&cert.spec.dns_names).await {
        Ok(view) => {
            step.status.order_url = Some(view.url.clone());
            step.status.phase = Some(CertificatePhase::Issuing);
            let message = format!("order {} placed: {why}", view.url);
            step.set(Observation::new(ISSUING, true, reasons::ORDER_PLACED.name, message.clone()));
            publish(&ctx.recorder, cert, false, reasons::ORDER_PLACED.name, "Order", message).await;
            step.write(api, cert).await?;
            Ok(Action::requeue(POLL))
        }
        Err(e) => Ok(attempt_failed(api, cert, step, e.reason(), e.to_string(), usable, ctx).await?),
    }
}

/// Moves the order in flight one step on.
async fn progress<P: DnsApi>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mut step: Step,
    order_url: &str,
    current: Option<Current>,
    usable: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let acme = ctx.issuers.account(&cert.spec.issuer).await?;
    let view = match acme.order(order_url).await {
        Ok(view) => view,
        Err(e) if e.is_order_gone() => {
            step.status.order_url = None;
            let message = format!("the CA no longer knows order {order_url}: {e}");
            return attempt_failed(api, cert, step, e.reason(), message, usable, ctx).await;
        }
        Err(e) => return Err(e.into()),
    };
    let next_key = next_key_name(cert);
    match view.phase {
        OrderPhase::Pending => {
            let waiting = match answer_challenges(cert, &view, acme.as_ref(), ctx).await {
                // the namespace lost its name while the order was in flight: the order is given up
                Err(Error::Dns01(e @ Dns01Error::NotGranted { .. })) => {
                    remove_challenges(cert, &view, ctx).await?;
                    step.status.order_url = None;
                    let message = format!("order {order_url} given up: {e}");
                    return attempt_failed(api, cert, step, e.reason(), message, usable, ctx).await;
                }
                other => other?,
            };
            let message = if waiting.is_empty() {
                "the CA is validating the DNS-01 challenges".to_owned()
            } else {
                format!("waiting for PowerDNS to serve {}", waiting.join(", "))
            };
            step.set(Observation::new(ISSUING, true, reasons::VALIDATING.name, message));
            step.status.phase = Some(CertificatePhase::Issuing);
            step.write(api, cert).await?;
            Ok(Action::requeue(POLL))
        }
        OrderPhase::Ready => {
            let key = order_key(cert, current.as_ref(), &next_key, ctx, true).await?;
            let Some(key) = key else {
                return Ok(Action::requeue(POLL));
            };
            let csr = keys::csr(&cert.spec.dns_names, &key)?;
            acme.finalize(order_url, &csr).await?;
            step.set(Observation::new(ISSUING, true, reasons::FINALIZING.name, format!("order {order_url} finalised")));
            step.write(api, cert).await?;
            Ok(Action::requeue(POLL))
        }
        OrderPhase::Processing => Ok(Action::requeue(POLL)),
        OrderPhase::Valid => {
            let Some(key) = order_key(cert, current.as_ref(), &next_key, ctx, false).await? else {
                step.status.order_url = None;
                let message = format!("the private key of order {order_url} was lost; ordering again");
                return attempt_failed(api, cert, step, reasons::KEY_LOST.name, message, usable, ctx).await;
            };
            let chain = acme.certificate(order_url).await?;
            let issued = keys::inspect(chain.as_bytes(), &key)?;
            if !issued.key_matches {
                step.status.order_url = None;
                let message = "the CA's certificate is not for the private key of the order".to_owned();
                return attempt_failed(api, cert, step, reasons::KEY_MISMATCH.name, message, usable, ctx).await;
            }
            write_tls_secret(cert, &chain, &key, ctx).await?;
            remove_challenges(cert, &view, ctx).await?;
            delete_next_key(cert, &next_key, ctx).await?;
            let renew_before = parse_duration(&cert.spec.renew_before).unwrap_or(DEFAULT_RENEW_BEFORE);
            let renewal = keys::renewal_time(issued.not_before, issued.not_after, renew_before);
            step.status.order_url = None;
            step.status.failed_attempts = None;
            step.status.not_before = Some(Time(issued.not_before));
            step.status.not_after = Some(Time(issued.not_after));
            step.status.renewal_time = Some(Time(renewal));
            step.status.phase = Some(CertificatePhase::Ready);
            let message = format!(
                "certificate {} issued for {}, valid until {}; challenge records removed",
                issued.serial,
                cert.spec.dns_names.join(", "),
                issued.not_after
            );
            step.set(Observation::new(
                READY,
                true,
                reasons::ISSUED.name,
                format!("certificate valid until {}", issued.not_after),
            ));
            step.set(Observation::new(ISSUING, false, reasons::ISSUED.name, message.clone()));
            publish(&ctx.recorder, cert, false, reasons::ISSUED.name, "Issue", message).await;
            step.write(api, cert).await?;
            Ok(Action::requeue(
                until(renewal, Timestamp::now()).min(resync_after(cert, ctx.resync)).max(Duration::from_secs(1)),
            ))
        }
        OrderPhase::Invalid => {
            remove_challenges(cert, &view, ctx).await?;
            step.status.order_url = None;
            let problem = view.problem.clone().unwrap_or_else(|| "the CA gave no reason".to_owned());
            let served = unserved_names(cert, ctx);
            let message = if served.is_empty() {
                format!("order {order_url} failed: {problem}")
            } else {
                format!(
                    "order {order_url} failed: {problem} (no DnsZone in this namespace serves {})",
                    served.join(", ")
                )
            };
            attempt_failed(api, cert, step, reasons::ORDER_FAILED.name, message, usable, ctx).await
        }
    }
}

/// Names of the Certificate that no DnsZone of its namespace serves.
fn unserved_names<P: DnsApi>(cert: &Certificate, ctx: &Context<P>) -> Vec<String> {
    let (zones, names) = namespace_zones(cert, ctx);
    cert.spec
        .dns_names
        .iter()
        .filter(|n| dns01::zone_for(zones.iter().map(Arc::as_ref), &names, n).is_none())
        .cloned()
        .collect()
}

/// The DnsZones of the Certificate's namespace, and the name index's decision (which sees them
/// all, also those its own watch has not delivered yet).
fn namespace_zones<P: DnsApi>(cert: &Certificate, ctx: &Context<P>) -> (Vec<Arc<DnsZone>>, Arc<Names>) {
    let ns = cert.namespace();
    let zones: Vec<Arc<DnsZone>> = ctx.dnszones.state().into_iter().filter(|z| z.namespace() == ns).collect();
    let names = ctx.names.names_with(zones.iter().map(|z| Claim::of_zone(z)));
    (zones, names)
}

/// Places each pending challenge's TXT value and tells the CA once our server serves it. A name
/// no DnsZone of the namespace serves gets no record: the CA is told anyway and its verdict is
/// what the status shows. Returns the records still waiting to be served.
async fn answer_challenges<P: DnsApi, A: AcmeApi>(
    cert: &Certificate,
    view: &OrderView,
    acme: &A,
    ctx: &Context<P>,
) -> Result<Vec<String>, Error> {
    let (zones, names) = namespace_zones(cert, ctx);
    let mut waiting = Vec::new();
    for authz in view.authorizations.iter().filter(|a| !a.settled) {
        let Some(challenge) = &authz.dns01 else { continue };
        if challenge.answered {
            continue;
        }
        let record = dns01::record_name(&authz.name);
        let values = [challenge.txt_value.clone()];
        if let Some(zone) = dns01::zone_for(zones.iter().map(Arc::as_ref), &names, &authz.name) {
            ctx.dns01.update(&zone, &record, &values, &[]).await?;
            if !ctx.dns01.served(&record, &values).await? {
                waiting.push(record);
                continue;
            }
        }
        acme.answer(&view.url, &challenge.url).await?;
    }
    Ok(waiting)
}

/// Takes every challenge value of `view` out of PowerDNS.
async fn remove_challenges<P: DnsApi>(cert: &Certificate, view: &OrderView, ctx: &Context<P>) -> Result<(), Error> {
    let (zones, names) = namespace_zones(cert, ctx);
    let mut by_record: BTreeMap<String, (dns01::ServingZone, Vec<String>)> = BTreeMap::new();
    for (name, value) in view.txt_values() {
        // our own values come out of a zone whatever its claim says now
        if let Some(zone) = dns01::zone_for(zones.iter().map(Arc::as_ref), &names, &name) {
            by_record.entry(dns01::record_name(&name)).or_insert_with(|| (zone, Vec::new())).1.push(value);
        }
    }
    for (record, (zone, values)) in by_record {
        ctx.dns01.update(&zone, &record, &[], &values).await?;
    }
    Ok(())
}

/// Records a failed attempt: the message verbatim in Issuing (and Ready, unless a certificate
/// still serves), one more failure, and a retry after the backoff.
async fn attempt_failed<P: DnsApi>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mut step: Step,
    reason: &str,
    message: String,
    usable: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let failed = step.status.failed_attempts.unwrap_or(0).saturating_add(1);
    step.status.failed_attempts = Some(failed);
    step.status.last_failure_time = Some(step.at.clone());
    step.failed(reason, &message, usable);
    publish(&ctx.recorder, cert, true, reason, "Issue", message).await;
    step.write(api, cert).await?;
    Ok(Action::requeue(retry_delay(failed)))
}

/// Like `attempt_failed`, for an error the controller's own backoff retries.
#[allow(clippy::too_many_arguments)]
async fn failed_step<P: DnsApi>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mut step: Step,
    reason: &str,
    message: String,
    usable: bool,
    ctx: &Context<P>,
    error: Error,
) -> Error {
    if step.failed(reason, &message, usable) {
        publish(&ctx.recorder, cert, true, reason, "Issue", message).await;
    }
    match step.write(api, cert).await {
        Ok(()) => error,
        Err(e) => e.into(),
    }
}

/// The Secret is this Certificate's: it controls it, or it carries its label and no controller
/// (left behind by an earlier Certificate of the same name with `deletionPolicy: Orphan`).
fn is_ours(secret: &Secret, cert: &Certificate) -> bool {
    let uid = cert.uid().unwrap_or_default();
    let controller = secret.owner_references().iter().find(|o| o.controller == Some(true));
    match controller {
        Some(owner) => owner.uid == uid,
        None => secret.labels().get(CERTIFICATE_LABEL) == Some(&cert.name_any()),
    }
}

fn read_secret(secret: &Secret) -> Option<Current> {
    let data = secret.data.as_ref()?;
    let key_pem = String::from_utf8(data.get("tls.key")?.0.clone()).ok()?;
    let key = keys::load(&key_pem).ok()?;
    let issued = keys::inspect(&data.get("tls.crt")?.0, &key).ok()?;
    Some(Current { issued, key })
}

fn next_key_name(cert: &Certificate) -> String {
    format!("{}-next-key", cert.name_any())
}

fn owned_meta(cert: &Certificate, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: cert.namespace(),
        labels: Some(keys::managed_labels(BTreeMap::from([(CERTIFICATE_LABEL.to_owned(), cert.name_any())]))),
        owner_references: cert.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The private key the order is finalised with: the Secret's current key when the policy is
/// `Never` and it fits, else the one kept in `<name>-next-key`, made there when `create`.
async fn order_key<P: DnsApi>(
    cert: &Certificate,
    current: Option<&Current>,
    next_key: &str,
    ctx: &Context<P>,
    create: bool,
) -> Result<Option<KeyPair>, Error> {
    let spec = &cert.spec.private_key;
    if spec.rotation_policy == RotationPolicy::Never
        && let Some(current) = current
        && keys::fits(&current.key, spec)
    {
        return Ok(Some(keys::load(&current.key.serialize_pem())?));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let stored = secrets.get_opt(next_key).await?;
    if let Some(stored) = &stored
        && let Some(pem) = stored.data.as_ref().and_then(|d| d.get("tls.key"))
        && let Ok(key) = keys::load(&String::from_utf8_lossy(&pem.0))
        && keys::fits(&key, spec)
    {
        return Ok(Some(key));
    }
    if !create {
        return Ok(None);
    }
    // a Secret of that name the operator did not make is never replaced
    keys::check_managed(stored.as_ref())?;
    let spec_owned = spec.clone();
    let key = crate::cpu_bound::run(move || keys::generate(&spec_owned)).await?;
    let secret = Secret {
        metadata: owned_meta(cert, next_key),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([("tls.key".to_owned(), ByteString(key.serialize_pem().into_bytes()))])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Some(key)),
        // a stale key of another size or algorithm: replace it
        Err(kube::Error::Api(s)) if s.code == 409 => {
            secrets.replace(next_key, &PostParams::default(), &secret).await?;
            Ok(Some(key))
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_next_key<P: DnsApi>(cert: &Certificate, next_key: &str, ctx: &Context<P>) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    match secrets.delete(next_key, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_tls_secret<P: DnsApi>(
    cert: &Certificate,
    chain: &str,
    key: &KeyPair,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let secret = Secret {
        metadata: owned_meta(cert, &cert.spec.secret_name),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(chain.as_bytes().to_vec())),
            ("tls.key".to_owned(), ByteString(key.serialize_pem().into_bytes())),
        ])),
        ..Secret::default()
    };
    let mut patch = serde_json::to_value(&secret).map_err(|e| KeyError::BadChain(e.to_string()))?;
    patch["apiVersion"] = "v1".into();
    patch["kind"] = "Secret".into();
    secrets.patch(&cert.spec.secret_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch)).await?;
    Ok(())
}

async fn cleanup<P: DnsApi>(cert: &Certificate, ctx: &Context<P>) -> Result<Action, Error> {
    if let Some(url) = cert.status.as_ref().and_then(|s| s.order_url.as_ref()) {
        // the challenge values can only be worked out from the order; an issuer that is no longer
        // configured must not keep the Certificate (and its namespace) from going away
        let acme = match ctx.issuers.account(&cert.spec.issuer).await {
            Ok(acme) => acme,
            Err(e @ IssuerError::Unknown { .. }) => {
                let note = format!("challenge records of order {url} may remain in PowerDNS: {e}");
                publish(&ctx.recorder, cert, true, e.reason(), "Cleanup", note).await;
                return orphan_or_delete_secret(cert, ctx).await;
            }
            Err(e) => return Err(e.into()),
        };
        match acme.order(url).await {
            Ok(view) => remove_challenges(cert, &view, ctx).await?,
            Err(e) if e.is_order_gone() => {}
            Err(e) => return Err(e.into()),
        }
    }
    orphan_or_delete_secret(cert, ctx).await
}

/// On deletion: `Delete` removes the Secret; `Orphan` drops the owner reference so it stays.
async fn orphan_or_delete_secret<P: DnsApi>(cert: &Certificate, ctx: &Context<P>) -> Result<Action, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let Some(secret) = secrets.get_opt(&cert.spec.secret_name).await? else {
        return Ok(Action::await_change());
    };
    let uid = cert.uid().unwrap_or_default();
    if !secret.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(Action::await_change());
    }
    match cert.spec.deletion_policy {
        DeletionPolicy::Delete => {
            secrets.delete(&cert.spec.secret_name, &DeleteParams::default()).await?;
        }
        DeletionPolicy::Orphan => {
            // without the owner reference the garbage collector keeps the Secret
            let kept: Vec<_> = secret.owner_references().iter().filter(|o| o.uid != uid).cloned().collect();
            let patch = serde_json::json!({"metadata": {"ownerReferences": kept}});
            secrets.patch(&cert.spec.secret_name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_at_seconds_and_grow_to_hours() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(10), Duration::from_secs(5 * 512));
        assert_eq!(retry_delay(40), Duration::from_secs(8 * 3600));
    }
}
