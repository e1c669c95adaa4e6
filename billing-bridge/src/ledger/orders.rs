//! Orders and their items. An order is `opening` while its Checkout Session is being made,
//! `pending` once the session is recorded, then `paid`, `refunded` or `cancelled`; `failed` when no
//! session could be made for it and `expired` when its session expired unpaid.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Order {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub cycle: String,
    pub currency: String,
    pub domain: Option<String>,
    pub stripe_checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Item {
    pub position: i32,
    pub product_id: Uuid,
    pub purpose: String,
    /// The item's own billing cycle (an order may mix them).
    pub cycle: String,
    pub quantity: i32,
    pub unit_cents: i64,
    pub description: String,
}

const COLUMNS: &str =
    "id, tenant_id, customer_id, status, cycle, currency, domain, stripe_checkout_session_id, checkout_url, created_at";

/// A new order with its items, `opening`: its Checkout Session is yet to be made.
pub async fn create(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    customer: Uuid,
    cycle: &str,
    currency: &str,
    domain: Option<&str>,
    items: &[Item],
) -> Result<Order, LedgerError> {
    let order: Order = sqlx::query_as(sql!(
        "INSERT INTO orders (tenant_id, customer_id, cycle, currency, domain, status) \
         VALUES ($1, $2, $3, $4, $5, 'opening') RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(cycle)
    .bind(currency)
    .bind(domain)
    .fetch_one(&mut *tx)
    .await?;
    for item in items {
        sqlx::query(
            "INSERT INTO order_items (order_id, position, product_id, purpose, cycle, quantity, unit_cents, description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(order.id)
        .bind(item.position)
        .bind(item.product_id)
        .bind(&item.purpose)
        .bind(&item.cycle)
        .bind(item.quantity)
        .bind(item.unit_cents)
        .bind(&item.description)
        .execute(&mut *tx)
        .await?;
    }
    Ok(order)
}

pub async fn set_checkout_session(
    db: impl PgExecutor<'_>,
    id: Uuid,
    session: &str,
    url: Option<&str>,
) -> Result<(), LedgerError> {
    sqlx::query("UPDATE orders SET stripe_checkout_session_id = $2, checkout_url = $3 WHERE id = $1")
        .bind(id)
        .bind(session)
        .bind(url)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_status(db: impl PgExecutor<'_>, id: Uuid, status: &str) -> Result<(), LedgerError> {
    sqlx::query("UPDATE orders SET status = $2 WHERE id = $1").bind(id).bind(status).execute(db).await?;
    Ok(())
}

/// Moves the order to `to` if it is in one of `from`; whether it moved.
pub async fn transition(db: impl PgExecutor<'_>, id: Uuid, from: &[&str], to: &str) -> Result<bool, LedgerError> {
    let moved = sqlx::query("UPDATE orders SET status = $3 WHERE id = $1 AND status = ANY($2)")
        .bind(id)
        .bind(from)
        .bind(to)
        .execute(db)
        .await?
        .rows_affected();
    Ok(moved == 1)
}

/// The order, locked until the transaction ends: its status and session cannot change meanwhile.
pub async fn lock(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Order, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("order {id}")))
}

/// The order whose Checkout Session is `session`, if one recorded it.
pub async fn by_checkout_session(db: impl PgExecutor<'_>, session: &str) -> Result<Option<Order>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM orders WHERE stripe_checkout_session_id = $1"))
        .bind(session)
        .fetch_optional(db)
        .await?)
}

/// The invoice the checkout made for the order (its first one).
pub async fn first_invoice(db: impl PgExecutor<'_>, id: Uuid) -> Result<Uuid, LedgerError> {
    sqlx::query_scalar("SELECT id FROM invoices WHERE order_id = $1 ORDER BY created_at, id LIMIT 1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("the invoice of order {id}")))
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Order, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("order {id}")))
}

pub async fn items(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<Item>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT position, product_id, purpose, cycle, quantity, unit_cents, description FROM order_items \
         WHERE order_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

pub async fn list(db: impl PgExecutor<'_>, customer: Option<Uuid>) -> Result<Vec<Order>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM orders WHERE ($1::uuid IS NULL OR customer_id = $1) ORDER BY created_at DESC LIMIT 500"
    ))
    .bind(customer)
    .fetch_all(db)
    .await?)
}
