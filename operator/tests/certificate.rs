//! The Certificate controller end to end: a real kube-apiserver, the operator binary, a real
//! PowerDNS for DNS-01, and pebble (validation on, 600 s certificates) as the CA.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::powerdns::{self, DnsApi, NewZone, PowerDns};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{AwaitBlocking, Operator, condition, eventually, metric_sum};

const WAIT: Duration = Duration::from_secs(90);

/// A namespace of its own with a zone `<namespace>.test`, the PowerDNS key in a Secret there, and an
/// operator config that reconciles only that namespace with pebble as the issuer `pebble`.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str, orders_per_week: u32) -> anyhow::Result<Self> {
        Self::with_resync(tb, label, orders_per_week, "30s")
    }

    /// Like [`Harness::new`], with the operator's `resyncInterval` set to `resync`.
    fn with_resync(tb: &'a Testbed, label: &str, orders_per_week: u32, resync: &str) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let key = tb.get("PDNS_API_KEY")?;
        tb.kubectl_ok(
            &["create", "secret", "generic", "powerdns", "-n", &ns.name, &format!("--from-literal=api-key={key}")],
            None,
        )?;
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: {resync}\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  dnsAddress: {dns}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n\
                 acme:\n  ordersPerRegisteredDomainPerWeek: {orders_per_week}\n  issuers:\n    pebble:\n      directoryUrl: {dir}\n      caBundle: {bundle}\n\
                 \x20     email: hostmaster@{ns}.test\n      accountSecretRef: {{namespace: {ns}, name: acme-account}}\n",
                ns = ns.name,
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
                dns = tb.get("PDNS_DNS_ADDR")?,
                dir = tb.get("ACME_DIRECTORY")?,
                bundle = tb.get("ACME_CA_BUNDLE")?,
            ),
        )?;
        Ok(Self { tb, ns, config })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    /// The zone this test owns, without the trailing dot.
    fn zone(&self) -> String {
        format!("{}.test", self.ns.name)
    }

    fn apply(&self, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, kind, name, spec)
    }

    fn apply_zone(&self) -> anyhow::Result<()> {
        self.apply(
            "DnsZone",
            "zone",
            json!({"zone": self.zone(), "nameservers": ["ns1.migrahosting.com"], "records": [
                {"name": "@", "type": "A", "values": ["192.0.2.10"]}]}),
        )
    }

    fn apply_certificate(&self, name: &str, dns_names: &[String], extra: Value) -> anyhow::Result<()> {
        let mut spec = json!({"dnsNames": dns_names, "secretName": format!("{name}-tls"), "issuer": "pebble"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        self.apply("Certificate", name, spec)
    }

    fn get(&self, kind: &str, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, kind, name)
    }

    /// Waits until `check` holds for the Certificate; fails with its last status.
    fn wait_certificate(&self, name: &str, what: &str, check: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        support::wait_object(self.tb, &self.ns.name, "certificate", name, what, WAIT, check)
    }

    fn wait_condition(&self, name: &str, type_: &str, status: &str, reason: Option<&str>) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, "certificate", name, (type_, status, reason), WAIT)
    }

    /// The challenge TXT values PowerDNS serves for `name` (empty for none).
    fn challenge_txt(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let answer = self.tb.dig(&format!("_acme-challenge.{name}"), "TXT")?;
        Ok(answer.answers)
    }

    /// Writes the Secret's chain to files: (leaf, whole chain, key).
    fn secret_files(&self, secret: &str) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        let s = self.get("secret", secret)?;
        assert_eq!(s["type"], "kubernetes.io/tls");
        let dir = std::env::temp_dir().join(format!("{}-{secret}", self.ns.name));
        std::fs::create_dir_all(&dir)?;
        let decode = |k: &str| -> anyhow::Result<Vec<u8>> {
            let b64 = s["data"][k].as_str().with_context(|| format!("Secret {secret} has no {k}"))?;
            let out = Command::new("base64").arg("-d").stdin(std::process::Stdio::piped()).output_with(b64)?;
            Ok(out)
        };
        let chain = dir.join("chain.pem");
        let key = dir.join("key.pem");
        std::fs::write(&chain, decode("tls.crt")?)?;
        std::fs::write(&key, decode("tls.key")?)?;
        let leaf = dir.join("leaf.pem");
        std::fs::write(&leaf, openssl(&["x509", "-in", &chain.to_string_lossy()])?)?;
        Ok((leaf, chain, key))
    }

    /// Orders pebble has accepted so far (all tests share it: compare counts within one test only
    /// when nothing else could order, or use the operator's own count).
    fn acme_new_orders(op: &Operator) -> anyhow::Result<f64> {
        Ok(metric_sum(
            &op.metrics()?,
            "mpanel_provider_calls_total",
            &[("provider", "acme"), ("operation", "new_order")],
        ))
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

trait OutputWith {
    fn output_with(&mut self, stdin: &str) -> anyhow::Result<Vec<u8>>;
}

impl OutputWith for Command {
    fn output_with(&mut self, stdin: &str) -> anyhow::Result<Vec<u8>> {
        use std::io::Write;
        let mut child = self.stdout(std::process::Stdio::piped()).spawn()?;
        child.stdin.take().context("stdin")?.write_all(stdin.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("{self:?} failed");
        }
        Ok(out.stdout)
    }
}

fn openssl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("openssl").args(args).output().context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// pebble's issuing root, fetched from its management interface.
fn pebble_root(tb: &Testbed, dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("curl")
        .args(["-sSf", "--cacert", tb.get("ACME_CA_BUNDLE")?, tb.get("ACME_ROOTS_URL")?])
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!("fetching pebble's root: {}", String::from_utf8_lossy(&out.stderr));
    }
    let path = dir.join("pebble-root.pem");
    std::fs::write(&path, out.stdout)?;
    Ok(path)
}

