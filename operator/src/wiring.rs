//! Starting the controllers the configuration enables: each one's context built from the
//! configuration and its provider clients, spawned in a fixed order, and run until shutdown or
//! until the Lease is lost. Part of the binary, not of the library.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use mpanel_operator::config::{
    Config, MAILCORE_LIMITS, MailCoreConfig, NAMESILO_LIMITS, NamesiloConfig, POWERDNS_LIMITS, PROXMOX_LIMITS,
    PowerDnsConfig, ProxmoxConfig, SecretRef,
};
use mpanel_operator::controllers::certificate::{self, budget::Budget, dns01::Dns01, issuers::Issuers};
use mpanel_operator::controllers::{
    Backoff, Clock, Context, Hub, Scope, backup, cloudpod, dnszone, domain, mailbox, ready, subscription,
};
use mpanel_operator::leader::Leadership;
use mpanel_operator::metrics::Metrics;
use mpanel_operator::names::NameIndex;
use mpanel_operator::providers::mailcore::{self, MailCore};
use mpanel_operator::providers::namesilo::{self, Namesilo};
use mpanel_operator::providers::powerdns::{self, PowerDns};
use mpanel_operator::providers::proxmox::{self, Proxmox, ProxmoxError};
use mpanel_operator::providers::throttle::Throttle;
use tokio::task::JoinSet;

use super::enabled;

/// What every controller's context is built from.
struct Wiring<'a> {
    config: &'a Config,
    client: &'a Client,
    metrics: &'a Arc<Metrics>,
    recorder: Recorder,
    names: NameIndex,
    attempt_bound: Duration,
    /// The one watch per kind every controller follows its kinds on.
    hub: &'a Hub,
}

/// The controllers, built but not yet running: they start once the watches they share are up and
/// the name index holds its first full list.
#[derive(Default)]
struct Pending(Vec<BoxFuture<'static, ()>>);

impl Pending {
    fn spawn(&mut self, controller: impl Future<Output = ()> + Send + 'static) {
        self.0.push(controller.boxed());
    }
}

impl Wiring<'_> {
    fn resync(&self) -> anyhow::Result<Duration> {
        self.config.resync().map_err(anyhow::Error::msg)
    }

    /// A controller's context: what every controller shares, around the kind's own `state`.
    fn context<S>(&self, state: S) -> anyhow::Result<Arc<Context<S>>> {
        Ok(Arc::new(Context {
            client: self.client.clone(),
            namespace: self.config.watch_namespace.clone(),
            metrics: self.metrics.clone(),
            recorder: self.recorder.clone(),
            resync: self.resync()?,
            backoff: Backoff::bounded(self.attempt_bound),
            clock: Clock::system(),
            state,
        }))
    }

    /// A client of the one Proxmox, sharing its throttle.
    fn pve_client(&self, (config, throttle): &(proxmox::Config, Throttle)) -> Result<Proxmox, ProxmoxError> {
        Proxmox::new(config.clone(), self.metrics.clone()).map(|p| p.with_throttle(throttle.clone()))
    }
}

/// Starts the controllers `config` enables and runs them until shutdown. Exits the process when the
/// Lease is lost, since another replica may already be writing.
pub async fn run_controllers<F>(
    config: &Config,
    client: &Client,
    metrics: &Arc<Metrics>,
    identity: &str,
    leadership: Option<Leadership>,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "mpanel-operator".into(), instance: Some(identity.to_owned()) },
    );
    let mut controllers = JoinSet::new();
    // every controller below takes the kinds it follows from here: one watch per kind, of the
    // namespaces this operator reconciles (one, its shard's, or all)
    let hub = match &config.shard {
        Some(shard) => Hub::sharded(client.clone(), &shard.namespace_selector),
        None => Hub::new(client.clone(), config.watch_namespace.clone()),
    };
    release_unmanaged(&mut controllers, config, client, &recorder, &hub, shutdown);
    if enabled(config).is_empty() {
        hub.start();
        shutdown().await;
        return Ok(());
    }
    let attempt_bound = config.reconcile_timeout().map_err(anyhow::Error::msg)?;
    // names are decided cluster-wide, whatever namespace the controllers reconcile
    let zones = hub.store(Scope::Cluster);
    let domains = hub.store(Scope::Cluster);
    let names = NameIndex::new(zones.clone(), Some(domains.clone()));
    // other shards grant first writes on the cluster's names too
    let names = if config.shard.is_some() { names.with_other_operators() } else { names };
    // CloudPods and certificate delivery share one Proxmox, so one set of limits
    let pve = match &config.proxmox {
        Some(px) => Some(proxmox_connection(client, px, metrics).await?),
        None => None,
    };
    let w = Wiring { config, client, metrics, recorder, names, attempt_bound, hub: &hub };
    let mut pending = Pending::default();
    if let Some(pdns) = &config.powerdns {
        start_dns(&w, pdns, pve.as_ref(), &mut pending, shutdown).await?;
    }
    if let Some(mc) = &config.mailcore {
        start_mailboxes(&w, mc, &mut pending, shutdown).await?;
    }
    if let (Some(px), Some(pve)) = (&config.proxmox, &pve) {
        start_cloudpods(&w, px, pve, &mut pending, shutdown)?;
    }
    // backups and restores of CloudPods: the same Proxmox and its one set of limits
    if let Some(pve) = &pve {
        start_backups(&w, pve, &mut pending, shutdown)?;
    }
    if let Some(ns) = &config.namesilo {
        start_domains(&w, ns, &mut pending, shutdown).await?;
    }
    if enabled(config).contains(&subscription::KIND) {
        let ctx = w.context(subscription::State)?;
        pending.spawn(subscription::run(ctx, subscription::Watches::new(&hub), shutdown()));
    }
    hub.start();
    // a watch that cannot list (e.g. a shard's Namespaces the operator may not read) must not keep
    // the process from stopping
    let listed = tokio::select! {
        listed = async { tokio::join!(ready(&zones), ready(&domains)) } => listed,
        () = shutdown() => return Ok(()),
    };
    anyhow::ensure!(listed.0 && listed.1, "watching DnsZones and Domains for the name index: the watch ended");
    for controller in pending.0 {
        controllers.spawn(controller);
    }
    run_until_lost(controllers, leadership, shutdown).await
}

