//! The billing bridge's numbers, against the testbed's PostgreSQL, kube-apiserver and stripe-mock,
//! with BENCH_REPLICAS bridge processes (2 by default) on one ledger, every request spread over
//! them. Run it with `benches/bridge-throughput.sh`, which brings up a testbed of its own.
//!
//! 1. Burst: BENCH_ORDERS orders (1,000 by default) of one customer are placed through the
//!    checkout, then each order's `checkout.session.completed` is delivered 10 times (90 %
//!    duplicates), in a shuffled order, 32 deliveries at a time. Prints the webhook's events/s, the
//!    bridges' own count of recorded and duplicate events, and how fast the Subscriptions of all the
//!    paid orders were applied; checks that the ledger ends with exactly one payment per order.
//! 2. Payment to resource, while the burst runs: BENCH_LATENCY_ORDERS orders of new customers (the
//!    full stack: CloudPod, domain, zone, mailbox, certificate; 1,000 by default), paid one at a
//!    time from the moment the burst starts; the clock runs from the webhook delivery until a watch
//!    on Subscriptions sees that order's resource. Prints p50, p99 and max, over all of them and
//!    over those paid while the burst's deliveries ran.
//! 3. The apiserver's own ceiling: the burst's Subscriptions applied again, as they are, into a
//!    scratch namespace by this program alone (server-side apply, as many at a time as the bridges'
//!    outbox lanes, or BENCH_CEILING_LANES), without a ledger. The bridges' apply rate is read
//!    against this number.
//!
//! The bridges run as `tests/support` runs them, with the default scan interval (30 s, as deployed:
//! the tests' 1 s makes the periodic passes part of the load); their logs are kept in
//! `$TESTBED_DIR/bench-bridge-<n>.log`. The ledger database and the customer namespaces are removed
//! at the end.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use mpanel_billing_bridge::outbox_worker;
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

/// The bridge replicas on one ledger; request `i` goes to replica `i mod n`.
struct Replicas(Vec<Bridge>);

impl Replicas {
    fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger, n: usize) -> anyhow::Result<Self> {
        let dir = PathBuf::from(tb.get("TESTBED_DIR")?);
        let kubeconfig = PathBuf::from(tb.get("KUBECONFIG")?);
        let mut bridges = Vec::with_capacity(n);
        for i in 0..n {
            let log = dir.join(format!("bench-bridge-{i}.log"));
            bridges.push(Bridge::start_with(rt, tb, ledger, &kubeconfig, 30, Some(log))?);
        }
        Ok(Self(bridges))
    }

    fn pick(&self, i: usize) -> &Bridge {
        &self.0[i % self.0.len()]
    }

    /// The webhook deliveries the replicas counted so far, by outcome.
    async fn webhook_outcomes(&self) -> anyhow::Result<BTreeMap<&'static str, u64>> {
        let mut outcomes = BTreeMap::new();
        for bridge in &self.0 {
            let text = bridge.metrics_text().await?;
            for outcome in ["recorded", "duplicate", "ignored", "rejected", "error"] {
                let n = mpanel_tests::metric_sum(&text, "mpanel_bridge_webhook_events_total", &[("outcome", outcome)]);
                *outcomes.entry(outcome).or_default() += n as u64;
            }
        }
        Ok(outcomes)
    }

    fn stop(&mut self) {
        for bridge in &mut self.0 {
            bridge.stop();
        }
    }

    fn log_tails(&self) -> String {
        self.0.iter().map(|b| format!("---- last lines of {} ----\n{}", b.log.display(), b.log_tail(30))).collect()
    }
}

