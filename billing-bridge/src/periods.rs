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

/// The shortest of `cycles`: the billing period of a subscription whose items have them (each
/// longer cycle is a whole number of the shorter ones).
pub fn shortest(cycles: impl IntoIterator<Item = Cycle>) -> Option<Cycle> {
    cycles.into_iter().min_by_key(|c| months(*c))
}

/// Whether a period of `cycle` anchored at `anchor` ends at `at`: a renewal for the period that
/// starts at `at` bills an item of that cycle.
pub fn ends_at(anchor: DateTime<Utc>, cycle: Cycle, at: DateTime<Utc>) -> bool {
    let elapsed = month_index(at) - month_index(anchor);
    elapsed > 0
        && elapsed % i64::from(months(cycle)) == 0
        && u32::try_from(elapsed).is_ok_and(|n| months_after(anchor, n) == at)
}

/// The anchored period of `cycle` that `at` falls in: its start (the anchor at the earliest) and end.
pub fn containing(anchor: DateTime<Utc>, cycle: Cycle, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let step = months(cycle);
    // the period that starts in `at`'s month or the one before it (`at` may be before its anchor day)
    let elapsed = u32::try_from((month_index(at) - month_index(anchor)).max(0)).unwrap_or(0);
    let mut n = (elapsed / step).saturating_sub(1);
    loop {
        let end = months_after(anchor, (n + 1) * step);
        if end > at || end == DateTime::<Utc>::MAX_UTC {
            return (months_after(anchor, n * step), end);
        }
        n += 1;
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
    fn a_yearly_item_of_a_monthly_subscription_ends_on_every_twelfth_monthly_end() {
        let anchor = at(2027, 1, 31);
        let monthly = walk(anchor, Cycle::Monthly, 25);
        let mut start = anchor;
        let mut yearly = Vec::new();
        for _ in 0..25 {
            start = end_after(anchor, Cycle::Monthly, start);
            if ends_at(anchor, Cycle::Annual, start) {
                yearly.push(start.format("%Y-%m-%d").to_string());
            }
        }
        assert_eq!(yearly, ["2028-01-31", "2029-01-31"]);
        assert_eq!(monthly[11], "2028-01-31");
        assert!(!ends_at(anchor, Cycle::Annual, anchor), "the anchor starts the first period, it ends none");
        assert!(ends_at(anchor, Cycle::Quarterly, at(2027, 4, 30)));
        assert!(!ends_at(anchor, Cycle::Quarterly, at(2027, 3, 31)));
        assert_eq!(shortest([Cycle::Annual, Cycle::Monthly, Cycle::Quarterly]), Some(Cycle::Monthly));
    }

    #[test]
    fn the_period_containing_a_day_is_anchored() {
        let anchor = at(2027, 1, 31);
        let (start, end) = containing(anchor, Cycle::Annual, at(2028, 3, 1));
        assert_eq!((start, end), (at(2028, 1, 31), at(2029, 1, 31)));
        let (start, end) = containing(anchor, Cycle::Monthly, at(2027, 3, 5));
        assert_eq!((start, end), (at(2027, 2, 28), at(2027, 3, 31)));
        assert_eq!(containing(anchor, Cycle::Monthly, anchor), (anchor, at(2027, 2, 28)));
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
