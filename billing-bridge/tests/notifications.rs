//! Customer notifications by email, through the testbed's Postfix: every notification reaches the
//! capture maildir (`MAIL_CAPTURE_DIR`) once per event, addressed to the customer with the subject
//! of its kind; a repeated webhook mails nothing twice; mail waits while the SMTP server is down and
//! none is lost; two bridge replicas send each mail once; no mail carries the generated mailbox
//! password. Real bridge, PostgreSQL, stripe-mock, the testbed's kube-apiserver and Postfix.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_billing_bridge::ledger::{Cycle, payments};
use mpanel_billing_bridge::lifecycle;
use mpanel_tests::{Testbed, metric_sum};
use serde_json::{Value, json};
use support::capture::{Capture, Mail};
use support::{
    Bridge, Ledger, Namespaces, email, eventually, payment_intent, report_status, session_completed, subscriptions_of,
    total_cents,
};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(40);

fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger, smtp: &str) -> anyhow::Result<Bridge> {
    Bridge::start_with_env(rt, tb, ledger, Path::new(tb.get("KUBECONFIG")?), &[("NOTIFY_SMTP_ADDR", smtp.to_owned())])
}

/// A paid order: the checkout answer and its Subscription resource.
struct Bought {
    placed: Value,
    resource: Value,
}

fn buy(rt: &Runtime, tb: &Testbed, ledger: &Ledger, bridge: &Bridge, body: &Value) -> anyhow::Result<Bought> {
    let placed = bridge.checkout(rt, body)?;
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(rt, &session_completed(&placed, &intent))?, 200);
    let order = placed["orderId"].as_str().unwrap_or_default().to_owned();
    let (mut sub, mut found) = (String::new(), Vec::new());
    let made = eventually(WAIT, || {
        sub = ledger
            .text(rt, &format!("SELECT id::text FROM subscriptions WHERE order_id = '{order}'"))?
            .unwrap_or_default();
        found = if sub.is_empty() { Vec::new() } else { subscriptions_of(tb, &sub)? };
        Ok(!found.is_empty())
    })?;
    assert!(made, "the paid order made no Subscription resource: {}", bridge.log_tail(30));
    Ok(Bought { placed, resource: found.remove(0) })
}

fn namespace_of(bought: &Bought) -> String {
    bought.resource["metadata"]["namespace"].as_str().unwrap_or_default().to_owned()
}

