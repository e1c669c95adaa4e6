//! An in-memory mail-core database behind [`MailApi`], with the rules of its SQL the operator relies
//! on: one row per domain, address and DKIM domain (primary keys); a mailbox, alias or DKIM key needs
//! its domain row (foreign keys, refused with PostgreSQL's message); an existing address is never
//! overwritten by an add; updates and deletes touch only rows whose `owner` equals the caller's (a
//! row without owner matches nobody, as `NULL = $1` in SQL); `put_alias` and `put_dkim_key` update an
//! existing row only for the same owner and keep that owner; password hashes are stored as given;
//! deleting a domain row deletes its DKIM key (`ON DELETE CASCADE`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::providers::mailcore::{AliasRow, DkimKeyRow, DomainRow, MailApi, MailCoreError, MailboxChange, MailboxRow};
use crate::testing::calls::Recorder;

/// The operations of [`MailApi`], by the names the real client counts them under.
pub const OPERATIONS: [&str; 13] = [
    "get_domain",
    "get_mailbox",
    "get_aliases",
    "add_domain",
    "add_mailbox",
    "change_mailbox",
    "put_alias",
    "delete_alias",
    "delete_mailbox",
    "delete_domain",
    "get_dkim_key",
    "put_dkim_key",
    "delete_dkim_key",
];

/// The operations that only read.
const READS: [&str; 4] = ["get_domain", "get_mailbox", "get_aliases", "get_dkim_key"];

/// One call made to the fake: the operation (see [`OPERATIONS`]) and the domain, address or
/// username it named (the addresses joined by `,` for `get_aliases`).
pub use crate::testing::calls::Call;

#[derive(Default)]
struct State {
    domains: BTreeMap<String, DomainRow>,
    mailboxes: BTreeMap<String, MailboxRow>,
    aliases: BTreeMap<String, AliasRow>,
    dkim_keys: BTreeMap<String, DkimKeyRow>,
    calls: Recorder<Call, MailCoreError>,
}

/// The fake database; clones share one state, so a test keeps a handle while the controller's
/// context owns another.
#[derive(Clone, Default)]
pub struct FakeMailCore {
    state: Arc<Mutex<State>>,
}

fn operation(op: &str) -> &'static str {
    OPERATIONS.iter().copied().find(|o| *o == op).unwrap_or_else(|| panic!("FakeMailCore has no operation {op:?}"))
}

/// PostgreSQL's refusal of a row whose domain row is missing.
fn foreign_key(table: &str) -> MailCoreError {
    MailCoreError::Rejected(format!(
        "insert or update on table \"{table}\" violates foreign key constraint \"{table}_domain_fkey\""
    ))
}

/// `owner = $n` in SQL: a row without owner matches nobody.
fn owned_by(row_owner: Option<&str>, owner: &str) -> bool {
    row_owner == Some(owner)
}

impl FakeMailCore {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The domain row as it is now.
    pub fn domain_row(&self, domain: &str) -> Option<DomainRow> {
        self.lock().domains.get(domain).cloned()
    }

    /// The mailbox row of the full address `username`.
    pub fn mailbox_row(&self, username: &str) -> Option<MailboxRow> {
        self.lock().mailboxes.get(username).cloned()
    }

    /// The alias row of `address`.
    pub fn alias_row(&self, address: &str) -> Option<AliasRow> {
        self.lock().aliases.get(address).cloned()
    }

    /// The DKIM key row of `domain`.
    pub fn dkim_key_row(&self, domain: &str) -> Option<DkimKeyRow> {
        self.lock().dkim_keys.get(domain).cloned()
    }

    /// Every domain row, by name.
    pub fn domain_rows(&self) -> Vec<DomainRow> {
        self.lock().domains.values().cloned().collect()
    }

    /// Every mailbox row, by address.
    pub fn mailbox_rows(&self) -> Vec<MailboxRow> {
        self.lock().mailboxes.values().cloned().collect()
    }

    /// Every alias row, by address.
    pub fn alias_rows(&self) -> Vec<AliasRow> {
        self.lock().aliases.values().cloned().collect()
    }

