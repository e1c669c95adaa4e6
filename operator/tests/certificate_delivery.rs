//! Certificates delivered into CloudPods end to end: a real kube-apiserver, the operator binary,
//! PowerDNS and pebble (600 s certificates) for issuance, and fakepve, whose guest agent request
//! log (`GET /_ctl/agent?vmid=N`) shows what was written into a guest and which commands ran there.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{Operator, condition};

const WAIT: Duration = Duration::from_secs(90);
const RELOAD: [&str; 3] = ["systemctl", "reload", "nginx"];

/// A namespace of its own with a zone `<namespace>.test`, the PowerDNS key and the Proxmox token in
/// Secrets there, and an operator config that reconciles only that namespace: pebble as the issuer
/// `pebble`, fakepve with VMIDs and pool addresses no other test uses.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
}

impl<'a> Harness<'a> {
    /// `block` (0 or 1) picks this harness's half of the test process's VMIDs and addresses.
    fn new(tb: &'a Testbed, label: &str, block: u32) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let pdns_key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
        tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &ns.name, &pdns_key], None)?;
        let token = format!("--from-literal=token={}", tb.get("PROXMOX_TOKEN")?);
        tb.kubectl_ok(&["create", "secret", "generic", "proxmox", "-n", &ns.name, &token], None)?;
        // each test runs in a process of its own: its pid picks VMIDs and a /24 of addresses
        let pid = std::process::id();
        let first = 20_000_000 + (pid % 100_000) * 100 + block * 50;
        let net = format!("198.18.{}", pid % 250);
        let (lo, hi) = (10 + block * 100, 60 + block * 100);
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 30s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  dnsAddress: {dns}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n\
                 acme:\n  ordersPerRegisteredDomainPerWeek: 40\n  issuers:\n    pebble:\n      directoryUrl: {dir}\n      caBundle: {bundle}\n\
                 \x20     email: hostmaster@{ns}.test\n      accountSecretRef: {{namespace: {ns}, name: acme-account}}\n\
                 proxmox:\n  url: {pve}\n  caFile: {ca}\n  storage: ceph-pool\n  vmidRange: {{first: {first}, last: {last}}}\n\
                 \x20 tokenSecretRef: {{namespace: {ns}, name: proxmox, key: token}}\n\
                 \x20 ipPools: {{delivery: {{first: {net}.{lo}, last: {net}.{hi}, prefix: 24, gateway: {net}.1}}}}\n",
                ns = ns.name,
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
                dns = tb.get("PDNS_DNS_ADDR")?,
                dir = tb.get("ACME_DIRECTORY")?,
                bundle = tb.get("ACME_CA_BUNDLE")?,
                pve = tb.get("PROXMOX_URL")?,
                ca = tb.get("PROXMOX_CA")?,
                last = first + 49,
            ),
        )?;
        Ok(Self { tb, ns, config })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    fn zone(&self) -> String {
        format!("{}.test", self.ns.name)
    }

    fn apply(&self, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, kind, name, spec)
    }

    fn get(&self, kind: &str, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, kind, name)
    }

    fn apply_zone(&self) -> anyhow::Result<()> {
        self.apply("DnsZone", "zone", json!({"zone": self.zone(), "nameservers": ["ns1.migrahosting.com"]}))
    }

    /// A running CloudPod of `type_` (`qemu` or `lxc`) with an address from the pool; its VMID.
    fn running_cloudpod(&self, name: &str, type_: &str) -> anyhow::Result<u64> {
        let template = if type_ == "qemu" { "tmpl-qemu" } else { "tmpl-debian" };
        self.apply(
            "CloudPod",
            name,
            json!({"plan": "mini", "type": type_, "template": template, "hostname": name,
                   "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 10},
                   "network": {"bridge": "vmbr0", "ipv4": {"pool": "delivery"}}}),
        )?;
        let pod = support::wait_condition(self.tb, &self.ns.name, "cloudpod", name, ("Ready", "True", None), WAIT)?;
        pod["status"]["vmid"].as_u64().context("no status.vmid")
    }

    fn wait_certificate(&self, name: &str, what: &str, check: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        support::wait_object(self.tb, &self.ns.name, "certificate", name, what, WAIT, check)
    }

    /// The Secret's `tls.key` and `tls.crt`, as text.
    fn secret_key_and_chain(&self, secret: &str) -> anyhow::Result<(String, String)> {
        let s = self.get("secret", secret)?;
        let text = |k: &str| -> anyhow::Result<String> {
            let b64 = s["data"][k].as_str().with_context(|| format!("Secret {secret} has no {k}"))?;
            Ok(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64)?)?)
        };
        Ok((text("tls.key")?, text("tls.crt")?))
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// fakepve's control routes, with the testbed's token.
fn pve(tb: &Testbed, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let url = format!("{}{path}", tb.get("PROXMOX_CTL_URL")?);
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "--cacert", tb.get("PROXMOX_CA")?, "-X", method, &url])
        .args(["-H", &format!("Authorization: PVEAPIToken={}", tb.get("PROXMOX_TOKEN")?)]);
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", &body.to_string()]);
    }
    let out = cmd.output().context("running curl")?;
    if !out.status.success() {
        bail!(
            "curl {method} {path}: {} {} (a fakepve started before /_ctl/agent existed needs a restart)",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Starts VM `vmid`'s guest agent, answering `answers` (fakepve's vm.agent).
fn start_agent(tb: &Testbed, vmid: u64, answers: Value) -> anyhow::Result<()> {
    pve(tb, "POST", "/_ctl/agent", Some(json!({"vmid": vmid, "agent": answers}))).map(drop)
}

/// The file writes and commands the agent of VM `vmid` was asked for, oldest first (reads such as
/// `get-osinfo` left out).
fn agent_writes(tb: &Testbed, vmid: u64) -> anyhow::Result<Vec<Value>> {
    let seen = pve(tb, "GET", &format!("/_ctl/agent?vmid={vmid}"), None)?;
    Ok(seen["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["command"] == "file-write" || r["command"] == "exec")
        .cloned()
        .collect())
}

fn file_write(file: &str, content: &str) -> Value {
    json!({"command": "file-write", "params": {"file": file, "content": content}})
}

fn exec(argv: &[&str]) -> Value {
    json!({"command": "exec", "params": {"command": argv}})
}

/// The serial of the certificate `chain` begins with, in hex (see [`hex`]).
fn leaf_serial(chain: &str) -> anyhow::Result<String> {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, chain.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok(hex(String::from_utf8(out.stdout)?.trim().trim_start_matches("serial=")))
}

/// A serial number in hex, however written (`0a:1b`, `0A1B`): lower case, no colons or leading zeros.
fn hex(serial: &str) -> String {
    serial.replace(':', "").trim_start_matches('0').to_ascii_lowercase()
}

/// The serial delivered to `cloud_pod`, in hex.
fn delivered_serial(cert: &Value, cloud_pod: &str) -> Option<String> {
    delivery(cert, cloud_pod)["serial"].as_str().map(hex)
}

/// The delivery of `cloud_pod` in the Certificate's status.
fn delivery<'v>(cert: &'v Value, cloud_pod: &str) -> &'v Value {
    cert["status"]["deliveries"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["cloudPod"] == cloud_pod))
        .unwrap_or(&Value::Null)
}

