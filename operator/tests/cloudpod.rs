//! The CloudPod controller end to end: a real kube-apiserver, the operator binary, and fakepve (a
//! schema-checked fake of the Proxmox VE API: no real Proxmox runs here) with its /_ctl routes to
//! list guests and inject failures.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{Operator, condition, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace of its own, the Proxmox token in a Secret there, and an operator config that
/// reconciles only that namespace and gives out VMIDs from a range no other test (and no earlier
/// run against the same fakepve) uses.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
    vmids: (u32, u32),
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str) -> anyhow::Result<Self> {
        Self::in_block(tb, label, 0)
    }

    /// A harness whose 50 VMIDs are block `block` of this test process's 100.
    fn in_block(tb: &'a Testbed, label: &str, block: u32) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let token = format!("--from-literal=token={}", tb.get("PROXMOX_TOKEN")?);
        tb.kubectl_ok(&["create", "secret", "generic", "proxmox", "-n", &ns.name, &token], None)?;
        // each test runs in a process of its own: its pid picks a block of 100 VMIDs
        let first = 100_000 + (std::process::id() % 100_000) * 100 + block * 50;
        let vmids = (first, first + 49);
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 3s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 proxmox:\n  url: {url}\n  caFile: {ca}\n  storage: ceph-pool\n  vmidRange: {{first: {first}, last: {last}}}\n\
                 \x20 tokenSecretRef: {{namespace: {ns}, name: proxmox, key: token}}\n\
                 \x20 ipPools: {{test-pool: {{first: 198.51.100.10, last: 198.51.100.20, prefix: 24, gateway: 198.51.100.1}}}}\n\
                 \x20 allowed: {{bridges: [vmbr0], vlans: [5]}}\n",
                ns = ns.name,
                url = tb.get("PROXMOX_URL")?,
                ca = tb.get("PROXMOX_CA")?,
                first = vmids.0,
                last = vmids.1,
            ),
        )?;
        Ok(Self { tb, ns, config, vmids })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    fn apply(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, "CloudPod", name, spec)
    }

    fn get(&self, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, "cloudpod", name)
    }

    fn wait_condition(&self, name: &str, type_: &str, status: &str, reason: Option<&str>) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, "cloudpod", name, (type_, status, reason), WAIT)
    }

    /// A call to fakepve's control routes (or its API, under `/api2/json`).
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

    /// The guests fakepve holds in this test's VMID range.
    fn guests(&self) -> anyhow::Result<Vec<Value>> {
        let all = self.pve("GET", "/_ctl/guests", None)?;
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["vmid"].as_u64().is_some_and(|id| (self.vmids.0..=self.vmids.1).contains(&(id as u32))))
            .cloned()
            .collect())
    }

    fn guest(&self, vmid: u64) -> anyhow::Result<Option<Value>> {
        Ok(self.guests()?.into_iter().find(|g| g["vmid"] == vmid))
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn lxc(hostname: &str, address: &str, cores: u32, memory: u32, disk: u32) -> Value {
    json!({"plan": "pro", "type": "lxc", "template": "100", "hostname": hostname,
           "resources": {"cores": cores, "memoryMiB": memory, "diskGiB": disk},
           "network": {"bridge": "vmbr0", "vlan": 5, "ipv4": {"address": address, "gateway": "203.0.113.1"}}})
}

fn vmid(pod: &Value) -> anyhow::Result<u64> {
    pod["status"]["vmid"].as_u64().context("no status.vmid")
}

#[test]
fn lxc_and_qemu_cloudpods_run_with_the_configured_size_name_and_network() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-run")?;
    let _op = h.operator()?;
    h.apply("web", lxc("web-1", "203.0.113.12/24", 2, 2048, 20))?;
    h.apply(
        "vm",
        json!({"plan": "business", "type": "qemu", "template": "tmpl-qemu", "hostname": "vm-1",
               "resources": {"cores": 4, "memoryMiB": 4096, "diskGiB": 10},
               "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.11/24", "gateway": "203.0.113.1"}}}),
    )?;
    let web = h.wait_condition("web", "Ready", "True", None)?;
    assert_eq!(web["status"]["phase"], "Running");
    assert_eq!(web["status"]["ipAddress"], "203.0.113.12");
    assert_eq!(web["status"]["node"], "pve2", "placed on the node with the most free memory");
    let g = h.guest(vmid(&web)?)?.context("the container is in fakepve")?;
    assert_eq!(
        (g["type"].as_str(), g["node"].as_str(), g["status"].as_str()),
        (Some("lxc"), Some("pve2"), Some("running"))
    );
    let c = &g["config"];
    assert_eq!((c["cores"].to_string(), c["memory"].to_string()), ("2".to_owned(), "2048".to_owned()));
    assert_eq!(c["hostname"], "web-1");
    let net0 = c["net0"].as_str().unwrap_or_default();
    for part in ["bridge=vmbr0", "ip=203.0.113.12/24", "gw=203.0.113.1", "tag=5"] {
        assert!(net0.contains(part), "net0 {net0} has {part}");
    }
    assert!(c["rootfs"].as_str().unwrap_or_default().ends_with("size=20G"), "disk grown to 20G: {}", c["rootfs"]);
    assert!(g["tags"].as_str().unwrap_or_default().contains("mpanel-"), "tagged: {}", g["tags"]);

    let vm = h.wait_condition("vm", "Ready", "True", None)?;
    let g = h.guest(vmid(&vm)?)?.context("the VM is in fakepve")?;
    assert_eq!(
        (g["type"].as_str(), g["status"].as_str(), g["name"].as_str()),
        (Some("qemu"), Some("running"), Some("vm-1"))
    );
    assert_eq!(g["config"]["cores"].as_str().map(str::to_owned).unwrap_or(g["config"]["cores"].to_string()), "4");
    assert!(g["config"]["ipconfig0"].as_str().unwrap_or_default().contains("ip=203.0.113.11/24"));
    assert_ne!(vmid(&web)?, vmid(&vm)?);
    Ok(())
}

