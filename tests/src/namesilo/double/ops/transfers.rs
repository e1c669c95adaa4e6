//! Inbound transfers: ordering one (paid, includes a year), its status, and a new auth code.

use super::super::code::Code;
use super::super::dates;
use super::super::model::{Transfer, TransferStatus};
use super::super::prices;
use super::super::reply::{Outcome, Reply};
use super::Call;

pub fn transfer_domain(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    if call.world.in_any_account(&name) {
        return Err(Reply::new(Code::AlreadyActive));
    }
    let Some(elsewhere) = call.world.registry.get(&name).cloned() else {
        return Err(Reply::explained(
            Code::CannotTransfer,
            "This domain cannot be transferred since it is not currently registered.",
        ));
    };
    if call.world.transfer_open(&name) {
        return Err(Reply::explained(Code::CannotTransfer, "A transfer of this domain is already in progress."));
    }
    let price = prices::for_domain(&name).transfer;
    let auth_code = call.params.get("auth").map(str::to_owned);
    let (private, auto_renew) = (call.params.flag("private"), call.params.flag("auto_renew"));
    let (now, delay) = (call.now, call.world.transfer_delay);
    let account = call.account()?;
    if !account.charge(price) {
        return Err(Reply::new(Code::InsufficientFunds));
    }
    let mut transfer = Transfer {
        status: TransferStatus::MissingAuthCode,
        since: now,
        auth_code: None,
        private,
        auto_renew,
        contact_id: account.default_contact_id,
        completes_at: None,
    };
    transfer.evaluate(auth_code, &elsewhere.auth_code, now, delay);
    account.transfers.insert(name.clone(), transfer);
    Ok(Reply::new(Code::Success)
        .text("message", "Your domain transfer was successfully processed.")
        .text("domain", &name)
        .text("order_amount", price.to_string()))
}

pub fn check_transfer_status(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    let transfer = call.account()?.transfers.get(&name).ok_or_else(|| Reply::new(Code::NoTransfer))?;
    Ok(Reply::new(Code::Success)
        .text("date", dates::date_time(transfer.since))
        .text("status", transfer.status.text())
        .text("message", transfer.status.message()))
}

/// Gives an open transfer a new auth code; the right one sends it to the registry.
pub fn change_epp_code(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    let auth_code = call.params.required("auth")?.to_owned();
    let no_transfer = || Reply::new(Code::NoTransfer);
    let expected = call.world.registry.get(&name).map(|e| e.auth_code.clone()).ok_or_else(no_transfer)?;
    let (now, delay) = (call.now, call.world.transfer_delay);
    let transfer = call
        .account()?
        .transfers
        .get_mut(&name)
        .filter(|t| t.status != TransferStatus::Completed)
        .ok_or_else(no_transfer)?;
    transfer.evaluate(Some(auth_code), &expected, now, delay);
    Ok(Reply::new(Code::Success))
}
