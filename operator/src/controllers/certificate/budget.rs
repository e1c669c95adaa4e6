//! The order budget per registered domain: at most N new ACME orders for `example.com` (and all
//! names under it) in any 7 days, across every Certificate, so the CA's own limit (Let's Encrypt:
//! 50 certificates per registered domain per week) is never what stops us.
//!
//! Orders are counted in a ConfigMap, one key per registered domain holding the order times (each
//! with the namespace that ordered), so the count survives restarts and a crash-looping operator
//! cannot run through the CA's limit.
//!
//! A registered domain can be split between namespaces (one holds `shop.example.com`, another
//! `blog.example.com`, nobody `example.com`). A namespace that does not hold the registered domain
//! itself may use only an equal share of its budget: the budget divided by the number of
//! namespaces holding names under it. Together they cannot spend more than the whole, and none can
//! spend what another namespace's names need. (A namespace that joins while the others have spent
//! their shares gets its own as their orders leave the window.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

pub const WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The registered domain (public suffix + one label) an order for `name` counts against.
pub fn registered_domain(name: &str) -> String {
    let name = name.trim_start_matches("*.").trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&name).map(str::to_owned).unwrap_or(name)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    /// `domain` has used its budget; the oldest order in the window leaves it at `free_at`.
    Exhausted {
        domain: String,
        used: usize,
        free_at: Timestamp,
    },
    /// The namespace, which does not hold `domain` itself, has used its share of the budget.
    ShareExhausted {
        domain: String,
        used: usize,
        share: usize,
        free_at: Timestamp,
    },
}

/// Who orders: the namespace, and how much of a registered domain's budget it may use.
pub struct Orderer<'a> {
    pub namespace: &'a str,
    /// `None` when the namespace holds the registered domain itself (the whole budget), else how
    /// many namespaces hold names under it (the orderer among them).
    pub sharing: &'a (dyn Fn(&str) -> Option<usize> + Sync),
}

/// The share of a registered domain's budget of `limit` orders for each of `holders` namespaces
/// that hold names under it but not the domain itself.
pub fn share(limit: u32, holders: usize) -> usize {
    (limit as usize / holders.max(1)).max(1)
}

/// One counted order: its time and the namespace that placed it (none in entries written before
/// namespaces were recorded).
struct Entry<'a> {
    at: Timestamp,
    namespace: Option<&'a str>,
}

fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.split_whitespace().filter_map(|e| {
        let (at, namespace) = match e.split_once('@') {
            Some((at, ns)) => (at, Some(ns)),
            None => (e, None),
        };
        Some(Entry { at: Timestamp::from_second(at.parse::<i64>().ok()?).ok()?, namespace })
    })
}

/// Counts one order of `orderer` for every registered domain of `dns_names` in `data`, unless one
/// of them has `limit` orders within `WINDOW` of `now`, or the orderer does not hold it and has its
/// share of them. Drops times that left the window.
pub fn spend(
    data: &mut BTreeMap<String, String>,
    dns_names: &[String],
    orderer: &Orderer<'_>,
    now: Timestamp,
    limit: u32,
) -> Verdict {
    let window = jiff::SignedDuration::try_from(WINDOW).unwrap_or(jiff::SignedDuration::MAX);
    let oldest_kept = now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let domains: BTreeSet<String> = dns_names.iter().map(|n| registered_domain(n)).collect();
    let mut kept_text: BTreeMap<&String, Vec<String>> = BTreeMap::new();
    for domain in &domains {
        let text = data.get(domain).map(String::as_str).unwrap_or_default();
        let kept: Vec<Entry<'_>> = entries(text).filter(|e| e.at > oldest_kept).collect();
        let free_at = |of: &mut dyn Iterator<Item = &Entry<'_>>| {
            let first = of.map(|e| e.at).min().unwrap_or(now);
            first.checked_add(window).unwrap_or(Timestamp::MAX)
        };
        if kept.len() >= limit as usize {
            let free_at = free_at(&mut kept.iter());
            return Verdict::Exhausted { domain: domain.clone(), used: kept.len(), free_at };
        }
        if let Some(holders) = (orderer.sharing)(domain) {
            let own = || kept.iter().filter(|e| e.namespace == Some(orderer.namespace));
            let (used, share) = (own().count(), share(limit, holders));
            if used >= share {
                let free_at = free_at(&mut own());
                return Verdict::ShareExhausted { domain: domain.clone(), used, share, free_at };
            }
        }
        let text = kept.iter().map(|e| match e.namespace {
            Some(ns) => format!("{}@{ns}", e.at.as_second()),
            None => e.at.as_second().to_string(),
        });
        kept_text.insert(domain, text.collect());
    }
    for (domain, mut kept) in kept_text {
        kept.push(format!("{}@{}", now.as_second(), orderer.namespace));
        data.insert(domain.clone(), kept.join(" "));
    }
    Verdict::Granted
}

