//! The CloudPod controller: converges a Proxmox VE guest to its CloudPod.
//!
//! Crash safety: the VMID is chosen from the configured range and written to the status before
//! the clone is requested; the clone carries the CloudPod's marker in its description and its tag
//! from the first configure, so a reconcile that finds a guest at its VMID with its own mark adopts
//! it instead of cloning again, and one without the mark is a Conflict that is never touched.
//! Nothing waits for Proxmox: a task's UPID goes into `status.taskRef` and a later reconcile reads
//! it. Clones are serialised per node (Proxmox's storage lock fails parallel clones of one
//! template). A guest deleted out of band is cloned again at the same VMID.

mod agent_view;
mod allocation;
mod configure;
mod deletion;
pub mod guest;
pub mod network;
mod power;
mod provision;
mod reboot;
pub mod shared;
pub mod user_data;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use mpanel_crds::cloudpod::{CloudPod, CloudPodPhase, CloudPodStatus, TaskOperation, TaskRef};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::Observation;
use mpanel_crds::reasons::{self, condition_types};
use serde_json::Value;

use super::{Changes, Hub, Reconcile, ReconcileError, Scope, publish, read_again, resync_after};
use crate::providers::proxmox::{Guest, Kind, ProxmoxApi, ProxmoxError, upid_node};
use deletion::cleanup;
use network::Refusal;

pub const KIND: &str = "CloudPod";
const FIELD_MANAGER: &str = "mpanel-cloudpod";
const CLONED: &str = condition_types::CLONED.name;
const CONFIGURED: &str = condition_types::CONFIGURED.name;
const STARTED: &str = condition_types::STARTED.name;
const CONFLICT: &str = condition_types::CONFLICT.name;
/// How soon a task just started is looked at.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two looks at a running task.
const POLL_AT_MOST: Duration = Duration::from_secs(10);

/// When a task started at `started_at` and still running is looked at again: after a quarter of
/// its age so far, at least [`POLL`] and at most [`POLL_AT_MOST`]. A start or a stop, done in
/// seconds, is seen about as soon as before; a clone that takes minutes is read a few times a
/// minute instead of every second, and found done at most a quarter of its time late.
fn poll_after(
    started_at: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    now: jiff::Timestamp,
) -> Duration {
    let age = started_at.map_or(Duration::ZERO, |t| Duration::try_from(now.duration_since(t.0)).unwrap_or_default());
    (age / 4).clamp(POLL, POLL_AT_MOST)
}

/// The CloudPod controller's own state; the rest of its context is shared by every controller.
pub struct State<P> {
    pub proxmox: P,
    pub vmids: (u32, u32),
    pub storage: Option<String>,
    /// Where cloud-init user data snippets are written.
    pub snippets: Option<crate::config::SnippetStorage>,
    /// Address pools by name.
    pub ip_pools: BTreeMap<String, crate::config::IpPool>,
    /// Bridges, VLANs and templates CloudPods may use.
    pub allowed: crate::config::ProxmoxAllowed,
    /// Addresses handed out by this process and not yet seen in a status.
    pub reserved_addresses: Mutex<BTreeSet<String>>,
    /// Sizes by plan, for CloudPods without `resources`.
    pub plans: BTreeMap<String, mpanel_crds::cloudpod::Resources>,
    /// Every CloudPod in the cluster, whatever namespace this replica reconciles: VMIDs and
    /// addresses are unique across the cluster ([`Watches::store`]).
    pub cloudpods: Store<CloudPod>,
    /// VMIDs handed out by this process and not yet seen in a status (two reconciles at once must
    /// not pick the same one).
    pub reserved: Mutex<BTreeSet<u32>>,
    /// What the reconciles share: one clone at a time per node (and what the last look at a
    /// template there found), one list of the guests for all that ask at once, and the
    /// configuration this process last left on each guest.
    pub cloning: shared::Shared,
    /// Test-only fault point: exit the process right after a clone was requested.
    pub exit_after_clone: bool,
}

