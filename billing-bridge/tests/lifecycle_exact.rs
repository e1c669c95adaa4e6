//! The subscription lifecycle, exact: a payment that lands while a lifecycle pass is under way
//! leaves its customer active; cancelling (now or at period end) voids the open renewal invoice,
//! and a cancelled subscription never comes back whatever is paid on it afterwards; periods keep
//! their anchor day; a Domain's `paidUntil` counts the years paid from the registration, not the
//! billing period; and an order mixing cycles renews each item in its own. The real bridge on
//! PostgreSQL, the testbed's kube-apiserver and stripe-mock; the lifecycle and activation times are
//! injected through the library.

mod support;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::ledger::{Cycle, payments};
use mpanel_billing_bridge::lifecycle::{self, Tick};
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use support::{
    Bridge, Ledger, Namespaces, admin_token, email, eventually, payment_intent, report_status, session_completed,
    subscriptions_of,
};
use tokio::runtime::Runtime;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> anyhow::Result<DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().ok_or_else(|| anyhow::anyhow!("no such time {y}-{m}-{d} {h}h"))
}

/// Buys with the checkout `body` and pays; the ledger subscription id and its resource.
fn buy(rt: &Runtime, tb: &Testbed, ledger: &Ledger, bridge: &Bridge, body: &Value) -> anyhow::Result<(String, Value)> {
    let placed = bridge.checkout(rt, body)?;
    let event = session_completed(&placed, &format!("pi_{}", Uuid::new_v4().simple()));
    assert_eq!(bridge.deliver(rt, &event)?, 200);
    let order = placed["orderId"].as_str().unwrap_or_default();
    let (mut id, mut found) = (String::new(), Vec::new());
    assert!(
        eventually(WAIT, || {
            id = ledger
                .text(rt, &format!("SELECT id::text FROM subscriptions WHERE order_id = '{order}'"))?
                .unwrap_or_default();
            found = if id.is_empty() { Vec::new() } else { subscriptions_of(tb, &id)? };
            Ok(!found.is_empty())
        })?,
        "the paid order made no Subscription resource"
    );
    Ok((id, found.remove(0)))
}

fn cloudpod(cycle: &str) -> Value {
    json!({"product": "cloudpod-mini", "cycle": cycle, "email": email("exact")})
}

fn namespaces<'a>(tb: &'a Testbed, resources: &[&Value]) -> Namespaces<'a> {
    Namespaces {
        tb,
        names: resources.iter().map(|r| r["metadata"]["namespace"].as_str().unwrap_or_default().to_owned()).collect(),
    }
}

/// Activated as the operator's report of a Ready resource activates it (now).
fn activate_now(rt: &Runtime, tb: &Testbed, ledger: &Ledger, id: &str, res: &Value) -> anyhow::Result<()> {
    report_status(tb, res, "Active", true, "all 1 resources are Ready")?;
    assert!(eventually(WAIT, || Ok(state(rt, ledger, id)? == "active"))?, "the Ready resource did not activate");
    Ok(())
}

fn tick(rt: &Runtime, ledger: &Ledger, at: DateTime<Utc>) -> anyhow::Result<Tick> {
    Ok(rt.block_on(lifecycle::tick(&ledger.pool, at))?)
}

/// `status`, or `status/suspension reason` when it has one.
fn state(rt: &Runtime, ledger: &Ledger, id: &str) -> anyhow::Result<String> {
    Ok(ledger
        .text(
            rt,
            &format!("SELECT status || coalesce('/' || suspension_reason, '') FROM subscriptions WHERE id = '{id}'"),
        )?
        .unwrap_or_default())
}

fn period_end(rt: &Runtime, ledger: &Ledger, id: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(rt.block_on(
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT current_period_end FROM subscriptions WHERE id = '{id}'")))
            .fetch_one(&ledger.pool),
    )?)
}

/// The renewal invoice of `id` for the period starting at `start`, with the period's end.
fn renewal(rt: &Runtime, ledger: &Ledger, id: &str, start: DateTime<Utc>) -> anyhow::Result<(Uuid, DateTime<Utc>)> {
    Ok(rt.block_on(
        sqlx::query_as("SELECT id, period_end FROM invoices WHERE subscription_id = $1::uuid AND period_start = $2")
            .bind(id)
            .bind(start)
            .fetch_one(&ledger.pool),
    )?)
}

fn invoice_status(rt: &Runtime, ledger: &Ledger, invoice: Uuid) -> anyhow::Result<String> {
    Ok(ledger.text(rt, &format!("SELECT status FROM invoices WHERE id = '{invoice}'"))?.unwrap_or_default())
}

