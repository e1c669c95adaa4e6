//! An in-memory Proxmox VE for the reconcilers' unit tests: [`FakeProxmox`] implements
//! [`ProxmoxApi`], [`BackupApi`] and [`GuestAgent`] over one shared state.
//!
//! It answers as the real API does where the operator relies on it: errors are
//! `ProxmoxError::Rejected` with Proxmox's own words (a taken VMID, a missing config file, a lock,
//! a running guest), long operations return a UPID whose task stays `running` until the test
//! finishes it ([`FakeProxmox::finish_task`]) unless auto-completion is on, and a task's effect (a
//! start, a destroy, an archive written) happens when it ends well. Every call is recorded under
//! the operation name the real client's metrics use (`clone`, `set_config`, `task_status`, …).

#![allow(dead_code, reason = "helpers for the controllers' tests: not every test uses every one")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::controllers::Clock;
use crate::controllers::cloudpod::guest::size_gib;
use crate::providers::proxmox::{Guest, Kind, Node, ProxmoxApi, ProxmoxError, Task, clone_params};
use crate::providers::proxmox_agent::{AgentError, ExecStatus, GuestAgent};
use crate::providers::proxmox_backup::{BackupApi, BackupVolume, Restore, Vzdump, parse_archive};
use crate::testing::calls::{Op, Recorder};

/// Operations that change something, as [`FakeProxmox::writes`] counts them.
const WRITES: [&str; 10] = [
    "clone",
    "set_config",
    "resize",
    "power",
    "destroy",
    "vzdump",
    "delete_backup",
    "restore",
    "agent_file_write",
    "agent_exec",
];

/// Config keys Proxmox answers as numbers.
const NUMERIC: [&str; 7] = ["cores", "memory", "swap", "sockets", "onboot", "template", "cpulimit"];

/// One call made to the fake: its operation (the real client's metric name), node, VMID and
/// parameters (for `set_config` and `clone` the keys sent; `delete` among them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: &'static str,
    pub node: String,
    pub vmid: Option<u32>,
    pub params: BTreeMap<String, String>,
}

impl Op for Call {
    fn op(&self) -> &str {
        self.op
    }
}

/// A guest as the fake keeps it. `config` is what `config()` answers (its `name`/`hostname`,
/// `tags` and `lock` are what `guests()` lists); `status` is `running` or `stopped`.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeGuest {
    pub vmid: u32,
    pub node: String,
    pub kind: Kind,
    pub status: String,
    pub template: bool,
    pub config: BTreeMap<String, Value>,
    /// The archive the guest was last restored from.
    pub restored_from: Option<String>,
}

impl FakeGuest {
    /// A stopped guest with an empty config.
    pub fn new(vmid: u32, node: &str, kind: Kind) -> Self {
        Self {
            vmid,
            node: node.to_owned(),
            kind,
            status: "stopped".into(),
            template: false,
            config: BTreeMap::new(),
            restored_from: None,
        }
    }

    /// A template named `name` with a root disk of `disk_gib` on local-lvm, as the testbed has them.
    pub fn template(vmid: u32, node: &str, kind: Kind, name: &str, disk_gib: u32) -> Self {
        let mut g = Self::new(vmid, node, kind);
        g.template = true;
        g.set(name_key(kind), name);
        g.config.insert("cores".into(), Value::from(1));
        g.config.insert("memory".into(), Value::from(512));
        g.config.insert("template".into(), Value::from(1));
        let disk = format!("local-lvm:base-{vmid}-disk-0,size={disk_gib}G");
        g.set(root_disk(kind), &disk);
        let net = match kind {
            Kind::Lxc => "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:00,ip=dhcp,type=veth",
            Kind::Qemu => "virtio=BC:24:11:00:90:00,bridge=vmbr0",
        };
        g.set("net0", net);
        g
    }

    /// Sets a config key (a number for the keys Proxmox answers as numbers); returns self.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.set(key, value);
        self
    }

    /// Sets a config key (a number for the keys Proxmox answers as numbers).
    pub fn set(&mut self, key: &str, value: &str) {
        self.config.insert(key.to_owned(), config_value(key, value));
    }

    /// A config key as text.
    pub fn get(&self, key: &str) -> Option<String> {
        self.config.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn lock(&self) -> Option<String> {
        self.get("lock")
    }

    fn listed(&self) -> Guest {
        Guest {
            vmid: self.vmid,
            node: self.node.clone(),
            kind: self.kind,
            name: self.get(name_key(self.kind)).unwrap_or_default(),
            status: self.status.clone(),
            template: self.template,
            tags: self.get("tags").unwrap_or_default(),
        }
    }
}

