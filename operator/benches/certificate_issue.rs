//! Certificate apply-to-Ready time against the testbed's real kube-apiserver, PowerDNS and pebble
//! (validation on). Run it with `benches/certificate-issue.sh`, which brings up a testbed of its own.
//!
//! 1. One at a time: SEQUENTIAL Certificates (apex + wildcard each), each applied only after the
//!    previous one is Ready; the clock runs from `kubectl apply` until `kubectl wait` sees Ready.
//! 2. At once: CONCURRENT Certificates applied together; the clock runs until all are Ready.
//!
//! Prints min, median, p95 and max of the single times, and the wall time of the batch; then where
//! the batch's time went: the HTTP requests pebble received by endpoint (its log), the operator's
//! ACME calls by operation, the time they waited under the client-side rate limit, and the
//! Certificate reconciles (its `/metrics`). `WAIT_SECONDS` (default 120) bounds the wait for Ready.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpanel_tests::Testbed;
use serde_json::json;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn certificate(ns: &str, name: &str, host: &str) -> serde_json::Value {
    json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Certificate",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"dnsNames": [host, format!("*.{host}")], "secretName": format!("{name}-tls"), "issuer": "pebble"}})
}

fn wait_ready(tb: &Testbed, ns: &str, what: &[&str]) -> anyhow::Result<()> {
    let timeout = format!("--timeout={}s", env_usize("WAIT_SECONDS", 120));
    let mut args = vec!["wait", "--for=condition=Ready", &timeout, "-n", ns];
    args.extend_from_slice(what);
    tb.kubectl_ok(&args, None).map(drop)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The operator's `/metrics` exposition.
fn scrape(port: u16) -> anyhow::Result<String> {
    let out = std::process::Command::new("curl")
        .args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!("reading /metrics: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The samples of `name` (a counter or histogram part) by the value of `label`, for `provider`/`kind`
/// filters given in `having`.
fn samples(exposition: &str, name: &str, having: &[(&str, &str)], label: &str) -> BTreeMap<String, f64> {
    let mut by = BTreeMap::new();
    for line in exposition.lines().filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' '])) {
        if !having.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))) {
            continue;
        }
        let key = line.split(&format!("{label}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned();
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *by.entry(key).or_default() += value;
    }
    by
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Requests pebble logged after byte `from` of its log, by method and first path segment.
fn pebble_requests(log: &str, from: usize) -> BTreeMap<String, usize> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
    let mut by = BTreeMap::new();
    for line in text.lines().filter(|l| l.ends_with("-> calling handler()")) {
        let mut words = line.split_whitespace().skip(3);
        let (Some(method), Some(path)) = (words.next(), words.next()) else { continue };
        let segment = path.trim_start_matches('/').split('/').next().unwrap_or("");
        *by.entry(format!("{method} /{segment}")).or_default() += 1;
    }
    by
}

fn log_len(log: &str) -> usize {
    std::fs::metadata(log).map(|m| m.len() as usize).unwrap_or(0)
}

/// Where the batch's time went, from pebble's log and the operator's metrics.
fn breakdown(n: usize, requests: &BTreeMap<String, usize>, before: &str, after: &str) {
    let per = |v: f64| v / n.max(1) as f64;
    let total: usize = requests.values().sum();
    println!("  ACME HTTP requests at pebble: {total} ({:.1} per Certificate)", per(total as f64));
    for (endpoint, count) in requests {
        println!("    {endpoint:<20} {count:>6} ({:.1} per Certificate)", per(*count as f64));
    }
    let calls = |e| samples(e, "mpanel_provider_calls_total", &[("provider", "acme")], "operation");
    let calls = delta(&calls(after), &calls(before));
    let total: f64 = calls.values().sum();
    println!("  the operator's ACME calls (each one throttle turn): {total} ({:.1} per Certificate)", per(total));
    for (operation, count) in &calls {
        println!("    {operation:<20} {count:>6} ({:.1} per Certificate)", per(*count));
    }
    let wait = |e, part| {
        samples(e, &format!("mpanel_provider_throttle_wait_seconds_{part}"), &[("provider", "acme")], "provider")
            .values()
            .sum::<f64>()
    };
    let (sum, count) = (wait(after, "sum") - wait(before, "sum"), wait(after, "count") - wait(before, "count"));
    println!(
        "  waited under the ACME rate limit: {sum:.1} s in all over {count} turns (mean {:.3} s)",
        sum / count.max(1.0)
    );
    let reconciles = |e| samples(e, "mpanel_reconciles_total", &[("kind", "Certificate")], "result");
    let reconciles = delta(&reconciles(after), &reconciles(before));
    let errors = |e| samples(e, "mpanel_reconcile_errors_total", &[("kind", "Certificate")], "reason");
    let errors = delta(&errors(after), &errors(before));
    let total: f64 = reconciles.values().sum();
    println!("  Certificate reconciles: {total} ({:.1} per Certificate) {reconciles:?}; errors {errors:?}", per(total));
}

