//! The BackupPolicy controller: for each CloudPod it names, a vzdump every `schedule.every` (the
//! first at once), its task read on later reconciles, the archives it made listed newest first, and
//! those beyond `keep` deleted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::{Api, ResourceExt};
use mpanel_crds::backup::{
    Archive, BackupPolicy, BackupPolicyPhase, BackupPolicySpec, BackupPolicyStatus, CloudPodBackups,
};
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::reasons;

use super::{Context, Error, POLL, State, WAIT_FOR_POD, marker};
use crate::controllers::{Changes, During, KubeCall, Reconcile, publish, read_again};
use crate::providers::proxmox::{ProxmoxError, upid_node};
use crate::providers::proxmox_backup::{BackupApi, BackupVolume, Vzdump};
use kube::runtime::reflector::Store;

pub const KIND: &str = "BackupPolicy";
const FIELD_MANAGER: &str = "mpanel-backuppolicy";

crate::controllers::status_of!(BackupPolicy, BackupPolicyStatus, BackupPolicyPhase, FIELD_MANAGER);

type Step = crate::controllers::Step<BackupPolicy>;

pub async fn run<P: BackupApi + 'static>(
    ctx: Arc<Context<P>>,
    (changes, policies): (Changes<BackupPolicy>, Store<BackupPolicy>),
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::for_shared_stream(changes, policies.clone())
        .with_config(ControllerConfig::default().concurrency(8));
    ctx.metrics.inventory.watch(KIND, policies, None, |_| None);
    crate::controllers::run(ctx, controller, shutdown).await;
}

impl<P: BackupApi + 'static> Reconcile<BackupPolicy> for State<P> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<P>,
        api: &Api<BackupPolicy>,
        policy: Arc<BackupPolicy>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &policy, mode, ctx).await
    }

    // the archives stay when the policy goes: they are the customer's backups
    async fn cleanup(
        _: &Context<P>,
        _: &Api<BackupPolicy>,
        _: Arc<BackupPolicy>,
        _: ReconcileMode,
    ) -> Result<Action, Error> {
        Ok(Action::await_change())
    }

    // the cache may lag behind the last status write (a UPID in flight): act on the object itself
    async fn current(
        api: &Api<BackupPolicy>,
        cached: Arc<BackupPolicy>,
    ) -> Result<Option<Arc<BackupPolicy>>, KubeCall> {
        read_again(api, cached).await
    }
}

fn after(t: &Time, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.0.checked_add(d).ok()).unwrap_or(t.0)
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn time_of(ctime: i64) -> Option<Time> {
    Timestamp::from_second(ctime).ok().map(Time)
}

