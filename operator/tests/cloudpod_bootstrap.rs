//! What the customer gets on the server, end to end (a real kube-apiserver, the operator binary and
//! fakepve, a schema-checked fake of the Proxmox VE API): cloud-init user, keys, address, DNS and
//! user data in a VM's Proxmox config, a container's address and DNS, a reboot once per
//! `rebootRequestedAt` value, and the guest agent's view in the status.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::{TestNamespace, Testbed, repo_root};
use serde_json::{Value, json};
use support::{Operator, condition, eventually};

const WAIT: Duration = Duration::from_secs(60);
const KEY_1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXIta2V5LW9uZS1mb3ItdGhlLXRlc3Q= alice@laptop";
const KEY_2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDdGVzdC1rZXktdHdv bob's key+work";
const USER_DATA: &str = "#cloud-config\npackages: [nginx]\nruncmd:\n  - echo 'hello & welcome' > /etc/motd\n";

/// A Proxmox VE API to run against: the testbed's fakepve, or one this test started.
struct Pve {
    url: String,
    token: String,
    ca: String,
    /// The fakepve this test started, stopped when dropped.
    own: Option<(Child, PathBuf)>,
}

impl Pve {
    fn testbed(tb: &Testbed) -> anyhow::Result<Self> {
        Ok(Self {
            url: tb.get("PROXMOX_CTL_URL")?.to_owned(),
            token: tb.get("PROXMOX_TOKEN")?.to_owned(),
            ca: tb.get("PROXMOX_CA")?.to_owned(),
            own: None,
        })
    }

    /// The testbed's fakepve if it has the /_ctl/agent route, else a fakepve of this test's own
    /// from the same launch script (a testbed started before the route was added keeps running
    /// without it).
    fn with_agent_control(tb: &Testbed) -> anyhow::Result<Self> {
        let shared = Self::testbed(tb)?;
        // a rule without a vmid: 400 from the route, 404 without it
        if shared.status("POST", "/_ctl/agent", &json!({}))? == 400 {
            return Ok(shared);
        }
        Self::start()
    }

    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("cloudpod-bootstrap-fakepve-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let secret = format!("bootstrap{}{port}", std::process::id());
        let root = repo_root();
        let child = Command::new("bash")
            .args(["-c", r#"source "$1/tests/testbed/lib.sh" && exec "$FAKEPVE_VENV/bin/python" "$1/tests/testbed/fakepve-launch.py" "$2" "$3""#, "bash"])
            .arg(&root)
            .arg(port.to_string())
            .arg(&dir)
            .env("FAKEPVE_TOKEN_SECRET", &secret)
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting fakepve")?;
        let pve = Self {
            url: format!("https://127.0.0.1:{port}"),
            token: format!("root@pam!operator={secret}"),
            ca: dir.join("fakepve.crt").to_string_lossy().into_owned(),
            own: Some((child, dir)),
        };
        let up = eventually(Duration::from_secs(30), || {
            Ok(Path::new(&pve.ca).exists() && pve.call("GET", "/api2/json/version", None).is_ok_and(|v| !v.is_null()))
        })?;
        if !up {
            bail!("the test's fakepve did not come up on port {port}");
        }
        Ok(pve)
    }

    fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--cacert", &self.ca, "-X", method, &format!("{}{path}", self.url)])
            .args(["-H", &format!("Authorization: PVEAPIToken={}", self.token)]);
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data", &body.to_string()]);
        }
        cmd
    }

