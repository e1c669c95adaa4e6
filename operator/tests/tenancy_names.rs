//! Names belong to one namespace, end to end: two customers on one cluster, one PowerDNS and one
//! ACME CA (pebble), each with an operator process watching only its own namespace (the name index
//! watches the whole cluster). The attacker acts as a user bound to the chart's `tenant-edit` role
//! in its own namespace. Every attack checks that the victim is unchanged and that the attacker
//! gets a refusal that names neither the victim's namespace nor its objects.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::powerdns::{self, DnsApi, PowerDns};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::tenants::{Customer, TenantRoles};
use support::{AwaitBlocking, Operator, condition, eventually, metric_sum};

const RESYNC_SECONDS: u64 = 3;
const WAIT: Duration = Duration::from_secs(90);
const BUDGET: &str = "mpanel-acme-orders";

/// What the parties share: a namespace standing in for the operator's own (the PowerDNS key, the
/// Leases and the order budget ConfigMap live there, as with one operator), and the chart's tenant
/// roles.
struct Platform<'a> {
    tb: &'a Testbed,
    sys: TestNamespace<'a>,
    roles: TenantRoles<'a>,
    pdns: PowerDns,
}

impl<'a> Platform<'a> {
    fn new(tb: &'a Testbed) -> anyhow::Result<Self> {
        let sys = tb.namespace("names-sys")?;
        let key = tb.get("PDNS_API_KEY")?;
        let literal = format!("--from-literal=api-key={key}");
        tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &sys.name, &literal], None)?;
        let roles = TenantRoles::apply(tb)?;
        let pdns = PowerDns::new(
            powerdns::Config {
                api_url: tb.get("PDNS_API_URL")?.to_owned(),
                api_key: key.to_owned(),
                server_id: tb.get("PDNS_SERVER_ID")?.to_owned(),
                timeout: Duration::from_secs(10),
            },
            Arc::new(Metrics::default()),
        )?;
        Ok(Self { tb, sys, roles, pdns })
    }

    /// The order budget's count for `domain` (0 when it has none).
    fn budget_count(&self, domain: &str) -> anyhow::Result<usize> {
        let out = self.tb.kubectl(&["get", "configmap", BUDGET, "-n", &self.sys.name, "-o", "json"], None)?;
        if !out.success {
            return Ok(0);
        }
        let map: Value = serde_json::from_str(&out.stdout)?;
        Ok(map["data"][domain].as_str().unwrap_or_default().split_whitespace().count())
    }

    /// The budget ConfigMap's data, as text (empty when it does not exist).
    fn budget_data(&self) -> anyhow::Result<String> {
        let out = self.tb.kubectl(&["get", "configmap", BUDGET, "-n", &self.sys.name, "-o", "json"], None)?;
        Ok(if out.success { serde_json::from_str::<Value>(&out.stdout)?["data"].to_string() } else { String::new() })
    }

    /// Whether PowerDNS has the zone `name` (no trailing dot).
    fn zone_exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.pdns.zone(&format!("{name}.")).await_blocking()?.is_some())
    }
}

/// A customer (acting as its tenant-edit user) with an operator watching its namespace.
struct Party<'a> {
    p: &'a Platform<'a>,
    // fields drop in this order: the operator stops before the namespace releases what it left
    op: Operator,
    customer: Customer<'a>,
    config: PathBuf,
}

