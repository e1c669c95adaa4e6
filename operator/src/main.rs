//! The mPanel operator: one binary that runs a controller per kind.

use mpanel_operator::{health, tls};

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, ResourceExt};
use tokio::net::TcpListener;

/// Kinds that have a controller in this build. The sandbox waits for these to report Ready.
const CONTROLLERS: &[&str] = &[];

#[derive(Parser)]
#[command(
    version,
    about = "The mPanel operator: converges CloudPods, Domains, DnsZones, Mailboxes, Certificates and Subscriptions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the cluster (KUBECONFIG or in-cluster) and run the controllers until SIGTERM.
    Run {
        /// Address of /healthz and /readyz.
        #[arg(long, env = "MPANEL_HEALTH_ADDR", default_value = "127.0.0.1:8080")]
        health_addr: SocketAddr,
    },
    /// Print the kinds this build has a controller for, one per line.
    Controllers,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Controllers => {
            for kind in CONTROLLERS {
                println!("{kind}");
            }
            Ok(())
        }
        Command::Run { health_addr } => run(health_addr).await,
    }
}

async fn run(health_addr: SocketAddr) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let health = health::Health::default();
    let listener = TcpListener::bind(health_addr).await?;
    tracing::info!(%health_addr, "serving /healthz and /readyz");
    let server = tokio::spawn(health::serve(listener, health.clone(), shutdown_signal()));

    let client = Client::try_default().await?;
    verify_crds_installed(&client).await?;
    health.set_ready();
    tracing::info!(controllers = ?CONTROLLERS, "operator ready");

    server.await??;
    tracing::info!("shut down");
    Ok(())
}

/// Refuses to start when the cluster lacks one of the CRDs this build was compiled with.
async fn verify_crds_installed(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for wanted in mpanel_crds::crds() {
        let name = wanted.name_any();
        if crds.get_opt(&name).await?.is_none() {
            anyhow::bail!("CustomResourceDefinition {name} is not installed; apply crds/manifests/ first");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