fn main() -> anyhow::Result<()> {
    let sequential = env_usize("SEQUENTIAL", 20);
    let concurrent = env_usize("CONCURRENT", 20);
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("bench-cert")?;
    let zone = format!("{}.test", ns.name);
    let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
    tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &ns.name, &key], None)?;
    let config = std::env::temp_dir().join(format!("{}.yaml", ns.name));
    std::fs::write(
        &config,
        format!(
            "resyncInterval: 5m\nwatchNamespace: {n}\nleaderElection: {{namespace: {n}, leaseName: bench}}\n\
             powerdns:\n  apiUrl: {u}\n  serverId: {s}\n  dnsAddress: {d}\n  apiKeySecretRef: {{namespace: {n}, name: powerdns, key: api-key}}\n\
             acme:\n  ordersPerRegisteredDomainPerWeek: 1000\n  issuers:\n    pebble:\n      directoryUrl: {dir}\n      caBundle: {ca}\n      accountSecretRef: {{namespace: {n}, name: acme-account}}\n",
            n = ns.name,
            u = tb.get("PDNS_API_URL")?,
            s = tb.get("PDNS_SERVER_ID")?,
            d = tb.get("PDNS_DNS_ADDR")?,
            dir = tb.get("ACME_DIRECTORY")?,
            ca = tb.get("ACME_CA_BUNDLE")?,
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut operator = std::process::Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
        .args(["run", "--config", &config.to_string_lossy(), "--health-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", Path::new(tb.get("KUBECONFIG")?))
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .stdout(std::process::Stdio::null())
        // OPERATOR_LOG=<file> keeps the operator's log (RUST_LOG, default warn)
        .stderr(match std::env::var_os("OPERATOR_LOG") {
            Some(path) => std::fs::File::create(path).context("creating OPERATOR_LOG")?.into(),
            None => std::process::Stdio::null(),
        })
        .spawn()
        .context("starting the operator")?;
    let outcome = (|| -> anyhow::Result<()> {
        let zone_spec = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
            "metadata": {"name": "zone", "namespace": ns.name},
            "spec": {"zone": zone, "nameservers": ["ns1.migrahosting.com"], "records": []}});
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&zone_spec.to_string()))?;
        wait_ready(&tb, &ns.name, &["dnszone/zone"])?;
        // the first Certificate also registers the ACME account: timed on its own
        let started = Instant::now();
        tb.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&certificate(&ns.name, "first", &format!("first.{zone}")).to_string()),
        )?;
        wait_ready(&tb, &ns.name, &["certificate/first"])?;
        println!("first Certificate (registers the ACME account): {:.2} s", started.elapsed().as_secs_f64());

        let mut times = Vec::with_capacity(sequential);
        for i in 0..sequential {
            let name = format!("s{i}");
            let manifest = certificate(&ns.name, &name, &format!("{name}.{zone}")).to_string();
            let started = Instant::now();
            tb.kubectl_ok(&["apply", "-f", "-"], Some(&manifest))?;
            wait_ready(&tb, &ns.name, &[&format!("certificate/{name}")])?;
            times.push(started.elapsed());
        }
        times.sort();
        if let (Some(min), Some(max)) = (times.first(), times.last()) {
            println!(
                "one at a time, {sequential} Certificates (apex + wildcard), apply to Ready: min {:.2} s, median {:.2} s, p95 {:.2} s, max {:.2} s",
                min.as_secs_f64(),
                percentile(&times, 0.5).as_secs_f64(),
                percentile(&times, 0.95).as_secs_f64(),
                max.as_secs_f64()
            );
        }

        let items: Vec<_> =
            (0..concurrent).map(|i| certificate(&ns.name, &format!("c{i}"), &format!("c{i}.{zone}"))).collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        let names: Vec<String> = (0..concurrent).map(|i| format!("certificate/c{i}")).collect();
        let pebble_log = tb.get("ACME_LOG")?.to_owned();
        let (log_from, metrics_before) = (log_len(&pebble_log), scrape(port)?);
        let started = Instant::now();
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&list))?;
        let waited = wait_ready(&tb, &ns.name, &names.iter().map(String::as_str).collect::<Vec<_>>());
        let took = started.elapsed().as_secs_f64();
        let requests = pebble_requests(&pebble_log, log_from);
        let metrics_after = scrape(port)?;
        if let Err(e) = waited {
            let ready = tb.kubectl_ok(
                &[
                    "get",
                    "certificates",
                    "-n",
                    &ns.name,
                    "-o",
                    r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
                ],
                None,
            )?;
            let ready = ready.lines().filter(|l| *l == "True").count().saturating_sub(sequential + 1);
            println!("{concurrent} Certificates applied at once: {ready} Ready after {took:.2} s");
            breakdown(concurrent, &requests, &metrics_before, &metrics_after);
            return Err(e);
        }
        println!("{concurrent} Certificates applied at once, all Ready: {took:.2} s");
        breakdown(concurrent, &requests, &metrics_before, &metrics_after);

        let txt = tb.dig(&format!("_acme-challenge.c0.{zone}"), "TXT")?;
        if !txt.answers.is_empty() {
            bail!("challenge records left behind: {:?}", txt.answers);
        }
        tb.kubectl_ok(&["delete", "certificates,dnszones", "--all", "-n", &ns.name, "--timeout=120s"], None)?;
        Ok(())
    })();
    let _ = operator.kill();
    let _ = operator.wait();
    let _ = std::fs::remove_file(&config);
    outcome
}
