//! Which mail domains a namespace's Mailboxes may use.
//!
//! A mail domain belongs to one namespace: the one whose DnsZone or Domain holds the name (the
//! name index), or, for a name nobody claims, the one whose Mailboxes made its row on mail-core
//! (marked `namespace/<ns>`). A row made outside the operator (no marker) is used only by the
//! namespace the operator config grants it to (`mailcore.domainGrants`).

use std::collections::BTreeMap;

use crate::names::{Holding, plain};
use crate::providers::mailcore::DomainRow;

/// The marker of a domain row: the namespace whose Mailboxes use it.
pub fn marker(namespace: &str) -> String {
    format!("namespace/{namespace}")
}

/// Why a namespace may not use a mail domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another namespace's DnsZone or Domain holds the name.
    NameHeldElsewhere,
    /// mail-core's row is marked for another namespace.
    RowOfAnotherNamespace,
    /// mail-core's row was made outside the operator and is not granted to this namespace.
    UngrantedRow,
}

impl Refusal {
    /// The words for the refused namespace; they never say which namespace uses the domain.
    pub fn message(self, domain: &str) -> String {
        match self {
            Self::NameHeldElsewhere | Self::RowOfAnotherNamespace => {
                format!("mail domain {domain} is used by another namespace")
            }
            Self::UngrantedRow => format!(
                "mail domain {domain} is used outside this namespace (it was on mail-core before the operator and is not granted to this namespace)"
            ),
        }
    }
}

/// Whether `namespace` may use `domain`, given what the name index says of it and its row on
/// mail-core, if any.
pub fn check(
    namespace: &str,
    domain: &str,
    holding: &Holding,
    row: Option<&DomainRow>,
    grants: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    if *holding == Holding::Elsewhere {
        return Err(Refusal::NameHeldElsewhere);
    }
    match row.map(|r| r.owner.as_deref()) {
        Some(Some(owner)) if owner != marker(namespace) => Err(Refusal::RowOfAnotherNamespace),
        Some(None) if granted_to(grants, domain) != Some(namespace) => Err(Refusal::UngrantedRow),
        _ => Ok(()),
    }
}

/// The namespace the config grants `domain` to.
fn granted_to<'g>(grants: &'g BTreeMap<String, String>, domain: &str) -> Option<&'g str> {
    let domain = plain(domain);
    grants.iter().find(|(d, _)| plain(d) == domain).map(|(_, ns)| ns.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(owner: Option<&str>) -> DomainRow {
        DomainRow { domain: "example.com".into(), active: true, owner: owner.map(Into::into) }
    }

    fn grants(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(d, ns)| ((*d).to_owned(), (*ns).to_owned())).collect()
    }

    #[test]
    fn a_name_another_namespace_holds_is_refused_whatever_the_row_says() {
        let none = grants(&[("example.com", "a")]);
        for r in [None, Some(row(None)), Some(row(Some("namespace/a")))] {
            assert_eq!(
                check("a", "example.com", &Holding::Elsewhere, r.as_ref(), &none),
                Err(Refusal::NameHeldElsewhere)
            );
        }
    }

    #[test]
    fn a_row_of_another_namespace_is_refused_even_where_the_index_says_held() {
        let held = Holding::Held("example.com".into());
        let other = row(Some("namespace/b"));
        assert_eq!(check("a", "example.com", &held, Some(&other), &grants(&[])), Err(Refusal::RowOfAnotherNamespace));
        let prefix = row(Some("namespace/ab"));
        assert_eq!(check("a", "example.com", &held, Some(&prefix), &grants(&[])), Err(Refusal::RowOfAnotherNamespace));
        assert_eq!(check("a", "example.com", &held, Some(&row(Some("namespace/a"))), &grants(&[])), Ok(()));
    }

    #[test]
    fn an_unmarked_row_is_used_only_by_the_namespace_it_is_granted_to() {
        let unmarked = row(None);
        let g = grants(&[("Example.com.", "a")]);
        assert_eq!(
            check("a", "example.com", &Holding::Unclaimed, Some(&unmarked), &grants(&[])),
            Err(Refusal::UngrantedRow)
        );
        assert_eq!(check("a", "example.com", &Holding::Unclaimed, Some(&unmarked), &g), Ok(()));
        assert_eq!(check("b", "example.com", &Holding::Unclaimed, Some(&unmarked), &g), Err(Refusal::UngrantedRow));
    }

    #[test]
    fn a_name_held_here_or_by_nobody_without_a_row_is_allowed() {
        assert_eq!(check("a", "example.com", &Holding::Unclaimed, None, &grants(&[])), Ok(()));
        assert_eq!(check("a", "example.com", &Holding::Held("example.com".into()), None, &grants(&[])), Ok(()));
    }

    #[test]
    fn messages_name_the_domain_and_no_namespace() {
        for r in [Refusal::NameHeldElsewhere, Refusal::RowOfAnotherNamespace, Refusal::UngrantedRow] {
            let m = r.message("example.com");
            assert!(m.contains("mail domain example.com") && !m.contains("namespace/"), "{m}");
        }
    }

    #[test]
    fn grants_are_read_from_the_mailcore_config() {
        let config = crate::config::Config::parse(
            "mailcore:\n  databaseUrlSecretRef: {namespace: s, name: db, key: url}\n  domainGrants: {legacy.example: customer-1}\n",
        )
        .map_err(|e| e.to_string());
        let read = config.map(|c| c.mailcore.map(|m| m.domain_grants).unwrap_or_default());
        assert_eq!(read, Ok(grants(&[("legacy.example", "customer-1")])));
    }
}
