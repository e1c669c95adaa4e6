//! CloudPod: a Proxmox VE virtual machine (`qemu`) or container (`lxc`) sold as a plan.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, SecretKeySelector};
use crate::conditions::Condition;
use crate::formats;

/// A Unix user name as cloud-init creates it: lowercase, digits, `_` and `-`, not starting with a
/// digit or `-`.
const UNIX_USER: &str = r"^[a-z_][a-z0-9_-]{0,31}$";

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
#[x_kube(
    validation = Rule::new("has(self.resources) || self.plan in ['mini', 'pro', 'business', 'enterprise']").message("resources are required unless plan is mini, pro, business or enterprise").field_path(".resources"),
    validation = Rule::new("self.type == 'qemu' || !has(self.sshKeys) || size(self.sshKeys) == 0").message("sshKeys apply to qemu only: Proxmox installs keys in a container only when it is created from an OS template, and a CloudPod container is cloned from a container template; put the keys in the template").field_path(".sshKeys"),
    validation = Rule::new("self.type == 'qemu' || !has(self.defaultUser)").message("defaultUser applies to qemu only: a Proxmox container has no cloud-init user").field_path(".defaultUser"),
    validation = Rule::new("self.type == 'qemu' || !has(self.cloudInitSecretRef)").message("cloudInitSecretRef applies to qemu only: Proxmox containers have no cloud-init").field_path(".cloudInitSecretRef")
)]
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

    /// OpenSSH public keys cloud-init installs for the default user (Proxmox `sshkeys`). `qemu`
    /// only: a cloned container cannot be given keys through Proxmox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 16384), pattern(formats::SSH_PUBLIC_KEY)))]
    pub ssh_keys: Vec<String>,

    /// Name of the default user cloud-init creates instead of the image's own (Proxmox `ciuser`).
    /// `qemu` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), pattern(UNIX_USER))]
    pub default_user: Option<String>,

    /// Secret key holding cloud-init user data (`#cloud-config …`). `qemu` only. The operator
    /// writes it as a snippet to the snippet storage of its configuration and points the guest's
    /// `cicustom` at it; without a snippet storage the CloudPod is not configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init_secret_ref: Option<SecretKeySelector>,

    /// Reboots a running guest once for each new value: set it to the current time (RFC 3339,
    /// e.g. `2026-12-01T20:00:00Z`) to ask for a reboot. `status.reboot` records the value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_requested_at: Option<Time>,

    /// Where the guest may run. Without it, the operator picks any node of its Proxmox cluster.
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
    /// Resolvers and search domains of the guest; the Proxmox host's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// DNS settings handed to the guest (Proxmox `nameserver` and `searchdomain`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Resolver addresses, e.g. `[1.1.1.1, 9.9.9.9]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3), inner(length(max = 45)))]
    #[x_kube(validation = Rule::new("self.all(a, isIP(a))").message("nameservers must be IP addresses, e.g. 1.1.1.1"))]
    pub nameservers: Vec<String>,
    /// Search domains, e.g. `[example.net]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6), inner(length(max = 253), pattern(formats::DOMAIN_NAME)))]
    pub search_domains: Vec<String>,
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
    /// Nodes the guest may be placed on; any node of the operator's Proxmox cluster when empty.
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
    /// The reboot last asked for by `spec.rebootRequestedAt` and what came of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<RebootStatus>,
    /// What the QEMU guest agent reports from inside the guest; absent when no agent answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_agent: Option<GuestAgentStatus>,
    /// The optional guest config keys (DNS, cloud-init) the operator wrote for the spec. One the
    /// spec stops asking for is removed from the guest; keys it never wrote (a template's) are left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_keys: Vec<String>,
    /// Cloned, Configured, Started and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The reboot asked for last. A value is acted on once: it is recorded here before Proxmox is
/// asked, so neither a requeue nor a restart of the operator reboots twice for it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebootStatus {
    /// The `spec.rebootRequestedAt` value acted on.
    pub requested_at: Time,
    /// When the operator acted on it.
    pub acted_at: Time,
    /// `Requested` (Proxmox was asked to reboot the guest) or `NotRunning` (the guest was not
    /// running, so it was not rebooted).
    pub outcome: RebootOutcome,
}

/// What came of a reboot request.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RebootOutcome {
    Requested,
    NotRunning,
}

/// The guest as its QEMU guest agent sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestAgentStatus {
    /// The operating system's pretty name, e.g. `Debian GNU/Linux 13 (trixie)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Addresses of the guest's interfaces other than loopback, e.g. `192.0.2.10/24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GuestAddress>,
}

/// One address the guest agent reports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestAddress {
    /// Interface name inside the guest, e.g. `eth0`.
    pub interface: String,
    /// Address with prefix length, e.g. `192.0.2.10/24` or `2001:db8::10/64`.
    pub address: String,
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
    Reboot,
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
