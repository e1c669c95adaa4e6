//! monitoring/: the alert rules pass promtool's checks and unit tests, the chart ships them and the
//! dashboard as they are, and every operator panel of the dashboard shows series when the testbed's
//! real Prometheus scrapes a running operator with DnsZones, a Certificate from pebble and a Domain
//! at the Namesilo double. The bridge's panels: billing-bridge/tests/monitoring.rs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use mpanel_tests::namesilo::Namesilo;
use mpanel_tests::prometheus::{self, Prometheus};
use mpanel_tests::{Testbed, repo_root};
use serde_json::{Value, json};
use support::Operator;

const WAIT: Duration = Duration::from_secs(90);

fn promtool() -> anyhow::Result<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .context("promtool is not installed (Debian's prometheus package; tests/testbed/install-deps)")
}

/// Runs `cmd`; its stdout, or an error with all it printed.
fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

fn yaml_file(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[test]
fn alert_rules_pass_promtool_and_each_alert_is_tested_firing_and_quiet() -> anyhow::Result<()> {
    let dir = repo_root().join("monitoring");
    let promtool = promtool()?;
    run_ok(Command::new(&promtool).args(["check", "rules", "alerts.yaml"]).current_dir(&dir))?;
    let tested = run_ok(Command::new(&promtool).args(["test", "rules", "alerts_test.yaml"]).current_dir(&dir))?;
    ensure!(tested.contains("SUCCESS"), "promtool test rules: {tested}");

    // every alert has a case where it fires and one where it does not
    let rules = yaml_file(&dir.join("alerts.yaml"))?;
    let tests = yaml_file(&dir.join("alerts_test.yaml"))?;
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    let alerts: Vec<&str> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    ensure!(alerts.len() >= 7, "alerts.yaml has {} alerts", alerts.len());
    for alert in alerts {
        let of_alert: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == alert).collect();
        let fires = of_alert.iter().any(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()));
        let quiet = of_alert.iter().any(|c| c["exp_alerts"].as_array().is_some_and(Vec::is_empty));
        ensure!(fires && quiet, "{alert}: a case where it fires {fires}, one where it does not {quiet}");
    }
    Ok(())
}

/// The chart's objects with every monitoring part (and the bridge) enabled.
fn chart_objects(tb: &Testbed, monitoring: bool) -> anyhow::Result<Vec<Value>> {
    let chart = repo_root().join("charts/mpanel");
    let mut helm = Command::new(tb.get("HELM")?);
    helm.args(["template", "t"]).arg(&chart).args(["--namespace", "mpanel-system", "--set", "bridge.enabled=true"]);
    if monitoring {
        helm.args([
            "--set",
            "monitoring.serviceMonitor.enabled=true",
            "--set",
            "monitoring.prometheusRule.enabled=true",
        ])
        .args(["--set", "monitoring.dashboard.enabled=true"])
        .args(["--set", "monitoring.serviceMonitor.bridgeTokenSecret.name=bridge-metrics"]);
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run_ok(&mut helm)?).context("parsing helm's output")?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}

fn one<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("the chart rendered no {kind} {name}"))
}

