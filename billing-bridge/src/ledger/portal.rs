//! The customer portal's sign-in links and sessions (migration 0018): each kept as the SHA-256 of
//! its token. A link is written with its mail, in one transaction; opening it marks it used in
//! the statement that finds it, so it opens one session however often it is presented.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::LedgerError;
use super::notifications;

/// What asking for a sign-in link did (the caller answers the same whichever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAsked {
    /// A link was written, and its mail.
    Sent,
    /// No customer of the tenant has that address.
    NoSuchCustomer,
    /// The customer was sent as many links as an hour allows.
    TooMany,
}

/// A new link for the customer of `tenant` with `email`: `id` and its token's `token_sha256`
/// (the caller makes both), working until `expires_at`; and the mail that carries it.
pub async fn ask_link(
    tx: &mut PgConnection,
    tenant: Uuid,
    email: &str,
    id: Uuid,
    token_sha256: &[u8],
    expires_at: DateTime<Utc>,
    per_hour: i64,
) -> Result<LinkAsked, LedgerError> {
    // locked: two requests at once count each other's links
    let customer: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, email FROM customers WHERE tenant_id = $1 AND email = $2 FOR UPDATE")
            .bind(tenant)
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((customer, recipient)) = customer else { return Ok(LinkAsked::NoSuchCustomer) };
    let (recent,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM portal_sign_in_links WHERE customer_id = $1 AND created_at > now() - interval '1 hour'",
    )
    .bind(customer)
    .fetch_one(&mut *tx)
    .await?;
    if recent >= per_hour {
        return Ok(LinkAsked::TooMany);
    }
    sqlx::query("INSERT INTO portal_sign_in_links (id, customer_id, token_sha256, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(customer)
        .bind(token_sha256)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    notifications::sign_in_link(&mut *tx, tenant, customer, &recipient, id, expires_at).await?;
    Ok(LinkAsked::Sent)
}

/// What a presented sign-in link turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOpened {
    /// A session of the link's customer, until `expires_at`.
    Session {
        customer: Uuid,
        expires_at: DateTime<Utc>,
    },
    Unknown,
    Used,
    Expired,
}

/// Opens a session with the link whose token hashes to `link_sha256`: the session's token hashes
/// to `session_sha256` and lasts `lifetime`. A link opens one session, before it expires.
pub async fn open_session(
    tx: &mut PgConnection,
    tenant: Uuid,
    link_sha256: &[u8],
    session_sha256: &[u8],
    lifetime: chrono::Duration,
) -> Result<LinkOpened, LedgerError> {
    let used: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE portal_sign_in_links l SET used_at = now() FROM customers c \
          WHERE l.token_sha256 = $1 AND c.id = l.customer_id AND c.tenant_id = $2 \
            AND l.used_at IS NULL AND l.expires_at > now() \
         RETURNING l.id, l.customer_id",
    )
    .bind(link_sha256)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((link, customer)) = used else {
        let why: Option<(bool,)> = sqlx::query_as(
            "SELECT l.used_at IS NOT NULL FROM portal_sign_in_links l JOIN customers c ON c.id = l.customer_id \
              WHERE l.token_sha256 = $1 AND c.tenant_id = $2",
        )
        .bind(link_sha256)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        return Ok(match why {
            None => LinkOpened::Unknown,
            Some((true,)) => LinkOpened::Used,
            Some((false,)) => LinkOpened::Expired,
        });
    };
    let (expires_at,): (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO portal_sessions (customer_id, link_id, token_sha256, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
    )
    .bind(customer)
    .bind(link)
    .bind(session_sha256)
    .bind(lifetime.num_seconds() as f64)
    .fetch_one(&mut *tx)
    .await?;
    Ok(LinkOpened::Session { customer, expires_at })
}

/// What a presented session token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPresented {
    /// A session of this customer.
    Valid(Uuid),
    Unknown,
    Expired,
    SignedOut,
}

/// The session whose token hashes to `sha256`, of a customer of `tenant`.
pub async fn session(db: impl PgExecutor<'_>, tenant: Uuid, sha256: &[u8]) -> Result<SessionPresented, LedgerError> {
    let row: Option<(Uuid, bool, bool)> = sqlx::query_as(
        "SELECT s.customer_id, s.revoked_at IS NOT NULL, s.expires_at <= now() \
           FROM portal_sessions s JOIN customers c ON c.id = s.customer_id \
          WHERE s.token_sha256 = $1 AND c.tenant_id = $2",
    )
    .bind(sha256)
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => SessionPresented::Unknown,
        Some((_, true, _)) => SessionPresented::SignedOut,
        Some((_, _, true)) => SessionPresented::Expired,
        Some((customer, false, false)) => SessionPresented::Valid(customer),
    })
}

/// Ends the session whose token hashes to `sha256`.
pub async fn sign_out(db: impl PgExecutor<'_>, sha256: &[u8]) -> Result<(), LedgerError> {
    sqlx::query("UPDATE portal_sessions SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL")
        .bind(sha256)
        .execute(db)
        .await?;
    Ok(())
}
