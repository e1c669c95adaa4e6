//! Running the billing bridge in a test: a fresh ledger database on the testbed's PostgreSQL, the
//! bridge binary against it, the testbed's kube-apiserver and stripe-mock, webhooks signed as
//! Stripe signs them, and a TCP relay to the apiserver that a test can cut to play an outage.
// each test binary uses a part of this module
#![allow(dead_code)]

pub mod capture;
pub mod operator;
pub mod stripe_front;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpanel_billing_bridge::ledger::tokens::{self, Role};
use mpanel_tests::Testbed;
use mpanel_tests::namesilo::{Account, Namesilo};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The key the test bridge signs portal sign-in links with, and the portal they lead to.
pub const PORTAL_KEY: &str = "test-portal-key-0123456789abcdef0123456789";
pub const PORTAL_URL: &str = "https://portal.shop.example";

/// A runtime for the async clients, and the rustls provider they need (installed once).
pub fn runtime() -> anyhow::Result<Runtime> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(Runtime::new()?)
}

/// A ledger database of its own, migrated; dropped with the test.
pub struct Ledger {
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
    name: String,
}

impl Ledger {
    pub fn fresh(rt: &Runtime, tb: &Testbed) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // a random part too: a pid comes back, and a ledger a killed run left behind keeps its name
        let name = format!(
            "ledger_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let admin_url = tb.get("PG_URL")?.to_owned();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).context("PG_URL has no database")?;
        let url = format!("{base}/{name}");
        let pool = rt.block_on(async {
            let admin = PgPool::connect(&admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await?;
            admin.close().await;
            mpanel_billing_bridge::db::connect(&url, 10).await.context("migrating the fresh ledger")
        })?;
        Ok(Self { url, pool, admin_url, name })
    }

    /// Runs `query` and returns the first column of the first row as i64.
    pub fn count(&self, rt: &Runtime, query: &str) -> anyhow::Result<i64> {
        Ok(rt.block_on(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query.to_owned())).fetch_one(&self.pool))?)
    }

    /// The first column of the first row as text; None when there is no row or it is NULL.
    pub fn text(&self, rt: &Runtime, query: &str) -> anyhow::Result<Option<String>> {
        let row = rt.block_on(
            sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(query.to_owned())).fetch_optional(&self.pool),
        )?;
        Ok(row.flatten())
    }

    pub fn drop_database(self, rt: &Runtime) {
        let _ = rt.block_on(async {
            self.pool.close().await;
            let admin = PgPool::connect(&self.admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&admin)
                .await
        });
    }
}

/// The role a test's bridge works as when it runs as the runtime role: an ordinary login role on
/// the testbed's PostgreSQL, shared by the tests' ledgers (privileges are per database).
pub const RUNTIME_ROLE: &str = "mpanel_bridge";

impl Ledger {
    /// The ledger's URL as `RUNTIME_ROLE`, made if it is missing; it may use the ledger once the
    /// bridge's migrations granted it (`runtime_env`, or `migrate` with those settings).
    pub fn runtime_url(&self, rt: &Runtime, tb: &Testbed) -> anyhow::Result<String> {
        rt.block_on(async {
            let admin = PgPool::connect(&self.admin_url).await?;
            // tests make it at the same time: whoever comes second finds it made
            let made = sqlx::raw_sql(
                "DO $$ BEGIN CREATE ROLE mpanel_bridge LOGIN; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
            )
            .execute(&admin)
            .await;
            admin.close().await;
            made
        })?;
        Ok(format!("postgres://{RUNTIME_ROLE}@{}:{}/{}", tb.get("PG_HOST")?, tb.get("PG_PORT")?, self.name))
    }

    /// The settings that make a bridge migrate as the owner (this ledger's `url`), grant
    /// `RUNTIME_ROLE` and work as it.
    pub fn runtime_env(&self, rt: &Runtime, tb: &Testbed) -> anyhow::Result<Vec<(&'static str, String)>> {
        Ok(vec![
            ("DATABASE_URL", self.runtime_url(rt, tb)?),
            ("MIGRATION_DATABASE_URL", self.url.clone()),
            ("MPANEL_BRIDGE_RUNTIME_ROLE", RUNTIME_ROLE.to_owned()),
        ])
    }
}

