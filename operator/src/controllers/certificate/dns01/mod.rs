//! DNS-01 through our own PowerDNS: which zone serves a name, merging challenge values into the
//! `_acme-challenge` TXT rrset (an apex and its wildcard share one), taking them out again, and
//! asking the authoritative server whether it serves them yet.
//!
//! A TXT value is only ever written into a zone that a DnsZone of the Certificate's own namespace
//! owns (PowerDNS account = that DnsZone's UID) and whose claim on its name the name index granted:
//! a customer cannot obtain a certificate for a name in another customer's zone.

use kube::ResourceExt;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::reasons;

use crate::names::{Holding, Names};
use crate::providers::dns::DnsQueryError;
use crate::providers::powerdns::{PowerDnsError, RrSet, canonical};

mod writer;

pub use writer::Dns01;

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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::names::Claim;
    use crate::providers::powerdns::DnsApi;
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
