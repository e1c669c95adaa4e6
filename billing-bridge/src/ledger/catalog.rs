//! Products and their prices.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{Cycle, LedgerError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Product {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub active: bool,
    pub template: Json<Value>,
    pub renewal_notice_days: i32,
    pub grace_days: i32,
    pub termination_days: i32,
    pub refund_on_failure: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Price {
    pub cycle: String,
    /// `new` (the default), `renewal` or `transfer`.
    #[serde(default = "new_purpose")]
    pub purpose: String,
    pub amount_cents: i64,
    #[serde(default = "usd")]
    pub currency: String,
}

fn new_purpose() -> String {
    "new".to_owned()
}
fn usd() -> String {
    "usd".to_owned()
}

/// A product with its prices, as the catalog and the admin API show it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub product: Product,
    pub prices: Vec<Price>,
}

/// What the admin API writes: a whole product, prices included.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub template: Value,
    #[serde(default = "seven")]
    pub renewal_notice_days: i32,
    #[serde(default = "seven")]
    pub grace_days: i32,
    #[serde(default = "thirty")]
    pub termination_days: i32,
    #[serde(default = "yes")]
    pub refund_on_failure: bool,
    pub prices: Vec<Price>,
}

fn yes() -> bool {
    true
}
fn seven() -> i32 {
    7
}
fn thirty() -> i32 {
    30
}

const COLUMNS: &str = "id, tenant_id, slug, name, type, active, template, renewal_notice_days, grace_days, \
                       termination_days, refund_on_failure";

pub async fn tenant_id(db: impl PgExecutor<'_>, slug: &str) -> Result<Uuid, LedgerError> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("tenant {slug:?}")))
}

pub async fn by_slug(db: impl PgExecutor<'_>, tenant: Uuid, slug: &str) -> Result<Product, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM products WHERE tenant_id = $1 AND slug = $2"))
        .bind(tenant)
        .bind(slug)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("product {slug:?}")))
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Product, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM products WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("product {id}")))
}

/// The products of a tenant with their prices, by slug; only active ones unless `all`.
pub async fn list(pool: &PgPool, tenant: Uuid, all: bool) -> Result<Vec<Listed>, LedgerError> {
    let products: Vec<Product> =
        sqlx::query_as(sql!("SELECT {COLUMNS} FROM products WHERE tenant_id = $1 AND (active OR $2) ORDER BY slug"))
            .bind(tenant)
            .bind(all)
            .fetch_all(pool)
            .await?;
    let mut out = Vec::with_capacity(products.len());
    for product in products {
        let prices = prices(pool, product.id).await?;
        out.push(Listed { product, prices });
    }
    Ok(out)
}

pub async fn prices(db: impl PgExecutor<'_>, product: Uuid) -> Result<Vec<Price>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT cycle, purpose, amount_cents, currency FROM product_prices WHERE product_id = $1 \
         ORDER BY cycle, purpose",
    )
    .bind(product)
    .fetch_all(db)
    .await?)
}

/// A price as the catalog keeps it: `amount_cents` counts the currency's minor unit (ISO 4217:
/// yen for `jpy`, fils for `kwd`, cents for `usd`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Priced {
    pub amount_cents: i64,
    pub currency: String,
}

/// The price of `purpose` (`new`, `renewal`, `transfer`) for `cycle`, with its currency; a renewal
/// without a price of its own costs what a new purchase does.
pub async fn priced(
    db: impl PgExecutor<'_>,
    product: &Product,
    cycle: Cycle,
    purpose: &str,
) -> Result<Priced, LedgerError> {
    let found: Option<Priced> = sqlx::query_as(
        "SELECT amount_cents, currency FROM product_prices WHERE product_id = $1 AND cycle = $2 \
         AND purpose IN ($3, 'new') ORDER BY purpose = $3 DESC LIMIT 1",
    )
    .bind(product.id)
    .bind(cycle.as_str())
    .bind(purpose)
    .fetch_optional(db)
    .await?;
    found.ok_or_else(|| LedgerError::Invalid(format!("product {:?} has no {cycle} price", product.slug)))
}

/// Creates or replaces the product `slug`, prices included.
pub async fn upsert(pool: &PgPool, tenant: Uuid, slug: &str, input: &ProductInput) -> Result<Product, LedgerError> {
    let mut tx = pool.begin().await?;
    let product: Product = sqlx::query_as(sql!(
        "INSERT INTO products (tenant_id, slug, name, type, active, template, renewal_notice_days, grace_days, \
         termination_days, refund_on_failure) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id, slug) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type, \
         active = EXCLUDED.active, template = EXCLUDED.template, renewal_notice_days = EXCLUDED.renewal_notice_days, \
         grace_days = EXCLUDED.grace_days, termination_days = EXCLUDED.termination_days, \
         refund_on_failure = EXCLUDED.refund_on_failure, updated_at = now() RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(slug)
    .bind(&input.name)
    .bind(&input.kind)
    .bind(input.active)
    .bind(Json(&input.template))
    .bind(input.renewal_notice_days)
    .bind(input.grace_days)
    .bind(input.termination_days)
    .bind(input.refund_on_failure)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM product_prices WHERE product_id = $1").bind(product.id).execute(&mut *tx).await?;
    for price in &input.prices {
        sqlx::query("INSERT INTO product_prices (product_id, cycle, purpose, amount_cents, currency) VALUES ($1, $2, $3, $4, $5)")
            .bind(product.id)
            .bind(&price.cycle)
            .bind(&price.purpose)
            .bind(price.amount_cents)
            .bind(&price.currency)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(product)
}

/// Deletes a product nobody bought; one that was sold can only be made inactive.
pub async fn delete(pool: &PgPool, tenant: Uuid, slug: &str) -> Result<(), LedgerError> {
    let product = by_slug(pool, tenant, slug).await?;
    let sold: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM order_items WHERE product_id = $1)")
        .bind(product.id)
        .fetch_one(pool)
        .await?;
    if sold {
        return Err(LedgerError::Conflict(format!(
            "product {slug:?} has been sold and cannot be deleted: set active to false instead"
        )));
    }
    sqlx::query("DELETE FROM products WHERE id = $1").bind(product.id).execute(pool).await?;
    Ok(())
}
