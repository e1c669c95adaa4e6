//! The Stripe client against the testbed's stripe-mock (tests/testbed/up), and the webhook signature
//! check against signatures made by the tests crate.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use mpanel_billing_bridge::stripe::api::{CheckoutLine, CheckoutRequest, StripeClient, StripeError};
use mpanel_billing_bridge::stripe::signature::{self, SignatureError};
use mpanel_tests::Testbed;

const TIMEOUT: Duration = Duration::from_secs(10);

fn block_on<F: Future>(f: F) -> anyhow::Result<F::Output> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(f))
}

fn client(testbed: &Testbed) -> anyhow::Result<StripeClient> {
    Ok(StripeClient::new(testbed.get("STRIPE_SECRET_KEY")?, Some(testbed.get("STRIPE_API_BASE")?), TIMEOUT)?)
}

fn order(id: &str) -> CheckoutRequest {
    CheckoutRequest {
        idempotency_key: id.to_owned(),
        customer_email: "jane@example.com".to_owned(),
        stripe_customer: None,
        currency: "usd".to_owned(),
        lines: vec![
            CheckoutLine { description: "Cloud Pod S (monthly)".to_owned(), unit_amount_cents: 1500, quantity: 1 },
            CheckoutLine { description: "example.com (1 year)".to_owned(), unit_amount_cents: 1299, quantity: 2 },
        ],
        success_url: "https://panel.example.com/orders/ord-1?paid=1".to_owned(),
        cancel_url: "https://panel.example.com/orders/ord-1".to_owned(),
        client_reference_id: id.to_owned(),
        metadata: BTreeMap::from([("order_id".to_owned(), id.to_owned()), ("tenant".to_owned(), "t1".to_owned())]),
    }
}

fn unix_now() -> anyhow::Result<i64> {
    Ok(i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?)
}

#[test]
fn checkout_session_comes_back_with_an_id_and_a_payment_page() -> anyhow::Result<()> {
    let stripe = client(&Testbed::from_env()?)?;
    let session = block_on(stripe.create_checkout_session(&order("ord-checkout-1")))??;
    ensure!(session.id.starts_with("cs_"), "session id {}", session.id);
    let url = session.url.context("the session has no url")?;
    ensure!(url.starts_with("https://"), "session url {url}");

    // a known customer goes as `customer` instead of `customer_email`
    let mut known = order("ord-checkout-2");
    known.stripe_customer = Some("cus_known".to_owned());
    let session = block_on(stripe.create_checkout_session(&known))??;
    ensure!(session.id.starts_with("cs_"), "session id {}", session.id);
    Ok(())
}

#[test]
fn refund_comes_back_with_its_id() -> anyhow::Result<()> {
    let stripe = client(&Testbed::from_env()?)?;
    let partial = block_on(stripe.create_refund("pi_1PgafyB7WZ01zgkWSjxsAJo3", Some(500), "refund-ord-1-1"))??;
    ensure!(partial.starts_with("re_"), "refund id {partial}");
    let full = block_on(stripe.create_refund("pi_1PgafyB7WZ01zgkWSjxsAJo3", None, "refund-ord-1-2"))??;
    ensure!(full.starts_with("re_"), "refund id {full}");
    Ok(())
}

#[test]
fn customer_comes_back_with_its_id() -> anyhow::Result<()> {
    let stripe = client(&Testbed::from_env()?)?;
    let id = block_on(stripe.create_customer("jane@example.com", "customer-42"))??;
    ensure!(id.starts_with("cus_"), "customer id {id}");
    Ok(())
}

