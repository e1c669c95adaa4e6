//! The check of a webhook's `Stripe-Signature` header.
//!
//! The header is a comma-separated list of `key=value` elements: one `t` (the Unix time Stripe
//! signed at) and one or more `v1` (hex HMAC-SHA256 signatures; there are several while an
//! endpoint's secret is being rolled). Other schemes, such as the test-mode `v0`, are ignored. The
//! signed payload is the `t` value exactly as it appears in the header, a dot, and the raw request
//! body; the HMAC key is the endpoint's whole signing secret, `whsec_` prefix included.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far the signing time may be from now, as Stripe's own libraries default to.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request had no `Stripe-Signature` header, or an empty one.
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    /// The header is not a list of `key=value` elements with one integer `t` and a `v1`.
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    /// No `v1` signature is the HMAC of this body and timestamp under this secret.
    #[error("no signature in the Stripe-Signature header matches the payload")]
    NoValidSignature,
    /// The signature is valid but was made longer ago than the tolerance allows.
    #[error("the Stripe-Signature timestamp is {age_secs} s old, more than the tolerance")]
    Stale { age_secs: i64 },
    /// The signature is valid but its timestamp lies further in the future than the tolerance.
    #[error("the Stripe-Signature timestamp is {ahead_secs} s in the future, more than the tolerance")]
    FromFuture { ahead_secs: i64 },
}

impl SignatureError {
    /// A stable name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader => "SignatureMissing",
            Self::Malformed(_) => "SignatureMalformed",
            Self::NoValidSignature => "SignatureMismatch",
            Self::Stale { .. } => "SignatureStale",
            Self::FromFuture { .. } => "SignatureFromFuture",
        }
    }
}

/// Checks that `header` (the `Stripe-Signature` value) signs `payload` (the raw body, as
/// received) under `secret`, and that its timestamp is within `tolerance_secs` of `now_unix`
/// either way. The signatures are compared in constant time; the timestamp is checked only once a
/// signature matched.
pub fn verify(
    payload: &[u8],
    header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for element in header.split(',') {
        let (key, value) =
            element.trim().split_once('=').ok_or(SignatureError::Malformed("an element is not key=value"))?;
        match key {
            "t" if timestamp.is_some() => return Err(SignatureError::Malformed("more than one t")),
            "t" => timestamp = Some(value),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    let signed_at: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed("t is not an integer"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }

    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::NoValidSignature)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    let matched = signatures.iter().any(|candidate| {
        // an entry that is not hex cannot match; another entry still may
        hex::decode(candidate).is_ok_and(|tag| mac.clone().verify_slice(&tag).is_ok())
    });
    if !matched {
        return Err(SignatureError::NoValidSignature);
    }

    let age_secs = now_unix.saturating_sub(signed_at);
    if age_secs > tolerance_secs {
        return Err(SignatureError::Stale { age_secs });
    }
    if -age_secs > tolerance_secs {
        return Err(SignatureError::FromFuture { ahead_secs: -age_secs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    const NOW: i64 = 1_800_000_000;

    fn hex_mac(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn header(secret: &str, t: i64, body: &[u8]) -> String {
        format!("t={t},v1={}", hex_mac(secret, &t.to_string(), body))
    }

    #[test]
    fn accepts_a_valid_signature() {
        assert_eq!(verify(BODY, &header(SECRET, NOW - 10, BODY), SECRET, NOW, 300), Ok(()));
        // with a v0 entry and spaces around the elements, as some proxies reformat them
        let h = format!("t={}, v1={}, v0=abcdef", NOW, hex_mac(SECRET, &NOW.to_string(), BODY));
        assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Ok(()));
    }

    #[test]
    fn rejects_another_secret() {
        let h = header("whsec_other", NOW, BODY);
        assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Err(SignatureError::NoValidSignature));
        // the key is the whole secret: signing with the part after whsec_ does not match either
        let h = header(SECRET.trim_start_matches("whsec_"), NOW, BODY);
        assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn rejects_a_tampered_body() {
        let h = header(SECRET, NOW, BODY);
        let tampered = br#"{"id":"evt_1","type":"checkout.session.expired"}"#;
        assert_eq!(verify(tampered, &h, SECRET, NOW, 300), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn rejects_a_changed_timestamp() {
        let sig = hex_mac(SECRET, &NOW.to_string(), BODY);
        let h = format!("t={},v1={sig}", NOW + 1);
        assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn rejects_a_stale_signature() {
        assert_eq!(verify(BODY, &header(SECRET, NOW - 300, BODY), SECRET, NOW, 300), Ok(()));
        assert_eq!(
            verify(BODY, &header(SECRET, NOW - 301, BODY), SECRET, NOW, 300),
            Err(SignatureError::Stale { age_secs: 301 })
        );
    }

    #[test]
    fn rejects_a_signature_from_beyond_the_tolerance_in_the_future() {
        assert_eq!(verify(BODY, &header(SECRET, NOW + 300, BODY), SECRET, NOW, 300), Ok(()));
        assert_eq!(
            verify(BODY, &header(SECRET, NOW + 301, BODY), SECRET, NOW, 300),
            Err(SignatureError::FromFuture { ahead_secs: 301 })
        );
    }

    #[test]
    fn accepts_any_matching_v1_among_several() {
        let t = NOW.to_string();
        let old = hex_mac("whsec_old", &t, BODY);
        let new = hex_mac(SECRET, &t, BODY);
        for h in
            [format!("t={t},v1={old},v1={new}"), format!("t={t},v1={new},v1={old}"), format!("t={t},v1=zz,v1={new}")]
        {
            assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Ok(()), "{h}");
        }
        let h = format!("t={t},v1={old},v1=zz,v1={}", &new[..32]);
        assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn rejects_a_v0_signature_alone() {
        let t = NOW.to_string();
        let h = format!("t={t},v0={}", hex_mac(SECRET, &t, BODY));
        assert_eq!(verify(BODY, &h, SECRET, NOW, 300), Err(SignatureError::Malformed("no v1 signature")));
    }

    #[test]
    fn rejects_malformed_headers() {
        let sig = hex_mac(SECRET, &NOW.to_string(), BODY);
        assert_eq!(verify(BODY, "", SECRET, NOW, 300), Err(SignatureError::MissingHeader));
        assert_eq!(verify(BODY, "  ", SECRET, NOW, 300), Err(SignatureError::MissingHeader));
        for h in [
            format!("v1={sig}"),
            format!("t=,v1={sig}"),
            format!("t=abc,v1={sig}"),
            format!("t={NOW},t={NOW},v1={sig}"),
            format!("t={NOW};v1={sig}"),
            format!("t={NOW},{sig}"),
            format!("t={NOW}"),
            "garbage".to_owned(),
        ] {
            let err = verify(BODY, &h, SECRET, NOW, 300).err();
            assert!(matches!(err, Some(SignatureError::Malformed(_))), "{h}: {err:?}");
            assert_eq!(err.map(|e| e.reason()), Some("SignatureMalformed"));
        }
    }
}
