//! The Domain controller end to end: a real kube-apiserver, the operator binary, the Namesilo
//! double (no Namesilo sandbox runs here; `tests/src/namesilo/` follows Namesilo's API reference)
//! with an account of each test's own, and the real PowerDNS serving the zone a Domain owns.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mpanel_tests::namesilo::{Account, Namesilo};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{Operator, condition, eventually, metric_sum};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace, a Namesilo account of its own (so counting paid calls sees this test's calls only),
/// and an operator config with the Domain and DnsZone controllers for that namespace.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
    rt: tokio::runtime::Runtime,
    account: Account,
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str, balance: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Runtime::new()?;
        let ns = tb.namespace(label)?;
        let account = rt.block_on(Namesilo::from_testbed(tb)?.new_account(balance))?;
        let key = format!("--from-literal=api-key={}", account.key());
        tb.kubectl_ok(&["create", "secret", "generic", "namesilo", "-n", &ns.name, &key], None)?;
        let pdns = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
        tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &ns.name, &pdns], None)?;
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 2s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {pdns_url}\n  serverId: {sid}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n\
                 namesilo:\n  apiUrl: {url}\n  apiKeySecretRef: {{namespace: {ns}, name: namesilo, key: api-key}}\n\
                 \x20 nameservers: [ns1.{ns}.net, ns2.{ns}.net]\n\
                 \x20 registrarSyncInterval: 2s\n\
                 \x20 zoneDefaults: {{a: [192.0.2.10], mx: [{{host: mail.{ns}.net, priority: 10}}]}}\n",
                ns = ns.name,
                pdns_url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
                url = tb.get("NAMESILO_URL")?,
            ),
        )?;
        Ok(Self { tb, ns, config, rt, account })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    /// A name no other test (and no earlier run against the same double) uses.
    fn name(&self) -> String {
        format!("{}.com", self.ns.name)
    }

    fn apply(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, "Domain", name, spec)
    }

    fn get(&self, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, "domain", name)
    }

    fn wait_condition(&self, name: &str, type_: &str, status: &str, reason: Option<&str>) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, "domain", name, (type_, status, reason), WAIT)
    }

    fn wait(&self, name: &str, what: &str, check: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        support::wait_object(self.tb, &self.ns.name, "domain", name, what, WAIT, check)
    }

    /// Calls of `operation` naming `domain` in this test's account.
    fn count(&self, operation: &str, domain: &str) -> anyhow::Result<usize> {
        self.rt.block_on(self.account.count(operation, domain))
    }

    /// The domain as the registrar holds it.
    fn at_registrar(&self, domain: &str) -> anyhow::Result<Option<Value>> {
        self.rt.block_on(self.account.domain(domain))
    }

    /// Waits until the operator looked at `domain` `n` more times (resyncs), so that a call it
    /// should not make would have been made by then.
    fn wait_for_looks(&self, domain: &str, n: usize) -> anyhow::Result<()> {
        let start = self.count("getDomainInfo", domain)?;
        let seen = eventually(WAIT, || Ok(self.count("getDomainInfo", domain)? >= start + n))?;
        anyhow::ensure!(seen, "the operator stopped looking at {domain}");
        Ok(())
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn register(name: &str, extra: Value) -> Value {
    let mut spec = json!({"name": name, "registration": {"mode": "Register", "years": 1}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// `YYYY-MM-DD` plus `years`.
fn plus_years(date: &str, years: i16) -> anyhow::Result<String> {
    let d: jiff::civil::Date = date.parse()?;
    Ok(d.checked_add(jiff::Span::new().years(years))?.to_string())
}

#[test]
fn register_pays_once_reports_the_registrar_expiry_and_serves_the_owned_zone() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-reg", "100.00")?;
    let _op = h.operator()?;
    let name = h.name();
    h.apply("site", register(&name, json!({"dns": {"createZone": true}})))?;
    let ready = h.wait_condition("site", "Ready", "True", Some("Active"))?;

    assert_eq!(h.count("registerDomain", &name)?, 1, "exactly one paid registration");
    let held = h.at_registrar(&name)?.context("the domain is in the account")?;
    let status = &ready["status"];
    assert_eq!(status["expiresAt"], held["expires"], "expiresAt is the registrar's expiry");
    assert_eq!(status["registered"], true);
    assert_eq!(status["phase"], "Active");
    assert_eq!(status["lastOrder"]["operation"], "Register");
    assert_eq!(status["lastOrder"]["state"], "Succeeded");
    assert_eq!(h.rt.block_on(h.account.balance())?, "89.05", "10.95 charged once");
    let ns = &h.ns.name;
    assert_eq!(status["nameservers"], json!([format!("ns1.{ns}.net"), format!("ns2.{ns}.net")]));
    assert_eq!(condition(&ready, "ZoneReady")["status"], "True");

    // the DnsZone is the Domain's, and PowerDNS answers for it
    let zone = support::get_object(&tb, ns, "dnszone", "site")?;
    assert_eq!(zone["metadata"]["ownerReferences"][0]["uid"], ready["metadata"]["uid"]);
    let mut served = tb.dig(&name, "NS")?.answers;
    served.sort();
    assert_eq!(served, [format!("ns1.{ns}.net."), format!("ns2.{ns}.net.")]);
    assert_eq!(tb.dig(&name, "A")?.answers, ["192.0.2.10"]);
    assert_eq!(tb.dig(&name, "MX")?.answers, [format!("10 mail.{ns}.net.")]);

    // a resync looks and buys nothing
    h.wait_for_looks(&name, 2)?;
    assert_eq!(h.count("registerDomain", &name)?, 1);
    Ok(())
}

#[test]
fn a_crash_between_the_register_call_and_the_status_write_still_registers_once() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-crash", "100.00")?;
    let name = h.name();
    let config = h.config.to_string_lossy().into_owned();
    let mut faulty = Operator::start_with_env(
        Path::new(tb.get("KUBECONFIG")?),
        &["--config", &config],
        &[("MPANEL_FAULT_EXIT_AFTER", "register")],
    )?;
    assert!(faulty.wait_ready(Duration::from_secs(30))?);
    h.apply("crashy", register(&name, json!({})))?;
    assert_eq!(faulty.wait_exit(WAIT)?, Some(3), "the operator exits at the fault point after registerDomain");
    assert_eq!(h.count("registerDomain", &name)?, 1, "the registration was paid for");
    let before = h.get("crashy")?;
    assert_eq!(before["status"]["lastOrder"]["state"], "Sent", "it died before recording the answer");

    let _op = h.operator()?;
    let ready = h.wait_condition("crashy", "Ready", "True", None)?;
    assert_eq!(h.count("registerDomain", &name)?, 1, "the restarted operator found the domain instead of paying again");
    assert_eq!(ready["status"]["lastOrder"]["state"], "Succeeded");
    Ok(())
}

#[test]
fn moving_paid_until_a_year_renews_once_for_one_year() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-renew", "100.00")?;
    let _op = h.operator()?;
    let name = h.name();
    h.apply("renewed", register(&name, json!({})))?;
    let ready = h.wait_condition("renewed", "Ready", "True", None)?;
    let expiry = ready["status"]["expiresAt"].as_str().context("expiresAt")?.to_owned();
    // billing says: paid up to the current expiry — nothing to renew
    h.apply("renewed", register(&name, json!({"paidUntil": expiry})))?;
    h.wait_condition("renewed", "Renewed", "True", Some("Covered"))?;
    assert_eq!(h.count("renewDomain", &name)?, 0);

    // one more year paid
    let paid_until = plus_years(&expiry, 1)?;
    h.apply("renewed", register(&name, json!({"paidUntil": paid_until})))?;
    let renewed = h.wait("renewed", "reached the new expiry", |d| {
        d["status"]["expiresAt"] == paid_until.as_str() && condition(d, "Ready")["status"] == "True"
    })?;
    let renewals: Vec<_> =
        h.rt.block_on(h.account.requests())?.into_iter().filter(|r| r.operation == "renewDomain").collect();
    assert_eq!(renewals.len(), 1, "one renewal: {renewals:?}");
    assert_eq!(renewals[0].params.get("years").map(String::as_str), Some("1"), "for exactly one year");
    assert_eq!(renewed["status"]["lastOrder"]["operation"], "Renew");
    assert_eq!(renewed["status"]["lastOrder"]["forPaidUntil"], paid_until.as_str());
    assert_eq!(h.at_registrar(&name)?.context("in the account")?["expires"], paid_until.as_str());

    // the same spec again, and a few resyncs: nothing more is bought
    h.apply("renewed", register(&name, json!({"paidUntil": paid_until})))?;
    h.wait_for_looks(&name, 3)?;
    assert_eq!(h.count("renewDomain", &name)?, 1);
    Ok(())
}

#[test]
fn insufficient_funds_shows_namesilos_detail_and_retries_on_the_backoff() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-funds", "5.00")?;
    let op = h.operator()?;
    let name = h.name();
    h.apply("poor", register(&name, json!({})))?;
    let failed = h.wait_condition("poor", "Registered", "False", Some("NamesiloInsufficientFunds"))?;
    let message = condition(&failed, "Registered")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("119") && message.contains("Insufficient account funds"), "{message}");
    assert_eq!(condition(&failed, "Ready")["reason"], "NamesiloInsufficientFunds");
    assert_eq!(failed["status"]["lastOrder"]["state"], "Failed");
    assert!(h.at_registrar(&name)?.is_none());

    // the backoff doubles from 1 s: within 10 s at most five attempts (a retry storm makes dozens)
    let first = h.count("registerDomain", &name)?;
    std::thread::sleep(Duration::from_secs(10));
    let attempts = h.count("registerDomain", &name)? - first;
    assert!(attempts <= 5, "{attempts} registerDomain calls in 10 s");
    let errors = metric_sum(
        &op.metrics()?,
        "mpanel_reconcile_errors_total",
        &[("kind", "Domain"), ("reason", "NamesiloInsufficientFunds")],
    );
    assert!(errors >= 1.0, "the failures are counted by reason");

    // funds arrive: the next attempt on the backoff registers, once
    h.rt.block_on(h.account.set_balance("100.00"))?;
    let ready =
        support::wait_condition(&tb, &h.ns.name, "domain", "poor", ("Ready", "True", None), Duration::from_secs(120))?;
    assert_eq!(ready["status"]["lastOrder"]["state"], "Succeeded");
    assert!(h.at_registrar(&name)?.is_some());
    let successes: Vec<_> =
        h.rt.block_on(h.account.requests())?
            .into_iter()
            .filter(|r| r.operation == "registerDomain" && r.code == 300)
            .collect();
    assert_eq!(successes.len(), 1, "one successful registration");

    // dashboards see the registration's expiry and the Domain counted as Ready
    let expires: jiff::civil::Date = ready["status"]["expiresAt"].as_str().context("expiresAt")?.parse()?;
    let at = expires.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp().as_second() as f64;
    let exposition = op.metrics()?;
    let labels = [("namespace", h.ns.name.as_str()), ("name", "poor")];
    assert_eq!(metric_sum(&exposition, "mpanel_domain_expiration_timestamp_seconds", &labels), at, "{exposition}");
    assert!(metric_sum(&exposition, "mpanel_objects", &[("kind", "Domain"), ("ready", "true")]) >= 1.0);
    Ok(())
}

