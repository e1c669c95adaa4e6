//! The bridge's settings: command-line flags, each also read from the environment. Secrets come
//! from the environment (a Kubernetes Secret in the chart), never from flags in a process list.

use std::net::SocketAddr;

use clap::Args;

/// The ledger: the bridge works as a runtime role that owns nothing, so the database's rules bind
/// it; the migrations run as the tables' owner, who then grants the runtime role what it uses.
#[derive(Debug, Clone, Args)]
pub struct Database {
    /// PostgreSQL URL of the ledger, as the bridge works with it (the runtime role).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub url: String,
    /// PostgreSQL URL of the ledger as its owner, for the migrations; DATABASE_URL when unset.
    #[arg(long = "migration-database-url", env = "MIGRATION_DATABASE_URL", hide_env_values = true)]
    pub migration_url: Option<String>,
    /// The role DATABASE_URL logs in as, made beforehand (LOGIN, not a superuser, not the owner):
    /// after migrating, the owner grants it what the bridge uses and nothing more.
    #[arg(long = "runtime-role", env = "MPANEL_BRIDGE_RUNTIME_ROLE")]
    pub runtime_role: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Serve {
    #[command(flatten)]
    pub database: Database,
    /// Listen address of the HTTP API.
    #[arg(long, env = "MPANEL_BRIDGE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Stripe secret API key.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: String,
    /// Stripe API base URL (stripe-mock in tests); Stripe itself when unset.
    #[arg(long, env = "STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Signing secret of the webhook endpoint (`whsec_…`).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: String,
    /// How old a webhook signature may be, in seconds.
    #[arg(long, env = "MPANEL_BRIDGE_WEBHOOK_TOLERANCE", default_value_t = 300)]
    pub webhook_tolerance_secs: i64,
    /// The tenant whose catalog and ledger this bridge serves.
    #[arg(long, env = "MPANEL_BRIDGE_TENANT", default_value = "migrahosting")]
    pub tenant: String,
    /// The address customers reach this bridge at: the pay links in their mails start with it
    /// (`<url>/v1/pay/<token>`).
    #[arg(long, env = "MPANEL_BRIDGE_PUBLIC_URL", default_value = "https://billing.migrahosting.com")]
    pub public_url: String,
    /// Where Stripe Checkout returns the buyer after paying.
    #[arg(long, env = "MPANEL_BRIDGE_SUCCESS_URL", default_value = "https://panel.migrahosting.com/checkout/done")]
    pub success_url: String,
    /// Where Stripe Checkout returns the buyer who cancels.
    #[arg(long, env = "MPANEL_BRIDGE_CANCEL_URL", default_value = "https://panel.migrahosting.com/checkout/cancelled")]
    pub cancel_url: String,
    /// Seconds between scans for paid invoices and outbox entries a lost notification left behind,
    /// and between full passes of the activation gate over every bridge-made Subscription.
    #[arg(long, env = "MPANEL_BRIDGE_SCAN_SECONDS", default_value_t = 30)]
    pub scan_seconds: u64,
    /// Seconds between lifecycle passes (renewals, overdue, suspension, termination); 0 turns them off.
    #[arg(long, env = "MPANEL_BRIDGE_LIFECYCLE_SECONDS", default_value_t = 300)]
    pub lifecycle_seconds: u64,
    /// Timeout of one Stripe API call, in seconds.
    #[arg(long, env = "MPANEL_BRIDGE_STRIPE_TIMEOUT", default_value_t = 20)]
    pub stripe_timeout_secs: u64,
    /// SMTP server (host:port, plain SMTP) customer notifications are sent to; when unset they are
    /// recorded in the ledger and not sent.
    #[arg(long, env = "NOTIFY_SMTP_ADDR")]
    pub notify_smtp_addr: Option<String>,
    /// The customer portal's address: sign-in links lead to `<url>/sign-in`, and the Stripe Billing
    /// Portal returns there.
    #[arg(long, env = "MPANEL_BRIDGE_PORTAL_URL", default_value = "https://panel.migrahosting.com")]
    pub portal_url: String,
    /// The key sign-in links are signed with (at least 32 bytes; the same on every replica). When
    /// unset, customers cannot sign in to the portal.
    #[arg(long, env = "MPANEL_BRIDGE_PORTAL_KEY", hide_env_values = true)]
    pub portal_key: Option<String>,
}