/// Places `bodies` through the checkout, a few at a time, spread over the replicas; the answers in
/// the same order.
fn place_all(rt: &Runtime, replicas: &Replicas, bodies: &[Value]) -> anyhow::Result<Vec<Value>> {
    rt.block_on(
        futures::stream::iter(bodies.iter().enumerate().map(|(i, body)| replicas.pick(i).place(body)))
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

/// The Subscription resource name the bridge gives an order's subscription.
fn resource_name(order: &Value) -> String {
    let id = order["orderId"].as_str().and_then(|id| uuid::Uuid::parse_str(id).ok()).unwrap_or_default();
    format!("sub-{}", &id.simple().to_string()[..10])
}

/// When the burst's deliveries ran.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

fn burst(rt: &Runtime, replicas: &Replicas, ledger: &Ledger, placed: &[Value], email: &str) -> anyhow::Result<Window> {
    let orders = placed.len();
    let events: Vec<String> = placed
        .iter()
        .map(|p| session_completed(p, &format!("pi_{}", uuid::Uuid::new_v4().simple())).to_string())
        .collect();
    let mut deliveries: Vec<usize> = (0..orders * COPIES).map(|i| i % orders).collect();
    shuffle(&mut deliveries);
    let before = rt.block_on(replicas.webhook_outcomes())?;
    let started = Instant::now();
    let results: Vec<(u16, Duration)> = rt.block_on(
        futures::stream::iter(deliveries.iter().enumerate().map(|(n, &i)| {
            let (body, bridge) = (&events[i], replicas.pick(n));
            async move {
                let sent = Instant::now();
                let status = bridge.send_event(body, &bridge.webhook_secret, chrono::Utc::now().timestamp()).await?;
                anyhow::Ok((status, sent.elapsed()))
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .try_collect(),
    )?;
    let window = Window { start: started, end: Instant::now() };
    let wall = window.end - window.start;
    let of_burst = format!(
        "FROM outbox o JOIN subscriptions s ON s.id = o.subscription_id JOIN customers c ON c.id = s.customer_id \
         WHERE c.email = '{email}'"
    );
    let applied_while_delivering =
        ledger.count(rt, &format!("SELECT count(*) {of_burst} AND o.done_at IS NOT NULL"))?;
    let after = rt.block_on(replicas.webhook_outcomes())?;
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

    // the workers meanwhile: every paid invoice of the burst fulfilled and its resource applied
    let deadline = Instant::now() + Duration::from_secs(600);
    let applied = loop {
        let done = ledger.count(
            rt,
            &format!(
                "SELECT CASE WHEN EXISTS (SELECT 1 {of_burst} AND o.done_at IS NULL) THEN -1 \
                 ELSE (SELECT count(*) {of_burst}) END"
            ),
        )?;
        if done >= orders as i64 {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            bail!("the burst's outbox was not worked off in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let payments = ledger.count(
        rt,
        &format!("SELECT count(*) FROM payments p JOIN invoices i ON i.id = p.invoice_id JOIN customers c ON c.id = i.customer_id WHERE c.email = '{email}'"),
    )?;
    let recorded = ledger.count(rt, "SELECT count(*) FROM stripe_events")?;
    // the ledger's own clock: from the first of the burst's payments to its last resource applied
    let ledger_secs = ledger
        .text(
            rt,
            &format!(
                "SELECT extract(epoch FROM max(o.done_at) - (SELECT min(i.paid_at) FROM invoices i JOIN customers c \
                 ON c.id = i.customer_id WHERE c.email = '{email}'))::text {of_burst}"
            ),
        )?
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    println!(
        "| fulfilment + apply | {orders} Subscriptions applied, {} replicas | {:.2} s after the first delivery; {ledger_secs:.2} s from the first payment recorded to the last apply (ledger) | {:.0} subscriptions/s ({:.0}/s by the ledger's clock) |",
        replicas.0.len(),
        applied.as_secs_f64(),
        orders as f64 / applied.as_secs_f64(),
        orders as f64 / ledger_secs,
    );
    let after_delivering = (applied - wall).as_secs_f64();
    println!(
        "| apply rate | {applied_while_delivering} applied while the deliveries ran, the other {} after them | {:.2} s + {after_delivering:.2} s | {:.0}/s while delivering, {:.0}/s after |",
        orders as i64 - applied_while_delivering,
        wall.as_secs_f64(),
        applied_while_delivering as f64 / wall.as_secs_f64(),
        (orders as i64 - applied_while_delivering) as f64 / after_delivering,
    );
    println!("| ledger | {payments} payments of the burst for {orders} orders; {recorded} stripe_events in all | | |");
    // where the time went, by the ledger's clock: payment recorded -> invoice fulfilled -> resource applied
    let stages = ledger
        .text(
            rt,
            &format!(
                "SELECT format('last payment recorded at %s s, last invoice fulfilled at %s s; per order: paid to fulfilled p50 %s ms, fulfilled to applied p50 %s ms, p99 %s ms', \
                   round(extract(epoch FROM max(i.paid_at) - t0)::numeric, 2), round(extract(epoch FROM max(i.fulfilled_at) - t0)::numeric, 2), \
                   round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.fulfilled_at - i.paid_at)))::numeric, 1), \
                   round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM o.done_at - i.fulfilled_at)))::numeric, 1), \
                   round((1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM o.done_at - i.fulfilled_at)))::numeric, 1)) \
                 FROM invoices i JOIN customers c ON c.id = i.customer_id JOIN outbox o ON o.subscription_id = i.subscription_id, \
                      (SELECT min(i.paid_at) AS t0 FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE c.email = '{email}') f \
                 WHERE c.email = '{email}' GROUP BY t0"
            ),
        )?
        .unwrap_or_default();
    println!("| stages (ledger) | {stages} | | |");

    ensure!(failed == 0, "{failed} deliveries were not answered 200");
    ensure!(payments == orders as i64, "the ledger has {payments} payments for {orders} paid orders");
    // the orders paid one at a time meanwhile are recorded too, never duplicated
    ensure!(delta("recorded") >= orders as u64, "the bridges counted {} recorded events", delta("recorded"));
    ensure!(
        delta("duplicate") == (orders * (COPIES - 1)) as u64,
        "the bridges counted {} duplicates of {}",
        delta("duplicate"),
        orders * (COPIES - 1)
    );
    Ok(window)
}

/// A client of the testbed's apiserver, as its kubeconfig says.
async fn kube_client(tb: &Testbed) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(tb.get("KUBECONFIG")?)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A Subscription seen by the watch: its name and when.
enum Seen {
    Listed,
    Applied(String, Instant),
}

/// Watches the ledger's Subscriptions, metadata only (the name is all it needs).
fn watch_subscriptions(
    rt: &Runtime,
    tb: &Testbed,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<Seen>)> {
    let client = rt.block_on(kube_client(tb))?;
    let (tx, rx) = mpsc::unbounded();
    let watch = rt.spawn(async move {
        let api: Api<PartialObjectMeta<Subscription>> = Api::all(client);
        let mut events = watcher(api, watcher::Config::default().labels(LEDGER_LABEL)).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let seen = match event {
                Ok(watcher::Event::InitDone) => Seen::Listed,
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    Seen::Applied(object.name_any(), Instant::now())
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
    Ok((watch, rx))
}

/// Pays `placed` one at a time, from `replicas` in turn; how long each took to become a
/// Subscription resource, and when it was paid.
fn latency(
    rt: &Runtime,
    replicas: &Replicas,
    placed: &[Value],
    rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> anyhow::Result<Vec<(Instant, Duration)>> {
    let recv = |rx: &mut mpsc::UnboundedReceiver<Seen>, within: Duration| {
        rt.block_on(async { tokio::time::timeout(within, rx.next()).await }).ok().flatten()
    };
    let mut latencies = Vec::with_capacity(placed.len());
    for (i, order) in placed.iter().enumerate() {
        let event = session_completed(order, &format!("pi_{}", uuid::Uuid::new_v4().simple())).to_string();
        let name = resource_name(order);
        let bridge = replicas.pick(i);
        let sent = Instant::now();
        let status = rt.block_on(bridge.send_event(&event, &bridge.webhook_secret, chrono::Utc::now().timestamp()))?;
        ensure!(status == 200, "the webhook answered {status}");
        let deadline = sent + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match recv(rx, left) {
                Some(Seen::Applied(seen, at)) if seen == name => {
                    latencies.push((sent, at.saturating_duration_since(sent)));
                    break;
                }
                Some(_) => {}
                None => bail!("no Subscription {name} appeared within 60 s of its payment"),
            }
        }
    }
    Ok(latencies)
}

fn print_latencies(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "| payment to Subscription resource | {label} | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | {} orders |",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len(),
    );
}

/// The burst's Subscriptions applied again by this program alone into a scratch namespace, `lanes`
/// at a time: how fast the apiserver takes them without the bridge.
fn ceiling(rt: &Runtime, tb: &Testbed, ledger: &Ledger, email: &str, lanes: usize) -> anyhow::Result<()> {
    let namespace = ledger
        .text(
            rt,
            &format!(
                "SELECT s.namespace FROM subscriptions s JOIN customers c ON c.id = s.customer_id WHERE c.email = '{email}' LIMIT 1"
            ),
        )?
        .ok_or_else(|| anyhow::anyhow!("the burst has no subscription"))?;
    let scratch = format!("bench-ceiling-{}", std::process::id());
    tb.kubectl(&["create", "namespace", &scratch], None)?;
    let client = rt.block_on(kube_client(tb))?;
    let outcome = rt.block_on(async {
        let source: Api<Subscription> = Api::namespaced(client.clone(), &namespace);
        let objects: Vec<Subscription> = source
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .map(|s| {
                let mut copy = Subscription::new(&s.name_any(), s.spec);
                copy.metadata.labels = Some(BTreeMap::from([("bench".to_owned(), "ceiling".to_owned())]));
                copy
            })
            .collect();
        let target: Api<Subscription> = Api::namespaced(client, &scratch);
        let params = kube::api::PatchParams::apply("bench-ceiling").force();
        let started = Instant::now();
        futures::stream::iter(objects.iter())
            .map(|o| {
                let (target, params) = (&target, &params);
                async move { target.patch(&o.name_any(), params, &kube::api::Patch::Apply(o)).await }
            })
            .buffer_unordered(lanes)
            .try_collect::<Vec<_>>()
            .await?;
        let wall = started.elapsed();
        println!(
            "| apiserver ceiling | the burst's {} Subscriptions applied again by this program alone, {lanes} at a time | {:.2} s | {:.0} subscriptions/s |",
            objects.len(),
            wall.as_secs_f64(),
            objects.len() as f64 / wall.as_secs_f64()
        );
        anyhow::Ok(())
    });
    let _ = tb.kubectl(&["delete", "namespace", &scratch, "--wait=false"], None);
    outcome
}

fn run(rt: &Runtime, tb: &Testbed, ledger: &Ledger, replicas: &Replicas) -> anyhow::Result<()> {
    let orders = env_usize("BENCH_ORDERS", 1000).max(1);
    let latency_orders = env_usize("BENCH_LATENCY_ORDERS", 1000);
    let run = std::process::id();
    let email = format!("burst-{run}@bench.example");
    let mut bodies: Vec<Value> =
        (0..orders).map(|_| json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email})).collect();
    bodies.extend((0..latency_orders).map(|i| {
        json!({"product": "cloudpod-business", "cycle": "annual", "email": format!("latency-{run}-{i}@bench.example"),
               "domain": format!("bench-{run}-{i}.example"), "addons": ["domain", "dns-hosting", "email-basic", "ssl-dv"]})
    }));
    let started = Instant::now();
    let mut placed = place_all(rt, replicas, &bodies)?;
    let placing = started.elapsed();
    println!(
        "| checkout (stripe-mock session) | {} orders, {CHECKOUT_CONCURRENCY} at a time | {:.2} s | {:.0} orders/s |",
        bodies.len(),
        placing.as_secs_f64(),
        bodies.len() as f64 / placing.as_secs_f64()
    );
    let latency_placed = placed.split_off(orders);

    let (watch, mut rx) = watch_subscriptions(rt, tb)?;
    let outcome = (|| -> anyhow::Result<()> {
        // the watch is established (its initial list done) before the first payment
        loop {
            match rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), rx.next()).await }) {
                Ok(Some(Seen::Listed)) => break,
                Ok(Some(Seen::Applied(..))) => {}
                _ => bail!("the Subscription watch did not start"),
            }
        }
        let (window, latencies) = std::thread::scope(|scope| {
            let burst = scope.spawn(|| burst(rt, replicas, ledger, &placed, &email));
            let latencies = latency(rt, replicas, &latency_placed, &mut rx);
            let window = burst.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the burst panicked")));
            (window, latencies)
        });
        let (window, latencies) = (window?, latencies?);
        if !latencies.is_empty() {
            let during: Vec<Duration> =
                latencies.iter().filter(|(sent, _)| *sent >= window.start && *sent < window.end).map(|l| l.1).collect();
            print_latencies("new customers' full-stack orders paid while the burst's deliveries ran", during);
            print_latencies(
                "all of them, one at a time from the start of the burst",
                latencies.iter().map(|l| l.1).collect(),
            );
        }
        let lanes = env_usize("BENCH_CEILING_LANES", outbox_worker::PARALLEL * replicas.0.len()).max(1);
        ceiling(rt, tb, ledger, &email, lanes)
    })();
    watch.abort();
    outcome
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("BENCH_REPLICAS", 2).max(1);
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    println!(
        "bridge_throughput: {} build, {} CPUs, {n} bridge replicas",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| what | load | time | rate / latency |");
    println!("| --- | --- | --- | --- |");
    let outcome = Replicas::start(&rt, &tb, &ledger, n).and_then(|mut replicas| {
        let outcome = run(&rt, &tb, &ledger, &replicas);
        if outcome.is_err() {
            eprintln!("{}", replicas.log_tails());
        }
        replicas.stop();
        outcome
    });

    // the customer namespaces the bench's purchases made, then its ledger
    let namespaces =
        ledger.text(&rt, "SELECT string_agg('customer-' || handle, ' ') FROM customers")?.unwrap_or_default();
    let namespaces: Vec<&str> = namespaces.split_whitespace().collect();
    for some in namespaces.chunks(200) {
        let mut args = vec!["delete", "namespace", "--wait=false", "--ignore-not-found"];
        args.extend(some);
        let _ = tb.kubectl(&args, None);
    }
    ledger.drop_database(&rt);
    outcome
}
