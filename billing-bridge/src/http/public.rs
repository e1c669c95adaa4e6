//! What anyone may call: health, metrics, the catalog and checkout.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, AppState, bad_body};
use crate::checkout::{self, Placed, Purchase};
use crate::ledger::catalog;
use crate::metrics::OutcomeLabels;

pub async fn healthz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&state.pool)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "DatabaseError", format!("ledger: {e}")))?;
    Ok("ok")
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> String {
    state.metrics.encode()
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
    match checkout::place(&state.pool, state.tenant, &state.stripe, &state.return_urls, &purchase).await {
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