    /// A call to fakepve's control routes (or its API, under `/api2/json`).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let out = self.curl(method, path, body.as_ref()).output().context("running curl")?;
        if !out.status.success() {
            bail!("curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    }

    fn status(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<u16> {
        let out = self.curl(method, path, Some(body)).args(["-o", "/dev/null", "-w", "%{http_code}"]).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    }
}

impl Drop for Pve {
    fn drop(&mut self) {
        if let Some((child, dir)) = self.own.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A namespace of its own, the Proxmox token in a Secret there, a snippet directory, and an
/// operator config that reconciles only that namespace, gives out VMIDs from a range of this test
/// process, and writes snippets to the directory as storage `local`.
struct Harness<'a> {
    tb: &'a Testbed,
    pve: Pve,
    ns: TestNamespace<'a>,
    config: PathBuf,
    snippets: PathBuf,
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, pve: Pve, label: &str) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let token = format!("--from-literal=token={}", pve.token);
        tb.kubectl_ok(&["create", "secret", "generic", "proxmox", "-n", &ns.name, &token], None)?;
        // each test runs in a process of its own: its pid picks a block of VMIDs apart from those
        // of cloudpod.rs (100000 + pid * 100)
        let first = 20_000_000 + (std::process::id() % 100_000) * 20;
        let snippets = std::env::temp_dir().join(format!("{}.snippets", ns.name));
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 2s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 proxmox:\n  url: {url}\n  caFile: {ca}\n  storage: ceph-pool\n  vmidRange: {{first: {first}, last: {last}}}\n\
                 \x20 tokenSecretRef: {{namespace: {ns}, name: proxmox, key: token}}\n\
                 \x20 snippets: {{storage: local, directory: {snippets}}}\n",
                ns = ns.name,
                url = pve.url,
                ca = pve.ca,
                last = first + 19,
                snippets = snippets.display(),
            ),
        )?;
        Ok(Self { tb, pve, ns, config, snippets })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    fn apply(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, "CloudPod", name, spec)
    }

    fn wait(&self, name: &str, what: &str, check: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        support::wait_object(self.tb, &self.ns.name, "cloudpod", name, what, WAIT, check)
    }

    fn wait_ready(&self, name: &str) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, "cloudpod", name, ("Ready", "True", None), WAIT)
    }

    /// The guest at `vmid` as fakepve holds it, with its config.
    fn guest(&self, vmid: u64) -> anyhow::Result<Value> {
        let all = self.pve.call("GET", "/_ctl/guests", None)?;
        all.as_array().into_iter().flatten().find(|g| g["vmid"] == vmid).cloned().context("no such guest at fakepve")
    }

    /// The API requests fakepve saw for guest `vmid` whose path ends with `suffix`.
    fn requests(&self, method: &str, vmid: u64, suffix: &str) -> anyhow::Result<Vec<Value>> {
        let all = self.pve.call("GET", "/_ctl/requests", None)?;
        let on_guest = format!("/{vmid}/");
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["method"] == method)
            .filter(|r| r["path"].as_str().is_some_and(|p| p.contains(&on_guest) && p.ends_with(suffix)))
            .cloned()
            .collect())
    }

    /// The bodies of the config writes fakepve saw for guest `vmid`, oldest first.
    fn config_writes(&self, vmid: u64) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .requests("PUT", vmid, "/config")?
            .iter()
            // the log keeps each body as the JSON text fakepve read
            .filter_map(|r| serde_json::from_str::<Value>(r["body"].as_str()?).ok())
            .collect())
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_dir_all(&self.snippets);
    }
}

fn vmid(pod: &Value) -> anyhow::Result<u64> {
    pod["status"]["vmid"].as_u64().context("no status.vmid")
}

fn qemu(hostname: &str, address: &str) -> Value {
    json!({"plan": "mini", "type": "qemu", "template": "tmpl-qemu", "hostname": hostname,
           "resources": {"cores": 1, "memoryMiB": 1024, "diskGiB": 10},
           "network": {"bridge": "vmbr0", "ipv4": {"address": address, "gateway": "203.0.113.1"}}})
}

