//! Checkout: a product (with its cycle, the customer's email, a domain and add-ons) becomes a
//! customer, an order, an issued invoice and a Stripe Checkout Session.
//!
//! Nothing is held across the Stripe call: the customer, the order (`opening`) and a draft invoice
//! are committed first, Stripe is asked with no connection taken from the pool, and a second short
//! transaction records the session and issues the invoice. The session's Stripe idempotency key is
//! the order id, so asking again for the same order (a retry with the same Idempotency-Key, also
//! after a crash between the two steps) gets the same session. A client's Idempotency-Key keeps
//! the answer it got, so a retry makes no second order; per-email and per-client-address limits
//! are counted before anything else is asked. An order whose session expires unpaid is `expired`
//! and its invoice void (`expire`).
//!
//! A purchase that registers or transfers a domain asks the registrar first, before anything is
//! written or a session made: a name that is taken (registration only) or already in the account is
//! refused, and so is every such purchase while the registrar cannot be asked.
//!
//! A purchase that transfers a domain is priced at its products' `transfer` price and must give
//! `authCode`, which is written into a Secret of the customer's namespace once the order exists and
//! before Stripe is asked (`auth_code`); it is never written to the ledger.
//!
//! The order's resources are its products' templates merged (`render::order_resources`): a
//! template's `boughtWith.<type>` resources are added when the order holds a product of that type.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use mpanel_crds::domain::RegistrationMode;
use mpanel_crds::subscription::ResourceTemplates;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth_code::{self, AuthCode, AuthCodeRefused, Destination};
use crate::ledger::checkout_requests::{self, KeyedRequest, Limit, Scope};
use crate::ledger::invoices::{self, NewLine, Purpose};
use crate::ledger::orders::{self, Item, Order};
use crate::ledger::payments::{self, Payment};
use crate::ledger::{Cycle, LedgerError, audit, catalog, customers};
use crate::money;
use crate::registrar::{Registrar, Standing};
use crate::render::{self, Part, Placeholders};
use crate::stripe::api::{CheckoutLine, CheckoutRequest, CheckoutSession, StripeClient, StripeError};

mod domains;
mod expiry;
mod idempotency;
mod prepare;
mod session;

use domains::*;
pub use expiry::{Expiry, expire, note_payment_on_void_invoice};
use idempotency::*;
use prepare::*;
use session::*;
pub use session::{AUTH_CODE_NOT_KEPT_STATUS, stripe_idempotency_key};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Purchase {
    pub product: String,
    pub cycle: String,
    pub email: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub addons: Vec<String>,
    /// A cycle of its own for some of the products (by slug), where it differs from `cycle`: a
    /// monthly CloudPod with a domain sold yearly is `{"cycle": "monthly", "cycles": {"domain": "annual"}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cycles: BTreeMap<String, String>,
    /// The EPP auth code of a domain transfer (see `auth_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<AuthCode>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Uuid,
    pub invoice_number: String,
    pub total: Decimal,
    pub currency: String,
    pub checkout_session_id: String,
    pub checkout_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Domain(#[from] DomainRefused),
    #[error(transparent)]
    Currency(#[from] CurrencyRefused),
    #[error(transparent)]
    AuthCode(#[from] AuthCodeRefused),
    /// Too many checkouts for this email or from this client address within the window.
    #[error("too many checkouts; try again in {} s", .retry_after.as_secs())]
    Limited { retry_after: Duration },
    #[error("this Idempotency-Key was used with another request; use a new key for a new checkout")]
    KeyReused,
    /// A request with the same Idempotency-Key is making this order's session right now.
    #[error("a checkout with this Idempotency-Key is in progress; try again shortly")]
    InProgress,
    /// The order of this Idempotency-Key ended (its session expired unpaid) before it was answered.
    #[error("the order of this Idempotency-Key is {0}; use a new key for a new checkout")]
    Ended(String),
}

impl CheckoutError {
    /// The stable code of the checkout's own refusals (the others carry theirs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Stripe(e) => e.reason(),
            Self::Domain(e) => e.code(),
            Self::Currency(e) => e.code(),
            Self::AuthCode(e) => e.code(),
            Self::Limited { .. } => "checkout_rate_limited",
            Self::KeyReused => "idempotency_key_reused",
            Self::InProgress => "checkout_in_progress",
            Self::Ended(_) => "checkout_ended",
        }
    }
}

/// The HTTP status of a checkout whose Stripe call failed (kept with its Idempotency-Key).
pub const STRIPE_FAILED_STATUS: u16 = 502;

/// Why a purchase of a domain registration or transfer is refused before any money is asked for.
#[derive(Debug, thiserror::Error)]
pub enum DomainRefused {
    #[error("{0} is not available for registration")]
    Unavailable(String),
    #[error("{0} is already registered in our registrar account")]
    AlreadyRegistered(String),
    /// A transfer of a name no registrar holds: there is nothing to move.
    #[error("{0} is not registered anywhere: it can be registered, not transferred")]
    NotRegistered(String),
    /// The registrar could not be asked (or the bridge has no registrar settings): the cause is
    /// logged, not shown.
    #[error("domain availability cannot be checked right now; please try again later")]
    RegistrarUnavailable,
}

impl DomainRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "domain_unavailable",
            Self::AlreadyRegistered(_) => "domain_already_registered",
            Self::NotRegistered(_) => "domain_not_registered",
            Self::RegistrarUnavailable => "registrar_unavailable",
        }
    }
}

