//! Pay links, against the real ledger, stripe-mock and the webhook path: a renewal whose
//! off-session charge needs the customer (3-D Secure) stays open, its mails carry its stable pay
//! address, which leads to a Checkout Session for what is left of it; paying there settles the
//! invoice once and extends the subscription; an expired session is replaced; voiding the invoice
//! expires its session at Stripe; a token the ledger does not know leads nowhere.
//!
//! A front before stripe-mock keeps what the bridge asked Stripe and answers off-session
//! PaymentIntents `requires_action` (stripe-mock cannot play a bank that wants the customer).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use mpanel_billing_bridge::ledger::Cycle;
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::lifecycle;
use mpanel_billing_bridge::renewal_charges;
use mpanel_billing_bridge::stripe::api::StripeClient;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::stripe_front::{Answer, StripeFront};
use support::{Bridge, Ledger, Namespaces, email, eventually, payment_intent, session_completed};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);

/// GET without following redirects: the status, the Location, the body.
fn visit(rt: &Runtime, url: &str) -> anyhow::Result<(u16, String, Value)> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    rt.block_on(async {
        let response = client.get(url).send().await?;
        let status = response.status().as_u16();
        let location =
            response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, location, body))
    })
}

/// The mails the testbed's Postfix delivered to `recipient` in its capture maildir: (subject, the
/// whole message with quoted-printable soft breaks and `=3D` undone).
fn mails_to(tb: &Testbed, recipient: &str) -> anyhow::Result<Vec<(String, String)>> {
    let dir = PathBuf::from(tb.get("MAIL_CAPTURE_DIR")?);
    let mut mails = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        for entry in entries {
            // another test may have removed its mail since the listing
            let Ok(raw) = std::fs::read_to_string(entry?.path()) else { continue };
            let text = raw.replace("\r\n", "\n").replace("=\n", "").replace("=3D", "=");
            let header = |name: &str| {
                text.lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                    .unwrap_or_default()
            };
            if header("Delivered-To:").eq_ignore_ascii_case(recipient) {
                mails.push((header("Subject:"), text));
            }
        }
    }
    Ok(mails)
}

/// Removes the captured mails of `recipient`.
fn forget_mails(tb: &Testbed, recipient: &str) -> anyhow::Result<()> {
    let dir = PathBuf::from(tb.get("MAIL_CAPTURE_DIR")?);
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        for entry in entries.flatten() {
            let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if raw
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .any(|l| l.trim() == format!("Delivered-To: {recipient}"))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// `n` GETs of `url` at once, without following redirects: their statuses.
fn visit_at_once(rt: &Runtime, url: &str, n: usize) -> anyhow::Result<Vec<u16>> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    rt.block_on(async {
        let mut visits = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (client, url) = (client.clone(), url.to_owned());
            visits.spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
        }
        let mut statuses = Vec::new();
        while let Some(visited) = visits.join_next().await {
            statuses.push(visited??);
        }
        Ok(statuses)
    })
}

