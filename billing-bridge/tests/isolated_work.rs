//! One customer's failing work never delays another's, and two bridge replicas on one ledger do
//! every piece of work once: the real bridge binary (two of them on one ledger for the replicas),
//! PostgreSQL, the testbed's kube-apiserver with its namespace controller, and stripe-mock.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::lifecycle::{self, Tick};
use mpanel_tests::{Testbed, metric_sum};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{
    Bridge, Ledger, Namespaces, admin_token, email, eventually, report_status, session_completed, subscriptions_of,
};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);
/// How soon a customer's Subscription appears while another customer's work keeps failing.
const PROMPTLY: Duration = Duration::from_secs(15);

fn kubeconfig(tb: &Testbed) -> anyhow::Result<&Path> {
    Ok(Path::new(tb.get("KUBECONFIG")?))
}

/// Places a monthly order for `product` as a new customer.
fn order(rt: &Runtime, bridge: &Bridge, product: &str, label: &str) -> anyhow::Result<Value> {
    bridge.checkout(rt, &json!({"product": product, "cycle": "monthly", "email": email(label)}))
}

fn payment(placed: &Value) -> Value {
    session_completed(placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()))
}

/// Pays the order `placed` through the webhook, as Stripe does.
fn pay(rt: &Runtime, bridge: &Bridge, placed: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(bridge.deliver(rt, &payment(placed))? == 200, "the webhook refused the payment");
    Ok(())
}

fn exec(rt: &Runtime, ledger: &Ledger, query: &str) -> anyhow::Result<u64> {
    Ok(rt.block_on(sqlx::query(sqlx::AssertSqlSafe(query.to_owned())).execute(&ledger.pool))?.rows_affected())
}

fn order_id(placed: &Value) -> &str {
    placed["orderId"].as_str().unwrap_or_default()
}

/// The ledger subscription of the order `placed`, once fulfilment made it.
fn subscription_of(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<Option<String>> {
    ledger.text(rt, &format!("SELECT id::text FROM subscriptions WHERE order_id = '{}'", order_id(placed)))
}

/// The customer namespace of the order `placed`.
fn namespace_of(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<String> {
    ledger
        .text(
            rt,
            &format!(
                "SELECT 'customer-' || c.handle FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = '{}'",
                order_id(placed)
            ),
        )?
        .context("the order has no customer")
}

/// The Subscription resource of the order `placed`, if it appears within `within`.
fn resource_within(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    placed: &Value,
    within: Duration,
) -> anyhow::Result<Option<Value>> {
    let mut found = None;
    eventually(within, || {
        if let Some(id) = subscription_of(rt, ledger, placed)? {
            found = subscriptions_of(tb, &id)?.into_iter().next();
        }
        Ok(found.is_some())
    })?;
    Ok(found)
}

/// The failing work the admin API lists, read with `token`; `query` as `?worker=outbox`.
fn failing(rt: &Runtime, bridge: &Bridge, token: &str, query: &str) -> anyhow::Result<Vec<Value>> {
    let (status, body) = bridge.get(rt, &format!("/v1/admin/work/failing{query}"), Some(token))?;
    anyhow::ensure!(status == 200, "GET /v1/admin/work/failing{query} answered {status}: {body}");
    Ok(body["failing"].as_array().cloned().unwrap_or_default())
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

fn audit_rows(rt: &Runtime, ledger: &Ledger, action: &str, entity_id: &str) -> anyhow::Result<i64> {
    ledger.count(rt, &format!("SELECT count(*) FROM audit_log WHERE action = '{action}' AND entity_id = '{entity_id}'"))
}

/// A customer namespace stuck terminating: it holds a ConfigMap with a finalizer nobody removes
/// and is deleted, so the API server refuses anything new in it. Released when dropped.
struct Stuck<'a> {
    tb: &'a Testbed,
    namespace: String,
}

impl<'a> Stuck<'a> {
    fn hold(tb: &'a Testbed, namespace: &str) -> anyhow::Result<Self> {
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "held", "namespace": namespace, "finalizers": ["test.mpanel.migrahosting.com/held"]}},
        ]});
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&objects.to_string()))?;
        let stuck = Self { tb, namespace: namespace.to_owned() };
        tb.kubectl_ok(&["delete", "namespace", namespace, "--wait=false"], None)?;
        let phase = tb.kubectl_ok(&["get", "namespace", namespace, "-o", "jsonpath={.status.phase}"], None)?;
        anyhow::ensure!(phase == "Terminating", "namespace {namespace} is {phase:?}, not Terminating");
        Ok(stuck)
    }

    /// Removes the finalizer: the namespace controller finishes deleting the namespace.
    fn release(&self) -> anyhow::Result<()> {
        let patch = r#"{"metadata":{"finalizers":null}}"#;
        self.tb
            .kubectl_ok(&["patch", "configmap", "held", "-n", &self.namespace, "--type=merge", "-p", patch], None)?;
        Ok(())
    }
}

