//! The scaffolding every controller's reconcile tests share: the fake API server, the controller's
//! context around the kind's own state, and the questions the tests ask of the stored object
//! (its conditions, its phase, the events recorded about it).

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mpanel_crds::conditions::Condition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::apiserver::FakeApiServer;
use crate::controllers::{Context, Kind, Reconcile, StatusOf};

/// A controller under test: the in-memory API server and the context its reconciles run with.
pub struct Harness<S> {
    pub api: FakeApiServer,
    pub ctx: Arc<Context<S>>,
}

impl<S> Harness<S> {
    /// A fresh API server and a context around `state` (see [`super::context`]).
    pub fn new(state: S) -> Self {
        let api = FakeApiServer::new();
        let ctx = super::context(&api, state);
        Self { api, ctx }
    }

    /// A context around `state` on `api` (for a state that itself talks to `api`).
    pub fn on(api: FakeApiServer, state: S) -> Self {
        let ctx = super::context(&api, state);
        Self { api, ctx }
    }

    /// Stores `obj` and returns it as the API holds it (uid and creation time assigned).
    pub fn put<K>(&self, obj: &K) -> K
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        self.api.put(obj);
        self.stored(obj)
    }

    /// `obj` as the API holds it now.
    pub fn stored<K>(&self, obj: &K) -> K
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.stored_at(&obj.namespace().unwrap_or_default(), &obj.name_any())
    }

    /// The stored object `name` in `ns`.
    pub fn stored_at<K>(&self, ns: &str, name: &str) -> K
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.api.get(ns, name).unwrap_or_else(|| panic!("no {} {ns}/{name} is stored", K::kind(&())))
    }

    /// `n` reconciles of `obj` as the controller runs them, each on the object as stored then;
    /// the last one's outcome.
    pub async fn reconcile<K>(&self, obj: &K, n: usize) -> Result<Action, S::Error>
    where
        K: Kind,
        S: Reconcile<K>,
    {
        let mut last = None;
        for _ in 0..n {
            last = Some(super::reconcile_once(&self.ctx, &self.api, obj).await);
        }
        last.expect("at least one reconcile")
    }

    /// The stored `obj`'s condition `type_`, if it has one.
    pub fn condition<K>(&self, obj: &K, type_: &str) -> Option<Condition>
    where
        K: StatusOf,
    {
        condition_of(&self.stored(obj), type_)
    }

    /// The stored `obj`'s condition `type_`; panics when it has none.
    pub fn expect_condition<K>(&self, obj: &K, type_: &str) -> Condition
    where
        K: StatusOf,
    {
        let stored = self.stored(obj);
        condition_of(&stored, type_).unwrap_or_else(|| panic!("no {type_} condition in {stored:?}"))
    }

    /// The stored `obj`'s phase.
    pub fn phase<K>(&self, obj: &K) -> Option<K::Phase>
    where
        K: StatusOf,
    {
        phase_of(&self.stored(obj))
    }

    /// The notes of the events of `type_` (`Normal` or `Warning`) with `reason`, oldest first.
    pub fn events(&self, type_: &str, reason: &str) -> Vec<String> {
        self.api.events().into_iter().filter(|e| e.type_ == type_ && e.reason == reason).map(|e| e.note).collect()
    }

    /// The notes of the `Warning` events with `reason`.
    pub fn warnings(&self, reason: &str) -> Vec<String> {
        self.events("Warning", reason)
    }

    /// Whether an event of `type_` with `reason` and a note containing `note_contains` was recorded.
    pub fn has_event(&self, type_: &str, reason: &str, note_contains: &str) -> bool {
        self.events(type_, reason).iter().any(|note| note.contains(note_contains))
    }
}

/// `obj`'s condition `type_`, if it has one.
pub fn condition_of<K: StatusOf>(obj: &K, type_: &str) -> Option<Condition> {
    let mut status = obj.status()?.clone();
    K::conditions(&mut status).iter().find(|c| c.type_ == type_).cloned()
}

/// `obj`'s phase.
pub fn phase_of<K: StatusOf>(obj: &K) -> Option<K::Phase> {
    let mut status = obj.status()?.clone();
    K::phase(&mut status).take()
}

/// (status, reason, message) of `obj`'s condition `type_`; panics when it has none.
pub fn shown<K: StatusOf>(obj: &K, type_: &str) -> (String, String, String) {
    let c = condition_of(obj, type_).unwrap_or_else(|| panic!("no {type_} condition in {obj:?}"));
    (c.status, c.reason, c.message)
}

/// Asserts `c` has `status` and `reason` and a message containing `message_contains`.
pub fn assert_condition(c: &Condition, status: &str, reason: &str, message_contains: &str) {
    assert_eq!((c.status.as_str(), c.reason.as_str()), (status, reason), "{c:?}");
    assert!(c.message.contains(message_contains), "{:?} lacks {message_contains:?}", c.message);
}

/// `obj` with annotation `key` set to `value`.
pub fn with_annotation<K: Resource>(mut obj: K, key: &str, value: &str) -> K {
    obj.meta_mut().annotations.get_or_insert_with(Default::default).insert(key.to_owned(), value.to_owned());
    obj
}

/// `obj` with the reconcile-mode annotation set to `mode`.
pub fn with_mode<K: Resource>(obj: K, mode: &str) -> K {
    with_annotation(obj, mpanel_crds::RECONCILE_MODE_ANNOTATION, mode)
}

/// `base` with the top-level fields of `over` put over it.
pub fn merged(mut base: serde_json::Value, over: serde_json::Value) -> serde_json::Value {
    for (k, v) in over.as_object().cloned().unwrap_or_default() {
        base[k] = v;
    }
    base
}

/// The mPanel object of `kind` named `name` in `ns` with `spec`.
pub fn object<K: DeserializeOwned>(kind: &str, ns: &str, name: &str, spec: serde_json::Value) -> K {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec
    }))
    .unwrap_or_else(|e| panic!("not a valid {kind}: {e}"))
}

/// Lets a test's own setup, which wraps the harness in its field `h` beside the kind's fakes, be
/// used as the harness: `derefs_to_harness!(Setup, State<FakePowerDns>);`.
macro_rules! derefs_to_harness {
    ($setup:ty, $state:ty) => {
        impl std::ops::Deref for $setup {
            type Target = $crate::testing::harness::Harness<$state>;
            fn deref(&self) -> &Self::Target {
                &self.h
            }
        }
    };
}
pub(crate) use derefs_to_harness;
