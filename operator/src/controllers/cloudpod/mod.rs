//! The CloudPod controller: converges a Proxmox VE guest to its CloudPod.
//!
//! Crash safety: the VMID is chosen from the configured range and written to the status before
//! the clone is requested; the clone carries the CloudPod's marker in its description and its tag
//! from the first configure, so a reconcile that finds a guest at its VMID with its own mark adopts
//! it instead of cloning again, and one without the mark is a Conflict that is never touched.
//! Nothing waits for Proxmox: a task's UPID goes into `status.taskRef` and a later reconcile reads
//! it. Clones are serialised per node (Proxmox's storage lock fails parallel clones of one
//! template). A guest deleted out of band is cloned again at the same VMID.

pub mod guest;
pub mod network;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::cloudpod::{CloudPod, CloudPodPhase, CloudPodStatus, PowerState, TaskOperation, TaskRef};
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::reasons::{self, condition_types};

use super::{
    Backoff, StatusOf, finalizer_reason, measured, publish, reconcile_in_mode, resync_after, retry_later, scoped,
};
use crate::metrics::Metrics;
use crate::providers::proxmox::{Kind, ProxmoxApi, ProxmoxError, upid_node};

pub const KIND: &str = "CloudPod";
const FIELD_MANAGER: &str = "mpanel-cloudpod";
const CLONED: &str = condition_types::CLONED.name;
const CONFIGURED: &str = condition_types::CONFIGURED.name;
const STARTED: &str = condition_types::STARTED.name;
const CONFLICT: &str = condition_types::CONFLICT.name;
/// How often a running task is looked at.
const POLL: Duration = Duration::from_secs(1);

pub struct Context<P> {
    pub client: Client,
    pub namespace: Option<String>,
    pub proxmox: P,
    pub vmids: (u32, u32),
    pub storage: Option<String>,
    /// Address pools by name.
    pub ip_pools: BTreeMap<String, crate::config::IpPool>,
    /// Bridges, VLANs and templates CloudPods may use.
    pub allowed: crate::config::ProxmoxAllowed,
    /// Addresses handed out by this process and not yet seen in a status.
    pub reserved_addresses: Mutex<BTreeSet<String>>,
    /// Sizes by plan, for CloudPods without `resources`.
    pub plans: BTreeMap<String, mpanel_crds::cloudpod::Resources>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub resync: Duration,
    pub backoff: Backoff,
    /// VMIDs handed out by this process and not yet seen in a status (two reconciles at once must
    /// not pick the same one).
    pub reserved: Mutex<BTreeSet<u32>>,
    /// One clone at a time per node.
    pub cloning: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Test-only fault point: exit the process right after a clone was requested.
    pub exit_after_clone: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    Proxmox(#[from] ProxmoxError),
    #[error("Proxmox task {upid} failed: {message}")]
    Task { upid: String, message: String },
    #[error("waiting for Proxmox to finish destroying the guest")]
    Destroying,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Proxmox(e) => e.reason(),
            Self::Task { .. } => reasons::PROXMOX_TASK_FAILED.name,
            Self::Destroying => reasons::DESTROYING.name,
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
            Self::Finalizer(inner) => finalizer_reason(inner, Self::reason),
        }
    }
}

pub async fn run<P: ProxmoxApi + 'static>(
    ctx: Arc<Context<P>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(
        scoped::<CloudPod>(&ctx.client, ctx.namespace.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .with_config(ControllerConfig::default().concurrency(16));
    ctx.metrics.inventory.watch(KIND, controller.store(), None, |_| None);
    // VMIDs and addresses are unique across the cluster, whatever namespace this replica reconciles
    let store = match ctx.namespace {
        Some(_) => {
            let (store, writer) = kube::runtime::reflector::store();
            if !super::follow(writer, Api::<CloudPod>::all(ctx.client.clone())).await {
                return;
            }
            store
        }
        None => controller.store(),
    };
    controller
        .graceful_shutdown_on(shutdown)
        .run(move |pod, ctx| reconcile(pod, ctx, store.clone()), error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "CloudPod reconcile ended with an error");
            }
        })
        .await;
}