#[test]
fn an_operator_killed_right_after_the_clone_request_leaves_exactly_one_guest() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-crash")?;
    let kubeconfig = Path::new(tb.get("KUBECONFIG")?);
    let config = h.config.to_string_lossy().into_owned();
    let mut faulty =
        Operator::start_with_env(kubeconfig, &["--config", &config], &[("MPANEL_FAULT_EXIT_AFTER", "clone")])?;
    assert!(faulty.wait_ready(Duration::from_secs(30))?);
    h.apply("crashy", lxc("crashy", "203.0.113.20/24", 1, 512, 8))?;
    assert_eq!(faulty.wait_exit(WAIT)?, Some(3), "the operator exits at the fault point after the clone request");
    assert_eq!(h.guests()?.len(), 1, "the clone was requested");
    let reserved = h.get("crashy")?;
    assert!(reserved["status"].get("taskRef").is_none(), "it died before recording the task");

    let _op = h.operator()?;
    let ready = h.wait_condition("crashy", "Ready", "True", None)?;
    let guests = h.guests()?;
    assert_eq!(guests.len(), 1, "exactly one guest for the CloudPod: {guests:?}");
    assert_eq!(guests[0]["vmid"].as_u64(), Some(vmid(&ready)?), "the guest at the reserved VMID was adopted");
    Ok(())
}

#[test]
fn a_proxmox_error_on_start_shows_verbatim_and_is_retried_until_ready() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-fault")?;
    // the first VMID of the range is the one this CloudPod gets
    let suffix = format!("/lxc/{}/status/start", h.vmids.0);
    h.pve(
        "POST",
        "/_ctl/fail",
        Some(json!({"method": "POST", "suffix": suffix, "status": 500,
                                            "message": "start failed: storage 'ceph-pool' is not online", "times": 2})),
    )?;
    let _op = h.operator()?;
    h.apply("flaky", lxc("flaky", "203.0.113.30/24", 1, 512, 8))?;
    let failed = support::wait_object(&tb, &h.ns.name, "cloudpod", "flaky", "showed the start error", WAIT, |p| {
        condition(p, "Ready")["message"]
            .as_str()
            .is_some_and(|m| m.contains("start failed: storage 'ceph-pool' is not online"))
    })?;
    assert_eq!(condition(&failed, "Ready")["status"], "False");
    assert_eq!(condition(&failed, "Started")["reason"], "ProxmoxError");
    let ready = h.wait_condition("flaky", "Ready", "True", None)?;
    assert_eq!(ready["status"]["phase"], "Running");
    h.pve("POST", "/_ctl/reset", Some(json!({"method": "POST", "suffix": suffix})))?;
    Ok(())
}

