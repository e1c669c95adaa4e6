//! Reconcile-level unit tests of the backup controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::SignedDuration;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use mpanel_crds::backup::{BackupPolicy, BackupPolicyPhase, CloudPodRestore, RestorePhase};
use mpanel_crds::cloudpod::CloudPod;
use serde_json::{Value, json};

use crate::providers::proxmox::Kind;
use crate::providers::proxmox_backup::BackupVolume;
use crate::testing;
use crate::testing::harness::{Harness, derefs_to_harness};
use crate::testing::proxmox::{FakeGuest, FakeProxmox};

const NS: &str = "customer-acme";
const POD: &str = "web-1";
const VMID: u32 = 200;
const STORAGE: &str = "backups";

fn cloud_pod(ns: &str, status: Option<Value>) -> CloudPod {
    let mut manifest = json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": POD, "namespace": ns},
        "spec": {
            "plan": "pro", "type": "lxc", "template": "tmpl-debian", "hostname": POD,
            "network": {"bridge": "vmbr0", "ipv4": {"address": "198.51.100.10/24", "gateway": "198.51.100.1"}},
            "powerState": "Running"
        }
    });
    if let Some(status) = status {
        manifest["status"] = status;
    }
    serde_json::from_value(manifest).expect("a valid CloudPod")
}

/// The CloudPod's guest: a running container at [`VMID`] on pve1.
fn guest() -> FakeGuest {
    let mut g = FakeGuest::new(VMID, "pve1", Kind::Lxc)
        .with("hostname", POD)
        .with("cores", "2")
        .with("rootfs", "local-lvm:vm-200-disk-0,size=8G");
    g.status = "running".into();
    g
}

fn policy(every: &str, keep: u32) -> BackupPolicy {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": "web-1-daily", "namespace": NS},
        "spec": {"cloudPods": [POD], "schedule": {"every": every}, "keep": keep, "storage": STORAGE, "mode": "snapshot"}
    }))
    .expect("a valid BackupPolicy")
}

struct World {
    h: Harness<State<FakeProxmox>>,
    px: FakeProxmox,
}

derefs_to_harness!(World, State<FakeProxmox>);

impl World {
    /// The testbed's Proxmox with the guest, and the CloudPod that owns it (with its guest in the
    /// status unless `with_guest` is false).
    fn new(with_guest: bool) -> Self {
        let px = FakeProxmox::testbed();
        px.insert_guest(guest());
        let h = Harness::new(State { proxmox: Arc::new(px.clone()) });
        let status = with_guest.then(|| json!({"vmid": VMID, "node": "pve1", "phase": "Running"}));
        h.api.put(&cloud_pod(NS, status));
        px.set_clock(h.ctx.clock.clone());
        Self { h, px }
    }

    fn pod(&self) -> CloudPod {
        self.stored_at(NS, POD)
    }

    fn pod_uid(&self) -> String {
        self.pod().uid().unwrap()
    }

    fn advance(&self, minutes: i64) {
        self.ctx.clock.advance(SignedDuration::from_mins(minutes));
    }

    fn warnings(&self) -> Vec<(String, String)> {
        self.api.events().into_iter().filter(|e| e.type_ == "Warning").map(|e| (e.reason, e.note)).collect()
    }

    fn archives(&self) -> Vec<String> {
        self.px.archives(STORAGE).into_iter().map(|v| v.volid).collect()
    }
}

// ---- BackupPolicy ----

struct Policy<'w> {
    w: &'w World,
    obj: BackupPolicy,
}

impl Policy<'_> {
    async fn once(&self) -> Result<Action, Error> {
        self.w.reconcile(&self.obj, 1).await
    }

    fn stored(&self) -> BackupPolicy {
        self.w.stored(&self.obj)
    }

    fn status(&self) -> mpanel_crds::backup::BackupPolicyStatus {
        self.stored().status.unwrap_or_default()
    }

    fn ready(&self) -> Condition {
        self.w.expect_condition(&self.obj, "Ready")
    }

    fn entry(&self) -> mpanel_crds::backup::CloudPodBackups {
        self.status().cloud_pods.into_iter().find(|e| e.name == POD).expect("the CloudPod's entry")
    }
}