impl<'a> Party<'a> {
    fn new(p: &'a Platform<'a>, prefix: &str, orders_per_week: u32) -> anyhow::Result<Self> {
        let tb = p.tb;
        let customer = Customer::new(&p.roles, prefix)?;
        let ns = customer.name();
        let config = std::env::temp_dir().join(format!("{ns}.operator.yaml"));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: {RESYNC_SECONDS}s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {sys}, leaseName: op-{ns}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  dnsAddress: {dns}\n  apiKeySecretRef: {{namespace: {sys}, name: powerdns, key: api-key}}\n\
                 acme:\n  ordersPerRegisteredDomainPerWeek: {orders_per_week}\n  issuers:\n    pebble:\n      directoryUrl: {dir}\n      caBundle: {bundle}\n\
                 \x20     email: hostmaster@{ns}.example\n      accountSecretRef: {{namespace: {ns}, name: acme-account}}\n",
                sys = p.sys.name,
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
                dns = tb.get("PDNS_DNS_ADDR")?,
                dir = tb.get("ACME_DIRECTORY")?,
                bundle = tb.get("ACME_CA_BUNDLE")?,
            ),
        )?;
        let op = Operator::start_ready(Path::new(tb.get("KUBECONFIG")?), &config)?;
        Ok(Self { p, customer, config, op })
    }

    fn namespace(&self) -> &str {
        self.customer.name()
    }

    /// A label unique to this party and run that is not its namespace's name (so that a message
    /// naming a zone the attacker typed is not mistaken for one naming the victim's namespace).
    fn label(&self) -> String {
        format!("n{}", self.namespace().rsplit('-').take(2).collect::<Vec<_>>().join("x"))
    }

    fn apply_zone(&self, name: &str, zone: &str, records: Value) -> anyhow::Result<()> {
        self.customer.apply(
            "DnsZone",
            name,
            json!({"zone": zone, "nameservers": ["ns1.migrahosting.com"], "records": records}),
        )
    }

    fn apply_certificate(&self, name: &str, dns_names: &[String]) -> anyhow::Result<()> {
        self.customer.apply(
            "Certificate",
            name,
            json!({"dnsNames": dns_names, "secretName": format!("{name}-tls"), "issuer": "pebble"}),
        )
    }

    /// An object as this party's tenant user reads it.
    fn get(&self, kind: &str, name: &str) -> anyhow::Result<Value> {
        self.customer.get(kind, name)
    }

    fn wait_condition(&self, kind: &str, name: &str, want: (&str, &str, Option<&str>)) -> anyhow::Result<Value> {
        support::wait_condition(self.p.tb, self.namespace(), kind, name, want, WAIT)
    }

    fn uid(&self, kind: &str, name: &str) -> anyhow::Result<String> {
        self.customer.uid(kind, name)
    }

    /// The Events of this namespace as its tenant user reads them, as JSON text.
    fn events(&self) -> anyhow::Result<String> {
        let out = self.customer.kubectl(&["get", "events", "-o", "json"])?;
        if !out.success {
            bail!("{} could not read its Events: {}", self.customer.user, out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// Waits for an Event with `reason` about `name`; its message.
    fn wait_event(&self, name: &str, reason: &str) -> anyhow::Result<String> {
        let mut found = None;
        eventually(WAIT, || {
            let events: Value = serde_json::from_str(&self.events()?)?;
            found = events["items"].as_array().into_iter().flatten().find_map(|e| {
                (e["involvedObject"]["name"] == name && e["reason"] == reason)
                    .then(|| e["message"].as_str().unwrap_or_default().to_owned())
            });
            Ok(found.is_some())
        })?;
        found.with_context(|| format!("no {reason} Event for {name}: {}", self.events().unwrap_or_default()))
    }

    /// Sends of new orders to the CA by this party's operator (counted whether answered or not).
    fn orders_sent(&self) -> anyhow::Result<f64> {
        Ok(metric_sum(
            &self.op.metrics()?,
            "mpanel_provider_calls_total",
            &[("provider", "acme"), ("operation", "new_order")],
        ))
    }

    fn reconciles(&self, kind: &str) -> anyhow::Result<f64> {
        Ok(metric_sum(&self.op.metrics()?, "mpanel_reconciles_total", &[("kind", kind)]))
    }

    /// Waits until every object of `kind` was looked at `times` more times.
    fn wait_reconciled(&self, kind: &str, times: f64) -> anyhow::Result<()> {
        let before = self.reconciles(kind)?;
        if !eventually(WAIT, || Ok(self.reconciles(kind)? >= before + times))? {
            bail!("{kind} was not reconciled {times} more times");
        }
        Ok(())
    }

    /// Fails when `text` names `victim`'s namespace or any of `uids`.
    #[track_caller]
    fn assert_hides(&self, what: &str, text: &str, victim: &Party<'_>, uids: &[&str]) {
        let (mine, theirs) = (self.namespace(), victim.namespace());
        assert!(!text.contains(theirs), "{what} of {mine} names the victim's namespace: {text}");
        for uid in uids {
            assert!(!text.contains(uid), "{what} of {mine} names the victim's uid {uid}: {text}");
        }
    }
}

impl Drop for Party<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// pebble's log from byte `from` on.
fn acme_log_since(tb: &Testbed, from: u64) -> anyhow::Result<String> {
    let text = std::fs::read(tb.get("ACME_LOG")?)?;
    Ok(String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned())
}

fn acme_log_len(tb: &Testbed) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(tb.get("ACME_LOG")?)?.len())
}