fn invoice_number(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<String> {
    let id = placed["invoiceId"].as_str().unwrap_or_default();
    Ok(ledger.text(rt, &format!("SELECT number FROM invoices WHERE id = '{id}'"))?.unwrap_or_default())
}

#[test]
fn each_event_mails_its_customer_once_and_a_repeated_webhook_mails_nothing_again() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let capture = Capture::new(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, tb.get("NOTIFY_SMTP_ADDR")?)?;
    let token = support::admin_token(&rt, &ledger, Role::Billing)?;
    let customer = email("notify");

    // a card declined: the customer is told once, however often Stripe says so
    let placed = bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let number = invoice_number(&rt, &ledger, &placed)?;
    let invoice = placed["invoiceId"].as_str().unwrap_or_default();
    let cents = total_cents(&placed);
    let declined_intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    let declined = payment_intent("payment_intent.payment_failed", &declined_intent, invoice, cents);
    assert_eq!(bridge.deliver(&rt, &declined)?, 200);
    assert_eq!(bridge.deliver(&rt, &declined)?, 200);
    let again = payment_intent("payment_intent.payment_failed", &declined_intent, invoice, cents);
    assert_eq!(bridge.deliver(&rt, &again)?, 200);
    let failed = format!("MigraHosting: your payment for invoice {number} failed");
    assert_eq!(capture.wait_for(&customer, 1, &bridge)?, vec![failed.clone()]);

    // paid: a receipt, once, though the webhook comes twice
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    let paid = session_completed(&placed, &intent);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    let receipt = format!("MigraHosting: receipt for invoice {number}");
    capture.wait_for(&customer, 2, &bridge)?;
    let order = placed["orderId"].as_str().unwrap_or_default();
    let mut namespace = String::new();
    let fulfilled = eventually(WAIT, || {
        namespace = ledger
            .text(&rt, &format!("SELECT namespace FROM subscriptions WHERE order_id = '{order}'"))?
            .unwrap_or_default();
        Ok(!namespace.is_empty())
    })?;
    assert!(fulfilled, "the paid order was not fulfilled: {}", bridge.log_tail(20));
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace] };

    // a dispute suspends and, won, lifts the suspension: one mail each, the opening told twice
    let opened = support::dispute("created", "dp_notify_1", &intent, cents, "needs_response");
    assert_eq!(bridge.deliver(&rt, &opened)?, 200);
    assert_eq!(
        bridge.deliver(&rt, &support::dispute("created", "dp_notify_1", &intent, cents, "needs_response"))?,
        200
    );
    capture.wait_for(&customer, 3, &bridge)?;
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", "dp_notify_1", &intent, cents, "won"))?, 200);
    capture.wait_for(&customer, 4, &bridge)?;

    // all refunded by staff: the service ends, told once
    let (status, _) = bridge.post(&rt, &format!("/v1/admin/invoices/{invoice}/refund"), &json!({}), Some(&token))?;
    assert_eq!(status, 200);
    assert_eq!(bridge.deliver(&rt, &support::charge_refunded(&intent, cents, cents))?, 200);
    capture.wait_for(&customer, 5, &bridge)?;
    // nothing more comes: each event was mailed once
    std::thread::sleep(Duration::from_secs(3));
    let mut want = vec![
        failed,
        receipt,
        "MigraHosting: your CloudPod Mini is suspended".to_owned(),
        "MigraHosting: your CloudPod Mini runs again".to_owned(),
        "MigraHosting: your CloudPod Mini is cancelled".to_owned(),
    ];
    want.sort();
    assert_eq!(capture.subjects(&customer)?, want);

    let mails = capture.to(&customer)?;
    for mail in &mails {
        assert_eq!(mail.header("to"), customer, "{mail:?}");
        assert!(mail.header("from").contains("billing@migrahosting.com"), "{mail:?}");
        // a receipt is the text and HTML alternatives with the invoice's PDF beside them
        let is_receipt = mail.header("subject").contains("receipt");
        let mime = if is_receipt { "multipart/mixed" } else { "multipart/alternative" };
        assert!(mail.header("content-type").starts_with(mime), "{mail:?}");
        assert!(mail.text.contains("Content-Type: multipart/alternative"), "{mail:?}");
        assert!(mail.text.contains("text/html") && mail.text.contains("support@migrahosting.com"), "{mail:?}");
    }
    let suspended = mails.iter().find(|m| m.header("subject").ends_with("is suspended"));
    assert!(suspended.is_some_and(|m| m.text.contains("disputed with your bank")), "{suspended:?}");
    let line = ledger
        .text(&rt, &format!("SELECT description FROM invoice_lines WHERE invoice_id = '{invoice}'"))?
        .unwrap_or_default();
    let receipt = mails.iter().find(|m| m.header("subject").contains("receipt"));
    assert!(
        receipt.is_some_and(|m| m.text.contains(&format!("{line}: 9.99 USD")) && m.text.contains("Total: 9.99 USD")),
        "{receipt:?}"
    );
    // the ledger's record: every row sent, in one attempt
    let recorded = eventually(WAIT, || {
        Ok(ledger.count(&rt, "SELECT count(*) FROM notifications WHERE sent_at IS NOT NULL AND attempts = 1")? == 5)
    })?;
    assert!(recorded, "not every notification is recorded sent in one attempt: {}", bridge.log_tail(20));
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM notifications")?, 5);
    capture.forget(&customer)?;
    ledger.drop_database(&rt);
    Ok(())
}

/// Activated as the activation gate does it, now; the end of its first period.
fn activate(rt: &Runtime, ledger: &Ledger, bought: &Bought) -> anyhow::Result<DateTime<Utc>> {
    let id = support::subscription_of_order(rt, ledger, &bought.placed)?;
    support::activate_at(rt, ledger, id, Cycle::Monthly, Utc::now())
}

fn tick(rt: &Runtime, ledger: &Ledger, at: DateTime<Utc>) -> anyhow::Result<lifecycle::Tick> {
    Ok(rt.block_on(lifecycle::tick(&ledger.pool, at))?)
}