/// Why a purchase is refused for its prices' currencies: an order is paid in one currency, and its
/// amounts must fit the ledger's two decimal places.
#[derive(Debug, thiserror::Error)]
pub enum CurrencyRefused {
    #[error("{product:?} is priced in {currency}, but {first:?} in {first_currency}: an order is paid in one currency")]
    Mixed { first: String, first_currency: String, product: String, currency: String },
    #[error("the price of {product:?} ({amount} {currency}) has more decimal places than the ledger keeps (2)")]
    TooPrecise { product: String, amount: Decimal, currency: String },
}

impl CurrencyRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Mixed { .. } => "currency_mixed",
            Self::TooPrecise { .. } => "currency_amount_too_precise",
        }
    }
}

/// Where Stripe sends the buyer afterwards.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    pub success: String,
    pub cancel: String,
}

/// What a checkout works with.
pub struct Shop<'a> {
    pub pool: &'a PgPool,
    pub tenant: Uuid,
    pub stripe: &'a StripeClient,
    pub registrar: Option<&'a Registrar>,
    pub urls: &'a ReturnUrls,
    /// Where a transfer's auth code is written; without it transfers are refused.
    pub kube: Option<&'a kube::Client>,
}

/// How many checkouts one email and one client address may start per window; 0 is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub per_email: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { per_email: 5, per_address: 20, window: Duration::from_secs(600) }
    }
}

/// One checkout request.
pub struct Attempt<'a> {
    pub purchase: &'a Purchase,
    /// The client's Idempotency-Key, checked already (1 to 255 visible characters).
    pub idempotency_key: Option<&'a str>,
    /// The client's address as the limits count it.
    pub client: &'a str,
}

/// What the checkout answers: a status and a JSON body, the same for every request with the same
/// Idempotency-Key once there is a final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// Given before, to an earlier request with the same key (or its order resumed).
    pub replayed: bool,
}

/// A checkout: the answer kept for its Idempotency-Key, or else (within the limits) a new order and
/// its Checkout Session.
pub async fn checkout(shop: &Shop<'_>, limits: &Limits, attempt: &Attempt<'_>) -> Result<Answer, CheckoutError> {
    let digest = request_digest(attempt.purchase);
    if let Some(code) = &attempt.purchase.auth_code {
        code.check()?;
    }
    if let Some(key) = attempt.idempotency_key
        && let Some(earlier) = checkout_requests::find(shop.pool, shop.tenant, key).await?
    {
        return again(shop, attempt.purchase, &earlier, &digest).await;
    }
    count_attempt(shop, limits, attempt).await?;
    let bought = prepare(shop, attempt.purchase).await?;
    let keyed = attempt.idempotency_key.map(|key| (key, digest.as_slice()));
    let Some(opened) = open(shop, attempt.purchase, &bought, keyed).await? else {
        // a request with the same key wrote its order first: answer as that one
        let key = attempt.idempotency_key.unwrap_or_default();
        let earlier = checkout_requests::find(shop.pool, shop.tenant, key)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("the checkout of Idempotency-Key {key:?}")))?;
        return again(shop, attempt.purchase, &earlier, &digest).await;
    };
    let resumable = attempt.idempotency_key.is_some();
    keep_auth_code(shop, attempt.purchase, &opened, resumable).await?;
    ask_stripe(shop, &opened, resumable).await
}
