//! A bridge whose background worker ends does not go on taking payments with nothing provisioned:
//! it stops with an error naming the worker (the real bridge binary on PostgreSQL and the
//! testbed's kube-apiserver), so the orchestrator restarts it.

mod support;

use std::path::Path;
use std::time::Duration;

use mpanel_billing_bridge::workers::FAULT_ENV;
use mpanel_tests::Testbed;
use support::{Bridge, Ledger, eventually};

#[test]
fn a_worker_that_ends_stops_the_bridge_with_its_name() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let rt = support::runtime()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let kubeconfig = Path::new(tb.get("KUBECONFIG")?);
    let said = "the outbox worker stopped; the bridge stops so that it is restarted";
    // the worker may end before or after /healthz first answers: either way the process goes
    match Bridge::start_with_env(&rt, &tb, &ledger, kubeconfig, &[(FAULT_ENV, "outbox".to_owned())]) {
        Err(refused) => assert!(refused.to_string().contains(said), "{refused:#}"),
        Ok(mut bridge) => {
            let health = format!("{}/healthz", bridge.url);
            let gone = eventually(Duration::from_secs(10), || {
                Ok(rt.block_on(async { bridge.http.get(&health).send().await }).is_err())
            })?;
            let logs = bridge.stop();
            assert!(gone, "the bridge still serves without its outbox worker: {logs}");
            assert!(logs.contains(said), "{logs}");
        }
    }

    // without the fault, the same bridge runs on
    let mut bridge = Bridge::start(&rt, &tb, &ledger, kubeconfig)?;
    std::thread::sleep(Duration::from_secs(2));
    let health = format!("{}/healthz", bridge.url);
    let up = rt.block_on(async { bridge.http.get(&health).send().await })?;
    assert!(up.status().is_success());
    let logs = bridge.stop();
    assert!(!logs.contains("worker stopped"), "{logs}");
    ledger.drop_database(&rt);
    Ok(())
}
