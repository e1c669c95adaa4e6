//! What anyone may call: health, the catalog and checkout; and metrics, with a token. The checkout's
//! limits count the client by its connection's peer address, or by `X-Forwarded-For` when that
//! peer is a proxy the settings trust.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::{ApiError, AppState, bad_body};
use crate::checkout::{self, Attempt, CheckoutError, Limits, Purchase, Shop};
use crate::ledger::catalog;
use crate::ledger::tokens::Role;
use crate::metrics::OutcomeLabels;

/// Whether the ledger answers: `ok`, or 503 `unavailable` (the cause goes to the log only).
pub async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    match crate::ledger::answers(&state.pool).await {
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

/// Where the checkout's settings come from (read once, when the router is made).
pub const LIMIT_EMAIL_ENV: &str = "MPANEL_BRIDGE_CHECKOUT_LIMIT_EMAIL";
pub const LIMIT_ADDRESS_ENV: &str = "MPANEL_BRIDGE_CHECKOUT_LIMIT_ADDRESS";
pub const LIMIT_WINDOW_ENV: &str = "MPANEL_BRIDGE_CHECKOUT_LIMIT_WINDOW_SECONDS";
pub const TRUSTED_PROXIES_ENV: &str = "MPANEL_BRIDGE_TRUSTED_PROXIES";

/// The longest Idempotency-Key taken.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// How the checkout limits clients, and whom it believes about a client's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutSettings {
    pub limits: Limits,
    /// The proxies in front of the bridge (addresses or blocks): only a connection from one of them
    /// may name the client in `X-Forwarded-For`. None by default: the connection's peer is the client.
    pub trusted_proxies: Vec<Block>,
}

impl CheckoutSettings {
    /// From `MPANEL_BRIDGE_CHECKOUT_LIMIT_EMAIL` (default 5), `…_LIMIT_ADDRESS` (20),
    /// `…_LIMIT_WINDOW_SECONDS` (600) and `MPANEL_BRIDGE_TRUSTED_PROXIES` (comma-separated addresses
    /// or CIDR blocks). A value that does not parse is logged and its default kept (no proxy trusted).
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Limits::default();
        let number = |key: &str, default: u64| match var(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                tracing::error!(setting = key, value = %v, default, "not a whole number; the default is used");
                default
            }),
        };
        let limits = Limits {
            per_email: number(LIMIT_EMAIL_ENV, defaults.per_email.into()).try_into().unwrap_or(u32::MAX),
            per_address: number(LIMIT_ADDRESS_ENV, defaults.per_address.into()).try_into().unwrap_or(u32::MAX),
            window: Duration::from_secs(number(LIMIT_WINDOW_ENV, defaults.window.as_secs()).max(1)),
        };
        let trusted_proxies = var(TRUSTED_PROXIES_ENV)
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                s.parse()
                    .map_err(|e| tracing::error!(setting = TRUSTED_PROXIES_ENV, value = s, error = %e, "not trusted"))
                    .ok()
            })
            .collect();
        Self { limits, trusted_proxies }
    }
}

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Block {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let network: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(|| format!("{p:?} is not a prefix length"))?
            }
        };
        Ok(Self { network, prefix })
    }
}

