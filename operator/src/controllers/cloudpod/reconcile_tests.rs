//! Reconcile-level unit tests of the cloudpod controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use serde_json::json;

use crate::config::{IpPool, ProxmoxAllowed};
use crate::testing;
use crate::testing::harness::{Harness, derefs_to_harness};
use crate::testing::proxmox::{FakeGuest, FakeProxmox};

const NS: &str = "customer-acme";
const NAME: &str = "web-1";
/// The first VMID of the range the tests' operator hands out.
const FIRST: u32 = 200;

fn pod_with(spec: serde_json::Value) -> CloudPod {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": spec
    }))
    .expect("a valid CloudPod")
}

/// A running LXC container from `tmpl-debian` with a static address, 2 cores, 1 GiB and the
/// template's own 8 GiB disk.
fn spec() -> serde_json::Value {
    json!({
        "plan": "pro", "type": "lxc", "template": "tmpl-debian", "hostname": NAME,
        "resources": {"cores": 2, "memoryMiB": 1024, "diskGiB": 8},
        "network": {"bridge": "vmbr0", "ipv4": {"address": "198.51.100.10/24", "gateway": "198.51.100.1"}},
        "powerState": "Running"
    })
}

fn state(px: &FakeProxmox) -> State<FakeProxmox> {
    let pool = IpPool {
        first: "203.0.113.100".parse().unwrap(),
        last: "203.0.113.199".parse().unwrap(),
        prefix: 24,
        gateway: "203.0.113.1".parse().unwrap(),
    };
    State {
        proxmox: px.clone(),
        vmids: (FIRST, FIRST + 9),
        storage: None,
        snippets: None,
        ip_pools: BTreeMap::from([("public".to_owned(), pool)]),
        allowed: ProxmoxAllowed {
            bridges: vec!["vmbr0".into()],
            vlans: vec![100],
            templates: vec!["tmpl-debian".into(), "tmpl-qemu".into()],
        },
        reserved_addresses: Mutex::default(),
        plans: BTreeMap::new(),
        cloudpods: testing::store_of::<CloudPod>(&[]),
        reserved: Mutex::default(),
        cloning: Mutex::default(),
        exit_after_clone: false,
    }
}

struct World {
    h: Harness<State<FakeProxmox>>,
    px: FakeProxmox,
    pod: CloudPod,
}

derefs_to_harness!(World, State<FakeProxmox>);

impl World {
    fn new(pod: CloudPod) -> Self {
        Self::with(pod, |_| {})
    }

    /// As [`World::new`], with the operator configuration changed by `configure`.
    fn with(pod: CloudPod, configure: impl FnOnce(&mut State<FakeProxmox>)) -> Self {
        let px = FakeProxmox::testbed();
        let mut st = state(&px);
        configure(&mut st);
        let h = Harness::new(st);
        let pod = h.put(&pod);
        Self { h, px, pod }
    }

    async fn once(&self) -> Result<Action, Error> {
        self.h.reconcile(&self.pod, 1).await
    }

    /// Reconciles, finishing every task Proxmox runs, until Ready is True (at most `n` looks).
    async fn converge(&self, n: usize) {
        for _ in 0..n {
            let _ = self.once().await;
            self.px.finish_all_tasks();
            if self.condition("Ready").is_some_and(|c| c.status == "True") {
                return;
            }
        }
        panic!("not Ready after {n} reconciles: {:?}", self.stored().status);
    }

    fn stored(&self) -> CloudPod {
        self.h.stored(&self.pod)
    }

    fn status(&self) -> CloudPodStatus {
        self.stored().status.unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> Option<Condition> {
        self.h.condition(&self.pod, type_)
    }

    fn set_annotation(&self, value: Option<&str>) {
        let mut pod = self.stored();
        match value {
            Some(v) => {
                pod.metadata.annotations.get_or_insert_default().insert(RECONCILE_MODE_ANNOTATION.into(), v.into());
            }
            None => {
                pod.metadata.annotations.get_or_insert_default().remove(RECONCILE_MODE_ANNOTATION);
            }
        }
        self.api.put(&pod);
    }

    fn edit_spec(&self, change: impl FnOnce(&mut CloudPod)) {
        let mut pod = self.stored();
        change(&mut pod);
        pod.metadata.generation = None;
        self.api.put(&pod);
    }

    fn warnings(&self) -> Vec<(String, String)> {
        self.api.events().into_iter().filter(|e| e.type_ == "Warning").map(|e| (e.reason, e.note)).collect()
    }

    fn uid(&self) -> String {
        self.stored().metadata.uid.unwrap()
    }
}

/// A creation reserves the VMID in the status before anything is cloned, tracks the clone's task
/// without waiting for it, then configures and starts the guest; a resync of a converged
/// CloudPod writes nothing, to Proxmox or to the API.
#[tokio::test]
async fn a_new_cloudpod_gets_a_vmid_first_then_a_clone_that_is_tracked_not_awaited() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap(); // the finalizer
    assert!(w.stored().metadata.finalizers.unwrap_or_default().contains(&mpanel_crds::FINALIZER.to_owned()));

