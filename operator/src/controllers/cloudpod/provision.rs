//! A guest for a CloudPod that has none yet: a VMID reserved and written to the status first, then
//! the template cloned to it, one clone per node at a time.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use mpanel_crds::cloudpod::{CloudPod, CloudPodPhase, TaskOperation};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation};
use mpanel_crds::reasons;

use super::allocation::reserve_vmid;
use super::{CLONED, Context, Error, POLL, Step, fail, guest, publish, resync_after};
use crate::providers::proxmox::{Guest, Kind, ProxmoxApi};

/// Reserves a VMID and writes it to the status before anything is cloned to it; continues with
/// the step as written and the VMID, which the same reconcile clones to (the guests it listed are
/// still what it knows: looking again would tell it nothing new).
pub(super) async fn reserve<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    mode: ReconcileMode,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
    guests: &[Guest],
) -> Result<ControlFlow<Action, (Step, u32)>, Error> {
    let requeue = ControlFlow::Break(Action::requeue(resync_after(pod, ctx.resync)));
    if mode == ReconcileMode::ObserveOnly {
        step.not_ready(
            Some(CloudPodPhase::Pending),
            reasons::NOT_CREATED.name,
            "no guest yet (ObserveOnly: not created)".into(),
        );
        step.write(api, pod).await?;
        return Ok(requeue);
    }
    let Some(id) = reserve_vmid(ctx, store, guests) else {
        let message = format!("no free VMID in {}..={}", ctx.vmids.0, ctx.vmids.1);
        step.not_ready(Some(CloudPodPhase::Pending), reasons::NO_FREE_VMID.name, message);
        step.write(api, pod).await?;
        return Ok(requeue);
    };
    // the VMID is in the status before anything is cloned to it
    step.status.vmid = Some(id);
    step.status.phase = Some(CloudPodPhase::Provisioning);
    step.set(Observation::new(CLONED, false, reasons::VMID_RESERVED.name, format!("VMID {id} reserved")));
    step.not_ready(None, reasons::PROVISIONING.name, format!("VMID {id} reserved"));
    let written = Step { status: step.status.clone(), generation: step.generation, at: step.at.clone() };
    // a failed write stops here: nothing is cloned to a VMID the status does not hold
    step.write(api, pod).await?;
    Ok(ControlFlow::Continue((written, id)))
}

/// What the clones of one node share, behind its lock: the template last found locked (a clone
/// from it running) and when, so that CloudPods waiting for it do not each ask Proxmox again
/// every second.
#[derive(Debug, Default)]
pub struct NodeClones {
    template_locked: Option<(u32, std::time::Instant)>,
}

impl NodeClones {
    /// Whether `template` was found locked less than [`POLL`] ago.
    fn locked_just_now(&self, template: u32) -> bool {
        self.template_locked.is_some_and(|(vmid, at)| vmid == template && at.elapsed() < POLL)
    }
}

