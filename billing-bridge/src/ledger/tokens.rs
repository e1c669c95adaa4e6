//! Admin API bearer tokens: the token is shown once; the ledger keeps its SHA-256 and a role.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

/// What a token may do; each role can do what the ones after it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads everything.
    ReadOnly,
    /// Reads everything (customers, orders, invoices, subscriptions with provisioning status).
    Support,
    /// Also issues, marks paid, voids and refunds invoices, and cancels subscriptions.
    Billing,
    /// Also edits the catalog.
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

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token; the plain token is returned once and never stored.
pub async fn create(db: impl PgExecutor<'_>, name: &str, role: Role) -> Result<String, LedgerError> {
    let token = format!("mpb_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    sqlx::query("INSERT INTO api_tokens (name, role, token_sha256) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(role.as_str())
        .bind(digest(&token))
        .execute(db)
        .await?;
    Ok(token)
}

/// The holder of `token`, unless it is unknown or revoked.
pub async fn authenticate(db: impl PgExecutor<'_>, token: &str) -> Result<Option<Principal>, LedgerError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT name, role FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL")
            .bind(digest(token))
            .fetch_optional(db)
            .await?;
    row.map(|(name, role)| Ok(Principal { name, role: Role::parse(&role)? })).transpose()
}

pub async fn revoke(db: impl PgExecutor<'_>, name: &str) -> Result<bool, LedgerError> {
    let n = sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL")
        .bind(name)
        .execute(db)
        .await?
        .rows_affected();
    Ok(n > 0)
}
