//! The Subscription controller: composes the child resources a customer bought and gates
//! activation on them. Children are applied server-side (field manager `mpanel-subscription`), owned
//! by the Subscription and labelled with it; a child dropped from the templates is deleted. The
//! Subscription is `Active` only while every child is Ready at its current generation, `Failed`
//! when a child failed in a way no retry changes or the provisioning deadline passed. Deleting it
//! deletes the children first (their finalizers deprovision the external systems) and waits for
//! them to be gone.

mod aggregate;
pub mod children;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use mpanel_crds::certificate::Certificate;
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::common::ReconcileMode;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::Domain;
use mpanel_crds::mailbox::Mailbox;
use mpanel_crds::reasons::{self, condition_types};
use mpanel_crds::subscription::{ChildStatus, Subscription, SubscriptionPhase, SubscriptionStatus};

use super::{Changes, Hub, Reconcile, ReconcileError, apply_owned, labelled, publish, resync_after};
use crate::controllers::During;
use children::{Child, ChildKind, SUBSCRIPTION_LABEL};

pub const KIND: &str = "Subscription";
const FIELD_MANAGER: &str = "mpanel-subscription";
const CHILDREN_READY: &str = condition_types::CHILDREN_READY.name;
const SUSPENDED: &str = condition_types::SUSPENDED.name;

/// The Subscription controller keeps no state of its own: its context is the one every controller shares.
pub struct State;

pub type Context = super::Context<State>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
    #[error("waiting for {0} child object(s) to be deleted")]
    ChildrenRemaining(usize),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
            Self::ChildrenRemaining(_) => reasons::CHILDREN_REMAINING.name,
        }
    }

    fn waiting(&self) -> Option<Duration> {
        match self {
            // the children's deletion is watched; this only bounds the wait for a missed event
            Self::ChildrenRemaining(_) => Some(CHILDREN_LOOKED_AT_AGAIN),
            _ => None,
        }
    }
}

/// How soon a deletion waiting for its children looks at them again without an event.
const CHILDREN_LOOKED_AT_AGAIN: Duration = Duration::from_secs(5);

/// What the Subscription controller follows, taken from the operator's one watch per kind: its
/// own kind, and the children of each kind (those with its label).
pub struct Watches {
    subscriptions: (Changes<Subscription>, Store<Subscription>),
    cloudpods: Changes<CloudPod>,
    domains: Changes<Domain>,
    dnszones: Changes<DnsZone>,
    mailboxes: Changes<Mailbox>,
    certificates: Changes<Certificate>,
    backup_policies: Changes<mpanel_crds::BackupPolicy>,
}

impl Watches {
    pub fn new(hub: &Hub) -> Self {
        Self {
            subscriptions: hub.primary(),
            cloudpods: hub.changes(),
            domains: hub.changes(),
            dnszones: hub.changes(),
            mailboxes: hub.changes(),
            certificates: hub.changes(),
            backup_policies: hub.changes(),
        }
    }
}

pub async fn run(
    ctx: Arc<Context>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watches {
        subscriptions: (changes, subscriptions),
        cloudpods,
        domains,
        dnszones,
        mailboxes,
        certificates,
        backup_policies,
    } = watches;
    let controller = Controller::for_shared_stream(changes, subscriptions.clone());
    ctx.metrics.inventory.watch(KIND, subscriptions, None, |_| None);
    let controller = controller
        .with_config(ControllerConfig::default().concurrency(8))
        .owns_shared_stream(labelled(cloudpods, SUBSCRIPTION_LABEL))
        .owns_shared_stream(labelled(domains, SUBSCRIPTION_LABEL))
        .owns_shared_stream(labelled(dnszones, SUBSCRIPTION_LABEL))
        .owns_shared_stream(labelled(mailboxes, SUBSCRIPTION_LABEL))
        .owns_shared_stream(labelled(certificates, SUBSCRIPTION_LABEL))
        .owns_shared_stream(labelled(backup_policies, SUBSCRIPTION_LABEL));
    super::run(ctx, controller, shutdown).await;
}

impl Reconcile<Subscription> for State {
    type Error = Error;
    const KIND: &'static str = KIND;

    async fn apply(
        ctx: &Context,
        api: &Api<Subscription>,
        sub: Arc<Subscription>,
        mode: ReconcileMode,
    ) -> Result<Action, Error> {
        apply(api, &sub, mode, ctx).await
    }

    async fn cleanup(
        ctx: &Context,
        api: &Api<Subscription>,
        sub: Arc<Subscription>,
        _: ReconcileMode,
    ) -> Result<Action, Error> {
        cleanup(api, &sub, ctx).await
    }

    fn invalid_mode(step: &mut super::Step<Subscription>, message: String) {
        step.not_ready(Some(SubscriptionPhase::Pending), reasons::INVALID_RECONCILE_MODE.name, message);
    }
}

super::status_of!(Subscription, SubscriptionStatus, SubscriptionPhase, FIELD_MANAGER);

type Step = super::Step<Subscription>;

