//! An in-memory Namesilo account behind [`NamesiloApi`], with the rules of the testbed's Namesilo
//! double the Domain controller relies on: a domain is "ours" when it is in this account (there is
//! no other ownership marker at the registrar); a name held elsewhere (another Namesilo account or
//! another registrar) is unavailable and cannot be registered (261), one in this account is already
//! active (262), so registering is never repeated; paid calls charge the balance (10.95 a year to
//! register or renew, 9.95 to transfer) or fail with 119 and change nothing; renewing past ten years
//! from today is refused (264); a transfer needs the name at another registrar and completes when the
//! test says so; settings already in the asked state change nothing and are success, as the real
//! client reads codes 250–256. Errors are `NamesiloError::Reply` with Namesilo's code and detail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::providers::namesilo::{
    DomainInfo, NamesiloApi, NamesiloError, OrderOptions, Receipt, Transfer, code, normalise_host,
};
use crate::testing::calls::Recorder;

mod operations;
#[cfg(test)]
mod tests;

/// The operations of [`NamesiloApi`], by Namesilo's operation names.
pub const OPERATIONS: [&str; 14] = [
    "getDomainInfo",
    "checkRegisterAvailability",
    "registerDomain",
    "renewDomain",
    "transferDomain",
    "checkTransferStatus",
    "transferUpdateChangeEPPCode",
    "changeNameServers",
    "domainLock",
    "domainUnlock",
    "addPrivacy",
    "removePrivacy",
    "addAutoRenewal",
    "removeAutoRenewal",
];

/// The operations that only read.
const READS: [&str; 3] = ["getDomainInfo", "checkRegisterAvailability", "checkTransferStatus"];

/// The operations that spend money.
pub const PAID: [&str; 3] = ["registerDomain", "renewDomain", "transferDomain"];

/// Where Namesilo points a domain registered without (valid) nameservers.
pub const DEFAULT_NAMESERVERS: [&str; 3] = ["ns1.dnsowl.com", "ns2.dnsowl.com", "ns3.dnsowl.com"];

/// Price of a year of registration or renewal, in cents.
pub const YEAR_CENTS: u64 = 1095;
/// Price of a transfer (one year included), in cents.
pub const TRANSFER_CENTS: u64 = 995;
/// The balance a new fake account starts with, in cents.
pub const START_BALANCE_CENTS: u64 = 100_000;

/// One call made to the fake: the Namesilo operation (see [`OPERATIONS`]) and the domain it named.
pub use crate::testing::calls::Call;

/// A name registered at another registrar, which can be transferred in.
#[derive(Clone, Debug)]
struct Elsewhere {
    auth_code: String,
    expires: Date,
    nameservers: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TransferStatus {
    MissingAuthCode,
    IncorrectAuthCode,
    PendingAtRegistry,
    Completed,
}

impl TransferStatus {
    fn text(self) -> &'static str {
        match self {
            Self::MissingAuthCode => "Missing Authorization Code",
            Self::IncorrectAuthCode => "Incorrect Authorization Code",
            Self::PendingAtRegistry => "Pending at Registry",
            Self::Completed => "Transfer Completed",
        }
    }

    fn message(self) -> &'static str {
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

    /// The status an auth code gives a transfer.
    fn of(auth_code: Option<&str>, expected: &str) -> Self {
        match auth_code {
            None => Self::MissingAuthCode,
            Some(code) if code == expected => Self::PendingAtRegistry,
            Some(_) => Self::IncorrectAuthCode,
        }
    }
}

#[derive(Clone, Debug)]
struct InboundTransfer {
    status: TransferStatus,
    private: bool,
    auto_renew: bool,
}

struct State {
    today: Date,
    balance_cents: u64,
    domains: BTreeMap<String, DomainInfo>,
    /// Names in other Namesilo accounts.
    taken: BTreeSet<String>,
    elsewhere: BTreeMap<String, Elsewhere>,
    transfers: BTreeMap<String, InboundTransfer>,
    calls: Recorder<Call, NamesiloError>,
}

/// The fake account; clones share one state, so a test keeps a handle while the controller's
/// context owns another.
#[derive(Clone)]
pub struct FakeNamesilo {
    state: Arc<Mutex<State>>,
}

impl Default for FakeNamesilo {
    fn default() -> Self {
        Self::new()
    }
}

fn operation(op: &str) -> &'static str {
    OPERATIONS.iter().copied().find(|o| *o == op).unwrap_or_else(|| panic!("FakeNamesilo has no operation {op:?}"))
}

