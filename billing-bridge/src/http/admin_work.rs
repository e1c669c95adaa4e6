//! The admin view of failing work: each item a worker tried and could not do yet (an outbox entry,
//! a paid invoice, a subscription's activation or lifecycle step), with its error, its attempts and
//! when it is tried next. Every role may read it, read-only and support included.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Reply, Shared, require, to_json};
use crate::ledger::tokens::Role;
use crate::ledger::work_attempts::{self, Worker};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    /// outbox, fulfilment, activation or lifecycle
    worker: Option<String>,
    customer: Option<Uuid>,
}

/// `GET /v1/admin/work/failing[?worker=…][&customer=<id>]`: the longest failing first.
pub(super) async fn list_failing(State(s): Shared, headers: HeaderMap, Query(f): Query<Filter>) -> Reply {
    require(&s, &headers, Role::ReadOnly).await?;
    let worker = f.worker.as_deref().map(str::parse::<Worker>).transpose()?;
    to_json(json!({"failing": work_attempts::failing(&s.pool, worker, f.customer).await?}))
}
