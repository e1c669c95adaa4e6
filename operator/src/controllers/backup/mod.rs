//! Backups of CloudPods: the BackupPolicy controller (scheduled vzdump, retention, the archives in
//! status) and the CloudPodRestore controller (one in-place restore from an archive).
//!
//! Ownership of an archive is proved twice: its volume name carries the CloudPod's VMID, and its
//! notes are exactly the marker the policy wrote (`mpanel-backup cloudpod=<uid> policy=<uid>`).
//! Only such archives are pruned (by the policy that wrote them) or restored (onto that CloudPod);
//! any other archive in the storage, of another guest or made by hand, is never touched.
//! Nothing waits for Proxmox: the UPID of a vzdump, stop or restore goes into the status and a
//! later reconcile reads it.

pub mod policy;
pub mod restore;

use std::sync::Arc;
use std::time::Duration;

use mpanel_crds::reasons;

use super::ReconcileError;
use crate::providers::proxmox::ProxmoxError;

/// How often a running task is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How often a CloudPod that has no guest yet is looked at.
const WAIT_FOR_POD: Duration = Duration::from_secs(3);

/// The backup controllers' own state; the rest of their context is shared by every controller.
pub struct State<P> {
    pub proxmox: Arc<P>,
}

pub type Context<P> = super::Context<State<P>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unfinished(#[from] super::Unfinished),
    #[error(transparent)]
    Proxmox(#[from] ProxmoxError),
    #[error(transparent)]
    Kube(#[from] super::KubeCall),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unfinished(e) => e.reason(),
            Self::Proxmox(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR.name,
        }
    }
}

const MARKER_PREFIX: &str = "mpanel-backup";

/// The notes a policy writes on each archive it makes of a CloudPod.
pub fn marker(cloud_pod_uid: &str, policy_uid: &str) -> String {
    format!("{MARKER_PREFIX} cloudpod={cloud_pod_uid} policy={policy_uid}")
}

/// Whether an archive's notes are a policy's marker for the CloudPod `cloud_pod_uid`.
pub fn made_for(notes: Option<&str>, cloud_pod_uid: &str) -> bool {
    let mut words = notes.unwrap_or_default().trim().split(' ');
    words.next() == Some(MARKER_PREFIX)
        && words.next() == Some(&format!("cloudpod={cloud_pod_uid}"))
        && words.next().is_some_and(|w| w.starts_with("policy="))
        && words.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_marker_for_the_cloudpod_proves_an_archive_its_own() {
        let m = marker("pod-1", "pol-1");
        assert!(made_for(Some(&m), "pod-1"));
        assert!(!made_for(Some(&m), "pod-2"), "another CloudPod's archive");
        assert!(!made_for(Some("mpanel-backup cloudpod=pod-1"), "pod-1"), "no policy");
        assert!(!made_for(Some(&format!("{m} extra")), "pod-1"));
        assert!(!made_for(Some("manual backup before upgrade"), "pod-1"));
        assert!(!made_for(None, "pod-1"));
    }
}

#[cfg(test)]
mod reconcile_tests;
