//! The Helm chart: rendered by the real helm, accepted by the real API server, and its RBAC is
//! enough for the operator to run as the chart's ServiceAccount.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::{Testbed, repo_root};
use support::Operator;

fn helm_template(tb: &Testbed, release: &str, namespace: &str) -> anyhow::Result<String> {
    let chart = repo_root().join("charts/mpanel");
    let out = Command::new(tb.get("HELM")?)
        .args(["template", release, &chart.to_string_lossy(), "--namespace", namespace])
        .output()
        .context("running helm")?;
    if !out.status.success() {
        bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn chart_installs_and_its_service_account_can_run_the_operator() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let lint = Command::new(tb.get("HELM")?)
        .args(["lint", "--strict", &repo_root().join("charts/mpanel").to_string_lossy()])
        .output()?;
    assert!(lint.status.success(), "helm lint: {}", String::from_utf8_lossy(&lint.stdout));

    let ns = tb.namespace("chart")?;
    let release = ns.name.clone();
    let rendered = helm_template(&tb, &release, &ns.name)?;
    let dry = tb.kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered))?;
    assert!(dry.contains(&format!("deployment.apps/{release}-operator created (server dry run)")), "{dry}");
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&rendered))?;

    // run the operator with nothing but the chart's ServiceAccount
    let token = tb.kubectl_ok(&["create", "token", &format!("{release}-operator"), "-n", &ns.name], None)?;
    let admin = std::fs::read_to_string(tb.get("KUBECONFIG")?)?;
    let server = admin.lines().find_map(|l| l.split("server: \"").nth(1)).and_then(|s| s.split('"').next());
    let ca = admin.lines().find_map(|l| l.split("certificate-authority: \"").nth(1)).and_then(|s| s.split('"').next());
    let (Some(server), Some(ca)) = (server, ca) else { bail!("cannot read the testbed kubeconfig:\n{admin}") };
    let kubeconfig = std::env::temp_dir().join(format!("{release}.kubeconfig"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}}}]\n\
             users: [{{name: sa, user: {{token: \"{}\"}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: sa}}}}]\ncurrent-context: t\n",
            token.trim()
        ),
    )?;
    let mut operator = Operator::start(&kubeconfig, &[])?;
    let ready = operator.wait_ready(Duration::from_secs(30))?;
    let stopped = operator.stop()?;

    let _ = tb.kubectl(&["delete", "clusterrole,clusterrolebinding", &format!("{release}-operator")], None);
    let _ = std::fs::remove_file(&kubeconfig);
    assert!(ready, "the operator did not become ready as the chart's ServiceAccount:\n{}", stopped.logs);
    assert!(stopped.success, "non-zero exit after SIGTERM:\n{}", stopped.logs);
    assert!(stopped.shutdown_took < Duration::from_secs(10), "shutdown took {:?}", stopped.shutdown_took);
    Ok(())
}
