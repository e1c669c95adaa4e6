//! The customer portal API, as a customer uses it: a sign-in link mailed through the testbed's
//! Postfix works once and expires, and the ledger holds no token; a session reads the customer's
//! own invoices, PDFs and subscriptions and cancels at the end of the period; another customer's
//! are `404` whichever way they are asked for; the Stripe Billing Portal opens for the customer's
//! own Stripe customer. Real bridge, PostgreSQL, stripe-mock, the testbed's kube-apiserver and
//! Postfix.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::capture::Capture;
use support::{
    Bridge, Ledger, Namespaces, PORTAL_URL, RecordingRelay, admin_token, email, eventually, session_completed,
    subscription_of_order,
};
use tokio::runtime::Runtime;
use uuid::Uuid;

fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger, extra: &[(&str, String)]) -> anyhow::Result<Bridge> {
    let mut env = vec![("NOTIFY_SMTP_ADDR", tb.get("NOTIFY_SMTP_ADDR")?.to_owned())];
    env.extend(extra.iter().cloned());
    Bridge::start_with_env(rt, tb, ledger, Path::new(tb.get("KUBECONFIG")?), &env)
}

/// Asks for a sign-in link for `address` and reads it from the sign-in mail that arrives.
fn mailed_link(rt: &Runtime, bridge: &Bridge, capture: &Capture, address: &str) -> anyhow::Result<String> {
    let seen: Vec<_> = capture.to(address)?.into_iter().map(|m| m.file).collect();
    let (status, body) = bridge.post(rt, "/v1/portal/sign-in", &json!({"email": address}), None)?;
    assert_eq!(status, 202, "{body}");
    let mut link = None;
    let arrived = eventually(Duration::from_secs(40), || {
        let fresh = capture.to(address)?.into_iter().filter(|m| !seen.contains(&m.file));
        link = fresh.filter(|m| m.header("subject").contains("sign-in link")).find_map(|m| link_in(&m.text));
        Ok(link.is_some())
    })?;
    assert!(arrived, "no sign-in mail reached {address}: {}", bridge.log_tail(30));
    link.context("no link")
}

/// The sign-in link's token in a mail's text.
fn link_in(text: &str) -> Option<String> {
    let prefix = format!("{PORTAL_URL}/sign-in?token=");
    let at = text.find(&prefix)? + prefix.len();
    Some(text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
}

/// A session of the customer with `address`, through a mailed link.
fn sign_in(rt: &Runtime, bridge: &Bridge, capture: &Capture, address: &str) -> anyhow::Result<String> {
    let link = mailed_link(rt, bridge, capture, address)?;
    let (status, body) = bridge.post(rt, "/v1/portal/sessions", &json!({"token": link}), None)?;
    assert_eq!(status, 201, "{body}");
    Ok(body["token"].as_str().context("no session token")?.to_owned())
}

/// A paid order of a new customer: the checkout answer, its invoice number and subscription.
struct Bought {
    email: String,
    number: String,
    subscription: Uuid,
    namespace: String,
}

fn buy(rt: &Runtime, ledger: &Ledger, bridge: &Bridge, label: &str) -> anyhow::Result<Bought> {
    let email = email(label);
    let placed = bridge.checkout(
        rt,
        &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email,
                "domain": format!("{label}-{}.example", Uuid::new_v4().simple())}),
    )?;
    let intent = format!("pi_{}", Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(rt, &session_completed(&placed, &intent))?, 200);
    let subscription = subscription_of_order(rt, ledger, &placed)?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default();
    let number = ledger.text(rt, &format!("SELECT number FROM invoices WHERE id = '{invoice}'"))?.context("number")?;
    let handle = ledger.text(rt, &format!("SELECT c.handle FROM customers c WHERE c.email = '{email}'"))?;
    Ok(Bought { email, number, subscription, namespace: format!("customer-{}", handle.unwrap_or_default()) })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// GET `path` with `token`: the status and the body's bytes.
