//! Admin API bearer tokens: the token is shown once; the ledger keeps its SHA-256, a role, when it
//! expires (if ever), when it was revoked and when it was last used (to the minute).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

/// What a token may do; each role can do what the ones before it can (see the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads everything.
    ReadOnly,
    /// Also resends notifications and suspends a subscription for abuse.
    Support,
    /// Also issues, marks paid, voids and refunds invoices, cancels, suspends and resumes
    /// subscriptions, and creates and edits customers.
    Billing,
    /// Also edits the catalog and manages tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::Support => "support",
            Self::Billing => "billing",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, LedgerError> {
        Ok(match s {
            "read-only" => Self::ReadOnly,
            "support" => Self::Support,
            "billing" => Self::Billing,
            "admin" => Self::Admin,
            other => {
                return Err(LedgerError::Invalid(format!(
                    "unknown role {other:?}: admin, billing, support or read-only"
                )));
            }
        })
    }
}

/// Who a token belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// What a presented token turned out to be.
#[derive(Debug, Clone)]
pub enum Presented {
    Valid(Principal),
    Unknown,
    Revoked,
    Expired,
}

/// A token as staff see it: never the secret nor its hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const LISTED: &str = "id, name, role, created_at, last_used_at, expires_at, revoked_at";

/// What the ledger keeps of a bearer credential (an admin token, a portal session or sign-in link):
/// its SHA-256.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random bearer credential with `prefix` (`mpb_`, `mps_`), to be shown once.
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Creates a token that never expires; the plain token is returned once and never stored.
pub async fn create(db: impl PgExecutor<'_>, name: &str, role: Role) -> Result<String, LedgerError> {
    create_expiring(db, name, role, None).await
}

/// Creates a token valid until `expires_at` (None: until revoked); the plain token is returned once.
pub async fn create_expiring(
    db: impl PgExecutor<'_>,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<String, LedgerError> {
    let token = new_token("mpb_");
    sqlx::query("INSERT INTO api_tokens (name, role, token_sha256, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(name)
        .bind(role.as_str())
        .bind(digest(&token))
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(token)
}

/// What `token` is; a valid one's use is recorded (at most once a minute, so a busy caller does not
/// write on every request).
pub async fn authenticate(db: impl PgExecutor<'_>, token: &str) -> Result<Presented, LedgerError> {
    let row: Option<(String, String, bool, bool)> = sqlx::query_as(
        "WITH t AS (SELECT id, name, role, revoked_at IS NOT NULL AS revoked, \
                           coalesce(expires_at <= now(), false) AS expired \
                      FROM api_tokens WHERE token_sha256 = $1), \
              used AS (UPDATE api_tokens a SET last_used_at = now() FROM t \
                        WHERE a.id = t.id AND NOT t.revoked AND NOT t.expired \
                          AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute')) \
         SELECT name, role, revoked, expired FROM t",
    )
    .bind(digest(token))
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => Presented::Unknown,
        Some((_, _, true, _)) => Presented::Revoked,
        Some((_, _, _, true)) => Presented::Expired,
        Some((name, role, false, false)) => Presented::Valid(Principal { name, role: Role::parse(&role)? }),
    })
}

/// Every token, newest first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Listed>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {LISTED} FROM api_tokens ORDER BY created_at DESC")).fetch_all(db).await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Listed, LedgerError> {
    sqlx::query_as(sql!("SELECT {LISTED} FROM api_tokens WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("token {id}")))
}

/// Revokes the token named `name`; whether one was revoked now.
pub async fn revoke(db: impl PgExecutor<'_>, name: &str) -> Result<bool, LedgerError> {
    let n = sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL")
        .bind(name)
        .execute(db)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Revokes the token `id` unless it is revoked already; the token as it is now, or None.
pub async fn revoke_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Listed>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING {LISTED}"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// Makes the token `id` expire at `at` unless it is revoked or expired already (an ended token
/// stays ended); the token as it is now, or None.
pub async fn expire_id(db: impl PgExecutor<'_>, id: Uuid, at: DateTime<Utc>) -> Result<Option<Listed>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "UPDATE api_tokens SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > now()) RETURNING {LISTED}"
    ))
    .bind(id)
    .bind(at)
    .fetch_optional(db)
    .await?)
}