impl Block {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client of a request that came over a connection from `peer`: `peer` itself, unless it is a
/// trusted proxy; then the nearest address in `X-Forwarded-For`, read from the right, that is not
/// a trusted proxy (what is left of it was written by the client and proves nothing).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Block]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|b| b.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split(','))
        .map(str::trim)
        .collect();
    for hop in hops.into_iter().rev() {
        let parsed = hop.parse::<IpAddr>().or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()));
        // a hop that is not an address: the last trusted proxy is all that is known
        let Ok(ip) = parsed else { return client };
        client = ip.to_canonical();
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// A client address as the limits count it: an IPv4 address, or the /64 an IPv6 address is in
/// (one subscriber's network).
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters, else a 400.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_invalid",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// `POST /v1/checkout`: a new order and its Checkout Session (201), the answer an earlier request
/// with the same `Idempotency-Key` got, or a refusal (429 with `Retry-After` over the limits).
pub async fn checkout(
    State(state): State<Arc<AppState>>,
    Extension(settings): Extension<Arc<CheckoutSettings>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<Purchase>, JsonRejection>,
) -> Response {
    let count = |outcome| state.metrics.checkouts.get_or_create(&OutcomeLabels { outcome }).inc();
    let request = body.map_err(bad_body).and_then(|Json(purchase)| Ok((purchase, idempotency_key(&headers)?)));
    let (purchase, key) = match request {
        Ok(request) => request,
        Err(e) => {
            count("refused");
            return e.into_response();
        }
    };
    let Some(Extension(ConnectInfo(peer))) = peer else {
        // `http::router` always gives it; without it no client could be told from another
        tracing::error!("a checkout came without its connection's peer address; refused");
        count("error");
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "client_address_unknown", "internal error")
            .into_response();
    };
    let client = address_key(client_ip(peer.ip(), &headers, &settings.trusted_proxies));
    let shop = Shop {
        pool: &state.pool,
        tenant: state.tenant,
        stripe: &state.stripe,
        registrar: state.registrar.as_deref(),
        urls: &state.return_urls,
        kube: state.kube.as_ref(),
    };
    let attempt = Attempt { purchase: &purchase, idempotency_key: key.as_deref(), client: &client };
    match checkout::checkout(&shop, &settings.limits, &attempt).await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            count(match () {
                _ if answer.replayed => "replayed",
                _ if status.is_success() => "placed",
                _ => "error",
            });
            (status, Json(answer.body)).into_response()
        }
        Err(e) => {
            let retry_after = match &e {
                CheckoutError::Limited { retry_after } => Some(retry_after.as_secs().max(1)),
                CheckoutError::InProgress => Some(1),
                _ => None,
            };
            let e = ApiError::from(e);
            count(match () {
                _ if e.status == StatusCode::TOO_MANY_REQUESTS => "limited",
                _ if e.status.is_client_error() => "refused",
                _ => "error",
            });
            let mut response = e.into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let headers = forwarded(&["203.0.113.9, 198.51.100.7"]);
        assert_eq!(client_ip(ip("192.0.2.1"), &headers, &[]), ip("192.0.2.1"), "no proxy trusted");
        let proxies: Vec<Block> = ["10.0.0.0/8", "192.0.2.1"].iter().filter_map(|s| s.parse().ok()).collect();
        assert_eq!(client_ip(ip("192.0.2.2"), &headers, &proxies), ip("192.0.2.2"), "not from a proxy");
        assert_eq!(client_ip(ip("192.0.2.1"), &headers, &proxies), ip("198.51.100.7"), "the nearest hop");
        // what the client wrote left of the proxies' hops is not believed
        let chained = forwarded(&["1.1.1.1, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(client_ip(ip("10.9.9.9"), &chained, &proxies), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.9.9.9"), &forwarded(&["junk"]), &proxies), ip("10.9.9.9"));
        assert_eq!(client_ip(ip("10.9.9.9"), &HeaderMap::new(), &proxies), ip("10.9.9.9"));
        assert_eq!(client_ip(ip("::ffff:192.0.2.1"), &headers, &proxies), ip("198.51.100.7"), "v4-mapped");
    }

    #[test]
    fn blocks_parse_and_contain() {
        let block: Block = "2001:db8::/32".parse().unwrap_or(Block { network: ip("::"), prefix: 128 });
        assert!(block.contains(ip("2001:db8:1::5")));
        assert!(!block.contains(ip("2001:db9::5")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert!("0.0.0.0/0".parse::<Block>().is_ok_and(|b| b.contains(ip("8.8.8.8"))));
        assert!("10.0.0.0/33".parse::<Block>().is_err());
        assert!("proxy.example".parse::<Block>().is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(address_key(ip("2001:db8:a:b:1:2:3:4")), "2001:db8:a:b::/64");
        assert_eq!(address_key(ip("2001:db8:a:b:ffff::1")), "2001:db8:a:b::/64");
        assert_eq!(address_key(ip("::ffff:198.51.100.7")), "198.51.100.7");
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert("idempotency-key", v);
            }
            idempotency_key(&h).map_err(|e| e.code)
        };
        assert_eq!(idempotency_key(&HeaderMap::new()).map_err(|e| e.code), Ok(None));
        assert_eq!(with("order-7"), Ok(Some("order-7".to_owned())));
        assert_eq!(with(&"k".repeat(255)).map(|k| k.map(|k| k.len())), Ok(Some(255)));
        assert_eq!(with(&"k".repeat(256)), Err("idempotency_key_invalid"));
        assert_eq!(with(""), Err("idempotency_key_invalid"));
        assert_eq!(with("two words"), Err("idempotency_key_invalid"));
    }

    #[test]
    fn settings_come_from_the_environment_with_defaults() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(CheckoutSettings::from_vars(vars(&[])), CheckoutSettings::default());
        let set = CheckoutSettings::from_vars(vars(&[
            (LIMIT_EMAIL_ENV, "2"),
            (LIMIT_ADDRESS_ENV, "0"),
            (LIMIT_WINDOW_ENV, "60"),
            (TRUSTED_PROXIES_ENV, "10.0.0.0/8, nonsense,::1"),
        ]));
        assert_eq!(set.limits, Limits { per_email: 2, per_address: 0, window: Duration::from_secs(60) });
        assert_eq!(set.trusted_proxies.len(), 2, "the entry that does not parse is not trusted");
        let bad = CheckoutSettings::from_vars(vars(&[(LIMIT_EMAIL_ENV, "many")]));
        assert_eq!(bad.limits, Limits::default());
    }
}
