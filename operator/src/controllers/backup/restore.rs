//! The CloudPodRestore controller: one restore of a CloudPod's guest, in place, from one of its own
//! archives. The CloudPod's reconciles are paused (its reconcile-mode annotation, the previous value
//! kept in this status) so that it does not start the guest meanwhile; the guest is stopped, the
//! archive restored over it (same VMID, `force`), and the CloudPod handed back, which starts the
//! guest and puts its spec (sizes, network, power state) back on it. A restore that ended, either
//! way, is never done again.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use mpanel_crds::backup::{CloudPodRestore, CloudPodRestoreStatus, PausedCloudPod, RestorePhase};
use mpanel_crds::cloudpod::{CloudPod, GuestType};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::reasons;
use serde_json::json;

use super::{Context, Error, POLL, State, WAIT_FOR_POD, made_for};
use crate::controllers::{Changes, During, KubeCall, Reconcile, publish, read_again, write_changed_status};
use crate::providers::proxmox::{Kind, upid_node};
use crate::providers::proxmox_backup::{BackupApi, Restore, parse_archive};

pub const KIND: &str = "CloudPodRestore";
const FIELD_MANAGER: &str = "mpanel-cloudpodrestore";

crate::controllers::status_of!(CloudPodRestore, CloudPodRestoreStatus, RestorePhase, FIELD_MANAGER);

type Step = crate::controllers::Step<CloudPodRestore>;

pub async fn run<P: BackupApi + 'static>(
    ctx: Arc<Context<P>>,
    (changes, restores): (Changes<CloudPodRestore>, Store<CloudPodRestore>),
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::for_shared_stream(changes, restores.clone())
        .with_config(ControllerConfig::default().concurrency(4));
    ctx.metrics.inventory.watch(KIND, restores, None, |_| None);
    crate::controllers::run(ctx, controller, shutdown).await;
}

impl<P: BackupApi + 'static> Reconcile<CloudPodRestore> for State<P> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<P>,
        api: &Api<CloudPodRestore>,
        restore: Arc<CloudPodRestore>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &restore, mode, ctx).await
    }

    async fn cleanup(
        ctx: &Context<P>,
        api: &Api<CloudPodRestore>,
        restore: Arc<CloudPodRestore>,
        _: ReconcileMode,
    ) -> Result<Action, Error> {
        cleanup(api, &restore, ctx).await
    }

    // the cache may lag behind the last status write (a UPID in flight): act on the object itself
    async fn current(
        api: &Api<CloudPodRestore>,
        cached: Arc<CloudPodRestore>,
    ) -> Result<Option<Arc<CloudPodRestore>>, KubeCall> {
        read_again(api, cached).await
    }
}

/// Deleted before it ended: the CloudPod gets its reconciles back.
async fn cleanup<P: BackupApi>(
    api: &Api<CloudPodRestore>,
    restore: &CloudPodRestore,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let mut step = Step::new(restore);
    resume_cloud_pod(restore, &mut step, ctx).await?;
    step.write(api, restore).await?;
    Ok(Action::await_change())
}

fn kind_of(pod: &CloudPod) -> Kind {
    match pod.spec.type_ {
        GuestType::Lxc => Kind::Lxc,
        GuestType::Qemu => Kind::Qemu,
    }
}

/// The CloudPod's guest a restore works on.
struct Guest {
    vmid: u32,
    node: String,
    pod_uid: String,
    kind: Kind,
}

async fn apply<P: BackupApi>(
    api: &Api<CloudPodRestore>,
    restore: &CloudPodRestore,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let mut step = Step::new(restore);
    if step.status.phase.is_some_and(RestorePhase::ended) {
        return Ok(Action::await_change());
    }
    let spec = &restore.spec;
    let pods: Api<CloudPod> = Api::namespaced(ctx.client.clone(), &restore.namespace().unwrap_or_default());
    let pod = pods.get_opt(&spec.cloud_pod).await.during(format!("reading CloudPod {}", spec.cloud_pod))?;
    let guest = pod.as_ref().and_then(|p| {
        let s = p.status.as_ref()?;
        Some(Guest { vmid: s.vmid?, node: s.node.clone()?, pod_uid: p.uid()?, kind: kind_of(p) })
    });
    let Some(guest) = guest else {
        let message = format!("CloudPod {} has no guest yet (or does not exist)", spec.cloud_pod);
        step.not_ready(Some(RestorePhase::Pending), reasons::CLOUD_POD_WITHOUT_GUEST.name, message);
        step.write(api, restore).await?;
        return Ok(Action::requeue(WAIT_FOR_POD));
    };
    step.status.vmid = Some(guest.vmid);
    if let Some(refused) = refuse_archive(step.status.phase, restore, &guest, ctx).await? {
        return end(api, restore, step, ctx, refused).await;
    }
    if mode == ReconcileMode::ObserveOnly {
        let message = format!("would restore {} onto VMID {} (ObserveOnly)", spec.archive, guest.vmid);
        step.not_ready(Some(RestorePhase::Pending), reasons::NOT_RESTORED.name, message);
        step.write(api, restore).await?;
        return Ok(Action::await_change());
    }
    restore_guest(api, restore, step, ctx, &guest, pod.as_ref(), &pods).await
}

