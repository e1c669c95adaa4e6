//! The double's world: isolated accounts (one per API key) and the shared registry of names held
//! at other registrars.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::dates;
use super::money::Money;

/// Where Namesilo points a domain registered without (valid) nameservers.
pub const DEFAULT_NAMESERVERS: [&str; 3] = ["ns1.dnsowl.com", "ns2.dnsowl.com", "ns3.dnsowl.com"];

pub struct World {
    pub accounts: BTreeMap<String, Account>,
    /// Names registered at another registrar, by name.
    pub registry: BTreeMap<String, Elsewhere>,
    /// How long a transfer with the right auth code waits "at the registry".
    pub transfer_delay: SignedDuration,
    next_contact_id: u64,
}

/// A name registered at another registrar.
#[derive(Clone, Debug)]
pub struct Elsewhere {
    pub auth_code: String,
    pub expires: Date,
    pub nameservers: Vec<String>,
}

pub struct Account {
    pub balance: Money,
    pub domains: BTreeMap<String, Domain>,
    pub transfers: BTreeMap<String, Transfer>,
    pub requests: Vec<LoggedRequest>,
    pub default_contact_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub created: Date,
    pub expires: Date,
    pub locked: bool,
    pub private: bool,
    pub auto_renew: bool,
    /// Lowercase hostnames, in order.
    pub nameservers: Vec<String>,
    pub contact_id: u64,
}

#[derive(Clone, Debug)]
pub struct Transfer {
    pub status: TransferStatus,
    /// When the status last changed.
    pub since: Timestamp,
    pub auth_code: Option<String>,
    pub private: bool,
    pub auto_renew: bool,
    pub contact_id: u64,
    /// Set while the transfer waits at the registry with the right code.
    pub completes_at: Option<Timestamp>,
}

/// The statuses Namesilo reports for an inbound transfer (its own wording).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    MissingAuthCode,
    IncorrectAuthCode,
    PendingAtRegistry,
    Completed,
}

impl TransferStatus {
    pub fn text(self) -> &'static str {
        match self {
            Self::MissingAuthCode => "Missing Authorization Code",
            Self::IncorrectAuthCode => "Incorrect Authorization Code",
            Self::PendingAtRegistry => "Pending at Registry",
            Self::Completed => "Transfer Completed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::MissingAuthCode => {
                "No authorization (EPP) code was provided for this transfer; add it with transferUpdateChangeEPPCode."
            }
            Self::IncorrectAuthCode => {
                "The current registrar did not accept the authorization (EPP) code; correct it with \
                 transferUpdateChangeEPPCode."
            }
            Self::PendingAtRegistry => "Your transfer request has been successfully submitted to the central registry.",
            Self::Completed => "The transfer has completed and the domain is now in your account.",
        }
    }
}

/// One API call as the account's log keeps it (without the key).
#[derive(Clone, Debug, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub operation: String,
    pub params: BTreeMap<String, String>,
    pub code: u16,
}

impl World {
    pub fn new(transfer_delay: SignedDuration) -> Self {
        Self { accounts: BTreeMap::new(), registry: BTreeMap::new(), transfer_delay, next_contact_id: 4_000_001 }
    }

    pub fn new_contact_id(&mut self) -> u64 {
        self.next_contact_id += 1;
        self.next_contact_id
    }

    /// Adds an account; false when the key is taken.
    pub fn add_account(&mut self, key: &str, balance: Money) -> bool {
        if self.accounts.contains_key(key) {
            return false;
        }
        let default_contact_id = self.new_contact_id();
        let account = Account {
            balance,
            domains: BTreeMap::new(),
            transfers: BTreeMap::new(),
            requests: Vec::new(),
            default_contact_id,
        };
        self.accounts.insert(key.to_owned(), account);
        true
    }

    /// Whether some account holds `name`.
    pub fn in_any_account(&self, name: &str) -> bool {
        self.accounts.values().any(|a| a.domains.contains_key(name))
    }

    /// Whether some account has a transfer of `name` that has not completed.
    pub fn transfer_open(&self, name: &str) -> bool {
        self.accounts.values().any(|a| a.transfers.get(name).is_some_and(|t| t.status != TransferStatus::Completed))
    }

    /// Completes every transfer whose time at the registry is over: the name leaves the registry
    /// and joins the account, one year longer, locked, with the nameservers it had.
    pub fn settle(&mut self, now: Timestamp) {
        let today = dates::today(now);
        for account in self.accounts.values_mut() {
            for (name, transfer) in &mut account.transfers {
                if transfer.completes_at.is_none_or(|at| at > now) {
                    continue;
                }
                let Some(old) = self.registry.remove(name) else { continue };
                transfer.status = TransferStatus::Completed;
                transfer.since = now;
                transfer.completes_at = None;
                let domain = Domain {
                    created: today,
                    expires: dates::add_years(old.expires, 1).unwrap_or(old.expires),
                    locked: true,
                    private: transfer.private,
                    auto_renew: transfer.auto_renew,
                    nameservers: old.nameservers,
                    contact_id: transfer.contact_id,
                };
                account.domains.insert(name.clone(), domain);
            }
        }
    }
}

