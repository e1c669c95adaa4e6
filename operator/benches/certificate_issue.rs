//! Certificate apply-to-Ready time against the testbed's real kube-apiserver, PowerDNS and pebble
//! (validation on). Run it with `benches/certificate-issue.sh`, which brings up a testbed of its own.
//!
//! 1. One at a time: SEQUENTIAL Certificates (apex + wildcard each), each applied only after the
//!    previous one is Ready; the clock runs from `kubectl apply` until `kubectl wait` sees Ready.
//! 2. At once: CONCURRENT Certificates created together through the API (not `kubectl apply` of
//!    a list, which creates one object after another); the clock runs from the first create until
//!    all are Ready (the Certificates are listed every 100 ms). Also printed: each one's time from
//!    its create to Ready.
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
    for (provider, what) in [("acme", "ACME calls"), ("powerdns", "PowerDNS calls")] {
        let calls = |e| samples(e, "mpanel_provider_calls_total", &[("provider", provider)], "operation");
        let calls = delta(&calls(after), &calls(before));
        let took = |e| samples(e, "mpanel_provider_call_duration_seconds_sum", &[("provider", provider)], "operation");
        let took = delta(&took(after), &took(before));
        let total: f64 = calls.values().sum();
        println!("  the operator's {what}: {total} ({:.1} per Certificate)", per(total));
        for (operation, count) in &calls {
            let mean = took.get(operation).copied().unwrap_or(0.0) / count.max(1.0);
            println!("    {operation:<20} {count:>6} ({:.1} per Certificate, mean {mean:.3} s)", per(*count));
        }
    }
    let api = |e| samples(e, "mpanel_api_requests_total", &[], "verb");
    let api = delta(&api(after), &api(before));
    let total: f64 = api.values().sum();
    println!("  Kubernetes API requests: {total} ({:.1} per Certificate) {api:?}", per(total));
    let took = |e, part| {
        samples(e, &format!("mpanel_reconcile_duration_seconds_{part}"), &[("kind", "Certificate")], "kind")
            .values()
            .sum::<f64>()
    };
    let (sum, count) = (took(after, "sum") - took(before, "sum"), took(after, "count") - took(before, "count"));
    println!("  Certificate reconciles took {sum:.1} s in all (mean {:.3} s)", sum / count.max(1.0));
    for (provider, limit) in [("acme", "the ACME rate limit"), ("acme_new_nonce", "the newNonce pace")] {
        let wait = |e, part| {
            samples(e, &format!("mpanel_provider_throttle_wait_seconds_{part}"), &[("provider", provider)], "provider")
                .values()
                .sum::<f64>()
        };
        let (sum, count) = (wait(after, "sum") - wait(before, "sum"), wait(after, "count") - wait(before, "count"));
        println!("  waited under {limit}: {sum:.1} s in all over {count} turns (mean {:.3} s)", sum / count.max(1.0));
    }
    let reconciles = |e| samples(e, "mpanel_reconciles_total", &[("kind", "Certificate")], "result");
    let reconciles = delta(&reconciles(after), &reconciles(before));
    let errors = |e| samples(e, "mpanel_reconcile_errors_total", &[("kind", "Certificate")], "reason");
    let errors = delta(&errors(after), &errors(before));
    let total: f64 = reconciles.values().sum();
    println!("  Certificate reconciles: {total} ({:.1} per Certificate) {reconciles:?}; errors {errors:?}", per(total));
}

/// The batch applied at once: how long creating took, until all were Ready, and each one's time
/// from its creation to Ready.
struct AtOnce {
    created: Duration,
    took: Duration,
    ready_after: Vec<Duration>,
}

/// Creates `n` Certificates together through the API (kubectl applies a list one object after
/// another, which spread a batch of 100 over many seconds on a busy machine), then lists them every
/// 100 ms until all are Ready or `WAIT_SECONDS` passed (kubectl wait reads one object after another
/// too). The clock starts before the first create.
fn all_at_once(tb: &Testbed, ns: &str, zone: &str, n: usize) -> anyhow::Result<AtOnce> {
    use kube::api::{Api, ListParams, PostParams};
    use mpanel_crds::certificate::Certificate;
    mpanel_operator::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(tb.get("KUBECONFIG")?)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let api: Api<Certificate> = Api::namespaced(kube::Client::try_from(config)?, ns);
        let certs: Vec<Certificate> = (0..n)
            .map(|i| serde_json::from_value(certificate(ns, &format!("c{i}"), &format!("c{i}.{zone}"))))
            .collect::<Result<_, _>>()?;
        let started = Instant::now();
        let creates = certs.iter().map(|c| {
            let api = &api;
            async move { api.create(&PostParams::default(), c).await.map(|_| Instant::now()) }
        });
        let created_at: Vec<Instant> = futures::future::try_join_all(creates).await?;
        let created = started.elapsed();
        let deadline = started + Duration::from_secs(env_usize("WAIT_SECONDS", 120) as u64);
        let mut ready_at: BTreeMap<String, Instant> = BTreeMap::new();
        while ready_at.len() < n && Instant::now() < deadline {
            for c in api.list(&ListParams::default()).await?.items {
                let name = c.metadata.name.clone().unwrap_or_default();
                let ready = c.status.as_ref().is_some_and(|s| {
                    mpanel_crds::conditions::find(&s.conditions, "Ready").is_some_and(|r| r.status == "True")
                });
                if ready && name.starts_with('c') {
                    ready_at.entry(name).or_insert_with(Instant::now);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = ready_at.values().max().map_or(started.elapsed(), |last| *last - started);
        let ready_after = (0..n).filter_map(|i| ready_at.get(&format!("c{i}")).map(|at| *at - created_at[i])).collect();
        Ok(AtOnce { created, took, ready_after })
    })
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

        let pebble_log = tb.get("ACME_LOG")?.to_owned();
        let (log_from, metrics_before) = (log_len(&pebble_log), scrape(port)?);
        let at_once = all_at_once(&tb, &ns.name, &zone, concurrent)?;
        let took = at_once.took.as_secs_f64();
        let requests = pebble_requests(&pebble_log, log_from);
        let metrics_after = scrape(port)?;
        let mut times = at_once.ready_after.clone();
        times.sort();
        if times.len() < concurrent {
            println!("{concurrent} Certificates applied at once: {} Ready after {took:.2} s", times.len());
            breakdown(concurrent, &requests, &metrics_before, &metrics_after);
            bail!("not every Certificate was Ready within {} s", env_usize("WAIT_SECONDS", 120));
        }
        println!(
            "{concurrent} Certificates applied at once (created together through the API in {:.2} s), all Ready: {took:.2} s",
            at_once.created.as_secs_f64()
        );
        if let (Some(min), Some(max)) = (times.first(), times.last()) {
            println!(
                "  each one, created to Ready: min {:.2} s, median {:.2} s, p95 {:.2} s, max {:.2} s",
                min.as_secs_f64(),
                percentile(&times, 0.5).as_secs_f64(),
                percentile(&times, 0.95).as_secs_f64(),
                max.as_secs_f64()
            );
        }
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