    w.once().await.unwrap();
    let status = w.status();
    assert_eq!(status.vmid, Some(FIRST), "{status:?}");
    assert_eq!(status.phase, Some(CloudPodPhase::Provisioning));
    assert_eq!(w.condition(CLONED).map(|c| c.reason), Some("VmidReserved".to_owned()));
    assert_eq!(w.px.count("clone"), 0, "nothing is cloned before the VMID is in the status");

    w.once().await.unwrap();
    let task = w.status().task_ref.expect("the clone's task is tracked");
    assert_eq!(task.operation, TaskOperation::Clone);
    assert_eq!(w.px.count("clone"), 1);
    assert_eq!(w.px.running_tasks(), vec![task.upid.clone()]);
    let guest = w.px.guest(FIRST).expect("the clone is in the cluster");
    assert!(guest.get("description").unwrap().contains(&format!("uid={}", w.uid())), "{guest:?}");
    assert_eq!(w.condition(CLONED).map(|c| (c.status, c.reason)), Some(("False".into(), "Cloning".into())));

    // the task still runs: the next look only reads it
    w.px.clear_calls();
    let writes = w.api.writes();
    assert_eq!(w.once().await.unwrap(), Action::requeue(POLL));
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.api.writes(), writes);
    assert_eq!(w.status().task_ref.map(|t| t.upid), Some(task.upid.clone()));

    // finished in Proxmox: the next reconcile goes on (configure, start)
    assert!(w.px.finish_task(&task.upid, Ok(())));
    w.converge(6).await;
    let status = w.status();
    assert_eq!(status.phase, Some(CloudPodPhase::Running), "{status:?}");
    assert_eq!(status.task_ref, None);
    assert_eq!(status.ip_address.as_deref(), Some("198.51.100.10"));
    let guest = w.px.guest(FIRST).unwrap();
    assert_eq!(guest.status, "running");
    assert_eq!(guest.get("cores").as_deref(), Some("2"));
    assert_eq!(guest.get("memory").as_deref(), Some("1024"));
    assert!(guest.get("net0").unwrap().contains("ip=198.51.100.10/24"), "{guest:?}");
    assert_eq!(w.condition(CONFIGURED).map(|c| c.status), Some("True".into()));
    assert_eq!(w.condition(STARTED).map(|c| c.status), Some("True".into()));
    assert_eq!(w.condition(CONFLICT).map(|c| c.status), Some("False".into()));
    assert_eq!(w.px.count("clone"), 0, "cloned once only");

    // a resync of what is in sync writes nothing anywhere
    w.px.clear_calls();
    let writes = w.api.writes();
    w.once().await.unwrap();
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.api.writes(), writes, "{:?}", w.api.requests());
}

/// Crash safety: a guest at the reserved VMID that carries this CloudPod's marker (a clone whose
/// task the status never recorded) is adopted, never cloned again.
#[tokio::test]
async fn a_guest_with_our_marker_at_the_vmid_is_adopted_not_cloned_again() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.status().vmid, Some(FIRST));
    // the clone was asked for, then the operator died before writing its task
    let marker = guest::marker(NS, NAME, &w.uid());
    let mut guest = FakeGuest::template(FIRST, "pve2", Kind::Lxc, NAME, 8).with("description", &marker);
    guest.template = false;
    guest.config.remove("template");
    w.px.insert_guest(guest);

    w.converge(6).await;
    assert_eq!(w.px.count("clone"), 0, "adopted, not cloned: {:?}", w.px.calls());
    assert_eq!(w.status().phase, Some(CloudPodPhase::Running));
    assert_eq!(w.status().node.as_deref(), Some("pve2"));
    assert_eq!(w.condition(CONFLICT).map(|c| (c.status, c.reason)), Some(("False".into(), "Owned".into())));
    assert_eq!(w.px.guest(FIRST).unwrap().status, "running");
}

