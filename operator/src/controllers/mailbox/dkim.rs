//! DKIM for a namespace's mail domains: the operator makes the key pair, keeps it in the Secret
//! `dkim-<domain>` of the namespace, and writes the private half to mail-core's `dkim_key` table,
//! which OpenDKIM reads for every message; the domain's DnsZone publishes the public half.
//!
//! The DnsZone of the mail domain (in the same namespace) asks for it: `mail.dkim` with a selector
//! and no `publicKey`. A new selector gets a new key; the keys of earlier selectors stay in the
//! Secret, so their records stay published while the DnsZone lists them in `previousSelectors`.
//! Only a mail domain this namespace may use (see `domains`) ever gets a key row, and a row is
//! changed or removed only under the namespace's marker.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::dnszone::{Dkim, DnsZone, dkim_secret_name};
use mpanel_crds::reasons;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::controllers::certificate::keys::{MANAGED_BY, MANAGED_BY_LABEL, check_managed, managed_labels};
use crate::controllers::{During, KubeCall};
use crate::providers::mailcore::{DkimKeyRow, MailApi};
use crate::providers::powerdns::canonical;

/// Size of the keys made when the DnsZone does not say.
pub const DEFAULT_BITS: u32 = 2048;
/// The annotation on a key Secret naming the mail domain its keys sign for.
pub const DOMAIN_ANNOTATION: &str = "mpanel.migrahosting.com/dkim-domain";

/// The Secret key holding a selector's private key (PEM, PKCS#8).
pub fn private_key_field(selector: &str) -> String {
    format!("{selector}.key")
}

/// The Secret key holding a selector's DNS record text, for people to read.
pub fn record_field(selector: &str) -> String {
    format!("{selector}.txt")
}

/// The DKIM record text of a public key (base64 DER, the `p=` tag).
pub fn record_text(public_key: &str) -> String {
    format!("v=DKIM1; k=rsa; p={public_key}")
}

/// The `mail.dkim` of the namespace's DnsZone for `domain`, when it asks for a key the operator
/// makes; with the DnsZone's name.
pub fn requested(zones: &Store<DnsZone>, namespace: &str, domain: &str) -> Option<(String, Dkim)> {
    let wanted = canonical(domain);
    zones.state().into_iter().find_map(|z| {
        let dkim = z.spec.mail.as_ref()?.dkim.as_ref()?;
        (z.namespace().as_deref() == Some(namespace)
            && canonical(&z.spec.zone.to_ascii_lowercase()) == wanted
            && dkim.generated())
        .then(|| (z.name_any(), dkim.clone()))
    })
}

/// What stands in the way of a key, in words for the condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The Secret exists without the operator's mark.
    SecretNotOwned(String),
    /// Another writer changed the Secret between the read and the write: look again.
    Raced,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot make a DKIM key: {0}")]
    Generate(String),
    #[error("the DKIM key of selector {selector} in Secret {secret} is not a PKCS#8 PEM RSA key: {message}")]
    Unreadable { secret: String, selector: String, message: String },
}

/// A private key as PEM (PKCS#8) and its public half as the `p=` tag's base64.
pub struct KeyPair {
    pub private_pem: String,
    pub public_key: String,
}

/// A new RSA key of `bits`; slow, so run it through `cpu_bound`.
pub fn generate(bits: u32) -> Result<KeyPair, KeyError> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits as usize)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Generate(e.to_string()))?.to_string();
    let public_key = public_of(&key).map_err(KeyError::Generate)?;
    Ok(KeyPair { private_pem, public_key })
}

fn public_of(key: &rsa::RsaPrivateKey) -> Result<String, String> {
    let der = key.to_public_key().to_public_key_der().map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

/// The public key (the `p=` tag) of a PEM private key.
pub fn public_key_of(private_pem: &str) -> Result<String, String> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).map_err(|e| e.to_string())?;
    public_of(&key)
}

