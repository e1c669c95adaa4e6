//! One watch per kind for the whole operator: with every controller running, each kind the
//! controllers follow is watched once, however many controllers follow it, as the requests the
//! operator sends to the API server show (`mpanel_api_requests_total`, counted in the client).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mpanel_tests::namesilo::Namesilo;
use mpanel_tests::{Testbed, full_stack};
use serde_json::json;
use support::Operator;

const WAIT: Duration = Duration::from_secs(120);

/// The kinds the operator with every controller follows, by the resource its requests name.
const FOLLOWED: [&str; 9] = [
    "backuppolicies",
    "certificates",
    "cloudpodrestores",
    "cloudpods",
    "dnszones",
    "domains",
    "mailboxes",
    "secrets",
    "subscriptions",
];

/// How long one watch request lasts before the client opens the next (the watcher's default
/// `timeoutSeconds`): a test that ran longer may see a second request of a kind, and that is still
/// one watch.
const WATCH_TIMEOUT: Duration = Duration::from_secs(290);

/// The watch requests sent so far, by resource.
fn watches(metrics: &str) -> BTreeMap<String, u64> {
    let mut by_resource = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("mpanel_api_requests_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        if !labels.contains("verb=\"watch\"") {
            continue;
        }
        let resource = labels.split("resource=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
        let count = value.parse::<f64>().unwrap_or_default() as u64;
        *by_resource.entry(resource.to_owned()).or_default() += count;
    }
    by_resource
}

#[test]
fn every_followed_kind_is_watched_once_by_the_whole_operator() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let rt = tokio::runtime::Runtime::new()?;
    let ns = tb.namespace("shared-watches")?;
    let account = rt.block_on(Namesilo::from_testbed(&tb)?.new_account("100.00"))?;
    full_stack::provider_secrets(&tb, &ns.name, account.key())?;
    let password = "--from-literal=password=Shared-watch-2026";
    tb.kubectl_ok(&["create", "secret", "generic", "admin-password", "-n", &ns.name, password], None)?;
    let first = 400_000 + (std::process::id() % 100_000) * 10;
    let scope = full_stack::Scope {
        watch: &ns.name,
        home: &ns.name,
        vmids: (first, first + 9),
        network: "198.51.100",
        hosts: (40, 49),
    };
    let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
    std::fs::write(&config, full_stack::config(&tb, &scope)?)?;
    let started = Instant::now();
    let op = Operator::start_ready(Path::new(tb.get("KUBECONFIG")?), &config)?;

    // one object of each kind, through a Subscription: every controller reconciles
    let (d, n) = (format!("{}.com", ns.name), ns.name.clone());
    let spec = json!({
        "customer": {"id": "acme", "email": "billing@acme.example"},
        "product": "business-hosting",
        "billing": {"state": "Paid", "paidUntil": "2027-06-30"},
        "resources": {
            "cloudPods": [{"name": "app", "spec": {"plan": "mini", "type": "lxc", "template": "100", "hostname": "app",
                "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8},
                "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.78/24", "gateway": "203.0.113.1"}}}}],
            "domains": [{"name": "site", "spec": {"name": d, "registration": {"mode": "Register"}}}],
            "dnsZones": [{"name": "zone", "spec": {"zone": format!("{d}."), "nameservers": [format!("ns1.{n}.net.")],
                "records": [{"name": "@", "type": "A", "cloudPodRef": {"name": "app"}}],
                "mail": {"mx": [{"host": format!("mail.{d}."), "priority": 10}]}}}],
            "mailboxes": [{"name": "admin", "spec": {"address": format!("admin@{d}"), "quotaMiB": 10,
                "passwordSecretRef": {"name": "admin-password", "key": "password"}}}],
            "certificates": [{"name": "tls", "spec": {"dnsNames": [d], "secretName": "site-tls",
                "issuer": "letsencrypt", "deletionPolicy": "Delete"}}]
        }
    });
    support::apply_object(&tb, &n, "Subscription", "hosting", spec)?;
    let active = support::wait_object(&tb, &n, "subscription", "hosting", "became Active", WAIT, |s| {
        s["status"]["phase"] == "Active"
    })?;
    let metrics = op.metrics()?;
    let ran = started.elapsed();
    let watched = watches(&metrics);
    eprintln!("watch requests by resource after {ran:?}: {watched:?}");

    // what the controllers did: every child Ready, so each kind was reconciled
    let resources = active["status"]["resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(resources.len(), 5, "{resources:?}");
    assert!(resources.iter().all(|r| r["ready"] == true), "{resources:?}");
    let dns_record = tb.dig(&d, "A")?.answers;
    assert_eq!(dns_record, ["203.0.113.78"], "the zone is served and follows the CloudPod");

    // one watch of each followed kind, and nothing else watched
    let most = 1 + ran.as_secs() / WATCH_TIMEOUT.as_secs();
    let kinds: Vec<&str> = watched.keys().map(String::as_str).collect();
    assert_eq!(kinds, FOLLOWED, "the kinds the operator watches: {watched:?}");
    for (resource, count) in &watched {
        assert!(
            *count >= 1 && *count <= most,
            "{resource} was watched {count} times in {ran:?} (one watch: at most {most} requests): {watched:?}"
        );
    }

    // the children go with the Subscription before the operator stops
    let deleted = tb.kubectl(&["delete", "subscription", "hosting", "-n", &n, "--timeout=90s"], None)?;
    assert!(deleted.success, "{}", deleted.stderr);
    let stopped = op.stop()?;
    assert!(stopped.success, "{}", stopped.logs);
    let _ = std::fs::remove_file(&config);
    Ok(())
}
