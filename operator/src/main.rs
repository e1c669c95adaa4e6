//! The mPanel operator: one binary that runs a controller per kind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::{Api, Client, ResourceExt};
use mpanel_operator::config::{Config, MAILCORE_LIMITS, NAMESILO_LIMITS, POWERDNS_LIMITS, PROXMOX_LIMITS, SecretRef};
use mpanel_operator::controllers::certificate::{self, budget::Budget, dns01::Dns01, issuers::Issuers};
use mpanel_operator::controllers::{Backoff, backup, cloudpod, dnszone, domain, mailbox, subscription};
use mpanel_operator::endpoints::{self, Health};
use mpanel_operator::leader::Leadership;
use mpanel_operator::metrics::Metrics;
use mpanel_operator::names::NameIndex;
use mpanel_operator::providers::mailcore::{self, MailCore};
use mpanel_operator::providers::namesilo::{self, Namesilo};
use mpanel_operator::providers::powerdns::{self, PowerDns};
use mpanel_operator::providers::proxmox::{self, Proxmox};
use mpanel_operator::providers::throttle::Throttle;
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

    let client = Client::try_default().await?;
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
        run_controllers(&config, &client, &metrics, &identity, leadership, &shutdown).await?;
    }
    server.await??;
    tracing::info!("shut down");
    Ok(())
}

