//! The Namesilo operations the fake answers, by the rules in the module's documentation.

use super::*;

impl NamesiloApi for FakeNamesilo {
    async fn domain_info(&self, domain: &str) -> Result<Option<DomainInfo>, NamesiloError> {
        const OP: &str = "getDomainInfo";
        let outcome = self.begin(OP, domain).and_then(|state| {
            let info = state
                .domains
                .get(&normalise_host(domain))
                .ok_or_else(|| reply(OP, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?;
            Ok(with_status(info, state.today))
        });
        match outcome {
            Ok(info) => Ok(Some(info)),
            Err(NamesiloError::Reply { code: code::NOT_IN_ACCOUNT, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn available(&self, domain: &str) -> Result<bool, NamesiloError> {
        let state = self.begin("checkRegisterAvailability", domain)?;
        let Some(name) = domain_name(domain) else { return Ok(false) };
        Ok(!state.domains.contains_key(&name) && !state.taken.contains(&name) && !state.elsewhere.contains_key(&name))
    }

    async fn register(&self, domain: &str, years: u8, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        const OP: &str = "registerDomain";
        let mut state = self.begin(OP, domain)?;
        let name = domain_name(domain).ok_or_else(|| reply(OP, 114, "Invalid Domain Syntax"))?;
        if !(1..=10).contains(&years) {
            return Err(reply(OP, code::INVALID_YEARS, INVALID_YEARS));
        }
        if state.domains.contains_key(&name) {
            return Err(reply(OP, code::ALREADY_ACTIVE, ALREADY_ACTIVE));
        }
        if state.taken.contains(&name) || state.elsewhere.contains_key(&name) {
            return Err(reply(OP, code::UNAVAILABLE, "Domain unavailable for registration."));
        }
        let asked: Vec<Option<String>> = options.nameservers.iter().map(|n| domain_name(n)).collect();
        let (nameservers, valid) = match asked.len() {
            0 => (DEFAULT_NAMESERVERS.map(String::from).to_vec(), true),
            n if n >= 2 && asked.iter().all(Option::is_some) => (asked.into_iter().flatten().collect(), true),
            _ => (DEFAULT_NAMESERVERS.map(String::from).to_vec(), false),
        };
        let cents = YEAR_CENTS * u64::from(years);
        let today = state.today;
        let expires = add_years(today, years).ok_or_else(|| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        charge(&mut state, OP, cents)?;
        let info = DomainInfo {
            created: Some(today.to_string()),
            expires: expires.to_string(),
            status: "Active".to_owned(),
            locked: true,
            private: options.private,
            auto_renew: options.auto_renew,
            nameservers,
        };
        state.domains.insert(name, info);
        let code = if valid { 300 } else { 301 };
        Ok(receipt(code, "Your domain registration was successfully processed.", cents))
    }

    async fn renew(&self, domain: &str, years: u8) -> Result<Receipt, NamesiloError> {
        const OP: &str = "renewDomain";
        let mut state = self.begin(OP, domain)?;
        let name = normalise_host(domain);
        let expires =
            state.domains.get(&name).ok_or_else(|| reply(OP, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?.expires.clone();
        if !(1..=10).contains(&years) {
            return Err(reply(OP, code::INVALID_YEARS, INVALID_YEARS));
        }
        let expires: Date = expires.parse().map_err(|_| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        let renewed = add_years(expires, years).ok_or_else(|| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        let limit = add_years(state.today, 10).ok_or_else(|| reply(OP, code::INVALID_YEARS, INVALID_YEARS))?;
        if renewed > limit {
            return Err(reply(
                OP,
                code::CANNOT_RENEW_YEARS,
                format!(
                    "The domain cannot be renewed for {years} year(s): it would expire on {renewed}, more than 10 \
                     years from today."
                ),
            ));
        }
        let cents = YEAR_CENTS * u64::from(years);
        charge(&mut state, OP, cents)?;
        if let Some(info) = state.domains.get_mut(&name) {
            info.expires = renewed.to_string();
        }
        Ok(receipt(300, "Your domain renewal was successfully processed.", cents))
    }

    async fn transfer(&self, domain: &str, auth_code: &str, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        const OP: &str = "transferDomain";
        let mut state = self.begin(OP, domain)?;
        let name = normalise_host(domain);
        if state.domains.contains_key(&name) || state.taken.contains(&name) {
            return Err(reply(OP, code::ALREADY_ACTIVE, ALREADY_ACTIVE));
        }
        let Some(elsewhere) = state.elsewhere.get(&name).cloned() else {
            return Err(reply(
                OP,
                code::CANNOT_TRANSFER,
                "This domain cannot be transferred since it is not currently registered.",
            ));
        };
        if state.transfers.get(&name).is_some_and(|t| t.status != TransferStatus::Completed) {
            return Err(reply(OP, code::CANNOT_TRANSFER, "A transfer of this domain is already in progress."));
        }
        charge(&mut state, OP, TRANSFER_CENTS)?;
        let given = Some(auth_code).filter(|c| !c.is_empty());
        let status = TransferStatus::of(given, &elsewhere.auth_code);
        state
            .transfers
            .insert(name, InboundTransfer { status, private: options.private, auto_renew: options.auto_renew });
        Ok(receipt(300, "Your domain transfer was successfully processed.", TRANSFER_CENTS))
    }

    async fn transfer_status(&self, domain: &str) -> Result<Option<Transfer>, NamesiloError> {
        const OP: &str = "checkTransferStatus";
        let outcome = self.begin(OP, domain).and_then(|state| {
            let transfer = state
                .transfers
                .get(&normalise_host(domain))
                .ok_or_else(|| reply(OP, code::NO_TRANSFER, NO_TRANSFER))?;
            Ok(Transfer {
                status: transfer.status.text().to_owned(),
                message: Some(transfer.status.message().to_owned()),
            })
        });
        match outcome {
            Ok(transfer) => Ok(Some(transfer)),
            Err(NamesiloError::Reply { code: code::NO_TRANSFER, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn change_auth_code(&self, domain: &str, auth_code: &str) -> Result<(), NamesiloError> {
        const OP: &str = "transferUpdateChangeEPPCode";
        let mut state = self.begin(OP, domain)?;
        let name = normalise_host(domain);
        let expected = state
            .elsewhere
            .get(&name)
            .map(|e| e.auth_code.clone())
            .ok_or_else(|| reply(OP, code::NO_TRANSFER, NO_TRANSFER))?;
        let transfer = state
            .transfers
            .get_mut(&name)
            .filter(|t| t.status != TransferStatus::Completed)
            .ok_or_else(|| reply(OP, code::NO_TRANSFER, NO_TRANSFER))?;
        transfer.status = TransferStatus::of(Some(auth_code), &expected);
        Ok(())
    }

    async fn set_nameservers(&self, domain: &str, nameservers: &[String]) -> Result<(), NamesiloError> {
        const OP: &str = "changeNameServers";
        let mut state = self.begin(OP, domain)?;
        if nameservers.len() < 2 {
            return Err(reply(OP, code::MISSING_PARAMETERS, "Missing parameters for the specified operation"));
        }
        let info = state
            .domains
            .get_mut(&normalise_host(domain))
            .ok_or_else(|| reply(OP, code::NOT_IN_ACCOUNT, NOT_IN_ACCOUNT))?;
        let mut hosts = Vec::with_capacity(nameservers.len());
        for ns in nameservers {
            hosts.push(domain_name(ns).ok_or_else(|| reply(OP, 254, format!("{ns} is not a valid NameServer.")))?);
        }
        info.nameservers = hosts;
        Ok(())
    }

    async fn set_lock(&self, domain: &str, locked: bool) -> Result<(), NamesiloError> {
        self.toggle(if locked { "domainLock" } else { "domainUnlock" }, domain, locked, |d| &mut d.locked)
    }

    async fn set_privacy(&self, domain: &str, private: bool) -> Result<(), NamesiloError> {
        self.toggle(if private { "addPrivacy" } else { "removePrivacy" }, domain, private, |d| &mut d.private)
    }

    async fn set_auto_renew(&self, domain: &str, auto_renew: bool) -> Result<(), NamesiloError> {
        let op = if auto_renew { "addAutoRenewal" } else { "removeAutoRenewal" };
        self.toggle(op, domain, auto_renew, |d| &mut d.auto_renew)
    }
}
