//! An in-memory PowerDNS authoritative server behind [`DnsApi`], faithful where the operator relies
//! on it: zones keyed by canonical name with their `account` marker; creating an existing zone is
//! refused with 409 `Conflict`; a missing zone reads as `None` and deletes as `false`, while a PATCH
//! or account change of one is a 404 `Not Found`; a PATCH applies whole-rrset REPLACE/DELETE changes
//! all or nothing (a refused one, 422 with PowerDNS's wording, changes nothing); every accepted PATCH
//! moves the SOA serial by one (as `soa_edit_api` does); a new zone gets a SOA and the apex NS rrset
//! of its nameservers, as PowerDNS makes them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::providers::powerdns::{ChangeType, DnsApi, NewZone, PowerDnsError, RrSet, Zone, canonical};
use crate::testing::calls::Recorder;

/// The operations of [`DnsApi`], by the names the real client counts them under.
pub const OPERATIONS: [&str; 6] =
    ["get_zone", "list_zones", "create_zone", "patch_rrsets", "set_account", "delete_zone"];

/// The operations that only read.
const READS: [&str; 2] = ["get_zone", "list_zones"];

/// TTL PowerDNS gives the SOA and NS rrsets it makes for a new zone.
pub const DEFAULT_TTL: u32 = 3600;

/// One call made to the fake: the operation (see [`OPERATIONS`]) and the zone it named (empty for
/// `list_zones`).
pub use crate::testing::calls::Call;

struct Stored {
    zone: Zone,
    /// Whether PowerDNS moves the serial on API edits (`soa_edit_api` set and not `OFF`).
    bump_serial: bool,
}

#[derive(Default)]
struct State {
    zones: BTreeMap<String, Stored>,
    calls: Recorder<Call, PowerDnsError>,
}

/// The fake server; clones share one state, so a test keeps a handle while the controller's
/// context owns another.
#[derive(Clone, Default)]
pub struct FakePowerDns {
    state: Arc<Mutex<State>>,
}

/// `name` as PowerDNS keys it: lowercase, one trailing dot.
fn key(name: &str) -> String {
    canonical(&name.to_ascii_lowercase())
}

fn rejected(status: u16, message: impl Into<String>) -> PowerDnsError {
    PowerDnsError::Rejected { status, message: message.into() }
}

fn operation(op: &str) -> &'static str {
    OPERATIONS.iter().copied().find(|o| *o == op).unwrap_or_else(|| panic!("FakePowerDns has no operation {op:?}"))
}

impl FakePowerDns {
    /// An empty server.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The zone with its rrsets as `GET /zones/{id}` would return it now.
    pub fn zone(&self, name: &str) -> Option<Zone> {
        self.lock().zones.get(&key(name)).map(|s| s.zone.clone())
    }

    /// The rrset of `name` (absolute, trailing dot optional) and `rtype` in `zone`.
    pub fn rrset(&self, zone: &str, name: &str, rtype: &str) -> Option<RrSet> {
        let name = key(name);
        self.zone(zone)?.rrsets.into_iter().find(|r| r.name == name && r.rtype.eq_ignore_ascii_case(rtype))
    }

    /// The record contents of that rrset, empty when there is none.
    pub fn contents(&self, zone: &str, name: &str, rtype: &str) -> Vec<String> {
        self.rrset(zone, name, rtype).map(|r| r.records.into_iter().map(|d| d.content).collect()).unwrap_or_default()
    }

    /// Makes a zone out of band (another account, an older operator, by hand) as `create_zone` would
    /// with these rrsets, plus nameserver `ns1.example.net.` unless they hold the apex NS; not a call.
    pub fn insert_zone(&self, name: &str, account: &str, rrsets: Vec<RrSet>) -> Zone {
        let new = NewZone {
            name: name.to_owned(),
            kind: "Native".to_owned(),
            nameservers: if rrsets.iter().any(|r| r.rtype == "NS" && key(&r.name) == key(name)) {
                Vec::new()
            } else {
                vec!["ns1.example.net.".to_owned()]
            },
            account: account.to_owned(),
            soa_edit_api: "DEFAULT".to_owned(),
            rrsets,
        };
        let mut state = self.lock();
        state.zones.remove(&key(name));
        create(&mut state, &new).unwrap_or_else(|e| panic!("insert_zone({name}): {e}"))
    }

