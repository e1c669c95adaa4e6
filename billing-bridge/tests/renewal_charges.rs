//! Collecting renewals, against the real ledger and webhook path: a renewal invoice is charged
//! off-session for the saved card on its due date, and its webhook pays it and extends the period
//! with no staff action; a declined one is charged again on the dunning schedule (+3, +5 days), each
//! attempt kept with Stripe's decline code; the third attempt is accepted, its webhook pays the
//! invoice, the period moves on and the Overdue suspension in between is lifted.
//!
//! Stripe declining a card cannot be played by stripe-mock, so a front before it (`support::
//! stripe_front`) answers the PaymentIntent requests: card declines, then stripe-mock's
//! PaymentIntent marked succeeded.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mpanel_billing_bridge::ledger::Cycle;
use mpanel_billing_bridge::ledger::charge_attempts;
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::lifecycle;
use mpanel_billing_bridge::renewal_charges::{self, Charged};
use mpanel_billing_bridge::stripe::api::StripeClient;
use mpanel_tests::Testbed;
use serde_json::json;
use support::stripe_front::{Answer, StripeFront};
use support::{Bridge, Ledger, Namespaces, email, payment_intent, session_completed};

const DECLINES: [(&str, &str); 2] =
    [("insufficient_funds", "Your card has insufficient funds."), ("do_not_honor", "Your card was declined.")];

/// A Stripe front that declines with `declines` in turn, then accepts (stripe-mock's PaymentIntent,
/// succeeded).
fn declining(tb: &Testbed, declines: &'static [(&'static str, &'static str)]) -> anyhow::Result<StripeFront> {
    StripeFront::start(tb, move |n, _| match declines.get(n.saturating_sub(1)) {
        Some(&(decline_code, message)) => Answer::Decline { decline_code, message },
        None => Answer::Mock { payment_intent_status: Some("succeeded") },
    })
}

/// A monthly CloudPod paid at checkout with the card saved for renewals (`cus_<label>first`,
/// `pm_card_<label>`), activated now: its subscription, the end of its first period, and the
/// namespace to remove after the test.
fn renewing_subscription<'a>(
    rt: &tokio::runtime::Runtime,
    tb: &'a Testbed,
    ledger: &Ledger,
    bridge: &Bridge,
    label: &str,
) -> anyhow::Result<(uuid::Uuid, DateTime<Utc>, Namespaces<'a>)> {
    let placed =
        bridge.checkout(rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email(label)}))?;
    let handle = ledger.text(
        rt,
        &format!(
            "SELECT c.handle FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = '{}'",
            placed["orderId"].as_str().unwrap_or_default()
        ),
    )?;
    let namespaces = Namespaces { tb, names: vec![format!("customer-{}", handle.unwrap_or_default())] };
    let first = format!("pi_{label}first");
    assert_eq!(bridge.deliver(rt, &session_completed(&placed, &first))?, 200);
    let mut paid =
        payment_intent("payment_intent.succeeded", &first, placed["invoiceId"].as_str().unwrap_or_default(), 999);
    paid["data"]["object"]["customer"] = json!(format!("cus_{label}first"));
    paid["data"]["object"]["payment_method"] = json!(format!("pm_card_{label}"));
    assert_eq!(bridge.deliver(rt, &paid)?, 200);
    let subscription = support::subscription_of_order(rt, ledger, &placed)?;
    let end = support::activate_at(rt, ledger, subscription, Cycle::Monthly, Utc::now())?;
    Ok((subscription, end, namespaces))
}

/// Waits until the subscription is active, unsuspended, past `end`, and its renewal paid.
fn wait_renewed(
    rt: &tokio::runtime::Runtime,
    ledger: &Ledger,
    subscription: uuid::Uuid,
    renewal: uuid::Uuid,
    end: DateTime<Utc>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state = ledger.text(
            rt,
            &format!("SELECT status || ' ' || coalesce(suspension_reason, '-') || ' ' || (current_period_end > '{}'::timestamptz)::text FROM subscriptions WHERE id = '{subscription}'", end.to_rfc3339()),
        )?;
        if state.as_deref() == Some("active - true") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the renewal did not take: {state:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        ledger.text(rt, &format!("SELECT status FROM invoices WHERE id = '{renewal}'"))?.as_deref(),
        Some("paid")
    );
    Ok(())
}

