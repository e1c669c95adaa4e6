//! BackupPolicy and CloudPodRestore end to end: a real kube-apiserver, the operator binary, and
//! fakepve (a fake of the Proxmox VE API standing in for PVE; the testbed's subclass adds vzdump,
//! archives and restores to it, see tests/testbed/fakepve-launch.py).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(60);
const STORAGE: &str = "backups";

/// A namespace of its own with the Proxmox token, an operator configuration for it alone and a
/// block of VMIDs no other test uses.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str, block: u32) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let token = format!("--from-literal=token={}", tb.get("PROXMOX_TOKEN")?);
        tb.kubectl_ok(&["create", "secret", "generic", "proxmox", "-n", &ns.name, &token], None)?;
        // each test runs in a process of its own: its pid picks a block of 100 VMIDs
        let first = 100_000 + (std::process::id() % 100_000) * 100 + block * 50;
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 3s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 proxmox:\n  url: {url}\n  caFile: {ca}\n  storage: ceph-pool\n  vmidRange: {{first: {first}, last: {last}}}\n\
                 \x20 tokenSecretRef: {{namespace: {ns}, name: proxmox, key: token}}\n\
                 \x20 allowed: {{bridges: [vmbr0]}}\n",
                ns = ns.name,
                url = tb.get("PROXMOX_URL")?,
                ca = tb.get("PROXMOX_CA")?,
                last = first + 49,
            ),
        )?;
        Ok(Self { tb, ns, config })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    fn apply(&self, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, kind, name, spec)
    }

    fn get(&self, kind: &str, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, kind, name)
    }

    fn wait(&self, kind: &str, name: &str, what: &str, check: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        support::wait_object(self.tb, &self.ns.name, kind, name, what, WAIT, check)
    }

    /// A running container CloudPod, Ready; returns (vmid, node, uid).
    fn ready_pod(&self, name: &str, address: &str) -> anyhow::Result<(u64, String, String)> {
        self.apply(
            "CloudPod",
            name,
            json!({"plan": "mini", "type": "lxc", "template": "100", "hostname": name,
                   "network": {"bridge": "vmbr0", "ipv4": {"address": address, "gateway": "203.0.113.1"}}}),
        )?;
        let pod = support::wait_condition(self.tb, &self.ns.name, "cloudpod", name, ("Ready", "True", None), WAIT)?;
        let vmid = pod["status"]["vmid"].as_u64().context("no vmid")?;
        let node = pod["status"]["node"].as_str().context("no node")?.to_owned();
        let uid = pod["metadata"]["uid"].as_str().context("no uid")?.to_owned();
        Ok((vmid, node, uid))
    }

    /// A call to fakepve: its API under `/api2/json`, or its control routes.
    fn pve(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.tb.get("PROXMOX_CTL_URL")?);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--cacert", self.tb.get("PROXMOX_CA")?, "-X", method, &url])
            .args(["-H", &format!("Authorization: PVEAPIToken={}", self.tb.get("PROXMOX_TOKEN")?)]);
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data", &body.to_string()]);
        }
        let out = cmd.output().context("running curl")?;
        if !out.status.success() {
            bail!("curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    }

    /// A backup made by hand (not by a policy) at fakepve, with these notes; returns its volid.
    /// Archive names count seconds: one that falls in the second of another backup of the guest
    /// fails, and is made again.
    fn manual_backup(&self, node: &str, vmid: u64, notes: &str) -> anyhow::Result<String> {
        for _ in 0..5 {
            let before = volids(&self.archives(node, vmid)?);
            let started = self.pve(
                "POST",
                &format!("/api2/json/nodes/{node}/vzdump"),
                Some(
                    json!({"vmid": vmid.to_string(), "storage": STORAGE, "notes-template": notes, "compress": "zstd"}),
                ),
            )?;
            anyhow::ensure!(started["data"].as_str().is_some_and(|u| u.starts_with("UPID:")), "vzdump: {started}");
            let made = self
                .archives(node, vmid)?
                .into_iter()
                .find(|a| a["notes"] == notes && a["volid"].as_str().is_some_and(|v| !before.iter().any(|b| b == v)));
            if let Some(archive) = made {
                return Ok(archive["volid"].as_str().unwrap_or_default().to_owned());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("the manual backup of VMID {vmid} made no archive")
    }

    /// Every archive of `vmid` in the backup storage, as Proxmox lists it.
    fn archives(&self, node: &str, vmid: u64) -> anyhow::Result<Vec<Value>> {
        let listed = self.pve(
            "GET",
            &format!("/api2/json/nodes/{node}/storage/{STORAGE}/content?content=backup&vmid={vmid}"),
            None,
        )?;
        Ok(listed["data"].as_array().cloned().unwrap_or_default())
    }

    /// The API requests fakepve saw with this method whose path ends with `suffix`, with their
    /// bodies as JSON.
    fn requests(&self, method: &str, suffix: &str) -> anyhow::Result<Vec<(String, Value)>> {
        let seen = self.pve("GET", "/_ctl/requests", None)?;
        Ok(seen
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["method"] == method && r["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .map(|r| {
                let body = r["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
                (r["path"].as_str().unwrap_or_default().to_owned(), body)
            })
            .collect())
    }

    fn guest(&self, vmid: u64) -> anyhow::Result<Value> {
        let all = self.pve("GET", "/_ctl/guests", None)?;
        all.as_array().into_iter().flatten().find(|g| g["vmid"] == vmid).cloned().context("no such guest")
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn volids(archives: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = archives.iter().filter_map(|a| a["volid"].as_str().map(str::to_owned)).collect();
    ids.sort();
    ids
}

fn status_archives(policy: &Value) -> Vec<Value> {
    policy["status"]["cloudPods"][0]["archives"].as_array().cloned().unwrap_or_default()
}

#[test]
fn scheduled_backups_use_the_policys_storage_and_mode_and_keep_exactly_its_own_newest_archives() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    // another customer: a CloudPod of another namespace with archives in the same storage
    let other = Harness::new(&tb, "bkp-other", 1)?;
    let other_op = other.operator()?;
    let (other_vmid, other_node, other_uid) = other.ready_pod("shop", "203.0.113.71/24")?;
    drop(other_op);
    let other_marked = format!("mpanel-backup cloudpod={other_uid} policy=0000");
    let theirs = [
        other.manual_backup(&other_node, other_vmid, &other_marked)?,
        other.manual_backup(&other_node, other_vmid, "weekly by hand")?,
    ];

    let h = Harness::new(&tb, "bkp-keep", 0)?;
    let _op = h.operator()?;
    let (vmid, node, _) = h.ready_pod("web", "203.0.113.70/24")?;
    // an archive of this guest made by hand: not the policy's, so never pruned
    let by_hand = h.manual_backup(&node, vmid, "before the upgrade")?;

    h.apply(
        "BackupPolicy",
        "daily",
        json!({"cloudPods": ["web"], "schedule": {"every": "2s"}, "keep": 2, "storage": STORAGE, "mode": "suspend"}),
    )?;
    // the other guest's archive carrying this policy's very marker still is not this CloudPod's
    let policy = h.get("backuppolicy", "daily")?;
    let pod = h.get("cloudpod", "web")?;
    let forged = format!(
        "mpanel-backup cloudpod={} policy={}",
        pod["metadata"]["uid"].as_str().unwrap_or_default(),
        policy["metadata"]["uid"].as_str().unwrap_or_default()
    );
    let forged_volid = other.manual_backup(&other_node, other_vmid, &forged)?;

    let vzdumps_of_web = || -> anyhow::Result<Vec<Value>> {
        Ok(h.requests("POST", &format!("/nodes/{node}/vzdump"))?
            .into_iter()
            .map(|(_, body)| body)
            .filter(|b| {
                b["vmid"].as_str() == Some(vmid.to_string().as_str())
                    && b["notes-template"].as_str().is_some_and(|n| n.starts_with("mpanel-backup cloudpod="))
            })
            .collect())
    };
    // four backups mean at least two were pruned
    let met = eventually(WAIT, || Ok(vzdumps_of_web()?.len() >= 4))?;
    anyhow::ensure!(met, "fewer than 4 scheduled vzdumps of VMID {vmid}: {:?}", vzdumps_of_web()?);
    for body in vzdumps_of_web()? {
        assert_eq!((body["storage"].as_str(), body["mode"].as_str()), (Some(STORAGE), Some("suspend")), "{body}");
    }

    // no more backups for an hour: the last one is read and pruned, and nothing changes after
    let hourly = json!({"spec": {"schedule": {"every": "1h"}}}).to_string();
    h.tb.kubectl_ok(&["patch", "backuppolicy", "daily", "-n", &h.ns.name, "--type=merge", "-p", &hourly], None)?;
    let policy = h.wait("backuppolicy", "daily", "listed 2 archives after 4 backups", |p| {
        status_archives(p).len() == 2
            && p["status"]["cloudPods"][0]["task"].is_null()
            && p["status"]["observedGeneration"] == p["metadata"]["generation"]
    })?;
    let at_pve = h.archives(&node, vmid)?;
    let own: Vec<Value> = at_pve.iter().filter(|a| a["notes"] != "before the upgrade").cloned().collect();
    assert_eq!(own.len(), 2, "exactly keep=2 of the policy's archives remain: {at_pve:#?}");
    assert_eq!(volids(&status_archives(&policy)), volids(&own), "status lists what Proxmox holds");
    assert!(volids(&at_pve).contains(&by_hand), "the archive made by hand is kept");
    let newest = at_pve.iter().filter_map(|a| a["ctime"].as_i64()).max();
    assert!(own.iter().any(|a| a["ctime"].as_i64() == newest), "the newest archive is kept");

    let theirs_now = volids(&other.archives(&other_node, other_vmid)?);
    for volid in theirs.iter().chain([&forged_volid]) {
        assert!(theirs_now.contains(volid), "another namespace's archive {volid} is untouched: {theirs_now:?}");
    }
    // the request log is fakepve's, shared by every test: what matters is which archives it names
    let deleted: Vec<String> = h.requests("DELETE", "")?.into_iter().map(|(p, _)| p).collect();
    for kept in theirs.iter().chain([&forged_volid, &by_hand]) {
        assert!(!deleted.iter().any(|p| p.ends_with(kept.as_str())), "{kept} was never asked to be deleted");
    }
    // the policy's older archives were deleted, none newer than those kept
    let prefix = format!("/storage/{STORAGE}/content/{STORAGE}:backup/vzdump-lxc-{vmid}-");
    let pruned: Vec<&str> = deleted.iter().filter_map(|p| p.split_once(&prefix).map(|(_, date)| date)).collect();
    assert!(!pruned.is_empty(), "the archives beyond keep were deleted: {deleted:?}");
    let oldest_kept = volids(&own).into_iter().min().unwrap_or_default();
    let oldest_kept = oldest_kept.rsplit_once(&format!("-{vmid}-")).map(|(_, d)| d.to_owned()).unwrap_or_default();
    assert!(pruned.iter().all(|d| *d < oldest_kept.as_str()), "only older archives were pruned: {pruned:?}");
    let ready = support::condition(&policy, "Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("True"), Some("BackupsScheduled")));
    Ok(())
}

#[test]
fn a_restore_stops_the_guest_restores_the_chosen_archive_once_and_hands_it_back() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "bkp-restore", 0)?;
    let _op = h.operator()?;
    let (vmid, node, _) = h.ready_pod("db", "203.0.113.72/24")?;
    h.apply(
        "BackupPolicy",
        "db",
        json!({"cloudPods": ["db"], "schedule": {"every": "2s"}, "keep": 5, "storage": STORAGE}),
    )?;
    let policy = h.wait("backuppolicy", "db", "listed 2 archives", |p| status_archives(p).len() >= 2)?;
    h.tb.kubectl_ok(&["delete", "backuppolicy", "db", "-n", &h.ns.name], None)?;
    // the older of two: restored is the one asked for, not the newest
    let chosen = status_archives(&policy)[1]["volid"].as_str().context("no volid")?.to_owned();
    let by_hand = h.manual_backup(&node, vmid, "not the policy's")?;

    h.apply("CloudPodRestore", "not-ours", json!({"cloudPod": "db", "archive": by_hand}))?;
    let refused = h.wait("cloudpodrestore", "not-ours", "failed", |r| r["status"]["phase"] == "Failed")?;
    assert_eq!(support::condition(&refused, "Ready")["reason"], "ArchiveNotOwned");

    h.apply("CloudPodRestore", "back", json!({"cloudPod": "db", "archive": chosen}))?;
    let done = h.wait("cloudpodrestore", "back", "completed", |r| r["status"]["phase"] == "Completed")?;
    let ready = support::condition(&done, "Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("True"), Some("Restored")));

    let restores = h.requests("POST", &format!("/nodes/{node}/lxc"))?;
    let of_db: Vec<&Value> =
        restores.iter().map(|(_, b)| b).filter(|b| b["vmid"].as_str() == Some(vmid.to_string().as_str())).collect();
    assert_eq!(of_db.len(), 1, "one restore request: {of_db:?}");
    assert_eq!(
        (of_db[0]["ostemplate"].as_str(), of_db[0]["restore"].as_str(), of_db[0]["force"].as_str()),
        (Some(chosen.as_str()), Some("1"), Some("1"))
    );
    assert_eq!(of_db[0]["storage"], "ceph-pool", "the disks stay where they were");
    assert!(
        restores.iter().all(|(_, b)| b["ostemplate"] != by_hand.as_str()),
        "the archive not made by a policy was never restored"
    );
    let all = h.pve("GET", "/_ctl/requests", None)?;
    let order: Vec<&str> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let path = r["path"].as_str()?;
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or_default()).unwrap_or_default();
            if r["method"] != "POST" {
                None
            } else if path.ends_with(&format!("/lxc/{vmid}/status/stop")) {
                Some("stop")
            } else if path.ends_with(&format!("/nodes/{node}/lxc"))
                && body["vmid"].as_str() == Some(vmid.to_string().as_str())
            {
                Some("restore")
            } else {
                None
            }
        })
        .collect();
    let stop_at = order.iter().rposition(|p| *p == "stop").context("the guest was stopped")?;
    let restore_at = order.iter().position(|p| *p == "restore").context("restored")?;
    assert!(stop_at < restore_at, "stopped before it was restored: {order:?}");
    assert_eq!(h.guest(vmid)?["restoredFrom"], chosen.as_str(), "fakepve restored the chosen archive");

    // handed back: the CloudPod reconciles again, starts the guest and is Ready
    let pod = h.wait("cloudpod", "db", "was running and Ready again", |p| {
        support::condition(p, "Ready")["status"] == "True"
            && p["metadata"]["annotations"].get(mpanel_crds::RECONCILE_MODE_ANNOTATION).is_none()
    })?;
    assert_eq!(pod["status"]["phase"], "Running");
    let met = eventually(WAIT, || Ok(h.guest(vmid)?["status"] == "running"))?;
    assert!(met, "the guest runs again");

    // once: a later reconcile of the ended restore does nothing
    h.tb.kubectl_ok(&["annotate", "cloudpodrestore", "back", "-n", &h.ns.name, "touched=1"], None)?;
    std::thread::sleep(Duration::from_secs(2));
    let again = h.requests("POST", &format!("/nodes/{node}/lxc"))?;
    assert_eq!(
        again.iter().filter(|(_, b)| b["vmid"].as_str() == Some(vmid.to_string().as_str())).count(),
        1,
        "restored once"
    );
    Ok(())
}

#[test]
fn a_vm_is_restored_from_its_vma_archive_with_qemus_archive_parameter() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "bkp-vm", 0)?;
    let _op = h.operator()?;
    h.apply(
        "CloudPod",
        "vm",
        // the template's disk size: fakepve does not grow a VM's disk
        json!({"plan": "mini", "type": "qemu", "template": "tmpl-qemu", "hostname": "vm",
               "resources": {"cores": 1, "memoryMiB": 1024, "diskGiB": 10},
               "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.73/24", "gateway": "203.0.113.1"}}}),
    )?;
    let pod = support::wait_condition(&tb, &h.ns.name, "cloudpod", "vm", ("Ready", "True", None), WAIT)?;
    let vmid = pod["status"]["vmid"].as_u64().context("no vmid")?;
    let node = pod["status"]["node"].as_str().context("no node")?.to_owned();
    h.apply(
        "BackupPolicy",
        "vm",
        json!({"cloudPods": ["vm"], "schedule": {"every": "1h"}, "keep": 2, "storage": STORAGE, "mode": "stop"}),
    )?;
    let policy = h.wait("backuppolicy", "vm", "listed its first archive", |p| status_archives(p).len() == 1)?;
    let archive = status_archives(&policy)[0]["volid"].as_str().context("no volid")?.to_owned();
    assert!(archive.starts_with(&format!("{STORAGE}:backup/vzdump-qemu-{vmid}-")) && archive.ends_with(".vma.zst"));

    h.apply("CloudPodRestore", "vm-back", json!({"cloudPod": "vm", "archive": archive}))?;
    h.wait("cloudpodrestore", "vm-back", "completed", |r| r["status"]["phase"] == "Completed")?;
    let vmid_text = vmid.to_string();
    let restores: Vec<Value> = h
        .requests("POST", &format!("/nodes/{node}/qemu"))?
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b["vmid"].as_str() == Some(vmid_text.as_str()))
        .collect();
    assert_eq!(restores.len(), 1, "{restores:?}");
    assert_eq!((restores[0]["archive"].as_str(), restores[0]["force"].as_str()), (Some(archive.as_str()), Some("1")));
    assert!(restores[0].get("storage").is_none(), "a VM's disks go back to their own storage");
    assert_eq!(h.guest(vmid)?["restoredFrom"], archive.as_str());
    let met = eventually(WAIT, || Ok(h.guest(vmid)?["status"] == "running"))?;
    assert!(met, "the CloudPod started its VM again");
    Ok(())
}
