//! The API operations the double answers, one function each, over the world.

mod orders;
mod read;
mod settings;
mod transfers;

use jiff::Timestamp;

use super::code::Code;
use super::model::{Account, Domain, World};
use super::params::Params;
use super::reply::{Outcome, Reply};

/// Everything one operation may look at: the world, whose account is asking, and when.
pub struct Call<'a> {
    pub world: &'a mut World,
    pub key: &'a str,
    pub params: &'a Params,
    pub now: Timestamp,
}

impl Call<'_> {
    /// The caller's account (the API layer has checked the key, so 110 cannot happen here).
    fn account(&mut self) -> Result<&mut Account, Reply> {
        self.world.accounts.get_mut(self.key).ok_or_else(|| Reply::new(Code::InvalidApiKey))
    }

    /// The caller's domain `name`, or 200.
    fn own_domain(&mut self, name: &str) -> Result<&mut Domain, Reply> {
        self.account()?.domains.get_mut(name).ok_or_else(|| Reply::new(Code::NotInAccount))
    }
}

type Operation = fn(&mut Call<'_>) -> Outcome;

/// The operation called `name`, when the double knows it.
pub fn find(name: &str) -> Option<Operation> {
    let operation: Operation = match name {
        "checkRegisterAvailability" => read::check_register_availability,
        "getDomainInfo" => read::get_domain_info,
        "listDomains" => read::list_domains,
        "getAccountBalance" => read::get_account_balance,
        "registerDomain" => orders::register_domain,
        "renewDomain" => orders::renew_domain,
        "transferDomain" => transfers::transfer_domain,
        "checkTransferStatus" => transfers::check_transfer_status,
        "transferUpdateChangeEPPCode" => transfers::change_epp_code,
        "changeNameServers" => settings::change_name_servers,
        "domainLock" => settings::domain_lock,
        "domainUnlock" => settings::domain_unlock,
        "addAutoRenewal" => settings::add_auto_renewal,
        "removeAutoRenewal" => settings::remove_auto_renewal,
        "addPrivacy" => settings::add_privacy,
        "removePrivacy" => settings::remove_privacy,
        _ => return None,
    };
    Some(operation)
}

/// Runs `operation` for the caller, first completing transfers whose time has come.
pub fn run(operation: Operation, call: &mut Call<'_>) -> Reply {
    call.world.settle(call.now);
    operation(call).unwrap_or_else(|early| early)
}
