//! The HTTP client of one ACME account: each request takes a turn of the issuer's throttle, and the
//! nonces the CA hands out are kept for the next requests.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::NEW_NONCE_PER_SECOND;
use crate::metrics::Metrics;
use crate::providers::throttle::{Limits, Throttle};

pub(super) fn nonce_throttle(metrics: &Arc<Metrics>) -> Throttle {
    let limits = Limits { requests_per_second: NEW_NONCE_PER_SECOND, max_in_flight: 1 };
    Throttle::new("acme_new_nonce", limits, Some(metrics.clone()))
}

/// How long a nonce the CA handed out is kept for a later request, at most.
const NONCE_KEPT_FOR: Duration = Duration::from_secs(30);
/// How many nonces are kept at most (the freshest).
const NONCES_KEPT: usize = 64;

/// The HTTP client of one account's calls: every request takes a turn of the issuer's throttle,
/// and the nonces the CA hands out with its answers are kept and handed to the next requests that
/// need one, instead of each asking `newNonce` for its own. The ACME client never sees a nonce
/// other than through a `newNonce` request (answered here from the kept ones when there is one, or
/// with the next one kept while it waits for its turn), so each nonce is used once. Real
/// `newNonce` requests also take a turn of `nonces`.
#[derive(Clone)]
pub(super) struct Transport {
    pub(super) http: reqwest::Client,
    pub(super) throttle: Throttle,
    pub(super) nonces: Throttle,
    /// Unused nonces and when they came, the freshest last.
    pub(super) pool: Arc<Mutex<Vec<(String, tokio::time::Instant)>>>,
    /// Woken when a nonce is kept: a request waiting for its turn to ask `newNonce` takes that
    /// one instead (a burst's first requests would otherwise each wait for a `newNonce` turn while
    /// the answers to the ones before bring nonces enough).
    pub(super) kept: Arc<tokio::sync::Notify>,
}

const REPLAY_NONCE: &str = "replay-nonce";

impl Transport {
    fn kept_nonce(&self) -> Option<String> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        pool.retain(|(_, at)| now.duration_since(*at) < NONCE_KEPT_FOR);
        pool.pop().map(|(nonce, _)| nonce)
    }

    fn keep_nonce(&self, nonce: String) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= NONCES_KEPT {
            pool.remove(0);
        }
        pool.push((nonce, tokio::time::Instant::now()));
        drop(pool);
        self.kept.notify_one();
    }

    /// A `newNonce` answer carrying `nonce`, made here.
    fn nonce_answer(nonce: String) -> Result<instant_acme::BytesResponse, instant_acme::Error> {
        let answer = axum::http::Response::builder()
            .status(axum::http::StatusCode::OK)
            .header(REPLAY_NONCE, nonce)
            .body(reqwest::Body::from(Vec::new()))
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
        Ok(answer.into())
    }

    /// Waits for a kept nonce or for a turn to ask `newNonce`, whichever comes first; the kept
    /// nonce, or `None` when it is our turn to ask.
    async fn kept_or_turn(&self) -> Option<String> {
        loop {
            let kept = self.kept.notified();
            tokio::pin!(kept);
            kept.as_mut().enable();
            if let Some(nonce) = self.kept_nonce() {
                return Some(nonce);
            }
            tokio::select! {
                () = &mut kept => {}
                turn = self.nonces.turn() => {
                    drop(turn);
                    return None;
                }
            }
        }
    }

    async fn send(
        self,
        request: axum::http::Request<instant_acme::BodyWrapper<axum::body::Bytes>>,
    ) -> Result<instant_acme::BytesResponse, instant_acme::Error> {
        let new_nonce = request.method() == axum::http::Method::HEAD;
        if new_nonce && let Some(nonce) = self.kept_or_turn().await {
            return Self::nonce_answer(nonce);
        }
        let (parts, body) = request.into_parts();
        let body = reqwest::Body::wrap(body);
        let _turn = self.throttle.turn().await;
        let sent =
            self.http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await;
        let mut answer = axum::http::Response::from(sent.map_err(|e| instant_acme::Error::Other(Box::new(e)))?);
        if !new_nonce
            && let Some(nonce) = answer.headers_mut().remove(REPLAY_NONCE)
            && let Ok(nonce) = nonce.to_str()
        {
            self.keep_nonce(nonce.to_owned());
        }
        Ok(answer.into())
    }
}

impl instant_acme::HttpClient for Transport {
    fn request(
        &self,
        request: axum::http::Request<instant_acme::BodyWrapper<axum::body::Bytes>>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<instant_acme::BytesResponse, instant_acme::Error>> + Send>> {
        Box::pin(self.clone().send(request))
    }
}