/// A bridge process; killed when dropped.
pub struct Bridge {
    child: Option<Child>,
    pub url: String,
    pub webhook_secret: String,
    pub http: reqwest::Client,
    pub log: PathBuf,
    keep_log: bool,
    /// The Namesilo double's account the bridge asks about domains (one of its own).
    pub registrar: Account,
    /// An admin API token (read-only) for `/metrics`.
    pub metrics_token: String,
}

impl Bridge {
    /// Starts `mpanel-billing-bridge serve` on `ledger` with `kubeconfig`, scanning every second, and
    /// waits for /healthz.
    pub fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger, kubeconfig: &std::path::Path) -> anyhow::Result<Self> {
        Self::start_with(rt, tb, ledger, kubeconfig, 1, None)
    }

    /// As `start`, with `MPANEL_BRIDGE_SCAN_SECONDS=scan_seconds`, logging to `log` (kept) or to a
    /// temporary file (removed when it stops).
    pub fn start_with(
        rt: &Runtime,
        tb: &Testbed,
        ledger: &Ledger,
        kubeconfig: &std::path::Path,
        scan_seconds: u64,
        log: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        Self::launch(rt, tb, ledger, kubeconfig, scan_seconds, log, &[])
    }

    /// As `start`, with `env` set over the settings it would have (e.g. another `STRIPE_API_BASE`).
    pub fn start_with_env(
        rt: &Runtime,
        tb: &Testbed,
        ledger: &Ledger,
        kubeconfig: &std::path::Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        Self::launch(rt, tb, ledger, kubeconfig, 1, None, env)
    }

    fn launch(
        rt: &Runtime,
        tb: &Testbed,
        ledger: &Ledger,
        kubeconfig: &std::path::Path,
        scan_seconds: u64,
        log: Option<PathBuf>,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let webhook_secret = tb.get("STRIPE_WEBHOOK_SECRET")?.to_owned();
        let keep_log = log.is_some();
        // a file, not a pipe nobody reads while it runs (a full pipe would stall the bridge)
        let log = log.unwrap_or_else(|| std::env::temp_dir().join(format!("bridge-{}-{port}.log", std::process::id())));
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let namesilo = Namesilo::from_testbed(tb)?;
        let registrar = rt.block_on(namesilo.new_account("1000.00"))?;
        let metrics_token = rt.block_on(tokens::create(&ledger.pool, &format!("metrics-{port}"), Role::ReadOnly))?;
        let child = Command::new(env!("CARGO_BIN_EXE_mpanel-billing-bridge"))
            .arg("serve")
            .env("MPANEL_BRIDGE_NAMESILO_URL", namesilo.api_url())
            .env("NAMESILO_API_KEY", registrar.key())
            .env("MPANEL_BRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &ledger.url)
            .env("STRIPE_SECRET_KEY", tb.get("STRIPE_SECRET_KEY")?)
            .env("STRIPE_API_BASE", tb.get("STRIPE_API_BASE")?)
            .env("STRIPE_WEBHOOK_SECRET", &webhook_secret)
            .env("MPANEL_BRIDGE_SCAN_SECONDS", scan_seconds.to_string())
            .env("MPANEL_BRIDGE_LIFECYCLE_SECONDS", "0")
            // tests and benches place many orders from one address, some for one email: checkouts
            // are limited only where a test sets the limits (`env`)
            .env("MPANEL_BRIDGE_CHECKOUT_LIMIT_EMAIL", "0")
            .env("MPANEL_BRIDGE_CHECKOUT_LIMIT_ADDRESS", "0")
            .env("KUBECONFIG", kubeconfig)
            .env("MPANEL_BRIDGE_PORTAL_KEY", PORTAL_KEY)
            .env("MPANEL_BRIDGE_PORTAL_URL", PORTAL_URL)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("starting mpanel-billing-bridge")?;
        let mut bridge = Self {
            child: Some(child),
            url,
            webhook_secret,
            http: reqwest::Client::new(),
            log,
            keep_log,
            registrar,
            metrics_token,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = rt.block_on(async { bridge.http.get(format!("{}/healthz", bridge.url)).send().await });
            if up.is_ok_and(|r| r.status().is_success()) {
                return Ok(bridge);
            }
            if let Some(child) = bridge.child.as_mut()
                && child.try_wait()?.is_some()
            {
                let logs = bridge.stop();
                bail!("the bridge exited: {logs}");
            }
            if Instant::now() > deadline {
                let logs = bridge.stop();
                bail!("the bridge did not answer /healthz in 30 s: {logs}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the bridge (by pid) and returns what it logged.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else { return String::new() };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let logs = std::fs::read_to_string(&self.log).unwrap_or_default();
        if !self.keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
        logs
    }

    /// Kills the bridge at once with SIGKILL, by pid: a crash, nothing shut down in order. Its log
    /// stays where it is.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the bridge's log so far.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// POST `path` with a JSON body; the status and the JSON answer.
    pub fn post(&self, rt: &Runtime, path: &str, body: &Value, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        rt.block_on(async {
            let mut req = self.http.post(format!("{}{path}", self.url)).json(body);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            Ok((status, resp.json().await.unwrap_or(Value::Null)))
        })
    }

    pub fn get(&self, rt: &Runtime, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        rt.block_on(async {
            let mut req = self.http.get(format!("{}{path}", self.url));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let text = resp.text().await?;
            Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
        })
    }

    /// Delivers the event `body` to the webhook as Stripe would, signed at `signed_at` (unix seconds).
    pub async fn send_event(&self, body: &str, secret: &str, signed_at: i64) -> anyhow::Result<u16> {
        let signature = mpanel_tests::stripe::sign(body, secret, signed_at);
        let resp = self
            .http
            .post(format!("{}/v1/stripe/webhook", self.url))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.to_owned())
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            eprintln!("webhook answered {status}: {}", resp.text().await.unwrap_or_default());
        }
        Ok(status)
    }

    /// Delivers `event`, signed at `signed_at` with `secret`.
    pub async fn deliver_at(&self, event: &Value, secret: &str, signed_at: i64) -> anyhow::Result<u16> {
        self.send_event(&event.to_string(), secret, signed_at).await
    }

    /// Delivers `event`, signed now with the right secret.
    pub fn deliver(&self, rt: &Runtime, event: &Value) -> anyhow::Result<u16> {
        rt.block_on(self.deliver_at(event, &self.webhook_secret, chrono::Utc::now().timestamp()))
    }

    /// Places an order through the public checkout and returns its answer.
    pub async fn place(&self, body: &Value) -> anyhow::Result<Value> {
        let resp = self.http.post(format!("{}/v1/checkout", self.url)).json(body).send().await?;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 201 {
            bail!("checkout answered {status}: {answer}");
        }
        Ok(answer)
    }

    pub fn checkout(&self, rt: &Runtime, body: &Value) -> anyhow::Result<Value> {
        rt.block_on(self.place(body))
    }

    /// The bridge's `/metrics` text, asked for with an admin API token.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let resp = self.http.get(format!("{}/metrics", self.url)).bearer_auth(&self.metrics_token).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("/metrics answered {status}: {text}");
        }
        Ok(text)
    }

    pub fn metrics(&self, rt: &Runtime) -> anyhow::Result<String> {
        rt.block_on(self.metrics_text())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

static EVENT_SEQ: AtomicU32 = AtomicU32::new(0);

fn event_id() -> String {
    format!(
        "evt_test_{}_{}_{}",
        std::process::id(),
        EVENT_SEQ.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4().simple()
    )
}

/// A Stripe event of `kind` about `object`, as Stripe sends it.
pub fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": event_id(),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": object},
    })
}

