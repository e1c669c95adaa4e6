//! The Stripe API calls of the bridge, made with async-stripe: a Checkout Session for an order, a
//! refund of a payment, a customer. Each call is one request with a timeout and an idempotency key,
//! never retried here (a caller retries with the same key, which Stripe answers with the first
//! result).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use ::stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionCustomerCreation, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionPaymentIntentDataSetupFutureUsage, ExpireCheckoutSession, ProductData,
};
use stripe_core::customer::CreateCustomer;
use stripe_core::payment_intent::{CreatePaymentIntent, CreatePaymentIntentOffSession};
use stripe_core::refund::CreateRefund;
use stripe_types::Currency;

/// A Checkout Session to create for an order: one line per item, paid once (`mode=payment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The Idempotency-Key of the request: the order id, so that asking again for the same order
    /// returns the same session.
    pub idempotency_key: String,
    /// Prefills the payment page; sent only when there is no `stripe_customer` (Stripe takes one
    /// of the two).
    pub customer_email: String,
    /// The customer's Stripe id (`cus_…`), when the ledger has one.
    pub stripe_customer: Option<String>,
    /// Three-letter ISO code, lower case (`usd`).
    pub currency: String,
    pub lines: Vec<CheckoutLine>,
    pub success_url: String,
    pub cancel_url: String,
    /// Comes back on the session in the webhook's event: the order id.
    pub client_reference_id: String,
    /// Set on the session and on the PaymentIntent it creates, so that both kinds of event carry it.
    pub metadata: BTreeMap<String, String>,
}

/// One line of a Checkout Session, priced inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLine {
    /// Shown to the customer as the product's name.
    pub description: String,
    /// The price of one unit in the currency's minor unit (ISO 4217, `money::minor_unit_digits`):
    /// cents for `usd`, yen for `jpy`, fils for `kwd`.
    pub unit_amount_cents: i64,
    pub quantity: u32,
}

/// A created Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_…`
    pub id: String,
    /// The payment page to send the customer to.
    pub url: Option<String>,
}

/// Why a Stripe call failed. Texts never contain the secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error object: its type, code and message as Stripe sent them (the
    /// secret key, should Stripe quote it, replaced by `[redacted]`).
    #[error("Stripe rejected the request (HTTP {status}, {error_type}{}): {message}", code_suffix(.code))]
    Rejected {
        status: u16,
        /// `invalid_request_error`, `card_error`, `idempotency_error`, `api_error`, …
        error_type: String,
        /// e.g. `resource_missing`, `amount_too_small`
        code: Option<String>,
        /// The request parameter at fault, if Stripe names one.
        param: Option<String>,
        /// A card declined by its bank: the bank's reason as Stripe names it (`insufficient_funds`);
        /// boxed, to keep every `Result` carrying this error small.
        decline_code: Option<Box<str>>,
        message: String,
    },
    /// No answer: the connection could not be made or broke.
    #[error("Stripe is unreachable: {0}")]
    Unreachable(String),
    /// No answer within the client's timeout.
    #[error("Stripe did not answer within {0:?}")]
    Timeout(Duration),
    /// An answer that is not what the API promises.
    #[error("Stripe's answer could not be read: {0}")]
    InvalidResponse(String),
    /// The client's settings are unusable (API base URL, secret key).
    #[error("invalid Stripe client settings: {0}")]
    Config(String),
    /// The request was refused before sending it (an empty or too long idempotency key).
    #[error("invalid Stripe request: {0}")]
    InvalidRequest(String),
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref().map(|c| format!(", {c}")).unwrap_or_default()
}

impl StripeError {
    /// A stable name for conditions, metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "StripeRejected",
            Self::Unreachable(_) => "StripeUnreachable",
            Self::Timeout(_) => "StripeTimeout",
            Self::InvalidResponse(_) => "StripeInvalidResponse",
            Self::Config(_) => "StripeConfigInvalid",
            Self::InvalidRequest(_) => "StripeRequestInvalid",
        }
    }

    /// Whether the same request (with the same idempotency key) may succeed later: no answer, or
    /// an answer Stripe documents as transient (409 concurrent use of a key, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Timeout(_) => true,
            Self::Rejected { status, .. } => matches!(status, 409 | 429 | 500..=599),
            Self::InvalidResponse(_) | Self::Config(_) | Self::InvalidRequest(_) => false,
        }
    }
}

/// A client of the Stripe API, or of stripe-mock in tests. Cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    client: Client,
    secret_key: String,
    api_base: String,
    timeout: Duration,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where the client goes without an `api_base`.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