fn policy_in<'w>(w: &'w World, obj: BackupPolicy) -> Policy<'w> {
    let obj = w.put(&obj);
    Policy { w, obj }
}

/// The first backup starts at once and its task is only read, never waited on; the next starts
/// `schedule.every` after the last one, not before (the clock is moved, nothing sleeps).
#[tokio::test]
async fn a_vzdump_runs_at_once_then_every_interval() {
    let w = World::new(true);
    let p = policy_in(&w, policy("1h", 5));
    p.once().await.unwrap(); // the finalizer
    p.once().await.unwrap();
    assert_eq!(w.px.count("vzdump"), 1);
    let call = w.px.calls().into_iter().find(|c| c.op == "vzdump").unwrap();
    assert_eq!(call.vmid, Some(VMID));
    assert_eq!(call.node, "pve1");
    let expected_notes = marker(&w.pod_uid(), &p.stored().uid().unwrap());
    assert_eq!(call.params.get("notes-template"), Some(&expected_notes));
    let task = p.entry().task.expect("the vzdump's task is in the status");
    assert_eq!(p.entry().last_backup_at.map(|t| t.0.to_string()), Some(testing::T0.to_owned()));

    // still running: read, not waited for, and no second vzdump
    assert_eq!(p.once().await.unwrap(), Action::requeue(POLL));
    assert_eq!(w.px.count("vzdump"), 1);
    assert!(w.px.finish_task(&task, Ok(())));
    p.once().await.unwrap();
    let entry = p.entry();
    assert_eq!(entry.task, None);
    assert!(entry.last_success_at.is_some());
    assert_eq!(entry.archives.len(), 1, "{entry:?}");
    assert_eq!(entry.archives[0].volid, w.archives()[0]);
    assert_eq!(entry.next_backup_at.map(|t| t.0.to_string()), Some("2026-06-01T13:00:00Z".to_owned()));
    assert_eq!(p.status().phase, Some(BackupPolicyPhase::Active));
    assert_eq!(p.ready().status, "True");

    // not due yet: a resync writes nothing, at Proxmox or the API
    w.advance(59);
    w.px.clear_calls();
    let writes = w.api.writes();
    p.once().await.unwrap();
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.api.writes(), writes, "{:?}", w.api.requests());

    w.advance(1);
    p.once().await.unwrap();
    assert_eq!(w.px.count("vzdump"), 1, "due after one hour");
    assert!(p.entry().task.is_some());
}

/// Only the newest `keep` archives this policy made are kept; older ones are deleted, and an
/// archive of the same guest made by hand is never touched.
#[tokio::test]
async fn older_archives_beyond_keep_are_deleted_and_others_never() {
    let w = World::new(true);
    let by_hand = BackupVolume {
        volid: format!("{STORAGE}:backup/vzdump-lxc-{VMID}-2026_05_01-00_00_00.tar.zst"),
        vmid: Some(VMID),
        ctime: 1_777_593_600,
        size: 1,
        notes: Some("manual backup before upgrade".into()),
    };
    w.px.add_backup(STORAGE, by_hand.clone(), BTreeMap::new());
    let p = policy_in(&w, policy("1h", 2));
    p.once().await.unwrap();
    for _ in 0..3 {
        p.once().await.unwrap();
        w.px.finish_all_tasks();
        p.once().await.unwrap();
        w.advance(60);
    }
    assert_eq!(w.px.count("vzdump"), 3);
    // the third turn asked for the oldest own archive to go
    w.px.finish_all_tasks();
    let left = w.archives();
    assert_eq!(left.len(), 3, "two own archives and the one made by hand: {left:?}");
    assert!(left.contains(&by_hand.volid));
    assert!(!left.iter().any(|v| v.contains("2026_06_01-12_00_00")), "the oldest own archive is deleted: {left:?}");
    p.once().await.unwrap();
    let listed: Vec<String> = p.entry().archives.into_iter().map(|a| a.volid).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].contains("2026_06_01-14_00_00") && listed[1].contains("2026_06_01-13_00_00"), "{listed:?}");
    let deleted: Vec<_> = w.px.calls().into_iter().filter(|c| c.op == "delete_backup").collect();
    assert!(deleted.iter().all(|c| c.params["volid"] != by_hand.volid), "{deleted:?}");
}

