//! The DNS-01 challenges of an order in flight: their TXT values placed in and taken out of
//! PowerDNS, and the CA told once our server serves them.

use std::collections::BTreeMap;
use std::sync::Arc;

use mpanel_crds::certificate::Certificate;

use super::dns01;
use super::observe::namespace_zones;
use super::{Context, Error, Providers};
use crate::providers::acme::{AcmeApi, OrderView};

/// The unanswered challenges of one record: the zone that serves it (if any), and their values and URLs.
type Pending = (Option<dns01::ServingZone>, Vec<String>, Vec<String>);

/// Places each pending challenge's TXT value and tells the CA once our server serves it. A name
/// no DnsZone of the namespace serves gets no record: the CA is told anyway and its verdict is
/// what the status shows. The values of one record (an apex and its wildcard) are written together
/// and asked for together. Returns the records still waiting to be served.
pub(super) async fn answer_challenges<P: Providers, A: AcmeApi>(
    cert: &Certificate,
    view: &OrderView,
    acme: &A,
    ctx: &Context<P>,
) -> Result<Vec<String>, Error> {
    let (zones, names) = namespace_zones(cert, ctx);
    let mut by_record: BTreeMap<String, Pending> = BTreeMap::new();
    for authz in view.authorizations.iter().filter(|a| !a.settled) {
        let Some(challenge) = &authz.dns01 else { continue };
        if challenge.answered {
            continue;
        }
        let zone = dns01::zone_for(zones.iter().map(Arc::as_ref), &names, &authz.name);
        let entry = by_record.entry(dns01::record_name(&authz.name)).or_insert_with(|| (zone, Vec::new(), Vec::new()));
        entry.1.push(challenge.txt_value.clone());
        entry.2.push(challenge.url.clone());
    }
    let mut waiting = Vec::new();
    for (record, (zone, values, urls)) in by_record {
        if let Some(zone) = zone {
            ctx.dns01.update(&zone, &record, &values, &[]).await?;
            if !ctx.dns01.served(&record, &values).await? {
                waiting.push(record);
                continue;
            }
        }
        for url in urls {
            acme.answer(&view.url, &url).await?;
        }
    }
    Ok(waiting)
}

/// Takes every challenge value of `view` out of PowerDNS.
pub(super) async fn remove_challenges<P: Providers>(
    cert: &Certificate,
    view: &OrderView,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let (zones, names) = namespace_zones(cert, ctx);
    let mut by_record: BTreeMap<String, (dns01::ServingZone, Vec<String>)> = BTreeMap::new();
    for (name, value) in view.txt_values() {
        // our own values come out of a zone whatever its claim says now
        if let Some(zone) = dns01::zone_for(zones.iter().map(Arc::as_ref), &names, &name) {
            by_record.entry(dns01::record_name(&name)).or_insert_with(|| (zone, Vec::new())).1.push(value);
        }
    }
    for (record, (zone, values)) in by_record {
        ctx.dns01.update(&zone, &record, &[], &values).await?;
    }
    Ok(())
}