async fn reconcile<P: ProxmoxApi>(
    pod: Arc<CloudPod>,
    ctx: Arc<Context<P>>,
    store: Store<CloudPod>,
) -> Result<Action, Error> {
    measured(
        KIND,
        &ctx.client,
        pod.as_ref(),
        &ctx.metrics,
        &ctx.backoff,
        Error::reason,
        reconcile_inner(pod.clone(), &ctx, store),
    )
    .await
}

fn error_policy<P: ProxmoxApi>(pod: Arc<CloudPod>, error: &Error, ctx: Arc<Context<P>>) -> Action {
    retry_later(KIND, pod.as_ref(), error.reason(), error, &ctx.backoff)
}

async fn reconcile_inner<P: ProxmoxApi>(
    pod: Arc<CloudPod>,
    ctx: &Context<P>,
    store: Store<CloudPod>,
) -> Result<Action, Error> {
    let api: Api<CloudPod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    // the cache may lag behind this controller's last status write (a reserved VMID, a task):
    // act on the object itself
    let Some(pod) = api.get_opt(&pod.name_any()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let api = &api;
    reconcile_in_mode(
        api,
        pod,
        |step, message| {
            step.not_ready(None, reasons::INVALID_RECONCILE_MODE.name, message);
        },
        |pod, mode| async move { apply(api, &pod, mode, ctx, &store).await },
        |pod, mode| async move { cleanup(api, &pod, mode, ctx).await },
    )
    .await
}

impl StatusOf for CloudPod {
    type Status = CloudPodStatus;
    type Phase = CloudPodPhase;
    const FIELD_MANAGER: &'static str = FIELD_MANAGER;
    fn status(&self) -> Option<&CloudPodStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &mut CloudPodStatus) -> &mut Vec<mpanel_crds::conditions::Condition> {
        &mut status.conditions
    }
    fn observed_generation(status: &mut CloudPodStatus) -> &mut Option<i64> {
        &mut status.observed_generation
    }
    fn phase(status: &mut CloudPodStatus) -> &mut Option<CloudPodPhase> {
        &mut status.phase
    }
}

type Step = super::Step<CloudPod>;

impl Step {
    fn track(&mut self, upid: String, operation: TaskOperation) {
        self.status.task_ref = Some(TaskRef { upid, operation, started_at: Some(self.at.clone()) });
    }
}

/// Reserves a VMID for `pod`: free in Proxmox, not in another CloudPod's status, not handed out by
/// this process to a reconcile that has not written it yet.
fn reserve_vmid<P>(
    ctx: &Context<P>,
    store: &Store<CloudPod>,
    guests: &[crate::providers::proxmox::Guest],
) -> Option<u32> {
    let mut reserved = ctx.reserved.lock().unwrap_or_else(|e| e.into_inner());
    let mut taken: BTreeSet<u32> = store.state().iter().filter_map(|p| p.status.as_ref()?.vmid).collect();
    // a reservation is released once a status holds it
    reserved.retain(|id| !taken.contains(id));
    taken.extend(reserved.iter().copied());
    let id = guest::free_vmid(ctx.vmids.0, ctx.vmids.1, guests, &taken)?;
    reserved.insert(id);
    Some(id)
}

