//! The mPanel billing bridge: turns paid orders into Subscriptions and activates what really runs.
//! This build serves health only; the ledger, Stripe and the materializer come next.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

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
    /// Serve the HTTP API until SIGTERM.
    Serve {
        /// Listen address.
        #[arg(long, env = "MPANEL_BRIDGE_LISTEN", default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve { listen } = Cli::parse().command;
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    tracing_subscriber::fmt().json().init();
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "billing bridge serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
