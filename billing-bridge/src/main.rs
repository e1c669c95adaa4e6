//! The mPanel billing bridge: `serve` runs the HTTP API and the workers (fulfilment, outbox,
//! activation gate, lifecycle); the other commands are for operators.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use mpanel_billing_bridge::checkout::ReturnUrls;
use mpanel_billing_bridge::config::{Database, Serve};
use mpanel_billing_bridge::http::{self, AppState};
use mpanel_billing_bridge::ledger::tokens::{self, Role};
use mpanel_billing_bridge::ledger::{catalog, pay_links, roles};
use mpanel_billing_bridge::metrics::Metrics;
use mpanel_billing_bridge::portal::SignInLinks;
use mpanel_billing_bridge::recent_events::RecentEvents;
use mpanel_billing_bridge::registrar::{self, Registrar};
use mpanel_billing_bridge::stripe::api::StripeClient;
use mpanel_billing_bridge::workers::Workers;
use mpanel_billing_bridge::{
    activation, db, fulfilment, ledger_gauges, lifecycle, notify, outbox_worker, refunds, renewal_charges,
};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How often the ledger gauges are read again, at the most.
const GAUGES_EVERY: Duration = Duration::from_secs(15);

#[derive(Parser)]
#[command(
    version,
    about = "The mPanel billing bridge: Postgres ledger, Stripe checkout and webhooks, Subscription materializer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and run the workers until SIGTERM.
    Serve(Box<Serve>),
    /// Bring the ledger's schema up to date and exit.
    Migrate(Database),
    /// Create an admin API token; it is printed once.
    CreateToken {
        #[command(flatten)]
        database: Database,
        /// A name for the token (who or what holds it).
        #[arg(long)]
        name: String,
        /// admin, billing, support or read-only.
        #[arg(long)]
        role: String,
        /// RFC 3339 time the token stops working (default: never; an admin may revoke or expire it).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Run one lifecycle pass as of a given time (default now) and print what it did.
    LifecycleTick {
        #[command(flatten)]
        database: Database,
        /// RFC 3339 time to run the pass as of.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(serve) => run(*serve).await,
        Command::Migrate(database) => {
            migrate(&database).await?.close().await;
            match &database.runtime_role {
                Some(role) => println!("ledger schema is current; {role} may use it"),
                None => println!("ledger schema is current"),
            }
            Ok(())
        }
        Command::CreateToken { database, name, role, expires_at } => {
            let pool = ledger(&database, 1).await?;
            let role = Role::parse(&role)?;
            println!("{}", tokens::create_expiring(&pool, &name, role, expires_at).await?);
            Ok(())
        }
        Command::LifecycleTick { database, at } => {
            let pool = ledger(&database, 2).await?;
            let done = lifecycle::tick(&pool, at.unwrap_or_else(Utc::now)).await?;
            println!("{}", serde_json::to_string(&done)?);
            Ok(())
        }
    }
}

/// Brings the schema up to date as its owner (MIGRATION_DATABASE_URL, else DATABASE_URL) and grants
/// the runtime role, if one is named, what the bridge uses. The owner's connection.
async fn migrate(database: &Database) -> anyhow::Result<PgPool> {
    let owner_url = database.migration_url.as_deref().unwrap_or(&database.url);
    let owner = db::connect(owner_url, 1).await.context("migrating the ledger")?;
    if let Some(role) = &database.runtime_role {
        roles::grant_runtime(&owner, role).await.with_context(|| format!("granting the runtime role {role}"))?;
    }
    Ok(owner)
}

/// The ledger, migrated, as DATABASE_URL connects to it.
async fn ledger(database: &Database, max_connections: u32) -> anyhow::Result<PgPool> {
    migrate(database).await?.close().await;
    db::open(&database.url, max_connections).await.context("connecting to the ledger")
}

/// The links of sign-in mails, when the portal has a key to sign them with.
fn sign_in_links(cfg: &Serve) -> anyhow::Result<Option<SignInLinks>> {
    match cfg.portal_key.as_deref() {
        Some(key) => Ok(Some(SignInLinks::new(key, &cfg.portal_url)?)),
        None => {
            tracing::warn!("no MPANEL_BRIDGE_PORTAL_KEY: customers cannot sign in to the portal");
            Ok(None)
        }
    }
}

