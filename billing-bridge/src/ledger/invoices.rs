//! Invoices and their lines. Numbering, totals, the fixed amounts and lines after issue and the
//! allowed transitions (draft → issued → paid → refunded, draft or issued → void) are the database's
//! rules (migrations/0001_ledger.sql, 0003_ledger_rules.sql); these functions only ask for the transitions.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;
use super::work_attempts::Worker;
use crate::lanes::Order;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Invoice {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Option<Uuid>,
    pub subscription_id: Option<Uuid>,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub issued_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Line {
    pub position: i32,
    pub kind: String,
    pub description: String,
    pub product_id: Option<Uuid>,
    pub quantity: i32,
    pub unit_amount: Decimal,
    pub amount: Decimal,
}

/// A line to put on a draft: an item, a discount (negative) or a tax.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub kind: &'static str,
    pub description: String,
    pub product_id: Option<Uuid>,
    pub quantity: i32,
    pub unit_amount: Decimal,
}

/// What a draft is for: a new order, the next period of a subscription, or the rest of the
/// current period on a bigger plan (no period of its own).
pub enum Purpose {
    Order(Uuid),
    Renewal { subscription: Uuid, period_start: DateTime<Utc>, period_end: DateTime<Utc> },
    PlanChange { subscription: Uuid },
}

pub const COLUMNS: &str = "id, customer_id, order_id, subscription_id, number, status, currency, subtotal, \
                           discount_total, tax_total, total, period_start, period_end, issued_at, due_at, \
                           paid_at, fulfilled_at";

/// Creates a draft invoice with its lines.
pub async fn create_draft(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    customer: Uuid,
    currency: &str,
    purpose: Purpose,
    lines: &[NewLine],
) -> Result<Uuid, LedgerError> {
    let (order, subscription, start, end) = match purpose {
        Purpose::Order(order) => (Some(order), None, None, None),
        Purpose::Renewal { subscription, period_start, period_end } => {
            (None, Some(subscription), Some(period_start), Some(period_end))
        }
        Purpose::PlanChange { subscription } => (None, Some(subscription), None, None),
    };
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO invoices (tenant_id, customer_id, order_id, subscription_id, currency, period_start, period_end) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(tenant)
    .bind(customer)
    .bind(order)
    .bind(subscription)
    .bind(currency)
    .bind(start)
    .bind(end)
    .fetch_one(&mut *tx)
    .await?;
    for (position, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO invoice_lines (invoice_id, position, kind, description, product_id, quantity, unit_amount, amount) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(position as i32 + 1)
        .bind(line.kind)
        .bind(&line.description)
        .bind(line.product_id)
        .bind(line.quantity)
        .bind(line.unit_amount)
        .bind(line.unit_amount * Decimal::from(line.quantity))
        .execute(&mut *tx)
        .await?;
    }
    Ok(id)
}

/// Issues a draft: the database numbers it and fixes its totals.
/// The number and payment time of the subscription's latest paid invoice (its order's first, or a
/// renewal); none before one is paid.
pub async fn last_paid(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    order: Uuid,
) -> Result<(Option<String>, Option<DateTime<Utc>>), LedgerError> {
    let found = sqlx::query_as(
        "SELECT number, paid_at FROM invoices WHERE (subscription_id = $1 OR order_id = $2) \
         AND status = 'paid' ORDER BY paid_at DESC LIMIT 1",
    )
    .bind(subscription)
    .bind(order)
    .fetch_optional(db)
    .await?;
    Ok(found.unwrap_or((None, None)))
}

/// The paid first invoice of `order`, if it is paid.
pub async fn paid_of_order(db: impl PgExecutor<'_>, order: Uuid) -> Result<Option<Invoice>, LedgerError> {
    Ok(sqlx::query_as(sql!("SELECT {COLUMNS} FROM invoices WHERE order_id = $1 AND status = 'paid'"))
        .bind(order)
        .fetch_optional(db)
        .await?)
}