impl StripeClient {
    /// A client with `secret_key` (`sk_…` or `rk_…`) against `api_base` (`STRIPE_API_BASE`, e.g.
    /// stripe-mock's `http://127.0.0.1:12111`; Stripe itself when `None`), each request given up
    /// after `timeout`.
    pub fn new(secret_key: &str, api_base: Option<&str>, timeout: Duration) -> Result<Self, StripeError> {
        if secret_key.trim().is_empty() {
            return Err(StripeError::Config("the secret key is empty".into()));
        }
        // async-stripe appends `v1/…` to the base as it is: it must end in a slash
        let api_base = api_base.unwrap_or(DEFAULT_API_BASE).trim_end_matches('/').to_owned();
        let client = ClientBuilder::new(secret_key)
            .url(format!("{api_base}/"))
            .timeout(timeout)
            .request_strategy(RequestStrategy::Once)
            .build()
            .map_err(|e| StripeError::Config(redact(&e.to_string(), secret_key)))?;
        Ok(Self { client, secret_key: secret_key.to_owned(), api_base, timeout })
    }

    /// The base URL requests go to (without the trailing slash).
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Creates a Checkout Session in payment mode for `req`'s lines.
    pub async fn create_checkout_session(&self, req: &CheckoutRequest) -> Result<CheckoutSession, StripeError> {
        self.create_checkout_session_until(req, None).await
    }

