//! Private keys, CSRs, what an issued chain says about itself (validity, names, key), and the
//! mark on the Secrets that hold them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use mpanel_crds::certificate::{KeyAlgorithm, PrivateKey};
use mpanel_crds::reasons;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PublicKeyData};
use x509_parser::extensions::GeneralName;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot make a private key: {0}")]
    Generate(String),
    #[error("the private key is not usable: {0}")]
    BadKey(String),
    #[error("cannot make the certificate request: {0}")]
    Csr(String),
    #[error("the certificate chain cannot be read: {0}")]
    BadChain(String),
    #[error(
        "Secret {0} exists and was not made by the operator (it lacks the label mpanel.migrahosting.com/managed-by=mpanel-operator); \
         it is left untouched (delete it, or add the label to hand it over)"
    )]
    SecretNotOwned(String),
}

impl KeyError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotOwned(_) => reasons::SECRET_NOT_OWNED.name,
            Self::Generate(_) | Self::BadKey(_) | Self::Csr(_) | Self::BadChain(_) => reasons::KEY_ERROR.name,
        }
    }
}

/// The label on every Secret the operator writes. The chart's operator-owned-secrets policy lets
/// the operator create, change and delete no other Secret.
pub const MANAGED_BY_LABEL: &str = "mpanel.migrahosting.com/managed-by";
pub const MANAGED_BY: &str = "mpanel-operator";

/// `labels` with the operator's mark added.
pub fn managed_labels(mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    labels
}

/// Fails with `SecretNotOwned` for an existing Secret without the operator's mark: one the operator
/// did not write (or wrote before it marked its Secrets), which it must not overwrite.
pub fn check_managed(existing: Option<&Secret>) -> Result<(), KeyError> {
    match existing {
        Some(secret) if secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) => {
            Err(KeyError::SecretNotOwned(secret.name_any()))
        }
        _ => Ok(()),
    }
}

/// A new private key as `spec` asks for.
pub fn generate(spec: &PrivateKey) -> Result<KeyPair, KeyError> {
    match spec.algorithm {
        KeyAlgorithm::Ecdsa => {
            let alg =
                if spec.size == Some(384) { &rcgen::PKCS_ECDSA_P384_SHA384 } else { &rcgen::PKCS_ECDSA_P256_SHA256 };
            KeyPair::generate_for(alg).map_err(|e| KeyError::Generate(e.to_string()))
        }
        KeyAlgorithm::Rsa => {
            use rsa::pkcs8::EncodePrivateKey;
            let bits = spec.size.unwrap_or(2048) as usize;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| KeyError::Generate(e.to_string()))?;
            KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().to_vec().into(), &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| KeyError::Generate(e.to_string()))
        }
    }
}

/// A key stored as PEM (PKCS#8).
pub fn load(pem: &str) -> Result<KeyPair, KeyError> {
    KeyPair::from_pem(pem).map_err(|e| KeyError::BadKey(e.to_string()))
}

/// Whether `key` is what `spec` asks for (algorithm and size), so it can be reused.
pub fn fits(key: &KeyPair, spec: &PrivateKey) -> bool {
    let alg = key.algorithm();
    match spec.algorithm {
        KeyAlgorithm::Ecdsa if spec.size == Some(384) => alg == &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Ecdsa => alg == &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::Rsa => {
            let rsa = [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_RSA_SHA384, &rcgen::PKCS_RSA_SHA512];
            // the modulus dominates the encoded public key: 270 bytes for 2048 bits, 398 for 3072, 526 for 4096
            let bits = key.der_bytes().len().saturating_sub(14) * 8;
            rsa.contains(&alg) && bits.abs_diff(spec.size.unwrap_or(2048) as usize) < 256
        }
    }
}

/// A DER certificate request for `dns_names`, signed by `key`.
pub fn csr(dns_names: &[String], key: &KeyPair) -> Result<Vec<u8>, KeyError> {
    let mut params = CertificateParams::new(dns_names.to_vec()).map_err(|e| KeyError::Csr(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    let request = params.serialize_request(key).map_err(|e| KeyError::Csr(e.to_string()))?;
    Ok(request.der().to_vec())
}

/// What the leaf of a PEM chain says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// DNS names of the subject alternative names, lower case.
    pub dns_names: BTreeSet<String>,
    /// Serial number, hex.
    pub serial: String,
    /// The leaf's public key is the one of `key`.
    pub key_matches: bool,
}

/// Reads the leaf (first certificate) of `chain_pem` and checks it against `key`.
pub fn inspect(chain_pem: &[u8], key: &KeyPair) -> Result<Issued, KeyError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem).map_err(|e| KeyError::BadChain(e.to_string()))?;
    let leaf = pem.parse_x509().map_err(|e| KeyError::BadChain(e.to_string()))?;
    let at = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_second(t.timestamp()).map_err(|e| KeyError::BadChain(format!("validity out of range: {e}")))
    };
    let dns_names = match leaf.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => BTreeSet::new(),
        Err(e) => return Err(KeyError::BadChain(e.to_string())),
    };
    Ok(Issued {
        not_before: at(leaf.validity().not_before)?,
        not_after: at(leaf.validity().not_after)?,
        dns_names,
        serial: leaf.raw_serial_as_string(),
        key_matches: leaf.public_key().raw == key.subject_public_key_info().as_slice(),
    })
}