/// Where the writes of one delivery begin in `log`: the key written with `key`, then the chain,
/// then `reload`; None when they are not there in that order.
fn delivered_in(log: &[Value], key: (&str, &str), chain: (&str, &str), reload: &[&str]) -> Option<usize> {
    let want = [file_write(key.0, key.1), file_write(chain.0, chain.1), exec(reload)];
    let start = log.iter().position(|r| r == &want[0])?;
    let rest = &log[start..];
    let chain_at = rest.iter().position(|r| r == &want[1])?;
    rest[chain_at..].iter().any(|r| r == &want[2]).then_some(start)
}

#[test]
fn a_qemu_cloudpod_gets_the_key_and_chain_and_reloads_after_issuance_and_after_renewal() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cdel-renew", 0)?;
    let _op = h.operator()?;
    h.apply_zone()?;
    let vmid = h.running_cloudpod("web", "qemu")?;
    start_agent(&tb, vmid, json!({}))?;
    // pebble's certificates last 600 s: renew 570 s before expiry, 30 s after issuance
    h.apply(
        "Certificate",
        "site",
        json!({"dnsNames": [format!("www.{}", h.zone())], "secretName": "site-tls", "issuer": "pebble",
               "renewBefore": "570s", "deliverTo": [{"cloudPod": "web", "reloadCommand": RELOAD}]}),
    )?;
    let (key_path, chain_path) = ("/etc/ssl/mpanel/site-tls/tls.key", "/etc/ssl/mpanel/site-tls/fullchain.pem");

    let first = h.wait_certificate("site", "delivered", |c| condition(c, "Delivered")["status"] == "True")?;
    let (key, chain) = h.secret_key_and_chain("site-tls")?;
    let first_serial = leaf_serial(&chain)?;
    let shown = delivery(&first, "web");
    assert_eq!(delivered_serial(&first, "web"), Some(first_serial.clone()), "status says which certificate is there");
    assert_eq!((shown["vmid"].as_u64(), shown["notAfter"].clone()), (Some(vmid), first["status"]["notAfter"].clone()));
    assert_eq!((shown["keyPath"].as_str(), shown["chainPath"].as_str()), (Some(key_path), Some(chain_path)));
    assert!(shown["deliveredAt"].is_string() && shown.get("lastError").is_none(), "{shown:#}");
    let log = agent_writes(&tb, vmid)?;
    let issued_at = delivered_in(&log, (key_path, &key), (chain_path, &chain), &RELOAD);
    assert!(issued_at.is_some(), "the Secret's key, its chain, then the reload reached the guest: {log:#?}");

    let renewed = h.wait_certificate("site", "delivered after renewal", |c| {
        delivered_serial(c, "web").is_some_and(|s| s != first_serial) && condition(c, "Delivered")["status"] == "True"
    })?;
    let (new_key, new_chain) = h.secret_key_and_chain("site-tls")?;
    assert_ne!(new_key, key, "rotationPolicy Always: the renewal has a new key");
    assert_eq!(delivered_serial(&renewed, "web"), Some(leaf_serial(&new_chain)?));
    let log = agent_writes(&tb, vmid)?;
    let renewed_at = delivered_in(&log, (key_path, &new_key), (chain_path, &new_chain), &RELOAD);
    assert!(renewed_at > issued_at, "the renewed key and chain, then a reload, after the first ones: {log:#?}");
    let reloads = log.iter().filter(|r| **r == exec(&RELOAD)).count();
    assert_eq!(reloads, 2, "one reload per certificate, none on resyncs: {log:#?}");
    Ok(())
}

