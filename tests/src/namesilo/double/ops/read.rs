//! Operations that only look: availability, domain info, the domain list, the balance.

use serde_json::{Value, json};

use super::super::code::Code;
use super::super::names;
use super::super::prices;
use super::super::reply::{Outcome, Reply};
use super::super::xmljson::{element, list, text};
use super::super::{dates, model::Domain};
use super::Call;

/// `domains` (comma-separated, up to 200) sorted into available, unavailable and invalid names.
pub fn check_register_availability(call: &mut Call<'_>) -> Outcome {
    let asked = call.params.required("domains")?;
    let (mut available, mut unavailable, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = Vec::new();
    for raw in asked.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let Some(name) = names::domain(raw) else {
            invalid.push(text(raw));
            continue;
        };
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        if call.world.registry.contains_key(&name) || call.world.in_any_account(&name) {
            unavailable.push(text(&name));
        } else {
            let p = prices::for_domain(&name);
            let attributes = [
                ("price", p.register.to_string()),
                ("renew", p.renew.to_string()),
                ("premium", "0".to_owned()),
                ("duration", "1".to_owned()),
            ];
            available.push(element("domain", &name, &attributes));
        }
    }
    Ok(Reply::new(Code::Success)
        .field("available", list("domain", available))
        .field("unavailable", list("domain", unavailable))
        .field("invalid", list("domain", invalid)))
}

pub fn get_domain_info(call: &mut Call<'_>) -> Outcome {
    let name = call.params.domain()?;
    let today = dates::today(call.now);
    let domain = call.own_domain(&name)?.clone();
    Ok(domain_info(&domain, today))
}

fn domain_info(domain: &Domain, today: jiff::civil::Date) -> Reply {
    let yes_no = |b: bool| if b { "Yes" } else { "No" };
    // Namesilo shows nameservers in capitals, however they were given
    let nameservers = domain
        .nameservers
        .iter()
        .enumerate()
        .map(|(i, ns)| element("nameserver", &ns.to_ascii_uppercase(), &[("position", (i + 1).to_string())]))
        .collect();
    let contact = text(&domain.contact_id.to_string());
    Reply::new(Code::Success)
        .text("created", domain.created.to_string())
        .text("expires", domain.expires.to_string())
        .text("status", if domain.expires < today { "Expired" } else { "Active" })
        .text("locked", yes_no(domain.locked))
        .text("private", yes_no(domain.private))
        .text("auto_renew", yes_no(domain.auto_renew))
        .text("traffic_type", "Custom DNS")
        .text("email_verification_required", "No")
        .text("portfolio", "")
        .text("forward_url", "N/A")
        .text("forward_type", "N/A")
        .field("nameservers", list("nameserver", nameservers))
        .field(
            "contact_ids",
            json!({"registrant": contact, "administrative": contact, "technical": contact, "billing": contact}),
        )
}

/// Every domain of the account with its dates, in name order.
pub fn list_domains(call: &mut Call<'_>) -> Outcome {
    let domains: Vec<Value> = call
        .account()?
        .domains
        .iter()
        .map(|(name, d)| {
            element("domain", name, &[("created", d.created.to_string()), ("expires", d.expires.to_string())])
        })
        .collect();
    Ok(Reply::new(Code::Success).field("domains", list("domain", domains)))
}

pub fn get_account_balance(call: &mut Call<'_>) -> Outcome {
    let balance = call.account()?.balance;
    Ok(Reply::new(Code::Success).text("balance", balance.grouped()))
}
