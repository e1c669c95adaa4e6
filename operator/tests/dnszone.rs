//! The DnsZone controller end to end: a real kube-apiserver, the operator binary, a real PowerDNS,
//! and what its DNS listener answers.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::powerdns::{self, DnsApi, NewZone, PowerDns, RrSet};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{AwaitBlocking, Operator, eventually, metric_sum};

/// Resync interval the tests configure: drift is repaired within this.
const RESYNC: Duration = Duration::from_secs(2);
const LEASE_SECONDS: u64 = 4;
const WAIT: Duration = Duration::from_secs(60);

/// A namespace of its own, the PowerDNS key in a Secret there, and an operator config that
/// reconciles only that namespace.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
    pdns: PowerDns,
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let key = tb.get("PDNS_API_KEY")?;
        tb.kubectl_ok(
            &["create", "secret", "generic", "powerdns", "-n", &ns.name, &format!("--from-literal=api-key={key}")],
            None,
        )?;
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: {}s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseName: mpanel-operator, leaseDurationSeconds: {LEASE_SECONDS}}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n",
                RESYNC.as_secs(),
                ns = ns.name,
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
            ),
        )?;
        let pdns = PowerDns::new(
            powerdns::Config {
                api_url: tb.get("PDNS_API_URL")?.to_owned(),
                api_key: key.to_owned(),
                server_id: tb.get("PDNS_SERVER_ID")?.to_owned(),
                timeout: Duration::from_secs(10),
            },
            Arc::new(Metrics::default()),
        )?;
        Ok(Self { tb, ns, config, pdns })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    /// A zone name no other test uses (with the trailing dot).
    fn zone_name(&self) -> String {
        format!("{}.mpanel-e2e.", self.ns.name)
    }

    fn apply(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, "DnsZone", name, spec)
    }

    fn get(&self, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, "dnszone", name)
    }

    /// Waits until condition `type_` is `status` at the object's current generation.
    fn wait_condition(&self, name: &str, type_: &str, status: &str) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, "dnszone", name, (type_, status, None), WAIT)
    }

    fn condition(obj: &Value, type_: &str) -> Value {
        support::condition(obj, type_)
    }

    /// Waits until the DNS listener answers `want` for `name`/`rtype` (sorted), or NXDOMAIN for `None`.
    fn wait_served(&self, name: &str, rtype: &str, want: Option<&[&str]>) -> anyhow::Result<()> {
        let mut last = None;
        let met = eventually(WAIT, || {
            let answer = self.tb.dig(name, rtype)?;
            let mut got = answer.answers.clone();
            got.sort();
            let ok = match want {
                Some(want) => answer.rcode == "NOERROR" && got == want,
                None => answer.rcode == "NXDOMAIN",
            };
            last = Some(answer);
            Ok(ok)
        })?;
        if !met {
            bail!("{name} {rtype}: wanted {want:?}, PowerDNS answers {last:?}");
        }
        Ok(())
    }

    fn writes(op: &Operator) -> anyhow::Result<f64> {
        Ok(metric_sum(&op.metrics()?, "mpanel_provider_calls_total", &[("provider", "powerdns"), ("access", "write")]))
    }

    fn delete(&self, name: &str) -> anyhow::Result<()> {
        self.tb.kubectl_ok(&["delete", "dnszone", name, "-n", &self.ns.name, "--timeout=60s"], None).map(drop)
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn spec(zone: &str, records: Value) -> Value {
    json!({"zone": zone, "nameservers": ["ns1.migrahosting.com", "ns2.migrahosting.com"], "records": records,
           "soa": {"hostmaster": "dns.admin@migrahosting.com", "minimum": 300},
           "mail": {"mx": [{"host": "mail.migrahosting.com", "priority": 10}], "spf": "v=spf1 mx -all"}})
}

#[test]
fn records_are_served_changed_and_removed_under_sync_and_kept_under_upsert_only() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-records")?;
    let op = h.operator()?;
    let zone = h.zone_name();
    let records = json!([
        {"name": "@", "type": "A", "ttl": 300, "values": ["192.0.2.1"]},
        {"name": "www", "type": "CNAME", "values": [zone]},
        {"name": "v6", "type": "AAAA", "values": ["2001:DB8::1"]},
        {"name": "_sip._tcp", "type": "SRV", "values": ["10 5 5060 sip.example.net"]},
        {"name": "@", "type": "CAA", "values": ["0 issue letsencrypt.org"]},
        {"name": "old", "type": "TXT", "values": ["hello world"]},
    ]);
    h.apply("zone", spec(&zone, records))?;
    let ready = h.wait_condition("zone", "Ready", "True")?;
    assert_eq!(ready["status"]["phase"], "Ready");
    assert_eq!(ready["status"]["records"], 9, "6 records, the apex NS, MX and TXT (SPF) rrsets");

    h.wait_served(&zone, "A", Some(&["192.0.2.1"]))?;
    h.wait_served(&format!("www.{zone}"), "CNAME", Some(&[&zone]))?;
    h.wait_served(&format!("v6.{zone}"), "AAAA", Some(&["2001:db8::1"]))?;
    h.wait_served(&format!("_sip._tcp.{zone}"), "SRV", Some(&["10 5 5060 sip.example.net."]))?;
    h.wait_served(&zone, "CAA", Some(&["0 issue \"letsencrypt.org\""]))?;
    h.wait_served(&zone, "MX", Some(&["10 mail.migrahosting.com."]))?;
    h.wait_served(&zone, "TXT", Some(&["\"v=spf1 mx -all\""]))?;
    h.wait_served(&format!("old.{zone}"), "TXT", Some(&["\"hello world\""]))?;
    let soa = tb.dig(&zone, "SOA")?.answers.join(" ");
    assert!(soa.starts_with("ns1.migrahosting.com. dns\\.admin.migrahosting.com. "), "SOA served: {soa}");
    assert!(soa.ends_with(" 300"), "SOA minimum: {soa}");

    // change a record: the answer changes
    let changed = json!([
        {"name": "@", "type": "A", "ttl": 300, "values": ["192.0.2.2", "192.0.2.3"]},
        {"name": "www", "type": "CNAME", "values": [zone]},
        {"name": "v6", "type": "AAAA", "values": ["2001:DB8::1"]},
        {"name": "_sip._tcp", "type": "SRV", "values": ["10 5 5060 sip.example.net"]},
        {"name": "@", "type": "CAA", "values": ["0 issue letsencrypt.org"]},
    ]);
    h.apply("zone", spec(&zone, changed.clone()))?;
    h.wait_served(&zone, "A", Some(&["192.0.2.2", "192.0.2.3"]))?;
    // removed from the spec under Sync: gone
    h.wait_served(&format!("old.{zone}"), "TXT", None)?;

    // under UpsertOnly a removed record stays
    let mut upsert = spec(&zone, json!([{"name": "@", "type": "A", "ttl": 300, "values": ["192.0.2.2", "192.0.2.3"]}]));
    upsert["policy"] = json!("UpsertOnly");
    h.apply("zone", upsert)?;
    h.wait_condition("zone", "Ready", "True")?;
    h.wait_served(&format!("www.{zone}"), "CNAME", Some(&[&zone]))?;
    h.wait_served(&format!("v6.{zone}"), "AAAA", Some(&["2001:db8::1"]))?;

    h.delete("zone")?;
    op.stop()?;
    Ok(())
}

