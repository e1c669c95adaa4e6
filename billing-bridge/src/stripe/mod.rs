//! Stripe: the API calls the bridge makes (Checkout Sessions, refunds, customers) and the check of
//! the signatures on the webhooks Stripe sends.

pub mod api;
pub mod signature;

pub use api::{CheckoutLine, CheckoutRequest, CheckoutSession, StripeClient, StripeError};
pub use signature::{DEFAULT_TOLERANCE_SECS, SignatureError, verify};
