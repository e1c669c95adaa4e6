//! Currencies on the revenue path against the real peers: a product priced in yen is charged in
//! yen's minor unit (the request the bridge sends to stripe-mock is read on its way, through a
//! relay of the test's), its signed webhook pays the invoice exactly, money in another currency is
//! refused into an audit row, and an order mixing currencies is refused before anything is written.

mod support;

use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::ledger::{Cycle, subscriptions};
use mpanel_billing_bridge::lifecycle;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, RecordingRelay, admin_token, email, payment_intent, session_paid};
use tokio::runtime::Runtime;

/// What cloudpod-pro costs monthly in these tests: ¥3,000 (yen have no minor unit).
const YEN: i64 = 3000;

fn setup() -> anyhow::Result<(Runtime, Testbed)> {
    Ok((support::runtime()?, Testbed::from_env()?))
}

fn kubeconfig(tb: &Testbed) -> anyhow::Result<std::path::PathBuf> {
    Ok(tb.get("KUBECONFIG")?.into())
}

fn price_pod_in_yen(rt: &Runtime, ledger: &Ledger) -> anyhow::Result<()> {
    rt.block_on(
        sqlx::query(
            "UPDATE product_prices SET currency = 'jpy', amount_cents = $1 \
             WHERE cycle = 'monthly' AND purpose = 'new' \
               AND product_id = (SELECT id FROM products WHERE slug = 'cloudpod-pro')",
        )
        .bind(YEN)
        .execute(&ledger.pool),
    )?;
    Ok(())
}

fn pod(label: &str) -> Value {
    json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email(label)})
}

/// The customer namespace a paid invoice's fulfilment makes, to delete after the test.
fn namespace_of(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<String> {
    let invoice = placed["invoiceId"].as_str().unwrap_or_default();
    let handle = ledger.text(
        rt,
        &format!("SELECT c.handle FROM customers c JOIN invoices i ON i.customer_id = c.id WHERE i.id = '{invoice}'"),
    )?;
    Ok(format!("customer-{}", handle.unwrap_or_default()))
}

fn invoice_state(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<Option<String>> {
    let id = placed["invoiceId"].as_str().unwrap_or_default();
    ledger.text(rt, &format!("SELECT status || ' ' || currency || ' ' || total::text FROM invoices WHERE id = '{id}'"))
}

#[test]
fn a_yen_product_is_charged_in_yen_and_its_webhook_pays_the_invoice_exactly() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    price_pod_in_yen(&rt, &ledger)?;
    let stripe = RecordingRelay::start(&rt, &tb)?;
    let env = [("STRIPE_API_BASE", stripe.base.clone())];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;

    let placed = bridge.checkout(&rt, &pod("yen"))?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &placed)?] };
    assert_eq!(placed["currency"], json!("jpy"), "{placed}");
    assert_eq!(placed["total"], json!("3000.00"), "{placed}");
    assert_eq!(invoice_state(&rt, &ledger, &placed)?.as_deref(), Some("issued jpy 3000.00"));
    let order = placed["orderId"].as_str().unwrap_or_default();
    assert_eq!(ledger.text(&rt, &format!("SELECT currency FROM orders WHERE id = '{order}'"))?.as_deref(), Some("jpy"));

    // Stripe is asked for ¥3,000: 3000 of yen's minor unit, in yen
    let sent = stripe.sent();
    assert!(sent.contains("line_items[0][price_data][currency]=jpy"), "{sent}");
    assert!(sent.contains(&format!("line_items[0][price_data][unit_amount]={YEN}&")), "{sent}");

    let status = bridge.deliver(&rt, &session_paid(&placed, "pi_currency_yen_paid", YEN, "jpy"))?;
    assert_eq!(status, 200);
    assert_eq!(invoice_state(&rt, &ledger, &placed)?.as_deref(), Some("paid jpy 3000.00"));
    assert_eq!(
        ledger
            .text(&rt, "SELECT amount::text || ' ' || currency FROM payments WHERE reference = 'pi_currency_yen_paid'")?
            .as_deref(),
        Some("3000.00 jpy")
    );
    Ok(())
}

