//! The checkout under a slow Stripe, client retries, abandonment and abuse: the real bridge binary
//! on PostgreSQL, with stripe-mock behind a relay of the test's that can answer slowly or not at
//! all, and webhooks signed as Stripe signs them.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mpanel_tests::Testbed;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use support::{Bridge, Ledger, email, session_completed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// How soon the bridge must answer a health check or a webhook while checkouts wait on Stripe.
const PROMPTLY: Duration = Duration::from_secs(3);
/// How long the slow Stripe takes to answer each request.
const SLOW: Duration = Duration::from_secs(8);

fn setup() -> anyhow::Result<(Runtime, Testbed)> {
    Ok((support::runtime()?, Testbed::from_env()?))
}

fn kubeconfig(tb: &Testbed) -> anyhow::Result<std::path::PathBuf> {
    Ok(tb.get("KUBECONFIG")?.into())
}

/// stripe-mock's `host:port`.
fn stripe_mock(tb: &Testbed) -> anyhow::Result<String> {
    Ok(tb.get("STRIPE_API_BASE")?.trim_start_matches("http://").trim_end_matches('/').to_owned())
}

/// A TCP relay to stripe-mock that holds back each answer for `delay`, or, while `down`, closes
/// every connection at once (Stripe unreachable). Counts the requests it relayed and those still
/// waiting for their answer.
struct StripeRelay {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StripeRelay {
    fn start(rt: &Runtime, target: &str) -> anyhow::Result<Self> {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (delay_ms, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (requests, waiting) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let relay = Relayed {
            target: target.to_owned(),
            delay_ms: delay_ms.clone(),
            requests: requests.clone(),
            waiting: waiting.clone(),
        };
        let closed = down.clone();
        let task = rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if closed.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(relay.clone().carry(inbound));
            }
        });
        Ok(Self { addr, delay_ms, down, requests, waiting, task })
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl Drop for StripeRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Relayed {
    target: String,
    delay_ms: Arc<AtomicU64>,
    requests: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
}

impl Relayed {
    /// Relays one connection: the first bytes of each answer wait for the delay.
    async fn carry(self, inbound: tokio::net::TcpStream) {
        let Ok(outbound) = tokio::net::TcpStream::connect(&self.target).await else { return };
        let (mut client_in, mut client_out) = inbound.into_split();
        let (mut server_in, mut server_out) = outbound.into_split();
        let asked = Arc::new(AtomicBool::new(false));
        let upstream = async {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = client_in.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if !asked.swap(true, Ordering::SeqCst) {
                    self.requests.fetch_add(1, Ordering::SeqCst);
                    self.waiting.fetch_add(1, Ordering::SeqCst);
                }
                if server_out.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_out.shutdown().await;
        };
        let downstream = async {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = server_in.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let answering = asked.swap(false, Ordering::SeqCst);
                if answering {
                    tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
                }
                let written = client_out.write_all(&buf[..n]).await;
                if answering {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                }
                if written.is_err() {
                    break;
                }
            }
            let _ = client_out.shutdown().await;
        };
        tokio::join!(upstream, downstream);
    }
}

/// POSTs a checkout with extra headers: the status, the headers and the JSON answer.
async fn post_checkout(
    bridge: &Bridge,
    body: &Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, HeaderMap, Value)> {
    let mut req = bridge.http.post(format!("{}/v1/checkout", bridge.url)).json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await?;
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Ok((status, headers, resp.json().await.unwrap_or(Value::Null)))
}

fn checkout_with(
    rt: &Runtime,
    bridge: &Bridge,
    body: &Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, HeaderMap, Value)> {
    rt.block_on(post_checkout(bridge, body, headers))
}

fn code(answer: &Value) -> Option<&str> {
    answer["error"]["code"].as_str()
}

/// What a checkout writes, table by table.
fn rows(ledger: &Ledger, rt: &Runtime) -> anyhow::Result<Vec<i64>> {
    ["customers", "orders", "order_items", "invoices", "invoice_lines", "checkout_requests", "audit_log"]
        .iter()
        .map(|t| ledger.count(rt, &format!("SELECT count(*) FROM {t}")))
        .collect()
}

fn one_text(ledger: &Ledger, rt: &Runtime, query: &str) -> anyhow::Result<String> {
    Ok(ledger.text(rt, query)?.unwrap_or_default())
}

fn pod(email: &str) -> Value {
    json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email})
}

