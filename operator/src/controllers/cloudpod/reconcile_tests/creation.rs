//! A CloudPod's guest is made: the VMID reserved first, the clone tracked, adoption and conflicts at the VMID,
//! a guest deleted out of band, and what stops a clone.

use super::*;

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