#[test]
fn out_of_band_edit_is_repaired_within_one_resync_counted_and_an_idle_resync_writes_nothing() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-drift")?;
    let op = h.operator()?;
    let zone = h.zone_name();
    h.apply("zone", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.10"]}])))?;
    h.wait_condition("zone", "Ready", "True")?;
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.10"]))?;

    // idle: several resyncs pass (counted by the reconcile metric) without a single write
    let metrics = op.metrics()?;
    let writes_before = Harness::writes(&op)?;
    let reconciles_before = metric_sum(&metrics, "mpanel_reconciles_total", &[("kind", "DnsZone")]);
    let resynced = eventually(RESYNC * 10, || {
        Ok(metric_sum(&op.metrics()?, "mpanel_reconciles_total", &[("kind", "DnsZone")]) >= reconciles_before + 3.0)
    })?;
    assert!(resynced, "fewer than 3 resyncs ran within {:?}", RESYNC * 10);
    assert_eq!(Harness::writes(&op)?, writes_before, "an idle resync wrote to PowerDNS:\n{}", op.metrics()?);

    // someone edits the zone behind the operator's back
    let repairs_before = metric_sum(&op.metrics()?, "mpanel_drift_repairs_total", &[("kind", "DnsZone")]);
    h.pdns
        .patch_rrsets(
            &zone,
            &[
                RrSet::replace(format!("www.{zone}"), "A", 3600, ["198.51.100.66".to_owned()]),
                RrSet::replace(format!("intruder.{zone}"), "A", 3600, ["198.51.100.67".to_owned()]),
            ],
        )
        .await_blocking()?;
    h.wait_served(&format!("www.{zone}"), "A", Some(&["198.51.100.66"]))?;
    let started = std::time::Instant::now();
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.10"]))?;
    h.wait_served(&format!("intruder.{zone}"), "A", None)?;
    assert!(started.elapsed() < RESYNC * 3, "repair took {:?} with a resync of {RESYNC:?}", started.elapsed());
    let repaired = eventually(Duration::from_secs(10), || {
        Ok(metric_sum(&op.metrics()?, "mpanel_drift_repairs_total", &[("kind", "DnsZone")]) > repairs_before)
    })?;
    assert!(repaired, "the repair is not in the metric:\n{}", op.metrics()?);

    h.delete("zone")?;
    op.stop()?;
    Ok(())
}

