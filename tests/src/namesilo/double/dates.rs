//! Calendar arithmetic in UTC, the way a registry counts years.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The UTC date of `now`.
pub fn today(now: Timestamp) -> Date {
    now.to_zoned(TimeZone::UTC).date()
}

/// `date` plus `years`; 29 February becomes 28 February in a year without one.
pub fn add_years(date: Date, years: u32) -> Option<Date> {
    date.checked_add(i64::from(years).years()).ok()
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as `checkTransferStatus` writes its date.
pub fn date_time(at: Timestamp) -> String {
    at.to_zoned(TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn years_are_added_on_the_calendar() {
        assert_eq!(add_years(date(2025, 3, 14), 2), Some(date(2027, 3, 14)));
        assert_eq!(add_years(date(2024, 2, 29), 1), Some(date(2025, 2, 28)));
        assert_eq!(add_years(date(2024, 2, 29), 4), Some(date(2028, 2, 29)));
        assert_eq!(add_years(date(2025, 12, 31), 10), Some(date(2035, 12, 31)));
    }

    #[test]
    fn dates_are_utc() {
        let at: Timestamp = "2025-06-30T23:59:58Z".parse().unwrap_or_default();
        assert_eq!(today(at), date(2025, 6, 30));
        assert_eq!(date_time(at), "2025-06-30 23:59:58");
    }
}
