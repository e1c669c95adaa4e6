//! The order budget per registered domain: at most N new ACME orders for `example.com` (and all
//! names under it) in any 7 days, across every Certificate, so the CA's own limit (Let's Encrypt:
//! 50 certificates per registered domain per week) is never what stops us.
//!
//! Orders are counted in a ConfigMap, one key per registered domain holding the order times, so the
//! count survives restarts and a crash-looping operator cannot run through the CA's limit.

use std::collections::{BTreeMap, BTreeSet};
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
}

/// Counts one order for every registered domain of `dns_names` in `data`, unless one of them has
/// `limit` orders within `WINDOW` of `now`. Drops times that left the window.
pub fn spend(data: &mut BTreeMap<String, String>, dns_names: &[String], now: Timestamp, limit: u32) -> Verdict {
    let window = jiff::SignedDuration::try_from(WINDOW).unwrap_or(jiff::SignedDuration::MAX);
    let oldest_kept = now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let domains: BTreeSet<String> = dns_names.iter().map(|n| registered_domain(n)).collect();
    let mut times: BTreeMap<&String, Vec<Timestamp>> = BTreeMap::new();
    for domain in &domains {
        let kept: Vec<Timestamp> = data
            .get(domain)
            .map(String::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|t| t.parse::<i64>().ok())
            .filter_map(|t| Timestamp::from_second(t).ok())
            .filter(|t| *t > oldest_kept)
            .collect();
        if kept.len() >= limit as usize {
            let first = kept.iter().min().copied().unwrap_or(now);
            return Verdict::Exhausted {
                domain: domain.clone(),
                used: kept.len(),
                free_at: first.checked_add(window).unwrap_or(Timestamp::MAX),
            };
        }
        times.insert(domain, kept);
    }
    for (domain, mut kept) in times {
        kept.push(now);
        let text = kept.iter().map(|t| t.as_second().to_string()).collect::<Vec<_>>().join(" ");
        data.insert(domain.clone(), text);
    }
    Verdict::Granted
}

/// The budget, kept in the ConfigMap `name` of `api`'s namespace.
pub struct Budget {
    pub api: Api<ConfigMap>,
    pub name: String,
    pub limit: u32,
}

impl Budget {
    /// Counts an order for `dns_names` if the budget allows it; the count is stored before the order
    /// is placed, so a crash after ordering can only over-count.
    pub async fn reserve(&self, dns_names: &[String], now: Timestamp) -> Result<Verdict, kube::Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let existing = self.api.get_opt(&self.name).await?;
            let mut map = existing.clone().unwrap_or_else(|| ConfigMap {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                ..ConfigMap::default()
            });
            let mut data = map.data.take().unwrap_or_default();
            let verdict = spend(&mut data, dns_names, now, self.limit);
            if verdict != Verdict::Granted {
                return Ok(verdict);
            }
            map.data = Some(data);
            let written = match existing {
                Some(_) => self.api.replace(&self.name, &PostParams::default(), &map).await,
                None => self.api.create(&PostParams::default(), &map).await,
            };
            match written {
                Ok(_) => return Ok(Verdict::Granted),
                // someone else counted meanwhile: count again on the fresh copy
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

    #[test]
    fn the_budget_is_spent_per_registered_domain_and_refills_after_a_week() {
        let mut data = BTreeMap::new();
        let t0 = Timestamp::from_second(2_000_000_000).unwrap();
        // apex and wildcard of one domain are one order against one budget
        assert_eq!(spend(&mut data, &names(&["example.test", "*.example.test"]), t0, 2), Verdict::Granted);
        assert_eq!(data["example.test"], "2000000000");
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
}
