//! Staff change a subscription's plan. An upgrade mid-period is billed for the days left (the new
//! plan's price less the old one's, to the cent) and, once paid through the webhook, the
//! Subscription resource asks for the bigger CloudPod; the period does not move and the next
//! renewal is at the new price. A downgrade bills nothing now: the next renewal is at the smaller
//! plan, and paying it moves the subscription there, its disk kept at its size (a disk only grows).
//! A yearly plan with monthly add-ons is prorated over the plan's own year. Real bridge,
//! PostgreSQL, stripe-mock, signed webhooks, the testbed's apiserver.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use mpanel_billing_bridge::ledger::Cycle;
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::lifecycle;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{
    Bridge, Ledger, Namespaces, admin_token, email, eventually, payment_intent, session_completed,
    subscription_of_order, subscriptions_of,
};
use tokio::runtime::Runtime;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// A paid, active `product` subscription whose period started `days_ago` days ago: its id, the
/// period's start and end, and the namespace to remove.
fn running<'a>(
    rt: &Runtime,
    tb: &'a Testbed,
    ledger: &Ledger,
    bridge: &Bridge,
    product: &str,
    days_ago: i64,
) -> anyhow::Result<(Uuid, DateTime<Utc>, DateTime<Utc>, Namespaces<'a>)> {
    running_with(
        rt,
        tb,
        ledger,
        bridge,
        &json!({"product": product, "cycle": "monthly", "email": email("plan")}),
        days_ago,
    )
}

/// `running`, bought with the checkout `body` (its subscription's billing period monthly).
fn running_with<'a>(
    rt: &Runtime,
    tb: &'a Testbed,
    ledger: &Ledger,
    bridge: &Bridge,
    body: &Value,
    days_ago: i64,
) -> anyhow::Result<(Uuid, DateTime<Utc>, DateTime<Utc>, Namespaces<'a>)> {
    let placed = bridge.checkout(rt, body)?;
    let intent = format!("pi_{}", Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(rt, &session_completed(&placed, &intent))?, 200);
    let id = subscription_of_order(rt, ledger, &placed)?;
    let start = Utc::now() - chrono::Duration::days(days_ago);
    let end = support::activate_at(rt, ledger, id, Cycle::Monthly, start)?;
    let handle = ledger.text(
        rt,
        &format!("SELECT c.handle FROM customers c JOIN subscriptions s ON s.customer_id = c.id WHERE s.id = '{id}'"),
    )?;
    Ok((id, start, end, Namespaces { tb, names: vec![format!("customer-{}", handle.unwrap_or_default())] }))
}

/// `price_cents` for `left` of `period` days, rounded half away from zero to the cent.
fn part(price_cents: i64, left: i64, period: i64) -> i64 {
    (2 * price_cents * left + period) / (2 * period)
}

fn cents(amount: &Value) -> i64 {
    let text = amount.as_str().map(str::to_owned).unwrap_or_else(|| amount.to_string());
    let negative = text.starts_with('-');
    let (whole, frac) = text.trim_start_matches('-').split_once('.').unwrap_or((text.trim_start_matches('-'), "0"));
    let value = whole.parse::<i64>().unwrap_or(0) * 100 + format!("{frac:0<2}")[..2].parse::<i64>().unwrap_or(0);
    if negative { -value } else { value }
}

/// The CloudPod sizes the subscription's resource asks for, once they are `want`.
fn wait_for_pod_sizes(tb: &Testbed, bridge: &Bridge, id: Uuid, want: &Value) -> anyhow::Result<()> {
    let mut seen = Value::Null;
    let reached = eventually(WAIT, || {
        let found = subscriptions_of(tb, &id.to_string())?;
        seen = found
            .first()
            .map(|s| s["spec"]["resources"]["cloudPods"][0]["spec"]["resources"].clone())
            .unwrap_or_default();
        Ok(&seen == want)
    })?;
    assert!(reached, "the Subscription resource asks for {seen}, not {want}: {}", bridge.log_tail(30));
    Ok(())
}

fn column(rt: &Runtime, ledger: &Ledger, query: &str) -> anyhow::Result<String> {
    ledger.text(rt, query)?.context("no row")
}

