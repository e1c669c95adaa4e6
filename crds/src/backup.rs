//! BackupPolicy: vzdump backups of CloudPods on a schedule, kept to a count; CloudPodRestore: one
//! restore of a CloudPod from one of its own archives.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;
use crate::formats;

/// A Proxmox storage ID, as `storage.cfg` names it.
pub const PVE_STORAGE: &str = r"^[a-z][a-z0-9\-_.]*[a-z0-9]$";
/// A backup archive's volume ID, `<storage>:backup/vzdump-<lxc|qemu>-<vmid>-<date>.<ext>`.
pub const PVE_BACKUP_VOLID: &str = r"^[a-z][a-z0-9\-_.]*[a-z0-9]:backup/vzdump-(lxc|qemu)-[0-9]+-[0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}\.[a-z.]+$";
/// A schedule interval: a whole number of seconds, minutes, hours or days (`24h`, `1d`, `30m`).
pub const INTERVAL: &str = r"^[1-9][0-9]{0,5}(s|m|h|d)$";

/// A BackupPolicy backs up CloudPods of its namespace with Proxmox's vzdump every `schedule.every`,
/// into `storage`, and keeps the newest `keep` archives it made of each (older ones of its own are
/// deleted; archives it did not make are never touched). The archives are listed in its status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "BackupPolicy",
    plural = "backuppolicies",
    shortname = "bkp",
    category = "mpanel",
    namespaced,
    status = "BackupPolicyStatus",
    derive = "PartialEq",
    doc = "Scheduled vzdump backups of CloudPods, kept to a count.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Every", type_ = "string", json_path = ".spec.schedule.every"),
    printcolumn(name = "Keep", type_ = "integer", json_path = ".spec.keep"),
    printcolumn(name = "Storage", type_ = "string", json_path = ".spec.storage"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySpec {
    /// Names of the CloudPods of this namespace to back up.
    #[schemars(length(min = 1, max = 20), inner(length(min = 1, max = 253), pattern(formats::OBJECT_NAME)))]
    pub cloud_pods: Vec<String>,
    /// When backups run.
    pub schedule: Schedule,
    /// How many archives made by this policy are kept per CloudPod (the newest); 1–365.
    #[schemars(range(min = 1, max = 365))]
    pub keep: u32,
    /// Proxmox storage the archives are written to; it must hold `backup` content and be reachable
    /// from every node the CloudPods run on.
    #[schemars(length(min = 2, max = 63), pattern(PVE_STORAGE))]
    pub storage: String,
    /// vzdump mode: `snapshot` (default, no downtime), `suspend` or `stop`.
    #[serde(default)]
    pub mode: BackupMode,
}

/// When backups run: the first at once, then one every `every` after the previous one started.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Interval between backups: a number and a unit, `s`, `m`, `h` or `d` (`24h`, `1d`, `30m`).
    #[schemars(length(min = 2, max = 7), pattern(INTERVAL))]
    pub every: String,
}

impl Schedule {
    pub fn interval(&self) -> Option<std::time::Duration> {
        formats::parse_duration(&self.every).filter(|d| !d.is_zero())
    }
}

/// vzdump's `mode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// A live backup (LVM/ZFS snapshot for containers, QEMU's live backup for VMs).
    #[default]
    Snapshot,
    /// The guest is suspended while it is copied.
    Suspend,
    /// The guest is stopped for the backup and started again after.
    Stop,
}

impl BackupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Suspend => "suspend",
            Self::Stop => "stop",
        }
    }
}

/// Observed state of a BackupPolicy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// Pending, Active or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPolicyPhase>,
    /// Each CloudPod's backups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub cloud_pods: Vec<CloudPodBackups>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a BackupPolicy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPolicyPhase {
    Pending,
    Active,
    Failed,
}

/// The backups of one CloudPod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudPodBackups {
    /// The CloudPod's name.
    pub name: String,
    /// Its VMID when the backups were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// The vzdump task in flight (`UPID:…`); the operator reads it on later reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// When the latest backup was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_at: Option<Time>,
    /// When the latest successful backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<Time>,
    /// Why the latest backup failed (Proxmox's own words); absent after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// When the next backup is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_backup_at: Option<Time>,
    /// The archives this policy made of the CloudPod and keeps, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archives: Vec<Archive>,
}

/// One backup archive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Archive {
    /// Proxmox volume ID, `<storage>:backup/vzdump-…`: what a CloudPodRestore names.
    pub volid: String,
    /// When Proxmox wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// A CloudPodRestore puts a CloudPod's guest back as it was in one of its own backup archives,
/// once: the CloudPod's reconciles are paused, the guest stopped, restored in place from the
/// archive (same VMID) and handed back to the CloudPod, which starts it again. Only an archive of
/// this CloudPod's VMID that a BackupPolicy made of this CloudPod is accepted. To restore again,
/// create another CloudPodRestore.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "CloudPodRestore",
    plural = "cloudpodrestores",
    shortname = "cprestore",
    category = "mpanel",
    namespaced,
    status = "CloudPodRestoreStatus",
    derive = "PartialEq",
    doc = "One restore of a CloudPod from one of its backup archives.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "CloudPod", type_ = "string", json_path = ".spec.cloudPod"),
    printcolumn(name = "Archive", type_ = "string", json_path = ".spec.archive"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("a restore cannot be changed; create another CloudPodRestore"))]
pub struct CloudPodRestoreSpec {
    /// The CloudPod of this namespace to restore.
    #[schemars(length(min = 1, max = 253), pattern(formats::OBJECT_NAME))]
    pub cloud_pod: String,
    /// The archive to restore from: a volume ID as a BackupPolicy's status lists it.
    #[schemars(length(min = 1, max = 255), pattern(PVE_BACKUP_VOLID))]
    pub archive: String,
}

/// Observed state of a CloudPodRestore.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudPodRestoreStatus {
    /// Pending, Stopping, Restoring, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// The Proxmox task in flight (`UPID:…`): the stop or the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The VMID restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Whether this restore paused the CloudPod's reconciles, and the reconcile-mode annotation
    /// the CloudPod had before (given back when the restore ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_cloud_pod: Option<PausedCloudPod>,
    /// When the restore was started at Proxmox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it ended (Completed or Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (True once restored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The CloudPod a restore paused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PausedCloudPod {
    /// The reconcile-mode annotation before the pause; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_mode: Option<String>,
}

/// Phase of a CloudPodRestore.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    Pending,
    Stopping,
    Restoring,
    Completed,
    Failed,
}

impl RestorePhase {
    /// Whether the restore is over (it is never done again).
    pub fn ended(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_reads_as_a_duration() {
        let s = |every: &str| Schedule { every: every.into() }.interval();
        assert_eq!(s("24h"), Some(std::time::Duration::from_secs(86_400)));
        assert_eq!(s("5s"), Some(std::time::Duration::from_secs(5)));
        assert_eq!(s("0s"), None);
    }
}
