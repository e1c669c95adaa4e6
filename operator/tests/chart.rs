//! The Helm chart: rendered by the real helm, accepted by the real API server, and its RBAC and
//! configuration are enough for the operator, running as the chart's ServiceAccount, to bring a
//! DnsZone to Ready against the real PowerDNS, a Certificate against the real pebble, a Mailbox
//! against the real mail-core, a CloudPod against fakepve and a Domain (with the DnsZone it owns)
//! against the Namesilo double. Rendered with the billing bridge too, every object (tenant roles and
//! admission policies included) applies cleanly, and the operator works under its Secret policy.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::namesilo::Namesilo;
use mpanel_tests::{Testbed, repo_root};
use support::Operator;

fn helm_template(tb: &Testbed, release: &str, namespace: &str) -> anyhow::Result<String> {
    let registrar_ns = format!("config.namesilo.nameservers={{ns1.{namespace}.net,ns2.{namespace}.net}}");
    let chart = repo_root().join("charts/mpanel");
    let values = [
        format!("config.powerdns.apiUrl={}", tb.get("PDNS_API_URL")?),
        format!("config.powerdns.serverId={}", tb.get("PDNS_SERVER_ID")?),
        "config.powerdns.apiKeySecret.name=powerdns-api".to_owned(),
        format!("config.powerdns.dnsAddress={}", tb.get("PDNS_DNS_ADDR")?),
        format!("config.acme.issuers.pebble.directoryUrl={}", tb.get("ACME_DIRECTORY")?),
        format!("config.acme.issuers.pebble.caBundle={}", tb.get("ACME_CA_BUNDLE")?),
        "config.mailcore.databaseUrlSecret.name=mailcore-db".to_owned(),
        format!("config.proxmox.url={}", tb.get("PROXMOX_URL")?),
        format!("config.proxmox.caFile={}", tb.get("PROXMOX_CA")?),
        "config.proxmox.tokenSecret.name=proxmox-token".to_owned(),
        "config.proxmox.storage=ceph-pool".to_owned(),
        format!("config.proxmox.vmidRange.first={}", 200_000 + (std::process::id() % 100_000) * 10),
        format!("config.proxmox.vmidRange.last={}", 200_009 + (std::process::id() % 100_000) * 10),
        format!("config.namesilo.apiUrl={}", tb.get("NAMESILO_URL")?),
        "config.namesilo.apiKeySecret.name=namesilo-api".to_owned(),
        registrar_ns,
        format!("config.watchNamespace={namespace}"),
        "config.resyncInterval=5s".to_owned(),
        "bridge.enabled=true".to_owned(),
    ];
    let out = Command::new(tb.get("HELM")?)
        .args(["template", release, &chart.to_string_lossy(), "--namespace", namespace])
        .args(values.iter().flat_map(|v| ["--set", v.as_str()]))
        .output()
        .context("running helm")?;
    if !out.status.success() {
        bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Deletes the release's cluster-scoped objects (roles, admission policies) when dropped.
struct ClusterScoped<'a> {
    tb: &'a Testbed,
    release: &'a str,
}

impl Drop for ClusterScoped<'_> {
    fn drop(&mut self) {
        let kinds = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings";
        let selector = format!("app.kubernetes.io/instance={}", self.release);
        let _ = self.tb.kubectl(&["delete", kinds, "-l", &selector, "--wait=false"], None);
    }
}