#[test]
fn the_lifecycle_mails_suspension_resumption_and_the_end_of_service() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let capture = Capture::new(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, tb.get("NOTIFY_SMTP_ADDR")?)?;
    let token = support::admin_token(&rt, &ledger, Role::Billing)?;
    let (late, gone) = (email("notify-late"), email("notify-gone"));
    let body = |customer: &str| json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer});
    let late_buy = buy(&rt, &tb, &ledger, &bridge, &body(&late))?;
    let gone_buy = buy(&rt, &tb, &ledger, &bridge, &body(&gone))?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace_of(&late_buy), namespace_of(&gone_buy)] };
    let end = activate(&rt, &ledger, &late_buy)?;
    activate(&rt, &ledger, &gone_buy)?;

    // the renewal invoice is mailed when issued; unpaid after its due date the subscription is past
    // due, past the grace period suspended (Overdue), each told once; paid, it runs again
    assert_eq!(tick(&rt, &ledger, end - chrono::Duration::days(6))?.renewal_invoices, 2);
    assert_eq!(tick(&rt, &ledger, end + chrono::Duration::days(1))?.past_due, 2);
    assert_eq!(tick(&rt, &ledger, end + chrono::Duration::days(2))?.past_due, 0);
    assert_eq!(tick(&rt, &ledger, end + chrono::Duration::days(8))?.suspended, 2);
    capture.wait_for(&late, 4, &bridge)?;
    let renewal: uuid::Uuid = rt.block_on(
        sqlx::query_scalar(
            "SELECT i.id FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id \
             WHERE s.order_id = $1::uuid AND i.period_start IS NOT NULL",
        )
        .bind(late_buy.placed["orderId"].as_str().unwrap_or_default())
        .fetch_one(&ledger.pool),
    )?;
    rt.block_on(async {
        let mut tx = ledger.pool.begin().await?;
        payments::pay_rest_by_hand(&mut tx, renewal).await?;
        tx.commit().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    capture.wait_for(&late, 6, &bridge)?;
    // cancelled by staff: the end of service
    let sub = ledger
        .text(
            &rt,
            &format!(
                "SELECT id::text FROM subscriptions WHERE order_id = '{}'",
                late_buy.placed["orderId"].as_str().unwrap_or_default()
            ),
        )?
        .unwrap_or_default();
    let (status, answer) = bridge.post(
        &rt,
        &format!("/v1/admin/subscriptions/{sub}/cancel"),
        &json!({"atPeriodEnd": false}),
        Some(&token),
    )?;
    assert_eq!(status, 200, "{answer}");
    let subjects = capture.wait_for(&late, 7, &bridge)?;
    let first = invoice_number(&rt, &ledger, &late_buy.placed)?;
    let second = ledger.text(&rt, &format!("SELECT number FROM invoices WHERE id = '{renewal}'"))?.unwrap_or_default();
    let mut want = vec![
        format!("MigraHosting: receipt for invoice {first}"),
        format!("MigraHosting: receipt for invoice {second}"),
        format!("MigraHosting: invoice {second} for your CloudPod Mini"),
        format!("MigraHosting: invoice {second} is past due"),
        "MigraHosting: your CloudPod Mini is suspended".to_owned(),
        "MigraHosting: your CloudPod Mini runs again".to_owned(),
        "MigraHosting: your CloudPod Mini is cancelled".to_owned(),
    ];
    want.sort();
    assert_eq!(subjects, want);
    let mails = capture.to(&late)?;
    let suspended = mails.iter().find(|m| m.header("subject").ends_with("is suspended"));
    assert!(suspended.is_some_and(|m| m.text.contains("unpaid past its due date")), "{suspended:?}");
    let issued = mails.iter().find(|m| m.header("subject").ends_with("for your CloudPod Mini"));
    let due = (end.date_naive()).format("%Y-%m-%d").to_string();
    assert!(issued.is_some_and(|m| m.text.contains(&format!("due on {due}")) && m.text.contains("9.99")), "{issued:?}");
    let attached = format!("filename=\"{second}.pdf\"");
    assert!(issued.is_some_and(|m| m.text.contains(&attached)), "the invoice's PDF is not attached: {issued:?}");

    // never paid, past the termination period: cancelled by the lifecycle, told once
    assert_eq!(tick(&rt, &ledger, end + chrono::Duration::days(31))?.cancelled, 1);
    assert_eq!(tick(&rt, &ledger, end + chrono::Duration::days(32))?.cancelled, 0);
    let subjects = capture.wait_for(&gone, 5, &bridge)?;
    assert!(subjects.contains(&"MigraHosting: your CloudPod Mini is cancelled".to_owned()), "{subjects:?}");
    let mails = capture.to(&gone)?;
    let cancelled = mails.iter().find(|m| m.header("subject").ends_with("is cancelled"));
    assert!(cancelled.is_some_and(|m| m.text.contains("stayed unpaid")), "{cancelled:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(capture.to(&late)?.len(), 7);
    assert_eq!(capture.to(&gone)?.len(), 5);
    capture.forget(&late)?;
    capture.forget(&gone)?;
    ledger.drop_database(&rt);
    Ok(())
}

/// Buys a CloudPod Mini (refunded on failure or not), reports its provisioning failed, and
/// returns the failure's mail, after checking it is the only one besides the receipt.
fn mail_of_failed_provisioning(who: &str, refunded: bool) -> anyhow::Result<Mail> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let capture = Capture::new(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(
        sqlx::query("UPDATE products SET refund_on_failure = $1 WHERE slug = 'cloudpod-mini'")
            .bind(refunded)
            .execute(&ledger.pool),
    )?;
    let bridge = start(&rt, &tb, &ledger, tb.get("NOTIFY_SMTP_ADDR")?)?;
    let customer = email(who);
    let bought =
        buy(&rt, &tb, &ledger, &bridge, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace_of(&bought)] };
    report_status(&tb, &bought.resource, "Failed", false, "no IP address left in pool public-v4")?;
    let subjects = capture.wait_for(&customer, 2, &bridge)?;
    assert!(subjects.contains(&"MigraHosting: we could not set up your CloudPod Mini".to_owned()), "{subjects:?}");
    // the bridge keeps observing the failed subscription; nothing is mailed again
    std::thread::sleep(Duration::from_secs(3));
    let mails = capture.to(&customer)?;
    assert_eq!(mails.len(), 2, "{:?}", capture.subjects(&customer)?);
    capture.forget(&customer)?;
    ledger.drop_database(&rt);
    mails.into_iter().find(|m| m.header("subject").contains("could not set up")).context("no failure mail")
}

#[test]
fn a_failed_provisioning_mails_what_was_refunded() -> anyhow::Result<()> {
    let mail = mail_of_failed_provisioning("notify-failed", true)?;
    assert!(mail.text.contains("We have refunded 9.99 USD"), "{}", mail.text);
    Ok(())
}

#[test]
fn a_failed_provisioning_of_a_product_that_does_not_refund_says_staff_will_be_in_touch() -> anyhow::Result<()> {
    let mail = mail_of_failed_provisioning("notify-failed-kept", false)?;
    assert!(mail.text.contains("Our staff will contact you") && !mail.text.contains("refunded"), "{}", mail.text);
    Ok(())
}

#[test]
fn mail_waits_while_the_smtp_server_is_down_and_none_is_lost() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let capture = Capture::new(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    // nobody listens on this port: connections are refused
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut bridge = start(&rt, &tb, &ledger, &closed.to_string())?;
    let customer = email("notify-down");
    let bought =
        buy(&rt, &tb, &ledger, &bridge, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace_of(&bought)] };
    let retried = eventually(WAIT, || {
        Ok(ledger.count(
            &rt,
            "SELECT count(*) FROM notifications WHERE sent_at IS NULL AND failed_at IS NULL AND attempts >= 2 \
             AND last_error LIKE 'SMTP:%'",
        )? == 1)
    })?;
    assert!(retried, "the receipt was not retried: {}", bridge.log_tail(20));
    assert!(capture.to(&customer)?.is_empty());
    let retries = metric_sum(
        &bridge.metrics(&rt)?,
        "mpanel_bridge_notifications_total",
        &[("kind", "receipt"), ("outcome", "retry")],
    );
    assert!(retries >= 2.0, "{retries} retries counted");

    // the server is back (the bridge restarted with its address): the receipt arrives, once
    bridge.stop();
    let bridge = start(&rt, &tb, &ledger, tb.get("NOTIFY_SMTP_ADDR")?)?;
    let number = invoice_number(&rt, &ledger, &bought.placed)?;
    assert_eq!(capture.wait_for(&customer, 1, &bridge)?, vec![format!("MigraHosting: receipt for invoice {number}")]);
    // the record follows the server's answer
    let recorded = eventually(WAIT, || {
        let sql =
            "SELECT count(*) FROM notifications WHERE sent_at IS NOT NULL AND attempts >= 3 AND last_error IS NULL";
        Ok(ledger.count(&rt, sql)? == 1)
    })?;
    assert!(recorded, "the sent receipt is not recorded with its attempts: {}", bridge.log_tail(20));
    let sent = metric_sum(
        &bridge.metrics(&rt)?,
        "mpanel_bridge_notifications_total",
        &[("kind", "receipt"), ("outcome", "sent")],
    );
    assert_eq!(sent, 1.0);
    // the mail of the last attempt is the one the first attempt would have sent
    let message_id = ledger.text(&rt, "SELECT message_id::text FROM notifications")?.unwrap_or_default();
    let mails = capture.to(&customer)?;
    assert_eq!(mails[0].header("message-id"), format!("<notification-{message_id}@migrahosting.com>"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(capture.to(&customer)?.len(), 1);
    capture.forget(&customer)?;
    ledger.drop_database(&rt);
    Ok(())
}

/// An SMTP server that refuses every recipient for good (550); how many recipients it was offered.
fn refusing_server() -> anyhow::Result<(std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let offered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = offered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let Ok(mut writer) = stream.try_clone() else { continue };
            let mut reader = BufReader::new(stream);
            let _ = writer.write_all(b"220 refusing.test ESMTP\r\n");
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                let answer: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 refusing.test\r\n",
                    "RCPT" => {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        b"550 5.1.1 no such user\r\n"
                    }
                    "QUIT" => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                if writer.write_all(answer).is_err() || verb == "QUIT" {
                    break;
                }
                line.clear();
            }
        }
    });
    Ok((addr, offered))
}