/// `checkout.session.completed` for the order `placed` (a checkout answer), paid by `intent`.
pub fn session_completed(placed: &Value, intent: &str) -> Value {
    session_paid(placed, intent, total_cents(placed), "usd")
}

/// `checkout.session.completed` for `placed`, paid by `intent` with `amount` of `currency`'s minor unit.
pub fn session_paid(placed: &Value, intent: &str, amount: i64, currency: &str) -> Value {
    event(
        "checkout.session.completed",
        json!({
            "id": placed["checkoutSessionId"],
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            "payment_intent": intent,
            "customer": format!("cus_{}", &intent[3..]),
            "amount_total": amount,
            "currency": currency,
            "client_reference_id": placed["orderId"],
            "metadata": {"order_id": placed["orderId"], "invoice_id": placed["invoiceId"]},
        }),
    )
}

/// A `payment_intent.*` event for the invoice `invoice_id` of `cents`.
pub fn payment_intent(kind: &str, intent: &str, invoice_id: &str, cents: i64) -> Value {
    let mut object = json!({
        "id": intent,
        "object": "payment_intent",
        "amount": cents,
        "amount_received": if kind == "payment_intent.succeeded" { cents } else { 0 },
        "currency": "usd",
        "status": if kind == "payment_intent.succeeded" { "succeeded" } else { "requires_payment_method" },
        "metadata": {"invoice_id": invoice_id},
    });
    if kind == "payment_intent.payment_failed" {
        object["last_payment_error"] = json!({"code": "card_declined", "message": "Your card was declined."});
    }
    event(kind, object)
}

