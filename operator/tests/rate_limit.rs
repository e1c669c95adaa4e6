//! The client-side limits end to end: a burst of 200 Domains applied at once against a Namesilo
//! double of this test's own (the testbed's double, served here so that it can note when each
//! request arrived), with the operator configured for 20 requests/s and 2 in flight. Measured at
//! the double: every Domain becomes Ready (the burst was queued, nothing refused), no one-second
//! window holds more than 20 requests (+2, see `WINDOW_TOLERANCE`), and never more than 2 are
//! in flight, while the double holds its first requests until 2 are inside (so the cap is reached
//! on every run, see `OVERLAP_HOLD`). And the chart passes each provider block's `rateLimit` on to
//! the operator.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use mpanel_operator::config::{Config, PROXMOX_LIMITS};
use mpanel_operator::providers::throttle::Limits;
use mpanel_tests::namesilo::double::{self, Money};
use mpanel_tests::{Testbed, repo_root};
use serde_json::{Value, json};
use support::{Operator, condition, metric_sum};

const DOMAINS: usize = 200;
const RATE: usize = 20;
const IN_FLIGHT: usize = 2;
/// Requests leave the operator at least 1/20 s apart, so a one-second window holds at most 20 of
/// them as they leave. On their way (the operator's scheduler, loopback, the double's) a request
/// can be held back a moment and land in the same window as the ones after it: two such late
/// arrivals are tolerated. A bucket that let a burst through at once would put up to the whole
/// burst in one window.
const WINDOW_TOLERANCE: usize = 2;
/// How long the double takes to answer. Short, so that the cap alone would let far more than
/// `RATE` requests a second through: the one-second windows show the rate limit, not the cap.
const ANSWER_TAKES: Duration = Duration::from_millis(30);
/// Requests leave the operator 1/20 s apart and are answered in 30 ms, so two of them are inside
/// the double together only by chance. The first requests are therefore held together: each waits
/// until `IN_FLIGHT` are inside (at most `OVERLAP_WAIT`), then all of them stay `OVERLAP_HOLD`
/// longer, in which the rate would let several more leave the operator. With the cap none of them
/// comes in; without it they would be inside too and `most_inside` would exceed the cap.
const OVERLAP_WAIT: Duration = Duration::from_secs(5);
const OVERLAP_HOLD: Duration = Duration::from_millis(400);

/// When each API request reached the double, and how many were in it at once.
#[derive(Default)]
struct Arrivals {
    at: Mutex<Vec<Instant>>,
    inside: AtomicUsize,
    most_inside: AtomicUsize,
    /// Set once the first requests were held together (see `OVERLAP_HOLD`).
    overlapped: AtomicBool,
}

async fn note_arrival(State(arrivals): State<Arc<Arrivals>>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    arrivals.at.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
    let inside = arrivals.inside.fetch_add(1, Ordering::SeqCst) + 1;
    arrivals.most_inside.fetch_max(inside, Ordering::SeqCst);
    if !arrivals.overlapped.load(Ordering::SeqCst) {
        let since = Instant::now();
        while arrivals.inside.load(Ordering::SeqCst) < IN_FLIGHT
            && !arrivals.overlapped.load(Ordering::SeqCst)
            && since.elapsed() < OVERLAP_WAIT
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(OVERLAP_HOLD).await;
        arrivals.overlapped.store(true, Ordering::SeqCst);
    }
    tokio::time::sleep(ANSWER_TAKES).await;
    let response = next.run(request).await;
    arrivals.inside.fetch_sub(1, Ordering::SeqCst);
    response
}