/// Starts the controllers `config` enables and runs them until shutdown. Exits the process when the
/// Lease is lost, since another replica may already be writing.
async fn run_controllers<F>(
    config: &Config,
    client: &Client,
    metrics: &Arc<Metrics>,
    identity: &str,
    leadership: Option<Leadership>,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "mpanel-operator".into(), instance: Some(identity.to_owned()) },
    );
    let mut controllers = tokio::task::JoinSet::new();
    release_unmanaged(&mut controllers, config, client, &recorder, shutdown);
    if enabled(config).is_empty() {
        shutdown().await;
        return Ok(());
    }
    let attempt_bound = config.reconcile_timeout().map_err(anyhow::Error::msg)?;
    let names = NameIndex::start(client).await.context("watching DnsZones and Domains for the name index")?;
    // CloudPods and certificate delivery share one Proxmox, so one set of limits
    let pve = match &config.proxmox {
        Some(px) => Some(proxmox_connection(client, px, metrics).await?),
        None => None,
    };
    let pve_client = |(config, throttle): &(proxmox::Config, Throttle)| {
        Proxmox::new(config.clone(), metrics.clone()).map(|p| p.with_throttle(throttle.clone()))
    };
    if let Some(pdns) = &config.powerdns {
        let api_key = read_secret(client, &pdns.api_key_secret_ref).await?;
        let pdns_config = powerdns::Config {
            api_url: pdns.api_url.clone(),
            api_key,
            server_id: pdns.server_id.clone(),
            timeout: Duration::from_secs(pdns.timeout_seconds),
        };
        // DnsZones and DNS-01 records share one PowerDNS, so one set of limits
        let pdns_throttle = Throttle::new("powerdns", pdns.rate_limit.or(POWERDNS_LIMITS), Some(metrics.clone()));
        let dns = PowerDns::new(pdns_config.clone(), metrics.clone())?.with_throttle(pdns_throttle.clone());
        let (cloudpods, writer) = reflector::store();
        let ctx = Arc::new(dnszone::Context {
            client: client.clone(),
            names: names.clone(),
            namespace: config.watch_namespace.clone(),
            dns,
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            resync: config.resync().map_err(anyhow::Error::msg)?,
            backoff: Backoff::bounded(attempt_bound),
            cloudpods,
        });
        controllers.spawn(dnszone::run(ctx, writer, shutdown()));

        if let (Some(acme), Some(dns_address)) = (&config.acme, &pdns.dns_address) {
            let server = tokio::net::lookup_host(dns_address)
                .await
                .with_context(|| format!("powerdns.dnsAddress {dns_address}"))?
                .next()
                .with_context(|| format!("powerdns.dnsAddress {dns_address} resolves to nothing"))?;
            let (dnszones, writer) = reflector::store();
            let ctx = Arc::new(certificate::Context {
                client: client.clone(),
                names: names.clone(),
                namespace: config.watch_namespace.clone(),
                dns01: Dns01::new(
                    PowerDns::new(pdns_config, metrics.clone())?.with_throttle(pdns_throttle),
                    server,
                    Duration::from_secs(pdns.timeout_seconds),
                ),
                issuers: Issuers::new(acme, client.clone(), metrics.clone()),
                budget: Budget {
                    api: Api::namespaced(client.clone(), &config.leader_election.namespace),
                    name: acme.budget_config_map.clone(),
                    limit: acme.orders_per_registered_domain_per_week,
                },
                metrics: metrics.clone(),
                recorder: recorder.clone(),
                resync: config.resync().map_err(anyhow::Error::msg)?,
                backoff: Backoff::bounded(attempt_bound),
                dnszones,
                guest_agent: pve.as_ref().map(pve_client).transpose()?,
            });
            controllers.spawn(certificate::run(ctx, writer, shutdown()));
        }
    }

    if let Some(mc) = &config.mailcore {
        let database_url = read_secret(client, &mc.database_url_secret_ref).await?;
        let mail = MailCore::new(
            &mailcore::Config {
                database_url,
                timeout: Duration::from_secs(mc.timeout_seconds),
                max_connections: mc.max_connections,
            },
            metrics.clone(),
        )?
        .with_throttle(Throttle::new("mailcore", mc.rate_limit.or(MAILCORE_LIMITS), Some(metrics.clone())));
        let (dnszones, writer) = reflector::store();
        let ctx = Arc::new(mailbox::Context {
            client: client.clone(),
            names: names.clone(),
            namespace: config.watch_namespace.clone(),
            mail,
            maildir_root: mc.maildir_root.as_ref().map(Into::into),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            resync: config.resync().map_err(anyhow::Error::msg)?,
            backoff: Backoff::bounded(attempt_bound),
            dnszones,
            domain_grants: mc.domain_grants.clone(),
        });
        controllers.spawn(mailbox::run(ctx, writer, shutdown()));
    }

    if let (Some(px), Some(pve)) = (&config.proxmox, &pve) {
        let proxmox = pve_client(pve)?;
        let ctx = Arc::new(cloudpod::Context {
            client: client.clone(),
            namespace: config.watch_namespace.clone(),
            proxmox,
            vmids: (px.vmid_range.first, px.vmid_range.last),
            storage: px.storage.clone(),
            plans: px.plans.clone(),
            snippets: px.snippets.clone(),
            ip_pools: px.ip_pools.clone(),
            allowed: px.allowed.clone(),
            reserved_addresses: Default::default(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            resync: config.resync().map_err(anyhow::Error::msg)?,
            backoff: Backoff::bounded(attempt_bound),
            reserved: Default::default(),
            cloning: Default::default(),
            // test-only fault point (crash right after a clone request)
            exit_after_clone: std::env::var("MPANEL_FAULT_EXIT_AFTER").is_ok_and(|v| v == "clone"),
        });
        controllers.spawn(cloudpod::run(ctx, shutdown()));
    }

    // backups and restores of CloudPods: the same Proxmox and its one set of limits
    if let Some(pve) = &pve {
        let proxmox = Arc::new(pve_client(pve)?);
        for run_policies in [true, false] {
            let ctx = Arc::new(backup::Context {
                client: client.clone(),
                namespace: config.watch_namespace.clone(),
                proxmox: proxmox.clone(),
                metrics: metrics.clone(),
                recorder: recorder.clone(),
                resync: config.resync().map_err(anyhow::Error::msg)?,
                backoff: Backoff::bounded(attempt_bound),
            });
            if run_policies {
                controllers.spawn(backup::policy::run(ctx, shutdown()));
            } else {
                controllers.spawn(backup::restore::run(ctx, shutdown()));
            }
        }
    }

    if let Some(ns) = &config.namesilo {
        let api_key = read_secret(client, &ns.api_key_secret_ref).await?;
        let registrar = Namesilo::new(
            namesilo::Config { api_url: ns.api_url.clone(), api_key, timeout: Duration::from_secs(ns.timeout_seconds) },
            metrics.clone(),
        )?
        .with_throttle(Throttle::new("namesilo", ns.rate_limit.or(NAMESILO_LIMITS), Some(metrics.clone())));
        let ctx = Arc::new(domain::Context {
            client: client.clone(),
            names: names.clone(),
            namespace: config.watch_namespace.clone(),
            registrar,
            nameservers: ns.nameservers.iter().map(|n| namesilo::normalise_host(n)).collect(),
            zone_defaults: ns.zone_defaults.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            resync: config.resync().map_err(anyhow::Error::msg)?,
            backoff: Backoff::bounded(attempt_bound),
            // test-only fault point (crash right after a paid call was answered)
            exit_after: domain::fault_point(std::env::var("MPANEL_FAULT_EXIT_AFTER").ok().as_deref()),
        });
        controllers.spawn(domain::run(ctx, shutdown()));
    }

    if enabled(config).contains(&subscription::KIND) {
        let ctx = Arc::new(subscription::Context {
            client: client.clone(),
            namespace: config.watch_namespace.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            resync: config.resync().map_err(anyhow::Error::msg)?,
            backoff: Backoff::bounded(attempt_bound),
        });
        controllers.spawn(subscription::run(ctx, shutdown()));
    }

    let lost = async move {
        match leadership {
            Some(held) => held.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = lost => {
            tracing::error!("lost the Lease; exiting so that only the leader writes");
            std::process::exit(1);
        }
        _ = async { while controllers.join_next().await.is_some() {} } => {}
    }
    // the controllers end on shutdown, or on their own: either way wait for the signal
    shutdown().await;
    Ok(())
}

/// For each kind `config` runs no controller for: deleted objects lose the finalizer.
fn release_unmanaged<F>(
    controllers: &mut tokio::task::JoinSet<()>,
    config: &Config,
    client: &Client,
    recorder: &Recorder,
    shutdown: &impl Fn() -> F,
) where
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    use mpanel_crds::{BackupPolicy, CloudPodRestore};
    use mpanel_crds::{certificate::Certificate, cloudpod::CloudPod, dnszone::DnsZone, domain::Domain};
    use mpanel_crds::{mailbox::Mailbox, subscription::Subscription};
    use mpanel_operator::controllers::unmanaged::release;
    let on = enabled(config);
    let (c, ns, r) = (client.clone(), config.watch_namespace.clone(), recorder.clone());
    let backups = [backup::policy::KIND, backup::restore::KIND];
    for kind in [dnszone::KIND, certificate::KIND, mailbox::KIND, cloudpod::KIND, domain::KIND, subscription::KIND]
        .into_iter()
        .chain(backups)
    {
        if on.contains(&kind) {
            continue;
        }
        let (c, ns, r, stop) = (c.clone(), ns.clone(), r.clone(), shutdown());
        match kind {
            dnszone::KIND => controllers.spawn(release::<DnsZone>(c, ns, r, stop)),
            certificate::KIND => controllers.spawn(release::<Certificate>(c, ns, r, stop)),
            mailbox::KIND => controllers.spawn(release::<Mailbox>(c, ns, r, stop)),
            cloudpod::KIND => controllers.spawn(release::<CloudPod>(c, ns, r, stop)),
            domain::KIND => controllers.spawn(release::<Domain>(c, ns, r, stop)),
            backup::policy::KIND => controllers.spawn(release::<BackupPolicy>(c, ns, r, stop)),
            backup::restore::KIND => controllers.spawn(release::<CloudPodRestore>(c, ns, r, stop)),
            _ => controllers.spawn(release::<Subscription>(c, ns, r, stop)),
        };
    }
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

/// The Proxmox API's settings (its token read from the Secret) and the throttle its clients share.
async fn proxmox_connection(
    client: &Client,
    px: &mpanel_operator::config::ProxmoxConfig,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(proxmox::Config, Throttle)> {
    let token = read_secret(client, &px.token_secret_ref).await?;
    let ca_pem = match &px.ca_file {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading proxmox.caFile {path}"))?),
        None => None,
    };
    let config =
        proxmox::Config { url: px.url.clone(), token, ca_pem, timeout: Duration::from_secs(px.timeout_seconds) };
    Ok((config, Throttle::new("proxmox", px.rate_limit.or(PROXMOX_LIMITS), Some(metrics.clone()))))
}

async fn read_secret(client: &Client, r: &SecretRef) -> anyhow::Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), &r.namespace)
        .get(&r.name)
        .await
        .with_context(|| format!("reading Secret {}/{}", r.namespace, r.name))?;
    let bytes = secret
        .data
        .and_then(|d| d.get(&r.key).cloned())
        .with_context(|| format!("Secret {}/{} has no key {}", r.namespace, r.name, r.key))?;
    Ok(String::from_utf8(bytes.0)?.trim().to_owned())
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
