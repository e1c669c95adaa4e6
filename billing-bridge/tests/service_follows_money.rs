//! Service follows money: a refund of all that was paid (by staff, or reported by Stripe's
//! `charge.refunded`) cancels the subscription and deletes its Subscription object; a partial one
//! leaves service as it is; a subscription whose provisioning failed is refunded and what was
//! created is deleted; a disputed payment suspends its subscription (`Dispute`) until the dispute
//! is won, and a lost one ends it like a full refund; money paid on a void invoice goes back through
//! Stripe, once, and a voided invoice's Checkout Session is expired at Stripe. Real bridge, PostgreSQL, stripe-mock and the testbed's kube-apiserver; the
//! resource's status is written by the test as the operator writes it.

mod support;

use std::time::Duration;

use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{
    Bridge, Ledger, Namespaces, charge_refunded, email, eventually, session_completed, subscriptions_of, total_cents,
};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);

/// A paid purchase: the ledger subscription, its resource, the invoice, the PaymentIntent and the
/// cents paid.
struct Bought {
    sub: String,
    resource: Value,
    invoice: String,
    intent: String,
    cents: i64,
}

fn buy(rt: &Runtime, tb: &Testbed, ledger: &Ledger, bridge: &Bridge, product: &str) -> anyhow::Result<Bought> {
    let placed = bridge.checkout(rt, &json!({"product": product, "cycle": "monthly", "email": email("money")}))?;
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(rt, &session_completed(&placed, &intent))?, 200);
    let order = placed["orderId"].as_str().unwrap_or_default();
    let mut found = Vec::new();
    let mut sub = String::new();
    assert!(
        eventually(WAIT, || {
            sub = ledger
                .text(rt, &format!("SELECT id::text FROM subscriptions WHERE order_id = '{order}'"))?
                .unwrap_or_default();
            found = if sub.is_empty() { Vec::new() } else { subscriptions_of(tb, &sub)? };
            Ok(!found.is_empty())
        })?,
        "not fulfilled: {}",
        bridge.log_tail(30)
    );
    Ok(Bought {
        sub,
        resource: found.remove(0),
        invoice: placed["invoiceId"].as_str().unwrap_or_default().to_owned(),
        intent,
        cents: total_cents(&placed),
    })
}

fn namespace(bought: &Bought) -> String {
    bought.resource["metadata"]["namespace"].as_str().unwrap_or_default().to_owned()
}

fn status_of(rt: &Runtime, ledger: &Ledger, sub: &str) -> anyhow::Result<String> {
    Ok(ledger.text(rt, &format!("SELECT status FROM subscriptions WHERE id = '{sub}'"))?.unwrap_or_default())
}