/// Requests the clone of the template to `vmid` on the chosen node, one clone per node at a time.
pub(super) async fn clone<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    vmid: u32,
    kind: Kind,
    guests: &[Guest],
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let Some(template) = guest::template(guests, &pod.spec.template, kind) else {
        let message = format!("no {} template {:?} in the cluster", kind.path(), pod.spec.template);
        step.set(Observation::new(CLONED, false, reasons::TEMPLATE_NOT_FOUND.name, message.clone()));
        step.not_ready(Some(CloudPodPhase::Failed), reasons::TEMPLATE_NOT_FOUND.name, message);
        step.write(api, pod).await?;
        return Ok(Action::requeue(resync_after(pod, ctx.resync)));
    };
    let nodes = match ctx.proxmox.nodes().await {
        Ok(n) => n,
        Err(e) => return fail(api, pod, step, Some(CLONED), e, ctx).await,
    };
    let allowed = pod.spec.placement.as_ref().map(|p| p.nodes.clone()).unwrap_or_default();
    let Some(target) = guest::place(&nodes, &allowed) else {
        let message = format!(
            "no online node among {}",
            if allowed.is_empty() { "the cluster".to_owned() } else { allowed.join(", ") }
        );
        step.not_ready(Some(CloudPodPhase::Pending), reasons::NO_NODE.name, message);
        step.write(api, pod).await?;
        return Ok(Action::requeue(resync_after(pod, ctx.resync)));
    };
    let lock = ctx.cloning.node(&template.node);
    let mut one_clone = lock.lock().await;
    // the template is locked while a clone from it runs: wait for that clone rather than fail,
    // looking at the template once per POLL however many CloudPods wait for it
    if one_clone.locked_just_now(template.vmid) {
        return Ok(Action::requeue(POLL));
    }
    let template_config = ctx.proxmox.config(&template.node, kind, template.vmid).await?;
    if template_config.get("lock").is_some_and(|l| !l.is_null()) {
        one_clone.template_locked = Some((template.vmid, std::time::Instant::now()));
        return Ok(Action::requeue(POLL));
    }
    one_clone.template_locked = None;
    let (ns, name, uid) = (pod.namespace().unwrap_or_default(), pod.name_any(), pod.uid().unwrap_or_default());
    let mut params = BTreeMap::from([("description".to_owned(), guest::marker(&ns, &name, &uid))]);
    params.insert(if kind == Kind::Lxc { "hostname" } else { "name" }.to_owned(), pod.spec.hostname.clone());
    if target.node != template.node {
        params.insert("target".into(), target.node.clone());
    }
    if let Some(storage) = &ctx.storage {
        params.insert("storage".into(), storage.clone());
    }
    let recreate = conditions::find(&step.status.conditions, CLONED).is_some_and(|c| c.status == "True");
    match ctx.proxmox.clone_guest(&template.node, kind, template.vmid, vmid, &params).await {
        Ok(upid) => {
            if ctx.exit_after_clone {
                tracing::error!(vmid, "fault point: exiting right after the clone request");
                std::process::exit(3);
            }
            // the clone's configuration: the template's, with the clone's own name and mark
            let cloned = Guest {
                vmid,
                node: target.node.clone(),
                kind,
                name: pod.spec.hostname.clone(),
                status: "stopped".into(),
                template: false,
                tags: String::new(),
            };
            ctx.cloning.remember(&uid, cloned, cloned_config(template_config, &params));
            step.track(upid, TaskOperation::Clone);
            step.status.node = Some(target.node.clone());
            step.status.phase = Some(CloudPodPhase::Provisioning);
            let message = if recreate {
                format!("guest {vmid} was deleted outside the operator; cloning it again from {}", template.vmid)
            } else {
                format!("cloning template {} to VMID {vmid} on {}", template.vmid, target.node)
            };
            step.set(Observation::new(CLONED, false, reasons::CLONING.name, message.clone()));
            publish(
                &ctx.recorder,
                pod,
                recreate,
                if recreate { reasons::RECREATING.name } else { reasons::CLONING.name },
                "Clone",
                message,
            )
            .await;
            step.write(api, pod).await?;
            Ok(Action::requeue(POLL))
        }
        Err(e) => fail(api, pod, step, Some(CLONED), e, ctx).await,
    }
}

/// The configuration of a full clone of a template whose configuration is `template`, made with
/// `params`: the template's keys but its template flag, lock, description and tags, and the
/// clone's name and description (its disk has the template's size).
fn cloned_config(
    mut config: BTreeMap<String, serde_json::Value>,
    params: &BTreeMap<String, String>,
) -> BTreeMap<String, serde_json::Value> {
    for key in ["template", "lock", "description", "tags"] {
        config.remove(key);
    }
    for (k, v) in params.iter().filter(|(k, _)| !matches!(k.as_str(), "target" | "storage")) {
        config.insert(k.clone(), serde_json::Value::from(v.clone()));
    }
    config
}