#[test]
fn resize_grows_a_shrink_is_refused_suspend_stops_and_resume_starts() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-resize")?;
    let _op = h.operator()?;
    h.apply("box", lxc("box", "203.0.113.40/24", 1, 512, 10))?;
    let first = h.wait_condition("box", "Ready", "True", None)?;
    let id = vmid(&first)?;

    h.apply("box", lxc("box", "203.0.113.40/24", 2, 1024, 30))?;
    h.wait_condition("box", "Ready", "True", None)?;
    let g = h.guest(id)?.context("guest")?;
    assert_eq!((g["config"]["cores"].to_string(), g["config"]["memory"].to_string()), ("2".into(), "1024".into()));
    assert!(g["config"]["rootfs"].as_str().unwrap_or_default().ends_with("size=30G"), "{}", g["config"]["rootfs"]);

    let shrink = tb.kubectl(
        &["apply", "-f", "-"],
        Some(&json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
                     "metadata": {"name": "box", "namespace": h.ns.name}, "spec": lxc("box", "203.0.113.40/24", 2, 1024, 20)})
            .to_string()),
    )?;
    assert!(!shrink.success && shrink.stderr.contains("diskGiB cannot shrink"), "{}", shrink.stderr);

    let mut suspended = lxc("box", "203.0.113.40/24", 2, 1024, 30);
    suspended["suspended"] = json!(true);
    h.apply("box", suspended)?;
    let s = h.wait_condition("box", "Ready", "True", Some("Suspended"))?;
    assert_eq!(s["status"]["phase"], "Suspended");
    assert_eq!(h.guest(id)?.context("guest")?["status"], "stopped");

    h.apply("box", lxc("box", "203.0.113.40/24", 2, 1024, 30))?;
    h.wait_condition("box", "Ready", "True", Some("Running"))?;
    assert_eq!(h.guest(id)?.context("guest")?["status"], "running");
    Ok(())
}

#[test]
fn delete_destroys_only_a_guest_that_carries_the_mark() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-delete")?;
    let op = h.operator()?;
    h.apply("gone", lxc("gone", "203.0.113.50/24", 1, 512, 8))?;
    let id = vmid(&h.wait_condition("gone", "Ready", "True", None)?)?;
    tb.kubectl_ok(&["delete", "cloudpod", "gone", "-n", &h.ns.name, "--timeout=60s"], None)?;
    assert!(h.guest(id)?.is_none(), "the guest is destroyed");
    // waiting for the stop and destroy tasks is no failure: nothing counted as a reconcile error
    let errors = mpanel_tests::metric_sum(&op.metrics()?, "mpanel_reconcile_errors_total", &[("kind", "CloudPod")]);
    assert_eq!(errors, 0.0, "a deletion waiting for Proxmox counted as reconcile errors");

    // a foreign guest takes the place of this CloudPod's guest
    h.apply("mine", lxc("mine", "203.0.113.51/24", 1, 512, 8))?;
    let mine = h.wait_condition("mine", "Ready", "True", None)?;
    let (id, node) = (vmid(&mine)?, mine["status"]["node"].as_str().unwrap_or_default().to_owned());
    tb.kubectl_ok(
        &["annotate", "cloudpod", "mine", "-n", &h.ns.name, "mpanel.migrahosting.com/reconcile-mode=Paused"],
        None,
    )?;
    let api = |method: &str, path: &str, body: Option<Value>| h.pve(method, &format!("/api2/json{path}"), body);
    api("POST", &format!("/nodes/{node}/lxc/{id}/status/stop"), Some(json!({})))?;
    api("DELETE", &format!("/nodes/{node}/lxc/{id}?purge=1"), None)?;
    if !eventually(WAIT, || Ok(h.guest(id)?.is_none()))? {
        bail!("the guest was not removed by hand");
    }
    api("POST", "/nodes/pve1/lxc/100/clone", Some(json!({"newid": id, "hostname": "someone-else", "full": 1})))?;
    if !eventually(WAIT, || Ok(h.guest(id)?.is_some()))? {
        bail!("the foreign guest did not appear");
    }
    tb.kubectl_ok(
        &["annotate", "cloudpod", "mine", "-n", &h.ns.name, "mpanel.migrahosting.com/reconcile-mode-"],
        None,
    )?;
    let conflict = h.wait_condition("mine", "Conflict", "True", None)?;
    assert!(condition(&conflict, "Conflict")["message"].as_str().unwrap_or_default().contains("not this CloudPod's"));
    tb.kubectl_ok(&["delete", "cloudpod", "mine", "-n", &h.ns.name, "--timeout=60s"], None)?;
    let foreign = h.guest(id)?.context("the foreign guest is never destroyed")?;
    assert_eq!(foreign["hostname"], "someone-else");
    api("DELETE", &format!("/nodes/pve1/lxc/{id}?purge=1"), None)?;
    Ok(())
}

