//! The server's answers: an HTTP code with a JSON body, and the Kubernetes `Status` bodies of its
//! failures.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::paths::Target;

/// One answer: the HTTP code and the JSON body.
pub(super) type Reply = (StatusCode, Value);

pub(super) fn reason_of(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

pub(super) fn details(target: &Target, name: &str) -> Value {
    json!({"name": name, "group": target.group, "kind": target.plural})
}

/// A Kubernetes `Status` failure body.
pub(super) fn failure(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Reply {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        status["details"] = d;
    }
    (code, status)
}

pub(super) fn not_found(target: &Target, name: &str) -> Reply {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", target.resource()),
        Some(details(target, name)),
    )
}

pub(super) fn invalid(target: &Target, name: &str, why: &str) -> Reply {
    failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{} \"{name}\" is invalid: {why}", target.resource()),
        Some(details(target, name)),
    )
}

pub(super) fn bad_request(why: &str) -> Reply {
    failure(StatusCode::BAD_REQUEST, "BadRequest", why.to_owned(), None)
}
