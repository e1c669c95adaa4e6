//! How the children's readiness makes the Subscription's conditions and phase: Suspended and
//! ChildrenReady, the provisioning deadline, and Ready with the phase.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::reasons::{self, Reason};
use mpanel_crds::subscription::{ChildStatus, Subscription, SubscriptionPhase, SuspensionReason};

use super::{CHILDREN_READY, SUSPENDED, Step};

/// What the children say, as the phase is decided from it.
pub(super) struct Children {
    pub all_ready: bool,
    /// The first child that is not Ready.
    pub first_waiting: Option<ChildStatus>,
    /// The first child that failed in a way no retry changes.
    pub terminal: Option<ChildStatus>,
}

/// Sets Suspended from the suspension `hold` and ChildrenReady from the first child not Ready.
pub(super) fn set_conditions(step: &mut Step, hold: Option<SuspensionReason>, first_waiting: Option<&ChildStatus>) {
    match hold {
        Some(reason) => step.set(Observation::new(
            SUSPENDED,
            true,
            suspended_for(reason).name,
            format!("suspended ({reason:?}): CloudPods stopped, Mailboxes disabled"),
        )),
        None => step.set(Observation::new(SUSPENDED, false, reasons::NOT_SUSPENDED.name, "not suspended")),
    };
    match first_waiting {
        None => step.set(Observation::new(
            CHILDREN_READY,
            true,
            reasons::ALL_READY.name,
            format!("all {} child resources are Ready", step.status.resources.len()),
        )),
        Some(c) => step.set(Observation::new(
            CHILDREN_READY,
            false,
            c.reason.clone().unwrap_or_else(|| reasons::NOT_READY.name.into()),
            format!("{} {}: {}", c.kind, c.name, c.message.clone().unwrap_or_default()),
        )),
    };
}

/// Moves the start of provisioning (cleared once `settled`) and returns its deadline. The deadline
/// counts from when provisioning of this generation (or after a relapse) began.
pub(super) fn provisioning_deadline(step: &mut Step, sub: &Subscription, settled: bool) -> Option<Timestamp> {
    let was_settled = matches!(step.status.phase, Some(SubscriptionPhase::Active | SubscriptionPhase::Suspended));
    let new_generation = sub.status.as_ref().and_then(|s| s.observed_generation) != sub.metadata.generation;
    if settled {
        step.status.provisioning_started_at = None;
    } else if step.status.provisioning_started_at.is_none() || new_generation || was_settled {
        step.status.provisioning_started_at = Some(step.at.clone());
    }
    let timeout =
        mpanel_crds::formats::parse_duration(&sub.spec.provisioning_timeout).unwrap_or(Duration::from_secs(1800));
    step.status
        .provisioning_started_at
        .as_ref()
        .map(|t| t.0 + jiff::SignedDuration::try_from(timeout).unwrap_or(jiff::SignedDuration::MAX))
}

/// The phase and the Ready condition; notes the first activation.
pub(super) fn phase(
    step: &mut Step,
    sub: &Subscription,
    hold: Option<SuspensionReason>,
    children: &Children,
    overdue: bool,
) -> (SubscriptionPhase, Observation) {
    match (hold, children.all_ready, &children.terminal, overdue) {
        (Some(_), ..) => (
            SubscriptionPhase::Suspended,
            Observation::new(READY, false, reasons::SUSPENDED.name, "the subscription is suspended"),
        ),
        (None, true, ..) => {
            if step.status.activated_at.is_none() {
                step.status.activated_at = Some(step.at.clone());
            }
            (
                SubscriptionPhase::Active,
                Observation::new(READY, true, reasons::ACTIVE.name, "every child resource is Ready"),
            )
        }
        (None, false, Some(c), _) => (
            SubscriptionPhase::Failed,
            Observation::new(
                READY,
                false,
                reasons::CHILD_FAILED.name,
                format!("{} {} failed: {}", c.kind, c.name, c.message.clone().unwrap_or_default()),
            ),
        ),
        (None, false, None, true) => (
            SubscriptionPhase::Failed,
            Observation::new(
                READY,
                false,
                reasons::PROVISIONING_TIMEOUT.name,
                format!(
                    "not every child was Ready within {}; waiting on {}",
                    sub.spec.provisioning_timeout,
                    children
                        .first_waiting
                        .as_ref()
                        .map(|c| format!("{} {}: {}", c.kind, c.name, c.message.clone().unwrap_or_default()))
                        .unwrap_or_default()
                ),
            ),
        ),
        (None, false, None, false) => (
            SubscriptionPhase::Provisioning,
            Observation::new(READY, false, reasons::PROVISIONING.name, "waiting for the child resources to be Ready"),
        ),
    }
}

/// The reason of the Suspended condition for a suspension's reason.
fn suspended_for(reason: SuspensionReason) -> Reason {
    match reason {
        SuspensionReason::Overdue => reasons::OVERDUE,
        SuspensionReason::Abuse => reasons::ABUSE,
        SuspensionReason::Manual => reasons::MANUAL,
        SuspensionReason::Dispute => reasons::DISPUTE,
    }
}
