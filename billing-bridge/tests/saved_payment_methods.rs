//! Saved payment methods, against the real peers: the checkout asks Stripe (stripe-mock, read on
//! its way) to keep the card for charges made without the customer present and to make a Stripe
//! customer; the method is then kept current from Stripe's signed events, whatever order they
//! arrive in, and only on the customer Stripe names.

mod support;

use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, RecordingRelay, email, event, payment_intent, session_completed};
use tokio::runtime::Runtime;

fn pod(label: &str) -> Value {
    json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email(label)})
}

/// The ledger customer who placed `placed`: (Stripe customer, payment method).
fn saved(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<(Option<String>, Option<String>)> {
    let order = placed["orderId"].as_str().unwrap_or_default();
    let row: (Option<String>, Option<String>) = rt.block_on(
        sqlx::query_as(
            "SELECT c.stripe_customer_id, c.payment_method FROM customers c JOIN orders o ON o.customer_id = c.id \
             WHERE o.id = $1::uuid",
        )
        .bind(order)
        .fetch_one(&ledger.pool),
    )?;
    Ok(row)
}

fn namespace_of(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<String> {
    let order = placed["orderId"].as_str().unwrap_or_default();
    let handle = ledger.text(
        rt,
        &format!("SELECT c.handle FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = '{order}'"),
    )?;
    Ok(format!("customer-{}", handle.unwrap_or_default()))
}

/// `event` as if Stripe had created it `seconds` from now.
fn created_in(mut event: Value, seconds: i64) -> Value {
    event["created"] = json!(chrono::Utc::now().timestamp() + seconds);
    event
}

fn customer_updated(customer: &str, method: Option<&str>, seconds: i64) -> Value {
    let object = json!({"id": customer, "object": "customer", "invoice_settings": {"default_payment_method": method}});
    created_in(event("customer.updated", object), seconds)
}

fn setup_succeeded(customer: &str, method: &str, seconds: i64) -> Value {
    let object = json!({"id": format!("seti_{method}"), "object": "setup_intent", "status": "succeeded",
                        "usage": "off_session", "customer": customer, "payment_method": method});
    created_in(event("setup_intent.succeeded", object), seconds)
}

#[test]
fn the_checkout_asks_stripe_to_keep_the_card_for_later_charges_on_a_stripe_customer() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let stripe = RecordingRelay::start(&rt, &tb)?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig, &[("STRIPE_API_BASE", stripe.base.clone())])?;
    let placed = bridge.checkout(&rt, &pod("saved-card-asked"))?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &placed)?] };
    let sent = stripe.sent();
    assert!(sent.contains("payment_intent_data[setup_future_usage]=off_session"), "{sent}");
    assert!(sent.contains("customer_creation=always"), "{sent}");
    assert!(placed["checkoutUrl"].as_str().is_some_and(|u| !u.is_empty()), "{placed}");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn the_saved_method_follows_the_newest_event_and_only_the_customer_stripe_names() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig)?;
    let (mine, theirs) =
        (bridge.checkout(&rt, &pod("saved-card-mine"))?, bridge.checkout(&rt, &pod("saved-card-theirs"))?);
    let _namespaces =
        Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &mine)?, namespace_of(&rt, &ledger, &theirs)?] };

    // paid: the session names the Stripe customer, the payment intent the card it saved
    assert_eq!(bridge.deliver(&rt, &session_completed(&mine, "pi_savedmine"))?, 200);
    assert_eq!(bridge.deliver(&rt, &session_completed(&theirs, "pi_savedtheirs"))?, 200);
    let invoice = mine["invoiceId"].as_str().unwrap_or_default();
    let mut paid = payment_intent("payment_intent.succeeded", "pi_savedmine", invoice, support::total_cents(&mine));
    paid["data"]["object"]["customer"] = json!("cus_savedmine");
    paid["data"]["object"]["payment_method"] = json!("pm_card_first");
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    assert_eq!(saved(&rt, &ledger, &mine)?, (Some("cus_savedmine".into()), Some("pm_card_first".into())));

    // changed in the Billing Portal; then an older setup event arrives late and changes nothing
    assert_eq!(bridge.deliver(&rt, &customer_updated("cus_savedmine", Some("pm_card_second"), 10))?, 200);
    assert_eq!(bridge.deliver(&rt, &setup_succeeded("cus_savedmine", "pm_card_stale", 5))?, 200);
    assert_eq!(saved(&rt, &ledger, &mine)?.1.as_deref(), Some("pm_card_second"));
    assert_eq!(bridge.deliver(&rt, &setup_succeeded("cus_savedmine", "pm_card_third", 20))?, 200);
    assert_eq!(saved(&rt, &ledger, &mine)?.1.as_deref(), Some("pm_card_third"));
    // a customer update that removes the default keeps the saved method (nothing to charge otherwise)
    assert_eq!(bridge.deliver(&rt, &customer_updated("cus_savedmine", None, 30))?, 200);
    assert_eq!(saved(&rt, &ledger, &mine)?.1.as_deref(), Some("pm_card_third"));

    // the other customer's events change only the other customer, and a Stripe customer the
    // ledger does not know changes nobody (kept as unmatched)
    assert_eq!(bridge.deliver(&rt, &customer_updated("cus_savedtheirs", Some("pm_theirs"), 40))?, 200);
    assert_eq!(bridge.deliver(&rt, &customer_updated("cus_nobody", Some("pm_nobody"), 50))?, 200);
    assert_eq!(saved(&rt, &ledger, &mine)?.1.as_deref(), Some("pm_card_third"));
    assert_eq!(saved(&rt, &ledger, &theirs)?, (Some("cus_savedtheirs".into()), Some("pm_theirs".into())));
    let anyone = ledger.count(&rt, "SELECT count(*) FROM customers WHERE payment_method = 'pm_nobody'")?;
    assert_eq!(anyone, 0);
    let audit = |action: &str, who: &str| {
        ledger.count(&rt, &format!("SELECT count(*) FROM audit_log WHERE action = '{action}' AND entity_id = '{who}'"))
    };
    assert_eq!(audit("payment_method.saved", "cus_savedmine")?, 2, "the portal change and the newer setup");
    assert_eq!(audit("event.unmatched", "cus_nobody")?, 1);
    ledger.drop_database(&rt);
    Ok(())
}