    /// Applies `changes` (REPLACE/DELETE entries) out of band, as a hand edit would (the serial
    /// moves); not a call. Panics when PowerDNS would refuse them.
    pub fn edit_rrsets(&self, zone: &str, changes: &[RrSet]) {
        let mut state = self.lock();
        let stored = state.zones.get_mut(&key(zone)).unwrap_or_else(|| panic!("edit_rrsets: no zone {zone}"));
        let mut next = patched(&stored.zone, changes).unwrap_or_else(|e| panic!("edit_rrsets({zone}): {e}"));
        if stored.bump_serial {
            bump_serial(&mut next);
        }
        stored.zone = next;
    }

    /// Every call made so far, in order (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.log.all()
    }

    /// The calls that would change something (anything but `get_zone` and `list_zones`).
    pub fn writes(&self) -> Vec<Call> {
        self.lock().calls.log.writes(&READS)
    }

    /// Forgets the calls recorded so far (e.g. after a test's setup).
    pub fn clear_calls(&self) {
        self.lock().calls.log.clear();
    }

    /// Makes the next call of `op` fail with 422 and `message` (PowerDNS's wording), changing
    /// nothing; each call to this adds one failure.
    pub fn fail_next(&self, op: &str, message: &str) {
        self.fail_next_with(op, rejected(422, message));
    }

    /// Makes the next call of `op` fail with `error` (any status, or unreachable), changing nothing.
    pub fn fail_next_with(&self, op: &str, error: PowerDnsError) {
        self.lock().calls.failures.push(operation(op), error);
    }

    /// Records the call and hands out a failure queued for it.
    fn begin(&self, op: &'static str, target: &str) -> Result<MutexGuard<'_, State>, PowerDnsError> {
        let mut state = self.lock();
        state.calls.begin(Call { op, target: target.to_owned() })?;
        Ok(state)
    }
}

/// The SOA serial in `content` (`mname rname serial refresh retry expire minimum`).
fn soa_serial(content: &str) -> Option<u32> {
    content.split_whitespace().nth(2)?.parse().ok()
}

/// Moves the zone's SOA serial by one, and its `serial` with it.
fn bump_serial(zone: &mut Zone) {
    let apex = zone.name.clone();
    let Some(soa) = zone.rrsets.iter_mut().find(|r| r.rtype == "SOA" && r.name == apex) else { return };
    let Some(record) = soa.records.first_mut() else { return };
    let mut fields: Vec<String> = record.content.split_whitespace().map(str::to_owned).collect();
    let Some(serial) = fields.get_mut(2) else { return };
    let next = serial.parse::<u32>().unwrap_or(0).wrapping_add(1);
    *serial = next.to_string();
    record.content = fields.join(" ");
    zone.serial = next;
}

/// The sort order PowerDNS lists rrsets in here: by name, then type.
fn sort(rrsets: &mut [RrSet]) {
    rrsets.sort_by(|a, b| (&a.name, &a.rtype).cmp(&(&b.name, &b.rtype)));
}

/// Checks one rrset the way PowerDNS does before storing it.
fn check(zone: &str, rrset: &RrSet) -> Result<(), PowerDnsError> {
    if !rrset.name.ends_with('.') {
        return Err(rejected(422, format!("DNS Name '{}' is not canonical", rrset.name)));
    }
    let name = key(&rrset.name);
    if name != zone && !name.ends_with(&format!(".{zone}")) {
        return Err(rejected(422, format!("RRset {} IN {}: Name is out of zone", rrset.name, rrset.rtype)));
    }
    for (i, record) in rrset.records.iter().enumerate() {
        let content = record.content.as_str();
        if rrset.records[..i].iter().any(|r| r.content == record.content) {
            return Err(rejected(
                422,
                format!("Duplicate record in RRset {} IN {} with content \"{content}\"", rrset.name, rrset.rtype),
            ));
        }
        if rrset.rtype == "TXT" && !content.starts_with('"') {
            return Err(rejected(
                422,
                format!(
                    "Record {}/TXT '{content}': Parsing record content (try 'pdnsutil check-zone'): Data field in DNS \
                     should start with quote (\") at position 0 of '{content}'",
                    rrset.name
                ),
            ));
        }
        let valid = match rrset.rtype.as_str() {
            "A" => content.parse::<Ipv4Addr>().is_ok(),
            "AAAA" => content.parse::<Ipv6Addr>().is_ok(),
            "MX" => content.split_whitespace().count() == 2,
            "SOA" => content.split_whitespace().count() == 7 && soa_serial(content).is_some(),
            _ => !content.is_empty(),
        };
        if !valid {
            return Err(rejected(
                422,
                format!(
                    "Record {}/{} '{content}': Parsing record content (try 'pdnsutil check-zone'): unable to parse",
                    rrset.name, rrset.rtype
                ),
            ));
        }
    }
    Ok(())
}

