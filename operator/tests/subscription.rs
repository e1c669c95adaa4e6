//! The Subscription controller end to end: a real kube-apiserver and kube-controller-manager, the
//! operator binary with every controller, and the peers behind the children: PowerDNS, pebble,
//! mail-core (Dovecot), fakepve (standing in for Proxmox VE) and the Namesilo double. The issuer is
//! named `letsencrypt` (pebble behind it), as in the examples.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use mpanel_tests::mail::doveadm_auth;
use mpanel_tests::namesilo::{Account, Namesilo};
use mpanel_tests::{TestNamespace, Testbed, full_stack};
use serde_json::{Value, json};
use support::{Operator, condition, eventually};

const WAIT: Duration = Duration::from_secs(90);

struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
    rt: tokio::runtime::Runtime,
    account: Account,
    vmids: (u32, u32),
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Runtime::new()?;
        let ns = tb.namespace(label)?;
        let account = rt.block_on(Namesilo::from_testbed(tb)?.new_account("100.00"))?;
        full_stack::provider_secrets(tb, &ns.name, account.key())?;
        let admin = "--from-literal=password=Sub-scription-2026";
        tb.kubectl_ok(&["create", "secret", "generic", "admin-password", "-n", &ns.name, admin], None)?;
        let first = 300_000 + (std::process::id() % 100_000) * 10;
        let vmids = (first, first + 9);
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        let scope =
            full_stack::Scope { watch: &ns.name, home: &ns.name, vmids, network: "198.51.100", hosts: (30, 39) };
        std::fs::write(&config, full_stack::config(tb, &scope)?)?;
        Ok(Self { tb, ns, config, rt, account, vmids })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    fn domain(&self) -> String {
        format!("{}.com", self.ns.name)
    }

    fn apply(&self, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, "Subscription", "hosting", spec)
    }

    fn wait(&self, what: &str, check: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        support::wait_object(self.tb, &self.ns.name, "subscription", "hosting", what, WAIT, check)
    }

    /// fakepve's guests in this test's VMID range.
    fn guests(&self) -> anyhow::Result<Vec<Value>> {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", self.tb.get("PROXMOX_CA")?])
            .args(["-H", &format!("Authorization: PVEAPIToken={}", self.tb.get("PROXMOX_TOKEN")?)])
            .arg(format!("{}/_ctl/guests", self.tb.get("PROXMOX_CTL_URL")?))
            .output()
            .context("running curl")?;
        let all: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["vmid"].as_u64().is_some_and(|id| (self.vmids.0..=self.vmids.1).contains(&(id as u32))))
            .cloned()
            .collect())
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn subscription(h: &Harness, suspension: Value) -> Value {
    let (d, ns) = (h.domain(), &h.ns.name);
    json!({
        "customer": {"id": "acme", "email": "billing@acme.example"},
        "product": "business-hosting",
        "billing": {"state": "Paid", "paidUntil": "2027-06-30", "invoice": "INV-2026-000001"},
        "suspension": suspension,
        "resources": {
            "cloudPods": [{"name": "app", "spec": {"plan": "mini", "type": "lxc", "template": "100", "hostname": "app",
                "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8},
                "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.77/24", "gateway": "203.0.113.1"}}}}],
            "domains": [{"name": "site", "spec": {"name": d, "registration": {"mode": "Register"}}}],
            "dnsZones": [{"name": "zone", "spec": {"zone": format!("{d}."), "nameservers": [format!("ns1.{ns}.net.")],
                "records": [{"name": "@", "type": "A", "cloudPodRef": {"name": "app"}}],
                "mail": {"mx": [{"host": format!("mail.{d}."), "priority": 10}]}}}],
            "mailboxes": [{"name": "admin", "spec": {"address": format!("admin@{d}"), "quotaMiB": 10,
                "passwordSecretRef": {"name": "admin-password", "key": "password"}}}],
            "certificates": [{"name": "tls", "spec": {"dnsNames": [d], "secretName": "site-tls", "issuer": "letsencrypt", "deletionPolicy": "Delete"}}]
        }
    })
}