/// Why the archive may not be restored onto `guest`, as the outcome to end with; `None` when it
/// may. The archive must be this CloudPod's: its VMID and kind in the name, a policy's marker for
/// it (looked up while the restore has not started).
async fn refuse_archive<P: BackupApi>(
    phase: Option<RestorePhase>,
    restore: &CloudPodRestore,
    guest: &Guest,
    ctx: &Context<P>,
) -> Result<Option<(RestorePhase, &'static str, String)>, Error> {
    let (spec, vmid, kind) = (&restore.spec, guest.vmid, guest.kind);
    let Some((storage, archive_kind, archive_vmid)) = parse_archive(&spec.archive) else {
        return Ok(Some(failed(reasons::ARCHIVE_NOT_OWNED.name, "not a vzdump archive".into())));
    };
    if archive_vmid != vmid || archive_kind != kind {
        let message = format!(
            "{} is a backup of {} {archive_vmid}, not of this CloudPod's {} {vmid}",
            spec.archive,
            archive_kind.path(),
            kind.path()
        );
        return Ok(Some(failed(reasons::ARCHIVE_NOT_OWNED.name, message)));
    }
    if phase.is_none_or(|p| p == RestorePhase::Pending) {
        let listed = ctx.proxmox.backups(&guest.node, storage, vmid).await?;
        let Some(archive) = listed.iter().find(|v| v.volid == spec.archive) else {
            let message = format!("{} is not in storage {storage}", spec.archive);
            return Ok(Some(failed(reasons::ARCHIVE_NOT_FOUND.name, message)));
        };
        if !made_for(archive.notes.as_deref(), &guest.pod_uid) {
            let message =
                format!("{} was not made by a BackupPolicy of this CloudPod; it is left untouched", spec.archive);
            return Ok(Some(failed(reasons::ARCHIVE_NOT_OWNED.name, message)));
        }
    }
    Ok(None)
}

/// The next step of the restore itself: follow the task in flight (a stop or the restore), pause
/// the CloudPod, stop the guest, then start the restore.
async fn restore_guest<P: BackupApi>(
    api: &Api<CloudPodRestore>,
    restore: &CloudPodRestore,
    mut step: Step,
    ctx: &Context<P>,
    guest: &Guest,
    pod: Option<&CloudPod>,
    pods: &Api<CloudPod>,
) -> Result<Action, Error> {
    let (spec, vmid, node, kind) = (&restore.spec, guest.vmid, guest.node.as_str(), guest.kind);
    // the task in flight: a stop or the restore
    if let Some(upid) = step.status.task.clone() {
        let task = ctx.proxmox.task(upid_node(&upid).unwrap_or(node), &upid).await?;
        if task.running() {
            return Ok(Action::requeue(POLL));
        }
        step.status.task = None;
        if let Some(failure) = task.failure() {
            let what = if step.status.phase == Some(RestorePhase::Restoring) { "restore" } else { "stop" };
            let message = format!("the {what} task failed: {failure}");
            return end(api, restore, step, ctx, failed(reasons::RESTORE_FAILED.name, message)).await;
        }
        if step.status.phase == Some(RestorePhase::Restoring) {
            let message = format!("VMID {vmid} was restored from {}", spec.archive);
            return end(api, restore, step, ctx, (RestorePhase::Completed, reasons::RESTORED.name, message)).await;
        }
    }

    // pause the CloudPod (recorded before it is done, so a crash never leaves it paused for good)
    if step.status.paused_cloud_pod.is_none() {
        let previous = pod.and_then(|p| p.annotations().get(RECONCILE_MODE_ANNOTATION).cloned());
        step.status.paused_cloud_pod = Some(PausedCloudPod { previous_mode: previous });
        let message = format!("pausing CloudPod {} and stopping VMID {vmid}", spec.cloud_pod);
        step.not_ready(Some(RestorePhase::Stopping), reasons::RESTORING.name, message);
        write_changed_status(api, restore, &step.status).await?;
    }
    set_mode(pods, &spec.cloud_pod, Some("Paused")).await?;

    if ctx.proxmox.power_state(node, kind, vmid).await? != "stopped" {
        let upid = ctx.proxmox.power(node, kind, vmid, "stop").await?;
        step.status.task = Some(upid);
        let message = format!("stopping VMID {vmid} before the restore");
        step.not_ready(Some(RestorePhase::Stopping), reasons::RESTORING.name, message);
        step.write(api, restore).await?;
        return Ok(Action::requeue(POLL));
    }
    start_restore(api, restore, step, ctx, guest).await
}

