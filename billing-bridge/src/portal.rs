//! The customer portal's credentials. A sign-in link's token is the HMAC of the link's id under the
//! bridge's portal key: the ledger keeps only the token's SHA-256, and the mail worker makes the
//! token again from the id when it sends the mail, so no row holds a credential. A session token
//! is random, shown once, and kept as its SHA-256 as admin tokens are (`ledger::tokens::digest`).

use chrono::Duration;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// How long a sign-in link works (once).
pub const LINK_LIFETIME: Duration = Duration::minutes(15);
/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// Sign-in mails a customer is sent in an hour at most; asking for more sends nothing.
pub const LINKS_PER_HOUR: i64 = 5;
/// The shortest portal key taken.
const MIN_KEY_BYTES: usize = 32;

/// Why the portal's settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum PortalConfigError {
    #[error("MPANEL_BRIDGE_PORTAL_KEY must be at least {MIN_KEY_BYTES} bytes")]
    KeyTooShort,
}

/// What signs sign-in links, and where they lead.
#[derive(Clone)]
pub struct SignInLinks {
    /// The HMAC keyed with the portal key, cloned for each token.
    keyed: Hmac<Sha256>,
    portal_url: String,
}

impl std::fmt::Debug for SignInLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInLinks").field("portal_url", &self.portal_url).finish_non_exhaustive()
    }
}

impl SignInLinks {
    pub fn new(key: &str, portal_url: &str) -> Result<Self, PortalConfigError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(PortalConfigError::KeyTooShort);
        }
        let keyed = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| PortalConfigError::KeyTooShort)?;
        Ok(Self { keyed, portal_url: portal_url.trim_end_matches('/').to_owned() })
    }

    /// The token of the link `id`: the same every time it is asked.
    pub fn token(&self, id: Uuid) -> String {
        let mut mac = self.keyed.clone();
        mac.update(b"mpanel-portal-sign-in:");
        mac.update(id.as_bytes());
        format!("mpl_{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The address the mail gives: the portal's sign-in page with the token.
    pub fn url(&self, id: Uuid) -> String {
        format!("{}/sign-in?token={}", self.portal_url, self.token(id))
    }

    /// Where the Stripe Billing Portal sends the customer back.
    pub fn portal_url(&self) -> &str {
        &self.portal_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_token_depends_on_the_key_and_the_link() {
        let a = SignInLinks::new(&"a".repeat(32), "https://panel.example/").unwrap();
        let b = SignInLinks::new(&"b".repeat(32), "https://panel.example").unwrap();
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(a.token(one), a.token(one));
        assert_ne!(a.token(one), a.token(two));
        assert_ne!(a.token(one), b.token(one));
        assert_eq!(a.url(one), format!("https://panel.example/sign-in?token={}", a.token(one)));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(matches!(SignInLinks::new("short", "https://panel.example"), Err(PortalConfigError::KeyTooShort)));
    }
}
