//! Customers set the password of the mailboxes a subscription made with generated credentials
//! (`${credentialsSecret}`): the bridge writes it into the subscription's credentials Secret, where
//! the operator's Mailbox controller takes it from, and never mails, logs or reads it back.
//!
//! The rule (`check`): 12 to 128 characters, no control characters, and not containing, ignoring
//! case, the local part of a mailbox address it unlocks or of the customer's email address (a local
//! part shorter than 3 characters is not looked for).

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::render::{FIELD_MANAGER, MAILBOX_PASSWORD_KEY};

/// The shortest password taken, in characters.
pub const MIN_CHARS: usize = 12;
/// The longest password taken, in characters.
pub const MAX_CHARS: usize = 128;
/// A name shorter than this is not looked for in a password.
const MIN_NAME_CHARS: usize = 3;

/// Why a password is refused; `code()` is stable (the portal API answers it with `422`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Weak {
    #[error("a mailbox password has at least {MIN_CHARS} characters")]
    TooShort,
    #[error("a mailbox password has at most {MAX_CHARS} characters")]
    TooLong,
    #[error("a mailbox password has no control characters (line breaks, tabs)")]
    ControlCharacter,
    #[error("a mailbox password does not contain the mailbox's name or your email address's")]
    ContainsName,
}

impl Weak {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort => "PasswordTooShort",
            Self::TooLong => "PasswordTooLong",
            Self::ControlCharacter => "PasswordControlCharacter",
            Self::ContainsName => "PasswordContainsName",
        }
    }
}

/// Whether `password` may be set on mailboxes `addresses` of the customer with `email`.
pub fn check(password: &str, addresses: &[String], email: &str) -> Result<(), Weak> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(Weak::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(Weak::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(Weak::ControlCharacter);
    }
    let lower = password.to_lowercase();
    let names = addresses.iter().map(String::as_str).chain([email]).map(|a| a.split('@').next().unwrap_or_default());
    if names.map(str::to_lowercase).any(|name| name.chars().count() >= MIN_NAME_CHARS && lower.contains(&name)) {
        return Err(Weak::ContainsName);
    }
    Ok(())
}

/// The addresses of the mailboxes whose password is in `secret`.
pub fn addresses_using(resources: &Value, secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    collect_addresses(resources, secret, &mut found);
    found
}

fn collect_addresses(value: &Value, secret: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let uses = map.get("passwordSecretRef").and_then(|r| r.get("name")).and_then(Value::as_str) == Some(secret);
            if let (true, Some(address)) = (uses, map.get("address").and_then(Value::as_str)) {
                found.push(address.to_owned());
            }
            map.values().for_each(|v| collect_addresses(v, secret, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_addresses(v, secret, found)),
        _ => {}
    }
}

/// Why the password was not written.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The Secret is not there (yet): the subscription's resources were not applied.
    #[error("the mailbox credentials are not made yet")]
    NotMade,
    #[error("Kubernetes refused or did not answer: {0}")]
    Kubernetes(String),
}

/// Writes `password` into the Secret `secret` in `namespace` with a merge patch of its `stringData`.
/// The answer is asked for as metadata only, so the Secret's data never comes back to the bridge.
pub async fn set(client: &kube::Client, namespace: &str, secret: &str, password: &str) -> Result<(), SetError> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    let patch = Patch::Merge(json!({"stringData": {MAILBOX_PASSWORD_KEY: password}}));
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    match api.patch_metadata(secret, &params, &patch).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(SetError::NotMade),
        // the API server's words, never the request (which holds the password)
        Err(kube::Error::Api(status)) => Err(SetError::Kubernetes(format!("{} ({})", status.message, status.code))),
        Err(_) => Err(SetError::Kubernetes("no answer".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> Vec<String> {
        vec!["postmaster@shop.example".to_owned()]
    }

    #[test]
    fn the_rule_counts_characters_and_refuses_names_and_control_characters() {
        let email = "jane.doe@example.net";
        assert_eq!(check("short-1", &addresses(), email), Err(Weak::TooShort));
        assert_eq!(check("ääääääääääää", &addresses(), email), Ok(()), "12 characters, 24 bytes");
        assert_eq!(check(&"x".repeat(MAX_CHARS), &addresses(), email), Ok(()));
        assert_eq!(check(&"x".repeat(MAX_CHARS + 1), &addresses(), email), Err(Weak::TooLong));
        assert_eq!(check("a-long-password\n", &addresses(), email), Err(Weak::ControlCharacter));
        assert_eq!(check("My-PostMaster-2026", &addresses(), email), Err(Weak::ContainsName));
        assert_eq!(check("xx-JANE.DOE-xx-2026", &addresses(), email), Err(Weak::ContainsName));
        assert_eq!(check("correct horse battery", &addresses(), email), Ok(()));
        // a local part of two characters is not looked for
        assert_eq!(check("a-long-password-jo", &addresses(), "jo@example.net"), Ok(()));
        assert_eq!(Weak::ContainsName.code(), "PasswordContainsName");
    }

    #[test]
    fn the_addresses_are_those_of_mailboxes_using_the_secret() {
        let resources = json!({"mailboxes": [
            {"name": "a", "spec": {"address": "postmaster@shop.example",
                                   "passwordSecretRef": {"name": "sub-credentials", "key": "mailbox-password"}}},
            {"name": "b", "spec": {"address": "other@shop.example",
                                   "passwordSecretRef": {"name": "elsewhere", "key": "password"}}}]});
        assert_eq!(addresses_using(&resources, "sub-credentials"), ["postmaster@shop.example"]);
    }
}
