//! Free changes to a domain of the account: nameservers, lock, auto-renewal, privacy. Asking for
//! the state a domain is already in changes nothing and answers that with its own code.

use super::super::code::Code;
use super::super::model::Domain;
use super::super::names;
use super::super::reply::{Outcome, Reply};
use super::Call;

/// `ns1` … `ns13`: at least two, every one a hostname.
pub fn change_name_servers(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    let asked = call.params.nameservers();
    if asked.len() < 2 {
        return Err(Reply::new(Code::MissingParameters));
    }
    call.own_domain(&name)?;
    let mut nameservers = Vec::with_capacity(asked.len());
    for ns in &asked {
        let host = names::hostname(ns).ok_or_else(|| {
            Reply::explained(Code::NameServerUpdateRefused, format!("{ns} is not a valid NameServer."))
        })?;
        nameservers.push(host);
    }
    call.own_domain(&name)?.nameservers = nameservers;
    Ok(Reply::new(Code::Success))
}

pub fn domain_lock(call: &mut Call<'_>) -> Outcome {
    set(call, |d| &mut d.locked, true, Code::AlreadyLocked)
}

pub fn domain_unlock(call: &mut Call<'_>) -> Outcome {
    set(call, |d| &mut d.locked, false, Code::AlreadyUnlocked)
}

pub fn add_auto_renewal(call: &mut Call<'_>) -> Outcome {
    set(call, |d| &mut d.auto_renew, true, Code::AlreadyAutoRenew)
}

pub fn remove_auto_renewal(call: &mut Call<'_>) -> Outcome {
    set(call, |d| &mut d.auto_renew, false, Code::AlreadyNotAutoRenew)
}

pub fn add_privacy(call: &mut Call<'_>) -> Outcome {
    set(call, |d| &mut d.private, true, Code::AlreadyPrivate)
}

pub fn remove_privacy(call: &mut Call<'_>) -> Outcome {
    set(call, |d| &mut d.private, false, Code::AlreadyNotPrivate)
}

/// Sets one setting of the `domain` parameter's domain to `value`, or answers `already`.
fn set(call: &mut Call<'_>, setting: fn(&mut Domain) -> &mut bool, value: bool, already: Code) -> Outcome {
    let name = call.params.domain()?;
    let current = setting(call.own_domain(&name)?);
    if *current == value {
        return Err(Reply::new(already));
    }
    *current = value;
    Ok(Reply::new(Code::Success))
}