impl Drop for Stuck<'_> {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[test]
fn a_namespace_stuck_terminating_delays_only_its_own_customer() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?;
    let support_token = admin_token(&rt, &ledger, Role::Support)?;

    let stuck = order(&rt, &bridge, "cloudpod-mini", "stuck")?;
    let stuck_ns = namespace_of(&rt, &ledger, &stuck)?;
    let other = order(&rt, &bridge, "cloudpod-mini", "other")?;
    let other_ns = namespace_of(&rt, &ledger, &other)?;
    let _cleanup = Namespaces { tb: &tb, names: vec![stuck_ns.clone(), other_ns] };
    let held = Stuck::hold(&tb, &stuck_ns)?;
    pay(&rt, &bridge, &stuck)?;
    assert!(
        eventually(WAIT, || Ok(ledger.count(&rt, "SELECT count(*) FROM work_attempts WHERE worker = 'outbox'")? == 1))?,
        "the stuck customer's outbox entry was not tried: {}",
        bridge.log_tail(20)
    );
    let stuck_id = subscription_of(&rt, &ledger, &stuck)?.context("the stuck order has no subscription")?;

    // another customer paying now gets its Subscription while the first one's keeps failing
    let paid = Instant::now();
    pay(&rt, &bridge, &other)?;
    assert!(
        resource_within(&rt, &tb, &ledger, &other, PROMPTLY)?.is_some(),
        "another customer's Subscription did not appear within {PROMPTLY:?} of payment: {}",
        bridge.log_tail(30)
    );
    eprintln!("the other customer's Subscription appeared {:?} after payment", paid.elapsed());
    assert!(subscriptions_of(&tb, &stuck_id)?.is_empty());

    // the admin API shows the failing entry, its error and attempts, to a support token
    let listed = failing(&rt, &bridge, &support_token, "?worker=outbox")?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = &listed[0];
    assert_eq!(entry["subscription_id"], json!(stuck_id));
    assert_eq!(entry["customer_handle"], json!(stuck_ns.trim_start_matches("customer-")));
    assert_eq!(entry["reason"], json!("NamespaceTerminating"), "{entry}");
    assert!(entry["last_error"].as_str().is_some_and(|e| e.contains("being terminated")), "{entry}");
    assert!(entry["attempts"].as_i64().is_some_and(|n| n >= 1), "{entry}");
    assert!(failing(&rt, &bridge, &support_token, "?worker=fulfilment")?.is_empty());
    let (status, body) = bridge.get(&rt, "/v1/admin/work/failing", None)?;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("Unauthenticated")));
    let (status, body) = bridge.get(&rt, "/v1/admin/work/failing?worker=nobody", Some(&support_token))?;
    assert_eq!((status, &body["error"]["code"]), (422, &json!("InvalidRequest")));

    // it backs off: each wait twice the one before, and nothing tries it before its time
    let mut entry = Value::Null;
    assert!(eventually(WAIT, || {
        entry = failing(&rt, &bridge, &support_token, "?worker=outbox")?.into_iter().next().unwrap_or_default();
        Ok(entry["attempts"].as_i64().is_some_and(|n| n >= 3))
    })?);
    let attempts = entry["attempts"].as_i64().unwrap_or_default();
    let wait = (time(&entry["next_attempt_at"]) - time(&entry["last_failed_at"])).num_milliseconds();
    let doubled = 1000 * 2i64.pow(u32::try_from(attempts - 1)?);
    assert!(
        (doubled - 50..=doubled + 1000).contains(&wait),
        "after attempt {attempts} it waits {wait} ms, not {doubled}"
    );
    let almost_due = time(&entry["next_attempt_at"]) - chrono::Duration::milliseconds(300);
    std::thread::sleep((almost_due - Utc::now()).to_std().unwrap_or_default());
    assert_eq!(
        ledger.count(&rt, "SELECT attempts::int8 FROM work_attempts WHERE worker = 'outbox'")?,
        attempts,
        "the entry was tried before its next attempt was due"
    );
    // one audit row for the failure, not one per attempt; the metrics count every attempt
    assert_eq!(audit_rows(&rt, &ledger, "work.failed", &stuck_id)?, 1);
    let metrics = bridge.metrics(&rt)?;
    let failures = metric_sum(
        &metrics,
        "mpanel_bridge_work_failures_total",
        &[("worker", "outbox"), ("reason", "NamespaceTerminating")],
    );
    assert!(failures >= attempts as f64, "{failures} failures counted for {attempts} attempts");
    assert_eq!(metric_sum(&metrics, "mpanel_bridge_work_in_backoff", &[("worker", "outbox")]), 1.0);

    // once the namespace is gone the entry is applied, and it is no longer failing
    held.release()?;
    assert!(
        resource_within(&rt, &tb, &ledger, &stuck, Duration::from_secs(90))?.is_some(),
        "the stuck customer's Subscription did not appear once its namespace was gone: {}",
        bridge.log_tail(30)
    );
    assert!(failing(&rt, &bridge, &support_token, "")?.is_empty());
    assert_eq!(audit_rows(&rt, &ledger, "work.recovered", &stuck_id)?, 1);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM outbox WHERE done_at IS NULL")?, 0);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_template_that_no_longer_renders_delays_only_its_own_invoice() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?;
    let token = admin_token(&rt, &ledger, Role::ReadOnly)?;

    let broken = order(&rt, &bridge, "cloudpod-pro", "broken")?;
    let fine = order(&rt, &bridge, "cloudpod-mini", "fine")?;
    let _cleanup =
        Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &broken)?, namespace_of(&rt, &ledger, &fine)?] };
    let template = ledger
        .text(&rt, "SELECT template::text FROM products WHERE slug = 'cloudpod-pro'")?
        .context("no cloudpod-pro")?;
    exec(
        &rt,
        &ledger,
        r#"UPDATE products SET template = '{"cloudPods": [{"name": "${nosuch}"}]}' WHERE slug = 'cloudpod-pro'"#,
    )?;
    pay(&rt, &bridge, &broken)?;
    assert!(eventually(WAIT, || Ok(ledger
        .count(&rt, "SELECT count(*) FROM work_attempts WHERE worker = 'fulfilment'")?
        == 1))?);

    pay(&rt, &bridge, &fine)?;
    assert!(
        resource_within(&rt, &tb, &ledger, &fine, PROMPTLY)?.is_some(),
        "another customer's Subscription did not appear within {PROMPTLY:?}: {}",
        bridge.log_tail(30)
    );
    let listed = failing(&rt, &bridge, &token, "?worker=fulfilment")?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["item"], broken["invoiceId"]);
    assert_eq!(listed[0]["reason"], json!("TemplateNotRendered"));
    assert!(
        listed[0]["last_error"].as_str().is_some_and(|e| e.contains("unknown placeholder ${nosuch}")),
        "{listed:?}"
    );
    assert_eq!(subscription_of(&rt, &ledger, &broken)?, None, "a failed fulfilment left a subscription");
    let number = broken["invoiceNumber"].as_str().unwrap_or_default();
    assert_eq!(audit_rows(&rt, &ledger, "work.failed", number)?, 1);

    // the template mended, the invoice is fulfilled on its next attempt
    rt.block_on(
        sqlx::query("UPDATE products SET template = $1::jsonb WHERE slug = 'cloudpod-pro'")
            .bind(&template)
            .execute(&ledger.pool),
    )?;
    assert!(resource_within(&rt, &tb, &ledger, &broken, WAIT)?.is_some(), "{}", bridge.log_tail(30));
    assert!(failing(&rt, &bridge, &token, "")?.is_empty());
    assert_eq!(audit_rows(&rt, &ledger, "work.recovered", number)?, 1);
    assert_eq!(audit_rows(&rt, &ledger, "invoice.fulfilled", number)?, 1);
    ledger.drop_database(&rt);
    Ok(())
}