#[test]
fn a_subscription_activates_once_every_child_is_ready_suspends_and_deprovisions_everything() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "sub-full")?;
    let op = h.operator()?;
    let (d, ns) = (h.domain(), h.ns.name.clone());
    h.apply(subscription(&h, json!(null)))?;
    let active = h.wait("became Active", |s| s["status"]["phase"] == "Active")?;
    assert_eq!(condition(&active, "Ready")["status"], "True");
    assert!(active["status"]["activatedAt"].is_string());
    let resources = active["status"]["resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(resources.len(), 5, "{resources:?}");
    assert!(resources.iter().all(|r| r["ready"] == true));

    // each system holds its object
    let pod = support::get_object(&tb, &ns, "cloudpod", "app")?;
    assert_eq!(pod["metadata"]["labels"]["mpanel.migrahosting.com/customer"], "acme");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], active["metadata"]["uid"]);
    let guests = h.guests()?;
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0]["status"], "running");
    assert_eq!(tb.dig(&d, "A")?.answers, ["203.0.113.77"], "the apex follows the CloudPod");
    assert!(doveadm_auth(&tb, &format!("admin@{d}"), "Sub-scription-2026")?);
    let tls = tb.kubectl_ok(&["get", "secret", "site-tls", "-n", &ns, "-o", "jsonpath={.type}"], None)?;
    assert_eq!(tls, "kubernetes.io/tls");
    let domain = support::get_object(&tb, &ns, "domain", "site")?;
    assert_eq!(domain["spec"]["paidUntil"], "2027-06-30", "billing's paidUntil is passed down");
    assert!(h.rt.block_on(h.account.domain(&d))?.is_some(), "registered at the registrar");

    // suspended for abuse: the CloudPod stops and the mailbox refuses logins; DNS stays
    h.apply(subscription(&h, json!({"suspended": true, "reason": "Abuse"})))?;
    let suspended = h.wait("was Suspended", |s| s["status"]["phase"] == "Suspended")?;
    assert_eq!(condition(&suspended, "Ready")["status"], "False");
    let stopped = eventually(WAIT, || Ok(h.guests()?.first().is_some_and(|g| g["status"] == "stopped")))?;
    assert!(stopped, "the guest was stopped");
    let refused = eventually(WAIT, || Ok(!doveadm_auth(&tb, &format!("admin@{d}"), "Sub-scription-2026")?))?;
    assert!(refused, "the mailbox login is refused while suspended");
    assert_eq!(tb.dig(&d, "A")?.answers, ["203.0.113.77"]);

    // lifted
    h.apply(subscription(&h, json!({"suspended": false})))?;
    h.wait("was Active again", |s| s["status"]["phase"] == "Active")?;
    assert_eq!(h.guests()?.first().map(|g| g["status"].clone()), Some(json!("running")));
    assert!(doveadm_auth(&tb, &format!("admin@{d}"), "Sub-scription-2026")?);

    // deleted: the children first, with what they stand for
    let deleted = tb.kubectl(&["delete", "subscription", "hosting", "-n", &ns, "--timeout=90s"], None)?;
    assert!(deleted.success, "{}", deleted.stderr);
    for kind in ["cloudpod", "domain", "dnszone", "mailbox", "certificate"] {
        let left = tb.kubectl_ok(&["get", kind, "-n", &ns, "-o", "name"], None)?;
        assert!(left.trim().is_empty(), "{kind} left: {left}");
    }
    assert!(h.guests()?.is_empty(), "the guest was destroyed");
    assert_ne!(tb.dig(&d, "SOA")?.rcode, "NOERROR", "the zone is gone from PowerDNS");
    assert!(!doveadm_auth(&tb, &format!("admin@{d}"), "Sub-scription-2026")?, "the mailbox row is gone");
    let secret_gone = eventually(WAIT, || Ok(!tb.kubectl(&["get", "secret", "site-tls", "-n", &ns], None)?.success))?;
    assert!(secret_gone, "the certificate Secret is gone");
    // waiting for the children and for Proxmox's tasks is no failure
    let metrics = op.metrics()?;
    for waiting in ["ChildrenRemaining", "Destroying"] {
        let counted = mpanel_tests::metric_sum(&metrics, "mpanel_reconcile_errors_total", &[("reason", waiting)]);
        assert_eq!(counted, 0.0, "{waiting} counted as a reconcile error");
    }
    Ok(())
}