fn fetch(rt: &Runtime, bridge: &Bridge, path: &str, token: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    rt.block_on(async {
        let resp = bridge.http.get(format!("{}{path}", bridge.url)).bearer_auth(token).send().await?;
        Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
    })
}

#[test]
fn a_sign_in_link_opens_one_session_expires_and_is_kept_only_as_a_hash() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, &[])?;
    let capture = Capture::new(&tb)?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let address = email("portal-link");
    let (status, body) = bridge.post(&rt, "/v1/admin/customers", &json!({"email": address}), Some(&billing))?;
    assert_eq!(status, 201, "{body}");

    let link = mailed_link(&rt, &bridge, &capture, &address)?;
    assert!(link.starts_with("mpl_") && link.len() > 40, "{link}");
    // neither the link's row nor its mail's row holds the token
    let stored = ledger
        .count(&rt, &format!("SELECT count(*) FROM portal_sign_in_links WHERE token_sha256::text LIKE '%{link}%'"))?;
    let in_facts =
        ledger.count(&rt, &format!("SELECT count(*) FROM notifications WHERE facts::text LIKE '%{link}%'"))?;
    assert_eq!((stored, in_facts), (0, 0));

    let (status, body) = bridge.post(&rt, "/v1/portal/sessions", &json!({"token": link}), None)?;
    assert_eq!(status, 201, "{body}");
    let session = body["token"].as_str().context("session token")?.to_owned();
    let (status, body) = bridge.get(&rt, "/v1/portal/invoices", Some(&session))?;
    assert_eq!(status, 200, "{body}");
    // once only
    let (status, body) = bridge.post(&rt, "/v1/portal/sessions", &json!({"token": link}), None)?;
    assert_eq!((status, code(&body)), (401, "SignInLinkUsed"), "{body}");
    let (status, body) = bridge.post(&rt, "/v1/portal/sessions", &json!({"token": "mpl_forged"}), None)?;
    assert_eq!((status, code(&body)), (401, "SignInLinkUnknown"), "{body}");

    // a link not opened in time does not open
    let late = mailed_link(&rt, &bridge, &capture, &address)?;
    ledger.count(
        &rt,
        "WITH l AS (UPDATE portal_sign_in_links SET created_at = now() - interval '1 hour', \
                                                     expires_at = now() - interval '1 minute' \
                     WHERE used_at IS NULL RETURNING 1) SELECT count(*) FROM l",
    )?;
    let (status, body) = bridge.post(&rt, "/v1/portal/sessions", &json!({"token": late}), None)?;
    assert_eq!((status, code(&body)), (401, "SignInLinkExpired"), "{body}");

    // a session ends when it expires or is signed out
    let (status, body) = rt.block_on(async {
        let resp = bridge.http.delete(format!("{}/v1/portal/session", bridge.url)).bearer_auth(&session).send().await?;
        anyhow::Ok((resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null)))
    })?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bridge.get(&rt, "/v1/portal/invoices", Some(&session))?;
    assert_eq!((status, code(&body)), (401, "SignedOut"), "{body}");
    let other = sign_in(&rt, &bridge, &capture, &address)?;
    ledger.count(
        &rt,
        "WITH s AS (UPDATE portal_sessions SET created_at = now() - interval '1 day', \
                                               expires_at = now() - interval '1 minute' \
                     WHERE revoked_at IS NULL RETURNING 1) SELECT count(*) FROM s",
    )?;
    let (status, body) = bridge.get(&rt, "/v1/portal/invoices", Some(&other))?;
    assert_eq!((status, code(&body)), (401, "SessionExpired"), "{body}");
    // an admin token is no portal session, nor the other way round
    let (status, _) = bridge.get(&rt, "/v1/portal/invoices", Some(&billing))?;
    assert_eq!(status, 401);

    // an unknown address gets the same answer and no mail; a known one a few links an hour at most
    let stranger = email("portal-stranger");
    let (status, body) = bridge.post(&rt, "/v1/portal/sign-in", &json!({"email": stranger}), None)?;
    assert_eq!(status, 202, "{body}");
    for _ in 0..6 {
        let (status, _) = bridge.post(&rt, "/v1/portal/sign-in", &json!({"email": address}), None)?;
        assert_eq!(status, 202);
    }
    let recent =
        ledger.count(&rt, "SELECT count(*) FROM portal_sign_in_links WHERE created_at > now() - interval '1 hour'")?;
    assert_eq!(recent, 5, "sign-in links made within the hour");
    std::thread::sleep(Duration::from_secs(2));
    assert!(capture.to(&stranger)?.is_empty(), "a stranger was mailed");
    capture.forget(&address)?;
    Ok(())
}

