//! The Namesilo registrar API: `GET {apiUrl}/{operation}?version=1&type=json&key=…`.
//!
//! Namesilo answers HTTP 200 to everything and puts the outcome in `reply.code`: 300–302 are
//! success, 250–256 "already in that state" (success for the state-changing calls), anything else
//! an error whose `detail` is kept verbatim. Its JSON is its XML converted, so a list of one comes
//! back as a bare value; the readers here take either. The API key travels in the query string and
//! must never reach a log, an error or a condition. Reads are retried; the paid calls (register,
//! renew, transfer) are sent exactly once and never retried here.

mod client;
mod operations;
mod replies;

use std::future::Future;
use std::time::Duration;

use mpanel_crds::reasons;

pub use client::Namesilo;
pub use replies::normalise_host;

#[derive(Clone)]
pub struct Config {
    /// e.g. `https://www.namesilo.com/api`
    pub api_url: String,
    pub api_key: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the key
        f.debug_struct("Config").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

/// Namesilo reply codes the operator acts on.
pub mod code {
    pub const NO_API_KEY: u16 = 109;
    pub const INVALID_API_KEY: u16 = 110;
    pub const MISSING_PARAMETERS: u16 = 108;
    pub const REGISTRY_UNAVAILABLE: u16 = 115;
    pub const INSUFFICIENT_FUNDS: u16 = 119;
    pub const NOT_IN_ACCOUNT: u16 = 200;
    pub const UNAVAILABLE: u16 = 261;
    pub const ALREADY_ACTIVE: u16 = 262;
    pub const INVALID_YEARS: u16 = 263;
    pub const CANNOT_RENEW_YEARS: u16 = 264;
    pub const CANNOT_TRANSFER: u16 = 265;
    pub const NO_TRANSFER: u16 = 266;

    /// 300 success, 301 registered with the registrar's nameservers, 302 with the default contact.
    pub fn is_success(code: u16) -> bool {
        (300..=302).contains(&code)
    }

    /// "Already locked", "already set to auto-renew" and the like: nothing was changed because
    /// nothing needed to be.
    pub fn is_already_in_state(code: u16) -> bool {
        (250..=256).contains(&code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NamesiloError {
    /// Namesilo answered with a reply code that is not success; `detail` is its own text.
    #[error("Namesilo {operation}: {code} {detail}")]
    Reply { operation: &'static str, code: u16, detail: String },
    #[error("Namesilo could not be reached: {0}")]
    Unreachable(String),
    #[error("Namesilo sent an answer that could not be read: {0}")]
    BadResponse(String),
}

impl NamesiloError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Reply { code, .. } => match *code {
                code::NO_API_KEY | code::INVALID_API_KEY | 111..=113 => reasons::NAMESILO_UNAUTHORIZED.name,
                code::MISSING_PARAMETERS => reasons::NAMESILO_MISSING_PARAMETERS.name,
                code::REGISTRY_UNAVAILABLE => reasons::NAMESILO_REGISTRY_UNAVAILABLE.name,
                code::INSUFFICIENT_FUNDS => reasons::NAMESILO_INSUFFICIENT_FUNDS.name,
                code::NOT_IN_ACCOUNT => reasons::NAMESILO_NOT_IN_ACCOUNT.name,
                code::UNAVAILABLE | code::ALREADY_ACTIVE => reasons::NAMESILO_UNAVAILABLE.name,
                code::INVALID_YEARS | code::CANNOT_RENEW_YEARS => reasons::NAMESILO_INVALID_YEARS.name,
                code::CANNOT_TRANSFER => reasons::NAMESILO_TRANSFER_REFUSED.name,
                code::NO_TRANSFER => reasons::NAMESILO_NO_TRANSFER.name,
                _ => reasons::NAMESILO_ERROR.name,
            },
            Self::Unreachable(_) => reasons::NAMESILO_UNREACHABLE.name,
            Self::BadResponse(_) => reasons::NAMESILO_BAD_RESPONSE.name,
        }
    }

    fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_)) || matches!(self, Self::Reply { code: code::REGISTRY_UNAVAILABLE, .. })
    }

    fn code(&self) -> Option<u16> {
        match self {
            Self::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A domain in the account, as `getDomainInfo` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub created: Option<String>,
    /// `YYYY-MM-DD`
    pub expires: String,
    /// e.g. `Active`, `Expired`
    pub status: String,
    pub locked: bool,
    pub private: bool,
    pub auto_renew: bool,
    /// Lowercase, without a trailing dot, in the registrar's order.
    pub nameservers: Vec<String>,
}

/// An inbound transfer, as `checkTransferStatus` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub status: String,
    pub message: Option<String>,
}

impl Transfer {
    pub fn completed(&self) -> bool {
        is_completed(&self.status)
    }
}

/// Whether a transfer status (as `checkTransferStatus` words it) is the final one.
pub fn is_completed(status: &str) -> bool {
    status.eq_ignore_ascii_case("Transfer Completed")
}

/// The answer to a paid call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub code: u16,
    pub message: Option<String>,
    /// What was charged, as Namesilo wrote it.
    pub amount: Option<String>,
}

/// Registrant contact, in Namesilo's parameter names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub first_name: String,
    pub last_name: String,
    pub organization: Option<String>,
    pub email: String,
    pub phone: String,
    pub street: String,
    pub city: String,
    pub state_province: Option<String>,
    pub postal_code: String,
    pub country: String,
}

/// What a registration or transfer order asks for besides the name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderOptions {
    pub nameservers: Vec<String>,
    pub private: bool,
    pub auto_renew: bool,
    /// Without one, the account's default contact profile is used.
    pub contact: Option<Contact>,
}

/// What the Domain controller needs from the registrar.
pub trait NamesiloApi: Send + Sync {
    /// The domain, when it is in the account.
    fn domain_info(&self, domain: &str) -> impl Future<Output = Result<Option<DomainInfo>, NamesiloError>> + Send;
    /// Whether the name can be registered now.
    fn available(&self, domain: &str) -> impl Future<Output = Result<bool, NamesiloError>> + Send;
    /// Paid. Sent once; never retried here.
    fn register(
        &self,
        domain: &str,
        years: u8,
        options: &OrderOptions,
    ) -> impl Future<Output = Result<Receipt, NamesiloError>> + Send;
    /// Paid. Sent once; never retried here.
    fn renew(&self, domain: &str, years: u8) -> impl Future<Output = Result<Receipt, NamesiloError>> + Send;
    /// Paid. Sent once; never retried here.
    fn transfer(
        &self,
        domain: &str,
        auth_code: &str,
        options: &OrderOptions,
    ) -> impl Future<Output = Result<Receipt, NamesiloError>> + Send;
    /// The inbound transfer of `domain`, when there is one.
    fn transfer_status(&self, domain: &str) -> impl Future<Output = Result<Option<Transfer>, NamesiloError>> + Send;
    /// Gives a pending transfer a new auth code.
    fn change_auth_code(&self, domain: &str, auth_code: &str)
    -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_nameservers(
        &self,
        domain: &str,
        nameservers: &[String],
    ) -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_lock(&self, domain: &str, locked: bool) -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_privacy(&self, domain: &str, private: bool) -> impl Future<Output = Result<(), NamesiloError>> + Send;
    fn set_auto_renew(&self, domain: &str, auto_renew: bool) -> impl Future<Output = Result<(), NamesiloError>> + Send;
}