fn dynamic_api(client: &Client, namespace: &str, kind: ChildKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// Where a wanted child stands.
enum Found {
    /// The child as it is now.
    Object(serde_json::Value),
    /// An object of that kind and name exists and is not this Subscription's: left untouched.
    NotOurs,
    /// There is none, and it is not created (ObserveOnly).
    Missing,
}

/// Applies `child` (see [`apply_owned`]) unless an object of its name that `owner_uid` does not
/// control is in the way; only looks, unless `write`.
async fn ensure_child(
    client: &Client,
    namespace: &str,
    child: &Child,
    owner_uid: &str,
    write: bool,
) -> Result<Found, super::KubeCall> {
    let api = dynamic_api(client, namespace, child.kind);
    let existing = api.get_opt(&child.name).await.during(format!("reading {:?} {}", child.kind, child.name))?;
    if let Some(obj) = &existing
        && !obj.owner_references().iter().any(|r| r.controller == Some(true) && r.uid == owner_uid)
    {
        return Ok(Found::NotOurs);
    }
    let now = match existing {
        Some(obj) if !write => obj,
        None if !write => return Ok(Found::Missing),
        existing => apply_owned(&api, existing, &child.name, FIELD_MANAGER, &child.object).await?,
    };
    Ok(Found::Object(serde_json::to_value(now).unwrap_or_default()))
}

/// The children of `sub` that exist, by kind and name (only those it controls).
async fn existing_children(client: &Client, sub: &Subscription) -> Result<Vec<(ChildKind, String)>, super::KubeCall> {
    let (ns, uid) = (sub.namespace().unwrap_or_default(), sub.uid().unwrap_or_default());
    let found =
        children::controlled(client, &ns, &sub.name_any(), &uid).await.during("listing the Subscription's children")?;
    Ok(found.into_iter().map(|(kind, o)| (kind, o.name_any())).collect())
}

async fn apply(
    api: &Api<Subscription>,
    sub: &Subscription,
    mode: ReconcileMode,
    ctx: &Context,
) -> Result<Action, Error> {
    let mut step = Step::new(sub);
    let resources = converge_children(sub, mode, ctx).await?;
    let children = aggregate::Children {
        all_ready: resources.iter().all(|r| r.ready),
        first_waiting: resources.iter().find(|r| !r.ready).cloned(),
        terminal: resources.iter().find(|r| !r.ready && children::is_terminal(r.reason.as_deref())).cloned(),
    };
    step.status.resources = resources;

    let hold = children::suspended(sub);
    aggregate::set_conditions(&mut step, hold, children.first_waiting.as_ref());
    let deadline = aggregate::provisioning_deadline(&mut step, sub, children.all_ready || hold.is_some());
    let now = step.at.0;
    let overdue = deadline.is_some_and(|d| now >= d);

    let previous = step.status.phase;
    let (phase, ready) = aggregate::phase(&mut step, sub, hold, &children, overdue);
    step.status.phase = Some(phase);
    step.set(ready);
    if previous != Some(phase) {
        let warning = phase == SubscriptionPhase::Failed;
        publish(&ctx.recorder, sub, warning, &format!("{phase:?}"), "Aggregate", format!("phase {phase:?}")).await;
    }
    step.write(api, sub).await?;
    let resync = resync_after(sub, ctx.resync);
    let requeue = match deadline {
        Some(d) if !overdue => Duration::try_from(d.duration_since(now)).unwrap_or(resync).min(resync),
        _ => resync,
    };
    Ok(Action::requeue(requeue.max(Duration::from_secs(1))))
}

/// Deletes the children dropped from the templates, then applies each wanted child (ObserveOnly:
/// neither, only looks); returns what each wanted child's status says.
async fn converge_children(sub: &Subscription, mode: ReconcileMode, ctx: &Context) -> Result<Vec<ChildStatus>, Error> {
    let ns = sub.namespace().unwrap_or_default();
    let uid = sub.uid().unwrap_or_default();
    let write = mode != ReconcileMode::ObserveOnly;
    let wanted = children::desired(sub);
    for (kind, name) in existing_children(&ctx.client, sub).await? {
        if write && !wanted.iter().any(|c| c.kind == kind && c.name == name) {
            dynamic_api(&ctx.client, &ns, kind)
                .delete(&name, &DeleteParams::default())
                .await
                .during(format!("deleting {kind:?} {name}"))?;
            let note = format!("{} {name} is no longer in the templates; deleted", kind.name());
            publish(&ctx.recorder, sub, false, reasons::CHILD_DELETED.name, "Delete", note).await;
        }
    }
    let mut resources = Vec::new();
    for child in &wanted {
        let (kind, name) = (child.kind.name(), &child.name);
        let r = match ensure_child(&ctx.client, &ns, child, &uid, write).await? {
            Found::Object(object) => children::readiness(&object),
            Found::NotOurs => children::Readiness {
                ready: false,
                reason: Some(reasons::CONFLICT.name.into()),
                message: Some(format!("{kind} {name} exists and is not this Subscription's; it is left untouched")),
            },
            Found::Missing => children::Readiness {
                ready: false,
                reason: Some(reasons::PENDING.name.into()),
                message: Some(format!("{kind} {name} does not exist (ObserveOnly: not created)")),
            },
        };
        resources.push(ChildStatus {
            kind: child.kind.name().to_owned(),
            name: child.name.clone(),
            ready: r.ready,
            reason: r.reason,
            message: r.message,
        });
    }
    Ok(resources)
}

/// Deletes the children and keeps the Subscription until they are gone (their finalizers
/// deprovision what they stand for).
async fn cleanup(api: &Api<Subscription>, sub: &Subscription, ctx: &Context) -> Result<Action, Error> {
    let ns = sub.namespace().unwrap_or_default();
    let remaining = existing_children(&ctx.client, sub).await?;
    if remaining.is_empty() {
        return Ok(Action::await_change());
    }
    let mut step = Step::new(sub);
    step.not_ready(
        Some(SubscriptionPhase::Terminating),
        reasons::TERMINATING.name,
        format!("deleting {} child resources", remaining.len()),
    );
    step.write(api, sub).await?;
    for (kind, name) in &remaining {
        dynamic_api(&ctx.client, &ns, *kind)
            .delete(name, &DeleteParams::default())
            .await
            .during(format!("deleting {kind:?} {name}"))?;
    }
    Err(Error::ChildrenRemaining(remaining.len()))
}

#[cfg(test)]
mod reconcile_tests;