/// A guest at the VMID without this CloudPod's marker is a Conflict: reported, announced, and
/// never written to (not configured, started, or destroyed on deletion).
#[tokio::test]
async fn a_guest_without_our_marker_is_a_conflict_and_never_touched() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap();
    w.once().await.unwrap();
    let foreign = FakeGuest::new(FIRST, "pve1", Kind::Lxc).with("hostname", "someone-else").with("cores", "7");
    w.px.insert_guest(foreign.clone());
    w.px.clear_calls();

    w.once().await.unwrap();
    let conflict = w.condition(CONFLICT).expect("a Conflict condition");
    assert_eq!((conflict.status.as_str(), conflict.reason.as_str()), ("True", "GuestOwnedElsewhere"));
    assert!(conflict.message.contains(&format!("VMID {FIRST}")), "{}", conflict.message);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Failed));
    assert_eq!(w.condition("Ready").map(|c| (c.status, c.reason)), Some(("False".into(), "Conflict".into())));
    assert!(w.warnings().iter().any(|(r, _)| r == "Conflict"), "{:?}", w.warnings());
    w.once().await.unwrap();
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST), Some(foreign.clone()));

    // deleting the CloudPod leaves the other owner's guest where it is
    w.api.delete::<CloudPod>(NS, NAME);
    w.once().await.unwrap();
    assert!(w.api.get::<CloudPod>(NS, NAME).is_none(), "the finalizer went");
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST), Some(foreign));
}

/// A task that fails is reported with Proxmox's exit status verbatim, in the condition of its
/// operation and a Warning Event.
#[tokio::test]
async fn a_failed_clone_task_is_shown_verbatim() {
    let w = World::new(pod_with(spec()));
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    let upid = w.status().task_ref.expect("a clone in flight").upid;
    let exit = "clone failed: lvcreate 'pve/vm-200-disk-0' error: Insufficient free space";
    assert!(w.px.finish_task(&upid, Err(exit)));

    let err = w.once().await.unwrap_err();
    assert!(matches!(&err, Error::Task { message, .. } if message == exit), "{err:?}");
    let cloned = w.condition(CLONED).unwrap();
    assert_eq!((cloned.status.as_str(), cloned.reason.as_str()), ("False", "ProxmoxTaskFailed"));
    assert!(cloned.message.contains(exit), "{}", cloned.message);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Failed));
    assert_eq!(w.status().task_ref, None);
    assert!(w.warnings().iter().any(|(r, note)| r == "ProxmoxTaskFailed" && note.contains(exit)), "{:?}", w.warnings());
}

/// A Proxmox call that fails is shown with Proxmox's words, and a Warning Event is recorded.
#[tokio::test]
async fn a_proxmox_error_is_shown_verbatim_in_the_condition() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap();
    w.once().await.unwrap();
    let words = "unable to create CT 200 - storage 'local-lvm' is not online";
    w.px.fail_next("clone", words);
    assert!(w.once().await.is_err());
    let cloned = w.condition(CLONED).unwrap();
    assert_eq!(cloned.status, "False");
    assert!(cloned.message.contains(words), "{}", cloned.message);
    let ready = w.condition("Ready").unwrap();
    assert!(ready.message.contains(words), "{}", ready.message);
    assert!(w.warnings().iter().any(|(_, note)| note.contains(words)), "{:?}", w.warnings());
    assert!(w.px.guest(FIRST).is_none());

    // the next attempt clones
    w.converge(6).await;
    assert_eq!(w.px.count("clone"), 2);
}

