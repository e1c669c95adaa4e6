//! The status of one object worked out in one reconcile and written once, by server-side apply, with
//! the kstatus `Stalled` condition following Ready.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::Recorder;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{During, KubeCall, now, publish};

/// A kind whose status the shared [`Step`] works on.
pub trait StatusOf: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug {
    type Status: Clone + Default + PartialEq + Serialize + Send + Sync;
    type Phase: Send + Sync;
    /// The field manager this kind's controller writes its status as.
    const FIELD_MANAGER: &'static str;
    fn status(&self) -> Option<&Self::Status>;
    fn conditions(status: &mut Self::Status) -> &mut Vec<mpanel_crds::conditions::Condition>;
    fn observed_generation(status: &mut Self::Status) -> &mut Option<i64>;
    fn phase(status: &mut Self::Status) -> &mut Option<Self::Phase>;
    /// The stored status's phase and conditions, read in place.
    fn phase_and_conditions(&self) -> (Option<&Self::Phase>, &[mpanel_crds::conditions::Condition]);
}

/// [`StatusOf`] for a kind whose status has `conditions`, `observedGeneration` and `phase`, written
/// as `$manager`: `status_of!(DnsZone, DnsZoneStatus, DnsZonePhase, "mpanel-dnszone");`
macro_rules! status_of {
    ($kind:ty, $status:ty, $phase:ty, $manager:expr) => {
        impl $crate::controllers::StatusOf for $kind {
            type Status = $status;
            type Phase = $phase;
            const FIELD_MANAGER: &'static str = $manager;
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn conditions(status: &mut $status) -> &mut Vec<mpanel_crds::conditions::Condition> {
                &mut status.conditions
            }
            fn observed_generation(status: &mut $status) -> &mut Option<i64> {
                &mut status.observed_generation
            }
            fn phase(status: &mut $status) -> &mut Option<$phase> {
                &mut status.phase
            }
            fn phase_and_conditions(&self) -> (Option<&$phase>, &[mpanel_crds::conditions::Condition]) {
                match &self.status {
                    Some(status) => (status.phase.as_ref(), &status.conditions),
                    None => (None, &[]),
                }
            }
        }
    };
}
pub(crate) use status_of;

/// The status of one object being worked out in one reconcile, written once at the end.
pub struct Step<K: StatusOf> {
    pub status: K::Status,
    pub generation: Option<i64>,
    pub at: Time,
}

impl<K: StatusOf> Step<K> {
    pub fn new(obj: &K) -> Self {
        Self { status: obj.status().cloned().unwrap_or_default(), generation: obj.meta().generation, at: now() }
    }

    /// Sets a condition at this generation; true when it changed (news worth an Event).
    pub fn set(&mut self, o: mpanel_crds::conditions::Observation) -> bool {
        *K::observed_generation(&mut self.status) = self.generation;
        mpanel_crds::conditions::set(K::conditions(&mut self.status), o, self.generation, &self.at)
    }

    /// Sets Ready=False (and the phase, if given); true when Ready changed.
    pub fn not_ready(&mut self, phase: Option<K::Phase>, reason: &str, message: String) -> bool {
        if phase.is_some() {
            *K::phase(&mut self.status) = phase;
        }
        self.set(mpanel_crds::conditions::Observation::new(mpanel_crds::conditions::READY, false, reason, message))
    }

    /// Records an external system's error verbatim: in `condition` (if given) and Ready, with a
    /// Warning Event when Ready changed; then writes the status.
    pub async fn record_failure(
        mut self,
        api: &Api<K>,
        obj: &K,
        condition: Option<&'static str>,
        (reason, message): (&'static str, String),
        recorder: &Recorder,
        action: &str,
    ) -> Result<(), KubeCall> {
        if let Some(c) = condition {
            self.set(mpanel_crds::conditions::Observation::new(c, false, reason, message.clone()));
        }
        if self.not_ready(None, reason, message.clone()) {
            publish(recorder, obj, true, reason, action, message).await;
        }
        self.write(api, obj).await
    }

    /// Writes the status unless it equals what is stored (a resync that finds nothing new writes nothing).
    pub async fn write(self, api: &Api<K>, obj: &K) -> Result<(), KubeCall> {
        write_changed_status(api, obj, &self.status).await
    }
}

/// Writes `status` by server-side apply as `K`'s field manager, unless it equals what is stored;
/// `Stalled` follows Ready (see [`with_stalled`]).
pub async fn write_changed_status<K: StatusOf>(api: &Api<K>, obj: &K, status: &K::Status) -> Result<(), KubeCall> {
    let status = with_stalled::<K>(status);
    if obj.status() == Some(&status) {
        return Ok(());
    }
    apply_status(api, obj, K::FIELD_MANAGER, &status).await.during("writing the status")
}

/// `status` with the kstatus `Stalled` condition: True, with Ready's reason, message and
/// generation, while Ready is False for a reason no retry changes; absent otherwise.
fn with_stalled<K: StatusOf>(status: &K::Status) -> K::Status {
    use mpanel_crds::conditions::{self, Observation};
    use mpanel_crds::reasons::{condition_types::STALLED, stalls};
    let mut status = status.clone();
    let all = K::conditions(&mut status);
    let ready = conditions::find(all, conditions::READY).cloned();
    match ready {
        Some(ready) if ready.status == "False" && stalls(&ready.reason) => {
            let observation = Observation::new(STALLED.name, true, ready.reason, ready.message);
            conditions::set(all, observation, ready.observed_generation, &ready.last_transition_time);
        }
        _ => all.retain(|c| c.type_ != STALLED.name),
    }
    status
}

/// Writes `status` with server-side apply as `field_manager` (one per controller).
async fn apply_status<K>(api: &Api<K>, obj: &K, field_manager: &str, status: &impl Serialize) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &PatchParams::apply(field_manager).force(), &Patch::Apply(patch)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_follows_a_ready_reason_no_retry_changes() {
        use mpanel_crds::dnszone::{DnsZone, DnsZoneStatus};
        let status = |reason: &str, ready: &str| -> DnsZoneStatus {
            serde_json::from_value(serde_json::json!({"conditions": [
                {"type": "Ready", "status": ready, "reason": reason, "message": "why", "observedGeneration": 3,
                 "lastTransitionTime": "2027-01-15T08:00:00Z"}]}))
            .expect("a DnsZone status")
        };
        let stalled = |s: &DnsZoneStatus| s.conditions.iter().find(|c| c.type_ == "Stalled").cloned();
        let held = with_stalled::<DnsZone>(&status("NameHeldElsewhere", "False"));
        let c = stalled(&held).expect("Stalled while the name is held elsewhere");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str(), c.observed_generation),
            ("True", "NameHeldElsewhere", "why", Some(3))
        );
        assert_eq!(with_stalled::<DnsZone>(&held), held, "deriving it again changes nothing");
        assert_eq!(
            stalled(&with_stalled::<DnsZone>(&status("ProviderUnavailable", "False"))),
            None,
            "a retry may help"
        );
        let mut recovered = held.clone();
        recovered.conditions[0].status = "True".into();
        assert_eq!(stalled(&with_stalled::<DnsZone>(&recovered)), None, "Ready again: no longer stalled");
    }
}
