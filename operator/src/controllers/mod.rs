//! One controller per kind, and what they share: status written by server-side apply, Events, and
//! per-object exponential backoff with jitter.

pub mod backup;
pub mod certificate;
pub mod cloudpod;
pub mod dnszone;
pub mod domain;
pub mod mailbox;
pub mod subscription;
pub mod unmanaged;

mod attempt;
mod backoff;
mod child_objects;
mod clock;
mod events;
mod kube_call;
mod reconcile_mode;
mod reconciler;
mod secret_keys;
mod status;
mod watches;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

pub use attempt::{ReconcileError, Unfinished, measured};
pub use backoff::{Backoff, resync_after, retry_later};
pub use child_objects::{APPLIED_ANNOTATION, apply_owned};
pub use clock::Clock;
pub use events::publish;
pub use kube_call::{During, KubeCall};
pub use reconcile_mode::{reconcile_in_mode, release_finalizer};
pub use reconciler::{Context, Kind, Reconcile, error_policy, read_again, ready, reconcile, run};
pub use secret_keys::read_secret_key;
pub(crate) use status::status_of;
pub use status::{StatusOf, Step, write_changed_status};
pub use watches::{Changes, Hub, Scope, Watchable, intent, labelled, on_intent, scoped};

/// `namespace/name`: how logs and the backoff name an object.
pub fn object_key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The current time as a Kubernetes timestamp, by the clock of the reconcile running (see
/// [`Clock::during`]).
pub fn now() -> Time {
    Time(clock::now())
}
