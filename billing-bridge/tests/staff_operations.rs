//! Staff operations through the admin API, each audited with the token's name as the actor, against
//! a bridge that works as the runtime role: an Abuse suspension puts `spec.suspension` on the
//! Subscription object, a paid renewal does not lift it and only billing's resume does (an Overdue
//! suspension is the payment's to lift); support suspends for abuse and resends notifications,
//! read-only only reads; revoked and expired tokens are refused with a stable code and only admins
//! manage tokens; billing creates and edits customers, a bad email or a handle writes nothing.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mpanel_billing_bridge::ledger::tokens::{self, Role};
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, email, eventually, report_status, session_completed, subscriptions_of};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(30);

/// A bridge working as the runtime role.
fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger) -> anyhow::Result<Bridge> {
    let kubeconfig: std::path::PathBuf = tb.get("KUBECONFIG")?.into();
    Bridge::start_with_env(rt, tb, ledger, &kubeconfig, &ledger.runtime_env(rt, tb)?)
}

/// A token of `role` named `name` (the actor of what it does).
fn token(rt: &Runtime, ledger: &Ledger, name: &str, role: Role) -> anyhow::Result<String> {
    Ok(rt.block_on(tokens::create(&ledger.pool, name, role))?)
}

/// Sends `method path` with `body` as `token`: the status and the JSON answer.
fn send(
    bridge: &Bridge,
    rt: &Runtime,
    method: reqwest::Method,
    path: &str,
    body: &Value,
    token: &str,
) -> anyhow::Result<(u16, Value)> {
    rt.block_on(async {
        let resp = bridge
            .http
            .request(method, format!("{}/v1/admin{path}", bridge.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    })
}

/// POSTs to the admin API: the status and the error code (empty when none).
fn post(bridge: &Bridge, rt: &Runtime, path: &str, body: &Value, token: &str) -> anyhow::Result<(u16, String)> {
    let (status, answer) = send(bridge, rt, reqwest::Method::POST, path, body, token)?;
    Ok((status, code(&answer)))
}

fn code(answer: &Value) -> String {
    answer["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// Audit rows of `action` about `entity_id` by `actor`.
fn audited(rt: &Runtime, ledger: &Ledger, actor: &str, action: &str, entity_id: &str) -> anyhow::Result<i64> {
    ledger.count(
        rt,
        &format!(
            "SELECT count(*) FROM audit_log WHERE actor = '{actor}' AND action = '{action}' AND entity_id = '{entity_id}'"
        ),
    )
}

/// Every audit row written by these staff.
fn staff_audit_rows(rt: &Runtime, ledger: &Ledger, staff: &[&str]) -> anyhow::Result<i64> {
    let names = staff.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    ledger.count(rt, &format!("SELECT count(*) FROM audit_log WHERE actor IN ({names})"))
}

/// `status suspension_reason` of the subscription.
fn state_of(rt: &Runtime, ledger: &Ledger, sub: &str) -> anyhow::Result<String> {
    Ok(ledger
        .text(
            rt,
            &format!("SELECT status || ' ' || coalesce(suspension_reason, '-') FROM subscriptions WHERE id = '{sub}'"),
        )?
        .unwrap_or_default())
}

/// The Subscription object's `spec.suspension`, once it shows `want` (null: none).
fn suspension_becomes(tb: &Testbed, sub: &str, want: &Value) -> anyhow::Result<bool> {
    eventually(WAIT, || {
        let spec = subscriptions_of(tb, sub)?.first().map(|o| o["spec"].clone());
        Ok(spec.is_some_and(|s| s.get("suspension").cloned().unwrap_or(Value::Null) == *want))
    })
}

/// An active subscription of cloudpod-mini (paid, its resource Ready).
struct Active {
    sub: String,
    namespace: String,
    /// The PaymentIntent that paid its order.
    intent: String,
}

fn active_subscription(rt: &Runtime, tb: &Testbed, ledger: &Ledger, bridge: &Bridge) -> anyhow::Result<Active> {
    let placed =
        bridge.checkout(rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("staff")}))?;
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    anyhow::ensure!(
        bridge.deliver(rt, &session_completed(&placed, &intent))? == 200,
        "the webhook refused the payment"
    );
    let order = placed["orderId"].as_str().unwrap_or_default();
    let mut sub = String::new();
    let mut found = Vec::new();
    anyhow::ensure!(
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
    let namespace = found[0]["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
    report_status(tb, &found[0], "Active", true, "all 1 resources are Ready")?;
    anyhow::ensure!(eventually(WAIT, || Ok(state_of(rt, ledger, &sub)? == "active -"))?, "not activated");
    Ok(Active { sub, namespace, intent })
}

fn period_end(rt: &Runtime, ledger: &Ledger, sub: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(rt.block_on(
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT current_period_end FROM subscriptions WHERE id = '{sub}'"
        )))
        .fetch_one(&ledger.pool),
    )?)
}

fn tick(rt: &Runtime, ledger: &Ledger, at: DateTime<Utc>) -> anyhow::Result<mpanel_billing_bridge::lifecycle::Tick> {
    Ok(rt.block_on(mpanel_billing_bridge::lifecycle::tick(&ledger.pool, at))?)
}

/// The renewal invoice of `sub` whose period starts at `start`.
fn renewal_at(rt: &Runtime, ledger: &Ledger, sub: &str, start: DateTime<Utc>) -> anyhow::Result<String> {
    Ok(ledger
        .text(
            rt,
            &format!(
                "SELECT id::text FROM invoices WHERE subscription_id = '{sub}' AND period_start = '{}'",
                start.to_rfc3339()
            ),
        )?
        .unwrap_or_default())
}

#[test]
fn an_abuse_suspension_holds_through_a_paid_renewal_until_billing_resumes_it() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger)?;
    let Active { sub, namespace, intent } = active_subscription(&rt, &tb, &ledger, &bridge)?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace] };
    let support = token(&rt, &ledger, "support-sam", Role::Support)?;
    let reader = token(&rt, &ledger, "reader-rita", Role::ReadOnly)?;
    let billing = token(&rt, &ledger, "billing-bo", Role::Billing)?;
    let suspend = format!("/subscriptions/{sub}/suspend");
    let resume = format!("/subscriptions/{sub}/resume");
    let abuse = json!({"reason": "Abuse", "note": "phishing pages reported"});

    // read-only cannot suspend; support may not suspend for Manual; nothing written
    assert_eq!(post(&bridge, &rt, &suspend, &abuse, &reader)?, (403, "Forbidden".into()));
    assert_eq!(post(&bridge, &rt, &suspend, &json!({"reason": "Manual"}), &support)?, (403, "Forbidden".into()));
    assert_eq!(post(&bridge, &rt, &suspend, &json!({"reason": "Overdue"}), &billing)?.0, 422);
    assert_eq!(state_of(&rt, &ledger, &sub)?, "active -");
    assert_eq!(staff_audit_rows(&rt, &ledger, &["support-sam", "reader-rita", "billing-bo"])?, 0);

    // support suspends for abuse: the ledger, the resource, the mail and the audit row with the note
    assert_eq!(post(&bridge, &rt, &suspend, &abuse, &support)?, (200, String::new()));
    assert_eq!(state_of(&rt, &ledger, &sub)?, "suspended Abuse");
    let held = json!({"suspended": true, "reason": "Abuse"});
    assert!(suspension_becomes(&tb, &sub, &held)?, "no Abuse suspension on the resource: {}", bridge.log_tail(30));
    assert_eq!(audited(&rt, &ledger, "support-sam", "subscription.suspend", &sub)?, 1);
    assert_eq!(
        ledger
            .text(&rt, &format!("SELECT detail->>'note' FROM audit_log WHERE action = 'subscription.suspend' AND entity_id = '{sub}'"))?
            .as_deref(),
        Some("phishing pages reported")
    );
    let suspended_mails = format!(
        "SELECT count(*) FROM notifications n JOIN subscriptions s ON s.customer_id = n.customer_id \
         WHERE s.id = '{sub}' AND n.kind = 'suspended' AND n.facts->>'reason' = 'Abuse'"
    );
    assert_eq!(ledger.count(&rt, &suspended_mails)?, 1);
    assert_eq!(post(&bridge, &rt, &suspend, &abuse, &billing)?, (409, "AlreadySuspended".into()));
    // support may not resume
    assert_eq!(post(&bridge, &rt, &resume, &json!({}), &support)?, (403, "Forbidden".into()));

    // the renewal is paid: the period moves on, the Abuse suspension stays, on the resource too
    let end = period_end(&rt, &ledger, &sub)?;
    assert_eq!(tick(&rt, &ledger, end - chrono::Duration::days(7))?.renewal_invoices, 1);
    let renewal = renewal_at(&rt, &ledger, &sub, end)?;
    let number = ledger.text(&rt, &format!("SELECT number FROM invoices WHERE id = '{renewal}'"))?.unwrap_or_default();
    let paid = support::payment_intent(
        "payment_intent.succeeded",
        &format!("pi_{}", uuid::Uuid::new_v4().simple()),
        &renewal,
        999,
    );
    assert_eq!(bridge.deliver(&rt, &paid)?, 200);
    assert!(eventually(WAIT, || Ok(period_end(&rt, &ledger, &sub)? > end))?, "the renewal was not fulfilled");
    // the resource as applied after the renewal: its invoice, still suspended for abuse
    assert!(eventually(WAIT, || Ok(subscriptions_of(&tb, &sub)?
        .first()
        .is_some_and(|o| o["spec"]["billing"]["invoice"] == json!(number) && o["spec"]["suspension"] == held)))?);
    assert_eq!(state_of(&rt, &ledger, &sub)?, "suspended Abuse", "a payment lifted an Abuse suspension");

    // a dispute of the order's payment opened and won neither replaces nor lifts it
    let dispute_id = format!("dp_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(&rt, &support::dispute("created", &dispute_id, &intent, 999, "needs_response"))?, 200);
    assert_eq!(bridge.deliver(&rt, &support::dispute("closed", &dispute_id, &intent, 999, "won"))?, 200);
    assert_eq!(
        ledger.count(
            &rt,
            &format!("SELECT count(*) FROM stripe_events WHERE payload->'data'->'object'->>'id' = '{dispute_id}'")
        )?,
        2
    );
    assert_eq!(state_of(&rt, &ledger, &sub)?, "suspended Abuse", "a dispute replaced or lifted an Abuse suspension");

    // billing resumes: lifted everywhere, mailed, audited
    assert_eq!(post(&bridge, &rt, &resume, &json!({"note": "pages removed"}), &billing)?, (200, String::new()));
    assert_eq!(state_of(&rt, &ledger, &sub)?, "active -");
    assert!(suspension_becomes(&tb, &sub, &Value::Null)?, "the suspension stayed on the resource");
    assert_eq!(audited(&rt, &ledger, "billing-bo", "subscription.resume", &sub)?, 1);
    assert_eq!(
        ledger.count(
            &rt,
            &suspended_mails.replace("n.kind = 'suspended' AND n.facts->>'reason' = 'Abuse'", "n.kind = 'resumed'")
        )?,
        1
    );
    assert_eq!(post(&bridge, &rt, &resume, &json!({}), &billing)?, (409, "NotSuspended".into()));

    // an Overdue suspension is the payment's to lift, not staff's
    let next_end = period_end(&rt, &ledger, &sub)?;
    assert_eq!(tick(&rt, &ledger, next_end - chrono::Duration::days(7))?.renewal_invoices, 1);
    assert_eq!(tick(&rt, &ledger, next_end + chrono::Duration::days(7))?.suspended, 1);
    assert_eq!(state_of(&rt, &ledger, &sub)?, "suspended Overdue");
    assert_eq!(post(&bridge, &rt, &resume, &json!({}), &billing)?, (409, "SuspendedOverdue".into()));
    assert_eq!(state_of(&rt, &ledger, &sub)?, "suspended Overdue");

    // unknown and ended subscriptions
    let unknown = format!("/subscriptions/{}/suspend", uuid::Uuid::new_v4());
    assert_eq!(post(&bridge, &rt, &unknown, &abuse, &billing)?, (404, "NotFound".into()));
    assert_eq!(post(&bridge, &rt, &format!("/subscriptions/{sub}/cancel"), &json!({}), &billing)?.0, 200);
    assert_eq!(post(&bridge, &rt, &suspend, &abuse, &billing)?, (409, "SubscriptionEnded".into()));
    assert_eq!(post(&bridge, &rt, &resume, &json!({}), &billing)?, (409, "SubscriptionEnded".into()));
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn support_resends_a_notification_once_more_and_cannot_change_prices() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger)?;
    let Active { sub, namespace, .. } = active_subscription(&rt, &tb, &ledger, &bridge)?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace] };
    let support = token(&rt, &ledger, "support-sue", Role::Support)?;
    let reader = token(&rt, &ledger, "reader-ray", Role::ReadOnly)?;
    let admin = token(&rt, &ledger, "admin-ada", Role::Admin)?;

    // the receipt of the order, as if the mail server took it
    let customer = ledger
        .text(&rt, &format!("SELECT customer_id::text FROM subscriptions WHERE id = '{sub}'"))?
        .unwrap_or_default();
    let receipt = ledger
        .text(
            &rt,
            &format!("SELECT id::text FROM notifications WHERE customer_id = '{customer}' AND kind = 'receipt'"),
        )?
        .unwrap_or_default();
    let resend = format!("/notifications/{receipt}/resend");
    // waiting to be sent (no mail server here): nothing to resend
    assert_eq!(post(&bridge, &rt, &resend, &json!({}), &support)?, (409, "NotificationPending".into()));
    rt.block_on(
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE notifications SET sent_at = now(), attempts = 1 WHERE id = {receipt}"
        )))
        .execute(&ledger.pool),
    )?;
    let message_id = format!("SELECT message_id::text FROM notifications WHERE id = {receipt}");
    let first = ledger.text(&rt, &message_id)?;
    assert_eq!(post(&bridge, &rt, &resend, &json!({}), &reader)?, (403, "Forbidden".into()));
    assert_eq!(post(&bridge, &rt, &resend, &json!({}), &support)?, (200, String::new()));
    assert_eq!(
        ledger.count(&rt, &format!("SELECT count(*) FROM notifications WHERE id = {receipt} AND sent_at IS NULL"))?,
        1,
        "the notification is not offered again"
    );
    assert_ne!(ledger.text(&rt, &message_id)?, first, "a resent mail keeps the Message-ID the server saw");
    assert_eq!(audited(&rt, &ledger, "support-sue", "notification.resend", &receipt)?, 1);
    let (status, listed) = send(
        &bridge,
        &rt,
        reqwest::Method::GET,
        &format!("/customers/{customer}/notifications"),
        &Value::Null,
        &reader,
    )?;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["notifications"].as_array().into_iter().flatten().any(|n| n["id"]
            .as_i64()
            .map(|id| id.to_string())
            .as_deref()
            == Some(receipt.as_str()))
    );
    assert_eq!(post(&bridge, &rt, "/notifications/999999/resend", &json!({}), &support)?, (404, "NotFound".into()));

    // prices: support is refused and nothing changes; the same body from an admin is taken
    let price = "SELECT pp.amount_cents FROM product_prices pp JOIN products p ON p.id = pp.product_id \
                 WHERE p.slug = 'cloudpod-nano' AND pp.cycle = 'monthly' AND pp.purpose = 'new'";
    let product = json!({"name": "CloudPod Nano", "type": "cloudpod", "prices": [{"cycle": "monthly", "purpose": "new", "amountCents": 1, "currency": "usd"}],
        "template": {"cloudPods": [{"name": "${subscription}", "spec": {"plan": "nano", "type": "lxc", "template": "100", "hostname": "${subscription}",
            "resources": {"cores": 1, "memoryMiB": 512, "diskGiB": 10}, "network": {"bridge": "vmbr0", "ipv4": {"pool": "public-v4"}}}}]}});
    let before = ledger.count(&rt, &format!("SELECT count(*) FROM ({price}) p"))?;
    let (status, answer) = send(&bridge, &rt, reqwest::Method::PUT, "/products/cloudpod-nano", &product, &support)?;
    assert_eq!((status, code(&answer)), (403, "Forbidden".into()));
    assert_eq!(ledger.count(&rt, &format!("SELECT count(*) FROM ({price}) p WHERE amount_cents = 1"))?, 0);
    assert_eq!(ledger.count(&rt, &format!("SELECT count(*) FROM ({price}) p"))?, before);
    let (status, answer) = send(&bridge, &rt, reqwest::Method::PUT, "/products/cloudpod-nano", &product, &admin)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ledger.count(&rt, &format!("SELECT count(*) FROM ({price}) p WHERE amount_cents = 1"))?, 1);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn revoked_and_expired_tokens_are_refused_and_only_admins_manage_tokens() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger)?;
    let admin = token(&rt, &ledger, "admin-al", Role::Admin)?;
    let billing = token(&rt, &ledger, "billing-bea", Role::Billing)?;
    let support = token(&rt, &ledger, "support-stu", Role::Support)?;
    let spare = token(&rt, &ledger, "spare", Role::ReadOnly)?;
    let later = rt.block_on(tokens::create_expiring(
        &ledger.pool,
        "contractor",
        Role::ReadOnly,
        Some(Utc::now() + chrono::Duration::days(1)),
    ))?;
    let gone = rt.block_on(tokens::create_expiring(
        &ledger.pool,
        "last-year",
        Role::Admin,
        Some(Utc::now() - chrono::Duration::days(1)),
    ))?;
    let reads = |token: &str| -> anyhow::Result<(u16, String)> {
        let (status, answer) = bridge.get(&rt, "/v1/admin/customers", Some(token))?;
        Ok((status, code(&answer)))
    };
    assert_eq!(reads(&billing)?.0, 200);
    assert_eq!(reads(&later)?.0, 200);
    assert_eq!(reads(&gone)?, (401, "TokenExpired".into()));
    assert_eq!(reads("mpb_nobody")?, (401, "Unauthenticated".into()));

    // only admins list tokens, and the list carries neither a secret nor its hash
    assert_eq!(bridge.get(&rt, "/v1/admin/tokens", Some(&support))?.0, 403);
    assert_eq!(bridge.get(&rt, "/v1/admin/tokens", Some(&billing))?.0, 403);
    let (status, listed) = bridge.get(&rt, "/v1/admin/tokens", Some(&admin))?;
    assert_eq!(status, 200, "{listed}");
    let text = listed.to_string();
    for secret in [&admin, &billing, &support, &spare, &later, &gone] {
        assert!(!text.contains(secret.as_str()), "a secret is listed");
    }
    let row = |name: &str| {
        listed["tokens"].as_array().into_iter().flatten().find(|t| t["name"] == name).cloned().unwrap_or(Value::Null)
    };
    let bea = row("billing-bea");
    let fields: Vec<&str> = bea.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(fields.len(), 7, "{bea}");
    for field in ["id", "name", "role", "createdAt", "lastUsedAt", "expiresAt", "revokedAt"] {
        assert!(fields.contains(&field), "{field} missing in {bea}");
    }
    assert_eq!(bea["role"], "billing");
    assert!(bea["lastUsedAt"].is_string(), "the use of billing-bea is not recorded: {bea}");
    assert!(row("support-stu")["lastUsedAt"].is_string(), "a use refused for its role is a use");
    assert!(row("spare")["lastUsedAt"].is_null(), "a token that was not used has a last use");
    assert!(row("contractor")["expiresAt"].is_string());

    // revoked: refused at once, with its code; a second revocation is refused
    let id = bea["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(post(&bridge, &rt, &format!("/tokens/{id}/revoke"), &json!({}), &billing)?, (403, "Forbidden".into()));
    assert_eq!(post(&bridge, &rt, &format!("/tokens/{id}/revoke"), &json!({}), &admin)?, (200, String::new()));
    assert_eq!(reads(&billing)?, (401, "TokenRevoked".into()));
    assert_eq!(post(&bridge, &rt, &format!("/tokens/{id}/revoke"), &json!({}), &admin)?, (409, "TokenRevoked".into()));
    assert_eq!(audited(&rt, &ledger, "admin-al", "token.revoke", &id)?, 1);

    // expired now by an admin: refused with its code
    let contractor = row("contractor")["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(post(&bridge, &rt, &format!("/tokens/{contractor}/expire"), &json!({}), &admin)?, (200, String::new()));
    assert_eq!(reads(&later)?, (401, "TokenExpired".into()));
    assert_eq!(
        post(&bridge, &rt, &format!("/tokens/{contractor}/expire"), &json!({}), &admin)?,
        (409, "TokenExpired".into())
    );
    assert_eq!(audited(&rt, &ledger, "admin-al", "token.expire", &contractor)?, 1);
    let unknown = format!("/tokens/{}/revoke", uuid::Uuid::new_v4());
    assert_eq!(post(&bridge, &rt, &unknown, &json!({}), &admin)?, (404, "NotFound".into()));

    // the command line makes a token that expires
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_mpanel-billing-bridge"))
        .args(["create-token", "--name", "cli-old", "--role", "admin", "--expires-at", "2020-01-01T00:00:00Z"])
        .env("DATABASE_URL", &ledger.url)
        .env_remove("MIGRATION_DATABASE_URL")
        .env_remove("MPANEL_BRIDGE_RUNTIME_ROLE")
        .output()?;
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // the token is the last line (the log goes to stdout too)
    let printed = String::from_utf8(made.stdout)?;
    let cli = printed.lines().last().unwrap_or_default().trim().to_owned();
    assert!(cli.starts_with("mpb_"), "{printed}");
    assert_eq!(reads(&cli)?, (401, "TokenExpired".into()));
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn billing_creates_and_edits_customers_and_a_bad_email_or_a_handle_writes_nothing() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = start(&rt, &tb, &ledger)?;
    let billing = token(&rt, &ledger, "billing-cy", Role::Billing)?;
    let support = token(&rt, &ledger, "support-di", Role::Support)?;
    let customers = "SELECT count(*) FROM customers";
    let create = |body: &Value, token: &str| send(&bridge, &rt, reqwest::Method::POST, "/customers", body, token);

    // refused: nothing written
    for bad in ["not-an-email", "two@@example.com", "a b@example.com", "nobody@localhost", ""] {
        let (status, answer) = create(&json!({"email": bad, "name": "Ann"}), &billing)?;
        assert_eq!((status, code(&answer)), (422, "InvalidEmail".into()), "{bad:?}: {answer}");
    }
    let (status, answer) = create(&json!({"email": email("handle"), "handle": "mine"}), &billing)?;
    assert_eq!((status, code(&answer)), (422, "HandleImmutable".into()), "{answer}");
    let (status, answer) = create(&json!({"email": email("support")}), &support)?;
    assert_eq!((status, code(&answer)), (403, "Forbidden".into()));
    assert_eq!(ledger.count(&rt, customers)?, 0);
    assert_eq!(staff_audit_rows(&rt, &ledger, &["billing-cy", "support-di"])?, 0);

    // made, with a handle of the ledger's making, audited with the actor
    let address = email("Ann");
    let (status, ann) = create(&json!({"email": address, "name": " Ann Example "}), &billing)?;
    assert_eq!(status, 201, "{ann}");
    assert_eq!(
        (ann["email"].as_str(), ann["name"].as_str()),
        (Some(address.to_lowercase().as_str()), Some("Ann Example"))
    );
    let handle = ann["handle"].as_str().unwrap_or_default().to_owned();
    assert!(handle.len() == 11 && handle.starts_with('c'), "{handle}");
    let id = ann["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(audited(&rt, &ledger, "billing-cy", "customer.create", &id)?, 1);
    let (status, answer) = create(&json!({"email": address.to_uppercase()}), &billing)?;
    assert_eq!((status, code(&answer)), (409, "EmailTaken".into()));
    let (_, bob) = create(&json!({"email": email("bob")}), &billing)?;
    assert_eq!(ledger.count(&rt, customers)?, 2);

    // edits: a bad email, the handle, another's email and support are refused and change nothing
    let path = format!("/customers/{id}");
    let edit = |body: &Value, token: &str| -> anyhow::Result<(u16, Value)> {
        send(&bridge, &rt, reqwest::Method::PATCH, &path, body, token)
    };
    let row = format!("SELECT email || ' ' || name || ' ' || handle FROM customers WHERE id = '{id}'");
    let before = ledger.text(&rt, &row)?;
    let (status, answer) = edit(&json!({"email": "ann.example.com"}), &billing)?;
    assert_eq!((status, code(&answer)), (422, "InvalidEmail".into()), "{answer}");
    let (status, answer) = edit(&json!({"handle": "ann", "name": "Ann"}), &billing)?;
    assert_eq!((status, code(&answer)), (422, "HandleImmutable".into()), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("immutable"), "{answer}");
    let (status, answer) = edit(&json!({"namespace": "customer-ann"}), &billing)?;
    assert_eq!((status, code(&answer)), (422, "HandleImmutable".into()), "{answer}");
    let (status, answer) = edit(&json!({"email": bob["email"]}), &billing)?;
    assert_eq!((status, code(&answer)), (409, "EmailTaken".into()), "{answer}");
    let (status, answer) = edit(&json!({"name": "Eve"}), &support)?;
    assert_eq!((status, code(&answer)), (403, "Forbidden".into()));
    assert_eq!(ledger.text(&rt, &row)?, before);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM audit_log WHERE action = 'customer.edit'")?, 0);

    // a good edit: email and name, the handle as it was, audited with before and after
    let moved = email("ann-moved");
    let (status, answer) = edit(&json!({"email": moved, "name": "Ann Moved"}), &billing)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ledger.text(&rt, &row)?, Some(format!("{} Ann Moved {handle}", moved.to_lowercase())));
    assert_eq!(audited(&rt, &ledger, "billing-cy", "customer.edit", &id)?, 1);
    assert_eq!(
        ledger
            .text(&rt, &format!("SELECT detail->'before'->>'name' FROM audit_log WHERE action = 'customer.edit' AND entity_id = '{id}'"))?
            .as_deref(),
        Some("Ann Example")
    );
    let (status, answer) =
        send(&bridge, &rt, reqwest::Method::PATCH, "/customers/not-a-customer", &json!({"name": "X"}), &billing)?;
    assert_eq!((status, code(&answer)), (404, "NotFound".into()));
    ledger.drop_database(&rt);
    Ok(())
}
