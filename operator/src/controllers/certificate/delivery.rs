//! Delivery: the key and chain of the Secret's certificate written into the QEMU CloudPods of
//! `spec.deliverTo` through the guest agent, and each target's reload command run, whenever the
//! certificate there is not the one in the Secret (by serial), the guest or the paths changed.
//!
//! A CloudPod is looked up by name in the Certificate's own namespace only; there is no way to
//! name another. What each target holds is kept in `status.deliveries`; a failed target is tried
//! again after 5 s doubling up to 10 min (its `failedAttempts`), sooner only when its CloudPod's
//! state changed the reason (e.g. it became Ready), so neither a failing guest nor the status
//! writes recording the failure make a hot loop.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};
use mpanel_crds::certificate::{Certificate, Delivery, DeliveryTarget};
use mpanel_crds::cloudpod::{CloudPod, CloudPodPhase, GuestType};
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::conditions::{self, Observation, READY};
use mpanel_crds::reasons::{self, condition_types};

use super::keys::Issued;
use super::{Context, Error, Providers, Step, publish, until};
use crate::controllers::During;
use crate::providers::proxmox_agent::{self, AgentError, GuestAgent};

const DELIVERED: &str = condition_types::DELIVERED.name;
/// How long one command in a guest may run before the attempt counts as failed.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);
/// Makes the files' directories, and the key file mode 0600 before any key is written into it.
const PREPARE: &str = r#"mkdir -p -- "$1" "$2" && touch -- "$3" && chmod 600 -- "$3""#;

/// The certificate in the Secret as it is delivered: the Secret's key and chain, byte for byte.
pub(super) struct Material {
    pub(super) serial: String,
    pub(super) not_after: Timestamp,
    pub(super) key_pem: String,
    pub(super) chain_pem: String,
}

impl Material {
    pub(super) fn of(secret: &Secret, issued: &Issued) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
        Some(Self {
            serial: issued.serial.clone(),
            not_after: issued.not_after,
            key_pem: text("tls.key")?,
            chain_pem: text("tls.crt")?,
        })
    }
}

/// Why a target was not delivered to: a reason of the Delivered condition, and the words.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Failure {
    reason: &'static str,
    message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        let reason = match &e {
            AgentError::NotRunning(_) => reasons::GUEST_AGENT_NOT_RUNNING.name,
            AgentError::CommandFailed { .. } | AgentError::CommandTimedOut { .. } => reasons::GUEST_COMMAND_FAILED.name,
            AgentError::Proxmox(_) => reasons::DELIVERY_FAILED.name,
        };
        Self::new(reason, e.to_string())
    }
}

/// The guest a CloudPod stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Guest {
    vmid: u32,
    node: String,
}

/// What a target should hold.
struct Want {
    key_path: String,
    chain_path: String,
}

/// What to do for one target now.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// It holds this certificate.
    UpToDate,
    /// It failed the same way before and its backoff has not run out.
    Wait(Duration),
    /// Record this failure (nothing is sent to any guest).
    Fail(Failure),
    /// Write into this guest.
    Deliver(Guest),
}

/// Failures that come from the guest or Proxmox, not from the CloudPod object.
fn in_guest(reason: &str) -> bool {
    [reasons::GUEST_AGENT_NOT_RUNNING.name, reasons::GUEST_COMMAND_FAILED.name, reasons::DELIVERY_FAILED.name]
        .contains(&reason)
}

/// Delay before the attempt after `failed` failed ones: 5 s doubling, at most 10 min.
fn retry_delay(failed: u32) -> Duration {
    Duration::from_secs(5).saturating_mul(1u32 << failed.saturating_sub(1).min(8)).min(Duration::from_secs(600))
}

fn plan(
    previous: Option<&Delivery>,
    want: &Want,
    material: &Material,
    resolved: Result<Guest, Failure>,
    now: Timestamp,
) -> Plan {
    if let (Some(p), Ok(guest)) = (previous, &resolved)
        && p.last_error.is_none()
        && p.delivered_at.is_some()
        && p.vmid == Some(guest.vmid)
        && p.serial.as_deref() == Some(material.serial.as_str())
        && p.key_path.as_deref() == Some(want.key_path.as_str())
        && p.chain_path.as_deref() == Some(want.chain_path.as_str())
    {
        return Plan::UpToDate;
    }
    if let Some(p) = previous
        && let (Some(failed), Some(at)) = (p.failed_attempts, &p.last_failure_time)
    {
        let due = at.0 + retry_delay(failed);
        let last = p.last_error_reason.as_deref().unwrap_or_default();
        let unchanged = match &resolved {
            Err(f) => f.reason == last,
            Ok(_) => in_guest(last),
        };
        if now < due && unchanged {
            return Plan::Wait(until(due, now));
        }
    }
    match resolved {
        Ok(guest) => Plan::Deliver(guest),
        Err(f) => Plan::Fail(f),
    }
}

