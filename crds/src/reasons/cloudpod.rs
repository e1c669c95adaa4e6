//! The reasons of CloudPods: allocation, cloning, configuration and power.

use super::*;

pub const VMID_RESERVED: Reason = Reason {
    name: "VmidReserved",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED]))],
    meaning: "A VMID was reserved in `status.vmid`; the clone comes next.",
    action: "Wait.",
};

pub const CLONING: Reason = Reason {
    name: "Cloning",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED]))],
    meaning: "The template is being cloned to the guest's VMID.",
    action: "Wait.",
};

pub const RECREATING: Reason = Reason {
    name: "Recreating",
    reported_in: &[(&[CLOUD_POD], Event)],
    meaning: "The guest was deleted outside the operator and is cloned again at the same VMID, from the template.",
    action: "Nothing; to remove a guest, delete its CloudPod.",
};

pub const CLONED: Reason = Reason {
    name: "Cloned",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED]))],
    meaning: "The guest exists on a node of the cluster.",
    action: "Nothing.",
};

pub const NOT_CREATED: Reason = Reason {
    name: "NotCreated",
    reported_in: &[(&[CLOUD_POD], ON_READY)],
    meaning: "There is no guest, and the CloudPod is `ObserveOnly`, so none is created.",
    action: "Set the reconcile mode to `Reconcile` to have it created.",
};

pub const NO_FREE_VMID: Reason = Reason {
    name: "NoFreeVmid",
    reported_in: &[(&[CLOUD_POD], ON_READY)],
    meaning: "Every VMID of the operator's range is taken; it is tried again at the next resync.",
    action: "Ask the operators to widen the VMID range or free VMIDs.",
};

pub const NO_NODE: Reason = Reason {
    name: "NoNode",
    reported_in: &[(&[CLOUD_POD], ON_READY)],
    meaning: "No node of the cluster (or of `placement.nodes`) is online to clone to.",
    action: "Check `placement.nodes`; otherwise ask the operators to bring a node back.",
};

pub const TEMPLATE_NOT_FOUND: Reason = Reason {
    name: "TemplateNotFound",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED, types::READY]))],
    meaning: "No template of the spec's name and type is in the Proxmox cluster.",
    action: "Create the CloudPod again with a template that exists, or ask the operators to provide it.",
};

pub const GUEST_OWNED_ELSEWHERE: Reason = Reason {
    name: "GuestOwnedElsewhere",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFLICT]))],
    meaning: "The guest at `status.vmid` does not carry this CloudPod's tag (or is of the other type); it is left \
              untouched.",
    action: "Ask the operators to look at the guest at that VMID.",
};

pub const UNKNOWN_PLAN: Reason = Reason {
    name: "UnknownPlan",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "`plan` is not in the operator configuration and `resources` is not set.",
    action: "Use a configured plan, or set `resources`.",
};

pub const NO_ADDRESS: Reason = Reason {
    name: "NoAddress",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "No IPv4 address could be given: the pool is not in the operator configuration or has no free \
              address.",
    action: "Use a configured pool or a static address; ask the operators to grow a full pool.",
};

pub const NETWORK_NOT_ALLOWED: Reason = Reason {
    name: "NetworkNotAllowed",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The bridge or the VLAN is not one the operator configuration allows; an existing guest keeps its \
              configuration.",
    action: "Use an allowed bridge and VLAN.",
};

pub const TEMPLATE_NOT_ALLOWED: Reason = Reason {
    name: "TemplateNotAllowed",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The template is not one the operator configuration allows.",
    action: "Create the CloudPod again with an allowed template.",
};

pub const ADDRESS_IN_POOL: Reason = Reason {
    name: "AddressInPool",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The static address lies inside an IPv4 pool the operator gives out.",
    action: "Use the pool (`network.ipv4.pool`) or an address outside it.",
};

pub const ADDRESS_IN_USE: Reason = Reason {
    name: "AddressInUse",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "Another CloudPod asked for the same static address first.",
    action: "Use another address.",
};

pub const RESIZING: Reason = Reason {
    name: "Resizing",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED]))],
    meaning: "The root disk is being grown to `diskGiB`.",
    action: "Wait.",
};

pub const DISK_LARGER_THAN_SPEC: Reason = Reason {
    name: "DiskLargerThanSpec",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED]))],
    meaning: "The disk is larger than `diskGiB`; a disk is never shrunk, so the larger size stays.",
    action: "Nothing; raise `diskGiB` if the spec should say so.",
};