/// The `Added order` lines and the names pebble validated, in a piece of its log.
fn acme_activity(log: &str) -> (usize, Vec<String>) {
    let orders = log.lines().filter(|l| l.contains("Added order")).count();
    let validated = log
        .lines()
        .filter_map(|l| l.split("Identifier{Type:\"dns\", Value:\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    (orders, validated)
}

fn a_records(tb: &Testbed, name: &str) -> anyhow::Result<Vec<String>> {
    let answer = tb.dig(name, "A")?;
    Ok(answer.answers)
}

fn wait_served(tb: &Testbed, name: &str, want: &[&str]) -> anyhow::Result<()> {
    let mut last = Vec::new();
    if !eventually(WAIT, || {
        last = a_records(tb, name)?;
        Ok(last == want)
    })? {
        bail!("{name} A: wanted {want:?}, PowerDNS answers {last:?}");
    }
    Ok(())
}

#[test]
fn a_zone_inside_another_namespaces_zone_is_refused_and_nothing_reaches_powerdns() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let p = Platform::new(&tb)?;
    let victim = Party::new(&p, "names-victim", 40)?;
    let attacker = Party::new(&p, "names-attacker", 40)?;
    let zone = format!("{}.test", victim.label());
    let shop = format!("shop.{zone}");
    victim.apply_zone("zone", &zone, json!([{"name": "shop", "type": "A", "values": ["192.0.2.10"]}]))?;
    victim.wait_condition("dnszone", "zone", ("Ready", "True", None))?;
    wait_served(&tb, &shop, &["192.0.2.10"])?;
    let before = p.pdns.zone(&format!("{zone}.")).await_blocking()?;
    let victim_uid = victim.uid("dnszone", "zone")?;

    attacker.apply_zone("hijack", &shop, json!([{"name": "@", "type": "A", "values": ["198.51.100.66"]}]))?;
    attacker.wait_condition("dnszone", "hijack", ("Conflict", "True", Some("NameHeldElsewhere")))?;
    attacker.wait_reconciled("DnsZone", 2.0)?;
    let refused = attacker.get("dnszone", "hijack")?;
    assert_eq!(refused["status"]["phase"], "Conflict");
    assert_eq!(condition(&refused, "Ready")["status"], "False");
    assert_eq!(condition(&refused, "Ready")["reason"], "NameHeldElsewhere");
    let message = condition(&refused, "Conflict")["message"].as_str().unwrap_or_default().to_owned();
    println!("the attacker reads: {message}");
    assert!(message.contains(&format!("zone {shop} is inside or above a name another namespace holds")), "{message}");
    assert!(message.contains("nothing was written to PowerDNS"), "{message}");
    let event = attacker.wait_event("hijack", "NameHeldElsewhere")?;
    assert_eq!(event, message);

    assert!(!p.zone_exists(&shop)?, "PowerDNS has no zone {shop}");
    assert_eq!(a_records(&tb, &shop)?, ["192.0.2.10"], "{shop} still answers the victim's address");
    assert_eq!(p.pdns.zone(&format!("{zone}.")).await_blocking()?, before, "the victim's zone is unchanged");
    assert_eq!(condition(&victim.get("dnszone", "zone")?, "Ready")["status"], "True");
    attacker.assert_hides("the DnsZone's status", &refused["status"].to_string(), &victim, &[&victim_uid]);
    attacker.assert_hides("the Events", &attacker.events()?, &victim, &[&victim_uid]);

    // once the holder is gone, the waiting claim is granted and converges by itself
    victim.customer.kubectl_ok(&["delete", "dnszone", "zone", "--timeout=60s"])?;
    attacker.wait_condition("dnszone", "hijack", ("Ready", "True", None))?;
    assert_eq!(condition(&attacker.get("dnszone", "hijack")?, "Conflict")["status"], "False");
    wait_served(&tb, &shop, &["198.51.100.66"])?;
    attacker.customer.kubectl_ok(&["delete", "dnszone", "hijack", "--timeout=60s"])?;
    assert!(!p.zone_exists(&shop)?, "the attacker's own zone went with its DnsZone");
    Ok(())
}

#[test]
fn a_zone_above_another_namespaces_zone_is_refused_and_nothing_reaches_powerdns() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let p = Platform::new(&tb)?;
    let victim = Party::new(&p, "names-victim", 40)?;
    let attacker = Party::new(&p, "names-attacker", 40)?;
    let parent = format!("{}.test", victim.label());
    let www = format!("www.{parent}");
    victim.apply_zone("www", &www, json!([{"name": "@", "type": "A", "values": ["192.0.2.20"]}]))?;
    victim.wait_condition("dnszone", "www", ("Ready", "True", None))?;
    wait_served(&tb, &www, &["192.0.2.20"])?;
    let before = p.pdns.zone(&format!("{www}.")).await_blocking()?;
    let victim_uid = victim.uid("dnszone", "www")?;

    attacker.apply_zone(
        "above",
        &parent,
        json!([{"name": "www", "type": "A", "values": ["198.51.100.66"]},
               {"name": "@", "type": "A", "values": ["198.51.100.66"]}]),
    )?;
    attacker.wait_condition("dnszone", "above", ("Conflict", "True", Some("NameHeldElsewhere")))?;
    attacker.wait_reconciled("DnsZone", 2.0)?;
    let refused = attacker.get("dnszone", "above")?;
    assert_eq!(refused["status"]["phase"], "Conflict");
    assert_eq!(condition(&refused, "Ready")["status"], "False");
    assert!(!p.zone_exists(&parent)?, "PowerDNS has no zone {parent}");
    assert_eq!(tb.dig(&parent, "A")?.rcode, "REFUSED", "nobody serves {parent}");
    assert_eq!(a_records(&tb, &www)?, ["192.0.2.20"]);
    assert_eq!(p.pdns.zone(&format!("{www}.")).await_blocking()?, before, "the victim's zone is unchanged");
    attacker.wait_event("above", "NameHeldElsewhere")?;
    attacker.assert_hides("the DnsZone's status", &refused["status"].to_string(), &victim, &[&victim_uid]);
    attacker.assert_hides("the Events", &attacker.events()?, &victim, &[&victim_uid]);
    Ok(())
}

