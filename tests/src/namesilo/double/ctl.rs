//! `/_ctl`: what tests do behind the API's back: make accounts, read an account's request log,
//! set its balance, read and edit its domains as the registrar's own staff could, and put names
//! at "another registrar" (the registry). JSON, no key, loopback only; balances are decimal
//! strings (`"25.00"`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{Domain, Elsewhere, World};
use super::money::Money;
use super::{Shared, lock, names};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/accounts", routing::post(create_account))
        .route("/accounts/{key}", routing::get(account))
        .route("/accounts/{key}/requests", routing::get(requests))
        .route("/accounts/{key}/balance", routing::put(set_balance))
        .route("/accounts/{key}/domains/{domain}", routing::get(domain).patch(edit_domain))
        .route("/registry", routing::post(add_elsewhere))
        .layer(axum::middleware::from_fn(loopback_only))
}

/// A refusal: its status and why.
pub struct CtlError(StatusCode, String);

impl IntoResponse for CtlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type Answer = Result<(StatusCode, Json<Value>), CtlError>;

fn bad_request(why: impl Into<String>) -> CtlError {
    CtlError(StatusCode::BAD_REQUEST, why.into())
}

async fn loopback_only(ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request, next: Next) -> Response {
    if !peer.ip().is_loopback() {
        return CtlError(StatusCode::FORBIDDEN, "the control API answers loopback only".into()).into_response();
    }
    let what = format!("{} {}", request.method(), without_key(request.uri().path()));
    let response = next.run(request).await;
    eprintln!("namesilo-double: ctl {what} -> {}", response.status().as_u16());
    response
}

/// `/accounts/KEY/…` as `/accounts/…/…`, for the log.
fn without_key(path: &str) -> String {
    let mut segments: Vec<&str> = path.split('/').collect();
    if segments.get(1) == Some(&"accounts") && segments.len() > 2 {
        segments[2] = "…";
    }
    segments.join("/")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    key: String,
    balance: String,
}

async fn create_account(State(shared): State<Shared>, Json(new): Json<NewAccount>) -> Answer {
    let balance = Money::parse(&new.balance).map_err(|e| bad_request(e.to_string()))?;
    if new.key.trim().is_empty() {
        return Err(bad_request("the key is empty"));
    }
    if !lock(&shared).add_account(&new.key, balance) {
        return Err(CtlError(StatusCode::CONFLICT, "an account with this key exists".into()));
    }
    Ok((StatusCode::CREATED, Json(json!({"key": new.key, "balance": balance.to_string()}))))
}

fn no_account() -> CtlError {
    CtlError(StatusCode::NOT_FOUND, "no account has this key".into())
}

async fn account(State(shared): State<Shared>, Path(key): Path<String>) -> Answer {
    let mut world = lock(&shared);
    world.settle(Timestamp::now());
    let account = world.accounts.get(&key).ok_or_else(no_account)?;
    let domains: Vec<&String> = account.domains.keys().collect();
    Ok((StatusCode::OK, Json(json!({"balance": account.balance.to_string(), "domains": domains}))))
}