/// Serves a Namesilo double with one account (`key`) on loopback; returns its API URL.
fn serve_double(rt: &tokio::runtime::Runtime, key: &str, arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let config = double::Config {
        key: key.to_owned(),
        balance: Money::parse("100000.00").map_err(|e| anyhow::anyhow!("{e:?}"))?,
        transfer_delay: Duration::from_secs(2),
    };
    let app = double::app(&config).layer(middleware::from_fn_with_state(arrivals, note_arrival));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/api", listener.local_addr()?);
    rt.spawn(async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    Ok(url)
}

/// The most arrivals in any one-second window `[t, t + 1 s)`, with the window's start.
fn busiest_second(arrivals: &[Instant]) -> (usize, Duration) {
    let first = arrivals.first().copied().unwrap_or_else(Instant::now);
    arrivals
        .iter()
        .enumerate()
        .map(|(i, t)| (arrivals[i..].iter().take_while(|u| **u < *t + Duration::from_secs(1)).count(), *t - first))
        .max_by_key(|(n, _)| *n)
        .unwrap_or_default()
}

#[test]
fn a_burst_of_200_domains_is_queued_within_the_configured_rate_and_in_flight_cap() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let rt = tokio::runtime::Runtime::new()?;
    let arrivals = Arc::new(Arrivals::default());
    let key = format!("ratelimit{}", std::process::id());
    let api_url = serve_double(&rt, &key, arrivals.clone())?;

    let ns = tb.namespace("ratelimit")?;
    tb.kubectl_ok(
        &["create", "secret", "generic", "namesilo", "-n", &ns.name, &format!("--from-literal=api-key={key}")],
        None,
    )?;
    let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
    std::fs::write(
        &config,
        format!(
            "resyncInterval: 10m\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
             namesilo:\n  apiUrl: {api_url}\n  apiKeySecretRef: {{namespace: {ns}, name: namesilo, key: api-key}}\n\
             \x20 nameservers: [ns1.{ns}.net, ns2.{ns}.net]\n\
             \x20 rateLimit: {{requestsPerSecond: {RATE}, maxInFlight: {IN_FLIGHT}}}\n",
            ns = ns.name,
        ),
    )?;
    let op = Operator::start_ready(Path::new(tb.get("KUBECONFIG")?), &config)?;

    // all 200 in one apply: they reach the operator's watch together
    let items: Vec<Value> = (0..DOMAINS)
        .map(|i| {
            json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Domain",
                   "metadata": {"name": format!("d{i}"), "namespace": ns.name},
                   "spec": {"name": format!("d{i}-{}.com", ns.name), "registration": {"mode": "Register", "years": 1}}})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&list.to_string()))?;

    let deadline = Instant::now() + Duration::from_secs(300);
    let mut ready = 0;
    // a listing of 200 objects every 2 s, not every 100 ms: the machine is the operator's too
    while ready < DOMAINS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let out = tb.kubectl_ok(&["get", "domains", "-n", &ns.name, "-o", "json"], None)?;
        let domains: Value = serde_json::from_str(&out)?;
        ready = domains["items"]
            .as_array()
            .context("a list")?
            .iter()
            .filter(|d| condition(d, "Ready")["status"] == "True")
            .count();
    }
    let all_ready = ready == DOMAINS;
    let metrics = op.metrics()?;
    let _ = std::fs::remove_file(&config);
    anyhow::ensure!(all_ready, "{ready} of {DOMAINS} Domains became Ready");

    let mut at = arrivals.at.lock().unwrap_or_else(|e| e.into_inner()).clone();
    at.sort();
    let (n, from) = busiest_second(&at);
    let took = at.last().zip(at.first()).map(|(l, f)| *l - *f).unwrap_or_default();
    println!("{} requests at the double over {took:?}; busiest second: {n} from {from:?}", at.len());
    assert!(at.len() >= DOMAINS * 2, "each Domain made its calls: {} requests", at.len());
    assert!(n <= RATE + WINDOW_TOLERANCE, "{n} requests reached the double in the second from {from:?}");
    let most_inside = arrivals.most_inside.load(Ordering::SeqCst);
    assert!(most_inside <= IN_FLIGHT, "{most_inside} requests were in the double at once");
    assert_eq!(most_inside, IN_FLIGHT, "the first requests were held until the cap's worth were inside");
    // the limit held the burst back: the operator's requests waited for their turns
    let waited = metric_sum(&metrics, "mpanel_provider_throttle_wait_seconds_sum", &[("provider", "namesilo")]);
    assert!(waited > 10.0, "the requests waited {waited} s in all for their turns");
    Ok(())
}