/// `%XX` sequences decoded; anything else kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_vm_gets_its_user_keys_address_dns_and_user_data_through_proxmox_cloud_init() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, Pve::testbed(&tb)?, "cpod-boot-vm")?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-init", "namespace": h.ns.name},
                        "stringData": {"user-data": USER_DATA}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&secret.to_string()))?;
    let _op = h.operator()?;
    let mut spec = qemu("web-1", "203.0.113.41/24");
    spec["defaultUser"] = json!("deploy");
    spec["sshKeys"] = json!([KEY_1, KEY_2]);
    spec["network"]["dns"] = json!({"nameservers": ["1.1.1.1", "2606:4700:4700::1111"], "searchDomains": ["example.net", "corp.example.net"]});
    spec["cloudInitSecretRef"] = json!({"name": "web-init", "key": "user-data"});
    h.apply("web", spec)?;
    let pod = h.wait_ready("web")?;
    let id = vmid(&pod)?;
    let config = h.guest(id)?["config"].clone();

    assert_eq!(config["ciuser"], "deploy");
    let sshkeys = config["sshkeys"].as_str().context("no sshkeys")?;
    assert_eq!(percent_decode(sshkeys), format!("{KEY_1}\n{KEY_2}"), "one key per line");
    assert!(!sshkeys.contains([' ', '+', '\n', '\'']), "URL-encoded as Proxmox wants: {sshkeys}");
    assert_eq!(config["ipconfig0"], "ip=203.0.113.41/24,gw=203.0.113.1");
    assert_eq!(config["nameserver"], "1.1.1.1 2606:4700:4700::1111");
    assert_eq!(config["searchdomain"], "example.net corp.example.net");
    let uid = pod["metadata"]["uid"].as_str().context("no uid")?;
    let file = format!("mpanel-cloudpod-{uid}-user.yaml");
    assert_eq!(config["cicustom"], format!("user=local:snippets/{file}"));
    assert_eq!(
        std::fs::read_to_string(h.snippets.join("snippets").join(&file))?,
        USER_DATA,
        "the snippet cicustom names"
    );

    // changed user data reaches the snippet; the guest's config keeps naming it
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-init", "namespace": h.ns.name},
                        "stringData": {"user-data": "#cloud-config\npackages: [caddy]\n"}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&secret.to_string()))?;
    let path = h.snippets.join("snippets").join(&file);
    assert!(
        eventually(WAIT, || Ok(std::fs::read_to_string(&path)? == "#cloud-config\npackages: [caddy]\n"))?,
        "the snippet was not rewritten"
    );

    // a VM whose user data Secret is missing is not configured, and says why
    let mut spec = qemu("web-2", "203.0.113.42/24");
    spec["cloudInitSecretRef"] = json!({"name": "absent", "key": "user-data"});
    h.apply("nosecret", spec)?;
    let pod = h.wait("nosecret", "reported the missing Secret", |p| {
        condition(p, "Configured")["reason"] == "UserDataSecretMissing"
    })?;
    assert_eq!(condition(&pod, "Ready")["status"], "False");
    Ok(())
}