#[test]
fn an_upgrade_mid_period_bills_the_days_left_to_the_cent_and_resizes_once_paid() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let support_token = admin_token(&rt, &ledger, Role::Support)?;
    let (id, start, end, _cleanup) = running(&rt, &tb, &ledger, &bridge, "cloudpod-pro", 10)?;
    wait_for_pod_sizes(&tb, &bridge, id, &json!({"cores": 2, "memoryMiB": 2048, "diskGiB": 50}))?;

    let path = format!("/v1/admin/subscriptions/{id}/change-plan");
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-business"}), Some(&support_token))?;
    assert_eq!(status, 403, "support may not change plans: {body}");
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "dns-hosting"}), Some(&billing))?;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("PlanTypeDiffers")), "{body}");
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-pro"}), Some(&billing))?;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("SamePlan")), "{body}");

    let asked_at = Utc::now();
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-business"}), Some(&billing))?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["change"]["direction"], json!("upgrade"), "{body}");
    // 39.99 for the days left, less 19.99 for the same days
    let left = (end.date_naive() - asked_at.date_naive()).num_days();
    let period = (end.date_naive() - start.date_naive()).num_days();
    let expected = part(3999, left, period) - part(1999, left, period);
    let invoice = &body["invoice"];
    assert_eq!(cents(&invoice["total"]), expected, "{left} of {period} days: {body}");
    assert_eq!(invoice["status"], json!("issued"));
    let invoice_id = invoice["id"].as_str().context("invoice id")?.to_owned();
    let lines = ledger.text(
        &rt,
        &format!("SELECT string_agg(kind || ' ' || amount::text, ', ' ORDER BY position) FROM invoice_lines WHERE invoice_id = '{invoice_id}'"),
    )?;
    let want = format!(
        "item {}.{:02}, discount -{}.{:02}",
        part(3999, left, period) / 100,
        part(3999, left, period) % 100,
        part(1999, left, period) / 100,
        part(1999, left, period) % 100
    );
    assert_eq!(lines.as_deref(), Some(want.as_str()));
    // a second change waits for this one
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-enterprise"}), Some(&billing))?;
    assert_eq!(status, 409, "{body}");
    // unpaid, nothing changes
    assert_eq!(
        column(
            &rt,
            &ledger,
            &format!("SELECT p.slug FROM subscriptions s JOIN products p ON p.id = s.product_id WHERE s.id = '{id}'")
        )?,
        "cloudpod-pro"
    );

    // paid through the webhook: the plan, the resource's sizes; the period stays
    let paid =
        payment_intent("payment_intent.succeeded", &format!("pi_{}", Uuid::new_v4().simple()), &invoice_id, expected);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    wait_for_pod_sizes(&tb, &bridge, id, &json!({"cores": 4, "memoryMiB": 4096, "diskGiB": 100}))?;
    let state = column(
        &rt,
        &ledger,
        &format!(
            "SELECT p.slug || ' ' || s.status || ' ' || (s.current_period_end = '{}'::timestamptz)::text FROM subscriptions s JOIN products p ON p.id = s.product_id WHERE s.id = '{id}'",
            end.to_rfc3339()
        ),
    )?;
    assert_eq!(state, "cloudpod-business active true");
    assert_eq!(ledger.count(&rt, &format!("SELECT count(*) FROM payments WHERE invoice_id = '{invoice_id}'"))?, 1);

    // the next period is billed at the new plan
    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end - chrono::Duration::days(6)))?.renewal_invoices, 1);
    let renewal = column(
        &rt,
        &ledger,
        &format!("SELECT total::text FROM invoices WHERE subscription_id = '{id}' AND period_start IS NOT NULL"),
    )?;
    assert_eq!(renewal, "39.99");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_downgrade_bills_the_next_period_at_the_smaller_plan_and_moves_there_when_paid() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let (id, _start, end, _cleanup) = running(&rt, &tb, &ledger, &bridge, "cloudpod-pro", 3)?;

    let path = format!("/v1/admin/subscriptions/{id}/change-plan");
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-mini"}), Some(&billing))?;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["change"]["direction"].as_str(), &body["invoice"]), (Some("downgrade"), &Value::Null), "{body}");
    let (status, shown) = bridge.get(&rt, &format!("/v1/admin/subscriptions/{id}"), Some(&billing))?;
    assert_eq!(status, 200);
    assert_eq!(shown["planChanges"][0]["direction"], json!("downgrade"), "{shown}");
    assert_eq!(shown["planChanges"][0]["appliedAt"], Value::Null, "{shown}");

    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end - chrono::Duration::days(6)))?.renewal_invoices, 1);
    let renewal = column(
        &rt,
        &ledger,
        &format!("SELECT id::text FROM invoices WHERE subscription_id = '{id}' AND period_start IS NOT NULL"),
    )?;
    let total = column(&rt, &ledger, &format!("SELECT total::text FROM invoices WHERE id = '{renewal}'"))?;
    assert_eq!(total, "9.99", "the renewal is priced at the smaller plan");
    assert_eq!(
        column(
            &rt,
            &ledger,
            &format!("SELECT p.slug FROM subscriptions s JOIN products p ON p.id = s.product_id WHERE s.id = '{id}'")
        )?,
        "cloudpod-pro"
    );

    let paid = payment_intent("payment_intent.succeeded", &format!("pi_{}", Uuid::new_v4().simple()), &renewal, 999);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    // the smaller plan's cores and memory; the disk keeps its size (a disk only grows)
    wait_for_pod_sizes(&tb, &bridge, id, &json!({"cores": 1, "memoryMiB": 1024, "diskGiB": 50}))?;
    let state = column(
        &rt,
        &ledger,
        &format!(
            "SELECT p.slug || ' ' || (s.current_period_end > '{}'::timestamptz)::text FROM subscriptions s JOIN products p ON p.id = s.product_id WHERE s.id = '{id}'",
            end.to_rfc3339()
        ),
    )?;
    assert_eq!(state, "cloudpod-mini true");
    let audited = ledger.count(&rt, &format!("SELECT count(*) FROM audit_log WHERE action IN ('subscription.change_plan', 'subscription.plan_changed') AND entity_id = '{id}'"))?;
    assert_eq!(audited, 2);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn an_annual_plan_with_monthly_add_ons_is_prorated_over_its_own_year() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let body = json!({"product": "cloudpod-pro", "cycle": "annual", "email": email("mixed-plan"),
                      "addons": ["daily-backups-30d"], "cycles": {"daily-backups-30d": "monthly"}});
    // billed monthly (the add-on's cycle), the plan yearly; active for 20 days
    let (id, start, end, _cleanup) = running_with(&rt, &tb, &ledger, &bridge, &body, 20)?;
    assert_eq!(column(&rt, &ledger, &format!("SELECT cycle FROM subscriptions WHERE id = '{id}'"))?, "monthly");

    let asked_at = Utc::now();
    let path = format!("/v1/admin/subscriptions/{id}/change-plan");
    let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-business"}), Some(&billing))?;
    assert_eq!(status, 201, "{body}");
    // 399.90 a year less 199.90 a year, for the days left of the plan's year (not of the month)
    let year_end = start.checked_add_months(chrono::Months::new(12)).context("a year on")?;
    let left = (year_end.date_naive() - asked_at.date_naive()).num_days();
    let year = (year_end.date_naive() - start.date_naive()).num_days();
    let expected = part(39990, left, year) - part(19990, left, year);
    assert_eq!(cents(&body["invoice"]["total"]), expected, "{left} of {year} days: {body}");
    let invoice_id = body["invoice"]["id"].as_str().context("invoice id")?.to_owned();
    let lines = column(
        &rt,
        &ledger,
        &format!(
            "SELECT string_agg(description, ' | ' ORDER BY position) FROM invoice_lines WHERE invoice_id = '{invoice_id}'"
        ),
    )?;
    assert!(lines.contains("CloudPod Business (annual)") && lines.contains(&format!("of {year} days")), "{lines}");

    // the next monthly renewal bills the add-on alone: the plan's year is not over
    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end - chrono::Duration::days(6)))?.renewal_invoices, 1);
    let renewal = column(
        &rt,
        &ledger,
        &format!("SELECT total::text FROM invoices WHERE subscription_id = '{id}' AND period_start IS NOT NULL"),
    )?;
    assert_eq!(renewal, "4.99");
    ledger.drop_database(&rt);
    Ok(())
}