/// Serial of a PEM certificate file, as openssl prints it.
fn serial(leaf: &Path) -> anyhow::Result<String> {
    Ok(openssl(&["x509", "-noout", "-serial", "-in", &leaf.to_string_lossy()])?.trim().to_owned())
}

#[test]
fn apex_and_wildcard_are_issued_the_chain_verifies_and_no_challenge_record_remains() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cert-issue", 40)?;
    let op = h.operator()?;
    let zone = h.zone();
    h.apply_zone()?;
    let started = Instant::now();
    h.apply_certificate("site", &[zone.clone(), format!("*.{zone}")], json!({}))?;
    let ready = h.wait_condition("site", "Ready", "True", None)?;
    println!("apply to Ready: {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(ready["status"]["phase"], "Ready");
    assert_eq!(condition(&ready, "Issuing")["reason"], "Issued");
    assert!(condition(&ready, "Issuing")["message"].as_str().unwrap_or("").contains("challenge records removed"));
    for field in ["notBefore", "notAfter", "renewalTime"] {
        assert!(ready["status"][field].is_string(), "status.{field} is set: {:#}", ready["status"]);
    }
    assert!(ready["status"].get("orderURL").is_none(), "no order in flight once issued");
    // dashboards and alerts see when it expires, and the Certificate counted as Ready
    let not_after: jiff::Timestamp = ready["status"]["notAfter"].as_str().context("notAfter")?.parse()?;
    let exposition = op.metrics()?;
    let labels = [("namespace", h.ns.name.as_str()), ("name", "site")];
    let gauge = metric_sum(&exposition, "mpanel_certificate_expiration_timestamp_seconds", &labels);
    assert_eq!(gauge, not_after.as_second() as f64, "{exposition}");
    let ready_certificates = [("kind", "Certificate"), ("phase", "Ready"), ("ready", "true")];
    assert!(metric_sum(&exposition, "mpanel_objects", &ready_certificates) >= 1.0, "{exposition}");

    let (leaf, chain, key) = h.secret_files("site-tls")?;
    let root = pebble_root(&tb, leaf.parent().context("dir")?)?;
    let verified = openssl(&[
        "verify",
        "-CAfile",
        &root.to_string_lossy(),
        "-untrusted",
        &chain.to_string_lossy(),
        &leaf.to_string_lossy(),
    ])?;
    assert!(verified.contains(": OK"), "{verified}");
    let san = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &leaf.to_string_lossy()])?;
    assert!(san.contains(&format!("DNS:{zone}")) && san.contains(&format!("DNS:*.{zone}")), "{san}");
    let cert_key = openssl(&["x509", "-noout", "-pubkey", "-in", &leaf.to_string_lossy()])?;
    let private_key = openssl(&["pkey", "-pubout", "-in", &key.to_string_lossy()])?;
    assert_eq!(cert_key, private_key, "the Secret's key is the certificate's");
    assert!(
        openssl(&["pkey", "-noout", "-text", "-in", &key.to_string_lossy()])?.contains("P-256"),
        "ECDSA P-256 by default"
    );

    let secret = h.get("secret", "site-tls")?;
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"], "Certificate",
        "the Secret is owned by the Certificate"
    );
    assert!(h.get("secret", "site-next-key").is_err(), "the pending key is gone once the chain is stored");
    let events = tb.kubectl_ok(
        &["get", "events", "-n", &h.ns.name, "-o", "custom-columns=T:.lastTimestamp,R:.reason,M:.note,M2:.message"],
        None,
    )?;
    let status = h.get("certificate", "site")?;
    assert_eq!(
        h.challenge_txt(&zone)?,
        Vec::<String>::new(),
        "no _acme-challenge TXT remains\n{events}\n{:#}",
        status["status"]
    );
    Ok(())
}