#[test]
fn fields_dropped_from_the_spec_leave_the_guest_and_keys_the_operator_never_wrote_stay() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, Pve::testbed(&tb)?, "cpod-boot-drop")?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "drop-init", "namespace": h.ns.name},
                        "stringData": {"user-data": USER_DATA}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&secret.to_string()))?;
    let _op = h.operator()?;
    // an address no other test of this file uses (the address check spans namespaces)
    let mut spec = qemu("web-3", "203.0.113.46/24");
    spec["defaultUser"] = json!("deploy");
    spec["sshKeys"] = json!([KEY_1]);
    spec["network"]["dns"] = json!({"nameservers": ["1.1.1.1"], "searchDomains": ["example.net"]});
    spec["cloudInitSecretRef"] = json!({"name": "drop-init", "key": "user-data"});
    h.apply("drop", spec.clone())?;
    let pod = h.wait_ready("drop")?;
    let id = vmid(&pod)?;
    let config = h.guest(id)?["config"].clone();
    for key in ["ciuser", "sshkeys", "cicustom", "nameserver", "searchdomain"] {
        assert!(config.get(key).is_some(), "{key} not written: {config}");
    }
    assert_eq!(pod["status"]["configKeys"], json!(["nameserver", "searchdomain", "sshkeys", "ciuser", "cicustom"]));

    // the user, keys, user data and search domains dropped: deleted from the guest (on a running VM,
    // as Proxmox does, pending until its next start); the resolver stays
    let mut fewer = spec.clone();
    for field in ["defaultUser", "sshKeys", "cloudInitSecretRef"] {
        fewer.as_object_mut().context("spec")?.remove(field);
    }
    fewer["network"]["dns"] = json!({"nameservers": ["1.1.1.1"]});
    h.apply("drop", fewer)?;
    let pod =
        h.wait("drop", "recorded the keys it now writes", |p| p["status"]["configKeys"] == json!(["nameserver"]))?;
    assert_eq!(condition(&pod, "Ready")["status"], "True");
    let deleted = |h: &Harness| -> anyhow::Result<Vec<String>> {
        Ok(h.config_writes(id)?.iter().filter_map(|body| body["delete"].as_str().map(str::to_owned)).collect())
    };
    let mut asked: Vec<&str> = Vec::new();
    let writes = deleted(&h)?;
    if let [one] = writes.as_slice() {
        asked = one.split(',').collect();
        asked.sort_unstable();
    }
    assert_eq!(asked, ["cicustom", "ciuser", "searchdomain", "sshkeys"], "the deletes asked of Proxmox: {writes:?}");
    let node = pod["status"]["node"].as_str().context("no status.node")?.to_owned();
    let pending = h.pve.call("GET", &format!("/api2/json/nodes/{node}/qemu/{id}/pending"), None)?;
    let to_delete: Vec<&str> = pending["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["delete"] == 1)
        .filter_map(|item| item["key"].as_str())
        .collect();
    assert_eq!(to_delete, ["cicustom", "ciuser", "searchdomain", "sshkeys"], "{pending}");

    // a key the operator never wrote (as a template or an administrator sets it) is left alone
    h.pve.call("PUT", &format!("/api2/json/nodes/{node}/qemu/{id}/config"), Some(json!({"ciuser": "admin"})))?;
    // two more reconciles read the guest's config after that
    let reads = h.requests("GET", id, "/config")?.len();
    let reread = eventually(WAIT, || Ok(h.requests("GET", id, "/config")?.len() >= reads + 2))?;
    assert!(reread, "the operator did not read the guest's config again");
    assert_eq!(deleted(&h)?, writes, "the operator deleted a key it never wrote");
    Ok(())
}

#[test]
fn a_cloud_init_change_to_a_running_vm_is_written_once_and_waits_for_its_next_start() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, Pve::testbed(&tb)?, "cpod-boot-pend")?;
    let _op = h.operator()?;
    let mut spec = qemu("web-5", "203.0.113.47/24");
    spec["defaultUser"] = json!("deploy");
    h.apply("pend", spec.clone())?;
    let pod = h.wait("pend", "running and Ready", |p| {
        p["status"]["phase"] == "Running" && condition(p, "Ready")["status"] == "True"
    })?;
    let id = vmid(&pod)?;
    let node = pod["status"]["node"].as_str().context("no status.node")?.to_owned();

    spec["defaultUser"] = json!("ops");
    h.apply("pend", spec)?;
    let writes_of_ops = |h: &Harness| -> anyhow::Result<usize> {
        Ok(h.config_writes(id)?.iter().filter(|body| body["ciuser"] == "ops").count())
    };
    assert!(eventually(WAIT, || Ok(writes_of_ops(&h)? == 1))?, "the new user was not written");
    // Proxmox holds it as pending until the VM starts again, and shows it as the config
    let pending = h.pve.call("GET", &format!("/api2/json/nodes/{node}/qemu/{id}/pending"), None)?;
    let ciuser = pending["data"].as_array().into_iter().flatten().find(|item| item["key"] == "ciuser").cloned();
    assert_eq!(ciuser.as_ref().map(|i| &i["pending"]), Some(&json!("ops")), "{pending}");
    let shown = h.pve.call("GET", &format!("/api2/json/nodes/{node}/qemu/{id}/config"), None)?;
    assert_eq!(shown["data"]["ciuser"], "ops", "the config Proxmox answers has the pending value applied");

    // later reconciles read the config and find nothing to write
    let reads = h.requests("GET", id, "/config")?.len();
    let reread = eventually(WAIT, || Ok(h.requests("GET", id, "/config")?.len() >= reads + 3))?;
    assert!(reread, "the operator did not read the guest's config again");
    assert_eq!(writes_of_ops(&h)?, 1, "the pending change was written again at a resync");
    Ok(())
}

