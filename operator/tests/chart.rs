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
        format!("validatingadmissionpolicybinding.admissionregistration.k8s.io/{release}-bridge-owned-secrets"),
    ] {
        assert!(dry.contains(&format!("{object} created (server dry run)")), "{object} missing:\n{dry}");
    }
    let applied = tb.kubectl_ok(&["apply", "-f", "-"], Some(&rendered))?;
    assert_eq!(applied.lines().count(), dry.lines().count(), "the dry run and the apply differ:\n{dry}\n{applied}");

    // run the operator with nothing but the chart's ServiceAccount
    let kubeconfig = service_account_kubeconfig(&tb, &format!("{release}-operator"), &ns.name)?;
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

/// Runs helm with the testbed's kubeconfig.
fn helm(tb: &Testbed, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(tb.get("HELM")?).env("KUBECONFIG", tb.get("KUBECONFIG")?).args(args).output()?)
}

#[test]
fn chart_values_are_checked_against_the_schema() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let chart = repo_root().join("charts/mpanel");
    let chart = chart.to_string_lossy();
    for (set, key) in [
        ("operator.reconcileTimout=2m", "reconcileTimout"),
        ("operatr.replicas=2", "operatr"),
        ("bridge.replica=2", "replica"),
        ("config.powerdns.apiUrl=http://p,config.powerdns.apiKeySecret.nam=x", "nam"),
    ] {
        let out = helm(&tb, &["template", "x", &chart, "--set", set])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains("additional properties") && stderr.contains(key), "{set}: {stderr}");
    }
    for (set, key) in [
        ("operator.replicas=two", "/operator/replicas"),
        ("bridge.enabled=yes", "/bridge/enabled"),
        ("config.resyncInterval=soon", "/config/resyncInterval"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ] {
        let out = helm(&tb, &["template", "x", &chart, "--set-string", set])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains(key), "{set}: {stderr}");
    }
    let lint = helm(&tb, &["lint", "--strict", &chart, "--set", "operator.replicas=two"])?;
    assert!(!lint.status.success(), "helm lint accepted a mistyped value");

    let defaults = helm(&tb, &["template", "x", &chart])?;
    assert!(defaults.status.success(), "defaults: {}", String::from_utf8_lossy(&defaults.stderr));
    assert!(!String::from_utf8_lossy(&defaults.stdout).contains("kind: PodDisruptionBudget"));
    let all_enabled = "\
image: {repository: registry.example/op, tag: v1, pullPolicy: Always}
operator: {replicas: 3, logLevel: debug, healthPort: 9090, resources: {requests: {cpu: 100m, memory: 1Gi}, limits: {cpu: 1, memory: 2Gi}}}
config:
  resyncInterval: 1m30s
  watchNamespace: shop
  leaseDurationSeconds: 20
  powerdns: {apiUrl: http://pdns:8081, serverId: localhost, apiKeySecret: {name: pdns, key: k}, dnsAddress: pdns:53}
  acme:
    ordersPerRegisteredDomainPerWeek: 30
    issuers:
      le: {directoryUrl: https://acme.example/dir, email: a@example.com, accountSecret: acct, caBundle: /ca.pem,
           externalAccountBinding: {keyId: kid, hmacKeySecret: {name: eab, key: hmac}}}
  mailcore: {databaseUrlSecret: {name: db, key: url}, maildirRoot: /var/vmail}
  proxmox: {url: https://pve:8006, tokenSecret: {name: pve, key: token}, caFile: /pve.pem, storage: ceph, vmidRange: {first: 10000, last: 19999}}
  namesilo: {apiUrl: https://ns.example/api, apiKeySecret: {name: ns, key: k}, nameservers: [ns1.example.com], zoneDefaults: {a: [203.0.113.10]}}
serviceAccount: {create: true, name: op}
bridge:
  enabled: true
  image: {repository: registry.example/bridge, tag: v1}
  replicas: 2
  port: 8091
  secretName: bridge
  runtimeRole: bridge_rt
  tenant: shop
  namesiloUrl: https://ns.example/api
  successUrl: https://shop.example/done
  cancelUrl: https://shop.example/cancel
  resources: {requests: {cpu: 50m}}
monitoring:
  serviceMonitor: {enabled: true, interval: 15s, labels: {release: kps}, bridgeTokenSecret: {name: bt, key: token}}
  prometheusRule: {enabled: true, labels: {release: kps}}
  dashboard: {enabled: true, namespace: grafana, labels: {team: ops}}
";
    let file = std::env::temp_dir().join(format!("mpanel-all-enabled-{}.yaml", std::process::id()));
    std::fs::write(&file, all_enabled)?;
    let out = helm(&tb, &["template", "x", &chart, "--namespace", "shop", "-f", &file.to_string_lossy()]);
    let lint = helm(&tb, &["lint", "--strict", &chart, "-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    let (out, lint) = (out?, lint?);
    assert!(out.status.success(), "all enabled: {}", String::from_utf8_lossy(&out.stderr));
    assert!(lint.status.success(), "helm lint, all enabled: {}", String::from_utf8_lossy(&lint.stdout));
    let rendered = String::from_utf8(out.stdout)?;
    let pdb = rendered.split("\n---\n").find(|d| d.contains("kind: PodDisruptionBudget"));
    let Some(pdb) = pdb else { bail!("no PodDisruptionBudget with bridge.replicas 2:\n{rendered}") };
    assert!(pdb.contains("name: x-billing-bridge") && pdb.contains("minAvailable: 1"), "{pdb}");
    assert!(pdb.contains("app.kubernetes.io/name: mpanel-billing-bridge"), "{pdb}");
    Ok(())
}

/// The `spec:` part of a CRD's YAML and what precedes it.
fn split_spec(doc: &str) -> anyhow::Result<(&str, &str)> {
    let at = doc.find("\nspec:\n").context("no spec")?;
    Ok((&doc[..at], &doc[at..]))
}

#[test]
fn crds_chart_renders_the_generated_crds_kept_on_uninstall() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let chart = repo_root().join("charts/mpanel-crds");
    let lint = helm(&tb, &["lint", "--strict", &chart.to_string_lossy()])?;
    assert!(lint.status.success(), "helm lint: {}", String::from_utf8_lossy(&lint.stdout));
    let out = helm(&tb, &["template", "mpanel-crds", &chart.to_string_lossy()])?;
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout)?;
    let mut seen = Vec::new();
    for doc in rendered.split("---\n").filter(|d| d.contains("kind: CustomResourceDefinition")) {
        let source = doc.lines().find_map(|l| l.strip_prefix("# Source: mpanel-crds/templates/")).context("source")?;
        let generated = std::fs::read_to_string(repo_root().join("crds/manifests").join(source))?;
        let (meta, spec) = split_spec(doc)?;
        let (generated_meta, generated_spec) = split_spec(&generated)?;
        assert_eq!(spec.trim_end(), generated_spec.trim_end(), "{source}: the spec differs from crds/manifests");
        assert!(
            meta.contains("annotations:\n    helm.sh/resource-policy: keep\n"),
            "{source}: no keep policy:\n{meta}"
        );
        let name = generated_meta.lines().find(|l| l.starts_with("  name: ")).context("name")?;
        assert!(meta.contains(name), "{source}: {name} missing");
        seen.push(source.to_owned());
    }
    let mut manifests: Vec<_> = std::fs::read_dir(repo_root().join("crds/manifests"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    manifests.retain(|f| f.ends_with(".yaml"));
    manifests.sort();
    seen.sort();
    assert_eq!(seen, manifests, "the chart has a CRD for every generated manifest");
    // the main chart keeps its crds/ for first installs, identical to the generated manifests
    for file in &manifests {
        let first_install = std::fs::read_to_string(repo_root().join("charts/mpanel/crds").join(file))?;
        assert_eq!(first_install, std::fs::read_to_string(repo_root().join("crds/manifests").join(file))?);
    }
    Ok(())
}

/// The chart as of the commit before the values schema, the mpanel-crds chart and version 0.2.0.
const PREVIOUS_CHART: &str = "a8b594da04c739a54093d67b9ec153aa52310794";

#[test]
fn chart_upgrades_from_the_previous_version() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("chart-up")?;
    let release = ns.name.clone();
    let old = std::env::temp_dir().join(format!("{release}-previous"));
    std::fs::create_dir_all(&old)?;
    let archive = Command::new("git")
        .current_dir(repo_root())
        .args(["archive", PREVIOUS_CHART, "charts/mpanel", "monitoring"])
        .output()?;
    assert!(archive.status.success(), "git archive: {}", String::from_utf8_lossy(&archive.stderr));
    let mut tar =
        Command::new("tar").args(["-x", "-C", &old.to_string_lossy()]).stdin(std::process::Stdio::piped()).spawn()?;
    std::io::Write::write_all(&mut tar.stdin.take().context("tar stdin")?, &archive.stdout)?;
    assert!(tar.wait()?.success(), "tar failed");
    let old_chart = old.join("charts/mpanel");
    let new_chart = repo_root().join("charts/mpanel");
    let _cluster_scoped = ClusterScoped { tb: &tb, release: &release };
    let watch = format!("config.watchNamespace={release}");
    let common = ["--namespace", &release, "--skip-crds", "--set", &watch, "--set", "bridge.enabled=true"];

    let install = helm(&tb, &[&["install", &release, &old_chart.to_string_lossy()], &common[..]].concat());
    let _ = std::fs::remove_dir_all(&old);
    let install = install?;
    assert!(install.status.success(), "helm install (previous chart): {}", String::from_utf8_lossy(&install.stderr));
    let version = |object: &str| {
        tb.kubectl_ok(&["get", object, "-n", &release, "-o", "jsonpath={.metadata.labels.helm\\.sh/chart}"], None)
    };
    assert_eq!(version(&format!("deployment/{release}-operator"))?, "mpanel-0.1.0");

    let upgrade = helm(
        &tb,
        &[&["upgrade", &release, &new_chart.to_string_lossy(), "--set", "bridge.replicas=2"], &common[..]].concat(),
    )?;
    let status = helm(&tb, &["status", &release, "--namespace", &release, "-o", "json"])?;
    let objects = [
        format!("deployment/{release}-operator"),
        format!("deployment/{release}-billing-bridge"),
        format!("configmap/{release}-operator"),
        format!("serviceaccount/{release}-operator"),
        format!("poddisruptionbudget/{release}-billing-bridge"),
        format!("clusterrole/{release}-tenant-edit"),
        format!("validatingadmissionpolicy/{release}-operator-owned-secrets"),
    ];
    let versions: Vec<_> = objects.iter().map(|o| (o.clone(), version(o))).collect();
    let uninstall = helm(&tb, &["uninstall", &release, "--namespace", &release, "--wait"])?;

    assert!(upgrade.status.success(), "helm upgrade: {}", String::from_utf8_lossy(&upgrade.stderr));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(status["version"], 2, "{status}");
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    for (object, version) in versions {
        assert_eq!(version?, "mpanel-0.2.0", "{object} is not at the new revision");
    }
    assert!(uninstall.status.success(), "helm uninstall: {}", String::from_utf8_lossy(&uninstall.stderr));
    Ok(())
}

/// The documents of a `helm template` output, as JSON.
fn documents(rendered: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let docs = rendered.split("\n---\n").filter(|d| d.lines().any(|l| l.starts_with("kind:")));
    docs.map(|d| serde_saphyr::from_str::<serde_json::Value>(d).map_err(|e| anyhow::anyhow!("{e}: {d}"))).collect()
}

#[test]
fn two_sharded_releases_render_two_operators_each_with_its_own_lease_and_shard() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let chart = repo_root().join("charts/mpanel");
    let chart = chart.to_string_lossy();
    let mut leases = Vec::new();
    for (release, shard) in [("shard-a", "a"), ("shard-b", "b")] {
        let selector = format!("shard.namespaceSelector=mpanel.migrahosting.com/shard={shard}");
        let out = helm(&tb, &["template", release, &chart, "--namespace", "mpanel-system", "--set-string", &selector])?;
        assert!(out.status.success(), "{release}: {}", String::from_utf8_lossy(&out.stderr));
        let docs = documents(&String::from_utf8(out.stdout)?)?;
        let named = |kind: &str| {
            docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == format!("{release}-operator"))
        };
        assert!(named("Deployment").is_some(), "{release}: no Deployment {release}-operator");
        let rules = named("ClusterRole").map(|r| r["rules"].clone()).unwrap_or_default();
        let namespaces =
            rules.as_array().into_iter().flatten().find(|r| r["resources"] == serde_json::json!(["namespaces"]));
        assert_eq!(
            namespaces.map(|r| r["verbs"].clone()),
            Some(serde_json::json!(["get", "list", "watch"])),
            "{release}: the shard's namespaces are watched by label: {rules:#}"
        );
        let config_text = named("ConfigMap").and_then(|c| c["data"]["operator.yaml"].as_str().map(str::to_owned));
        let Some(config_text) = config_text else { bail!("{release}: no operator.yaml") };
        let config = mpanel_operator::config::Config::parse(&config_text).map_err(anyhow::Error::msg)?;
        let wanted = format!("mpanel.migrahosting.com/shard={shard}");
        assert_eq!(config.shard.map(|s| s.namespace_selector), Some(wanted), "{config_text}");
        leases.push((config.leader_election.namespace, config.leader_election.lease_name));
    }
    assert_eq!(
        leases,
        [
            ("mpanel-system".to_owned(), "shard-a-operator".to_owned()),
            ("mpanel-system".to_owned(), "shard-b-operator".to_owned())
        ],
        "each release holds a Lease of its own"
    );

    // unsharded, the operator does not read namespaces
    let out = helm(&tb, &["template", "x", &chart])?;
    let rendered = String::from_utf8(out.stdout)?;
    assert!(out.status.success() && !rendered.contains("\"namespaces\""), "{rendered}");
    // a shard narrowed to one namespace as well is refused
    let both = "shard.namespaceSelector=team=a,config.watchNamespace=shop";
    let out = helm(&tb, &["template", "x", &chart, "--set-string", both])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("exclude each other"), "{stderr}");
    Ok(())
}

