//! The DnsZone controller: converges a PowerDNS zone to its DnsZone.
//!
//! Each reconcile observes the zone first, expresses what differs as conditions, then writes only
//! what differs (whole-rrset REPLACE/DELETE in one atomic PATCH); a resync of an unchanged zone
//! makes no write. A zone that exists but does not carry this object's UID as its account is a
//! Conflict and is never written. Nothing is written at all unless the name index granted this
//! object's claim on its zone (no other namespace holds the name, a name inside it or above it).

pub mod records;
mod txt;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::{DnsZone, DnsZonePhase, DnsZoneStatus, ZoneKind, dkim_secret_name};
use mpanel_crds::reasons::{self, condition_types};

use super::{
    Backoff, StatusOf, finalizer_reason, follow, measured, now, publish, reconcile_in_mode, resync_after, retry_later,
    scoped, write_changed_status,
};
use crate::metrics::Metrics;
use crate::names::Claim;
use crate::providers::powerdns::{DnsApi, NewZone, PowerDnsError, RrSet, canonical};
use records::Wanted;

use super::mailbox::dkim;

pub const KIND: &str = "DnsZone";
const FIELD_MANAGER: &str = "mpanel-dnszone";
const PROGRAMMED: &str = condition_types::PROGRAMMED.name;
const CONFLICT: &str = condition_types::CONFLICT.name;

