//! Types shared by several kinds.

use std::fmt;
use std::str::FromStr;

use kube::api::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RECONCILE_MODE_ANNOTATION;
use crate::formats;

/// What happens to the external object when the custom resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The finalizer removes the external object before the resource goes away.
    Delete,
    /// The external object is left as it is; only the resource goes away.
    Orphan,
}

impl DeletionPolicy {
    pub fn delete() -> Self {
        Self::Delete
    }
    pub fn orphan() -> Self {
        Self::Orphan
    }
}

/// How the operator treats one object, chosen with the annotation
/// `mpanel.migrahosting.com/reconcile-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReconcileMode {
    /// Converge the external system to the spec (the default).
    #[default]
    Reconcile,
    /// Read the external system and report differences in status; change nothing.
    ObserveOnly,
    /// Do nothing at all, not even observe; status keeps its last value.
    Paused,
}

/// The annotation holds a value other than `Reconcile`, `ObserveOnly` or `Paused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReconcileMode(pub String);

impl fmt::Display for InvalidReconcileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {RECONCILE_MODE_ANNOTATION} is {:?}; expected Reconcile, ObserveOnly or Paused", self.0)
    }
}

impl std::error::Error for InvalidReconcileMode {}

impl FromStr for ReconcileMode {
    type Err = InvalidReconcileMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Reconcile" => Ok(Self::Reconcile),
            "ObserveOnly" => Ok(Self::ObserveOnly),
            "Paused" => Ok(Self::Paused),
            other => Err(InvalidReconcileMode(other.to_owned())),
        }
    }
}

impl ReconcileMode {
    /// The mode an object's annotations ask for; no annotation means `Reconcile`.
    pub fn of(meta: &ObjectMeta) -> Result<Self, InvalidReconcileMode> {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(RECONCILE_MODE_ANNOTATION))
            .map_or(Ok(Self::Reconcile), |v| v.parse())
    }
}

/// A key of a Secret in the same namespace as the resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(formats::OBJECT_NAME))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A reference to another object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253), pattern(formats::OBJECT_NAME))]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta_with(mode: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            annotations: mode.map(|m| BTreeMap::from([(RECONCILE_MODE_ANNOTATION.to_owned(), m.to_owned())])),
            ..Default::default()
        }
    }

    #[test]
    fn reconcile_mode_defaults_to_reconcile_and_parses_each_value() {
        assert_eq!(ReconcileMode::of(&meta_with(None)), Ok(ReconcileMode::Reconcile));
        assert_eq!(ReconcileMode::of(&meta_with(Some("ObserveOnly"))), Ok(ReconcileMode::ObserveOnly));
        assert_eq!(ReconcileMode::of(&meta_with(Some("Paused"))), Ok(ReconcileMode::Paused));
    }

    #[test]
    fn reconcile_mode_names_the_annotation_when_refusing_a_value() {
        let err = ReconcileMode::of(&meta_with(Some("paused"))).unwrap_err();
        assert!(err.to_string().contains(RECONCILE_MODE_ANNOTATION), "{err}");
        assert!(err.to_string().contains("\"paused\""), "{err}");
    }
}
