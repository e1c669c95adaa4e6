//! The Stripe webhook: the raw body's signature is checked before anything is read, the event's
//! effects are committed with its id, and the answer comes at once; Kubernetes work is the workers'.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::metrics::WebhookLabels;
use crate::stripe::signature;
use crate::stripe_events::{self, Applied, Event};

pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let count = |event_type: &str, outcome| {
        state.metrics.webhook_events.get_or_create(&WebhookLabels { event_type: event_type.to_owned(), outcome }).inc()
    };
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = signature::verify(&body, header, &state.webhook_secret, now, state.webhook_tolerance_secs) {
        count("unknown", "rejected");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, e.reason(), e.to_string()));
    }
    let event = Event::parse(&body).map_err(|e| {
        count("unknown", "rejected");
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidEvent", e)
    })?;
    if state.recent_events.contains(&event.id) {
        count(&event.kind, Applied::Duplicate.as_str());
        return Ok(Json(json!({"received": event.id, "outcome": Applied::Duplicate.as_str()})));
    }
    match stripe_events::apply(&state.pool, &event).await {
        Ok(applied) => {
            state.recent_events.remember(&event.id);
            count(&event.kind, applied.as_str());
            if matches!(applied, Applied::Recorded | Applied::RecordedOnVoidInvoice) {
                state.fulfil.notify_one();
            }
            // money that landed on a void invoice goes back, after the answer to Stripe
            if applied == Applied::RecordedOnVoidInvoice {
                state.refund_stray.notify_one();
            }
            Ok(Json(json!({"received": event.id, "outcome": applied.as_str()})))
        }
        Err(e) => {
            // a 5xx makes Stripe deliver it again later; nothing of it was committed
            count(&event.kind, "error");
            Err(e.into())
        }
    }
}