/// Whether every label of `selector` is in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|s| s.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn chart_ships_the_rules_and_the_dashboard_as_they_are_and_scrapes_the_operator() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let chart = repo_root().join("charts/mpanel");
    let all_on = [
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.dashboard.enabled=true",
        "bridge.enabled=true",
        "monitoring.serviceMonitor.bridgeTokenSecret.name=bridge-metrics",
    ];
    run_ok(Command::new(tb.get("HELM")?).arg("lint").arg(&chart).args(all_on.iter().flat_map(|v| ["--set", v])))?;

    let defaults = chart_objects(&tb, false)?;
    let monitoring_kinds = ["PrometheusRule", "ServiceMonitor", "PodMonitor"];
    ensure!(!defaults.iter().any(|o| monitoring_kinds.iter().any(|k| o["kind"] == *k)), "monitoring is on by default");
    ensure!(
        !defaults.iter().any(|o| o["metadata"]["labels"]["grafana_dashboard"].is_string()),
        "a dashboard by default"
    );

    let objects = chart_objects(&tb, true)?;
    let rule = one(&objects, "PrometheusRule", "t-operator")?;
    ensure!(
        rule["spec"] == yaml_file(&repo_root().join("monitoring/alerts.yaml"))?,
        "the PrometheusRule's rules differ"
    );

    let dashboard = one(&objects, "ConfigMap", "t-operator-dashboard")?;
    ensure!(dashboard["metadata"]["labels"]["grafana_dashboard"] == "1", "{}", dashboard["metadata"]);
    let shipped: Value = serde_json::from_str(dashboard["data"]["mpanel.json"].as_str().unwrap_or_default())?;
    ensure!(shipped == prometheus::dashboard()?, "the ConfigMap's dashboard differs from monitoring/dashboard.json");

    // ServiceMonitor -> metrics Service -> the operator's pods, on the port /metrics is served at
    let monitor = one(&objects, "ServiceMonitor", "t-operator")?;
    let service = one(&objects, "Service", "t-operator-metrics")?;
    let deployment = one(&objects, "Deployment", "t-operator")?;
    ensure!(selects(&monitor["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"]), "{monitor}");
    let bridge_service = one(&objects, "Service", "t-billing-bridge")?;
    ensure!(!selects(&monitor["spec"]["selector"]["matchLabels"], &bridge_service["metadata"]["labels"]));
    ensure!(monitor["spec"]["endpoints"][0]["path"] == "/metrics");
    ensure!(monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]);
    ensure!(selects(&service["spec"]["selector"], &deployment["spec"]["template"]["metadata"]["labels"]));
    let container_ports = &deployment["spec"]["template"]["spec"]["containers"][0]["ports"];
    ensure!(
        container_ports
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == service["spec"]["ports"][0]["targetPort"])
    );

    // the bridge's PodMonitor, with its token from the Secret
    let pods = one(&objects, "PodMonitor", "t-billing-bridge")?;
    let bridge = one(&objects, "Deployment", "t-billing-bridge")?;
    ensure!(selects(&pods["spec"]["selector"]["matchLabels"], &bridge["spec"]["template"]["metadata"]["labels"]));
    let endpoint = &pods["spec"]["podMetricsEndpoints"][0];
    ensure!(
        endpoint["authorization"]["credentials"] == json!({"name": "bridge-metrics", "key": "token"}),
        "{endpoint}"
    );
    Ok(())
}

/// The operator's configuration: PowerDNS, pebble as the issuer `pebble`, the Namesilo double.
fn operator_config(tb: &Testbed, ns: &str) -> anyhow::Result<String> {
    Ok(format!(
        "resyncInterval: 2s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
         powerdns:\n  apiUrl: {pdns}\n  serverId: {sid}\n  dnsAddress: {dns}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n\
         acme:\n  issuers:\n    pebble:\n      directoryUrl: {dir}\n      caBundle: {bundle}\n\
         \x20     email: hostmaster@{ns}.test\n      accountSecretRef: {{namespace: {ns}, name: acme-account}}\n\
         namesilo:\n  apiUrl: {namesilo}\n  apiKeySecretRef: {{namespace: {ns}, name: namesilo, key: api-key}}\n\
         \x20 nameservers: [ns1.{ns}.net, ns2.{ns}.net]\n",
        pdns = tb.get("PDNS_API_URL")?,
        sid = tb.get("PDNS_SERVER_ID")?,
        dns = tb.get("PDNS_DNS_ADDR")?,
        dir = tb.get("ACME_DIRECTORY")?,
        bundle = tb.get("ACME_CA_BUNDLE")?,
        namesilo = tb.get("NAMESILO_URL")?,
    ))
}