pub struct Context<P> {
    pub client: Client,
    /// Which namespace holds which DNS name, decided over the whole cluster.
    pub names: crate::names::NameIndex,
    /// The only namespace reconciled; all when `None`.
    pub namespace: Option<String>,
    pub dns: P,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Drift detection interval.
    pub resync: Duration,
    pub backoff: Backoff,
    /// CloudPods, for records that follow a CloudPod's address.
    pub cloudpods: Store<CloudPod>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    PowerDns(#[from] PowerDnsError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::PowerDns(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
            Self::Finalizer(inner) => finalizer_reason(inner, Self::reason),
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run<P: DnsApi + 'static>(
    ctx: Arc<Context<P>>,
    cloudpod_writer: reflector::store::Writer<CloudPod>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if !follow(cloudpod_writer, scoped::<CloudPod>(&ctx.client, ctx.namespace.as_deref())).await {
        return;
    }
    let controller = Controller::new(
        scoped::<DnsZone>(&ctx.client, ctx.namespace.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .with_config(ControllerConfig::default().concurrency(32));
    let zones = controller.store();
    ctx.metrics.inventory.watch(KIND, zones.clone(), None, |_| None);
    let with_dkim_keys = zones.clone();
    controller
        // the DKIM keys the operator makes for a zone's mail domain are in its Secret dkim-<zone>
        .watches_stream(super::secret_changes(&ctx.client, ctx.namespace.as_deref()), move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            with_dkim_keys
                .state()
                .iter()
                .filter(|z| z.namespace() == ns && dkim_secret_name(&z.spec.zone) == name)
                .map(|z| ObjectRef::from_obj(z.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches(scoped::<CloudPod>(&ctx.client, ctx.namespace.as_deref()), watcher::Config::default(), move |pod| {
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
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "DnsZone reconcile ended with an error");
            }
        })
        .await;
}

async fn reconcile<P: DnsApi>(zone: Arc<DnsZone>, ctx: Arc<Context<P>>) -> Result<Action, Error> {
    measured(
        KIND,
        &ctx.client,
        zone.as_ref(),
        &ctx.metrics,
        &ctx.backoff,
        Error::reason,
        reconcile_inner(zone.clone(), &ctx),
    )
    .await
}

fn error_policy<P: DnsApi>(zone: Arc<DnsZone>, error: &Error, ctx: Arc<Context<P>>) -> Action {
    retry_later(KIND, zone.as_ref(), error.reason(), error, &ctx.backoff)
}

async fn reconcile_inner<P: DnsApi>(zone: Arc<DnsZone>, ctx: &Context<P>) -> Result<Action, Error> {
    let api: Api<DnsZone> = Api::namespaced(ctx.client.clone(), &zone.namespace().unwrap_or_default());
    let api = &api;
    reconcile_in_mode(
        api,
        zone,
        |step, message| {
            step.set(Observation::new(READY, false, reasons::INVALID_RECONCILE_MODE.name, message));
        },
        |zone, mode| async move { apply(api, &zone, mode, ctx).await },
        |zone, mode| async move { cleanup(&zone, mode, ctx).await },
    )
    .await
}

impl StatusOf for DnsZone {
    type Status = DnsZoneStatus;
    type Phase = DnsZonePhase;
    const FIELD_MANAGER: &'static str = FIELD_MANAGER;
    fn status(&self) -> Option<&DnsZoneStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &mut DnsZoneStatus) -> &mut Vec<mpanel_crds::conditions::Condition> {
        &mut status.conditions
    }
    fn observed_generation(status: &mut DnsZoneStatus) -> &mut Option<i64> {
        &mut status.observed_generation
    }
    fn phase(status: &mut DnsZoneStatus) -> &mut Option<DnsZonePhase> {
        &mut status.phase
    }
}

/// The rrsets a new zone starts with; the apex NS set comes from `nameservers`.
fn initial_rrsets(wanted: &Wanted, zone: &str) -> Vec<RrSet> {
    wanted
        .rrsets
        .iter()
        .filter(|((name, rtype), _)| !(name == zone && rtype == "NS"))
        .map(|((name, rtype), want)| RrSet {
            changetype: None,
            ..RrSet::replace(name.clone(), rtype.clone(), want.ttl, want.contents.iter().cloned())
        })
        .collect()
}

async fn apply<P: DnsApi>(
    api: &Api<DnsZone>,
    zone: &DnsZone,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let generation = zone.metadata.generation;
    let ns = zone.namespace().unwrap_or_default();
    let uid = zone.uid().unwrap_or_default();
    let name = canonical(&zone.spec.zone);
    let was = zone.status.clone().unwrap_or_default();
    let mut status = was.clone();
    let t = now();
    let set = |status: &mut DnsZoneStatus, o: Observation| conditions::set(&mut status.conditions, o, generation, &t);
    let requeue = Action::requeue(resync_after(zone, ctx.resync));

    let dkim_keys = generated_dkim_keys(zone, &ctx.client).await?;
    let wanted = match records::wanted(&zone.spec, |pod| {
        ctx.cloudpods.get(&ObjectRef::new(pod).within(&ns)).and_then(|cp| cp.status.as_ref()?.ip_address.clone())
    })
    .and_then(|mut wanted| {
        for (selector, public_key) in &dkim_keys.keys {
            records::add_dkim(&mut wanted, &zone.spec.zone, selector, public_key)?;
        }
        Ok(wanted)
    }) {
        Ok(wanted) => wanted,
        Err(invalid) => {
            not_ready(
                &mut status,
                generation,
                &t,
                Some(DnsZonePhase::Failed),
                reasons::INVALID_RECORD.name,
                invalid.to_string(),
            );
            write_changed_status(api, zone, &status).await?;
            return Ok(Action::await_change());
        }
    };

    // the name first: a public suffix, or a zone inside or above another namespace's name, is never written
    if crate::names::is_public_suffix(&zone.spec.zone) {
        let plain = crate::names::plain(&zone.spec.zone);
        let message =
            format!("zone {plain} is a public suffix; a zone must be a registered domain or a name under one");
        if not_ready(
            &mut status,
            generation,
            &t,
            Some(DnsZonePhase::Failed),
            reasons::PUBLIC_SUFFIX.name,
            message.clone(),
        ) {
            publish(&ctx.recorder, zone, true, reasons::PUBLIC_SUFFIX.name, "Claim", message).await;
        }
        write_changed_status(api, zone, &status).await?;
        return Ok(Action::await_change());
    }
    let claim = Claim::of_zone(zone);
    let acted_on = claim.precedence.acted_on();
    let mut names = ctx.names.names_with([claim]);
    if names.granted(&zone.spec.zone, &uid) && !acted_on {
        // the first write: decided over what the API server holds, not the watches
        names = ctx.names.names_fresh(&ctx.client).await?;
    }
    if !names.granted(&zone.spec.zone, &uid) {
        let plain = crate::names::plain(&zone.spec.zone);
        let message =
            format!("zone {plain} is inside or above a name another namespace holds; nothing was written to PowerDNS");
        let new =
            set(&mut status, Observation::new(CONFLICT, true, reasons::NAME_HELD_ELSEWHERE.name, message.clone()));
        not_ready(
            &mut status,
            generation,
            &t,
            Some(DnsZonePhase::Conflict),
            reasons::NAME_HELD_ELSEWHERE.name,
            message.clone(),
        );
        if new {
            publish(&ctx.recorder, zone, true, reasons::NAME_HELD_ELSEWHERE.name, "Claim", message).await;
        }
        write_changed_status(api, zone, &status).await?;
        // the holder may go away: looked at again at the next resync
        return Ok(requeue);
    }

    // observe
    let observed = match ctx.dns.zone(&name).await {
        Ok(observed) => observed,
        Err(e) => return fail(api, zone, status, e, ctx).await,
    };
    let observed = match observed {
        Some(existing) if existing.account != uid => {
            // the account is another object's UID: not shown
            let message =
                format!("zone {name} already exists in PowerDNS and is not this object's; it is left untouched");
            let new =
                set(&mut status, Observation::new(CONFLICT, true, reasons::ZONE_OWNED_ELSEWHERE.name, message.clone()));
            set(&mut status, Observation::new(READY, false, reasons::CONFLICT.name, message.clone()));
            status.phase = Some(DnsZonePhase::Conflict);
            status.observed_generation = generation;
            if new {
                publish(&ctx.recorder, zone, true, reasons::CONFLICT.name, "Observe", message).await;
            }
            write_changed_status(api, zone, &status).await?;
            return Ok(requeue);
        }
        Some(existing) => Some(existing),
        None if mode == ReconcileMode::ObserveOnly => None,
        None => {
            let new_zone = NewZone {
                name: name.clone(),
                kind: match zone.spec.kind {
                    ZoneKind::Native => "Native",
                    ZoneKind::Master => "Master",
                }
                .to_owned(),
                nameservers: zone.spec.nameservers.iter().map(|n| canonical(&n.to_ascii_lowercase())).collect(),
                account: uid.clone(),
                soa_edit_api: "DEFAULT".to_owned(),
                rrsets: initial_rrsets(&wanted, &name),
            };
            if let Err(e) = ctx.dns.create_zone(&new_zone).await {
                return fail(api, zone, status, e, ctx).await;
            }
            publish(
                &ctx.recorder,
                zone,
                false,
                reasons::CREATED.name,
                "CreateZone",
                format!("created zone {name} in PowerDNS"),
            )
            .await;
            match ctx.dns.zone(&name).await {
                Ok(created) => created,
                Err(e) => return fail(api, zone, status, e, ctx).await,
            }
        }
    };
    set(
        &mut status,
        Observation::new(CONFLICT, false, reasons::OWNED.name, format!("zone {name} belongs to this object")),
    );

    // diff, then act only on what differs
    let Some(mut current) = observed else {
        let message = format!("zone {name} does not exist in PowerDNS (ObserveOnly: not created)");
        not_ready(&mut status, generation, &t, Some(DnsZonePhase::Pending), reasons::ZONE_MISSING.name, message);
        write_changed_status(api, zone, &status).await?;
        return Ok(requeue);
    };
    let mut patch = records::changes(&wanted, &current.rrsets, zone.spec.policy);
    patch.extend(records::soa_change(&zone.spec, &current.rrsets));
    if !patch.is_empty() {
        if mode == ReconcileMode::ObserveOnly {
            let message = format!("{} rrsets differ from the spec (ObserveOnly: not written)", patch.len());
            // the zone exists and is served as it is: the phase stays what it was
            not_ready(&mut status, generation, &t, None, reasons::OUT_OF_SYNC.name, message);
            write_changed_status(api, zone, &status).await?;
            return Ok(requeue);
        }
        if let Err(e) = ctx.dns.patch_rrsets(&name, &patch).await {
            return fail(api, zone, status, e, ctx).await;
        }
        let programmed_before = conditions::find(&was.conditions, PROGRAMMED).is_some_and(|c| c.status == "True");
        if was.observed_generation == generation && programmed_before {
            ctx.metrics.drift_repaired(KIND);
            publish(
                &ctx.recorder,
                zone,
                true,
                reasons::DRIFT_REPAIRED.name,
                "PatchRRSets",
                format!("{} rrsets were changed outside the operator and restored", patch.len()),
            )
            .await;
        }
        status.last_sync_time = Some(t.clone());
        current = match ctx.dns.zone(&name).await {
            Ok(Some(after)) => after,
            Ok(None) => return Ok(Action::requeue(Duration::from_secs(1))),
            Err(e) => return fail(api, zone, status, e, ctx).await,
        };
    } else if status.last_sync_time.is_none() {
        status.last_sync_time = Some(t.clone());
    }

    let count = u32::try_from(wanted.rrsets.len()).unwrap_or(u32::MAX);
    set(&mut status, Observation::new(PROGRAMMED, true, reasons::SYNCED.name, format!("{count} rrsets in sync")));
    if !wanted.waiting_for.is_empty() {
        let message = format!("waiting for the address of CloudPod {}", wanted.waiting_for.join(", "));
        set(&mut status, Observation::new(READY, false, reasons::WAITING_FOR_CLOUD_POD.name, message));
        status.phase = Some(DnsZonePhase::Pending);
    } else if let Some(waiting) = dkim_keys.waiting {
        set(&mut status, Observation::new(READY, false, reasons::WAITING_FOR_DKIM_KEY.name, waiting));
        status.phase = Some(DnsZonePhase::Pending);
    } else {
        set(
            &mut status,
            Observation::new(READY, true, reasons::READY.name, format!("zone {name} is served with {count} rrsets")),
        );
        status.phase = Some(DnsZonePhase::Ready);
    }
    status.records = Some(count);
    status.serial = Some(current.serial);
    status.observed_generation = generation;
    write_changed_status(api, zone, &status).await?;
    Ok(requeue)
}

/// The DKIM public keys the operator made for the zone (when `mail.dkim` asks for such a key),
/// read from the zone's key Secret in its namespace.
async fn generated_dkim_keys(zone: &DnsZone, client: &kube::Client) -> Result<dkim::Published, Error> {
    let Some(request) = zone.spec.mail.as_ref().and_then(|m| m.dkim.as_ref()).filter(|d| d.generated()) else {
        return Ok(dkim::Published::default());
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &zone.namespace().unwrap_or_default());
    let secret = secrets.get_opt(&dkim_secret_name(&zone.spec.zone)).await?;
    Ok(dkim::published(&zone.spec.zone, secret.as_ref(), request))
}

/// Marks the zone neither programmed nor ready for one reason at `generation`, and moves the phase
/// (`None` keeps it). Returns whether this is news (the Programmed condition changed), for Events.
fn not_ready(
    status: &mut DnsZoneStatus,
    generation: Option<i64>,
    now: &Time,
    phase: Option<DnsZonePhase>,
    reason: &str,
    message: String,
) -> bool {
    let news = conditions::set(
        &mut status.conditions,
        Observation::new(PROGRAMMED, false, reason, message.clone()),
        generation,
        now,
    );
    conditions::set(&mut status.conditions, Observation::new(READY, false, reason, message), generation, now);
    if phase.is_some() {
        status.phase = phase;
    }
    status.observed_generation = generation;
    news
}

/// Records a provider failure verbatim in the status and hands the error to the backoff.
async fn fail<P: DnsApi>(
    api: &Api<DnsZone>,
    zone: &DnsZone,
    mut status: DnsZoneStatus,
    error: PowerDnsError,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let reason = error.reason();
    let message = error.to_string();
    if not_ready(&mut status, zone.metadata.generation, &now(), Some(DnsZonePhase::Failed), reason, message.clone()) {
        publish(&ctx.recorder, zone, true, reason, "Program", message).await;
    }
    write_changed_status(api, zone, &status).await?;
    Err(error.into())
}

async fn cleanup<P: DnsApi>(zone: &DnsZone, mode: ReconcileMode, ctx: &Context<P>) -> Result<Action, Error> {
    let name = canonical(&zone.spec.zone);
    if zone.spec.deletion_policy == DeletionPolicy::Orphan || mode == ReconcileMode::ObserveOnly {
        return Ok(Action::await_change());
    }
    match ctx.dns.zone(&name).await? {
        Some(existing) if existing.account == zone.uid().unwrap_or_default() => {
            ctx.dns.delete_zone(&name).await?;
        }
        Some(_) => {
            let note = format!("zone {name} is not this object's; it was left in PowerDNS");
            publish(&ctx.recorder, zone, true, reasons::NOT_OWNER.name, "DeleteZone", note).await;
        }
        None => {}
    }
    Ok(Action::await_change())
}