/// Runs the controllers until they end, then waits for the shutdown signal; exits the process at
/// once when the Lease is lost.
async fn run_until_lost<F>(
    mut controllers: JoinSet<()>,
    leadership: Option<Leadership>,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
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

/// The DnsZone controller, and the Certificate controller when ACME is configured and PowerDNS's
/// DNS listener is named.
async fn start_dns<F>(
    w: &Wiring<'_>,
    pdns: &PowerDnsConfig,
    pve: Option<&(proxmox::Config, Throttle)>,
    controllers: &mut Pending,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let (client, metrics, config) = (w.client, w.metrics, w.config);
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
    let ctx = w.context(dnszone::State { names: w.names.clone(), dns, cloudpods: w.hub.store(Scope::Operator) })?;
    controllers.spawn(dnszone::run(ctx, dnszone::Watches::new(w.hub), shutdown()));

    let (Some(acme), Some(dns_address)) = (&config.acme, &pdns.dns_address) else { return Ok(()) };
    let server = tokio::net::lookup_host(dns_address)
        .await
        .with_context(|| format!("powerdns.dnsAddress {dns_address}"))?
        .next()
        .with_context(|| format!("powerdns.dnsAddress {dns_address} resolves to nothing"))?;
    let ctx = w.context(certificate::State::<certificate::Live> {
        names: w.names.clone(),
        dns01: Dns01::new(
            PowerDns::new(pdns_config, metrics.clone())?.with_throttle(pdns_throttle),
            server,
            Duration::from_secs(pdns.timeout_seconds),
        ),
        issuers: Issuers::new(acme, client.clone(), metrics.clone()),
        budget: Budget::new(
            Api::namespaced(client.clone(), &config.leader_election.namespace),
            acme.budget_config_map.clone(),
            acme.orders_per_registered_domain_per_week,
        ),
        dnszones: w.hub.store(Scope::Operator),
        guest_agent: pve.map(|pve| w.pve_client(pve)).transpose()?,
        exit_after_order: std::env::var("MPANEL_FAULT_EXIT_AFTER").is_ok_and(|v| v == "order"),
    })?;
    controllers.spawn(certificate::run(ctx, certificate::Watches::new(w.hub), shutdown()));
    Ok(())
}

async fn start_mailboxes<F>(
    w: &Wiring<'_>,
    mc: &MailCoreConfig,
    controllers: &mut Pending,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let database_url = read_secret(w.client, &mc.database_url_secret_ref).await?;
    let mail = MailCore::new(
        &mailcore::Config {
            database_url,
            timeout: Duration::from_secs(mc.timeout_seconds),
            max_connections: mc.max_connections,
        },
        w.metrics.clone(),
    )?
    .with_throttle(Throttle::new("mailcore", mc.rate_limit.or(MAILCORE_LIMITS), Some(w.metrics.clone())));
    let ctx = w.context(mailbox::State {
        names: w.names.clone(),
        mail,
        maildir_root: mc.maildir_root.as_ref().map(Into::into),
        dnszones: w.hub.store(Scope::Operator),
        domain_grants: mc.domain_grants.clone(),
        verified: Default::default(),
    })?;
    controllers.spawn(mailbox::run(ctx, mailbox::Watches::new(w.hub), shutdown()));
    Ok(())
}

fn start_cloudpods<F>(
    w: &Wiring<'_>,
    px: &ProxmoxConfig,
    pve: &(proxmox::Config, Throttle),
    controllers: &mut Pending,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let proxmox = w.pve_client(pve)?;
    // one namespace or a shard sees part of the cluster's CloudPods; VMIDs and addresses are
    // chosen among all of them
    let part = w.config.watch_namespace.as_deref().or(w.config.shard.as_ref().map(|s| s.namespace_selector.as_str()));
    let watches = cloudpod::Watches::new(w.hub, part);
    let ctx = w.context(cloudpod::State {
        proxmox,
        vmids: (px.vmid_range.first, px.vmid_range.last),
        storage: px.storage.clone(),
        plans: px.plans.clone(),
        snippets: px.snippets.clone(),
        ip_pools: px.ip_pools.clone(),
        allowed: px.allowed.clone(),
        reserved_addresses: Default::default(),
        cloudpods: watches.store(),
        reserved: Default::default(),
        cloning: Default::default(),
        // test-only fault point (crash right after a clone request)
        exit_after_clone: std::env::var("MPANEL_FAULT_EXIT_AFTER").is_ok_and(|v| v == "clone"),
    })?;
    controllers.spawn(cloudpod::run(ctx, watches, shutdown()));
    Ok(())
}

/// The BackupPolicy and the CloudPodRestore controllers, on one client of the Proxmox.
fn start_backups<F>(
    w: &Wiring<'_>,
    pve: &(proxmox::Config, Throttle),
    controllers: &mut Pending,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let proxmox = Arc::new(w.pve_client(pve)?);
    for run_policies in [true, false] {
        let ctx = w.context(backup::State { proxmox: proxmox.clone() })?;
        if run_policies {
            controllers.spawn(backup::policy::run(ctx, w.hub.primary(), shutdown()));
        } else {
            controllers.spawn(backup::restore::run(ctx, w.hub.primary(), shutdown()));
        }
    }
    Ok(())
}

async fn start_domains<F>(
    w: &Wiring<'_>,
    ns: &NamesiloConfig,
    controllers: &mut Pending,
    shutdown: &impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let api_key = read_secret(w.client, &ns.api_key_secret_ref).await?;
    let registrar = Namesilo::new(
        namesilo::Config { api_url: ns.api_url.clone(), api_key, timeout: Duration::from_secs(ns.timeout_seconds) },
        w.metrics.clone(),
    )?
    .with_throttle(Throttle::new("namesilo", ns.rate_limit.or(NAMESILO_LIMITS), Some(w.metrics.clone())));
    let watches = domain::Watches::new(w.hub);
    let ctx = w.context(domain::State {
        names: w.names.clone(),
        registrar,
        nameservers: ns.nameservers.iter().map(|n| namesilo::normalise_host(n)).collect(),
        zone_defaults: ns.zone_defaults.clone(),
        domains: watches.store(),
        sync: domain::RegistrarSync::new(ns.registrar_sync().map_err(anyhow::Error::msg)?),
        // test-only fault point (crash right after a paid call was answered)
        exit_after: domain::fault_point(std::env::var("MPANEL_FAULT_EXIT_AFTER").ok().as_deref()),
    })?;
    controllers.spawn(domain::run(ctx, watches, shutdown()));
    Ok(())
}

/// For each kind `config` runs no controller for: deleted objects lose the finalizer.
fn release_unmanaged<F>(
    controllers: &mut JoinSet<()>,
    config: &Config,
    client: &Client,
    recorder: &Recorder,
    hub: &Hub,
    shutdown: &impl Fn() -> F,
) where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    use mpanel_crds::{BackupPolicy, CloudPodRestore};
    use mpanel_crds::{certificate::Certificate, cloudpod::CloudPod, dnszone::DnsZone, domain::Domain};
    use mpanel_crds::{mailbox::Mailbox, subscription::Subscription};
    use mpanel_operator::controllers::unmanaged::release;
    let on = enabled(config);
    let (c, r) = (client.clone(), recorder.clone());
    let backups = [backup::policy::KIND, backup::restore::KIND];
    for kind in [dnszone::KIND, certificate::KIND, mailbox::KIND, cloudpod::KIND, domain::KIND, subscription::KIND]
        .into_iter()
        .chain(backups)
    {
        if on.contains(&kind) {
            continue;
        }
        let (c, r, stop) = (c.clone(), r.clone(), shutdown());
        match kind {
            dnszone::KIND => {
                controllers.spawn(release::<DnsZone>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            certificate::KIND => {
                controllers.spawn(release::<Certificate>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            mailbox::KIND => {
                controllers.spawn(release::<Mailbox>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            cloudpod::KIND => {
                controllers.spawn(release::<CloudPod>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            domain::KIND => {
                controllers.spawn(release::<Domain>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            backup::policy::KIND => {
                controllers.spawn(release::<BackupPolicy>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            backup::restore::KIND => {
                controllers.spawn(release::<CloudPodRestore>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop))
            }
            _ => controllers.spawn(release::<Subscription>(c, (hub.changes(), hub.store(Scope::Operator)), r, stop)),
        };
    }
}

/// The Proxmox API's settings (its token read from the Secret) and the throttle its clients share.
async fn proxmox_connection(
    client: &Client,
    px: &ProxmoxConfig,
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
