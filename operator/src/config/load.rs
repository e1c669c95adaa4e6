//! Reading the configuration file and refusing one the operator could not run with, naming the
//! key at fault.

use std::path::Path;
use std::time::Duration;

use super::{Config, ConfigError};

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.display().to_string(), message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        config.resync()?;
        config.check_shard()?;
        if let Some(px) = &config.proxmox
            && (px.vmid_range.first < 100 || px.vmid_range.first > px.vmid_range.last)
        {
            return Err("proxmox.vmidRange must have 100 <= first <= last".into());
        }
        if let Some(ns) = &config.namesilo
            && ns.nameservers.len() < 2
        {
            return Err("namesilo.nameservers needs at least two nameservers".into());
        }
        if let Some(ns) = &config.namesilo {
            ns.registrar_sync()?;
        }
        config.check_rate_limits()?;
        if let Some(acme) = &config.acme {
            if config.powerdns.as_ref().and_then(|p| p.dns_address.as_ref()).is_none() {
                return Err("acme needs powerdns with its dnsAddress: DNS-01 records are written to PowerDNS".into());
            }
            if acme.orders_per_registered_domain_per_week == 0 {
                return Err("acme.ordersPerRegisteredDomainPerWeek must be at least 1".into());
            }
        }
        Ok(config)
    }

    /// A shard's selector must be one the operator can watch Namespaces with, the shard cannot be
    /// narrowed to one namespace as well, and its Lease is its own: with the default Lease name,
    /// the name is derived from the selector, so two shards never wait on one Lease (replicas of
    /// one shard do).
    fn check_shard(&mut self) -> Result<(), String> {
        let Some(shard) = &self.shard else { return Ok(()) };
        if self.watch_namespace.is_some() {
            return Err("watchNamespace and shard exclude each other: a shard reconciles the namespaces its \
                        namespaceSelector picks; to reconcile one namespace, use watchNamespace alone"
                .into());
        }
        let terms = equality_terms(&shard.namespace_selector)
            .map_err(|reason| format!("shard.namespaceSelector {:?}: {reason}", shard.namespace_selector))?;
        if self.leader_election.lease_name == super::default_lease_name() {
            self.leader_election.lease_name = shard_lease_name(&terms);
        }
        Ok(())
    }

    fn check_rate_limits(&self) -> Result<(), String> {
        let blocks = [
            ("powerdns", self.powerdns.as_ref().map(|c| &c.rate_limit)),
            ("acme", self.acme.as_ref().map(|c| &c.rate_limit)),
            ("mailcore", self.mailcore.as_ref().map(|c| &c.rate_limit)),
            ("proxmox", self.proxmox.as_ref().map(|c| &c.rate_limit)),
            ("namesilo", self.namesilo.as_ref().map(|c| &c.rate_limit)),
        ];
        for (provider, limit) in blocks {
            if let Some(limit) = limit {
                limit.check(&format!("{provider}.rateLimit"))?;
            }
        }
        Ok(())
    }

    pub fn reconcile_timeout(&self) -> Result<Duration, String> {
        mpanel_crds::formats::parse_duration(&self.reconcile_timeout)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("reconcileTimeout {:?} is not a duration like 30s or 2m", self.reconcile_timeout))
    }

    pub fn resync(&self) -> Result<Duration, String> {
        mpanel_crds::formats::parse_duration(&self.resync_interval)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("resyncInterval {:?} is not a duration like 30s or 5m", self.resync_interval))
    }
}

/// The terms of an equality-based label selector, in a canonical form (`key=value`, `key!=value`,
/// sorted); a reason when it is empty or has a term that is not one of those.
fn equality_terms(selector: &str) -> Result<Vec<String>, String> {
    let mut terms = Vec::new();
    for term in selector.split(',').map(str::trim) {
        let (key, op, value) = if let Some((k, v)) = term.split_once("!=") {
            (k, "!=", v)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, "=", v)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, "=", v)
        } else {
            return Err(format!("{term:?} is not key=value or key!=value (only equality terms are taken)"));
        };
        let (key, value) = (key.trim(), value.trim());
        let name_ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if key.is_empty() || !name_ok(key) || !name_ok(value) || value.contains('/') {
            return Err(format!("{term:?} is not a label key and value"));
        }
        terms.push(format!("{key}{op}{value}"));
    }
    terms.sort();
    terms.dedup();
    Ok(terms)
}

