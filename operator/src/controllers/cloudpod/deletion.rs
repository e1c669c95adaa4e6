//! What deleting a CloudPod does: its own guest is stopped, then destroyed, one Proxmox task per
//! reconcile, and its user data snippet removed, unless `deletionPolicy: Orphan` or ObserveOnly
//! keeps them.

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use mpanel_crds::cloudpod::{CloudPod, CloudPodPhase, TaskOperation};
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::reasons;

use super::{Context, Error, Step, guest, publish, user_data};
use crate::providers::proxmox::{ProxmoxApi, upid_node};

pub(super) async fn cleanup<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let Some(vmid) = pod.status.as_ref().and_then(|s| s.vmid) else {
        return Ok(Action::await_change());
    };
    if pod.spec.deletion_policy == DeletionPolicy::Orphan || mode == ReconcileMode::ObserveOnly {
        return Ok(Action::await_change());
    }
    if let Some(task) = pod.status.as_ref().and_then(|s| s.task_ref.as_ref()) {
        let node = upid_node(&task.upid).unwrap_or_default();
        if ctx.proxmox.task(node, &task.upid).await?.running() {
            return Err(Error::Destroying);
        }
    }
    let kind = guest::kind(&pod.spec);
    // a list made after this look began, shared with the reconciles that ask at the same time
    let listed = ctx.cloning.guests(|| ctx.proxmox.guests()).await?;
    let Some(found) = listed.iter().find(|g| g.vmid == vmid).cloned() else {
        user_data::remove(ctx.snippets.as_ref(), &pod.uid().unwrap_or_default());
        return Ok(Action::await_change());
    };
    let config = ctx.proxmox.config(&found.node, kind, vmid).await?;
    if found.kind != kind || !guest::is_owned(&config, &pod.uid().unwrap_or_default()) {
        let note = format!("the guest at VMID {vmid} is not this CloudPod's; it was not destroyed");
        publish(&ctx.recorder, pod, true, reasons::NOT_OWNER.name, "Destroy", note).await;
        return Ok(Action::await_change());
    }
    let mut step = Step::new(pod);
    step.status.phase = Some(CloudPodPhase::Deleting);
    let (upid, operation) = if found.status == "running" {
        (ctx.proxmox.power(&found.node, kind, vmid, "stop").await?, TaskOperation::Stop)
    } else {
        (ctx.proxmox.destroy(&found.node, kind, vmid).await?, TaskOperation::Destroy)
    };
    step.track(upid, operation);
    step.write(api, pod).await?;
    // the finalizer stays until a later look finds the guest gone
    Err(Error::Destroying)
}
