//! What a customer buys works, end to end, with the real operator behind the bridge: a paid order
//! becomes a Subscription resource, the operator provisions its children, and the customer sees
//! the result where they would look: their domain served by name at their pod's address with a
//! certificate that verifies, a transferred domain in the account, a bigger pod after an upgrade
//! is paid, and the ledger subscription `active` only once the resource reported Ready.
//!
//! Real: the bridge and operator binaries, the kube-apiserver (and controller-manager), PostgreSQL
//! (the ledger and mail-core's database), PowerDNS (asked on its DNS port), pebble (an ACME CA
//! whose issuing root the chains are verified against), mail-core, and stripe-mock with webhooks
//! signed as Stripe signs them. Stand-ins: fakepve for Proxmox VE, and the Namesilo double for
//! the registrar (it keeps every call it was made, which is how the transfer's auth code is seen
//! to reach it). The operator binary must be built (`support::operator`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::operator::Operator;
use support::{Bridge, Ledger, admin_token, email, eventually, payment_intent, session_completed};
use tokio::runtime::Runtime;
use uuid::Uuid;

/// How long provisioning (or a resize) may take: generous for a busy machine, and bounded.
const WAIT: Duration = Duration::from_secs(120);

fn fresh_name(label: &str) -> String {
    format!("{label}-{}-{}.com", std::process::id(), &Uuid::new_v4().simple().to_string()[..8])
}

/// The namespace the order `placed` is fulfilled into (the customer's), known before payment.
fn customer_namespace(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<String> {
    let order = placed["orderId"].as_str().context("the checkout answer has no orderId")?;
    let handle = ledger.text(
        rt,
        &format!("SELECT c.handle FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = '{order}'"),
    )?;
    Ok(format!("customer-{}", handle.context("the order has no customer")?))
}

/// Pays the order through the webhook; the ledger subscription it was fulfilled into.
fn pay(rt: &Runtime, ledger: &Ledger, bridge: &Bridge, placed: &Value) -> anyhow::Result<Uuid> {
    let event = session_completed(placed, &format!("pi_{}", Uuid::new_v4().simple()));
    assert_eq!(bridge.deliver(rt, &event)?, 200);
    support::subscription_of_order(rt, ledger, placed)
}

fn ledger_status(rt: &Runtime, ledger: &Ledger, id: Uuid) -> anyhow::Result<String> {
    Ok(ledger.text(rt, &format!("SELECT status FROM subscriptions WHERE id = '{id}'"))?.unwrap_or_default())
}

/// Active and Ready at its generation, as the operator reports it.
fn ready(resource: &Value) -> bool {
    let ready = support::operator::condition(resource, "Ready");
    reported_ready(resource) && ready["observedGeneration"] == resource["metadata"]["generation"]
}

/// Active and Ready, at whatever generation: once activated, the bridge writes the paid period
/// into the spec and the operator catches up with the new generation a moment later.
fn reported_ready(resource: &Value) -> bool {
    resource["status"]["phase"] == "Active" && support::operator::condition(resource, "Ready")["status"] == "True"
}

/// Waits until the Subscription resource of `id` is Ready and the ledger subscription `active`;
/// fails if the ledger was ever seen `active` while the resource was not yet Ready (the ledger
/// is read first in each round, so an activation ahead of Ready shows). The resource as it was
/// first seen Ready, and as it is then.
fn ready_then_active(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    bridge: &Bridge,
    op: &Operator,
    id: Uuid,
) -> anyhow::Result<(Value, Value)> {
    let (mut resource, mut status, mut first_ready, mut early) = (Value::Null, String::new(), None, false);
    let done = eventually(WAIT, || {
        status = ledger_status(rt, ledger, id)?;
        resource = support::subscriptions_of(tb, &id.to_string())?.into_iter().next().unwrap_or_default();
        if first_ready.is_none() && reported_ready(&resource) {
            first_ready = Some(resource.clone());
        }
        early |= status == "active" && first_ready.is_none();
        Ok(early || (first_ready.is_some() && status == "active"))
    })?;
    if early {
        bail!("the ledger subscription was active before its resource was Ready: {:#}", resource["status"]);
    }
    let seen_ready = first_ready.is_some();
    let Some(first_ready) = first_ready.filter(|_| done) else {
        bail!(
            "in {WAIT:?} the Subscription was {}Ready and the ledger subscription {status:?}; status: {:#}\n{}\nbridge log:\n{}",
            if seen_ready { "" } else { "not " },
            resource["status"],
            op.log_tail(40),
            bridge.log_tail(20)
        );
    };
    Ok((first_ready, resource))
}

/// A child object in the customer's namespace, as `kubectl get -o json` prints it.
fn object(tb: &Testbed, ns: &str, kind: &str, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&tb.kubectl_ok(&["get", kind, name, "-n", ns, "-o", "json"], None)?)?)
}