#[test]
fn a_dollar_payment_on_a_yen_invoice_is_refused_into_an_audit_row_and_pays_nothing() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    price_pod_in_yen(&rt, &ledger)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let placed = bridge.checkout(&rt, &pod("dollars-on-yen"))?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &placed)?] };
    let invoice = placed["invoiceId"].as_str().unwrap_or_default();

    // $3,000.00 (300000 cents) is more than ¥3,000 in any sense, and still pays nothing here
    let dollars = payment_intent("payment_intent.succeeded", "pi_currency_usd_on_jpy", invoice, 300_000);
    assert_eq!(bridge.deliver(&rt, &dollars)?, 200);
    assert_eq!(invoice_state(&rt, &ledger, &placed)?.as_deref(), Some("issued jpy 3000.00"));
    assert_eq!(ledger.count(&rt, &format!("SELECT count(*) FROM payments WHERE invoice_id = '{invoice}'"))?, 0);
    assert_eq!(
        ledger
            .text(
                &rt,
                "SELECT detail->>'invoiceCurrency' || ' ' || (detail->>'paymentCurrency') || ' ' || (detail->>'invoice') \
                 FROM audit_log WHERE action = 'payment.currency_mismatch' AND entity_id = 'pi_currency_usd_on_jpy'",
            )?
            .as_deref(),
        Some(format!("jpy usd {invoice}").as_str())
    );
    let order = placed["orderId"].as_str().unwrap_or_default();
    assert_eq!(
        ledger.text(&rt, &format!("SELECT status FROM orders WHERE id = '{order}'"))?.as_deref(),
        Some("pending")
    );

    // the yen then pay it
    let yen = session_paid(&placed, "pi_currency_yen_after_usd", YEN, "jpy");
    assert_eq!(bridge.deliver(&rt, &yen)?, 200);
    assert_eq!(invoice_state(&rt, &ledger, &placed)?.as_deref(), Some("paid jpy 3000.00"));
    Ok(())
}

#[test]
fn an_order_mixing_currencies_is_refused_with_422_and_leaves_nothing() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    price_pod_in_yen(&rt, &ledger)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;

    // cloudpod-pro in yen, dns-hosting in dollars
    let mixed = json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("mixed"),
                       "domain": "mixed-currency.example", "addons": ["dns-hosting"]});
    let (status, answer) = bridge.post(&rt, "/v1/checkout", &mixed, None)?;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], json!("currency_mixed"), "{answer}");
    for table in ["orders", "invoices", "customers"] {
        assert_eq!(ledger.count(&rt, &format!("SELECT count(*) FROM {table}"))?, 0, "{table}");
    }

    // priced alike, the same order is placed, in yen
    rt.block_on(
        sqlx::query(
            "UPDATE product_prices SET currency = 'jpy', amount_cents = 250 WHERE cycle = 'monthly' \
             AND product_id = (SELECT id FROM products WHERE slug = 'dns-hosting')",
        )
        .execute(&ledger.pool),
    )?;
    let placed = bridge.checkout(&rt, &mixed)?;
    assert_eq!(invoice_state(&rt, &ledger, &placed)?.as_deref(), Some("issued jpy 3250.00"));
    Ok(())
}

#[test]
fn a_staff_refund_of_yen_asks_stripe_for_yen() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    price_pod_in_yen(&rt, &ledger)?;
    let stripe = RecordingRelay::start(&rt, &tb)?;
    let env = [("STRIPE_API_BASE", stripe.base.clone())];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;
    let token = admin_token(&rt, &ledger, Role::Billing)?;
    let placed = bridge.checkout(&rt, &pod("yen-refund"))?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &placed)?] };
    assert_eq!(bridge.deliver(&rt, &session_paid(&placed, "pi_currency_yen_refund", YEN, "jpy"))?, 200);

    let invoice = placed["invoiceId"].as_str().unwrap_or_default();
    let (status, answer) =
        bridge.post(&rt, &format!("/v1/admin/invoices/{invoice}/refund"), &json!({"amount": "1000"}), Some(&token))?;
    assert_eq!((status, answer["status"].as_str()), (200, Some("paid")), "{answer}");
    assert_eq!(
        ledger
            .text(&rt, "SELECT refunded_amount::text FROM payments WHERE reference = 'pi_currency_yen_refund'")?
            .as_deref(),
        Some("1000.00")
    );
    // ¥1,000 back is 1000 of yen's minor unit
    let sent = stripe.sent();
    let refund = sent.split("POST /v1/refunds").nth(1).unwrap_or_default();
    let fields: Vec<&str> = refund.split(['&', '\n']).map(|f| f.trim_end_matches('\r')).collect();
    assert!(fields.contains(&"amount=1000"), "{refund}");
    Ok(())
}

