//! Billing periods that keep their anchor: every period end is the anchor (the first period's
//! start) plus a whole number of cycles, so a subscription started on the 31st ends its periods on
//! the 31st, or the last day of shorter months (Jan 31 → Feb 28 → Mar 31 → Apr 30), and one started
//! on 29 February ends them on 28 February and again on 29 February in leap years. Adding a cycle
//! to the last period's end instead would carry a clamped day on for good (Mar 28, Apr 28, …).

use chrono::{DateTime, Datelike, Months, Utc};

use crate::ledger::Cycle;

/// The months of one period of `cycle`.
pub fn months(cycle: Cycle) -> u32 {
    match cycle {
        Cycle::Monthly => 1,
        Cycle::Quarterly => 3,
        Cycle::Annual => 12,
        Cycle::Biennial => 24,
    }
}

/// `anchor` moved on by `n` months, the day of month clamped to the month's last day.
pub fn months_after(anchor: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    anchor.checked_add_months(Months::new(n)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The end of the period of `cycle` that starts at `start`, for periods anchored at `anchor`: the
/// anchored end one cycle on from the start's month (later if that is not after `start`). A start
/// that is itself an anchored end (the usual case) gets the next one; a start off the anchor (a
/// period cut before this rule) is brought back onto it.
pub fn end_after(anchor: DateTime<Utc>, cycle: Cycle, start: DateTime<Utc>) -> DateTime<Utc> {
    let step = months(cycle);
    let elapsed = month_index(start) - month_index(anchor);
    let mut periods = u32::try_from(elapsed.max(0)).unwrap_or(0) / step + 1;
    loop {
        let end = months_after(anchor, periods * step);
        if end > start || end == DateTime::<Utc>::MAX_UTC {
            return end;
        }
        periods += 1;
    }
}

/// Months since the year 0, to count whole months between two dates.
fn month_index(at: DateTime<Utc>) -> i64 {
    i64::from(at.year()) * 12 + i64::from(at.month0())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().unwrap_or_default()
    }

    fn walk(anchor: DateTime<Utc>, cycle: Cycle, n: usize) -> Vec<String> {
        let mut start = anchor;
        let mut ends = Vec::new();
        for _ in 0..n {
            start = end_after(anchor, cycle, start);
            ends.push(start.format("%Y-%m-%d").to_string());
        }
        ends
    }

    #[test]
    fn monthly_periods_keep_the_31st() {
        assert_eq!(
            walk(at(2027, 1, 31), Cycle::Monthly, 15),
            [
                "2027-02-28",
                "2027-03-31",
                "2027-04-30",
                "2027-05-31",
                "2027-06-30",
                "2027-07-31",
                "2027-08-31",
                "2027-09-30",
                "2027-10-31",
                "2027-11-30",
                "2027-12-31",
                "2028-01-31",
                "2028-02-29",
                "2028-03-31",
                "2028-04-30"
            ]
        );
    }

    #[test]
    fn yearly_periods_keep_29_february() {
        assert_eq!(walk(at(2028, 2, 29), Cycle::Annual, 4), ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"]);
        assert_eq!(walk(at(2027, 8, 31), Cycle::Quarterly, 3), ["2027-11-30", "2028-02-29", "2028-05-31"]);
    }

    #[test]
    fn a_start_off_the_anchor_comes_back_onto_it() {
        // a period that drifted to the 28th ends on the anchor's day again
        assert_eq!(end_after(at(2027, 1, 31), Cycle::Monthly, at(2027, 3, 28)), at(2027, 4, 30));
        // the time of day counts: an end is never at or before its start
        let late = Utc.with_ymd_and_hms(2027, 2, 28, 13, 0, 0).single().unwrap_or_default();
        assert_eq!(end_after(at(2027, 1, 31), Cycle::Monthly, late), at(2027, 3, 31));
    }
}
