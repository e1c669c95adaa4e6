//! The activation gate and the billing lifecycle: the ledger follows the Subscription resource's
//! status, and a controllable clock walks renewal, overdue, suspension and termination. The
//! resource's status is written by the test as the operator writes it (the operator's own
//! Subscription tests cover how it gets there); everything else is the real bridge, PostgreSQL,
//! the testbed's kube-apiserver and stripe-mock.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{
    Bridge, Ledger, Namespaces, email, eventually, payment_intent, report_status, session_completed, subscriptions_of,
};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);

/// Buys `product` and pays for it; the ledger subscription id and its resource.
fn bought(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    bridge: &Bridge,
    product: &str,
) -> anyhow::Result<(String, Value)> {
    let placed = bridge.checkout(rt, &json!({"product": product, "cycle": "monthly", "email": email("life")}))?;
    let event = session_completed(&placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));
    assert_eq!(bridge.deliver(rt, &event)?, 200);
    let order = placed["orderId"].as_str().unwrap_or_default();
    let mut found = Vec::new();
    let mut id = String::new();
    assert!(eventually(WAIT, || {
        id = ledger
            .text(rt, &format!("SELECT id::text FROM subscriptions WHERE order_id = '{order}'"))?
            .unwrap_or_default();
        found = if id.is_empty() { Vec::new() } else { subscriptions_of(tb, &id)? };
        Ok(!found.is_empty())
    })?);
    Ok((id, found.remove(0)))
}

fn status_of(rt: &Runtime, ledger: &Ledger, id: &str) -> anyhow::Result<String> {
    Ok(ledger.text(rt, &format!("SELECT status FROM subscriptions WHERE id = '{id}'"))?.unwrap_or_default())
}

fn resource(tb: &Testbed, id: &str) -> anyhow::Result<Option<Value>> {
    Ok(subscriptions_of(tb, id)?.into_iter().next())
}

#[test]
fn the_ledger_activates_only_a_ready_resource_and_a_failed_one_never() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let (good, good_res) = bought(&rt, &tb, &ledger, &bridge, "cloudpod-pro")?;
    let (bad, bad_res) = bought(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let _cleanup = Namespaces {
        tb: &tb,
        names: [&good_res, &bad_res]
            .iter()
            .map(|r| r["metadata"]["namespace"].as_str().unwrap_or_default().to_owned())
            .collect(),
    };

    report_status(&tb, &good_res, "Provisioning", false, "waiting for CloudPod sub-x: Cloning")?;
    assert!(eventually(WAIT, || Ok(ledger
        .text(&rt, &format!("SELECT provisioning_phase FROM subscriptions WHERE id = '{good}'"))?
        .as_deref()
        == Some("Provisioning")))?);
    assert_eq!(status_of(&rt, &ledger, &good)?, "pending_activation");
    report_status(&tb, &good_res, "Active", true, "all 1 resources are Ready")?;
    assert!(eventually(WAIT, || Ok(status_of(&rt, &ledger, &good)? == "active"))?, "a Ready resource did not activate");
    let month = ledger.count(&rt, &format!(
        "SELECT (current_period_end = current_period_start + interval '1 month')::int::int8 FROM subscriptions WHERE id = '{good}'"))?;
    assert_eq!(month, 1, "the first period starts at activation and lasts the cycle");

    report_status(&tb, &bad_res, "Failed", false, "CloudPod sub-y: Unavailable: template 9000 does not exist")?;
    assert!(eventually(WAIT, || Ok(status_of(&rt, &ledger, &bad)? == "provisioning_failed"))?);
    assert_eq!(
        ledger.text(&rt, &format!("SELECT provisioning_message FROM subscriptions WHERE id = '{bad}'"))?.as_deref(),
        Some("CloudPod sub-y: Unavailable: template 9000 does not exist")
    );
    // the product refunds a subscription that never ran (through stripe-mock)
    assert!(eventually(WAIT, || {
        Ok(ledger.count(&rt, &format!(
        "SELECT count(*) FROM invoices i JOIN subscriptions s ON s.order_id = i.order_id WHERE s.id = '{bad}' AND i.status = 'refunded'"))? == 1)
    })?);
    // the refund deletes what was created; a late Active report, while the object is still there,
    // changes nothing either
    let _ = report_status(&tb, &bad_res, "Active", true, "all 1 resources are Ready");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status_of(&rt, &ledger, &bad)?, "provisioning_failed", "a failed subscription became active");
    let refused = rt.block_on(
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE subscriptions SET status = 'active' WHERE id = '{bad}'")))
            .execute(&ledger.pool),
    );
    assert!(refused.is_err_and(|e| e.to_string().contains("cannot go from provisioning_failed to active")));
    ledger.drop_database(&rt);
    Ok(())
}