/// Namesilo's error reply `code` with its `detail`.
fn reply(operation: &'static str, code: u16, detail: impl Into<String>) -> NamesiloError {
    NamesiloError::Reply { operation, code, detail: detail.into() }
}

const NOT_IN_ACCOUNT: &str = "Domain is not active, or does not belong to this user";
const INVALID_YEARS: &str = "Invalid number of years, or no years provided.";
const NO_TRANSFER: &str = "No domain transfer exists for this user for this domain";
const INSUFFICIENT_FUNDS: &str = "Insufficient account funds for requested transaction";
const ALREADY_ACTIVE: &str = "This domain is already active within our system and therefore cannot be processed.";

/// `name` lowercased, when it is a domain name of at least two labels with a letters-only TLD.
fn domain_name(name: &str) -> Option<String> {
    let name = normalise_host(name);
    let labels: Vec<&str> = name.split('.').collect();
    let label = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels.last().is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()));
    (labels.len() >= 2 && labels.iter().all(label) && tld_ok).then_some(name)
}

fn add_years(date: Date, years: u8) -> Option<Date> {
    date.checked_add(i64::from(years).years()).ok()
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl FakeNamesilo {
    /// An empty account with [`START_BALANCE_CENTS`], today being the real UTC date.
    pub fn new() -> Self {
        let today = jiff::Timestamp::now().to_zoned(TimeZone::UTC).date();
        let state = State {
            today,
            balance_cents: START_BALANCE_CENTS,
            domains: BTreeMap::new(),
            taken: BTreeSet::new(),
            elsewhere: BTreeMap::new(),
            transfers: BTreeMap::new(),
            calls: Recorder::default(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The domain as `getDomainInfo` would report it now, when it is in the account.
    pub fn domain(&self, name: &str) -> Option<DomainInfo> {
        let state = self.lock();
        state.domains.get(&normalise_host(name)).map(|d| with_status(d, state.today))
    }

    /// Every domain name in the account.
    pub fn domains(&self) -> Vec<String> {
        self.lock().domains.keys().cloned().collect()
    }

    /// Puts `name` in the account out of band (bought by hand, an orphan of a deleted Domain); not a call.
    pub fn insert_domain(&self, name: &str, info: DomainInfo) {
        let mut info = info;
        info.nameservers = info.nameservers.iter().map(|n| normalise_host(n)).collect();
        self.lock().domains.insert(normalise_host(name), info);
    }

    /// A domain as a registration today for `years` with these nameservers would leave it (locked,
    /// no privacy, no auto-renewal), to pass to [`Self::insert_domain`].
    pub fn registered_info(&self, years: u8, nameservers: &[&str]) -> DomainInfo {
        let today = self.lock().today;
        DomainInfo {
            created: Some(today.to_string()),
            expires: add_years(today, years).unwrap_or(today).to_string(),
            status: "Active".to_owned(),
            locked: true,
            private: false,
            auto_renew: false,
            nameservers: nameservers.iter().map(|n| normalise_host(n)).collect(),
        }
    }

    /// Registers `name` to someone else's Namesilo account: unavailable, not ours, not transferable.
    pub fn insert_taken(&self, name: &str) {
        self.lock().taken.insert(normalise_host(name));
    }

    /// Registers `name` at another registrar, transferable with `auth_code`; expires `expires`
    /// (`YYYY-MM-DD`) and is delegated to `nameservers`.
    pub fn insert_elsewhere(&self, name: &str, auth_code: &str, expires: &str, nameservers: &[&str]) {
        let expires: Date = expires.parse().unwrap_or_else(|e| panic!("expires {expires:?}: {e}"));
        let nameservers = nameservers.iter().map(|n| normalise_host(n)).collect();
        self.lock()
            .elsewhere
            .insert(normalise_host(name), Elsewhere { auth_code: auth_code.to_owned(), expires, nameservers });
    }

    /// Completes every transfer pending at the registry: the name joins the account, one year
    /// longer, locked, with the nameservers it had. Returns the names that arrived.
    pub fn complete_transfers(&self) -> Vec<String> {
        let mut state = self.lock();
        let today = state.today;
        let pending: Vec<String> = state
            .transfers
            .iter()
            .filter(|(_, t)| t.status == TransferStatus::PendingAtRegistry)
            .map(|(name, _)| name.clone())
            .collect();
        let mut arrived = Vec::new();
        for name in pending {
            let Some(old) = state.elsewhere.remove(&name) else { continue };
            let Some(transfer) = state.transfers.get_mut(&name) else { continue };
            transfer.status = TransferStatus::Completed;
            let info = DomainInfo {
                created: Some(today.to_string()),
                expires: add_years(old.expires, 1).unwrap_or(old.expires).to_string(),
                status: "Active".to_owned(),
                locked: true,
                private: transfer.private,
                auto_renew: transfer.auto_renew,
                nameservers: old.nameservers,
            };
            state.domains.insert(name.clone(), info);
            arrived.push(name);
        }
        arrived
    }

    /// The account balance, in cents.
    pub fn balance_cents(&self) -> u64 {
        self.lock().balance_cents
    }

    /// Sets the account balance, in cents (0 makes every paid call fail with 119).
    pub fn set_balance_cents(&self, cents: u64) {
        self.lock().balance_cents = cents;
    }

    /// Sets the registrar's today (`YYYY-MM-DD`), which expiry, status and renewal limits count from.
    pub fn set_today(&self, today: &str) {
        self.lock().today = today.parse().unwrap_or_else(|e| panic!("today {today:?}: {e}"));
    }

    /// Every call made so far, in order (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.log.all()
    }

    /// The calls that change something or spend money (anything but the reads).
    pub fn writes(&self) -> Vec<Call> {
        self.lock().calls.log.writes(&READS)
    }

    /// The calls that spent or tried to spend money (register, renew, transfer).
    pub fn paid(&self) -> Vec<Call> {
        self.lock().calls.log.of(&PAID)
    }

    /// How many calls of `op` were made (e.g. `registerDomain`, `renewDomain`).
    pub fn count(&self, op: &str) -> usize {
        let op = operation(op);
        self.lock().calls.log.count(op)
    }

    /// Forgets the calls recorded so far (e.g. after a test's setup).
    pub fn clear_calls(&self) {
        self.lock().calls.log.clear();
    }

    /// Makes the next call of `op` answer reply `code` with `detail` (Namesilo's words), changing
    /// nothing; the client's reading of codes applies (200 from `getDomainInfo` is "not in the
    /// account", 250–256 from a setting is success). Each call to this adds one failure.
    pub fn fail_next(&self, op: &str, code: u16, detail: &str) {
        let op = operation(op);
        self.fail_next_with(op, reply(op, code, detail));
    }

    /// Makes the next call of `op` fail with `error` (e.g. unreachable), changing nothing.
    pub fn fail_next_with(&self, op: &str, error: NamesiloError) {
        self.lock().calls.failures.push(operation(op), error);
    }

    /// Records the call and hands out a failure queued for it.
    fn begin(&self, op: &'static str, target: &str) -> Result<MutexGuard<'_, State>, NamesiloError> {
        let mut state = self.lock();
        state.calls.begin(Call { op, target: normalise_host(target) })?;
        Ok(state)
    }

    /// A setting of a domain in the account, answered as the real client reads it.
    fn toggle(
        &self,
        op: &'static str,
        domain: &str,
        value: bool,
        setting: fn(&mut DomainInfo) -> &mut bool,
    ) -> Result<(), NamesiloError> {
        let outcome = self.begin(op, domain).and_then(|mut state| {
            let info = state
                .domains
                .get_mut(&normalise_host(domain))
                .ok_or_else(|| reply(op, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?;
            *setting(info) = value;
            Ok(())
        });
        match outcome {
            Err(NamesiloError::Reply { code, .. }) if code::is_already_in_state(code) => Ok(()),
            other => other,
        }
    }
}

/// `info` with the status Namesilo shows on `today`.
fn with_status(info: &DomainInfo, today: Date) -> DomainInfo {
    let expired = info.expires.parse::<Date>().is_ok_and(|e| e < today);
    DomainInfo { status: if expired { "Expired" } else { "Active" }.to_owned(), ..info.clone() }
}

/// Takes `cents` from the balance, or refuses with 119 and takes nothing.
fn charge(state: &mut State, op: &'static str, cents: u64) -> Result<(), NamesiloError> {
    state.balance_cents = state
        .balance_cents
        .checked_sub(cents)
        .ok_or_else(|| reply(op, code::INSUFFICIENT_FUNDS, INSUFFICIENT_FUNDS))?;
    Ok(())
}

fn receipt(code: u16, message: &str, cents: u64) -> Receipt {
    Receipt { code, message: Some(message.to_owned()), amount: Some(money(cents)) }
}
