//! CloudPodRestore: a restore over the CloudPod's guest, its failures and refusals, deletion midway and modes.

use super::*;

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
