//! mail-core's SQL tables (postfixadmin's layout: `domain`, `mailbox`, `alias`), which Dovecot
//! and Postfix read. Every row the operator writes carries its marker in the `owner` column, and
//! every update or delete is conditional on that marker, so a row someone else made is never
//! changed, even if it appears between a read and a write.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpanel_crds::reasons;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, postgres::PgConnectOptions};

use super::throttle::Throttle;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Config {
    /// `postgres://user:password@host:port/database`
    pub database_url: String,
    /// Deadline of one statement (and of getting a connection).
    pub timeout: Duration,
    pub max_connections: u32,
}

// the database URL holds the password: never printed
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &super::REDACTED)
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailCoreError {
    #[error("mail-core's database could not be reached: {0}")]
    Unreachable(String),
    /// The database refused the statement; its own message.
    #[error("mail-core's database refused: {0}")]
    Rejected(String),
    #[error("mail-core's database configuration is invalid: {0}")]
    BadConfig(String),
}

impl MailCoreError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => reasons::MAIL_CORE_UNREACHABLE.name,
            Self::Rejected(_) => reasons::MAIL_CORE_REJECTED.name,
            Self::BadConfig(_) => reasons::MAIL_CORE_BAD_CONFIG.name,
        }
    }
}

impl From<sqlx::Error> for MailCoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => Self::Rejected(db.message().to_owned()),
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                Self::Unreachable(e.to_string())
            }
            other => Self::Rejected(other.to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRow {
    pub domain: String,
    pub active: bool,
    /// The operator's marker; `None` for a row made outside the operator.
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxRow {
    /// The full address.
    pub username: String,
    /// Scheme-prefixed hash, e.g. `{BLF-CRYPT}$2y$…`.
    pub password: String,
    pub name: String,
    /// Relative to the mail store, e.g. `example.com/info/`.
    pub maildir: String,
    pub quota_bytes: i64,
    pub local_part: String,
    pub domain: String,
    pub active: bool,
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasRow {
    pub address: String,
    /// Comma-separated targets.
    pub goto: String,
    pub domain: String,
    pub active: bool,
    pub owner: Option<String>,
}

/// The DKIM key mail-core signs a mail domain's mail with (`dkim_key`, read by OpenDKIM through the
/// view `dkim_signing`).
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKeyRow {
    pub domain: String,
    /// The DNS label under `_domainkey` whose record holds the public key.
    pub selector: String,
    /// PEM (PKCS#8).
    pub private_key: String,
    /// The marker of the namespace whose key it is, as on its domain row.
    pub owner: String,
}

// the private key is never printed
impl std::fmt::Debug for DkimKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKeyRow")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("private_key", &super::REDACTED)
            .field("owner", &self.owner)
            .finish()
    }
}

/// Changes to a mailbox row; `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxChange {
    pub password: Option<String>,
    pub name: Option<String>,
    pub quota_bytes: Option<i64>,
    pub active: Option<bool>,
}

impl MailboxChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What the Mailbox controller needs from mail-core.
pub trait MailApi: Send + Sync {
    fn domain(&self, domain: &str) -> impl Future<Output = Result<Option<DomainRow>, MailCoreError>> + Send;
    fn mailbox(&self, username: &str) -> impl Future<Output = Result<Option<MailboxRow>, MailCoreError>> + Send;
    /// The alias rows at `addresses`, and every other row of `owner`.
    fn aliases(
        &self,
        addresses: &[String],
        owner: &str,
    ) -> impl Future<Output = Result<Vec<AliasRow>, MailCoreError>> + Send;
    /// Adds the domain row unless it exists. Returns whether it was added.
    fn add_domain(&self, domain: &str, owner: &str) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Adds the mailbox row. Returns false when a row with that address already exists.
    fn add_mailbox(&self, row: &MailboxRow) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Changes the mailbox row if it is `owner`'s. Returns whether a row was changed.
    fn change_mailbox(
        &self,
        username: &str,
        owner: &str,
        change: &MailboxChange,
    ) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Adds the alias row, or points an existing row of `owner` at `goto`. Returns false when the
    /// address is someone else's.
    fn put_alias(&self, row: &AliasRow) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Deletes the alias row if it is `owner`'s.
    fn delete_alias(&self, address: &str, owner: &str) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Deletes the mailbox row if it is `owner`'s.
    fn delete_mailbox(&self, username: &str, owner: &str) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Deletes the domain row if it is `owner`'s and no mailbox or alias uses it any more.
    fn delete_domain_if_unused(
        &self,
        domain: &str,
        owner: &str,
    ) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// The DKIM key row of `domain`.
    fn dkim_key(&self, domain: &str) -> impl Future<Output = Result<Option<DkimKeyRow>, MailCoreError>> + Send;
    /// Adds the DKIM key row, or replaces the selector and key of an existing row of the same
    /// owner. Returns false when the domain's row is someone else's.
    fn put_dkim_key(&self, row: &DkimKeyRow) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
    /// Deletes the DKIM key row of `domain` if it is `owner`'s: its mail is no longer signed.
    fn delete_dkim_key(&self, domain: &str, owner: &str) -> impl Future<Output = Result<bool, MailCoreError>> + Send;
}

