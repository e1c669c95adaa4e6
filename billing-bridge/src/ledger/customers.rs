//! Customers. A customer's `handle` names its Kubernetes namespace, `customer-<handle>`.

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
    pub stripe_customer_id: Option<String>,
    pub payment_method: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Customer {
    pub fn namespace(&self) -> String {
        format!("customer-{}", self.handle)
    }
}

const COLUMNS: &str = "id, handle, email, stripe_customer_id, payment_method, created_at";

/// The customer with this email, created if new.
pub async fn find_or_create(db: impl PgExecutor<'_>, tenant: Uuid, email: &str) -> Result<Customer, LedgerError> {
    let email = email.trim().to_lowercase();
    if email.len() > 254 || !email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.')) {
        return Err(LedgerError::Invalid(format!("{email:?} is not an email address")));
    }
    let handle = format!("c{}", &Uuid::new_v4().simple().to_string()[..10]);
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

/// Remembers the Stripe customer id the first time one is seen.
pub async fn set_stripe_customer(db: impl PgExecutor<'_>, id: Uuid, stripe_id: &str) -> Result<(), LedgerError> {
    sqlx::query("UPDATE customers SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL")
        .bind(id)
        .bind(stripe_id)
        .execute(db)
        .await?;
    Ok(())
}
