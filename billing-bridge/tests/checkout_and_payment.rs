//! The revenue path against the real peers: PostgreSQL (the ledger), the testbed's kube-apiserver,
//! stripe-mock (Stripe's own API mock) for the Checkout Session, and webhooks signed by the test
//! with Stripe's algorithm.

mod support;

use std::time::Duration;

use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, email, eventually, session_completed, subscriptions_of};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(20);

fn setup() -> anyhow::Result<(Runtime, Testbed)> {
    Ok((support::runtime()?, Testbed::from_env()?))
}

fn rows(ledger: &Ledger, rt: &Runtime) -> anyhow::Result<Vec<i64>> {
    [
        "customers",
        "orders",
        "order_items",
        "invoices",
        "invoice_lines",
        "payments",
        "subscriptions",
        "stripe_events",
        "outbox",
    ]
    .iter()
    .map(|t| ledger.count(rt, &format!("SELECT count(*) FROM {t}")))
    .collect()
}

fn kubeconfig(tb: &Testbed) -> anyhow::Result<std::path::PathBuf> {
    Ok(tb.get("KUBECONFIG")?.into())
}

#[test]
fn checkout_makes_an_order_an_unpaid_invoice_and_a_session_and_bad_products_leave_nothing() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;

    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("buyer")}))?;
    let number = placed["invoiceNumber"].as_str().unwrap_or_default().to_owned();
    assert!(number.starts_with("INV-") && number.len() == "INV-2026-000001".len(), "{placed}");
    assert!(placed["checkoutSessionId"].as_str().is_some_and(|s| s.starts_with("cs_")), "{placed}");
    assert!(placed["checkoutUrl"].as_str().is_some_and(|u| u.starts_with("http")), "{placed}");
    assert_eq!(placed["total"], json!("19.99"));
    let order = placed["orderId"].as_str().unwrap_or_default();
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM orders WHERE id = '{order}'"))?.as_deref(),
        Some("pending")
    );
    assert_eq!(
        ledger
            .text(&rt, &format!("SELECT status || ' ' || total::text FROM invoices WHERE number = '{number}'"))?
            .as_deref(),
        Some("issued 19.99")
    );

    let before = rows(&ledger, &rt)?;
    let bad = [
        json!({"product": "cloudpod-nonexistent", "cycle": "monthly", "email": email("bad")}),
        json!({"product": "cloudpod-pro", "cycle": "weekly", "email": email("bad")}),
        json!({"product": "domain", "cycle": "annual", "email": email("bad")}),
        json!({"product": "cloudpod-pro", "cycle": "monthly", "email": "not-an-email"}),
        json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("bad"), "addons": ["ssl-dv"], "domain": "bad domain"}),
        json!({"product": "cloudpod-pro"}),
    ];
    for body in &bad {
        let (status, answer) = bridge.post(&rt, "/v1/checkout", body, None)?;
        assert!((400..500).contains(&status), "{body} answered {status} {answer}");
        assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string(), "{answer}");
    }
    let (_, answer) = bridge.post(&rt, "/v1/checkout", &bad[2], None)?;
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("needs a domain"), "{answer}");
    assert_eq!(rows(&ledger, &rt)?, before, "a refused checkout wrote rows");
    let metrics = bridge.metrics(&rt)?;
    assert!(metrics.contains("mpanel_bridge_checkouts_total{outcome=\"refused\"} 7"), "{metrics}");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_paid_session_delivered_twenty_times_makes_one_payment_one_subscription_one_resource() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "cloudpod-mini", "cycle": "annual", "email": email("twenty"), "domain": "twenty.example", "addons": ["ssl-dv"]}),
    )?;
    let invoice = placed["invoiceNumber"].as_str().unwrap_or_default().to_owned();
    let event = session_completed(&placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));

    // refused before anything: a wrong secret, a stale signature, no signature
    let before = rows(&ledger, &rt)?;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(rt.block_on(bridge.deliver_at(&event, "whsec_not_the_secret", now))?, 400);
    assert_eq!(rt.block_on(bridge.deliver_at(&event, &bridge.webhook_secret, now - 301))?, 400);
    let (status, _) = bridge.post(&rt, "/v1/stripe/webhook", &event, None)?;
    assert_eq!(status, 400);
    assert_eq!(rows(&ledger, &rt)?, before, "a refused webhook wrote rows");

    // ten at once, then ten one after another
    let statuses: Vec<u16> = rt.block_on(async {
        let now = chrono::Utc::now().timestamp();
        let all = (0..10).map(|_| bridge.deliver_at(&event, &bridge.webhook_secret, now));
        futures::future::join_all(all).await.into_iter().collect::<anyhow::Result<Vec<u16>>>()
    })?;
    assert_eq!(statuses, vec![200; 10]);
    for _ in 0..10 {
        assert_eq!(bridge.deliver(&rt, &event)?, 200);
    }
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM payments")?, 1);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM stripe_events")?, 1);
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM invoices WHERE number = '{invoice}'"))?.as_deref(),
        Some("paid")
    );
    let mut seen = Vec::new();
    let found = eventually(WAIT, || {
        let id = ledger.text(&rt, "SELECT max(id::text) FROM subscriptions")?;
        seen = match id {
            Some(id) => subscriptions_of(&tb, &id)?,
            None => Vec::new(),
        };
        Ok(!seen.is_empty())
    })?;
    assert!(found, "no Subscription resource appeared");
    let _cleanup =
        Namespaces { tb: &tb, names: vec![seen[0]["metadata"]["namespace"].as_str().unwrap_or_default().to_owned()] };
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM subscriptions")?, 1);
    assert_eq!(seen.len(), 1);
    let sub = &seen[0];
    assert_eq!(sub["spec"]["billing"]["state"], "Paid");
    assert_eq!(sub["spec"]["billing"]["invoice"], Value::String(invoice));
    assert_eq!(sub["spec"]["product"], "cloudpod-mini");
    assert_eq!(sub["spec"]["resources"]["cloudPods"][0]["spec"]["plan"], "mini");
    assert_eq!(
        sub["spec"]["resources"]["certificates"][0]["spec"]["dnsNames"],
        json!(["twenty.example", "*.twenty.example"])
    );
    let managers: Vec<&str> = sub["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"billing-bridge"), "{managers:?}");
    assert_eq!(
        ledger.text(&rt, "SELECT status FROM subscriptions")?.as_deref(),
        Some("pending_activation"),
        "active before its resource is Ready"
    );
    let metrics = bridge.metrics(&rt)?;
    assert!(metrics.contains("outcome=\"duplicate\"} 19"), "{metrics}");
    ledger.drop_database(&rt);
    Ok(())
}