/// The private key of `selector` in a key Secret.
pub fn private_key_in(secret: &Secret, selector: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(&private_key_field(selector))?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Whether the operator made (and may change) this Secret.
pub fn is_managed(secret: &Secret) -> bool {
    check_managed(Some(secret)).is_ok()
}

/// What a DnsZone publishes for a `mail.dkim` whose key the operator makes: `(selector, public
/// key)` for the selector and each previous one with a key in the Secret, and, while the
/// selector's own key is not there, why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub keys: Vec<(String, String)>,
    pub waiting: Option<String>,
}

/// What `secret` (the zone's key Secret, if any) lets a DnsZone with `dkim` publish.
pub fn published(zone: &str, secret: Option<&Secret>, dkim: &Dkim) -> Published {
    let name = dkim_secret_name(zone);
    let mut out = Published::default();
    let secret = match secret {
        Some(s) if is_managed(s) => s,
        Some(_) => {
            out.waiting = Some(format!(
                "Secret {name} exists without the operator's mark ({MANAGED_BY_LABEL}={MANAGED_BY}); no DKIM key \
                 in it is published"
            ));
            return out;
        }
        None => {
            out.waiting = Some(format!(
                "no DKIM key for selector {} yet: it is made (in Secret {name}) once a Mailbox of this namespace uses \
                 the mail domain",
                dkim.selector
            ));
            return out;
        }
    };
    for selector in std::iter::once(&dkim.selector).chain(&dkim.previous_selectors) {
        match private_key_in(secret, selector).map(|pem| public_key_of(&pem)) {
            Some(Ok(public)) => out.keys.push((selector.clone(), public)),
            Some(Err(message)) if *selector == dkim.selector => {
                out.waiting = Some(format!("the key of selector {selector} in Secret {name} is unreadable: {message}"));
            }
            None if *selector == dkim.selector => {
                out.waiting = Some(format!(
                    "no DKIM key for selector {selector} in Secret {name} yet: it is made once a Mailbox of this \
                     namespace uses the mail domain"
                ));
            }
            // a previous selector without a usable key has nothing to publish
            _ => {}
        }
    }
    out
}

/// The private key of `selector` for `domain`, from the namespace's key Secret; made and added to
/// it when missing. A Secret without the operator's mark is never written or used.
pub async fn ensure_key(
    client: &Client,
    namespace: &str,
    domain: &str,
    selector: &str,
    bits: u32,
) -> Result<Result<String, KeyRefusal>, super::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = dkim_secret_name(domain);
    let existing = api.get_opt(&name).await.during(format!("reading Secret {name}"))?;
    if let Some(secret) = &existing {
        if !is_managed(secret) {
            return Ok(Err(KeyRefusal::SecretNotOwned(name)));
        }
        if let Some(pem) = private_key_in(secret, selector) {
            return match public_key_of(&pem) {
                Ok(_) => Ok(Ok(pem)),
                Err(message) => {
                    Err(KeyError::Unreadable { secret: name, selector: selector.to_owned(), message }.into())
                }
            };
        }
    }
    let pair = crate::cpu_bound::run(move || generate(bits)).await?;
    let mut data = BTreeMap::new();
    data.insert(private_key_field(selector), ByteString(pair.private_pem.clone().into_bytes()));
    data.insert(record_field(selector), ByteString(record_text(&pair.public_key).into_bytes()));
    let written = match existing {
        // the resourceVersion makes a concurrent change (another Mailbox of the domain adding the
        // same selector's key) a conflict instead of two keys for one selector
        Some(mut secret) => {
            secret.data.get_or_insert_with(BTreeMap::new).extend(data);
            api.replace(&name, &PostParams::default(), &secret).await
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(managed_labels(BTreeMap::new())),
                    annotations: Some(BTreeMap::from([(DOMAIN_ANNOTATION.to_owned(), domain.to_owned())])),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(data),
                ..Secret::default()
            };
            api.create(&PostParams::default(), &secret).await
        }
    };
    match written {
        Ok(_) => Ok(Ok(pair.private_pem)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Err(KeyRefusal::Raced)),
        Err(e) => Err(KubeCall::new("writing the DKIM key Secret", e).into()),
    }
}