/// The budget, kept in the ConfigMap `name` of `api`'s namespace.
pub struct Budget {
    pub api: Api<ConfigMap>,
    pub name: String,
    pub limit: u32,
    /// One writer of the ConfigMap at a time in this process (the Certificates reconciled at once
    /// would otherwise each read the same ConfigMap and all but one lose the write with a 409), and
    /// the reservations asked for meanwhile, decided and written together by the next writer.
    writes: Writes,
}

#[derive(Default)]
struct Writes {
    lock: tokio::sync::Mutex<()>,
    queued: std::sync::Mutex<Vec<Arc<Ask>>>,
}

/// One reservation asked for, with its verdict once a writer stored it.
struct Ask {
    dns_names: Vec<String>,
    namespace: String,
    /// `Orderer::sharing` of each registered domain of `dns_names`.
    sharing: BTreeMap<String, Option<usize>>,
    now: Timestamp,
    verdict: std::sync::Mutex<Option<Verdict>>,
}

impl Budget {
    pub fn new(api: Api<ConfigMap>, name: String, limit: u32) -> Self {
        Self { api, name, limit, writes: Writes::default() }
    }

    /// Counts an order of `orderer` for `dns_names` if the budget allows it; the count is stored
    /// before the order is placed, so a crash after ordering can only over-count. The reservations
    /// asked for while one is written are decided one after another on the same copy and stored
    /// with one write, so many Certificates applied together do not wait for each other's round
    /// trips to the API server one by one.
    pub async fn reserve(
        &self,
        dns_names: &[String],
        orderer: &Orderer<'_>,
        now: Timestamp,
    ) -> Result<Verdict, kube::Error> {
        let sharing = dns_names.iter().map(|n| registered_domain(n)).map(|d| {
            let holders = (orderer.sharing)(&d);
            (d, holders)
        });
        let ours = Arc::new(Ask {
            dns_names: dns_names.to_vec(),
            namespace: orderer.namespace.to_owned(),
            sharing: sharing.collect(),
            now,
            verdict: std::sync::Mutex::default(),
        });
        self.writes.queued.lock().unwrap_or_else(|e| e.into_inner()).push(ours.clone());
        let _turn = self.writes.lock.lock().await;
        // the writer before us stored our reservation along with its own
        if let Some(verdict) = ours.verdict.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Ok(verdict);
        }
        let mut batch = std::mem::take(&mut *self.writes.queued.lock().unwrap_or_else(|e| e.into_inner()));
        // a writer that failed or was stopped midway took ours without storing it
        if !batch.iter().any(|a| Arc::ptr_eq(a, &ours)) {
            batch.push(ours.clone());
        }
        // the others get their verdicts only once they are stored; on an error they ask again
        // themselves, each getting its own error
        let verdicts = self.store(&batch).await?;
        let mut own = Verdict::Granted;
        for (ask, verdict) in batch.iter().zip(verdicts) {
            if Arc::ptr_eq(ask, &ours) {
                own = verdict;
            } else {
                *ask.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
            }
        }
        Ok(own)
    }

    /// Decides `asks` in turn on the ConfigMap's current copy and stores the ones granted with
    /// one write (none when nothing was granted); the verdict of each.
    async fn store(&self, asks: &[Arc<Ask>]) -> Result<Vec<Verdict>, kube::Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let existing = self.api.get_opt(&self.name).await?;
            let mut map = existing.clone().unwrap_or_else(|| ConfigMap {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                ..ConfigMap::default()
            });
            let mut data = map.data.take().unwrap_or_default();
            let verdicts: Vec<Verdict> = asks
                .iter()
                .map(|ask| {
                    let sharing = |domain: &str| ask.sharing.get(domain).copied().flatten();
                    let orderer = Orderer { namespace: &ask.namespace, sharing: &sharing };
                    spend(&mut data, &ask.dns_names, &orderer, ask.now, self.limit)
                })
                .collect();
            if !verdicts.contains(&Verdict::Granted) {
                return Ok(verdicts);
            }
            map.data = Some(data);
            let written = match existing {
                Some(_) => self.api.replace(&self.name, &PostParams::default(), &map).await,
                None => self.api.create(&PostParams::default(), &map).await,
            };
            match written {
                Ok(_) => return Ok(verdicts),
                // another operator counted meanwhile: decide again on the fresh copy
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_count_against_their_registered_domain() {
        assert_eq!(registered_domain("*.shop.example.com"), "example.com");
        assert_eq!(registered_domain("www.example.co.uk."), "example.co.uk");
        assert_eq!(registered_domain("a.b.example.test"), "example.test");
    }

    fn holder(ns: &'static str) -> Orderer<'static> {
        Orderer { namespace: ns, sharing: &|_| None }
    }

    #[test]
    fn the_budget_is_spent_per_registered_domain_and_refills_after_a_week() {
        let spend = |data: &mut BTreeMap<String, String>, names: &[String], now, limit| {
            spend(data, names, &holder("a"), now, limit)
        };
        let mut data = BTreeMap::new();
        let t0 = Timestamp::from_second(2_000_000_000).unwrap();
        // apex and wildcard of one domain are one order against one budget
        assert_eq!(spend(&mut data, &names(&["example.test", "*.example.test"]), t0, 2), Verdict::Granted);
        assert_eq!(data["example.test"], "2000000000@a");
        let t1 = t0.checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
        assert_eq!(spend(&mut data, &names(&["www.example.test"]), t1, 2), Verdict::Granted);
        let t2 = t0.checked_add(jiff::SignedDuration::from_hours(2)).unwrap();
        let refused = spend(&mut data, &names(&["other.test", "shop.example.test"]), t2, 2);
        let week = jiff::SignedDuration::from_hours(7 * 24);
        assert_eq!(
            refused,
            Verdict::Exhausted { domain: "example.test".into(), used: 2, free_at: t0.checked_add(week).unwrap() }
        );
        assert!(!data.contains_key("other.test"), "a refused order counts against no domain");
        // once the first order left the window there is room again
        let later = t0.checked_add(week).unwrap().checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
        assert_eq!(spend(&mut data, &names(&["example.test"]), later, 2), Verdict::Granted);
        assert_eq!(data["example.test"].split_whitespace().count(), 2);
    }

    #[test]
    fn namespaces_that_split_a_registered_domain_each_use_an_equal_share() {
        let t0 = Timestamp::from_second(2_000_000_000).unwrap();
        let mut data = BTreeMap::new();
        let three = |_: &str| Some(3);
        let (blog, shop, wiki) = (
            Orderer { namespace: "attacker", sharing: &three },
            Orderer { namespace: "victim", sharing: &three },
            Orderer { namespace: "third", sharing: &three },
        );
        for _ in 0..2 {
            assert_eq!(spend(&mut data, &names(&["blog.example.test"]), &blog, t0, 6), Verdict::Granted);
        }
        let refused = spend(&mut data, &names(&["x.blog.example.test"]), &blog, t0, 6);
        assert!(matches!(refused, Verdict::ShareExhausted { used: 2, share: 2, .. }), "{refused:?}");
        // two namespaces spending their shares leave the third its own
        for _ in 0..2 {
            assert_eq!(spend(&mut data, &names(&["shop.example.test"]), &shop, t0, 6), Verdict::Granted);
        }
        assert!(matches!(
            spend(&mut data, &names(&["shop.example.test"]), &shop, t0, 6),
            Verdict::ShareExhausted { .. }
        ));
        for _ in 0..2 {
            assert_eq!(spend(&mut data, &names(&["wiki.example.test"]), &wiki, t0, 6), Verdict::Granted);
        }
        assert_eq!(share(1, 3), 1, "a budget of one order can still be used");
        assert_eq!(share(6, 0), 6);
    }

    #[test]
    fn counts_written_before_namespaces_were_recorded_still_count() {
        let t0 = Timestamp::from_second(2_000_000_000).unwrap();
        let mut data = BTreeMap::from([("example.test".to_owned(), "2000000000".to_owned())]);
        let refused = spend(&mut data, &names(&["example.test"]), &holder("a"), t0, 1);
        assert!(matches!(refused, Verdict::Exhausted { used: 1, .. }), "{refused:?}");
    }
}