/// Staff record the invoice paid by hand (one manual payment), as `mark-paid` does.
fn pay(rt: &Runtime, ledger: &Ledger, invoice: Uuid) -> anyhow::Result<()> {
    rt.block_on(async {
        let mut tx = ledger.pool.begin().await?;
        payments::pay_rest_by_hand(&mut tx, invoice).await?;
        tx.commit().await?;
        Ok(())
    })
}

/// The lifecycle's past-due and suspension audit rows of `id`.
fn overdue_audits(rt: &Runtime, ledger: &Ledger, id: &str) -> anyhow::Result<i64> {
    ledger.count(
        rt,
        &format!(
            "SELECT count(*) FROM audit_log WHERE entity = 'subscription' AND entity_id = '{id}' \
             AND action IN ('subscription.past_due', 'subscription.suspended')"
        ),
    )
}

fn audits(rt: &Runtime, ledger: &Ledger, id: &str, action: &str) -> anyhow::Result<i64> {
    ledger.count(rt, &format!("SELECT count(*) FROM audit_log WHERE entity_id = '{id}' AND action = '{action}'"))
}

fn resource(tb: &Testbed, id: &str) -> anyhow::Result<Option<Value>> {
    Ok(subscriptions_of(tb, id)?.into_iter().next())
}

/// Every outbox entry of `id` carried out.
fn outbox_drained(rt: &Runtime, ledger: &Ledger, id: &str) -> anyhow::Result<bool> {
    Ok(ledger.count(rt, &format!("SELECT count(*) FROM outbox WHERE subscription_id = '{id}' AND done_at IS NULL"))?
        == 0)
}

fn cancel(rt: &Runtime, bridge: &Bridge, token: &str, id: &str, at_period_end: bool) -> anyhow::Result<(u16, Value)> {
    bridge.post(
        rt,
        &format!("/v1/admin/subscriptions/{id}/cancel"),
        &json!({"atPeriodEnd": at_period_end}),
        Some(token),
    )
}