/// When to renew: `renewBefore` ahead of expiry, or at two thirds of the lifetime when
/// `renewBefore` is not shorter than the lifetime (as cert-manager does). In whole seconds (the
/// earlier one), as `status.renewalTime` holds it: a third of a lifetime such as 599 s is not, and
/// a time that differs from the stored one in its fraction would rewrite the status on every resync.
pub fn renewal_time(not_before: Timestamp, not_after: Timestamp, renew_before: Duration) -> Timestamp {
    let lifetime = not_after.duration_since(not_before).unsigned_abs();
    let before = if renew_before < lifetime { renew_before } else { lifetime / 3 };
    let at = jiff::SignedDuration::try_from(before).unwrap_or(jiff::SignedDuration::ZERO);
    let at = not_after.checked_sub(at).unwrap_or(not_before);
    Timestamp::from_second(at.as_second() - i64::from(at.subsec_nanosecond() < 0)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpanel_crds::certificate::RotationPolicy;

    fn spec(algorithm: KeyAlgorithm, size: Option<u32>) -> PrivateKey {
        PrivateKey { algorithm, size, rotation_policy: RotationPolicy::Always }
    }

    fn self_signed(names: &[&str], key: &KeyPair) -> String {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.self_signed(key).unwrap().pem()
    }

    #[test]
    fn keys_are_made_as_the_spec_asks_and_recognised_again() {
        let p256 = generate(&spec(KeyAlgorithm::Ecdsa, None)).unwrap();
        let p384 = generate(&spec(KeyAlgorithm::Ecdsa, Some(384))).unwrap();
        let rsa = generate(&spec(KeyAlgorithm::Rsa, Some(2048))).unwrap();
        assert!(fits(&p256, &spec(KeyAlgorithm::Ecdsa, Some(256))));
        assert!(!fits(&p256, &spec(KeyAlgorithm::Ecdsa, Some(384))));
        assert!(fits(&p384, &spec(KeyAlgorithm::Ecdsa, Some(384))));
        assert!(fits(&rsa, &spec(KeyAlgorithm::Rsa, None)));
        assert!(!fits(&rsa, &spec(KeyAlgorithm::Rsa, Some(4096))));
        assert!(!fits(&rsa, &spec(KeyAlgorithm::Ecdsa, None)));
        let again = load(&rsa.serialize_pem()).unwrap();
        assert_eq!(again.der_bytes(), rsa.der_bytes());
    }

    #[test]
    fn a_csr_names_every_dns_name_including_wildcards() {
        use x509_parser::prelude::FromDer;
        let key = generate(&spec(KeyAlgorithm::Ecdsa, None)).unwrap();
        let der = csr(&["example.test".into(), "*.example.test".into()], &key).unwrap();
        let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        let names: Vec<String> = req
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter().map(|n| n.to_string()))
            .collect();
        assert_eq!(names, ["DNSName(example.test)", "DNSName(*.example.test)"]);
    }

    #[test]
    fn inspect_reads_names_validity_and_whether_the_key_matches() {
        let key = generate(&spec(KeyAlgorithm::Ecdsa, None)).unwrap();
        let other = generate(&spec(KeyAlgorithm::Ecdsa, None)).unwrap();
        let pem = self_signed(&["Example.test", "*.example.test"], &key);
        let issued = inspect(pem.as_bytes(), &key).unwrap();
        assert!(issued.key_matches);
        assert_eq!(issued.dns_names, BTreeSet::from(["example.test".to_owned(), "*.example.test".to_owned()]));
        assert!(issued.not_after > issued.not_before);
        assert!(!inspect(pem.as_bytes(), &other).unwrap().key_matches);
        assert!(matches!(inspect(b"not a certificate", &key), Err(KeyError::BadChain(_))));
    }

    #[test]
    fn only_secrets_with_the_operators_mark_may_be_written() {
        let secret = |labels: &[(&str, &str)]| Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("www-tls".into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(check_managed(None).is_ok());
        let marked = secret(&[(MANAGED_BY_LABEL, MANAGED_BY), ("app", "web")]);
        assert!(check_managed(Some(&marked)).is_ok());
        for unmarked in [secret(&[]), secret(&[(MANAGED_BY_LABEL, "someone-else")])] {
            let err = check_managed(Some(&unmarked)).unwrap_err();
            assert_eq!(err.reason(), "SecretNotOwned");
            assert!(err.to_string().starts_with("Secret www-tls exists and was not made by the operator"), "{err}");
        }
        let labels = managed_labels(BTreeMap::from([("app".to_owned(), "web".to_owned())]));
        assert_eq!(labels.get(MANAGED_BY_LABEL).map(String::as_str), Some(MANAGED_BY));
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    }

    #[test]
    fn renewal_is_renew_before_ahead_of_expiry_or_at_two_thirds() {
        let nb = Timestamp::from_second(1_000_000).unwrap();
        let na = Timestamp::from_second(1_000_000 + 90 * 86400).unwrap();
        let day = Duration::from_secs(86400);
        assert_eq!(renewal_time(nb, na, 30 * day).as_second(), 1_000_000 + 60 * 86400);
        // renewBefore longer than the lifetime: two thirds
        let short = Timestamp::from_second(1_000_600).unwrap();
        assert_eq!(renewal_time(nb, short, 30 * day).as_second(), 1_000_400);
    }
}