pub struct MailCore {
    pool: PgPool,
    timeout: Duration,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl std::fmt::Debug for MailCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the URL holds the password
        f.debug_struct("MailCore").finish_non_exhaustive()
    }
}

impl MailCore {
    /// A pool that connects on first use, so a mail-core outage shows in conditions, not as a
    /// failed start.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, MailCoreError> {
        let options: PgConnectOptions =
            config.database_url.parse().map_err(|e: sqlx::Error| MailCoreError::BadConfig(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.timeout)
            .connect_lazy_with(options);
        Ok(Self { pool, timeout: config.timeout, metrics, throttle: Throttle::unlimited() })
    }

    /// Sends every query through `throttle`.
    pub fn with_throttle(self, throttle: Throttle) -> Self {
        Self { throttle, ..self }
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        write: bool,
        f: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, MailCoreError> {
        let _turn = self.throttle.turn().await;
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(MailCoreError::from),
            Err(_) => Err(MailCoreError::Unreachable(format!("no answer within {:?}", self.timeout))),
        };
        self.metrics.provider_call("mailcore", operation, write, result.is_ok(), started.elapsed());
        result
    }
}

fn domain_row(r: &PgRow) -> Result<DomainRow, sqlx::Error> {
    Ok(DomainRow {
        domain: r.try_get("domain")?,
        active: r.try_get::<i16, _>("active")? != 0,
        owner: r.try_get("owner")?,
    })
}

fn mailbox_row(r: &PgRow) -> Result<MailboxRow, sqlx::Error> {
    Ok(MailboxRow {
        username: r.try_get("username")?,
        password: r.try_get("password")?,
        name: r.try_get("name")?,
        maildir: r.try_get("maildir")?,
        quota_bytes: r.try_get("quota")?,
        local_part: r.try_get("local_part")?,
        domain: r.try_get("domain")?,
        active: r.try_get::<i16, _>("active")? != 0,
        owner: r.try_get("owner")?,
    })
}

fn dkim_key_row(r: &PgRow) -> Result<DkimKeyRow, sqlx::Error> {
    Ok(DkimKeyRow {
        domain: r.try_get("domain")?,
        selector: r.try_get("selector")?,
        private_key: r.try_get("private_key")?,
        owner: r.try_get("owner")?,
    })
}

fn alias_row(r: &PgRow) -> Result<AliasRow, sqlx::Error> {
    Ok(AliasRow {
        address: r.try_get("address")?,
        goto: r.try_get("goto")?,
        domain: r.try_get("domain")?,
        active: r.try_get::<i16, _>("active")? != 0,
        owner: r.try_get("owner")?,
    })
}

impl MailApi for MailCore {
    async fn domain(&self, domain: &str) -> Result<Option<DomainRow>, MailCoreError> {
        let q = sqlx::query("SELECT domain, active, owner FROM domain WHERE domain = $1").bind(domain);
        let row = self.call("get_domain", false, q.fetch_optional(&self.pool)).await?;
        row.as_ref().map(domain_row).transpose().map_err(MailCoreError::from)
    }

    async fn mailbox(&self, username: &str) -> Result<Option<MailboxRow>, MailCoreError> {
        let q = sqlx::query(
            "SELECT username, password, name, maildir, quota, local_part, domain, active, owner FROM mailbox WHERE username = $1",
        )
        .bind(username);
        let row = self.call("get_mailbox", false, q.fetch_optional(&self.pool)).await?;
        row.as_ref().map(mailbox_row).transpose().map_err(MailCoreError::from)
    }

    async fn aliases(&self, addresses: &[String], owner: &str) -> Result<Vec<AliasRow>, MailCoreError> {
        let q = sqlx::query(
            "SELECT address, goto, domain, active, owner FROM alias WHERE address = ANY($1) OR owner = $2 ORDER BY address",
        )
        .bind(addresses)
        .bind(owner);
        let rows = self.call("get_aliases", false, q.fetch_all(&self.pool)).await?;
        rows.iter().map(alias_row).collect::<Result<_, _>>().map_err(MailCoreError::from)
    }