/// A vzdump task that fails is reported with Proxmox's exit status verbatim, in Ready and a
/// Warning Event.
#[tokio::test]
async fn a_failed_vzdump_task_is_shown_verbatim() {
    let w = World::new(true);
    let p = policy_in(&w, policy("24h", 3));
    p.once().await.unwrap();
    p.once().await.unwrap();
    let exit = "ERROR: Backup of VM 200 failed - command 'tar' failed: exit code 2";
    assert!(w.px.finish_task(&p.entry().task.unwrap(), Err(exit)));
    p.once().await.unwrap();
    let ready = p.ready();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "BackupFailed"));
    assert!(ready.message.contains(exit), "{}", ready.message);
    assert!(p.entry().last_failure.unwrap().contains(exit));
    assert!(w.warnings().iter().any(|(r, note)| r == "BackupFailed" && note.contains(exit)), "{:?}", w.warnings());
}

/// A vzdump Proxmox refuses is shown with its words, and the attempt fails for the backoff.
#[tokio::test]
async fn a_refused_vzdump_is_shown_verbatim() {
    let w = World::new(true);
    let p = policy_in(&w, policy("24h", 3));
    p.once().await.unwrap();
    let words = "storage 'backups' is not online";
    w.px.fail_next("vzdump", words);
    assert!(p.once().await.is_err());
    let ready = p.ready();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains(words), "{}", ready.message);
    assert!(w.warnings().iter().any(|(_, note)| note.contains(words)), "{:?}", w.warnings());
    assert!(w.px.archives(STORAGE).is_empty());
}

/// A CloudPod with no guest yet (or none at all) is waited for: Pending, no vzdump, no Warning.
#[tokio::test]
async fn a_cloudpod_without_a_guest_is_waited_for() {
    let w = World::new(false);
    let p = policy_in(&w, policy("24h", 3));
    p.once().await.unwrap();
    p.once().await.unwrap();
    let ready = p.ready();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "CloudPodWithoutGuest"));
    assert_eq!(p.status().phase, Some(BackupPolicyPhase::Pending));
    assert_eq!(w.px.count("vzdump"), 0);
    assert!(w.warnings().is_empty(), "{:?}", w.warnings());
}

/// A policy names CloudPods of its own namespace only: another customer's CloudPod of the same
/// name is never backed up.
#[tokio::test]
async fn another_namespaces_cloudpod_is_never_backed_up() {
    let w = World::new(true);
    let mut theirs = policy("24h", 3);
    theirs.metadata.namespace = Some("intruder".into());
    let theirs = w.put(&theirs);
    for _ in 0..2 {
        w.reconcile(&theirs, 1).await.unwrap();
    }
    let ready = w.expect_condition(&theirs, "Ready");
    assert_eq!(ready.reason, "CloudPodWithoutGuest");
    assert_eq!(w.px.count("vzdump"), 0);
    assert_eq!(w.px.count("list_backups"), 0);
}