#[test]
fn a_session_reads_and_cancels_only_its_own_customers_things() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, &[])?;
    let capture = Capture::new(&tb)?;
    let reader = admin_token(&rt, &ledger, Role::ReadOnly)?;
    let a = buy(&rt, &ledger, &bridge, "portal-a")?;
    let b = buy(&rt, &ledger, &bridge, "portal-b")?;
    let _cleanup = Namespaces { tb: &tb, names: vec![a.namespace.clone(), b.namespace.clone()] };
    let session = sign_in(&rt, &bridge, &capture, &a.email)?;

    // A's own: the invoice with its lines, its PDF (the admin API's bytes), the subscription with
    // how its provisioning goes
    let (status, body) = bridge.get(&rt, "/v1/portal/invoices", Some(&session))?;
    assert_eq!(status, 200, "{body}");
    let numbers: Vec<&str> =
        body["invoices"].as_array().context("invoices")?.iter().filter_map(|i| i["number"].as_str()).collect();
    assert_eq!(numbers, [a.number.as_str()]);
    let (status, body) = bridge.get(&rt, &format!("/v1/portal/invoices/{}", a.number), Some(&session))?;
    assert_eq!(status, 200, "{body}");
    assert!(!body["lines"].as_array().context("lines")?.is_empty(), "{body}");
    let (status, pdf) = fetch(&rt, &bridge, &format!("/v1/portal/invoices/{}/pdf", a.number), &session)?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    let (_, staff_pdf) = fetch(&rt, &bridge, &format!("/v1/admin/invoices/{}/pdf", a.number), &reader)?;
    assert_eq!(pdf, staff_pdf);
    let (status, body) = bridge.get(&rt, "/v1/portal/subscriptions", Some(&session))?;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> =
        body["subscriptions"].as_array().context("subs")?.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [a.subscription.to_string().as_str()]);
    let (status, body) = bridge.get(&rt, &format!("/v1/portal/subscriptions/{}", a.subscription), Some(&session))?;
    assert_eq!(status, 200, "{body}");
    assert!(body["provisioning"].get("resourceStatus").is_some(), "{body}");

    // B's: not found, however asked (by number, by id, the PDF, the cancel)
    let b_invoice =
        ledger.text(&rt, &format!("SELECT id::text FROM invoices WHERE number = '{}'", b.number))?.context("id")?;
    for path in [
        format!("/v1/portal/invoices/{}", b.number),
        format!("/v1/portal/invoices/{b_invoice}"),
        format!("/v1/portal/invoices/{}/pdf", b.number),
        format!("/v1/portal/subscriptions/{}", b.subscription),
    ] {
        let (status, body) = fetch(&rt, &bridge, &path, &session)?;
        assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (status, body) =
        bridge.post(&rt, &format!("/v1/portal/subscriptions/{}/cancel", b.subscription), &json!({}), Some(&session))?;
    assert_eq!((status, code(&body)), (404, "NotFound"), "{body}");
    let b_cancelling = ledger
        .text(&rt, &format!("SELECT cancel_at_period_end::text FROM subscriptions WHERE id = '{}'", b.subscription))?;
    assert_eq!(b_cancelling.as_deref(), Some("false"));

    // A pays an open invoice of theirs through a Checkout Session; a paid one, or B's, cannot be
    let open = bridge.checkout(
        &rt,
        &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": a.email,
                "domain": format!("portal-open-{}.example", Uuid::new_v4().simple())}),
    )?;
    let open_id = open["invoiceId"].as_str().unwrap_or_default();
    let open_number =
        ledger.text(&rt, &format!("SELECT number FROM invoices WHERE id = '{open_id}'"))?.context("open number")?;
    let (status, body) = bridge.post(&rt, &format!("/v1/invoices/{open_number}/pay"), &json!({}), Some(&session))?;
    assert_eq!(status, 200, "{body}");
    assert!(body["url"].as_str().is_some_and(|u| u.starts_with("http")), "{body}");
    assert_eq!(body["amount"], open["total"], "{body}");
    let (status, body) = bridge.post(&rt, &format!("/v1/invoices/{}/pay", a.number), &json!({}), Some(&session))?;
    assert_eq!((status, code(&body)), (409, "invoice_not_open"), "{body}");
    let (status, body) = bridge.post(&rt, &format!("/v1/invoices/{}/pay", b.number), &json!({}), Some(&session))?;
    assert_eq!((status, code(&body)), (404, "NotFound"), "{body}");
    let (status, _) = bridge.post(&rt, &format!("/v1/invoices/{open_number}/pay"), &json!({}), None)?;
    assert_eq!(status, 401);

    // A cancels at the end of the period: the service runs until then
    let (status, body) =
        bridge.post(&rt, &format!("/v1/portal/subscriptions/{}/cancel", a.subscription), &json!({}), Some(&session))?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["cancel_at_period_end"], json!(true), "{body}");
    assert_ne!(body["subscription"]["status"], json!("cancelled"), "{body}");
    let audited = ledger.count(
        &rt,
        &format!(
            "SELECT count(*) FROM audit_log WHERE action = 'subscription.cancel' AND entity_id = '{}' \
               AND actor LIKE 'customer:%'",
            a.subscription
        ),
    )?;
    assert_eq!(audited, 1);
    capture.forget(&a.email)?;
    Ok(())
}