#[test]
fn a_foreign_zone_is_a_conflict_and_stays_byte_for_byte_unchanged() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-conflict")?;
    let zone = h.zone_name();
    h.pdns
        .create_zone(&NewZone {
            name: zone.clone(),
            kind: "Native".to_owned(),
            nameservers: vec!["ns.elsewhere.example.".to_owned()],
            account: "someone-else".to_owned(),
            soa_edit_api: "DEFAULT".to_owned(),
            rrsets: vec![RrSet {
                changetype: None,
                ..RrSet::replace(format!("www.{zone}"), "A", 60, ["198.51.100.1".to_owned()])
            }],
        })
        .await_blocking()?;
    let before = h.pdns.zone(&zone).await_blocking()?;

    let op = h.operator()?;
    h.apply("zone", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.1"]}])))?;
    let obj = h.wait_condition("zone", "Conflict", "True")?;
    assert_eq!(Harness::condition(&obj, "Ready")["status"], "False");
    assert_eq!(obj["status"]["phase"], "Conflict");
    let message = Harness::condition(&obj, "Conflict")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("is not this object's"), "{message}");
    assert!(!message.contains("someone-else"), "the foreign account (another object's UID) is not shown: {message}");
    let events = tb.kubectl_ok(
        &["get", "events", "-n", &h.ns.name, "--field-selector", "involvedObject.name=zone", "-o", "json"],
        None,
    )?;
    assert!(events.contains("\"Conflict\""), "no Conflict Event: {events}");

    // a few resyncs later the zone is exactly as its owner left it
    let metrics_at = op.metrics()?;
    let r0 = metric_sum(&metrics_at, "mpanel_reconciles_total", &[("kind", "DnsZone")]);
    eventually(RESYNC * 5, || {
        Ok(metric_sum(&op.metrics()?, "mpanel_reconciles_total", &[("kind", "DnsZone")]) >= r0 + 2.0)
    })?;
    assert_eq!(h.pdns.zone(&zone).await_blocking()?, before, "the foreign zone was modified");
    assert_eq!(Harness::writes(&op)?, 0.0, "the operator wrote to PowerDNS");

    // deleting the DnsZone leaves the foreign zone alone too
    h.delete("zone")?;
    assert_eq!(h.pdns.zone(&zone).await_blocking()?, before);
    h.pdns.delete_zone(&zone).await_blocking()?;
    op.stop()?;
    Ok(())
}