#[test]
fn chart_installs_and_its_service_account_runs_every_controller() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let lint = Command::new(tb.get("HELM")?)
        .args(["lint", "--strict", &repo_root().join("charts/mpanel").to_string_lossy()])
        .output()?;
    assert!(lint.status.success(), "helm lint: {}", String::from_utf8_lossy(&lint.stdout));

    let ns = tb.namespace("chart")?;
    let release = ns.name.clone();
    let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
    tb.kubectl_ok(&["create", "secret", "generic", "powerdns-api", "-n", &ns.name, &key], None)?;
    let url = format!("--from-literal=url={}", tb.get("MAILCORE_DATABASE_URL")?);
    tb.kubectl_ok(&["create", "secret", "generic", "mailcore-db", "-n", &ns.name, &url], None)?;
    let token = format!("--from-literal=token={}", tb.get("PROXMOX_TOKEN")?);
    tb.kubectl_ok(&["create", "secret", "generic", "proxmox-token", "-n", &ns.name, &token], None)?;
    let account = tokio::runtime::Runtime::new()?.block_on(Namesilo::from_testbed(&tb)?.new_account("50.00"))?;
    let namesilo_key = format!("--from-literal=api-key={}", account.key());
    tb.kubectl_ok(&["create", "secret", "generic", "namesilo-api", "-n", &ns.name, &namesilo_key], None)?;
    tb.kubectl_ok(
        &["create", "secret", "generic", "box-password", "-n", &ns.name, "--from-literal=password=Chart-2026"],
        None,
    )?;
    let rendered = helm_template(&tb, &release, &ns.name)?;
    let _cluster_scoped = ClusterScoped { tb: &tb, release: &release };
    let dry = tb.kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered))?;
    for object in [
        format!("deployment.apps/{release}-operator"),
        format!("deployment.apps/{release}-billing-bridge"),
        format!("clusterrole.rbac.authorization.k8s.io/{release}-tenant-edit"),
        format!("clusterrole.rbac.authorization.k8s.io/{release}-tenant-view"),
        format!("validatingadmissionpolicy.admissionregistration.k8s.io/{release}-cloudpod-billing-fields"),
        format!("validatingadmissionpolicy.admissionregistration.k8s.io/{release}-operator-owned-secrets"),
        format!("validatingadmissionpolicybinding.admissionregistration.k8s.io/{release}-bridge-customer-namespaces"),
    ] {
        assert!(dry.contains(&format!("{object} created (server dry run)")), "{object} missing:\n{dry}");
    }
    let applied = tb.kubectl_ok(&["apply", "-f", "-"], Some(&rendered))?;
    assert_eq!(applied.lines().count(), dry.lines().count(), "the dry run and the apply differ:\n{dry}\n{applied}");

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
    // the configuration the chart mounts
    let config_text = tb.kubectl_ok(
        &["get", "configmap", &format!("{release}-operator"), "-n", &ns.name, "-o", "jsonpath={.data.operator\\.yaml}"],
        None,
    )?;
    let config = std::env::temp_dir().join(format!("{release}.operator.yaml"));
    std::fs::write(&config, config_text)?;

    let mut operator = Operator::start(&kubeconfig, &["--config", &config.to_string_lossy()])?;
    let ready = operator.wait_ready(Duration::from_secs(30))?;
    let zone = format!("{}.mpanel-e2e.", ns.name);
    let manifest = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "zone", "namespace": ns.name},
        "spec": {"zone": zone, "nameservers": ["ns1.migrahosting.com"], "records": [{"name": "www", "type": "A", "values": ["192.0.2.7"]}]}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
    let zone_ready =
        tb.kubectl(&["wait", "--for=condition=Ready", "dnszone/zone", "-n", &ns.name, "--timeout=60s"], None)?;
    let served = tb.dig(&format!("www.{zone}"), "A")?;
    let certificate = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Certificate",
        "metadata": {"name": "www", "namespace": ns.name},
        "spec": {"dnsNames": [format!("www.{}", zone.trim_end_matches('.'))], "secretName": "www-tls", "issuer": "pebble"}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&certificate.to_string()))?;
    let certificate_ready =
        tb.kubectl(&["wait", "--for=condition=Ready", "certificate/www", "-n", &ns.name, "--timeout=60s"], None)?;
    let mailbox = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Mailbox",
        "metadata": {"name": "box", "namespace": ns.name},
        "spec": {"address": format!("chart@{}", zone.trim_end_matches('.')), "quotaMiB": 10,
                 "passwordSecretRef": {"name": "box-password", "key": "password"}}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&mailbox.to_string()))?;
    let mailbox_ready =
        tb.kubectl(&["wait", "--for=condition=Ready", "mailbox/box", "-n", &ns.name, "--timeout=60s"], None)?;
    let pod = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": "pod", "namespace": ns.name},
        "spec": {"plan": "mini", "type": "lxc", "template": "100", "hostname": "chart",
                 "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 8},
                 "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.99/24", "gateway": "203.0.113.1"}}}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&pod.to_string()))?;
    let pod_ready =
        tb.kubectl(&["wait", "--for=condition=Ready", "cloudpod/pod", "-n", &ns.name, "--timeout=60s"], None)?;
    let domain = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Domain",
        "metadata": {"name": "shop", "namespace": ns.name},
        "spec": {"name": format!("{}.com", ns.name), "registration": {"mode": "Register"}, "dns": {"createZone": true}}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&domain.to_string()))?;
    let domain_ready =
        tb.kubectl(&["wait", "--for=condition=Ready", "domain/shop", "-n", &ns.name, "--timeout=60s"], None)?;
    let tls_secret = tb.kubectl(&["get", "secret", "www-tls", "-n", &ns.name, "-o", "jsonpath={.type}"], None)?;
    let deleted = tb.kubectl(&["delete", "certificate/www", "dnszone/zone", "-n", &ns.name, "--timeout=60s"], None)?;
    let orphaned =
        tb.kubectl(&["get", "secret", "www-tls", "-n", &ns.name, "-o", "jsonpath={.metadata.ownerReferences}"], None)?;
    let stopped = operator.stop()?;

    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(&config);
    assert!(ready, "the operator did not become ready as the chart's ServiceAccount:\n{}", stopped.logs);
    assert!(zone_ready.success, "the DnsZone did not become Ready: {}\n{}", zone_ready.stderr, stopped.logs);
    assert_eq!(served.answers, ["192.0.2.7"]);
    assert!(
        certificate_ready.success,
        "the Certificate did not become Ready: {}\n{}",
        certificate_ready.stderr, stopped.logs
    );
    assert_eq!(tls_secret.stdout, "kubernetes.io/tls");
    assert!(pod_ready.success, "the CloudPod did not become Ready: {}\n{}", pod_ready.stderr, stopped.logs);
    assert!(mailbox_ready.success, "the Mailbox did not become Ready: {}\n{}", mailbox_ready.stderr, stopped.logs);
    assert!(domain_ready.success, "the Domain did not become Ready: {}\n{}", domain_ready.stderr, stopped.logs);
    assert!(
        orphaned.success && orphaned.stdout.is_empty(),
        "deletionPolicy Orphan keeps the Secret, unowned: {orphaned:?}"
    );
    assert!(deleted.success, "the finalizer did not complete: {}\n{}", deleted.stderr, stopped.logs);
    assert!(stopped.success, "non-zero exit after SIGTERM:\n{}", stopped.logs);
    assert!(stopped.shutdown_took < Duration::from_secs(10), "shutdown took {:?}", stopped.shutdown_took);
    Ok(())
}
