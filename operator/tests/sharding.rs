//! Sharding: two operators, each with a namespace selector and a Lease of its own, split the
//! namespaces between them. Each brings the DnsZones of its own namespaces to Ready (its Events,
//! its metrics), a namespace neither selector picks is left alone (no status, nothing in
//! PowerDNS), and relabelling a namespace hands its objects from one shard to the other while both
//! run. Real kube-apiserver and PowerDNS.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Operator, eventually, get_object, metric_sum, wait_condition};

const WAIT: Duration = Duration::from_secs(60);
const LABEL: &str = "mpanel.migrahosting.com/shard";

/// One shard's operator process and the name it goes by in its Lease and Events.
struct Shard {
    op: Operator,
    identity: String,
}

impl Shard {
    /// Starts an operator with only PowerDNS, reconciling the namespaces labelled `LABEL=value`,
    /// its Lease in `home` named by default (so derived from the selector).
    fn start(tb: &Testbed, home: &str, value: &str) -> anyhow::Result<(Self, PathBuf)> {
        let identity = format!("shard-{value}");
        let config = std::env::temp_dir().join(format!("{identity}.operator.yaml"));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 2s\nshard: {{namespaceSelector: \"{LABEL}={value}\"}}\n\
                 leaderElection: {{namespace: {home}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  apiKeySecretRef: {{namespace: {home}, name: powerdns, key: api-key}}\n",
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
            ),
        )?;
        let args = ["--config", &config.to_string_lossy(), "--identity", &identity];
        let mut op = Operator::start(Path::new(tb.get("KUBECONFIG")?), &args)?;
        anyhow::ensure!(op.wait_ready(Duration::from_secs(30))?, "{identity} not ready: {}", op.stop()?.logs);
        Ok((Self { op, identity }, config))
    }

    /// The DnsZones this process's watches hold (its shard's), from its metrics.
    fn zones_held(&self) -> anyhow::Result<f64> {
        Ok(metric_sum(&self.op.metrics()?, "mpanel_objects", &[("kind", "DnsZone")]))
    }

    fn reconciles(&self) -> anyhow::Result<f64> {
        Ok(metric_sum(&self.op.metrics()?, "mpanel_reconciles_total", &[("kind", "DnsZone")]))
    }
}

fn zone_name(ns: &str) -> String {
    format!("{ns}.mpanel-e2e.")
}

fn apply_zone(tb: &Testbed, ns: &str, address: &str) -> anyhow::Result<()> {
    let obj = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
                     "metadata": {"name": "zone", "namespace": ns},
                     "spec": {"zone": zone_name(ns), "nameservers": ["ns1.migrahosting.com"],
                              "records": [{"name": "www", "type": "A", "values": [address]}]}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&obj.to_string())).map(drop)
}

/// Who reported creating the zone of `ns` in PowerDNS: the reporting instances of its Events.
fn creators(tb: &Testbed, ns: &str) -> anyhow::Result<Vec<String>> {
    let events: Value =
        serde_json::from_str(&tb.kubectl_ok(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"], None)?)?;
    let mut who: Vec<String> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == "zone" && e["action"] == "CreateZone")
        .filter_map(|e| e["reportingInstance"].as_str().map(str::to_owned))
        .collect();
    who.sort();
    who.dedup();
    Ok(who)
}

fn label(tb: &Testbed, ns: &str, value: &str) -> anyhow::Result<()> {
    tb.kubectl_ok(&["label", "namespace", ns, &format!("{LABEL}={value}"), "--overwrite"], None).map(drop)
}

#[test]
fn two_shards_reconcile_their_own_namespaces_and_a_relabelled_namespace_changes_hands() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    // the Leases and the PowerDNS key live here; the label values are unique to this run
    let home = tb.namespace("shard-home")?;
    let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
    tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &home.name, &key], None)?;
    let (a, b) = (format!("a.{}", home.name), format!("b.{}", home.name));
    let (ns_a, ns_b, ns_none) = (tb.namespace("shard-a")?, tb.namespace("shard-b")?, tb.namespace("shard-none")?);
    label(&tb, &ns_a.name, &a)?;
    label(&tb, &ns_b.name, &b)?;

    let (shard_a, config_a) = Shard::start(&tb, &home.name, &a)?;
    let (shard_b, config_b) = Shard::start(&tb, &home.name, &b)?;
    let outcome = run(&tb, &home.name, (&ns_a.name, &ns_b.name, &ns_none.name), &b, (&shard_a, &shard_b));

    // clean up while shard b (which holds both labelled namespaces by now) still runs, so their
    // PowerDNS zones go with the DnsZones
    for ns in [&ns_a.name, &ns_b.name, &ns_none.name] {
        let _ = tb.kubectl(&["delete", "dnszone", "zone", "-n", ns, "--timeout=60s"], None);
    }
    let (stopped_a, stopped_b) = (shard_a.op.stop()?, shard_b.op.stop()?);
    let _ = std::fs::remove_file(config_a);
    let _ = std::fs::remove_file(config_b);
    if let Err(e) = outcome {
        anyhow::bail!("{e:#}\n--- shard a:\n{}\n--- shard b:\n{}", stopped_a.logs, stopped_b.logs);
    }
    assert!(stopped_a.success && stopped_b.success, "both stop cleanly:\n{}\n{}", stopped_a.logs, stopped_b.logs);
    Ok(())
}