#[test]
fn content_powerdns_refuses_shows_its_message_and_a_fixed_spec_recovers_without_deleting_anything() -> anyhow::Result<()>
{
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-refused")?;
    let op = h.operator()?;
    let zone = h.zone_name();
    let good = json!({"name": "www", "type": "A", "values": ["192.0.2.1"]});
    h.apply("zone", spec(&zone, json!([good])))?;
    h.wait_condition("zone", "Ready", "True")?;

    h.apply("zone", spec(&zone, json!([good, {"name": "bad", "type": "A", "values": ["999.1.1.1"]}])))?;
    let failed = h.wait_condition("zone", "Ready", "False")?;
    let message = Harness::condition(&failed, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("999.1.1.1"), "PowerDNS's own message is not in the condition: {message}");
    assert_eq!(Harness::condition(&failed, "Ready")["reason"], "PowerDnsRejected");
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.1"]))?;

    h.apply("zone", spec(&zone, json!([good, {"name": "bad", "type": "A", "values": ["192.0.2.99"]}])))?;
    h.wait_condition("zone", "Ready", "True")?;
    h.wait_served(&format!("bad.{zone}"), "A", Some(&["192.0.2.99"]))?;
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.1"]))?;

    h.delete("zone")?;
    op.stop()?;
    Ok(())
}

#[test]
fn delete_removes_the_zone_and_orphan_keeps_it() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-delete")?;
    let op = h.operator()?;
    let deleted = format!("del-{}", h.zone_name());
    let kept = format!("keep-{}", h.zone_name());
    h.apply("deleted", spec(&deleted, json!([])))?;
    let mut orphan = spec(&kept, json!([]));
    orphan["deletionPolicy"] = json!("Orphan");
    h.apply("kept", orphan)?;
    h.wait_condition("deleted", "Ready", "True")?;
    h.wait_condition("kept", "Ready", "True")?;

    h.delete("deleted")?;
    h.delete("kept")?;
    assert_eq!(h.pdns.zone(&deleted).await_blocking()?, None, "Delete left the zone in PowerDNS");
    assert_eq!(tb.dig(&deleted, "SOA")?.rcode, "REFUSED");
    assert!(h.pdns.zone(&kept).await_blocking()?.is_some(), "Orphan removed the zone");
    assert_eq!(tb.dig(&kept, "SOA")?.rcode, "NOERROR");
    h.pdns.delete_zone(&kept).await_blocking()?;
    op.stop()?;
    Ok(())
}