#[test]
fn ten_cloudpods_at_once_get_ten_guests_with_distinct_vmids() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-ten")?;
    let _op = h.operator()?;
    let items: Vec<Value> = (0..10)
        .map(|i| {
            json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
                   "metadata": {"name": format!("p{i}"), "namespace": h.ns.name},
                   "spec": lxc(&format!("p{i}"), &format!("203.0.113.{}/24", 100 + i), 1, 512, 8)})
        })
        .collect();
    tb.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()),
    )?;
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..10 {
        let pod = h.wait_condition(&format!("p{i}"), "Ready", "True", None)?;
        ids.insert(vmid(&pod)?);
    }
    assert_eq!(ids.len(), 10, "distinct VMIDs: {ids:?}");
    let guests = h.guests()?;
    assert_eq!(guests.len(), 10, "ten guests: {guests:?}");
    assert!(guests.iter().all(|g| g["status"] == "running"));
    Ok(())
}

#[test]
fn an_out_of_band_change_is_restored_and_a_deleted_guest_is_cloned_again() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-drift")?;
    let _op = h.operator()?;
    h.apply("drifty", lxc("drifty", "203.0.113.60/24", 2, 1024, 8))?;
    let ready = h.wait_condition("drifty", "Ready", "True", None)?;
    let (id, node) = (vmid(&ready)?, ready["status"]["node"].as_str().unwrap_or_default().to_owned());
    let api = |method: &str, path: &str, body: Option<Value>| h.pve(method, &format!("/api2/json{path}"), body);

    api("PUT", &format!("/nodes/{node}/lxc/{id}/config"), Some(json!({"cores": 1, "memory": 256})))?;
    if !eventually(WAIT, || {
        let c = &h.guest(id)?.context("guest")?["config"];
        Ok(c["cores"] == 2 && c["memory"] == 1024)
    })? {
        bail!("cores and memory were not restored");
    }

    api("POST", &format!("/nodes/{node}/lxc/{id}/status/stop"), Some(json!({})))?;
    api("DELETE", &format!("/nodes/{node}/lxc/{id}?purge=1"), None)?;
    if !eventually(WAIT, || Ok(h.guest(id)?.is_some_and(|g| g["status"] == "running")))? {
        bail!("the deleted guest was not cloned again at VMID {id}");
    }
    let again = h.wait_condition("drifty", "Ready", "True", None)?;
    assert_eq!(vmid(&again)?, id, "the same VMID");
    assert_eq!(h.guests()?.len(), 1);
    Ok(())
}

