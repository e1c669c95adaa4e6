//! BackupPolicy: vzdumps on schedule, retention, failures, tenancy, modes and deletion.

use super::*;

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
