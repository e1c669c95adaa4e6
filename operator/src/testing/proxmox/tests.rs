use super::*;
use crate::providers::proxmox::upid_node;
use crate::providers::proxmox_agent;

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn a_clone_runs_until_finished_and_a_taken_vmid_is_refused_in_proxmoxs_words() {
    let pve = FakeProxmox::testbed();
    let upid = pve
        .clone_guest("pve1", Kind::Lxc, 100, 1000, &params(&[("description", "mpanel CloudPod ns/a uid=u1")]))
        .await
        .unwrap();
    assert_eq!(upid_node(&upid), Some("pve1"));
    let task = pve.task("pve1", &upid).await.unwrap();
    assert!(task.running());
    // the template is locked while the clone runs
    assert_eq!(pve.config("pve1", Kind::Lxc, 100).await.unwrap()["lock"], "clone");
    assert!(pve.finish_task(&upid, Ok(())));
    let task = pve.task("pve1", &upid).await.unwrap();
    assert_eq!((task.running(), task.failure()), (false, None));
    let cloned = pve.guest(1000).unwrap();
    assert_eq!(cloned.get("description").as_deref(), Some("mpanel CloudPod ns/a uid=u1"));
    assert_eq!(cloned.get("rootfs").as_deref(), Some("local-lvm:vm-1000-disk-0,size=8G"));
    assert_eq!(cloned.lock(), None);
    assert!(!pve.config("pve1", Kind::Lxc, 100).await.unwrap().contains_key("lock"));

    let taken = pve.clone_guest("pve1", Kind::Lxc, 100, 1000, &BTreeMap::new()).await.unwrap_err();
    assert_eq!(taken.to_string(), "Proxmox answered 500: CT 1000 already exists on node 'pve1'");
    let taken = pve.clone_guest("pve1", Kind::Qemu, 9000, 1000, &BTreeMap::new()).await.unwrap_err();
    assert!(taken.to_string().ends_with("unable to create VM 1000: config file already exists"), "{taken}");
    assert_eq!(pve.count("clone"), 3);
    assert_eq!(pve.writes().len(), 3);
}

#[tokio::test]
async fn a_failed_task_reports_its_error_and_leaves_no_guest() {
    let pve = FakeProxmox::testbed();
    let upid = pve.clone_guest("pve1", Kind::Qemu, 9000, 1001, &BTreeMap::new()).await.unwrap();
    assert!(pve.guest(1001).is_some(), "the guest exists, locked, while cloned");
    pve.finish_task(&upid, Err("storage 'local-lvm' is full"));
    let task = pve.task("pve1", &upid).await.unwrap();
    assert_eq!(task.failure(), Some("storage 'local-lvm' is full"));
    assert!(pve.guest(1001).is_none());
}

#[tokio::test]
async fn config_power_and_destroy_follow_proxmox() {
    let pve = FakeProxmox::testbed();
    pve.set_auto_complete(true);
    pve.insert_guest(FakeGuest::new(1002, "pve2", Kind::Lxc).with("cores", "1").with("tags", "other"));
    assert_eq!(
        pve.config("pve1", Kind::Lxc, 1002).await.unwrap_err().to_string(),
        "Proxmox answered 500: Configuration file 'nodes/pve1/lxc/1002.conf' does not exist"
    );
    pve.set_config("pve2", Kind::Lxc, 1002, &params(&[("cores", "2"), ("delete", "tags")])).await.unwrap();
    let config = pve.config("pve2", Kind::Lxc, 1002).await.unwrap();
    assert_eq!((config["cores"].clone(), config.get("tags")), (Value::from(2), None));
    let start = pve.power("pve2", Kind::Lxc, 1002, "start").await.unwrap();
    assert_eq!(pve.task("pve2", &start).await.unwrap().failure(), None);
    assert_eq!(pve.power_state("pve2", Kind::Lxc, 1002).await.unwrap(), "running");
    let e = pve.destroy("pve2", Kind::Lxc, 1002).await.unwrap_err();
    assert_eq!(e.to_string(), "Proxmox answered 500: CT 1002 is running - destroy failed");
    pve.power("pve2", Kind::Lxc, 1002, "stop").await.unwrap();
    pve.destroy("pve2", Kind::Lxc, 1002).await.unwrap();
    assert!(pve.guest(1002).is_none());
    assert!(pve.guests().await.unwrap().iter().all(|g| g.vmid != 1002));
}