impl Account {
    /// Takes `amount` from the balance; false (and nothing taken) when it is not there.
    pub fn charge(&mut self, amount: Money) -> bool {
        match self.balance.checked_sub(amount) {
            Some(left) => {
                self.balance = left;
                true
            }
            None => false,
        }
    }

    pub fn log(&mut self, operation: &str, params: BTreeMap<String, String>, code: u16) {
        let seq = self.requests.len() as u64 + 1;
        self.requests.push(LoggedRequest { seq, operation: operation.to_owned(), params, code });
    }
}

impl Transfer {
    /// Gives the transfer `auth_code` (or none) and decides its status from the registry's code:
    /// the right one puts it at the registry, where it completes after `delay`.
    pub fn evaluate(&mut self, auth_code: Option<String>, expected: &str, now: Timestamp, delay: SignedDuration) {
        let status = match &auth_code {
            None => TransferStatus::MissingAuthCode,
            Some(code) if code == expected => TransferStatus::PendingAtRegistry,
            Some(_) => TransferStatus::IncorrectAuthCode,
        };
        self.auth_code = auth_code;
        if status == self.status {
            return;
        }
        self.status = status;
        self.since = now;
        self.completes_at = (status == TransferStatus::PendingAtRegistry).then(|| now + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn transfer(now: Timestamp) -> Transfer {
        Transfer {
            status: TransferStatus::MissingAuthCode,
            since: now,
            auth_code: None,
            private: true,
            auto_renew: false,
            contact_id: 1,
            completes_at: None,
        }
    }

    #[test]
    fn a_transfer_with_the_right_code_completes_after_the_delay() {
        let start = at("2025-05-01T10:00:00Z");
        let mut world = World::new(SignedDuration::from_secs(2));
        world.add_account("k", Money::from_cents(0));
        world.registry.insert(
            "moving.com".into(),
            Elsewhere {
                auth_code: "right".into(),
                expires: date(2024, 2, 29),
                nameservers: vec!["ns1.old.net".into()],
            },
        );
        let mut t = transfer(start);
        t.evaluate(Some("wrong".into()), "right", start, world.transfer_delay);
        assert_eq!(t.status, TransferStatus::IncorrectAuthCode);
        assert_eq!(t.completes_at, None);
        t.evaluate(Some("right".into()), "right", start, world.transfer_delay);
        assert_eq!(t.status, TransferStatus::PendingAtRegistry);
        world.accounts.get_mut("k").unwrap().transfers.insert("moving.com".into(), t);

        world.settle(at("2025-05-01T10:00:01Z"));
        assert!(world.registry.contains_key("moving.com"));
        assert!(world.transfer_open("moving.com"));

        world.settle(at("2025-05-01T10:00:02Z"));
        let account = &world.accounts["k"];
        assert_eq!(account.transfers["moving.com"].status, TransferStatus::Completed);
        let domain = &account.domains["moving.com"];
        assert_eq!(domain.expires, date(2025, 2, 28));
        assert!(domain.locked && domain.private && !domain.auto_renew);
        assert_eq!(domain.nameservers, ["ns1.old.net"]);
        assert!(!world.registry.contains_key("moving.com"));
        assert!(!world.transfer_open("moving.com"));
    }

    #[test]
    fn the_right_code_again_does_not_restart_the_wait() {
        let start = at("2025-05-01T10:00:00Z");
        let mut t = transfer(start);
        t.evaluate(Some("right".into()), "right", start, SignedDuration::from_secs(2));
        let first = t.completes_at;
        t.evaluate(Some("right".into()), "right", at("2025-05-01T10:00:01Z"), SignedDuration::from_secs(2));
        assert_eq!(t.completes_at, first);
    }

    #[test]
    fn a_charge_takes_all_or_nothing() {
        let mut world = World::new(SignedDuration::ZERO);
        world.add_account("k", Money::from_cents(1000));
        assert!(!world.add_account("k", Money::from_cents(5)));
        let account = world.accounts.get_mut("k").unwrap();
        assert!(!account.charge(Money::from_cents(1001)));
        assert_eq!(account.balance, Money::from_cents(1000));
        assert!(account.charge(Money::from_cents(1000)));
        assert_eq!(account.balance, Money::from_cents(0));
    }
}
