//! The guest's configuration converged to the spec: cores, memory, name, network, DNS and (QEMU)
//! cloud-init keys written where they differ (a difference to a configuration that was in sync is
//! repaired drift), DNS and cloud-init keys the operator wrote and the spec dropped deleted (the
//! keys written are kept in `status.configKeys`), the root disk grown, never shrunk.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use mpanel_crds::cloudpod::{CloudPod, Resources, TaskOperation};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation};
use mpanel_crds::reasons;

use super::allocation::address;
use super::user_data::{self, UserDataError};
use super::{CONFIGURED, Context, Error, KIND, OwnedGuest, POLL, Step, fail, guest, publish, resync_after};
use crate::providers::proxmox::{ProxmoxApi, ProxmoxError};

/// Converges the configuration; breaks with what the reconcile returns when it cannot go on to the
/// power state (a task started, or a difference ObserveOnly does not write).
pub(super) async fn configure<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    mode: ReconcileMode,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
    owned: &OwnedGuest<'_>,
) -> Result<ControlFlow<Action, Step>, Error> {
    let requeue = Action::requeue(resync_after(pod, ctx.resync));
    let (ns, name, uid) = (pod.namespace().unwrap_or_default(), pod.name_any(), pod.uid().unwrap_or_default());
    let Some(size) = guest::resources(&pod.spec, &ctx.plans) else {
        let message =
            format!("plan {:?} is not in the operator configuration and resources are not set", pod.spec.plan);
        step.set(Observation::new(CONFIGURED, false, reasons::UNKNOWN_PLAN.name, message.clone()));
        step.not_ready(None, reasons::UNKNOWN_PLAN.name, message);
        step.write(api, pod).await?;
        return Ok(ControlFlow::Break(requeue));
    };
    let ipv4 = match address(pod, &mut step, ctx, store) {
        Ok(ipv4) => ipv4,
        Err(message) => {
            step.set(Observation::new(CONFIGURED, false, reasons::NO_ADDRESS.name, message.clone()));
            step.not_ready(None, reasons::NO_ADDRESS.name, message);
            step.write(api, pod).await?;
            return Ok(ControlFlow::Break(requeue));
        }
    };
    let cicustom = match user_data::snippet(&ctx.client, pod, ctx.snippets.as_ref()).await {
        Ok(volume) => volume,
        Err(UserDataError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            let message = e.to_string();
            step.set(Observation::new(CONFIGURED, false, e.reason(), message.clone()));
            step.not_ready(None, e.reason(), message);
            step.write(api, pod).await?;
            return Ok(ControlFlow::Break(requeue));
        }
    };
    let want = guest::desired(&pod.spec, &size, ipv4.as_ref(), cicustom.as_deref(), (&ns, &name, &uid));
    let changes = guest::differences(&want, owned.config);
    let removals = guest::removals(&step.status.config_keys, &want, owned.config);
    let disk = guest::disk_gib(owned.config, guest::root_disk(owned.kind));
    let wanted_disk = u64::from(size.disk_gib);
    let differs = !changes.is_empty() || !removals.is_empty();
    if mode == ReconcileMode::ObserveOnly {
        if differs || disk.is_some_and(|d| d < wanted_disk) {
            let keys = changes.keys().chain(&removals).cloned().collect::<Vec<_>>().join(", ");
            step.not_ready(
                None,
                reasons::OUT_OF_SYNC.name,
                format!("guest {} differs from the spec ({keys}) (ObserveOnly: not written)", owned.vmid),
            );
            step.write(api, pod).await?;
            return Ok(ControlFlow::Break(requeue));
        }
        // in sync: reported as in Reconcile (nothing is written to the guest, and the keys the
        // operator wrote stay those it wrote)
        return converge_disk(api, pod, step, owned, disk, &size, ctx).await;
    }
    if differs && let Err(e) = write_config(pod, &step, owned, &changes, &removals, ctx).await {
        return fail(api, pod, step, Some(CONFIGURED), e, ctx).await.map(ControlFlow::Break);
    }
    step.status.config_keys = guest::optional_keys(&want);
    converge_disk(api, pod, step, owned, disk, &size, ctx).await
}

