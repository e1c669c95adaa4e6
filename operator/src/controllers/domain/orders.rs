//! The paid calls: register, renew, transfer. Each is put on record (`status.lastOrder`, state
//! `Sent`) before it is sent and its answer recorded after; the caller has already looked the
//! domain up in the account, so a record left at `Sent` by a crash is settled by that look rather
//! than by paying again.

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::Observation;
use mpanel_crds::domain::{Domain, DomainPhase, OrderOperation, OrderState, RegistrarOrder, TransferStatus};
use mpanel_crds::reasons;

use super::{Context, Error, NEXT_STEP, REGISTERED, RENEWED, Step, TRANSFER_POLL, fail, wanted_nameservers, zone_step};
use crate::controllers::{publish, read_secret_key, resync_after, write_changed_status};
use crate::providers::namesilo::{Contact, NamesiloApi, NamesiloError, OrderOptions, Receipt, Transfer, is_completed};

fn options<R>(domain: &Domain, ctx: &Context<R>) -> OrderOptions {
    let r = &domain.spec.registration;
    OrderOptions {
        nameservers: wanted_nameservers(domain, ctx),
        private: r.privacy,
        auto_renew: r.auto_renew,
        contact: r.contact.as_ref().map(|c| Contact {
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            organization: c.organization.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            street: c.street.clone(),
            city: c.city.clone(),
            state_province: c.state_province.clone(),
            postal_code: c.postal_code.clone(),
            country: c.country.clone(),
        }),
    }
}

/// Registers the name: when it is available, once.
pub async fn register<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let name = &domain.spec.name;
    match ctx.registrar.available(name).await {
        Ok(true) => {}
        Ok(false) => {
            let message = format!("{name} is not available for registration");
            step.status.registered = Some(false);
            step.set(Observation::new(REGISTERED, false, reasons::UNAVAILABLE.name, message.clone()));
            if step.not_ready(Some(DomainPhase::Failed), reasons::UNAVAILABLE.name, message.clone()) {
                publish(&ctx.recorder, domain, true, reasons::UNAVAILABLE.name, "Register", message).await;
            }
            step.write(api, domain).await?;
            return Ok(Action::requeue(resync_after(domain, ctx.resync)));
        }
        Err(e) => return fail(api, domain, step, Some(REGISTERED), e, ctx).await,
    }
    let years = domain.spec.registration.years;
    step.status.phase = Some(DomainPhase::Registering);
    let options = options(domain, ctx);
    place(api, domain, step, OrderOperation::Register, years, ctx, ctx.registrar.register(name, years, &options)).await
}

/// Renews `years` so that the expiry reaches `paidUntil`.
pub async fn renew<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    step: Step,
    years: u8,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let name = &domain.spec.name;
    place(api, domain, step, OrderOperation::Renew, years, ctx, ctx.registrar.renew(name, years)).await
}

