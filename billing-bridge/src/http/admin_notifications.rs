//! Customer notifications for staff: `GET /v1/admin/customers/{id}/notifications` (every role) and
//! `POST /v1/admin/notifications/{id}/resend` (support): a notification that was sent or refused
//! for good is offered to the mail server once more, audited with the actor; one still waiting to
//! be sent is a 409 (it goes out by itself).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::super::ApiError;
use super::{Reply, Shared, require, to_json, uuid};
use crate::ledger::tokens::Role;
use crate::ledger::{LedgerError, audit, customers, notifications};

pub(super) async fn of_customer(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let customer = customers::get(&s.pool, uuid(&id)?).await?;
    to_json(json!({"notifications": notifications::of_customer(&s.pool, customer.id).await?}))
}

pub(super) async fn resend(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let who = require(&s, &headers, Role::Support).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("notification {id} not found")))?;
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let Some(requeued) = notifications::requeue(&mut tx, id).await? else {
        // unknown (404), or waiting to be sent
        notifications::get(&mut *tx, id).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotificationPending",
            format!("notification {id} is waiting to be sent: it goes out by itself"),
        ));
    };
    audit::record(
        &mut *tx,
        &who.name,
        "notification.resend",
        "notification",
        &id.to_string(),
        json!({"kind": requeued.kind, "recipient": requeued.recipient}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    to_json(requeued)
}