/// Reports every resource of `placed` Ready and waits until the ledger activated them all.
fn activate_all(rt: &Runtime, tb: &Testbed, ledger: &Ledger, placed: &[Value]) -> anyhow::Result<()> {
    for order in placed {
        let resource = resource_within(rt, tb, ledger, order, WAIT)?.context("no Subscription to activate")?;
        report_status(tb, &resource, "Active", true, "all 1 resources are Ready")?;
    }
    let orders = placed.iter().map(|p| format!("'{}'", order_id(p))).collect::<Vec<_>>().join(", ");
    let active = format!("SELECT count(*) FROM subscriptions WHERE status = 'active' AND order_id IN ({orders})");
    anyhow::ensure!(
        eventually(WAIT, || Ok(ledger.count(rt, &active)? == placed.len() as i64))?,
        "the subscriptions did not all become active"
    );
    Ok(())
}

fn latest_period_end(rt: &Runtime, ledger: &Ledger) -> anyhow::Result<DateTime<Utc>> {
    let end: Option<DateTime<Utc>> =
        rt.block_on(sqlx::query_scalar("SELECT max(current_period_end) FROM subscriptions").fetch_one(&ledger.pool))?;
    end.context("no subscription has a period")
}

#[test]
fn a_product_that_lost_its_price_fails_only_its_own_renewal() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?;
    let token = admin_token(&rt, &ledger, Role::ReadOnly)?;
    let priceless = order(&rt, &bridge, "cloudpod-pro", "priceless")?;
    let priced = order(&rt, &bridge, "cloudpod-mini", "priced")?;
    let _cleanup = Namespaces {
        tb: &tb,
        names: vec![namespace_of(&rt, &ledger, &priceless)?, namespace_of(&rt, &ledger, &priced)?],
    };
    pay(&rt, &bridge, &priceless)?;
    pay(&rt, &bridge, &priced)?;
    activate_all(&rt, &tb, &ledger, &[priceless.clone(), priced.clone()])?;
    let priceless_id = subscription_of(&rt, &ledger, &priceless)?.unwrap_or_default();
    let priced_id = subscription_of(&rt, &ledger, &priced)?.unwrap_or_default();

    exec(
        &rt,
        &ledger,
        "DELETE FROM product_prices WHERE product_id = (SELECT id FROM products WHERE slug = 'cloudpod-pro')",
    )?;
    let at = latest_period_end(&rt, &ledger)? - chrono::Duration::days(7);
    let tick = |at| rt.block_on(lifecycle::tick(&ledger.pool, at));
    assert_eq!(tick(at)?, Tick { renewal_invoices: 1, failed: 1, ..Tick::default() });
    let renewals = |id: &str| {
        ledger.count(
            &rt,
            &format!("SELECT count(*) FROM invoices WHERE subscription_id = '{id}' AND period_start IS NOT NULL"),
        )
    };
    assert_eq!((renewals(&priceless_id)?, renewals(&priced_id)?), (0, 1));
    let listed = failing(&rt, &bridge, &token, "?worker=lifecycle")?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["subscription_id"], json!(priceless_id));
    assert_eq!(listed[0]["reason"], json!("NoRenewalPrice"));
    assert_eq!(listed[0]["attempts"], json!(1));
    // waiting for its next attempt, the next pass leaves it alone
    assert_eq!(tick(at)?, Tick::default());
    assert_eq!(audit_rows(&rt, &ledger, "work.failed", &priceless_id)?, 1);

    exec(
        &rt,
        &ledger,
        "INSERT INTO product_prices (product_id, cycle, amount_cents) \
         SELECT id, 'monthly', 1999 FROM products WHERE slug = 'cloudpod-pro'",
    )?;
    let mut done = Tick::default();
    assert!(eventually(WAIT, || {
        done = tick(at)?;
        Ok(done != Tick::default())
    })?);
    assert_eq!(done, Tick { renewal_invoices: 1, ..Tick::default() });
    assert_eq!((renewals(&priceless_id)?, renewals(&priced_id)?), (1, 1));
    assert!(failing(&rt, &bridge, &token, "")?.is_empty());
    ledger.drop_database(&rt);
    Ok(())
}