/// Hand edits of cores, memory and the power state are put back on the next reconcile and
/// announced as repaired drift.
#[tokio::test]
async fn configuration_and_power_drift_are_repaired() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.px.edit_guest(FIRST, |g| {
        g.set("cores", "8");
        g.set("memory", "4096");
    });
    w.px.clear_calls();
    w.once().await.unwrap();
    let guest = w.px.guest(FIRST).unwrap();
    assert_eq!((guest.get("cores").as_deref(), guest.get("memory").as_deref()), (Some("2"), Some("1024")));
    let set: Vec<_> = w.px.writes().into_iter().filter(|c| c.op == "set_config").collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(set[0].params.keys().cloned().collect::<Vec<_>>(), ["cores", "memory"]);
    assert!(
        w.api.events().iter().any(|e| e.reason == "DriftRepaired" && e.note.contains("cores, memory")),
        "{:?}",
        w.api.events()
    );

    // stopped by hand: started again
    w.px.edit_guest(FIRST, |g| g.status = "stopped".into());
    w.once().await.unwrap();
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Start));
    assert_eq!(w.condition(STARTED).map(|c| c.reason), Some("Starting".into()));
    w.px.finish_all_tasks();
    w.converge(3).await;
    assert_eq!(w.px.guest(FIRST).unwrap().status, "running");
}

/// A disk smaller than the spec grows (a task tracked like any other); a spec smaller than the
/// disk never shrinks it.
#[tokio::test]
async fn the_root_disk_grows_and_never_shrinks() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.edit_spec(|p| p.spec.resources.as_mut().unwrap().disk_gib = 12);
    w.once().await.unwrap();
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Resize));
    assert_eq!(w.condition(CONFIGURED).map(|c| c.reason), Some("Resizing".into()));
    w.px.finish_all_tasks();
    w.converge(4).await;
    assert!(w.px.guest(FIRST).unwrap().get("rootfs").unwrap().ends_with("size=12G"));
    assert_eq!(w.status().applied_resources.map(|r| r.disk_gib), Some(12));

    w.edit_spec(|p| p.spec.resources.as_mut().unwrap().disk_gib = 4);
    w.px.clear_calls();
    w.once().await.unwrap();
    assert_eq!(w.px.count("resize"), 0);
    assert!(w.px.guest(FIRST).unwrap().get("rootfs").unwrap().ends_with("size=12G"));
    assert_eq!(w.condition(CONFIGURED).map(|c| c.reason), Some("DiskLargerThanSpec".into()));
    assert_eq!(w.status().applied_resources.map(|r| r.disk_gib), Some(12));
}

/// A bridge or template the operator configuration does not allow is refused before any VMID is
/// reserved or anything is cloned.
#[tokio::test]
async fn a_network_or_template_not_allowed_is_refused_and_nothing_is_made() {
    for (field, value, reason) in [
        ("bridge", json!("vmbr9"), "NetworkNotAllowed"),
        ("vlan", json!(300), "NetworkNotAllowed"),
        ("template", json!("tmpl-other"), "TemplateNotAllowed"),
    ] {
        let mut s = spec();
        match field {
            "template" => s["template"] = value,
            _ => s["network"][field] = value,
        }
        let w = World::new(pod_with(s));
        w.once().await.unwrap();
        w.once().await.unwrap();
        let configured = w.condition(CONFIGURED).expect("refused in Configured");
        assert_eq!((configured.status.as_str(), configured.reason.as_str()), ("False", reason), "{field}");
        assert_eq!(w.status().vmid, None, "{field}");
        assert_eq!(w.status().phase, Some(CloudPodPhase::Failed), "{field}");
        assert!(w.warnings().iter().any(|(r, _)| r == reason), "{field}: {:?}", w.warnings());
        assert!(w.px.writes().is_empty(), "{field}: {:?}", w.px.writes());
    }
}

/// A static address inside a pool the operator gives out is refused.
#[tokio::test]
async fn a_static_address_inside_a_pool_is_refused() {
    let mut s = spec();
    s["network"]["ipv4"] = json!({"address": "203.0.113.150/24", "gateway": "203.0.113.1"});
    let w = World::new(pod_with(s));
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.condition(CONFIGURED).map(|c| c.reason), Some("AddressInPool".into()));
    assert!(w.px.writes().is_empty());
}

/// A pool address is given out once and kept in the status.
#[tokio::test]
async fn a_pool_address_is_given_out_and_configured() {
    let mut s = spec();
    s["network"]["ipv4"] = json!({"pool": "public"});
    let w = World::new(pod_with(s));
    w.converge(10).await;
    assert_eq!(w.status().ip_address.as_deref(), Some("203.0.113.100"));
    assert!(w.px.guest(FIRST).unwrap().get("net0").unwrap().contains("ip=203.0.113.100/24,gw=203.0.113.1"));
}