#[test]
fn a_certificate_for_another_namespaces_name_places_no_order_and_spends_no_budget() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let p = Platform::new(&tb)?;
    let victim = Party::new(&p, "names-victim", 40)?;
    let attacker = Party::new(&p, "names-attacker", 40)?;
    let zone = format!("{}.test", victim.label());
    let shop = format!("shop.{zone}");
    victim.apply_zone("zone", &zone, json!([{"name": "shop", "type": "A", "values": ["192.0.2.10"]}]))?;
    victim.wait_condition("dnszone", "zone", ("Ready", "True", None))?;
    // the attacker's own zone, of another name
    let own = format!("{}.test", attacker.label());
    attacker.apply_zone("own", &own, json!([{"name": "@", "type": "A", "values": ["198.51.100.66"]}]))?;
    attacker.wait_condition("dnszone", "own", ("Ready", "True", None))?;
    let victim_uid = victim.uid("dnszone", "zone")?;
    let budget_before = p.budget_data()?;
    let log_from = acme_log_len(&tb)?;

    attacker.apply_certificate("steal", std::slice::from_ref(&shop))?;
    // with a name of its own alongside: refused as a whole
    attacker.apply_certificate("mixed", &[own.clone(), shop.clone()])?;
    for name in ["steal", "mixed"] {
        let refused = attacker.wait_condition("certificate", name, ("Ready", "False", Some("NameHeldElsewhere")))?;
        assert_eq!(condition(&refused, "Issuing")["status"], "False");
        assert_eq!(condition(&refused, "Issuing")["reason"], "NameHeldElsewhere");
    }
    attacker.wait_reconciled("Certificate", 4.0)?;
    let refused = attacker.get("certificate", "steal")?;
    let message = condition(&refused, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    println!("the attacker reads: {message}");
    assert!(message.contains(&format!("{shop} is in a zone another namespace holds")), "{message}");
    assert!(message.contains("no order is placed"), "{message}");
    assert!(refused["status"].get("orderURL").is_none(), "no order in flight: {:#}", refused["status"]);
    attacker.wait_event("steal", "NameHeldElsewhere")?;

    assert_eq!(attacker.orders_sent()?, 0.0, "the attacker's operator sent no new order to the CA");
    assert_eq!(p.budget_data()?, budget_before, "the order budget is unchanged");
    let (orders, validated) = acme_activity(&acme_log_since(&tb, log_from)?);
    println!("pebble meanwhile (all tests): {orders} orders added, validated {validated:?}");
    assert!(!validated.iter().any(|n| n.ends_with(&zone)), "pebble validated a name of the victim's: {validated:?}");
    assert!(attacker.get("secret", "steal-tls").is_err() && attacker.get("secret", "mixed-tls").is_err());
    assert_eq!(tb.dig(&format!("_acme-challenge.{shop}"), "TXT")?.answers, Vec::<String>::new());
    assert_eq!(a_records(&tb, &shop)?, ["192.0.2.10"]);
    let status = attacker.get("certificate", "mixed")?["status"].to_string() + &refused["status"].to_string();
    attacker.assert_hides("the Certificates' status", &status, &victim, &[&victim_uid]);
    attacker.assert_hides("the Events", &attacker.events()?, &victim, &[&victim_uid]);
    Ok(())
}