/// A VM's QEMU guest agent as the fake answers for it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeAgent {
    /// The `result` of read-only commands (`get-osinfo`, `network-get-interfaces`), by command.
    pub reads: BTreeMap<String, Value>,
    /// What `exec-status` reports of a command (argv joined by spaces); exit 0 otherwise.
    pub exec: BTreeMap<String, ExecStatus>,
    /// Files written through `file-write`, by path: the latest content.
    pub files: BTreeMap<String, String>,
    /// Commands started through `exec`, oldest first.
    pub ran: Vec<Vec<String>>,
    pids: BTreeMap<u64, Vec<String>>,
}

impl FakeAgent {
    /// An agent that reports `os` as its pretty name and `addresses` (`(interface, "ip/prefix")`),
    /// plus loopback.
    pub fn answering(os: &str, addresses: &[(&str, &str)]) -> Self {
        let mut interfaces = vec![serde_json::json!({"name": "lo", "ip-addresses": [
            {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]})];
        for (name, cidr) in addresses {
            let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
            let family = if ip.contains(':') { "ipv6" } else { "ipv4" };
            interfaces.push(serde_json::json!({"name": name, "ip-addresses": [
                {"ip-address": ip, "ip-address-type": family, "prefix": prefix.parse::<u64>().unwrap_or(32)}]}));
        }
        let reads = BTreeMap::from([
            ("get-osinfo".to_owned(), serde_json::json!({"id": "debian", "pretty-name": os})),
            ("network-get-interfaces".to_owned(), Value::Array(interfaces)),
        ]);
        Self { reads, ..Self::default() }
    }
}

/// A task as the fake keeps it: its UPID, operation, guest, and state (`None` while running,
/// else `OK` or the error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeTask {
    pub upid: String,
    pub op: &'static str,
    pub vmid: u32,
    pub exitstatus: Option<String>,
}

/// What a task does to the state when it ends well (and undoes when it fails).
#[derive(Clone, Debug)]
enum Effect {
    Clone { source: u32, newid: u32 },
    Power { vmid: u32, action: String },
    Destroy { vmid: u32 },
    Resize { vmid: u32, disk: String, gib: u64 },
    Vzdump { vmid: u32, node: String, storage: String, notes: String },
    DeleteVolume { storage: String, volid: String },
    Restore { vmid: u32, archive: String, storage: Option<String> },
}

struct Archive {
    volume: BackupVolume,
    kind: Kind,
    config: BTreeMap<String, Value>,
}

#[derive(Default)]
struct State {
    nodes: Vec<Node>,
    guests: BTreeMap<u32, FakeGuest>,
    tasks: BTreeMap<String, (FakeTask, Effect)>,
    auto_complete: bool,
    calls: Recorder<Call, ProxmoxError>,
    storages: BTreeMap<String, Vec<Archive>>,
    agents: BTreeMap<u32, FakeAgent>,
    next_pid: u64,
    /// What archives are dated by; the system clock when unset.
    clock: Option<Clock>,
    /// Seconds since the epoch of the last archive (the next is at least one second later, so
    /// names never collide).
    last_archive: i64,
}

/// The in-memory Proxmox VE. Clones share one state: keep one in the test, give one to the
/// controller's Context.
#[derive(Clone, Default)]
pub struct FakeProxmox {
    state: Arc<Mutex<State>>,
}

fn name_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Lxc => "hostname",
        Kind::Qemu => "name",
    }
}

fn root_disk(kind: Kind) -> &'static str {
    match kind {
        Kind::Lxc => "rootfs",
        Kind::Qemu => "scsi0",
    }
}

fn config_value(key: &str, value: &str) -> Value {
    match value.parse::<i64>() {
        Ok(n) if NUMERIC.contains(&key) => Value::from(n),
        _ => Value::from(value),
    }
}

/// Proxmox's 500 with its own message.
fn pve(message: impl Into<String>) -> ProxmoxError {
    ProxmoxError::Rejected { status: 500, message: message.into() }
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Lxc => "CT",
        Kind::Qemu => "VM",
    }
}

