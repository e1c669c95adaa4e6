//! DNS-01 through our own PowerDNS: which zone serves a name, merging challenge values into the
//! `_acme-challenge` TXT rrset (an apex and its wildcard share one), taking them out again, and
//! asking the authoritative server whether it serves them yet.
//!
//! A TXT value is only ever written into a zone that a DnsZone of the Certificate's own namespace
//! owns (PowerDNS account = that DnsZone's UID): a customer cannot obtain a certificate for a name
//! in another customer's zone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use mpanel_crds::dnszone::DnsZone;

use crate::providers::dns::{self, DnsQueryError};
use crate::providers::powerdns::{DnsApi, PowerDnsError, RrSet, canonical};

/// TTL of challenge records: short, they live for seconds.
const TTL: u32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum Dns01Error {
    #[error(transparent)]
    PowerDns(#[from] PowerDnsError),
    #[error(transparent)]
    Query(#[from] DnsQueryError),
    #[error("zone {zone} in PowerDNS is not the DnsZone's (account {account:?}); no challenge record was written")]
    NotOwned { zone: String, account: String },
}

impl Dns01Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PowerDns(e) => e.reason(),
            Self::Query(e) => e.reason(),
            Self::NotOwned { .. } => "ZoneOwnedElsewhere",
        }
    }
}

/// The owner name of the challenge record for `name` (wildcard label dropped), canonical.
pub fn record_name(name: &str) -> String {
    canonical(&format!("_acme-challenge.{}", name.trim_start_matches("*.")).to_ascii_lowercase())
}

/// A zone that serves a name: its canonical name and the UID of the DnsZone that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingZone {
    pub zone: String,
    pub owner_uid: String,
    pub dns_zone: String,
}

/// Of `zones` (the DnsZones of one namespace), the one with the longest name that is `name` or a
/// parent of it.
pub fn zone_for<'a>(zones: impl IntoIterator<Item = &'a DnsZone>, name: &str) -> Option<ServingZone> {
    let name = canonical(&name.trim_start_matches("*.").to_ascii_lowercase());
    zones
        .into_iter()
        .filter(|z| z.metadata.deletion_timestamp.is_none())
        .filter_map(|z| {
            let zone = canonical(&z.spec.zone.to_ascii_lowercase());
            let under = name == zone || name.ends_with(&format!(".{zone}"));
            under.then(|| ServingZone { zone, owner_uid: z.uid().unwrap_or_default(), dns_zone: z.name_any() })
        })
        .max_by_key(|s| s.zone.len())
}

/// The PATCH entry that turns `current` (the TXT contents at the record now) into `current` plus
/// `add` minus `remove`; `None` when that changes nothing.
pub fn merged(record: &str, current: &[String], add: &[String], remove: &[String]) -> Option<RrSet> {
    let quoted = |v: &String| format!("\"{v}\"");
    let mut contents: Vec<String> = current.to_vec();
    for value in add.iter().map(quoted) {
        if !contents.contains(&value) {
            contents.push(value);
        }
    }
    let removing: Vec<String> = remove.iter().map(quoted).collect();
    contents.retain(|c| !removing.contains(c));
    let mut before = current.to_vec();
    before.sort();
    let mut after = contents.clone();
    after.sort();
    if before == after {
        return None;
    }
    Some(if contents.is_empty() { RrSet::delete(record, "TXT") } else { RrSet::replace(record, "TXT", TTL, contents) })
}

