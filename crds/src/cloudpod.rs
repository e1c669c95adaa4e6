//! CloudPod: a Proxmox VE virtual machine (`qemu`) or container (`lxc`) sold as a plan.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, SecretKeySelector};
use crate::conditions::Condition;
use crate::formats;

/// A CloudPod is a virtual machine or container on Proxmox VE, cloned from a template and sized by
/// its plan. The operator reserves a VMID, clones, configures and starts it, and keeps its
/// resources, power state and billing hold in line with this spec.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mpanel.migrahosting.com",
    version = "v1alpha1",
    kind = "CloudPod",
    plural = "cloudpods",
    shortname = "cpod",
    category = "mpanel",
    namespaced,
    status = "CloudPodStatus",
    derive = "PartialEq",
    doc = "A Proxmox VE virtual machine or container sold as a plan.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Plan", type_ = "string", json_path = ".spec.plan"),
    printcolumn(name = "VMID", type_ = "integer", json_path = ".status.vmid"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ipAddress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.resources) || self.plan in ['mini', 'pro', 'business', 'enterprise']").message("resources are required unless plan is mini, pro, business or enterprise").field_path(".resources"))]
pub struct CloudPodSpec {
    /// Plan the customer bought, e.g. `mini`, `pro`, `business`, `enterprise`. Without `resources`,
    /// the plan's sizes from the operator configuration apply (by default mini 1 core/1 GiB/20 GiB,
    /// pro 2/2/50, business 4/4/100, enterprise 8/8/200).
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_LABEL))]
    pub plan: String,

    /// `lxc` for a container, `qemu` for a virtual machine. Cannot be changed after creation.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type is immutable"))]
    pub type_: GuestType,

    /// Template to clone: a VMID (e.g. `9000`) or a template name. Cannot be changed after creation.
    #[schemars(length(min = 1, max = 63), pattern(formats::PVE_TEMPLATE))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("template is immutable"))]
    pub template: String,

    /// CPU, memory and disk of the guest, overriding the plan's. Cores and memory may go up or down;
    /// the disk only grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,

    /// Hostname of the guest (a DNS label).
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_LABEL))]
    pub hostname: String,

    /// Network attachment of the guest's first interface.
    pub network: Network,

    /// OpenSSH public keys installed for the default user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 16384), pattern(formats::SSH_PUBLIC_KEY)))]
    pub ssh_keys: Vec<String>,

    /// Secret key holding cloud-init user data (`#cloud-config …`) for the first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init_secret_ref: Option<SecretKeySelector>,

    /// Where the guest may run. Without it, the operator picks a node of its default cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,

    /// Desired power state. A suspended CloudPod is stopped whatever this says.
    #[serde(default = "PowerState::running")]
    pub power_state: PowerState,

    /// Billing hold: the guest is stopped (not deleted) while true.
    #[serde(default)]
    pub suspended: bool,

    /// `Delete` (default) destroys the guest when this resource is deleted; `Orphan` leaves it.
    /// A guest whose ownership tag does not name this resource is never destroyed.
    #[serde(default = "DeletionPolicy::delete")]
    pub deletion_policy: DeletionPolicy,
}

/// Guest technology.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    /// A Linux container.
    Lxc,
    /// A KVM virtual machine.
    Qemu,
}

/// Desired power state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PowerState {
    Running,
    Stopped,
}

impl PowerState {
    pub fn running() -> Self {
        Self::Running
    }
}

/// Sizes of the guest. Plans: mini 1 core/1024 MiB/20 GiB, pro 2/2048/50, business 4/4096/100,
/// enterprise 8/8192/200.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.diskGiB >= oldSelf.diskGiB").message("diskGiB cannot shrink: a disk only grows").field_path(".diskGiB"))]
pub struct Resources {
    /// Virtual CPU cores, 1–64.
    #[schemars(range(min = 1, max = 64))]
    pub cores: u32,
    /// Memory in MiB, 256–524288.
    #[serde(rename = "memoryMiB")]
    #[schemars(range(min = 256, max = 524288))]
    pub memory_mib: u32,
    /// Root disk in GiB, 1–16384. It can grow but never shrink.
    #[serde(rename = "diskGiB")]
    #[schemars(range(min = 1, max = 16384))]
    pub disk_gib: u32,
}

/// Network attachment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Proxmox bridge, e.g. `vmbr0`.
    #[schemars(length(min = 1, max = 15), pattern(formats::BRIDGE))]
    pub bridge: String,
    /// 802.1Q VLAN tag, 1–4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    /// IPv4 configuration: a static `address` with its `gateway`, or a `pool` to allocate from.
    pub ipv4: Ipv4Config,
}

/// IPv4 configuration: either `address` + `gateway`, or `pool`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.address) != has(self.pool)").message("set either address (with gateway) or pool, not both or neither"),
    validation = Rule::new("!has(self.address) || has(self.gateway)").message("gateway is required with a static address").field_path(".gateway")
)]
pub struct Ipv4Config {
    /// Static address with prefix length, e.g. `203.0.113.10/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 18))]
    #[x_kube(validation = Rule::new(formats::CEL_IPV4_CIDR).message("address must be an IPv4 address with prefix length, e.g. 203.0.113.10/24"))]
    pub address: Option<String>,
    /// Default gateway for a static address, e.g. `203.0.113.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    #[x_kube(validation = Rule::new(formats::CEL_IPV4).message("gateway must be an IPv4 address, e.g. 203.0.113.1"))]
    pub gateway: Option<String>,
    /// Name of an address pool from the operator configuration to allocate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_LABEL))]
    pub pool: Option<String>,
}

/// Placement constraints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Proxmox cluster name from the operator configuration; the default cluster when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(formats::PVE_NODE))]
    pub cluster: Option<String>,
    /// Nodes the guest may be placed on; any node of the cluster when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63), pattern(formats::PVE_NODE)))]
    pub nodes: Vec<String>,
}

/// Observed state of a CloudPod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.vmid) || (has(self.vmid) && self.vmid == oldSelf.vmid)").message("vmid cannot change once reserved").field_path(".vmid"))]
pub struct CloudPodStatus {
    /// Lifecycle phase: Pending, Provisioning, Running, Stopped, Suspended, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CloudPodPhase>,
    /// Proxmox VMID, reserved from the configured range before the clone call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Node the guest runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Primary IPv4 address of the guest, without prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// The Proxmox task in flight, if any; the reconciler polls it instead of waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ref: Option<TaskRef>,
    /// Resources as last applied to the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_resources: Option<Resources>,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Cloned, Configured, Started and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A Proxmox task being tracked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    /// Proxmox task id, `UPID:node:…`.
    pub upid: String,
    /// What the task does.
    pub operation: TaskOperation,
    /// When the task was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

/// Operation of a tracked Proxmox task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaskOperation {
    Clone,
    Configure,
    Resize,
    Start,
    Stop,
    Destroy,
}

/// Lifecycle phase of a CloudPod.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CloudPodPhase {
    Pending,
    Provisioning,
    Running,
    Stopped,
    Suspended,
    Failed,
    Deleting,
}
