//! The time the controllers decide by (renewal due, a schedule's next run, an expiry), injectable
//! so a test can set it and move it on instead of waiting.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// The wall clock, or in tests a clock that stands still until moved.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Mutex<Timestamp>>>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that reads `at` until [`Clock::advance`] moves it.
    pub fn fixed(at: Timestamp) -> Self {
        Self(Some(Arc::new(Mutex::new(at))))
    }

    pub fn now(&self) -> Timestamp {
        match &self.0 {
            None => Timestamp::now(),
            Some(at) => *at.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a fixed clock on by `by` (to the end of time at most); the system clock cannot be moved.
    pub fn advance(&self, by: SignedDuration) {
        if let Some(at) = &self.0 {
            let mut at = at.lock().unwrap_or_else(|e| e.into_inner());
            *at = at.saturating_add(by).unwrap_or(Timestamp::MAX);
        }
    }
}

tokio::task_local! {
    /// The clock of the reconcile running on this task ([`Clock::during`]).
    static RECONCILING: Clock;
}

impl Clock {
    /// Runs `work` with this clock as the one [`now`] reads: the shared reconcile path runs every
    /// reconcile so, and the status timestamps (`lastTransitionTime`, `activatedAt`, an order's
    /// `at`) follow the same clock as the decisions.
    pub async fn during<F: std::future::Future>(self, work: F) -> F::Output {
        RECONCILING.scope(self, work).await
    }
}

/// The time by the clock of the reconcile running on this task; the wall clock outside one.
pub fn now() -> Timestamp {
    RECONCILING.try_with(Clock::now).unwrap_or_else(|_| Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stands_still_until_moved() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Clock::fixed(start);
        assert_eq!(clock.now(), start);
        clock.clone().advance(SignedDuration::from_hours(24));
        assert_eq!(clock.now(), start + SignedDuration::from_hours(24));
    }

    #[tokio::test]
    async fn within_a_reconcile_now_reads_its_clock_and_outside_the_wall_clock() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Clock::fixed(start).during(async { now() }).await, start);
        assert!(now() > start);
    }

    #[test]
    fn the_system_clock_follows_the_wall_clock() {
        let before = Timestamp::now();
        let read = Clock::system().now();
        assert!(read >= before && read <= Timestamp::now());
    }
}
