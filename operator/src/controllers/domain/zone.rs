//! The DnsZone a Domain with `dns.createZone` owns: same name as the Domain, its nameservers, and
//! the configured apex A and MX records. Applied by server-side apply with only the fields the
//! Domain decides, so records people add to the zone stay theirs.

use kube::{Api, Client, Resource, ResourceExt};
use mpanel_crds::conditions::{self, READY};
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::Domain;
use serde_json::{Value, json};

use crate::config::ZoneDefaults;
use crate::controllers::apply_owned;
use crate::controllers::{During, KubeCall};

const FIELD_MANAGER: &str = "mpanel-domain";

/// Where the owned zone stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Ready(String),
    NotReady(String),
    /// A DnsZone of that name exists and is not this Domain's: left untouched.
    OwnedElsewhere(String),
}

/// The fields of the zone this Domain owns.
pub fn desired(domain: &Domain, nameservers: &[String], defaults: &ZoneDefaults) -> Option<Value> {
    let owner = domain.controller_owner_ref(&())?;
    let mut spec = json!({"zone": domain.spec.name, "nameservers": nameservers});
    if !defaults.a.is_empty() {
        let values: Vec<String> = defaults.a.iter().map(ToString::to_string).collect();
        spec["records"] = json!([{"name": "@", "type": "A", "values": values}]);
    }
    if !defaults.mx.is_empty() {
        spec["mail"] = json!({"mx": defaults.mx});
    }
    Some(json!({
        "apiVersion": DnsZone::api_version(&()),
        "kind": DnsZone::kind(&()),
        "metadata": {"name": domain.name_any(), "ownerReferences": [owner]},
        "spec": spec,
    }))
}

/// Creates or updates the zone (only looks, unless `write`) and says where it stands.
pub async fn ensure(
    client: &Client,
    domain: &Domain,
    nameservers: &[String],
    defaults: &ZoneDefaults,
    write: bool,
) -> Result<ZoneState, KubeCall> {
    let api: Api<DnsZone> = Api::namespaced(client.clone(), &domain.namespace().unwrap_or_default());
    let name = domain.name_any();
    let Some(want) = desired(domain, nameservers, defaults) else {
        return Ok(ZoneState::NotReady("the Domain has no uid yet".into()));
    };
    let existing = api.get_opt(&name).await.during(format!("reading DnsZone {name}"))?;
    if let Some(zone) = &existing {
        let ours =
            zone.owner_references().iter().any(|o| Some(&o.uid) == domain.uid().as_ref() && o.controller == Some(true));
        if !ours {
            return Ok(ZoneState::OwnedElsewhere(format!(
                "DnsZone {name} exists and is not this Domain's; it is left untouched"
            )));
        }
    }
    let zone = match existing {
        Some(zone) if !write => zone,
        None if !write => {
            return Ok(ZoneState::NotReady(format!("DnsZone {name} does not exist (ObserveOnly: not created)")));
        }
        existing => apply_owned(&api, existing, &name, FIELD_MANAGER, &want).await?,
    };
    Ok(state(&zone))
}

fn state(zone: &DnsZone) -> ZoneState {
    let name = zone.name_any();
    let ready = zone.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY).cloned());
    match ready {
        Some(c) if c.status == "True" && c.observed_generation == zone.metadata.generation => {
            ZoneState::Ready(format!("DnsZone {name} is served"))
        }
        Some(c) => ZoneState::NotReady(format!("DnsZone {name}: {}", c.message)),
        None => ZoneState::NotReady(format!("DnsZone {name} is waiting for the DnsZone controller")),
    }
}