#[test]
fn only_the_leader_writes_and_a_standby_takes_over_within_the_lease_time() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-leader")?;
    let first = h.operator()?;
    let second = h.operator()?;
    let zone = h.zone_name();
    h.apply("zone", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.1"]}])))?;
    h.wait_condition("zone", "Ready", "True")?;

    let (w1, w2) = (Harness::writes(&first)?, Harness::writes(&second)?);
    let (leader, standby) = match (w1 > 0.0, w2 > 0.0) {
        (true, false) => (first, second),
        (false, true) => (second, first),
        _ => bail!("exactly one replica must have written: {w1} and {w2} writes"),
    };
    let reconciled =
        |op: &Operator| -> anyhow::Result<f64> { Ok(metric_sum(&op.metrics()?, "mpanel_reconciles_total", &[])) };
    assert_eq!(reconciled(&standby)?, 0.0, "the standby reconciled");

    // the leader dies without releasing the Lease; the standby takes over once it expires
    leader.kill();
    let killed = std::time::Instant::now();
    h.apply("zone", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.2"]}])))?;
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.2"]))?;
    let took = killed.elapsed();
    eprintln!("takeover after the leader was killed: {took:?} (lease {LEASE_SECONDS} s)");
    // the dead leader's last renewal is at most a lease old: the standby must hold the Lease and have
    // written within it, plus a margin for one reconcile on a loaded machine
    assert!(took < Duration::from_secs(LEASE_SECONDS + 3), "takeover took {took:?} with a {LEASE_SECONDS} s lease");
    assert!(Harness::writes(&standby)? > 0.0, "the new leader made no write");

    h.delete("zone")?;
    standby.stop()?;
    Ok(())
}

#[test]
fn records_that_follow_a_cloud_pod_wait_for_its_address_then_track_it() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-cloudpod")?;
    let op = h.operator()?;
    let zone = h.zone_name();
    let mut pod = mpanel_tests::example_of("CloudPod")?;
    pod = mpanel_tests::manifest::place(pod, &h.ns.name, "web");
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&pod.to_string()))?;
    h.apply("zone", spec(&zone, json!([{"name": "app", "type": "A", "cloudPodRef": {"name": "web"}}])))?;
    let waiting = h.wait_condition("zone", "Ready", "False")?;
    assert_eq!(Harness::condition(&waiting, "Ready")["reason"], "WaitingForCloudPod", "{}", waiting["status"]);

    let set_ip = |ip: &str| {
        let body = json!({"status": {"ipAddress": ip}}).to_string();
        tb.kubectl_ok(
            &["patch", "cloudpod", "web", "-n", &h.ns.name, "--subresource=status", "--type=merge", "-p", &body],
            None,
        )
    };
    set_ip("203.0.113.50")?;
    h.wait_served(&format!("app.{zone}"), "A", Some(&["203.0.113.50"]))?;
    h.wait_condition("zone", "Ready", "True")?;
    set_ip("203.0.113.51")?;
    h.wait_served(&format!("app.{zone}"), "A", Some(&["203.0.113.51"]))?;

    h.delete("zone")?;
    op.stop()?;
    Ok(())
}

