//! Money under chaos: two bridge replicas on one ledger take Stripe's events (each delivered two to
//! four times, all shuffled) while one replica at a time is killed with SIGKILL and started again,
//! and the apiserver is cut off from both and restored; meanwhile the test plays the operator and
//! reports resources Ready. Once everything is back and the work is done, the money invariants are
//! checked by SQL and against the cluster: every paid order has one subscription and one
//! Subscription object; no active subscription lacks a paid invoice for its period; payments less
//! refunds equal the paid invoices' totals; no payment is recorded twice; no outbox entry is lost;
//! a refunded order has no service. The real bridge binary, PostgreSQL, the testbed's kube-apiserver
//! (through a relay only these replicas use, which the test cuts) and stripe-mock.
//!
//! The run is drawn from a seed (printed; `MONEY_CHAOS_SEED`, hexadecimal, sets it): the products,
//! the number of copies of each event, the delivery order, and the chaos's script and pauses. Where
//! the chaos lands among the deliveries also depends on the machine's speed.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use mpanel_billing_bridge::render::LEDGER_LABEL;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{
    ApiRelay, Bridge, Ledger, Namespaces, charge_refunded, email, eventually, payment_intent, report_status,
    session_completed, total_cents,
};
use tokio::runtime::Runtime;

const CUSTOMERS: usize = 4;
const ORDERS: usize = 32;
/// What the orders buy, in turn: no domains, so no registrar is involved.
const PRODUCTS: [(&str, &str); 4] = [
    ("cloudpod-mini", "monthly"),
    ("cloudpod-pro", "monthly"),
    ("cloudpod-mini", "annual"),
    ("cloudpod-business", "monthly"),
];
/// Orders `i` with `i % REFUND_EVERY == 2` are refunded in full after they are paid.
const REFUND_EVERY: usize = 5;
const DEFAULT_SEED: u64 = 0x005e_ed0f_c4a0_5001;
/// Deliveries under way at once, and a pause after each (up to this): the deliveries last long
/// enough (10–20 s) for the chaos to land in the middle of them.
const LANES: usize = 4;
const PAUSE_MS: u64 = 400;
/// How long Stripe goes on redelivering an event no replica answers with a 2xx.
const REDELIVER_FOR: Duration = Duration::from_secs(60);
/// How long the work may take once everything is restored.
const SETTLE: Duration = Duration::from_secs(90);
/// The least chaos a run must have had.
const MIN_KILLS: u32 = 2;
const MIN_CUTS: u32 = 2;

/// xorshift64: the same sequence for the same seed, so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// An order placed through the checkout, and how it is paid.
struct Order {
    id: String,
    invoice: String,
    intent: String,
    cents: i64,
    refunded: bool,
}

/// What Stripe tells of the order: its payment, twice over (the session and the PaymentIntent) and,
/// for a refunded one, the refund: in part first, then in full, anywhere among the other events
/// (`partly_first`: before the payment too); or in full only, delivered among the last events, once
/// the subscription has had time to become active. Each event, and whether it comes last.
fn events_of(order: &Order, placed: &Value, partly_first: bool) -> Vec<(Value, bool)> {
    let mut events = vec![
        (session_completed(placed, &order.intent), false),
        (payment_intent("payment_intent.succeeded", &order.intent, &order.invoice, order.cents), false),
    ];
    if order.refunded {
        if partly_first {
            events.push((charge_refunded(&order.intent, order.cents, 100), false));
        }
        events.push((charge_refunded(&order.intent, order.cents, order.cents), !partly_first));
    }
    events
}

