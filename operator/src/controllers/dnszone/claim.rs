//! Whether this DnsZone may write its zone at all: never a public suffix, and never a zone inside
//! or above a name another namespace holds (as the name index decides).

use kube::runtime::controller::Action;
use mpanel_crds::conditions::Observation;
use mpanel_crds::dnszone::DnsZonePhase;
use mpanel_crds::reasons;

use super::pass::Pass;
use super::{CONFLICT, Error};
use crate::controllers::During;
use crate::controllers::publish;
use crate::names::Claim;
use crate::providers::powerdns::DnsApi;

/// When the zone may not be written: its conditions set (and an Event published when that is
/// news), and what the reconcile does next; `None` when it may be written.
pub(super) async fn refused<P: DnsApi>(pass: &mut Pass<'_, P>, requeue: &Action) -> Result<Option<Action>, Error> {
    let (zone, ctx) = (pass.zone, pass.ctx);
    if crate::names::is_public_suffix(&zone.spec.zone) {
        let plain = crate::names::plain(&zone.spec.zone);
        let message =
            format!("zone {plain} is a public suffix; a zone must be a registered domain or a name under one");
        if pass.not_ready(Some(DnsZonePhase::Failed), reasons::PUBLIC_SUFFIX.name, message.clone()) {
            publish(&ctx.recorder, zone, true, reasons::PUBLIC_SUFFIX.name, "Claim", message).await;
        }
        return Ok(Some(Action::await_change()));
    }
    let may_act = ctx.names.may_act(&ctx.client, Claim::of_zone(zone)).await;
    if may_act.during("listing DnsZones and Domains for the name claim")? {
        return Ok(None);
    }
    let plain = crate::names::plain(&zone.spec.zone);
    let message =
        format!("zone {plain} is inside or above a name another namespace holds; nothing was written to PowerDNS");
    let new = pass.set(Observation::new(CONFLICT, true, reasons::NAME_HELD_ELSEWHERE.name, message.clone()));
    pass.not_ready(Some(DnsZonePhase::Conflict), reasons::NAME_HELD_ELSEWHERE.name, message.clone());
    if new {
        publish(&ctx.recorder, zone, true, reasons::NAME_HELD_ELSEWHERE.name, "Claim", message).await;
    }
    // the holder may go away: looked at again at the next resync
    Ok(Some(requeue.clone()))
}
