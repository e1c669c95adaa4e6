//! Off-session charges of renewal invoices, one row per attempt. An attempt is taken (`pending`)
//! in its own short transaction before Stripe is asked, so no lock is held across the call and two
//! replicas never take the same attempt (the primary key); it is answered after. A pending attempt
//! left by a crash is asked again, with the same idempotency key, once it is a few minutes old.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::LedgerError;

/// An attempt a pending row older than this is taken to be abandoned by a crash, and asked again.
const ABANDONED_AFTER_MINUTES: i32 = 5;

/// One attempt to charge a renewal invoice, as the ledger keeps it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Attempt {
    pub invoice_id: Uuid,
    pub attempt: i32,
    pub payment_method: String,
    pub amount: Decimal,
    pub currency: String,
    pub outcome: String,
    pub payment_intent: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub attempted_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
}

/// An attempt taken, to ask Stripe for: who pays, with what, how much.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Taken {
    pub invoice_id: Uuid,
    pub attempt: i32,
    pub stripe_customer: String,
    pub payment_method: String,
    pub amount: Decimal,
    pub currency: String,
}

impl Taken {
    /// Stripe's idempotency key: one charge per invoice and attempt, however often it is asked.
    pub fn idempotency_key(&self) -> String {
        format!("renewal-{}-{}", self.invoice_id, self.attempt)
    }
}

/// What Stripe answered an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `succeeded` or `processing`: the payment itself is recorded from its webhook.
    Accepted { outcome: &'static str, payment_intent: String },
    /// The customer must act (3-D Secure): the invoice stays open to be paid on a session.
    RequiresAction { payment_intent: Option<String>, message: String },
    /// Declined by the card's bank: Stripe's decline code verbatim.
    Declined { decline_code: Option<String>, message: String },
    /// Any other refusal or no answer.
    Failed { message: String },
}

/// Takes the next attempt that is due as of `now`: an issued renewal invoice of a running
/// subscription whose customer has a saved payment method, attempted fewer times than its
/// product's dunning schedule has days, the next day of which has come (days after the due date);
/// or an abandoned pending attempt. None when nothing is due.
pub async fn take_due(tx: &mut sqlx::PgConnection, now: DateTime<Utc>) -> Result<Option<Taken>, LedgerError> {
    let abandoned: Option<Taken> = sqlx::query_as(
        "UPDATE charge_attempts a SET attempted_at = now() FROM invoices i JOIN customers c ON c.id = i.customer_id \
          WHERE a.invoice_id = i.id AND c.stripe_customer_id IS NOT NULL \
            AND (a.invoice_id, a.attempt) = (SELECT invoice_id, attempt FROM charge_attempts \
                 WHERE outcome = 'pending' AND attempted_at < now() - make_interval(mins => $1) \
                 ORDER BY attempted_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING a.invoice_id, a.attempt, c.stripe_customer_id AS stripe_customer, a.payment_method, a.amount, a.currency",
    )
    .bind(ABANDONED_AFTER_MINUTES)
    .fetch_optional(&mut *tx)
    .await?;
    if abandoned.is_some() {
        return Ok(abandoned);
    }
    Ok(sqlx::query_as(
        "WITH due AS ( \
           SELECT i.id, i.total - coalesce((SELECT sum(p.amount - p.refunded_amount) FROM payments p \
                                            WHERE p.invoice_id = i.id AND p.status = 'succeeded'), 0) AS rest, \
                  i.currency, c.stripe_customer_id, c.payment_method, m.made \
             FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id \
             JOIN customers c ON c.id = i.customer_id JOIN products p ON p.id = s.product_id \
             CROSS JOIN LATERAL (SELECT count(*)::int AS made, \
                                        bool_or(a.outcome IN ('pending', 'succeeded', 'processing')) AS open \
                                   FROM charge_attempts a WHERE a.invoice_id = i.id) m \
            WHERE i.status = 'issued' AND i.period_start IS NOT NULL AND i.due_at IS NOT NULL \
              AND s.status IN ('active', 'past_due', 'suspended') \
              AND c.stripe_customer_id IS NOT NULL AND c.payment_method IS NOT NULL \
              AND NOT coalesce(m.open, false) AND m.made < cardinality(p.dunning_days) \
              AND i.due_at + make_interval(days => p.dunning_days[m.made + 1]) <= $1 \
            ORDER BY i.due_at, i.id LIMIT 1 FOR NO KEY UPDATE OF i SKIP LOCKED) \
         INSERT INTO charge_attempts (invoice_id, attempt, payment_method, amount, currency) \
         SELECT id, made + 1, payment_method, rest, currency FROM due WHERE rest > 0 \
         ON CONFLICT DO NOTHING \
         RETURNING invoice_id, attempt, (SELECT stripe_customer_id FROM due) AS stripe_customer, payment_method, \
                   amount, currency",
    )
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Records what Stripe answered the attempt.
pub async fn answer(db: impl PgExecutor<'_>, taken: &Taken, answer: &Answer) -> Result<(), LedgerError> {
    let (outcome, payment_intent, decline_code, message) = match answer {
        Answer::Accepted { outcome, payment_intent } => (*outcome, Some(payment_intent.as_str()), None, None),
        Answer::RequiresAction { payment_intent, message } => {
            ("requires_action", payment_intent.as_deref(), None, Some(message.as_str()))
        }
        Answer::Declined { decline_code, message } => {
            ("declined", None, decline_code.as_deref(), Some(message.as_str()))
        }
        Answer::Failed { message } => ("failed", None, None, Some(message.as_str())),
    };
    sqlx::query(
        "UPDATE charge_attempts SET outcome = $3, payment_intent = $4, decline_code = $5, message = $6, \
         answered_at = now() WHERE invoice_id = $1 AND attempt = $2",
    )
    .bind(taken.invoice_id)
    .bind(taken.attempt)
    .bind(outcome)
    .bind(payment_intent)
    .bind(decline_code)
    .bind(message)
    .execute(db)
    .await?;
    Ok(())
}

/// Every attempt at the invoice, first first.
pub async fn of_invoice(db: impl PgExecutor<'_>, invoice: Uuid) -> Result<Vec<Attempt>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT invoice_id, attempt, payment_method, amount, currency, outcome, payment_intent, decline_code, \
                message, attempted_at, answered_at FROM charge_attempts WHERE invoice_id = $1 ORDER BY attempt",
    )
    .bind(invoice)
    .fetch_all(db)
    .await?)
}