#[test]
fn a_child_that_cannot_get_ready_fails_the_subscription_at_its_deadline_and_fixing_it_activates() -> anyhow::Result<()>
{
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "sub-fail")?;
    let _op = h.operator()?;
    let (d, ns) = (h.domain(), h.ns.name.clone());
    let spec = |cert_name: &str| {
        json!({
            "customer": {"id": "acme", "email": "billing@acme.example"},
            "product": "dns",
            "billing": {"state": "Paid"},
            "provisioningTimeout": "20s",
            "resources": {
                "dnsZones": [{"name": "zone", "spec": {"zone": format!("{d}."), "nameservers": [format!("ns1.{ns}.net.")]}}],
                "certificates": [{"name": "tls", "spec": {"dnsNames": [cert_name], "secretName": "tls", "issuer": "letsencrypt"}}]
            }
        })
    };
    // a certificate for a name no zone of this customer serves
    h.apply(spec(&format!("www.{ns}.unserved")))?;
    let provisioning = h.wait("was Provisioning", |s| s["status"]["phase"] == "Provisioning")?;
    assert_eq!(condition(&provisioning, "Ready")["status"], "False");
    let failed = h.wait("Failed at its deadline", |s| s["status"]["phase"] == "Failed")?;
    assert_eq!(condition(&failed, "Ready")["reason"], "ProvisioningTimeout");
    let stalled = condition(&failed, "Stalled");
    assert_eq!(
        (&stalled["status"], &stalled["reason"]),
        (&json!("True"), &json!("ProvisioningTimeout")),
        "kstatus sees the failure"
    );
    assert!(failed["status"]["activatedAt"].is_null(), "never Active");
    let cert =
        failed["status"]["resources"].as_array().into_iter().flatten().find(|r| r["kind"] == "Certificate").cloned();
    let cert = cert.context("the Certificate is listed")?;
    assert_eq!(cert["ready"], false);
    let child = support::get_object(&tb, &ns, "certificate", "tls")?;
    assert_eq!(cert["message"], condition(&child, "Ready")["message"], "the child's own message, verbatim");

    // fixed: a name the customer's zone serves
    h.apply(spec(&d))?;
    let active = h.wait("became Active", |s| s["status"]["phase"] == "Active")?;
    assert!(active["status"]["activatedAt"].is_string());
    assert!(condition(&active, "Stalled").is_null(), "no longer stalled: {:#}", active["status"]["conditions"]);
    Ok(())
}

