//! A CloudPod's guest is made: the VMID reserved first, the clone tracked, adoption and conflicts at the VMID,
//! a guest deleted out of band, and what stops a clone.

use super::*;

/// A creation reserves the VMID in the status before anything is cloned (in the same reconcile
/// that then asks for the clone), tracks the clone's task without waiting for it, then configures
/// and starts the guest; a resync of a converged CloudPod writes nothing, to Proxmox or to the API.
#[tokio::test]
async fn a_new_cloudpod_gets_a_vmid_first_then_a_clone_that_is_tracked_not_awaited() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap(); // the finalizer
    assert!(w.stored().metadata.finalizers.unwrap_or_default().contains(&mpanel_crds::FINALIZER.to_owned()));

    w.once().await.unwrap();
    let status = w.status();
    assert_eq!(status.vmid, Some(FIRST), "{status:?}");
    assert_eq!(status.phase, Some(CloudPodPhase::Provisioning));
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

/// The VMID's status write comes before the clone request: when it fails, nothing is cloned, and
/// the next attempt reserves and clones.
#[tokio::test]
async fn nothing_is_cloned_when_the_vmid_cannot_be_written_to_the_status() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap(); // the finalizer
    w.api.fail_next("PATCH", "/status", 500, "etcdserver: request timed out");
    assert!(w.once().await.is_err());
    assert_eq!(w.status().vmid, None);
    assert_eq!(w.px.count("clone"), 0, "cloned to a VMID the status does not hold: {:?}", w.px.calls());

    w.once().await.unwrap();
    let status = w.status();
    let vmid = status.vmid.expect("a VMID reserved");
    assert_eq!(status.task_ref.map(|t| t.operation), Some(TaskOperation::Clone));
    let clones: Vec<_> = w.px.calls().into_iter().filter(|c| c.op == "clone").collect();
    assert_eq!(clones.iter().map(|c| c.vmid).collect::<Vec<_>>(), [Some(vmid)]);
}

/// The finalizer, then a VMID reserved in the status whose clone Proxmox refused: a CloudPod with
/// a VMID and no guest.
async fn reserved_not_cloned(w: &World) {
    w.once().await.unwrap();
    w.px.fail_next("clone", "unable to create CT: storage 'local-lvm' is not online");
    assert!(w.once().await.is_err());
    assert_eq!(w.status().vmid, Some(FIRST));
    assert!(w.px.guest(FIRST).is_none());
    w.px.clear_calls();
}

/// Crash safety: a guest at the reserved VMID that carries this CloudPod's marker (a clone whose
/// task the status never recorded) is adopted, never cloned again.
#[tokio::test]
async fn a_guest_with_our_marker_at_the_vmid_is_adopted_not_cloned_again() {
    let w = World::new(pod_with(spec()));
    reserved_not_cloned(&w).await;
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
    reserved_not_cloned(&w).await;
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

/// CloudPods waiting for a template that a running clone locks look at it once per poll between
/// them, not each every second; once the clone is done, the next one clones.
#[tokio::test]
async fn cloudpods_waiting_for_a_locked_template_ask_proxmox_once_between_them() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.px.count("clone"), 1, "the first clone runs and locks the template");
    let others: Vec<CloudPod> = (2..5)
        .map(|i| {
            let mut other = pod_with(spec());
            other.metadata.name = Some(format!("web-{i}"));
            other.spec.network.ipv4.address = Some(format!("198.51.100.{}/24", 10 + i));
            w.h.put(&other)
        })
        .collect();
    w.px.clear_calls();
    for other in &others {
        w.h.reconcile(other, 2).await.unwrap(); // the finalizer, then the wait
    }
    let template_reads = || w.px.calls().iter().filter(|c| c.op == "get_config" && c.vmid == Some(100)).count();
    assert_eq!(template_reads(), 1, "{:?}", w.px.calls());
    assert_eq!(w.px.count("clone"), 0);
    for other in &others {
        assert_eq!(w.h.reconcile(other, 1).await.unwrap(), Action::requeue(POLL));
    }
    assert_eq!(template_reads(), 1, "asked again within the poll: {:?}", w.px.calls());

    // the clone is done: after the poll the next CloudPod looks again and clones
    w.px.finish_all_tasks();
    tokio::time::sleep(POLL).await;
    w.h.reconcile(&others[0], 1).await.unwrap();
    assert_eq!(template_reads(), 2);
    assert_eq!(w.px.count("clone"), 1);
}