#[test]
fn a_plan_without_resources_gets_the_plans_sizes_and_a_smaller_plan_never_shrinks_the_disk() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-plan")?;
    let _op = h.operator()?;
    let plan = |plan: &str| {
        json!({"plan": plan, "type": "lxc", "template": "tmpl-debian", "hostname": "planned",
               "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.70/24", "gateway": "203.0.113.1"}}})
    };
    let size = |id: u64| -> anyhow::Result<(Value, Value, String)> {
        let c = h.guest(id)?.context("guest")?["config"].clone();
        Ok((c["cores"].clone(), c["memory"].clone(), c["rootfs"].as_str().unwrap_or_default().to_owned()))
    };
    h.apply("planned", plan("mini"))?;
    let id = vmid(&h.wait_condition("planned", "Ready", "True", None)?)?;
    let (cores, memory, rootfs) = size(id)?;
    assert_eq!((cores, memory), (json!(1), json!(1024)), "mini: 1 core, 1 GiB");
    assert!(rootfs.ends_with("size=20G"), "mini: 20 GiB, {rootfs}");

    h.apply("planned", plan("pro"))?;
    let pro = h.wait_condition("planned", "Ready", "True", None)?;
    assert_eq!(pro["status"]["appliedResources"], json!({"cores": 2, "memoryMiB": 2048, "diskGiB": 50}));
    let (cores, memory, rootfs) = size(id)?;
    assert_eq!((cores, memory), (json!(2), json!(2048)));
    assert!(rootfs.ends_with("size=50G"), "{rootfs}");

    h.apply("planned", plan("mini"))?;
    let mini = h.wait_condition("planned", "Configured", "True", Some("DiskLargerThanSpec"))?;
    assert!(condition(&mini, "Configured")["message"].as_str().unwrap_or_default().contains("never shrunk"));
    assert_eq!(mini["status"]["appliedResources"], json!({"cores": 1, "memoryMiB": 1024, "diskGiB": 50}));
    let (cores, _, rootfs) = size(id)?;
    assert_eq!(cores, json!(1), "cores follow the smaller plan");
    assert!(rootfs.ends_with("size=50G"), "the disk stays: {rootfs}");
    Ok(())
}

#[test]
fn cloudpods_on_a_pool_get_distinct_addresses_from_it() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-pool")?;
    let _op = h.operator()?;
    for name in ["a", "b"] {
        h.apply(
            name,
            json!({"plan": "mini", "type": "lxc", "template": "100", "hostname": name,
                   "network": {"bridge": "vmbr0", "ipv4": {"pool": "test-pool"}}}),
        )?;
    }
    let a = h.wait_condition("a", "Ready", "True", None)?;
    let b = h.wait_condition("b", "Ready", "True", None)?;
    let (ip_a, ip_b) =
        (a["status"]["ipAddress"].as_str().unwrap_or_default(), b["status"]["ipAddress"].as_str().unwrap_or_default());
    assert!(ip_a.starts_with("198.51.100.") && ip_b.starts_with("198.51.100."), "{ip_a} {ip_b}");
    assert_ne!(ip_a, ip_b, "distinct addresses");
    let net0 = h.guest(vmid(&a)?)?.context("guest")?["config"]["net0"].as_str().unwrap_or_default().to_owned();
    assert!(net0.contains(&format!("ip={ip_a}/24")) && net0.contains("gw=198.51.100.1"), "{net0}");

    h.apply(
        "c",
        json!({"plan": "mini", "type": "lxc", "template": "100", "hostname": "c",
                        "network": {"bridge": "vmbr0", "ipv4": {"pool": "nowhere"}}}),
    )?;
    let missing = h.wait_condition("c", "Ready", "False", Some("NoAddress"))?;
    assert_eq!(condition(&missing, "Ready")["message"], "IPv4 pool \"nowhere\" is not in the operator configuration");
    Ok(())
}