#[test]
fn a_payment_that_lands_during_a_lifecycle_pass_leaves_the_customer_active() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let (id, res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("monthly"))?;
    let _cleanup = namespaces(&tb, &[&res]);
    activate_now(&rt, &tb, &ledger, &id, &res)?;

    // the pass reads what is due (the grace is over: suspension), then the payment lands and is
    // fulfilled, then the pass works through what it read
    let end = period_end(&rt, &ledger, &id)?;
    assert_eq!(tick(&rt, &ledger, end - days(7))?.renewal_invoices, 1);
    let (invoice, _) = renewal(&rt, &ledger, &id, end)?;
    let suspend_at = end + days(7);
    let due = rt.block_on(lifecycle::agenda(&ledger.pool, suspend_at))?;
    assert!(!due.is_empty(), "nothing was due at the end of the grace period");
    pay(&rt, &ledger, invoice)?;
    assert!(eventually(WAIT, || Ok(period_end(&rt, &ledger, &id)? > end))?, "the paid renewal was not fulfilled");
    let done = rt.block_on(lifecycle::work_through(&ledger.pool, &due, suspend_at, None))?;
    assert_eq!(done, Tick::default(), "the pass acted on what it read before the payment");
    assert_eq!(state(&rt, &ledger, &id)?, "active");
    assert_eq!(overdue_audits(&rt, &ledger, &id)?, 0, "a paid customer was recorded past due or suspended");

    // the next renewal: the payment's transaction holds the invoice while a whole pass runs, and
    // commits after the pass has read the invoice as unpaid
    let end = period_end(&rt, &ledger, &id)?;
    assert_eq!(tick(&rt, &ledger, end - days(7))?.renewal_invoices, 1);
    let (invoice, _) = renewal(&rt, &ledger, &id, end)?;
    let suspend_at = end + days(7);
    let done = rt.block_on(async {
        let mut payment = ledger.pool.begin().await?;
        payments::pay_rest_by_hand(&mut payment, invoice).await?;
        let pool = ledger.pool.clone();
        let pass = tokio::spawn(async move { lifecycle::tick(&pool, suspend_at).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        payment.commit().await?;
        anyhow::Ok(pass.await??)
    })?;
    assert_eq!(done, Tick::default(), "the pass acted on an invoice being paid");
    assert!(eventually(WAIT, || Ok(period_end(&rt, &ledger, &id)? > end))?, "the paid renewal was not fulfilled");
    assert_eq!(state(&rt, &ledger, &id)?, "active");
    assert_eq!(overdue_audits(&rt, &ledger, &id)?, 0, "a paid customer was recorded past due or suspended");
    assert!(eventually(WAIT, || Ok(resource(&tb, &id)?
        .is_some_and(|r| r["spec"]["billing"]["state"] == "Paid" && r["spec"].get("suspension").is_none())))?);

    // and unpaid, the same pass does suspend: the decision is the rows', not a pass that never acts
    let end = period_end(&rt, &ledger, &id)?;
    assert_eq!(tick(&rt, &ledger, end - days(7))?.renewal_invoices, 1);
    assert_eq!(tick(&rt, &ledger, end + days(7))?.suspended, 1);
    assert_eq!(state(&rt, &ledger, &id)?, "suspended/Overdue");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn cancelling_at_period_end_voids_the_open_renewal_and_ends_with_the_period() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let token = admin_token(&rt, &ledger, Role::Billing)?;
    // `renewed` has its renewal invoice when it is cancelled, `early` is cancelled before one is due
    let (renewed, renewed_res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("monthly"))?;
    let (early, early_res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("monthly"))?;
    let _cleanup = namespaces(&tb, &[&renewed_res, &early_res]);
    activate_now(&rt, &tb, &ledger, &renewed, &renewed_res)?;
    activate_now(&rt, &tb, &ledger, &early, &early_res)?;
    let (first, last) = (period_end(&rt, &ledger, &renewed)?, period_end(&rt, &ledger, &early)?);

    let (status, answer) = cancel(&rt, &bridge, &token, &early, true)?;
    assert_eq!((status, answer["cancel_at_period_end"].as_bool()), (200, Some(true)), "{answer}");
    assert_eq!(tick(&rt, &ledger, last - days(7))?.renewal_invoices, 1, "a subscription ending got a renewal");
    let (invoice, _) = renewal(&rt, &ledger, &renewed, first)?;
    assert_eq!(invoice_status(&rt, &ledger, invoice)?, "issued");

    let (status, answer) = cancel(&rt, &bridge, &token, &renewed, true)?;
    assert_eq!((status, answer["status"].as_str()), (200, Some("active")), "{answer}");
    assert_eq!(invoice_status(&rt, &ledger, invoice)?, "void", "the open renewal invoice was not voided");
    assert_eq!(audits(&rt, &ledger, &renewed, "subscription.cancel")?, 1);

    // service until the period ends, then cancelled and the resources deleted
    assert_eq!(tick(&rt, &ledger, first.min(last) - chrono::Duration::hours(1))?, Tick::default());
    assert_eq!(state(&rt, &ledger, &renewed)?, "active");
    assert_eq!(tick(&rt, &ledger, first.max(last))?, Tick { cancelled: 2, ..Tick::default() });
    for id in [&renewed, &early] {
        assert_eq!(state(&rt, &ledger, id)?, "cancelled");
        assert_eq!(audits(&rt, &ledger, id, "subscription.ended")?, 1);
        assert!(eventually(WAIT, || Ok(resource(&tb, id)?.is_none()))?, "the ended subscription's resource is there");
    }
    // nothing is overdue afterwards: no past due, suspension or termination
    for later in [days(8), days(31)] {
        assert_eq!(tick(&rt, &ledger, first.max(last) + later)?, Tick::default());
    }
    for id in [&renewed, &early] {
        assert_eq!(overdue_audits(&rt, &ledger, id)?, 0);
        assert_eq!(state(&rt, &ledger, id)?, "cancelled");
    }
    let (status, answer) = cancel(&rt, &bridge, &token, &renewed, true)?;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("Conflict")), "{answer}");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_cancelled_subscription_stays_cancelled_whatever_is_paid_afterwards() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let token = admin_token(&rt, &ledger, Role::Billing)?;
    // `voided`: its renewal is open when it is cancelled; `raced`: its renewal was paid just before
    let (voided, voided_res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("monthly"))?;
    let (raced, raced_res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("monthly"))?;
    let _cleanup = namespaces(&tb, &[&voided_res, &raced_res]);
    activate_now(&rt, &tb, &ledger, &voided, &voided_res)?;
    activate_now(&rt, &tb, &ledger, &raced, &raced_res)?;
    let (voided_end, raced_end) = (period_end(&rt, &ledger, &voided)?, period_end(&rt, &ledger, &raced)?);
    assert_eq!(tick(&rt, &ledger, voided_end.max(raced_end) - days(7))?.renewal_invoices, 2);

    let (open, _) = renewal(&rt, &ledger, &voided, voided_end)?;
    let (status, answer) = cancel(&rt, &bridge, &token, &voided, false)?;
    assert_eq!((status, answer["status"].as_str()), (200, Some("cancelled")), "{answer}");
    assert_eq!(invoice_status(&rt, &ledger, open)?, "void", "cancelling left the renewal invoice open");
    assert!(eventually(WAIT, || Ok(resource(&tb, &voided)?.is_none()))?);
    // the customer pays it anyway: the money is recorded and given back, the invoice stays void
    let paid =
        payment_intent("payment_intent.succeeded", &format!("pi_{}", Uuid::new_v4().simple()), &open.to_string(), 999);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    let refunded = format!(
        "SELECT count(*) FROM payments WHERE invoice_id = '{open}' AND amount = 9.99 AND refunded_amount = 9.99 \
         AND status = 'refunded'"
    );
    assert!(
        eventually(WAIT, || Ok(ledger.count(&rt, &refunded)? == 1))?,
        "the payment on the void invoice was not recorded and refunded"
    );
    assert_eq!(invoice_status(&rt, &ledger, open)?, "void");

    // paid a moment before the cancellation, fulfilled after it (held back until then)
    let (settled, _) = renewal(&rt, &ledger, &raced, raced_end)?;
    rt.block_on(
        sqlx::query(
            "INSERT INTO work_attempts (worker, item, subscription_id, attempts, reason, last_error, next_attempt_at) \
             VALUES ('fulfilment', $1, $2::uuid, 1, 'HeldByTest', 'held until the subscription is cancelled', \
                     now() + interval '1 hour')",
        )
        .bind(settled.to_string())
        .bind(&raced)
        .execute(&ledger.pool),
    )?;
    pay(&rt, &ledger, settled)?;
    let (status, answer) = cancel(&rt, &bridge, &token, &raced, false)?;
    assert_eq!((status, answer["status"].as_str()), (200, Some("cancelled")), "{answer}");
    assert_eq!(invoice_status(&rt, &ledger, settled)?, "paid");
    assert!(eventually(WAIT, || Ok(resource(&tb, &raced)?.is_none()))?);
    rt.block_on(
        sqlx::query("UPDATE work_attempts SET next_attempt_at = now() WHERE worker = 'fulfilment' AND item = $1")
            .bind(settled.to_string())
            .execute(&ledger.pool),
    )?;
    assert!(
        eventually(WAIT, || Ok(ledger.count(
            &rt,
            &format!("SELECT count(*) FROM invoices WHERE id = '{settled}' AND fulfilled_at IS NOT NULL")
        )? == 1))?,
        "the paid renewal was never fulfilled"
    );

    // neither comes back: cancelled, the period where it ended, no resource once the outbox is done
    for (id, end) in [(&voided, voided_end), (&raced, raced_end)] {
        assert!(eventually(WAIT, || outbox_drained(&rt, &ledger, id))?, "the outbox did not drain");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(state(&rt, &ledger, id)?, "cancelled");
        assert_eq!(period_end(&rt, &ledger, id)?, end, "a cancelled subscription's period moved on");
        assert!(resource(&tb, id)?.is_none(), "a cancelled subscription's resource came back");
    }
    assert_eq!(tick(&rt, &ledger, voided_end.max(raced_end) + days(31))?, Tick::default());
    ledger.drop_database(&rt);
    Ok(())
}

