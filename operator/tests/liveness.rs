//! No object stops the operator or stays undeletable: a reconcile that runs past its bound or
//! panics fails that object only; a Paused object, one whose mode annotation is not a mode, and one
//! of a kind whose controller is not configured can all be deleted (their external objects are
//! left). Real kube-apiserver and PowerDNS.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::powerdns::{self, DnsApi, PowerDns};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{AwaitBlocking, Operator, condition, eventually, metric_sum};

const WAIT: Duration = Duration::from_secs(60);

struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
}

impl<'a> Harness<'a> {
    /// An operator configuration with only PowerDNS (so DnsZones are reconciled and every other
    /// kind is not), reconciling this namespace only, each reconcile bounded to 2 s.
    fn new(tb: &'a Testbed, label: &str) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
        tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &ns.name, &key], None)?;
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 2s\nreconcileTimeout: 2s\nwatchNamespace: {ns}\n\
                 leaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n",
                ns = ns.name,
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
            ),
        )?;
        Ok(Self { tb, ns, config })
    }

    fn operator(&self, env: &[(&str, &str)]) -> anyhow::Result<Operator> {
        let config = self.config.to_string_lossy();
        let mut op = Operator::start_with_env(Path::new(self.tb.get("KUBECONFIG")?), &["--config", &config], env)?;
        anyhow::ensure!(op.wait_ready(Duration::from_secs(30))?, "operator not ready: {}", op.stop()?.logs);
        Ok(op)
    }

    fn zone(&self, name: &str) -> String {
        format!("{name}.{}.mpanel-e2e.", self.ns.name)
    }

    fn apply_zone(&self, name: &str, annotations: Value) -> anyhow::Result<()> {
        let obj = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
                         "metadata": {"name": name, "namespace": self.ns.name, "annotations": annotations},
                         "spec": {"zone": self.zone(name), "nameservers": ["ns1.migrahosting.com"],
                                  "records": [{"name": "@", "type": "A", "values": ["192.0.2.44"]}]}});
        self.tb.kubectl_ok(&["apply", "-f", "-"], Some(&obj.to_string())).map(drop)
    }

    fn wait(&self, kind: &str, name: &str, (type_, status, reason): (&str, &str, &str)) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, kind, name, (type_, status, Some(reason)), WAIT)
    }

    /// Deletes the object and waits until it is gone from the API.
    fn delete_and_wait_gone(&self, kind: &str, name: &str) -> anyhow::Result<bool> {
        self.tb.kubectl_ok(&["delete", kind, name, "-n", &self.ns.name, "--wait=false"], None)?;
        eventually(WAIT, || {
            let out = self.tb.kubectl(&["get", kind, name, "-n", &self.ns.name, "-o", "name"], None)?;
            Ok(!out.success && out.stderr.contains("NotFound"))
        })
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

#[test]
fn a_reconcile_past_its_bound_or_panicking_fails_only_that_object() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "bounds")?;
    let (stall, panic) = (format!("{}/stuck", h.ns.name), format!("{}/boom", h.ns.name));
    let op = h.operator(&[("MPANEL_FAULT_STALL", &stall), ("MPANEL_FAULT_PANIC", &panic)])?;
    for name in ["stuck", "boom", "one", "two", "three"] {
        h.apply_zone(name, json!({}))?;
    }
    for name in ["one", "two", "three"] {
        h.wait("dnszone", name, ("Ready", "True", "Ready"))?;
        assert_eq!(tb.dig(&h.zone(name), "A")?.answers, ["192.0.2.44"], "{name} is served");
    }
    let stuck = h.wait("dnszone", "stuck", ("Ready", "False", "ReconcileTimedOut"))?;
    assert_eq!(
        condition(&stuck, "Ready")["message"],
        "the reconcile ran longer than 2s and was stopped; it is retried on the object's backoff"
    );
    let boom = h.wait("dnszone", "boom", ("Ready", "False", "ReconcilePanicked"))?;
    assert!(condition(&boom, "Ready")["message"].as_str().unwrap_or_default().contains("test fault point"));

    // the operator goes on: a zone applied after both failures still converges, and both failures
    // are counted under their reasons
    h.apply_zone("after", json!({}))?;
    h.wait("dnszone", "after", ("Ready", "True", "Ready"))?;
    let metrics = op.metrics()?;
    for reason in ["ReconcileTimedOut", "ReconcilePanicked"] {
        assert!(metric_sum(&metrics, "mpanel_reconcile_errors_total", &[("reason", reason)]) >= 1.0, "{reason}");
    }
    assert!(tb.dig(&h.zone("stuck"), "A")?.rcode != "NOERROR", "the stalled zone was never written");
    let stopped = op.stop()?;
    assert!(stopped.success, "the operator stops cleanly after both: {}", stopped.logs);
    Ok(())
}

#[test]
fn paused_invalid_mode_and_unmanaged_objects_can_be_deleted_and_their_external_objects_stay() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "deletable")?;
    let _op = h.operator(&[])?;
    h.apply_zone("paused", json!({}))?;
    h.apply_zone("odd", json!({}))?;
    h.wait("dnszone", "paused", ("Ready", "True", "Ready"))?;
    h.wait("dnszone", "odd", ("Ready", "True", "Ready"))?;
    let mode = "mpanel.migrahosting.com/reconcile-mode";
    h.apply_zone("paused", json!({mode: "Paused"}))?;
    h.apply_zone("odd", json!({mode: "paused"}))?;
    h.wait("dnszone", "odd", ("Ready", "False", "InvalidReconcileMode"))?;

    assert!(h.delete_and_wait_gone("dnszone", "paused")?, "a Paused DnsZone stayed after its deletion");
    assert!(h.delete_and_wait_gone("dnszone", "odd")?, "a DnsZone with an invalid mode stayed after its deletion");
    let pdns = PowerDns::new(
        powerdns::Config {
            api_url: tb.get("PDNS_API_URL")?.to_owned(),
            api_key: tb.get("PDNS_API_KEY")?.to_owned(),
            server_id: tb.get("PDNS_SERVER_ID")?.to_owned(),
            timeout: Duration::from_secs(10),
        },
        std::sync::Arc::new(Metrics::default()),
    )?;
    for name in ["paused", "odd"] {
        assert_eq!(tb.dig(&h.zone(name), "A")?.answers, ["192.0.2.44"], "{name}: the zone was left in PowerDNS");
        pdns.delete_zone(&h.zone(name)).await_blocking()?;
    }

    // a Mailbox carrying the finalizer from a time its controller ran; this configuration runs none
    let mailbox = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Mailbox",
                         "metadata": {"name": "left", "namespace": h.ns.name,
                                      "finalizers": ["mpanel.migrahosting.com/cleanup"]},
                         "spec": {"address": format!("left@{}", h.zone("mail").trim_end_matches('.')), "quotaMiB": 10,
                                  "passwordSecretRef": {"name": "nothing", "key": "password"}}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&mailbox.to_string()))?;
    assert!(h.delete_and_wait_gone("mailbox", "left")?, "a Mailbox of a kind nobody reconciles stayed");
    let events = tb.kubectl_ok(
        &["get", "events.events.k8s.io", "-n", &h.ns.name, "--field-selector", "regarding.name=left", "-o", "json"],
        None,
    )?;
    assert!(events.contains("Orphaned") && events.contains("no Mailbox controller is configured"), "{events}");
    Ok(())
}
