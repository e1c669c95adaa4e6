//! Placing a new order, unless the mode, a name this namespace may not certify, the backoff after a
//! failed attempt or the order budget says not to.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use mpanel_crds::certificate::{Certificate, CertificatePhase};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::Observation;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::reasons;

use super::budget::{self, Verdict};
use super::dns01::{self, Unorderable};
use super::issuers::AcmeAccounts;
use super::observe::namespace_zones;
use super::{
    Context, Error, ISSUING, Providers, Step, attempt_failed, failed_step, publish, resync_after, retry_delay, until,
};
use crate::controllers::During;
use crate::names::{Holding, Names};
use crate::providers::acme::AcmeApi;

/// Places a new order, unless backoff, the budget or the mode says not to.
#[allow(clippy::too_many_arguments)]
pub(super) async fn order<P: Providers>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mode: ReconcileMode,
    mut step: Step,
    why: String,
    usable: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let t = ctx.clock.now();
    if mode == ReconcileMode::ObserveOnly {
        step.set(Observation::new(
            ISSUING,
            false,
            reasons::OBSERVE_ONLY.name,
            format!("{why} (ObserveOnly: not ordered)"),
        ));
        step.write(api, cert).await?;
        return Ok(Action::requeue(resync_after(cert, ctx.resync)));
    }
    // before the budget and the CA: no order, and nothing counted, for a name this namespace may
    // not certify
    let (zones, names) = namespace_zones(cert, ctx);
    let ns = cert.namespace().unwrap_or_default();
    let refused = unorderable(cert, &zones, &names, &ns);
    if let Some(first) = refused.iter().find(|r| matches!(r, Unorderable::HeldElsewhere { .. })).or(refused.first()) {
        let reasons: Vec<String> = refused.iter().map(ToString::to_string).collect();
        let message = format!("{why}, but {}: no order is placed", reasons.join("; "));
        if step.failed(first.reason(), &message, usable) {
            publish(&ctx.recorder, cert, true, first.reason(), "Order", message).await;
        }
        step.write(api, cert).await?;
        // a DnsZone of this namespace changing brings it back sooner; a holder elsewhere going away does not
        return Ok(Action::requeue(resync_after(cert, ctx.resync)));
    }
    if let Some(next) = retry_at(&step, t) {
        // the Issuing condition keeps the failure's message until the retry
        step.write(api, cert).await?;
        return Ok(Action::requeue(until(next, t)));
    }
    let sharing = |domain: &str| match names.holding(&ns, domain) {
        Holding::Held(_) => None,
        _ => Some(names.holders_within(domain)),
    };
    let orderer = budget::Orderer { namespace: &ns, sharing: &sharing };
    match ctx.budget.reserve(&cert.spec.dns_names, &orderer, t).await.during("counting the order in the budget")? {
        Verdict::Granted => {}
        Verdict::Exhausted { domain, used, free_at } | Verdict::ShareExhausted { domain, used, free_at, .. } => {
            let share = (orderer.sharing)(&domain).map(|holders| budget::share(ctx.budget.limit, holders));
            let message = budget_spent(&why, &domain, used, share, free_at);
            if step.failed(reasons::ORDER_BUDGET_EXHAUSTED.name, &message, usable) {
                publish(&ctx.recorder, cert, true, reasons::ORDER_BUDGET_EXHAUSTED.name, "Order", message).await;
            }
            step.write(api, cert).await?;
            return Ok(Action::requeue(until(free_at, t).min(resync_after(cert, ctx.resync))));
        }
    }
    place(api, cert, step, why, usable, ctx).await
}

/// The names of the Certificate this namespace may not order a certificate for, and why.
fn unorderable(cert: &Certificate, zones: &[Arc<DnsZone>], names: &Names, ns: &str) -> Vec<Unorderable> {
    cert.spec
        .dns_names
        .iter()
        .filter_map(|n| dns01::orderable(zones.iter().map(Arc::as_ref), names, ns, n).err())
        .collect()
}

/// When the backoff after the last failed attempt ends, if that is still ahead of `t`.
fn retry_at(step: &Step, t: Timestamp) -> Option<Timestamp> {
    let failed = step.status.failed_attempts.unwrap_or(0);
    if failed == 0 {
        return None;
    }
    let last = step.status.last_failure_time.as_ref()?;
    let next = last.0.checked_add(jiff::SignedDuration::try_from(retry_delay(failed)).unwrap_or_default()).ok()?;
    (next > t).then_some(next)
}

/// Why no order is placed while `domain`'s budget (or this namespace's `share` of it) is spent.
fn budget_spent(why: &str, domain: &str, used: usize, share: Option<usize>, free_at: Timestamp) -> String {
    match share {
        None => format!(
            "{why}, but the order budget of {domain} is spent ({used} orders in 7 days); next order possible at {free_at}"
        ),
        Some(share) => format!(
            "{why}, but this namespace's share of the order budget of {domain} is spent ({used} of {share} orders in 7 days; \
             it does not hold {domain} itself); next order possible at {free_at}"
        ),
    }
}

/// Asks the CA for a new order.
async fn place<P: Providers>(
    api: &Api<Certificate>,
    cert: &Certificate,
    mut step: Step,
    why: String,
    usable: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let acme = match ctx.issuers.account(&cert.spec.issuer).await {
        Ok(acme) => acme,
        Err(e) => return Err(failed_step(api, cert, step, e.reason(), e.to_string(), usable, ctx, e.into()).await),
    };
    match acme.new_order(&cert.spec.dns_names).await {
        Ok(view) => {
            step.status.order_url = Some(view.url.clone());
            step.status.phase = Some(CertificatePhase::Issuing);
            let message = format!("order {} placed: {why}", view.url);
            step.set(Observation::new(ISSUING, true, reasons::ORDER_PLACED.name, message.clone()));
            publish(&ctx.recorder, cert, false, reasons::ORDER_PLACED.name, "Order", message).await;
            step.write(api, cert).await?;
            if ctx.exit_after_order {
                tracing::error!(order = %view.url, "fault point: exiting right after the order was stored");
                std::process::exit(3);
            }
            // the challenges are due at once: the order is stored, and the next reconcile reads it
            Ok(Action::requeue(Duration::ZERO))
        }
        Err(e) => Ok(attempt_failed(api, cert, step, e.reason(), e.to_string(), usable, ctx).await?),
    }
}
