//! Reboots asked for by `spec.rebootRequestedAt`: each value is acted on once. The value goes into
//! `status.reboot` before Proxmox is asked, so a requeue, a second look or a restart of the
//! operator never reboots twice for it; only a request Proxmox refused is tried again.

use std::ops::ControlFlow;

use kube::Api;
use kube::runtime::controller::Action;
use mpanel_crds::cloudpod::{CloudPod, RebootOutcome, RebootStatus, TaskOperation};
use mpanel_crds::conditions::Observation;
use mpanel_crds::reasons;

use super::{Context, Error, OwnedGuest, POLL, STARTED, Step, fail, publish};
use crate::controllers::write_changed_status;
use crate::providers::proxmox::{ProxmoxApi, ProxmoxError};

/// Reboots a running guest when `spec.rebootRequestedAt` holds a value `status.reboot` has not
/// acted on; a guest that is not running is recorded as not rebooted for that value. Breaks with
/// the requeue when a reboot was started.
pub(super) async fn reboot<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    owned: &OwnedGuest<'_>,
    ctx: &Context<P>,
) -> Result<ControlFlow<Action, Step>, Error> {
    let Some(requested_at) = pod.spec.reboot_requested_at.clone() else { return Ok(ControlFlow::Continue(step)) };
    if step.status.reboot.as_ref().is_some_and(|r| r.requested_at == requested_at) {
        return Ok(ControlFlow::Continue(step));
    }
    let (found, vmid) = (owned.found, owned.vmid);
    let running = found.status == "running";
    let before = step.status.reboot.replace(RebootStatus {
        requested_at: requested_at.clone(),
        acted_at: step.at.clone(),
        outcome: if running { RebootOutcome::Requested } else { RebootOutcome::NotRunning },
    });
    if !running {
        return Ok(ControlFlow::Continue(step));
    }
    // recorded before Proxmox is asked: at most one reboot per value, whatever happens next
    write_changed_status(api, pod, &step.status).await?;
    match ctx.proxmox.power(&found.node, owned.kind, vmid, "reboot").await {
        Ok(upid) => {
            step.track(upid, TaskOperation::Reboot);
            let message = format!("reboot of guest {vmid} requested for rebootRequestedAt {}", requested_at.0);
            step.set(Observation::new(STARTED, false, reasons::REBOOTING.name, message.clone()));
            publish(&ctx.recorder, pod, false, reasons::REBOOTING.name, "Reboot", message).await;
            step.write(api, pod).await?;
            Ok(ControlFlow::Break(Action::requeue(POLL)))
        }
        Err(e) => {
            // Proxmox answered and refused: no reboot happened, so the value is tried again; any
            // other failure may have rebooted the guest, so the value stays acted on
            if matches!(e, ProxmoxError::Rejected { .. }) {
                step.status.reboot = before;
            }
            fail(api, pod, step, Some(STARTED), e, ctx).await.map(ControlFlow::Break)
        }
    }
}
