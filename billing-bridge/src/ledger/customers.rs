//! Customers. A customer's `handle` names its Kubernetes namespace, `customer-<handle>`: it is
//! made once, at creation, and never changes (the namespace holds the customer's resources).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Customer {
    pub id: Uuid,
    pub handle: String,
    pub email: String,
    pub name: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub payment_method: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Customer {
    pub fn namespace(&self) -> String {
        format!("customer-{}", self.handle)
    }
}

const COLUMNS: &str = "id, handle, email, name, stripe_customer_id, payment_method, created_at";

/// The longest name staff may give a customer, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a customer's email or name is refused; `code()` is stable (the admin API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error("a name is 1 to {MAX_NAME_CHARS} characters, without control characters")]
    InvalidName,
}

impl Refused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail(_) => "InvalidEmail",
            Self::InvalidName => "InvalidName",
        }
    }
}

/// The email as the ledger keeps it (trimmed, lower case), if it is one.
pub fn normalize_email(email: &str) -> Result<String, Refused> {
    let email = email.trim().to_lowercase();
    let shaped = email.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@')
    });
    if email.len() > 254 || !shaped || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Refused::InvalidEmail(email));
    }
    Ok(email)
}

/// The name as the ledger keeps it (trimmed), if staff may give it.
pub fn normalize_name(name: &str) -> Result<String, Refused> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Refused::InvalidName);
    }
    Ok(name.to_owned())
}

fn new_handle() -> String {
    format!("c{}", &Uuid::new_v4().simple().to_string()[..10])
}

/// The customer with this email, created if new.
pub async fn find_or_create(db: impl PgExecutor<'_>, tenant: Uuid, email: &str) -> Result<Customer, LedgerError> {
    let email = email.trim().to_lowercase();
    if email.len() > 254 || !email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.')) {
        return Err(LedgerError::Invalid(format!("{email:?} is not an email address")));
    }
    let handle = new_handle();
    // the no-op update makes RETURNING give the existing row too; it sets a column no key covers,
    // so it does not wait for (nor block) the rows that reference the customer meanwhile
    Ok(sqlx::query_as(sql!(
        "INSERT INTO customers (tenant_id, handle, email) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, email) DO UPDATE SET payment_method = customers.payment_method RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(handle)
    .bind(email)
    .fetch_one(db)
    .await?)
}

/// A new customer made by staff (`email` and `name` normalized); None when the tenant has a
/// customer with this email already.
pub async fn create(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    email: &str,
    name: Option<&str>,
) -> Result<Option<Customer>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "INSERT INTO customers (tenant_id, handle, email, name) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, email) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(new_handle())
    .bind(email)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// Changes the customer's email and name (normalized; None: unchanged), never its handle.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: Option<&str>,
    name: Option<&str>,
) -> Result<Customer, LedgerError> {
    sqlx::query_as(sql!(
        "UPDATE customers SET email = coalesce($2, email), name = coalesce($3, name) WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(email)
    .bind(name)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| LedgerError::NotFound(format!("customer {id}")))
}

/// The customer, locked until the transaction ends.
pub async fn lock(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Customer, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM customers WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("customer {id}")))
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Customer, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("customer {id}")))
}

pub async fn list(db: impl PgExecutor<'_>, tenant: Uuid) -> Result<Vec<Customer>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 ORDER BY created_at"))
        .bind(tenant)
        .fetch_all(db)
        .await?)
}

/// What became of a payment method Stripe reported for one of its customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodSaved {
    /// It is the customer's payment method now.
    Saved,
    /// A later event already saved another: this one is older and changes nothing.
    Stale,
    /// No customer of the ledger is this Stripe customer (or, given a ledger customer, it is
    /// another Stripe customer's).
    NoSuchCustomer,
}

/// Saves `method` as the payment method of the ledger's customer that Stripe knows as
/// `stripe_customer` (and that is `customer`, when given), reported by an event created `at`:
/// unless an event created later already saved one.
pub async fn save_payment_method(
    tx: &mut sqlx::PgConnection,
    stripe_customer: &str,
    customer: Option<Uuid>,
    method: &str,
    at: DateTime<Utc>,
) -> Result<MethodSaved, LedgerError> {
    let found: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT id, payment_method_at IS NULL OR payment_method_at <= $3 FROM customers \
          WHERE stripe_customer_id = $1 AND ($2::uuid IS NULL OR id = $2) FOR NO KEY UPDATE",
    )
    .bind(stripe_customer)
    .bind(customer)
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, current)) = found else { return Ok(MethodSaved::NoSuchCustomer) };
    if !current {
        return Ok(MethodSaved::Stale);
    }
    sqlx::query("UPDATE customers SET payment_method = $2, payment_method_at = $3 WHERE id = $1")
        .bind(id)
        .bind(method)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    Ok(MethodSaved::Saved)
}

/// Remembers the Stripe customer id the first time one is seen.
pub async fn set_stripe_customer(db: impl PgExecutor<'_>, id: Uuid, stripe_id: &str) -> Result<(), LedgerError> {
    sqlx::query("UPDATE customers SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL")
        .bind(id)
        .bind(stripe_id)
        .execute(db)
        .await?;
    Ok(())
}
