//! What a reconcile sees on mail-core before it writes: the rows of the Mailbox's mail domains,
//! mailbox and aliases, which of them are another object's, and what the mail domain's DnsZone says
//! about mail.

use kube::ResourceExt;
use mpanel_crds::mailbox::Mailbox;

use super::{Context, Error, domain_owner, domains, mail_domains, owner, split};
use crate::providers::mailcore::{AliasRow, DomainRow, MailApi, MailboxRow};
use crate::providers::powerdns::canonical;

/// The Mailbox's address and aliases as mail-core's rows hold them, with the owner markers of its
/// rows.
pub(super) struct Addresses {
    pub address: String,
    pub local: String,
    pub domain: String,
    pub aliases: Vec<String>,
    /// The marker of the mailbox and alias rows.
    pub owner: String,
    /// The marker of the domain rows.
    pub domain_owner: String,
}

impl Addresses {
    pub fn of(mailbox: &Mailbox) -> Self {
        let address = mailbox.spec.address.to_ascii_lowercase();
        let (local, domain) = split(&address);
        let (owner, domain_owner) = (owner(mailbox), domain_owner(mailbox));
        let aliases: Vec<String> = mailbox.spec.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
        Self { address, local, domain, aliases, owner, domain_owner }
    }
}

/// mail-core's rows for one Mailbox.
pub(super) struct Rows {
    /// Each mail domain of the address and aliases (the address's first) with its row.
    pub domains: Vec<(String, Option<DomainRow>)>,
    pub mailbox: Option<MailboxRow>,
    /// The rows of the wanted aliases and of every alias this object owns.
    pub aliases: Vec<AliasRow>,
}

/// The mail domains of the address and of the aliases (each once, the address's first), with
/// their rows on mail-core.
pub(super) async fn observe_domains<M: MailApi>(
    mailbox: &Mailbox,
    ctx: &Context<M>,
) -> Result<Vec<(String, Option<DomainRow>)>, Error> {
    let names = mail_domains(mailbox);
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let row = ctx.mail.domain(&name).await?;
        rows.push((name, row));
    }
    Ok(rows)
}

/// What refuses each mail domain the namespace may not use, in words for the Mailbox's owner.
pub(super) fn refused_domains<M>(
    mailbox: &Mailbox,
    domain_rows: &[(String, Option<DomainRow>)],
    ctx: &Context<M>,
) -> Vec<String> {
    let namespace = mailbox.namespace().unwrap_or_default();
    let names = ctx.names.decision_for(domain_rows.iter().map(|(domain, _)| domain.as_str()), []);
    domain_rows
        .iter()
        .filter_map(|(domain, row)| {
            let holding = names.holding(&namespace, domain);
            domains::check(&namespace, domain, &holding, row.as_ref(), &ctx.domain_grants)
                .err()
                .map(|r| r.message(domain))
        })
        .collect()
}

/// The mailbox row, then the alias rows, of the Mailbox whose domains are `domains`.
pub(super) async fn observe_rows<M: MailApi>(
    at: &Addresses,
    domains: Vec<(String, Option<DomainRow>)>,
    ctx: &Context<M>,
) -> Result<Rows, Error> {
    let mailbox = ctx.mail.mailbox(&at.address).await?;
    let aliases = ctx.mail.aliases(&at.aliases, &at.owner).await?;
    Ok(Rows { domains, mailbox, aliases })
}

/// Which of the wanted rows exist and are another object's, in words. The owner marker of such a
/// row names another object (maybe another tenant's), so the words do not repeat it.
pub(super) fn conflicts(at: &Addresses, rows: &Rows) -> Vec<String> {
    let owner = at.owner.as_str();
    let mut conflicts = Vec::new();
    if let Some(r) = &rows.mailbox
        && r.owner.as_deref() != Some(owner)
    {
        conflicts.push(format!("mailbox {} exists on mail-core and is not this object's", at.address));
    }
    for a in rows.aliases.iter().filter(|a| at.aliases.contains(&a.address) && a.owner.as_deref() != Some(owner)) {
        conflicts.push(format!("alias {} exists on mail-core and is not this object's", a.address));
    }
    conflicts
}

/// What the DnsZone of the mail domain says about mail, for the DomainReady message.
pub(super) fn dns_note<M>(mailbox: &Mailbox, domain: &str, ctx: &Context<M>) -> String {
    let ns = mailbox.namespace();
    let wanted = canonical(domain);
    let zone = ctx
        .dnszones
        .state()
        .into_iter()
        .find(|z| z.namespace() == ns && canonical(&z.spec.zone.to_ascii_lowercase()) == wanted);
    match zone {
        Some(z) => match z.spec.mail.as_ref().filter(|m| !m.mx.is_empty()) {
            Some(mail) => format!(
                "DnsZone {} publishes MX {}",
                z.name_any(),
                mail.mx.iter().map(|m| format!("{} {}", m.priority, m.host)).collect::<Vec<_>>().join(", ")
            ),
            None => format!("DnsZone {} has no MX in its mail settings", z.name_any()),
        },
        None => format!("no DnsZone for {domain} in this namespace: its MX is managed elsewhere"),
    }
}
