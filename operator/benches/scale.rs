//! Every kind at scale against the testbed's real kube-apiserver and its peers (run it with
//! `benches/scale.sh`, which brings up a testbed of its own): PER_KIND DnsZones (PowerDNS),
//! Mailboxes (mail-core), CloudPods (fakepve) and Domains (the Namesilo double), and CERTIFICATES
//! Certificates (pebble, DNS-01 through the bench's zones), all stored before one operator process
//! with every controller starts.
//!
//! Prints one table, per kind: seconds from the operator's start until all of the kind are Ready at
//! their generation (as the operator's own watches count them, `mpanel_objects`), provider calls
//! per object until then, and over one full idle resync (every object reconciled once more, nothing
//! changed): writes and reads sent to the API server for the kind's resources and writes sent to
//! its provider. Then the operator's peak RSS, its CPU seconds and the Lease renewals it missed,
//! each beside its target.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpanel_tests::namesilo::Namesilo;
use mpanel_tests::{Testbed, full_stack};
use serde_json::{Value, json};

mod common;

use common::{env_usize, metric, metrics, peak_rss_mib};

/// Peak resident set size the operator must stay under, in MiB.
const RSS_TARGET_MIB: f64 = 150.0;
/// The operator's resync interval in seconds unless `RESYNC` says otherwise: its own default.
/// Every object's resync reads its provider, and those reads share the provider's rate limit with
/// the objects still being made: at 2,000 of a kind a 60 s resync alone asks more of Proxmox (20/s)
/// and mail-core (50/s) than their limits allow, and new objects stop getting through.
const DEFAULT_RESYNC: usize = 300;
/// The Lease's duration, in seconds: a renewal later than this after the last one is missed.
const LEASE_SECONDS: i64 = 15;
/// Verbs that change what the API server stores.
const WRITE_VERBS: [&str; 6] = ["create", "update", "patch", "apply", "delete", "deletecollection"];
/// Verbs that read one object or a list (watches are streams, not counted per resync).
const READ_VERBS: [&str; 2] = ["get", "list"];

/// One kind under test: its name in the metrics, its resource's plural, its provider, its count.
struct Kind {
    kind: &'static str,
    plural: &'static str,
    provider: &'static str,
    count: usize,
}

/// The API requests in `text`, by verb and resource.
fn api_requests(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("mpanel_api_requests_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let label = |key: &str| {
            labels.split(&format!("{key}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned()
        };
        *out.entry((label("verb"), label("resource"))).or_default() += value.parse::<f64>().unwrap_or_default();
    }
    out
}

/// The provider calls of `provider` in `text`, by operation.
fn provider_calls_by_operation(text: &str, provider: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let wanted = format!("provider=\"{provider}\"");
    for line in text.lines().filter(|l| l.starts_with("mpanel_provider_calls_total{") && l.contains(&wanted)) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let operation =
            labels.split("operation=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned();
        *out.entry(operation).or_default() += value.parse::<f64>().unwrap_or_default();
    }
    out
}

/// What a kind had cost when the last of its objects became Ready: seconds since the operator's
/// start, provider calls, reconciles, API writes to the kind's resources, provider calls by
/// operation.
struct AtReady {
    seconds: f64,
    calls: f64,
    reconciles: f64,
    api_writes: f64,
    by_operation: BTreeMap<String, f64>,
}

/// The requests of `verbs` on `plural` and its subresources between two readings of
/// [`api_requests`].
fn requests_between(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
    verbs: &[&str],
    resource: impl Fn(&str) -> bool,
) -> f64 {
    after
        .iter()
        .filter(|((verb, res), _)| verbs.contains(&verb.as_str()) && resource(res))
        .map(|(key, value)| value - before.get(key).copied().unwrap_or_default())
        .sum()
}

fn of_kind(plural: &str) -> impl Fn(&str) -> bool + '_ {
    move |res: &str| res == plural || res.strip_prefix(plural).is_some_and(|s| s.starts_with('/'))
}

/// User plus system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the fields after the command, which is in parentheses and may hold spaces
    let fields: Vec<&str> = stat.rsplit_once(')').context("no command in stat")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output()?;
    let per_second: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0);
    Ok(ticks / per_second)
}