/// Deletion stops, then destroys the guest, each a task; a destroy in flight is a wait (the
/// `Destroying` reason), not a failure, and the finalizer goes once the guest is gone.
#[tokio::test]
async fn deletion_stops_then_destroys_and_waits_without_failing() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.api.delete::<CloudPod>(NS, NAME);

    let err = w.once().await.unwrap_err();
    assert!(matches!(err, Error::Destroying), "{err:?}");
    assert_eq!(err.reason(), "Destroying");
    assert_eq!(err.waiting(), Some(POLL));
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Stop));
    assert_eq!(w.status().phase, Some(CloudPodPhase::Deleting));
    // still running: a wait
    assert!(matches!(w.once().await.unwrap_err(), Error::Destroying));
    w.px.finish_all_tasks();

    assert!(matches!(w.once().await.unwrap_err(), Error::Destroying));
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Destroy));
    w.px.finish_all_tasks();
    assert!(w.px.guest(FIRST).is_none());

    w.once().await.unwrap();
    assert!(w.api.get::<CloudPod>(NS, NAME).is_none(), "the finalizer went");
    assert!(w.warnings().is_empty(), "a deletion is no failure: {:?}", w.warnings());
}

/// `deletionPolicy: Orphan` leaves the guest running where it is; the finalizer goes.
#[tokio::test]
async fn deletion_with_orphan_leaves_the_guest() {
    let mut s = spec();
    s["deletionPolicy"] = json!("Orphan");
    let w = World::new(pod_with(s));
    w.converge(10).await;
    w.api.delete::<CloudPod>(NS, NAME);
    w.px.clear_calls();
    w.once().await.unwrap();
    assert!(w.api.get::<CloudPod>(NS, NAME).is_none());
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("running".into()));
}

/// ObserveOnly reports the guest as it is (out of sync, stopped) and never changes its config or
/// power state; back in Reconcile, both are put right.
#[tokio::test]
async fn observe_only_reports_the_guest_as_it_is_and_changes_nothing() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.set_annotation(Some("ObserveOnly"));
    w.px.edit_guest(FIRST, |g| g.status = "stopped".into());
    w.px.clear_calls();
    w.once().await.unwrap();
    let ready = w.condition("Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("ObserveOnly: not changed"), "{}", ready.message);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Stopped));
    assert_eq!(w.condition(STARTED).map(|c| c.status), Some("False".into()));

    w.px.edit_guest(FIRST, |g| g.set("cores", "6"));
    w.once().await.unwrap();
    let ready = w.condition("Ready").unwrap();
    assert_eq!(ready.reason, "OutOfSync");
    assert!(ready.message.contains("cores") && ready.message.contains("not written"), "{}", ready.message);
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("stopped".into()));

    // back in Reconcile: both are put right
    w.set_annotation(None);
    w.converge(6).await;
    assert_eq!(w.px.guest(FIRST).map(|g| (g.get("cores"), g.status)), Some((Some("2".into()), "running".into())));
}

/// ObserveOnly on a CloudPod with no guest reports it not created and reserves nothing.
#[tokio::test]
async fn observe_only_without_a_guest_creates_nothing() {
    let mut pod = pod_with(spec());
    pod.metadata.annotations = Some(BTreeMap::from([(RECONCILE_MODE_ANNOTATION.to_owned(), "ObserveOnly".into())]));
    let w = World::new(pod);
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.status().vmid, None);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Pending));
    assert_eq!(w.condition("Ready").map(|c| c.reason), Some("NotCreated".into()));
    assert!(w.px.writes().is_empty());
}

/// Paused does nothing at all; an annotation that is not a mode is reported and nothing is done.
#[tokio::test]
async fn paused_does_nothing_and_an_invalid_mode_is_reported() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.set_annotation(Some("Paused"));
    w.px.edit_guest(FIRST, |g| g.status = "stopped".into());
    w.px.clear_calls();
    let writes = w.api.writes();
    w.once().await.unwrap();
    assert!(w.px.calls().is_empty(), "{:?}", w.px.calls());
    assert_eq!(w.api.writes(), writes);

    w.set_annotation(Some("Sometimes"));
    w.once().await.unwrap();
    let ready = w.condition("Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidReconcileMode"));
    assert!(ready.message.contains("Sometimes"), "{}", ready.message);
    assert!(w.px.calls().is_empty(), "{:?}", w.px.calls());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("stopped".into()));
}