pub type Context<P> = super::Context<State<P>>;

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
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Proxmox(e) => e.reason(),
            Self::Task { .. } => reasons::PROXMOX_TASK_FAILED.name,
            Self::Destroying => reasons::DESTROYING.name,
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }

    fn waiting(&self) -> Option<Duration> {
        match self {
            Self::Destroying => Some(POLL),
            _ => None,
        }
    }
}

/// What the CloudPod controller follows, taken from the operator's one watch per kind.
pub struct Watches {
    cloudpods: (Changes<CloudPod>, Store<CloudPod>),
    /// Every CloudPod in the cluster when the controller reconciles one namespace.
    cluster: Option<Store<CloudPod>>,
}

impl Watches {
    /// `namespace` is the one the controller reconciles, if any.
    pub fn new(hub: &Hub, namespace: Option<&str>) -> Self {
        Self { cloudpods: hub.primary(), cluster: namespace.map(|_| hub.store(Scope::Cluster)) }
    }

    /// Every CloudPod in the cluster, for the controller's [`State`].
    pub fn store(&self) -> Store<CloudPod> {
        self.cluster.clone().unwrap_or_else(|| self.cloudpods.1.clone())
    }
}

pub async fn run<P: ProxmoxApi + 'static>(
    ctx: Arc<Context<P>>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watches { cloudpods: (changes, cloudpods), cluster } = watches;
    // the store sees every change; reconciles start on changes of intent only, not on this
    // controller's own status writes: each reconcile asks for the next one itself (a task in
    // flight is read again after its poll delay)
    let changes = super::on_intent(changes);
    let controller = Controller::for_shared_stream(changes, cloudpods.clone())
        .with_config(ControllerConfig::default().concurrency(16));
    ctx.metrics.inventory.watch(KIND, cloudpods.clone(), None, |_| None);
    // VMIDs and addresses are unique across the cluster, whatever namespace this replica reconciles
    if cluster.is_some() && !super::ready(&ctx.cloudpods).await {
        return;
    }
    super::run(ctx, controller, shutdown).await;
}

impl<P: ProxmoxApi + 'static> Reconcile<CloudPod> for State<P> {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context<P>,
        api: &Api<CloudPod>,
        pod: Arc<CloudPod>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &pod, mode, ctx, &ctx.cloudpods).await
    }

    async fn cleanup(
        ctx: &Context<P>,
        api: &Api<CloudPod>,
        pod: Arc<CloudPod>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        cleanup(api, &pod, mode, ctx).await
    }

    // the cache may lag behind this controller's last status write (a reserved VMID, a task):
    // act on the object itself
    async fn current(api: &Api<CloudPod>, cached: Arc<CloudPod>) -> Result<Option<Arc<CloudPod>>, super::KubeCall> {
        read_again(api, cached).await
    }
}

super::status_of!(CloudPod, CloudPodStatus, CloudPodPhase, FIELD_MANAGER);

type Step = super::Step<CloudPod>;

impl Step {
    fn track(&mut self, upid: String, operation: TaskOperation) {
        self.status.task_ref = Some(TaskRef { upid, operation, started_at: Some(self.at.clone()) });
    }
}

/// The guest at the CloudPod's VMID, proved to be its own.
struct OwnedGuest<'a> {
    found: &'a Guest,
    vmid: u32,
    kind: Kind,
    config: &'a BTreeMap<String, Value>,
}