/// Writes the operator sent for Certificates (the objects and their status) so far.
fn certificate_writes(exposition: &str) -> f64 {
    let verbs = ["create", "update", "patch", "apply", "delete", "deletecollection"];
    let resources = ["certificates", "certificates/status"];
    verbs
        .iter()
        .flat_map(|v| {
            resources.map(|r| metric_sum(exposition, "mpanel_api_requests_total", &[("verb", v), ("resource", r)]))
        })
        .sum()
}

#[test]
fn an_issued_certificate_left_alone_is_not_written_again_as_time_passes() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::with_resync(&tb, "cert-idle", 40, "2s")?;
    let op = h.operator()?;
    let zone = h.zone();
    h.apply_zone()?;
    h.apply_certificate("idle", &[format!("idle.{zone}")], json!({}))?;
    h.wait_condition("idle", "Ready", "True", None)?;
    // the reconciles the issuance itself caused are over
    std::thread::sleep(Duration::from_secs(3));
    let before = h.get("certificate", "idle")?;
    let reconciles = |t: &str| metric_sum(t, "mpanel_reconciles_total", &[("kind", "Certificate")]);
    let exposition = op.metrics()?;
    let (writes, acme, reconciled) = (
        certificate_writes(&exposition),
        metric_sum(&exposition, "mpanel_provider_calls_total", &[("provider", "acme")]),
        reconciles(&exposition),
    );
    // several resyncs, real seconds apart
    std::thread::sleep(Duration::from_secs(9));
    let exposition = op.metrics()?;
    assert!(reconciles(&exposition) >= reconciled + 3.0, "resynced meanwhile: {exposition}");
    let after = h.get("certificate", "idle")?;
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "the Certificate is unchanged: {:#} then {:#}",
        before["status"], after["status"]
    );
    assert_eq!(certificate_writes(&exposition), writes, "no write for an unchanged Certificate");
    let acme_after = metric_sum(&exposition, "mpanel_provider_calls_total", &[("provider", "acme")]);
    assert_eq!(acme_after, acme, "no call to the CA for a certificate that is valid");
    assert_eq!(condition(&after, "Ready")["status"], "True");
    Ok(())
}

