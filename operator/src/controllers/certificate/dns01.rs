//! DNS-01 through our own PowerDNS: which zone serves a name, merging challenge values into the
//! `_acme-challenge` TXT rrset (an apex and its wildcard share one), taking them out again, and
//! asking the authoritative server whether it serves them yet.
//!
//! A TXT value is only ever written into a zone that a DnsZone of the Certificate's own namespace
//! owns (PowerDNS account = that DnsZone's UID) and whose claim on its name the name index granted:
//! a customer cannot obtain a certificate for a name in another customer's zone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::reasons;

use crate::names::{Holding, Names};
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
    // the account is another object's UID: not shown
    #[error("zone {zone} in PowerDNS is not the DnsZone's; no challenge record was written")]
    NotOwned { zone: String },
    #[error("zone {zone} is inside or above a name another namespace holds; no challenge record was written")]
    NotGranted { zone: String },
}

impl Dns01Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PowerDns(e) => e.reason(),
            Self::Query(e) => e.reason(),
            Self::NotOwned { .. } => reasons::ZONE_OWNED_ELSEWHERE.name,
            Self::NotGranted { .. } => reasons::NAME_HELD_ELSEWHERE.name,
        }
    }
}

/// The owner name of the challenge record for `name` (wildcard label dropped), canonical.
pub fn record_name(name: &str) -> String {
    canonical(&format!("_acme-challenge.{}", name.trim_start_matches("*.")).to_ascii_lowercase())
}

/// A zone that serves a name: its canonical name, the UID of the DnsZone that owns it, and whether
/// the name index granted that DnsZone's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingZone {
    pub zone: String,
    pub owner_uid: String,
    pub dns_zone: String,
    pub granted: bool,
}

/// Of `zones` (the DnsZones of one namespace), the one with the longest name that is `name` or a
/// parent of it (the one PowerDNS answers from); `names` says whether its claim is granted.
pub fn zone_for<'a>(zones: impl IntoIterator<Item = &'a DnsZone>, names: &Names, name: &str) -> Option<ServingZone> {
    let name = canonical(&name.trim_start_matches("*.").to_ascii_lowercase());
    zones
        .into_iter()
        .filter(|z| z.metadata.deletion_timestamp.is_none())
        .filter_map(|z| {
            let zone = canonical(&z.spec.zone.to_ascii_lowercase());
            let under = name == zone || name.ends_with(&format!(".{zone}"));
            let owner_uid = z.uid().unwrap_or_default();
            let granted = names.granted(&z.spec.zone, &owner_uid);
            under.then(|| ServingZone { zone, owner_uid, dns_zone: z.name_any(), granted })
        })
        .max_by_key(|s| s.zone.len())
}

/// Why a namespace may not order a certificate for a name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unorderable {
    #[error("{name} is in a zone another namespace holds")]
    HeldElsewhere { name: String },
    #[error("no DnsZone in this namespace serves {name}")]
    NoZone { name: String },
}

impl Unorderable {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HeldElsewhere { .. } => reasons::NAME_HELD_ELSEWHERE.name,
            Self::NoZone { .. } => reasons::NO_ZONE_FOR_NAME.name,
        }
    }
}