async fn requests(State(shared): State<Shared>, Path(key): Path<String>) -> Answer {
    let world = lock(&shared);
    let account = world.accounts.get(&key).ok_or_else(no_account)?;
    Ok((StatusCode::OK, Json(json!(account.requests))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBalance {
    balance: String,
}

async fn set_balance(State(shared): State<Shared>, Path(key): Path<String>, Json(new): Json<NewBalance>) -> Answer {
    let balance = Money::parse(&new.balance).map_err(|e| bad_request(e.to_string()))?;
    let mut world = lock(&shared);
    world.accounts.get_mut(&key).ok_or_else(no_account)?.balance = balance;
    Ok((StatusCode::OK, Json(json!({"balance": balance.to_string()}))))
}

fn domain_json(name: &str, d: &Domain) -> Value {
    json!({
        "domain": name,
        "created": d.created.to_string(),
        "expires": d.expires.to_string(),
        "locked": d.locked,
        "private": d.private,
        "autoRenew": d.auto_renew,
        "nameservers": d.nameservers,
        "contactId": d.contact_id,
    })
}

fn own_domain<'w>(world: &'w mut World, key: &str, name: &str) -> Result<&'w mut Domain, CtlError> {
    let account = world.accounts.get_mut(key).ok_or_else(no_account)?;
    let name = name.to_ascii_lowercase();
    account
        .domains
        .get_mut(&name)
        .ok_or_else(|| CtlError(StatusCode::NOT_FOUND, "the account has no such domain".into()))
}

async fn domain(State(shared): State<Shared>, Path((key, name)): Path<(String, String)>) -> Answer {
    let mut world = lock(&shared);
    world.settle(Timestamp::now());
    let domain = own_domain(&mut world, &key, &name)?;
    Ok((StatusCode::OK, Json(domain_json(&name.to_ascii_lowercase(), domain))))
}

/// An out-of-band change at the registrar; any field may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DomainEdit {
    nameservers: Option<Vec<String>>,
    locked: Option<bool>,
    private: Option<bool>,
    auto_renew: Option<bool>,
    expires: Option<String>,
}

async fn edit_domain(
    State(shared): State<Shared>,
    Path((key, name)): Path<(String, String)>,
    Json(edit): Json<DomainEdit>,
) -> Answer {
    let nameservers = edit.nameservers.as_deref().map(hostnames).transpose()?;
    let expires = edit.expires.as_deref().map(date).transpose()?;
    let mut world = lock(&shared);
    world.settle(Timestamp::now());
    let domain = own_domain(&mut world, &key, &name)?;
    if let Some(nameservers) = nameservers {
        domain.nameservers = nameservers;
    }
    domain.locked = edit.locked.unwrap_or(domain.locked);
    domain.private = edit.private.unwrap_or(domain.private);
    domain.auto_renew = edit.auto_renew.unwrap_or(domain.auto_renew);
    domain.expires = expires.unwrap_or(domain.expires);
    Ok((StatusCode::OK, Json(domain_json(&name.to_ascii_lowercase(), domain))))
}

/// A name registered at another registrar, with the auth code a transfer needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewElsewhere {
    domain: String,
    auth_code: String,
    expires: String,
    nameservers: Vec<String>,
}

async fn add_elsewhere(State(shared): State<Shared>, Json(new): Json<NewElsewhere>) -> Answer {
    let name =
        names::domain(&new.domain).ok_or_else(|| bad_request(format!("{:?} is not a domain name", new.domain)))?;
    let expires = date(&new.expires)?;
    if new.nameservers.is_empty() {
        return Err(bad_request("a registered name has nameservers"));
    }
    let nameservers = hostnames(&new.nameservers)?;
    let mut world = lock(&shared);
    if world.registry.contains_key(&name) || world.in_any_account(&name) {
        return Err(CtlError(StatusCode::CONFLICT, format!("{name} is registered already")));
    }
    world
        .registry
        .insert(name.clone(), Elsewhere { auth_code: new.auth_code, expires, nameservers: nameservers.clone() });
    Ok((StatusCode::CREATED, Json(json!({"domain": name, "expires": expires.to_string(), "nameservers": nameservers}))))
}

fn hostnames(given: &[String]) -> Result<Vec<String>, CtlError> {
    given.iter().map(|h| names::hostname(h).ok_or_else(|| bad_request(format!("{h:?} is not a hostname")))).collect()
}

fn date(text: &str) -> Result<Date, CtlError> {
    text.parse().map_err(|_| bad_request(format!("{text:?} is not a date like 2027-01-31")))
}

#[cfg(test)]
mod tests {
    use super::without_key;

    #[test]
    fn the_log_never_shows_an_account_key() {
        assert_eq!(without_key("/accounts/secret/domains/a.com"), "/accounts/…/domains/a.com");
        assert_eq!(without_key("/accounts"), "/accounts");
        assert_eq!(without_key("/registry"), "/registry");
    }
}