#[test]
fn a_renewal_is_charged_on_its_due_date_and_its_webhook_extends_the_period_without_staff() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig)?;
    let (subscription, end, _namespaces) = renewing_subscription(&rt, &tb, &ledger, &bridge, "ontime")?;
    let front = declining(&tb, &[])?;
    let stripe = StripeClient::new("sk_test_renewals", Some(&front.base), Duration::from_secs(10))?;
    let pass = |at: DateTime<Utc>| rt.block_on(renewal_charges::pass(&ledger.pool, &stripe, at, None));

    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end - chrono::Duration::days(6)))?.renewal_invoices, 1);
    let renewal: uuid::Uuid = rt.block_on(
        sqlx::query_scalar("SELECT id FROM invoices WHERE subscription_id = $1 AND period_start IS NOT NULL")
            .bind(subscription)
            .fetch_one(&ledger.pool),
    )?;
    assert_eq!(pass(end - chrono::Duration::hours(1))?, Charged::default(), "nothing is charged before the due date");
    assert_eq!(pass(end + chrono::Duration::minutes(1))?.accepted, 1, "charged on the due date");
    assert_eq!(front.requests().len(), 1);
    let attempts = rt.block_on(charge_attempts::of_invoice(&ledger.pool, renewal))?;
    let seen: Vec<(i32, &str)> = attempts.iter().map(|a| (a.attempt, a.outcome.as_str())).collect();
    assert_eq!(seen, vec![(1, "succeeded")]);
    let intent = attempts[0].payment_intent.clone().unwrap_or_default();
    // the webhook of the charge pays the invoice, once however often it comes
    let renewal_paid = payment_intent("payment_intent.succeeded", &intent, &renewal.to_string(), 999);
    assert_eq!(bridge.deliver(&rt, &renewal_paid)?, 200);
    assert_eq!(bridge.deliver(&rt, &renewal_paid)?, 200);
    wait_renewed(&rt, &ledger, subscription, renewal, end)?;
    let payments = ledger.count(&rt, &format!("SELECT count(*) FROM payments WHERE invoice_id = '{renewal}'"))?;
    assert_eq!(payments, 1);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_declined_renewal_is_retried_on_the_schedule_and_the_third_attempt_pays_and_lifts_the_suspension()
-> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    // suspended after 4 days unpaid: between the second attempt (+3) and the third (+5)
    rt.block_on(sqlx::query("UPDATE products SET grace_days = 4 WHERE slug = 'cloudpod-mini'").execute(&ledger.pool))?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig)?;
    let (subscription, end, _namespaces) = renewing_subscription(&rt, &tb, &ledger, &bridge, "renews")?;

    let front = declining(&tb, &DECLINES)?;
    let stripe = StripeClient::new("sk_test_renewals", Some(&front.base), Duration::from_secs(10))?;
    let pass = |at: DateTime<Utc>| rt.block_on(renewal_charges::pass(&ledger.pool, &stripe, at, None));
    let hours = chrono::Duration::hours;
    let days = chrono::Duration::days;

    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end - days(6)))?.renewal_invoices, 1);
    let renewal: uuid::Uuid = rt.block_on(
        sqlx::query_scalar("SELECT id FROM invoices WHERE subscription_id = $1 AND period_start IS NOT NULL")
            .bind(subscription)
            .fetch_one(&ledger.pool),
    )?;
    assert_eq!(pass(end - days(1))?, Charged::default(), "nothing is charged before the due date");
    assert_eq!(pass(end + hours(1))?.declined, 1);
    assert_eq!(pass(end + days(1))?, Charged::default(), "the next attempt waits for its day");
    assert_eq!(pass(end + days(3) + hours(1))?.declined, 1);
    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end + days(4) + hours(1)))?.suspended, 1);
    assert_eq!(pass(end + days(5) + hours(1))?.accepted, 1);
    assert_eq!(pass(end + days(7) + hours(1))?, Charged::default(), "an accepted charge is not made again");

    // what Stripe was asked: the saved card, off-session, confirmed, one idempotency key per attempt
    let requests = front.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for (n, request) in requests.iter().enumerate() {
        assert!(request.starts_with("POST /v1/payment_intents "), "{request}");
        assert!(
            request.to_ascii_lowercase().contains(&format!("idempotency-key: renewal-{renewal}-{}\r\n", n + 1)),
            "{request}"
        );
        for field in [
            "amount=999",
            "currency=usd",
            "customer=cus_renewsfirst",
            "payment_method=pm_card_renews",
            "confirm=true",
            "off_session=true",
        ] {
            assert!(request.contains(field), "{field} missing from {request}");
        }
    }
    // every attempt in the ledger, with Stripe's decline code verbatim
    let attempts = rt.block_on(charge_attempts::of_invoice(&ledger.pool, renewal))?;
    let seen: Vec<(i32, &str, Option<&str>)> =
        attempts.iter().map(|a| (a.attempt, a.outcome.as_str(), a.decline_code.as_deref())).collect();
    assert_eq!(
        seen,
        vec![
            (1, "declined", Some("insufficient_funds")),
            (2, "declined", Some("do_not_honor")),
            (3, "succeeded", None)
        ]
    );
    let intent = attempts[2].payment_intent.clone().unwrap_or_default();
    assert!(intent.starts_with("pi_"), "{intent}");
    // staff see them with the invoice
    let token = support::admin_token(&rt, &ledger, Role::ReadOnly)?;
    let (status, shown) = bridge.get(&rt, &format!("/v1/admin/invoices/{renewal}"), Some(&token))?;
    assert_eq!(status, 200, "{shown}");
    let codes: Vec<&str> =
        shown["chargeAttempts"].as_array().into_iter().flatten().filter_map(|a| a["decline_code"].as_str()).collect();
    assert_eq!(codes, ["insufficient_funds", "do_not_honor"], "{shown}");

    // Stripe's webhook for the accepted charge pays the renewal: the period moves on, the
    // Overdue suspension is lifted
    let renewal_paid = payment_intent("payment_intent.succeeded", &intent, &renewal.to_string(), 999);
    assert_eq!(bridge.deliver(&rt, &renewal_paid)?, 200);
    wait_renewed(&rt, &ledger, subscription, renewal, end)?;
    ledger.drop_database(&rt);
    Ok(())
}
