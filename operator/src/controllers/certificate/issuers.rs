//! The ACME issuers of the operator configuration, each an account at its CA. An account is
//! registered the first time a Certificate needs it and kept in the Secret the configuration names,
//! so every later start (and every replica) uses the same account.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use mpanel_crds::reasons;

use super::keys;
use crate::config::{ACME_LIMITS, AcmeConfig, IssuerConfig};
use crate::metrics::Metrics;
use crate::providers::acme::{self, Acme, AcmeApi, AcmeError};
use crate::providers::throttle::Throttle;

const CREDENTIALS_KEY: &str = "credentials";

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("issuer {name:?} is not configured (configured: {known})")]
    Unknown { name: String, known: String },
    #[error("issuer {name:?}: {source}")]
    Acme { name: String, source: AcmeError },
    #[error("issuer {name:?}: Secret {secret}: {message}")]
    Secret { name: String, secret: String, message: String },
}

impl IssuerError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => reasons::UNKNOWN_ISSUER.name,
            Self::Acme { source, .. } => source.reason(),
            Self::Secret { .. } => reasons::ISSUER_SECRET_UNUSABLE.name,
        }
    }
}

struct Issuer {
    config: IssuerConfig,
    account: tokio::sync::Mutex<Option<Arc<Acme>>>,
    /// The limits on the calls to this issuer's CA.
    throttle: Throttle,
}

/// The ACME account of each configured issuer, registered when first needed.
pub trait AcmeAccounts: Send + Sync + 'static {
    type Account: AcmeApi + Send + Sync + 'static;

    /// Fails for a name the configuration does not have.
    fn check(&self, name: &str) -> Result<(), IssuerError>;

    /// The account of issuer `name`.
    fn account(&self, name: &str) -> impl Future<Output = Result<Arc<Self::Account>, IssuerError>> + Send;
}

impl AcmeAccounts for Issuers {
    type Account = Acme;

    fn check(&self, name: &str) -> Result<(), IssuerError> {
        self.get(name).map(drop)
    }

    async fn account(&self, name: &str) -> Result<Arc<Acme>, IssuerError> {
        self.account(name).await
    }
}

pub struct Issuers {
    client: Client,
    metrics: Arc<Metrics>,
    issuers: BTreeMap<String, Issuer>,
}

impl Issuers {
    pub fn new(config: &AcmeConfig, client: Client, metrics: Arc<Metrics>) -> Self {
        let issuers = config
            .issuers
            .iter()
            .map(|(name, c)| {
                let throttle = Throttle::new("acme", config.rate_limit.or(ACME_LIMITS), Some(metrics.clone()));
                (name.clone(), Issuer { config: c.clone(), account: tokio::sync::Mutex::default(), throttle })
            })
            .collect();
        Self { client, metrics, issuers }
    }

    fn get(&self, name: &str) -> Result<&Issuer, IssuerError> {
        self.issuers.get(name).ok_or_else(|| IssuerError::Unknown {
            name: name.to_owned(),
            known: self.issuers.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The account of issuer `name`: from its Secret, or registered now and stored there.
    async fn account(&self, name: &str) -> Result<Arc<Acme>, IssuerError> {
        let issuer = self.get(name)?;
        let mut cached = issuer.account.lock().await;
        if let Some(acme) = cached.as_ref() {
            return Ok(acme.clone());
        }
        let config = &issuer.config;
        let secret_name = format!("{}/{}", config.account_secret_ref.namespace, config.account_secret_ref.name);
        let secret_error =
            |message: String| IssuerError::Secret { name: name.to_owned(), secret: secret_name.clone(), message };
        let acme_error = |source| IssuerError::Acme { name: name.to_owned(), source };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &config.account_secret_ref.namespace);
        let acme_config = self.acme_config(config).await.map_err(&secret_error)?;

        let stored = secrets.get_opt(&config.account_secret_ref.name).await.map_err(|e| secret_error(e.to_string()))?;
        let credentials = stored.as_ref().and_then(|s| s.data.as_ref()?.get(CREDENTIALS_KEY).cloned());
        let acme = match credentials {
            Some(bytes) => {
                let json = String::from_utf8(bytes.0).map_err(|e| secret_error(e.to_string()))?;
                Acme::restore(&acme_config, &json, self.metrics.clone(), issuer.throttle.clone())
                    .await
                    .map_err(acme_error)?
            }
            None if stored.is_some() => return Err(secret_error(format!("has no key {CREDENTIALS_KEY:?}"))),
            None => {
                let (acme, json) = Acme::register(&acme_config, self.metrics.clone(), issuer.throttle.clone())
                    .await
                    .map_err(acme_error)?;
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(config.account_secret_ref.name.clone()),
                        labels: Some(keys::managed_labels(BTreeMap::new())),
                        ..ObjectMeta::default()
                    },
                    data: Some(BTreeMap::from([(CREDENTIALS_KEY.to_owned(), ByteString(json.into_bytes()))])),
                    ..Secret::default()
                };
                secrets.create(&PostParams::default(), &secret).await.map_err(|e| secret_error(e.to_string()))?;
                tracing::info!(issuer = name, secret = %secret_name, "registered an ACME account");
                acme
            }
        };
        let acme = Arc::new(acme);
        *cached = Some(acme.clone());
        Ok(acme)
    }

    async fn acme_config(&self, config: &IssuerConfig) -> Result<acme::Config, String> {
        let external_account = match &config.external_account_binding {
            None => None,
            Some(eab) => {
                let r = &eab.hmac_key_secret_ref;
                let secret = Api::<Secret>::namespaced(self.client.clone(), &r.namespace)
                    .get(&r.name)
                    .await
                    .map_err(|e| format!("reading the EAB key {}/{}: {e}", r.namespace, r.name))?;
                let encoded = secret
                    .data
                    .and_then(|d| d.get(&r.key).cloned())
                    .ok_or_else(|| format!("Secret {}/{} has no key {}", r.namespace, r.name, r.key))?;
                let text = String::from_utf8_lossy(&encoded.0).trim().trim_end_matches('=').to_owned();
                let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .map_err(|e| format!("the EAB HMAC key is not base64url: {e}"))?;
                Some((eab.key_id.clone(), key))
            }
        };
        Ok(acme::Config {
            directory_url: config.directory_url.clone(),
            contact: config.email.iter().map(|e| format!("mailto:{e}")).collect(),
            ca_bundle: config.ca_bundle.as_ref().map(Into::into),
            external_account,
            timeout: Duration::from_secs(config.timeout_seconds),
        })
    }
}