#[test]
fn the_full_stack_example_becomes_active() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "sub-example")?;
    let _op = h.operator()?;
    // the example as a customer would apply it, in this test's namespace and with a name of its own
    let text = std::fs::read_to_string(mpanel_tests::repo_root().join("examples/subscription-full-stack.yaml"))?
        .replace("namespace: customer-globex", &format!("namespace: {}", h.ns.name))
        .replace("example.net", &format!("{}.net", h.ns.name));
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&text))?;
    let active =
        support::wait_object(&tb, &h.ns.name, "subscription", "business-hosting", "became Active", WAIT, |s| {
            s["status"]["phase"] == "Active"
        })?;
    let resources = active["status"]["resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(resources.len(), 5, "{resources:?}");

    // what support sees: the tree of children, each Ready, with its newest Event
    let out = Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
        .args(["describe", "subscription/business-hosting", "-n", &h.ns.name])
        .env("KUBECONFIG", tb.get("KUBECONFIG")?)
        .output()
        .context("running describe")?;
    let text = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Subscription/business-hosting  phase=Active  Ready=True"), "{text}");
    for r in &resources {
        let child = format!("{}/{}  ", r["kind"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""));
        let at = lines.iter().position(|l| l.contains(&child)).with_context(|| format!("{child} missing:\n{text}"))?;
        assert!(lines[at].starts_with("├─ ") || lines[at].starts_with("└─ "), "{text}");
        assert!(lines[at].contains("Ready=True"), "{text}");
    }
    assert!(text.matches("last Event: ").count() >= 5, "every child has an Event:\n{text}");
    let missing = Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
        .args(["describe", "subscription/none", "-n", &h.ns.name])
        .env("KUBECONFIG", tb.get("KUBECONFIG")?)
        .output()?;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Subscription none does not exist"));
    Ok(())
}

/// The resources the billing bridge renders for `cloudpod-pro` bought with `domain`, `dns-hosting`
/// and `ssl-dv` (billing-bridge/tests/catalog_as_sold.rs asserts that shape): the pod takes its
/// address from a pool, the zone's apex follows it and `www` is the apex.
fn as_sold(h: &Harness, pod: &str) -> Value {
    let d = h.domain();
    let label = d.replace('.', "-");
    json!({
        "customer": {"id": "acme", "email": "billing@acme.example"},
        "product": "cloudpod-pro",
        "billing": {"state": "Paid", "paidUntil": "2027-06-30", "invoice": "INV-2026-000003"},
        "resources": {
            "cloudPods": [{"name": pod, "spec": {"plan": "pro", "type": "lxc", "template": "100", "hostname": pod,
                "resources": {"cores": 2, "memoryMiB": 2048, "diskGiB": 50},
                "network": {"bridge": "vmbr0", "ipv4": {"pool": "public-v4"}}}}],
            "domains": [{"name": label, "spec": {"name": d, "registration": {"mode": "Register", "years": 1}}}],
            "dnsZones": [{"name": label, "spec": {"zone": format!("{d}."),
                "nameservers": ["ns1.migrahosting.com.", "ns2.migrahosting.com."],
                "records": [{"name": "@", "type": "A", "cloudPodRef": {"name": pod}},
                            {"name": "www", "type": "CNAME", "values": [format!("{d}.")]}],
                "mail": {"mx": [{"host": "mail.migrahosting.com.", "priority": 10}], "spf": "v=spf1 mx -all"}}}],
            "certificates": [{"name": format!("{label}-tls"), "spec": {
                "dnsNames": [d, format!("www.{d}"), format!("*.{d}")], "secretName": format!("{label}-tls"),
                "issuer": "letsencrypt", "deletionPolicy": "Delete"}}]
        }
    })
}

#[test]
fn a_cloudpod_as_sold_with_a_domain_is_served_at_its_pool_address_by_name() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "sub-sold")?;
    let _op = h.operator()?;
    let (d, ns) = (h.domain(), h.ns.name.clone());
    h.apply(as_sold(&h, "sub-0123456789"))?;
    h.wait("became Active", |s| s["status"]["phase"] == "Active")?;
    let pod = support::get_object(&tb, &ns, "cloudpod", "sub-0123456789")?;
    let address = pod["status"]["ipAddress"].as_str().unwrap_or_default().to_owned();
    assert!(address.starts_with("198.51.100.3"), "an address of the pool: {}", pod["status"]);
    assert_eq!(tb.dig(&d, "A")?.answers, [address], "PowerDNS serves the apex at the pod's address");
    assert_eq!(tb.dig(&format!("www.{d}"), "CNAME")?.answers, [format!("{d}.")]);
    let names = certificate_names(&tb, &ns, &format!("{}-tls", d.replace('.', "-")))?;
    for name in [d.clone(), format!("www.{d}"), format!("*.{d}")] {
        assert!(names.contains(&format!("DNS:{name}")), "{name} not in {names}");
    }
    Ok(())
}

