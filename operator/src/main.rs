//! The mPanel operator: one binary that runs a controller per kind.

mod wiring;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, ResourceExt};
use mpanel_operator::config::Config;
use mpanel_operator::controllers::{backup, certificate, cloudpod, dnszone, domain, mailbox, subscription};
use mpanel_operator::endpoints::{self, Health};
use mpanel_operator::leader::Leadership;
use mpanel_operator::metrics::{ApiRequestsLayer, Metrics};
use mpanel_operator::tls;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
        /// Configuration file; without one, the built-in defaults (no external systems).
        #[arg(long, env = "MPANEL_CONFIG")]
        config: Option<PathBuf>,
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "MPANEL_HEALTH_ADDR", default_value = "127.0.0.1:8080")]
        health_addr: SocketAddr,
        /// Name of this replica in the Lease and in Events (default: host name and pid).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
    },
    /// Print an object's Ready condition and newest Event; for a Subscription, also each child's,
    /// as a tree (KUBECONFIG or in-cluster).
    Describe {
        /// `subscription/<name>`, or another kind: cloudpod, domain, dnszone, mailbox, certificate.
        target: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// Print the kinds the configuration enables a controller for, one per line.
    Controllers {
        #[arg(long, env = "MPANEL_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => Config::parse("{}").map_err(anyhow::Error::msg),
    }
}

/// The kinds `config` runs a controller for.
fn enabled(config: &Config) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    if config.powerdns.is_some() {
        kinds.push(dnszone::KIND);
        if config.acme.is_some() {
            kinds.push(certificate::KIND);
        }
    }
    if config.mailcore.is_some() {
        kinds.push(mailbox::KIND);
    }
    if config.proxmox.is_some() {
        kinds.push(cloudpod::KIND);
        kinds.extend([backup::policy::KIND, backup::restore::KIND]);
    }
    if config.namesilo.is_some() {
        kinds.push(domain::KIND);
    }
    // Subscriptions compose the other kinds: they run wherever one of those does
    if !kinds.is_empty() {
        kinds.push(subscription::KIND);
    }
    kinds
}

/// jemalloc returns what a burst freed (a first list of every object, a cold start's reconciles)
/// instead of keeping it in per-thread arenas.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Controllers { config } => {
            for kind in enabled(&load(config.as_ref())?) {
                println!("{kind}");
            }
            Ok(())
        }
        Command::Describe { target, namespace } => {
            tls::install_crypto_provider();
            let client = Client::try_default().await?;
            print!("{}", mpanel_operator::describe::describe(&client, &namespace, &target).await?);
            Ok(())
        }
        Command::Run { config, health_addr, identity } => {
            let config = load(config.as_ref())?;
            let identity = identity.unwrap_or_else(default_identity);
            run(config, health_addr, identity).await
        }
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mpanel-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

async fn run(config: Config, health_addr: SocketAddr, identity: String) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let shutdown = {
        let stopping = stopping.clone();
        move || {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|s| *s).await;
            }
        }
    };

    let metrics = Arc::new(Metrics::default());
    let health = Health::default();
    let listener = TcpListener::bind(health_addr).await?;
    tracing::info!(%health_addr, "serving /healthz, /readyz and /metrics");
    let server = tokio::spawn(endpoints::serve(listener, health.clone(), metrics.clone(), shutdown()));

    // every request the controllers send is counted in mpanel_api_requests_total
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&ApiRequestsLayer::new(metrics.clone()))
        .build();
    verify_crds_installed(&client).await?;
    health.set_ready();
    let kinds = enabled(&config);
    tracing::info!(controllers = ?kinds, %identity, "operator ready");

    // a replica with nothing to reconcile writes nothing, so it need not lead
    let leadership = if config.leader_election.enabled && !kinds.is_empty() {
        tokio::select! {
            held = Leadership::acquire(client.clone(), &config.leader_election, &identity) => Some(held?),
            _ = shutdown() => None,
        }
    } else {
        None
    };

    if !*stopping.borrow() {
        wiring::run_controllers(&config, &client, &metrics, &identity, leadership, &shutdown).await?;
    }
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
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