/// How one mail domain stands with DKIM after a reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainSigning {
    /// mail-core signs with this selector's key.
    Signing { selector: String },
    /// No DnsZone asks for a key the operator makes; no key row of this namespace is left.
    NotRequested,
    /// The key Secret is not the operator's.
    SecretNotOwned(String),
    /// mail-core holds a key for the domain that is not this namespace's.
    RowOwnedElsewhere,
    /// Another writer was faster: look again shortly.
    Raced,
}

/// Makes mail-core sign `domain`'s mail as the namespace's DnsZone asks, or stop signing it.
/// `marker` is the namespace's domain marker.
pub async fn sync_domain<M: MailApi>(
    client: &Client,
    mail: &M,
    zones: &Store<DnsZone>,
    namespace: &str,
    domain: &str,
    marker: &str,
) -> Result<DomainSigning, super::Error> {
    let row = mail.dkim_key(domain).await?;
    if row.as_ref().is_some_and(|r| r.owner != marker) {
        return Ok(DomainSigning::RowOwnedElsewhere);
    }
    let Some((_, dkim)) = requested(zones, namespace, domain) else {
        if row.is_some() {
            mail.delete_dkim_key(domain, marker).await?;
        }
        return Ok(DomainSigning::NotRequested);
    };
    let bits = dkim.key_bits.unwrap_or(DEFAULT_BITS);
    let pem = match ensure_key(client, namespace, domain, &dkim.selector, bits).await? {
        Ok(pem) => pem,
        Err(KeyRefusal::SecretNotOwned(name)) => return Ok(DomainSigning::SecretNotOwned(name)),
        Err(KeyRefusal::Raced) => return Ok(DomainSigning::Raced),
    };
    let wanted = DkimKeyRow {
        domain: domain.to_owned(),
        selector: dkim.selector.clone(),
        private_key: pem,
        owner: marker.to_owned(),
    };
    if row.as_ref() != Some(&wanted) && !mail.put_dkim_key(&wanted).await? {
        return Ok(DomainSigning::RowOwnedElsewhere);
    }
    Ok(DomainSigning::Signing { selector: dkim.selector })
}