#[test]
fn a_domain_transfer_as_sold_completes_with_the_auth_code_secret_the_bridge_wrote() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "sub-xfer")?;
    let (d, ns) = (h.domain(), h.ns.name.clone());
    h.rt.block_on(Namesilo::from_testbed(&tb)?.registry_add(
        &d,
        "XFER-c0de",
        "2027-06-30",
        &["ns1.elsewhere.net", "ns2.elsewhere.net"],
    ))?;
    // as the bridge writes it at checkout (auth_code::keep)
    let literal = "--from-literal=auth-code=XFER-c0de";
    tb.kubectl_ok(&["create", "secret", "generic", "sub-0123456789-auth-code", "-n", &ns, literal], None)?;
    let _op = h.operator()?;
    let label = d.replace('.', "-");
    h.apply(json!({
        "customer": {"id": "acme", "email": "billing@acme.example"},
        "product": "domain-transfer",
        "billing": {"state": "Paid", "paidUntil": "2027-06-30", "invoice": "INV-2026-000004"},
        "provisioningTimeout": "8d",
        "resources": {"domains": [{"name": label, "spec": {"name": d, "registration": {"mode": "Transfer", "years": 1,
            "authCodeSecretRef": {"name": "sub-0123456789-auth-code", "key": "auth-code"}}}}]}
    }))?;
    h.wait("became Active", |s| s["status"]["phase"] == "Active")?;
    let domain = support::get_object(&tb, &ns, "domain", &label)?;
    assert_eq!(domain["status"]["transfer"]["state"], "Transfer Completed", "{}", domain["status"]);
    assert!(h.rt.block_on(h.account.domain(&d))?.is_some(), "transferred into the account");
    Ok(())
}

/// The DNS names in the certificate of the TLS Secret `name`, as openssl reads them.
fn certificate_names(tb: &Testbed, ns: &str, name: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let template = r#"--template={{index .data "tls.crt" | base64decode}}"#;
    let pem = tb.kubectl_ok(&["get", "secret", name, "-n", ns, "-o", "go-template", template], None)?;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running openssl")?;
    child.stdin.take().context("openssl stdin")?.write_all(pem.as_bytes())?;
    Ok(String::from_utf8(child.wait_with_output()?.stdout)?)
}

/// A Subscription of two CloudPods, a zone with two records, a mailbox with two aliases and a
/// certificate for two names; `full: false` drops one of each.
fn composed(h: &Harness, full: bool) -> Value {
    let d = h.domain();
    let pod = |name: &str, address: &str| {
        json!({"name": name, "spec": {"plan": "mini", "type": "lxc", "template": "100", "hostname": name,
            "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8},
            "network": {"bridge": "vmbr0", "ipv4": {"address": address, "gateway": "203.0.113.1"}}}})
    };
    let mut pods = vec![pod("app", "203.0.113.84/24")];
    let mut records = vec![json!({"name": "www", "type": "A", "values": ["192.0.2.10"]})];
    let mut aliases = vec![format!("info@{d}")];
    let mut names = vec![d.clone()];
    if full {
        pods.push(pod("extra", "203.0.113.85/24"));
        records.push(json!({"name": "old", "type": "A", "values": ["192.0.2.11"]}));
        aliases.push(format!("old@{d}"));
        names.push(format!("www.{d}"));
    }
    json!({
        "customer": {"id": "acme", "email": "billing@acme.example"},
        "product": "business-hosting",
        "billing": {"state": "Paid", "paidUntil": "2027-06-30", "invoice": "INV-2026-000002"},
        "resources": {
            "cloudPods": pods,
            "dnsZones": [{"name": "zone", "spec": {"zone": format!("{d}."), "nameservers": [format!("ns1.{}.net.", h.ns.name)],
                "records": records}}],
            "mailboxes": [{"name": "admin", "spec": {"address": format!("admin@{d}"), "quotaMiB": 10, "aliases": aliases,
                "passwordSecretRef": {"name": "admin-password", "key": "password"}}}],
            "certificates": [{"name": "tls", "spec": {"dnsNames": names, "secretName": "site-tls", "issuer": "letsencrypt"}}]
        }
    })
}

