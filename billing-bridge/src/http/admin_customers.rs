//! Staff create and edit customers (billing): `POST /v1/admin/customers {"email", "name"?}` and
//! `PATCH /v1/admin/customers/{id} {"email"?, "name"?}`. The handle is made by the ledger at
//! creation and never changes: it names the customer's namespace, which holds its resources. A
//! refused request writes nothing; a done one writes its audit row with the actor in the same
//! transaction, and a changed email is carried to the customer's Subscription resources (outbox).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::{ApiError, bad_body};
use super::{Shared, require, to_json, uuid};
use crate::ledger::customers::{self, Refused};
use crate::ledger::outbox::{self, Action};
use crate::ledger::tokens::Role;
use crate::ledger::{LedgerError, audit, subscriptions};

/// A request body that may name the handle or namespace, only to be refused with words that say
/// why (not as an unknown field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerInput {
    email: Option<String>,
    name: Option<String>,
    handle: Option<Value>,
    namespace: Option<Value>,
}

fn refused(e: Refused) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
}

fn email_taken(email: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "EmailTaken", format!("another customer has the email {email:?}"))
}

/// Refuses a body that sets the handle or namespace.
fn no_handle(input: &CustomerInput, why: &str) -> Result<(), ApiError> {
    if input.handle.is_some() || input.namespace.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "HandleImmutable",
            format!("a customer's handle and namespace (customer-<handle>) are immutable: {why}"),
        ));
    }
    Ok(())
}

/// The name, normalized, if one is given.
fn name_of(input: &CustomerInput) -> Result<Option<String>, ApiError> {
    input.name.as_deref().map(customers::normalize_name).transpose().map_err(refused)
}

pub(super) async fn create(
    State(s): Shared,
    headers: HeaderMap,
    body: Result<Json<CustomerInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = require(&s, &headers, Role::Billing).await?;
    let Json(input) = body.map_err(bad_body)?;
    no_handle(&input, "the ledger makes the handle when it creates the customer")?;
    let email = input.email.as_deref().ok_or_else(|| refused(Refused::InvalidEmail(String::new())))?;
    let email = customers::normalize_email(email).map_err(refused)?;
    let name = name_of(&input)?;
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let customer =
        customers::create(&mut *tx, s.tenant, &email, name.as_deref()).await?.ok_or_else(|| email_taken(&email))?;
    audit::record(
        &mut *tx,
        &who.name,
        "customer.create",
        "customer",
        &customer.id.to_string(),
        json!({"email": customer.email, "name": customer.name, "handle": customer.handle}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    Ok((StatusCode::CREATED, to_json(customer)?))
}

pub(super) async fn edit(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CustomerInput>, JsonRejection>,
) -> super::Reply {
    let who = require(&s, &headers, Role::Billing).await?;
    let Json(input) = body.map_err(bad_body)?;
    let id = uuid(&id)?;
    no_handle(&input, "they name the namespace that holds the customer's resources")?;
    let email = input.email.as_deref().map(customers::normalize_email).transpose().map_err(refused)?;
    let name = name_of(&input)?;
    if email.is_none() && name.is_none() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "NothingToChange", "give an email or a name"));
    }
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let before = customers::lock(&mut tx, id).await?;
    let after = customers::update(&mut *tx, id, email.as_deref(), name.as_deref()).await.map_err(|e| match e {
        LedgerError::Conflict(_) => email_taken(email.as_deref().unwrap_or_default()),
        e => e.into(),
    })?;
    if after.email != before.email {
        // the resources carry the customer's email (spec.customer.email)
        for sub in subscriptions::running_of_customer(&mut *tx, id).await? {
            outbox::enqueue(&mut *tx, sub, Action::Apply).await?;
        }
    }
    audit::record(
        &mut *tx,
        &who.name,
        "customer.edit",
        "customer",
        &id.to_string(),
        json!({"before": {"email": before.email, "name": before.name}, "after": {"email": after.email, "name": after.name}}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    to_json(after)
}