fn tick(rt: &Runtime, ledger: &Ledger, at: DateTime<Utc>) -> anyhow::Result<mpanel_billing_bridge::lifecycle::Tick> {
    Ok(rt.block_on(mpanel_billing_bridge::lifecycle::tick(&ledger.pool, at))?)
}

fn period_end(rt: &Runtime, ledger: &Ledger, id: &str) -> anyhow::Result<DateTime<Utc>> {
    let end: DateTime<Utc> = rt.block_on(
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT current_period_end FROM subscriptions WHERE id = '{id}'"
        )))
        .fetch_one(&ledger.pool),
    )?;
    Ok(end)
}

#[test]
fn renewal_overdue_suspension_payment_and_termination_walked_with_a_clock() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let (id, res) = bought(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let _cleanup =
        Namespaces { tb: &tb, names: vec![res["metadata"]["namespace"].as_str().unwrap_or_default().to_owned()] };
    report_status(&tb, &res, "Active", true, "all 1 resources are Ready")?;
    assert!(eventually(WAIT, || Ok(status_of(&rt, &ledger, &id)? == "active"))?);
    let end = period_end(&rt, &ledger, &id)?;
    let days = chrono::Duration::days;

    // renewal: not before the notice period (7 days), then one invoice, due at the period's end
    assert_eq!(tick(&rt, &ledger, end - days(8))?.renewal_invoices, 0);
    assert_eq!(tick(&rt, &ledger, end - days(7))?.renewal_invoices, 1);
    assert_eq!(tick(&rt, &ledger, end - days(6))?, Default::default(), "a second pass did something");
    let renewal = ledger
        .text(
            &rt,
            &format!("SELECT id::text FROM invoices WHERE subscription_id = '{id}' AND period_start IS NOT NULL"),
        )?
        .unwrap_or_default();
    assert_eq!(
        ledger
            .text(&rt, &format!("SELECT status || ' ' || total::text FROM invoices WHERE id = '{renewal}'"))?
            .as_deref(),
        Some("issued 9.99")
    );

    // unpaid after due: past due, and the resource says so
    assert_eq!(tick(&rt, &ledger, end + chrono::Duration::hours(1))?.past_due, 1);
    assert_eq!(status_of(&rt, &ledger, &id)?, "past_due");
    assert!(eventually(WAIT, || Ok(resource(&tb, &id)?.is_some_and(|r| r["spec"]["billing"]["state"] == "PastDue")))?);
    // after the grace period (7 days): suspended as Overdue
    assert_eq!(tick(&rt, &ledger, end + days(6))?, Default::default());
    assert_eq!(tick(&rt, &ledger, end + days(7))?.suspended, 1);
    assert_eq!(status_of(&rt, &ledger, &id)?, "suspended");
    assert!(eventually(WAIT, || Ok(
        resource(&tb, &id)?.is_some_and(|r| r["spec"]["suspension"] == json!({"suspended": true, "reason": "Overdue"}))
    ))?);

    // paying the overdue invoice lifts the Overdue suspension and extends the period
    let paid =
        payment_intent("payment_intent.succeeded", &format!("pi_{}", uuid::Uuid::new_v4().simple()), &renewal, 999);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    assert!(eventually(WAIT, || Ok(status_of(&rt, &ledger, &id)? == "active"))?);
    let number = ledger.text(&rt, &format!("SELECT number FROM invoices WHERE id = '{renewal}'"))?.unwrap_or_default();
    assert!(eventually(WAIT, || Ok(resource(&tb, &id)?.is_some_and(|r| r["spec"].get("suspension").is_none()
        && r["spec"]["billing"]["state"] == "Paid"
        && r["spec"]["billing"]["invoice"] == json!(number))))?);
    let next_end = period_end(&rt, &ledger, &id)?;
    assert_eq!(next_end, mpanel_billing_bridge::ledger::Cycle::Monthly.after(end));

    // the next renewal goes unpaid to the end: suspended, then cancelled and the resource deleted
    assert_eq!(tick(&rt, &ledger, next_end - days(7))?.renewal_invoices, 1);
    assert_eq!(tick(&rt, &ledger, next_end + days(7))?.suspended, 1);
    assert_eq!(tick(&rt, &ledger, next_end + days(29))?, Default::default());
    assert_eq!(tick(&rt, &ledger, next_end + days(30))?.cancelled, 1);
    assert_eq!(status_of(&rt, &ledger, &id)?, "cancelled");
    assert_eq!(
        ledger
            .count(&rt, &format!("SELECT count(*) FROM invoices WHERE subscription_id = '{id}' AND status = 'void'"))?,
        1
    );
    assert!(
        eventually(WAIT, || Ok(resource(&tb, &id)?.is_none()))?,
        "the cancelled subscription's resource is still there"
    );
    ledger.drop_database(&rt);
    Ok(())
}