fn run(
    tb: &Testbed,
    home: &str,
    (ns_a, ns_b, ns_none): (&str, &str, &str),
    b: &str,
    (shard_a, shard_b): (&Shard, &Shard),
) -> anyhow::Result<()> {
    // each shard holds a Lease of its own, named after its selector
    let held = eventually(WAIT, || {
        let leases: Value = serde_json::from_str(&tb.kubectl_ok(&["get", "leases", "-n", home, "-o", "json"], None)?)?;
        let mut holders: Vec<(String, String)> = leases["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let name = l["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                (l["spec"]["holderIdentity"].as_str().unwrap_or_default().to_owned(), name)
            })
            .collect();
        holders.sort();
        Ok(holders.len() == 2
            && holders[0].0 == shard_a.identity
            && holders[1].0 == shard_b.identity
            && holders[0].1 != holders[1].1)
    })?;
    anyhow::ensure!(held, "the two shards do not each hold a Lease of their own in {home}");

    for ns in [ns_a, ns_b, ns_none] {
        apply_zone(tb, ns, "192.0.2.61")?;
    }
    for ns in [ns_a, ns_b] {
        wait_condition(tb, ns, "dnszone", "zone", ("Ready", "True", None), WAIT)?;
        assert_eq!(tb.dig(&format!("www.{}", zone_name(ns)), "A")?.answers, ["192.0.2.61"], "{ns} is served");
    }
    assert_eq!(creators(tb, ns_a)?, [shard_a.identity.as_str()], "shard a created the zone of its namespace");
    assert_eq!(creators(tb, ns_b)?, [shard_b.identity.as_str()], "shard b created the zone of its namespace");
    assert_eq!((shard_a.zones_held()?, shard_b.zones_held()?), (1.0, 1.0), "each holds its own namespace's zone");

    // the unlabelled namespace: both had several resyncs by now, and neither touched it
    std::thread::sleep(Duration::from_secs(5));
    let untouched = get_object(tb, ns_none, "dnszone", "zone")?;
    assert!(untouched["status"].is_null(), "no shard writes a status there: {:#}", untouched["status"]);
    assert!(untouched["metadata"]["finalizers"].is_null(), "nor a finalizer: {:#}", untouched["metadata"]);
    let none_served = tb.dig(&format!("www.{}", zone_name(ns_none)), "A")?;
    assert!(none_served.rcode != "NOERROR" && none_served.answers.is_empty(), "not in PowerDNS: {none_served:?}");
    assert!(creators(tb, ns_none)?.is_empty());

    // namespace a moves to shard b: a lets go of it, b takes it up, while both run
    label(tb, ns_a, b)?;
    let moved = eventually(WAIT, || Ok(shard_a.zones_held()? == 0.0 && shard_b.zones_held()? == 2.0))?;
    anyhow::ensure!(
        moved,
        "the zone did not change hands: a holds {}, b holds {}",
        shard_a.zones_held()?,
        shard_b.zones_held()?
    );
    // a reconcile of shard a still under way when it let go may finish; nothing after it
    std::thread::sleep(Duration::from_secs(3));
    let a_before = shard_a.reconciles()?;
    let b_before = shard_b.reconciles()?;
    apply_zone(tb, ns_a, "192.0.2.62")?;
    wait_condition(tb, ns_a, "dnszone", "zone", ("Ready", "True", None), WAIT)?;
    let served = eventually(WAIT, || Ok(tb.dig(&format!("www.{}", zone_name(ns_a)), "A")?.answers == ["192.0.2.62"]))?;
    anyhow::ensure!(served, "the change made after the move was not served");
    // a few resync periods more: shard b keeps reconciling both zones, shard a none
    std::thread::sleep(Duration::from_secs(6));
    assert!(shard_b.reconciles()? > b_before, "shard b reconciles the moved zone");
    assert_eq!(shard_a.reconciles()?, a_before, "shard a reconciles nothing once its namespace moved");
    assert!(get_object(tb, ns_a, "dnszone", "zone")?["metadata"]["deletionTimestamp"].is_null());
    Ok(())
}
