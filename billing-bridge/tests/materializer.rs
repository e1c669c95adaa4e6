//! Paid invoices become Subscription resources however they were paid, and a Kubernetes outage
//! loses nothing: real PostgreSQL, the testbed's kube-apiserver (behind a relay the test can cut),
//! stripe-mock for the Checkout Session.

mod support;

use std::process::Command;
use std::time::Duration;

use mpanel_tests::Testbed;
use serde_json::json;
use support::{ApiRelay, Bridge, Ledger, Namespaces, email, eventually, session_completed, subscriptions_of};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn an_invoice_marked_paid_with_plain_sql_by_another_program_becomes_a_subscription() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("sql")}))?;
    let number = placed["invoiceNumber"].as_str().unwrap_or_default();

    // psql, as an accounting system or a person at a prompt would
    let out = Command::new("psql")
        .args([&ledger.url, "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("UPDATE invoices SET status = 'paid' WHERE number = '{number}'"))
        .output()?;
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));

    let mut found = Vec::new();
    assert!(
        eventually(WAIT, || {
            found = match ledger.text(&rt, "SELECT max(id::text) FROM subscriptions")? {
                Some(id) => subscriptions_of(&tb, &id)?,
                None => Vec::new(),
            };
            Ok(!found.is_empty())
        })?,
        "no Subscription resource for an invoice paid in SQL"
    );
    let _cleanup =
        Namespaces { tb: &tb, names: vec![found[0]["metadata"]["namespace"].as_str().unwrap_or_default().into()] };
    assert_eq!(found[0]["spec"]["billing"]["invoice"], json!(number));
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM invoices WHERE fulfilled_at IS NOT NULL")?, 1);
    assert_eq!(ledger.text(&rt, "SELECT status FROM subscriptions")?.as_deref(), Some("pending_activation"));
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_payment_during_a_kubernetes_outage_is_applied_once_the_api_is_back() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut relay = ApiRelay::start(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &relay.kubeconfig)?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("outage")}))?;

    relay.cut(&rt);
    let event = session_completed(&placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));
    assert_eq!(bridge.deliver(&rt, &event)?, 200, "the webhook must not depend on Kubernetes");
    // the bridge tried, failed, and keeps the entry
    assert!(
        eventually(WAIT, || Ok(ledger
            .count(&rt, "SELECT count(*) FROM outbox WHERE done_at IS NULL AND attempts > 0")?
            == 1))?,
        "the outbox entry was not attempted"
    );
    let id = ledger.text(&rt, "SELECT id::text FROM subscriptions")?.unwrap_or_default();
    assert!(subscriptions_of(&tb, &id)?.is_empty());
    let error = ledger.text(&rt, "SELECT last_error FROM outbox")?.unwrap_or_default();
    assert!(error.starts_with("Kubernetes"), "{error}");

    relay.restore(&rt)?;
    let mut found = Vec::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            found = subscriptions_of(&tb, &id)?;
            Ok(!found.is_empty())
        })?,
        "the Subscription did not appear after the API came back"
    );
    let _cleanup =
        Namespaces { tb: &tb, names: vec![found[0]["metadata"]["namespace"].as_str().unwrap_or_default().into()] };
    assert!(eventually(WAIT, || Ok(ledger.count(&rt, "SELECT count(*) FROM outbox WHERE done_at IS NULL")? == 0))?);
    assert_eq!(subscriptions_of(&tb, &id)?.len(), 1);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM subscriptions")?, 1);
    assert_eq!(found[0]["metadata"]["generation"], json!(1), "applied more than one state");
    drop(bridge);
    relay.cut(&rt);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_customer_namespace_deleted_by_hand_is_made_again_for_the_next_purchase() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let customer = email("namespace-gone");
    let buy = |label: &str| -> anyhow::Result<Vec<serde_json::Value>> {
        let placed =
            bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
        let event = session_completed(&placed, &format!("pi_{label}{}", uuid::Uuid::new_v4().simple()));
        assert_eq!(bridge.deliver(&rt, &event)?, 200);
        let query = format!(
            "SELECT s.id::text FROM subscriptions s WHERE s.order_id = '{}'",
            placed["orderId"].as_str().unwrap_or_default()
        );
        let mut found = Vec::new();
        eventually(WAIT, || {
            found = match ledger.text(&rt, &query)? {
                Some(id) => subscriptions_of(&tb, &id)?,
                None => Vec::new(),
            };
            Ok(!found.is_empty())
        })?;
        Ok(found)
    };
    let first = buy("first")?;
    assert_eq!(first.len(), 1, "the first purchase made no Subscription");
    let namespace = first[0]["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace.clone()] };

    // someone deletes the customer's namespace while the bridge runs (it made the namespace once)
    tb.kubectl_ok(&["delete", "namespace", &namespace, "--wait=true", "--timeout=60s"], None)?;

    let second = buy("second")?;
    assert_eq!(second.len(), 1, "the purchase after the namespace was deleted made no Subscription");
    assert_eq!(second[0]["metadata"]["namespace"].as_str(), Some(namespace.as_str()));
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM outbox WHERE done_at IS NULL")?, 0);
    ledger.drop_database(&rt);
    Ok(())
}