#[test]
fn a_yen_subscription_renews_in_yen() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    price_pod_in_yen(&rt, &ledger)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let placed = bridge.checkout(&rt, &pod("yen-renewal"))?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &placed)?] };
    assert_eq!(bridge.deliver(&rt, &session_paid(&placed, "pi_currency_yen_renewal", YEN, "jpy"))?, 200);
    let order = placed["orderId"].as_str().unwrap_or_default();
    let mut id = String::new();
    let made = support::eventually(std::time::Duration::from_secs(30), || {
        id = ledger
            .text(&rt, &format!("SELECT id::text FROM subscriptions WHERE order_id = '{order}'"))?
            .unwrap_or_default();
        Ok(!id.is_empty())
    })?;
    assert!(made, "the paid order made no subscription");

    // its first period starts now; at its end the renewal invoice is issued
    let start = chrono::Utc::now();
    let end = Cycle::Monthly.after(start);
    rt.block_on(async {
        let activated = subscriptions::activate(&ledger.pool, uuid::Uuid::parse_str(&id)?, start, end).await?;
        anyhow::ensure!(activated.is_some(), "subscription {id} was not pending activation");
        Ok(())
    })?;
    assert_eq!(rt.block_on(lifecycle::tick(&ledger.pool, end))?.renewal_invoices, 1);
    assert_eq!(
        ledger
            .text(
                &rt,
                &format!(
                    "SELECT status || ' ' || currency || ' ' || total::text FROM invoices \
                     WHERE subscription_id = '{id}' \
                     AND period_start = (SELECT current_period_end FROM subscriptions WHERE id = '{id}')"
                ),
            )?
            .as_deref(),
        Some("issued jpy 3000.00")
    );
    Ok(())
}

#[test]
fn a_dinar_price_is_placed_in_fils_or_refused_when_finer_than_the_ledger_keeps() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let price_pod_in_fils = |fils: i64| {
        rt.block_on(
            sqlx::query(
                "UPDATE product_prices SET currency = 'kwd', amount_cents = $1 WHERE cycle = 'monthly' \
                 AND purpose = 'new' AND product_id = (SELECT id FROM products WHERE slug = 'cloudpod-pro')",
            )
            .bind(fils)
            .execute(&ledger.pool),
        )
    };
    let stripe = RecordingRelay::start(&rt, &tb)?;
    let env = [("STRIPE_API_BASE", stripe.base.clone())];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;

    // 12.345 KWD has a third decimal place the ledger's amounts do not keep
    price_pod_in_fils(12_345)?;
    let (status, answer) = bridge.post(&rt, "/v1/checkout", &pod("fils-fine"), None)?;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("currency_amount_too_precise")), "{answer}");
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM orders")?, 0);

    // 12.340 KWD is 12340 fils at Stripe and 12.34 in the ledger
    price_pod_in_fils(12_340)?;
    let placed = bridge.checkout(&rt, &pod("fils"))?;
    assert_eq!(invoice_state(&rt, &ledger, &placed)?.as_deref(), Some("issued kwd 12.34"));
    let sent = stripe.sent();
    assert!(sent.contains("line_items[0][price_data][currency]=kwd"), "{sent}");
    assert!(sent.contains("line_items[0][price_data][unit_amount]=12340&"), "{sent}");
    Ok(())
}
