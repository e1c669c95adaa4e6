//! The operator binary against the testbed's real API server.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mpanel_tests::Testbed;
use support::{Operator, http_status};

#[test]
fn operator_becomes_ready_against_the_api_server_and_stops_on_sigterm() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let mut operator = Operator::start(Path::new(tb.get("KUBECONFIG")?), &[])?;
    let ready = operator.wait_ready(Duration::from_secs(30))?;
    let healthz = http_status(&operator.health_addr, "/healthz");
    let stopped = operator.stop()?;
    let logs = &stopped.logs;

    assert!(ready, "the operator never answered /readyz with 200; its output:\n{logs}");
    assert_eq!(healthz, Some(200), "{logs}");
    assert!(stopped.success, "non-zero exit after SIGTERM:\n{logs}");
    assert!(stopped.shutdown_took < Duration::from_secs(10), "shutdown took {:?}", stopped.shutdown_took);
    assert!(logs.contains("\"operator ready\""), "the JSON log lacks the ready line:\n{logs}");
    Ok(())
}

#[test]
fn operator_describes_its_commands_in_help() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_mpanel-operator")).arg("--help").output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && help.contains("run") && help.contains("controllers"), "{help}");
    Ok(())
}