/// Watches the Lease's `renewTime` until `stop`: the renewals seen, and those that came later than
/// the Lease's duration after the one before (the Lease had run out).
fn watch_lease(tb: &Testbed, ns: &str, lease: &str, stop: &AtomicBool) -> (usize, usize) {
    let (mut seen, mut late, mut last): (usize, usize, Option<jiff::Timestamp>) = (0, 0, None);
    while !stop.load(Ordering::Relaxed) {
        let renewed = tb
            .kubectl(&["get", "lease", lease, "-n", ns, "-o", "jsonpath={.spec.renewTime}"], None)
            .ok()
            .filter(|out| out.success)
            .and_then(|out| out.stdout.trim().parse::<jiff::Timestamp>().ok());
        if let Some(at) = renewed
            && last != Some(at)
        {
            if let Some(before) = last {
                seen += 1;
                if (at - before).get_seconds() > LEASE_SECONDS {
                    late += 1;
                }
            }
            last = Some(at);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    (seen, late)
}

/// The objects of every kind, as one List per kind.
fn objects(ns: &str, per_kind: usize, certificates: usize) -> Vec<(&'static str, Value)> {
    let meta = |name: String| json!({"name": name, "namespace": ns});
    let object = |kind: &str, name: String, spec: Value| json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": kind, "metadata": meta(name), "spec": spec});
    let zone = |i: usize| format!("z{i}-{ns}.com");
    let zones = (0..per_kind)
        .map(|i| {
            object(
                "DnsZone",
                format!("z{i}"),
                json!({"zone": format!("{}.", zone(i)), "nameservers": [format!("ns1.{ns}.net.")],
                "records": [{"name": "www", "type": "A", "values": [format!("192.0.2.{}", i % 250 + 1)]}]}),
            )
        })
        .collect::<Vec<_>>();
    let mailboxes = (0..per_kind)
        .map(|i| {
            object(
                "Mailbox",
                format!("m{i}"),
                json!({"address": format!("box{i}@{ns}.test"), "quotaMiB": 10,
                "passwordSecretRef": {"name": "box-password", "key": "password"}}),
            )
        })
        .collect::<Vec<_>>();
    let pods = (0..per_kind)
        .map(|i| {
            object("CloudPod", format!("p{i}"), json!({"plan": "mini", "type": "lxc", "template": "100", "hostname": format!("p{i}"),
                "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8},
                "network": {"bridge": "vmbr0", "ipv4": {"address": format!("10.{}.{}.{}/8", i / 62500, i / 250 % 250, i % 250 + 2), "gateway": "10.0.0.1"}}}))
        })
        .collect::<Vec<_>>();
    let domains = (0..per_kind)
        .map(|i| {
            object(
                "Domain",
                format!("d{i}"),
                json!({"name": format!("d{i}-{ns}.com"), "registration": {"mode": "Register"}}),
            )
        })
        .collect::<Vec<_>>();
    let certs = (0..certificates)
        .map(|i| {
            object(
                "Certificate",
                format!("c{i}"),
                json!({"dnsNames": [zone(i)], "secretName": format!("c{i}-tls"),
                "issuer": "letsencrypt", "deletionPolicy": "Delete"}),
            )
        })
        .collect::<Vec<_>>();
    [("DnsZone", zones), ("Mailbox", mailboxes), ("CloudPod", pods), ("Domain", domains), ("Certificate", certs)]
        .into_iter()
        .map(|(kind, items)| (kind, json!({"apiVersion": "v1", "kind": "List", "items": items})))
        .collect()
}

fn main() -> anyhow::Result<()> {
    mpanel_operator::tls::install_crypto_provider();
    let per_kind = env_usize("PER_KIND", 2000);
    let certificates = env_usize("CERTIFICATES", 50).min(per_kind);
    let resync = env_usize("RESYNC", DEFAULT_RESYNC) as u64;
    let kinds = [
        Kind { kind: "DnsZone", plural: "dnszones", provider: "powerdns", count: per_kind },
        Kind { kind: "Mailbox", plural: "mailboxes", provider: "mailcore", count: per_kind },
        Kind { kind: "CloudPod", plural: "cloudpods", provider: "proxmox", count: per_kind },
        Kind { kind: "Domain", plural: "domains", provider: "namesilo", count: per_kind },
        Kind { kind: "Certificate", plural: "certificates", provider: "acme", count: certificates },
    ];
    let tb = Testbed::from_env()?;
    let rt = tokio::runtime::Runtime::new()?;
    let ns = tb.namespace("scale")?;
    let n = ns.name.clone();
    // enough for every registration at the double's prices, raised through its control routes
    let balance = format!("{}.00", per_kind.max(1) * 1000);
    let account = rt.block_on(Namesilo::from_testbed(&tb)?.new_account(&balance))?;
    full_stack::provider_secrets(&tb, &n, account.key())?;
    tb.kubectl_ok(
        &["create", "secret", "generic", "box-password", "-n", &n, "--from-literal=password=Scale-bench-2026"],
        None,
    )?;
    let first = 600_000 + (std::process::id() % 1000) * 20_000;
    let scope = full_stack::Scope {
        watch: &n,
        home: &n,
        vmids: (first, first + per_kind as u32 + 10),
        network: "198.51.100",
        hosts: (100, 110),
    };
    let config = full_stack::config(&tb, &scope)?
        .replace("resyncInterval: 3s", &format!("resyncInterval: {resync}s"))
        .replace("leaseDurationSeconds: 4", &format!("leaseName: scale, leaseDurationSeconds: {LEASE_SECONDS}"))
        .replace("acme:\n", &format!("acme:\n  ordersPerRegisteredDomainPerWeek: {}\n", certificates + 10));
    let config_path = std::env::temp_dir().join(format!("{n}.yaml"));
    std::fs::write(&config_path, config)?;
    println!(
        "scale: {per_kind} each of DnsZone, Mailbox, CloudPod, Domain; {certificates} Certificates; resync {resync}s; load average {}",
        std::fs::read_to_string("/proc/loadavg")?.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    let applying = Instant::now();
    for (kind, list) in objects(&n, per_kind, certificates) {
        tb.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&list.to_string()))
            .with_context(|| format!("storing the {kind}s"))?;
    }
    println!("kubectl apply of every object (operator not running): {:.1} s", applying.elapsed().as_secs_f64());

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join(format!("{n}.operator.log"));
    let started = Instant::now();
    let mut operator = std::process::Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
        .args(["run", "--config", &config_path.to_string_lossy(), "--health-addr", &addr])
        .env("KUBECONFIG", tb.get("KUBECONFIG")?)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()?;
    let pid = operator.id();
    let stop_lease = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        let lease = s.spawn(|| watch_lease(&tb, &n, "scale", &stop_lease));
        let result = (|| -> anyhow::Result<()> {
            let deadline = Instant::now() + Duration::from_secs(60);
            while metrics(&addr).is_err() {
                if Instant::now() > deadline {
                    bail!("the operator did not start");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // cold start: until each kind is all Ready, as the operator's watches see it
            let mut ready_at: BTreeMap<&str, AtReady> = BTreeMap::new();
            let api_at_start = api_requests(&metrics(&addr)?);
            let mut last_progress = (Instant::now(), 0.0);
            while ready_at.len() < kinds.len() {
                let text = metrics(&addr)?;
                let mut total = 0.0;
                for k in &kinds {
                    let ready = metric(&text, "mpanel_objects", &[&format!("kind=\"{}\"", k.kind), "ready=\"true\""]);
                    total += ready;
                    if ready >= k.count as f64 && !ready_at.contains_key(k.kind) {
                        let calls =
                            metric(&text, "mpanel_provider_calls_total", &[&format!("provider=\"{}\"", k.provider)]);
                        let reconciles = metric(&text, "mpanel_reconciles_total", &[&format!("kind=\"{}\"", k.kind)]);
                        let api_writes =
                            requests_between(&api_at_start, &api_requests(&text), &WRITE_VERBS, of_kind(k.plural));
                        let by_operation = provider_calls_by_operation(&text, k.provider);
                        let at = AtReady {
                            seconds: started.elapsed().as_secs_f64(),
                            calls,
                            reconciles,
                            api_writes,
                            by_operation,
                        };
                        ready_at.insert(k.kind, at);
                    }
                }
                if total > last_progress.1 {
                    last_progress = (Instant::now(), total);
                }
                if last_progress.0.elapsed() > Duration::from_secs(600) {
                    let missing: Vec<_> = kinds
                        .iter()
                        .filter(|k| !ready_at.contains_key(k.kind))
                        .map(|k| {
                            let ready =
                                metric(&text, "mpanel_objects", &[&format!("kind=\"{}\"", k.kind), "ready=\"true\""]);
                            format!("{} {ready}/{}", k.kind, k.count)
                        })
                        .collect();
                    bail!("no progress for 10 minutes; not all Ready: {}", missing.join(", "));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            let all_ready = started.elapsed();

            // one full idle resync: every object reconciled once more
            let reconciles = |t: &str, kind: &str| metric(t, "mpanel_reconciles_total", &[&format!("kind=\"{kind}\"")]);
            let before = metrics(&addr)?;
            let idle_started = Instant::now();
            let deadline = idle_started + Duration::from_secs(resync * 4);
            let after = loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = metrics(&addr)?;
                let done = idle_started.elapsed() >= Duration::from_secs(resync)
                    && kinds.iter().all(|k| reconciles(&now, k.kind) >= reconciles(&before, k.kind) + k.count as f64);
                if done {
                    break now;
                }
                if Instant::now() > deadline {
                    bail!("no full resync of every kind within {} s", resync * 4);
                }
            };
            let idle = idle_started.elapsed();
            let (api0, api1) = (api_requests(&before), api_requests(&after));
            let provider_writes = |t: &str, p: &str| {
                metric(t, "mpanel_provider_calls_total", &[&format!("provider=\"{p}\""), "access=\"write\""])
            };

            println!();
            println!(
                "{:<12} {:>6} {:>16} {:>18} {:>22} {:>21} {:>21}",
                "kind",
                "N",
                "all Ready (s)",
                "provider",
                "provider calls/object",
                "API writes/idle resync",
                "API reads/idle resync"
            );
            let mut idle_writes_ok = true;
            for k in &kinds {
                let (ready_s, calls) = (ready_at[k.kind].seconds, ready_at[k.kind].calls);
                let writes = requests_between(&api0, &api1, &WRITE_VERBS, of_kind(k.plural));
                let reads = requests_between(&api0, &api1, &READ_VERBS, of_kind(k.plural));
                let pwrites = provider_writes(&after, k.provider) - provider_writes(&before, k.provider);
                idle_writes_ok &= writes == 0.0 && pwrites == 0.0;
                println!(
                    "{:<12} {:>6} {:>16.1} {:>18} {:>22.2} {:>21} {:>21}",
                    k.kind,
                    k.count,
                    ready_s,
                    k.provider,
                    calls / k.count.max(1) as f64,
                    format!("{writes} (+{pwrites} {})", k.provider),
                    reads
                );
            }
            println!();
            println!("cold start, per object until the kind was all Ready:");
            for k in &kinds {
                let at = &ready_at[k.kind];
                let per = |v: f64| v / k.count.max(1) as f64;
                let operations: Vec<String> =
                    at.by_operation.iter().map(|(op, v)| format!("{op} {:.2}", per(*v))).collect();
                println!(
                    "{:<12} reconciles {:.2}, API writes {:.2}, {} calls: {}",
                    k.kind,
                    per(at.reconciles),
                    per(at.api_writes),
                    k.provider,
                    operations.join(", ")
                );
            }
            for k in &kinds {
                let writes: Vec<String> = api1
                    .iter()
                    .filter(|((verb, res), _)| WRITE_VERBS.contains(&verb.as_str()) && of_kind(k.plural)(res))
                    .map(|((verb, res), v)| {
                        (verb, res, v - api0.get(&(verb.clone(), res.clone())).copied().unwrap_or_default())
                    })
                    .filter(|(_, _, d)| *d > 0.0)
                    .map(|(verb, res, d)| format!("{d} {verb} {res}"))
                    .collect();
                if !writes.is_empty() {
                    println!("{} writes over the idle resync: {}", k.kind, writes.join(", "));
                }
            }
            let others: BTreeMap<String, (f64, f64)> = api1
                .keys()
                .map(|(_, res)| res.clone())
                .filter(|res| !kinds.iter().any(|k| of_kind(k.plural)(res)))
                .map(|res| {
                    let w = requests_between(&api0, &api1, &WRITE_VERBS, |r| r == res);
                    let r = requests_between(&api0, &api1, &READ_VERBS, |r| r == res);
                    (res, (w, r))
                })
                .filter(|(_, (w, r))| *w + *r > 0.0)
                .collect();
            println!("other resources over the same idle resync (writes, reads): {others:?}");
            println!(
                "(powerdns calls include the Certificates' DNS-01 records; the idle resync took {:.0} s; all kinds Ready after {:.1} s)",
                idle.as_secs_f64(),
                all_ready.as_secs_f64()
            );
            let rss = peak_rss_mib(pid)?;
            let cpu = cpu_seconds(pid)?;
            stop_lease.store(true, Ordering::Relaxed);
            let (renewals, late) = lease.join().unwrap_or((0, usize::MAX));
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let failed = log.lines().filter(|l| l.contains("kube_lease_manager") || l.contains("LeaseManager")).count();
            println!();
            let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
            println!(
                "operator peak RSS: {rss:.1} MiB (target < {RSS_TARGET_MIB} MiB: {})",
                verdict(rss < RSS_TARGET_MIB)
            );
            println!("operator CPU: {cpu:.1} s user+system over {:.0} s", started.elapsed().as_secs_f64());
            println!("writes per idle resync, every kind (target 0): {}", verdict(idle_writes_ok));
            println!(
                "Lease renewals missed: {late} late (> {LEASE_SECONDS} s after the one before) of {renewals} seen, \
                 {failed} failures in the log (target 0: {})",
                verdict(late == 0 && failed == 0)
            );
            println!(
                "load average at the end: {}",
                std::fs::read_to_string("/proc/loadavg")?.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            );
            Ok(())
        })();
        stop_lease.store(true, Ordering::Relaxed);
        result
    });
    let _ = operator.kill();
    let _ = operator.wait();
    if outcome.is_err() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("operator log, last lines:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let _ = std::fs::remove_file(&config_path);
    let _ = std::fs::remove_file(&log_path);
    // the namespace stays: releasing the finalizers of every object, one kubectl each, would take
    // longer than the bench, and benches/scale.sh brings this testbed down
    std::mem::forget(ns);
    outcome
}
