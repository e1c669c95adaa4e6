//! The guest's power state converged to the spec (a start, stop or asked-for reboot is a task to
//! wait for), the guest agent's view of a running VM, and Ready with the phase it comes to.

use std::ops::ControlFlow;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use mpanel_crds::cloudpod::{CloudPod, CloudPodPhase, PowerState, TaskOperation};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::reasons;

use super::{Context, Error, OwnedGuest, POLL, STARTED, Step, agent_view, fail, reboot, resync_after};
use crate::providers::proxmox::ProxmoxApi;

/// Starts or stops the guest as the spec says, else reports it running or stopped and Ready.
pub(super) async fn power<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    owned: &OwnedGuest<'_>,
    mode: ReconcileMode,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let (found, vmid) = (owned.found, owned.vmid);
    let run = pod.spec.power_state == PowerState::Running && !pod.spec.suspended;
    let running = found.status == "running";
    if mode == ReconcileMode::ObserveOnly {
        return observe_only(api, pod, step, owned, run, ctx).await;
    }
    if run != running {
        let action = if run { "start" } else { "stop" };
        match ctx.proxmox.power(&found.node, owned.kind, vmid, action).await {
            Ok(upid) => {
                ctx.cloning.powered(&pod.uid().unwrap_or_default(), vmid, if run { "running" } else { "stopped" });
                step.track(upid, if run { TaskOperation::Start } else { TaskOperation::Stop });
                step.set(Observation::new(
                    STARTED,
                    false,
                    if run { reasons::STARTING.name } else { reasons::STOPPING.name },
                    format!("{action} requested"),
                ));
                step.write(api, pod).await?;
                return Ok(Action::requeue(POLL));
            }
            Err(e) => return fail(api, pod, step, Some(STARTED), e, ctx).await,
        }
    }
    step = match reboot::reboot(api, pod, step, owned, ctx).await? {
        ControlFlow::Continue(step) => step,
        ControlFlow::Break(action) => return Ok(action),
    };
    observed(&mut step, owned, ctx).await;
    let (phase, reason) = match (pod.spec.suspended, running) {
        (true, _) => (CloudPodPhase::Suspended, reasons::SUSPENDED.name),
        (false, true) => (CloudPodPhase::Running, reasons::RUNNING.name),
        (false, false) => (CloudPodPhase::Stopped, reasons::STOPPED.name),
    };
    step.status.phase = Some(phase);
    step.set(Observation::new(READY, true, reason, format!("guest {vmid} on {} matches the spec", found.node)));
    step.write(api, pod).await?;
    Ok(Action::requeue(resync_after(pod, ctx.resync)))
}

/// ObserveOnly: the guest is neither started, stopped nor rebooted; its power state is reported,
/// Ready when it is the one the spec asks for.
async fn observe_only<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    owned: &OwnedGuest<'_>,
    run: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let (found, vmid) = (owned.found, owned.vmid);
    let running = found.status == "running";
    observed(&mut step, owned, ctx).await;
    step.status.phase = Some(if running { CloudPodPhase::Running } else { CloudPodPhase::Stopped });
    if run == running {
        let message = format!("guest {vmid} on {} matches the spec (ObserveOnly)", found.node);
        let reason = if running { reasons::RUNNING.name } else { reasons::STOPPED.name };
        step.set(Observation::new(READY, true, reason, message));
    } else {
        let wanted = if run { "running" } else { "stopped" };
        let message =
            format!("guest {vmid} is {}, the spec asks for {wanted} (ObserveOnly: not changed)", found.status);
        step.not_ready(None, reasons::OUT_OF_SYNC.name, message);
    }
    step.write(api, pod).await?;
    Ok(Action::requeue(resync_after(pod, ctx.resync)))
}

/// What the guest is seen to be: its power state and, for a running VM, the guest agent's view.
async fn observed<P: ProxmoxApi>(step: &mut Step, owned: &OwnedGuest<'_>, ctx: &Context<P>) {
    let (found, vmid) = (owned.found, owned.vmid);
    let running = found.status == "running";
    step.status.guest_agent = agent_view::observe(&ctx.proxmox, owned).await;
    step.set(Observation::new(
        STARTED,
        running,
        if running { reasons::RUNNING.name } else { reasons::STOPPED.name },
        format!("guest {vmid} is {}", found.status),
    ));
}