#[test]
fn a_transfer_with_a_wrong_auth_code_is_reported_and_the_right_one_completes_it() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-xfer", "100.00")?;
    let name = h.name();
    h.rt.block_on(Namesilo::from_testbed(&tb)?.registry_add(
        &name,
        "RIGHT-c0de",
        "2027-06-30",
        &["ns1.elsewhere.net", "ns2.elsewhere.net"],
    ))?;
    let ns = &h.ns.name;
    tb.kubectl_ok(&["create", "secret", "generic", "epp", "-n", ns, "--from-literal=code=wrong-code"], None)?;
    let _op = h.operator()?;
    h.apply(
        "moving",
        json!({"name": name, "registration": {"mode": "Transfer", "authCodeSecretRef": {"name": "epp", "key": "code"}}}),
    )?;
    let rejected = h.wait_condition("moving", "Registered", "False", Some("TransferAuthCodeRejected"))?;
    let message = condition(&rejected, "Registered")["message"].as_str().unwrap_or_default().to_owned();
    let state = rejected["status"]["transfer"]["state"].as_str().unwrap_or_default().to_owned();
    assert!(!state.is_empty() && message.contains(&state), "the registrar's transfer status verbatim: {message}");
    assert_eq!(rejected["status"]["phase"], "Transferring");
    assert_eq!(h.count("transferDomain", &name)?, 1);

    // the right code, in the same Secret: handed to the pending transfer, not bought again
    let fixed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "epp", "namespace": ns},
                       "stringData": {"code": "RIGHT-c0de"}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&fixed.to_string()))?;
    let ready = h.wait_condition("moving", "Ready", "True", None)?;
    assert_eq!(ready["status"]["transfer"]["state"], "Transfer Completed");
    assert_eq!(h.count("transferDomain", &name)?, 1, "one paid transfer");
    assert_eq!(h.count("transferUpdateChangeEPPCode", &name)?, 1);
    // it arrived with the old registrar's nameservers; now it is delegated as configured
    let held = h.at_registrar(&name)?.context("in the account")?;
    assert_eq!(held["nameservers"], json!([format!("ns1.{ns}.net"), format!("ns2.{ns}.net")]));
    assert_eq!(ready["status"]["expiresAt"], "2028-06-30", "a transfer adds a year");
    Ok(())
}

