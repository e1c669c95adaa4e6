//! When the registrar is read: a Domain's registration (expiry, lock, privacy, auto-renew,
//! nameservers) is looked up when its spec, reconcile mode or adoption changed, when an order is in
//! flight or an action was just taken, when its expiry or renewal decision is due, and otherwise at
//! most once per sync interval (spread per Domain). A reconcile in between works from the last
//! observation: no registrar call, and no status write when nothing else changed.
//!
//! The observations are kept in memory: after a restart every Domain is read once. Only a reconcile
//! that read the registrar and changed nothing there leaves an observation to reuse; an action, a
//! failure or a name that is not in the account of a Domain that may buy it leaves none, so the
//! next reconcile reads afresh and a paid call always follows a fresh look.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::domain::{Adoption, Domain, OrderState, RegistrationMode};

use super::claims::adoption;
use super::renewal::{self, Plan};
use crate::controllers::{Clock, resync_after};
use crate::providers::namesilo::{DomainInfo, is_completed};

/// The registrar sync schedule of every Domain this controller reconciles.
pub struct RegistrarSync {
    interval: Duration,
    seen: Mutex<HashMap<String, Seen>>,
}

/// The last registrar observation of one Domain.
struct Seen {
    /// What it was taken for: a different one is read afresh.
    basis: Basis,
    at: Timestamp,
    /// When the next read is due.
    due: Timestamp,
    /// `None`: the name is not in the account.
    info: Option<DomainInfo>,
}

/// What about a Domain decides what the registrar is asked: its spec, reconcile mode and adoption.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Basis {
    generation: Option<i64>,
    mode: ReconcileMode,
    adopted: Option<Adoption>,
}

impl Basis {
    fn of(domain: &Domain, mode: ReconcileMode) -> Self {
        Self { generation: domain.metadata.generation, mode, adopted: adoption(domain) }
    }
}

impl RegistrarSync {
    /// A schedule reading each Domain at most once per `interval` when nothing is due.
    pub fn new(interval: Duration) -> Self {
        Self { interval, seen: Mutex::default() }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last observation of `domain`, when it still stands: `None` when the registrar is to be
    /// read now.
    pub(super) fn recent(&self, domain: &Domain, mode: ReconcileMode, clock: &Clock) -> Option<Option<DomainInfo>> {
        let seen = self.seen();
        let last = seen.get(&key(domain))?;
        let now = clock.now();
        if last.basis != Basis::of(domain, mode) || now >= last.due || in_flight(domain) {
            return None;
        }
        let Some(info) = &last.info else {
            // a name not in the account is bought at once by a Domain that may: never from memory
            let hands_off =
                domain.spec.registration.mode == RegistrationMode::External || mode == ReconcileMode::ObserveOnly;
            return hands_off.then_some(None);
        };
        if decision_due(domain, mode, info, last.at, now) {
            return None;
        }
        Some(Some(info.clone()))
    }

    /// Keeps what the registrar said of `domain` in this reconcile, which changed nothing there.
    pub(super) fn observed(&self, domain: &Domain, mode: ReconcileMode, info: Option<&DomainInfo>, clock: &Clock) {
        let at = clock.now();
        let spread = jiff::SignedDuration::try_from(resync_after(domain, self.interval)).unwrap_or_default();
        let due = at.saturating_add(spread).unwrap_or(Timestamp::MAX);
        let seen = Seen { basis: Basis::of(domain, mode), at, due, info: info.cloned() };
        self.seen().insert(key(domain), seen);
    }

    /// Forgets the observation of `domain`: its next reconcile reads the registrar.
    pub(super) fn forget(&self, domain: &Domain) {
        self.seen().remove(&key(domain));
    }
}

fn key(domain: &Domain) -> String {
    domain.uid().unwrap_or_else(|| format!("{}/{}", domain.namespace().unwrap_or_default(), domain.name_any()))
}

/// An order sent without its answer on record, or a transfer the registrar has not finished: the
/// registrar's word is needed now.
fn in_flight(domain: &Domain) -> bool {
    let Some(status) = &domain.status else { return false };
    let order_sent = status.last_order.as_ref().is_some_and(|o| o.state == OrderState::Sent);
    let transfer_open = status.transfer.as_ref().is_some_and(|t| !is_completed(&t.state));
    order_sent || transfer_open
}

/// Whether a renewal would be paid for on `info`, or the registration ran out since it was seen:
/// both are decided on a fresh look.
fn decision_due(domain: &Domain, mode: ReconcileMode, info: &DomainInfo, seen_at: Timestamp, now: Timestamp) -> bool {
    let clock_day = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
    if renewal::expired(&info.expires, clock_day(now)) && !renewal::expired(&info.expires, clock_day(seen_at)) {
        return true;
    }
    let hands_off = domain.spec.registration.mode == RegistrationMode::External || mode == ReconcileMode::ObserveOnly;
    let last_order = domain.status.as_ref().and_then(|s| s.last_order.as_ref());
    let plan = renewal::plan(domain.spec.paid_until.as_deref(), &info.expires, last_order);
    matches!(plan, Plan::Renew(_)) && !hands_off
}