/// A guest deleted outside the operator is cloned again at the same VMID, announced as such.
#[tokio::test]
async fn a_guest_deleted_out_of_band_is_cloned_again_at_the_same_vmid() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    assert!(w.px.remove_guest(FIRST).is_some());
    w.once().await.unwrap();
    let clones: Vec<_> = w.px.calls().into_iter().filter(|c| c.op == "clone").collect();
    assert_eq!(clones.len(), 2);
    assert_eq!(clones[1].vmid, Some(FIRST));
    assert_eq!(w.status().vmid, Some(FIRST));
    assert!(
        w.warnings().iter().any(|(r, note)| r == "Recreating" && note.contains("deleted outside the operator")),
        "{:?}",
        w.api.events()
    );
    w.px.finish_all_tasks();
    w.converge(6).await;
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("running".into()));
}

/// A VMID taken by another CloudPod's status or by any guest is not handed out again.
#[tokio::test]
async fn a_vmid_in_use_is_skipped() {
    let mut other = pod_with(spec());
    other.metadata.name = Some("other".into());
    other.spec.network.ipv4.address = Some("198.51.100.20/24".into());
    other.status = Some(CloudPodStatus { vmid: Some(FIRST), ..CloudPodStatus::default() });
    let w = World::with(pod_with(spec()), |st| st.cloudpods = testing::store_of(&[other]));
    w.px.insert_guest(FakeGuest::new(FIRST + 1, "pve1", Kind::Qemu));
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.stored().status.unwrap().vmid, Some(FIRST + 2));
}

/// A static address another customer's CloudPod already has is refused, without naming that
/// CloudPod or its namespace, and nothing is made in Proxmox.
#[tokio::test]
async fn an_address_another_customers_cloudpod_holds_is_refused_without_naming_it() {
    let mut theirs = pod_with(spec());
    theirs.metadata.name = Some("their-shop".into());
    theirs.metadata.namespace = Some("customer-other".into());
    theirs.metadata.uid = Some("their-uid".into());
    theirs.status = Some(CloudPodStatus {
        vmid: Some(FIRST + 5),
        ip_address: Some("198.51.100.10".into()),
        ..CloudPodStatus::default()
    });
    let w = World::with(pod_with(spec()), |st| st.cloudpods = testing::store_of(&[theirs]));
    w.once().await.unwrap();
    w.once().await.unwrap();
    let status = w.stored().status.unwrap();
    let configured = status.conditions.iter().find(|c| c.type_ == CONFIGURED).expect("refused in Configured");
    assert_eq!((configured.status.as_str(), configured.reason.as_str()), ("False", "AddressInUse"));
    assert!(
        !configured.message.contains("their-shop") && !configured.message.contains("customer-other"),
        "{}",
        configured.message
    );
    assert_eq!(status.vmid, None);
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
}

/// A VM from a QEMU template: the guest agent's view of a running VM goes into the status, and a
/// reboot is done once for each `rebootRequestedAt` value, however often the CloudPod is looked at.
#[tokio::test]
async fn a_vm_shows_its_agents_view_and_reboots_once_per_request() {
    let mut s = spec();
    s["type"] = json!("qemu");
    s["template"] = json!("tmpl-qemu");
    s["resources"]["diskGiB"] = json!(10);
    let w = World::new(pod_with(s));
    w.converge(10).await;
    let guest = w.px.guest(FIRST).unwrap();
    assert_eq!(guest.kind, Kind::Qemu);
    assert_eq!(guest.get("ipconfig0").as_deref(), Some("ip=198.51.100.10/24,gw=198.51.100.1"));
    assert_eq!(w.status().guest_agent, None, "no agent answers yet");

    let agent = crate::testing::proxmox::FakeAgent::answering(
        "Debian GNU/Linux 12 (bookworm)",
        &[("eth0", "198.51.100.10/24")],
    );
    w.px.set_agent(FIRST, Some(agent));
    w.once().await.unwrap();
    let seen = w.status().guest_agent.expect("the agent's view");
    assert_eq!(seen.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    let addresses: Vec<String> = seen.addresses.iter().map(|a| format!("{} {}", a.interface, a.address)).collect();
    assert_eq!(addresses, ["eth0 198.51.100.10/24"]);

    let reboots = |w: &World| {
        w.px.calls()
            .into_iter()
            .filter(|c| c.op == "power" && c.params.get("action").map(String::as_str) == Some("reboot"))
            .count()
    };
    w.px.clear_calls();
    w.edit_spec(|p| p.spec.reboot_requested_at = Some(Time("2026-06-01T12:30:00Z".parse().unwrap())));
    w.once().await.unwrap();
    assert_eq!(reboots(&w), 1);
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Reboot));
    assert_eq!(w.status().reboot.map(|r| r.outcome), Some(mpanel_crds::cloudpod::RebootOutcome::Requested));
    assert!(w.api.events().iter().any(|e| e.reason == "Rebooting" && e.type_ == "Normal"), "{:?}", w.api.events());
    w.px.finish_all_tasks();
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    assert_eq!(reboots(&w), 1, "one reboot for one value");
    assert_eq!(w.condition("Ready").map(|c| c.status), Some("True".into()));
}