/// The zone that would take the challenge record for `name`, if `namespace` may order for it:
/// the name is held by the namespace and served by one of its DnsZones (`zones`) whose claim is
/// granted.
pub fn orderable<'a>(
    zones: impl IntoIterator<Item = &'a DnsZone>,
    names: &Names,
    namespace: &str,
    name: &str,
) -> Result<ServingZone, Unorderable> {
    let refused = |held_elsewhere: bool| match held_elsewhere {
        true => Unorderable::HeldElsewhere { name: name.to_owned() },
        false => Unorderable::NoZone { name: name.to_owned() },
    };
    match names.holding(namespace, name) {
        Holding::Elsewhere => Err(refused(true)),
        Holding::Unclaimed => Err(refused(false)),
        Holding::Held(_) => match zone_for(zones, names, name) {
            Some(zone) if zone.granted => Ok(zone),
            Some(_) => Err(refused(true)),
            None => Err(refused(false)),
        },
    }
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
/// read-modify-write of the whole rrset. The changes asked for while a zone is being written are
/// written together next, with one read of the zone and one PATCH (many Certificates in one zone
/// do not wait for each other's round trips one by one).
pub struct Dns01<P> {
    pub dns: P,
    /// PowerDNS's DNS listener, asked directly.
    pub server: SocketAddr,
    pub query_timeout: Duration,
    locks: Mutex<HashMap<String, Arc<ZoneWrites>>>,
}

/// The writer's lock of one zone and the changes waiting for it.
#[derive(Default)]
struct ZoneWrites {
    lock: tokio::sync::Mutex<()>,
    queued: Mutex<Vec<Arc<Change>>>,
}

/// One caller's change, with its outcome once a writer made it.
struct Change {
    zone: ServingZone,
    record: String,
    add: Vec<String>,
    remove: Vec<String>,
    /// Set by the writer that made the change: whether PowerDNS was written, or why not.
    outcome: Mutex<Option<Result<bool, Dns01Error>>>,
}

impl<P: DnsApi> Dns01<P> {
    pub fn new(dns: P, server: SocketAddr, query_timeout: Duration) -> Self {
        Self { dns, server, query_timeout, locks: Mutex::default() }
    }

    fn writes(&self, zone: &str) -> Arc<ZoneWrites> {
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
        if !zone.granted && !add.is_empty() {
            return Err(Dns01Error::NotGranted { zone: zone.zone.clone() });
        }
        let writes = self.writes(&zone.zone);
        let ours = Arc::new(Change {
            zone: zone.clone(),
            record: record.to_owned(),
            add: add.to_vec(),
            remove: remove.to_vec(),
            outcome: Mutex::default(),
        });
        writes.queued.lock().unwrap_or_else(|e| e.into_inner()).push(ours.clone());
        let _held = writes.lock.lock().await;
        // the writer before us made our change along with its own
        if let Some(outcome) = ours.outcome.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return outcome;
        }
        let mut batch = std::mem::take(&mut *writes.queued.lock().unwrap_or_else(|e| e.into_inner()));
        // a writer that was stopped midway took ours without making it
        if !batch.iter().any(|c| Arc::ptr_eq(c, &ours)) {
            batch.push(ours.clone());
        }
        match self.write(&zone.zone, &batch).await {
            Ok(outcomes) => {
                let mut own = Ok(false);
                for (change, outcome) in batch.iter().zip(outcomes) {
                    if Arc::ptr_eq(change, &ours) {
                        own = outcome;
                    } else {
                        *change.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                    }
                }
                own
            }
            // the others try again on their own, each getting its own error
            Err(e) => Err(e),
        }
    }

    /// Makes `changes` (all in `zone`) with one read of the zone and at most one PATCH; the
    /// outcome of each, or the error that stopped them all.
    async fn write(&self, zone: &str, changes: &[Arc<Change>]) -> Result<Vec<Result<bool, Dns01Error>>, Dns01Error> {
        let Some(current) = self.dns.zone(zone).await? else {
            return Ok(changes.iter().map(|_| Ok(false)).collect());
        };
        // the TXT contents of each record as the changes before leave it
        let mut records: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            if current.account != change.zone.owner_uid {
                outcomes.push(match change.add.is_empty() {
                    true => Ok(false),
                    false => Err(Dns01Error::NotOwned { zone: change.zone.zone.clone() }),
                });
                continue;
            }
            let i = match records.iter().position(|(r, _, _)| *r == change.record) {
                Some(i) => i,
                None => {
                    let contents: Vec<String> = current
                        .rrsets
                        .iter()
                        .filter(|r| r.name == change.record && r.rtype == "TXT")
                        .flat_map(|r| r.records.iter().map(|d| d.content.clone()))
                        .collect();
                    records.push((change.record.clone(), contents.clone(), contents));
                    records.len() - 1
                }
            };
            let now = &mut records[i].2;
            match merged(&change.record, now, &change.add, &change.remove) {
                Some(patch) => {
                    *now = patch.records.iter().map(|d| d.content.clone()).collect();
                    outcomes.push(Ok(true));
                }
                None => outcomes.push(Ok(false)),
            }
        }
        let patches: Vec<RrSet> = records
            .into_iter()
            .filter_map(|(record, mut before, after)| {
                let mut sorted = after.clone();
                sorted.sort();
                before.sort();
                (before != sorted).then(|| match after.is_empty() {
                    true => RrSet::delete(record, "TXT"),
                    false => RrSet::replace(record, "TXT", TTL, after),
                })
            })
            .collect();
        if !patches.is_empty() {
            self.dns.patch_rrsets(zone, &patches).await?;
        }
        Ok(outcomes)
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
    use crate::names::Claim;
    use mpanel_crds::dnszone::DnsZoneSpec;

    fn zone(name: &str, zone: &str, uid: &str) -> DnsZone {
        let spec: DnsZoneSpec = serde_json::from_value(serde_json::json!({
            "zone": zone, "nameservers": ["ns1.example.net"], "records": []
        }))
        .unwrap();
        let mut z = DnsZone::new(name, spec);
        z.metadata.uid = Some(uid.to_owned());
        z.metadata.namespace = Some("ours".to_owned());
        z
    }

    fn names_of<'a>(zones: impl IntoIterator<Item = &'a DnsZone>) -> Names {
        Names::decide(zones.into_iter().map(Claim::of_zone))
    }

    #[test]
    fn the_longest_zone_serving_the_name_is_chosen() {
        let zones = [zone("parent", "example.test", "u1"), zone("child", "shop.example.test", "u2")];
        let names = names_of(&zones);
        assert_eq!(zone_for(&zones, &names, "*.shop.example.test").unwrap().owner_uid, "u2");
        assert_eq!(zone_for(&zones, &names, "www.example.test").unwrap().zone, "example.test.");
        assert_eq!(zone_for(&zones, &names, "example.test").unwrap().dns_zone, "parent");
        assert_eq!(zone_for(&zones, &names, "badexample.test"), None, "a suffix that is not a parent does not count");
        assert_eq!(zone_for(&zones, &names, "other.test"), None);
        assert!(zone_for(&zones, &names, "www.shop.example.test").unwrap().granted);
    }

    #[test]
    fn a_zone_whose_claim_was_refused_serves_but_is_not_granted() {
        let ours = zone("ours", "shop.example.test", "u2");
        let mut theirs = zone("theirs", "example.test", "u1");
        theirs.metadata.namespace = Some("other".to_owned());
        let names = names_of([&theirs, &ours]);
        let serving = zone_for([&ours], &names, "www.shop.example.test").unwrap();
        assert_eq!(serving.owner_uid, "u2");
        assert!(!serving.granted, "shop.example.test is inside another namespace's zone");
    }

    #[test]
    fn a_name_is_orderable_only_when_held_and_served_by_a_granted_zone_of_the_namespace() {
        let ours = zone("ours", "ours.test", "u1");
        let mut theirs = zone("theirs", "victim.test", "u0");
        theirs.metadata.namespace = Some("customer-v".to_owned());
        let mut inside = zone("inside", "shop.victim.test", "u2");
        inside.metadata.namespace = Some("ours".to_owned());
        let names = names_of([&theirs, &ours, &inside]);
        let zones = [&ours, &inside];
        assert_eq!(orderable(zones, &names, "ours", "*.ours.test").unwrap().dns_zone, "ours");
        let refused = orderable(zones, &names, "ours", "shop.victim.test").unwrap_err();
        assert_eq!(refused.reason(), "NameHeldElsewhere");
        assert!(!refused.to_string().contains("customer-v"), "the holder is not named: {refused}");
        assert_eq!(orderable(zones, &names, "ours", "www.victim.test").unwrap_err().reason(), "NameHeldElsewhere");
        assert_eq!(orderable(zones, &names, "ours", "nobody.test").unwrap_err().reason(), "NoZoneForName");
        // held through a claim without a DnsZone (a Domain): nothing serves it here
        let domain_only =
            Names::decide([Claim::new("held.test", "ours", crate::precedence::Precedence::new(false, None, "d1"))]);
        assert_eq!(orderable(zones, &domain_only, "ours", "held.test").unwrap_err().reason(), "NoZoneForName");
    }

    /// PowerDNS that must never be asked.
    struct Untouched;

    impl DnsApi for Untouched {
        async fn zone(&self, _: &str) -> Result<Option<crate::providers::powerdns::Zone>, PowerDnsError> {
            panic!("PowerDNS was read")
        }
        async fn zones(&self) -> Result<Vec<crate::providers::powerdns::Zone>, PowerDnsError> {
            panic!("PowerDNS was read")
        }
        async fn create_zone(
            &self,
            _: &crate::providers::powerdns::NewZone,
        ) -> Result<crate::providers::powerdns::Zone, PowerDnsError> {
            panic!("PowerDNS was written")
        }
        async fn patch_rrsets(&self, _: &str, _: &[RrSet]) -> Result<(), PowerDnsError> {
            panic!("PowerDNS was written")
        }
        async fn set_account(&self, _: &str, _: &str) -> Result<(), PowerDnsError> {
            panic!("PowerDNS was written")
        }
        async fn delete_zone(&self, _: &str) -> Result<bool, PowerDnsError> {
            panic!("PowerDNS was written")
        }
    }

    #[test]
    fn no_value_is_written_into_a_zone_whose_claim_is_not_granted() {
        let dns01 = Dns01::new(Untouched, "127.0.0.1:53".parse().unwrap(), Duration::from_secs(1));
        let zone = ServingZone {
            zone: "shop.example.test.".into(),
            owner_uid: "u2".into(),
            dns_zone: "ours".into(),
            granted: false,
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let refused = rt.block_on(dns01.update(&zone, "_acme-challenge.shop.example.test.", &["v".into()], &[]));
        assert!(matches!(refused, Err(Dns01Error::NotGranted { .. })), "{refused:?}");
        assert_eq!(refused.unwrap_err().reason(), "NameHeldElsewhere");
    }

    /// One zone in memory; every read and write takes 50 ms and is counted.
    struct OneZone {
        zone: Mutex<crate::providers::powerdns::Zone>,
        reads: std::sync::atomic::AtomicUsize,
        patches: std::sync::atomic::AtomicUsize,
    }

    impl DnsApi for OneZone {
        async fn zone(&self, _: &str) -> Result<Option<crate::providers::powerdns::Zone>, PowerDnsError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Some(self.zone.lock().unwrap().clone()))
        }
        async fn zones(&self) -> Result<Vec<crate::providers::powerdns::Zone>, PowerDnsError> {
            unreachable!()
        }
        async fn create_zone(
            &self,
            _: &crate::providers::powerdns::NewZone,
        ) -> Result<crate::providers::powerdns::Zone, PowerDnsError> {
            unreachable!()
        }
        async fn patch_rrsets(&self, _: &str, rrsets: &[RrSet]) -> Result<(), PowerDnsError> {
            self.patches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut zone = self.zone.lock().unwrap();
            for r in rrsets {
                zone.rrsets.retain(|x| !(x.name == r.name && x.rtype == r.rtype));
                if !r.records.is_empty() {
                    zone.rrsets.push(r.clone());
                }
            }
            Ok(())
        }
        async fn set_account(&self, _: &str, _: &str) -> Result<(), PowerDnsError> {
            unreachable!()
        }
        async fn delete_zone(&self, _: &str) -> Result<bool, PowerDnsError> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn changes_asked_for_while_the_zone_is_written_are_written_together_and_none_is_lost() {
        let zone = crate::providers::powerdns::Zone {
            id: "example.test.".into(),
            name: "example.test.".into(),
            kind: "Native".into(),
            account: "u1".into(),
            serial: 1,
            rrsets: vec![RrSet::replace("_acme-challenge.keep.example.test.", "TXT", 60, ["\"theirs\"".to_owned()])],
        };
        let dns = OneZone { zone: Mutex::new(zone), reads: Default::default(), patches: Default::default() };
        let dns01 = Dns01::new(dns, "127.0.0.1:53".parse().unwrap(), Duration::from_secs(1));
        let serving =
            ServingZone { zone: "example.test.".into(), owner_uid: "u1".into(), dns_zone: "z".into(), granted: true };
        let records: Vec<String> = (0..20).map(|i| format!("_acme-challenge.c{}.example.test.", i % 10)).collect();
        let writes = records.iter().enumerate().map(|(i, record)| {
            let (dns01, serving) = (&dns01, &serving);
            async move { dns01.update(serving, record, &[format!("v{i}")], &[]).await }
        });
        let outcomes = futures::future::join_all(writes).await;
        assert!(outcomes.iter().all(|o| matches!(o, Ok(true))), "{outcomes:?}");
        let patches = dns01.dns.patches.load(std::sync::atomic::Ordering::SeqCst);
        assert!(patches <= 2, "20 changes queued behind the first one: {patches} PATCHes");
        let zone = dns01.dns.zone.lock().unwrap().clone();
        for (i, record) in records.iter().enumerate() {
            let rrset = zone.rrsets.iter().find(|r| r.name == *record).expect("the record is served");
            assert!(rrset.records.iter().any(|d| d.content == format!("\"v{i}\"")), "v{i} is at {record}");
        }
        assert!(zone.rrsets.iter().any(|r| r.records.iter().any(|d| d.content == "\"theirs\"")), "others kept");
        // the values come out again, together as well
        let removals = records.iter().enumerate().map(|(i, record)| {
            let (dns01, serving) = (&dns01, &serving);
            async move { dns01.update(serving, record, &[], &[format!("v{i}")]).await }
        });
        assert!(futures::future::join_all(removals).await.iter().all(|o| matches!(o, Ok(true))));
        let zone = dns01.dns.zone.lock().unwrap().clone();
        assert_eq!(zone.rrsets.len(), 1, "only the other record is left: {:?}", zone.rrsets);
        // a zone that is another DnsZone's takes no value, whoever's change it is written with
        let other = ServingZone { owner_uid: "u2".into(), ..serving.clone() };
        let refused = dns01.update(&other, "_acme-challenge.x.example.test.", &["x".into()], &[]).await;
        assert!(matches!(refused, Err(Dns01Error::NotOwned { .. })), "{refused:?}");
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
