//! Client-side rate limits on the calls to each external system: the configured block and the
//! defaults, with the reason for each default.

use serde::Deserialize;

use crate::providers::throttle::Limits;

/// Client-side limits on the calls to one external system: over them a call waits for its turn,
/// it is never refused. Either key may be left out for its default.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests started per second, e.g. `5` or `0.5`.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests waiting for their answer at once.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

impl RateLimit {
    /// These limits, with `default`'s where a key is left out.
    pub fn or(&self, default: Limits) -> Limits {
        Limits {
            requests_per_second: self.requests_per_second.unwrap_or(default.requests_per_second),
            max_in_flight: self.max_in_flight.unwrap_or(default.max_in_flight),
        }
    }

    /// Refuses a rate below one request every 1000 s and an in-flight cap below one; `key` names
    /// the block in the message (`namesilo.rateLimit`).
    pub(super) fn check(&self, key: &str) -> Result<(), String> {
        if let Some(rate) = self.requests_per_second
            && !(rate.is_finite() && rate >= Limits::SLOWEST)
        {
            return Err(format!(
                "{key}.requestsPerSecond must be a number of at least {} (one request every 1000 s), e.g. 5 or 0.5; not {rate}",
                Limits::SLOWEST
            ));
        }
        if self.max_in_flight == Some(0) {
            return Err(format!("{key}.maxInFlight must be at least 1"));
        }
        Ok(())
    }
}

/// PowerDNS documents no API rate limit; every API write is a transaction on its backend database
/// that also serves the DNS queries. 32 in flight is as many as a program creating zones directly
/// keeps busy (the DnsZone controller runs four times as many reconciles, most of them on the API
/// server at any time), and 200/s keeps a cold start of thousands of zones from crowding out the
/// queries.
pub const POWERDNS_LIMITS: Limits = Limits { requests_per_second: 200.0, max_in_flight: 32 };
/// Let's Encrypt's overall request limits (letsencrypt.org/docs/rate-limits, "Overall Requests",
/// per IP address): 250/s on `/acme/*` (the orders, authorizations, challenges, finalisation and
/// certificates), 300/s on `/acme/new-order`; 100 requests/s is 40 % of the lower of them. Every
/// HTTP request counts, nonce requests included; those are kept to 10/s on their own
/// ([`NEW_NONCE_PER_SECOND`](crate::providers::acme::NEW_NONCE_PER_SECOND), half of the 20/s on
/// `/acme/new-nonce`; `/acme/new-account`, 5/s, is one request per issuer). Let's Encrypt documents
/// no limit on requests in flight; 16 at once keeps one account's load on the CA modest (the
/// Certificate controller runs more reconciles at once, most of them waiting on DNS or the CA).
pub const ACME_LIMITS: Limits = Limits { requests_per_second: 100.0, max_in_flight: 16 };
/// mail-core's PostgreSQL also answers every Postfix and Dovecot lookup (its `max_connections`
/// defaults to 100 for all of them); the operator keeps to its pool (`maxConnections`, 4: more in
/// flight would only wait for a connection) and 50 queries/s.
pub const MAILCORE_LIMITS: Limits = Limits { requests_per_second: 50.0, max_in_flight: 4 };
/// Proxmox VE documents no API rate limit; its API daemons pveproxy and pvedaemon (which runs the
/// calls needing root: clone, config, resize, power) each run 3 worker processes
/// (`max_workers => 3` in pve-manager's `PVE/Service/pveproxy.pm` and `pvedaemon.pm`), so more
/// than 3 at once only queue there; 20/s leaves room for the web UI and other clients.
pub const PROXMOX_LIMITS: Limits = Limits { requests_per_second: 20.0, max_in_flight: 3 };
/// Namesilo publishes no number; its "API Automated Batch Processing" policy
/// (namesilo.com/support/v2/articles/account-options/api-automated-batch) monitors automated,
/// repetitive calls and throttles or suspends accounts whose calls burden the API, so the operator
/// keeps to a modest 5/s, 4 at once (the Domain controller's concurrency).
pub const NAMESILO_LIMITS: Limits = Limits { requests_per_second: 5.0, max_in_flight: 4 };
