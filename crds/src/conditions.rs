//! Status conditions, shared by every kind: a top-level `Ready` plus step conditions.
//!
//! Conditions are the Kubernetes `Condition` type. `set` keeps `lastTransitionTime` when the status
//! does not change, so a resync that finds nothing new writes an identical status.

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The condition every kind has: the object is converged and usable.
pub const READY: &str = crate::reasons::condition_types::READY.name;

/// The three values of `Condition.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// What a reconciler observed for one condition type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub type_: &'static str,
    pub status: Status,
    /// CamelCase, stable: dashboards and alerts match on it.
    pub reason: String,
    /// For people; a provider's own error text goes here verbatim.
    pub message: String,
}

impl Observation {
    pub fn new(
        type_: &'static str,
        status: impl Into<Status>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { type_, status: status.into(), reason: reason.into(), message: message.into() }
    }
}

/// Records `observation` in `conditions`, replacing the condition of the same type. The transition
/// time moves only when the status changes. Returns whether anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    observation: Observation,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let Observation { type_, status, reason, message } = observation;
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let status_changed = existing.status != status.as_str();
            let changed = status_changed
                || existing.reason != reason
                || existing.message != message
                || existing.observed_generation != observed_generation;
            if status_changed {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.as_str().to_owned();
            existing.reason = reason;
            existing.message = message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.as_str().to_owned(),
                reason,
                message,
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `Ready` is `True` and was observed at `generation`: the object is converged to its current spec.
pub fn is_ready_at(conditions: &[Condition], generation: Option<i64>) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == Status::True.as_str() && c.observed_generation == generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    #[test]
    fn set_adds_then_keeps_transition_time_while_status_holds() {
        let mut conds = Vec::new();
        assert!(set(&mut conds, Observation::new(READY, false, "Provisioning", "cloning"), Some(1), &at(10)));
        assert!(set(&mut conds, Observation::new(READY, false, "Provisioning", "starting"), Some(1), &at(20)));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, at(10));
        assert_eq!(conds[0].message, "starting");

        assert!(set(&mut conds, Observation::new(READY, true, "Running", "ok"), Some(1), &at(30)));
        assert_eq!(conds[0].last_transition_time, at(30));
        assert_eq!(conds[0].status, "True");
    }

    #[test]
    fn set_reports_no_change_for_an_identical_observation() {
        let mut conds = Vec::new();
        set(&mut conds, Observation::new(READY, true, "Running", "ok"), Some(2), &at(10));
        let before = conds.clone();
        assert!(!set(&mut conds, Observation::new(READY, true, "Running", "ok"), Some(2), &at(99)));
        assert_eq!(conds, before);
    }

    #[test]
    fn ready_counts_only_at_the_current_generation() {
        let mut conds = Vec::new();
        set(&mut conds, Observation::new(READY, true, "Running", "ok"), Some(1), &at(10));
        assert!(is_ready_at(&conds, Some(1)));
        assert!(!is_ready_at(&conds, Some(2)));
        set(&mut conds, Observation::new(READY, false, "Failed", "boom"), Some(2), &at(11));
        assert!(!is_ready_at(&conds, Some(2)));
    }
}
