//! Every billing-bridge panel of monitoring/dashboard.json shows series when the testbed's real
//! Prometheus scrapes a running bridge with its bearer token, and the bridge's alert rules see them:
//! a paid order whose outbox entry keeps failing (the apiserver cut off) and rejected webhooks.
//! The operator's panels: operator/tests/monitoring.rs.

mod support;

use std::time::Duration;

use anyhow::ensure;
use mpanel_tests::Testbed;
use mpanel_tests::prometheus::{self, Prometheus};
use serde_json::json;
use support::{ApiRelay, Bridge, Ledger, email, eventually, session_completed};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn every_bridge_panel_shows_series_from_a_running_bridge_scraped_by_prometheus() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let prom = Prometheus::from_testbed(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut relay = ApiRelay::start(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &relay.kubeconfig)?;
    // Prometheus's token, a read-only admin API token of this ledger
    rt.block_on(
        sqlx::query(
            "INSERT INTO api_tokens (name, role, token_sha256) VALUES ('prometheus', 'read-only', sha256(convert_to($1, 'UTF8')))",
        )
        .bind(&prom.bridge_token)
        .execute(&ledger.pool),
    )?;

    // a paid order whose Subscription cannot be made: the outbox worker fails and backs off
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("monitoring")}))?;
    relay.cut(&rt);
    let paid = session_completed(&placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));
    ensure!(bridge.deliver(&rt, &paid)? == 200, "the webhook refused the payment");
    let failing = || Ok(ledger.count(&rt, "SELECT count(*) FROM work_attempts WHERE worker = 'outbox'")? == 1);
    ensure!(eventually(WAIT, failing)?, "the outbox entry did not fail: {}", bridge.log_tail(20));

    let address = bridge.url.trim_start_matches("http://").to_owned();
    let target = prom.register(&format!("bridge-{}", address.replace(':', "-")), &address)?;
    prom.wait_scraped(&target, WAIT)?;
    // deliveries signed with another secret, one scraped before the next, so the counter rises
    let rejected = |n: usize| -> anyhow::Result<bool> {
        let status =
            rt.block_on(bridge.send_event(&paid.to_string(), "whsec_not_the_secret", chrono::Utc::now().timestamp()))?;
        ensure!(status == 400, "a delivery with a wrong signature answered {status}");
        let counted =
            format!("mpanel_bridge_webhook_events_total{{instance=\"{address}\", outcome=\"rejected\"}} >= {n}");
        eventually(WAIT, || Ok(!prom.query(&counted)?.is_empty()))
    };
    ensure!(rejected(1)? && rejected(2)?, "Prometheus did not see the rejected deliveries");

    let dashboard = prometheus::dashboard()?;
    let ours: Vec<_> = prometheus::panel_queries(&dashboard)
        .iter()
        .filter(|q| prometheus::uses_variable(&q.expr, "bridge"))
        .map(|q| prometheus::with_instance(q, "bridge", &address))
        .collect();
    ensure!(ours.len() >= 4, "the dashboard has {} bridge queries", ours.len());
    let empty = prom.without_series(&ours, Duration::from_secs(60))?;
    ensure!(empty.is_empty(), "panels without series: {empty:#?}");

    // the variable offers this bridge
    let metric = prometheus::variable_metric(&dashboard, "bridge")?;
    ensure!(!prom.query(&format!("{metric}{{instance=\"{address}\"}}"))?.is_empty(), "{metric}");

    // the bridge's alerts see this: pending, as their `for` has not passed
    for alert in ["MpanelBridgeOutboxStuck", "MpanelBridgeWorkInBackoff", "MpanelBridgeWebhooksRejected"] {
        let pending = format!("ALERTS{{alertname=\"{alert}\", instance=\"{address}\", alertstate=\"pending\"}}");
        ensure!(eventually(WAIT, || Ok(!prom.query(&pending)?.is_empty()))?, "{alert} did not become pending");
    }

    drop(target);
    drop(bridge);
    relay.cut(&rt);
    ledger.drop_database(&rt);
    Ok(())
}
