//! The registrar operations the Domain controller uses, as Namesilo calls with their parameters.

use serde_json::Value;

use super::client::{Call, Namesilo};
use super::replies::{domain_info, members, text};
use super::{DomainInfo, NamesiloApi, NamesiloError, OrderOptions, Receipt, Transfer, code, normalise_host};

fn order_params(options: &OrderOptions) -> Vec<(&'static str, String)> {
    const NS: [&str; 13] =
        ["ns1", "ns2", "ns3", "ns4", "ns5", "ns6", "ns7", "ns8", "ns9", "ns10", "ns11", "ns12", "ns13"];
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut params = vec![("private", flag(options.private)), ("auto_renew", flag(options.auto_renew))];
    params.extend(NS.iter().zip(&options.nameservers).map(|(k, v)| (*k, v.clone())));
    if let Some(c) = &options.contact {
        params.extend([
            ("fn", c.first_name.clone()),
            ("ln", c.last_name.clone()),
            ("ad", c.street.clone()),
            ("cy", c.city.clone()),
            ("st", c.state_province.clone().unwrap_or_default()),
            ("zp", c.postal_code.clone()),
            ("ct", c.country.clone()),
            ("em", c.email.clone()),
            ("ph", c.phone.clone()),
        ]);
        if let Some(org) = &c.organization {
            params.push(("cp", org.clone()));
        }
    }
    params
}

fn nameserver_params(nameservers: &[String]) -> Vec<(String, String)> {
    nameservers.iter().enumerate().map(|(i, ns)| (format!("ns{}", i + 1), ns.clone())).collect()
}

impl NamesiloApi for Namesilo {
    async fn domain_info(&self, domain: &str) -> Result<Option<DomainInfo>, NamesiloError> {
        match self.send(Call::Read, "getDomainInfo", &[("domain", domain.to_owned())]).await {
            Ok(reply) => domain_info(&reply).map(Some),
            Err(e) if e.code() == Some(code::NOT_IN_ACCOUNT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn available(&self, domain: &str) -> Result<bool, NamesiloError> {
        let reply = self.send(Call::Read, "checkRegisterAvailability", &[("domains", domain.to_owned())]).await?;
        let wanted = normalise_host(domain);
        let Some(available) = reply.get("available") else { return Ok(false) };
        Ok(members(available, "domain").into_iter().any(|item| {
            let name = match item {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("domain").or_else(|| o.get("#text")).and_then(Value::as_str),
                _ => None,
            };
            name.is_some_and(|n| normalise_host(n) == wanted)
        }))
    }

    async fn register(&self, domain: &str, years: u8, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        let mut params = vec![("domain", domain.to_owned()), ("years", years.to_string())];
        params.extend(order_params(options));
        self.paid("registerDomain", &params).await
    }

    async fn renew(&self, domain: &str, years: u8) -> Result<Receipt, NamesiloError> {
        self.paid("renewDomain", &[("domain", domain.to_owned()), ("years", years.to_string())]).await
    }

    async fn transfer(&self, domain: &str, auth_code: &str, options: &OrderOptions) -> Result<Receipt, NamesiloError> {
        let mut params = vec![("domain", domain.to_owned()), ("auth", auth_code.to_owned())];
        // a transfer keeps the nameservers the domain has; they are changed once it arrived
        params.extend(order_params(&OrderOptions { nameservers: Vec::new(), ..options.clone() }));
        self.paid("transferDomain", &params).await
    }

    async fn transfer_status(&self, domain: &str) -> Result<Option<Transfer>, NamesiloError> {
        match self.send(Call::Read, "checkTransferStatus", &[("domain", domain.to_owned())]).await {
            Ok(reply) => Ok(Some(Transfer {
                status: text(&reply, "status").unwrap_or_default(),
                message: text(&reply, "message"),
            })),
            Err(e) if e.code() == Some(code::NO_TRANSFER) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn change_auth_code(&self, domain: &str, auth_code: &str) -> Result<(), NamesiloError> {
        let params = [("domain", domain.to_owned()), ("auth", auth_code.to_owned())];
        self.send(Call::Write, "transferUpdateChangeEPPCode", &params).await.map(drop)
    }

    async fn set_nameservers(&self, domain: &str, nameservers: &[String]) -> Result<(), NamesiloError> {
        let numbered = nameserver_params(nameservers);
        let mut params: Vec<(&str, String)> = vec![("domain", domain.to_owned())];
        params.extend(numbered.iter().map(|(k, v)| (k.as_str(), v.clone())));
        self.send(Call::Write, "changeNameServers", &params).await.map(drop)
    }

    async fn set_lock(&self, domain: &str, locked: bool) -> Result<(), NamesiloError> {
        self.toggle(if locked { "domainLock" } else { "domainUnlock" }, domain).await
    }

    async fn set_privacy(&self, domain: &str, private: bool) -> Result<(), NamesiloError> {
        self.toggle(if private { "addPrivacy" } else { "removePrivacy" }, domain).await
    }

    async fn set_auto_renew(&self, domain: &str, auto_renew: bool) -> Result<(), NamesiloError> {
        self.toggle(if auto_renew { "addAutoRenewal" } else { "removeAutoRenewal" }, domain).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::namesilo::Contact;

    #[test]
    fn order_parameters_carry_flags_nameservers_and_contact() {
        let options = OrderOptions {
            nameservers: vec!["ns1.example.net".into(), "ns2.example.net".into()],
            private: true,
            auto_renew: false,
            contact: Some(Contact { first_name: "Ada".into(), country: "GB".into(), ..Default::default() }),
        };
        let params = order_params(&options);
        let get = |k: &str| params.iter().find(|(p, _)| *p == k).map(|(_, v)| v.as_str());
        assert_eq!(get("private"), Some("1"));
        assert_eq!(get("auto_renew"), Some("0"));
        assert_eq!(get("ns2"), Some("ns2.example.net"));
        assert_eq!(get("ns3"), None);
        assert_eq!(get("fn"), Some("Ada"));
        assert_eq!(get("cp"), None);
    }
}