#[test]
fn a_container_gets_its_hostname_address_and_dns_and_the_api_refuses_what_containers_cannot_take() -> anyhow::Result<()>
{
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, Pve::testbed(&tb)?, "cpod-boot-ct")?;
    let _op = h.operator()?;
    let spec = json!({"plan": "mini", "type": "lxc", "template": "tmpl-debian", "hostname": "shop-1",
                      "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8},
                      "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.43/24", "gateway": "203.0.113.1"},
                                  "dns": {"nameservers": ["9.9.9.9"], "searchDomains": ["shop.example"]}}});
    h.apply("shop", spec.clone())?;
    let pod = h.wait_ready("shop")?;
    let config = h.guest(vmid(&pod)?)?["config"].clone();
    assert_eq!(config["hostname"], "shop-1");
    let net0 = config["net0"].as_str().context("no net0")?;
    assert!(net0.contains("ip=203.0.113.43/24") && net0.contains("gw=203.0.113.1"), "{net0}");
    assert_eq!(config["nameserver"], "9.9.9.9");
    assert_eq!(config["searchdomain"], "shop.example");

    for (field, value, says) in [
        ("sshKeys", json!([KEY_1]), "sshKeys apply to qemu only"),
        ("defaultUser", json!("deploy"), "defaultUser applies to qemu only"),
        ("cloudInitSecretRef", json!({"name": "s", "key": "k"}), "cloudInitSecretRef applies to qemu only"),
    ] {
        let mut refused = spec.clone();
        refused[field] = value;
        let obj = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
                         "metadata": {"name": "shop2", "namespace": h.ns.name}, "spec": refused});
        let out = tb.kubectl(&["apply", "-f", "-"], Some(&obj.to_string()))?;
        assert!(!out.success && out.stderr.contains(says), "{field} on a container: {}", out.stderr);
    }
    Ok(())
}