fn invoice_status(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<String> {
    Ok(ledger.text(rt, &format!("SELECT status FROM invoices WHERE id = '{invoice}'"))?.unwrap_or_default())
}

fn deletes(rt: &Runtime, ledger: &Ledger, sub: &str) -> anyhow::Result<i64> {
    ledger.count(rt, &format!("SELECT count(*) FROM outbox WHERE subscription_id = '{sub}' AND action = 'delete'"))
}

fn audited(rt: &Runtime, ledger: &Ledger, action: &str, sub: &str) -> anyhow::Result<i64> {
    ledger.count(rt, &format!("SELECT count(*) FROM audit_log WHERE action = '{action}' AND entity_id = '{sub}'"))
}

/// Posts a staff refund of `body` for `invoice`: the status and the invoice's status or error code.
fn refund(rt: &Runtime, bridge: &Bridge, token: &str, invoice: &str, body: &Value) -> anyhow::Result<(u16, String)> {
    let (code, answer) = bridge.post(rt, &format!("/v1/admin/invoices/{invoice}/refund"), body, Some(token))?;
    let said = answer["error"]["code"].as_str().or_else(|| answer["status"].as_str()).unwrap_or_default();
    Ok((code, said.to_owned()))
}

/// The Subscription object's `spec.suspension`, once it shows `want` (null: none).
fn suspension_becomes(tb: &Testbed, sub: &str, want: &Value) -> anyhow::Result<bool> {
    eventually(WAIT, || {
        Ok(subscriptions_of(tb, sub)?.first().map(|o| o["spec"]["suspension"].clone()).as_ref() == Some(want))
    })
}

fn gone(tb: &Testbed, sub: &str) -> anyhow::Result<bool> {
    eventually(WAIT, || Ok(subscriptions_of(tb, sub)?.is_empty()))
}

#[test]
fn a_partial_refund_leaves_service_and_stripe_refunding_the_rest_ends_it_once() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let token = support::admin_token(&rt, &ledger, Role::Billing)?;
    let bought = buy(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace(&bought)] };

    // a part given back by staff: recorded, service as it was
    assert_eq!(refund(&rt, &bridge, &token, &bought.invoice, &json!({"amount": "1.00"}))?, (200, "paid".into()));
    assert_eq!(bridge.deliver(&rt, &charge_refunded(&bought.intent, bought.cents, 100))?, 200);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status_of(&rt, &ledger, &bought.sub)?, "pending_activation");
    assert_eq!(subscriptions_of(&tb, &bought.sub)?.len(), 1, "a partial refund removed the service");
    assert_eq!(deletes(&rt, &ledger, &bought.sub)?, 0);

    // Stripe reports the rest refunded (from its dashboard): the subscription ends, its object goes
    assert_eq!(bridge.deliver(&rt, &charge_refunded(&bought.intent, bought.cents, bought.cents))?, 200);
    assert_eq!(invoice_status(&rt, &ledger, &bought.invoice)?, "refunded");
    assert_eq!(status_of(&rt, &ledger, &bought.sub)?, "cancelled");
    assert!(gone(&tb, &bought.sub)?, "the Subscription object is still there: {}", bridge.log_tail(30));
    assert_eq!(audited(&rt, &ledger, "subscription.cancel", &bought.sub)?, 1);

    // the same news again, as another event: nothing twice
    assert_eq!(bridge.deliver(&rt, &charge_refunded(&bought.intent, bought.cents, bought.cents))?, 200);
    assert_eq!(deletes(&rt, &ledger, &bought.sub)?, 1);
    assert_eq!(audited(&rt, &ledger, "subscription.cancel", &bought.sub)?, 1);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_staff_refund_of_everything_cancels_and_removes_the_service() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let token = support::admin_token(&rt, &ledger, Role::Billing)?;
    let bought = buy(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace(&bought)] };

    assert_eq!(refund(&rt, &bridge, &token, &bought.invoice, &json!({}))?, (200, "refunded".into()));
    assert_eq!(status_of(&rt, &ledger, &bought.sub)?, "cancelled");
    assert!(gone(&tb, &bought.sub)?, "the Subscription object is still there: {}", bridge.log_tail(30));
    assert_eq!(deletes(&rt, &ledger, &bought.sub)?, 1);
    assert_eq!(audited(&rt, &ledger, "subscription.cancel", &bought.sub)?, 1);
    // Stripe's report of that refund changes nothing more
    assert_eq!(bridge.deliver(&rt, &charge_refunded(&bought.intent, bought.cents, bought.cents))?, 200);
    assert_eq!(deletes(&rt, &ledger, &bought.sub)?, 1);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_failed_provisioning_is_refunded_and_what_was_created_deleted() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let bought = buy(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace(&bought)] };

    support::report_status(&tb, &bought.resource, "Failed", false, "CloudPod sub-y: Unavailable: no template")?;
    assert!(eventually(WAIT, || Ok(invoice_status(&rt, &ledger, &bought.invoice)? == "refunded"))?);
    assert!(gone(&tb, &bought.sub)?, "the Subscription object is still there: {}", bridge.log_tail(30));
    assert_eq!(status_of(&rt, &ledger, &bought.sub)?, "provisioning_failed");
    assert_eq!(deletes(&rt, &ledger, &bought.sub)?, 1);
    assert_eq!(audited(&rt, &ledger, "subscription.delete", &bought.sub)?, 1);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_dispute_suspends_until_won_and_a_lost_one_ends_the_service_each_once() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let won = buy(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let lost = buy(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let late = buy(&rt, &tb, &ledger, &bridge, "cloudpod-mini")?;
    let _cleanup = Namespaces { tb: &tb, names: [&won, &lost, &late].iter().map(|b| namespace(b)).collect() };
    let held = json!({"suspended": true, "reason": "Dispute"});

    // opened (twice, as two events): suspended for the dispute, once
    let id = format!("dp_{}", uuid::Uuid::new_v4().simple());
    let opened = support::dispute("created", &id, &won.intent, won.cents, "needs_response");
    assert_eq!(bridge.deliver(&rt, &opened)?, 200);
    assert!(suspension_becomes(&tb, &won.sub, &held)?, "not suspended: {}", bridge.log_tail(30));
    assert_eq!(bridge.deliver(&rt, &support::dispute("created", &id, &won.intent, won.cents, "needs_response"))?, 200);
    assert_eq!(audited(&rt, &ledger, "subscription.suspend", &won.sub)?, 1);
    // won: lifted, and a late copy of the opening does not suspend again
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", &id, &won.intent, won.cents, "won"))?, 200);
    assert!(suspension_becomes(&tb, &won.sub, &Value::Null)?, "not lifted: {}", bridge.log_tail(30));
    assert_eq!(bridge.deliver(&rt, &support::dispute("created", &id, &won.intent, won.cents, "needs_response"))?, 200);
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", &id, &won.intent, won.cents, "won"))?, 200);
    std::thread::sleep(Duration::from_secs(2));
    assert!(suspension_becomes(&tb, &won.sub, &Value::Null)?);
    assert_eq!(audited(&rt, &ledger, "subscription.suspend", &won.sub)?, 1);
    assert_eq!(audited(&rt, &ledger, "subscription.unsuspend", &won.sub)?, 1);
    assert_eq!(status_of(&rt, &ledger, &won.sub)?, "pending_activation");

    // lost: cancelled and removed like a full refund, once
    let id = format!("dp_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(
        bridge.deliver(&rt, &support::dispute("created", &id, &lost.intent, lost.cents, "needs_response"))?,
        200
    );
    assert!(suspension_becomes(&tb, &lost.sub, &held)?);
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", &id, &lost.intent, lost.cents, "lost"))?, 200);
    assert_eq!(status_of(&rt, &ledger, &lost.sub)?, "cancelled");
    assert!(gone(&tb, &lost.sub)?, "the Subscription object is still there: {}", bridge.log_tail(30));
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", &id, &lost.intent, lost.cents, "lost"))?, 200);
    assert_eq!(deletes(&rt, &ledger, &lost.sub)?, 1);
    assert_eq!(audited(&rt, &ledger, "subscription.cancel", &lost.sub)?, 1);

    // closed (won) before Stripe's news of its opening arrives: never suspended
    let id = format!("dp_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", &id, &late.intent, late.cents, "won"))?, 200);
    assert_eq!(
        bridge.deliver(&rt, &support::dispute("created", &id, &late.intent, late.cents, "needs_response"))?,
        200
    );
    assert_eq!(audited(&rt, &ledger, "subscription.suspend", &late.sub)?, 0);
    assert_eq!(
        ledger.count(
            &rt,
            &format!("SELECT count(*) FROM subscriptions WHERE id = '{}' AND suspension_reason IS NULL", late.sub)
        )?,
        1
    );
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn money_paid_on_a_void_invoice_is_refunded_once() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("void")}))?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default().to_owned();
    let expired = support::event(
        "checkout.session.expired",
        json!({
            "id": placed["checkoutSessionId"], "object": "checkout.session", "mode": "payment", "status": "expired",
            "payment_status": "unpaid", "amount_total": total_cents(&placed), "currency": "usd",
            "client_reference_id": placed["orderId"],
            "metadata": {"order_id": placed["orderId"], "invoice_id": placed["invoiceId"]},
        }),
    );
    assert_eq!(bridge.deliver(&rt, &expired)?, 200);
    assert_eq!(invoice_status(&rt, &ledger, &invoice)?, "void");

    // paid on the expired session after all: given back in full through stripe-mock
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(&rt, &session_completed(&placed, &intent))?, 200);
    let given_back = || {
        ledger.text(
            &rt,
            &format!(
                "SELECT status || ' ' || amount || ' ' || refunded_amount FROM payments WHERE reference = '{intent}'"
            ),
        )
    };
    let cents = total_cents(&placed);
    let want = format!("refunded {}.{:02} {}.{:02}", cents / 100, cents % 100, cents / 100, cents % 100);
    assert!(
        eventually(WAIT, || Ok(given_back()?.as_deref() == Some(want.as_str())))?,
        "not refunded: {:?} {}",
        given_back()?,
        bridge.log_tail(30)
    );
    let refunds =
        format!("SELECT count(*) FROM audit_log WHERE action = 'refund.on_void_invoice' AND entity_id = '{intent}'");
    assert_eq!(ledger.count(&rt, &refunds)?, 1);
    // Stripe's news of the same payment again: nothing refunded twice
    let again = support::payment_intent("payment_intent.succeeded", &intent, &invoice, cents);
    assert_eq!(bridge.deliver(&rt, &again)?, 200);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ledger.count(&rt, &refunds)?, 1);
    assert_eq!(given_back()?.as_deref(), Some(want.as_str()));
    assert_eq!(invoice_status(&rt, &ledger, &invoice)?, "void");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn voiding_an_invoice_expires_its_checkout_session_at_stripe() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, std::path::Path::new(tb.get("KUBECONFIG")?))?;
    let token = support::admin_token(&rt, &ledger, Role::Billing)?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("voided")}))?;
    let (invoice, order) =
        (placed["invoiceId"].as_str().unwrap_or_default(), placed["orderId"].as_str().unwrap_or_default());
    let session = placed["checkoutSessionId"].as_str().unwrap_or_default();
    assert!(session.starts_with("cs_"), "no session: {placed}");

    let (code, answer) = bridge.post(&rt, &format!("/v1/admin/invoices/{invoice}/void"), &json!({}), Some(&token))?;
    assert_eq!((code, answer["status"].as_str()), (200, Some("void")), "{answer}");
    // stripe-mock answered the expiry: the audit row names the session and no error
    let expired = ledger.text(
        &rt,
        &format!(
            "SELECT detail::text FROM audit_log WHERE action = 'checkout.session.expire' AND entity_id = '{order}' \
             AND detail->>'session' = '{session}' AND detail->>'error' IS NULL"
        ),
    )?;
    assert!(expired.is_some(), "the session was not expired: {}", bridge.log_tail(30));
    ledger.drop_database(&rt);
    Ok(())
}