/// ObserveOnly starts and deletes nothing, but reports; Paused does nothing; an invalid mode is
/// reported.
#[tokio::test]
async fn policy_modes() {
    let w = World::new(true);
    let mut obj = policy("1h", 1);
    obj.metadata.annotations = Some(BTreeMap::from([(RECONCILE_MODE_ANNOTATION.to_owned(), "ObserveOnly".into())]));
    let p = policy_in(&w, obj);
    p.once().await.unwrap();
    p.once().await.unwrap();
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert!(p.ready().message.contains("ObserveOnly: nothing started or deleted"), "{}", p.ready().message);

    let mut paused = p.stored();
    paused.annotations_mut().insert(RECONCILE_MODE_ANNOTATION.into(), "Paused".into());
    w.api.put(&paused);
    w.px.clear_calls();
    let writes = w.api.writes();
    p.once().await.unwrap();
    assert!(w.px.calls().is_empty());
    assert_eq!(w.api.writes(), writes);

    let mut invalid = p.stored();
    invalid.annotations_mut().insert(RECONCILE_MODE_ANNOTATION.into(), "Never".into());
    w.api.put(&invalid);
    p.once().await.unwrap();
    let ready = p.ready();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidReconcileMode"));
    assert!(w.px.calls().is_empty());
}

/// A schedule that is not an interval is reported and nothing is started.
#[tokio::test]
async fn an_invalid_schedule_is_reported() {
    let w = World::new(true);
    let p = policy_in(&w, policy("whenever", 3));
    p.once().await.unwrap();
    p.once().await.unwrap();
    assert_eq!(p.ready().reason, "InvalidSchedule");
    assert_eq!(p.status().phase, Some(BackupPolicyPhase::Failed));
    assert_eq!(w.px.count("vzdump"), 0);
}

/// Deleting a policy keeps the archives it made (the customer's backups); the finalizer goes.
#[tokio::test]
async fn deleting_a_policy_keeps_its_archives() {
    let w = World::new(true);
    let p = policy_in(&w, policy("1h", 3));
    p.once().await.unwrap();
    p.once().await.unwrap();
    w.px.finish_all_tasks();
    p.once().await.unwrap();
    assert_eq!(w.archives().len(), 1);
    w.api.delete::<BackupPolicy>(NS, "web-1-daily");
    w.px.clear_calls();
    p.once().await.unwrap();
    assert!(w.api.get::<BackupPolicy>(NS, "web-1-daily").is_none());
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.archives().len(), 1);
}

// ---- CloudPodRestore ----

/// An archive of the CloudPod's guest made by one of its policies, holding `cores` 1.
fn own_archive(w: &World) -> String {
    let volid = format!("{STORAGE}:backup/vzdump-lxc-{VMID}-2026_06_01-11_00_00.tar.zst");
    let volume = BackupVolume {
        volid: volid.clone(),
        vmid: Some(VMID),
        ctime: 1_780_311_600,
        size: 1 << 20,
        notes: Some(marker(&w.pod_uid(), "policy-uid")),
    };
    let config = BTreeMap::from([
        ("hostname".to_owned(), json!(POD)),
        ("cores".to_owned(), json!(1)),
        ("rootfs".to_owned(), json!("local-lvm:vm-200-disk-0,size=8G")),
    ]);
    w.px.add_backup(STORAGE, volume, config);
    volid
}

struct Restoring<'w> {
    w: &'w World,
    obj: CloudPodRestore,
}

impl Restoring<'_> {
    async fn once(&self) -> Result<Action, Error> {
        self.w.reconcile(&self.obj, 1).await
    }

    fn status(&self) -> mpanel_crds::backup::CloudPodRestoreStatus {
        self.w.stored(&self.obj).status.unwrap_or_default()
    }

    fn ready(&self) -> Option<Condition> {
        self.w.condition(&self.obj, "Ready")
    }

    fn pod_mode(&self) -> Option<String> {
        self.w.pod().annotations().get(RECONCILE_MODE_ANNOTATION).cloned()
    }
}

fn restore_of<'w>(w: &'w World, archive: &str) -> Restoring<'w> {
    let obj: CloudPodRestore = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPodRestore",
        "metadata": {"name": "restore-1", "namespace": NS},
        "spec": {"cloudPod": POD, "archive": archive}
    }))
    .unwrap();
    Restoring { w, obj: w.put(&obj) }
}