/// Renews `id` once per expected end: the renewal invoice issued at the notice, paid, fulfilled;
/// every period end checked against `ends` (`YYYY-MM-DD`).
fn renew_through(rt: &Runtime, ledger: &Ledger, id: &str, ends: &[&str]) -> anyhow::Result<()> {
    for (n, expected) in ends.iter().enumerate() {
        let start = period_end(rt, ledger, id)?;
        assert_eq!(tick(rt, ledger, start - days(7))?.renewal_invoices, 1, "renewal {}", n + 1);
        let (invoice, end) = renewal(rt, ledger, id, start)?;
        assert_eq!(end.format("%Y-%m-%d").to_string(), *expected, "the period of renewal {} after {start}", n + 1);
        pay(rt, ledger, invoice)?;
        assert!(eventually(WAIT, || Ok(period_end(rt, ledger, id)? == end))?, "renewal {} was not fulfilled", n + 1);
    }
    Ok(())
}

#[test]
fn monthly_periods_keep_the_31st() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let (id, res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("monthly"))?;
    let _cleanup = namespaces(&tb, &[&res]);

    // from 31 January 2027: the last day of shorter months, the 31st again after them
    support::activate_at(&rt, &ledger, Uuid::parse_str(&id)?, Cycle::Monthly, utc(2027, 1, 31, 9)?)?;
    assert_eq!(period_end(&rt, &ledger, &id)?, utc(2027, 2, 28, 9)?);
    renew_through(
        &rt,
        &ledger,
        &id,
        &[
            "2027-03-31",
            "2027-04-30",
            "2027-05-31",
            "2027-06-30",
            "2027-07-31",
            "2027-08-31",
            "2027-09-30",
            "2027-10-31",
            "2027-11-30",
            "2027-12-31",
            "2028-01-31",
            "2028-02-29",
            "2028-03-31",
            "2028-04-30",
        ],
    )?;
    assert_eq!(period_end(&rt, &ledger, &id)?, utc(2028, 4, 30, 9)?, "the time of day moved");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn yearly_periods_keep_29_february() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let (id, res) = buy(&rt, &tb, &ledger, &bridge, &cloudpod("annual"))?;
    let _cleanup = namespaces(&tb, &[&res]);

    // from 29 February 2028: 28 February, and 29 February again in the next leap year
    support::activate_at(&rt, &ledger, Uuid::parse_str(&id)?, Cycle::Annual, utc(2028, 2, 29, 9)?)?;
    assert_eq!(period_end(&rt, &ledger, &id)?, utc(2029, 2, 28, 9)?);
    renew_through(&rt, &ledger, &id, &["2030-02-28", "2031-02-28", "2032-02-29", "2033-02-28"])?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_domains_paid_until_is_the_registration_reached_by_the_years_paid() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let name = format!("exact-{}-{}.com", std::process::id(), &Uuid::new_v4().simple().to_string()[..8]);
    let body = json!({"product": "domain", "cycle": "annual", "email": email("domain"), "domain": name});
    let (id, res) = buy(&rt, &tb, &ledger, &bridge, &body)?;
    let _cleanup = namespaces(&tb, &[&res]);
    let paid_until = |expected: &str| {
        eventually(WAIT, || Ok(resource(&tb, &id)?.is_some_and(|r| r["spec"]["billing"]["paidUntil"] == expected)))
    };

    // ordered on 31 January 2027 (registered for a year from then), active only after midnight:
    // the billing period runs from 1 February, the registration from 31 January
    rt.block_on(
        sqlx::query(
            "UPDATE orders SET created_at = $2 FROM subscriptions s WHERE s.id = $1::uuid AND orders.id = s.order_id",
        )
        .bind(&id)
        .bind(utc(2027, 1, 31, 15)?)
        .execute(&ledger.pool),
    )?;
    let activated = utc(2027, 2, 1, 3)?;
    support::activate_at(&rt, &ledger, Uuid::parse_str(&id)?, Cycle::Annual, activated)?;
    assert_eq!(period_end(&rt, &ledger, &id)?, utc(2028, 2, 1, 3)?);
    assert!(paid_until("2028-01-31")?, "paidUntil is not the year registered: {:?}", resource(&tb, &id)?);

    // one renewal paid: one more year at the registrar, to 31 January 2029 and not a day beyond
    assert_eq!(tick(&rt, &ledger, utc(2028, 1, 25, 3)?)?.renewal_invoices, 1);
    let (invoice, _) = renewal(&rt, &ledger, &id, utc(2028, 2, 1, 3)?)?;
    pay(&rt, &ledger, invoice)?;
    assert!(eventually(WAIT, || Ok(period_end(&rt, &ledger, &id)? == utc(2029, 2, 1, 3)?))?);
    assert!(
        paid_until("2029-01-31")?,
        "paidUntil is not the registration plus the year paid: {:?}",
        resource(&tb, &id)?
    );
    ledger.drop_database(&rt);
    Ok(())
}