/// Writes and removes challenge records; one writer per zone at a time, since a merge is a
/// read-modify-write of the whole rrset.
pub struct Dns01<P> {
    pub dns: P,
    /// PowerDNS's DNS listener, asked directly.
    pub server: SocketAddr,
    pub query_timeout: Duration,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl<P: DnsApi> Dns01<P> {
    pub fn new(dns: P, server: SocketAddr, query_timeout: Duration) -> Self {
        Self { dns, server, query_timeout, locks: Mutex::default() }
    }

    fn lock(&self, zone: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(zone.to_owned()).or_default().clone()
    }

    /// Adds `add` to and takes `remove` from the TXT rrset `record` of `zone`. Returns whether
    /// PowerDNS was written. A zone that does not exist (any more) has nothing to remove.
    pub async fn update(
        &self,
        zone: &ServingZone,
        record: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<bool, Dns01Error> {
        let lock = self.lock(&zone.zone);
        let _held = lock.lock().await;
        let Some(current) = self.dns.zone(&zone.zone).await? else {
            return Ok(false);
        };
        if current.account != zone.owner_uid {
            if add.is_empty() {
                return Ok(false);
            }
            return Err(Dns01Error::NotOwned { zone: zone.zone.clone(), account: current.account });
        }
        let contents: Vec<String> = current
            .rrsets
            .iter()
            .filter(|r| r.name == record && r.rtype == "TXT")
            .flat_map(|r| r.records.iter().map(|d| d.content.clone()))
            .collect();
        match merged(record, &contents, add, remove) {
            Some(patch) => {
                self.dns.patch_rrsets(&zone.zone, &[patch]).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether our authoritative server answers every one of `values` at `record`.
    pub async fn served(&self, record: &str, values: &[String]) -> Result<bool, Dns01Error> {
        let answers = dns::txt(self.server, record, self.query_timeout).await?;
        Ok(values.iter().all(|v| answers.contains(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpanel_crds::dnszone::DnsZoneSpec;

    fn zone(name: &str, zone: &str, uid: &str) -> DnsZone {
        let spec: DnsZoneSpec = serde_json::from_value(serde_json::json!({
            "zone": zone, "nameservers": ["ns1.example.net"], "records": []
        }))
        .unwrap();
        let mut z = DnsZone::new(name, spec);
        z.metadata.uid = Some(uid.to_owned());
        z
    }

    #[test]
    fn the_longest_zone_serving_the_name_is_chosen() {
        let zones = [zone("parent", "example.test", "u1"), zone("child", "shop.example.test", "u2")];
        assert_eq!(zone_for(&zones, "*.shop.example.test").unwrap().owner_uid, "u2");
        assert_eq!(zone_for(&zones, "www.example.test").unwrap().zone, "example.test.");
        assert_eq!(zone_for(&zones, "example.test").unwrap().dns_zone, "parent");
        assert_eq!(zone_for(&zones, "badexample.test"), None, "a suffix that is not a parent does not count");
        assert_eq!(zone_for(&zones, "other.test"), None);
    }

    #[test]
    fn challenge_record_names_drop_the_wildcard_label() {
        assert_eq!(record_name("*.Example.test"), "_acme-challenge.example.test.");
        assert_eq!(record_name("example.test."), "_acme-challenge.example.test.");
    }

    #[test]
    fn values_are_merged_into_the_rrset_never_overwriting_others() {
        let r = "_acme-challenge.example.test.";
        let other = vec!["\"someone-elses\"".to_owned()];
        let patch = merged(r, &other, &["apex".into(), "wild".into()], &[]).unwrap();
        let contents: Vec<&str> = patch.records.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(contents, ["\"someone-elses\"", "\"apex\"", "\"wild\""]);
        // already there: no write
        let all: Vec<String> = contents.iter().map(|s| s.to_string()).collect();
        assert_eq!(merged(r, &all, &["apex".into()], &[]), None);
        // removing ours keeps the others
        let after = merged(r, &all, &[], &["apex".into(), "wild".into()]).unwrap();
        assert_eq!(after.records.len(), 1);
        // removing the last value deletes the rrset
        let gone = merged(r, &["\"apex\"".into()], &[], &["apex".into()]).unwrap();
        assert_eq!(gone, RrSet::delete(r, "TXT"));
        assert_eq!(merged(r, &[], &[], &["apex".into()]), None);
    }
}
