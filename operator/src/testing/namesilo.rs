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

impl NamesiloApi for FakeNamesilo {
    async fn domain_info(&self, domain: &str) -> Result<Option<DomainInfo>, NamesiloError> {
        const OP: &str = "getDomainInfo";
        let outcome = self.begin(OP, domain).and_then(|state| {
            let info = state
                .domains
                .get(&normalise_host(domain))
                .ok_or_else(|| reply(OP, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?;
            Ok(with_status(info, state.today))
        });
        match outcome {
            Ok(info) => Ok(Some(info)),
            Err(NamesiloError::Reply { code: code::NOT_IN_ACCOUNT, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn available(&self, domain: &str) -> Result<bool, NamesiloError> {
        let state = self.begin("checkRegisterAvailability", domain)?;
        let Some(name) = domain_name(domain) else { return Ok(false) };
        Ok(!state.domains.contains_key(&name) && !state.taken.contains(&name) && !state.elsewhere.contains_key(&name))
    }

    async fn register(&self, domain: &str, years: u8, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        const OP: &str = "registerDomain";
        let mut state = self.begin(OP, domain)?;
        let name = domain_name(domain).ok_or_else(|| reply(OP, 114, "Invalid Domain Syntax"))?;
        if !(1..=10).contains(&years) {
            return Err(reply(OP, code::INVALID_YEARS, INVALID_YEARS));
        }
        if state.domains.contains_key(&name) {
            return Err(reply(OP, code::ALREADY_ACTIVE, ALREADY_ACTIVE));
        }
        if state.taken.contains(&name) || state.elsewhere.contains_key(&name) {
            return Err(reply(OP, code::UNAVAILABLE, "Domain unavailable for registration."));
        }
        let asked: Vec<Option<String>> = options.nameservers.iter().map(|n| domain_name(n)).collect();
        let (nameservers, valid) = match asked.len() {
            0 => (DEFAULT_NAMESERVERS.map(String::from).to_vec(), true),
            n if n >= 2 && asked.iter().all(Option::is_some) => (asked.into_iter().flatten().collect(), true),
            _ => (DEFAULT_NAMESERVERS.map(String::from).to_vec(), false),
        };
        let cents = YEAR_CENTS * u64::from(years);
        let today = state.today;
        let expires = add_years(today, years).ok_or_else(|| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        charge(&mut state, OP, cents)?;
        let info = DomainInfo {
            created: Some(today.to_string()),
            expires: expires.to_string(),
            status: "Active".to_owned(),
            locked: true,
            private: options.private,
            auto_renew: options.auto_renew,
            nameservers,
        };
        state.domains.insert(name, info);
        let code = if valid { 300 } else { 301 };
        Ok(receipt(code, "Your domain registration was successfully processed.", cents))
    }

    async fn renew(&self, domain: &str, years: u8) -> Result<Receipt, NamesiloError> {
        const OP: &str = "renewDomain";
        let mut state = self.begin(OP, domain)?;
        let name = normalise_host(domain);
        let expires =
            state.domains.get(&name).ok_or_else(|| reply(OP, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?.expires.clone();
        if !(1..=10).contains(&years) {
            return Err(reply(OP, code::INVALID_YEARS, INVALID_YEARS));
        }
        let expires: Date = expires.parse().map_err(|_| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        let renewed = add_years(expires, years).ok_or_else(|| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        let limit = add_years(state.today, 10).ok_or_else(|| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        if renewed > limit {
            return Err(reply(
                OP,
                code::CANNOT_RENEW_YEARS,
                format!(
                    "The domain cannot be renewed for {years} year(s): it would expire on {renewed}, more than 10 \
                     years from today."
                ),
            ));
        }
        let cents = YEAR_CENTS * u64::from(years);
        charge(&mut state, OP, cents)?;
        if let Some(info) = state.domains.get_mut(&name) {
            info.expires = renewed.to_string();
        }
        Ok(receipt(300, "Your domain renewal was successfully processed.", cents))
    }

    async fn transfer(&self, domain: &str, auth_code: &str, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        const OP: &str = "transferDomain";
        let mut state = self.begin(OP, domain)?;
        let name = normalise_host(domain);
        if state.domains.contains_key(&name) || state.taken.contains(&name) {
            return Err(reply(OP, code::ALREADY_ACTIVE, ALREADY_ACTIVE));
        }
        let Some(elsewhere) = state.elsewhere.get(&name).cloned() else {
            return Err(reply(
                OP,
                code::CANNOT_TRANSFER,
                "This domain cannot be transferred since it is not currently registered.",
            ));
        };
        if state.transfers.get(&name).is_some_and(|t| t.status != TransferStatus::Completed) {
            return Err(reply(OP, code::CANNOT_TRANSFER, "A transfer of this domain is already in progress."));
        }
        charge(&mut state, OP, TRANSFER_CENTS)?;
        let given = Some(auth_code).filter(|c| !c.is_empty());
        let status = TransferStatus::of(given, &elsewhere.auth_code);
        state
            .transfers
            .insert(name, InboundTransfer { status, private: options.private, auto_renew: options.auto_renew });
        Ok(receipt(300, "Your domain transfer was successfully processed.", TRANSFER_CENTS))
    }

    async fn transfer_status(&self, domain: &str) -> Result<Option<Transfer>, NamesiloError> {
        const OP: &str = "checkTransferStatus";
        let outcome = self.begin(OP, domain).and_then(|state| {
            let transfer = state
                .transfers
                .get(&normalise_host(domain))
                .ok_or_else(|| reply(OP, code::NO_TRANSFER, NO_TRANSFER))?;
            Ok(Transfer {
                status: transfer.status.text().to_owned(),
                message: Some(transfer.status.message().to_owned()),
            })
        });
        match outcome {
            Ok(transfer) => Ok(Some(transfer)),
            Err(NamesiloError::Reply { code: code::NO_TRANSFER, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn change_auth_code(&self, domain: &str, auth_code: &str) -> Result<(), NamesiloError> {
        const OP: &str = "transferUpdateChangeEPPCode";
        let mut state = self.begin(OP, domain)?;
        let name = normalise_host(domain);
        let expected = state
            .elsewhere
            .get(&name)
            .map(|e| e.auth_code.clone())
            .ok_or_else(|| reply(OP, code::NO_TRANSFER, NO_TRANSFER))?;
        let transfer = state
            .transfers
            .get_mut(&name)
            .filter(|t| t.status != TransferStatus::Completed)
            .ok_or_else(|| reply(OP, code::NO_TRANSFER, NO_TRANSFER))?;
        transfer.status = TransferStatus::of(Some(auth_code), &expected);
        Ok(())
    }

    async fn set_nameservers(&self, domain: &str, nameservers: &[String]) -> Result<(), NamesiloError> {
        const OP: &str = "changeNameServers";
        let mut state = self.begin(OP, domain)?;
        if nameservers.len() < 2 {
            return Err(reply(OP, code::MISSING_PARAMETERS, "Missing parameters for the specified operation"));
        }
        let info = state
            .domains
            .get_mut(&normalise_host(domain))
            .ok_or_else(|| reply(OP, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?;
        let mut hosts = Vec::with_capacity(nameservers.len());
        for ns in nameservers {
            hosts.push(domain_name(ns).ok_or_else(|| reply(OP, 254, format!("{ns} is not a valid NameServer.")))?);
        }
        info.nameservers = hosts;
        Ok(())
    }

    async fn set_lock(&self, domain: &str, locked: bool) -> Result<(), NamesiloError> {
        self.toggle(if locked { "domainLock" } else { "domainUnlock" }, domain, locked, |d| &mut d.locked)
    }

    async fn set_privacy(&self, domain: &str, private: bool) -> Result<(), NamesiloError> {
        self.toggle(if private { "addPrivacy" } else { "removePrivacy" }, domain, private, |d| &mut d.private)
    }

    async fn set_auto_renew(&self, domain: &str, auto_renew: bool) -> Result<(), NamesiloError> {
        let op = if auto_renew { "addAutoRenewal" } else { "removeAutoRenewal" };
        self.toggle(op, domain, auto_renew, |d| &mut d.auto_renew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(nameservers: &[&str]) -> OrderOptions {
        OrderOptions {
            nameservers: nameservers.iter().map(|n| (*n).to_owned()).collect(),
            private: true,
            auto_renew: false,
            contact: None,
        }
    }

    #[tokio::test]
    async fn a_registration_charges_once_and_is_never_repeated() {
        let ns = FakeNamesilo::new();
        let handle = ns.clone();
        ns.set_today("2026-03-01");
        assert!(ns.available("example.com").await.unwrap());
        let receipt = ns.register("example.com", 2, &options(&["NS1.Example.net.", "ns2.example.net"])).await.unwrap();
        assert_eq!((receipt.code, receipt.amount.as_deref()), (300, Some("21.90")));
        assert_eq!(handle.balance_cents(), START_BALANCE_CENTS - 2190);
        let info = handle.domain("example.com").unwrap();
        assert_eq!(info.expires, "2028-03-01");
        assert_eq!(info.nameservers, ["ns1.example.net", "ns2.example.net"]);
        assert!(info.locked && info.private && !info.auto_renew);
        assert_eq!(ns.domain_info("Example.COM").await.unwrap(), Some(info));

        let again = ns.register("example.com", 1, &options(&[])).await.unwrap_err();
        assert!(matches!(again, NamesiloError::Reply { code: 262, .. }), "{again}");
        assert_eq!(handle.balance_cents(), START_BALANCE_CENTS - 2190, "a refused order charged");
        assert!(!ns.available("example.com").await.unwrap());
        assert_eq!(handle.count("registerDomain"), 2);
        assert_eq!(handle.writes().len(), 2);
        assert_eq!(handle.paid().len(), 2);
        assert_eq!(handle.domains(), ["example.com"]);
        handle.clear_calls();
        assert!(ns.calls().is_empty());
    }

    #[tokio::test]
    async fn a_name_held_by_someone_else_is_not_ours_and_cannot_be_bought() {
        let ns = FakeNamesilo::new();
        ns.insert_taken("taken.com");
        assert!(!ns.available("taken.com").await.unwrap());
        assert_eq!(ns.domain_info("taken.com").await.unwrap(), None);
        let err = ns.register("taken.com", 1, &options(&[])).await.unwrap_err();
        assert_eq!(err.to_string(), "Namesilo registerDomain: 261 Domain unavailable for registration.");
        assert_eq!(err.reason(), "NamesiloUnavailable");
        let err = ns.set_nameservers("taken.com", &["a.example.net".into(), "b.example.net".into()]).await.unwrap_err();
        assert!(matches!(err, NamesiloError::Reply { code: 200, .. }), "{err}");
        assert_eq!(ns.balance_cents(), START_BALANCE_CENTS);

        ns.set_balance_cents(500);
        let err = ns.register("free.com", 1, &options(&[])).await.unwrap_err();
        assert!(matches!(err, NamesiloError::Reply { code: 119, .. }), "{err}");
        assert!(ns.domain("free.com").is_none());
    }

    #[tokio::test]
    async fn settings_renewals_and_a_transfer_change_what_the_registrar_reports() {
        let ns = FakeNamesilo::new();
        ns.set_today("2026-03-01");
        let info = ns.registered_info(1, &["ns1.owner.example", "ns2.owner.example"]);
        ns.insert_domain("orphan.com", info);
        ns.set_lock("orphan.com", true).await.unwrap();
        ns.set_lock("orphan.com", false).await.unwrap();
        ns.set_auto_renew("orphan.com", true).await.unwrap();
        let now = ns.domain("orphan.com").unwrap();
        assert!(!now.locked && now.auto_renew);
        ns.renew("orphan.com", 3).await.unwrap();
        assert_eq!(ns.domain("orphan.com").unwrap().expires, "2030-03-01");
        let err = ns.renew("orphan.com", 7).await.unwrap_err();
        assert!(matches!(err, NamesiloError::Reply { code: 264, .. }), "{err}");

        ns.insert_elsewhere("moving.com", "right", "2026-06-01", &["ns1.old.net", "ns2.old.net"]);
        assert_eq!(ns.transfer_status("moving.com").await.unwrap(), None);
        ns.transfer("moving.com", "wrong", &options(&[])).await.unwrap();
        let status = ns.transfer_status("moving.com").await.unwrap().unwrap();
        assert_eq!(status.status, "Incorrect Authorization Code");
        assert!(ns.complete_transfers().is_empty());
        ns.change_auth_code("moving.com", "right").await.unwrap();
        assert_eq!(ns.complete_transfers(), ["moving.com"]);
        assert!(ns.transfer_status("moving.com").await.unwrap().unwrap().completed());
        let moved = ns.domain("moving.com").unwrap();
        assert_eq!((moved.expires.as_str(), moved.nameservers.len()), ("2027-06-01", 2));
        assert_eq!(ns.balance_cents(), START_BALANCE_CENTS - 3 * YEAR_CENTS - TRANSFER_CENTS);
    }

    #[tokio::test]
    async fn a_queued_reply_keeps_namesilos_code_and_detail_and_changes_nothing() {
        let ns = FakeNamesilo::new();
        ns.fail_next("registerDomain", 119, "Insufficient account funds for requested transaction");
        let err = ns.register("example.com", 1, &options(&[])).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Namesilo registerDomain: 119 Insufficient account funds for requested transaction"
        );
        assert!(ns.domain("example.com").is_none());
        assert_eq!(ns.balance_cents(), START_BALANCE_CENTS);
        ns.register("example.com", 1, &options(&[])).await.unwrap();
        ns.fail_next("domainUnlock", 253, "Domain is already Unlocked - No update made.");
        ns.set_lock("example.com", false).await.unwrap();
        assert!(ns.domain("example.com").unwrap().locked, "an answered 253 changed nothing");
        ns.fail_next_with("getDomainInfo", NamesiloError::Unreachable("timed out".into()));
        assert!(matches!(ns.domain_info("example.com").await, Err(NamesiloError::Unreachable(_))));
        assert_eq!(ns.count("registerDomain"), 2);
    }
}
