//! A double of Namesilo's domain API, built from its API reference: the operations the operator
//! uses (register, renew, transfer, domain info, nameservers, lock, privacy, auto-renewal,
//! availability, balance), Namesilo's reply codes and detail texts, and its JSON shapes (its XML
//! converted; see `xmljson`). It answers `type=json` only: `type=xml` gets 105 "Invalid API type".
//!
//! Each API key is an account of its own (balance, domains, transfers, request log), so tests can
//! run side by side; names held at other registrars are one shared registry. Tests steer it through
//! `/_ctl` (see `ctl`).

mod api;
mod code;
mod ctl;
mod dates;
mod model;
mod money;
mod names;
mod ops;
mod params;
mod prices;
mod reply;
mod xmljson;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::{Router, routing};
use jiff::SignedDuration;

pub use money::{BadAmount, Money};

type Shared = Arc<Mutex<World>>;
use model::World;

fn lock(shared: &Shared) -> MutexGuard<'_, World> {
    // a handler that panicked left nothing half-done that matters to a test double
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the double starts: its first account, and how long a transfer waits at the registry.
pub struct Config {
    pub key: String,
    pub balance: Money,
    pub transfer_delay: Duration,
}

/// The double's routes: `/api/{operation}` and `/_ctl/…`. Serve it with connect info
/// (`into_make_service_with_connect_info::<SocketAddr>`).
pub fn app(config: &Config) -> Router {
    let delay = SignedDuration::try_from(config.transfer_delay).unwrap_or(SignedDuration::MAX);
    let mut world = World::new(delay);
    world.add_account(&config.key, config.balance);
    let shared: Shared = Arc::new(Mutex::new(world));
    Router::new()
        .route("/api/{operation}", routing::get(api::operation).post(api::operation))
        .route("/api", routing::get(api::no_operation).post(api::no_operation))
        .route("/api/", routing::get(api::no_operation).post(api::no_operation))
        .nest("/_ctl", ctl::router())
        .with_state(shared)
}

/// Serves the double on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(config).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