/// A kubeconfig for the testbed's API server that authenticates as the ServiceAccount `account` of
/// `namespace`.
fn service_account_kubeconfig(tb: &Testbed, account: &str, namespace: &str) -> anyhow::Result<std::path::PathBuf> {
    let token = tb.kubectl_ok(&["create", "token", account, "-n", namespace], None)?;
    let admin = std::fs::read_to_string(tb.get("KUBECONFIG")?)?;
    let server = admin.lines().find_map(|l| l.split("server: \"").nth(1)).and_then(|s| s.split('"').next());
    let ca = admin.lines().find_map(|l| l.split("certificate-authority: \"").nth(1)).and_then(|s| s.split('"').next());
    let (Some(server), Some(ca)) = (server, ca) else { bail!("cannot read the testbed kubeconfig:\n{admin}") };
    let kubeconfig = std::env::temp_dir().join(format!("{namespace}-{account}.kubeconfig"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}}}]\n\
             users: [{{name: sa, user: {{token: \"{}\"}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: sa}}}}]\ncurrent-context: t\n",
            token.trim()
        ),
    )?;
    Ok(kubeconfig)
}

#[test]
fn a_sharded_release_runs_as_its_service_account_and_reconciles_its_labelled_namespace() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("chart-shard")?;
    let release = ns.name.clone();
    let customer = tb.namespace("chart-shard-customer")?;
    let selector = format!("mpanel.migrahosting.com/shard={release}");
    let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
    tb.kubectl_ok(&["create", "secret", "generic", "powerdns-api", "-n", &ns.name, &key], None)?;
    let chart = repo_root().join("charts/mpanel");
    let values = [
        format!("config.powerdns.apiUrl={}", tb.get("PDNS_API_URL")?),
        format!("config.powerdns.serverId={}", tb.get("PDNS_SERVER_ID")?),
        "config.powerdns.apiKeySecret.name=powerdns-api".to_owned(),
        "config.resyncInterval=5s".to_owned(),
        format!("shard.namespaceSelector={selector}"),
    ];
    let out = Command::new(tb.get("HELM")?)
        .args(["template", &release, &chart.to_string_lossy(), "--namespace", &ns.name])
        .args(values.iter().flat_map(|v| ["--set-string", v.as_str()]))
        .output()?;
    anyhow::ensure!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout)?;
    let _cluster_scoped = ClusterScoped { tb: &tb, release: &release };
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&rendered))?;
    let kubeconfig = service_account_kubeconfig(&tb, &format!("{release}-operator"), &ns.name)?;
    let config_text = tb.kubectl_ok(
        &["get", "configmap", &format!("{release}-operator"), "-n", &ns.name, "-o", "jsonpath={.data.operator\\.yaml}"],
        None,
    )?;
    let config = std::env::temp_dir().join(format!("{release}.operator.yaml"));
    std::fs::write(&config, config_text)?;
    tb.kubectl_ok(&["label", "namespace", &customer.name, &selector], None)?;

    let mut operator = Operator::start(&kubeconfig, &["--config", &config.to_string_lossy()])?;
    let ready = operator.wait_ready(Duration::from_secs(30))?;
    let zone = format!("{}.mpanel-e2e.", customer.name);
    let manifest = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "zone", "namespace": customer.name},
        "spec": {"zone": zone, "nameservers": ["ns1.migrahosting.com"], "records": [{"name": "www", "type": "A", "values": ["192.0.2.8"]}]}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
    let zone_ready =
        tb.kubectl(&["wait", "--for=condition=Ready", "dnszone/zone", "-n", &customer.name, "--timeout=60s"], None)?;
    let served = tb.dig(&format!("www.{zone}"), "A")?;
    let lease = tb.kubectl(
        &["get", "lease", &format!("{release}-operator"), "-n", &ns.name, "-o", "jsonpath={.spec.holderIdentity}"],
        None,
    )?;
    let deleted = tb.kubectl(&["delete", "dnszone/zone", "-n", &customer.name, "--timeout=60s"], None)?;
    let stopped = operator.stop()?;
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(&config);

    assert!(ready, "the operator did not become ready as the chart's ServiceAccount:\n{}", stopped.logs);
    assert!(zone_ready.success, "the DnsZone did not become Ready: {}\n{}", zone_ready.stderr, stopped.logs);
    assert_eq!(served.answers, ["192.0.2.8"]);
    assert!(lease.success && !lease.stdout.is_empty(), "the release's own Lease is held: {lease:?}");
    assert!(deleted.success, "the finalizer did not complete: {}\n{}", deleted.stderr, stopped.logs);
    assert!(!stopped.logs.contains("forbidden"), "the ServiceAccount lacks a permission:\n{}", stopped.logs);
    assert!(stopped.success, "non-zero exit after SIGTERM:\n{}", stopped.logs);
    Ok(())
}
