//! The guest's configuration: drift repaired, the disk grown, plan sizes, a VM's agent view and reboots.

use super::*;

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
