//! What deleting a DnsZone removes: its zone in PowerDNS, when the zone is this object's.

use kube::ResourceExt;
use kube::runtime::controller::Action;
use mpanel_crds::common::{DeletionPolicy, ReconcileMode};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::reasons;

use super::{Context, Error};
use crate::controllers::publish;
use crate::providers::powerdns::{DnsApi, canonical};

pub(super) async fn cleanup<P: DnsApi>(zone: &DnsZone, mode: ReconcileMode, ctx: &Context<P>) -> Result<Action, Error> {
    let name = canonical(&zone.spec.zone);
    if zone.spec.deletion_policy == DeletionPolicy::Orphan || mode == ReconcileMode::ObserveOnly {
        return Ok(Action::await_change());
    }
    match ctx.dns.zone(&name).await? {
        Some(existing) if existing.account == zone.uid().unwrap_or_default() => {
            ctx.dns.delete_zone(&name).await?;
        }
        Some(_) => {
            let note = format!("zone {name} is not this object's; it was left in PowerDNS");
            publish(&ctx.recorder, zone, true, reasons::NOT_OWNER.name, "DeleteZone", note).await;
        }
        None => {}
    }
    Ok(Action::await_change())
}
