//! The Certificate controller: obtains a certificate from an ACME CA with DNS-01 through our own
//! PowerDNS and keeps it in a `kubernetes.io/tls` Secret, renewing it before it expires.
//!
//! A reconcile never waits for the CA. It observes the Secret and, when an order is in flight, the
//! order (its URL is kept in `status.orderURL`), then takes the one step the order needs: place the
//! challenge records and tell the CA to look, finalise with a CSR, or collect the chain. A restarted
//! operator resumes the order it finds in the status. The key of an order being finalised is kept
//! in the Secret `<name>-next-key` until the chain is stored, so a crash loses nothing.

pub mod budget;
mod challenges;
mod deletion;
mod delivery;
pub mod dns01;
pub mod issuers;
pub mod keys;
mod observe;
mod order;
mod progress;
mod secrets;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use mpanel_crds::certificate::{Certificate, CertificatePhase, CertificateStatus};
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::reasons::{self, condition_types};

use super::{Changes, Hub, Reconcile, ReconcileError, labelled, publish, read_again, resync_after};
use crate::controllers::During;
use crate::names::Names;
use crate::providers::acme::AcmeError;
use crate::providers::powerdns::DnsApi;
use crate::providers::powerdns::PowerDns;
use crate::providers::proxmox::Proxmox;
use crate::providers::proxmox_agent::GuestAgent;
use budget::Budget;
use deletion::cleanup;
use delivery::Material;
use dns01::{Dns01, Dns01Error};
use issuers::{AcmeAccounts, IssuerError, Issuers};
use keys::KeyError;
use observe::{Observed, is_ours};
use progress::progress;

pub const KIND: &str = "Certificate";
const FIELD_MANAGER: &str = "mpanel-certificate";
const ISSUING: &str = condition_types::ISSUING.name;
/// Marks the Secrets this controller writes, with the Certificate's name.
pub const CERTIFICATE_LABEL: &str = "mpanel.migrahosting.com/certificate";
/// How often an order in flight is looked at again.
const POLL: Duration = Duration::from_secs(1);
const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Certificates reconciled at once. A reconcile mostly waits (for PowerDNS to serve a value, for
/// the CA between the follow delays, for the ACME throttle), so many Certificates applied together
/// are not held back by the count of slots; the CA sees no more than the ACME limits let through.
const CONCURRENCY: u16 = 64;

/// What a Certificate is issued and delivered through: PowerDNS for the DNS-01 records, the ACME
/// accounts of the configured issuers, and Proxmox's guest agent for deliveries into CloudPods.
pub trait Providers: Send + Sync + 'static {
    type Dns: DnsApi + 'static;
    type Accounts: AcmeAccounts;
    type Agent: GuestAgent + 'static;
}

/// The operator's providers.
pub struct Live;

impl Providers for Live {
    type Dns = PowerDns;
    type Accounts = Issuers;
    type Agent = Proxmox;
}

/// The ACME account type `P`'s issuers hand out.
pub(super) type Account<P> = <<P as Providers>::Accounts as AcmeAccounts>::Account;

/// The Certificate controller's own state; the rest of its context is shared by every controller.
pub struct State<P: Providers> {
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    pub dns01: Dns01<P::Dns>,
    pub issuers: P::Accounts,
    pub budget: Budget,
    /// DnsZones: which one serves a name.
    pub dnszones: Store<DnsZone>,
    /// The Proxmox API, for delivering certificates into CloudPods through the guest agent; `None`
    /// without a `proxmox` configuration.
    pub guest_agent: Option<P::Agent>,
    /// Test-only fault point (`MPANEL_FAULT_EXIT_AFTER=order`): exit the process right after a new
    /// order's URL is stored in the status, before anything else is done with the order.
    pub exit_after_order: bool,
}

pub type Context<P> = super::Context<State<P>>;

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
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Acme(e) => e.reason(),
            Self::Dns01(e) => e.reason(),
            Self::Key(e) => e.reason(),
            Self::Issuer(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }
}

/// Runs the controller until `shutdown` resolves; `dnszone_writer` feeds `ctx.dnszones`.
/// What the Certificate controller follows, taken from the operator's one watch per kind.
pub struct Watches {
    certificates: (Changes<Certificate>, Store<Certificate>),
    secrets: Changes<PartialObjectMeta<Secret>>,
    dnszones: Changes<DnsZone>,
    cloudpods: Changes<CloudPod>,
}

impl Watches {
    pub fn new(hub: &Hub) -> Self {
        Self {
            certificates: hub.primary(),
            secrets: hub.secret_changes(),
            dnszones: hub.changes(),
            cloudpods: hub.changes(),
        }
    }
}