    /// As `create_checkout_session`, the session expiring at `expires_at` (Unix seconds, 30 minutes
    /// to 24 hours ahead) instead of Stripe's default 24 hours.
    pub async fn create_checkout_session_until(
        &self,
        req: &CheckoutRequest,
        expires_at: Option<i64>,
    ) -> Result<CheckoutSession, StripeError> {
        // an unknown code goes to Stripe as it is, for Stripe to refuse
        let Ok(currency) = Currency::from_str(&req.currency.to_ascii_lowercase());
        let lines: Vec<_> = req
            .lines
            .iter()
            .map(|line| {
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency.clone());
                price.unit_amount = Some(line.unit_amount_cents);
                price.product_data = Some(ProductData::new(line.description.clone()));
                let mut item = CreateCheckoutSessionLineItems::new();
                item.price_data = Some(price);
                item.quantity = Some(u64::from(line.quantity));
                item
            })
            .collect();
        let metadata: HashMap<String, String> = req.metadata.clone().into_iter().collect();
        let mut payment_intent_data = CreateCheckoutSessionPaymentIntentData::new();
        payment_intent_data.metadata = Some(metadata.clone());
        // the card is kept for renewals charged without the customer present
        payment_intent_data.setup_future_usage =
            Some(CreateCheckoutSessionPaymentIntentDataSetupFutureUsage::OffSession);
        let mut create = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(lines)
            .success_url(req.success_url.as_str())
            .cancel_url(req.cancel_url.as_str())
            .client_reference_id(req.client_reference_id.as_str())
            .metadata(metadata)
            .payment_intent_data(payment_intent_data);
        if let Some(at) = expires_at {
            create = create.expires_at(at);
        }
        if let Some(customer) = &req.stripe_customer {
            create = create.customer(customer.as_str());
        } else {
            // a card is saved on a Stripe customer: have one made for a customer who has none yet
            create = create.customer_creation(CreateCheckoutSessionCustomerCreation::Always);
            if !req.customer_email.is_empty() {
                create = create.customer_email(req.customer_email.as_str());
            }
        }
        let session = create
            .customize()
            .request_strategy(self.idempotent(&req.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(|e| self.error(e))?;
        Ok(CheckoutSession { id: session.id.as_str().to_owned(), url: session.url })
    }

    /// Expires an open Checkout Session (`cs_…`): it can no longer be paid. Its status after.
    pub async fn expire_checkout_session(&self, session: &str) -> Result<String, StripeError> {
        let expired = ExpireCheckoutSession::new(session).send(&self.client).await.map_err(|e| self.error(e))?;
        Ok(expired.status.map(|s| s.as_str().to_owned()).unwrap_or_default())
    }

    /// Refunds `amount_cents` of a PaymentIntent (`pi_…`), all of what is left when `None`;
    /// returns the refund's id (`re_…`).
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount_cents: Option<i64>,
        idempotency_key: &str,
    ) -> Result<String, StripeError> {
        let mut create = CreateRefund::new().payment_intent(payment_intent);
        if let Some(amount) = amount_cents {
            create = create.amount(amount);
        }
        let refund = create
            .customize()
            .request_strategy(self.idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(|e| self.error(e))?;
        Ok(refund.id.as_str().to_owned())
    }

    /// Charges a saved payment method without the customer present (a renewal): a PaymentIntent
    /// created and confirmed at once, `invoice_id` in its metadata as the checkout's carry it, so its
    /// webhook pays the invoice. Its id and status (`succeeded`, `processing`, `requires_action`, …);
    /// a declined card is a `Rejected` `card_error` with its decline code.
    pub async fn charge_off_session(&self, charge: &OffSessionCharge<'_>) -> Result<(String, String), StripeError> {
        let Ok(currency) = Currency::from_str(&charge.currency.to_ascii_lowercase());
        let metadata = HashMap::from([("invoice_id".to_owned(), charge.invoice_id.to_owned())]);
        let intent = CreatePaymentIntent::new(charge.amount_minor, currency)
            .customer(charge.customer)
            .payment_method(charge.payment_method)
            .confirm(true)
            .off_session(CreatePaymentIntentOffSession::Bool(true))
            .metadata(metadata)
            .customize()
            .request_strategy(self.idempotent(charge.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(|e| self.error(e))?;
        Ok((intent.id.as_str().to_owned(), intent.status.as_str().to_owned()))
    }

    /// Creates a customer with `email`; returns its id (`cus_…`).
    pub async fn create_customer(&self, email: &str, idempotency_key: &str) -> Result<String, StripeError> {
        let customer = CreateCustomer::new()
            .email(email)
            .customize()
            .request_strategy(self.idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(|e| self.error(e))?;
        Ok(customer.id.as_str().to_owned())
    }

    /// A Stripe Billing Portal session for `customer` (`cus_…`), where the customer manages their
    /// payment methods; returns its URL, good for one visit, coming back to `return_url`.
    pub async fn create_billing_portal_session(&self, customer: &str, return_url: &str) -> Result<String, StripeError> {
        let session = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(|e| self.error(e))?;
        Ok(session.url)
    }

    fn idempotent(&self, key: &str) -> Result<RequestStrategy, StripeError> {
        IdempotencyKey::new(key)
            .map(RequestStrategy::Idempotent)
            .map_err(|e| StripeError::InvalidRequest(format!("idempotency key: {e}")))
    }

    fn error(&self, err: ::stripe::StripeError) -> StripeError {
        let clean = |s: &str| redact(s, &self.secret_key);
        match err {
            ::stripe::StripeError::Stripe(api, status) => StripeError::Rejected {
                status,
                error_type: api.type_.as_str().to_owned(),
                code: api.code.as_ref().map(|c| c.as_str().to_owned()),
                param: api.param.as_deref().map(clean),
                decline_code: api.decline_code.as_deref().map(Box::from),
                message: api.message.as_deref().map(clean).unwrap_or_default(),
            },
            ::stripe::StripeError::Timeout => StripeError::Timeout(self.timeout),
            ::stripe::StripeError::ClientError(msg) => StripeError::Unreachable(clean(&msg)),
            ::stripe::StripeError::JSONDeserialize(msg) => StripeError::InvalidResponse(clean(&msg)),
            ::stripe::StripeError::ConfigError(msg) => StripeError::Config(clean(&msg)),
        }
    }
}

/// An off-session charge of a saved payment method.
#[derive(Debug, Clone)]
pub struct OffSessionCharge<'a> {
    pub customer: &'a str,
    pub payment_method: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub invoice_id: &'a str,
    pub idempotency_key: &'a str,
}

/// `text` with every occurrence of the secret key replaced (stripe-mock, for one, quotes the
/// Authorization header it refused).
fn redact(text: &str, secret_key: &str) -> String {
    if secret_key.is_empty() { text.to_owned() } else { text.replace(secret_key, "[redacted]") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_secret_key_from_texts() {
        let text = "Authorization was 'Bearer sk_live_abc'. Try sk_live_abc again.";
        assert_eq!(redact(text, "sk_live_abc"), "Authorization was 'Bearer [redacted]'. Try [redacted] again.");
    }

    #[test]
    fn reasons_are_stable() {
        let rejected = StripeError::Rejected {
            status: 400,
            error_type: "invalid_request_error".into(),
            code: Some("amount_too_small".into()),
            param: Some("amount".into()),
            decline_code: None,
            message: "Amount must be at least $0.50 usd".into(),
        };
        assert_eq!(rejected.reason(), "StripeRejected");
        assert_eq!(
            rejected.to_string(),
            "Stripe rejected the request (HTTP 400, invalid_request_error, amount_too_small): Amount must be at least $0.50 usd"
        );
        assert!(!rejected.is_transient());
        assert_eq!(StripeError::Timeout(Duration::from_secs(1)).reason(), "StripeTimeout");
        assert!(StripeError::Unreachable("refused".into()).is_transient());
    }

    #[test]
    fn rejects_an_empty_secret_and_a_bad_base_url() {
        let e = StripeClient::new(" ", None, Duration::from_secs(1)).err();
        assert_eq!(e.map(|e| e.reason()), Some("StripeConfigInvalid"));
        let e = StripeClient::new("sk_test_secret", Some("http://exa mple"), Duration::from_secs(1)).err();
        assert_eq!(e.as_ref().map(StripeError::reason), Some("StripeConfigInvalid"));
        assert!(!format!("{e:?}").contains("sk_test_secret"));
        let ok = StripeClient::new("sk_test_secret", Some("http://127.0.0.1:12111/"), Duration::from_secs(1));
        assert_eq!(ok.as_ref().map(StripeClient::api_base).ok(), Some("http://127.0.0.1:12111"));
        assert!(!format!("{ok:?}").contains("sk_test_secret"));
    }
}
