//! Mailbox passwords as Dovecot reads them: `{BLF-CRYPT}` followed by a bcrypt `$2y$` hash.
//!
//! A bcrypt verify costs about 50 ms of CPU, so the outcome of the last one is remembered per
//! Mailbox ([`Verified`]): a resync that finds the same Secret version and the same stored hash
//! as last time does not verify again; a new Secret version or another stored hash (changed in
//! mail-core) is verified as before. What is remembered names the Secret's version, never the
//! password or anything made from it.

use std::collections::HashMap;
use std::sync::Mutex;

use mpanel_crds::reasons;

const SCHEME: &str = "{BLF-CRYPT}";
/// bcrypt work factor: about 50 ms per hash on one core of this class of machine.
const COST: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than 72 bytes, which bcrypt cannot hash without cutting it")]
    TooLong,
    #[error("the password cannot be hashed: {0}")]
    Hash(String),
}

impl PasswordError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty | Self::TooLong => reasons::PASSWORD_UNUSABLE.name,
            Self::Hash(_) => reasons::PASSWORD_HASH_FAILED.name,
        }
    }
}

/// The stored form of `password`.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > 72 {
        return Err(PasswordError::TooLong);
    }
    let parts =
        bcrypt::non_truncating_hash_with_result(password, COST).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(format!("{SCHEME}{}", parts.format_for_version(bcrypt::Version::TwoY)))
}

/// Whether `stored` is a hash of `password` in the scheme this module writes.
pub fn matches(password: &str, stored: &str) -> bool {
    stored.strip_prefix(SCHEME).is_some_and(|h| bcrypt::non_truncating_verify(password, h).unwrap_or(false))
}

/// The outcome of the last verify of one Mailbox: the Secret version and the stored hash it
/// compared, and whether they matched.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    /// `name/key@resourceVersion` of the password's Secret: a new version is a new password as far
    /// as this memory knows.
    secret: String,
    stored: String,
    matched: bool,
}

/// Per Mailbox UID: the last verify's outcome and how many verifies ran for it.
#[derive(Default)]
struct Entry {
    last: Option<Outcome>,
    verifies: u64,
}

/// Outcomes of password verifies, per Mailbox UID, kept by the Mailbox controller (one entry per
/// Mailbox, removed when the Mailbox is deleted).
#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<String, Entry>>,
}

/// How the Secret holding a password is named in [`Verified`]: its name, key and resourceVersion.
pub fn secret_version(name: &str, key: &str, resource_version: &str) -> String {
    format!("{name}/{key}@{resource_version}")
}

impl Verified {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `stored` is a hash of `password` (the text of `secret`, as [`secret_version`] names
    /// it) for the Mailbox `uid`: the remembered answer when that Mailbox was last verified with
    /// the same Secret version and stored hash, else a bcrypt verify on a blocking thread, whose
    /// answer is remembered.
    pub async fn matches(&self, uid: &str, secret: &str, password: &str, stored: &str) -> bool {
        let remembered = self
            .entries()
            .get(uid)
            .and_then(|e| e.last.as_ref())
            .filter(|o| o.secret == secret && o.stored == stored)
            .map(|o| o.matched);
        if let Some(matched) = remembered {
            return matched;
        }
        let (p, s) = (password.to_owned(), stored.to_owned());
        let matched = crate::cpu_bound::run(move || matches(&p, &s)).await;
        let mut entries = self.entries();
        let entry = entries.entry(uid.to_owned()).or_default();
        entry.verifies += 1;
        entry.last = Some(Outcome { secret: secret.to_owned(), stored: stored.to_owned(), matched });
        matched
    }

    /// Remembers that `stored`, just written from the password of `secret`, matches it (the
    /// answer is known without a verify).
    pub fn wrote(&self, uid: &str, secret: &str, stored: &str) {
        let mut entries = self.entries();
        entries.entry(uid.to_owned()).or_default().last =
            Some(Outcome { secret: secret.to_owned(), stored: stored.to_owned(), matched: true });
    }

    /// Forgets the Mailbox `uid` (it is deleted).
    pub fn forget(&self, uid: &str) {
        self.entries().remove(uid);
    }

    /// How many bcrypt verifies ran for the Mailbox `uid` since it was last forgotten.
    pub fn verifies(&self, uid: &str) -> u64 {
        self.entries().get(uid).map_or(0, |e| e.verifies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_blf_crypt_2y_and_verifies_only_its_password() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("{BLF-CRYPT}$2y$10$"), "{stored}");
        assert!(matches("correct horse", &stored));
        assert!(!matches("wrong horse", &stored));
        assert!(!matches("correct horse", stored.trim_start_matches("{BLF-CRYPT}")), "another scheme is not ours");
        assert_ne!(hash("correct horse").unwrap(), stored, "salted");
    }

    #[test]
    fn unusable_passwords_are_refused_with_a_reason() {
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
        assert!(matches!(hash(&"x".repeat(73)), Err(PasswordError::TooLong)));
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[tokio::test]
    async fn an_unchanged_pair_is_verified_once_and_a_changed_one_again() {
        let memory = Verified::default();
        let stored = hash("correct horse").unwrap();
        let v1 = secret_version("pw", "password", "7");
        assert!(memory.matches("uid-1", &v1, "correct horse", &stored).await);
        assert!(memory.matches("uid-1", &v1, "correct horse", &stored).await);
        assert_eq!(memory.verifies("uid-1"), 1);

        // another stored hash (changed in mail-core) is verified again, and found not to match
        let other = hash("set by hand").unwrap();
        assert!(!memory.matches("uid-1", &v1, "correct horse", &other).await);
        assert_eq!(memory.verifies("uid-1"), 2);
        // a new Secret version is verified again
        let v2 = secret_version("pw", "password", "8");
        assert!(!memory.matches("uid-1", &v2, "wrong horse", &stored).await);
        assert_eq!(memory.verifies("uid-1"), 3);
        // another Mailbox has its own memory
        assert!(memory.matches("uid-2", &v1, "correct horse", &stored).await);
        assert_eq!(memory.verifies("uid-2"), 1);

        // a hash the operator wrote is known to match without a verify
        let written = hash("wrong horse").unwrap();
        memory.wrote("uid-1", &v2, &written);
        assert!(memory.matches("uid-1", &v2, "wrong horse", &written).await);
        assert_eq!(memory.verifies("uid-1"), 3);
        memory.forget("uid-1");
        assert_eq!(memory.verifies("uid-1"), 0);
    }
}
