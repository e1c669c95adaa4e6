//! A domain that is in the registrar account: renewed to `paidUntil`, its nameservers and settings
//! converged, its zone owned, and Ready reported from the step conditions.

use kube::Api;
use kube::runtime::controller::Action;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::domain::{Domain, DomainPhase, DomainSpec, OrderOperation, OrderState, RegistrationMode};
use mpanel_crds::reasons::{self, Reason};

use super::renewal::{self, Plan};
use super::settings::{sync_nameservers, sync_settings};
use super::{
    Context, Error, Look, NAMESERVERS_SYNCED, REGISTERED, RENEWED, SETTINGS_SYNCED, Step, ZONE_READY, fail, orders,
    zone_step,
};
use crate::controllers::resync_after;
use crate::providers::namesilo::{DomainInfo, NamesiloApi};

/// The domain is in the account: renew to `paidUntil`, converge nameservers and settings, own the
/// zone, report.
pub(super) async fn registered<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    info: &DomainInfo,
    mode: ReconcileMode,
    look: Look,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let spec = &domain.spec;
    let hands_off = match (spec.registration.mode, mode) {
        (RegistrationMode::External, _) => Some("External"),
        (_, ReconcileMode::ObserveOnly) => Some("ObserveOnly"),
        _ => None,
    };
    record_registration(&mut step, spec, info);
    if spec.registration.mode == RegistrationMode::Transfer {
        orders::finish_transfer(&mut step, &spec.name, ctx).await;
    }

    // renewal: at most one paid call, then a fresh look
    let plan = renewal::plan(spec.paid_until.as_deref(), &info.expires, step.status.last_order.as_ref());
    let renewed = match renewal_step(&mut step, &plan, hands_off, spec, info) {
        Renewal::Pay(years) => return orders::renew(api, domain, step, years, ctx).await,
        Renewal::Show(renewed) => renewed,
    };
    let renewed_ok = renewed.status == conditions::Status::True;
    step.set(renewed);

    let ns_ok = match sync_nameservers(domain, &mut step, info, hands_off, ctx).await {
        Ok(ok) => ok,
        Err(e) => return fail(api, domain, step, Some(NAMESERVERS_SYNCED), e, ctx).await,
    };
    let settings_ok = match sync_settings(domain, &mut step, info, hands_off, ctx).await {
        Ok(ok) => ok,
        Err(e) => return fail(api, domain, step, Some(SETTINGS_SYNCED), e, ctx).await,
    };
    let zone_ok = zone_step(domain, &mut step, mode, ctx).await?;

    let blocking = [
        (!renewed_ok).then_some((RENEWED, reasons::RENEWED)),
        (!ns_ok).then_some((NAMESERVERS_SYNCED, reasons::NAMESERVERS_SYNCED)),
        (!settings_ok).then_some((SETTINGS_SYNCED, reasons::SETTINGS_SYNCED)),
        (!zone_ok).then_some((ZONE_READY, reasons::ZONE_READY)),
    ];
    report(&mut step, &spec.name, info, blocking, renewal::today(&ctx.clock));
    let unchanged = shows(&step, info);
    step.write(api, domain).await?;
    // a look that changed nothing at the registrar stands until the next sync; after a change the
    // next reconcile looks again
    match (look, unchanged) {
        (Look::Fresh, true) => ctx.sync.observed(domain, mode, Some(info), &ctx.clock),
        (_, false) => ctx.sync.forget(domain),
        (Look::Remembered, true) => {}
    }
    Ok(Action::requeue(resync_after(domain, ctx.resync)))
}

/// Whether the status still shows the registration as `info` has it: nothing was changed.
fn shows(step: &Step, info: &DomainInfo) -> bool {
    let s = &step.status;
    s.nameservers == info.nameservers
        && s.locked == Some(info.locked)
        && s.privacy == Some(info.private)
        && s.auto_renew == Some(info.auto_renew)
}