/// The next paid, unfulfilled invoice that is not waiting for its next attempt and has no earlier
/// one of its subscription still to fulfil (a first invoice has no subscription yet: nothing to
/// look up), in `order`; claimed until the transaction ends. By turns, the first pending invoice
/// of the customer with the fewest pending comes first (then the oldest of all).
pub async fn claim_to_fulfil(tx: &mut sqlx::PgConnection, order: Order) -> Result<Option<Invoice>, LedgerError> {
    const OLDEST: (&str, &str) = ("invoices i", "i.paid_at");
    const TURNS: (&str, &str) = (
        "invoices i JOIN (SELECT DISTINCT ON (customer_id) id AS head, \
                                count(*) OVER (PARTITION BY customer_id) AS queued \
                         FROM invoices WHERE status = 'paid' AND fulfilled_at IS NULL \
                         ORDER BY customer_id, paid_at, id) h ON h.head = i.id",
        "h.queued, i.paid_at",
    );
    super::claim_first(tx, order, TURNS, OLDEST, |from, order_by| {
        format!(
            "SELECT {COLUMNS} FROM {from} WHERE i.status = 'paid' AND i.fulfilled_at IS NULL \
             AND (i.subscription_id IS NULL OR NOT EXISTS (SELECT 1 FROM invoices e \
                  WHERE e.subscription_id = i.subscription_id AND e.status = 'paid' AND e.fulfilled_at IS NULL \
                  AND (e.paid_at, e.id) < (i.paid_at, i.id))) \
             AND {} ORDER BY {order_by} LIMIT 1 FOR UPDATE OF i SKIP LOCKED",
            Worker::Fulfilment.not_waiting("i.id::text")
        )
    })
    .await
}

/// The paid invoice is fulfilled, for `subscription` (the one its order created, or it renews).
pub async fn fulfilled(db: impl PgExecutor<'_>, invoice: Uuid, subscription: Uuid) -> Result<(), LedgerError> {
    sqlx::query("UPDATE invoices SET fulfilled_at = now(), subscription_id = $2 WHERE id = $1")
        .bind(invoice)
        .bind(subscription)
        .execute(db)
        .await?;
    Ok(())
}

/// The issued renewal invoices of running subscriptions whose due date passed by `now`, oldest due
/// first: (subscription, invoice). (An unpaid upgrade never suspends what is paid for.)
pub async fn overdue_by(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT s.id, i.id FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id \
         WHERE i.status = 'issued' AND i.period_start IS NOT NULL AND i.due_at < $1 \
           AND s.status IN ('active', 'past_due', 'suspended') \
         ORDER BY i.due_at, i.id",
    )
    .bind(now)
    .fetch_all(db)
    .await?)
}

/// The subscription's invoice, still unpaid as it is now, locked until the transaction ends: its
/// due date and the period it bills. None when it was paid meanwhile, or one being paid holds it.
pub async fn lock_unpaid(
    tx: &mut sqlx::PgConnection,
    invoice: Uuid,
    subscription: Uuid,
) -> Result<Option<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT due_at, period_start FROM invoices WHERE id = $1 AND subscription_id = $2 \
         AND status = 'issued' FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(invoice)
    .bind(subscription)
    .fetch_optional(tx)
    .await?)
}

/// Whether the subscription has an invoice (not void) for the period starting at `start`.
pub async fn renewal_of_period(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    start: DateTime<Utc>,
) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = $1 AND status <> 'void' AND period_start = $2)",
    )
    .bind(subscription)
    .bind(start)
    .fetch_one(db)
    .await?)
}

/// Whether a paid renewal of the subscription for a period past `end` is still to be fulfilled.
pub async fn paid_unfulfilled_beyond(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    end: DateTime<Utc>,
) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = $1 AND status = 'paid' \
         AND fulfilled_at IS NULL AND period_end > $2)",
    )
    .bind(subscription)
    .bind(end)
    .fetch_one(db)
    .await?)
}