/// A CNAME must be the only rrset at its name.
fn check_cname(rrsets: &[RrSet]) -> Result<(), PowerDnsError> {
    for cname in rrsets.iter().filter(|r| r.rtype == "CNAME") {
        if let Some(other) = rrsets.iter().find(|r| r.name == cname.name && r.rtype != "CNAME") {
            return Err(rejected(422, format!("RRset {} IN CNAME: Conflicts with pre-existing RRset", other.name)));
        }
    }
    Ok(())
}

/// The stored form of an rrset: lowercase name, no changetype.
fn stored(rrset: &RrSet) -> RrSet {
    RrSet { name: key(&rrset.name), changetype: None, ..rrset.clone() }
}

fn create(state: &mut State, new: &NewZone) -> Result<Zone, PowerDnsError> {
    let name = key(&new.name);
    if state.zones.contains_key(&name) {
        return Err(rejected(409, "Conflict"));
    }
    let mut rrsets = Vec::new();
    for rrset in &new.rrsets {
        check(&name, rrset)?;
        if rrset.rtype == "NS" && key(&rrset.name) == name && !new.nameservers.is_empty() {
            return Err(rejected(422, "Nameservers list MUST NOT be mixed with zone-level NS in rrsets"));
        }
        rrsets.push(stored(rrset));
    }
    check_cname(&rrsets)?;
    if !rrsets.iter().any(|r| r.rtype == "SOA" && r.name == name) {
        let content = format!("a.misconfigured.dns.server.invalid. hostmaster.{name} 0 10800 3600 604800 3600");
        rrsets.push(RrSet::replace(name.clone(), "SOA", DEFAULT_TTL, [content]));
    }
    if !new.nameservers.is_empty() {
        let contents = new.nameservers.iter().map(|ns| key(ns));
        rrsets.push(RrSet::replace(name.clone(), "NS", DEFAULT_TTL, contents));
    }
    let mut rrsets: Vec<RrSet> = rrsets.iter().map(stored).collect();
    sort(&mut rrsets);
    let bump = !new.soa_edit_api.is_empty() && !new.soa_edit_api.eq_ignore_ascii_case("OFF");
    let mut zone = Zone {
        id: name.clone(),
        name: name.clone(),
        kind: new.kind.clone(),
        account: new.account.clone(),
        serial: 0,
        rrsets,
    };
    zone.serial = zone
        .rrsets
        .iter()
        .find(|r| r.rtype == "SOA")
        .and_then(|r| r.records.first())
        .and_then(|d| soa_serial(&d.content))
        .unwrap_or(0);
    if bump && zone.serial == 0 {
        bump_serial(&mut zone);
    }
    state.zones.insert(name, Stored { zone: zone.clone(), bump_serial: bump });
    Ok(zone)
}

/// `rrsets` applied to a copy of `zone`, or the first refusal.
fn patched(zone: &Zone, rrsets: &[RrSet]) -> Result<Zone, PowerDnsError> {
    let mut next = zone.clone();
    for change in rrsets {
        check(&zone.name, change)?;
        let (name, rtype) = (key(&change.name), change.rtype.clone());
        next.rrsets.retain(|r| !(r.name == name && r.rtype == rtype));
        match change.changetype {
            Some(ChangeType::Delete) => {}
            Some(ChangeType::Replace) => {
                if change.ttl.is_none() {
                    return Err(rejected(422, "Key 'ttl' not present or not a Number"));
                }
                if !change.records.is_empty() {
                    next.rrsets.push(stored(change));
                }
            }
            None => return Err(rejected(422, "Changetype not understood")),
        }
    }
    check_cname(&next.rrsets)?;
    sort(&mut next.rrsets);
    Ok(next)
}

impl DnsApi for FakePowerDns {
    async fn zone(&self, name: &str) -> Result<Option<Zone>, PowerDnsError> {
        let state = self.begin("get_zone", &key(name))?;
        Ok(state.zones.get(&key(name)).map(|s| s.zone.clone()))
    }

    async fn zones(&self) -> Result<Vec<Zone>, PowerDnsError> {
        let state = self.begin("list_zones", "")?;
        Ok(state.zones.values().map(|s| Zone { rrsets: Vec::new(), ..s.zone.clone() }).collect())
    }