async fn apply<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mode: ReconcileMode,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
) -> Result<Action, Error> {
    let mut step = Step::new(pod);
    let uid = pod.uid().unwrap_or_default();
    let kind = guest::kind(&pod.spec);

    // a task in flight: read it, never wait for it
    let followed = step.status.task_ref.is_some();
    if let Some(task) = step.status.task_ref.clone() {
        step = match finish_task(api, pod, step, task, ctx).await? {
            ControlFlow::Continue(step) => step,
            ControlFlow::Break(action) => return Ok(action),
        };
    }

    if let Err(refusal) = network::check(pod, &ctx.allowed, &ctx.ip_pools, &store.state()) {
        return refuse(api, pod, step, &refusal, ctx).await;
    }
    // right after a task of this process on the guest ended well: the guest as this process left
    // it (it cloned it with this CloudPod's mark, or read the mark, and knows what it wrote and
    // started since), without asking Proxmox again; otherwise it is listed and read
    let known = (followed && mode != ReconcileMode::ObserveOnly)
        .then(|| step.status.vmid.and_then(|vmid| ctx.cloning.known(&uid, vmid)))
        .flatten()
        .filter(|(found, _)| found.kind == kind);
    let (found, config) = match known {
        Some(known) => known,
        None => match look(api, pod, step, mode, ctx, store).await? {
            ControlFlow::Continue((looked, found, config)) => {
                step = looked;
                (found, config)
            }
            ControlFlow::Break(action) => return Ok(action),
        },
    };
    let vmid = found.vmid;
    step.set(Observation::new(
        CONFLICT,
        false,
        reasons::OWNED.name,
        format!("VMID {vmid} carries this CloudPod's mark"),
    ));
    step.status.node = Some(found.node.clone());
    step.set(Observation::new(CLONED, true, reasons::CLONED.name, format!("guest {vmid} exists on {}", found.node)));

    let owned = OwnedGuest { found: &found, vmid, kind, config: &config };
    let step = match configure::configure(api, pod, step, mode, ctx, store, &owned).await? {
        ControlFlow::Continue(step) => step,
        ControlFlow::Break(action) => return Ok(action),
    };
    power::power(api, pod, step, &owned, mode, ctx).await
}

/// The guest at the CloudPod's VMID, listed and its configuration read, proved to be its own
/// before anything is changed; a VMID is reserved and the clone asked for when there is none.
async fn look<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    mode: ReconcileMode,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
) -> Result<ControlFlow<Action, (Step, Guest, BTreeMap<String, Value>)>, Error> {
    let uid = pod.uid().unwrap_or_default();
    let kind = guest::kind(&pod.spec);
    // the guests as listed by a request made after this reconcile got here (after the task it
    // followed ended), shared with every reconcile that asks while one is under way
    let guests = match ctx.cloning.guests(|| ctx.proxmox.guests()).await {
        Ok(g) => g,
        Err(e) => return fail(api, pod, step, None, e, ctx).await.map(ControlFlow::Break),
    };
    let vmid = match step.status.vmid {
        Some(vmid) => vmid,
        None => match provision::reserve(api, pod, step, mode, ctx, store, &guests).await? {
            ControlFlow::Continue((written, vmid)) => {
                step = written;
                vmid
            }
            ControlFlow::Break(action) => return Ok(ControlFlow::Break(action)),
        },
    };
    let Some(found) = guests.iter().find(|g| g.vmid == vmid).cloned() else {
        if mode == ReconcileMode::ObserveOnly {
            step.not_ready(
                Some(CloudPodPhase::Pending),
                reasons::NOT_CREATED.name,
                format!("no guest at VMID {vmid} (ObserveOnly)"),
            );
            step.write(api, pod).await?;
            return Ok(ControlFlow::Break(Action::requeue(resync_after(pod, ctx.resync))));
        }
        return provision::clone(api, pod, step, vmid, kind, &guests, ctx).await.map(ControlFlow::Break);
    };
    let config = match ctx.proxmox.config(&found.node, kind, vmid).await {
        Ok(c) => c,
        Err(e) => return fail(api, pod, step, None, e, ctx).await.map(ControlFlow::Break),
    };
    if found.kind != kind || !guest::is_owned(&config, &uid) {
        ctx.cloning.forget(&uid);
        return not_owned(api, pod, step, &found, vmid, ctx).await.map(ControlFlow::Break);
    }
    ctx.cloning.remember(&uid, found.clone(), config.clone());
    Ok(ControlFlow::Continue((step, found, config)))
}

