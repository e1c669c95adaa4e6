//! What anyone may call: health, the catalog and checkout; and metrics, with a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, AppState, bad_body};
use crate::checkout::{self, Placed, Purchase};
use crate::ledger::catalog;
use crate::ledger::tokens::Role;
use crate::metrics::OutcomeLabels;

/// Whether the ledger answers: `ok`, or 503 `unavailable` (the cause goes to the log only).
pub async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the ledger does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}

/// The Prometheus exposition, for holders of an admin API token of any role.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<String, ApiError> {
    super::admin::require(&state, &headers, Role::ReadOnly).await?;
    Ok(state.metrics.encode())
}

/// Active products with their prices; templates are internal and left out.
pub async fn catalog(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let products = catalog::list(&state.pool, state.tenant, false).await?;
    let items: Vec<Value> = products
        .into_iter()
        .map(|l| json!({"slug": l.product.slug, "name": l.product.name, "type": l.product.kind, "prices": l.prices}))
        .collect();
    Ok(Json(json!({"products": items})))
}

pub async fn checkout(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Purchase>, JsonRejection>,
) -> Result<(StatusCode, Json<Placed>), ApiError> {
    let count = |outcome| state.metrics.checkouts.get_or_create(&OutcomeLabels { outcome }).inc();
    let Json(purchase) = body.map_err(|e| {
        count("refused");
        bad_body(e)
    })?;
    let registrar = state.registrar.as_deref();
    match checkout::place(&state.pool, state.tenant, &state.stripe, registrar, &state.return_urls, &purchase).await {
        Ok(placed) => {
            count("placed");
            Ok((StatusCode::CREATED, Json(placed)))
        }
        Err(e) => {
            let e = ApiError::from(e);
            count(if e.status.is_client_error() { "refused" } else { "error" });
            Err(e)
        }
    }
}
