//! DnsZones at scale against the testbed's real kube-apiserver and PowerDNS (run it with
//! `benches/dnszone-scale.sh`, which brings up a testbed of its own).
//!
//! 1. Baseline: this program makes, directly and with the same concurrency, the PowerDNS calls the
//!    operator needs per new zone (look up, create with its records, read back): the physical
//!    limit of PowerDNS here.
//! 2. The operator binary from cold: ZONES DnsZones of RECORDS records each are stored first, then
//!    the operator starts; the clock runs from its start until every one reports Ready (as the
//!    operator's own watch and its `mpanel_objects` metric see it).
//! 3. One idle resync of all of them (RESYNC seconds, default 300, the operator's own): PowerDNS
//!    writes during it (must be 0).
//!
//! Prints wall times, the ratio, the operator's peak RSS and the writes per idle resync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::powerdns::{self, DnsApi, NewZone, PowerDns, RrSet};
use mpanel_tests::Testbed;
use serde_json::{Value, json};

mod common;

use common::{env_usize, metric, metrics, peak_rss_mib};

const CONCURRENCY: usize = 32;

fn records(count: usize) -> Vec<(String, String)> {
    (0..count).map(|i| (format!("host{i}"), format!("192.0.2.{}", i % 250 + 1))).collect()
}