#[test]
fn the_certificate_renews_by_itself_with_a_new_serial_and_key() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cert-renew", 40)?;
    let _op = h.operator()?;
    let zone = h.zone();
    h.apply_zone()?;
    // pebble's certificates last 600 s: renew 585 s before expiry, 15 s after issuance
    h.apply_certificate("renewing", &[format!("www.{zone}")], json!({"renewBefore": "585s"}))?;
    // an RSA key that is kept across renewals
    h.apply_certificate(
        "keeping",
        &[format!("mail.{zone}")],
        json!({"renewBefore": "585s", "privateKey": {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Never"}}),
    )?;
    let first = h.wait_condition("renewing", "Ready", "True", None)?;
    let (leaf, _, key) = h.secret_files("renewing-tls")?;
    let (first_serial, first_key) = (serial(&leaf)?, std::fs::read_to_string(&key)?);
    let renewal = first["status"]["renewalTime"].clone();
    let kept_first = h.wait_condition("keeping", "Ready", "True", None)?;
    let (kept_leaf, _, kept_key) = h.secret_files("keeping-tls")?;
    let (kept_serial, kept_key_pem) = (serial(&kept_leaf)?, std::fs::read_to_string(&kept_key)?);
    let rsa = openssl(&["pkey", "-noout", "-text", "-in", &kept_key.to_string_lossy()])?;
    assert!(rsa.contains("2048 bit"), "an RSA 2048 key: {}", rsa.lines().next().unwrap_or_default());

    let renewed = h.wait_certificate("renewing", "renewed", |c| {
        c["status"]["notAfter"] != first["status"]["notAfter"] && condition(c, "Ready")["status"] == "True"
    })?;
    let (leaf, _, key) = h.secret_files("renewing-tls")?;
    assert_ne!(serial(&leaf)?, first_serial, "a new certificate is in the Secret");
    assert_ne!(std::fs::read_to_string(&key)?, first_key, "rotationPolicy Always: a new key");
    assert_ne!(renewed["status"]["renewalTime"], renewal, "the next renewal moved on");
    assert!(renewed["status"]["notBefore"].as_str() > first["status"]["notBefore"].as_str());
    assert_eq!(h.challenge_txt(&format!("www.{zone}"))?, Vec::<String>::new());

    h.wait_certificate("keeping", "renewed", |c| {
        c["status"]["notAfter"] != kept_first["status"]["notAfter"] && condition(c, "Ready")["status"] == "True"
    })?;
    let (kept_leaf, _, kept_key) = h.secret_files("keeping-tls")?;
    assert_ne!(serial(&kept_leaf)?, kept_serial, "a new certificate");
    assert_eq!(std::fs::read_to_string(&kept_key)?, kept_key_pem, "rotationPolicy Never: the same key");
    Ok(())
}

#[test]
fn a_name_no_zone_serves_is_not_ordered_and_issues_once_the_dnszone_exists() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cert-nozone", 40)?;
    let op = h.operator()?;
    let zone = h.zone();
    h.apply_certificate("early", std::slice::from_ref(&zone), json!({}))?;
    let refused = h.wait_condition("early", "Ready", "False", Some("NoZoneForName"))?;
    let message = condition(&refused, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    println!("Ready=False message: {message}");
    assert!(message.contains(&format!("no DnsZone in this namespace serves {zone}")), "{message}");
    assert_eq!(condition(&refused, "Issuing")["reason"], "NoZoneForName");
    assert!(refused["status"].get("failedAttempts").is_none(), "nothing was attempted: {:#}", refused["status"]);
    assert_eq!(Harness::acme_new_orders(&op)?, 0.0, "no order was sent to the CA");
    assert!(h.get("configmap", "mpanel-acme-orders").is_err(), "no budget was spent");

    h.apply_zone()?;
    let ready = h.wait_condition("early", "Ready", "True", None)?;
    assert!(ready["status"].get("failedAttempts").is_none(), "a success resets the failures");
    assert_eq!(h.challenge_txt(&zone)?, Vec::<String>::new());
    Ok(())
}

#[test]
fn an_operator_killed_mid_order_resumes_that_order_and_leaves_no_record() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cert-crash", 40)?;
    let zone = h.zone();
    h.apply_zone()?;
    // the fault point ends the first operator right after the order's URL is in the status, before
    // any challenge is answered: the crash lands there however busy the machine is
    let config = h.config.to_string_lossy().into_owned();
    let mut first = Operator::start_with_env(
        Path::new(tb.get("KUBECONFIG")?),
        &["--config", &config],
        &[("MPANEL_FAULT_EXIT_AFTER", "order")],
    )?;
    assert!(first.wait_ready(Duration::from_secs(30))?, "the first operator became ready");
    h.apply_certificate("crashy", &[zone.clone(), format!("*.{zone}")], json!({}))?;
    assert_eq!(first.wait_exit(WAIT)?, Some(3), "the operator exits at the fault point after placing the order");
    let at_exit = h.get("certificate", "crashy")?;
    let order_url = at_exit["status"]["orderURL"].clone();
    assert!(order_url.is_string(), "the order was stored before the exit: {:#}", at_exit["status"]);
    assert!(h.get("secret", "crashy-tls").is_err(), "no certificate was stored: {:#}", at_exit["status"]);

    let second = h.operator()?;
    let ready = h.wait_condition("crashy", "Ready", "True", None)?;
    assert_eq!(
        Harness::acme_new_orders(&second)?,
        0.0,
        "the restarted operator resumed {order_url} instead of ordering"
    );
    let issuing = condition(&ready, "Issuing");
    assert!(issuing["message"].as_str().unwrap_or("").contains("issued"), "{:#}", ready["status"]);
    assert!(h.get("secret", "crashy-tls").is_ok(), "the certificate is stored");
    assert_eq!(h.challenge_txt(&zone)?, Vec::<String>::new(), "no TXT left behind");
    Ok(())
}

#[test]
fn a_spent_order_budget_is_a_condition_and_no_order_reaches_the_ca() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cert-budget", 1)?;
    let op = h.operator()?;
    let zone = h.zone();
    h.apply_zone()?;
    h.apply_certificate("first", std::slice::from_ref(&zone), json!({}))?;
    h.wait_condition("first", "Ready", "True", None)?;
    let orders = Harness::acme_new_orders(&op)?;
    assert_eq!(orders, 1.0);

    h.apply_certificate("second", &[format!("shop.{zone}")], json!({}))?;
    let refused = h.wait_condition("second", "Issuing", "False", Some("OrderBudgetExhausted"))?;
    let message = condition(&refused, "Issuing")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(&format!("order budget of {zone} is spent (1 orders in 7 days)")), "{message}");
    assert_eq!(condition(&refused, "Ready")["status"], "False");
    // every later look at it is refused too: poke it and wait until it was reconciled again
    let reconciles = |op: &Operator| -> anyhow::Result<f64> {
        Ok(metric_sum(&op.metrics()?, "mpanel_reconciles_total", &[("kind", "Certificate")]))
    };
    let before = reconciles(&op)?;
    for poke in ["1", "2"] {
        tb.kubectl_ok(
            &["annotate", "--overwrite", "certificate", "second", "-n", &h.ns.name, &format!("poke={poke}")],
            None,
        )?;
    }
    assert!(eventually(WAIT, || Ok(reconciles(&op)? >= before + 2.0))?, "the Certificate was reconciled again");
    // the operator counts every newOrder request it sends, answered or not
    assert_eq!(Harness::acme_new_orders(&op)?, orders, "no new order was sent to pebble");
    assert!(h.get("secret", "second-tls").is_err());
    let budget = h.get("configmap", "mpanel-acme-orders")?;
    assert_eq!(budget["data"][&zone].as_str().unwrap_or_default().split_whitespace().count(), 1);
    Ok(())
}