#[test]
fn a_reboot_happens_once_per_requested_time_across_requeues_and_an_operator_restart() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, Pve::testbed(&tb)?, "cpod-reboot")?;
    let op = h.operator()?;
    h.apply("app", qemu("app-1", "203.0.113.44/24"))?;
    let id = vmid(&h.wait_ready("app")?)?;
    assert!(h.requests("POST", id, "/status/reboot")?.is_empty(), "no reboot before one is asked for");

    let ask = |at: &str| -> anyhow::Result<()> {
        let patch = json!({"spec": {"rebootRequestedAt": at}}).to_string();
        tb.kubectl_ok(&["patch", "cloudpod", "app", "-n", &h.ns.name, "--type=merge", "-p", &patch], None).map(drop)
    };
    ask("2026-12-01T20:00:00Z")?;
    let pod =
        h.wait("app", "recorded the reboot", |p| p["status"]["reboot"]["requestedAt"] == "2026-12-01T20:00:00Z")?;
    assert_eq!(pod["status"]["reboot"]["outcome"], "Requested");
    assert!(pod["status"]["reboot"]["actedAt"].is_string());
    h.wait_ready("app")?;
    // several resyncs (every 2 s) later, and after a crash and a restart of the operator
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(h.requests("POST", id, "/status/reboot")?.len(), 1, "one reboot for the value, across requeues");
    op.kill();
    let _op = h.operator()?;
    std::thread::sleep(Duration::from_secs(5));
    h.wait_ready("app")?;
    assert_eq!(h.requests("POST", id, "/status/reboot")?.len(), 1, "still one after the operator restarted");

    ask("2026-12-01T20:05:00Z")?;
    h.wait("app", "recorded the second reboot", |p| p["status"]["reboot"]["requestedAt"] == "2026-12-01T20:05:00Z")?;
    h.wait_ready("app")?;
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(h.requests("POST", id, "/status/reboot")?.len(), 2, "one more for the new value");

    // a stopped guest is not rebooted: the value is recorded as such, and starting it later does
    // not reboot it
    let stop = json!({"spec": {"powerState": "Stopped"}}).to_string();
    tb.kubectl_ok(&["patch", "cloudpod", "app", "-n", &h.ns.name, "--type=merge", "-p", &stop], None)?;
    h.wait("app", "stopped", |p| p["status"]["phase"] == "Stopped")?;
    ask("2026-12-01T20:10:00Z")?;
    let pod =
        h.wait("app", "recorded the third value", |p| p["status"]["reboot"]["requestedAt"] == "2026-12-01T20:10:00Z")?;
    assert_eq!(pod["status"]["reboot"]["outcome"], "NotRunning");
    let start = json!({"spec": {"powerState": "Running"}}).to_string();
    tb.kubectl_ok(&["patch", "cloudpod", "app", "-n", &h.ns.name, "--type=merge", "-p", &start], None)?;
    h.wait("app", "running again", |p| p["status"]["phase"] == "Running")?;
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(h.requests("POST", id, "/status/reboot")?.len(), 2, "no reboot for a value asked while stopped");
    Ok(())
}

#[test]
fn the_status_shows_the_os_and_addresses_the_guest_agent_reports() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, Pve::with_agent_control(&tb)?, "cpod-agent")?;
    let _op = h.operator()?;
    h.apply("db", qemu("db-1", "203.0.113.45/24"))?;
    let pod = h.wait_ready("db")?;
    assert!(pod["status"]["guestAgent"].is_null(), "no agent, nothing reported: {:#}", pod["status"]);

    let agent = json!({
        "os": {"id": "ubuntu", "pretty-name": "Ubuntu 24.04.1 LTS", "version-id": "24.04"},
        "interfaces": [
            {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
            {"name": "ens18", "hardware-address": "bc:24:11:00:00:45", "ip-addresses": [
                {"ip-address": "203.0.113.45", "ip-address-type": "ipv4", "prefix": 24},
                {"ip-address": "2001:db8::45", "ip-address-type": "ipv6", "prefix": 64}]}
        ]
    });
    h.pve.call("POST", "/_ctl/agent", Some(json!({"vmid": vmid(&pod)?, "agent": agent})))?;
    let pod = h.wait("db", "showed the agent's view", |p| !p["status"]["guestAgent"].is_null())?;
    assert_eq!(pod["status"]["guestAgent"]["os"], "Ubuntu 24.04.1 LTS");
    assert_eq!(
        pod["status"]["guestAgent"]["addresses"],
        json!([{"interface": "ens18", "address": "203.0.113.45/24"}, {"interface": "ens18", "address": "2001:db8::45/64"}])
    );

    // the agent stops answering: its view goes
    h.pve.call("POST", "/_ctl/agent", Some(json!({"vmid": vmid(&pod)?, "agent": null})))?;
    h.wait("db", "dropped the agent's view", |p| p["status"]["guestAgent"].is_null())?;
    Ok(())
}
