//! Staff suspensions: `POST /v1/admin/subscriptions/{id}/suspend {"reason": "Abuse"|"Manual",
//! "note"}` and `POST …/resume {"note"?}`. Each is one transaction: the subscription's status and
//! `suspension_reason`, an outbox Apply (the resource's `spec.suspension`), the customer's mail and
//! an audit row with the actor and the note.
//!
//! A staff suspension is lifted only by staff: a payment lifts an `Overdue` suspension alone
//! (`fulfilment::renew`), a won dispute a `Dispute` one alone, and resume refuses both of those
//! (they are lifted by the money). support may suspend for Abuse; Manual and resume need billing.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::super::{ApiError, bad_body};
use super::{Reply, Shared, forbidden, require, to_json, uuid};
use crate::ledger::outbox::{self, Action};
use crate::ledger::subscriptions::Subscription;
use crate::ledger::tokens::Role;
use crate::ledger::{LedgerError, audit, invoices, notifications, subscriptions};

/// The longest note staff may leave with a suspension, in characters.
const MAX_NOTE_CHARS: usize = 2000;

/// What staff may suspend for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum StaffReason {
    Abuse,
    Manual,
}

impl StaffReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Abuse => "Abuse",
            Self::Manual => "Manual",
        }
    }

    /// The role that may suspend for it.
    fn needs(self) -> Role {
        match self {
            Self::Abuse => Role::Support,
            Self::Manual => Role::Billing,
        }
    }
}

/// Why a suspension or resumption is refused; `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub(super) enum SuspensionError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("subscription {0} has ended ({1}): there is nothing to suspend or resume")]
    Ended(Uuid, String),
    #[error("subscription {0} is {1}: only a running subscription (active, past_due, suspended) is suspended")]
    NotRunning(Uuid, String),
    #[error("subscription {0} is suspended for {1} already")]
    AlreadySuspended(Uuid, &'static str),
    #[error("subscription {0} is not suspended")]
    NotSuspended(Uuid),
    #[error("subscription {0} is suspended as Overdue: paying the overdue invoice lifts it, not staff")]
    LiftedByPayment(Uuid),
    #[error("subscription {0} is suspended for a disputed payment: winning the dispute lifts it, not staff")]
    LiftedByDispute(Uuid),
    #[error("a note is at most {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
}

impl SuspensionError {
    pub(super) fn code(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Ended(..) => "SubscriptionEnded",
            Self::NotRunning(..) => "SubscriptionNotRunning",
            Self::AlreadySuspended(..) => "AlreadySuspended",
            Self::NotSuspended(_) => "NotSuspended",
            Self::LiftedByPayment(_) => "SuspendedOverdue",
            Self::LiftedByDispute(_) => "SuspendedForDispute",
            Self::NoteTooLong => "NoteTooLong",
        }
    }
}

impl From<SuspensionError> for ApiError {
    fn from(e: SuspensionError) -> Self {
        match e {
            SuspensionError::Ledger(e) => e.into(),
            SuspensionError::NoteTooLong => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()),
            e => ApiError::new(StatusCode::CONFLICT, e.code(), e.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Suspend {
    reason: StaffReason,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Resume {
    #[serde(default)]
    note: String,
}

fn checked_note(note: &str) -> Result<&str, SuspensionError> {
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(SuspensionError::NoteTooLong);
    }
    Ok(note)
}

/// Refuses an ended or not yet running subscription.
fn running(sub: &Subscription) -> Result<(), SuspensionError> {
    if sub.ended() {
        return Err(SuspensionError::Ended(sub.id, sub.status.clone()));
    }
    if !matches!(sub.status.as_str(), "active" | "past_due" | "suspended") {
        return Err(SuspensionError::NotRunning(sub.id, sub.status.clone()));
    }
    Ok(())
}

pub(super) async fn suspend(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Suspend>, JsonRejection>,
) -> Reply {
    let who = require(&s, &headers, Role::Support).await?;
    let Json(asked) = body.map_err(bad_body)?;
    if who.role < asked.reason.needs() {
        return Err(forbidden(&who, asked.reason.needs()));
    }
    let id = uuid(&id)?;
    let note = checked_note(&asked.note)?;
    let reason = asked.reason.as_str();
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let sub = subscriptions::lock(&mut tx, id).await?;
    running(&sub)?;
    let previous = sub.suspension_reason.clone();
    if previous.as_deref() == Some(reason) {
        return Err(SuspensionError::AlreadySuspended(id, reason).into());
    }
    if sub.status != "suspended" {
        subscriptions::transition(&mut *tx, id, &["active", "past_due"], "suspended").await?;
    }
    subscriptions::set_suspension(&mut *tx, id, Some(reason)).await?;
    outbox::enqueue(&mut *tx, id, Action::Apply).await?;
    let action = Uuid::new_v4();
    notifications::suspended(&mut *tx, id, reason, &format!("staff:{action}")).await?;
    audit::record(
        &mut *tx,
        &who.name,
        "subscription.suspend",
        "subscription",
        &id.to_string(),
        json!({"reason": reason, "note": note, "previous": previous, "role": who.role.as_str(), "action": action}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    to_json(subscriptions::get(&s.pool, id).await?)
}

pub(super) async fn resume(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Resume>, JsonRejection>,
) -> Reply {
    let who = require(&s, &headers, Role::Billing).await?;
    // an empty body is no note
    let asked = match body {
        Ok(Json(asked)) => asked,
        Err(JsonRejection::MissingJsonContentType(_)) => Resume::default(),
        Err(e) => return Err(bad_body(e)),
    };
    let id = uuid(&id)?;
    let note = checked_note(&asked.note)?;
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let sub = subscriptions::lock(&mut tx, id).await?;
    running(&sub)?;
    let previous = match sub.suspension_reason.as_deref() {
        None => return Err(SuspensionError::NotSuspended(id).into()),
        Some("Overdue") => return Err(SuspensionError::LiftedByPayment(id).into()),
        Some("Dispute") => return Err(SuspensionError::LiftedByDispute(id).into()),
        Some(staff) => staff.to_owned(),
    };
    subscriptions::set_suspension(&mut *tx, id, None).await?;
    // a renewal still unpaid past its due date leaves it past due (the lifecycle goes on from there)
    let to = if invoices::renewal_overdue(&mut *tx, id).await? { "past_due" } else { "active" };
    if sub.status == "suspended" {
        subscriptions::transition(&mut *tx, id, &["suspended"], to).await?;
    }
    outbox::enqueue(&mut *tx, id, Action::Apply).await?;
    let action = Uuid::new_v4();
    notifications::resumed(&mut *tx, id, &format!("staff:{action}")).await?;
    audit::record(
        &mut *tx,
        &who.name,
        "subscription.resume",
        "subscription",
        &id.to_string(),
        json!({"previous": previous, "note": note, "role": who.role.as_str(), "action": action}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    to_json(subscriptions::get(&s.pool, id).await?)
}