/// Whether a renewal invoice of the subscription is unpaid past its due date now.
pub async fn renewal_overdue(db: impl PgExecutor<'_>, subscription: Uuid) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = $1 AND status = 'issued' \
         AND period_start IS NOT NULL AND due_at < now())",
    )
    .bind(subscription)
    .fetch_one(db)
    .await?)
}

pub async fn issue(db: impl PgExecutor<'_>, id: Uuid, due_at: DateTime<Utc>) -> Result<Invoice, LedgerError> {
    transition(db, id, &["draft"], "issued", Some(due_at)).await
}

/// Marks an issued invoice paid. A paid invoice stays as it is (Ok, unchanged).
pub async fn mark_paid(db: impl PgExecutor<'_>, id: Uuid) -> Result<Invoice, LedgerError> {
    transition(db, id, &["issued", "paid", "refunded"], "paid", None).await
}

pub async fn void(db: impl PgExecutor<'_>, id: Uuid) -> Result<Invoice, LedgerError> {
    transition(db, id, &["draft", "issued", "void"], "void", None).await
}

/// The subscription's renewal invoices not paid yet (draft or issued), locked until the transaction
/// ends: a payment of one of them waits, and then finds it void or the cancellation waits for it.
/// Taken before the subscription's own lock, in the order a payment takes them.
pub async fn lock_open_renewals(tx: &mut sqlx::PgConnection, subscription: Uuid) -> Result<Vec<Invoice>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM invoices WHERE subscription_id = $1 AND status IN ('draft', 'issued') \
         ORDER BY id FOR UPDATE"
    ))
    .bind(subscription)
    .fetch_all(tx)
    .await?)
}

/// As `lock_open_renewals` for a worker that must not wait: None when another transaction (a
/// payment being recorded) holds one of them, and that one decides first.
pub async fn claim_open_renewals(
    tx: &mut sqlx::PgConnection,
    subscription: Uuid,
) -> Result<Option<Vec<Invoice>>, LedgerError> {
    let claimed: Vec<Invoice> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM invoices WHERE subscription_id = $1 AND status IN ('draft', 'issued') \
         ORDER BY id FOR UPDATE SKIP LOCKED"
    ))
    .bind(subscription)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = claimed.iter().map(|i| i.id).collect();
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = $1 AND status IN ('draft', 'issued') \
         AND id <> ALL($2))",
    )
    .bind(subscription)
    .bind(&ids)
    .fetch_one(&mut *tx)
    .await?;
    Ok((!held).then_some(claimed))
}

pub async fn mark_refunded(db: impl PgExecutor<'_>, id: Uuid) -> Result<Invoice, LedgerError> {
    transition(db, id, &["paid", "refunded"], "refunded", None).await
}

/// Moves the invoice from one of `from` to `to`; being in `to` already (or past it, for `paid`)
/// changes nothing, so a repeated request is harmless.
async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: &[&str],
    to: &str,
    due_at: Option<DateTime<Utc>>,
) -> Result<Invoice, LedgerError> {
    let row: Option<Invoice> = sqlx::query_as(sql!(
        "WITH current AS (SELECT id, status FROM invoices WHERE id = $1 FOR UPDATE) \
         UPDATE invoices i SET status = CASE WHEN c.status = ANY($2) AND c.status NOT IN ($3, 'refunded') THEN $3 ELSE i.status END, \
         due_at = CASE WHEN c.status = 'draft' AND $3 = 'issued' THEN $4 ELSE i.due_at END \
         FROM current c WHERE i.id = c.id RETURNING {}",
        COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(due_at)
    .fetch_optional(db)
    .await?;
    let invoice = row.ok_or_else(|| LedgerError::NotFound(format!("invoice {id}")))?;
    if invoice.status != to && !(to == "paid" && invoice.status == "refunded") {
        return Err(LedgerError::Conflict(format!(
            "invoice {} is {} and cannot become {to}",
            invoice.number.as_deref().unwrap_or("(draft)"),
            invoice.status
        )));
    }
    Ok(invoice)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Invoice, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM invoices WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("invoice {id}")))
}