/// The descriptions of an invoice's lines and its total.
fn lines_and_total(rt: &Runtime, ledger: &Ledger, invoice: Uuid) -> anyhow::Result<(Vec<String>, String)> {
    let lines = rt.block_on(
        sqlx::query_scalar("SELECT description FROM invoice_lines WHERE invoice_id = $1 ORDER BY position")
            .bind(invoice)
            .fetch_all(&ledger.pool),
    )?;
    let total = ledger.text(rt, &format!("SELECT total::text FROM invoices WHERE id = '{invoice}'"))?;
    Ok((lines, total.unwrap_or_default()))
}

#[test]
fn an_order_mixing_cycles_renews_each_item_in_its_own() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let name = format!("mixed-{}-{}.com", std::process::id(), &Uuid::new_v4().simple().to_string()[..8]);
    let mut body = json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("mixed"), "domain": name,
                          "addons": ["domain", "dns-hosting"]});
    let orders = "SELECT count(*) FROM orders";

    // a domain is sold yearly: a monthly order must say so, and may name only what it buys
    let (status, refused) = bridge.post(&rt, "/v1/checkout", &body, None)?;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("no monthly price") && refused.to_string().contains("`cycles`"), "{refused}");
    body["cycles"] = json!({"ssl-dv": "annual"});
    let (status, refused) = bridge.post(&rt, "/v1/checkout", &body, None)?;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("not in this purchase"), "{refused}");
    assert_eq!(ledger.count(&rt, orders)?, 0, "a refused checkout wrote an order");

    body["cycles"] = json!({"domain": "annual"});
    let (id, res) = buy(&rt, &tb, &ledger, &bridge, &body)?;
    let _cleanup = namespaces(&tb, &[&res]);
    let first: Uuid = rt.block_on(
        sqlx::query_scalar(
            "SELECT i.id FROM invoices i JOIN subscriptions s ON s.order_id = i.order_id WHERE s.id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&ledger.pool),
    )?;
    let (lines, total) = lines_and_total(&rt, &ledger, first)?;
    assert_eq!(total, "34.93", "19.99 monthly + 12.95 for a year + 1.99 monthly: {lines:?}");
    assert!(
        lines[0].contains("(monthly)") && lines[1].contains("(annual)") && lines[2].contains("(monthly)"),
        "{lines:?}"
    );
    let cycle = ledger.text(&rt, &format!("SELECT cycle FROM subscriptions WHERE id = '{id}'"))?;
    assert_eq!(cycle.as_deref(), Some("monthly"), "the billing period is the shortest cycle");

    // ordered on 31 January 2027, active from 1 February: monthly periods, the domain's year
    rt.block_on(
        sqlx::query(
            "UPDATE orders SET created_at = $2 FROM subscriptions s WHERE s.id = $1::uuid AND orders.id = s.order_id",
        )
        .bind(&id)
        .bind(utc(2027, 1, 31, 15)?)
        .execute(&ledger.pool),
    )?;
    support::activate_at(&rt, &ledger, Uuid::parse_str(&id)?, Cycle::Monthly, utc(2027, 2, 1, 3)?)?;
    let paid_until = |expected: &str| {
        eventually(WAIT, || Ok(resource(&tb, &id)?.is_some_and(|r| r["spec"]["billing"]["paidUntil"] == expected)))
    };
    assert!(paid_until("2028-01-31")?, "the domain's year: {:?}", resource(&tb, &id)?);

    // eleven monthly renewals bill the pod and DNS hosting only; the twelfth adds the domain's year
    for month in 1..=12 {
        let start = period_end(&rt, &ledger, &id)?;
        assert_eq!(tick(&rt, &ledger, start - days(7))?.renewal_invoices, 1, "renewal {month}");
        let (invoice, end) = renewal(&rt, &ledger, &id, start)?;
        let (lines, total) = lines_and_total(&rt, &ledger, invoice)?;
        if month < 12 {
            assert_eq!(total, "21.98", "renewal {month} is the monthly items': {lines:?}");
            assert_eq!(lines.len(), 2, "renewal {month}: {lines:?}");
            assert!(!lines.iter().any(|l| l.starts_with("Domain")), "renewal {month} billed the domain: {lines:?}");
        } else {
            assert_eq!(total, "36.93", "the twelfth renewal adds the domain's renewal (14.95): {lines:?}");
            assert!(lines.contains(&"Domain registration (annual) 2028-02-01 to 2029-02-01".to_owned()), "{lines:?}");
            assert!(paid_until("2028-01-31")?, "the domain's paidUntil moved before its year was paid");
        }
        pay(&rt, &ledger, invoice)?;
        assert!(eventually(WAIT, || Ok(period_end(&rt, &ledger, &id)? == end))?, "renewal {month} was not fulfilled");
    }
    assert_eq!(period_end(&rt, &ledger, &id)?, utc(2028, 3, 1, 3)?);
    assert!(paid_until("2029-01-31")?, "the domain's second year paid: {:?}", resource(&tb, &id)?);
    ledger.drop_database(&rt);
    Ok(())
}
