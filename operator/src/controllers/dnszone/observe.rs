//! What a reconcile reads before it writes: the records the DnsZone wants (with the addresses of
//! the CloudPods they follow and the DKIM keys made for the zone), and whose the PowerDNS zone is.

use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::dnszone::{DnsZone, DnsZonePhase, dkim_secret_name};
use mpanel_crds::reasons;

use super::pass::Pass;
use super::records::{self, InvalidRecord, Wanted};
use super::{CONFLICT, Context, Error};
use crate::controllers::During;
use crate::controllers::mailbox::dkim;
use crate::controllers::publish;
use crate::providers::powerdns::DnsApi;

/// The DKIM public keys the operator made for the zone (when `mail.dkim` asks for such a key),
/// read from the zone's key Secret in its namespace.
pub(super) async fn generated_dkim_keys(zone: &DnsZone, client: &kube::Client) -> Result<dkim::Published, Error> {
    let Some(request) = zone.spec.mail.as_ref().and_then(|m| m.dkim.as_ref()).filter(|d| d.generated()) else {
        return Ok(dkim::Published::default());
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &zone.namespace().unwrap_or_default());
    let secret = secrets
        .get_opt(&dkim_secret_name(&zone.spec.zone))
        .await
        .during(format!("reading Secret {}", dkim_secret_name(&zone.spec.zone)))?;
    Ok(dkim::published(&zone.spec.zone, secret.as_ref(), request))
}

/// The rrsets the spec asks for, records that follow a CloudPod taking its address, with the
/// records of the DKIM keys made for the zone.
pub(super) fn wanted_records<P>(
    zone: &DnsZone,
    ctx: &Context<P>,
    dkim_keys: &dkim::Published,
) -> Result<Wanted, InvalidRecord> {
    let ns = zone.namespace().unwrap_or_default();
    records::wanted(&zone.spec, |pod| {
        ctx.cloudpods.get(&ObjectRef::new(pod).within(&ns)).and_then(|cp| cp.status.as_ref()?.ip_address.clone())
    })
    .and_then(|mut wanted| {
        for (selector, public_key) in &dkim_keys.keys {
            records::add_dkim(&mut wanted, &zone.spec.zone, selector, public_key)?;
        }
        Ok(wanted)
    })
}

/// Sets the conditions of a zone that exists in PowerDNS as another object's.
pub(super) async fn owned_elsewhere<P: DnsApi>(pass: &mut Pass<'_, P>) {
    // the account is another object's UID: not shown
    let message =
        format!("zone {} already exists in PowerDNS and is not this object's; it is left untouched", pass.name);
    let new = pass.set(Observation::new(CONFLICT, true, reasons::ZONE_OWNED_ELSEWHERE.name, message.clone()));
    pass.set(Observation::new(READY, false, reasons::CONFLICT.name, message.clone()));
    pass.status.phase = Some(DnsZonePhase::Conflict);
    pass.status.observed_generation = pass.generation;
    if new {
        publish(&pass.ctx.recorder, pass.zone, true, reasons::CONFLICT.name, "Observe", message).await;
    }
}