/// What one CloudPod's turn found.
#[derive(Default)]
struct Outcome {
    /// How soon this CloudPod needs another look.
    wake: Option<Duration>,
    /// Why it is not backed up as it should be: (reason, message).
    problem: Option<(&'static str, String)>,
    /// A Proxmox call that failed (retried on the backoff).
    error: Option<ProxmoxError>,
}

async fn apply<P: BackupApi>(
    api: &Api<BackupPolicy>,
    policy: &BackupPolicy,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let mut step = Step::new(policy);
    let Some(every) = policy.spec.schedule.interval() else {
        let message = format!("schedule.every {:?} is not an interval", policy.spec.schedule.every);
        step.not_ready(Some(BackupPolicyPhase::Failed), reasons::INVALID_SCHEDULE.name, message);
        step.write(api, policy).await?;
        return Ok(Action::await_change());
    };
    let pods: Api<CloudPod> = Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    let names: BTreeSet<&String> = policy.spec.cloud_pods.iter().collect();
    let mut entries = Vec::new();
    let mut wake = crate::controllers::resync_after(policy, ctx.resync);
    let mut problems = Vec::new();
    let mut first_error = None;
    for name in names {
        let mut entry = step
            .status
            .cloud_pods
            .iter()
            .find(|e| &e.name == name)
            .cloned()
            .unwrap_or_else(|| CloudPodBackups { name: name.clone(), ..CloudPodBackups::default() });
        let pod = pods.get_opt(name).await.during(format!("reading CloudPod {name}"))?;
        let outcome = back_up(policy, pod.as_ref(), &mut entry, every, mode, ctx).await;
        if let Some(d) = outcome.wake {
            wake = wake.min(d);
        }
        if let Some(problem) = outcome.problem {
            problems.push(problem);
        }
        if first_error.is_none() {
            first_error = outcome.error;
        }
        entries.push(entry);
    }
    step.status.cloud_pods = entries;

    match problems.first() {
        None => {
            let message = format!(
                "{} CloudPod(s) backed up every {} to {}, the newest {} archive(s) of each kept{}",
                step.status.cloud_pods.len(),
                policy.spec.schedule.every,
                policy.spec.storage,
                policy.spec.keep,
                if mode == ReconcileMode::ObserveOnly { " (ObserveOnly: nothing started or deleted)" } else { "" }
            );
            step.status.phase = Some(BackupPolicyPhase::Active);
            step.set(Observation::new(READY, true, reasons::BACKUPS_SCHEDULED.name, message));
        }
        Some((reason, _)) => {
            let message = problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
            let phase = if *reason == reasons::CLOUD_POD_WITHOUT_GUEST.name {
                BackupPolicyPhase::Pending
            } else {
                BackupPolicyPhase::Active
            };
            if step.not_ready(Some(phase), reason, message.clone()) && *reason != reasons::CLOUD_POD_WITHOUT_GUEST.name
            {
                publish(&ctx.recorder, policy, true, reason, "Backup", message).await;
            }
        }
    }
    step.write(api, policy).await?;
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(Action::requeue(wake.max(Duration::from_millis(200)))),
    }
}

/// The guest of one CloudPod, as a backup turn works on it.
struct Guest {
    vmid: u32,
    node: String,
    /// The notes this policy's archives of this CloudPod carry.
    marker: String,
}

