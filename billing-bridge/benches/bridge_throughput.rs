//! The billing bridge's two numbers, against the testbed's PostgreSQL, kube-apiserver and
//! stripe-mock: how fast the Stripe webhook takes events (most of them redeliveries), and how long
//! a payment takes to become a Subscription resource. Run it with `benches/bridge-throughput.sh`,
//! which brings up a testbed of its own.
//!
//! 1. Webhook intake: BENCH_ORDERS orders are placed through the checkout, then each order's
//!    `checkout.session.completed` is delivered 10 times (90 % duplicates), in a shuffled order, 32
//!    deliveries at a time. Prints events/s, the bridge's own count of recorded and duplicate
//!    events, and checks that the ledger ends with exactly one payment per order.
//! 2. Payment to resource: BENCH_LATENCY_ORDERS orders of new customers (the full stack: CloudPod,
//!    domain, zone, mailbox, certificate), paid one at a time; the clock runs from the webhook
//!    delivery until a watch on Subscriptions labelled `billing.mpanel.migrahosting.com/subscription`
//!    sees that order's resource. Prints p50, p99 and max.
//!
//! The bridge runs as `tests/support` runs it, with its default scan interval (30 s, as deployed: the
//! tests' 1 s makes its periodic passes part of the load), and its log is kept in
//! `$TESTBED_DIR/bench-bridge.log`.
//! The ledger database and the customer namespaces are removed at the end.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use mpanel_billing_bridge::render::LEDGER_LABEL;
use mpanel_crds::subscription::Subscription;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, session_completed};
use tokio::runtime::Runtime;

const CONCURRENCY: usize = 32;
const COPIES: usize = 10;
const CHECKOUT_CONCURRENCY: usize = 8;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The webhook deliveries the bridge counted so far, by outcome.
async fn webhook_outcomes(bridge: &Bridge) -> anyhow::Result<BTreeMap<&'static str, u64>> {
    let text = bridge.metrics_text().await?;
    Ok(["recorded", "duplicate", "ignored", "rejected", "error"]
        .into_iter()
        .map(|outcome| {
            let n = mpanel_tests::metric_sum(&text, "mpanel_bridge_webhook_events_total", &[("outcome", outcome)]);
            (outcome, n as u64)
        })
        .collect())
}

/// Places `bodies` through the checkout, a few at a time; the answers in the same order.
fn place_all(rt: &Runtime, bridge: &Bridge, bodies: &[Value]) -> anyhow::Result<Vec<Value>> {
    rt.block_on(
        futures::stream::iter(bodies.iter().map(|body| bridge.place(body)))
            .buffered(CHECKOUT_CONCURRENCY)
            .try_collect(),
    )
}

/// A fixed shuffle (xorshift), so every run delivers in the same order.
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

