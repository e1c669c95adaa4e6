//! The registrar settings a Domain's spec decides for a registration in the account: its
//! nameservers, lock, privacy and auto-renew. Each is observed, shown as a condition, and changed
//! only where it differs and the Domain is not hands-off; a change to a value that was in sync is
//! repaired drift.

use std::collections::BTreeSet;

use mpanel_crds::conditions::Observation;
use mpanel_crds::domain::Domain;
use mpanel_crds::reasons;

use super::{Context, KIND, NAMESERVERS_SYNCED, SETTINGS_SYNCED, Step};
use crate::controllers::publish;
use crate::providers::namesilo::{DomainInfo, NamesiloApi, NamesiloError, normalise_host};

/// The nameservers `domain` is delegated to.
pub(super) fn wanted_nameservers<R>(domain: &Domain, ctx: &Context<R>) -> Vec<String> {
    if domain.spec.nameservers.is_empty() {
        ctx.nameservers.clone()
    } else {
        domain.spec.nameservers.iter().map(|n| normalise_host(n)).collect()
    }
}

pub(super) fn same_set(a: &[String], b: &[String]) -> bool {
    let set = |l: &[String]| l.iter().map(|n| normalise_host(n)).collect::<BTreeSet<_>>();
    set(a) == set(b)
}

/// Sets NameserversSynced, delegating to the wanted nameservers unless `hands_off` says why not;
/// true when they match. A registrar error is returned with nothing recorded.
pub(super) async fn sync_nameservers<R: NamesiloApi>(
    domain: &Domain,
    step: &mut Step,
    info: &DomainInfo,
    hands_off: Option<&str>,
    ctx: &Context<R>,
) -> Result<bool, NamesiloError> {
    let want_ns = wanted_nameservers(domain, ctx);
    if !same_set(&want_ns, &info.nameservers) {
        if let Some(why) = hands_off {
            step.set(Observation::new(
                NAMESERVERS_SYNCED,
                false,
                reasons::OUT_OF_SYNC.name,
                format!("the registrar has {} ({why}: not changed)", info.nameservers.join(", ")),
            ));
            return Ok(false);
        }
        let drift = step.was_synced(NAMESERVERS_SYNCED);
        ctx.registrar.set_nameservers(&domain.spec.name, &want_ns).await?;
        step.status.nameservers = want_ns.clone();
        if drift {
            let note = format!("nameservers were {} at the registrar", info.nameservers.join(", "));
            repaired(domain, ctx, "Nameservers", note).await;
        }
    }
    step.set(Observation::new(
        NAMESERVERS_SYNCED,
        true,
        reasons::SYNCED.name,
        format!("delegated to {}", want_ns.join(", ")),
    ));
    Ok(true)
}

/// Sets SettingsSynced, changing lock, privacy and auto-renew where they differ unless `hands_off`
/// says why not; true when they match. A registrar error is returned with nothing recorded.
pub(super) async fn sync_settings<R: NamesiloApi>(
    domain: &Domain,
    step: &mut Step,
    info: &DomainInfo,
    hands_off: Option<&str>,
    ctx: &Context<R>,
) -> Result<bool, NamesiloError> {
    let registration = &domain.spec.registration;
    let differing: Vec<(Setting, bool)> = [
        (Setting::Lock, registration.lock, info.locked),
        (Setting::Privacy, registration.privacy, info.private),
        (Setting::AutoRenew, registration.auto_renew, info.auto_renew),
    ]
    .into_iter()
    .filter(|(_, want, have)| want != have)
    .map(|(setting, want, _)| (setting, want))
    .collect();
    let names = differing.iter().map(|(s, _)| s.label()).collect::<Vec<_>>().join(", ");
    if !differing.is_empty() {
        if let Some(why) = hands_off {
            step.set(Observation::new(
                SETTINGS_SYNCED,
                false,
                reasons::OUT_OF_SYNC.name,
                format!("{names} differ at the registrar ({why}: not changed)"),
            ));
            return Ok(false);
        }
        let drift = step.was_synced(SETTINGS_SYNCED);
        let name = &domain.spec.name;
        for (setting, want) in &differing {
            match setting {
                Setting::Lock => ctx.registrar.set_lock(name, *want).await?,
                Setting::Privacy => ctx.registrar.set_privacy(name, *want).await?,
                Setting::AutoRenew => ctx.registrar.set_auto_renew(name, *want).await?,
            };
        }
        step.status.locked = Some(registration.lock);
        step.status.privacy = Some(registration.privacy);
        step.status.auto_renew = Some(registration.auto_renew);
        if drift {
            repaired(domain, ctx, "Settings", format!("{names} changed at the registrar")).await;
        }
    }
    step.set(Observation::new(
        SETTINGS_SYNCED,
        true,
        reasons::SYNCED.name,
        "lock, privacy and auto-renew match the spec",
    ));
    Ok(true)
}

/// The registrar settings a Domain's spec decides besides its nameservers.
#[derive(Clone, Copy)]
enum Setting {
    Lock,
    Privacy,
    AutoRenew,
}

impl Setting {
    fn label(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Privacy => "privacy",
            Self::AutoRenew => "auto-renew",
        }
    }
}

/// Counts and announces a repaired out-of-band change. Each part (`action`) has its own Event: the
/// recorder folds an Event of the same reason and action into the earlier one, note and all.
async fn repaired<R>(domain: &Domain, ctx: &Context<R>, action: &str, note: String) {
    ctx.metrics.drift_repaired(KIND);
    publish(&ctx.recorder, domain, true, reasons::DRIFT_REPAIRED.name, action, format!("{note}; restored")).await;
}
