//! What staff do to invoices through the admin API, against a bridge that works as the runtime
//! role: mark-paid records only the remaining balance and refuses drafts, void and paid invoices;
//! refunds may be partial, span payments newest first (Stripe's through stripe-mock), never exceed
//! what was paid, and a refused one writes nothing.

mod support;

use std::time::Duration;

use mpanel_billing_bridge::ledger::invoices::{self, NewLine, Purpose};
use mpanel_billing_bridge::ledger::orders::{self, Item};
use mpanel_billing_bridge::ledger::tokens::{self, Role};
use mpanel_billing_bridge::ledger::{catalog, customers};
use mpanel_billing_bridge::money;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{
    Bridge, Ledger, Namespaces, RUNTIME_ROLE, charge_refunded, email, eventually, session_completed, subscriptions_of,
};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);

/// The name of the staff's token: the actor of what staff do in the audit log.
const STAFF: &str = "billing-staff";

/// A bridge working as the runtime role, and a billing token.
fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger) -> anyhow::Result<(Bridge, String)> {
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    let bridge = Bridge::start_with_env(rt, tb, ledger, &kubeconfig, &ledger.runtime_env(rt, tb)?)?;
    let token = rt.block_on(tokens::create(&ledger.pool, STAFF, Role::Billing))?;
    Ok((bridge, token))
}