#[test]
fn nameserver_changes_are_sent_once_and_registrar_drift_is_repaired() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-ns", "100.00")?;
    let op = h.operator()?;
    let name = h.name();
    h.apply("delegated", register(&name, json!({"nameservers": ["ns1.first.net", "ns2.first.net"]})))?;
    h.wait_condition("delegated", "Ready", "True", None)?;
    assert_eq!(h.count("changeNameServers", &name)?, 0, "registered with its nameservers");

    h.apply("delegated", register(&name, json!({"nameservers": ["ns1.second.net", "ns2.second.net"]})))?;
    let moved = h.wait("delegated", "was delegated to second.net", |d| {
        d["status"]["nameservers"] == json!(["ns1.second.net", "ns2.second.net"])
            && condition(d, "Ready")["status"] == "True"
    })?;
    assert_eq!(condition(&moved, "NameserversSynced")["status"], "True");
    assert_eq!(h.count("changeNameServers", &name)?, 1, "one change");
    h.wait_for_looks(&name, 2)?;
    assert_eq!(h.count("changeNameServers", &name)?, 1, "and none while nothing differs");

    // someone changes the delegation and unlocks the domain at the registrar
    h.rt.block_on(
        h.account
            .edit_domain(&name, json!({"nameservers": ["ns1.hijack.example", "ns2.hijack.example"], "locked": false})),
    )?;
    let repaired = eventually(WAIT, || {
        let held = h.at_registrar(&name)?.unwrap_or_default();
        Ok(held["nameservers"] == json!(["ns1.second.net", "ns2.second.net"]) && held["locked"] == true)
    })?;
    assert!(repaired, "the registrar's nameservers and lock were restored");
    assert_eq!(h.count("changeNameServers", &name)?, 2);
    assert_eq!(h.count("domainLock", &name)?, 1);
    let drift = metric_sum(&op.metrics()?, "mpanel_drift_repairs_total", &[("kind", "Domain")]);
    assert!(drift >= 2.0, "both repairs counted: {drift}");
    Ok(())
}