async fn baseline(pdns: &PowerDns, zones: usize, per_zone: usize, run: &str) -> anyhow::Result<Duration> {
    let names: Vec<String> = (0..zones).map(|i| format!("z{i}.{run}.baseline.")).collect();
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(names.iter().cloned())
        .map(|name| async move {
            pdns.zone(&name).await?;
            let rrsets = records(per_zone)
                .into_iter()
                .map(|(host, ip)| RrSet {
                    changetype: None,
                    ..RrSet::replace(format!("{host}.{name}"), "A", 3600, [ip])
                })
                .collect();
            pdns.create_zone(&NewZone {
                name: name.clone(),
                kind: "Native".into(),
                nameservers: vec!["ns1.migrahosting.com.".into(), "ns2.migrahosting.com.".into()],
                account: "baseline".into(),
                soa_edit_api: "DEFAULT".into(),
                rrsets,
            })
            .await?;
            pdns.zone(&name).await?;
            Ok(())
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    futures::stream::iter(names)
        .map(|name| async move { pdns.delete_zone(&name).await })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    Ok(took)
}

/// Where the cold start's time went, from the operator's own histograms: reconciles per zone and
/// how long one took, and per PowerDNS operation the calls per zone, their latency and the wait
/// for a turn under the client-side limits.
fn where_the_time_went(text: &str, zones: usize) {
    let mean = |name: &str, labels: &[&str]| {
        let count = metric(text, &format!("{name}_count"), labels);
        (count, if count > 0.0 { metric(text, &format!("{name}_sum"), labels) / count } else { 0.0 })
    };
    let (reconciles, took) = mean("mpanel_reconcile_duration_seconds", &["kind=\"DnsZone\""]);
    println!("reconciles per zone: {:.2}, each {:.0} ms on average", reconciles / zones as f64, took * 1000.0);
    for op in ["get_zone", "create_zone", "patch_rrsets"] {
        let label = format!("operation=\"{op}\"");
        let (calls, latency) = mean("mpanel_provider_call_duration_seconds", &["provider=\"powerdns\"", &label]);
        if calls == 0.0 {
            continue;
        }
        println!("  powerdns {op}: {:.2} per zone, {:.0} ms on average", calls / zones as f64, latency * 1000.0);
    }
    let (waits, wait) = mean("mpanel_provider_throttle_wait_seconds", &["provider=\"powerdns\""]);
    println!("  powerdns turns waited for: {waits}, {:.0} ms on average", wait * 1000.0);
}

fn main() -> anyhow::Result<()> {
    mpanel_operator::tls::install_crypto_provider();
    let zones = env_usize("ZONES", 1000);
    let per_zone = env_usize("RECORDS", 10);
    let tb = Testbed::from_env()?;
    let rt = tokio::runtime::Runtime::new()?;
    let pdns = PowerDns::new(
        powerdns::Config {
            api_url: tb.get("PDNS_API_URL")?.to_owned(),
            api_key: tb.get("PDNS_API_KEY")?.to_owned(),
            server_id: tb.get("PDNS_SERVER_ID")?.to_owned(),
            timeout: Duration::from_secs(30),
        },
        Arc::new(Metrics::default()),
    )?;
    let run = format!("r{}", std::process::id());
    println!("dnszone_scale: {zones} zones x {per_zone} records, concurrency {CONCURRENCY}");

    let base = rt.block_on(baseline(&pdns, zones, per_zone, &run))?;
    println!("baseline (direct PowerDNS calls): {:.2} s", base.as_secs_f64());

    // the operator, cold
    let ns = tb.namespace("bench")?;
    let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
    tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &ns.name, &key], None)?;
    // the operator's own default unless RESYNC says otherwise: with a short one the zones Ready
    // first are read again while the rest are still being made, and those reads share PowerDNS's
    // in-flight cap with the creations
    let resync = env_usize("RESYNC", 300) as u64;
    println!("operator resyncInterval: {resync} s");
    let config = std::env::temp_dir().join(format!("{}.yaml", ns.name));
    std::fs::write(
        &config,
        format!(
            "resyncInterval: {resync}s\nwatchNamespace: {n}\nleaderElection: {{namespace: {n}, leaseName: bench}}\npowerdns:\n  apiUrl: {u}\n  serverId: {s}\n  apiKeySecretRef: {{namespace: {n}, name: powerdns, key: api-key}}\n",
            n = ns.name,
            u = tb.get("PDNS_API_URL")?,
            s = tb.get("PDNS_SERVER_ID")?
        ),
    )?;
    let items: Vec<Value> = (0..zones)
        .map(|i| {
            let recs: Vec<Value> = records(per_zone).into_iter().map(|(h, ip)| json!({"name": h, "type": "A", "values": [ip]})).collect();
            json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
                   "metadata": {"name": format!("z{i}"), "namespace": ns.name},
                   "spec": {"zone": format!("z{i}.{run}.operator."), "nameservers": ["ns1.migrahosting.com", "ns2.migrahosting.com"], "records": recs}})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let applying = Instant::now();
    tb.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&list))?;
    let applied = applying.elapsed();
    println!("kubectl apply of {zones} DnsZones (operator not running): {:.2} s", applied.as_secs_f64());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut operator = std::process::Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
        .args(["run", "--config", &config.to_string_lossy(), "--health-addr", &addr])
        .env("KUBECONFIG", tb.get("KUBECONFIG")?)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = operator.id();
    let outcome = (|| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while metrics(&addr).is_err() {
            if Instant::now() > deadline {
                bail!("the operator did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // as the operator's watch sees them: a listing of every zone each time would load the API
        // server as much as the operator does
        let ready_zones = |t: &str| metric(t, "mpanel_objects", &["kind=\"DnsZone\"", "ready=\"true\""]);
        loop {
            let ready = ready_zones(&metrics(&addr)?) as usize;
            if ready == zones {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                bail!("only {ready} of {zones} Ready after 30 minutes");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let all_ready = started.elapsed();
        println!("operator, from its start to all Ready: {:.2} s", all_ready.as_secs_f64());
        println!("ratio operator / baseline: {:.2}", all_ready.as_secs_f64() / base.as_secs_f64());
        where_the_time_went(&metrics(&addr)?, zones);

        // one idle resync of every zone
        let text = metrics(&addr)?;
        let writes = |t: &str| metric(t, "mpanel_provider_calls_total", &["access=\"write\""]);
        let reconciles = |t: &str| metric(t, "mpanel_reconciles_total", &["kind=\"DnsZone\""]);
        let (w0, r0) = (writes(&text), reconciles(&text));
        let deadline = Instant::now() + Duration::from_secs(resync * 4);
        loop {
            let now = metrics(&addr)?;
            if reconciles(&now) >= r0 + zones as f64 {
                println!("writes during one idle resync of {zones} zones: {}", writes(&now) - w0);
                println!("PowerDNS writes while creating: {w0} ({:.2} per zone)", w0 / zones as f64);
                break;
            }
            if Instant::now() > deadline {
                bail!("no full resync within {}s", resync * 4);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        println!("operator peak RSS: {:.1} MiB", peak_rss_mib(pid)?);

        // clean up through the finalizers
        tb.kubectl_ok(&["delete", "dnszones", "--all", "-n", &ns.name, "--timeout=600s"], None)?;
        Ok(())
    })();
    let _ = operator.kill();
    let _ = operator.wait();
    let _ = std::fs::remove_file(&config);
    outcome
}
