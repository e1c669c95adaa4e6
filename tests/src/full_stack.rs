//! An operator under test with every peer of the testbed behind it (PowerDNS, pebble as the
//! `letsencrypt` issuer, mail-core, fakepve, the Namesilo double): its provider Secrets and its
//! configuration file's text.

use crate::Testbed;

/// The IPv4 pool every CloudPod product template draws from.
pub const POOL: &str = "public-v4";

/// Where an operator under test works and what it may hand out.
pub struct Scope<'a> {
    /// The namespace it reconciles.
    pub watch: &'a str,
    /// The namespace of its provider Secrets, ACME account and Lease.
    pub home: &'a str,
    /// The VMIDs it may reserve, first and last.
    pub vmids: (u32, u32),
    /// The first three octets of the pool's addresses (`a.b.c`, gateway `.1`).
    pub network: &'a str,
    /// The last octets of the first and last address the pool hands out.
    pub hosts: (u8, u8),
}

/// The provider Secrets in `home`, the Namesilo double's account key among them.
pub fn provider_secrets(tb: &Testbed, home: &str, namesilo_key: &str) -> anyhow::Result<()> {
    let secrets = [
        ("powerdns", "api-key", tb.get("PDNS_API_KEY")?),
        ("mailcore-db", "url", tb.get("MAILCORE_DATABASE_URL")?),
        ("proxmox", "token", tb.get("PROXMOX_TOKEN")?),
        ("namesilo", "api-key", namesilo_key),
    ];
    for (name, key, value) in secrets {
        let literal = format!("--from-literal={key}={value}");
        tb.kubectl_ok(&["create", "secret", "generic", name, "-n", home, &literal], None)?;
    }
    Ok(())
}

/// The configuration of an operator with every provider, in `scope`, resyncing every 3 s.
pub fn config(tb: &Testbed, scope: &Scope<'_>) -> anyhow::Result<String> {
    let (home, network) = (scope.home, scope.network);
    Ok(format!(
        "resyncInterval: 3s\nwatchNamespace: {watch}\nleaderElection: {{namespace: {home}, leaseDurationSeconds: 4}}\n\
         powerdns:\n  apiUrl: {pdns}\n  serverId: {sid}\n  dnsAddress: {dns}\n  apiKeySecretRef: {{namespace: {home}, name: powerdns, key: api-key}}\n\
         acme:\n  issuers:\n    letsencrypt:\n      directoryUrl: {dir}\n      caBundle: {bundle}\n      accountSecretRef: {{namespace: {home}, name: acme-account}}\n\
         mailcore:\n  databaseUrlSecretRef: {{namespace: {home}, name: mailcore-db, key: url}}\n  maildirRoot: {vmail}\n\
         proxmox:\n  url: {pve}\n  caFile: {pve_ca}\n  storage: ceph-pool\n  vmidRange: {{first: {first}, last: {last}}}\n\
         \x20 tokenSecretRef: {{namespace: {home}, name: proxmox, key: token}}\n\
         \x20 ipPools: {{{POOL}: {{first: {network}.{low}, last: {network}.{high}, prefix: 24, gateway: {network}.1}}}}\n\
         namesilo:\n  apiUrl: {namesilo}\n  apiKeySecretRef: {{namespace: {home}, name: namesilo, key: api-key}}\n\
         \x20 nameservers: [ns1.{home}.net, ns2.{home}.net]\n",
        watch = scope.watch,
        low = scope.hosts.0,
        high = scope.hosts.1,
        pdns = tb.get("PDNS_API_URL")?,
        sid = tb.get("PDNS_SERVER_ID")?,
        dns = tb.get("PDNS_DNS_ADDR")?,
        dir = tb.get("ACME_DIRECTORY")?,
        bundle = tb.get("ACME_CA_BUNDLE")?,
        vmail = tb.get("MAILCORE_VMAIL_DIR")?,
        pve = tb.get("PROXMOX_URL")?,
        pve_ca = tb.get("PROXMOX_CA")?,
        first = scope.vmids.0,
        last = scope.vmids.1,
        namesilo = tb.get("NAMESILO_URL")?,
    ))
}