/// The Lease name of the shard with these selector terms: `mpanel-operator-` and the terms made a
/// name, shortened with a checksum when long, so that shards never share a Lease.
fn shard_lease_name(terms: &[String]) -> String {
    let joined = terms.join(",");
    let mut name: String = joined
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            '!' => 'n',
            _ => '-',
        })
        .collect();
    // the terms' operators and separators become letters and dashes: keep the name distinct
    // from another selector's that maps to the same letters
    let checksum =
        joined.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    name.truncate(38);
    let name = name.trim_matches('-');
    format!("{}-{name}-{:08x}", super::default_lease_name(), checksum as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NAMESILO_LIMITS;
    use crate::providers::throttle::Limits;

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(c.resync().unwrap(), Duration::from_secs(300));
        assert!(c.leader_election.enabled);
        assert_eq!(c.leader_election.lease_duration_seconds, 15);
        assert_eq!(c.powerdns, None);
    }

    #[test]
    fn powerdns_is_read_with_its_secret_reference() {
        let c = Config::parse(
            "resyncInterval: 30s\npowerdns:\n  apiUrl: http://127.0.0.1:8081\n  apiKeySecretRef: {namespace: mpanel-system, name: pdns, key: api-key}\n",
        )
        .unwrap();
        let p = c.powerdns.unwrap();
        assert_eq!(p.server_id, "localhost");
        assert_eq!(p.api_key_secret_ref.name, "pdns");
    }

    #[test]
    fn acme_issuers_are_read_and_need_powerdns_dns_address() {
        let pdns =
            "powerdns:\n  apiUrl: http://127.0.0.1:8081\n  apiKeySecretRef: {namespace: s, name: pdns, key: k}\n";
        let acme = "acme:\n  issuers:\n    letsencrypt:\n      directoryUrl: https://acme.test/dir\n      accountSecretRef: {namespace: s, name: le}\n";
        let err = Config::parse(&format!("{pdns}{acme}")).unwrap_err();
        assert!(err.contains("dnsAddress"), "{err}");
        let c = Config::parse(&format!("{pdns}  dnsAddress: 127.0.0.1:53\n{acme}")).unwrap();
        let a = c.acme.unwrap();
        assert_eq!(a.orders_per_registered_domain_per_week, 40);
        assert_eq!(a.issuers["letsencrypt"].account_secret_ref.name, "le");
    }

    #[test]
    fn namesilo_needs_two_default_nameservers() {
        let key = "  apiKeySecretRef: {namespace: s, name: namesilo, key: api-key}\n";
        let err = Config::parse(&format!("namesilo:\n{key}  nameservers: [ns1.example.net]\n")).unwrap_err();
        assert!(err.contains("at least two"), "{err}");
        let c = Config::parse(&format!(
            "namesilo:\n{key}  nameservers: [ns1.example.net, ns2.example.net]\n  zoneDefaults: {{a: [192.0.2.1], mx: [{{host: mx.example.net, priority: 10}}]}}\n"
        ))
        .unwrap();
        let n = c.namesilo.unwrap();
        assert_eq!(n.api_url, "https://www.namesilo.com/api");
        assert_eq!(n.zone_defaults.mx[0].priority, 10);
    }

    #[test]
    fn the_registrar_is_synced_hourly_unless_configured_and_a_bad_interval_is_refused() {
        let key =
            "  apiKeySecretRef: {namespace: s, name: namesilo, key: api-key}\n  nameservers: [a.example, b.example]\n";
        let c = Config::parse(&format!("namesilo:\n{key}")).unwrap();
        assert_eq!(c.namesilo.unwrap().registrar_sync(), Ok(Duration::from_secs(3600)));
        let c = Config::parse(&format!("namesilo:\n{key}  registrarSyncInterval: 15m\n")).unwrap();
        assert_eq!(c.namesilo.unwrap().registrar_sync(), Ok(Duration::from_secs(900)));
        for bad in ["soon", "0s"] {
            let err = Config::parse(&format!("namesilo:\n{key}  registrarSyncInterval: {bad}\n")).unwrap_err();
            assert!(err.contains("namesilo.registrarSyncInterval"), "{err}");
        }
    }

    #[test]
    fn rate_limits_default_per_provider_and_a_partial_block_keeps_the_other_default() {
        let key =
            "  apiKeySecretRef: {namespace: s, name: namesilo, key: api-key}\n  nameservers: [a.example, b.example]\n";
        let c = Config::parse(&format!("namesilo:\n{key}")).unwrap();
        assert_eq!(c.namesilo.unwrap().rate_limit.or(NAMESILO_LIMITS), NAMESILO_LIMITS);
        let c = Config::parse(&format!("namesilo:\n{key}  rateLimit: {{requestsPerSecond: 20}}\n")).unwrap();
        let limits = c.namesilo.unwrap().rate_limit.or(NAMESILO_LIMITS);
        assert_eq!(limits, Limits { requests_per_second: 20.0, max_in_flight: NAMESILO_LIMITS.max_in_flight });
        let c = Config::parse(&format!("namesilo:\n{key}  rateLimit: {{requestsPerSecond: 0.5, maxInFlight: 1}}\n"))
            .unwrap();
        assert_eq!(
            c.namesilo.unwrap().rate_limit.or(NAMESILO_LIMITS),
            Limits { requests_per_second: 0.5, max_in_flight: 1 }
        );
    }

    #[test]
    fn rate_limits_that_would_stop_every_call_are_refused_naming_the_key() {
        let pdns =
            "powerdns:\n  apiUrl: http://127.0.0.1:8081\n  apiKeySecretRef: {namespace: s, name: pdns, key: k}\n";
        let err = Config::parse(&format!("{pdns}  rateLimit: {{requestsPerSecond: 0}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.requestsPerSecond must be a number of at least 0.001"), "{err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{requestsPerSecond: 0.0001}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.requestsPerSecond"), "slower than one every 1000 s: {err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{requestsPerSecond: -3}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.requestsPerSecond"), "{err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{maxInFlight: 0}}\n")).unwrap_err();
        assert!(err.contains("powerdns.rateLimit.maxInFlight must be at least 1"), "{err}");
        let err = Config::parse(&format!("{pdns}  rateLimit: {{rps: 5}}\n")).unwrap_err();
        assert!(err.contains("rps"), "an unknown key is named: {err}");
        let proxmox = "proxmox:\n  url: https://pve\n  tokenSecretRef: {namespace: s, name: t, key: k}\n  vmidRange: {first: 100, last: 200}\n";
        let err = Config::parse(&format!("{proxmox}  rateLimit: {{maxInFlight: 0}}\n")).unwrap_err();
        assert!(err.contains("proxmox.rateLimit.maxInFlight"), "{err}");
    }

    #[test]
    fn a_shard_takes_equality_selectors_and_its_own_lease() {
        let a = Config::parse("shard: {namespaceSelector: mpanel.migrahosting.com/shard=a}").unwrap();
        let b = Config::parse("shard: {namespaceSelector: 'mpanel.migrahosting.com/shard==b'}").unwrap();
        let (lease_a, lease_b) = (&a.leader_election.lease_name, &b.leader_election.lease_name);
        assert_eq!(lease_a, "mpanel-operator-mpanel-migrahosting-com-shard-a-f6506e82");
        assert_ne!(lease_a, lease_b, "two shards never share the default Lease");
        assert!(lease_a.len() <= 63 && lease_a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let again = Config::parse("shard: {namespaceSelector: ' mpanel.migrahosting.com/shard = a '}").unwrap();
        assert_eq!(&again.leader_election.lease_name, lease_a, "replicas of one shard share its Lease");
        let long = format!("shard: {{namespaceSelector: 'team={}, region=eu'}}", "x".repeat(60));
        let long = Config::parse(&long).unwrap().leader_election.lease_name;
        assert!(long.len() <= 63, "{long}");
        let named = Config::parse("shard: {namespaceSelector: s=a}\nleaderElection: {leaseName: mpanel-a}").unwrap();
        assert_eq!(named.leader_election.lease_name, "mpanel-a", "a Lease name given is kept");
        assert_eq!(Config::parse("{}").unwrap().leader_election.lease_name, "mpanel-operator");
        // the shard of every namespace the others do not pick, new unlabelled ones included
        let rest = Config::parse("shard: {namespaceSelector: 's!=a,s!=b'}").unwrap().leader_election.lease_name;
        let a = Config::parse("shard: {namespaceSelector: s=a}").unwrap().leader_election.lease_name;
        assert!(rest.starts_with("mpanel-operator-sn-a-sn-b-") && rest != a, "{rest} {a}");
    }

    #[test]
    fn a_shard_selector_that_is_not_equality_terms_or_with_watch_namespace_is_refused() {
        for selector in ["env in (a,b)", "", "shard", "a=b=c/d", "!shard", "shard=a,,"] {
            let err = Config::parse(&format!("shard: {{namespaceSelector: \"{selector}\"}}")).unwrap_err();
            assert!(err.contains("shard.namespaceSelector"), "{selector}: {err}");
        }
        let err = Config::parse("watchNamespace: shop\nshard: {namespaceSelector: s=a}").unwrap_err();
        assert!(err.contains("watchNamespace and shard exclude each other"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_with_the_reason() {
        assert!(Config::parse("resync: 5m").unwrap_err().contains("resync"));
        assert!(Config::parse("resyncInterval: soon").unwrap_err().contains("soon"));
    }
}
