//! The status of one zone worked out in one reconcile (at the object's generation and one moment),
//! and how a failure of PowerDNS is recorded in it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::dnszone::{DnsZone, DnsZonePhase, DnsZoneStatus};

use super::{Context, Error, PROGRAMMED};
use crate::controllers::{now, publish, write_changed_status};
use crate::providers::powerdns::{DnsApi, PowerDnsError, canonical};

/// One reconcile of one DnsZone: the object, where its status is written, and the status so far.
pub(super) struct Pass<'a, P> {
    pub api: &'a Api<DnsZone>,
    pub zone: &'a DnsZone,
    pub ctx: &'a Context<P>,
    /// The zone's name as PowerDNS writes it.
    pub name: String,
    pub status: DnsZoneStatus,
    pub generation: Option<i64>,
    pub t: Time,
}

impl<'a, P: DnsApi> Pass<'a, P> {
    pub fn new(api: &'a Api<DnsZone>, zone: &'a DnsZone, ctx: &'a Context<P>) -> Self {
        Self {
            api,
            zone,
            ctx,
            name: canonical(&zone.spec.zone),
            status: zone.status.clone().unwrap_or_default(),
            generation: zone.metadata.generation,
            t: now(),
        }
    }

    /// Sets a condition at this generation; true when it changed.
    pub fn set(&mut self, o: Observation) -> bool {
        conditions::set(&mut self.status.conditions, o, self.generation, &self.t)
    }

    /// See [`not_ready`].
    pub fn not_ready(&mut self, phase: Option<DnsZonePhase>, reason: &str, message: String) -> bool {
        not_ready(&mut self.status, self.generation, &self.t, phase, reason, message)
    }

    pub async fn write(&self) -> Result<(), crate::controllers::KubeCall> {
        write_changed_status(self.api, self.zone, &self.status).await
    }

    /// Records a provider failure verbatim in the status; returns the error for the backoff.
    pub async fn fail(&mut self, error: PowerDnsError) -> Error {
        fail(self.api, self.zone, &mut self.status, error, self.ctx).await
    }
}

/// Marks the zone neither programmed nor ready for one reason at `generation`, and moves the phase
/// (`None` keeps it). Returns whether this is news (the Programmed condition changed), for Events.
fn not_ready(
    status: &mut DnsZoneStatus,
    generation: Option<i64>,
    now: &Time,
    phase: Option<DnsZonePhase>,
    reason: &str,
    message: String,
) -> bool {
    let news = conditions::set(
        &mut status.conditions,
        Observation::new(PROGRAMMED, false, reason, message.clone()),
        generation,
        now,
    );
    conditions::set(&mut status.conditions, Observation::new(READY, false, reason, message), generation, now);
    if phase.is_some() {
        status.phase = phase;
    }
    status.observed_generation = generation;
    news
}

/// Records a provider failure verbatim in the status and hands the error to the backoff.
async fn fail<P: DnsApi>(
    api: &Api<DnsZone>,
    zone: &DnsZone,
    status: &mut DnsZoneStatus,
    error: PowerDnsError,
    ctx: &Context<P>,
) -> Error {
    let reason = error.reason();
    let message = error.to_string();
    if not_ready(status, zone.metadata.generation, &now(), Some(DnsZonePhase::Failed), reason, message.clone()) {
        publish(&ctx.recorder, zone, true, reason, "Program", message).await;
    }
    if let Err(e) = write_changed_status(api, zone, status).await {
        return e.into();
    }
    error.into()
}