    async fn add_domain(&self, domain: &str, owner: &str) -> Result<bool, MailCoreError> {
        let q = sqlx::query(
            "INSERT INTO domain (domain, description, owner) VALUES ($1, 'managed by the mPanel operator', $2) \
             ON CONFLICT (domain) DO NOTHING",
        )
        .bind(domain)
        .bind(owner);
        Ok(self.call("add_domain", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn add_mailbox(&self, m: &MailboxRow) -> Result<bool, MailCoreError> {
        let q = sqlx::query(
            "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, active, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&m.username)
        .bind(&m.password)
        .bind(&m.name)
        .bind(&m.maildir)
        .bind(m.quota_bytes)
        .bind(&m.local_part)
        .bind(&m.domain)
        .bind(i16::from(m.active))
        .bind(&m.owner);
        Ok(self.call("add_mailbox", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn change_mailbox(&self, username: &str, owner: &str, c: &MailboxChange) -> Result<bool, MailCoreError> {
        let q = sqlx::query(
            "UPDATE mailbox SET password = COALESCE($3, password), name = COALESCE($4, name), \
             quota = COALESCE($5, quota), active = COALESCE($6, active), modified = now() \
             WHERE username = $1 AND owner = $2",
        )
        .bind(username)
        .bind(owner)
        .bind(&c.password)
        .bind(&c.name)
        .bind(c.quota_bytes)
        .bind(c.active.map(i16::from));
        Ok(self.call("change_mailbox", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn put_alias(&self, a: &AliasRow) -> Result<bool, MailCoreError> {
        let q = sqlx::query(
            "INSERT INTO alias (address, goto, domain, active, owner) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (address) DO UPDATE SET goto = EXCLUDED.goto, active = EXCLUDED.active, modified = now() \
             WHERE alias.owner = EXCLUDED.owner",
        )
        .bind(&a.address)
        .bind(&a.goto)
        .bind(&a.domain)
        .bind(i16::from(a.active))
        .bind(&a.owner);
        Ok(self.call("put_alias", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn delete_alias(&self, address: &str, owner: &str) -> Result<bool, MailCoreError> {
        let q = sqlx::query("DELETE FROM alias WHERE address = $1 AND owner = $2").bind(address).bind(owner);
        Ok(self.call("delete_alias", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn delete_mailbox(&self, username: &str, owner: &str) -> Result<bool, MailCoreError> {
        let q = sqlx::query("DELETE FROM mailbox WHERE username = $1 AND owner = $2").bind(username).bind(owner);
        Ok(self.call("delete_mailbox", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn delete_domain_if_unused(&self, domain: &str, owner: &str) -> Result<bool, MailCoreError> {
        let q = sqlx::query(
            "DELETE FROM domain WHERE domain = $1 AND owner = $2 \
             AND NOT EXISTS (SELECT 1 FROM mailbox WHERE mailbox.domain = $1) \
             AND NOT EXISTS (SELECT 1 FROM alias WHERE alias.domain = $1)",
        )
        .bind(domain)
        .bind(owner);
        Ok(self.call("delete_domain", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn dkim_key(&self, domain: &str) -> Result<Option<DkimKeyRow>, MailCoreError> {
        let q = sqlx::query("SELECT domain, selector, private_key, owner FROM dkim_key WHERE domain = $1").bind(domain);
        let row = self.call("get_dkim_key", false, q.fetch_optional(&self.pool)).await?;
        row.as_ref().map(dkim_key_row).transpose().map_err(MailCoreError::from)
    }

    async fn put_dkim_key(&self, k: &DkimKeyRow) -> Result<bool, MailCoreError> {
        let q = sqlx::query(
            "INSERT INTO dkim_key (domain, selector, private_key, owner) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (domain) DO UPDATE SET selector = EXCLUDED.selector, private_key = EXCLUDED.private_key, \
             modified = now() WHERE dkim_key.owner = EXCLUDED.owner",
        )
        .bind(&k.domain)
        .bind(&k.selector)
        .bind(&k.private_key)
        .bind(&k.owner);
        Ok(self.call("put_dkim_key", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }

    async fn delete_dkim_key(&self, domain: &str, owner: &str) -> Result<bool, MailCoreError> {
        let q = sqlx::query("DELETE FROM dkim_key WHERE domain = $1 AND owner = $2").bind(domain).bind(owner);
        Ok(self.call("delete_dkim_key", true, q.execute(&self.pool)).await?.rows_affected() == 1)
    }
}
