//! What an ACME CA's refusal or failure becomes: the CA's own words and a stable reason.

use std::time::Duration;

use instant_acme::Problem;
use mpanel_crds::reasons;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with a problem document; `detail` is its own text.
    #[error("the ACME server refused: {detail}")]
    Problem { kind: String, detail: String },
    #[error("the ACME server could not be reached: {0}")]
    Unreachable(String),
    #[error("the ACME server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the ACME server sent an answer that could not be read: {0}")]
    BadResponse(String),
    #[error("the ACME account credentials are unusable: {0}")]
    Credentials(String),
}

impl AcmeError {
    /// Stable reason for conditions, metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Problem { kind, .. } if kind.ends_with(":rateLimited") => reasons::ACME_RATE_LIMITED.name,
            Self::Problem { kind, .. } if kind.ends_with(":malformed") && is_unknown_order(self) => {
                reasons::ACME_ORDER_GONE.name
            }
            Self::Problem { .. } => reasons::ACME_REJECTED.name,
            Self::Unreachable(_) => reasons::ACME_UNREACHABLE.name,
            Self::Timeout(_) => reasons::ACME_TIMEOUT.name,
            Self::BadResponse(_) => reasons::ACME_BAD_RESPONSE.name,
            Self::Credentials(_) => reasons::ACME_ACCOUNT_INVALID.name,
        }
    }

    /// The CA no longer knows the order (it expired, or a test CA restarted): order again.
    pub fn is_order_gone(&self) -> bool {
        match self {
            Self::Problem { .. } => is_unknown_order(self),
            _ => false,
        }
    }
}

fn is_unknown_order(e: &AcmeError) -> bool {
    match e {
        AcmeError::Problem { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            d.contains("no order") || d.contains("order not found") || d.contains("unable to find order")
        }
        _ => false,
    }
}

/// The problem's own words: its detail, then the subproblems per identifier.
pub fn problem_text(p: &Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| p.r#type.clone().unwrap_or_else(|| "no detail".to_owned()));
    for sub in &p.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str("; ");
            text.push_str(detail);
        }
    }
    text
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        use instant_acme::Error as E;
        match e {
            E::Api(p) => Self::Problem { kind: p.r#type.clone().unwrap_or_default(), detail: problem_text(&p) },
            E::Json(e) => Self::BadResponse(e.to_string()),
            E::Str(s) => Self::BadResponse(s.to_owned()),
            E::Crypto | E::KeyRejected => Self::Credentials(e.to_string()),
            other => Self::Unreachable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> Problem {
        serde_json::from_value(serde_json::json!({"type": kind, "detail": detail, "status": 400})).unwrap()
    }

    #[test]
    fn a_problem_keeps_the_servers_words_and_maps_to_a_stable_reason() {
        let e = AcmeError::from(instant_acme::Error::Api(problem(
            "urn:ietf:params:acme:error:rateLimited",
            "too many certificates already issued for example.com",
        )));
        assert_eq!(e.reason(), "AcmeRateLimited");
        assert!(e.to_string().contains("too many certificates already issued for example.com"));
        let e = AcmeError::from(instant_acme::Error::Api(problem(
            "urn:ietf:params:acme:error:malformed",
            "No order for ID abc",
        )));
        assert!(e.is_order_gone());
        assert_eq!(e.reason(), "AcmeOrderGone");
        let e = AcmeError::from(instant_acme::Error::Api(problem("urn:ietf:params:acme:error:dns", "NXDOMAIN")));
        assert!(!e.is_order_gone());
        assert_eq!(e.reason(), "AcmeRejected");
    }

    #[test]
    fn subproblems_are_part_of_the_text() {
        let p: Problem = serde_json::from_value(serde_json::json!({
            "type": "urn:ietf:params:acme:error:compound", "detail": "two names failed",
            "subproblems": [{"type": "urn:ietf:params:acme:error:dns", "detail": "a.test: SERVFAIL"}]
        }))
        .unwrap();
        assert_eq!(problem_text(&p), "two names failed; a.test: SERVFAIL");
    }
}