/// One CloudPod's turn: read its vzdump task in flight, start one when due, list the archives
/// this policy made of it and delete those beyond `keep`.
async fn back_up<P: BackupApi>(
    policy: &BackupPolicy,
    pod: Option<&CloudPod>,
    entry: &mut CloudPodBackups,
    every: Duration,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Outcome {
    let name = entry.name.clone();
    let guest = pod.and_then(|p| {
        let s = p.status.as_ref()?;
        Some((s.vmid?, s.node.clone()?, p.uid()?))
    });
    let Some((vmid, node, pod_uid)) = guest else {
        return Outcome {
            wake: Some(WAIT_FOR_POD),
            problem: Some((
                reasons::CLOUD_POD_WITHOUT_GUEST.name,
                format!("CloudPod {name} has no guest yet (or does not exist)"),
            )),
            error: None,
        };
    };
    let guest = Guest { vmid, node, marker: marker(&pod_uid, &policy.uid().unwrap_or_default()) };
    let now = ctx.clock.now();
    let mut outcome = Outcome::default();
    entry.vmid = Some(vmid);

    if !follow_task(ctx, &guest, entry, now, &mut outcome).await {
        return outcome;
    }
    let due = entry.last_backup_at.as_ref().map_or(now, |t| after(t, every));
    if entry.task.is_none()
        && now >= due
        && mode == ReconcileMode::Reconcile
        && !start_vzdump(ctx, &policy.spec, &guest, entry, now, &mut outcome).await
    {
        return outcome;
    }
    if let Some(last) = &entry.last_backup_at {
        let next = after(last, every);
        entry.next_backup_at = Some(Time(next));
        if entry.task.is_none() {
            outcome.wake = Some(outcome.wake.unwrap_or(Duration::MAX).min(until(now, next)));
        }
    }
    if !prune(policy, ctx, &guest, entry, mode, &mut outcome).await {
        return outcome;
    }
    if outcome.problem.is_none()
        && let Some(failure) = &entry.last_failure
    {
        outcome.problem = Some((reasons::BACKUP_FAILED.name, format!("CloudPod {name}: {failure}")));
    }
    outcome
}

/// Reads the vzdump task in flight, if any, and records how it ended; false when it could not be
/// read (the turn ends, `outcome` says why).
async fn follow_task<P: BackupApi>(
    ctx: &Context<P>,
    guest: &Guest,
    entry: &mut CloudPodBackups,
    now: Timestamp,
    outcome: &mut Outcome,
) -> bool {
    let Some(upid) = entry.task.clone() else { return true };
    match ctx.proxmox.task(upid_node(&upid).unwrap_or(&guest.node), &upid).await {
        Ok(task) if task.running() => outcome.wake = Some(POLL),
        Ok(task) => {
            entry.task = None;
            match task.failure() {
                None => {
                    entry.last_success_at = Some(Time(now));
                    entry.last_failure = None;
                }
                Some(failure) => entry.last_failure = Some(format!("vzdump of VMID {} failed: {failure}", guest.vmid)),
            }
        }
        Err(e) => {
            outcome.problem = Some((e.reason(), format!("CloudPod {}: {e}", entry.name)));
            outcome.error = Some(e);
            return false;
        }
    }
    true
}

/// Starts a vzdump of the guest; false when Proxmox refused it (the turn ends, `outcome` says why).
async fn start_vzdump<P: BackupApi>(
    ctx: &Context<P>,
    spec: &BackupPolicySpec,
    guest: &Guest,
    entry: &mut CloudPodBackups,
    now: Timestamp,
    outcome: &mut Outcome,
) -> bool {
    let job = Vzdump { vmid: guest.vmid, storage: &spec.storage, mode: spec.mode.as_str(), notes: &guest.marker };
    match ctx.proxmox.vzdump(&guest.node, &job).await {
        Ok(upid) => {
            entry.task = Some(upid);
            entry.last_backup_at = Some(Time(now));
            outcome.wake = Some(POLL);
            true
        }
        Err(e) => {
            let message = format!("CloudPod {}: vzdump was refused: {e}", entry.name);
            entry.last_failure = Some(message.clone());
            outcome.problem = Some((e.reason(), message));
            outcome.error = Some(e);
            false
        }
    }
}

/// Lists this policy's archives of the guest, newest first, deletes those beyond `keep` (when the
/// policy may write) and records the rest; false when they could not be listed (the turn ends,
/// `outcome` says why).
async fn prune<P: BackupApi>(
    policy: &BackupPolicy,
    ctx: &Context<P>,
    guest: &Guest,
    entry: &mut CloudPodBackups,
    mode: ReconcileMode,
    outcome: &mut Outcome,
) -> bool {
    let (spec, name) = (&policy.spec, &entry.name);
    let listed = match ctx.proxmox.backups(&guest.node, &spec.storage, guest.vmid).await {
        Ok(listed) => listed,
        Err(e) => {
            outcome.problem = Some((e.reason(), format!("CloudPod {name}: listing {}: {e}", spec.storage)));
            outcome.error = Some(e);
            return false;
        }
    };
    // this policy's own archives of this CloudPod: its VMID (the listing's) and its marker
    let mut own: Vec<BackupVolume> =
        listed.into_iter().filter(|v| v.notes.as_deref() == Some(guest.marker.as_str())).collect();
    own.sort_by(|a, b| b.ctime.cmp(&a.ctime).then_with(|| b.volid.cmp(&a.volid)));
    let keep = spec.keep as usize;
    if own.len() > keep && mode == ReconcileMode::Reconcile {
        for old in &own[keep..] {
            match ctx.proxmox.delete_volume(&guest.node, &spec.storage, &old.volid).await {
                Ok(_) => {
                    tracing::info!(policy = %policy.name_any(), volid = %old.volid, "pruned a backup beyond retention")
                }
                Err(e) => {
                    outcome.problem = Some((e.reason(), format!("CloudPod {name}: deleting {}: {e}", old.volid)));
                    outcome.error = Some(e);
                }
            }
        }
    }
    entry.archives = own
        .iter()
        .take(keep)
        .map(|v| Archive { volid: v.volid.clone(), created_at: time_of(v.ctime), size: v.size })
        .collect();
    true
}