/// The invoice, locked until the transaction ends: its status cannot change meanwhile.
pub async fn lock(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Invoice, LedgerError> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM invoices WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("invoice {id}")))
}

/// An invoice of `tenant` by id or by number (`INV-YYYY-NNNNNN`, unique per tenant).
pub async fn find(db: impl PgExecutor<'_>, tenant: Uuid, key: &str) -> Result<Invoice, LedgerError> {
    let id = Uuid::parse_str(key).ok();
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM invoices WHERE tenant_id = $3 AND (id = $1 OR number = $2)"))
        .bind(id)
        .bind(key)
        .bind(tenant)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| LedgerError::NotFound(format!("invoice {key}")))
}

/// Who an invoice is from and to, as its document names them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Parties {
    /// The tenant's name.
    pub seller_name: String,
    /// The tenant's support address, falling back as its mails' does (`notifications::Branding`).
    pub seller_email: String,
    pub buyer_name: Option<String>,
    pub buyer_email: String,
}

pub async fn parties(db: impl PgExecutor<'_>, id: Uuid) -> Result<Parties, LedgerError> {
    sqlx::query_as(
        "SELECT t.name AS seller_name, \
                coalesce(t.support_email, t.mail_from, 'no-reply@' || t.slug || '.invalid') AS seller_email, \
                c.name AS buyer_name, c.email AS buyer_email \
           FROM invoices i JOIN tenants t ON t.id = i.tenant_id JOIN customers c ON c.id = i.customer_id \
          WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| LedgerError::NotFound(format!("invoice {id}")))
}

/// The invoice a notification is about (its event is `invoice:<id>`) and the invoice's tenant.
pub async fn of_notification(db: impl PgExecutor<'_>, notification: i64) -> Result<Option<(Uuid, Uuid)>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT i.tenant_id, i.id FROM notifications n \
           JOIN invoices i ON n.event_key = 'invoice:' || i.id::text AND i.tenant_id = n.tenant_id \
          WHERE n.id = $1",
    )
    .bind(notification)
    .fetch_optional(db)
    .await?)
}

pub async fn lines(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<Line>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT position, kind, description, product_id, quantity, unit_amount, amount FROM invoice_lines \
         WHERE invoice_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// An invoice as staff list it: an open one with the address it is paid at.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Listed {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub invoice: Invoice,
    #[serde(rename = "payUrl")]
    pub pay_url: Option<String>,
}

/// The newest invoices (500 at most), of `status` when given.
pub async fn list(db: impl PgExecutor<'_>, status: Option<&str>) -> Result<Vec<Listed>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS}, CASE WHEN status = 'issued' THEN pay_url(id) END AS pay_url FROM invoices \
         WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC LIMIT 500"
    ))
    .bind(status)
    .fetch_all(db)
    .await?)
}

/// The customer's issued invoices (not drafts), newest first.
pub async fn of_customer(db: impl PgExecutor<'_>, customer: Uuid) -> Result<Vec<Invoice>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM invoices WHERE customer_id = $1 AND status <> 'draft' ORDER BY created_at DESC LIMIT 500"
    ))
    .bind(customer)
    .fetch_all(db)
    .await?)
}

/// The invoices of a subscription: the order's first one and its renewals.
pub async fn of_subscription(
    db: impl PgExecutor<'_>,
    subscription: Uuid,
    order: Uuid,
) -> Result<Vec<Invoice>, LedgerError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM invoices WHERE subscription_id = $1 OR order_id = $2 ORDER BY created_at"
    ))
    .bind(subscription)
    .bind(order)
    .fetch_all(db)
    .await?)
}
