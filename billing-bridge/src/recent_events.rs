//! The Stripe event ids this process has seen in the ledger: a redelivery of one is answered
//! without asking the database. Only ids whose row is committed are remembered, so the answer
//! "duplicate" is as true as the ledger's; the oldest are forgotten first, and an id forgotten (or
//! seen only by another replica) is looked up in the ledger as before.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Ids remembered by default: about a day of a busy account's events in a few MiB.
pub const DEFAULT_CAPACITY: usize = 50_000;

pub struct RecentEvents {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    oldest_first: VecDeque<String>,
}

impl RecentEvents {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), seen: Mutex::default() }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.seen.lock().is_ok_and(|seen| seen.ids.contains(id))
    }

    /// Remembers an id whose event is committed in the ledger.
    pub fn remember(&self, id: &str) {
        let Ok(mut seen) = self.seen.lock() else { return };
        if !seen.ids.insert(id.to_owned()) {
            return;
        }
        seen.oldest_first.push_back(id.to_owned());
        while seen.oldest_first.len() > self.capacity {
            if let Some(old) = seen.oldest_first.pop_front() {
                seen.ids.remove(&old);
            }
        }
    }
}

impl Default for RecentEvents {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_its_capacity_and_forgets_the_oldest_first() {
        let recent = RecentEvents::new(2);
        recent.remember("evt_1");
        recent.remember("evt_2");
        recent.remember("evt_1");
        assert!(recent.contains("evt_1") && recent.contains("evt_2"));
        recent.remember("evt_3");
        assert!(!recent.contains("evt_1"), "the oldest is forgotten");
        assert!(recent.contains("evt_2") && recent.contains("evt_3"));
        assert!(!recent.contains("evt_4"));
    }
}
