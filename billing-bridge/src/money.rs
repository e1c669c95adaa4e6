//! Money: catalog prices are integers in the currency's minor unit, ledger amounts are `Decimal`
//! in the currency's major unit (two places in the ledger's columns). Stripe counts in minor units,
//! whose size depends on the currency (ISO 4217): amounts are converted with [`minor_unit_digits`]
//! wherever they cross to or from Stripe.

use rust_decimal::Decimal;

/// Currencies whose minor unit is the major unit (no decimals), as Stripe counts them.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof",
    "xpf",
];

/// Currencies whose minor unit is a thousandth of the major unit.
const THREE_DECIMAL: &[&str] = &["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"];

/// How many decimal places the currency's minor unit has (ISO 4217): 0 for `jpy`, 3 for `kwd`,
/// 2 for every other code. `currency` is matched case-insensitively.
pub fn minor_unit_digits(currency: &str) -> u32 {
    let code = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&code.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// The amount `minor` counts in the currency's minor unit (`1999` usd is 19.99, `1999` jpy is 1999).
pub fn from_minor(minor: i64, currency: &str) -> Decimal {
    Decimal::new(minor, minor_unit_digits(currency))
}

/// The amount in the currency's minor unit, if it is a whole number of them that fits.
pub fn to_minor(amount: Decimal, currency: &str) -> Option<i64> {
    let minor = amount.checked_mul(Decimal::from(10_i64.pow(minor_unit_digits(currency))))?;
    if minor.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(minor).ok()
}

pub fn from_cents(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// The amount in cents, if it is a whole number of cents that fits.
pub fn to_cents(amount: Decimal) -> Option<i64> {
    let cents = amount.checked_mul(Decimal::ONE_HUNDRED)?;
    if cents.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(cents).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip() {
        assert_eq!(from_cents(3999).to_string(), "39.99");
        assert_eq!(to_cents(from_cents(3999)), Some(3999));
        assert_eq!(to_cents(Decimal::new(1, 3)), None);
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        for zero in ["jpy", "JPY", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof"] {
            assert_eq!(minor_unit_digits(zero), 0, "{zero}");
        }
        for three in ["kwd", "bhd", "jod", "omr", "tnd", "iqd", "lyd"] {
            assert_eq!(minor_unit_digits(three), 3, "{three}");
        }
        for two in ["usd", "eur", "gbp", "chf"] {
            assert_eq!(minor_unit_digits(two), 2, "{two}");
        }
    }

    #[test]
    fn amounts_convert_with_the_currency_s_minor_unit() {
        assert_eq!(from_minor(5000, "jpy").to_string(), "5000");
        assert_eq!(to_minor(Decimal::new(5000, 0), "jpy"), Some(5000));
        assert_eq!(to_minor(Decimal::new(500050, 2), "jpy"), None, "half a yen is not an amount");
        assert_eq!(from_minor(12345, "kwd").to_string(), "12.345");
        assert_eq!(to_minor(Decimal::new(12345, 3), "kwd"), Some(12345));
        assert_eq!(to_minor(Decimal::new(1235, 2), "kwd"), Some(12350));
        assert_eq!(from_minor(1999, "usd").to_string(), "19.99");
        assert_eq!(to_minor(Decimal::new(1999, 2), "usd"), Some(1999));
    }
}
