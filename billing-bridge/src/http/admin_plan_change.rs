//! `POST /v1/admin/subscriptions/{id}/change-plan {"product": "<slug>"}` (billing): moves a
//! running subscription to another plan of the same type (`plan_change`). `201` with the change and,
//! for an upgrade, its proration invoice (issued, due now; the plan changes once it is paid); a
//! downgrade has no invoice and takes effect with the next renewal.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::super::{ApiError, bad_body};
use super::{Shared, require, uuid};
use crate::ledger::tokens::Role;
use crate::plan_change::{self, PlanChangeError, Requested};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangePlan {
    product: String,
}

pub(super) async fn change_plan(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ChangePlan>, JsonRejection>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    let who = require(&s, &headers, Role::Billing).await?;
    let Json(asked) = body.map_err(bad_body)?;
    let requested = plan_change::request(&s.pool, s.tenant, uuid(&id)?, &asked.product, &who.name, chrono::Utc::now())
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(requested)))
}

fn refused(e: PlanChangeError) -> ApiError {
    let e = match e {
        PlanChangeError::Ledger(e) => return e.into(),
        e => e,
    };
    let status = match &e {
        PlanChangeError::NotRunning { .. } | PlanChangeError::PeriodEnding => StatusCode::CONFLICT,
        // (a ledger error was answered above)
        PlanChangeError::Ledger(_)
        | PlanChangeError::SamePlan(_)
        | PlanChangeError::OtherType { .. }
        | PlanChangeError::NotSold(_)
        | PlanChangeError::NoPrice { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.to_string())
}