/// Puts the order on record, sends it, records the answer. A success is looked at afresh by the
/// next reconcile; a failure goes to the backoff with the registrar's words in the condition.
async fn place<R>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    operation: OrderOperation,
    years: u8,
    ctx: &Context<R>,
    call: impl std::future::Future<Output = Result<Receipt, NamesiloError>>,
) -> Result<Action, Error> {
    let condition = if operation == OrderOperation::Renew { RENEWED } else { REGISTERED };
    let mut order = RegistrarOrder {
        operation,
        years,
        for_paid_until: domain.spec.paid_until.clone(),
        amount: None,
        state: OrderState::Sent,
        at: step.at.clone(),
    };
    step.status.last_order = Some(order.clone());
    let what = format!("{operation:?} of {} for {years} year(s)", domain.spec.name);
    step.set(Observation::new(condition, false, reasons::ORDER_SENT.name, format!("{what} sent to the registrar")));
    write_changed_status(api, domain, &step.status).await?;

    // a future is lazy: the call is sent here, after the record above
    let result = call.await;
    if result.is_ok() && ctx.exit_after == Some(operation) {
        tracing::error!(?operation, "fault point: exiting right after the registrar answered");
        std::process::exit(3);
    }
    match result {
        Ok(receipt) => {
            order.state = OrderState::Succeeded;
            order.amount = receipt.amount.clone();
            step.status.last_order = Some(order);
            let charged = receipt.amount.map(|a| format!(", charged {a}")).unwrap_or_default();
            let message = format!("{what} done{charged}");
            let reason = match operation {
                OrderOperation::Register => reasons::REGISTERED,
                OrderOperation::Renew => reasons::RENEWED,
                OrderOperation::Transfer => reasons::TRANSFER_REQUESTED,
            };
            step.set(Observation::new(condition, operation != OrderOperation::Transfer, reason.name, message.clone()));
            publish(&ctx.recorder, domain, false, reason.name, &format!("{operation:?}"), message).await;
            step.write(api, domain).await?;
            Ok(Action::requeue(NEXT_STEP))
        }
        Err(e) => {
            // without an answer the order may have gone through: it stays Sent, so the domain found
            // in the account afterwards is recognised as this order's
            if !matches!(e, NamesiloError::Unreachable(_)) {
                order.state = OrderState::Failed;
            }
            step.status.last_order = Some(order);
            fail(api, domain, step, Some(condition), e, ctx).await
        }
    }
}

/// Transfers the name in with the auth code from its Secret, then follows the transfer until the
/// domain is in the account. A changed Secret is handed to the pending transfer (free); a transfer
/// is ordered (paid) only when the registrar has none for the name.
pub async fn transfer<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let name = &domain.spec.name;
    zone_step(domain, &mut step, ReconcileMode::Reconcile, ctx).await?;
    let Some(key) = &domain.spec.registration.auth_code_secret_ref else {
        // the schema requires it for Transfer
        return Ok(Action::await_change());
    };
    let (auth_code, version) = match read_secret_key(&ctx.client, &domain.namespace().unwrap_or_default(), key).await? {
        Ok((code, version)) => (code.trim().to_owned(), version),
        Err(message) => {
            step.set(Observation::new(REGISTERED, false, reasons::AUTH_CODE_SECRET_MISSING.name, message.clone()));
            step.not_ready(Some(DomainPhase::Pending), reasons::AUTH_CODE_SECRET_MISSING.name, message);
            step.write(api, domain).await?;
            return Ok(Action::await_change());
        }
    };
    let pending = match ctx.registrar.transfer_status(name).await {
        Ok(t) => t,
        Err(e) => return fail(api, domain, step, Some(REGISTERED), e, ctx).await,
    };
    let auth = AuthCode { code: auth_code, version, secret: &key.name };
    match pending {
        None => order_transfer(api, domain, step, auth, ctx).await,
        Some(pending) => follow_transfer(api, domain, step, &pending, auth, ctx).await,
    }
}

/// The auth code of a transfer, with the version of the Secret it was read from.
struct AuthCode<'a> {
    code: String,
    version: String,
    /// The Secret's name.
    secret: &'a str,
}

/// The registrar knows no transfer for the name: one is ordered (paid), unless one was accepted
/// already and got lost.
async fn order_transfer<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    auth: AuthCode<'_>,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let name = &domain.spec.name;
    let ordered = step
        .status
        .last_order
        .as_ref()
        .is_some_and(|o| o.operation == OrderOperation::Transfer && o.state == OrderState::Succeeded);
    if ordered {
        let message = format!(
            "the registrar accepted a transfer of {name} but now knows none, and the domain is not in the account; \
             another transfer is not bought automatically"
        );
        step.set(Observation::new(REGISTERED, false, reasons::TRANSFER_LOST.name, message.clone()));
        step.not_ready(Some(DomainPhase::Failed), reasons::TRANSFER_LOST.name, message);
        step.write(api, domain).await?;
        return Ok(Action::requeue(resync_after(domain, ctx.resync)));
    }
    step.status.phase = Some(DomainPhase::Transferring);
    step.status.transfer = Some(TransferStatus {
        state: "Requested".into(),
        message: None,
        requested_at: Some(step.at.clone()),
        auth_code_version: Some(auth.version),
    });
    let options = options(domain, ctx);
    let years = 1;
    place(api, domain, step, OrderOperation::Transfer, years, ctx, ctx.registrar.transfer(name, &auth.code, &options))
        .await
}