/// Writes the differing keys and deletes the `removals`; a difference to a configuration in sync
/// for this generation is counted and announced as repaired drift.
async fn write_config<P: ProxmoxApi>(
    pod: &CloudPod,
    step: &Step,
    owned: &OwnedGuest<'_>,
    changes: &BTreeMap<String, String>,
    removals: &[String],
    ctx: &Context<P>,
) -> Result<(), ProxmoxError> {
    let was_configured = conditions::find(&step.status.conditions, CONFIGURED).is_some_and(|c| c.status == "True")
        && step.status.observed_generation == step.generation;
    let mut params = changes.clone();
    if !removals.is_empty() {
        params.insert("delete".into(), removals.join(","));
    }
    ctx.proxmox.set_config(&owned.found.node, owned.kind, owned.vmid, &params).await?;
    ctx.cloning.written(&pod.uid().unwrap_or_default(), owned.vmid, &params);
    if was_configured && !changes.is_empty() {
        ctx.metrics.drift_repaired(KIND);
        let keys = changes.keys().cloned().collect::<Vec<_>>().join(", ");
        publish(
            &ctx.recorder,
            pod,
            true,
            reasons::DRIFT_REPAIRED.name,
            "SetConfig",
            format!("{keys} changed outside the operator and restored"),
        )
        .await;
    }
    Ok(())
}

/// Grows a root disk smaller than the spec (a task to wait for), keeps one larger than it, and
/// records the resources in effect.
async fn converge_disk<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    owned: &OwnedGuest<'_>,
    disk: Option<u64>,
    size: &Resources,
    ctx: &Context<P>,
) -> Result<ControlFlow<Action, Step>, Error> {
    let (vmid, disk_key) = (owned.vmid, guest::root_disk(owned.kind));
    let wanted_disk = u64::from(size.disk_gib);
    match disk {
        Some(d) if d < wanted_disk => {
            match ctx.proxmox.resize(&owned.found.node, owned.kind, vmid, disk_key, &format!("{wanted_disk}G")).await {
                Ok(Some(upid)) => {
                    grown(pod, owned, wanted_disk, ctx);
                    step.track(upid, TaskOperation::Resize);
                    step.set(Observation::new(
                        CONFIGURED,
                        false,
                        reasons::RESIZING.name,
                        format!("{disk_key} growing from {d} GiB to {wanted_disk} GiB"),
                    ));
                    step.write(api, pod).await?;
                    return Ok(ControlFlow::Break(Action::requeue(POLL)));
                }
                Ok(None) => grown(pod, owned, wanted_disk, ctx),
                Err(e) => return fail(api, pod, step, Some(CONFIGURED), e, ctx).await.map(ControlFlow::Break),
            }
        }
        Some(d) if d > wanted_disk => {
            let message = format!("{disk_key} is {d} GiB, larger than diskGiB {wanted_disk}: a disk is never shrunk");
            step.set(Observation::new(CONFIGURED, true, reasons::DISK_LARGER_THAN_SPEC.name, message));
        }
        _ => {}
    }
    if !matches!(disk, Some(d) if d > wanted_disk) {
        step.set(Observation::new(
            CONFIGURED,
            true,
            reasons::CONFIGURED.name,
            format!("cores, memory, disk, name, network and cloud-init of guest {vmid} match the spec"),
        ));
    }
    // what is in effect: a disk larger than the spec stays (and the status schema refuses a
    // shrinking appliedResources.diskGiB too)
    let in_effect_disk = disk.and_then(|d| u32::try_from(d).ok()).map_or(size.disk_gib, |d| d.max(size.disk_gib));
    step.status.applied_resources = Some(Resources { disk_gib: in_effect_disk, ..size.clone() });
    Ok(ControlFlow::Continue(step))
}

/// What this process knows of the guest's configuration after its root disk grew to `gib`.
fn grown<P>(pod: &CloudPod, owned: &OwnedGuest<'_>, gib: u64, ctx: &Context<P>) {
    let key = guest::root_disk(owned.kind);
    let Some(entry) = owned.config.get(key).and_then(serde_json::Value::as_str) else { return };
    let mut items: Vec<String> =
        entry.split(',').filter(|i| !i.is_empty() && !i.starts_with("size=")).map(str::to_owned).collect();
    items.push(format!("size={gib}G"));
    let params = BTreeMap::from([(key.to_owned(), items.join(","))]);
    ctx.cloning.written(&pod.uid().unwrap_or_default(), owned.vmid, &params);
}
