//! Certificate apply-to-Ready time against the testbed's real kube-apiserver, PowerDNS and pebble
//! (validation on). Run it with `benches/certificate-issue.sh`, which brings up a testbed of its own.
//!
//! 1. One at a time: SEQUENTIAL Certificates (apex + wildcard each), each applied only after the
//!    previous one is Ready; the clock runs from `kubectl apply` until `kubectl wait` sees Ready.
//! 2. At once: CONCURRENT Certificates applied together; the clock runs until all are Ready.
//!
//! Prints min, median, p95 and max of the single times, and the wall time of the batch.

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
    let mut args = vec!["wait", "--for=condition=Ready", "--timeout=120s", "-n", ns];
    args.extend_from_slice(what);
    tb.kubectl_ok(&args, None).map(drop)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
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
        let started = Instant::now();
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&list))?;
        wait_ready(&tb, &ns.name, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
        println!("{concurrent} Certificates applied at once, all Ready: {:.2} s", started.elapsed().as_secs_f64());

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