/// The guest's address: the spec's static one, or the one its pool gave out (kept in
/// `status.ipAddress`, given out once). Sets `status.ipAddress`.
fn address<P>(
    pod: &CloudPod,
    step: &mut Step,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
) -> Result<Option<guest::Ipv4>, String> {
    let v4 = &pod.spec.network.ipv4;
    if let (Some(cidr), Some(gateway)) = (&v4.address, &v4.gateway) {
        step.status.ip_address = cidr.split('/').next().map(str::to_owned);
        return Ok(Some(guest::Ipv4 { cidr: cidr.clone(), gateway: gateway.clone() }));
    }
    let Some(name) = &v4.pool else { return Ok(None) };
    let pool =
        ctx.ip_pools.get(name).ok_or_else(|| format!("IPv4 pool {name:?} is not in the operator configuration"))?;
    if let Some(ip) = &step.status.ip_address {
        return Ok(Some(guest::Ipv4 { cidr: format!("{ip}/{}", pool.prefix), gateway: pool.gateway.to_string() }));
    }
    let mut reserved = ctx.reserved_addresses.lock().unwrap_or_else(|e| e.into_inner());
    let mut taken: BTreeSet<String> = store
        .state()
        .iter()
        .filter(|p| p.uid() != pod.uid())
        .filter_map(|p| p.status.as_ref()?.ip_address.clone())
        .collect();
    reserved.retain(|a| !taken.contains(a));
    taken.extend(reserved.iter().cloned());
    let given = guest::free_address(pool, &taken).ok_or_else(|| format!("IPv4 pool {name:?} has no free address"))?;
    let ip = given.cidr.split('/').next().unwrap_or_default().to_owned();
    reserved.insert(ip.clone());
    step.status.ip_address = Some(ip);
    Ok(Some(given))
}

fn node_lock<P>(ctx: &Context<P>, node: &str) -> Arc<tokio::sync::Mutex<()>> {
    ctx.cloning.lock().unwrap_or_else(|e| e.into_inner()).entry(node.to_owned()).or_default().clone()
}