#[test]
fn a_slow_stripe_holds_up_neither_webhooks_nor_health_checks() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let stripe = StripeRelay::start(&rt, &stripe_mock(&tb)?)?;
    let env = [("STRIPE_API_BASE", stripe.base())];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;
    let buyer = email("slow");
    let first = bridge.checkout(&rt, &pod(&buyer))?;

    // more checkouts at once than the bridge has ledger connections (20, some of them the
    // workers'), one of them by the same customer, all waiting on Stripe
    stripe.set_delay(SLOW);
    const AT_ONCE: usize = 24;
    const IN_FLIGHT: usize = 15;
    let mut buyers = vec![buyer.clone()];
    buyers.extend((1..AT_ONCE).map(|_| email("slow")));
    let bodies: Vec<Value> = buyers.iter().map(|b| pod(b)).collect();
    let (placed, probe) = rt.block_on(async {
        let checkouts = futures::future::join_all(bodies.iter().map(|body| bridge.place(body)));
        let probe = async {
            let deadline = Instant::now() + Duration::from_secs(15);
            while stripe.waiting() < IN_FLIGHT && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let waiting = stripe.waiting();
            let started = Instant::now();
            let health = bridge.http.get(format!("{}/healthz", bridge.url)).send().await?.status().as_u16();
            let health_took = started.elapsed();
            let started = Instant::now();
            let paid = session_completed(&first, &format!("pi_{}", uuid::Uuid::new_v4().simple()));
            let webhook = bridge.deliver_at(&paid, &bridge.webhook_secret, chrono::Utc::now().timestamp()).await?;
            let webhook_took = started.elapsed();
            let opening: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'opening'")
                .fetch_one(&ledger.pool)
                .await?;
            let still_waiting = stripe.waiting();
            anyhow::Ok((waiting, health, health_took, webhook, webhook_took, opening, still_waiting))
        };
        futures::join!(checkouts, probe)
    });
    let (waiting, health, health_took, webhook, webhook_took, opening, still_waiting) = probe?;
    assert_eq!(health, 200);
    assert!(health_took < PROMPTLY, "/healthz took {health_took:?} while checkouts waited on Stripe");
    assert_eq!(webhook, 200);
    assert!(webhook_took < PROMPTLY, "the webhook took {webhook_took:?} while checkouts waited on Stripe");
    assert!(waiting >= IN_FLIGHT, "only {waiting} checkouts reached Stripe");
    assert!(
        still_waiting >= IN_FLIGHT,
        "the checkouts were answered by Stripe before the probe ended ({still_waiting} waiting)"
    );
    // the orders were written before Stripe was asked, and wait for their sessions as `opening`
    assert!(opening >= IN_FLIGHT as i64, "{opening} orders opening while their sessions were made");

    let placed: Vec<Value> = placed.into_iter().collect::<anyhow::Result<_>>()?;
    assert_eq!(placed.len(), AT_ONCE);
    assert!(placed.iter().all(|p| p["checkoutSessionId"].as_str().is_some_and(|s| s.starts_with("cs_"))));
    let first_order = first["orderId"].as_str().unwrap_or_default();
    assert_eq!(
        one_text(&ledger, &rt, &format!("SELECT status FROM invoices WHERE order_id = '{first_order}'"))?,
        "paid"
    );
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM orders WHERE status = 'opening'")?, 0);
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM invoices WHERE status = 'issued'")?, AT_ONCE as i64);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_retried_checkout_with_the_same_idempotency_key_gets_the_same_order() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let buyer = email("retry");
    let body = pod(&buyer);
    let key = format!("order-{}", uuid::Uuid::new_v4());

    let (status, _, first) = checkout_with(&rt, &bridge, &body, &[("Idempotency-Key", &key)])?;
    assert_eq!(status, 201, "{first}");
    let before = rows(&ledger, &rt)?;
    // the same request again, spelled differently: the same answer, nothing new
    let respelled: Value =
        serde_json::from_str(&format!(r#"{{ "email": "{buyer}", "cycle": "monthly",   "product": "cloudpod-pro" }}"#))?;
    for again in [&body, &respelled] {
        let (status, _, answer) = checkout_with(&rt, &bridge, again, &[("Idempotency-Key", &key)])?;
        assert_eq!((status, &answer), (201, &first));
    }
    assert_eq!(rows(&ledger, &rt)?, before, "a retry wrote rows");
    let of_buyer = |table: &str| {
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM {table} t JOIN customers c ON c.id = t.customer_id WHERE c.email = '{buyer}'"
            ),
        )
    };
    assert_eq!((of_buyer("orders")?, of_buyer("invoices")?), (1, 1));

    // retries at the same time: one order between them
    let other_key = format!("order-{}", uuid::Uuid::new_v4());
    let other = pod(&email("retry"));
    let keyed = [("Idempotency-Key", other_key.as_str())];
    let answers = rt.block_on(futures::future::join_all((0..6).map(|_| post_checkout(&bridge, &other, &keyed))));
    let mut orders = Vec::new();
    for answer in answers {
        let (status, _, answer) = answer?;
        assert!(matches!(status, 201 | 409), "{status} {answer}");
        if status == 201 {
            orders.push(answer["orderId"].clone());
        } else {
            assert_eq!(code(&answer), Some("checkout_in_progress"), "{answer}");
        }
    }
    assert!(!orders.is_empty() && orders.iter().all(|o| *o == orders[0]), "{orders:?}");
    let made = ledger.count(
        &rt,
        &format!(
            "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = '{}'",
            other["email"].as_str().unwrap_or_default()
        ),
    )?;
    assert_eq!(made, 1);

    // the key with another request is refused, and nothing is written
    let before = rows(&ledger, &rt)?;
    let changed = json!({"product": "cloudpod-mini", "cycle": "monthly", "email": buyer});
    let (status, _, answer) = checkout_with(&rt, &bridge, &changed, &[("Idempotency-Key", &key)])?;
    assert_eq!((status, code(&answer)), (422, Some("idempotency_key_reused")), "{answer}");
    // a key too long, or empty
    for bad in ["k".repeat(256), String::new()] {
        let (status, _, answer) = checkout_with(&rt, &bridge, &body, &[("Idempotency-Key", &bad)])?;
        assert_eq!((status, code(&answer)), (400, Some("idempotency_key_invalid")), "{answer}");
    }
    assert_eq!(rows(&ledger, &rt)?, before, "a refused key wrote rows");
    let (status, _, answer) = checkout_with(&rt, &bridge, &body, &[("Idempotency-Key", &"k".repeat(255))])?;
    assert_eq!(status, 201, "{answer}");

    // keys belong to a tenant: another tenant's shop on the same ledger makes its own order (its
    // invoice numbers start far from the first shop's: numbers are unique across tenants)
    let second = rt.block_on(async {
        sqlx::raw_sql(
            "INSERT INTO tenants (slug, name) VALUES ('othershop', 'Other shop'); \
             INSERT INTO products (tenant_id, slug, name, type, template) \
               SELECT (SELECT id FROM tenants WHERE slug = 'othershop'), slug, name, type, template FROM products \
               WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'migrahosting') AND slug = 'cloudpod-pro'; \
             INSERT INTO product_prices (product_id, cycle, purpose, amount_cents, currency) \
               SELECT n.id, pp.cycle, pp.purpose, pp.amount_cents, pp.currency FROM product_prices pp \
               JOIN products p ON p.id = pp.product_id JOIN products n ON n.slug = p.slug AND n.tenant_id <> p.tenant_id \
               WHERE n.tenant_id = (SELECT id FROM tenants WHERE slug = 'othershop'); \
             INSERT INTO invoice_counters (tenant_id, year, last_value) \
               SELECT id, extract(year FROM now() AT TIME ZONE 'UTC')::int, 500000 FROM tenants WHERE slug = 'othershop'",
        )
        .execute(&ledger.pool)
        .await
    });
    second?;
    let other_shop = Bridge::start_with_env(
        &rt,
        &tb,
        &ledger,
        &kubeconfig(&tb)?,
        &[("MPANEL_BRIDGE_TENANT", "othershop".to_owned())],
    )?;
    let (status, _, theirs) = checkout_with(&rt, &other_shop, &body, &[("Idempotency-Key", &key)])?;
    assert_eq!(status, 201, "{theirs}");
    assert_ne!(theirs["orderId"], first["orderId"]);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_checkout_whose_stripe_call_failed_is_resumed_by_its_retry_and_ended_without_a_key() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let stripe = StripeRelay::start(&rt, &stripe_mock(&tb)?)?;
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &[("STRIPE_API_BASE", stripe.base())])?;
    let buyer = email("resume");
    let key = format!("order-{}", uuid::Uuid::new_v4());

    stripe.set_down(true);
    let (status, _, answer) = checkout_with(&rt, &bridge, &pod(&buyer), &[("Idempotency-Key", &key)])?;
    assert_eq!((status, code(&answer)), (502, Some("StripeUnreachable")), "{answer}");
    // the order waits, opening, with a draft invoice (no number spent on it)
    let of_buyer = format!(
        "SELECT o.status || ' ' || i.status || ' ' || (i.number IS NULL)::text FROM orders o \
                            JOIN invoices i ON i.order_id = o.id JOIN customers c ON c.id = o.customer_id WHERE c.email = '{buyer}'"
    );
    assert_eq!(one_text(&ledger, &rt, &of_buyer)?, "opening draft true");
    // without a key nobody can ask for it again: the order fails and its draft is void
    let walkaway = email("resume");
    let (status, _, answer) = checkout_with(&rt, &bridge, &pod(&walkaway), &[])?;
    assert_eq!((status, code(&answer)), (502, Some("StripeUnreachable")), "{answer}");
    assert_eq!(one_text(&ledger, &rt, &of_buyer.replace(&buyer, &walkaway))?, "failed void true");

    stripe.set_down(false);
    let (status, _, placed) = checkout_with(&rt, &bridge, &pod(&buyer), &[("Idempotency-Key", &key)])?;
    assert_eq!(status, 201, "{placed}");
    assert!(placed["invoiceNumber"].as_str().is_some_and(|n| n.starts_with("INV-")), "{placed}");
    assert_eq!(one_text(&ledger, &rt, &of_buyer)?, "pending issued false", "the same order, resumed");
    assert_eq!(
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = '{buyer}'"
            )
        )?,
        1
    );
    let (status, _, again) = checkout_with(&rt, &bridge, &pod(&buyer), &[("Idempotency-Key", &key)])?;
    assert_eq!((status, &again), (201, &placed));
    ledger.drop_database(&rt);
    Ok(())
}

