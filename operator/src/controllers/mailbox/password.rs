//! Mailbox passwords as Dovecot reads them: `{BLF-CRYPT}` followed by a bcrypt `$2y$` hash.

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