pub const CONFIGURED: Reason = Reason {
    name: "Configured",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED]))],
    meaning: "The guest's cores, memory, disk, name and network match the spec.",
    action: "Nothing.",
};

pub const STARTING: Reason = Reason {
    name: "Starting",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED]))],
    meaning: "The guest is being started.",
    action: "Wait.",
};

pub const STOPPING: Reason = Reason {
    name: "Stopping",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED]))],
    meaning: "The guest is being stopped (`powerState: Stopped`, or the CloudPod is suspended).",
    action: "Wait.",
};

pub const RUNNING: Reason = Reason {
    name: "Running",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED, types::READY]))],
    meaning: "The guest runs and matches the spec.",
    action: "Nothing.",
};

pub const STOPPED: Reason = Reason {
    name: "Stopped",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED, types::READY]))],
    meaning: "The guest is stopped, as `powerState: Stopped` asks, and otherwise matches the spec.",
    action: "Nothing; set `powerState: Running` to start it.",
};

pub const REBOOTING: Reason = Reason {
    name: "Rebooting",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::STARTED]))],
    meaning: "The guest is being rebooted, as a new `rebootRequestedAt` asked; `status.reboot` records the value.",
    action: "Wait.",
};

pub const USER_DATA_SECRET_MISSING: Reason = Reason {
    name: "UserDataSecretMissing",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The Secret of `cloudInitSecretRef`, or its key, is missing or not text, so the guest is not configured.",
    action: "Create the Secret with the cloud-init user data under the named key.",
};

pub const USER_DATA_NOT_WRITTEN: Reason = Reason {
    name: "UserDataNotWritten",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CONFIGURED, types::READY]))],
    meaning: "The cloud-init user data of `cloudInitSecretRef` could not be written as a snippet: the operator \
              configuration has no `proxmox.snippets`, or its directory cannot be written.",
    action: "Configure `proxmox.snippets` with a snippet storage mounted into the operator, or remove \
             `cloudInitSecretRef`.",
};

pub const PROXMOX_TASK_FAILED: Reason = Reason {
    name: "ProxmoxTaskFailed",
    reported_in: &[(&[CLOUD_POD], Conditions(&[types::CLONED, types::CONFIGURED, types::STARTED, types::READY]))],
    meaning: "A Proxmox task (clone, resize, start, stop) failed; the message is Proxmox's own. It is retried on \
              the object's backoff.",
    action: "Read the message; if the retry fails the same way, ask the operators to look at the task in Proxmox.",
};

pub const DESTROYING: Reason = Reason {
    name: "Destroying",
    reported_in: &[(&[CLOUD_POD], Waiting)],
    meaning: "The deletion waits for Proxmox to stop and destroy the guest (status.taskRef); it is looked at again \
              every second, as no failure.",
    action: "Wait.",
};

/// The conditions a Proxmox error is reported in: the step that failed, and Ready.
const PROXMOX_FAILURE: ReportedIn = Conditions(&[types::CLONED, types::CONFIGURED, types::STARTED, types::READY]);

pub const PROXMOX_UNAUTHORIZED: Reason = Reason {
    name: "ProxmoxUnauthorized",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox refused the operator's API token (401 or 403).",
    action: "Operators: check the token and its permissions in the operator configuration.",
};

pub const PROXMOX_ERROR: Reason = Reason {
    name: "ProxmoxError",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox answered with a server error (5xx); the message is its own. It is retried.",
    action: "Wait for the retry; if it persists, operators check Proxmox.",
};

pub const PROXMOX_REJECTED: Reason = Reason {
    name: "ProxmoxRejected",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox refused the request (4xx); the message is its own.",
    action: "If the message names something of the spec (a storage, a size), change it; otherwise ask the \
             operators.",
};

pub const PROXMOX_UNREACHABLE: Reason = Reason {
    name: "ProxmoxUnreachable",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox could not be reached. It is retried.",
    action: "Wait for the retry; if it persists, operators check the network to Proxmox.",
};

pub const PROXMOX_BAD_RESPONSE: Reason = Reason {
    name: "ProxmoxBadResponse",
    reported_in: &[(&[CLOUD_POD], PROXMOX_FAILURE), (&[BACKUP_POLICY], ON_READY)],
    meaning: "Proxmox sent an answer the operator could not read.",
    action: "Ask the operators: the Proxmox version may not be one the operator supports.",
};
