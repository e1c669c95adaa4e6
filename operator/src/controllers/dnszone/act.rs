//! Writes to PowerDNS: a zone this object asks for that does not exist yet, and the rrsets that
//! differ from the spec (whole-rrset REPLACE/DELETE in one atomic PATCH).

use std::ops::ControlFlow;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use mpanel_crds::conditions;
use mpanel_crds::dnszone::ZoneKind;
use mpanel_crds::reasons;

use super::pass::Pass;
use super::records::Wanted;
use super::{Error, KIND, PROGRAMMED};
use crate::controllers::publish;
use crate::providers::powerdns::{DnsApi, NewZone, PowerDnsError, RrSet, Zone, canonical};

/// The rrsets a new zone starts with; the apex NS set comes from `nameservers`.
fn initial_rrsets(wanted: &Wanted, zone: &str) -> Vec<RrSet> {
    wanted
        .rrsets
        .iter()
        .filter(|((name, rtype), _)| !(name == zone && rtype == "NS"))
        .map(|((name, rtype), want)| RrSet {
            changetype: None,
            ..RrSet::replace(name.clone(), rtype.clone(), want.ttl, want.contents.iter().cloned())
        })
        .collect()
}

/// Creates the zone with the wanted rrsets and this object's UID as its account; returns it as
/// PowerDNS then holds it.
pub(super) async fn create_zone<P: DnsApi>(pass: &Pass<'_, P>, wanted: &Wanted) -> Result<Option<Zone>, PowerDnsError> {
    let (zone, ctx, name) = (pass.zone, pass.ctx, &pass.name);
    let new_zone = NewZone {
        name: name.clone(),
        kind: match zone.spec.kind {
            ZoneKind::Native => "Native",
            ZoneKind::Master => "Master",
        }
        .to_owned(),
        nameservers: zone.spec.nameservers.iter().map(|n| canonical(&n.to_ascii_lowercase())).collect(),
        account: zone.uid().unwrap_or_default(),
        soa_edit_api: "DEFAULT".to_owned(),
        rrsets: initial_rrsets(wanted, name),
    };
    ctx.dns.create_zone(&new_zone).await?;
    let message = format!("created zone {name} in PowerDNS");
    let event = publish(&ctx.recorder, zone, false, reasons::CREATED.name, "CreateZone", message);
    // the Event and the read-back are independent: made at once
    let ((), created) = tokio::join!(event, ctx.dns.zone(name));
    created
}

/// Writes `patch` (rrsets that differ) and reports a repaired drift; returns the zone as PowerDNS
/// then holds it, or what the reconcile does next when the zone is gone.
pub(super) async fn patch_rrsets<P: DnsApi>(
    pass: &mut Pass<'_, P>,
    patch: &[RrSet],
) -> Result<ControlFlow<Action, Zone>, Error> {
    let (zone, ctx) = (pass.zone, pass.ctx);
    if let Err(e) = ctx.dns.patch_rrsets(&pass.name, patch).await {
        return Err(pass.fail(e).await);
    }
    let was = zone.status.clone().unwrap_or_default();
    let programmed_before = conditions::find(&was.conditions, PROGRAMMED).is_some_and(|c| c.status == "True");
    if was.observed_generation == pass.generation && programmed_before {
        ctx.metrics.drift_repaired(KIND);
        publish(
            &ctx.recorder,
            zone,
            true,
            reasons::DRIFT_REPAIRED.name,
            "PatchRRSets",
            format!("{} rrsets were changed outside the operator and restored", patch.len()),
        )
        .await;
    }
    pass.status.last_sync_time = Some(pass.t.clone());
    match ctx.dns.zone(&pass.name).await {
        Ok(Some(after)) => Ok(ControlFlow::Continue(after)),
        Ok(None) => Ok(ControlFlow::Break(Action::requeue(Duration::from_secs(1)))),
        Err(e) => Err(pass.fail(e).await),
    }
}