#[test]
fn the_chart_passes_each_providers_rate_limit_to_the_operator() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let values = std::env::temp_dir().join(format!("rate-limit-{}.values.yaml", std::process::id()));
    std::fs::write(
        &values,
        "config:\n\
         \x20 powerdns: {apiUrl: 'http://pdns', apiKeySecret: {name: pdns}, dnsAddress: '127.0.0.1:53', rateLimit: {maxInFlight: 8}}\n\
         \x20 acme: {issuers: {le: {directoryUrl: 'https://ca/dir'}}, rateLimit: {requestsPerSecond: 2, maxInFlight: 1}}\n\
         \x20 mailcore: {databaseUrlSecret: {name: mailcore}, rateLimit: {requestsPerSecond: 7}}\n\
         \x20 proxmox: {url: 'https://pve', tokenSecret: {name: pve}, vmidRange: {first: 100, last: 200}}\n\
         \x20 namesilo: {apiKeySecret: {name: namesilo}, nameservers: [a.example, b.example], rateLimit: {requestsPerSecond: 0.5, maxInFlight: 2}}\n",
    )?;
    let out = std::process::Command::new(tb.get("HELM")?)
        .args(["template", "t", &repo_root().join("charts/mpanel").to_string_lossy(), "--namespace", "mpanel-system"])
        .args(["--show-only", "templates/configmap.yaml", "-f", &values.to_string_lossy()])
        .output()?;
    let _ = std::fs::remove_file(&values);
    anyhow::ensure!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let configmap: Value = serde_saphyr::from_str(&String::from_utf8(out.stdout)?)?;
    let text = configmap["data"]["operator.yaml"].as_str().context("operator.yaml in the ConfigMap")?;
    let config = Config::parse(text).map_err(anyhow::Error::msg)?;

    let limits = |l: Limits| (l.requests_per_second, l.max_in_flight);
    let pdns = config.powerdns.context("powerdns")?.rate_limit;
    assert_eq!(pdns.max_in_flight, Some(8));
    assert_eq!(pdns.requests_per_second, None, "left out: the operator's default");
    assert_eq!(config.acme.context("acme")?.rate_limit.requests_per_second, Some(2.0));
    assert_eq!(config.mailcore.context("mailcore")?.rate_limit.requests_per_second, Some(7.0));
    let proxmox = config.proxmox.context("proxmox")?.rate_limit;
    assert_eq!(limits(proxmox.or(PROXMOX_LIMITS)), limits(PROXMOX_LIMITS), "no rateLimit: the defaults");
    let namesilo = config.namesilo.context("namesilo")?.rate_limit;
    assert_eq!((namesilo.requests_per_second, namesilo.max_in_flight), (Some(0.5), Some(2)));
    Ok(())
}