#[test]
fn external_and_observe_only_domains_buy_nothing() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-ext", "100.00")?;
    let _op = h.operator()?;
    let name = h.name();
    h.apply("tracked", json!({"name": name, "registration": {"mode": "External"}}))?;
    let tracked = h.wait_condition("tracked", "Registered", "False", Some("NotInAccount"))?;
    assert_eq!(condition(&tracked, "Ready")["status"], "False");

    let other = format!("watched-{name}");
    let watched = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Domain",
        "metadata": {"name": "watched", "namespace": h.ns.name,
                     "annotations": {"mpanel.migrahosting.com/reconcile-mode": "ObserveOnly"}},
        "spec": register(&other, json!({}))});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&watched.to_string()))?;
    h.wait_condition("watched", "Registered", "False", Some("NotInAccount"))?;
    h.wait_for_looks(&other, 2)?;
    let paid: Vec<_> =
        h.rt.block_on(h.account.requests())?
            .into_iter()
            .filter(|r| matches!(r.operation.as_str(), "registerDomain" | "renewDomain" | "transferDomain"))
            .collect();
    assert!(paid.is_empty(), "no paid call: {paid:?}");
    Ok(())
}

/// The account's calls that change something (anything but the reads), naming `domain`, after the
/// request `after` (a sequence number of the double's log).
fn writes_after(h: &Harness, domain: &str, after: u64) -> anyhow::Result<Vec<mpanel_tests::namesilo::LoggedRequest>> {
    const READS: [&str; 5] =
        ["getDomainInfo", "checkRegisterAvailability", "checkTransferStatus", "listDomains", "getAccountBalance"];
    Ok(h.rt
        .block_on(h.account.requests())?
        .into_iter()
        .filter(|r| r.seq > after && !READS.contains(&r.operation.as_str()))
        .filter(|r| r.params.values().any(|v| v.eq_ignore_ascii_case(domain)))
        .collect())
}

