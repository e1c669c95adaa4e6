//! The bridge's ledger gauges follow the ledger: an issued invoice is counted and owed, and once
//! paid it is counted as paid and owed no more (the real bridge on PostgreSQL and stripe-mock).

mod support;

use std::path::Path;
use std::time::Duration;

use mpanel_tests::{Testbed, metric_sum};
use serde_json::json;
use support::{Bridge, Ledger, email, eventually, session_completed};

#[test]
fn invoices_and_what_is_owed_on_them_are_gauges_that_follow_the_ledger() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let rt = support::runtime()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("gauges")}))?;
    let total: f64 = placed["total"].as_str().unwrap_or_default().parse()?;
    let issued = [("status", "issued"), ("currency", "usd")];
    let owed = eventually(Duration::from_secs(15), || {
        let text = bridge.metrics(&rt)?;
        Ok(metric_sum(&text, "mpanel_bridge_invoices", &issued) == 1.0
            && metric_sum(&text, "mpanel_bridge_invoices_outstanding", &[("currency", "usd")]) == total)
    })?;
    assert!(owed, "the issued invoice is not counted as owed: {}", bridge.metrics(&rt)?);

    let event = session_completed(&placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));
    assert_eq!(bridge.deliver(&rt, &event)?, 200);
    let paid = eventually(Duration::from_secs(15), || {
        let text = bridge.metrics(&rt)?;
        Ok(metric_sum(&text, "mpanel_bridge_invoices", &[("status", "paid"), ("currency", "usd")]) == 1.0
            && metric_sum(&text, "mpanel_bridge_invoices", &issued) == 0.0
            && metric_sum(&text, "mpanel_bridge_invoices_outstanding", &[]) == 0.0
            && metric_sum(&text, "mpanel_bridge_subscriptions", &[]) == 1.0)
    })?;
    assert!(paid, "the paid invoice is still owed: {}", bridge.metrics(&rt)?);
    bridge.stop();
    ledger.drop_database(&rt);
    Ok(())
}