#[test]
fn failed_deliveries_are_conditions_retried_on_a_backoff_and_no_other_namespaces_guest_is_touched() -> anyhow::Result<()>
{
    let tb = Testbed::from_env()?;
    // another tenant with a running QEMU CloudPod `shared` whose agent answers
    let other = Harness::new(&tb, "cdel-other", 1)?;
    let _other_op = other.operator()?;
    let theirs = other.running_cloudpod("shared", "qemu")?;
    start_agent(&tb, theirs, json!({}))?;

    let h = Harness::new(&tb, "cdel-fail", 0)?;
    let _op = h.operator()?;
    h.apply_zone()?;
    h.running_cloudpod("ct", "lxc")?;
    let quiet = h.running_cloudpod("quiet", "qemu")?;
    let failing = h.running_cloudpod("failing", "qemu")?;
    let refusal = "Job for nginx.service failed because the control process exited with error code.";
    start_agent(&tb, failing, json!({"exec": {"systemctl reload nginx": {"exitcode": 1, "err-data": refusal}}}))?;
    let targets = json!([
        {"cloudPod": "shared"},
        {"cloudPod": "ct"},
        {"cloudPod": "quiet", "keyPath": "/srv/tls/key.pem", "chainPath": "/srv/tls/chain.pem"},
        {"cloudPod": "failing", "reloadCommand": RELOAD},
    ]);
    h.apply(
        "Certificate",
        "site",
        json!({"dnsNames": [format!("www.{}", h.zone())], "secretName": "site-tls", "issuer": "pebble",
               "deliverTo": targets}),
    )?;
    let cert = h.wait_certificate("site", "reported every failed delivery", |c| {
        ["shared", "ct", "quiet", "failing"].iter().all(|p| delivery(c, p)["lastErrorReason"].is_string())
    })?;
    assert_eq!(condition(&cert, "Ready")["status"], "True", "the certificate itself is fine: {:#}", cert["status"]);
    let delivered = condition(&cert, "Delivered");
    assert_eq!((delivered["status"].as_str(), delivered["reason"].as_str()), (Some("False"), Some("CloudPodNotFound")));
    let reason_and_error = |pod: &str| {
        let d = delivery(&cert, pod);
        (
            d["lastErrorReason"].as_str().unwrap_or_default().to_owned(),
            d["lastError"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(reason_and_error("shared"), ("CloudPodNotFound".into(), "no CloudPod shared in this namespace".into()));
    assert_eq!(reason_and_error("ct").0, "GuestAgentUnsupported");
    // Proxmox's own words
    assert_eq!(reason_and_error("quiet"), ("GuestAgentNotRunning".into(), "QEMU guest agent is not running".into()));
    let (reason, error) = reason_and_error("failing");
    assert_eq!(reason, "GuestCommandFailed");
    assert!(error.contains("exited 1") && error.contains(refusal), "{error}");
    let message = delivered["message"].as_str().unwrap_or_default();
    for pod in ["shared", "ct", "quiet", "failing"] {
        assert!(message.contains(&format!("CloudPod {pod}: ")), "the message names each failure: {message}");
    }
    for pod in ["shared", "ct", "quiet", "failing"] {
        assert!(delivery(&cert, pod).get("deliveredAt").is_none(), "{pod}: nothing delivered");
    }

    // the other tenant's guest of that name got nothing
    let (_, chain) = h.secret_key_and_chain("site-tls")?;
    assert_eq!(agent_writes(&tb, theirs)?, Vec::<Value>::new(), "another namespace's CloudPod is never used");

    // a reload that keeps failing is retried after 5 s, 10 s, 20 s ..., not in a loop
    let watched = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let log = agent_writes(&tb, failing)?;
    let attempts = log.iter().filter(|r| **r == exec(&RELOAD)).count();
    assert!((2..=4).contains(&attempts), "{attempts} reload attempts in {:?}: {log:#?}", watched.elapsed());
    let later = h.get("certificate", "site")?;
    let failed = delivery(&later, "failing")["failedAttempts"].as_u64().unwrap_or(0) as usize;
    // (an attempt may land between reading the log and the status)
    assert!((attempts..=attempts + 1).contains(&failed), "each attempt counted: {:#}", later["status"]);
    // the key was written on every attempt: the files are in place, only the reload fails
    assert!(
        log.iter().any(|r| r["params"]["file"] == "/etc/ssl/mpanel/site-tls/fullchain.pem"
            && r["params"]["content"] == chain.as_str())
    );

    // the agent starts: the next retry delivers to the paths the target names
    start_agent(&tb, quiet, json!({}))?;
    let fixed =
        h.wait_certificate("site", "delivered into quiet", |c| delivery(c, "quiet")["deliveredAt"].is_string())?;
    let (key, chain) = h.secret_key_and_chain("site-tls")?;
    assert!(delivery(&fixed, "quiet").get("lastError").is_none(), "{:#}", fixed["status"]);
    let log = agent_writes(&tb, quiet)?;
    assert_eq!(
        log.iter().filter(|r| r["command"] == "file-write").cloned().collect::<Vec<_>>(),
        vec![file_write("/srv/tls/key.pem", &key), file_write("/srv/tls/chain.pem", &chain)],
        "written once, where keyPath and chainPath say"
    );
    assert_eq!(agent_writes(&tb, theirs)?, Vec::<Value>::new(), "still nothing in the other namespace's guest");
    Ok(())
}