/// A guest config value as text (fakepve answers numbers or strings).
fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

fn openssl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("openssl").args(args).output().context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The TLS Secret `name` written to files: (leaf, whole chain).
fn chain_files(tb: &Testbed, ns: &str, name: &str, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let template = r#"--template={{index .data "tls.crt" | base64decode}}"#;
    let pem = tb.kubectl_ok(&["get", "secret", name, "-n", ns, "-o", "go-template", template], None)?;
    let chain = dir.join("chain.pem");
    std::fs::write(&chain, pem)?;
    let leaf = dir.join("leaf.pem");
    std::fs::write(&leaf, openssl(&["x509", "-in", &chain.to_string_lossy()])?)?;
    Ok((leaf, chain))
}

/// pebble's issuing root, from its management interface.
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

/// Runs `body` with the bridge and the operator, then stops the bridge before the operator
/// removes the customer's namespace (so that nothing applies the Subscription again meanwhile).
fn with_both<T>(
    bridge: Bridge,
    op: Operator<'_>,
    body: impl FnOnce(&Bridge, &Operator<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let outcome = body(&bridge, &op);
    drop(bridge);
    drop(op);
    outcome
}

#[test]
fn a_cloudpod_bought_with_a_domain_is_served_by_name_at_its_address_with_a_certificate_that_verifies()
-> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let domain = fresh_name("bought");
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "cloudpod-pro", "cycle": "annual", "email": email("bought"), "domain": domain,
                "addons": ["domain", "dns-hosting", "ssl-dv"]}),
    )?;
    let ns = customer_namespace(&rt, &ledger, &placed)?;
    let op = Operator::start(&tb, &ns, &bridge.registrar)?;
    let outcome = with_both(bridge, op, |bridge, op| {
        let id = pay(&rt, &ledger, bridge, &placed)?;
        let (first_ready, sub) = ready_then_active(&rt, &tb, &ledger, bridge, op, id)?;

        // the ledger's activation came after the resource's Ready, by their own clocks too
        let became_ready = support::operator::condition(&first_ready, "Ready")["lastTransitionTime"]
            .as_str()
            .context("Ready has no lastTransitionTime")?
            .parse::<DateTime<Utc>>()?;
        let activated = ledger.count(
            &rt,
            &format!("SELECT floor(extract(epoch FROM activated_at))::int8 FROM subscriptions WHERE id = '{id}'"),
        )?;
        assert!(activated >= became_ready.timestamp(), "activated at {activated}, Ready at {became_ready}");

        // the pod runs at fakepve with the plan's size, at an address of the pool
        let resources = &sub["spec"]["resources"];
        let pod_name = resources["cloudPods"][0]["name"].as_str().context("no CloudPod")?;
        let pod = object(&tb, &ns, "cloudpod", pod_name)?;
        let address = pod["status"]["ipAddress"].as_str().unwrap_or_default().to_owned();
        assert!(address.starts_with(&format!("{}.", op.network)), "an address of the pool: {}", pod["status"]);
        let guests = op.guests()?;
        assert_eq!(guests.len(), 1, "{guests:?}");
        assert_eq!(guests[0]["status"], "running", "{}", guests[0]);
        let config = &guests[0]["config"];
        assert_eq!((text(&config["cores"]), text(&config["memory"])), ("2".into(), "2048".into()), "{config}");

        // PowerDNS serves the domain at the pod's address, and www as the domain
        assert_eq!(tb.dig(&domain, "A")?.answers, [address], "the apex follows the pod");
        assert_eq!(tb.dig(&format!("www.{domain}"), "CNAME")?.answers, [format!("{domain}.")]);

        // the certificate is Ready, for every name sold, with a chain to pebble's root
        let certificate = &resources["certificates"][0];
        let cert = object(&tb, &ns, "certificate", certificate["name"].as_str().context("no Certificate")?)?;
        assert_eq!(support::operator::condition(&cert, "Ready")["status"], "True", "{:#}", cert["status"]);
        let secret = certificate["spec"]["secretName"].as_str().context("no secretName")?;
        let dir = std::env::temp_dir().join(format!("bought-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let (leaf, chain) = chain_files(&tb, &ns, secret, &dir)?;
        let root = pebble_root(&tb, &dir)?;
        let verified = openssl(&[
            "verify",
            "-CAfile",
            &root.to_string_lossy(),
            "-untrusted",
            &chain.to_string_lossy(),
            &leaf.to_string_lossy(),
        ])?;
        let names = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &leaf.to_string_lossy()])?;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(verified.contains(": OK"), "{verified}");
        for name in [domain.clone(), format!("www.{domain}"), format!("*.{domain}")] {
            assert!(names.contains(&format!("DNS:{name}")), "{name} not in {names}");
        }

        // registered in the registrar account the bridge checked the name with
        assert!(rt.block_on(bridge.registrar.domain(&domain))?.is_some(), "{domain} is not in the account");
        assert_eq!(ledger_status(&rt, &ledger, id)?, "active");
        Ok(())
    });
    ledger.drop_database(&rt);
    outcome
}

