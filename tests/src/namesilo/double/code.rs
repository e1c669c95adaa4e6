//! Namesilo's reply codes, each with its number and the detail text its API reference gives it.

/// A reply code. The numbers and texts are Namesilo's; only the codes the double can answer are here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    NoVersion,
    InvalidVersion,
    NoType,
    InvalidType,
    NoOperation,
    InvalidOperation,
    MissingParameters,
    NoApiKey,
    InvalidApiKey,
    InvalidDomainSyntax,
    InsufficientFunds,
    NotInAccount,
    AlreadyAutoRenew,
    AlreadyNotAutoRenew,
    AlreadyLocked,
    AlreadyUnlocked,
    NameServerUpdateRefused,
    AlreadyPrivate,
    AlreadyNotPrivate,
    ProcessingError,
    AlreadyActive,
    InvalidYears,
    CannotRenew,
    CannotTransfer,
    NoTransfer,
    Success,
    SuccessDefaultNameservers,
    SuccessDefaultContact,
}

impl Code {
    pub fn number(self) -> u16 {
        match self {
            Self::NoVersion => 102,
            Self::InvalidVersion => 103,
            Self::NoType => 104,
            Self::InvalidType => 105,
            Self::NoOperation => 106,
            Self::InvalidOperation => 107,
            Self::MissingParameters => 108,
            Self::NoApiKey => 109,
            Self::InvalidApiKey => 110,
            Self::InvalidDomainSyntax => 114,
            Self::InsufficientFunds => 119,
            Self::NotInAccount => 200,
            Self::AlreadyAutoRenew => 250,
            Self::AlreadyNotAutoRenew => 251,
            Self::AlreadyLocked => 252,
            Self::AlreadyUnlocked => 253,
            Self::NameServerUpdateRefused => 254,
            Self::AlreadyPrivate => 255,
            Self::AlreadyNotPrivate => 256,
            Self::ProcessingError => 261,
            Self::AlreadyActive => 262,
            Self::InvalidYears => 263,
            Self::CannotRenew => 264,
            Self::CannotTransfer => 265,
            Self::NoTransfer => 266,
            Self::Success => 300,
            Self::SuccessDefaultNameservers => 301,
            Self::SuccessDefaultContact => 302,
        }
    }

    /// The reference's text. Codes whose text says "details provided in response" (254, 261, 264,
    /// 265) are answered with a specific detail instead; see `Reply::explained`.
    pub fn detail(self) -> &'static str {
        match self {
            Self::NoVersion => "No version specified",
            Self::InvalidVersion => "Invalid API version",
            Self::NoType => "No type specified",
            Self::InvalidType => "Invalid API type",
            Self::NoOperation => "No operation specified",
            Self::InvalidOperation => "Invalid API operation",
            Self::MissingParameters => "Missing parameters for the specified operation",
            Self::NoApiKey => "No API key specified",
            Self::InvalidApiKey => "Invalid API key",
            Self::InvalidDomainSyntax => "Invalid Domain Syntax",
            Self::InsufficientFunds => "Insufficient account funds for requested transaction",
            Self::NotInAccount => "Domain is not active, or does not belong to this user",
            Self::AlreadyAutoRenew => "Domain is already set to AutoRenew - No update made.",
            Self::AlreadyNotAutoRenew => "Domain is already set not to AutoRenew - No update made.",
            Self::AlreadyLocked => "Domain is already Locked - No update made.",
            Self::AlreadyUnlocked => "Domain is already Unlocked - No update made.",
            Self::NameServerUpdateRefused => "NameServer update cannot be made. (details provided in response)",
            Self::AlreadyPrivate => "Domain is already Private - No update made.",
            Self::AlreadyNotPrivate => "Domain is already Not Private - No update made.",
            Self::ProcessingError => "Domain processing error (details provided in response)",
            Self::AlreadyActive => "This domain is already active within our system and therefore cannot be processed.",
            Self::InvalidYears => "Invalid number of years, or no years provided.",
            Self::CannotRenew => {
                "Domain cannot be renewed for specified number of years (details provided in response)"
            }
            Self::CannotTransfer => "Domain cannot be transferred at this time (details provided in response)",
            Self::NoTransfer => "No domain transfer exists for this user for this domain",
            // every sample answer of the reference says "success", not the code table's wording
            Self::Success => "success",
            Self::SuccessDefaultNameservers => {
                "Successful registration, but not all provided hosts were valid resulting in our nameservers being used"
            }
            Self::SuccessDefaultContact => {
                "Successful order, but there was an error with the contact information provided so your account \
                 default contact profile was used (you can configure your account to reject orders with invalid \
                 contact information via the Reseller Manager page in your account.)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn numbers_and_texts_are_namesilos() {
        assert_eq!(Code::InvalidType.number(), 105);
        assert_eq!(Code::InvalidType.detail(), "Invalid API type");
        assert_eq!(Code::InvalidApiKey.number(), 110);
        assert_eq!((Code::AlreadyPrivate.number(), Code::AlreadyNotPrivate.number()), (255, 256));
        assert_eq!(Code::NameServerUpdateRefused.number(), 254);
    }
}