#[test]
fn no_challenge_record_is_written_into_a_zone_the_namespace_does_not_own() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "cert-foreign", 40)?;
    let zone = h.zone();
    let pdns = PowerDns::new(
        powerdns::Config {
            api_url: tb.get("PDNS_API_URL")?.to_owned(),
            api_key: tb.get("PDNS_API_KEY")?.to_owned(),
            server_id: tb.get("PDNS_SERVER_ID")?.to_owned(),
            timeout: Duration::from_secs(10),
        },
        std::sync::Arc::new(Metrics::default()),
    )?;
    // another tenant's zone of the same name, already in PowerDNS
    pdns.create_zone(&NewZone {
        name: format!("{zone}."),
        kind: "Native".to_owned(),
        nameservers: vec!["ns.elsewhere.example.".to_owned()],
        account: "someone-else".to_owned(),
        soa_edit_api: "DEFAULT".to_owned(),
        rrsets: vec![],
    })
    .await_blocking()?;
    let _op = h.operator()?;
    h.apply_zone()?;
    h.apply_certificate("hijack", std::slice::from_ref(&zone), json!({}))?;
    let refused = h.wait_condition("hijack", "Issuing", "True", Some("ZoneOwnedElsewhere"))?;
    let message = condition(&refused, "Issuing")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("no challenge record was written"), "{message}");
    assert!(!message.contains("someone-else"), "the foreign account is not shown: {message}");
    assert_eq!(condition(&refused, "Ready")["status"], "False");
    let stored = pdns.zone(&format!("{zone}.")).await_blocking()?.context("the zone is still there")?;
    assert!(
        !stored.rrsets.iter().any(|r| r.name.starts_with("_acme-challenge.")),
        "nothing was written into the foreign zone: {:?}",
        stored.rrsets
    );
    pdns.delete_zone(&format!("{zone}.")).await_blocking()?;
    Ok(())
}
