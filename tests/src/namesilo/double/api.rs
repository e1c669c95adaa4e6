//! `/api/{operation}`: Namesilo's envelope checks (version, type, key, operation), the operation,
//! the account's request log, and the JSON answer, always with HTTP 200.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Shared;
use super::code::Code;
use super::model::World;
use super::ops::{self, Call};
use super::params::Params;
use super::reply::Reply;

pub async fn operation(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(operation): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Json<Value> {
    respond(&shared, peer, Some(&operation), pairs)
}

/// `/api` without an operation.
pub async fn no_operation(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Json<Value> {
    respond(&shared, peer, None, pairs)
}

fn respond(shared: &Shared, peer: SocketAddr, operation: Option<&str>, pairs: Vec<(String, String)>) -> Json<Value> {
    let shown: Vec<String> = pairs.iter().filter(|(k, _)| k != "key").map(|(k, v)| format!("{k}={v}")).collect();
    let reply = answer(&mut super::lock(shared), operation, pairs, Timestamp::now());
    let operation = operation.unwrap_or_default();
    eprintln!("namesilo-double: api {operation} {} -> {}", shown.join(" "), reply.code.number());
    Json(json!({"request": {"operation": operation, "ip": peer.ip().to_string()}, "reply": reply.to_json()}))
}

/// Checks the envelope in Namesilo's order, runs the operation, and logs the call in the caller's
/// account when the key names one.
pub fn answer(world: &mut World, operation: Option<&str>, pairs: Vec<(String, String)>, now: Timestamp) -> Reply {
    let params = Params::new(pairs);
    let key = params.get("key").map(str::to_owned);
    let reply = run(world, operation, &params, key.as_deref(), now).unwrap_or_else(|early| early);
    if let Some(account) = key.and_then(|k| world.accounts.get_mut(&k)) {
        let logged = params.all().iter().filter(|(k, _)| *k != "key").map(|(k, v)| (k.clone(), v.clone())).collect();
        account.log(operation.unwrap_or_default(), logged, reply.code.number());
    }
    reply
}

fn run(
    world: &mut World,
    operation: Option<&str>,
    params: &Params,
    key: Option<&str>,
    now: Timestamp,
) -> Result<Reply, Reply> {
    let refuse = |code| Err(Reply::new(code));
    match params.get("version") {
        None => return refuse(Code::NoVersion),
        Some(v) if v != "1" => return refuse(Code::InvalidVersion),
        Some(_) => {}
    }
    // Namesilo also speaks XML; the double answers JSON only and calls XML an invalid type
    match params.get("type") {
        None => return refuse(Code::NoType),
        Some(t) if t != "json" => return refuse(Code::InvalidType),
        Some(_) => {}
    }
    let Some(key) = key else { return refuse(Code::NoApiKey) };
    if !world.accounts.contains_key(key) {
        return refuse(Code::InvalidApiKey);
    }
    let Some(name) = operation.filter(|o| !o.is_empty()) else { return refuse(Code::NoOperation) };
    let Some(found) = ops::find(name) else { return refuse(Code::InvalidOperation) };
    Ok(ops::run(found, &mut Call { world, key, params, now }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namesilo::double::money::Money;
    use jiff::SignedDuration;

    fn world() -> World {
        let mut world = World::new(SignedDuration::from_secs(2));
        world.add_account("good", Money::from_cents(100_000));
        world
    }

    fn code(world: &mut World, operation: Option<&str>, query: &str) -> u16 {
        let pairs =
            query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        answer(world, operation, pairs, Timestamp::UNIX_EPOCH).code.number()
    }

    #[test]
    fn the_envelope_is_checked_in_namesilos_order() {
        let w = &mut world();
        let op = Some("getAccountBalance");
        assert_eq!(code(w, op, "type=json&key=good"), 102);
        assert_eq!(code(w, op, "version=2&type=json&key=good"), 103);
        assert_eq!(code(w, op, "version=1&key=good"), 104);
        assert_eq!(code(w, op, "version=1&type=xml&key=good"), 105);
        assert_eq!(code(w, op, "version=1&type=json"), 109);
        assert_eq!(code(w, op, "version=1&type=json&key=bad"), 110);
        assert_eq!(code(w, None, "version=1&type=json&key=good"), 106);
        assert_eq!(code(w, Some("dnsListRecords"), "version=1&type=json&key=good"), 107);
        assert_eq!(code(w, Some("getDomainInfo"), "version=1&type=json&key=good"), 108);
        assert_eq!(code(w, op, "version=1&type=json&key=good"), 300);
    }

    #[test]
    fn calls_are_logged_in_the_callers_account_without_the_key() {
        let w = &mut world();
        code(w, Some("getDomainInfo"), "version=1&type=json&key=good&domain=a.com");
        code(w, Some("getDomainInfo"), "version=1&type=json&key=bad&domain=a.com");
        let log = &w.accounts["good"].requests;
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].seq, log[0].operation.as_str(), log[0].code), (1, "getDomainInfo", 200));
        assert_eq!(log[0].params.get("domain").map(String::as_str), Some("a.com"));
        assert!(!log[0].params.contains_key("key"));
    }
}