#[test]
fn an_orphaned_registration_in_the_account_is_adopted_only_when_staff_grant_it() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-orphan", "100.00")?;
    let name = h.name();
    // a registration in the account that no Domain claims (its Domain was deleted, or it was bought
    // by hand), delegated to its owner's nameservers
    let reply = h.rt.block_on(h.account.call(
        "registerDomain",
        &[("domain", &name), ("years", "1"), ("ns1", "ns1.owner.example"), ("ns2", "ns2.owner.example")],
    ))?;
    assert_eq!(reply["code"], 300, "{reply}");
    let before = h.at_registrar(&name)?.context("the orphan is in the account")?;
    let setup = h.rt.block_on(h.account.requests())?.iter().map(|r| r.seq).max().unwrap_or(0);

    // a Domain for it in a customer namespace (as a checkout would make one)
    let _op = h.operator()?;
    let hijack = json!({"nameservers": ["ns1.attacker.example", "ns2.attacker.example"], "registration": {
        "mode": "Register", "years": 1, "lock": false, "privacy": false, "autoRenew": true}});
    h.apply("grab", register(&name, hijack))?;
    let refused = h.wait_condition("grab", "Registered", "False", Some("RegistrationNotAdopted"))?;
    assert_eq!(condition(&refused, "Ready")["reason"], "RegistrationNotAdopted");
    let message = condition(&refused, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("already registered") && message.contains("staff"), "{message}");
    assert!(refused["status"]["expiresAt"].is_null(), "the registrar's details are not shown: {refused}");
    h.wait_for_looks(&name, 2)?;
    let writes = writes_after(&h, &name, setup)?;
    assert!(writes.is_empty(), "the registrar was changed or paid: {writes:?}");
    let after = h.at_registrar(&name)?.context("still in the account")?;
    assert_eq!(after["nameservers"], before["nameservers"], "the delegation is the owner's");
    assert_eq!((&after["locked"], &after["autoRenew"]), (&before["locked"], &before["autoRenew"]));

    // staff grant the adoption: now the Domain manages it, without buying it again
    let ns = &h.ns.name;
    tb.kubectl_ok(&["annotate", "domain", "grab", "-n", ns, "mpanel.migrahosting.com/adopt-registration=true"], None)?;
    let adopted = h.wait_condition("grab", "Ready", "True", None)?;
    assert_eq!(adopted["status"]["adopted"], "Granted");
    let held = h.at_registrar(&name)?.context("in the account")?;
    assert_eq!(held["nameservers"], json!(["ns1.attacker.example", "ns2.attacker.example"]));
    let paid: Vec<_> = writes_after(&h, &name, setup)?
        .into_iter()
        .filter(|r| matches!(r.operation.as_str(), "registerDomain" | "renewDomain" | "transferDomain"))
        .collect();
    assert!(paid.is_empty(), "adoption buys nothing: {paid:?}");
    Ok(())
}

#[test]
fn a_domain_for_a_name_another_namespace_holds_never_reaches_the_registrar() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "dom-held", "100.00")?;
    let name = h.name();
    // another customer's zone for the name, made first
    let victim = tb.namespace("dom-held-victim")?;
    let zone = json!({"zone": format!("{name}."), "nameservers": ["ns1.victim.example.", "ns2.victim.example."]});
    support::apply_object(&tb, &victim.name, "DnsZone", "theirs", zone)?;
    // creation times have whole seconds and a tie goes to the smaller UID: make the zone the older
    // claim for certain
    let created = support::get_object(&tb, &victim.name, "dnszone", "theirs")?["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default()
        .parse::<k8s_openapi::jiff::Timestamp>()?;
    support::eventually(Duration::from_secs(5), || {
        Ok(k8s_openapi::jiff::Timestamp::now().as_second() > created.as_second())
    })?;

    let _op = h.operator()?;
    h.apply("mine", register(&name, json!({})))?;
    let refused = h.wait_condition("mine", "Ready", "False", Some("NameHeldElsewhere"))?;
    let message = condition(&refused, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.contains(&victim.name), "the message names the other namespace: {message}");
    let calls = h.rt.block_on(h.account.requests())?;
    assert!(calls.iter().all(|r| !r.params.values().any(|v| v == &name)), "the registrar was asked: {calls:?}");
    Ok(())
}
