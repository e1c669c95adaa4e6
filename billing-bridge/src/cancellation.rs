//! Cancelling a subscription, by staff or by its customer in the portal: now (the resource is
//! deleted) or at the end of the period. Either way the open renewal invoices are voided, so what
//! is paid on them afterwards brings nothing back. An ended subscription is a conflict.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::outbox::{self, Action};
use crate::ledger::subscriptions::{self, Subscription};
use crate::ledger::{LedgerError, audit, invoices, notifications};

/// Cancels subscription `id` for `actor` (a staff token's name, or `customer:<id>`).
pub async fn cancel(pool: &PgPool, id: Uuid, at_period_end: bool, actor: &str) -> Result<Subscription, LedgerError> {
    let mut tx = pool.begin().await?;
    // in the order a payment locks them: a payment being recorded finishes first (its invoice is
    // then paid, not open), a later one finds its invoice void
    let open = invoices::lock_open_renewals(&mut tx, id).await?;
    let sub = subscriptions::lock(&mut tx, id).await?;
    let ended = || LedgerError::Conflict(format!("subscription {id} is {} already", sub.status));
    if at_period_end {
        if !matches!(sub.status.as_str(), "pending_activation" | "active" | "past_due" | "suspended") {
            return Err(ended());
        }
        subscriptions::set_cancel_at_period_end(&mut *tx, id, true).await?;
    } else {
        let from = ["pending_activation", "active", "past_due", "suspended", "provisioning_failed"];
        if subscriptions::transition(&mut *tx, id, &from, "cancelled").await?.is_none() {
            return Err(ended());
        }
        outbox::enqueue(&mut *tx, id, Action::Delete).await?;
        notifications::cancelled(&mut *tx, id, "it was cancelled at your or our staff's request").await?;
    }
    let mut voided = Vec::with_capacity(open.len());
    for invoice in &open {
        let number = invoices::void(&mut *tx, invoice.id).await?.number;
        let key = number.clone().unwrap_or_else(|| invoice.id.to_string());
        audit::record(&mut *tx, actor, "invoice.void", "invoice", &key, json!({"why": "subscription.cancel"})).await?;
        voided.push(number);
    }
    let detail = json!({"atPeriodEnd": at_period_end, "voided": voided});
    audit::record(&mut *tx, actor, "subscription.cancel", "subscription", &id.to_string(), detail).await?;
    tx.commit().await?;
    subscriptions::get(pool, id).await
}