#[test]
fn certificates_for_another_namespaces_names_cannot_exhaust_its_order_budget() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let p = Platform::new(&tb)?;
    // a budget of 2 orders a week per registered domain
    let victim = Party::new(&p, "names-victim", 2)?;
    let attacker = Party::new(&p, "names-attacker", 2)?;
    let zone = format!("{}.test", victim.label());
    victim.apply_zone("zone", &zone, json!([{"name": "@", "type": "A", "values": ["192.0.2.10"]}]))?;
    victim.wait_condition("dnszone", "zone", ("Ready", "True", None))?;
    let own = format!("{}.test", attacker.label());
    attacker.apply_zone("own", &own, json!([]))?;
    attacker.wait_condition("dnszone", "own", ("Ready", "True", None))?;
    let victim_uid = victim.uid("dnszone", "zone")?;

    let targets =
        [zone.clone(), format!("*.{zone}"), format!("www.{zone}"), format!("a.b.{zone}"), format!("mail.{zone}")];
    for (i, name) in targets.iter().enumerate() {
        attacker.apply_certificate(&format!("drain-{i}"), std::slice::from_ref(name))?;
    }
    for i in 0..targets.len() {
        attacker.wait_condition("certificate", &format!("drain-{i}"), ("Ready", "False", Some("NameHeldElsewhere")))?;
    }
    attacker.wait_reconciled("Certificate", 10.0)?;
    assert_eq!(attacker.orders_sent()?, 0.0, "no order was sent for the victim's names");
    assert_eq!(p.budget_count(&zone)?, 0, "nothing was counted against {zone}: {}", p.budget_data()?);
    attacker.assert_hides("the Events", &attacker.events()?, &victim, &[&victim_uid]);

    victim.apply_certificate("site", &[zone.clone(), format!("*.{zone}")])?;
    let ready = victim.wait_condition("certificate", "site", ("Ready", "True", None))?;
    assert_eq!(ready["status"]["phase"], "Ready");
    let secret = victim.get("secret", "site-tls")?;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(victim.orders_sent()?, 1.0);
    assert_eq!(p.budget_count(&zone)?, 1, "the victim's one order is the only one counted");
    Ok(())
}

#[test]
fn a_namespace_holding_part_of_a_registered_domain_uses_only_its_share_of_the_budget() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let p = Platform::new(&tb)?;
    // 2 orders a week per registered domain: one each for two namespaces that share one
    let victim = Party::new(&p, "names-victim", 2)?;
    let attacker = Party::new(&p, "names-attacker", 2)?;
    let domain = format!("{}.test", victim.label());
    let (shop, blog) = (format!("shop.{domain}"), format!("blog.{domain}"));
    victim.apply_zone("shop", &shop, json!([]))?;
    attacker.apply_zone("blog", &blog, json!([]))?;
    victim.wait_condition("dnszone", "shop", ("Ready", "True", None))?;
    attacker.wait_condition("dnszone", "blog", ("Ready", "True", None))?;

    attacker.apply_certificate("first", std::slice::from_ref(&blog))?;
    attacker.wait_condition("certificate", "first", ("Ready", "True", None))?;
    attacker.apply_certificate("second", &[format!("www.{blog}")])?;
    let refused =
        attacker.wait_condition("certificate", "second", ("Issuing", "False", Some("OrderBudgetExhausted")))?;
    let message = condition(&refused, "Issuing")["message"].as_str().unwrap_or_default().to_owned();
    println!("the attacker reads: {message}");
    assert!(
        message.contains(&format!("this namespace's share of the order budget of {domain} is spent (1 of 1")),
        "{message}"
    );
    assert_eq!(attacker.orders_sent()?, 1.0);

    victim.apply_certificate("shop", std::slice::from_ref(&shop))?;
    victim.wait_condition("certificate", "shop", ("Ready", "True", None))?;
    assert_eq!(p.budget_count(&domain)?, 2);
    Ok(())
}