/// A CloudPod without `resources` takes its plan's sizes; a plan the configuration lacks is
/// reported in Configured and the guest is not configured or started.
#[tokio::test]
async fn sizes_come_from_the_plan_and_an_unknown_plan_is_reported() {
    let mut s = spec();
    s.as_object_mut().unwrap().remove("resources");
    let small = mpanel_crds::cloudpod::Resources { cores: 3, memory_mib: 768, disk_gib: 8 };
    let w = World::with(pod_with(s.clone()), |st| st.plans = BTreeMap::from([("pro".to_owned(), small.clone())]));
    w.converge(10).await;
    let guest = w.px.guest(FIRST).unwrap();
    assert_eq!((guest.get("cores").as_deref(), guest.get("memory").as_deref()), (Some("3"), Some("768")));
    assert_eq!(w.status().applied_resources, Some(small));

    let w = World::new(pod_with(s));
    for _ in 0..4 {
        let _ = w.once().await;
        w.px.finish_all_tasks();
    }
    let configured = w.condition(CONFIGURED).expect("a Configured condition");
    assert_eq!((configured.status.as_str(), configured.reason.as_str()), ("False", "UnknownPlan"));
    assert!(configured.message.contains("\"pro\""), "{}", configured.message);
    assert_eq!(w.px.count("set_config") + w.px.count("power"), 0, "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("stopped".into()));
}

/// No free VMID in the range, no online node, no such template: each is reported and nothing is
/// cloned.
#[tokio::test]
async fn no_vmid_no_node_or_no_template_is_reported_and_nothing_cloned() {
    let w = World::with(pod_with(spec()), |st| st.vmids = (FIRST, FIRST));
    w.px.insert_guest(FakeGuest::new(FIRST, "pve2", Kind::Lxc));
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.condition("Ready").map(|c| c.reason), Some("NoFreeVmid".into()));
    assert_eq!(w.status().phase, Some(CloudPodPhase::Pending));
    assert_eq!(w.status().vmid, None);

    let w = World::new(pod_with(spec()));
    w.px.set_node_status("pve1", "offline");
    w.px.set_node_status("pve2", "offline");
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    assert_eq!(w.condition("Ready").map(|c| c.reason), Some("NoNode".into()));
    assert_eq!(w.px.count("clone"), 0);

    let w = World::with(pod_with(spec()), |st| st.allowed.templates.clear());
    w.edit_spec(|p| p.spec.template = "tmpl-gone".into());
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    let cloned = w.condition(CLONED).unwrap();
    assert_eq!((cloned.status.as_str(), cloned.reason.as_str()), ("False", "TemplateNotFound"));
    assert!(cloned.message.contains("tmpl-gone"), "{}", cloned.message);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Failed));
    assert_eq!(w.px.count("clone"), 0);
}

/// A start task that fails is shown verbatim in Started, with a Warning Event.
#[tokio::test]
async fn a_failed_start_is_shown_verbatim_in_started() {
    let w = World::new(pod_with(spec()));
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    w.px.finish_all_tasks();
    w.once().await.unwrap();
    let task = w.status().task_ref.expect("a start in flight");
    assert_eq!(task.operation, TaskOperation::Start);
    let exit = "startup for container '200' failed";
    assert!(w.px.finish_task(&task.upid, Err(exit)));
    assert!(w.once().await.is_err());
    let started = w.condition(STARTED).unwrap();
    assert_eq!((started.status.as_str(), started.reason.as_str()), ("False", "ProxmoxTaskFailed"));
    assert!(started.message.contains(exit), "{}", started.message);
    assert!(w.warnings().iter().any(|(_, note)| note.contains(exit)), "{:?}", w.warnings());
}
