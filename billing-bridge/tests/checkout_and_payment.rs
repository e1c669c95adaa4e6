//! The revenue path against the real peers: PostgreSQL (the ledger), the testbed's kube-apiserver,
//! stripe-mock (Stripe's own API mock) for the Checkout Session, and webhooks signed by the test
//! with Stripe's algorithm.

mod support;

use std::time::Duration;

use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, Tap, email, eventually, session_completed, subscriptions_of};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(20);

fn setup() -> anyhow::Result<(Runtime, Testbed)> {
    Ok((support::runtime()?, Testbed::from_env()?))
}

fn rows(ledger: &Ledger, rt: &Runtime) -> anyhow::Result<Vec<i64>> {
    [
        "customers",
        "orders",
        "order_items",
        "invoices",
        "invoice_lines",
        "payments",
        "subscriptions",
        "stripe_events",
        "outbox",
    ]
    .iter()
    .map(|t| ledger.count(rt, &format!("SELECT count(*) FROM {t}")))
    .collect()
}

fn kubeconfig(tb: &Testbed) -> anyhow::Result<std::path::PathBuf> {
    Ok(tb.get("KUBECONFIG")?.into())
}

#[test]
fn checkout_makes_an_order_an_unpaid_invoice_and_a_session_and_bad_products_leave_nothing() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;

    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("buyer")}))?;
    let number = placed["invoiceNumber"].as_str().unwrap_or_default().to_owned();
    assert!(number.starts_with("INV-") && number.len() == "INV-2026-000001".len(), "{placed}");
    assert!(placed["checkoutSessionId"].as_str().is_some_and(|s| s.starts_with("cs_")), "{placed}");
    assert!(placed["checkoutUrl"].as_str().is_some_and(|u| u.starts_with("http")), "{placed}");
    assert_eq!(placed["total"], json!("19.99"));
    let order = placed["orderId"].as_str().unwrap_or_default();
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM orders WHERE id = '{order}'"))?.as_deref(),
        Some("pending")
    );
    assert_eq!(
        ledger
            .text(&rt, &format!("SELECT status || ' ' || total::text FROM invoices WHERE number = '{number}'"))?
            .as_deref(),
        Some("issued 19.99")
    );

    let before = rows(&ledger, &rt)?;
    let bad = [
        json!({"product": "cloudpod-nonexistent", "cycle": "monthly", "email": email("bad")}),
        json!({"product": "cloudpod-pro", "cycle": "weekly", "email": email("bad")}),
        json!({"product": "domain", "cycle": "annual", "email": email("bad")}),
        json!({"product": "cloudpod-pro", "cycle": "monthly", "email": "not-an-email"}),
        json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("bad"), "addons": ["ssl-dv"], "domain": "bad domain"}),
        json!({"product": "cloudpod-pro"}),
    ];
    for body in &bad {
        let (status, answer) = bridge.post(&rt, "/v1/checkout", body, None)?;
        assert!((400..500).contains(&status), "{body} answered {status} {answer}");
        assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string(), "{answer}");
    }
    let (_, answer) = bridge.post(&rt, "/v1/checkout", &bad[2], None)?;
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("needs a domain"), "{answer}");
    assert_eq!(rows(&ledger, &rt)?, before, "a refused checkout wrote rows");
    let metrics = bridge.metrics(&rt)?;
    assert!(metrics.contains("mpanel_bridge_checkouts_total{outcome=\"refused\"} 7"), "{metrics}");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_paid_session_delivered_twenty_times_makes_one_payment_one_subscription_one_resource() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let placed = bridge.checkout(
        &rt,
        &json!({"product": "cloudpod-mini", "cycle": "annual", "email": email("twenty"), "domain": "twenty.example", "addons": ["ssl-dv", "email-basic"]}),
    )?;
    let invoice = placed["invoiceNumber"].as_str().unwrap_or_default().to_owned();
    let event = session_completed(&placed, &format!("pi_{}", uuid::Uuid::new_v4().simple()));

    // refused before anything: a wrong secret, a stale signature, no signature
    let before = rows(&ledger, &rt)?;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(rt.block_on(bridge.deliver_at(&event, "whsec_not_the_secret", now))?, 400);
    assert_eq!(rt.block_on(bridge.deliver_at(&event, &bridge.webhook_secret, now - 301))?, 400);
    let (status, _) = bridge.post(&rt, "/v1/stripe/webhook", &event, None)?;
    assert_eq!(status, 400);
    assert_eq!(rows(&ledger, &rt)?, before, "a refused webhook wrote rows");

    // ten at once, then ten one after another
    let statuses: Vec<u16> = rt.block_on(async {
        let now = chrono::Utc::now().timestamp();
        let all = (0..10).map(|_| bridge.deliver_at(&event, &bridge.webhook_secret, now));
        futures::future::join_all(all).await.into_iter().collect::<anyhow::Result<Vec<u16>>>()
    })?;
    assert_eq!(statuses, vec![200; 10]);
    for _ in 0..10 {
        assert_eq!(bridge.deliver(&rt, &event)?, 200);
    }
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM payments")?, 1);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM stripe_events")?, 1);
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM invoices WHERE number = '{invoice}'"))?.as_deref(),
        Some("paid")
    );
    let mut seen = Vec::new();
    let found = eventually(WAIT, || {
        let id = ledger.text(&rt, "SELECT max(id::text) FROM subscriptions")?;
        seen = match id {
            Some(id) => subscriptions_of(&tb, &id)?,
            None => Vec::new(),
        };
        Ok(!seen.is_empty())
    })?;
    assert!(found, "no Subscription resource appeared");
    let _cleanup =
        Namespaces { tb: &tb, names: vec![seen[0]["metadata"]["namespace"].as_str().unwrap_or_default().to_owned()] };
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM subscriptions")?, 1);
    assert_eq!(seen.len(), 1);
    let sub = &seen[0];
    assert_eq!(sub["spec"]["billing"]["state"], "Paid");
    assert_eq!(sub["spec"]["billing"]["invoice"], Value::String(invoice));
    assert_eq!(sub["spec"]["product"], "cloudpod-mini");
    assert_eq!(sub["spec"]["resources"]["cloudPods"][0]["spec"]["plan"], "mini");
    assert_eq!(
        sub["spec"]["resources"]["certificates"][0]["spec"]["dnsNames"],
        json!(["twenty.example", "*.twenty.example"])
    );
    // the mailbox's password is in a Secret the bridge generated, named as the template says
    let mailbox = &sub["spec"]["resources"]["mailboxes"][0]["spec"];
    assert_eq!(mailbox["address"], "postmaster@twenty.example");
    let secret = mailbox["passwordSecretRef"]["name"].as_str().unwrap_or_default();
    let ns = sub["metadata"]["namespace"].as_str().unwrap_or_default();
    let key = tb.kubectl_ok(&["get", "secret", secret, "-n", ns, "-o", "jsonpath={.data.mailbox-password}"], None)?;
    assert!(!key.trim().is_empty(), "the credentials Secret {secret} has no mailbox-password");
    let managers: Vec<&str> = sub["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"billing-bridge"), "{managers:?}");
    assert_eq!(
        ledger.text(&rt, "SELECT status FROM subscriptions")?.as_deref(),
        Some("pending_activation"),
        "active before its resource is Ready"
    );
    let metrics = bridge.metrics(&rt)?;
    assert!(metrics.contains("outcome=\"duplicate\"} 19"), "{metrics}");
    ledger.drop_database(&rt);
    Ok(())
}