/// The mailer of customer notifications, when there is an SMTP server to send them through.
fn mailer(cfg: &Serve, sign_in: Option<&SignInLinks>) -> anyhow::Result<Option<notify::Mailer>> {
    let Some(addr) = cfg.notify_smtp_addr.as_deref() else {
        tracing::warn!("no NOTIFY_SMTP_ADDR: customer notifications are recorded in the ledger, not sent");
        return Ok(None);
    };
    let mailer = notify::Mailer::new(addr)?;
    Ok(Some(match sign_in {
        Some(links) => mailer.with_sign_in_links(links.clone()),
        None => mailer,
    }))
}

/// Resolves on Ctrl-C or SIGTERM: the server stops taking requests and finishes those it has.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run(cfg: Serve) -> anyhow::Result<()> {
    let pool = ledger(&cfg.database, 20).await?;
    let tenant = catalog::tenant_id(&pool, &cfg.tenant).await?;
    pay_links::set_public_url(&pool, tenant, cfg.public_url.trim_end_matches('/'))
        .await
        .context("MPANEL_BRIDGE_PUBLIC_URL (an http(s) URL)")?;
    let stripe = Arc::new(StripeClient::new(
        &cfg.stripe_secret_key,
        cfg.stripe_api_base.as_deref(),
        Duration::from_secs(cfg.stripe_timeout_secs),
    )?);
    let registrar = Registrar::from_env().context("registrar settings")?.map(Arc::new);
    if registrar.is_none() {
        tracing::warn!(
            "no {} and {}: purchases that register or transfer a domain are refused",
            registrar::URL_ENV,
            registrar::KEY_ENV
        );
    }
    let kube = kube::Client::try_default().await.context("Kubernetes client (KUBECONFIG or in-cluster)")?;
    let metrics = Arc::new(Metrics::default());
    let fulfil = Arc::new(Notify::new());
    let outbox_kick = Arc::new(Notify::new());
    let refund_stray = Arc::new(Notify::new());
    let scan = Duration::from_secs(cfg.scan_seconds.max(1));

    let mut workers = Workers::default();
    workers
        .spawn("fulfilment", fulfilment::run(pool.clone(), fulfil.clone(), scan, outbox_kick.clone(), metrics.clone()));
    workers.spawn("outbox", outbox_worker::run(pool.clone(), kube.clone(), outbox_kick, scan, metrics.clone()));
    workers.spawn("activation", activation::run(pool.clone(), kube.clone(), stripe.clone(), metrics.clone(), scan));
    workers.spawn("stray refunds", refunds::run_stray(pool.clone(), stripe.clone(), refund_stray.clone(), scan));
    workers.spawn("ledger gauges", ledger_gauges::run(pool.clone(), tenant, metrics.clone(), scan.min(GAUGES_EVERY)));
    if cfg.lifecycle_seconds > 0 {
        let every = Duration::from_secs(cfg.lifecycle_seconds);
        workers.spawn("lifecycle", lifecycle::run(pool.clone(), every, metrics.clone()));
        workers.spawn("renewal charges", renewal_charges::run(pool.clone(), stripe.clone(), every, metrics.clone()));
    }
    let sign_in = sign_in_links(&cfg)?;
    if let Some(mailer) = mailer(&cfg, sign_in.as_ref())? {
        workers.spawn("notification", notify::worker::run(pool.clone(), mailer, scan, metrics.clone()));
    }

    let state = Arc::new(AppState {
        pool,
        tenant,
        stripe,
        webhook_secret: cfg.stripe_webhook_secret,
        webhook_tolerance_secs: cfg.webhook_tolerance_secs,
        return_urls: ReturnUrls { success: cfg.success_url, cancel: cfg.cancel_url },
        metrics,
        fulfil,
        refund_stray,
        recent_events: RecentEvents::default(),
        kube: Some(kube),
        registrar,
        sign_in: sign_in.map(Arc::new),
    });
    let listener = TcpListener::bind(cfg.listen).await?;
    tracing::info!(listen = %cfg.listen, "billing bridge serving");
    let serving = axum::serve(listener, http::router(state)).with_graceful_shutdown(stop_signal());
    tokio::select! {
        served = serving => Ok(served?),
        ended = workers.ended() => {
            tracing::error!(error = %ended, "a worker ended");
            Err(ended.into())
        }
    }
}
