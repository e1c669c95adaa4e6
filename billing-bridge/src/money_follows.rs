//! Service follows money: when all that was paid for a subscription's invoice is given back, the
//! subscription ends and its resource is deleted (outbox `delete`); while a payment is disputed
//! (a chargeback) it is suspended (`Dispute`), lifted when the dispute is won and ended when lost. Each step reads the rows it
//! changes under their lock and acts only on a subscription still running, so a redelivered event
//! or a second refund changes nothing twice.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::invoices::{self, Invoice};
use crate::ledger::outbox::{self, Action};
use crate::ledger::{LedgerError, audit, notifications, orders, payments, stripe_events, subscriptions};
use crate::stripe::api::StripeClient;

/// A subscription that still runs (or waits to), which money given back ends.
const RUNNING: [&str; 4] = ["pending_activation", "active", "past_due", "suspended"];

/// What following a refund did to the invoice's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// Cancelled, its open renewals voided and its resource deleted.
    Cancelled,
    /// It never ran (provisioning failed): what was created is deleted.
    Deleted,
    /// Suspended while a payment is disputed.
    Suspended,
    /// A dispute suspension lifted: the dispute was won.
    Lifted,
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
    let followed = end_service(tx, id, actor, why, invoice.number.as_deref()).await?;
    if followed == Followed::Deleted {
        notifications::provisioning_failed(tx, id, Some(invoice)).await?;
    }
    Ok(followed)
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
        let told = if why == "dispute lost" {
            "its payment went back to you through a dispute"
        } else {
            "its payment was refunded"
        };
        notifications::cancelled(&mut *tx, id, told).await?;
        Followed::Cancelled
    } else if sub.status == "provisioning_failed" && !outbox::delete_queued(&mut *tx, id).await? {
        let detail = json!({"why": why, "invoice": invoice});
        audit::record(&mut *tx, actor, "subscription.delete", "subscription", &id.to_string(), detail).await?;
        Followed::Deleted
    } else {
        return Ok(Followed::Unchanged);
    };
    outbox::enqueue(&mut *tx, id, Action::Delete).await?;
    Ok(followed)
}

/// Where a dispute stands, from Stripe's `charge.dispute.*` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispute {
    Opened,
    Won,
    Lost,
}

/// Follows a dispute of the payment `intent` to its subscription: suspended while open (unless the
/// dispute `id` was closed already: events may arrive out of order), lifted when won, ended when
/// lost. Unchanged when the payment or its subscription is unknown, or the step was taken before.
pub async fn after_dispute(
    tx: &mut sqlx::PgConnection,
    intent: &str,
    id: &str,
    dispute: Dispute,
) -> Result<Followed, LedgerError> {
    let Some(sub) = disputed_subscription(&mut *tx, intent).await? else {
        return Ok(Followed::Unchanged);
    };
    if dispute == Dispute::Lost {
        return end_service(tx, sub, "stripe", "dispute lost", None).await;
    }
    let current = subscriptions::lock(&mut *tx, sub).await?;
    let held = current.suspension_reason.as_deref() == Some("Dispute");
    // a staff suspension (Abuse, Manual) is lifted by staff alone: a dispute neither replaces it
    // (its win would lift it) nor is replaced by it
    let by_staff = matches!(current.suspension_reason.as_deref(), Some("Abuse" | "Manual"));
    let reason = match dispute {
        Dispute::Opened
            if !held
                && !by_staff
                && RUNNING.contains(&current.status.as_str())
                && !stripe_events::dispute_closed(&mut *tx, id).await? =>
        {
            Some("Dispute")
        }
        Dispute::Won if held => None,
        _ => return Ok(Followed::Unchanged),
    };
    subscriptions::set_suspension(&mut *tx, sub, reason).await?;
    outbox::enqueue(&mut *tx, sub, Action::Apply).await?;
    match reason {
        Some(reason) => notifications::suspended(&mut *tx, sub, reason, &format!("dispute:{id}")).await?,
        None => notifications::resumed(&mut *tx, sub, &format!("dispute:{id}")).await?,
    }
    let action = if reason.is_some() { "subscription.suspend" } else { "subscription.unsuspend" };
    let detail = json!({"why": "dispute", "dispute": id, "payment": intent});
    audit::record(&mut *tx, "stripe", action, "subscription", &sub.to_string(), detail).await?;
    Ok(if reason.is_some() { Followed::Suspended } else { Followed::Lifted })
}

async fn disputed_subscription(db: &mut sqlx::PgConnection, intent: &str) -> Result<Option<Uuid>, LedgerError> {
    let Some(invoice) = payments::by_reference(&mut *db, "stripe", intent).await?.and_then(|p| p.invoice_id) else {
        return Ok(None);
    };
    Ok(invoices::get(&mut *db, invoice).await?.subscription_id)
}

/// After `invoice` was voided: its order's Checkout Session is expired at Stripe, so it can no
/// longer be paid (what is paid anyway is refunded, `refunds::stray_payments`). An audit row
/// `checkout.session.expire` says what Stripe answered; a refusal (a session already expired or
/// complete) is logged there and is no error.
pub async fn expire_checkout_of(
    pool: &PgPool,
    stripe: &StripeClient,
    invoice: &Invoice,
    actor: &str,
) -> Result<(), LedgerError> {
    let Some(order) = invoice.order_id.filter(|_| invoice.status == "void") else { return Ok(()) };
    let Some(session) = orders::get(pool, order).await?.stripe_checkout_session_id else { return Ok(()) };
    let answer = match stripe.expire_checkout_session(&session).await {
        Ok(status) => json!({"session": session, "status": status}),
        Err(e) => {
            tracing::warn!(%session, error = %e, "expiring the checkout session of a void invoice failed");
            json!({"session": session, "error": e.reason(), "message": e.to_string()})
        }
    };
    audit::record(pool, actor, "checkout.session.expire", "order", &order.to_string(), answer).await
}