#[test]
fn observe_only_reports_differences_without_writing_and_paused_is_left_alone() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-modes")?;
    let op = h.operator()?;
    let annotate = |name: &str, mode: &str| {
        tb.kubectl_ok(
            &[
                "annotate",
                "--overwrite",
                "dnszone",
                name,
                "-n",
                &h.ns.name,
                &format!("mpanel.migrahosting.com/reconcile-mode={mode}"),
            ],
            None,
        )
    };

    // ObserveOnly on a zone that does not exist: reported, not created
    let observed = format!("observed-{}", h.zone_name());
    let obj = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "observed", "namespace": h.ns.name, "annotations": {"mpanel.migrahosting.com/reconcile-mode": "ObserveOnly"}},
        "spec": spec(&observed, json!([{"name": "www", "type": "A", "values": ["192.0.2.1"]}]))});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&obj.to_string()))?;
    let missing = h.wait_condition("observed", "Ready", "False")?;
    assert_eq!(Harness::condition(&missing, "Ready")["reason"], "ZoneMissing", "{}", missing["status"]);
    assert_eq!(h.pdns.zone(&observed).await_blocking()?, None, "ObserveOnly created the zone");

    // a managed zone switched to ObserveOnly: an out-of-band edit is reported, not repaired
    let zone = h.zone_name();
    h.apply("managed", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.1"]}])))?;
    h.wait_condition("managed", "Ready", "True")?;
    annotate("managed", "ObserveOnly")?;
    let writes = Harness::writes(&op)?;
    h.pdns
        .patch_rrsets(&zone, &[RrSet::replace(format!("www.{zone}"), "A", 3600, ["198.51.100.5".to_owned()])])
        .await_blocking()?;
    let drifted = eventually(WAIT, || {
        let obj = h.get("managed")?;
        Ok(Harness::condition(&obj, "Programmed")["reason"] == "OutOfSync")
    })?;
    assert!(drifted, "ObserveOnly did not report the difference: {}", h.get("managed")?["status"]);
    assert_eq!(tb.dig(&format!("www.{zone}"), "A")?.answers, ["198.51.100.5"], "ObserveOnly repaired the zone");
    assert_eq!(Harness::writes(&op)?, writes, "ObserveOnly wrote to PowerDNS");

    // Paused: even a spec change is not acted on; back to Reconcile repairs everything
    annotate("managed", "Paused")?;
    h.apply("managed", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.2"]}])))?;
    let r0 = metric_sum(&op.metrics()?, "mpanel_reconciles_total", &[("kind", "DnsZone")]);
    eventually(RESYNC * 3, || {
        Ok(metric_sum(&op.metrics()?, "mpanel_reconciles_total", &[("kind", "DnsZone")]) >= r0 + 2.0)
    })?;
    assert_eq!(tb.dig(&format!("www.{zone}"), "A")?.answers, ["198.51.100.5"], "Paused acted on the spec");
    annotate("managed", "Reconcile")?;
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.2"]))?;

    // a value that is not a mode is reported, and nothing is acted on
    annotate("managed", "Sometimes")?;
    let invalid = support::wait_object(&tb, &h.ns.name, "dnszone", "managed", "reported the bad mode", WAIT, |z| {
        Harness::condition(z, "Ready")["reason"] == "InvalidReconcileMode"
    })?;
    assert!(Harness::condition(&invalid, "Ready")["message"].as_str().unwrap_or_default().contains("Sometimes"));
    annotate("managed", "Reconcile")?;

    h.delete("managed")?;
    annotate("observed", "Reconcile")?;
    h.delete("observed")?;
    op.stop()?;
    Ok(())
}

#[test]
fn a_zone_for_a_public_suffix_is_refused_and_never_reaches_powerdns() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dz-suffix")?;
    let op = h.operator()?;
    // held, co.uk would take every name under it that no namespace claimed yet
    h.apply("suffix", spec("co.uk", json!([{"name": "www", "type": "A", "values": ["192.0.2.1"]}])))?;
    let obj =
        support::wait_condition(&tb, &h.ns.name, "dnszone", "suffix", ("Ready", "False", Some("PublicSuffix")), WAIT)?;
    assert_eq!(obj["status"]["phase"], "Failed");
    let message = Harness::condition(&obj, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("co.uk is a public suffix"), "{message}");
    // the failure is terminal: kstatus users (Flux, kubectl wait) see it at once
    assert_eq!(Harness::condition(&obj, "Stalled")["reason"], "PublicSuffix");
    let waited =
        tb.kubectl(&["wait", "--for=condition=Stalled", "dnszone/suffix", "-n", &h.ns.name, "--timeout=10s"], None)?;
    assert!(waited.success, "{}", waited.stderr);
    assert_eq!(h.pdns.zone("co.uk.").await_blocking()?, None, "a public suffix reached PowerDNS");
    assert_eq!(Harness::writes(&op)?, 0.0, "the operator wrote to PowerDNS");

    // a registered domain under another suffix is still served
    let zone = h.zone_name();
    h.apply("zone", spec(&zone, json!([{"name": "www", "type": "A", "values": ["192.0.2.1"]}])))?;
    h.wait_condition("zone", "Ready", "True")?;
    h.wait_served(&format!("www.{zone}"), "A", Some(&["192.0.2.1"]))?;
    op.stop()?;
    Ok(())
}
