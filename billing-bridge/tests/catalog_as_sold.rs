//! The catalog sells what is advertised: the plans' sizes and prices, a CloudPod bought with a
//! domain reachable by its name (a zone whose apex follows the pod, `www`, a certificate), and a
//! domain transfer whose auth code reaches the Domain through a Secret and nowhere else. Real
//! PostgreSQL, the testbed's kube-apiserver, stripe-mock and the Namesilo double.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use mpanel_billing_bridge::render;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, email, eventually, session_completed, subscriptions_of};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);

fn fresh_name(label: &str) -> String {
    format!("{label}-{}-{}.com", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn kubeconfig(tb: &Testbed) -> anyhow::Result<std::path::PathBuf> {
    Ok(tb.get("KUBECONFIG")?.into())
}

/// Pays the order `placed` through the webhook and returns its Subscription resource.
fn pay_and_apply(
    rt: &Runtime,
    tb: &Testbed,
    ledger: &Ledger,
    bridge: &Bridge,
    placed: &Value,
) -> anyhow::Result<Value> {
    let event = session_completed(placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));
    assert_eq!(bridge.deliver(rt, &event)?, 200);
    let query = format!(
        "SELECT id::text FROM subscriptions WHERE order_id = '{}'",
        placed["orderId"].as_str().unwrap_or_default()
    );
    let mut found = Vec::new();
    eventually(WAIT, || {
        found = match ledger.text(rt, &query)? {
            Some(id) => subscriptions_of(tb, &id)?,
            None => Vec::new(),
        };
        Ok(!found.is_empty())
    })?;
    found.pop().context("no Subscription resource for the paid order")
}

#[test]
fn the_plans_are_sold_at_their_advertised_sizes_and_prices() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    for (slug, cores, memory, disk, monthly) in [
        ("cloudpod-mini", 1, 1024, 20, 999),
        ("cloudpod-pro", 2, 2048, 50, 1999),
        ("cloudpod-business", 4, 4096, 100, 3999),
        ("cloudpod-enterprise", 8, 8192, 200, 7999),
    ] {
        let resources = ledger.text(
            &rt,
            &format!("SELECT (template #> '{{cloudPods,0,spec,resources}}')::text FROM products WHERE slug = '{slug}'"),
        )?;
        let resources: Value = serde_json::from_str(&resources.unwrap_or_default())?;
        assert_eq!(resources, json!({"cores": cores, "memoryMiB": memory, "diskGiB": disk}), "{slug}");
        let price = ledger.count(
            &rt,
            &format!(
                "SELECT pp.amount_cents FROM product_prices pp JOIN products p ON p.id = pp.product_id \
                 WHERE p.slug = '{slug}' AND pp.cycle = 'monthly' AND pp.purpose = 'new' AND pp.currency = 'usd'"
            ),
        )?;
        assert_eq!(price, monthly, "{slug}");
    }
    // every template of the catalog is one the admin API would take
    let templates = ledger.text(&rt, "SELECT json_object_agg(slug, template)::text FROM products")?;
    let templates: serde_json::Map<String, Value> = serde_json::from_str(&templates.unwrap_or_default())?;
    for (slug, template) in &templates {
        assert_eq!(render::check_template(template), Ok(()), "{slug}");
    }
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_cloudpod_bought_with_a_domain_gets_its_zone_following_the_pod_and_a_certificate() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let domain = fresh_name("site");
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "cloudpod-pro", "cycle": "annual", "email": email("site"), "domain": domain,
                "addons": ["domain", "dns-hosting", "ssl-dv"]}),
    )?;
    assert_eq!(placed["total"], json!("261.75"), "199.90 + 12.95 + 19.90 + 29.00: {placed}");
    let sub = pay_and_apply(&rt, &tb, &ledger, &bridge, &placed)?;
    let _cleanup =
        Namespaces { tb: &tb, names: vec![sub["metadata"]["namespace"].as_str().unwrap_or_default().into()] };
    let resources = &sub["spec"]["resources"];
    let pod = resources["cloudPods"][0]["name"].as_str().unwrap_or_default();
    assert_eq!(pod, sub["metadata"]["name"].as_str().unwrap_or("?"), "{resources}");
    assert_eq!(resources["cloudPods"][0]["spec"]["resources"], json!({"cores": 2, "memoryMiB": 2048, "diskGiB": 50}));

    let zones = resources["dnsZones"].as_array().cloned().unwrap_or_default();
    assert_eq!(zones.len(), 1, "one zone for the domain, whoever asked for it: {resources}");
    let zone = &zones[0]["spec"];
    assert_eq!(zone["zone"], json!(format!("{domain}.")));
    let records = zone["records"].as_array().cloned().unwrap_or_default();
    assert!(records.contains(&json!({"name": "@", "type": "A", "cloudPodRef": {"name": pod}})), "{zone}");
    assert!(records.contains(&json!({"name": "www", "type": "CNAME", "values": [format!("{domain}.")]})), "{zone}");
    assert_eq!(zone["mail"]["mx"][0]["host"], "mail.migrahosting.com.", "DNS hosting's mail records are in it");

    let certificates = resources["certificates"].as_array().cloned().unwrap_or_default();
    assert_eq!(certificates.len(), 1, "{resources}");
    let names = &certificates[0]["spec"]["dnsNames"];
    for name in [domain.clone(), format!("www.{domain}"), format!("*.{domain}")] {
        assert!(names.as_array().is_some_and(|n| n.contains(&json!(name))), "{name} not in {names}");
    }
    assert_eq!(resources["domains"][0]["spec"]["registration"]["mode"], "Register");
    assert_eq!(sub["spec"]["provisioningTimeout"], "30m");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn dns_hosting_alone_has_no_www_pointing_at_an_apex_without_an_address() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let domain = fresh_name("zone");
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "dns-hosting", "cycle": "monthly", "email": email("zone"), "domain": domain}),
    )?;
    let sub = pay_and_apply(&rt, &tb, &ledger, &bridge, &placed)?;
    let _cleanup =
        Namespaces { tb: &tb, names: vec![sub["metadata"]["namespace"].as_str().unwrap_or_default().into()] };
    let zones = &sub["spec"]["resources"]["dnsZones"];
    assert_eq!(zones[0]["spec"]["zone"], json!(format!("{domain}.")), "{zones}");
    let records = zones[0]["spec"]["records"].as_array().cloned().unwrap_or_default();
    assert!(records.iter().all(|r| r["name"] != "www"), "www with no apex address: {zones}");
    assert!(sub["spec"]["resources"]["certificates"].is_null());
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_domain_transfer_keeps_its_auth_code_in_a_secret_and_nowhere_else() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let log = std::env::temp_dir().join(format!("bridge-transfer-{}.log", uuid::Uuid::new_v4().simple()));
    let mut bridge = Bridge::start_with(&rt, &tb, &ledger, &kubeconfig(&tb)?, 1, Some(log.clone()))?;
    // a name held at another registrar
    let domain = fresh_name("moving");
    let code = format!("EPP-{}", uuid::Uuid::new_v4().simple());
    let namesilo = mpanel_tests::namesilo::Namesilo::from_testbed(&tb)?;
    rt.block_on(namesilo.registry_add(&domain, &code, "2030-01-01", &["ns1.elsewhere.net", "ns2.elsewhere.net"]))?;
    let customer = email("moving");

    let refusals = [
        (
            json!({"product": "domain-transfer", "cycle": "annual", "email": customer, "domain": domain}),
            "auth_code_required",
        ),
        (
            json!({"product": "domain", "cycle": "annual", "email": customer, "domain": fresh_name("new"), "authCode": code}),
            "auth_code_unexpected",
        ),
        (
            json!({"product": "domain-transfer", "cycle": "annual", "email": customer, "domain": domain, "authCode": "has space"}),
            "auth_code_invalid",
        ),
    ];
    let unregistered = json!({"product": "domain-transfer", "cycle": "annual", "email": customer,
                              "domain": fresh_name("nobody"), "authCode": code});
    let refusals = refusals.into_iter().chain([(unregistered, "domain_not_registered")]);
    for (body, expected) in refusals {
        let (status, answer) = bridge.post(&rt, "/v1/checkout", &body, None)?;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(expected)), "{answer}");
        assert!(!answer.to_string().contains(&code), "an answer repeats the code: {answer}");
    }
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM orders")?, 0, "a refused transfer wrote an order");

    let body =
        json!({"product": "domain-transfer", "cycle": "annual", "email": customer, "domain": domain, "authCode": code});
    let placed = bridge.checkout(&rt, &body)?;
    assert_eq!(placed["total"], json!("10.95"), "the transfer price: {placed}");
    let order: uuid::Uuid = placed["orderId"].as_str().unwrap_or_default().parse()?;
    let handle = ledger.text(&rt, "SELECT handle FROM customers")?.unwrap_or_default();
    let namespace = format!("customer-{handle}");
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace.clone()] };
    assert_eq!(ledger.text(&rt, "SELECT purpose FROM order_items")?.as_deref(), Some("transfer"));

    // the Secret is there before anyone paid, holding the code
    let secret_name = render::auth_code_secret(&render::resource_name(order));
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_str(&tb.kubectl_ok(&["get", "secret", &secret_name, "-n", &namespace, "-o", "json"], None)?)?;
    let stored = secret.data.unwrap_or_default().remove("auth-code").map(|b| b.0).unwrap_or_default();
    assert_eq!(String::from_utf8(stored)?, code);

    let sub = pay_and_apply(&rt, &tb, &ledger, &bridge, &placed)?;
    let registration = &sub["spec"]["resources"]["domains"][0]["spec"]["registration"];
    assert_eq!(registration["mode"], "Transfer", "{sub}");
    assert_eq!(registration["authCodeSecretRef"], json!({"name": secret_name, "key": "auth-code"}));
    assert_eq!(sub["spec"]["provisioningTimeout"], "8d", "a transfer takes days");
    assert!(!sub.to_string().contains(&code), "the Subscription holds the code");

    // nowhere in the ledger (every table's data) or the bridge's log; the searches do see the order
    let out = Command::new("pg_dump").args(["--data-only", &ledger.url]).output()?;
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains(&domain) && dump.contains(&order.to_string()), "the dump has the order");
    assert!(!dump.contains(&code), "the ledger holds the auth code");
    let logs = bridge.stop();
    assert!(logs.contains(&order.to_string()) || logs.contains("subscription created"), "the log: {logs}");
    assert!(!logs.contains(&code), "the bridge logged the auth code");
    let _ = std::fs::remove_file(&log);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn an_auth_code_kubernetes_cannot_take_ends_the_order_or_waits_for_the_retry_of_its_key() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut relay = support::ApiRelay::start(&rt, &tb)?;
    // stripe-mock behind a tap: no session may be asked for while the code is not kept
    let stripe_mock = tb.get("STRIPE_API_BASE")?.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let stripe = support::Tap::start(&rt, &stripe_mock)?;
    let env = [("STRIPE_API_BASE", format!("http://{}", stripe.addr))];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &relay.kubeconfig, &env)?;
    let domain = fresh_name("later");
    let namesilo = mpanel_tests::namesilo::Namesilo::from_testbed(&tb)?;
    rt.block_on(namesilo.registry_add(&domain, "CODE-1", "2030-01-01", &["ns1.elsewhere.net", "ns2.elsewhere.net"]))?;
    let body = json!({"product": "domain-transfer", "cycle": "annual", "email": email("later"), "domain": domain,
                      "authCode": "CODE-1"});
    let post = |key: Option<&str>| -> anyhow::Result<(u16, Value)> {
        rt.block_on(async {
            let mut req = bridge.http.post(format!("{}/v1/checkout", bridge.url)).json(&body);
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            let resp = req.send().await?;
            Ok((resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null)))
        })
    };

    relay.cut(&rt);
    let (status, answer) = post(Some("transfer-1"))?;
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("auth_code_not_kept")), "{answer}");
    let (status, answer) = post(None)?;
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("auth_code_not_kept")), "{answer}");
    assert_eq!(stripe.connections(), 0, "a session was asked for an order whose auth code is nowhere");
    let statuses = "SELECT string_agg(o.status || '/' || i.status, ',' ORDER BY o.status) FROM orders o \
                    JOIN invoices i ON i.order_id = o.id";
    assert_eq!(ledger.text(&rt, statuses)?.as_deref(), Some("failed/void,opening/draft"), "keyed waits, unkeyed ends");

    relay.restore(&rt)?;
    let (status, placed) = post(Some("transfer-1"))?;
    assert_eq!(status, 201, "{placed}");
    let order: uuid::Uuid = placed["orderId"].as_str().unwrap_or_default().parse()?;
    let handle = ledger.text(&rt, "SELECT handle FROM customers")?.unwrap_or_default();
    let namespace = format!("customer-{handle}");
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace.clone()] };
    let secret_name = render::auth_code_secret(&render::resource_name(order));
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_str(&tb.kubectl_ok(&["get", "secret", &secret_name, "-n", &namespace, "-o", "json"], None)?)?;
    let stored = secret.data.unwrap_or_default().remove("auth-code").map(|b| b.0).unwrap_or_default();
    assert_eq!(String::from_utf8(stored)?, "CODE-1", "the retry of the key wrote the Secret");
    assert_eq!(ledger.text(&rt, statuses)?.as_deref(), Some("failed/void,pending/issued"));
    drop(bridge);
    relay.cut(&rt);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_cloudpod_bought_with_daily_backups_gets_a_backup_policy_for_it_and_the_add_on_alone_makes_none()
-> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("backed"),
                "addons": ["daily-backups-30d"]}),
    )?;
    assert_eq!(placed["total"], json!("14.98"), "9.99 + 4.99: {placed}");
    let sub = pay_and_apply(&rt, &tb, &ledger, &bridge, &placed)?;
    let _cleanup =
        Namespaces { tb: &tb, names: vec![sub["metadata"]["namespace"].as_str().unwrap_or_default().into()] };
    let resources = &sub["spec"]["resources"];
    let pod = resources["cloudPods"][0]["name"].as_str().context("no CloudPod")?;
    let policies = resources["backupPolicies"].as_array().cloned().unwrap_or_default();
    assert_eq!(policies.len(), 1, "one BackupPolicy: {resources}");
    assert_eq!(policies[0]["name"], json!(format!("{pod}-backups")));
    assert_eq!(
        policies[0]["spec"],
        json!({"cloudPods": [pod], "schedule": {"every": "24h"}, "keep": 30, "storage": "backups", "mode": "snapshot"}),
        "daily, 30 kept, of the pod bought with it"
    );

    // bought without a CloudPod, the add-on has nothing to back up
    let template = ledger.text(&rt, "SELECT template::text FROM products WHERE slug = 'daily-backups-30d'")?;
    let template: Value = serde_json::from_str(&template.context("no daily-backups-30d product")?)?;
    let with = render::Placeholders {
        subscription: "sub-0123456789".into(),
        customer: "c0123456789".into(),
        email: "someone@example.com".into(),
        domain: None,
    };
    let alone = render::Part { slug: "daily-backups-30d", kind: "addon", template: &template };
    let rendered = render::order_resources(&[alone], &with).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(rendered.get("backupPolicies").is_none(), "{rendered}");
    ledger.drop_database(&rt);
    Ok(())
}