fn intake(rt: &Runtime, bridge: &Bridge, ledger: &Ledger, orders: usize) -> anyhow::Result<()> {
    let run = std::process::id();
    let email = format!("intake-{run}@bench.example");
    let bodies: Vec<Value> =
        (0..orders).map(|_| json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email})).collect();
    let started = Instant::now();
    let placed = place_all(rt, bridge, &bodies)?;
    let placing = started.elapsed();
    println!(
        "| checkout (stripe-mock session) | {orders} orders, {CHECKOUT_CONCURRENCY} at a time | {:.2} s | {:.0} orders/s |",
        placing.as_secs_f64(),
        orders as f64 / placing.as_secs_f64()
    );

    let events: Vec<String> = placed
        .iter()
        .map(|p| session_completed(p, &format!("pi_{}", uuid::Uuid::new_v4().simple())).to_string())
        .collect();
    let mut deliveries: Vec<usize> = (0..orders * COPIES).map(|i| i % orders).collect();
    shuffle(&mut deliveries);
    let before = rt.block_on(webhook_outcomes(bridge))?;
    let started = Instant::now();
    let results: Vec<(u16, Duration)> = rt.block_on(
        futures::stream::iter(deliveries.iter().map(|&i| {
            let body = &events[i];
            async move {
                let sent = Instant::now();
                let status = bridge.send_event(body, &bridge.webhook_secret, chrono::Utc::now().timestamp()).await?;
                anyhow::Ok((status, sent.elapsed()))
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .try_collect(),
    )?;
    let wall = started.elapsed();
    let after = rt.block_on(webhook_outcomes(bridge))?;
    let delta = |outcome: &str| {
        after.get(outcome).copied().unwrap_or(0).saturating_sub(before.get(outcome).copied().unwrap_or(0))
    };
    let mut times: Vec<Duration> = results.iter().map(|r| r.1).collect();
    times.sort();
    let failed = results.iter().filter(|r| r.0 != 200).count();
    let total = results.len();
    println!(
        "| webhook intake | {total} events ({orders} orders x {COPIES}), {CONCURRENCY} at a time | {:.2} s | {:.0} events/s; per delivery p50 {:.1} ms, p99 {:.1} ms |",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
    );
    let others: Vec<String> = after
        .keys()
        .filter(|o| !matches!(**o, "recorded" | "duplicate") && delta(o) > 0)
        .map(|o| format!("{o} {}", delta(o)))
        .collect();
    println!(
        "| webhook outcomes (/metrics) | recorded {}, duplicate {}{}; non-200 answers {failed} | | |",
        delta("recorded"),
        delta("duplicate"),
        if others.is_empty() { String::new() } else { format!(", {}", others.join(", ")) },
    );
    let payments = ledger.count(rt, "SELECT count(*) FROM payments")?;
    let recorded = ledger.count(rt, "SELECT count(*) FROM stripe_events")?;
    println!("| ledger | {payments} payments, {recorded} stripe_events for {orders} orders | | |");

    // the workers meanwhile: every paid invoice fulfilled and its resource applied
    let deadline = Instant::now() + Duration::from_secs(600);
    let applied = loop {
        let done = ledger.count(
            rt,
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM outbox WHERE done_at IS NULL) \
             OR EXISTS (SELECT 1 FROM invoices WHERE status = 'paid' AND fulfilled_at IS NULL) \
             THEN -1 ELSE (SELECT count(*) FROM outbox) END",
        )?;
        if done >= orders as i64 {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            bail!("the outbox was not worked off in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "| fulfilment + apply | {orders} Subscriptions applied | {:.2} s after the first delivery | {:.0} subscriptions/s |",
        applied.as_secs_f64(),
        orders as f64 / applied.as_secs_f64()
    );

    ensure!(failed == 0, "{failed} deliveries were not answered 200");
    ensure!(payments == orders as i64, "the ledger has {payments} payments for {orders} paid orders");
    ensure!(recorded == orders as i64, "the ledger recorded {recorded} events for {orders} distinct ones");
    ensure!(delta("recorded") == orders as u64, "the bridge counted {} recorded events", delta("recorded"));
    ensure!(
        delta("duplicate") == (orders * (COPIES - 1)) as u64,
        "the bridge counted {} duplicates of {}",
        delta("duplicate"),
        orders * (COPIES - 1)
    );
    Ok(())
}

/// A Subscription seen by the watch: its ledger id (the label) and when.
enum Seen {
    Listed,
    Applied(String, Instant),
}

fn latency(rt: &Runtime, tb: &Testbed, bridge: &Bridge, ledger: &Ledger, orders: usize) -> anyhow::Result<()> {
    let run = std::process::id();
    let bodies: Vec<Value> = (0..orders)
        .map(|i| {
            json!({"product": "cloudpod-business", "cycle": "annual", "email": format!("latency-{run}-{i}@bench.example"),
                   "domain": format!("bench-{run}-{i}.example"), "addons": ["domain", "dns-hosting", "email-basic", "ssl-dv"]})
        })
        .collect();
    let placed = place_all(rt, bridge, &bodies)?;

    let kubeconfig = kube::config::Kubeconfig::read_from(tb.get("KUBECONFIG")?)?;
    let (tx, mut rx) = mpsc::unbounded();
    let watch = rt.spawn(async move {
        let config =
            match kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await {
                Ok(config) => config,
                Err(e) => return eprintln!("kube config: {e}"),
            };
        let client = match kube::Client::try_from(config) {
            Ok(client) => client,
            Err(e) => return eprintln!("kube client: {e}"),
        };
        // metadata only: the labels are all it needs
        let api: Api<PartialObjectMeta<Subscription>> = Api::all(client);
        let mut events = watcher(api, watcher::Config::default().labels(LEDGER_LABEL)).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let seen = match event {
                Ok(watcher::Event::InitDone) => Seen::Listed,
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    Seen::Applied(object.labels().get(LEDGER_LABEL).cloned().unwrap_or_default(), Instant::now())
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("watching Subscriptions: {e}");
                    continue;
                }
            };
            if tx.unbounded_send(seen).is_err() {
                return;
            }
        }
    });
    let outcome = (|| -> anyhow::Result<()> {
        let recv = |rx: &mut mpsc::UnboundedReceiver<Seen>, within: Duration| {
            rt.block_on(async { tokio::time::timeout(within, rx.next()).await }).ok().flatten()
        };
        // the watch is established (its initial list done) before the first payment
        loop {
            match recv(&mut rx, Duration::from_secs(30)) {
                Some(Seen::Listed) => break,
                Some(Seen::Applied(..)) => {}
                None => bail!("the Subscription watch did not start"),
            }
        }
        let mut seen = HashSet::new();
        let mut latencies = Vec::with_capacity(orders);
        let mut answers = Vec::with_capacity(orders);
        for order in &placed {
            let event = session_completed(order, &format!("pi_{}", uuid::Uuid::new_v4().simple())).to_string();
            let order_id = order["orderId"].as_str().unwrap_or_default();
            let sent = Instant::now();
            let status =
                rt.block_on(bridge.send_event(&event, &bridge.webhook_secret, chrono::Utc::now().timestamp()))?;
            answers.push(sent.elapsed());
            ensure!(status == 200, "the webhook answered {status}");
            let deadline = sent + Duration::from_secs(60);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(Seen::Applied(id, at)) = recv(&mut rx, left) else {
                    bail!("no Subscription appeared for order {order_id} within 60 s");
                };
                if id.is_empty() || !seen.insert(id.clone()) {
                    continue;
                }
                let owner = match uuid::Uuid::parse_str(&id) {
                    Ok(id) => {
                        ledger.text(rt, &format!("SELECT order_id::text FROM subscriptions WHERE id = '{id}'"))?
                    }
                    Err(_) => None,
                };
                match owner {
                    Some(owner) if owner == order_id => {
                        latencies.push(at.saturating_duration_since(sent));
                        break;
                    }
                    Some(owner) => bail!("order {owner}'s Subscription appeared while waiting for {order_id}'s"),
                    // another ledger's (a test's bridge on the same cluster)
                    None => continue,
                }
            }
        }
        latencies.sort();
        answers.sort();
        println!(
            "| payment to Subscription resource | {orders} new customers' full-stack orders, one at a time | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | webhook answer p50 {:.1} ms |",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
            ms(percentile(&answers, 0.50)),
        );
        Ok(())
    })();
    watch.abort();
    outcome
}

fn main() -> anyhow::Result<()> {
    let orders = env_usize("BENCH_ORDERS", 200).max(1);
    let latency_orders = env_usize("BENCH_LATENCY_ORDERS", 50);
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    println!(
        "bridge_throughput: {} build, {} CPUs",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| what | load | time | rate / latency |");
    println!("| --- | --- | --- | --- |");
    let log = PathBuf::from(tb.get("TESTBED_DIR")?).join("bench-bridge.log");
    let kubeconfig = PathBuf::from(tb.get("KUBECONFIG")?);
    let outcome = Bridge::start_with(&rt, &tb, &ledger, &kubeconfig, 30, Some(log)).and_then(|mut bridge| {
        let outcome = intake(&rt, &bridge, &ledger, orders).and_then(|()| {
            if latency_orders > 0 { latency(&rt, &tb, &bridge, &ledger, latency_orders) } else { Ok(()) }
        });
        bridge.stop();
        if outcome.is_err() {
            eprintln!("---- last lines of {} ----\n{}", bridge.log.display(), bridge.log_tail(30));
        }
        outcome
    });

    // the customer namespaces the bench's purchases made, then its ledger
    let namespaces =
        ledger.text(&rt, "SELECT string_agg('customer-' || handle, ' ') FROM customers")?.unwrap_or_default();
    for ns in namespaces.split_whitespace() {
        let _ = tb.kubectl(&["delete", "namespace", ns, "--wait=false", "--ignore-not-found"], None);
    }
    ledger.drop_database(&rt);
    outcome
}