/// The guest of the CloudPod `name` in the Certificate's namespace, if it can take a delivery.
async fn resolve(client: &kube::Client, namespace: &str, name: &str) -> Result<Result<Guest, Failure>, kube::Error> {
    let Some(pod) = Api::<CloudPod>::namespaced(client.clone(), namespace).get_opt(name).await? else {
        return Ok(Err(Failure::new(
            reasons::CLOUD_POD_NOT_FOUND.name,
            format!("no CloudPod {name} in this namespace"),
        )));
    };
    if pod.spec.type_ == GuestType::Lxc {
        return Ok(Err(Failure::new(
            reasons::GUEST_AGENT_UNSUPPORTED.name,
            format!("CloudPod {name} is a container (lxc), which has no QEMU guest agent"),
        )));
    }
    let status = pod.status.as_ref();
    let ready = status.and_then(|s| conditions::find(&s.conditions, READY)).is_some_and(|c| c.status == "True");
    let running = status.and_then(|s| s.phase) == Some(CloudPodPhase::Running);
    match (status.and_then(|s| s.vmid), status.and_then(|s| s.node.clone())) {
        (Some(vmid), Some(node)) if ready && running => Ok(Ok(Guest { vmid, node })),
        _ => {
            let phase = status.and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into());
            Ok(Err(Failure::new(
                reasons::CLOUD_POD_NOT_READY.name,
                format!("CloudPod {name} is not Ready and running (phase {phase})"),
            )))
        }
    }
}

/// Writes the key and chain into `guest` and runs the reload command.
async fn write_into<A: GuestAgent>(
    agent: &A,
    guest: &Guest,
    want: &Want,
    material: &Material,
    reload: &[String],
) -> Result<(), AgentError> {
    let (node, vmid) = (guest.node.as_str(), guest.vmid);
    let dir = |p: &str| p.rsplit_once('/').map(|(d, _)| if d.is_empty() { "/" } else { d }).unwrap_or("/").to_owned();
    let prepare: Vec<String> = ["sh", "-c", PREPARE, "mpanel-deliver"]
        .into_iter()
        .map(str::to_owned)
        .chain([dir(&want.key_path), dir(&want.chain_path), want.key_path.clone()])
        .collect();
    proxmox_agent::run(agent, node, vmid, &prepare, COMMAND_LIMIT).await?;
    agent.file_write(node, vmid, &want.key_path, &material.key_pem).await?;
    agent.file_write(node, vmid, &want.chain_path, &material.chain_pem).await?;
    if !reload.is_empty() {
        proxmox_agent::run(agent, node, vmid, reload, COMMAND_LIMIT).await?;
    }
    Ok(())
}

