//! Amounts of US dollars, held as whole cents.

use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(u64);

#[derive(Debug, PartialEq, Eq)]
pub struct BadAmount(String);

impl fmt::Display for BadAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an amount of dollars with at most two decimals, like \"25.00\"", self.0)
    }
}

impl std::error::Error for BadAmount {}

impl Money {
    pub const fn from_cents(cents: u64) -> Self {
        Self(cents)
    }

    pub fn cents(self) -> u64 {
        self.0
    }

    /// `n` times this amount.
    pub fn times(self, n: u64) -> Option<Self> {
        self.0.checked_mul(n).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// Parses `25`, `25.5` or `25.00`.
    pub fn parse(text: &str) -> Result<Self, BadAmount> {
        let bad = || BadAmount(text.to_owned());
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 2 {
            return Err(bad());
        }
        let dollars: u64 = whole.parse().map_err(|_| bad())?;
        let cents: u64 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
        dollars.checked_mul(100).and_then(|c| c.checked_add(cents)).map(Self).ok_or_else(bad)
    }

    /// With thousands separated by commas, as Namesilo writes balances: `1,234.56`.
    pub fn grouped(self) -> String {
        let dollars = (self.0 / 100).to_string();
        let mut grouped = String::new();
        for (i, digit) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        format!("{grouped}.{:02}", self.0 % 100)
    }
}

/// `1234.56`
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dollars_with_up_to_two_decimals() {
        assert_eq!(Money::parse("25.00"), Ok(Money::from_cents(2500)));
        assert_eq!(Money::parse("25"), Ok(Money::from_cents(2500)));
        assert_eq!(Money::parse("10.5"), Ok(Money::from_cents(1050)));
        assert_eq!(Money::parse("0.07"), Ok(Money::from_cents(7)));
        for bad in ["", ".5", "-1.00", "1.005", "1,000.00", "ten", "1.2.3", "99999999999999999999"] {
            assert!(Money::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn formats_plain_and_grouped() {
        assert_eq!(Money::from_cents(1095).to_string(), "10.95");
        assert_eq!(Money::from_cents(5).to_string(), "0.05");
        assert_eq!(Money::from_cents(98_905).grouped(), "989.05");
        assert_eq!(Money::from_cents(100_000).grouped(), "1,000.00");
        assert_eq!(Money::from_cents(123_456_789).grouped(), "1,234,567.89");
    }

    #[test]
    fn arithmetic_stays_in_cents() {
        assert_eq!(Money::from_cents(1095).times(3), Some(Money::from_cents(3285)));
        assert_eq!(Money::from_cents(100).checked_sub(Money::from_cents(101)), None);
        assert_eq!(Money::from_cents(100_000).checked_sub(Money::from_cents(1095)), Some(Money::from_cents(98_905)));
    }
}
