//! The paid orders on names: registration and renewal. Money is taken only when the order succeeds.

use super::super::code::Code;
use super::super::dates;
use super::super::model::{DEFAULT_NAMESERVERS, Domain};
use super::super::names;
use super::super::params::Params;
use super::super::prices;
use super::super::reply::{Outcome, Reply};
use super::Call;

/// The registrant fields an order may carry.
const CONTACT_FIELDS: [&str; 10] = ["fn", "ln", "ad", "cy", "st", "zp", "ct", "em", "ph", "cp"];

pub fn register_domain(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    let years = call.params.years()?;
    if call.account()?.domains.contains_key(&name) {
        return Err(Reply::new(Code::AlreadyActive));
    }
    if call.world.registry.contains_key(&name) || call.world.in_any_account(&name) {
        return Err(Reply::explained(Code::ProcessingError, "Domain unavailable for registration."));
    }
    let price = prices::for_domain(&name).register.times(years.into()).ok_or_else(|| Reply::new(Code::InvalidYears))?;
    let (nameservers, nameservers_valid) = order_nameservers(call.params);
    let contact_id = match contact_given(call.params) {
        Some(true) => Some(call.world.new_contact_id()),
        Some(false) | None => None,
    };
    let today = dates::today(call.now);
    let expires = dates::add_years(today, years).ok_or_else(|| Reply::new(Code::InvalidYears))?;
    let (private, auto_renew) = (call.params.flag("private"), call.params.flag("auto_renew"));
    let account = call.account()?;
    if !account.charge(price) {
        return Err(Reply::new(Code::InsufficientFunds));
    }
    let contact_id = contact_id.unwrap_or(account.default_contact_id);
    let domain = Domain { created: today, expires, locked: true, private, auto_renew, nameservers, contact_id };
    account.domains.insert(name.clone(), domain);
    let code = if !nameservers_valid {
        Code::SuccessDefaultNameservers
    } else if contact_given(call.params) == Some(false) {
        Code::SuccessDefaultContact
    } else {
        Code::Success
    };
    Ok(Reply::new(code)
        .text("message", "Your domain registration was successfully processed.")
        .text("domain", &name)
        .text("order_amount", price.to_string()))
}

pub fn renew_domain(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    call.own_domain(&name)?;
    let years = call.params.years()?;
    let today = dates::today(call.now);
    let price = prices::for_domain(&name).renew.times(years.into()).ok_or_else(|| Reply::new(Code::InvalidYears))?;
    let account = call.account()?;
    let expires = account.domains.get(&name).map(|d| d.expires).ok_or_else(|| Reply::new(Code::NotInAccount))?;
    let renewed = dates::add_years(expires, years).ok_or_else(|| Reply::new(Code::InvalidYears))?;
    let limit = dates::add_years(today, 10).ok_or_else(|| Reply::new(Code::InvalidYears))?;
    if renewed > limit {
        return Err(Reply::explained(
            Code::CannotRenew,
            format!(
                "The domain cannot be renewed for {years} year(s): it would expire on {renewed}, more than 10 years \
                 from today."
            ),
        ));
    }
    if !account.charge(price) {
        return Err(Reply::new(Code::InsufficientFunds));
    }
    if let Some(domain) = account.domains.get_mut(&name) {
        domain.expires = renewed;
    }
    Ok(Reply::new(Code::Success)
        .text("message", "Your domain renewal was successfully processed.")
        .text("domain", &name)
        .text("order_amount", price.to_string()))
}

/// The nameservers a registration gets, and whether they are the ones asked for: none asked for,
/// fewer than two, or any that is not a hostname, and the domain gets the registrar's own.
fn order_nameservers(params: &Params) -> (Vec<String>, bool) {
    let asked = params.nameservers();
    let valid: Vec<String> = asked.iter().filter_map(|ns| names::hostname(ns)).collect();
    let defaults = || DEFAULT_NAMESERVERS.iter().map(|ns| (*ns).to_owned()).collect();
    match asked.len() {
        0 => (defaults(), true),
        n if n >= 2 && valid.len() == n => (valid, true),
        _ => (defaults(), false),
    }
}

/// Whether the order carries a registrant contact (`None`: it carries none) and whether that one
/// is complete enough to be used.
fn contact_given(params: &Params) -> Option<bool> {
    if CONTACT_FIELDS.iter().all(|f| params.get(f).is_none()) {
        return None;
    }
    let complete = ["fn", "ln", "ad", "cy", "st", "zp", "ct", "em", "ph"].iter().all(|f| params.get(f).is_some());
    let email = params.get("em").and_then(|e| e.split_once('@')).is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
    });
    let country = params.get("ct").is_some_and(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()));
    let phone = params.get("ph").is_some_and(|p| p.bytes().any(|b| b.is_ascii_digit()));
    Some(complete && email && country && phone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn nameservers_fall_back_to_the_registrars_unless_all_are_valid() {
        assert_eq!(order_nameservers(&params(&[])), (DEFAULT_NAMESERVERS.map(String::from).to_vec(), true));
        let good = params(&[("ns1", "NS1.Example.net"), ("ns2", "ns2.example.net.")]);
        assert_eq!(order_nameservers(&good), (vec!["ns1.example.net".to_owned(), "ns2.example.net".to_owned()], true));
        let bad = params(&[("ns1", "ns1.example.net"), ("ns2", "not a host")]);
        assert_eq!(order_nameservers(&bad), (DEFAULT_NAMESERVERS.map(String::from).to_vec(), false));
        assert!(!order_nameservers(&params(&[("ns1", "ns1.example.net")])).1);
    }

    #[test]
    fn a_contact_is_used_only_when_complete() {
        assert_eq!(contact_given(&params(&[])), None);
        let full = [
            ("fn", "Ada"),
            ("ln", "Lovelace"),
            ("ad", "1 Road"),
            ("cy", "London"),
            ("st", "LDN"),
            ("zp", "N1"),
            ("ct", "GB"),
            ("em", "ada@example.com"),
            ("ph", "+44.2000000"),
        ];
        assert_eq!(contact_given(&params(&full)), Some(true));
        let mut bad_mail = full;
        bad_mail[7] = ("em", "ada");
        assert_eq!(contact_given(&params(&bad_mail)), Some(false));
        assert_eq!(contact_given(&params(&[("fn", "Ada")])), Some(false));
    }
}