/// The ledger rows a purchase left, in a form two purchases can be compared by.
fn outcome(ledger: &Ledger, rt: &Runtime, order: &str) -> anyhow::Result<Vec<Option<String>>> {
    [
        format!("SELECT status FROM orders WHERE id = '{order}'"),
        format!("SELECT status || ' ' || (fulfilled_at IS NOT NULL)::text FROM invoices WHERE order_id = '{order}'"),
        format!("SELECT string_agg(p.status || ' ' || p.amount::text || ' ' || p.refunded_amount::text || ' ' || coalesce(p.failure_message, '-'), ', ') \
                 FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE i.order_id = '{order}'"),
        format!("SELECT count(*)::text FROM subscriptions WHERE order_id = '{order}'"),
    ]
    .iter()
    .map(|q| ledger.text(rt, q))
    .collect()
}

#[test]
fn events_in_any_order_lead_to_the_same_ledger() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let mut outcomes = Vec::new();
    let mut namespaces = Namespaces { tb: &tb, names: Vec::new() };
    // a declined card first, then the same PaymentIntent succeeds; the session completes
    let orders: [&[usize]; 3] = [&[0, 1, 2], &[2, 1, 0], &[1, 2, 0, 2, 1]];
    for order in orders {
        let placed =
            bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("order")}))?;
        let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
        let invoice = placed["invoiceId"].as_str().unwrap_or_default();
        let events = [
            support::payment_intent("payment_intent.payment_failed", &intent, invoice, 1999),
            support::payment_intent("payment_intent.succeeded", &intent, invoice, 1999),
            session_completed(&placed, &intent),
        ];
        for &i in order {
            assert_eq!(bridge.deliver(&rt, &events[i])?, 200);
        }
        let order_id = placed["orderId"].as_str().unwrap_or_default().to_owned();
        assert!(eventually(WAIT, || Ok(ledger.count(
            &rt,
            &format!("SELECT count(*) FROM invoices WHERE order_id = '{order_id}' AND fulfilled_at IS NOT NULL")
        )? == 1))?);
        let customer = ledger.text(
            &rt,
            &format!("SELECT handle FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = '{order_id}'"),
        )?;
        namespaces.names.push(format!("customer-{}", customer.unwrap_or_default()));
        outcomes.push(outcome(&ledger, &rt, &order_id)?);
    }
    assert_eq!(
        outcomes[0],
        vec![
            Some("paid".into()),
            Some("paid true".into()),
            Some("succeeded 19.99 0.00 Your card was declined.".into()),
            Some("1".into())
        ]
    );
    assert_eq!(outcomes[1], outcomes[0]);
    assert_eq!(outcomes[2], outcomes[0]);

    // a refund reported before the payment it refunds: the same refunded invoice either way
    let mut refunded = Vec::new();
    for first_refund in [true, false] {
        let placed =
            bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("refund")}))?;
        let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
        let refund = support::event(
            "charge.refunded",
            json!({
                "id": format!("ch_{}", &intent[3..]), "object": "charge", "payment_intent": intent, "amount": 999,
                "amount_refunded": 999, "currency": "usd", "refunded": true, "metadata": {},
            }),
        );
        let paid = session_completed(&placed, &intent);
        let sequence = if first_refund { [&refund, &paid] } else { [&paid, &refund] };
        for event in sequence {
            assert_eq!(bridge.deliver(&rt, event)?, 200);
        }
        let order_id = placed["orderId"].as_str().unwrap_or_default();
        refunded.push(ledger.text(&rt, &format!("SELECT status FROM invoices WHERE order_id = '{order_id}'"))?);
        let customer = ledger.text(
            &rt,
            &format!("SELECT handle FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = '{order_id}'"),
        )?;
        namespaces.names.push(format!("customer-{}", customer.unwrap_or_default()));
    }
    assert_eq!(refunded, vec![Some("refunded".to_owned()), Some("refunded".to_owned())]);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn the_admin_api_checks_tokens_and_roles() -> anyhow::Result<()> {
    use mpanel_billing_bridge::ledger::tokens::{self, Role};
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let [reader, billing, admin] = [Role::ReadOnly, Role::Billing, Role::Admin]
        .map(|role| rt.block_on(tokens::create(&ledger.pool, role.as_str(), role)));
    let (reader, billing, admin) = (reader?, billing?, admin?);
    assert_eq!(
        ledger.count(&rt, &format!("SELECT count(*) FROM api_tokens WHERE token_sha256 = sha256('{admin}'::bytea)"))?,
        1
    );
    assert_eq!(
        ledger.count(
            &rt,
            "SELECT count(*) FROM api_tokens WHERE position(convert_to('mpb_', 'UTF8') in token_sha256) > 0"
        )?,
        0
    );

    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("admin")}))?;
    let number = placed["invoiceNumber"].as_str().unwrap_or_default();
    assert_eq!(bridge.get(&rt, "/v1/admin/invoices", None)?.0, 401);
    assert_eq!(bridge.get(&rt, "/v1/admin/invoices", Some("mpb_wrong"))?.0, 401);
    let (status, listed) = bridge.get(&rt, "/v1/admin/invoices", Some(&reader))?;
    assert_eq!(status, 200);
    assert_eq!(listed["invoices"][0]["number"], json!(number));
    let (status, answer) =
        bridge.post(&rt, &format!("/v1/admin/invoices/{number}/mark-paid"), &json!({}), Some(&reader))?;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("Forbidden")));

    // billing marks it paid: the subscription follows as from Stripe
    let (status, paid) =
        bridge.post(&rt, &format!("/v1/admin/invoices/{number}/mark-paid"), &json!({}), Some(&billing))?;
    assert_eq!((status, paid["status"].as_str()), (200, Some("paid")), "{paid}");
    let mut sub_id = String::new();
    assert!(eventually(WAIT, || {
        sub_id = ledger.text(&rt, "SELECT id::text FROM subscriptions")?.unwrap_or_default();
        Ok(!sub_id.is_empty() && !subscriptions_of(&tb, &sub_id)?.is_empty())
    })?);
    let found = subscriptions_of(&tb, &sub_id)?;
    let _cleanup =
        Namespaces { tb: &tb, names: vec![found[0]["metadata"]["namespace"].as_str().unwrap_or_default().into()] };
    let (status, detail) = bridge.get(&rt, &format!("/v1/admin/subscriptions/{sub_id}"), Some(&reader))?;
    assert_eq!(status, 200);
    assert_eq!(detail["invoices"][0]["number"], json!(number));
    assert_eq!(detail["subscription"]["status"], "pending_activation");

    // the catalog: only admin writes, and a template must make valid resources
    let product = json!({"name": "CloudPod Nano", "type": "cloudpod", "prices": [{"cycle": "monthly", "purpose": "new", "amountCents": 499, "currency": "usd"}],
        "template": {"cloudPods": [{"name": "${subscription}", "spec": {"plan": "nano", "type": "lxc", "template": "100", "hostname": "${subscription}",
            "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 10}, "network": {"bridge": "vmbr0", "ipv4": {"pool": "public-v4"}}}}]}});
    let put = |token: &str, body: &Value| {
        rt.block_on(async {
            let resp = reqwest::Client::new()
                .put(format!("{}/v1/admin/products/cloudpod-nano", bridge.url))
                .bearer_auth(token)
                .json(body)
                .send()
                .await?;
            anyhow::Ok((resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null)))
        })
    };
    assert_eq!(put(&billing, &product)?.0, 403);
    let mut broken = product.clone();
    broken["template"]["cloudPods"][0]["spec"]["resources"] = json!({"cores": "many"});
    let (status, answer) = put(&admin, &broken)?;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().starts_with("template:"), "{answer}");
    let (status, answer) = put(&admin, &product)?;
    assert_eq!(status, 200, "{answer}");
    let (_, catalog) = bridge.get(&rt, "/v1/catalog", None)?;
    assert!(catalog["products"].as_array().into_iter().flatten().any(|p| p["slug"] == "cloudpod-nano"), "{catalog}");
    ledger.drop_database(&rt);
    Ok(())
}

/// A name nobody else in the double uses.
fn fresh_name(label: &str) -> String {
    format!("{label}-{}-{}.com", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[test]
fn a_domain_that_is_taken_or_already_in_the_account_is_refused_before_any_money_is_asked_for() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    // stripe-mock behind a tap: a session made for a refused purchase would pass through it
    let stripe_mock = tb.get("STRIPE_API_BASE")?.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let stripe = Tap::start(&rt, &stripe_mock)?;
    let env = [("STRIPE_API_BASE", format!("http://{}", stripe.addr))];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;

    // one name registered at another registrar, one already in the bridge's registrar account
    let taken = fresh_name("taken");
    let namesilo = mpanel_tests::namesilo::Namesilo::from_testbed(&tb)?;
    rt.block_on(namesilo.registry_add(&taken, "code-1", "2030-01-01", &["ns1.elsewhere.net", "ns2.elsewhere.net"]))?;
    let ours = fresh_name("ours");
    let reply = rt.block_on(bridge.registrar.call("registerDomain", &[("domain", &ours), ("years", "1")]))?;
    assert_eq!(reply["code"], 300, "{reply}");
    let setup_calls = rt.block_on(bridge.registrar.requests())?.len();

    let before = rows(&ledger, &rt)?;
    for (domain, code) in [(&taken, "domain_unavailable"), (&ours, "domain_already_registered")] {
        let alone = json!({"product": "domain", "cycle": "annual", "email": email("dom"), "domain": domain});
        let bundle = json!({"product": "cloudpod-mini", "cycle": "annual", "email": email("dom"), "domain": domain,
                            "addons": ["dns-hosting", "domain"]});
        for body in [alone, bundle] {
            let (status, answer) = bridge.post(&rt, "/v1/checkout", &body, None)?;
            assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{body}: {answer}");
            assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains(domain.as_str())), "{answer}");
        }
    }
    assert_eq!(rows(&ledger, &rt)?, before, "a refused domain purchase wrote rows");
    assert_eq!(stripe.connections(), 0, "Stripe was called for a refused purchase");

    // a free name is sold, through the same tap
    let free = fresh_name("free");
    let placed = bridge
        .checkout(&rt, &json!({"product": "domain", "cycle": "annual", "email": email("dom"), "domain": free}))?;
    assert!(placed["checkoutSessionId"].as_str().is_some_and(|s| s.starts_with("cs_")), "{placed}");
    assert!(stripe.connections() >= 1, "the tap sees Stripe calls");
    // the bridge only read at the registrar
    let calls = rt.block_on(bridge.registrar.requests())?;
    let asked: Vec<_> = calls[setup_calls..].iter().map(|r| r.operation.as_str()).collect();
    assert!(
        asked.iter().all(|op| matches!(*op, "getDomainInfo" | "checkRegisterAvailability")) && !asked.is_empty(),
        "{asked:?}"
    );
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn domain_purchases_are_refused_while_the_registrar_cannot_be_asked() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let unreachable = [("MPANEL_BRIDGE_NAMESILO_URL", format!("http://127.0.0.1:{closed}/api"))];
    let without = [("MPANEL_BRIDGE_NAMESILO_URL", String::new()), ("NAMESILO_API_KEY", String::new())];
    let before = rows(&ledger, &rt)?;
    for env in [&unreachable[..], &without[..]] {
        let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, env)?;
        let body =
            json!({"product": "domain", "cycle": "annual", "email": email("dom"), "domain": fresh_name("later")});
        let (status, answer) = bridge.post(&rt, "/v1/checkout", &body, None)?;
        assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("registrar_unavailable")), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains(bridge.registrar.key()) && !message.contains("127.0.0.1"), "{message}");
        assert!(!bridge.log_tail(200).contains(bridge.registrar.key()), "the key is in the log");
        assert_eq!(rows(&ledger, &rt)?, before, "a refused domain purchase wrote rows");
    }
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn health_says_no_internal_error_and_metrics_need_a_token() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    assert_eq!(bridge.get(&rt, "/metrics", None)?.0, 401);
    assert_eq!(bridge.get(&rt, "/metrics", Some("mpb_wrong"))?.0, 401);
    let (status, text) = bridge.get(&rt, "/metrics", Some(&bridge.metrics_token))?;
    assert_eq!(status, 200);
    assert!(text.as_str().is_some_and(|t| t.contains("mpanel_bridge_")), "{text}");
    assert_eq!(bridge.get(&rt, "/healthz", None)?, (200, json!("ok")));

    // the ledger goes away under the running bridge
    ledger.drop_database(&rt);
    assert!(eventually(WAIT, || Ok(bridge.get(&rt, "/healthz", None)?.0 == 503))?);
    assert_eq!(bridge.get(&rt, "/healthz", None)?, (503, json!("unavailable")), "only a generic word");
    Ok(())
}
