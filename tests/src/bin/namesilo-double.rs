//! A double of Namesilo's domain API for the testbed; see `mpanel_tests::namesilo::double`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mpanel_tests::namesilo::double::{self, Money};

/// Serves a Namesilo API double (`/api/{operation}`, JSON only) and its control routes (`/_ctl`).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8085
    #[arg(long)]
    listen: SocketAddr,
    /// The API key of the first account (better passed in the environment than on the command line)
    #[arg(long, env = "NAMESILO_DOUBLE_KEY", hide_env_values = true)]
    key: String,
    /// The first account's balance in dollars, e.g. 1000.00
    #[arg(long, default_value = "1000.00", value_parser = Money::parse)]
    balance: Money,
    /// How long a transfer with the right auth code waits at the registry before it completes
    #[arg(long, default_value_t = 2)]
    transfer_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let config = double::Config {
        key: args.key,
        balance: args.balance,
        transfer_delay: Duration::from_secs(args.transfer_seconds),
    };
    eprintln!("namesilo-double: listening on {}", listener.local_addr()?);
    double::serve(listener, &config, stopped()).await?;
    eprintln!("namesilo-double: stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn stopped() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
