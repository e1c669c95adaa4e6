//! The DnsZone controller: converges a PowerDNS zone to its DnsZone.
//!
//! Each reconcile observes the zone first, expresses what differs as conditions, then writes only
//! what differs (whole-rrset REPLACE/DELETE in one atomic PATCH); a resync of an unchanged zone
//! makes no write. A zone that exists but does not carry this object's UID as its account is a
//! Conflict and is never written. Nothing is written at all unless the name index granted this
//! object's claim on its zone (no other namespace holds the name, a name inside it or above it).

mod act;
mod claim;
mod deletion;
mod observe;
mod pass;
pub mod records;
mod txt;

use std::ops::ControlFlow;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::dnszone::{DnsZone, DnsZonePhase, DnsZoneStatus, dkim_secret_name};
use mpanel_crds::reasons::{self, condition_types};

use super::{Changes, Hub, Reconcile, ReconcileError, resync_after};
use crate::providers::powerdns::{DnsApi, PowerDnsError, Zone};
use deletion::cleanup;
use pass::Pass;
use records::Wanted;

pub const KIND: &str = "DnsZone";
const FIELD_MANAGER: &str = "mpanel-dnszone";
const PROGRAMMED: &str = condition_types::PROGRAMMED.name;
const CONFLICT: &str = condition_types::CONFLICT.name;
/// Reconciles at once: four times PowerDNS's default in-flight cap, since a reconcile spends most
/// of its time on the API server (finalizer, status, Event) and the others keep PowerDNS busy
/// meanwhile.
const CONCURRENCY: u16 = 128;

/// The DnsZone controller's own state; the rest of its context is shared by every controller.
pub struct State<P> {
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    pub dns: P,
    /// CloudPods, for records that follow a CloudPod's address.
    pub cloudpods: Store<CloudPod>,
}

pub type Context<P> = super::Context<State<P>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    PowerDns(#[from] PowerDnsError),
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::PowerDns(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }
}

/// Runs the controller until `shutdown` resolves.
/// What the DnsZone controller follows, taken from the operator's one watch per kind.
pub struct Watches {
    zones: (Changes<DnsZone>, Store<DnsZone>),
    secrets: Changes<PartialObjectMeta<Secret>>,
    cloudpods: Changes<CloudPod>,
}

impl Watches {
    pub fn new(hub: &Hub) -> Self {
        Self { zones: hub.primary(), secrets: hub.secret_changes(), cloudpods: hub.changes() }
    }
}

pub async fn run<P: DnsApi + 'static>(
    ctx: Arc<Context<P>>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if !super::ready(&ctx.cloudpods).await {
        return;
    }
    let Watches { zones: (changes, zones), secrets, cloudpods } = watches;
    // the store sees every change; reconciles start on changes of intent only, not on the
    // controller's own status writes
    let controller = Controller::for_shared_stream(super::on_intent(changes), zones.clone())
        .with_config(ControllerConfig::default().concurrency(CONCURRENCY));
    ctx.metrics.inventory.watch(KIND, zones.clone(), None, |_| None);
    let with_dkim_keys = zones.clone();
    let controller = controller
        // the DKIM keys the operator makes for a zone's mail domain are in its Secret dkim-<zone>
        .watches_shared_stream(secrets, move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            with_dkim_keys
                .state()
                .iter()
                .filter(|z| z.namespace() == ns && dkim_secret_name(&z.spec.zone) == name)
                .map(|z| ObjectRef::from_obj(z.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(cloudpods, move |pod| {
            let (ns, name) = (pod.namespace(), pod.name_any());
            zones
                .state()
                .iter()
                .filter(|z| {
                    z.namespace() == ns
                        && z.spec.records.iter().any(|r| r.cloud_pod_ref.as_ref().is_some_and(|p| p.name == name))
                })
                .map(|z| ObjectRef::from_obj(z.as_ref()))
                .collect::<Vec<_>>()
        });
    super::run(ctx, controller, shutdown).await;
}

impl<P: DnsApi + 'static> Reconcile<DnsZone> for State<P> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<P>,
        api: &Api<DnsZone>,
        zone: Arc<DnsZone>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &zone, mode, ctx).await
    }

    async fn cleanup(
        ctx: &Context<P>,
        _: &Api<DnsZone>,
        zone: Arc<DnsZone>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        cleanup(&zone, mode, ctx).await
    }

    fn invalid_mode(step: &mut super::Step<DnsZone>, message: String) {
        step.set(Observation::new(READY, false, reasons::INVALID_RECONCILE_MODE.name, message));
    }
}

