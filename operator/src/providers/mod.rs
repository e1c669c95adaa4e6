//! One typed client per external system, each behind a trait so controllers can be unit-tested.

pub mod acme;
pub mod dns;
pub mod mailcore;
pub mod namesilo;
pub mod powerdns;
pub mod proxmox;
pub mod proxmox_agent;
pub mod proxmox_backup;
pub mod throttle;

/// What a configuration's Debug output shows in place of a credential.
pub const REDACTED: &str = "<redacted>";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn configurations_never_print_their_credentials() {
        let secret = "s3cr3t-value";
        let pdns = super::powerdns::Config {
            api_url: "http://pdns".into(),
            api_key: secret.into(),
            server_id: "localhost".into(),
            timeout: Duration::from_secs(1),
        };
        let pve = super::proxmox::Config {
            url: "https://pve".into(),
            token: format!("root@pam!op={secret}"),
            ca_pem: None,
            timeout: Duration::from_secs(1),
        };
        let mail = super::mailcore::Config {
            database_url: format!("postgres://u:{secret}@db/mail"),
            timeout: Duration::from_secs(1),
            max_connections: 1,
        };
        let acme = super::acme::Config {
            directory_url: "https://ca/dir".into(),
            contact: vec![],
            ca_bundle: None,
            external_account: Some(("kid".into(), secret.as_bytes().to_vec())),
            timeout: Duration::from_secs(1),
        };
        for text in [format!("{pdns:?}"), format!("{pve:?}"), format!("{mail:?}"), format!("{acme:?}")] {
            assert!(!text.contains(secret) && !text.contains("115, 51"), "{text}");
            assert!(text.contains(super::REDACTED), "{text}");
        }
    }
}