/// Two lifecycle passes as of `at` at the same time, each on a pool of its own (as two replicas).
fn concurrent_ticks(rt: &Runtime, pools: &[PgPool; 2], at: DateTime<Utc>) -> anyhow::Result<Tick> {
    let (a, b) = rt.block_on(async { tokio::join!(lifecycle::tick(&pools[0], at), lifecycle::tick(&pools[1], at)) });
    let mut both = a?;
    both += b?;
    Ok(both)
}

/// Outbox entries carried out, counted by every bridge.
fn applied(rt: &Runtime, bridges: &[Bridge]) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for bridge in bridges {
        sum += metric_sum(&bridge.metrics(rt)?, "mpanel_bridge_outbox_applied_total", &[]);
    }
    Ok(sum)
}

/// Waits until every outbox entry is done and the bridges together carried out exactly as many.
fn outbox_worked_off_once(rt: &Runtime, ledger: &Ledger, bridges: &[Bridge]) -> anyhow::Result<()> {
    let mut seen = (0, 0.0);
    let done = eventually(Duration::from_secs(60), || {
        let entries = ledger.count(rt, "SELECT count(*) FROM outbox")?;
        let pending = ledger.count(rt, "SELECT count(*) FROM outbox WHERE done_at IS NULL")?;
        seen = (entries, applied(rt, bridges)?);
        Ok(pending == 0 && seen.1 >= entries as f64)
    })?;
    anyhow::ensure!(done, "the outbox was not worked off: {} entries, {} carried out", seen.0, seen.1);
    std::thread::sleep(Duration::from_millis(500));
    let (entries, carried) = (ledger.count(rt, "SELECT count(*) FROM outbox")?, applied(rt, bridges)?);
    anyhow::ensure!(carried == entries as f64, "{entries} outbox entries were carried out {carried} times");
    Ok(())
}

