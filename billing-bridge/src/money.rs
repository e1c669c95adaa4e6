//! Money: catalog prices are integer cents, ledger amounts are `Decimal` with two places.

use rust_decimal::Decimal;

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
}