/// Reads the task in `status.taskRef`: a running one is looked at again soon; a finished one is
/// cleared, and a failed one is recorded (in the condition of its operation) and returned as the
/// error.
async fn finish_task<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    task: TaskRef,
    ctx: &Context<P>,
) -> Result<ControlFlow<Action, Step>, Error> {
    let node = upid_node(&task.upid).unwrap_or_default().to_owned();
    let state = ctx.proxmox.task(&node, &task.upid).await?;
    if state.running() {
        return Ok(ControlFlow::Break(Action::requeue(poll_after(task.started_at.as_ref(), step.at.0))));
    }
    step.status.task_ref = None;
    if let Some(failure) = state.failure() {
        // what the task would have left on the guest is not known
        ctx.cloning.forget(&pod.uid().unwrap_or_default());
        let message = format!("{:?} task failed: {failure}", task.operation);
        let condition = match task.operation {
            TaskOperation::Clone => CLONED,
            TaskOperation::Start | TaskOperation::Stop | TaskOperation::Reboot => STARTED,
            _ => CONFIGURED,
        };
        step.set(Observation::new(condition, false, reasons::PROXMOX_TASK_FAILED.name, message.clone()));
        if step.not_ready(Some(CloudPodPhase::Failed), reasons::PROXMOX_TASK_FAILED.name, message.clone()) {
            publish(&ctx.recorder, pod, true, reasons::PROXMOX_TASK_FAILED.name, "Task", message.clone()).await;
        }
        step.write(api, pod).await?;
        return Err(Error::Task { upid: task.upid, message: failure.to_owned() });
    }
    Ok(ControlFlow::Continue(step))
}

/// The network the spec asks for is not allowed: the change is refused.
async fn refuse<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    refusal: &Refusal,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let message = refusal.to_string();
    step.set(Observation::new(CONFIGURED, false, refusal.reason(), message.clone()));
    // a guest that exists keeps running as it was configured; only the change is refused
    let phase = step.status.vmid.is_none().then_some(CloudPodPhase::Failed);
    if step.not_ready(phase, refusal.reason(), message.clone()) {
        publish(&ctx.recorder, pod, true, refusal.reason(), "Validate", message).await;
    }
    step.write(api, pod).await?;
    Ok(Action::requeue(resync_after(pod, ctx.resync)))
}

/// The guest at the VMID lacks this CloudPod's mark: a Conflict, and it is never touched.
async fn not_owned<P: ProxmoxApi>(
    api: &Api<CloudPod>,
    pod: &CloudPod,
    mut step: Step,
    found: &Guest,
    vmid: u32,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let message = format!(
        "a {} guest at VMID {vmid} on {} is not this CloudPod's (no tag {}); it is left untouched",
        found.kind.path(),
        found.node,
        guest::tag(&pod.uid().unwrap_or_default())
    );
    if step.set(Observation::new(CONFLICT, true, reasons::GUEST_OWNED_ELSEWHERE.name, message.clone())) {
        publish(&ctx.recorder, pod, true, reasons::CONFLICT.name, "Observe", message.clone()).await;
    }
    step.not_ready(Some(CloudPodPhase::Failed), reasons::CONFLICT.name, message);
    step.write(api, pod).await?;
    Ok(Action::requeue(resync_after(pod, ctx.resync)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_read_again_after_a_quarter_of_its_age_between_one_and_ten_seconds() {
        let now: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let started = |secs: i64| {
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now - jiff::SignedDuration::from_secs(secs)))
        };
        assert_eq!(poll_after(None, now), POLL);
        assert_eq!(poll_after(started(0).as_ref(), now), POLL);
        assert_eq!(poll_after(started(2).as_ref(), now), POLL);
        assert_eq!(poll_after(started(20).as_ref(), now), Duration::from_secs(5));
        assert_eq!(poll_after(started(600).as_ref(), now), POLL_AT_MOST);
        // a start time in the future (clocks apart) is no reason to wait long
        assert_eq!(poll_after(started(-60).as_ref(), now), POLL);
    }
}

#[cfg(test)]
mod reconcile_tests;