/// Delivers `material` to every target that does not hold it, records each target in
/// `status.deliveries` and the Delivered condition. Returns when to look again, if a target waits.
pub(super) async fn deliver<P: Providers>(
    cert: &Certificate,
    material: &Material,
    mode: ReconcileMode,
    step: &mut Step,
    ctx: &Context<P>,
) -> Result<Option<Duration>, Error> {
    let targets = &cert.spec.deliver_to;
    if targets.is_empty() {
        step.status.deliveries.clear();
        step.status.conditions.retain(|c| c.type_ != DELIVERED);
        return Ok(None);
    }
    let ns = cert.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let mut next: Option<Duration> = None;
    let mut soonest = |d: Duration| next = Some(next.map_or(d, |n| n.min(d)));
    let mut failures: Vec<(String, Failure)> = Vec::new();
    let mut observe_only: Vec<String> = Vec::new();
    let mut deliveries = Vec::with_capacity(targets.len());
    for target in targets {
        let previous = step.status.deliveries.iter().find(|d| d.cloud_pod == target.cloud_pod);
        let want = Want {
            key_path: target.key_path(&cert.spec.secret_name),
            chain_path: target.chain_path(&cert.spec.secret_name),
        };
        let resolved = match &ctx.guest_agent {
            None => Err(Failure::new(
                reasons::DELIVERY_UNAVAILABLE.name,
                "the operator has no proxmox configuration".to_owned(),
            )),
            Some(_) => resolve(&ctx.client, &ns, &target.cloud_pod)
                .await
                .during(format!("reading CloudPod {}", target.cloud_pod))?,
        };
        let mut entry = previous
            .cloned()
            .unwrap_or_else(|| Delivery { cloud_pod: target.cloud_pod.clone(), ..Delivery::default() });
        let outcome = match plan(previous, &want, material, resolved, now) {
            Plan::UpToDate => None,
            Plan::Wait(d) => {
                soonest(d);
                last_failure(&entry)
            }
            Plan::Deliver(_) if mode == ReconcileMode::ObserveOnly => {
                observe_only.push(target.cloud_pod.clone());
                None
            }
            Plan::Fail(f) => Some(failed(&mut entry, f, step, &mut soonest)),
            Plan::Deliver(guest) => match delivered(cert, target, &guest, &want, material, ctx).await {
                Ok(()) => {
                    entry = Delivery {
                        cloud_pod: target.cloud_pod.clone(),
                        vmid: Some(guest.vmid),
                        key_path: Some(want.key_path.clone()),
                        chain_path: Some(want.chain_path.clone()),
                        serial: Some(material.serial.clone()),
                        not_after: Some(Time(material.not_after)),
                        delivered_at: Some(step.at.clone()),
                        ..Delivery::default()
                    };
                    None
                }
                Err(f) => Some(failed(&mut entry, f, step, &mut soonest)),
            },
        };
        if let Some(f) = outcome {
            announce_failure(cert, previous, &target.cloud_pod, &f, ctx).await;
            failures.push((target.cloud_pod.clone(), f));
        }
        deliveries.push(entry);
    }
    step.status.deliveries = deliveries;
    step.set(delivered_condition(targets, material, &failures, &observe_only));
    Ok(next)
}

/// A Warning Event about a target's failure, unless the target had failed the same way before.
async fn announce_failure<P: Providers>(
    cert: &Certificate,
    previous: Option<&Delivery>,
    cloud_pod: &str,
    f: &Failure,
    ctx: &Context<P>,
) {
    let news = previous.is_none_or(|p| {
        p.last_error_reason.as_deref() != Some(f.reason) || p.last_error.as_deref() != Some(f.message.as_str())
    });
    if news {
        let note = format!("CloudPod {cloud_pod}: {}", f.message);
        publish(&ctx.recorder, cert, true, f.reason, "Deliver", note).await;
    }
}

/// The Delivered condition: the failed targets, else the targets left as they are by ObserveOnly,
/// else every target holding the certificate.
fn delivered_condition(
    targets: &[DeliveryTarget],
    material: &Material,
    failures: &[(String, Failure)],
    observe_only: &[String],
) -> Observation {
    if let Some((_, first)) = failures.first() {
        let each: Vec<String> = failures.iter().map(|(pod, f)| format!("CloudPod {pod}: {}", f.message)).collect();
        Observation::new(DELIVERED, false, first.reason, each.join("; "))
    } else if !observe_only.is_empty() {
        let message = format!(
            "certificate {} is not in CloudPod {} (ObserveOnly: nothing written)",
            material.serial,
            observe_only.join(", ")
        );
        Observation::new(DELIVERED, false, reasons::OBSERVE_ONLY.name, message)
    } else {
        let pods: Vec<&str> = targets.iter().map(|t| t.cloud_pod.as_str()).collect();
        let message = format!("certificate {} is in CloudPod {}", material.serial, pods.join(", "));
        Observation::new(DELIVERED, true, reasons::DELIVERED.name, message)
    }
}

/// Writes into the guest, and says so in an Event.
async fn delivered<P: Providers>(
    cert: &Certificate,
    target: &DeliveryTarget,
    guest: &Guest,
    want: &Want,
    material: &Material,
    ctx: &Context<P>,
) -> Result<(), Failure> {
    let Some(agent) = &ctx.guest_agent else {
        return Err(Failure::new(reasons::DELIVERY_UNAVAILABLE.name, "the operator has no proxmox configuration"));
    };
    write_into(agent, guest, want, material, &target.reload_command).await?;
    let reload = if target.reload_command.is_empty() { String::new() } else { ", reload command exited 0".to_owned() };
    let note = format!(
        "certificate {} written into CloudPod {} (VMID {}): {} and {}{reload}",
        material.serial, target.cloud_pod, guest.vmid, want.key_path, want.chain_path
    );
    publish(&ctx.recorder, cert, false, reasons::DELIVERED.name, "Deliver", note).await;
    Ok(())
}