/// Every request to every external system goes through that system's limits: with each kind
/// brought to Ready, each provider's throttle was passed exactly as often as the provider was
/// called.
#[test]
fn every_providers_requests_go_through_its_throttle() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("throttled")?;
    let secret = |name: &str, literal: String| {
        tb.kubectl_ok(
            &["create", "secret", "generic", name, "-n", &ns.name, &format!("--from-literal={literal}")],
            None,
        )
    };
    secret("powerdns", format!("api-key={}", tb.get("PDNS_API_KEY")?))?;
    secret("mailcore", format!("url={}", tb.get("MAILCORE_DATABASE_URL")?))?;
    secret("proxmox", format!("token={}", tb.get("PROXMOX_TOKEN")?))?;
    let account = tokio::runtime::Runtime::new()?
        .block_on(mpanel_tests::namesilo::Namesilo::from_testbed(&tb)?.new_account("50.00"))?;
    secret("namesilo", format!("api-key={}", account.key()))?;
    secret("box-password", "password=Throttled-2026".to_owned())?;
    // VMIDs no other test file gives out
    let first = 20_000_000 + (std::process::id() % 100_000) * 10;
    let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
    std::fs::write(
        &config,
        format!(
            "resyncInterval: 10m\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
             powerdns:\n  apiUrl: {pdns}\n  serverId: {sid}\n  dnsAddress: {dns}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n\
             \x20 rateLimit: {{requestsPerSecond: 50}}\n\
             acme:\n  issuers:\n    pebble:\n      directoryUrl: {dir}\n      caBundle: {bundle}\n\
             \x20     accountSecretRef: {{namespace: {ns}, name: acme-account}}\n\
             \x20 rateLimit: {{requestsPerSecond: 5}}\n\
             mailcore:\n  databaseUrlSecretRef: {{namespace: {ns}, name: mailcore, key: url}}\n  rateLimit: {{maxInFlight: 2}}\n\
             proxmox:\n  url: {pve}\n  caFile: {pve_ca}\n  storage: ceph-pool\n  vmidRange: {{first: {first}, last: {last}}}\n\
             \x20 tokenSecretRef: {{namespace: {ns}, name: proxmox, key: token}}\n  rateLimit: {{requestsPerSecond: 10}}\n\
             \x20 ipPools: {{throttled: {{first: {net}.10, last: {net}.19, prefix: 24, gateway: {net}.1}}}}\n\
             namesilo:\n  apiUrl: {namesilo}\n  apiKeySecretRef: {{namespace: {ns}, name: namesilo, key: api-key}}\n\
             \x20 nameservers: [ns1.{ns}.net, ns2.{ns}.net]\n  rateLimit: {{requestsPerSecond: 5}}\n",
            ns = ns.name,
            pdns = tb.get("PDNS_API_URL")?,
            sid = tb.get("PDNS_SERVER_ID")?,
            dns = tb.get("PDNS_DNS_ADDR")?,
            dir = tb.get("ACME_DIRECTORY")?,
            bundle = tb.get("ACME_CA_BUNDLE")?,
            pve = tb.get("PROXMOX_URL")?,
            pve_ca = tb.get("PROXMOX_CA")?,
            last = first + 9,
            // addresses no other test file gives out
            net = format!("100.64.{}", std::process::id() % 250),
            namesilo = tb.get("NAMESILO_URL")?,
        ),
    )?;
    let op = Operator::start_ready(Path::new(tb.get("KUBECONFIG")?), &config)?;
    let _ = std::fs::remove_file(&config);

    let zone = format!("{}.mpanel-throttle", ns.name);
    let apply = |kind: &str, name: &str, spec: Value| support::apply_object(&tb, &ns.name, kind, name, spec);
    apply("DnsZone", "zone", json!({"zone": zone, "nameservers": ["ns1.migrahosting.com"]}))?;
    apply(
        "Certificate",
        "www",
        json!({"dnsNames": [format!("www.{zone}")], "secretName": "www-tls", "issuer": "pebble"}),
    )?;
    apply(
        "Mailbox",
        "box",
        json!({"address": format!("rl@{zone}"), "quotaMiB": 10, "passwordSecretRef": {"name": "box-password", "key": "password"}}),
    )?;
    apply(
        "CloudPod",
        "pod",
        json!({"plan": "mini", "type": "lxc", "template": "100", "hostname": "throttled",
               "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8}, "network": {"bridge": "vmbr0", "ipv4": {"pool": "throttled"}}}),
    )?;
    apply("Domain", "shop", json!({"name": format!("{}.com", ns.name), "registration": {"mode": "Register"}}))?;
    for (kind, name) in
        [("dnszone", "zone"), ("certificate", "www"), ("mailbox", "box"), ("cloudpod", "pod"), ("domain", "shop")]
    {
        support::wait_condition(&tb, &ns.name, kind, name, ("Ready", "True", None), Duration::from_secs(90))?;
    }

    // a request counts as a call when its answer came: compare once none is in flight. An ACME
    // call is one operation of one or more HTTP requests (an order with its authorizations, a
    // fresh nonce when none is kept), and each request takes a turn
    let mut last = String::new();
    let balanced = support::eventually(Duration::from_secs(10), || {
        last = op.metrics()?;
        Ok(["powerdns", "acme", "mailcore", "proxmox", "namesilo"].iter().all(|p| {
            let calls = metric_sum(&last, "mpanel_provider_calls_total", &[("provider", p)]);
            let turns = metric_sum(&last, "mpanel_provider_throttle_wait_seconds_count", &[("provider", p)]);
            calls > 0.0 && if *p == "acme" { turns >= calls } else { turns == calls }
        }))
    })?;
    let counts: Vec<String> = ["powerdns", "acme", "mailcore", "proxmox", "namesilo"]
        .iter()
        .map(|p| {
            let calls = metric_sum(&last, "mpanel_provider_calls_total", &[("provider", p)]);
            let turns = metric_sum(&last, "mpanel_provider_throttle_wait_seconds_count", &[("provider", p)]);
            format!("{p}: {calls} calls, {turns} turns")
        })
        .collect();
    assert!(balanced, "each provider's calls took a turn of its throttle: {counts:?}");
    Ok(())
}