#[test]
fn another_namespace_cannot_take_a_static_address_a_pool_address_or_a_bridge_it_is_not_allowed() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let victim = Harness::in_block(&tb, "cpod-victim", 0)?;
    let attacker = Harness::in_block(&tb, "cpod-attacker", 1)?;
    let (_victim_op, _attacker_op) = (victim.operator()?, attacker.operator()?);
    victim.apply("web", lxc("web", "203.0.113.81/24", 1, 512, 8))?;
    let web = victim.wait_condition("web", "Ready", "True", None)?;
    let before = victim.guest(vmid(&web)?)?.context("the victim's guest")?;

    // the same static address, from another namespace
    attacker.apply("twin", lxc("twin", "203.0.113.81/24", 1, 512, 8))?;
    let twin = attacker.wait_condition("twin", "Ready", "False", Some("AddressInUse"))?;
    let message = condition(&twin, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert_eq!(message, "address 203.0.113.81 is already used by another CloudPod");
    assert_eq!(twin["status"]["phase"], "Failed");
    assert!(twin["status"]["vmid"].is_null(), "no VMID was reserved: {}", twin["status"]);
    // an address the pool gives out, and a bridge and VLAN the configuration does not list
    attacker.apply("squatter", lxc("squatter", "198.51.100.15/24", 1, 512, 8))?;
    attacker.wait_condition("squatter", "Ready", "False", Some("AddressInPool"))?;
    let mut other_bridge = lxc("sneaky", "203.0.113.82/24", 1, 512, 8);
    other_bridge["network"]["bridge"] = json!("vmbr9");
    attacker.apply("sneaky", other_bridge)?;
    attacker.wait_condition("sneaky", "Ready", "False", Some("NetworkNotAllowed"))?;
    let mut other_vlan = lxc("tagged", "203.0.113.83/24", 1, 512, 8);
    other_vlan["network"]["vlan"] = json!(7);
    attacker.apply("tagged", other_vlan)?;
    let tagged = attacker.wait_condition("tagged", "Ready", "False", Some("NetworkNotAllowed"))?;
    assert_eq!(condition(&tagged, "Ready")["message"], "VLAN 7 is not one the operator configuration allows");

    assert!(attacker.guests()?.is_empty(), "no guest was cloned for the attacker: {:?}", attacker.guests()?);
    let after = victim.guest(vmid(&web)?)?.context("the victim's guest is still there")?;
    assert_eq!(after["config"], before["config"], "the victim's guest is unchanged");
    assert_eq!(after["status"], "running");
    for obj in [&twin, &tagged] {
        let text = obj["status"].to_string();
        assert!(!text.contains(&victim.ns.name), "the victim's namespace leaks: {text}");
    }
    Ok(())
}

#[test]
fn observe_only_reports_the_guest_as_it_is_at_each_generation_and_never_changes_its_power() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cpod-observe")?;
    let _op = h.operator()?;
    h.apply("watched", lxc("watched", "203.0.113.90/24", 1, 512, 8))?;
    let id = vmid(&h.wait_condition("watched", "Ready", "True", None)?)?;
    let mode = "mpanel.migrahosting.com/reconcile-mode=ObserveOnly";
    tb.kubectl_ok(&["annotate", "cloudpod", "watched", "-n", &h.ns.name, mode], None)?;

    // a power state the guest is not in: reported at the new generation, not made
    let mut stopped = lxc("watched", "203.0.113.90/24", 1, 512, 8);
    stopped["powerState"] = json!("Stopped");
    h.apply("watched", stopped)?;
    let differs = h.wait_condition("watched", "Ready", "False", Some("OutOfSync"))?;
    let message = condition(&differs, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("ObserveOnly"), "{message}");
    assert_eq!(differs["status"]["phase"], "Running", "the phase is the guest's: {}", differs["status"]);
    assert_eq!(h.guest(id)?.context("the guest")?["status"], "running", "ObserveOnly stopped the guest");

    // the spec back to what the guest is: Ready again at that generation, still only observed
    h.apply("watched", lxc("watched", "203.0.113.90/24", 1, 512, 8))?;
    let in_sync = h.wait_condition("watched", "Ready", "True", None)?;
    assert_eq!(in_sync["status"]["observedGeneration"], in_sync["metadata"]["generation"]);
    assert_eq!(condition(&in_sync, "Configured")["status"], "True", "{}", in_sync["status"]);
    assert_eq!(condition(&in_sync, "Started")["reason"], "Running", "{}", in_sync["status"]);
    assert!(condition(&in_sync, "Ready")["message"].as_str().unwrap_or_default().contains("ObserveOnly"));
    assert_eq!(h.guest(id)?.context("the guest")?["status"], "running");
    Ok(())
}