fn lock(replica: &Mutex<Bridge>) -> MutexGuard<'_, Bridge> {
    replica.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Delivers `body` as Stripe does: to one replica and, while none answers 2xx (a replica killed, a
/// 5xx), again, alternating, until one takes it. How many deliveries it took.
async fn deliver(
    replicas: &[Mutex<Bridge>; 2],
    http: &reqwest::Client,
    first: usize,
    body: &str,
) -> anyhow::Result<u32> {
    let deadline = Instant::now() + REDELIVER_FOR;
    let mut tries = 0;
    loop {
        let (url, secret) = {
            let bridge = lock(&replicas[(first + tries as usize) % 2]);
            (bridge.url.clone(), bridge.webhook_secret.clone())
        };
        tries += 1;
        let signature = mpanel_tests::stripe::sign(body, &secret, chrono::Utc::now().timestamp());
        let sent = http
            .post(format!("{url}/v1/stripe/webhook"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(tries),
            Ok(resp) if resp.status().is_client_error() => {
                bail!("the webhook refused an event with {}: {}", resp.status(), resp.text().await.unwrap_or_default())
            }
            _ => {}
        }
        ensure!(Instant::now() < deadline, "no replica took an event in {REDELIVER_FOR:?} ({tries} deliveries)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replicas' logs: one file per process started, kept until the test passes.
struct Logs {
    dir: PathBuf,
    files: Mutex<Vec<PathBuf>>,
}

impl Logs {
    fn next(&self, replica: usize) -> PathBuf {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.dir.join(format!("replica-{replica}-{}.log", files.len()));
        files.push(path.clone());
        path
    }
}

fn start(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    relay: &Path,
    logs: &Logs,
    replica: usize,
) -> anyhow::Result<Bridge> {
    // a new process may be given the port (and so the metrics token's name) of one gone: try again
    let mut last = None;
    for _ in 0..3 {
        match Bridge::start_with(rt, tb, ledger, relay, 1, Some(logs.next(replica))) {
            Ok(bridge) => return Ok(bridge),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no start attempted")))
}

/// What the chaos did.
#[derive(Debug, Default)]
struct Chaos {
    kills: u32,
    cuts: u32,
}

/// Sleeps `pause`, unless the run is over (then returns false at once).
fn pause_unless(over: &AtomicBool, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if over.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// What a replica is started with.
struct Bed<'a> {
    rt: &'a Runtime,
    tb: &'a Testbed,
    ledger: &'a Ledger,
    logs: &'a Logs,
}

/// Until the deliveries are over (and at least `MIN_KILLS` kills and `MIN_CUTS` cuts were done), at
/// moments drawn from `rng`: kills a replica (SIGKILL) and starts it again on the same ledger; cuts
/// the apiserver off and restores it; or both at once (a replica starting while the apiserver is
/// unreachable). Everything is up again when it returns.
fn chaos(
    bed: &Bed,
    relay: &mut ApiRelay,
    replicas: &[Mutex<Bridge>; 2],
    rng: &mut Rng,
    delivered: &AtomicBool,
) -> anyhow::Result<Chaos> {
    let mut done = Chaos::default();
    let never = AtomicBool::new(false);
    for round in 0.. {
        let enough = done.kills >= MIN_KILLS && done.cuts >= MIN_CUTS;
        let wait = rng.millis(600, 2000);
        if !pause_unless(if enough { delivered } else { &never }, wait) {
            break;
        }
        let replica = rng.below(2) as usize;
        match round % 3 {
            0 => {
                lock(&replicas[replica]).kill();
                done.kills += 1;
                std::thread::sleep(rng.millis(200, 1500));
                let started = start(bed.rt, bed.tb, bed.ledger, &relay.kubeconfig, bed.logs, replica)?;
                *lock(&replicas[replica]) = started;
            }
            1 => {
                relay.cut(bed.rt);
                done.cuts += 1;
                std::thread::sleep(rng.millis(1500, 4000));
                relay.restore(bed.rt)?;
            }
            _ => {
                relay.cut(bed.rt);
                done.cuts += 1;
                std::thread::sleep(rng.millis(200, 1000));
                lock(&replicas[replica]).kill();
                done.kills += 1;
                std::thread::sleep(rng.millis(200, 1000));
                let started = start(bed.rt, bed.tb, bed.ledger, &relay.kubeconfig, bed.logs, replica)?;
                *lock(&replicas[replica]) = started;
                std::thread::sleep(rng.millis(500, 2000));
                relay.restore(bed.rt)?;
            }
        }
        eprintln!("chaos round {round} done after {wait:?}: {done:?}");
    }
    Ok(done)
}

/// The Subscription objects in `namespaces`, read from the apiserver itself (not the relay).
fn objects_in(tb: &Testbed, namespaces: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    for ns in namespaces {
        let out = tb.kubectl_ok(&["get", "subscriptions", "-n", ns, "-o", "json"], None)?;
        let list: Value = serde_json::from_str(&out)?;
        all.extend(list["items"].as_array().cloned().unwrap_or_default());
    }
    Ok(all)
}

fn ledger_label(object: &Value) -> &str {
    object["metadata"]["labels"][LEDGER_LABEL].as_str().unwrap_or_default()
}

/// The first column of every row, as text.
fn rows(rt: &Runtime, ledger: &Ledger, query: &str) -> anyhow::Result<Vec<String>> {
    Ok(rt.block_on(sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(query.to_owned())).fetch_all(&ledger.pool))?)
}

/// Plays the operator: the resource of every subscription still waiting for activation is reported
/// Active and Ready at its generation (a resource deleted meanwhile, by a refund, is skipped).
fn operate(rt: &Runtime, tb: &Testbed, ledger: &Ledger, namespaces: &[String]) -> anyhow::Result<()> {
    let pending: HashSet<String> =
        rows(rt, ledger, "SELECT id::text FROM subscriptions WHERE status = 'pending_activation'")?
            .into_iter()
            .collect();
    if pending.is_empty() {
        return Ok(());
    }
    for object in objects_in(tb, namespaces)? {
        let reported = object["status"]["phase"] == "Active"
            && object["status"]["observedGeneration"] == object["metadata"]["generation"];
        if pending.contains(ledger_label(&object)) && !reported {
            let _ = report_status(tb, &object, "Active", true, "all 1 resources are Ready");
        }
    }
    Ok(())
}

/// What the run expects once the work is done.
struct Expected {
    paid: i64,
    refunded: i64,
    kept_cents: i64,
    refunded_cents: i64,
    events: i64,
}

/// Whether the work is done: nothing left in the outbox, every paid invoice fulfilled, every order
/// settled, every paid order's subscription active, and the cluster holding one object each. What
/// is still missing, if not.
fn settled(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    namespaces: &[String],
    want: &Expected,
) -> anyhow::Result<Option<String>> {
    let state = ledger
        .text(
            rt,
            "SELECT (SELECT count(*) FROM outbox WHERE done_at IS NULL) || ' outbox entries pending, ' || \
                    (SELECT count(*) FROM invoices WHERE status = 'paid' AND fulfilled_at IS NULL) || ' paid invoices unfulfilled, ' || \
                    (SELECT count(*) FROM orders WHERE status = 'paid') || ' orders paid, ' || \
                    (SELECT count(*) FROM orders WHERE status = 'refunded') || ' refunded, ' || \
                    (SELECT count(*) FROM subscriptions WHERE status = 'active') || ' subscriptions active'",
        )?
        .unwrap_or_default();
    let done = format!(
        "0 outbox entries pending, 0 paid invoices unfulfilled, {} orders paid, {} refunded, {} subscriptions active",
        want.paid, want.refunded, want.paid
    );
    if state != done {
        return Ok(Some(state));
    }
    let objects = objects_in(tb, namespaces)?.len() as i64;
    Ok((objects != want.paid).then(|| format!("{state}; {objects} Subscription objects")))
}

/// The invariants, each failure naming the rows that break it.
fn check_invariants(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    namespaces: &[String],
    orders: &[Order],
    want: &Expected,
) -> anyhow::Result<()> {
    let none = |what: &str, query: &str| -> anyhow::Result<()> {
        let found = rows(rt, ledger, query)?;
        ensure!(found.is_empty(), "{what}: {found:#?}");
        Ok(())
    };

    // every order ended as its money says: paid, or refunded
    let mut expected: Vec<String> =
        orders.iter().map(|o| format!("{} {}", o.id, if o.refunded { "refunded" } else { "paid" })).collect();
    expected.sort();
    let statuses = rows(rt, ledger, "SELECT id::text || ' ' || status FROM orders ORDER BY id::text")?;
    ensure!(statuses == expected, "the orders' statuses: {statuses:#?}");

    // every paid order has exactly one subscription, active
    none(
        "paid orders without exactly one subscription",
        "SELECT o.id::text || ': ' || count(s.id) || ' subscriptions' FROM orders o \
         LEFT JOIN subscriptions s ON s.order_id = o.id WHERE o.status = 'paid' GROUP BY o.id HAVING count(s.id) <> 1",
    )?;
    none(
        "subscriptions of paid orders that are not active",
        "SELECT s.id::text || ' ' || s.status FROM subscriptions s JOIN orders o ON o.id = s.order_id \
         WHERE o.status = 'paid' AND s.status <> 'active'",
    )?;

    // ... and exactly one Subscription object, where the ledger says, labelled with it; a refunded
    // order's subscription is cancelled and has none; nothing else is in the customers' namespaces
    let mut objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in objects_in(tb, namespaces)? {
        let at = format!(
            "{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        objects.entry(ledger_label(&object).to_owned()).or_default().push(at);
    }
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows(
        rt,
        ledger,
        "SELECT s.id::text || ' ' || s.namespace || '/' || s.resource_name FROM subscriptions s \
         JOIN orders o ON o.id = s.order_id WHERE o.status = 'paid'",
    )? {
        let (id, at) = row.split_once(' ').context("a subscription row")?;
        wanted.insert(id.to_owned(), vec![at.to_owned()]);
    }
    ensure!(objects == wanted, "the Subscription objects {objects:#?}\nare not the paid subscriptions' {wanted:#?}");
    none(
        "subscriptions of refunded orders still running",
        "SELECT s.id::text || ' ' || s.status FROM subscriptions s JOIN orders o ON o.id = s.order_id \
         WHERE o.status = 'refunded' AND s.status <> 'cancelled'",
    )?;
    none(
        "refunded orders whose invoice is not refunded",
        "SELECT o.id::text || ' ' || i.status FROM orders o JOIN invoices i ON i.order_id = o.id \
         WHERE o.status = 'refunded' AND i.status <> 'refunded'",
    )?;

    // no active subscription without a paid invoice for its current period: the first period
    // (from activation) is paid by the order's invoice, a later one by a renewal invoice covering it
    none(
        "active subscriptions without a paid invoice for their period",
        "SELECT s.id::text || ' ' || coalesce(s.current_period_start::text, 'no period') FROM subscriptions s \
         WHERE s.status = 'active' AND NOT EXISTS (SELECT 1 FROM invoices i \
           WHERE i.status = 'paid' AND i.subscription_id = s.id AND ( \
             (i.period_start IS NULL AND i.order_id = s.order_id AND s.current_period_start = s.activated_at) \
             OR (i.period_start <= s.current_period_start AND i.period_end >= s.current_period_end)))",
    )?;

    // payments − refunds = totals of paid invoices. A full refund moves its payment's
    // refunded_amount up to its amount and its invoice from paid to refunded (settle_invoice), so a
    // refunded invoice counts on neither side; every refund in this run ends as a full one (a
    // partial refund would leave its invoice paid with less kept). Counted over payments that
    // received money (a failed one kept nothing), in the one currency of this run.
    let kept = ledger.count(
        rt,
        "SELECT (coalesce(sum(amount - refunded_amount), 0) * 100)::int8 FROM payments \
         WHERE status IN ('succeeded', 'refunded')",
    )?;
    let paid_totals =
        ledger.count(rt, "SELECT (coalesce(sum(total), 0) * 100)::int8 FROM invoices WHERE status = 'paid'")?;
    let refunds = ledger.count(rt, "SELECT (coalesce(sum(refunded_amount), 0) * 100)::int8 FROM payments")?;
    ensure!(
        (kept, paid_totals, refunds) == (want.kept_cents, want.kept_cents, want.refunded_cents),
        "payments − refunds = {kept} cents, paid invoices total {paid_totals}, refunds {refunds}; \
         the run paid {} and refunded {}",
        want.kept_cents,
        want.refunded_cents
    );
    ensure!(ledger.count(rt, "SELECT count(DISTINCT currency) FROM payments")? == 1, "payments in several currencies");

    // one payment per paid order, never two (each event delivered several times and told twice over)
    let payments = ledger.count(rt, "SELECT count(*) FROM payments")?;
    let paid_orders = ledger.count(
        rt,
        "SELECT count(DISTINCT i.order_id) FROM payments p JOIN invoices i ON i.id = p.invoice_id \
         WHERE p.status IN ('succeeded', 'refunded')",
    )?;
    ensure!(
        (payments, paid_orders) == (ORDERS as i64, ORDERS as i64),
        "{payments} payments for {paid_orders} paid orders; {ORDERS} orders were paid"
    );
    none(
        "invoices paid by more than one payment",
        "SELECT invoice_id::text || ': ' || count(*) FROM payments GROUP BY invoice_id HAVING count(*) > 1",
    )?;
    let recorded = ledger.count(rt, "SELECT count(*) FROM stripe_events")?;
    ensure!(recorded == want.events, "{recorded} Stripe events recorded of {} sent", want.events);

    // no outbox entry lost: every entry was carried out; an active subscription has its fulfilment's
    // and its activation's entries, a cancelled one its fulfilment's (and activation's, if it got
    // that far) and one delete; each subscription fulfilled, activated and cancelled once at most
    none("outbox entries not carried out", "SELECT id::text || ' ' || action FROM outbox WHERE done_at IS NULL")?;
    none(
        "subscriptions whose outbox entries are not what their story made",
        "SELECT s.id::text || ' ' || s.status || ': ' || count(x.id) FILTER (WHERE x.action = 'apply') || ' apply, ' \
                || count(x.id) FILTER (WHERE x.action = 'delete') || ' delete' \
         FROM subscriptions s LEFT JOIN outbox x ON x.subscription_id = s.id GROUP BY s.id, s.status \
         HAVING NOT ((s.status = 'active' AND count(x.id) FILTER (WHERE x.action = 'apply') = 2 \
                                          AND count(x.id) FILTER (WHERE x.action = 'delete') = 0) \
                  OR (s.status = 'cancelled' AND count(x.id) FILTER (WHERE x.action = 'apply') IN (1, 2) \
                                             AND count(x.id) FILTER (WHERE x.action = 'delete') = 1))",
    )?;
    none(
        "subscriptions fulfilled, activated or cancelled more than once",
        "SELECT action || ' ' || entity_id || ': ' || count(*) FROM audit_log \
         WHERE action IN ('invoice.fulfilled', 'subscription.activated', 'subscription.cancel') \
         GROUP BY action, entity_id HAVING count(*) > 1",
    )?;
    let subscriptions = ledger.count(rt, "SELECT count(*) FROM subscriptions")?;
    let fulfilled = ledger.count(rt, "SELECT count(*) FROM audit_log WHERE action = 'invoice.fulfilled'")?;
    ensure!(fulfilled == subscriptions, "{fulfilled} invoices fulfilled for {subscriptions} subscriptions");
    Ok(())
}

#[test]
fn money_holds_through_replica_crashes_duplicate_shuffled_events_and_an_apiserver_outage() -> anyhow::Result<()> {
    let began = Instant::now();
    let seed = std::env::var("MONEY_CHAOS_SEED")
        .ok()
        .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16))
        .transpose()
        .context("MONEY_CHAOS_SEED is a hexadecimal number")?
        .unwrap_or(DEFAULT_SEED);
    eprintln!("money chaos: seed {seed:#x} (MONEY_CHAOS_SEED={seed:x} draws this run again)");
    let mut rng = Rng::new(seed);
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut relay = ApiRelay::start(&rt, &tb)?;
    let logs = Logs {
        dir: std::env::temp_dir().join(format!("money-chaos-{}", std::process::id())),
        files: Mutex::new(Vec::new()),
    };
    std::fs::create_dir_all(&logs.dir)?;
    let replicas = [
        Mutex::new(start(&rt, &tb, &ledger, &relay.kubeconfig, &logs, 0)?),
        Mutex::new(start(&rt, &tb, &ledger, &relay.kubeconfig, &logs, 1)?),
    ];

    // the orders of a few customers, placed half through each replica
    let emails: Vec<String> = (0..CUSTOMERS).map(|_| email("chaos")).collect();
    let mut orders = Vec::with_capacity(ORDERS);
    let (mut events, mut late) = (Vec::new(), Vec::new());
    for i in 0..ORDERS {
        let (product, cycle) = PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize];
        let body = json!({"product": product, "cycle": cycle, "email": emails[i % CUSTOMERS]});
        let placed = lock(&replicas[i % 2]).checkout(&rt, &body)?;
        let order = Order {
            id: placed["orderId"].as_str().unwrap_or_default().to_owned(),
            invoice: placed["invoiceId"].as_str().unwrap_or_default().to_owned(),
            intent: format!("pi_{}", uuid::Uuid::new_v4().simple()),
            cents: total_cents(&placed),
            refunded: i % REFUND_EVERY == 2,
        };
        for (event, last) in events_of(&order, &placed, i % 2 == 0) {
            events.push(event.to_string());
            late.push(last);
        }
        orders.push(order);
    }
    let namespaces = rows(&rt, &ledger, "SELECT 'customer-' || handle FROM customers ORDER BY handle")?;
    let _cleanup = Namespaces { tb: &tb, names: namespaces.clone() };
    let want = Expected {
        paid: orders.iter().filter(|o| !o.refunded).count() as i64,
        refunded: orders.iter().filter(|o| o.refunded).count() as i64,
        kept_cents: orders.iter().filter(|o| !o.refunded).map(|o| o.cents).sum(),
        refunded_cents: orders.iter().filter(|o| o.refunded).map(|o| o.cents).sum(),
        events: events.len() as i64,
    };

    // each event two to four times, shuffled (the late refunds among themselves, after the rest);
    // each delivery goes first to the replicas in turn
    let mut deliveries: Vec<(usize, Duration)> = Vec::new();
    for event in 0..events.len() {
        for _ in 0..2 + rng.below(3) {
            deliveries.push((event, Duration::ZERO));
        }
    }
    rng.shuffle(&mut deliveries);
    deliveries.sort_by_key(|&(event, _)| late[event]);
    for delivery in &mut deliveries {
        delivery.1 = rng.millis(0, PAUSE_MS);
    }
    eprintln!(
        "{ORDERS} orders of {CUSTOMERS} customers ({} to be refunded): {} events in {} deliveries, set up in {:?}",
        want.refunded,
        events.len(),
        deliveries.len(),
        began.elapsed()
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let delivered = AtomicBool::new(false);
    let operator_off = AtomicBool::new(false);
    let bed = Bed { rt: &rt, tb: &tb, ledger: &ledger, logs: &logs };
    let mut chaos_rng = Rng::new(rng.next());
    let chaos_began = Instant::now();
    let (delivery, chaos_done) = std::thread::scope(|scope| {
        let chaos = scope.spawn(|| chaos(&bed, &mut relay, &replicas, &mut chaos_rng, &delivered));
        scope.spawn(|| {
            while pause_unless(&operator_off, Duration::from_secs(1)) {
                if let Err(e) = operate(&rt, &tb, &ledger, &namespaces) {
                    eprintln!("the operator: {e:#}");
                }
            }
        });
        let delivery: anyhow::Result<Vec<u32>> = rt.block_on(
            futures::stream::iter(deliveries.iter().enumerate().map(|(n, &(event, pause))| {
                let (replicas, http, body) = (&replicas, &http, &events[event]);
                async move {
                    let tries = deliver(replicas, http, n % 2, body).await?;
                    tokio::time::sleep(pause).await;
                    anyhow::Ok(tries)
                }
            }))
            .buffer_unordered(LANES)
            .try_collect(),
        );
        delivered.store(true, Ordering::SeqCst);
        let chaos_done = chaos.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the chaos thread panicked")));
        operator_off.store(true, Ordering::SeqCst);
        (delivery, chaos_done)
    });
    let outcome = (|| -> anyhow::Result<()> {
        let tries = delivery?;
        let chaos_done = chaos_done?;
        let redelivered: u32 = tries.iter().map(|t| t - 1).sum();
        eprintln!(
            "delivered in {:?}: {redelivered} redeliveries after a replica did not answer; chaos: {chaos_done:?}",
            chaos_began.elapsed()
        );

        // everything back: the work gets done
        let settling = Instant::now();
        let mut missing = None;
        let done = eventually(SETTLE, || {
            let _ = operate(&rt, &tb, &ledger, &namespaces);
            missing = settled(&rt, &tb, &ledger, &namespaces, &want)?;
            if missing.is_some() {
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok(missing.is_none())
        })?;
        ensure!(done, "the work was not done within {SETTLE:?} of the chaos ending: {}", missing.unwrap_or_default());
        let hit = ledger.text(
            &rt,
            "SELECT (SELECT count(*) FROM outbox WHERE attempts > 1) || ' outbox entries tried more than once; refunds: ' || \
                    (SELECT count(*) FROM orders o WHERE status = 'refunded' \
                       AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.order_id = o.id)) || ' before fulfilment, ' || \
                    (SELECT count(*) FROM subscriptions WHERE status = 'cancelled' AND activated_at IS NULL) || ' before activation, ' || \
                    (SELECT count(*) FROM subscriptions WHERE status = 'cancelled' AND activated_at IS NOT NULL) || ' after'",
        )?;
        eprintln!("settled in {:?}: {}", settling.elapsed(), hit.unwrap_or_default());
        check_invariants(&rt, &tb, &ledger, &namespaces, &orders, &want)
    })();
    if let Err(e) = outcome {
        for (i, replica) in replicas.iter().enumerate() {
            eprintln!("---- replica {i}, the last lines of its log:\n{}", lock(replica).log_tail(40));
        }
        eprintln!("every replica process's log is kept in {}", logs.dir.display());
        return Err(e);
    }
    eprintln!("money chaos passed in {:?}", began.elapsed());
    drop(replicas);
    let _ = std::fs::remove_dir_all(&logs.dir);
    ledger.drop_database(&rt);
    Ok(())
}