/// Records what the registrar reports and that the domain is registered.
fn record_registration(step: &mut Step, spec: &DomainSpec, info: &DomainInfo) {
    // the order that brought the domain here is done, whatever its answer said
    if let Some(order) = step.status.last_order.as_mut()
        && order.state == OrderState::Sent
        && order.operation != OrderOperation::Renew
    {
        order.state = OrderState::Succeeded;
    }
    step.observe(info);
    let how = match spec.registration.mode {
        RegistrationMode::Register => reasons::REGISTERED.name,
        RegistrationMode::Transfer => reasons::TRANSFERRED.name,
        RegistrationMode::External => reasons::IN_ACCOUNT.name,
    };
    step.set(Observation::new(
        REGISTERED,
        true,
        how,
        format!("{} is in the registrar account, expiring {}", spec.name, info.expires),
    ));
}

/// What the renewal plan comes to in this reconcile.
enum Renewal {
    /// Renew this many years now.
    Pay(u8),
    /// Nothing is paid for: the Renewed condition says why.
    Show(Observation),
}

/// Decides the renewal: a payment, unless `hands_off` says why not, or the Renewed condition.
fn renewal_step(
    step: &mut Step,
    plan: &Plan,
    hands_off: Option<&str>,
    spec: &DomainSpec,
    info: &DomainInfo,
) -> Renewal {
    let paid_until = spec.paid_until.clone().unwrap_or_default();
    let shown = match (plan, hands_off) {
        (Plan::Renew(years), None) => return Renewal::Pay(*years),
        (Plan::NoPaidUntil, _) => {
            Observation::new(RENEWED, true, reasons::NO_PAID_UNTIL.name, "no paidUntil: nothing to renew")
        }
        (Plan::Covered, _) => {
            if let Some(order) = step.status.last_order.as_mut()
                && order.operation == OrderOperation::Renew
                && order.state == OrderState::Sent
            {
                order.state = OrderState::Succeeded;
            }
            Observation::new(
                RENEWED,
                true,
                reasons::COVERED.name,
                format!("the registrar's expiry {} covers paidUntil {paid_until}", info.expires),
            )
        }
        (Plan::Renew(years), Some(why)) => Observation::new(
            RENEWED,
            false,
            reasons::RENEWAL_DUE.name,
            format!(
                "expiry {} is before paidUntil {paid_until}: {years} year(s) due ({why}: not renewed)",
                info.expires
            ),
        ),
        (Plan::RenewedOnce, _) => Observation::new(
            RENEWED,
            false,
            reasons::RENEWED_ONCE.name,
            format!(
                "renewed once for paidUntil {paid_until}, yet the expiry is {}: not renewing twice for one payment",
                info.expires
            ),
        ),
        (Plan::TooFar { years }, _) => Observation::new(
            RENEWED,
            false,
            reasons::PAID_UNTIL_TOO_FAR.name,
            format!(
                "reaching paidUntil {paid_until} needs {years} years; a registrar renews at most {} ahead",
                renewal::MAX_YEARS
            ),
        ),
        (Plan::BadDate(message), _) => Observation::new(RENEWED, false, reasons::BAD_DATE.name, message.clone()),
    };
    Renewal::Show(shown)
}

/// The phase, and Ready: False for an expired domain or the first step condition that is not True
/// (`blocking`), with its message; True otherwise.
fn report(
    step: &mut Step,
    name: &str,
    info: &DomainInfo,
    blocking: [Option<(&'static str, Reason)>; 4],
    today: jiff::civil::Date,
) {
    let expired = renewal::expired(&info.expires, today);
    step.status.phase = Some(if expired { DomainPhase::Expired } else { DomainPhase::Active });
    // Ready=False names the first step condition that is not True, with its message
    match blocking.into_iter().flatten().next() {
        _ if expired => {
            step.not_ready(None, reasons::EXPIRED.name, format!("{name} expired on {}", info.expires));
        }
        Some((type_, reason)) => {
            let message =
                conditions::find(&step.status.conditions, type_).map(|c| c.message.clone()).unwrap_or_default();
            step.not_ready(None, reason.name, message);
        }
        None => {
            step.set(Observation::new(
                READY,
                true,
                reasons::ACTIVE.name,
                format!("{name} is registered until {} and matches the spec", info.expires),
            ));
        }
    }
}