async fn apply<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mode: ReconcileMode,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
) -> Result<Action, Error> {
    let mut step = Step::new(pod);
    let (ns, name, uid) = (pod.namespace().unwrap_or_default(), pod.name_any(), pod.uid().unwrap_or_default());
    let kind = guest::kind(&pod.spec);
    let requeue = Action::requeue(resync_after(pod, ctx.resync));

    // a task in flight: read it, never wait for it
    if let Some(task) = step.status.task_ref.clone() {
        let node = upid_node(&task.upid).unwrap_or_default().to_owned();
        let state = ctx.proxmox.task(&node, &task.upid).await?;
        if state.running() {
            return Ok(Action::requeue(POLL));
        }
        step.status.task_ref = None;
        if let Some(failure) = state.failure() {
            let message = format!("{:?} task failed: {failure}", task.operation);
            let condition = match task.operation {
                TaskOperation::Clone => CLONED,
                TaskOperation::Start | TaskOperation::Stop => STARTED,
                _ => CONFIGURED,
            };
            step.set(Observation::new(condition, false, reasons::PROXMOX_TASK_FAILED.name, message.clone()));
            if step.not_ready(Some(CloudPodPhase::Failed), reasons::PROXMOX_TASK_FAILED.name, message.clone()) {
                publish(&ctx.recorder, pod, true, reasons::PROXMOX_TASK_FAILED.name, "Task", message.clone()).await;
            }
            step.write(api, pod).await?;
            return Err(Error::Task { upid: task.upid, message: failure.to_owned() });
        }
    }

    if let Err(refusal) = network::check(pod, &ctx.allowed, &ctx.ip_pools, &store.state()) {
        let message = refusal.to_string();
        step.set(Observation::new(CONFIGURED, false, refusal.reason(), message.clone()));
        // a guest that exists keeps running as it was configured; only the change is refused
        let phase = step.status.vmid.is_none().then_some(CloudPodPhase::Failed);
        if step.not_ready(phase, refusal.reason(), message.clone()) {
            publish(&ctx.recorder, pod, true, refusal.reason(), "Validate", message).await;
        }
        step.write(api, pod).await?;
        return Ok(requeue);
    }
    let guests = match ctx.proxmox.guests().await {
        Ok(g) => g,
        Err(e) => return fail(api, pod, step, None, e, ctx).await,
    };
    let Some(vmid) = step.status.vmid else {
        if mode == ReconcileMode::ObserveOnly {
            step.not_ready(
                Some(CloudPodPhase::Pending),
                reasons::NOT_CREATED.name,
                "no guest yet (ObserveOnly: not created)".into(),
            );
            step.write(api, pod).await?;
            return Ok(requeue);
        }
        let Some(id) = reserve_vmid(ctx, store, &guests) else {
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
        step.write(api, pod).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    };

    let Some(found) = guests.iter().find(|g| g.vmid == vmid).cloned() else {
        if mode == ReconcileMode::ObserveOnly {
            step.not_ready(
                Some(CloudPodPhase::Pending),
                reasons::NOT_CREATED.name,
                format!("no guest at VMID {vmid} (ObserveOnly)"),
            );
            step.write(api, pod).await?;
            return Ok(requeue);
        }
        return clone(api, pod, step, vmid, kind, &guests, ctx).await;
    };

    // ownership, proved before anything is changed
    let config = match ctx.proxmox.config(&found.node, kind, vmid).await {
        Ok(c) => c,
        Err(e) => return fail(api, pod, step, None, e, ctx).await,
    };
    if found.kind != kind || !guest::is_owned(&config, &uid) {
        let message = format!(
            "a {} guest at VMID {vmid} on {} is not this CloudPod's (no tag {}); it is left untouched",
            found.kind.path(),
            found.node,
            guest::tag(&uid)
        );
        if step.set(Observation::new(CONFLICT, true, reasons::GUEST_OWNED_ELSEWHERE.name, message.clone())) {
            publish(&ctx.recorder, pod, true, reasons::CONFLICT.name, "Observe", message.clone()).await;
        }
        step.not_ready(Some(CloudPodPhase::Failed), reasons::CONFLICT.name, message);
        step.write(api, pod).await?;
        return Ok(requeue);
    }
    step.set(Observation::new(
        CONFLICT,
        false,
        reasons::OWNED.name,
        format!("VMID {vmid} carries this CloudPod's mark"),
    ));
    step.status.node = Some(found.node.clone());
    step.set(Observation::new(CLONED, true, reasons::CLONED.name, format!("guest {vmid} exists on {}", found.node)));

    // configuration
    let Some(size) = guest::resources(&pod.spec, &ctx.plans) else {
        let message =
            format!("plan {:?} is not in the operator configuration and resources are not set", pod.spec.plan);
        step.set(Observation::new(CONFIGURED, false, reasons::UNKNOWN_PLAN.name, message.clone()));
        step.not_ready(None, reasons::UNKNOWN_PLAN.name, message);
        step.write(api, pod).await?;
        return Ok(requeue);
    };
    let ipv4 = match address(pod, &mut step, ctx, store) {
        Ok(ipv4) => ipv4,
        Err(message) => {
            step.set(Observation::new(CONFIGURED, false, reasons::NO_ADDRESS.name, message.clone()));
            step.not_ready(None, reasons::NO_ADDRESS.name, message);
            step.write(api, pod).await?;
            return Ok(requeue);
        }
    };
    let want = guest::desired(&pod.spec, &size, ipv4.as_ref(), &ns, &name, &uid);
    let changes = guest::differences(&want, &config);
    let disk_key = guest::root_disk(kind);
    let disk = guest::disk_gib(&config, disk_key);
    let wanted_disk = u64::from(size.disk_gib);
    if mode == ReconcileMode::ObserveOnly {
        if !changes.is_empty() || disk.is_some_and(|d| d < wanted_disk) {
            let keys = changes.keys().cloned().collect::<Vec<_>>().join(", ");
            step.not_ready(
                None,
                reasons::OUT_OF_SYNC.name,
                format!("guest {vmid} differs from the spec ({keys}) (ObserveOnly: not written)"),
            );
            step.write(api, pod).await?;
        }
        return Ok(requeue);
    }
    if !changes.is_empty() {
        let was_configured = conditions::find(&step.status.conditions, CONFIGURED).is_some_and(|c| c.status == "True")
            && step.status.observed_generation == step.generation;
        if let Err(e) = ctx.proxmox.set_config(&found.node, kind, vmid, &changes).await {
            return fail(api, pod, step, Some(CONFIGURED), e, ctx).await;
        }
        if was_configured {
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
    }
    match disk {
        Some(d) if d < wanted_disk => {
            match ctx.proxmox.resize(&found.node, kind, vmid, disk_key, &format!("{wanted_disk}G")).await {
                Ok(Some(upid)) => {
                    step.track(upid, TaskOperation::Resize);
                    step.set(Observation::new(
                        CONFIGURED,
                        false,
                        reasons::RESIZING.name,
                        format!("{disk_key} growing from {d} GiB to {wanted_disk} GiB"),
                    ));
                    step.write(api, pod).await?;
                    return Ok(Action::requeue(POLL));
                }
                Ok(None) => {}
                Err(e) => return fail(api, pod, step, Some(CONFIGURED), e, ctx).await,
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
            format!("cores, memory, disk, name and network of guest {vmid} match the spec"),
        ));
    }
    // what is in effect: a disk larger than the spec stays (and the status schema refuses a
    // shrinking appliedResources.diskGiB too)
    let in_effect_disk = disk.and_then(|d| u32::try_from(d).ok()).map_or(size.disk_gib, |d| d.max(size.disk_gib));
    step.status.applied_resources = Some(mpanel_crds::cloudpod::Resources { disk_gib: in_effect_disk, ..size.clone() });

    // power
    let run = pod.spec.power_state == PowerState::Running && !pod.spec.suspended;
    let running = found.status == "running";
    if run != running {
        let action = if run { "start" } else { "stop" };
        match ctx.proxmox.power(&found.node, kind, vmid, action).await {
            Ok(upid) => {
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
    step.set(Observation::new(
        STARTED,
        running,
        if running { reasons::RUNNING.name } else { reasons::STOPPED.name },
        format!("guest {vmid} is {}", found.status),
    ));
    let (phase, reason) = match (pod.spec.suspended, running) {
        (true, _) => (CloudPodPhase::Suspended, reasons::SUSPENDED.name),
        (false, true) => (CloudPodPhase::Running, reasons::RUNNING.name),
        (false, false) => (CloudPodPhase::Stopped, reasons::STOPPED.name),
    };
    step.status.phase = Some(phase);
    step.set(Observation::new(READY, true, reason, format!("guest {vmid} on {} matches the spec", found.node)));
    step.write(api, pod).await?;
    Ok(requeue)
}

/// Requests the clone of the template to `vmid` on the chosen node, one clone per node at a time.
async fn clone<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    vmid: u32,
    kind: Kind,
    guests: &[crate::providers::proxmox::Guest],
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
    let lock = node_lock(ctx, &template.node);
    let _one_clone = lock.lock().await;
    // the template is locked while a clone from it runs: wait for that clone rather than fail
    let template_config = ctx.proxmox.config(&template.node, kind, template.vmid).await?;
    if template_config.get("lock").is_some_and(|l| !l.is_null()) {
        return Ok(Action::requeue(POLL));
    }
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

/// Records a Proxmox error verbatim (in `condition` too, if given) and hands it to the backoff.
async fn fail<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    step: Step,
    condition: Option<&'static str>,
    error: ProxmoxError,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let said = (error.reason(), error.to_string());
    step.record_failure(api, pod, condition, said, &ctx.recorder, "Proxmox").await?;
    Err(error.into())
}

async fn cleanup<P: ProxmoxApi>(
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
    let Some(found) = ctx.proxmox.guests().await?.into_iter().find(|g| g.vmid == vmid) else {
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
