//! What a reconcile sees before it acts: the certificate in the Secret (with its key), whether and
//! why a new one is needed, and the DnsZones of the Certificate's namespace.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use mpanel_crds::certificate::Certificate;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::formats::parse_duration;
use mpanel_crds::reasons;
use rcgen::KeyPair;

use super::keys::{self, Issued};
use super::{CERTIFICATE_LABEL, Context, DEFAULT_RENEW_BEFORE, Providers, Step, dns01};
use crate::names::{Claim, Names};

/// The certificate in the Secret, read with its key.
pub(super) struct Current {
    pub(super) issued: Issued,
    pub(super) key: KeyPair,
}

/// The Secret's certificate and what follows from it at `at`.
pub(super) struct Observed {
    pub(super) current: Option<Current>,
    pub(super) renewal: Option<Timestamp>,
    /// Why a new certificate is needed, if it is.
    pub(super) need: Option<String>,
    /// A certificate that still serves: its key matches and it has not expired.
    pub(super) usable: bool,
    pub(super) at: Timestamp,
}

/// Reads the certificate in `secret` and shows its validity in the status.
pub(super) fn observe(secret: Option<&Secret>, cert: &Certificate, step: &mut Step, t: Timestamp) -> Observed {
    let current = secret.and_then(read_secret);
    let renew_before = parse_duration(&cert.spec.renew_before).unwrap_or(DEFAULT_RENEW_BEFORE);
    let renewal = current.as_ref().map(|c| keys::renewal_time(c.issued.not_before, c.issued.not_after, renew_before));
    step.status.not_before = current.as_ref().map(|c| Time(c.issued.not_before));
    step.status.not_after = current.as_ref().map(|c| Time(c.issued.not_after));
    step.status.renewal_time = renewal.map(Time);
    let need = needs_issuing(current.as_ref(), cert, t, renewal);
    let usable = current.as_ref().is_some_and(|c| c.issued.key_matches && t < c.issued.not_after);
    Observed { current, renewal, need, usable, at: t }
}

/// Ready as the observed certificate has it.
pub(super) fn show_readiness(step: &mut Step, observed: &Observed) {
    match (&observed.need, observed.usable) {
        (None, _) => {
            let c = observed.current.as_ref().map(|c| c.issued.not_after.to_string()).unwrap_or_default();
            step.set(Observation::new(READY, true, reasons::ISSUED.name, format!("certificate valid until {c}")));
        }
        // a certificate that still serves stays Ready while its successor is obtained
        (Some(_), true) => {}
        // a Ready=False that says why the last attempt failed is kept until one succeeds
        (Some(why), false) => {
            if conditions::find(&step.status.conditions, READY).is_none_or(|c| c.status == "True") {
                step.set(Observation::new(READY, false, reasons::NOT_ISSUED.name, why.clone()));
            }
        }
    }
}

/// Why a new certificate is needed, if it is.
fn needs_issuing(
    current: Option<&Current>,
    cert: &Certificate,
    now: Timestamp,
    renewal: Option<Timestamp>,
) -> Option<String> {
    let Some(current) = current else {
        return Some(format!("Secret {} holds no certificate yet", cert.spec.secret_name));
    };
    let wanted: std::collections::BTreeSet<String> =
        cert.spec.dns_names.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
    if current.issued.dns_names != wanted {
        return Some("the certificate's names differ from dnsNames".to_owned());
    }
    if !current.issued.key_matches {
        return Some("the certificate does not match the private key in the Secret".to_owned());
    }
    if !keys::fits(&current.key, &cert.spec.private_key) {
        return Some("the private key is not the algorithm or size privateKey asks for".to_owned());
    }
    if now >= current.issued.not_after {
        return Some(format!("the certificate expired at {}", current.issued.not_after));
    }
    match renewal {
        Some(at) if now >= at => Some(format!("renewal time {at} reached")),
        _ => None,
    }
}

/// The Secret is this Certificate's: it controls it, or it carries its label and no controller
/// (left behind by an earlier Certificate of the same name with `deletionPolicy: Orphan`).
pub(super) fn is_ours(secret: &Secret, cert: &Certificate) -> bool {
    let uid = cert.uid().unwrap_or_default();
    let controller = secret.owner_references().iter().find(|o| o.controller == Some(true));
    match controller {
        Some(owner) => owner.uid == uid,
        None => secret.labels().get(CERTIFICATE_LABEL) == Some(&cert.name_any()),
    }
}

fn read_secret(secret: &Secret) -> Option<Current> {
    let data = secret.data.as_ref()?;
    let key_pem = String::from_utf8(data.get("tls.key")?.0.clone()).ok()?;
    let key = keys::load(&key_pem).ok()?;
    let issued = keys::inspect(&data.get("tls.crt")?.0, &key).ok()?;
    Some(Current { issued, key })
}

/// Names of the Certificate that no DnsZone of its namespace serves.
pub(super) fn unserved_names<P: Providers>(cert: &Certificate, ctx: &Context<P>) -> Vec<String> {
    let (zones, names) = namespace_zones(cert, ctx);
    cert.spec
        .dns_names
        .iter()
        .filter(|n| dns01::zone_for(zones.iter().map(Arc::as_ref), &names, n).is_none())
        .cloned()
        .collect()
}

/// The DnsZones of the Certificate's namespace, and the name index's decision on the
/// Certificate's names (which sees those zones, also those its own watch has not delivered yet).
pub(super) fn namespace_zones<P: Providers>(cert: &Certificate, ctx: &Context<P>) -> (Vec<Arc<DnsZone>>, Names) {
    let ns = cert.namespace();
    let zones: Vec<Arc<DnsZone>> = ctx.dnszones.state().into_iter().filter(|z| z.namespace() == ns).collect();
    let dns_names = cert.spec.dns_names.iter().map(String::as_str);
    let names = ctx.names.decision_for(dns_names, zones.iter().map(|z| Claim::of_zone(z)));
    (zones, names)
}