/// Stripe's `charge.dispute.<kind>` for the dispute `id` of `intent` (`cents`), in `status`.
pub fn dispute(kind: &str, id: &str, intent: &str, cents: i64, status: &str) -> Value {
    event(
        &format!("charge.dispute.{kind}"),
        json!({
            "id": id, "object": "dispute", "charge": format!("ch_{}", &intent[3..]), "payment_intent": intent,
            "amount": cents, "currency": "usd", "reason": "fraudulent", "status": status,
        }),
    )
}

/// The ledger subscription the paid order `placed` (a checkout answer) is fulfilled into, once the
/// fulfilment (a worker of the bridge) has made it.
pub fn subscription_of_order(rt: &Runtime, ledger: &Ledger, placed: &Value) -> anyhow::Result<uuid::Uuid> {
    let order = placed["orderId"].as_str().unwrap_or_default();
    let mut found = None;
    let made = mpanel_tests::eventually(Duration::from_secs(20), || {
        found = rt.block_on(
            sqlx::query_scalar("SELECT id FROM subscriptions WHERE order_id = $1::uuid")
                .bind(order)
                .fetch_optional(&ledger.pool),
        )?;
        Ok(found.is_some())
    })?;
    found.filter(|_| made).with_context(|| format!("order {order} was not fulfilled into a subscription"))
}

/// Activated as the activation gate does it, as of `at`: its first period starts then; its end.
pub fn activate_at(
    rt: &Runtime,
    ledger: &Ledger,
    id: uuid::Uuid,
    cycle: mpanel_billing_bridge::ledger::Cycle,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use mpanel_billing_bridge::ledger::outbox::{self, Action};
    rt.block_on(async {
        let mut tx = ledger.pool.begin().await?;
        let activated =
            mpanel_billing_bridge::ledger::subscriptions::activate(&mut *tx, id, at, cycle.after(at)).await?;
        let end = activated
            .and_then(|s| s.current_period_end)
            .with_context(|| format!("subscription {id} was not pending activation"))?;
        outbox::enqueue(&mut *tx, id, Action::Apply).await?;
        tx.commit().await?;
        Ok(end)
    })
}

/// Stripe's `charge.refunded` for `intent` of `cents`, `refunded_cents` refunded so far.
pub fn charge_refunded(intent: &str, cents: i64, refunded_cents: i64) -> Value {
    event(
        "charge.refunded",
        json!({
            "id": format!("ch_{}", &intent[3..]), "object": "charge", "payment_intent": intent, "amount": cents,
            "amount_refunded": refunded_cents, "currency": "usd", "refunded": refunded_cents == cents, "metadata": {},
        }),
    )
}

pub fn total_cents(placed: &Value) -> i64 {
    let total = placed["total"].as_str().map(str::to_owned).unwrap_or_else(|| placed["total"].to_string());
    let (whole, frac) = total.split_once('.').unwrap_or((&total, "0"));
    whole.parse::<i64>().unwrap_or(0) * 100 + format!("{frac:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

#[allow(unused_imports)]
pub use mpanel_tests::eventually;

/// A unique customer email for a test.
pub fn email(label: &str) -> String {
    format!("{label}-{}-{}@shop.example", std::process::id(), EVENT_SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The Subscription resources a ledger subscription made, as `kubectl get` shows them.
pub fn subscriptions_of(tb: &Testbed, ledger_id: &str) -> anyhow::Result<Vec<Value>> {
    let selector = format!("billing.mpanel.migrahosting.com/subscription={ledger_id}");
    let out =
        tb.kubectl_ok(&["get", "subscriptions", "-A", "-l", &selector, "-o", "json", "--show-managed-fields"], None)?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// Deletes the customer namespaces a test's purchases created.
pub struct Namespaces<'a> {
    pub tb: &'a Testbed,
    pub names: Vec<String>,
}

impl Drop for Namespaces<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.tb.kubectl(&["delete", "namespace", name, "--wait=false"], None);
        }
    }
}

/// A TCP relay to stripe-mock that keeps every byte the bridge sent through it: what the bridge
/// asked Stripe for, read on its way.
pub struct RecordingRelay {
    /// Where to point the bridge's STRIPE_API_BASE.
    pub base: String,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingRelay {
    pub fn start(rt: &Runtime, tb: &Testbed) -> anyhow::Result<Self> {
        let target = tb.get("STRIPE_API_BASE")?.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let base = format!("http://{}", listener.local_addr()?);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = sent.clone();
        let task = rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (target, kept) = (target.clone(), kept.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    let (mut client_in, mut client_out) = inbound.into_split();
                    let (mut server_in, mut server_out) = outbound.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = client_in.read(&mut buf).await {
                            kept.lock().map(|mut k| k.extend_from_slice(&buf[..n])).ok();
                            if server_out.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_out.shutdown().await;
                    };
                    let downstream = async {
                        let _ = tokio::io::copy(&mut server_in, &mut client_out).await;
                        let _ = client_out.shutdown().await;
                    };
                    tokio::join!(upstream, downstream);
                });
            }
        });
        Ok(Self { base, sent, task })
    }

    /// What the bridge sent, with the form encoding's brackets decoded.
    pub fn sent(&self) -> String {
        let bytes = self.sent.lock().map(|k| k.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace("%5B", "[").replace("%5D", "]")
    }
}