#[test]
fn a_domain_transfer_bought_reaches_the_registrar_with_its_auth_code_and_completes() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    // a name held at another registrar
    let domain = fresh_name("moved");
    let code = format!("EPP-{}", Uuid::new_v4().simple());
    let namesilo = mpanel_tests::namesilo::Namesilo::from_testbed(&tb)?;
    rt.block_on(namesilo.registry_add(&domain, &code, "2030-01-01", &["ns1.elsewhere.net", "ns2.elsewhere.net"]))?;
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "domain-transfer", "cycle": "annual", "email": email("moved"), "domain": domain,
                "authCode": code}),
    )?;
    let ns = customer_namespace(&rt, &ledger, &placed)?;
    let op = Operator::start(&tb, &ns, &bridge.registrar)?;
    let outcome = with_both(bridge, op, |bridge, op| {
        // nothing reaches the registrar before payment
        let transfers = |bridge: &Bridge| -> anyhow::Result<Vec<mpanel_tests::namesilo::LoggedRequest>> {
            let requests = rt.block_on(bridge.registrar.requests())?;
            Ok(requests
                .into_iter()
                .filter(|r| r.operation == "transferDomain" && r.params.get("domain") == Some(&domain))
                .collect())
        };
        std::thread::sleep(Duration::from_secs(2));
        assert!(transfers(bridge)?.is_empty(), "a transfer was asked for before payment");

        let id = pay(&rt, &ledger, bridge, &placed)?;
        let (_, sub) = ready_then_active(&rt, &tb, &ledger, bridge, op, id)?;

        // the double was asked to transfer the name with the code the customer gave, and holds it now
        let asked = transfers(bridge)?;
        assert!(!asked.is_empty(), "no transferDomain call for {domain}");
        for call in &asked {
            assert_eq!(call.params.get("auth"), Some(&code), "{call:?}");
        }
        assert!(asked.iter().any(|c| c.code == 300), "no transfer was accepted: {asked:?}");
        assert!(rt.block_on(bridge.registrar.domain(&domain))?.is_some(), "{domain} is not in the account");
        let label = sub["spec"]["resources"]["domains"][0]["name"].as_str().context("no Domain")?;
        let child = object(&tb, &ns, "domain", label)?;
        assert_eq!(child["status"]["transfer"]["state"], "Transfer Completed", "{:#}", child["status"]);
        assert!(!op.logs().contains(&code), "the operator logged the auth code");
        Ok(())
    });
    ledger.drop_database(&rt);
    outcome
}

/// `price_cents` for `left` of `period` days, rounded half away from zero to the cent.
fn part(price_cents: i64, left: i64, period: i64) -> i64 {
    (2 * price_cents * left + period) / (2 * period)
}

fn cents(amount: &Value) -> i64 {
    support::total_cents(&json!({"total": amount}))
}