#[test]
fn what_the_templates_no_longer_say_is_removed_from_the_children_and_the_systems_behind_them() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "sub-removal")?;
    let _op = h.operator()?;
    let (d, ns) = (h.domain(), h.ns.name.clone());
    let alias_row = |address: &str| -> anyhow::Result<bool> {
        Ok(mpanel_tests::mail::mailcore_sql(&tb, &format!("SELECT 1 FROM alias WHERE address = '{address}'"))?
            .is_some())
    };
    h.apply(composed(&h, true))?;
    h.wait("became Active", |s| s["status"]["phase"] == "Active")?;
    assert_eq!(tb.dig(&format!("old.{d}"), "A")?.answers, ["192.0.2.11"]);
    assert!(alias_row(&format!("old@{d}"))?);
    assert_eq!(h.guests()?.len(), 2);
    assert!(certificate_names(&tb, &ns, "site-tls")?.contains(&format!("DNS:www.{d}")));

    // a record a person adds to the child zone is theirs (another field manager)
    let manual = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "zone", "namespace": ns},
        "spec": {"records": [{"name": "manual", "type": "TXT", "values": ["kept"]}]}});
    tb.kubectl_ok(&["apply", "--server-side", "--field-manager=person", "-f", "-"], Some(&manual.to_string()))?;
    let served = eventually(WAIT, || Ok(tb.dig(&format!("manual.{d}"), "TXT")?.answers == ["\"kept\""]))?;
    assert!(served, "the person's record is served");

    h.apply(composed(&h, false))?;
    let gone = eventually(WAIT, || Ok(tb.dig(&format!("old.{d}"), "A")?.rcode == "NXDOMAIN"))?;
    assert!(gone, "the dropped record still resolves: {:?}", tb.dig(&format!("old.{d}"), "A")?);
    assert_eq!(tb.dig(&format!("www.{d}"), "A")?.answers, ["192.0.2.10"], "the kept record stays");
    assert_eq!(tb.dig(&format!("manual.{d}"), "TXT")?.answers, ["\"kept\""], "the person's record stays");
    let alias_gone = eventually(WAIT, || Ok(!alias_row(&format!("old@{d}"))?))?;
    assert!(alias_gone, "the dropped alias still delivers");
    assert!(alias_row(&format!("info@{d}"))?, "the kept alias stays");
    let pod_gone = eventually(WAIT, || Ok(h.guests()?.len() == 1))?;
    assert!(pod_gone, "the dropped CloudPod's guest is still there: {:?}", h.guests()?);
    // the object goes once the operator saw the guest's destruction finish (its task is polled)
    let object_gone = eventually(WAIT, || Ok(!tb.kubectl(&["get", "cloudpod", "extra", "-n", &ns], None)?.success))?;
    assert!(object_gone, "the dropped CloudPod object stayed after its guest was destroyed");
    let reissued = eventually(Duration::from_secs(120), || {
        Ok(!certificate_names(&tb, &ns, "site-tls")?.contains(&format!("DNS:www.{d}")))
    })?;
    assert!(reissued, "the certificate still names www: {}", certificate_names(&tb, &ns, "site-tls")?);
    assert!(certificate_names(&tb, &ns, "site-tls")?.contains(&format!("DNS:{d}")));
    h.wait("became Active again", |s| s["status"]["phase"] == "Active")?;
    Ok(())
}
