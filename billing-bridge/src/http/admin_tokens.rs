//! Admin API tokens, managed by admins: `GET /v1/admin/tokens` (name, role, created, last used,
//! expiry and revocation; never the secret nor its hash), `POST /v1/admin/tokens/{id}/revoke` and
//! `POST /v1/admin/tokens/{id}/expire {"at"?}` (now when no time is given). A revoked or expired
//! token stays so; each change is audited with the actor.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::super::ApiError;
use super::{Reply, Shared, require, to_json, uuid};
use crate::ledger::tokens::{self, Listed, Role};
use crate::ledger::{LedgerError, audit};

pub(super) async fn list(State(s): Shared, headers: HeaderMap) -> Reply {
    require(&s, &headers, Role::Admin).await?;
    to_json(json!({"tokens": tokens::list(&s.pool).await?}))
}

/// Why a token was not changed: it is unknown (404) or ended already (409).
async fn unchanged(s: &super::AppState, id: uuid::Uuid) -> ApiError {
    match tokens::get(&s.pool, id).await {
        Ok(Listed { revoked_at: Some(_), .. }) => {
            ApiError::new(StatusCode::CONFLICT, "TokenRevoked", format!("token {id} is revoked already"))
        }
        Ok(_) => ApiError::new(StatusCode::CONFLICT, "TokenExpired", format!("token {id} has expired already")),
        Err(e) => e.into(),
    }
}

pub(super) async fn revoke(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let who = require(&s, &headers, Role::Admin).await?;
    let id = uuid(&id)?;
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let Some(token) = tokens::revoke_id(&mut *tx, id).await? else { return Err(unchanged(&s, id).await) };
    audit::record(&mut *tx, &who.name, "token.revoke", "token", &id.to_string(), json!({"name": token.name})).await?;
    tx.commit().await.map_err(LedgerError::from)?;
    to_json(token)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expire {
    at: Option<DateTime<Utc>>,
}

pub(super) async fn expire(State(s): Shared, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Reply {
    let who = require(&s, &headers, Role::Admin).await?;
    let asked: Expire = if body.iter().all(u8::is_ascii_whitespace) {
        Expire::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidRequest", e.to_string()))?
    };
    let id = uuid(&id)?;
    let at = asked.at.unwrap_or_else(Utc::now);
    let mut tx = s.pool.begin().await.map_err(LedgerError::from)?;
    let Some(token) = tokens::expire_id(&mut *tx, id, at).await? else { return Err(unchanged(&s, id).await) };
    audit::record(
        &mut *tx,
        &who.name,
        "token.expire",
        "token",
        &id.to_string(),
        json!({"name": token.name, "expiresAt": at}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    to_json(token)
}