pub async fn run<P: Providers>(
    ctx: Arc<Context<P>>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if !super::ready(&ctx.dnszones).await {
        return;
    }
    let Watches { certificates: (changes, certificates), secrets, dnszones, cloudpods } = watches;
    // the store sees every change; reconciles start on changes of intent only, not on this
    // controller's own status writes: each reconcile asks for the next one itself (an order in
    // flight is looked at again at once or after `POLL`), and a status write of one step must not
    // start another reconcile that asks the CA about the order in between
    let controller = Controller::for_shared_stream(super::on_intent(changes), certificates.clone())
        .with_config(ControllerConfig::default().concurrency(CONCURRENCY));
    let delivering = certificates.clone();
    ctx.metrics.inventory.watch(KIND, certificates.clone(), Some(crate::inventory::CERTIFICATE_EXPIRY), |c| {
        c.status.as_ref()?.not_after.as_ref().map(|t| t.0.as_second())
    });
    let controller = controller
        // the Secrets it writes carry its label
        .owns_shared_stream(labelled(secrets, CERTIFICATE_LABEL))
        .watches_shared_stream(dnszones, move |zone| {
            let ns = zone.namespace();
            certificates
                .state()
                .iter()
                .filter(|c| {
                    c.namespace() == ns
                        && c.spec
                            .dns_names
                            .iter()
                            .any(|n| dns01::zone_for([zone.as_ref()], &Names::default(), n).is_some())
                })
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        // a CloudPod of a Certificate's own namespace named in its deliverTo
        .watches_shared_stream(cloudpods, move |pod| {
            let (ns, name) = (pod.namespace(), pod.name_any());
            delivering
                .state()
                .iter()
                .filter(|c| c.namespace() == ns && c.spec.deliver_to.iter().any(|t| t.cloud_pod == name))
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        });
    super::run(ctx, controller, shutdown).await;
}

impl<P: Providers> Reconcile<Certificate> for State<P> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<P>,
        api: &Api<Certificate>,
        cert: Arc<Certificate>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &cert, mode, ctx).await
    }

    async fn cleanup(
        ctx: &Context<P>,
        _: &Api<Certificate>,
        cert: Arc<Certificate>,
        _: ReconcileMode,
    ) -> Result<Action, Error> {
        cleanup(&cert, ctx).await
    }

    fn invalid_mode(step: &mut Step, message: String) {
        step.not_issued(reasons::INVALID_RECONCILE_MODE.name, message);
    }

    // The cache can lag behind this controller's own last status write (a trigger from the Secret
    // it just wrote may run first), and acting on a stale orderURL would order twice or resume an
    // order already finished: read the object itself.
    async fn current(
        api: &Api<Certificate>,
        cached: Arc<Certificate>,
    ) -> Result<Option<Arc<Certificate>>, super::KubeCall> {
        read_again(api, cached).await
    }
}

super::status_of!(Certificate, CertificateStatus, CertificatePhase, FIELD_MANAGER);

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

/// Delay before the attempt after `failed` failures: 5 s doubling, at most 8 h.
pub(super) fn retry_delay(failed: u32) -> Duration {
    Duration::from_secs(5).saturating_mul(1u32 << failed.saturating_sub(1).min(13)).min(Duration::from_secs(8 * 3600))
}

pub(super) fn until(at: Timestamp, now: Timestamp) -> Duration {
    at.duration_since(now).try_into().unwrap_or(Duration::ZERO)
}

async fn apply<P: Providers>(
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
    let secret =
        secrets.get_opt(&cert.spec.secret_name).await.during(format!("reading Secret {}", cert.spec.secret_name))?;
    if let Some(s) = &secret
        && !is_ours(s, cert)
    {
        return secret_owned_elsewhere(api, cert, step, ctx).await;
    }
    let observed = observe::observe(secret.as_ref(), cert, &mut step, ctx.clock.now());
    observe::show_readiness(&mut step, &observed);

    let Some(order_url) = step.status.order_url.clone() else {
        let Observed { need, usable, renewal, at, current } = observed;
        let Some(why) = need else {
            let material = secret.as_ref().zip(current.as_ref()).and_then(|(s, c)| Material::of(s, &c.issued));
            return up_to_date(api, cert, mode, step, (renewal, at), material, ctx).await;
        };
        return order::order(api, cert, mode, step, why, usable, ctx).await;
    };
    let result = progress(api, cert, step, &order_url, observed.current, observed.usable, ctx).await;
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

/// The Secret is someone else's: nothing is issued into it.
async fn secret_owned_elsewhere<P: Providers>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mut step: Step,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let message =
        format!("Secret {} exists and is not this Certificate's; it is left untouched", cert.spec.secret_name);
    if step.not_issued(reasons::SECRET_OWNED_ELSEWHERE.name, message.clone()) {
        publish(&ctx.recorder, cert, true, reasons::SECRET_OWNED_ELSEWHERE.name, "Observe", message).await;
    }
    step.write(api, cert).await?;
    Ok(Action::requeue(resync_after(cert, ctx.resync)))
}

/// No order in flight and none needed: the certificate is looked at again at its renewal time.
/// It is delivered to the CloudPods of `deliverTo` that do not hold it yet.
async fn up_to_date<P: Providers>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mode: ReconcileMode,
    mut step: Step,
    (renewal, t): (Option<Timestamp>, Timestamp),
    material: Option<Material>,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    // the last issuance's outcome (and its cleanup) stays readable until the next one
    let issued = conditions::find(&step.status.conditions, ISSUING).is_some_and(|c| c.reason == reasons::ISSUED.name);
    if !issued {
        step.set(Observation::new(
            ISSUING,
            false,
            reasons::UP_TO_DATE.name,
            "the Secret holds a valid certificate".to_owned(),
        ));
    }
    step.status.phase = Some(CertificatePhase::Ready);
    let retry = match &material {
        Some(material) => delivery::deliver(cert, material, mode, &mut step, ctx).await?,
        None => None,
    };
    step.write(api, cert).await?;
    let resync = resync_after(cert, ctx.resync);
    let next = renewal.map(|r| until(r, t)).unwrap_or(resync);
    let next = retry.map_or(next, |r| next.min(r));
    Ok(Action::requeue(next.min(resync).max(Duration::from_secs(1))))
}

/// Records a failed attempt: the message verbatim in Issuing (and Ready, unless a certificate
/// still serves), one more failure, and a retry after the backoff.
pub(super) async fn attempt_failed<P: Providers>(
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
pub(super) async fn failed_step<P: Providers>(
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

#[cfg(test)]
mod reconcile_tests;
