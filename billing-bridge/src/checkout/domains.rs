//! The domain names a purchase registers or transfers: well-formed, and asked of the registrar
//! before anything is written.

use super::*;

/// The names the resources register or transfer in.
pub(super) fn registrations_in(resources: &ResourceTemplates) -> Vec<(String, RegistrationMode)> {
    resources
        .domains
        .iter()
        .map(|d| (d.spec.name.clone(), d.spec.registration.mode))
        .filter(|(_, mode)| *mode != RegistrationMode::External)
        .collect()
}

/// Refuses a registration of a name that is taken or already in the account, and a transfer of one
/// already in the account or registered nowhere, as the registrar says now. Without a registrar, nothing of the kind is
/// sold.
pub(super) async fn check_registrations(
    registrar: Option<&Registrar>,
    registrations: &[(String, RegistrationMode)],
) -> Result<(), DomainRefused> {
    if registrations.is_empty() {
        return Ok(());
    }
    let Some(registrar) = registrar else {
        tracing::warn!("a domain purchase was refused: the bridge has no registrar settings");
        return Err(DomainRefused::RegistrarUnavailable);
    };
    for (name, mode) in registrations {
        let standing = registrar.standing(name).await.map_err(|e| {
            tracing::warn!(error = %e, reason = e.reason(), "the registrar could not be asked about a domain purchase");
            DomainRefused::RegistrarUnavailable
        })?;
        match (standing, mode) {
            (Standing::InAccount, _) => return Err(DomainRefused::AlreadyRegistered(name.clone())),
            (Standing::Taken | Standing::Invalid, RegistrationMode::Register) => {
                return Err(DomainRefused::Unavailable(name.clone()));
            }
            (Standing::Available | Standing::Invalid, RegistrationMode::Transfer) => {
                return Err(DomainRefused::NotRegistered(name.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A domain name as the Domain resource takes it: lowercase, no trailing dot.
pub(super) fn valid_domain(name: &str) -> Result<String, LedgerError> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let labels: Vec<&str> = name.split('.').collect();
    if name.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
        return Err(LedgerError::Invalid(format!("{name:?} is not a domain name")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_and_transferred_names_are_found_in_templates() {
        let filled = serde_json::json!({"domains": [
            {"name": "a", "spec": {"name": "a.com", "registration": {"mode": "Register"}}},
            {"name": "b", "spec": {"name": "b.com", "registration": {"mode": "Transfer", "authCodeSecretRef": {"name": "s", "key": "k"}}}},
            {"name": "c", "spec": {"name": "c.com", "registration": {"mode": "External"}}}
        ]});
        let filled: ResourceTemplates = serde_json::from_value(filled).unwrap();
        let found = registrations_in(&filled);
        assert_eq!(
            found,
            [("a.com".to_owned(), RegistrationMode::Register), ("b.com".to_owned(), RegistrationMode::Transfer)]
        );
        assert!(registrations_in(&ResourceTemplates::default()).is_empty());
    }

    #[tokio::test]
    async fn without_a_registrar_domain_purchases_fail_closed() {
        let none = check_registrations(None, &[]).await;
        assert!(none.is_ok(), "nothing to register needs no registrar");
        let refused = check_registrations(None, &[("a.com".into(), RegistrationMode::Register)]).await;
        assert_eq!(refused.map_err(|e| e.code()).err(), Some("registrar_unavailable"));
    }

    #[test]
    fn domains_are_normalised_or_refused() {
        assert_eq!(valid_domain("Example.NET.").ok().as_deref(), Some("example.net"));
        assert!(valid_domain("localhost").is_err());
        assert!(valid_domain("-bad.example").is_err());
        assert!(valid_domain("a b.example").is_err());
    }
}
