//! Service follows money: when all that was paid for a subscription's invoice is given back, the
//! subscription ends and its resource is deleted (outbox `delete`). Each step reads the rows it
//! changes under their lock and acts only on a subscription still running, so a redelivered event
//! or a second refund changes nothing twice.

use serde_json::json;
use uuid::Uuid;

use crate::ledger::invoices::{self, Invoice};
use crate::ledger::outbox::{self, Action};
use crate::ledger::{LedgerError, audit, subscriptions};

/// A subscription that still runs (or waits to), which money given back ends.
const RUNNING: [&str; 4] = ["pending_activation", "active", "past_due", "suspended"];

/// What following a refund did to the invoice's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// Cancelled, its open renewals voided and its resource deleted.
    Cancelled,
    /// It never ran (provisioning failed): what was created is deleted.
    Deleted,
    /// Nothing to do: no subscription, the invoice not refunded, or ended already.
    Unchanged,
}

/// Ends the subscription of `invoice` when the invoice is refunded in full; call in the
/// transaction that settled it. `actor` and `why` go into the audit row.
pub async fn after_refund(
    tx: &mut sqlx::PgConnection,
    invoice: &Invoice,
    actor: &str,
    why: &str,
) -> Result<Followed, LedgerError> {
    let Some(id) = invoice.subscription_id.filter(|_| invoice.status == "refunded") else {
        return Ok(Followed::Unchanged);
    };
    end_service(tx, id, actor, why, invoice.number.as_deref()).await
}

/// Cancels a running subscription (voiding its open renewals) or, one whose provisioning failed,
/// deletes what was created; either way its resource goes through the outbox.
pub async fn end_service(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    actor: &str,
    why: &str,
    invoice: Option<&str>,
) -> Result<Followed, LedgerError> {
    // in the order a payment and a staff cancellation lock them: open invoices, then the subscription
    let open = invoices::lock_open_renewals(&mut *tx, id).await?;
    let sub = subscriptions::lock(&mut *tx, id).await?;
    let followed = if RUNNING.contains(&sub.status.as_str()) {
        subscriptions::transition(&mut *tx, id, &RUNNING, "cancelled").await?;
        let mut voided = Vec::with_capacity(open.len());
        for renewal in open {
            voided.push(invoices::void(&mut *tx, renewal.id).await?.number);
        }
        let detail = json!({"why": why, "invoice": invoice, "voided": voided});
        audit::record(&mut *tx, actor, "subscription.cancel", "subscription", &id.to_string(), detail).await?;
        Followed::Cancelled
    } else if sub.status == "provisioning_failed" && !delete_pending_or_done(&mut *tx, id).await? {
        let detail = json!({"why": why, "invoice": invoice});
        audit::record(&mut *tx, actor, "subscription.delete", "subscription", &id.to_string(), detail).await?;
        Followed::Deleted
    } else {
        return Ok(Followed::Unchanged);
    };
    outbox::enqueue(&mut *tx, id, Action::Delete).await?;
    Ok(followed)
}

async fn delete_pending_or_done(db: &mut sqlx::PgConnection, id: Uuid) -> Result<bool, LedgerError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE subscription_id = $1 AND action = 'delete')")
        .bind(id)
        .fetch_one(db)
        .await?)
}
