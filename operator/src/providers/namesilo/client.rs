//! The transport to Namesilo: one GET per call with the key in the query string, throttled, timed
//! and counted; reads retried on transport errors, writes and paid calls sent once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;

use super::replies::{reply, reply_code, text};
use super::{Config, NamesiloError, Receipt, code};
use crate::metrics::Metrics;
use crate::providers::throttle::Throttle;
use crate::tls;

pub struct Namesilo {
    http: reqwest::Client,
    config: Config,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl std::fmt::Debug for Namesilo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namesilo").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How a call may be sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// Changes nothing: retried on transport errors.
    Read,
    /// Changes settings; sending it twice does no harm, but it is sent once.
    Write,
    /// Spends money: sent once, whatever happens.
    Paid,
}

impl Namesilo {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, NamesiloError> {
        tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| NamesiloError::Unreachable(e.without_url().to_string()))?;
        Ok(Self { http, config, metrics, throttle: Throttle::unlimited() })
    }

    /// Sends every request through `throttle`.
    pub fn with_throttle(self, throttle: Throttle) -> Self {
        Self { throttle, ..self }
    }

    async fn send_once(&self, operation: &'static str, params: &[(&str, String)]) -> Result<Value, NamesiloError> {
        let _turn = self.throttle.turn().await;
        let started = Instant::now();
        let result = async {
            let mut url = reqwest::Url::parse(&format!("{}/{operation}", self.config.api_url.trim_end_matches('/')))
                .map_err(|e| NamesiloError::Unreachable(format!("apiUrl: {e}")))?;
            url.query_pairs_mut()
                .extend_pairs([("version", "1"), ("type", "json"), ("key", self.config.api_key.as_str())])
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            let response = self
                .http
                .get(url)
                .send()
                .await
                // the URL holds the key
                .map_err(|e| NamesiloError::Unreachable(e.without_url().to_string()))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| NamesiloError::Unreachable(e.without_url().to_string()))?;
            if !status.is_success() {
                return Err(NamesiloError::Unreachable(format!("HTTP {status}")));
            }
            reply(operation, &bytes)
        }
        .await;
        let write = operation_writes(operation);
        self.metrics.provider_call("namesilo", operation, write, result.is_ok(), started.elapsed());
        result
    }

    pub(super) async fn send(
        &self,
        call: Call,
        operation: &'static str,
        params: &[(&str, String)],
    ) -> Result<Value, NamesiloError> {
        if call != Call::Read {
            return self.send_once(operation, params).await;
        }
        (|| self.send_once(operation, params))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(3)
                    .with_jitter(),
            )
            .when(NamesiloError::is_transient)
            .await
    }

    /// A state change where "already in that state" is success.
    pub(super) async fn toggle(&self, operation: &'static str, domain: &str) -> Result<(), NamesiloError> {
        match self.send(Call::Write, operation, &[("domain", domain.to_owned())]).await {
            Ok(_) => Ok(()),
            Err(e) if e.code().is_some_and(code::is_already_in_state) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn paid(
        &self,
        operation: &'static str,
        params: &[(&str, String)],
    ) -> Result<Receipt, NamesiloError> {
        let reply = self.send(Call::Paid, operation, params).await?;
        Ok(Receipt {
            code: reply_code(&reply).unwrap_or(300),
            message: text(&reply, "message"),
            amount: text(&reply, "order_amount"),
        })
    }
}

fn operation_writes(operation: &str) -> bool {
    !matches!(operation, "getDomainInfo" | "checkRegisterAvailability" | "checkTransferStatus" | "listDomains")
}