/// The failure `entry` recorded last, if any.
fn last_failure(entry: &Delivery) -> Option<Failure> {
    let name = entry.last_error_reason.as_deref()?;
    let reason = reasons::ALL.iter().find(|r| r.name == name).map_or(reasons::DELIVERY_FAILED.name, |r| r.name);
    Some(Failure::new(reason, entry.last_error.clone().unwrap_or_default()))
}

/// Records a failed attempt in `entry` (what the guest held before stays); returns the failure.
fn failed(entry: &mut Delivery, f: Failure, step: &Step, soonest: &mut impl FnMut(Duration)) -> Failure {
    let attempts = entry.failed_attempts.unwrap_or(0).saturating_add(1);
    entry.failed_attempts = Some(attempts);
    entry.last_failure_time = Some(step.at.clone());
    entry.last_error_reason = Some(f.reason.to_owned());
    entry.last_error = Some(f.message.clone());
    soonest(retry_delay(attempts));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(serial: &str) -> Material {
        Material {
            serial: serial.into(),
            not_after: Timestamp::UNIX_EPOCH,
            key_pem: String::new(),
            chain_pem: String::new(),
        }
    }

    fn want() -> Want {
        Want { key_path: "/k".into(), chain_path: "/c".into() }
    }

    fn guest() -> Guest {
        Guest { vmid: 101, node: "pve1".into() }
    }

    fn delivered(serial: &str) -> Delivery {
        Delivery {
            cloud_pod: "vm".into(),
            vmid: Some(101),
            key_path: Some("/k".into()),
            chain_path: Some("/c".into()),
            serial: Some(serial.into()),
            delivered_at: Some(Time(Timestamp::UNIX_EPOCH)),
            ..Delivery::default()
        }
    }

    fn failed_at(mut d: Delivery, reason: &str, attempts: u32, at: Timestamp) -> Delivery {
        d.failed_attempts = Some(attempts);
        d.last_failure_time = Some(Time(at));
        d.last_error_reason = Some(reason.into());
        d.last_error = Some("words".into());
        d
    }

    #[test]
    fn a_new_serial_another_guest_or_path_is_delivered_again() {
        let now = Timestamp::now();
        let held = delivered("aa");
        assert_eq!(plan(Some(&held), &want(), &material("aa"), Ok(guest()), now), Plan::UpToDate);
        assert_eq!(plan(Some(&held), &want(), &material("bb"), Ok(guest()), now), Plan::Deliver(guest()));
        let moved = Guest { vmid: 102, ..guest() };
        assert_eq!(plan(Some(&held), &want(), &material("aa"), Ok(moved.clone()), now), Plan::Deliver(moved));
        let elsewhere = Want { key_path: "/other".into(), ..want() };
        assert_eq!(plan(Some(&held), &elsewhere, &material("aa"), Ok(guest()), now), Plan::Deliver(guest()));
        assert_eq!(plan(None, &want(), &material("aa"), Ok(guest()), now), Plan::Deliver(guest()));
    }

    #[test]
    fn the_same_failure_waits_for_its_backoff_and_a_changed_cloudpod_does_not() {
        let now = Timestamp::now();
        let agent_down = failed_at(delivered("aa"), reasons::GUEST_AGENT_NOT_RUNNING.name, 3, now);
        // a failing guest is not asked again before 5 s * 2^2
        assert_eq!(
            plan(Some(&agent_down), &want(), &material("bb"), Ok(guest()), now),
            Plan::Wait(Duration::from_secs(20))
        );
        let later = now + Duration::from_secs(20);
        assert_eq!(plan(Some(&agent_down), &want(), &material("bb"), Ok(guest()), later), Plan::Deliver(guest()));

        let missing = Failure::new(reasons::CLOUD_POD_NOT_FOUND.name, "no CloudPod vm in this namespace");
        let not_found = failed_at(Delivery::default(), reasons::CLOUD_POD_NOT_FOUND.name, 1, now);
        assert!(matches!(plan(Some(&not_found), &want(), &material("aa"), Err(missing.clone()), now), Plan::Wait(_)));
        // the CloudPod appeared: no waiting
        assert_eq!(plan(Some(&not_found), &want(), &material("aa"), Ok(guest()), now), Plan::Deliver(guest()));
        let not_ready = Failure::new(reasons::CLOUD_POD_NOT_READY.name, "not Ready");
        assert_eq!(
            plan(Some(&not_found), &want(), &material("aa"), Err(not_ready.clone()), now),
            Plan::Fail(not_ready)
        );
    }

    #[test]
    fn retries_are_bounded() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(100), Duration::from_secs(600));
    }
}