impl Drop for RecordingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP relay to `target` (`host:port`) that counts the connections made through it: whether a
/// peer (stripe-mock) was called at all.
pub struct Tap {
    pub addr: std::net::SocketAddr,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tap {
    pub fn start(rt: &Runtime, target: &str) -> anyhow::Result<Self> {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, target) = (connections.clone(), target.to_owned());
        let task = rt.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { addr, connections, task })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP relay to the apiserver, and a kubeconfig that goes through it: `cut` plays an outage
/// for whoever uses that kubeconfig (connections refused), `restore` ends it.
pub struct ApiRelay {
    pub kubeconfig: PathBuf,
    listen: std::net::SocketAddr,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiRelay {
    pub fn start(rt: &Runtime, tb: &Testbed) -> anyhow::Result<Self> {
        let original = std::fs::read_to_string(tb.get("KUBECONFIG")?)?;
        let server = original
            .split("https://")
            .nth(1)
            .and_then(|rest| rest.split(['"', '\n', ' ', ',', '}']).next())
            .context("the kubeconfig has no https server")?
            .to_owned();
        let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let rewritten = original.replace(&format!("https://{server}"), &format!("https://{listen}"));
        let kubeconfig =
            std::env::temp_dir().join(format!("relay-{}-{}.kubeconfig", std::process::id(), listen.port()));
        std::fs::write(&kubeconfig, rewritten)?;
        let mut relay = Self { kubeconfig, listen, target: server, task: None };
        relay.restore(rt)?;
        Ok(relay)
    }

    pub fn restore(&mut self, rt: &Runtime) -> anyhow::Result<()> {
        let listener = rt.block_on(tokio::net::TcpListener::bind(self.listen))?;
        let target = self.target.clone();
        self.task = Some(rt.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
        Ok(())
    }

    /// Closes the listener and every relayed connection.
    pub fn cut(&mut self, rt: &Runtime) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = rt.block_on(task);
        }
    }
}

/// An admin API token of `role`, made in the ledger as `create-token` makes one.
pub fn admin_token(rt: &Runtime, ledger: &Ledger, role: Role) -> anyhow::Result<String> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!("{}-{}-{}", role.as_str(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    Ok(rt.block_on(tokens::create(&ledger.pool, &name, role))?)
}

/// Writes a Subscription resource's status as the operator does when it reaches `phase`.
pub fn report_status(tb: &Testbed, sub: &Value, phase: &str, ready: bool, message: &str) -> anyhow::Result<()> {
    let ns = sub["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = sub["metadata"]["name"].as_str().unwrap_or_default();
    let current: Value =
        serde_json::from_str(&tb.kubectl_ok(&["get", "subscription", name, "-n", ns, "-o", "json"], None)?)?;
    let generation = current["metadata"]["generation"].clone();
    let status = json!({"status": {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": [{
            "type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": if ready { "Active" } else { phase }, "message": message,
            "lastTransitionTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "observedGeneration": generation,
        }],
    }});
    tb.kubectl_ok(
        &["patch", "subscription", name, "-n", ns, "--subresource=status", "--type=merge", "-p", &status.to_string()],
        None,
    )?;
    Ok(())
}