/// A restore pauses the CloudPod, stops the guest, restores the archive over it and hands the
/// CloudPod back with the mode it had; once Completed it is never done again.
#[tokio::test]
async fn a_restore_pauses_stops_restores_and_hands_back_once() {
    let w = World::new(true);
    let mut pod = w.pod();
    pod.annotations_mut().insert(RECONCILE_MODE_ANNOTATION.into(), "ObserveOnly".into());
    w.api.put(&pod);
    let archive = own_archive(&w);
    let r = restore_of(&w, &archive);
    r.once().await.unwrap(); // the finalizer

    r.once().await.unwrap();
    assert_eq!(r.pod_mode().as_deref(), Some("Paused"), "the CloudPod is paused first");
    assert_eq!(r.status().phase, Some(RestorePhase::Stopping));
    assert_eq!(r.status().paused_cloud_pod.and_then(|p| p.previous_mode).as_deref(), Some("ObserveOnly"));
    let stop = r.status().task.expect("the stop's task");
    assert_eq!(w.px.count("restore"), 0, "nothing is restored over a running guest");

    assert_eq!(r.once().await.unwrap(), Action::requeue(POLL));
    assert!(w.px.finish_task(&stop, Ok(())));
    assert_eq!(w.px.guest(VMID).unwrap().status, "stopped");

    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Restoring));
    let call = w.px.calls().into_iter().find(|c| c.op == "restore").expect("a restore");
    assert_eq!(call.params.get("archive"), Some(&archive));
    assert_eq!(call.params.get("force").map(String::as_str), Some("1"));
    assert_eq!(call.params.get("storage").map(String::as_str), Some("local-lvm"), "volumes stay where they are");
    assert_eq!(r.pod_mode().as_deref(), Some("Paused"));
    w.px.finish_all_tasks();

    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Completed));
    let ready = r.ready().unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Restored"));
    assert_eq!(r.pod_mode().as_deref(), Some("ObserveOnly"), "handed back with its own mode");
    let guest = w.px.guest(VMID).unwrap();
    assert_eq!(guest.restored_from.as_deref(), Some(archive.as_str()));
    assert_eq!(guest.get("cores").as_deref(), Some("1"));

    // ended: never redone
    w.px.clear_calls();
    let writes = w.api.writes();
    r.once().await.unwrap();
    r.once().await.unwrap();
    assert!(w.px.calls().is_empty(), "{:?}", w.px.calls());
    assert_eq!(w.api.writes(), writes, "{:?}", w.api.requests());
}

/// A restore task that fails ends the restore as Failed with Proxmox's exit status verbatim, and
/// the CloudPod gets its reconciles back.
#[tokio::test]
async fn a_failed_restore_is_shown_verbatim_and_the_cloudpod_handed_back() {
    let w = World::new(true);
    w.px.edit_guest(VMID, |g| g.status = "stopped".into());
    let archive = own_archive(&w);
    let r = restore_of(&w, &archive);
    r.once().await.unwrap();
    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Restoring));
    let exit = "unable to restore CT 200 - zstd: error 70 : Write error : No space left on device";
    assert!(w.px.finish_task(&r.status().task.unwrap(), Err(exit)));
    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Failed));
    let ready = r.ready().unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "RestoreFailed"));
    assert!(ready.message.contains(exit), "{}", ready.message);
    assert!(w.warnings().iter().any(|(_, note)| note.contains(exit)), "{:?}", w.warnings());
    assert_eq!(r.pod_mode(), None, "the CloudPod has its reconciles back");
    w.px.clear_calls();
    r.once().await.unwrap();
    assert!(w.px.calls().is_empty(), "a failed restore is not tried again: {:?}", w.px.calls());
}

