//! The reasons of BackupPolicies and CloudPodRestores.

use super::*;

pub const BACKUPS_SCHEDULED: Reason = Reason {
    name: "BackupsScheduled",
    reported_in: &[(&[BACKUP_POLICY], ON_READY)],
    meaning: "Every CloudPod of the policy is backed up on schedule and its latest backup succeeded; \
              `status.cloudPods` lists each one's archives, task in flight and next backup.",
    action: "Nothing.",
};

pub const INVALID_SCHEDULE: Reason = Reason {
    name: "InvalidSchedule",
    reported_in: &[(&[BACKUP_POLICY], ON_READY)],
    meaning: "`schedule.every` is not an interval, so nothing is backed up.",
    action: "Set `schedule.every` to a number and a unit, e.g. `24h`.",
};

pub const CLOUD_POD_WITHOUT_GUEST: Reason = Reason {
    name: "CloudPodWithoutGuest",
    reported_in: &[(&[BACKUP_POLICY, CLOUD_POD_RESTORE], ON_READY)],
    meaning: "A CloudPod named here does not exist in the namespace or has no guest yet (no VMID or node).",
    action: "Wait for the CloudPod to be provisioned, or correct the name.",
};

pub const BACKUP_FAILED: Reason = Reason {
    name: "BackupFailed",
    reported_in: &[(&[BACKUP_POLICY], ON_READY)],
    meaning: "The latest vzdump of a CloudPod failed; the message is Proxmox's own. The next one runs on schedule.",
    action: "Read the message (storage full, guest locked); if it repeats, ask the operators to look at the \
             vzdump task in Proxmox.",
};

pub const RESTORING: Reason = Reason {
    name: "Restoring",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The CloudPod's reconciles are paused and its guest is being stopped or restored from the archive.",
    action: "Wait.",
};

pub const RESTORED: Reason = Reason {
    name: "Restored",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The guest was restored from the archive and handed back to the CloudPod, which starts it again \
              and puts its spec back on it. It is not restored again.",
    action: "Nothing; to restore again, create another CloudPodRestore.",
};

pub const NOT_RESTORED: Reason = Reason {
    name: "NotRestored",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The restore is `ObserveOnly`: the archive was checked, nothing is stopped or restored.",
    action: "Set the reconcile mode to `Reconcile` to restore.",
};

pub const RESTORE_FAILED: Reason = Reason {
    name: "RestoreFailed",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The stop or restore task failed (Proxmox's own words); the CloudPod got its reconciles back. The \
              restore is not tried again.",
    action: "Read the message; create another CloudPodRestore once the cause is fixed.",
};

pub const ARCHIVE_NOT_FOUND: Reason = Reason {
    name: "ArchiveNotFound",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The archive is not in its storage (pruned, or never made). Nothing was changed.",
    action: "Pick an archive the BackupPolicy's status lists and create another CloudPodRestore.",
};

pub const ARCHIVE_NOT_OWNED: Reason = Reason {
    name: "ArchiveNotOwned",
    reported_in: &[(&[CLOUD_POD_RESTORE], ON_READY)],
    meaning: "The archive is not one a BackupPolicy made of this CloudPod (another VMID or kind, or without its \
              marker), so it is never restored onto it. Nothing was changed.",
    action: "Pick an archive the BackupPolicy's status lists for this CloudPod.",
};