fn missing(node: &str, kind: Kind, vmid: u32) -> ProxmoxError {
    let dir = match kind {
        Kind::Lxc => "lxc",
        Kind::Qemu => "qemu-server",
    };
    pve(format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"))
}

/// The disk entry with its `size=` item replaced.
fn with_size(entry: &str, gib: u64) -> String {
    let mut items: Vec<String> =
        entry.split(',').filter(|i| !i.is_empty() && !i.starts_with("size=")).map(str::to_owned).collect();
    items.push(format!("size={gib}G"));
    items.join(",")
}

/// The size in GiB of a disk entry (`…,size=8G`).
fn entry_gib(entry: &str) -> Option<u64> {
    size_gib(entry.split(',').find_map(|i| i.strip_prefix("size="))?)
}

/// `{{`/`}}` as the real client writes a vzdump note.
fn plain_notes(notes: &str) -> String {
    notes.replace("{{", "{ {").replace("}}", "} }").replace('\n', " ")
}

fn utc_stamp(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y_%m_%d-%H_%M_%S").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

impl State {
    /// The guest `vmid` of `kind` on `node`, or Proxmox's missing-config error.
    fn find(&self, node: &str, kind: Kind, vmid: u32) -> Result<&FakeGuest, ProxmoxError> {
        self.guests.get(&vmid).filter(|g| g.node == node && g.kind == kind).ok_or_else(|| missing(node, kind, vmid))
    }

    fn find_mut(&mut self, node: &str, kind: Kind, vmid: u32) -> Result<&mut FakeGuest, ProxmoxError> {
        self.guests.get_mut(&vmid).filter(|g| g.node == node && g.kind == kind).ok_or_else(|| missing(node, kind, vmid))
    }

    fn unlocked(guest: &FakeGuest) -> Result<(), ProxmoxError> {
        match guest.lock() {
            Some(lock) => Err(pve(format!("{} is locked ({lock})", what(guest.kind)))),
            None => Ok(()),
        }
    }

    /// Removes the lock `lock` of `vmid` (another lock stays).
    fn unlock(&mut self, vmid: u32, lock: &str) {
        if self.guests.get(&vmid).and_then(FakeGuest::lock).as_deref() == Some(lock) {
            self.set_lock(vmid, None);
        }
    }

    fn set_lock(&mut self, vmid: u32, lock: Option<&str>) {
        if let Some(g) = self.guests.get_mut(&vmid) {
            match lock {
                Some(l) => g.set("lock", l),
                None => {
                    g.config.remove("lock");
                }
            }
        }
    }

    /// Starts a task on `node`; it ends at once when auto-completion is on.
    fn start(&mut self, node: &str, op: &'static str, kind: &str, vmid: u32, effect: Effect) -> String {
        let upid = self.start_running(node, op, kind, vmid, effect);
        if self.auto_complete {
            self.finish(&upid, Ok(()));
        }
        upid
    }

    /// Starts a task that runs until finished, whatever the auto-completion.
    fn start_running(&mut self, node: &str, op: &'static str, kind: &str, vmid: u32, effect: Effect) -> String {
        self.next_pid += 1;
        let pid = self.next_pid;
        let upid =
            format!("UPID:{node}:{pid:08X}:{:08X}:{:08X}:{kind}:{vmid}:root@pam!operator:", pid * 7, 0x6900_0000 + pid);
        self.tasks.insert(upid.clone(), (FakeTask { upid: upid.clone(), op, vmid, exitstatus: None }, effect));
        upid
    }

    fn finish(&mut self, upid: &str, outcome: Result<(), &str>) -> bool {
        let Some((task, effect)) = self.tasks.get(upid).cloned() else { return false };
        if task.exitstatus.is_some() {
            return false;
        }
        // an effect that cannot happen any more (its guest gone) fails the task as Proxmox would
        let outcome = match outcome {
            Ok(()) => self.apply(&effect).map_err(|e| e.to_string()),
            Err(message) => {
                self.undo(&effect);
                Err(message.to_owned())
            }
        };
        let status = match outcome {
            Ok(()) => "OK".to_owned(),
            Err(message) => message,
        };
        if let Some((task, _)) = self.tasks.get_mut(upid) {
            task.exitstatus = Some(status);
        }
        true
    }

    fn apply(&mut self, effect: &Effect) -> Result<(), String> {
        match effect {
            Effect::Clone { source, newid } => {
                self.unlock(*source, "clone");
                self.unlock(*newid, "create");
            }
            Effect::Power { vmid, action } => {
                let g = self.guests.get_mut(vmid).ok_or_else(|| format!("guest {vmid} does not exist"))?;
                g.status = if matches!(action.as_str(), "stop" | "shutdown") { "stopped" } else { "running" }.into();
            }
            Effect::Destroy { vmid } => {
                self.guests.remove(vmid);
                self.agents.remove(vmid);
            }
            Effect::Resize { vmid, disk, gib } => {
                let g = self.guests.get_mut(vmid).ok_or_else(|| format!("guest {vmid} does not exist"))?;
                let entry = g.get(disk).unwrap_or_default();
                g.set(disk, &with_size(&entry, *gib));
            }
            Effect::Vzdump { vmid, node, storage, notes } => {
                let g = self.guests.get(vmid).filter(|g| &g.node == node);
                let Some(g) = g.cloned() else { return Err(format!("guest {vmid} is not on node {node}")) };
                self.unlock(*vmid, "backup");
                let now = self.clock.as_ref().map_or_else(jiff::Timestamp::now, Clock::now).as_second();
                self.last_archive = now.max(self.last_archive + 1);
                let at = self.last_archive;
                let (kind, ext) = match g.kind {
                    Kind::Lxc => ("lxc", "tar.zst"),
                    Kind::Qemu => ("qemu", "vma.zst"),
                };
                let volid = format!("{storage}:backup/vzdump-{kind}-{vmid}-{}.{ext}", utc_stamp(at));
                let mut config = g.config.clone();
                config.remove("lock");
                let volume = BackupVolume {
                    volid,
                    vmid: Some(*vmid),
                    ctime: at,
                    size: 1 << 30,
                    notes: (!notes.is_empty()).then(|| notes.clone()),
                };
                self.storages.entry(storage.clone()).or_default().push(Archive { volume, kind: g.kind, config });
            }
            Effect::DeleteVolume { storage, volid } => {
                if let Some(archives) = self.storages.get_mut(storage) {
                    archives.retain(|a| &a.volume.volid != volid);
                }
            }
            Effect::Restore { vmid, archive, storage } => {
                self.unlock(*vmid, "create");
                let config = self
                    .storages
                    .values()
                    .flatten()
                    .find(|a| &a.volume.volid == archive)
                    .map(|a| a.config.clone())
                    .ok_or_else(|| format!("volume '{archive}' does not exist"))?;
                let g = self.guests.get_mut(vmid).ok_or_else(|| format!("guest {vmid} does not exist"))?;
                g.config = config;
                if let Some(storage) = storage {
                    let key = root_disk(g.kind);
                    if let Some(entry) = g.get(key)
                        && let Some((_, rest)) = entry.split_once(':')
                    {
                        g.set(key, &format!("{storage}:{rest}"));
                    }
                }
                g.status = "stopped".into();
                g.restored_from = Some(archive.clone());
            }
        }
        Ok(())
    }

    fn undo(&mut self, effect: &Effect) {
        match effect {
            Effect::Clone { source, newid } => {
                self.unlock(*source, "clone");
                self.guests.remove(newid);
            }
            Effect::Destroy { vmid } => self.unlock(*vmid, "destroyed"),
            Effect::Vzdump { vmid, .. } => self.unlock(*vmid, "backup"),
            Effect::Restore { vmid, .. } => self.unlock(*vmid, "create"),
            Effect::Power { .. } | Effect::Resize { .. } | Effect::DeleteVolume { .. } => {}
        }
    }
}

/// The agent of a running VM, or Proxmox's words for why it cannot be reached.
fn agent_of<'a>(s: &'a mut State, node: &str, vmid: u32) -> Result<&'a mut FakeAgent, ProxmoxError> {
    let guest = s.find(node, Kind::Qemu, vmid)?;
    if guest.status != "running" {
        return Err(pve(format!("VM {vmid} is not running")));
    }
    s.agents.get_mut(&vmid).ok_or_else(|| pve("QEMU guest agent is not running"))
}

mod agent;
mod api;
mod backup;
mod controls;
#[cfg(test)]
mod tests;