/// stripe-mock checks the parameters' types against Stripe's spec, but the typed requests cannot
/// break those; what it refuses from them is a key that is not a test key, with a message that
/// quotes the key.
#[test]
fn a_refused_request_comes_back_as_stripe_rejected_with_stripes_message() -> anyhow::Result<()> {
    let testbed = Testbed::from_env()?;
    let base = testbed.get("STRIPE_API_BASE")?;
    let key = "sk_live_mpanelnotatestkey";
    let stripe = StripeClient::new(key, Some(base), TIMEOUT)?;

    let Err(err) = block_on(stripe.create_customer("jane@example.com", "customer-refused"))? else {
        bail!("stripe-mock accepted the live key {key}")
    };
    ensure!(err.reason() == "StripeRejected", "{err:?}");
    ensure!(!err.is_transient(), "{err:?}");
    let StripeError::Rejected { status, error_type, message, .. } = &err else { bail!("{err:?}") };
    ensure!(*status == 401 && error_type == "invalid_request_error", "{err:?}");
    ensure!(!format!("{err} {err:?}").contains(key), "the key is in the error: {err:?}");

    // the message is Stripe's, as a plain request gets it, with only the key taken out
    let raw: serde_json::Value = block_on(async {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()?
            .post(format!("{base}/v1/customers"))
            .bearer_auth(key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("email=jane%40example.com")
            .send()
            .await?
            .json()
            .await
    })??;
    let raw_message = raw["error"]["message"].as_str().context("no error.message")?;
    ensure!(raw_message.contains(key), "stripe-mock no longer quotes the key: {raw_message}");
    ensure!(*message == raw_message.replace(key, "[redacted]"), "{message:?} vs {raw_message:?}");

    // an empty idempotency key is refused before anything is sent
    let err = block_on(client(&testbed)?.create_customer("jane@example.com", ""))?.err();
    ensure!(err.as_ref().map(StripeError::reason) == Some("StripeRequestInvalid"), "{err:?}");
    Ok(())
}

#[test]
fn unreachable_stripe_is_stripe_unreachable() -> anyhow::Result<()> {
    // a port that was free a moment ago: nothing listens on it
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let stripe = StripeClient::new("sk_test_123", Some(&format!("http://127.0.0.1:{port}")), TIMEOUT)?;
    let err = block_on(stripe.create_customer("jane@example.com", "customer-unreachable"))?.err();
    ensure!(err.as_ref().map(StripeError::reason) == Some("StripeUnreachable"), "{err:?}");
    ensure!(err.is_some_and(|e| e.is_transient()));
    Ok(())
}

#[test]
fn silent_stripe_is_stripe_timeout() -> anyhow::Result<()> {
    // the kernel accepts the connection into the backlog; nobody ever answers
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", silent.local_addr()?);
    let stripe = StripeClient::new("sk_test_123", Some(&base), Duration::from_millis(500))?;
    let started = Instant::now();
    let err = block_on(stripe.create_refund("pi_123", None, "refund-timeout"))?.err();
    ensure!(err.as_ref().map(StripeError::reason) == Some("StripeTimeout"), "{err:?}");
    ensure!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    drop(silent);
    Ok(())
}

/// What goes over the wire beyond the form, seen by a listener that answers every request with a
/// Stripe error: the Idempotency-Key and the key as a bearer token.
#[test]
fn idempotency_key_and_secret_key_go_as_headers() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let peer = std::thread::spawn(move || -> anyhow::Result<String> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte)?;
            head.push(byte[0]);
        }
        let body = r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#;
        write!(
            conn,
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        Ok(String::from_utf8_lossy(&head).to_ascii_lowercase())
    });
    let stripe = StripeClient::new("sk_test_headers", Some(&base), TIMEOUT)?;
    let err = block_on(stripe.create_checkout_session(&order("ord-Headers-7")))?.err();
    let head = peer.join().map_err(|_| anyhow::anyhow!("the listener thread panicked"))??;
    ensure!(head.starts_with("post /v1/checkout/sessions "), "{head}");
    ensure!(head.contains("\r\nidempotency-key: ord-headers-7\r\n"), "{head}");
    ensure!(head.contains("\r\nauthorization: bearer sk_test_headers\r\n"), "{head}");
    let Some(StripeError::Rejected { status: 400, error_type, message, .. }) = &err else { bail!("{err:?}") };
    ensure!(error_type == "idempotency_error" && message.starts_with("Keys for idempotent requests"), "{err:?}");
    Ok(())
}

#[test]
fn webhook_signed_by_the_tests_crate_verifies_and_goes_stale() -> anyhow::Result<()> {
    let testbed = Testbed::from_env()?;
    let secret = testbed.get("STRIPE_WEBHOOK_SECRET")?;
    ensure!(secret.starts_with("whsec_"), "the testbed's webhook secret is not whsec_…");
    let body = r#"{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_test_1","client_reference_id":"ord-1"}}}"#;
    let now = unix_now()?;

    let header = mpanel_tests::stripe::sign(body, secret, now);
    ensure!(signature::verify(body.as_bytes(), &header, secret, now, 300).is_ok(), "{header}");

    let stale = mpanel_tests::stripe::sign(body, secret, now - 301);
    let err = signature::verify(body.as_bytes(), &stale, secret, now, 300).err();
    ensure!(err == Some(SignatureError::Stale { age_secs: 301 }), "{err:?}");
    ensure!(err.map(|e| e.reason()) == Some("SignatureStale"));

    let other = mpanel_tests::stripe::sign(body, "whsec_someoneelse", now);
    let err = signature::verify(body.as_bytes(), &other, secret, now, 300).err();
    ensure!(err == Some(SignatureError::NoValidSignature), "{err:?}");
    Ok(())
}
