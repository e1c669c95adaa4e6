//! Reconcile-level unit tests of the cloudpod controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;