/// The invoice's pay token, as the ledger keeps it.
fn token_of(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<String> {
    Ok(ledger.text(rt, &format!("SELECT token FROM pay_tokens WHERE invoice_id = '{invoice}'"))?.unwrap_or_default())
}

/// The invoice's pay-link sessions: (seq, session id, expired).
fn sessions_of(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<Vec<(i32, String, bool)>> {
    Ok(rt.block_on(
        sqlx::query_as(
            "SELECT seq, coalesce(session_id, ''), expired_at IS NOT NULL FROM pay_sessions \
             WHERE invoice_id = $1::uuid ORDER BY seq",
        )
        .bind(invoice)
        .fetch_all(&ledger.pool),
    )?)
}

#[test]
fn a_renewal_that_needs_the_customer_is_paid_once_through_its_pay_link() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let front = StripeFront::start(&tb, |_, _| Answer::Mock { payment_intent_status: Some("requires_action") })?;
    let env = [("STRIPE_API_BASE", front.base.clone()), ("NOTIFY_SMTP_ADDR", tb.get("NOTIFY_SMTP_ADDR")?.to_owned())];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig, &env)?;
    let customer = email("paylink");
    let placed = bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let handle = ledger.text(
        &rt,
        &format!(
            "SELECT c.handle FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = '{}'",
            placed["orderId"].as_str().unwrap_or_default()
        ),
    )?;
    let _namespaces = Namespaces { tb: &tb, names: vec![format!("customer-{}", handle.unwrap_or_default())] };

    // paid at checkout, the card saved
    assert_eq!(bridge.deliver(&rt, &session_completed(&placed, "pi_paylinkfirst"))?, 200);
    let mut paid = payment_intent(
        "payment_intent.succeeded",
        "pi_paylinkfirst",
        placed["invoiceId"].as_str().unwrap_or_default(),
        999,
    );
    paid["data"]["object"]["customer"] = json!("cus_paylinkfirst");
    paid["data"]["object"]["payment_method"] = json!("pm_card_paylink");
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    let subscription = support::subscription_of_order(&rt, &ledger, &placed)?;
    let end = support::activate_at(&rt, &ledger, subscription, Cycle::Monthly, Utc::now())?;

    // the renewal is issued; its mail carries its pay address
    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end - chrono::Duration::days(6)))?.renewal_invoices, 1);
    let renewal = ledger
        .text(
            &rt,
            &format!(
                "SELECT id::text FROM invoices WHERE subscription_id = '{subscription}' AND period_start IS NOT NULL"
            ),
        )?
        .unwrap_or_default();
    let token = token_of(&rt, &ledger, &renewal)?;
    assert_eq!(token.len(), 64, "{token}");
    let pay_url = format!("https://billing.migrahosting.com/v1/pay/{token}");

    // the off-session charge needs the customer: the invoice stays open, with one failed payment
    let stripe = StripeClient::new("sk_test_paylinks", Some(&front.base), Duration::from_secs(10))?;
    let charged = rt.block_on(renewal_charges::pass(&ledger.pool, &stripe, end + chrono::Duration::hours(1), None))?;
    assert_eq!(charged.requires_action, 1, "{charged:?}");
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM invoices WHERE id = '{renewal}'"))?.as_deref(),
        Some("issued")
    );
    let intent = ledger
        .text(&rt, &format!("SELECT payment_intent FROM charge_attempts WHERE invoice_id = '{renewal}'"))?
        .unwrap_or_default();
    assert!(intent.starts_with("pi_"), "{intent}");
    // the customer is told at once, before any word from Stripe, with the pay link
    let told = format!(
        "SELECT facts->>'payUrl' FROM notifications WHERE kind = 'payment_failed' AND recipient = '{customer}'"
    );
    assert_eq!(ledger.text(&rt, &told)?.as_deref(), Some(pay_url.as_str()));
    let failed_payment = format!("SELECT status FROM payments WHERE reference = '{intent}'");
    assert_eq!(ledger.text(&rt, &failed_payment)?.as_deref(), Some("failed"));
    // Stripe's own word of the failed intent changes nothing: the customer is told once
    assert_eq!(bridge.deliver(&rt, &payment_intent("payment_intent.payment_failed", &intent, &renewal, 999))?, 200);

    // the mails: the renewal invoice and the payment that needs the customer, each with the link
    let mut mails = Vec::new();
    let arrived = eventually(WAIT, || {
        mails = mails_to(&tb, &customer)?;
        Ok(mails.len() >= 3)
    })?;
    assert!(arrived, "{customer} got {} mails: {}", mails.len(), bridge.log_tail(30));
    std::thread::sleep(Duration::from_secs(2));
    let mails = mails_to(&tb, &customer)?;
    let number = ledger.text(&rt, &format!("SELECT number FROM invoices WHERE id = '{renewal}'"))?.unwrap_or_default();
    let about = |subject: &str| mails.iter().filter(|(s, _)| s.contains(subject)).collect::<Vec<_>>();
    let issued = about(&format!("invoice {number} for your"));
    let failed = about(&format!("your payment for invoice {number} failed"));
    let subjects: Vec<&String> = mails.iter().map(|(s, _)| s).collect();
    assert_eq!((issued.len(), failed.len()), (1, 1), "{subjects:?}");
    for (_, text) in issued.iter().chain(&failed) {
        assert!(text.contains(&pay_url), "{text}");
    }
    assert_eq!(
        ledger.count(
            &rt,
            &format!("SELECT count(*) FROM notifications WHERE kind = 'payment_failed' AND recipient = '{customer}'")
        )?,
        1
    );

    // unpaid past its due date: the past-due mail carries the link too
    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end + chrono::Duration::hours(2)))?.past_due, 1);
    let past_due =
        format!("SELECT facts->>'payUrl' FROM notifications WHERE kind = 'past_due' AND recipient = '{customer}'");
    assert_eq!(ledger.text(&rt, &past_due)?.as_deref(), Some(pay_url.as_str()));

    // staff see the pay address of the open invoice
    let admin = support::admin_token(&rt, &ledger, Role::ReadOnly)?;
    let (status, shown) = bridge.get(&rt, &format!("/v1/admin/invoices/{renewal}"), Some(&admin))?;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["payUrl"], json!(pay_url), "{shown}");
    assert_eq!(shown["paySession"], Value::Null, "{shown}");
    let (status, listed) = bridge.get(&rt, "/v1/admin/invoices?status=issued", Some(&admin))?;
    assert_eq!(status, 200, "{listed}");
    let in_list = listed["invoices"].as_array().into_iter().flatten().find(|i| i["id"] == json!(renewal.to_string()));
    assert_eq!(in_list.map(|i| &i["payUrl"]), Some(&json!(pay_url)), "{listed}");

    // the pay address leads to a Checkout Session for the rest of the invoice, made once
    let link = format!("{}/v1/pay/{token}", bridge.url);
    let (status, location, body) = visit(&rt, &link)?;
    assert_eq!(status, 303, "{body}");
    assert!(location.starts_with("https://checkout.stripe.com/"), "{location}");
    let (status, again, _) = visit(&rt, &link)?;
    assert_eq!((status, again.as_str()), (303, location.as_str()));
    let sessions = sessions_of(&rt, &ledger, &renewal)?;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = sessions[0].1.clone();
    assert!(session.starts_with("cs_"), "{session}");
    let asked: Vec<String> = front
        .requests_to("/v1/checkout/sessions")
        .into_iter()
        .filter(|r| r.to_ascii_lowercase().contains("idempotency-key: pay-link-"))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    for field in [
        format!("metadata[invoice_id]={renewal}"),
        format!("payment_intent_data[metadata][invoice_id]={renewal}"),
        "line_items[0][price_data][unit_amount]=999".to_owned(),
        "line_items[0][price_data][currency]=usd".to_owned(),
        "customer=cus_paylinkfirst".to_owned(),
        "expires_at=".to_owned(),
        format!("idempotency-key: pay-link-{renewal}-1"),
    ] {
        assert!(
            asked[0].to_ascii_lowercase().contains(&field.to_ascii_lowercase()),
            "{field} missing from {}",
            asked[0]
        );
    }
    let (_, shown) = bridge.get(&rt, &format!("/v1/admin/invoices/{renewal}"), Some(&admin))?;
    assert_eq!(shown["paySession"]["sessionId"], json!(session), "{shown}");
    assert_eq!(shown["paySession"]["amount"], json!("9.99"), "{shown}");

    // paid there: the session's and its intent's webhooks settle the invoice once
    let on_link = json!({"invoiceId": renewal, "orderId": null, "checkoutSessionId": session, "total": "9.99"});
    let mut completed = session_completed(&on_link, "pi_paylinkpaid");
    completed["data"]["object"]["metadata"] = json!({"invoice_id": renewal, "pay_link": "1"});
    completed["data"]["object"]["customer"] = json!("cus_paylinkfirst");
    assert_eq!(bridge.deliver(&rt, &completed)?, 200);
    assert_eq!(bridge.deliver(&rt, &payment_intent("payment_intent.succeeded", "pi_paylinkpaid", &renewal, 999))?, 200);
    assert_eq!(bridge.deliver(&rt, &completed)?, 200);
    let payments = format!("SELECT count(*) FROM payments WHERE invoice_id = '{renewal}' AND status = 'succeeded'");
    assert_eq!(ledger.count(&rt, &payments)?, 1);
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM invoices WHERE id = '{renewal}'"))?.as_deref(),
        Some("paid")
    );
    let extended = eventually(WAIT, || {
        let state = ledger.text(
            &rt,
            &format!(
                "SELECT (current_period_end > '{}'::timestamptz)::text FROM subscriptions WHERE id = '{subscription}'",
                end.to_rfc3339()
            ),
        )?;
        Ok(state.as_deref() == Some("true"))
    })?;
    assert!(extended, "the renewal did not extend the period: {}", bridge.log_tail(20));

    // a paid invoice has nothing to pay: the link says so
    let (status, _, body) = visit(&rt, &link)?;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invoice_not_open")), "{body}");
    let (_, shown) = bridge.get(&rt, &format!("/v1/admin/invoices/{renewal}"), Some(&admin))?;
    assert_eq!(shown["payUrl"], Value::Null, "{shown}");
    forget_mails(&tb, &customer)?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn an_expired_pay_link_session_is_replaced_and_leaves_its_order_alone() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig)?;
    let placed = bridge
        .checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("paylinkexpiry")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    let order = placed["orderId"].as_str().unwrap_or_default().to_owned();
    let token = token_of(&rt, &ledger, &invoice)?;
    let link = format!("{}/v1/pay/{token}", bridge.url);
    // visits at once make one session
    assert_eq!(visit_at_once(&rt, &link, 6)?, vec![303; 6]);
    let first = sessions_of(&rt, &ledger, &invoice)?;
    assert_eq!(first.len(), 1, "{first:?}");

    // Stripe says the pay link's session expired: it is marked so, the order and invoice stay open
    let expired = support::event(
        "checkout.session.expired",
        json!({"id": first[0].1, "object": "checkout.session", "status": "expired", "payment_status": "unpaid",
               "client_reference_id": format!("pay-link:{invoice}:1"),
               "metadata": {"invoice_id": invoice, "pay_link": "1"}}),
    );
    assert_eq!(bridge.deliver(&rt, &expired)?, 200);
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM invoices WHERE id = '{invoice}'"))?.as_deref(),
        Some("issued")
    );
    assert_ne!(
        ledger.text(&rt, &format!("SELECT status FROM orders WHERE id = '{order}'"))?.as_deref(),
        Some("expired")
    );
    assert_eq!(sessions_of(&rt, &ledger, &invoice)?, vec![(1, first[0].1.clone(), true)]);

    // the next visit makes a new session
    let (status, _, body) = visit(&rt, &link)?;
    assert_eq!(status, 303, "{body}");
    let now = sessions_of(&rt, &ledger, &invoice)?;
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now[1].1.starts_with("cs_") && now[1].1 != now[0].1 && !now[1].2, "{now:?}");

    // a token the ledger does not know, or no token at all, leads nowhere
    let unknown = format!("{}/v1/pay/{}", bridge.url, "ab".repeat(32));
    let (status, _, body) = visit(&rt, &unknown)?;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NotFound")), "{body}");
    let (status, _, _) = visit(&rt, &format!("{}/v1/pay/{}", bridge.url, &token[..10]))?;
    assert_eq!(status, 404);
    // the answer to a known token names nothing of the invoice or its customer
    let (status, location, body) = visit(&rt, &link)?;
    assert_eq!((status, body.is_null()), (303, true), "{body}");
    assert!(!location.contains(&invoice), "{location}");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn voiding_an_invoice_expires_its_pay_link_session_at_stripe() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig)?;
    let billing = support::admin_token(&rt, &ledger, Role::Billing)?;
    let placed = bridge
        .checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("paylinkvoid")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    let number = placed["invoiceNumber"].as_str().unwrap_or_default().to_owned();
    let link = format!("{}/v1/pay/{}", bridge.url, token_of(&rt, &ledger, &invoice)?);
    let (status, _, body) = visit(&rt, &link)?;
    assert_eq!(status, 303, "{body}");
    let made = sessions_of(&rt, &ledger, &invoice)?;
    assert!(made.len() == 1 && made[0].1.starts_with("cs_") && !made[0].2, "{made:?}");

    // staff void the invoice: the open pay-link session is expired at Stripe, with an audit row
    let (status, body) = bridge.post(&rt, &format!("/v1/admin/invoices/{number}/void"), &json!({}), Some(&billing))?;
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually(WAIT, || Ok(sessions_of(&rt, &ledger, &invoice)?.iter().all(|s| s.2)))?,
        "the pay-link session of the void invoice is still open: {}",
        bridge.log_tail(20)
    );
    let asked = format!(
        "SELECT count(*) FROM audit_log WHERE action = 'checkout.session.expire' AND entity = 'invoice' \
         AND entity_id = '{invoice}' AND detail->>'session' = '{}'",
        made[0].1
    );
    assert_eq!(ledger.count(&rt, &asked)?, 1);
    // and the pay address makes no new session for it
    let (status, _, body) = visit(&rt, &link)?;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invoice_not_open")), "{body}");
    assert_eq!(sessions_of(&rt, &ledger, &invoice)?.len(), 1);
    ledger.drop_database(&rt);
    Ok(())
}