    /// The key OpenDKIM signs `domain`'s mail with (the `dkim_signing` view): the DKIM key row when
    /// the domain row is active and unowned or of the key's owner.
    pub fn signing_key(&self, domain: &str) -> Option<DkimKeyRow> {
        let state = self.lock();
        let row = state.domains.get(domain).filter(|d| d.active)?;
        let key = state.dkim_keys.get(domain)?;
        (row.owner.is_none() || row.owner.as_deref() == Some(key.owner.as_str())).then(|| key.clone())
    }

    /// Writes a domain row out of band (by hand, another owner), replacing one of that name; not a call.
    pub fn insert_domain(&self, row: DomainRow) {
        self.lock().domains.insert(row.domain.clone(), row);
    }

    /// Writes a mailbox row out of band; its domain row must exist (the foreign key); not a call.
    pub fn insert_mailbox(&self, row: MailboxRow) {
        let mut state = self.lock();
        assert!(state.domains.contains_key(&row.domain), "insert the domain row of {} first", row.username);
        state.mailboxes.insert(row.username.clone(), row);
    }

    /// Writes an alias row out of band; its domain row must exist; not a call.
    pub fn insert_alias(&self, row: AliasRow) {
        let mut state = self.lock();
        assert!(state.domains.contains_key(&row.domain), "insert the domain row of {} first", row.address);
        state.aliases.insert(row.address.clone(), row);
    }

    /// Writes a DKIM key row out of band; its domain row must exist; not a call.
    pub fn insert_dkim_key(&self, row: DkimKeyRow) {
        let mut state = self.lock();
        assert!(state.domains.contains_key(&row.domain), "insert the domain row of {} first", row.domain);
        state.dkim_keys.insert(row.domain.clone(), row);
    }

    /// Every call made so far, in order (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.log.all()
    }

    /// The calls that would change something (anything but the `get_*` reads).
    pub fn writes(&self) -> Vec<Call> {
        self.lock().calls.log.writes(&READS)
    }

    /// Forgets the calls recorded so far (e.g. after a test's setup).
    pub fn clear_calls(&self) {
        self.lock().calls.log.clear();
    }

    /// Makes the next call of `op` fail as a refused statement with the database's `message`,
    /// changing nothing; each call to this adds one failure.
    pub fn fail_next(&self, op: &str, message: &str) {
        self.fail_next_with(op, MailCoreError::Rejected(message.to_owned()));
    }

    /// Makes the next call of `op` fail with `error` (e.g. unreachable), changing nothing.
    pub fn fail_next_with(&self, op: &str, error: MailCoreError) {
        self.lock().calls.failures.push(operation(op), error);
    }

    /// Records the call and hands out a failure queued for it.
    fn begin(&self, op: &'static str, target: &str) -> Result<MutexGuard<'_, State>, MailCoreError> {
        let mut state = self.lock();
        state.calls.begin(Call { op, target: target.to_owned() })?;
        Ok(state)
    }
}

impl MailApi for FakeMailCore {
    async fn domain(&self, domain: &str) -> Result<Option<DomainRow>, MailCoreError> {
        Ok(self.begin("get_domain", domain)?.domains.get(domain).cloned())
    }

    async fn mailbox(&self, username: &str) -> Result<Option<MailboxRow>, MailCoreError> {
        Ok(self.begin("get_mailbox", username)?.mailboxes.get(username).cloned())
    }

    async fn aliases(&self, addresses: &[String], owner: &str) -> Result<Vec<AliasRow>, MailCoreError> {
        let state = self.begin("get_aliases", &addresses.join(","))?;
        Ok(state
            .aliases
            .values()
            .filter(|a| addresses.contains(&a.address) || owned_by(a.owner.as_deref(), owner))
            .cloned()
            .collect())
    }

    async fn add_domain(&self, domain: &str, owner: &str) -> Result<bool, MailCoreError> {
        let mut state = self.begin("add_domain", domain)?;
        if state.domains.contains_key(domain) {
            return Ok(false);
        }
        let row = DomainRow { domain: domain.to_owned(), active: true, owner: Some(owner.to_owned()) };
        state.domains.insert(domain.to_owned(), row);
        Ok(true)
    }

