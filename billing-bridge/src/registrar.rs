//! What the registrar (Namesilo) says about a name before anyone pays for it: whether it is in the
//! account already and whether it can be registered. Reads only; the operator does the buying.
//!
//! Namesilo takes the API key in the query string, so a request URL is never logged or put in an
//! error. Its JSON is its XML converted: a list of one comes as a bare object, and the answer is
//! HTTP 200 with the outcome in `reply.code` (300–302 success, 200 "not in your account").

use std::time::Duration;

use serde_json::Value;

/// `MPANEL_BRIDGE_NAMESILO_URL`: the API base, e.g. `https://www.namesilo.com/api`.
pub const URL_ENV: &str = "MPANEL_BRIDGE_NAMESILO_URL";
/// `NAMESILO_API_KEY`: the account's API key (environment only).
pub const KEY_ENV: &str = "NAMESILO_API_KEY";

const NOT_IN_ACCOUNT: u16 = 200;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RegistrarError {
    #[error("the registrar could not be reached: {0}")]
    Unreachable(String),
    #[error("the registrar answered {operation} with {code} {detail}")]
    Reply { operation: &'static str, code: u16, detail: String },
    #[error("the registrar's answer to {operation} could not be read: {detail}")]
    BadResponse { operation: &'static str, detail: String },
    #[error("{URL_ENV} and {KEY_ENV} must be set together")]
    HalfConfigured,
}

impl RegistrarError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "registrar_unreachable",
            Self::Reply { .. } => "registrar_refused",
            Self::BadResponse { .. } => "registrar_bad_response",
            Self::HalfConfigured => "registrar_misconfigured",
        }
    }
}

/// Where a name stands for a new purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Already in this registrar account.
    InAccount,
    /// Free to register.
    Available,
    /// Registered elsewhere (or reserved).
    Taken,
    /// Not a name the registrar can register.
    Invalid,
}

/// A read-only Namesilo client.
pub struct Registrar {
    http: reqwest::Client,
    api_url: String,
    key: String,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the key
        f.debug_struct("Registrar").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

impl Registrar {
    pub fn new(api_url: &str, key: &str) -> Result<Self, RegistrarError> {
        // already installed by `main`; a second install is refused and changes nothing
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| RegistrarError::Unreachable(e.without_url().to_string()))?;
        Ok(Self { http, api_url: api_url.trim_end_matches('/').to_owned(), key: key.to_owned() })
    }

    /// From `MPANEL_BRIDGE_NAMESILO_URL` and `NAMESILO_API_KEY`; `None` when neither is set.
    pub fn from_env() -> Result<Option<Self>, RegistrarError> {
        let get = |key| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        match (get(URL_ENV), get(KEY_ENV)) {
            (Some(url), Some(key)) => Self::new(&url, key.trim()).map(Some),
            (None, None) => Ok(None),
            _ => Err(RegistrarError::HalfConfigured),
        }
    }

    /// Whether `name` is in the account, free, taken or invalid.
    pub async fn standing(&self, name: &str) -> Result<Standing, RegistrarError> {
        if self.in_account(name).await? {
            return Ok(Standing::InAccount);
        }
        let reply = self.call("checkRegisterAvailability", &[("domains", name)]).await?;
        Ok(availability(&reply, name))
    }

    async fn in_account(&self, name: &str) -> Result<bool, RegistrarError> {
        match self.call("getDomainInfo", &[("domain", name)]).await {
            Ok(_) => Ok(true),
            Err(RegistrarError::Reply { code: NOT_IN_ACCOUNT, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn call(&self, operation: &'static str, params: &[(&str, &str)]) -> Result<Value, RegistrarError> {
        let mut url = reqwest::Url::parse(&format!("{}/{operation}", self.api_url))
            .map_err(|e| RegistrarError::Unreachable(format!("{URL_ENV}: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs([("version", "1"), ("type", "json"), ("key", self.key.as_str())])
            .extend_pairs(params.iter().copied());
        // the URL holds the key: errors drop it
        let response =
            self.http.get(url).send().await.map_err(|e| RegistrarError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| RegistrarError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(RegistrarError::Unreachable(format!("HTTP {status}")));
        }
        reply(operation, &body)
    }
}

/// The `reply` of a successful answer, or the error its code stands for.
fn reply(operation: &'static str, body: &[u8]) -> Result<Value, RegistrarError> {
    let bad = |detail: String| RegistrarError::BadResponse { operation, detail };
    let answer: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let reply = answer.get("reply").cloned().ok_or_else(|| bad("no reply".into()))?;
    let code = match reply.get("code") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("the reply has no code".into()))?;
    if (300..=302).contains(&code) {
        return Ok(reply);
    }
    let detail = reply.get("detail").and_then(Value::as_str).unwrap_or_default().to_owned();
    Err(RegistrarError::Reply { operation, code, detail })
}

/// Which of `checkRegisterAvailability`'s lists names `name`; a name in none of them is taken.
fn availability(reply: &Value, name: &str) -> Standing {
    let listed =
        |key: &str| reply.get(key).is_some_and(|list| members(list).iter().any(|n| n.eq_ignore_ascii_case(name)));
    if listed("available") {
        Standing::Available
    } else if listed("invalid") {
        Standing::Invalid
    } else {
        Standing::Taken
    }
}

/// The names in a list that may be an array, one bare member, or either wrapped in `{"domain": …}`;
/// a member is a name or an object holding it under `domain`.
fn members(list: &Value) -> Vec<String> {
    match list {
        Value::Array(items) => items.iter().flat_map(members).collect(),
        Value::String(s) => vec![s.trim().trim_end_matches('.').to_owned()],
        Value::Object(map) => map.get("domain").map(members).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(reply: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"request": {"operation": "x"}, "reply": reply})).unwrap_or_default()
    }

    #[test]
    fn availability_reads_lists_of_one_many_and_attributed_members() {
        let one = json!({"code": 300, "available": {"domain": {"price": 10.95, "domain": "free.com"}}});
        assert_eq!(availability(&one, "free.com"), Standing::Available);
        assert_eq!(availability(&one, "other.com"), Standing::Taken);
        let many = json!({"code": 300, "unavailable": [{"domain": "a.com"}, {"domain": "b.com"}], "invalid": {"domain": "bad"}});
        assert_eq!(availability(&many, "b.com"), Standing::Taken);
        assert_eq!(availability(&many, "bad"), Standing::Invalid);
        let bare = json!({"code": 300, "available": {"domain": "Free.COM"}});
        assert_eq!(availability(&bare, "free.com"), Standing::Available);
    }

    #[test]
    fn replies_keep_the_code_and_not_in_account_is_told_apart() {
        assert!(reply("getDomainInfo", &body(json!({"code": "300", "detail": "success"}))).is_ok());
        let e = reply("getDomainInfo", &body(json!({"code": 200, "detail": "Domain is not active"}))).unwrap_err();
        assert!(matches!(e, RegistrarError::Reply { code: NOT_IN_ACCOUNT, .. }));
        assert!(matches!(reply("x", b"<html>"), Err(RegistrarError::BadResponse { .. })));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let r = Registrar::new("http://127.0.0.1:1/api", "s3cret-key").expect("a client");
        assert!(!format!("{r:?}").contains("s3cret-key"));
    }
}