/// Follows the pending transfer: a changed auth code is handed to it (free), else its state is
/// shown verbatim.
async fn follow_transfer<R: NamesiloApi>(
    api: &Api<Domain>,
    domain: &Domain,
    mut step: Step,
    pending: &Transfer,
    auth: AuthCode<'_>,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let name = &domain.spec.name;
    if let Some(order) = step.status.last_order.as_mut()
        && order.operation == OrderOperation::Transfer
        && order.state == OrderState::Sent
    {
        order.state = OrderState::Succeeded;
    }
    let at = step.at.clone();
    let transfer = step.status.transfer.get_or_insert_with(|| TransferStatus {
        state: String::new(),
        message: None,
        requested_at: Some(at),
        auth_code_version: None,
    });
    transfer.state = pending.status.clone();
    transfer.message = pending.message.clone();
    let new_code = transfer.auth_code_version.as_deref() != Some(auth.version.as_str());
    if !pending.completed() && new_code {
        if let Err(e) = ctx.registrar.change_auth_code(name, &auth.code).await {
            return fail(api, domain, step, Some(REGISTERED), e, ctx).await;
        }
        if let Some(t) = step.status.transfer.as_mut() {
            t.auth_code_version = Some(auth.version);
        }
        let note = format!("the auth code in Secret {} was handed to the pending transfer", auth.secret);
        publish(&ctx.recorder, domain, false, reasons::AUTH_CODE_UPDATED.name, "Transfer", note).await;
        step.write(api, domain).await?;
        return Ok(Action::requeue(NEXT_STEP));
    }
    let said = match &pending.message {
        Some(m) if !m.is_empty() => format!("{}: {m}", pending.status),
        _ => pending.status.clone(),
    };
    let reason = if auth_code_problem(&pending.status) {
        reasons::TRANSFER_AUTH_CODE_REJECTED.name
    } else {
        reasons::TRANSFER_PENDING.name
    };
    let message = format!("transfer of {name}: {said}");
    step.status.phase = Some(DomainPhase::Transferring);
    step.status.registered = Some(false);
    if step.set(Observation::new(REGISTERED, false, reason, message.clone()))
        && reason != reasons::TRANSFER_PENDING.name
    {
        publish(&ctx.recorder, domain, true, reason, "Transfer", message.clone()).await;
    }
    step.not_ready(None, reason, message);
    step.write(api, domain).await?;
    Ok(Action::requeue(TRANSFER_POLL.min(resync_after(domain, ctx.resync))))
}

/// Registrars word an auth code problem in the transfer status; the status itself is shown verbatim.
fn auth_code_problem(status: &str) -> bool {
    let s = status.to_ascii_lowercase();
    s.contains("epp") || s.contains("auth")
}

/// Once a transferred domain is in the account, records the registrar's final word on the transfer.
pub async fn finish_transfer<R: NamesiloApi>(step: &mut Step, name: &str, ctx: &Context<R>) {
    let Some(transfer) = &step.status.transfer else { return };
    if is_completed(&transfer.state) {
        return;
    }
    if let Ok(Some(done)) = ctx.registrar.transfer_status(name).await
        && let Some(t) = step.status.transfer.as_mut()
    {
        t.state = done.status;
        t.message = done.message;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_code_problems_are_told_from_other_transfer_states() {
        assert!(auth_code_problem("Invalid EPP Code"));
        assert!(auth_code_problem("Incorrect Auth Code"));
        assert!(!auth_code_problem("Pending at Registry"));
    }
}