#[test]
fn a_mail_the_server_refuses_for_good_is_kept_failed_and_not_retried() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let (server, offered) = refusing_server()?;
    let bridge = start(&rt, &tb, &ledger, &server.to_string())?;
    let customer = email("notify-refused");
    let bought =
        buy(&rt, &tb, &ledger, &bridge, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace_of(&bought)] };
    let failed = eventually(WAIT, || {
        let sql = "SELECT count(*) FROM notifications WHERE failed_at IS NOT NULL AND sent_at IS NULL \
                   AND attempts = 1 AND last_error LIKE '%no such user%'";
        Ok(ledger.count(&rt, sql)? == 1)
    })?;
    assert!(failed, "the refused receipt is not kept as failed: {}", bridge.log_tail(20));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(offered.load(std::sync::atomic::Ordering::SeqCst), 1, "a mail refused for good was offered again");
    let metrics = bridge.metrics(&rt)?;
    assert_eq!(metric_sum(&metrics, "mpanel_bridge_notifications_total", &[("outcome", "refused")]), 1.0);
    assert_eq!(metric_sum(&metrics, "mpanel_bridge_notifications_total", &[("outcome", "retry")]), 0.0);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn an_address_no_mail_can_go_to_never_holds_up_the_order() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, tb.get("NOTIFY_SMTP_ADDR")?)?;
    // the ledger takes it as a customer's email; no mail header can carry it
    let customer = format!("odd<{}", email("notify-odd"));
    let bought =
        buy(&rt, &tb, &ledger, &bridge, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace_of(&bought)] };
    let kept = eventually(WAIT, || {
        let sql = "SELECT count(*) FROM notifications WHERE kind = 'receipt' AND failed_at IS NOT NULL \
                   AND sent_at IS NULL AND last_error LIKE 'address %'";
        Ok(ledger.count(&rt, sql)? == 1)
    })?;
    assert!(kept, "the receipt to an impossible address is not kept as failed: {}", bridge.log_tail(20));
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn without_an_smtp_server_notifications_are_recorded_not_sent() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let mut bridge = Bridge::start(&rt, &tb, &ledger, Path::new(tb.get("KUBECONFIG")?))?;
    let customer = email("notify-unset");
    let bought =
        buy(&rt, &tb, &ledger, &bridge, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer}))?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace_of(&bought)] };
    assert_eq!(
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM notifications WHERE kind = 'receipt' AND recipient = '{customer}' \
             AND sent_at IS NULL AND attempts = 0"
            )
        )?,
        1
    );
    let logs = bridge.stop();
    assert_eq!(logs.matches("no NOTIFY_SMTP_ADDR").count(), 1, "{logs}");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn two_replicas_send_each_mail_once() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let capture = Capture::new(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let smtp = tb.get("NOTIFY_SMTP_ADDR")?;
    let replicas = [start(&rt, &tb, &ledger, smtp)?, start(&rt, &tb, &ledger, smtp)?];
    let customers: Vec<String> = (0..8).map(|_| email("notify-twice")).collect();
    // paid at once through both replicas: both workers wake for every receipt
    rt.block_on(async {
        let orders = customers.iter().enumerate().map(|(i, customer)| {
            let bridge = &replicas[i % 2];
            async move {
                let placed =
                    bridge.place(&json!({"product": "cloudpod-mini", "cycle": "monthly", "email": customer})).await?;
                let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
                let event = session_completed(&placed, &intent);
                let status = bridge.deliver_at(&event, &bridge.webhook_secret, chrono::Utc::now().timestamp()).await?;
                anyhow::ensure!(status == 200, "the webhook answered {status}");
                Ok::<_, anyhow::Error>(())
            }
        });
        futures::future::try_join_all(orders).await
    })?;
    let all = eventually(WAIT, || {
        Ok(ledger.count(&rt, "SELECT count(*) FROM notifications WHERE sent_at IS NOT NULL")? == customers.len() as i64)
    })?;
    assert!(all, "not every receipt was sent: {}", replicas[0].log_tail(20));
    std::thread::sleep(Duration::from_secs(3));
    for customer in &customers {
        let subjects = capture.subjects(customer)?;
        assert_eq!(subjects.len(), 1, "{customer}: {subjects:?}");
        assert!(subjects[0].starts_with("MigraHosting: receipt for invoice INV-"), "{subjects:?}");
        capture.forget(customer)?;
    }
    let namespaces: Vec<String> =
        rt.block_on(sqlx::query_scalar("SELECT DISTINCT namespace FROM subscriptions").fetch_all(&ledger.pool))?;
    let _cleanup = Namespaces { tb: &tb, names: namespaces };
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn no_mail_carries_the_generated_mailbox_password() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let capture = Capture::new(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger, tb.get("NOTIFY_SMTP_ADDR")?)?;
    let customer = email("notify-mailbox");
    let domain = format!("mailbox-{}.example", uuid::Uuid::new_v4().simple());
    let body = json!({"product": "email-basic", "cycle": "monthly", "email": customer, "domain": domain});
    let bought = buy(&rt, &tb, &ledger, &bridge, &body)?;
    let namespace = namespace_of(&bought);
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace.clone()] };
    let resource = bought.resource["metadata"]["name"].as_str().unwrap_or_default();
    let secret = format!("{resource}-credentials");
    let mut password = String::new();
    let template = r#"go-template={{index .data "mailbox-password" | base64decode}}"#;
    let made = eventually(WAIT, || {
        let out = tb.kubectl(&["get", "secret", &secret, "-n", &namespace, "-o", template], None)?;
        password = out.stdout.trim().to_owned();
        Ok(out.success && password.starts_with("Mp-"))
    })?;
    assert!(made, "no generated mailbox password in {namespace}/{secret}");

    // the receipt says where the password is set, and carries no password
    capture.wait_for(&customer, 1, &bridge)?;
    let mails = capture.to(&customer)?;
    let receipt = mails.iter().find(|m| m.header("subject").contains("receipt"));
    assert!(receipt.is_some_and(|m| m.text.contains("set it in the customer portal")), "{receipt:?}");
    for mail in &mails {
        let text = mail.decoded()?;
        assert!(!text.contains(&password), "a mail carries the mailbox password: {mail:?}");
        assert!(!text.contains(&password[3..]), "a mail carries the mailbox password: {mail:?}");
    }
    let receipt = receipt.context("no receipt")?.decoded()?;
    assert!(receipt.contains("%PDF-1.4") && receipt.contains("Bill to"), "the invoice PDF was not searched: {receipt}");
    capture.forget(&customer)?;
    ledger.drop_database(&rt);
    Ok(())
}