/// An archive that is not the CloudPod's (made by hand, or of another guest) is refused: the
/// guest is not stopped, nothing is restored, the CloudPod is never paused.
#[tokio::test]
async fn an_archive_not_made_for_the_cloudpod_is_refused() {
    let w = World::new(true);
    let by_hand = format!("{STORAGE}:backup/vzdump-lxc-{VMID}-2026_05_01-00_00_00.tar.zst");
    let volume = BackupVolume {
        volid: by_hand.clone(),
        vmid: Some(VMID),
        ctime: 1_777_593_600,
        size: 1,
        notes: Some("manual".into()),
    };
    w.px.add_backup(STORAGE, volume, BTreeMap::new());
    let r = restore_of(&w, &by_hand);
    r.once().await.unwrap();
    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Failed));
    assert_eq!(r.ready().map(|c| c.reason), Some("ArchiveNotOwned".into()));
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(VMID).unwrap().status, "running");
    assert_eq!(r.pod_mode(), None);
}

/// An archive of another VMID (another customer's guest) is refused without looking it up.
#[tokio::test]
async fn an_archive_of_another_guest_is_refused() {
    let w = World::new(true);
    let theirs = format!("{STORAGE}:backup/vzdump-lxc-{}-2026_05_01-00_00_00.tar.zst", VMID + 1);
    let r = restore_of(&w, &theirs);
    r.once().await.unwrap();
    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Failed));
    let ready = r.ready().unwrap();
    assert_eq!(ready.reason, "ArchiveNotOwned");
    assert!(ready.message.contains(&format!("lxc {}", VMID + 1)), "{}", ready.message);
    assert!(w.px.writes().is_empty());
    assert_eq!(r.pod_mode(), None);
}

/// A restore of a CloudPod with no guest waits (Pending) and touches nothing.
#[tokio::test]
async fn a_restore_of_a_cloudpod_without_a_guest_waits() {
    let w = World::new(false);
    let r = restore_of(&w, &format!("{STORAGE}:backup/vzdump-lxc-{VMID}-2026_05_01-00_00_00.tar.zst"));
    r.once().await.unwrap();
    assert_eq!(r.once().await.unwrap(), Action::requeue(WAIT_FOR_POD));
    assert_eq!(r.status().phase, Some(RestorePhase::Pending));
    assert_eq!(r.ready().map(|c| c.reason), Some("CloudPodWithoutGuest".into()));
    assert!(w.px.calls().is_empty(), "{:?}", w.px.calls());
}

/// A restore deleted before it ended gives the CloudPod its reconciles back.
#[tokio::test]
async fn a_restore_deleted_midway_hands_the_cloudpod_back() {
    let w = World::new(true);
    let archive = own_archive(&w);
    let r = restore_of(&w, &archive);
    r.once().await.unwrap();
    r.once().await.unwrap();
    assert_eq!(r.pod_mode().as_deref(), Some("Paused"));
    w.api.delete::<CloudPodRestore>(NS, "restore-1");
    r.once().await.unwrap();
    assert!(w.api.get::<CloudPodRestore>(NS, "restore-1").is_none());
    assert_eq!(r.pod_mode(), None);
}

/// ObserveOnly says what would be restored and does nothing: the CloudPod is not paused, the
/// guest not stopped.
#[tokio::test]
async fn a_restore_in_observe_only_does_nothing() {
    let w = World::new(true);
    let archive = own_archive(&w);
    let r = restore_of(&w, &archive);
    let mut obj: CloudPodRestore = w.api.get(NS, "restore-1").unwrap();
    obj.annotations_mut().insert(RECONCILE_MODE_ANNOTATION.into(), "ObserveOnly".into());
    w.api.put(&obj);
    r.once().await.unwrap();
    r.once().await.unwrap();
    assert_eq!(r.status().phase, Some(RestorePhase::Pending));
    let ready = r.ready().unwrap();
    assert_eq!(ready.reason, "NotRestored");
    assert!(ready.message.contains(&archive), "{}", ready.message);
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(r.pod_mode(), None);
    assert_eq!(w.px.guest(VMID).unwrap().status, "running");
}
