//! The EPP auth code of a domain transfer, taken at checkout. It goes to one place only: the Secret
//! `${authCodeSecret}` (`render::auth_code_secret`) in the customer's namespace, written before the
//! Checkout Session is made, which the Domain's `registration.authCodeSecretRef` names. It is never
//! logged, never in an error, and never in the ledger: not in the order, its audit row or the
//! Idempotency-Key's request digest (which sees only that a code was given), nor in the Subscription.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize, Serializer};

use crate::outbox_worker::{create_unless_present, ensure_namespace};
use crate::render::{self, FIELD_MANAGER};

/// The key of the auth code in its Secret; a template's `authCodeSecretRef` names this key.
pub const KEY: &str = "auth-code";
/// The label naming the order whose checkout wrote the Secret.
pub const ORDER_LABEL: &str = "billing.mpanel.migrahosting.com/order";
/// The longest auth code taken (registries' codes are 6 to 32 characters).
pub const MAX_LEN: usize = 255;

/// An auth code as the checkout request gives it. Its `Debug` and `Serialize` say only that there
/// is one.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct AuthCode(String);

impl AuthCode {
    pub fn new(code: impl Into<String>) -> Self {
        Self(code.into())
    }

    /// 1 to `MAX_LEN` visible ASCII characters (surrounding spaces dropped, as the operator drops them).
    pub fn check(&self) -> Result<(), AuthCodeRefused> {
        let code = self.0.trim();
        if code.is_empty() || code.len() > MAX_LEN || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthCodeRefused::Invalid);
        }
        Ok(())
    }
}

impl std::fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthCode(..)")
    }
}

impl Serialize for AuthCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("given")
    }
}

/// Why a checkout's auth code is refused, or could not be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthCodeRefused {
    #[error("a domain transfer needs authCode: the EPP auth code from the current registrar")]
    Required,
    #[error("authCode is only for a purchase that transfers a domain")]
    Unexpected,
    #[error("authCode must be 1 to {MAX_LEN} visible ASCII characters")]
    Invalid,
    /// Kubernetes could not take the Secret (or the bridge has no Kubernetes client): the cause is
    /// logged, not shown.
    #[error("the auth code cannot be stored right now; please try again later")]
    NotKept,
}

impl AuthCodeRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Required => "auth_code_required",
            Self::Unexpected => "auth_code_unexpected",
            Self::Invalid => "auth_code_invalid",
            Self::NotKept => "auth_code_not_kept",
        }
    }
}

/// Where an order's auth code goes: the customer's namespace and the order's Subscription name.
pub struct Destination<'a> {
    pub namespace: &'a str,
    pub customer_handle: &'a str,
    pub order: uuid::Uuid,
}

/// Writes the code into the order's Secret (the namespace made if missing). A Secret that exists
/// already (a retry of the same checkout) is left as it is: the bridge may create Secrets, not
/// read or change them.
pub async fn keep(client: &kube::Client, to: &Destination<'_>, code: &AuthCode) -> Result<(), AuthCodeRefused> {
    let not_kept = |e: kube::Error| {
        tracing::warn!(order = %to.order, error = %e, "the auth code Secret could not be written; the checkout is refused");
        AuthCodeRefused::NotKept
    };
    ensure_namespace(client, to.namespace, to.customer_handle).await.map_err(not_kept)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), to.namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(render::auth_code_secret(&render::resource_name(to.order))),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned()),
                (ORDER_LABEL.to_owned(), to.order.to_string()),
            ])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(KEY.to_owned(), ByteString(code.0.trim().as_bytes().to_vec()))])),
        ..Default::default()
    };
    create_unless_present(&api, &secret).await.map_err(not_kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_in_no_debug_or_serialized_form() {
        let code = AuthCode::new("S3cr3t-EPP");
        assert!(!format!("{code:?}").contains("S3cr3t"));
        assert_eq!(serde_json::to_string(&code).unwrap_or_default(), "\"given\"");
    }

    #[test]
    fn codes_are_checked_without_being_repeated() {
        assert_eq!(AuthCode::new(" ab-12 ").check(), Ok(()));
        assert_eq!(AuthCode::new("").check(), Err(AuthCodeRefused::Invalid));
        assert_eq!(AuthCode::new("two words").check(), Err(AuthCodeRefused::Invalid));
        assert_eq!(AuthCode::new("x".repeat(MAX_LEN + 1)).check(), Err(AuthCodeRefused::Invalid));
        assert!(!AuthCodeRefused::Invalid.to_string().contains("two words"));
    }
}