/// The invoice's payments, oldest first: `provider amount refunded status`.
fn payments(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<Vec<String>> {
    Ok(ledger
        .text(
            rt,
            &format!(
                "SELECT string_agg(provider || ' ' || amount || ' ' || refunded_amount || ' ' || status, ', ' ORDER BY created_at) \
                 FROM payments WHERE invoice_id = '{invoice}'"
            ),
        )?
        .map(|rows| rows.split(", ").map(str::to_owned).collect())
        .unwrap_or_default())
}

fn status(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<Option<String>> {
    ledger.text(rt, &format!("SELECT status FROM invoices WHERE id = '{invoice}'"))
}

/// Everything a staff action could have written about `invoice`, to compare before and after: its
/// payments, its status and what staff did (the bridge's own audit rows come and go meanwhile).
fn written(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<(Vec<String>, Option<String>, i64)> {
    Ok((
        payments(rt, ledger, invoice)?,
        status(rt, ledger, invoice)?,
        ledger.count(rt, &format!("SELECT count(*) FROM audit_log WHERE actor = '{STAFF}'"))?,
    ))
}

/// Posts `action` for `invoice` with `body`; the status and the error code or the invoice's status.
fn act(
    bridge: &Bridge,
    rt: &Runtime,
    token: &str,
    invoice: &str,
    action: &str,
    body: &Value,
) -> anyhow::Result<(u16, String)> {
    let (code, answer) = bridge.post(rt, &format!("/v1/admin/invoices/{invoice}/{action}"), body, Some(token))?;
    let said = answer["error"]["code"].as_str().or_else(|| answer["status"].as_str()).unwrap_or_default();
    Ok((code, said.to_owned()))
}

/// A Stripe payment of `cents` towards `invoice` (less than it may cost).
fn stripe_pays(bridge: &Bridge, rt: &Runtime, invoice: &str, cents: i64) -> anyhow::Result<String> {
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    let event = support::payment_intent("payment_intent.succeeded", &intent, invoice, cents);
    anyhow::ensure!(bridge.deliver(rt, &event)? == 200, "the webhook refused the payment");
    Ok(intent)
}

/// A customer's namespace, removed at the end of the test.
fn namespace_of(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<String> {
    let handle = ledger.text(
        rt,
        &format!("SELECT c.handle FROM customers c JOIN invoices i ON i.customer_id = c.id WHERE i.id = '{invoice}'"),
    )?;
    Ok(format!("customer-{}", handle.unwrap_or_default()))
}

/// A draft invoice of 9.99 for a new order, made as another program would.
fn draft(rt: &Runtime, ledger: &Ledger) -> anyhow::Result<String> {
    rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let mut tx = ledger.pool.begin().await?;
        let customer = customers::find_or_create(&mut *tx, tenant, &email("draft")).await?;
        let product = catalog::by_slug(&mut *tx, tenant, "cloudpod-mini").await?;
        let item = Item {
            position: 1,
            product_id: product.id,
            purpose: "new".into(),
            cycle: "monthly".into(),
            quantity: 1,
            unit_cents: 999,
            description: "Mini".into(),
        };
        let order = orders::create(&mut tx, tenant, customer.id, "monthly", "usd", None, &[item]).await?;
        let line = NewLine {
            kind: "item",
            description: "CloudPod Mini".into(),
            product_id: Some(product.id),
            quantity: 1,
            unit_amount: money::from_cents(999),
        };
        let id = invoices::create_draft(&mut tx, tenant, customer.id, "usd", Purpose::Order(order.id), &[line]).await?;
        tx.commit().await?;
        anyhow::Ok(id.to_string())
    })
}

#[test]
fn mark_paid_records_only_the_rest_and_refuses_drafts_void_and_paid_invoices() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let (bridge, token) = start(&rt, &tb, &ledger)?;
    let mut namespaces = Namespaces { tb: &tb, names: Vec::new() };

    // 5.00 of 19.99 came through Stripe; staff record the rest
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("rest")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    let number = placed["invoiceNumber"].as_str().unwrap_or_default().to_owned();
    namespaces.names.push(namespace_of(&rt, &ledger, &invoice)?);
    stripe_pays(&bridge, &rt, &invoice, 500)?;
    assert_eq!(status(&rt, &ledger, &invoice)?.as_deref(), Some("issued"));
    assert_eq!(act(&bridge, &rt, &token, &number, "mark-paid", &json!({}))?, (200, "paid".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 5.00 0.00 succeeded", "manual 14.99 0.00 succeeded"]);
    assert_eq!(
        ledger.count(
            &rt,
            &format!("SELECT count(*) FROM audit_log WHERE action = 'invoice.mark-paid' AND entity_id = '{number}'")
        )?,
        1
    );

    // paid already: refused, nothing written
    let before = written(&rt, &ledger, &invoice)?;
    assert_eq!(act(&bridge, &rt, &token, &number, "mark-paid", &json!({}))?, (409, "invoice_already_paid".into()));
    assert_eq!(written(&rt, &ledger, &invoice)?, before);

    // void: refused, nothing written
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("void")}))?;
    let voided = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(act(&bridge, &rt, &token, &voided, "void", &json!({}))?, (200, "void".into()));
    let before = written(&rt, &ledger, &voided)?;
    assert_eq!(act(&bridge, &rt, &token, &voided, "mark-paid", &json!({}))?, (409, "invoice_void".into()));
    assert_eq!(written(&rt, &ledger, &voided)?, before);
    assert!(before.0.is_empty(), "{before:?}");

    // a draft: refused, nothing written; staff may void it
    let drafted = draft(&rt, &ledger)?;
    let before = written(&rt, &ledger, &drafted)?;
    assert_eq!(act(&bridge, &rt, &token, &drafted, "mark-paid", &json!({}))?, (409, "invoice_draft".into()));
    assert_eq!(written(&rt, &ledger, &drafted)?, before);
    assert_eq!(act(&bridge, &rt, &token, &drafted, "void", &json!({}))?, (200, "void".into()));
    assert_eq!(
        ledger.text(
            &rt,
            &format!("SELECT status || ' ' || (number IS NULL)::text FROM invoices WHERE id = '{drafted}'")
        )?,
        Some("void true".into())
    );
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn refunds_are_partial_newest_payment_first_and_never_more_than_was_paid() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let (bridge, token) = start(&rt, &tb, &ledger)?;
    let mut namespaces = Namespaces { tb: &tb, names: Vec::new() };

    // 10.00 through Stripe, then 9.99 by hand
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("split")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    namespaces.names.push(namespace_of(&rt, &ledger, &invoice)?);
    let intent = stripe_pays(&bridge, &rt, &invoice, 1000)?;
    assert_eq!(act(&bridge, &rt, &token, &invoice, "mark-paid", &json!({}))?, (200, "paid".into()));

    // 5.00 back: from the newest payment, by hand
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": "5.00"}))?, (200, "paid".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 10.00 0.00 succeeded", "manual 9.99 5.00 succeeded"]);
    // 6.00 more: the rest of the manual payment, then 1.01 of the Stripe one through Stripe
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": "6.00"}))?, (200, "paid".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 10.00 1.01 succeeded", "manual 9.99 9.99 refunded"]);
    let steps = ledger.text(
        &rt,
        "SELECT detail::text FROM audit_log WHERE action = 'refund' AND (detail->>'amount')::numeric = 6.00",
    )?;
    let steps: Value = serde_json::from_str(steps.as_deref().unwrap_or("null"))?;
    assert_eq!(steps["payments"][0]["amount"], json!("4.99"), "{steps}");
    assert_eq!(steps["payments"][0]["stripeRefund"], Value::Null, "{steps}");
    assert_eq!(steps["payments"][1]["payment"], json!(intent), "{steps}");
    assert!(steps["payments"][1]["stripeRefund"].as_str().is_some_and(|r| r.starts_with("re_")), "{steps}");

    // Stripe reports the refund it made (a total so far): nothing is counted twice
    assert_eq!(bridge.deliver(&rt, &charge_refunded(&intent, 1000, 101))?, 200);
    assert_eq!(payments(&rt, &ledger, &invoice)?[0], "stripe 10.00 1.01 succeeded");

    // more than is left (8.99), or not an amount: refused, nothing written
    let before = written(&rt, &ledger, &invoice)?;
    assert_eq!(
        act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": "9.00"}))?,
        (422, "refund_exceeds_paid".into())
    );
    for amount in ["abc", "0", "-1.00", "1.005", ""] {
        assert_eq!(
            act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": amount}))?,
            (422, "invalid_amount".into()),
            "{amount:?}"
        );
    }
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": 5}))?.0, 422);
    assert_eq!(written(&rt, &ledger, &invoice)?, before);

    // the rest: the invoice is refunded, every payment given back
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({}))?, (200, "refunded".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 10.00 10.00 refunded", "manual 9.99 9.99 refunded"]);
    let before = written(&rt, &ledger, &invoice)?;
    assert_eq!(
        act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": "0.01"}))?,
        (409, "invoice_not_paid".into())
    );
    assert_eq!(written(&rt, &ledger, &invoice)?, before);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_bridge_working_as_the_runtime_role_sells_fulfils_and_refunds_all_payments_at_once() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let (bridge, token) = start(&rt, &tb, &ledger)?;
    let mut namespaces = Namespaces { tb: &tb, names: Vec::new() };

    // a checkout paid through Stripe becomes a subscription and its resource
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("sold")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    namespaces.names.push(namespace_of(&rt, &ledger, &invoice)?);
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(&rt, &session_completed(&placed, &intent))?, 200);
    let mut sub = String::new();
    assert!(
        eventually(WAIT, || {
            sub = ledger
                .text(
                    &rt,
                    &format!(
                        "SELECT subscription_id::text FROM invoices WHERE id = '{invoice}' AND fulfilled_at IS NOT NULL"
                    ),
                )?
                .unwrap_or_default();
            Ok(!sub.is_empty() && !subscriptions_of(&tb, &sub)?.is_empty())
        })?,
        "not fulfilled: {}",
        bridge.log_tail(30)
    );
    // all of it done by the bridge as the runtime role
    assert!(
        ledger.count(
            &rt,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = '{RUNTIME_ROLE}'")
        )? > 0
    );

    // a partial refund, then the rest
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({"amount": "2.50"}))?, (200, "paid".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 9.99 2.50 succeeded"]);
    assert_eq!(bridge.deliver(&rt, &charge_refunded(&intent, 999, 250))?, 200);
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 9.99 2.50 succeeded"]);
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({}))?, (200, "refunded".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 9.99 9.99 refunded"]);

    // an invoice paid twice over (4.00 through Stripe, 5.99 by hand): one full refund takes both
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("both")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    namespaces.names.push(namespace_of(&rt, &ledger, &invoice)?);
    stripe_pays(&bridge, &rt, &invoice, 400)?;
    assert_eq!(act(&bridge, &rt, &token, &invoice, "mark-paid", &json!({}))?, (200, "paid".into()));
    assert_eq!(act(&bridge, &rt, &token, &invoice, "refund", &json!({}))?, (200, "refunded".into()));
    assert_eq!(payments(&rt, &ledger, &invoice)?, ["stripe 4.00 4.00 refunded", "manual 5.99 5.99 refunded"]);
    let number = ledger.text(&rt, &format!("SELECT number FROM invoices WHERE id = '{invoice}'"))?.unwrap_or_default();
    assert_eq!(
        ledger.text(
            &rt,
            &format!(
                "SELECT detail->>'amount' || ' ' || jsonb_array_length(detail->'payments') FROM audit_log \
                      WHERE action = 'refund' AND entity_id = '{number}'"
            )
        )?,
        Some("9.99 2".into())
    );
    ledger.drop_database(&rt);
    Ok(())
}