#[test]
fn the_billing_portal_opens_for_the_customers_own_stripe_customer() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let relay = RecordingRelay::start(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, &[("STRIPE_API_BASE", relay.base.clone())])?;
    let capture = Capture::new(&tb)?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;

    // a customer who never paid has no Stripe customer yet
    let newcomer = email("portal-new");
    let (status, body) = bridge.post(&rt, "/v1/admin/customers", &json!({"email": newcomer}), Some(&billing))?;
    assert_eq!(status, 201, "{body}");
    let session = sign_in(&rt, &bridge, &capture, &newcomer)?;
    let (status, body) = bridge.post(&rt, "/v1/portal/billing-portal", &json!({}), Some(&session))?;
    assert_eq!((status, code(&body)), (409, "NoPaymentProfile"), "{body}");

    let a = buy(&rt, &ledger, &bridge, "portal-billing")?;
    let _cleanup = Namespaces { tb: &tb, names: vec![a.namespace.clone()] };
    let stripe_customer = ledger
        .text(&rt, &format!("SELECT stripe_customer_id FROM customers WHERE email = '{}'", a.email))?
        .context("the payment saved no Stripe customer")?;
    let session = sign_in(&rt, &bridge, &capture, &a.email)?;
    let (status, body) = bridge.post(&rt, "/v1/portal/billing-portal", &json!({}), Some(&session))?;
    assert_eq!(status, 200, "{body}");
    assert!(body["url"].as_str().is_some_and(|u| u.starts_with("http")), "{body}");
    let asked = relay.sent();
    let request =
        asked.split("POST /v1/billing_portal/sessions").nth(1).context("no Billing Portal session was asked")?;
    assert!(request.contains(&format!("customer={stripe_customer}")), "{request}");
    assert!(request.contains("return_url=https://portal.shop.example/billing"), "{request}");
    capture.forget(&a.email)?;
    capture.forget(&newcomer)?;
    Ok(())
}