    async fn create_zone(&self, zone: &NewZone) -> Result<Zone, PowerDnsError> {
        let mut state = self.begin("create_zone", &key(&zone.name))?;
        create(&mut state, zone)
    }

    async fn patch_rrsets(&self, zone: &str, rrsets: &[RrSet]) -> Result<(), PowerDnsError> {
        let mut state = self.begin("patch_rrsets", &key(zone))?;
        let stored = state.zones.get_mut(&key(zone)).ok_or_else(|| rejected(404, "Not Found"))?;
        let mut next = patched(&stored.zone, rrsets)?;
        if stored.bump_serial {
            bump_serial(&mut next);
        }
        stored.zone = next;
        Ok(())
    }

    async fn set_account(&self, zone: &str, account: &str) -> Result<(), PowerDnsError> {
        let mut state = self.begin("set_account", &key(zone))?;
        let stored = state.zones.get_mut(&key(zone)).ok_or_else(|| rejected(404, "Not Found"))?;
        stored.zone.account = account.to_owned();
        Ok(())
    }

    async fn delete_zone(&self, zone: &str) -> Result<bool, PowerDnsError> {
        let mut state = self.begin("delete_zone", &key(zone))?;
        Ok(state.zones.remove(&key(zone)).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_zone(name: &str, account: &str) -> NewZone {
        NewZone {
            name: name.to_owned(),
            kind: "Native".to_owned(),
            nameservers: vec!["ns1.example.net.".to_owned(), "ns2.example.net.".to_owned()],
            account: account.to_owned(),
            soa_edit_api: "DEFAULT".to_owned(),
            rrsets: vec![RrSet::replace("www.example.com.", "A", 300, ["192.0.2.10".to_owned()])],
        }
    }

    #[tokio::test]
    async fn a_created_zone_has_its_soa_ns_and_records_and_a_second_create_conflicts() {
        let dns = FakePowerDns::new();
        let handle = dns.clone();
        assert_eq!(DnsApi::zone(&dns, "example.com").await.unwrap(), None);
        let created = dns.create_zone(&new_zone("example.com", "uid-1")).await.unwrap();
        assert_eq!(created.name, "example.com.");
        let zone = handle.zone("example.com").unwrap();
        assert_eq!(zone.account, "uid-1");
        assert_eq!(zone.serial, 1);
        assert_eq!(handle.contents("example.com", "example.com", "NS"), ["ns1.example.net.", "ns2.example.net."]);
        assert_eq!(handle.contents("example.com.", "www.example.com.", "A"), ["192.0.2.10"]);
        assert!(handle.rrset("example.com", "example.com", "SOA").is_some());

        let err = dns.create_zone(&new_zone("example.com.", "uid-2")).await.unwrap_err();
        assert!(matches!(&err, PowerDnsError::Rejected { status: 409, .. }), "{err:?}");
        assert_eq!(err.reason(), "PowerDnsConflict");
        assert_eq!(handle.zone("example.com").unwrap().account, "uid-1", "the conflict changed the owner");
        let ops: Vec<_> = handle.calls().iter().map(|c| c.op).collect();
        assert_eq!(ops, ["get_zone", "create_zone", "create_zone"]);
    }

    #[tokio::test]
    async fn a_patch_is_atomic_replaces_and_deletes_whole_rrsets_and_moves_the_serial() {
        let dns = FakePowerDns::new();
        dns.create_zone(&new_zone("example.com", "uid-1")).await.unwrap();
        let before = DnsApi::zone(&dns, "example.com").await.unwrap().unwrap();

        let err = dns
            .patch_rrsets(
                "example.com",
                &[
                    RrSet::replace("ok.example.com.", "A", 300, ["192.0.2.30".to_owned()]),
                    RrSet::replace("bad.example.com.", "A", 300, ["not-an-address".to_owned()]),
                ],
            )
            .await
            .unwrap_err();
        let PowerDnsError::Rejected { status: 422, message } = &err else { panic!("{err:?}") };
        assert!(message.contains("not-an-address"), "{message}");
        assert_eq!(dns.zone("example.com"), Some(before.clone()), "a refused PATCH changed the zone");

        dns.patch_rrsets(
            "example.com",
            &[
                RrSet::replace("www.example.com.", "A", 300, ["192.0.2.20".to_owned(), "192.0.2.21".to_owned()]),
                RrSet::replace("mail.example.com.", "A", 300, ["192.0.2.25".to_owned()]),
            ],
        )
        .await
        .unwrap();
        assert_eq!(dns.contents("example.com", "www.example.com", "A"), ["192.0.2.20", "192.0.2.21"]);
        let after = dns.zone("example.com").unwrap();
        assert!(after.serial > before.serial, "the serial did not move");

        dns.patch_rrsets("example.com", &[RrSet::delete("www.example.com.", "A")]).await.unwrap();
        assert_eq!(dns.rrset("example.com", "www.example.com", "A"), None);
        assert_eq!(dns.contents("example.com", "mail.example.com", "A"), ["192.0.2.25"]);

        let err = dns.patch_rrsets("other.com", &[RrSet::delete("x.other.com.", "A")]).await.unwrap_err();
        assert!(matches!(err, PowerDnsError::Rejected { status: 404, .. }), "{err:?}");
        let out = dns.patch_rrsets("example.com", &[RrSet::delete("x.other.com.", "A")]).await.unwrap_err();
        assert!(out.to_string().contains("out of zone"), "{out}");
    }

    #[tokio::test]
    async fn zones_made_out_of_band_list_with_their_account_and_delete_reports_absence() {
        let dns = FakePowerDns::new();
        dns.insert_zone("taken.com", "someone-else", vec![]);
        assert!(dns.calls().is_empty(), "setup is not a call");
        let listed = dns.zones().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].account.as_str()), ("taken.com.", "someone-else"));
        assert!(listed[0].rrsets.is_empty(), "the listing has no rrsets");
        dns.set_account("taken.com", "me").await.unwrap();
        assert_eq!(dns.zone("taken.com").unwrap().account, "me");
        assert!(dns.delete_zone("taken.com").await.unwrap());
        assert!(!dns.delete_zone("taken.com").await.unwrap());
        let writes: Vec<_> = dns.writes().iter().map(|c| c.op).collect();
        assert_eq!(writes, ["set_account", "delete_zone", "delete_zone"]);
        dns.clear_calls();
        assert!(dns.zone("taken.com").is_none() && dns.calls().is_empty(), "inspection is not a call");

