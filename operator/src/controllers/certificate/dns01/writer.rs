//! The writer of challenge records: one writer per zone at a time, the changes asked for meanwhile
//! written together next, and the question to the authoritative server whether it serves them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Dns01Error, ServingZone, TTL, merged};
use crate::providers::dns;
use crate::providers::powerdns::{DnsApi, RrSet};

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