/// The DkimSigning condition for the outcomes of a Mailbox's mail domains: a problem first, then
/// signing if any domain signs, else not requested. `None` while a domain raced.
pub fn condition(outcomes: &[(String, DomainSigning)]) -> Option<(bool, &'static str, String)> {
    let words: Vec<String> = outcomes
        .iter()
        .map(|(domain, o)| match o {
            DomainSigning::Signing { selector } => {
                format!("mail from {domain} is signed with selector {selector} (key in Secret {})", dkim_secret_name(domain))
            }
            DomainSigning::NotRequested => format!(
                "mail from {domain} is not signed: no DnsZone of this namespace for it asks for a DKIM key the \
                 operator makes"
            ),
            DomainSigning::SecretNotOwned(name) => format!(
                "mail from {domain} is not signed: Secret {name} exists without the operator's mark \
                 ({MANAGED_BY_LABEL}={MANAGED_BY}); it is left untouched"
            ),
            DomainSigning::RowOwnedElsewhere => {
                format!("mail from {domain} is not signed by this namespace: mail-core holds a DKIM key for it that is not this namespace's; it is left untouched")
            }
            DomainSigning::Raced => String::new(),
        })
        .collect();
    let message = words.join("; ");
    let has = |f: fn(&DomainSigning) -> bool| outcomes.iter().any(|(_, o)| f(o));
    if has(|o| matches!(o, DomainSigning::Raced)) {
        None
    } else if has(|o| matches!(o, DomainSigning::RowOwnedElsewhere)) {
        Some((false, reasons::ROW_OWNED_ELSEWHERE.name, message))
    } else if has(|o| matches!(o, DomainSigning::SecretNotOwned(_))) {
        Some((false, reasons::SECRET_NOT_OWNED.name, message))
    } else if has(|o| matches!(o, DomainSigning::Signing { .. })) {
        Some((true, reasons::SIGNING.name, message))
    } else {
        Some((false, reasons::DKIM_NOT_REQUESTED.name, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dkim(selector: &str, previous: &[&str]) -> Dkim {
        Dkim {
            selector: selector.into(),
            public_key: None,
            key_bits: None,
            previous_selectors: previous.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn secret(managed: bool, keys: &[(&str, &str)]) -> Secret {
        let labels = managed.then(|| BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]));
        Secret {
            metadata: ObjectMeta { name: Some("dkim-example.com".into()), labels, ..ObjectMeta::default() },
            data: Some(
                keys.iter().map(|(s, pem)| (private_key_field(s), ByteString(pem.as_bytes().to_vec()))).collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn a_generated_key_is_pkcs8_pem_whose_public_half_is_the_record() {
        let pair = generate(2048).unwrap();
        assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{}", pair.private_pem);
        assert_eq!(public_key_of(&pair.private_pem).unwrap(), pair.public_key);
        // a 2048-bit SubjectPublicKeyInfo is 294 bytes: 392 base64 characters
        assert_eq!(pair.public_key.len(), 392);
        assert!(record_text(&pair.public_key).starts_with("v=DKIM1; k=rsa; p=MIIBIjANBg"));
    }

    #[test]
    fn the_selector_and_previous_selectors_with_keys_are_published() {
        let (a, b) = (generate(2048).unwrap(), generate(2048).unwrap());
        let s = secret(true, &[("s2", &a.private_pem), ("s1", &b.private_pem)]);
        let p = published("example.com", Some(&s), &dkim("s2", &["s1", "s0"]));
        assert_eq!(p.keys, vec![("s2".to_owned(), a.public_key.clone()), ("s1".to_owned(), b.public_key.clone())]);
        assert_eq!(p.waiting, None);
        // without the previous selector in the list its record goes
        let p = published("example.com", Some(&s), &dkim("s2", &[]));
        assert_eq!(p.keys, vec![("s2".to_owned(), a.public_key)]);
    }

    #[test]
    fn a_missing_key_or_a_secret_without_the_mark_publishes_nothing_and_says_why() {
        let none = published("example.com", None, &dkim("s1", &[]));
        assert!(none.keys.is_empty() && none.waiting.as_deref().is_some_and(|w| w.contains("selector s1")));
        let pair = generate(2048).unwrap();
        let foreign = published("example.com", Some(&secret(false, &[("s1", &pair.private_pem)])), &dkim("s1", &[]));
        assert!(foreign.keys.is_empty() && foreign.waiting.as_deref().is_some_and(|w| w.contains("mark")));
        let other = published("example.com", Some(&secret(true, &[("s0", &pair.private_pem)])), &dkim("s1", &[]));
        assert!(other.keys.is_empty() && other.waiting.is_some());
    }

    #[test]
    fn the_condition_puts_problems_before_signing_and_signing_before_not_requested() {
        let signing = ("a.example".to_owned(), DomainSigning::Signing { selector: "s1".into() });
        let not = ("b.example".to_owned(), DomainSigning::NotRequested);
        let elsewhere = ("c.example".to_owned(), DomainSigning::RowOwnedElsewhere);
        assert_eq!(condition(&[signing.clone(), not.clone()]).map(|c| (c.0, c.1)), Some((true, "Signing")));
        assert_eq!(condition(std::slice::from_ref(&not)).map(|c| (c.0, c.1)), Some((false, "DkimNotRequested")));
        assert_eq!(condition(&[signing.clone(), elsewhere]).map(|c| (c.0, c.1)), Some((false, "RowOwnedElsewhere")));
        assert_eq!(condition(&[signing, ("d.example".to_owned(), DomainSigning::Raced)]), None);
        let message = condition(&[not]).map(|c| c.2).unwrap_or_default();
        assert!(message.contains("b.example") && !message.contains("namespace/"), "{message}");
    }
}