super::status_of!(DnsZone, DnsZoneStatus, DnsZonePhase, FIELD_MANAGER);

async fn apply<P: DnsApi>(
    api: &Api<DnsZone>,
    zone: &DnsZone,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let mut pass = Pass::new(api, zone, ctx);
    let requeue = Action::requeue(resync_after(zone, ctx.resync));

    let dkim_keys = observe::generated_dkim_keys(zone, &ctx.client).await?;
    let wanted = match observe::wanted_records(zone, ctx, &dkim_keys) {
        Ok(wanted) => wanted,
        Err(invalid) => {
            pass.not_ready(Some(DnsZonePhase::Failed), reasons::INVALID_RECORD.name, invalid.to_string());
            pass.write().await?;
            return Ok(Action::await_change());
        }
    };

    // the name first: a public suffix, or a zone inside or above another namespace's name, is never written
    if let Some(next) = claim::refused(&mut pass, &requeue).await? {
        pass.write().await?;
        return Ok(next);
    }

    // observe
    let observed = match ctx.dns.zone(&pass.name).await {
        Ok(observed) => observed,
        Err(e) => return Err(pass.fail(e).await),
    };
    let observed = match observed {
        Some(existing) if existing.account != zone.uid().unwrap_or_default() => {
            observe::owned_elsewhere(&mut pass).await;
            pass.write().await?;
            return Ok(requeue);
        }
        Some(existing) => Some(existing),
        None if mode == ReconcileMode::ObserveOnly => None,
        None => match act::create_zone(&pass, &wanted).await {
            Ok(created) => created,
            Err(e) => return Err(pass.fail(e).await),
        },
    };
    let owned = format!("zone {} belongs to this object", pass.name);
    pass.set(Observation::new(CONFLICT, false, reasons::OWNED.name, owned));

    // diff, then act only on what differs
    let Some(current) = observed else {
        let message = format!("zone {} does not exist in PowerDNS (ObserveOnly: not created)", pass.name);
        pass.not_ready(Some(DnsZonePhase::Pending), reasons::ZONE_MISSING.name, message);
        pass.write().await?;
        return Ok(requeue);
    };
    let mut patch = records::changes(&wanted, &current.rrsets, zone.spec.policy);
    patch.extend(records::soa_change(&zone.spec, &current.rrsets));
    let current = if patch.is_empty() {
        if pass.status.last_sync_time.is_none() {
            pass.status.last_sync_time = Some(pass.t.clone());
        }
        current
    } else if mode == ReconcileMode::ObserveOnly {
        let message = format!("{} rrsets differ from the spec (ObserveOnly: not written)", patch.len());
        // the zone exists and is served as it is: the phase stays what it was
        pass.not_ready(None, reasons::OUT_OF_SYNC.name, message);
        pass.write().await?;
        return Ok(requeue);
    } else {
        match act::patch_rrsets(&mut pass, &patch).await? {
            ControlFlow::Continue(after) => after,
            ControlFlow::Break(next) => return Ok(next),
        }
    };
    report(&mut pass, &wanted, dkim_keys.waiting, &current);
    pass.write().await?;
    Ok(requeue)
}

/// Sets the status of a zone whose rrsets are in sync: Programmed, then Ready unless a record waits
/// for a CloudPod's address or a DKIM key.
fn report<P: DnsApi>(pass: &mut Pass<'_, P>, wanted: &Wanted, dkim_waiting: Option<String>, current: &Zone) {
    let count = u32::try_from(wanted.rrsets.len()).unwrap_or(u32::MAX);
    pass.set(Observation::new(PROGRAMMED, true, reasons::SYNCED.name, format!("{count} rrsets in sync")));
    if !wanted.waiting_for.is_empty() {
        let message = format!("waiting for the address of CloudPod {}", wanted.waiting_for.join(", "));
        pass.set(Observation::new(READY, false, reasons::WAITING_FOR_CLOUD_POD.name, message));
        pass.status.phase = Some(DnsZonePhase::Pending);
    } else if let Some(waiting) = dkim_waiting {
        pass.set(Observation::new(READY, false, reasons::WAITING_FOR_DKIM_KEY.name, waiting));
        pass.status.phase = Some(DnsZonePhase::Pending);
    } else {
        let message = format!("zone {} is served with {count} rrsets", pass.name);
        pass.set(Observation::new(READY, true, reasons::READY.name, message));
        pass.status.phase = Some(DnsZonePhase::Ready);
    }
    pass.status.records = Some(count);
    pass.status.serial = Some(current.serial);
    pass.status.observed_generation = pass.generation;
}

#[cfg(test)]
mod reconcile_tests;
