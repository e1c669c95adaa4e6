//! When a Domain is renewed, and for how many years: exactly enough that the registrar's expiry
//! reaches `paidUntil`, and never twice for one `paidUntil`.

use jiff::ToSpan;
use jiff::civil::Date;
use mpanel_crds::domain::{OrderOperation, OrderState, RegistrarOrder};

use crate::controllers::Clock;

/// The most years a registrar holds a name ahead.
pub const MAX_YEARS: u8 = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No `paidUntil`: nothing was paid for, nothing is renewed.
    NoPaidUntil,
    /// The registrar's expiry is on or after `paidUntil`.
    Covered,
    /// Renew this many years.
    Renew(u8),
    /// This `paidUntil` was renewed once already, yet the expiry is still short: not renewed again.
    RenewedOnce,
    /// More than [`MAX_YEARS`] would be needed.
    TooFar { years: u32 },
    /// A date that is not `YYYY-MM-DD`.
    BadDate(String),
}

/// What to do for `paid_until` given the registrar's `expires` and the last order on record.
pub fn plan(paid_until: Option<&str>, expires: &str, last_order: Option<&RegistrarOrder>) -> Plan {
    let Some(paid_until) = paid_until else { return Plan::NoPaidUntil };
    let (Ok(paid), Ok(expiry)) = (paid_until.parse::<Date>(), expires.parse::<Date>()) else {
        return Plan::BadDate(format!("cannot compare expiry {expires:?} with paidUntil {paid_until:?}"));
    };
    if expiry >= paid {
        return Plan::Covered;
    }
    // Namesilo applies a renewal at once: an order for this paidUntil that is still short either
    // never took effect (Sent or Failed: try again) or did and fell short (Succeeded: stop)
    let renewed_for_this_payment = last_order.is_some_and(|o| {
        o.operation == OrderOperation::Renew
            && o.state == OrderState::Succeeded
            && o.for_paid_until.as_deref() == Some(paid_until)
    });
    if renewed_for_this_payment {
        return Plan::RenewedOnce;
    }
    let years = years_needed(expiry, paid);
    match u8::try_from(years) {
        Ok(y) if y <= MAX_YEARS => Plan::Renew(y),
        _ => Plan::TooFar { years },
    }
}

/// The fewest whole years that carry `expiry` to `paid` or beyond.
fn years_needed(expiry: Date, paid: Date) -> u32 {
    let mut years = 1u32;
    while expiry.saturating_add(i64::from(years).years()) < paid && years < 1000 {
        years += 1;
    }
    years
}

/// Today (UTC) by `clock`, to tell an expired registration from an active one.
pub fn today(clock: &Clock) -> Date {
    clock.now().to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// Whether the registration has run out by `today`.
pub fn expired(expires: &str, today: Date) -> bool {
    expires.parse::<Date>().is_ok_and(|d| d < today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn order(operation: OrderOperation, state: OrderState, for_paid_until: &str) -> RegistrarOrder {
        RegistrarOrder {
            operation,
            years: 1,
            for_paid_until: Some(for_paid_until.into()),
            amount: None,
            state,
            at: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn renews_exactly_the_years_that_reach_paid_until() {
        assert_eq!(plan(Some("2027-11-23"), "2027-11-23", None), Plan::Covered);
        assert_eq!(plan(Some("2027-11-23"), "2028-01-01", None), Plan::Covered);
        assert_eq!(plan(Some("2028-11-23"), "2027-11-23", None), Plan::Renew(1));
        assert_eq!(plan(Some("2028-11-24"), "2027-11-23", None), Plan::Renew(2));
        assert_eq!(plan(Some("2030-06-01"), "2027-11-23", None), Plan::Renew(3));
        // 29 February clamps to the 28th
        assert_eq!(plan(Some("2029-02-28"), "2028-02-29", None), Plan::Renew(1));
        assert_eq!(plan(None, "2027-11-23", None), Plan::NoPaidUntil);
        assert_eq!(plan(Some("2045-01-01"), "2027-11-23", None), Plan::TooFar { years: 18 });
        assert!(matches!(plan(Some("soon"), "2027-11-23", None), Plan::BadDate(_)));
    }

    #[test]
    fn one_payment_is_renewed_once() {
        let done = order(OrderOperation::Renew, OrderState::Succeeded, "2028-11-23");
        assert_eq!(plan(Some("2028-11-23"), "2027-11-23", Some(&done)), Plan::RenewedOnce);
        // a new payment is a new renewal
        assert_eq!(plan(Some("2029-11-23"), "2028-11-23", Some(&done)), Plan::Renew(1));
        // an order that never took effect (the expiry did not move) is sent again
        let sent = order(OrderOperation::Renew, OrderState::Sent, "2028-11-23");
        assert_eq!(plan(Some("2028-11-23"), "2027-11-23", Some(&sent)), Plan::Renew(1));
        let failed = order(OrderOperation::Renew, OrderState::Failed, "2028-11-23");
        assert_eq!(plan(Some("2028-11-23"), "2027-11-23", Some(&failed)), Plan::Renew(1));
    }
}