        dns.insert_zone("example.com", "uid-1", vec![]);
        let serial = dns.zone("example.com").unwrap().serial;
        dns.edit_rrsets("example.com", &[RrSet::replace("x.example.com.", "TXT", 60, ["\"by hand\"".to_owned()])]);
        assert_eq!(dns.contents("example.com", "x.example.com", "TXT"), ["\"by hand\""]);
        assert_eq!(dns.zone("example.com").unwrap().serial, serial + 1);
        assert!(dns.calls().is_empty(), "a hand edit is not a call");
        let unquoted = [RrSet::replace("y.example.com.", "TXT", 60, ["v=spf1 -all".to_owned()])];
        let err = dns.patch_rrsets("example.com", &unquoted).await.unwrap_err();
        assert!(err.to_string().contains("should start with quote"), "{err}");
        let twice = [RrSet::replace("y.example.com.", "A", 60, ["192.0.2.1".to_owned(), "192.0.2.1".to_owned()])];
        let err = dns.patch_rrsets("example.com", &twice).await.unwrap_err();
        assert!(err.to_string().contains("Duplicate record"), "{err}");
    }

    #[tokio::test]
    async fn a_queued_failure_is_returned_once_verbatim_and_changes_nothing() {
        let dns = FakePowerDns::new();
        dns.insert_zone("example.com", "uid-1", vec![]);
        dns.fail_next("patch_rrsets", "Record www.example.com./A: boom");
        let change = [RrSet::replace("www.example.com.", "A", 300, ["192.0.2.1".to_owned()])];
        let err = dns.patch_rrsets("example.com", &change).await.unwrap_err();
        assert_eq!(err.to_string(), "PowerDNS answered 422: Record www.example.com./A: boom");
        assert_eq!(dns.rrset("example.com", "www.example.com", "A"), None);
        dns.fail_next_with("get_zone", PowerDnsError::Unreachable("connection refused".into()));
        assert!(matches!(DnsApi::zone(&dns, "example.com").await, Err(PowerDnsError::Unreachable(_))));
        dns.patch_rrsets("example.com", &change).await.unwrap();
        assert_eq!(dns.contents("example.com", "www.example.com", "A"), ["192.0.2.1"]);
        assert_eq!(dns.calls().len(), 3);
    }
}