/// `checkout.session.expired` for the order `placed`.
fn session_expired(placed: &Value) -> Value {
    support::event(
        "checkout.session.expired",
        json!({
            "id": placed["checkoutSessionId"],
            "object": "checkout.session",
            "mode": "payment",
            "status": "expired",
            "payment_status": "unpaid",
            "amount_total": support::total_cents(placed),
            "currency": "usd",
            "client_reference_id": placed["orderId"],
            "metadata": {"order_id": placed["orderId"], "invoice_id": placed["invoiceId"]},
        }),
    )
}

#[test]
fn an_expired_session_voids_its_invoice_once_and_a_late_payment_is_kept() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let placed = bridge.checkout(&rt, &pod(&email("abandon")))?;
    let order = placed["orderId"].as_str().unwrap_or_default().to_owned();
    let state = || -> anyhow::Result<Vec<String>> {
        Ok(vec![
            one_text(&ledger, &rt, &format!("SELECT status FROM orders WHERE id = '{order}'"))?,
            one_text(
                &ledger,
                &rt,
                &format!(
                    "SELECT status || ' ' || coalesce(voided_at::text, '-') FROM invoices WHERE order_id = '{order}'"
                ),
            )?,
            ledger.count(&rt, "SELECT count(*) FROM audit_log")?.to_string(),
            ledger.count(&rt, "SELECT count(*) FROM stripe_events")?.to_string(),
        ])
    };
    assert_eq!(state()?[1], "issued -");

    let expired = session_expired(&placed);
    assert_eq!(bridge.deliver(&rt, &expired)?, 200);
    let after = state()?;
    assert_eq!(after[0], "expired");
    assert!(after[1].starts_with("void 20"), "{after:?}");
    assert_eq!(
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'checkout.session.expired' AND entity_id = '{order}'"
            )
        )?,
        1
    );
    // delivered again: nothing changes
    assert_eq!(bridge.deliver(&rt, &expired)?, 200);
    assert_eq!(state()?, after);

    // the buyer pays on the expired session after all: the payment is kept, on the void invoice
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(&rt, &session_completed(&placed, &intent))?, 200);
    assert_eq!(
        one_text(
            &ledger,
            &rt,
            &format!(
                "SELECT p.amount::text || ' ' || i.status FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE p.reference = '{intent}'"
            )
        )?,
        "19.99 void"
    );
    assert_eq!(
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'payment.on_void_invoice' AND entity_id = '{intent}'"
            )
        )?,
        1
    );
    let succeeded = support::payment_intent(
        "payment_intent.succeeded",
        &intent,
        placed["invoiceId"].as_str().unwrap_or_default(),
        1999,
    );
    assert_eq!(bridge.deliver(&rt, &succeeded)?, 200);
    assert_eq!(
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'payment.on_void_invoice' AND entity_id = '{intent}'"
            )
        )?,
        1,
        "said once per payment"
    );
    assert_eq!(one_text(&ledger, &rt, &format!("SELECT status FROM orders WHERE id = '{order}'"))?, "expired");

    // a session the ledger never made is kept as unmatched and changes nothing
    let stranger = session_expired(
        &json!({"checkoutSessionId": "cs_test_unknown", "orderId": uuid::Uuid::new_v4(), "invoiceId": uuid::Uuid::new_v4(), "total": "1.00"}),
    );
    assert_eq!(bridge.deliver(&rt, &stranger)?, 200);
    assert_eq!(
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'event.unmatched' AND entity_id = '{}'",
                stranger["id"].as_str().unwrap_or_default()
            )
        )?,
        1
    );
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn the_sixth_checkout_for_one_email_within_the_window_is_refused_and_writes_nothing() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let stripe = StripeRelay::start(&rt, &stripe_mock(&tb)?)?;
    // the bridge's own limits (test bridges have none unless told)
    let env = [
        ("STRIPE_API_BASE", stripe.base()),
        ("MPANEL_BRIDGE_CHECKOUT_LIMIT_EMAIL", "5".to_owned()),
        ("MPANEL_BRIDGE_CHECKOUT_LIMIT_ADDRESS", "20".to_owned()),
        ("MPANEL_BRIDGE_CHECKOUT_LIMIT_WINDOW_SECONDS", "600".to_owned()),
    ];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;
    let buyer = email("often");
    for _ in 0..4 {
        bridge.checkout(&rt, &pod(&buyer))?;
    }
    // the fifth, sent four times at once and once more later with its Idempotency-Key, counts once
    let key = format!("order-{}", uuid::Uuid::new_v4());
    let keyed = [("Idempotency-Key", key.as_str())];
    let body = pod(&buyer);
    let mut fifth = rt.block_on(futures::future::join_all((0..4).map(|_| post_checkout(&bridge, &body, &keyed))));
    fifth.push(checkout_with(&rt, &bridge, &body, &keyed));
    for answer in fifth {
        let (status, _, answer) = answer?;
        assert!(matches!(status, 201 | 409), "{status} {answer}");
    }
    let (before, asked) = (rows(&ledger, &rt)?, stripe.requests());
    // the same email spelled in capitals is the same email
    let (status, headers, answer) = checkout_with(&rt, &bridge, &pod(&buyer.to_uppercase()), &[])?;
    assert_eq!((status, code(&answer)), (429, Some("checkout_rate_limited")), "{answer}");
    let retry_after: u64 =
        headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=600).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(rows(&ledger, &rt)?, before, "a refused checkout wrote rows");
    assert_eq!(stripe.requests(), asked, "Stripe was asked for a refused checkout");
    let metrics = bridge.metrics(&rt)?;
    assert!(metrics.contains("mpanel_bridge_checkouts_total{outcome=\"limited\"} 1"), "{metrics}");
    // another buyer from the same address is not held up
    bridge.checkout(&rt, &pod(&email("often")))?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn the_client_address_limit_believes_forwarded_for_only_from_a_trusted_proxy() -> anyhow::Result<()> {
    let (rt, tb) = setup()?;
    let limit = ("MPANEL_BRIDGE_CHECKOUT_LIMIT_ADDRESS", "3".to_owned());
    for trusted in [false, true] {
        let ledger = Ledger::fresh(&rt, &tb)?;
        let mut env = vec![limit.clone()];
        if trusted {
            env.push(("MPANEL_BRIDGE_TRUSTED_PROXIES", "127.0.0.1".to_owned()));
        }
        let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &env)?;
        // three buyers behind one client address, each claiming another
        for n in 0..3 {
            let forwarded = format!("198.51.100.{n}, 203.0.113.7");
            let (status, _, answer) =
                checkout_with(&rt, &bridge, &pod(&email("addr")), &[("X-Forwarded-For", &forwarded)])?;
            assert_eq!(status, 201, "{answer}");
        }
        let claimed = [("X-Forwarded-For", "198.51.100.99, 203.0.113.7")];
        let (status, headers, answer) = checkout_with(&rt, &bridge, &pod(&email("addr")), &claimed)?;
        assert_eq!((status, code(&answer)), (429, Some("checkout_rate_limited")), "trusted {trusted}: {answer}");
        assert!(headers.contains_key("retry-after"));
        // a client at another address: believed only from a trusted proxy
        let elsewhere = [("X-Forwarded-For", "203.0.113.8")];
        let (status, _, answer) = checkout_with(&rt, &bridge, &pod(&email("addr")), &elsewhere)?;
        if trusted {
            assert_eq!(status, 201, "{answer}");
        } else {
            assert_eq!((status, code(&answer)), (429, Some("checkout_rate_limited")), "{answer}");
        }
        drop(bridge);
        ledger.drop_database(&rt);
    }
    Ok(())
}