/// A file removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn every_operator_panel_shows_series_from_a_running_operator_scraped_by_prometheus() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let prom = Prometheus::from_testbed(&tb)?;
    let ns = tb.namespace("monitoring")?;
    let rt = tokio::runtime::Runtime::new()?;
    let account = rt.block_on(Namesilo::from_testbed(&tb)?.new_account("100.00"))?;
    for (secret, key) in [("powerdns", tb.get("PDNS_API_KEY")?), ("namesilo", account.key())] {
        let literal = format!("--from-literal=api-key={key}");
        tb.kubectl_ok(&["create", "secret", "generic", secret, "-n", &ns.name, &literal], None)?;
    }
    let config = Scratch(std::env::temp_dir().join(format!("{}.operator.yaml", ns.name)));
    std::fs::write(&config.0, operator_config(&tb, &ns.name)?)?;
    // one DnsZone's reconciles panic: reconcile errors, and an object that is not Ready
    let broken = format!("{}/broken", ns.name);
    let mut op = Operator::start_with_env(
        Path::new(tb.get("KUBECONFIG")?),
        &["--config", &config.0.to_string_lossy()],
        &[("MPANEL_FAULT_PANIC", &broken)],
    )?;
    ensure!(op.wait_ready(Duration::from_secs(30))?, "the operator did not become ready: {}", op.stop()?.logs);

    let zone = format!("{}.test", ns.name);
    support::apply_object(
        &tb,
        &ns.name,
        "DnsZone",
        "zone",
        json!({"zone": zone, "nameservers": ["ns1.migrahosting.com"], "records": [
            {"name": "@", "type": "A", "values": ["192.0.2.10"]}]}),
    )?;
    let broken_zone = format!("broken-{zone}");
    support::apply_object(
        &tb,
        &ns.name,
        "DnsZone",
        "broken",
        json!({"zone": broken_zone, "nameservers": ["ns1.migrahosting.com"]}),
    )?;
    support::apply_object(
        &tb,
        &ns.name,
        "Certificate",
        "site",
        json!({"dnsNames": [zone], "secretName": "site-tls", "issuer": "pebble"}),
    )?;
    let domain = format!("{}.com", ns.name);
    support::apply_object(
        &tb,
        &ns.name,
        "Domain",
        "name",
        json!({"name": domain, "registration": {"mode": "Register", "years": 1}}),
    )?;
    for (kind, name) in [("dnszone", "zone"), ("certificate", "site"), ("domain", "name")] {
        support::wait_condition(&tb, &ns.name, kind, name, ("Ready", "True", None), WAIT)?;
    }

    let target = prom.register(&format!("operator-{}", ns.name), &op.health_addr)?;
    prom.wait_scraped(&target, Duration::from_secs(30))?;

    // every panel is the operator's or the bridge's, chosen by its variable
    let dashboard = prometheus::dashboard()?;
    let queries = prometheus::panel_queries(&dashboard);
    ensure!(queries.len() >= 10, "the dashboard has {} queries", queries.len());
    for q in &queries {
        let (operator, bridge) =
            (prometheus::uses_variable(&q.expr, "operator"), prometheus::uses_variable(&q.expr, "bridge"));
        ensure!(operator != bridge, "{:?} must use one of $operator and $bridge: {}", q.panel, q.expr);
    }
    let ours: Vec<_> = queries
        .iter()
        .filter(|q| prometheus::uses_variable(&q.expr, "operator"))
        .map(|q| prometheus::with_instance(q, "operator", &target.address))
        .collect();
    let empty = prom.without_series(&ours, Duration::from_secs(60))?;
    ensure!(empty.is_empty(), "panels without series: {empty:#?}");

    // the variable offers this operator
    let metric = prometheus::variable_metric(&dashboard, "operator")?;
    ensure!(!prom.query(&format!("{metric}{{instance=\"{}\"}}", target.address))?.is_empty(), "{metric}");

    // the rules run on the real series: pebble's certificates live 600 s, always within 14 days
    let pending = format!(
        "ALERTS{{alertname=\"MpanelCertificateNotRenewed\", namespace=\"{}\", name=\"site\", instance=\"{}\"}}",
        ns.name, target.address
    );
    ensure!(
        support::eventually(Duration::from_secs(30), || Ok(!prom.query(&pending)?.is_empty()))?,
        "the certificate alert did not become pending"
    );
    let domain_alert = format!("ALERTS{{alertname=\"MpanelDomainExpiring\", namespace=\"{}\"}}", ns.name);
    ensure!(prom.query(&domain_alert)?.is_empty(), "a domain registered for a year is expiring");

    drop(target);
    let stopped = op.stop()?;
    ensure!(stopped.success, "the operator failed:\n{}", stopped.logs);
    Ok(())
}