#[test]
fn two_replicas_on_one_ledger_do_every_piece_of_work_once() -> anyhow::Result<()> {
    const ORDERS: usize = 8;
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridges =
        [Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?, Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?];
    let placed: Vec<Value> =
        (0..ORDERS).map(|i| order(&rt, &bridges[i % 2], "cloudpod-mini", "replica")).collect::<Result<_, _>>()?;
    let _cleanup =
        Namespaces { tb: &tb, names: placed.iter().map(|p| namespace_of(&rt, &ledger, p)).collect::<Result<_, _>>()? };

    // a burst of payments, half to each replica, all at once
    let now = Utc::now().timestamp();
    let statuses = rt.block_on(futures::future::join_all(placed.iter().enumerate().map(|(i, p)| {
        let bridge = &bridges[i % 2];
        let event = payment(p);
        async move { bridge.deliver_at(&event, &bridge.webhook_secret, now).await }
    })));
    for status in statuses {
        assert_eq!(status?, 200);
    }
    for p in &placed {
        assert!(resource_within(&rt, &tb, &ledger, p, WAIT)?.is_some(), "{}", bridges[0].log_tail(20));
    }
    let n = ORDERS as i64;
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM subscriptions")?, n);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM invoices WHERE fulfilled_at IS NOT NULL")?, n);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM audit_log WHERE action = 'invoice.fulfilled'")?, n);
    outbox_worked_off_once(&rt, &ledger, &bridges)?;
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM outbox")?, n);
    for p in &placed {
        let id = subscription_of(&rt, &ledger, p)?.unwrap_or_default();
        assert_eq!(subscriptions_of(&tb, &id)?.len(), 1);
    }

    // both replicas watch every resource; each subscription is activated once
    activate_all(&rt, &tb, &ledger, &placed)?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM audit_log WHERE action = 'subscription.activated'")?, n);
    outbox_worked_off_once(&rt, &ledger, &bridges)?;
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM outbox")?, 2 * n);

    // two lifecycle passes at once, as two replicas run them: every step once
    let pools = [rt.block_on(PgPool::connect(&ledger.url))?, rt.block_on(PgPool::connect(&ledger.url))?];
    let end = latest_period_end(&rt, &ledger)?;
    let days = chrono::Duration::days;
    let steps = [
        (end - days(7), Tick { renewal_invoices: ORDERS, ..Tick::default() }, "invoice.renewal"),
        (end - days(7), Tick::default(), "invoice.renewal"),
        (end + chrono::Duration::hours(1), Tick { past_due: ORDERS, ..Tick::default() }, "subscription.past_due"),
        (end + days(8), Tick { suspended: ORDERS, ..Tick::default() }, "subscription.suspended"),
        (end + days(8), Tick::default(), "subscription.suspended"),
        (end + days(31), Tick { cancelled: ORDERS, ..Tick::default() }, "subscription.terminated"),
    ];
    for (at, expected, action) in steps {
        assert_eq!(concurrent_ticks(&rt, &pools, at)?, expected, "the passes as of {at}");
        let audited = format!("SELECT count(*) FROM audit_log WHERE action = '{action}'");
        assert_eq!(ledger.count(&rt, &audited)?, n, "{action} audit rows after the passes as of {at}");
    }
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM invoices WHERE period_start IS NOT NULL")?, n);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM invoices WHERE status = 'void'")?, n);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM subscriptions WHERE status = 'cancelled'")?, n);
    // past due, suspended and terminated: an entry each, carried out once between the replicas
    outbox_worked_off_once(&rt, &ledger, &bridges)?;
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM outbox")?, 5 * n);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM work_attempts")?, 0);
    for pool in pools {
        rt.block_on(pool.close());
    }
    drop(bridges);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_customers_single_order_is_not_held_behind_another_customers_burst() -> anyhow::Result<()> {
    const BURST: usize = 40;
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut bridge = Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?;
    let bursting = email("burst");
    let mut burst = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        burst.push(bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": bursting}))?);
    }
    let single = order(&rt, &bridge, "cloudpod-mini", "single")?;
    bridge.stop();

    // paid while no bridge runs (an accounting system marking invoices paid): the burst first, the
    // single order after it, so that first come, first served would fulfil it last
    let ids = |orders: &[Value]| orders.iter().map(|o| format!("'{}'", order_id(o))).collect::<Vec<_>>().join(", ");
    assert_eq!(
        exec(&rt, &ledger, &format!("UPDATE invoices SET status = 'paid' WHERE order_id IN ({})", ids(&burst)))?,
        BURST as u64
    );
    assert_eq!(
        exec(
            &rt,
            &ledger,
            &format!("UPDATE invoices SET status = 'paid' WHERE order_id IN ({})", ids(std::slice::from_ref(&single)))
        )?,
        1
    );

    let bridge = Bridge::start(&rt, &tb, &ledger, kubeconfig(&tb)?)?;
    let _cleanup = Namespaces {
        tb: &tb,
        names: vec![namespace_of(&rt, &ledger, &burst[0])?, namespace_of(&rt, &ledger, &single)?],
    };
    let all_applied = eventually(Duration::from_secs(60), || {
        Ok(ledger.count(&rt, "SELECT count(*) FROM outbox WHERE done_at IS NOT NULL")? == BURST as i64 + 1)
    })?;
    assert!(all_applied, "the orders were not all applied: {}", bridge.log_tail(20));

    let single_order = order_id(&single);
    let fulfilled_before = ledger.count(
        &rt,
        &format!(
            "SELECT count(*) FROM invoices WHERE fulfilled_at < (SELECT fulfilled_at FROM invoices WHERE order_id = '{single_order}')"
        ),
    )?;
    let applied_before = ledger.count(
        &rt,
        &format!(
            "SELECT count(*) FROM outbox WHERE done_at < (SELECT o.done_at FROM outbox o JOIN subscriptions s \
             ON s.id = o.subscription_id WHERE s.order_id = '{single_order}')"
        ),
    )?;
    // a turn comes within the first round of the lanes (4 fulfilment, 8 outbox), not after the burst
    assert!(
        fulfilled_before <= 8,
        "{fulfilled_before} of the burst's invoices were fulfilled before the single order's"
    );
    assert!(applied_before <= 16, "{applied_before} of the burst's resources were applied before the single order's");
    assert_eq!(subscriptions_of(&tb, &subscription_of(&rt, &ledger, &single)?.unwrap_or_default())?.len(), 1);
    ledger.drop_database(&rt);
    Ok(())
}