#[tokio::test]
async fn an_injected_failure_carries_its_message_once() {
    let pve = FakeProxmox::testbed();
    pve.fail_next("list_guests", "cluster not ready - no quorum?");
    let e = pve.guests().await.unwrap_err();
    assert!(
        matches!(&e, ProxmoxError::Rejected { status: 500, message } if message == "cluster not ready - no quorum?")
    );
    assert_eq!(pve.guests().await.unwrap().len(), 2);
    pve.fail_next_error("get_config", ProxmoxError::Unreachable("connection refused".into()));
    assert_eq!(pve.config("pve1", Kind::Lxc, 100).await.unwrap_err().reason(), "ProxmoxUnreachable");
    assert_eq!(pve.count("list_guests"), 2);
    assert!(pve.writes().is_empty());
}

#[tokio::test]
async fn a_backup_appears_when_its_task_ends_and_restores_the_config_it_kept() {
    let pve = FakeProxmox::testbed();
    pve.insert_guest(
        FakeGuest::new(1003, "pve1", Kind::Lxc).with("cores", "2").with("rootfs", "ceph-pool:vm-1003-disk-0,size=8G"),
    );
    let at: jiff::Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
    pve.set_clock(Clock::fixed(at));
    let job = Vzdump { vmid: 1003, storage: "backups", mode: "snapshot", notes: "mpanel-backup pod=p policy=q" };
    let upid = pve.vzdump("pve1", &job).await.unwrap();
    assert!(pve.backups("pve1", "backups", 1003).await.unwrap().is_empty(), "not while it runs");
    assert_eq!(pve.guest(1003).unwrap().lock().as_deref(), Some("backup"));
    pve.finish_task(&upid, Ok(()));
    let listed = pve.backups("pve1", "backups", 1003).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].notes.as_deref(), Some("mpanel-backup pod=p policy=q"));
    assert_eq!(parse_archive(&listed[0].volid), Some(("backups", Kind::Lxc, 1003)));
    assert_eq!(listed[0].ctime, at.as_second());
    assert!(listed[0].volid.contains("-1003-2027_01_15-08_00_00."), "{}", listed[0].volid);
    assert!(pve.vzdump("pve1", &Vzdump { storage: "nowhere", ..job.clone() }).await.is_err());

    pve.edit_guest(1003, |g| g.set("cores", "8"));
    pve.set_auto_complete(true);
    let restore = Restore { kind: Kind::Lxc, vmid: 1003, archive: &listed[0].volid, storage: Some("ceph-pool") };
    let upid = pve.restore("pve1", &restore).await.unwrap();
    assert_eq!(pve.task("pve1", &upid).await.unwrap().failure(), None);
    let g = pve.guest(1003).unwrap();
    assert_eq!((g.get("cores").as_deref(), g.restored_from.as_deref()), (Some("2"), Some(listed[0].volid.as_str())));

    let deleted = pve.delete_volume("pve1", "backups", &listed[0].volid).await.unwrap().unwrap();
    assert_eq!(pve.task("pve1", &deleted).await.unwrap().failure(), None);
    assert!(pve.archives("backups").is_empty());
}

#[tokio::test]
async fn the_guest_agent_answers_only_for_a_running_vm_with_an_agent() {
    let pve = FakeProxmox::testbed();
    pve.insert_guest(FakeGuest::new(1004, "pve1", Kind::Qemu));
    pve.edit_guest(1004, |g| g.status = "running".into());
    let e = pve.agent_read("pve1", 1004, "get-osinfo").await.unwrap_err();
    assert!(matches!(AgentError::from(e), AgentError::NotRunning(m) if m == "QEMU guest agent is not running"));
    let mut agent = FakeAgent::answering("Debian GNU/Linux 12 (bookworm)", &[("eth0", "192.0.2.10/24")]);
    agent.exec.insert(
        "systemctl reload nginx".into(),
        ExecStatus { exited: true, exitcode: Some(1), signal: None, err_data: Some("no nginx".into()) },
    );
    pve.set_agent(1004, Some(agent));
    let os = pve.agent_read("pve1", 1004, "get-osinfo").await.unwrap();
    assert_eq!(os["pretty-name"], "Debian GNU/Linux 12 (bookworm)");
    pve.file_write("pve1", 1004, "/etc/ssl/a.pem", "PEM").await.unwrap();
    let ok = ["true".to_owned()];
    proxmox_agent::run(&pve, "pve1", 1004, &ok, std::time::Duration::from_secs(1)).await.unwrap();
    let reload: Vec<String> = ["systemctl", "reload", "nginx"].map(str::to_owned).to_vec();
    let e = proxmox_agent::run(&pve, "pve1", 1004, &reload, std::time::Duration::from_secs(1)).await.unwrap_err();
    assert!(e.to_string().contains("exited 1: no nginx"), "{e}");
    let seen = pve.agent(1004).unwrap();
    assert_eq!(seen.files["/etc/ssl/a.pem"], "PEM");
    assert_eq!(seen.ran.len(), 2);
}