/// Starts the restore of the stopped guest from the archive.
async fn start_restore<P: BackupApi>(
    api: &Api<CloudPodRestore>,
    restore: &CloudPodRestore,
    mut step: Step,
    ctx: &Context<P>,
    guest: &Guest,
) -> Result<Action, Error> {
    let (spec, vmid, node, kind) = (&restore.spec, guest.vmid, guest.node.as_str(), guest.kind);
    // LXC restores put every volume on `storage` ('local' by default): keep them where they are
    let storage = match kind {
        Kind::Lxc => {
            let config = ctx.proxmox.config(node, kind, vmid).await?;
            config.get("rootfs").and_then(|v| v.as_str()).and_then(|v| v.split_once(':')).map(|(s, _)| s.to_owned())
        }
        Kind::Qemu => None,
    };
    let job = Restore { kind, vmid, archive: &spec.archive, storage: storage.as_deref() };
    let upid = ctx.proxmox.restore(node, &job).await?;
    step.status.task = Some(upid);
    step.status.started_at = Some(Time(ctx.clock.now()));
    let message = format!("restoring VMID {vmid} from {}", spec.archive);
    if step.not_ready(Some(RestorePhase::Restoring), reasons::RESTORING.name, message.clone()) {
        publish(&ctx.recorder, restore, false, reasons::RESTORING.name, "Restore", message).await;
    }
    step.write(api, restore).await?;
    Ok(Action::requeue(POLL))
}

fn failed(reason: &'static str, message: String) -> (RestorePhase, &'static str, String) {
    (RestorePhase::Failed, reason, message)
}

/// Ends the restore for good: the CloudPod gets its reconciles back, and the outcome is recorded.
async fn end<P: BackupApi>(
    api: &Api<CloudPodRestore>,
    restore: &CloudPodRestore,
    mut step: Step,
    ctx: &Context<P>,
    (phase, reason, message): (RestorePhase, &'static str, String),
) -> Result<Action, Error> {
    resume_cloud_pod(restore, &mut step, ctx).await?;
    step.status.completed_at = Some(Time(ctx.clock.now()));
    let ok = phase == RestorePhase::Completed;
    step.status.phase = Some(phase);
    step.set(Observation::new(READY, ok, reason, message.clone()));
    publish(&ctx.recorder, restore, !ok, reason, "Restore", message).await;
    step.write(api, restore).await?;
    Ok(Action::await_change())
}

/// Gives the CloudPod back the reconcile mode it had before this restore paused it.
async fn resume_cloud_pod<P: BackupApi>(
    restore: &CloudPodRestore,
    step: &mut Step,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let Some(paused) = step.status.paused_cloud_pod.take() else { return Ok(()) };
    let pods: Api<CloudPod> = Api::namespaced(ctx.client.clone(), &restore.namespace().unwrap_or_default());
    if pods
        .get_opt(&restore.spec.cloud_pod)
        .await
        .during(format!("reading CloudPod {}", restore.spec.cloud_pod))?
        .is_some()
    {
        set_mode(&pods, &restore.spec.cloud_pod, paused.previous_mode.as_deref()).await?;
    }
    Ok(())
}

/// Sets (or, with None, removes) the CloudPod's reconcile-mode annotation.
async fn set_mode(pods: &Api<CloudPod>, name: &str, mode: Option<&str>) -> Result<(), KubeCall> {
    let patch = json!({"metadata": {"annotations": {RECONCILE_MODE_ANNOTATION: mode}}});
    pods.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
        .during(format!("setting the reconcile mode of CloudPod {name}"))
}