    async fn add_mailbox(&self, row: &MailboxRow) -> Result<bool, MailCoreError> {
        let mut state = self.begin("add_mailbox", &row.username)?;
        if state.mailboxes.contains_key(&row.username) {
            return Ok(false);
        }
        if !state.domains.contains_key(&row.domain) {
            return Err(foreign_key("mailbox"));
        }
        state.mailboxes.insert(row.username.clone(), row.clone());
        Ok(true)
    }

    async fn change_mailbox(&self, username: &str, owner: &str, change: &MailboxChange) -> Result<bool, MailCoreError> {
        let mut state = self.begin("change_mailbox", username)?;
        let Some(row) = state.mailboxes.get_mut(username).filter(|m| owned_by(m.owner.as_deref(), owner)) else {
            return Ok(false);
        };
        if let Some(password) = &change.password {
            row.password.clone_from(password);
        }
        if let Some(name) = &change.name {
            row.name.clone_from(name);
        }
        if let Some(quota) = change.quota_bytes {
            row.quota_bytes = quota;
        }
        if let Some(active) = change.active {
            row.active = active;
        }
        Ok(true)
    }

    async fn put_alias(&self, row: &AliasRow) -> Result<bool, MailCoreError> {
        let mut state = self.begin("put_alias", &row.address)?;
        if !state.domains.contains_key(&row.domain) {
            return Err(foreign_key("alias"));
        }
        match state.aliases.get_mut(&row.address) {
            None => {
                state.aliases.insert(row.address.clone(), row.clone());
                Ok(true)
            }
            // `WHERE alias.owner = EXCLUDED.owner`: NULL on either side matches nothing
            Some(existing) if existing.owner.is_some() && existing.owner == row.owner => {
                existing.goto.clone_from(&row.goto);
                existing.active = row.active;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    async fn delete_alias(&self, address: &str, owner: &str) -> Result<bool, MailCoreError> {
        let mut state = self.begin("delete_alias", address)?;
        if !state.aliases.get(address).is_some_and(|a| owned_by(a.owner.as_deref(), owner)) {
            return Ok(false);
        }
        Ok(state.aliases.remove(address).is_some())
    }

    async fn delete_mailbox(&self, username: &str, owner: &str) -> Result<bool, MailCoreError> {
        let mut state = self.begin("delete_mailbox", username)?;
        if !state.mailboxes.get(username).is_some_and(|m| owned_by(m.owner.as_deref(), owner)) {
            return Ok(false);
        }
        Ok(state.mailboxes.remove(username).is_some())
    }

    async fn delete_domain_if_unused(&self, domain: &str, owner: &str) -> Result<bool, MailCoreError> {
        let mut state = self.begin("delete_domain", domain)?;
        let owned = state.domains.get(domain).is_some_and(|d| owned_by(d.owner.as_deref(), owner));
        let used =
            state.mailboxes.values().any(|m| m.domain == domain) || state.aliases.values().any(|a| a.domain == domain);
        if !owned || used {
            return Ok(false);
        }
        state.domains.remove(domain);
        state.dkim_keys.remove(domain);
        Ok(true)
    }

    async fn dkim_key(&self, domain: &str) -> Result<Option<DkimKeyRow>, MailCoreError> {
        Ok(self.begin("get_dkim_key", domain)?.dkim_keys.get(domain).cloned())
    }

    async fn put_dkim_key(&self, row: &DkimKeyRow) -> Result<bool, MailCoreError> {
        let mut state = self.begin("put_dkim_key", &row.domain)?;
        if !state.domains.contains_key(&row.domain) {
            return Err(foreign_key("dkim_key"));
        }
        match state.dkim_keys.get_mut(&row.domain) {
            None => {
                state.dkim_keys.insert(row.domain.clone(), row.clone());
                Ok(true)
            }
            Some(existing) if existing.owner == row.owner => {
                existing.selector.clone_from(&row.selector);
                existing.private_key.clone_from(&row.private_key);
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    async fn delete_dkim_key(&self, domain: &str, owner: &str) -> Result<bool, MailCoreError> {
        let mut state = self.begin("delete_dkim_key", domain)?;
        if state.dkim_keys.get(domain).is_none_or(|k| k.owner != owner) {
            return Ok(false);
        }
        Ok(state.dkim_keys.remove(domain).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(username: &str, owner: Option<&str>) -> MailboxRow {
        let (local_part, domain) = username.split_once('@').unwrap();
        MailboxRow {
            username: username.to_owned(),
            password: "{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuv".to_owned(),
            name: "Info".to_owned(),
            maildir: format!("{domain}/{local_part}/"),
            quota_bytes: 1 << 30,
            local_part: local_part.to_owned(),
            domain: domain.to_owned(),
            active: true,
            owner: owner.map(str::to_owned),
        }
    }

    fn alias(address: &str, goto: &str, owner: Option<&str>) -> AliasRow {
        let domain = address.split_once('@').unwrap().1.to_owned();
        AliasRow {
            address: address.to_owned(),
            goto: goto.to_owned(),
            domain,
            active: true,
            owner: owner.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn an_address_is_added_once_and_changed_only_by_its_owner() {
        let mail = FakeMailCore::new();
        let handle = mail.clone();
        assert!(mail.add_domain("example.com", "ns-a").await.unwrap());
        assert!(!mail.add_domain("example.com", "ns-b").await.unwrap(), "a second add is not an add");
        assert_eq!(handle.domain_row("example.com").unwrap().owner.as_deref(), Some("ns-a"));

        assert!(mail.add_mailbox(&mailbox("info@example.com", Some("ns-a"))).await.unwrap());
        let mut other = mailbox("info@example.com", Some("ns-b"));
        other.password = "{BLF-CRYPT}other".to_owned();
        assert!(!mail.add_mailbox(&other).await.unwrap());
        assert_eq!(
            handle.mailbox_row("info@example.com").unwrap().password,
            "{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuv"
        );

        let change = MailboxChange { password: Some("{BLF-CRYPT}new".into()), ..Default::default() };
        assert!(!mail.change_mailbox("info@example.com", "ns-b", &change).await.unwrap());
        assert!(!mail.delete_mailbox("info@example.com", "ns-b").await.unwrap());
        assert!(mail.change_mailbox("info@example.com", "ns-a", &change).await.unwrap());
        let row = handle.mailbox_row("info@example.com").unwrap();
        assert_eq!((row.password.as_str(), row.name.as_str()), ("{BLF-CRYPT}new", "Info"));

        let err = mail.add_mailbox(&mailbox("x@nodomain.com", Some("ns-a"))).await.unwrap_err();
        assert!(err.to_string().contains("foreign key"), "{err}");
        assert!(handle.mailbox_row("x@nodomain.com").is_none());
    }

    #[tokio::test]
    async fn aliases_keep_their_owner_and_a_row_without_owner_is_nobodys() {
        let mail = FakeMailCore::new();
        mail.insert_domain(DomainRow { domain: "example.com".into(), active: true, owner: None });
        mail.insert_alias(alias("postmaster@example.com", "root@example.com", None));
        assert!(!mail.put_alias(&alias("postmaster@example.com", "me@example.com", None)).await.unwrap());
        assert!(!mail.put_alias(&alias("postmaster@example.com", "me@example.com", Some("ns-a"))).await.unwrap());
        assert_eq!(mail.alias_row("postmaster@example.com").unwrap().goto, "root@example.com");

        assert!(mail.put_alias(&alias("sales@example.com", "a@example.com", Some("ns-a"))).await.unwrap());
        assert!(mail.put_alias(&alias("sales@example.com", "b@example.com", Some("ns-a"))).await.unwrap());
        assert!(!mail.put_alias(&alias("sales@example.com", "evil@example.com", Some("ns-b"))).await.unwrap());
        let row = mail.alias_row("sales@example.com").unwrap();
        assert_eq!((row.goto.as_str(), row.owner.as_deref()), ("b@example.com", Some("ns-a")));

        let listed = mail.aliases(&["postmaster@example.com".to_owned()], "ns-a").await.unwrap();
        let addresses: Vec<_> = listed.iter().map(|a| a.address.as_str()).collect();
        assert_eq!(addresses, ["postmaster@example.com", "sales@example.com"]);
        assert!(!mail.delete_alias("postmaster@example.com", "ns-a").await.unwrap());
        assert!(mail.delete_alias("sales@example.com", "ns-a").await.unwrap());
        assert!(mail.alias_row("sales@example.com").is_none());
    }

    #[tokio::test]
    async fn a_domain_goes_only_when_unused_and_takes_its_dkim_key_with_it() {
        let mail = FakeMailCore::new();
        mail.add_domain("example.com", "ns-a").await.unwrap();
        mail.add_mailbox(&mailbox("info@example.com", Some("ns-a"))).await.unwrap();
        let key = DkimKeyRow {
            domain: "example.com".into(),
            selector: "mp1".into(),
            private_key: "PEM".into(),
            owner: "ns-a".into(),
        };
        assert!(mail.put_dkim_key(&key).await.unwrap());
        assert!(
            !mail
                .put_dkim_key(&DkimKeyRow { owner: "ns-b".into(), selector: "evil".into(), ..key.clone() })
                .await
                .unwrap()
        );
        assert_eq!(mail.signing_key("example.com").unwrap().selector, "mp1");

        assert!(!mail.delete_domain_if_unused("example.com", "ns-a").await.unwrap(), "a mailbox still uses it");
        mail.delete_mailbox("info@example.com", "ns-a").await.unwrap();
        assert!(!mail.delete_domain_if_unused("example.com", "ns-b").await.unwrap());
        assert!(mail.delete_domain_if_unused("example.com", "ns-a").await.unwrap());
        assert!(mail.domain_row("example.com").is_none());
        assert!(mail.dkim_key_row("example.com").is_none(), "the key went with its domain");
        let ops: Vec<_> = mail.writes().iter().map(|c| c.op).collect();
        assert_eq!(
            ops,
            [
                "add_domain",
                "add_mailbox",
                "put_dkim_key",
                "put_dkim_key",
                "delete_domain",
                "delete_mailbox",
                "delete_domain",
                "delete_domain"
            ]
        );
        assert!(mail.calls().iter().all(|c| c.target.contains("example.com")));
    }

    #[tokio::test]
    async fn rows_made_out_of_band_are_kept_and_not_counted_as_calls() {
        let mail = FakeMailCore::new();
        mail.insert_domain(DomainRow { domain: "example.com".into(), active: true, owner: Some("ns-x".into()) });
        mail.insert_mailbox(mailbox("boss@example.com", None));
        mail.insert_alias(alias("all@example.com", "boss@example.com", None));
        let key = DkimKeyRow {
            domain: "example.com".into(),
            selector: "x1".into(),
            private_key: "PEM".into(),
            owner: "ns-y".into(),
        };
        mail.insert_dkim_key(key);
        assert!(mail.calls().is_empty());
        assert_eq!(mail.signing_key("example.com"), None, "the key's owner is not the domain's");

        assert!(!mail.add_mailbox(&mailbox("boss@example.com", Some("ns-a"))).await.unwrap());
        assert!(!mail.delete_mailbox("boss@example.com", "ns-a").await.unwrap());
        assert!(!mail.delete_dkim_key("example.com", "ns-a").await.unwrap());
        assert_eq!(mail.mailbox_rows().len(), 1);
        assert_eq!(mail.mailbox_rows()[0].owner, None);
        assert_eq!(mail.alias_rows().len(), 1);
        assert_eq!(mail.domain_rows().len(), 1);
        assert_eq!(mail.dkim_key_row("example.com").unwrap().selector, "x1");
        assert_eq!(mail.writes().len(), 3);
        mail.clear_calls();
        assert!(mail.calls().is_empty());
    }

    #[tokio::test]
    async fn a_queued_failure_carries_its_message_and_changes_nothing() {
        let mail = FakeMailCore::new();
        mail.fail_next("add_domain", "permission denied for table domain");
        let err = mail.add_domain("example.com", "ns-a").await.unwrap_err();
        assert_eq!(err.to_string(), "mail-core's database refused: permission denied for table domain");
        assert_eq!(err.reason(), "MailCoreRejected");
        assert!(mail.domain_row("example.com").is_none());
        mail.fail_next_with("get_domain", MailCoreError::Unreachable("connection refused".into()));
        assert!(matches!(mail.domain("example.com").await, Err(MailCoreError::Unreachable(_))));
        assert!(mail.add_domain("example.com", "ns-a").await.unwrap());
        assert_eq!(mail.calls().len(), 3);
        assert_eq!(mail.writes().len(), 2);
    }
}