/// The subscription is activated by the real gate (nothing backdated), so the upgrade comes on
/// the period's first day: the days left, counted in whole days, are the period's (unless the day
/// turns between activation and asking), billed to the cent.
#[test]
fn an_upgrade_paid_during_the_period_resizes_the_running_pod_at_proxmox() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("grow")}))?;
    let ns = customer_namespace(&rt, &ledger, &placed)?;
    let op = Operator::start(&tb, &ns, &bridge.registrar)?;
    let outcome = with_both(bridge, op, |bridge, op| {
        let id = pay(&rt, &ledger, bridge, &placed)?;
        ready_then_active(&rt, &tb, &ledger, bridge, op, id)?;
        let size = |g: &Value| {
            let c = &g["config"];
            (text(&c["cores"]), text(&c["memory"]), text(&c["rootfs"]).rsplit("size=").next().unwrap_or("").to_owned())
        };
        let before = op.guests()?;
        assert_eq!(before.len(), 1, "{before:?}");
        assert_eq!(size(&before[0]), ("2".into(), "2048".into(), "50G".into()), "Pro: {}", before[0]);
        let vmid = before[0]["vmid"].clone();

        let (start, end) = {
            let period = ledger.text(
                &rt,
                &format!(
                    "SELECT (current_period_start AT TIME ZONE 'UTC')::date::text || ' ' || (current_period_end AT TIME ZONE 'UTC')::date::text FROM subscriptions WHERE id = '{id}'"
                ),
            )?;
            let period = period.context("no period")?;
            let (s, e) = period.split_once(' ').context("period")?;
            (s.parse::<chrono::NaiveDate>()?, e.parse::<chrono::NaiveDate>()?)
        };
        let asked_from = Utc::now().date_naive();
        let path = format!("/v1/admin/subscriptions/{id}/change-plan");
        let (status, body) = bridge.post(&rt, &path, &json!({"product": "cloudpod-business"}), Some(&billing))?;
        let asked_to = Utc::now().date_naive();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["change"]["direction"], json!("upgrade"), "{body}");
        let invoice = &body["invoice"];
        assert_eq!(invoice["status"], json!("issued"), "{body}");
        // 39.99 for the days left, less 19.99 for the same days (the day may turn while asking)
        let period = (end - start).num_days();
        let expected: Vec<i64> = [asked_from, asked_to]
            .iter()
            .map(|asked| {
                let left = (end - *asked).num_days();
                part(3999, left, period) - part(1999, left, period)
            })
            .collect();
        let total = cents(&invoice["total"]);
        assert!(expected.contains(&total), "{total} cents, not {expected:?}: {body}");
        let invoice_id = invoice["id"].as_str().context("invoice id")?.to_owned();

        // unpaid, the pod keeps its size
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(size(&op.guests()?[0]).0, "2", "resized before the invoice was paid");

        let paid =
            payment_intent("payment_intent.succeeded", &format!("pi_{}", Uuid::new_v4().simple()), &invoice_id, total);
        assert_eq!(bridge.deliver(&rt, &paid)?, 200);
        let mut seen = Vec::new();
        let resized = eventually(WAIT, || {
            seen = op.guests()?;
            Ok(seen.len() == 1 && size(&seen[0]) == ("4".into(), "4096".into(), "100G".into()))
        })?;
        if !resized {
            bail!("the guest is not Business-sized in {WAIT:?}: {seen:?}\n{}", op.log_tail(40));
        }
        assert_eq!(seen[0]["vmid"], vmid, "the same guest, resized in place");
        assert_eq!(seen[0]["status"], "running");
        let state = ledger.text(
            &rt,
            &format!("SELECT p.slug || ' ' || s.status FROM subscriptions s JOIN products p ON p.id = s.product_id WHERE s.id = '{id}'"),
        )?;
        assert_eq!(state.as_deref(), Some("cloudpod-business active"));
        // and the Subscription reports the new size Ready
        let mut last = Value::Null;
        let settled = eventually(WAIT, || {
            last = support::subscriptions_of(&tb, &id.to_string())?.into_iter().next().unwrap_or_default();
            Ok(ready(&last) && last["spec"]["resources"]["cloudPods"][0]["spec"]["resources"]["cores"] == 4)
        })?;
        assert!(settled, "the resized Subscription is not Ready: {:#}", last["status"]);
        Ok(())
    });
    ledger.drop_database(&rt);
    outcome
}
