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

impl FakeProxmox {
    /// An empty cluster: no node, no guest, no storage; tasks run until finished.
    pub fn new() -> Self {
        Self::default()
    }

    /// The testbed's cluster: pve1 (64 GiB, 48 used) and pve2 (64 GiB, 16 used), LXC template 100
    /// `tmpl-debian` (8 GiB) and QEMU template 9000 `tmpl-qemu` (10 GiB) on pve1, backup storage
    /// `backups`.
    pub fn testbed() -> Self {
        let fake = Self::new();
        const GIB: u64 = 1 << 30;
        fake.add_node("pve1", 64 * GIB, 48 * GIB);
        fake.add_node("pve2", 64 * GIB, 16 * GIB);
        fake.insert_guest(FakeGuest::template(100, "pve1", Kind::Lxc, "tmpl-debian", 8));
        fake.insert_guest(FakeGuest::template(9000, "pve1", Kind::Qemu, "tmpl-qemu", 10));
        fake.add_storage("backups");
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Dates archives by `clock` (the controllers' injectable clock) instead of the system's.
    pub fn set_clock(&self, clock: Clock) {
        self.lock().clock = Some(clock);
    }

    /// Adds an online node with `maxmem` bytes of which `mem` are used.
    pub fn add_node(&self, node: &str, maxmem: u64, mem: u64) {
        self.lock().nodes.push(Node { node: node.to_owned(), status: "online".into(), maxmem, mem });
    }

    /// Sets a node's status (`online`, `offline`).
    pub fn set_node_status(&self, node: &str, status: &str) {
        for n in self.lock().nodes.iter_mut().filter(|n| n.node == node) {
            n.status = status.to_owned();
        }
    }

    /// Puts a guest in the cluster out of band (made by hand or by another owner), replacing any
    /// at its VMID.
    pub fn insert_guest(&self, guest: FakeGuest) {
        self.lock().guests.insert(guest.vmid, guest);
    }

    /// The guest at `vmid` as it is now.
    pub fn guest(&self, vmid: u32) -> Option<FakeGuest> {
        self.lock().guests.get(&vmid).cloned()
    }

    /// Removes the guest at `vmid` out of band (deleted by hand).
    pub fn remove_guest(&self, vmid: u32) -> Option<FakeGuest> {
        self.lock().guests.remove(&vmid)
    }

    /// Changes the guest at `vmid` out of band (drift, a power change by hand); false when absent.
    pub fn edit_guest(&self, vmid: u32, change: impl FnOnce(&mut FakeGuest)) -> bool {
        self.lock().guests.get_mut(&vmid).map(change).is_some()
    }

    /// Whether tasks end (well) as soon as they start, as the testbed's fakepve does.
    pub fn set_auto_complete(&self, on: bool) {
        self.lock().auto_complete = on;
    }

    /// Ends the running task `upid`: `Ok(())` applies its effect, `Err(message)` fails it with
    /// that exit status verbatim. False when no such task runs.
    pub fn finish_task(&self, upid: &str, outcome: Result<(), &str>) -> bool {
        self.lock().finish(upid, outcome)
    }

    /// Ends every running task well; returns how many.
    pub fn finish_all_tasks(&self) -> usize {
        let mut state = self.lock();
        let running: Vec<String> =
            state.tasks.values().filter(|(t, _)| t.exitstatus.is_none()).map(|(t, _)| t.upid.clone()).collect();
        running.iter().filter(|upid| state.finish(upid, Ok(()))).count()
    }

    /// Every task started, oldest first (by UPID counter).
    pub fn tasks(&self) -> Vec<FakeTask> {
        let mut tasks: Vec<FakeTask> = self.lock().tasks.values().map(|(t, _)| t.clone()).collect();
        tasks.sort_by_key(|t| t.upid.split(':').nth(2).map(str::to_owned));
        tasks
    }

    /// The UPIDs of the tasks still running, oldest first.
    pub fn running_tasks(&self) -> Vec<String> {
        self.tasks().into_iter().filter(|t| t.exitstatus.is_none()).map(|t| t.upid).collect()
    }

    /// Every call made, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.log.all()
    }

    /// The calls that change something (clone, set_config, resize, power, destroy, vzdump,
    /// delete_backup, restore, agent_file_write, agent_exec), oldest first.
    pub fn writes(&self) -> Vec<Call> {
        self.lock().calls.log.of(&WRITES)
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.lock().calls.log.count(op)
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.lock().calls.log.clear();
    }

    /// The next call of `op` fails with Proxmox's 500 and `message` verbatim (queued: call again
    /// for the one after). `op` is the real client's operation name: list_nodes, list_guests,
    /// clone, task_status, get_config, set_config, resize, power, get_status, destroy, agent,
    /// vzdump, list_backups, delete_backup, restore, agent_file_write, agent_exec, agent_exec_status.
    pub fn fail_next(&self, op: &str, message: &str) {
        self.fail_next_error(op, pve(message));
    }

    /// The next call of `op` fails with `error` (e.g. `Unreachable`, or a 403).
    pub fn fail_next_error(&self, op: &str, error: ProxmoxError) {
        self.lock().calls.failures.push(op, error);
    }

    /// Sets (`Some`) or removes (`None`: Proxmox answers "QEMU guest agent is not running") the
    /// guest agent of VM `vmid`.
    pub fn set_agent(&self, vmid: u32, agent: Option<FakeAgent>) {
        let mut state = self.lock();
        match agent {
            Some(a) => state.agents.insert(vmid, a),
            None => state.agents.remove(&vmid),
        };
    }

    /// The guest agent of VM `vmid` as it is now (files written, commands run).
    pub fn agent(&self, vmid: u32) -> Option<FakeAgent> {
        self.lock().agents.get(&vmid).cloned()
    }

    /// Adds a storage that holds backups.
    pub fn add_storage(&self, storage: &str) {
        self.lock().storages.entry(storage.to_owned()).or_default();
    }

    /// Puts an archive into `storage` out of band (another policy's, or by hand); a restore from
    /// it brings back `config`.
    pub fn add_backup(&self, storage: &str, volume: BackupVolume, config: BTreeMap<String, Value>) {
        let kind = parse_archive(&volume.volid).map_or(Kind::Lxc, |(_, k, _)| k);
        self.lock().storages.entry(storage.to_owned()).or_default().push(Archive { volume, kind, config });
    }

    /// The archives in `storage`, oldest first.
    pub fn archives(&self, storage: &str) -> Vec<BackupVolume> {
        self.lock().storages.get(storage).map(|a| a.iter().map(|a| a.volume.clone()).collect()).unwrap_or_default()
    }

    /// Runs `f` on the state after recording the call and taking any injected failure.
    fn call<T>(
        &self,
        op: &'static str,
        node: &str,
        vmid: Option<u32>,
        params: BTreeMap<String, String>,
        f: impl FnOnce(&mut State) -> Result<T, ProxmoxError>,
    ) -> Result<T, ProxmoxError> {
        let mut state = self.lock();
        state.calls.begin(Call { op, node: node.to_owned(), vmid, params })?;
        f(&mut state)
    }
}

impl ProxmoxApi for FakeProxmox {
    async fn nodes(&self) -> Result<Vec<Node>, ProxmoxError> {
        self.call("list_nodes", "", None, BTreeMap::new(), |s| Ok(s.nodes.clone()))
    }

    async fn guests(&self) -> Result<Vec<Guest>, ProxmoxError> {
        self.call("list_guests", "", None, BTreeMap::new(), |s| Ok(s.guests.values().map(FakeGuest::listed).collect()))
    }

    async fn clone_guest(
        &self,
        node: &str,
        kind: Kind,
        source: u32,
        newid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<String, ProxmoxError> {
        self.call("clone", node, Some(newid), clone_params(params, newid), |s| {
            let target = params.get("target").cloned().unwrap_or_else(|| node.to_owned());
            if !s.nodes.iter().any(|n| n.node == target) {
                return Err(pve(format!("no such cluster node '{target}'")));
            }
            let template = s.find(node, kind, source)?.clone();
            State::unlocked(&template)?;
            if let Some(taken) = s.guests.get(&newid) {
                return Err(match kind {
                    Kind::Qemu => pve(format!("unable to create VM {newid}: config file already exists")),
                    Kind::Lxc => pve(format!("{} {newid} already exists on node '{}'", what(taken.kind), taken.node)),
                });
            }
            let mut config = template.config.clone();
            config.remove("template");
            config.remove("description");
            config.remove("tags");
            let disk = root_disk(kind);
            if let Some(entry) = template.get(disk) {
                let (storage, rest) = entry.split_once(':').unwrap_or(("local-lvm", entry.as_str()));
                let storage = params.get("storage").map_or(storage, String::as_str);
                let size = rest.split(',').find(|i| i.starts_with("size=")).unwrap_or("size=8G");
                config.insert(disk.into(), Value::from(format!("{storage}:vm-{newid}-disk-0,{size}")));
            }
            for (k, v) in params.iter().filter(|(k, _)| !matches!(k.as_str(), "target" | "storage")) {
                config.insert(k.clone(), config_value(k, v));
            }
            config.insert("lock".into(), Value::from("create"));
            let guest = FakeGuest {
                vmid: newid,
                node: target,
                kind,
                status: "stopped".into(),
                template: false,
                config,
                restored_from: None,
            };
            s.guests.insert(newid, guest);
            s.set_lock(source, Some("clone"));
            let task = match kind {
                Kind::Lxc => "vzclone",
                Kind::Qemu => "qmclone",
            };
            Ok(s.start(node, "clone", task, source, Effect::Clone { source, newid }))
        })
    }

    async fn task(&self, node: &str, upid: &str) -> Result<Task, ProxmoxError> {
        let params = BTreeMap::from([("upid".to_owned(), upid.to_owned())]);
        self.call("task_status", node, None, params, |s| match s.tasks.get(upid) {
            Some((t, _)) => Ok(Task {
                status: if t.exitstatus.is_some() { "stopped" } else { "running" }.into(),
                exitstatus: t.exitstatus.clone(),
            }),
            None => Err(pve(format!("no such task '{upid}'"))),
        })
    }

    async fn config(&self, node: &str, kind: Kind, vmid: u32) -> Result<BTreeMap<String, Value>, ProxmoxError> {
        self.call("get_config", node, Some(vmid), BTreeMap::new(), |s| Ok(s.find(node, kind, vmid)?.config.clone()))
    }

    async fn set_config(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<(), ProxmoxError> {
        self.call("set_config", node, Some(vmid), params.clone(), |s| {
            let guest = s.find_mut(node, kind, vmid)?;
            State::unlocked(guest)?;
            for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "delete") {
                guest.set(k, v);
            }
            for k in params.get("delete").into_iter().flat_map(|d| d.split(',')).filter(|k| !k.is_empty()) {
                guest.config.remove(k.trim());
            }
            Ok(())
        })
    }

    async fn resize(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Option<String>, ProxmoxError> {
        let params = BTreeMap::from([("disk".to_owned(), disk.to_owned()), ("size".to_owned(), size.to_owned())]);
        self.call("resize", node, Some(vmid), params, |s| {
            let guest = s.find(node, kind, vmid)?;
            State::unlocked(guest)?;
            let Some(entry) = guest.get(disk) else { return Err(pve(format!("disk '{disk}' does not exist"))) };
            let current = entry_gib(&entry).unwrap_or(0);
            let asked = size_gib(size).ok_or_else(|| pve(format!("unable to parse size '{size}'")))?;
            let new = if size.starts_with('+') { current + asked } else { asked };
            if new < current {
                return Err(pve("shrinking disks is not supported"));
            }
            match kind {
                // a VM's disk grows within the request
                Kind::Qemu => {
                    let guest = s.find_mut(node, kind, vmid)?;
                    guest.set(disk, &with_size(&entry, new));
                    Ok(None)
                }
                Kind::Lxc => {
                    let effect = Effect::Resize { vmid, disk: disk.to_owned(), gib: new };
                    Ok(Some(s.start(node, "resize", "resize", vmid, effect)))
                }
            }
        })
    }

    async fn power(&self, node: &str, kind: Kind, vmid: u32, action: &str) -> Result<String, ProxmoxError> {
        let params = BTreeMap::from([("action".to_owned(), action.to_owned())]);
        self.call("power", node, Some(vmid), params, |s| {
            let guest = s.find(node, kind, vmid)?;
            let running = guest.status == "running";
            let who = format!("{} {vmid}", what(kind));
            match action {
                "start" if running => return Err(pve(format!("{who} already running"))),
                "start" if guest.template => {
                    return Err(pve(format!("you can't start a {} if it's a template", what(kind))));
                }
                "start" => State::unlocked(guest)?,
                "stop" | "shutdown" | "reboot" if !running => return Err(pve(format!("{who} not running"))),
                "stop" | "shutdown" | "reboot" => {}
                other => {
                    return Err(ProxmoxError::Rejected {
                        status: 501,
                        message: format!(
                            "Method 'POST /nodes/{node}/{}/{vmid}/status/{other}' not implemented",
                            kind.path()
                        ),
                    });
                }
            }
            let task = match (kind, action) {
                (Kind::Lxc, a) => format!("vz{a}"),
                (Kind::Qemu, a) => format!("qm{a}"),
            };
            Ok(s.start(node, "power", &task, vmid, Effect::Power { vmid, action: action.to_owned() }))
        })
    }

    async fn power_state(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        self.call("get_status", node, Some(vmid), BTreeMap::new(), |s| Ok(s.find(node, kind, vmid)?.status.clone()))
    }

    async fn destroy(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        self.call("destroy", node, Some(vmid), BTreeMap::new(), |s| {
            let guest = s.find(node, kind, vmid)?;
            if guest.status == "running" {
                return Err(pve(format!("{} {vmid} is running - destroy failed", what(kind))));
            }
            State::unlocked(guest)?;
            s.set_lock(vmid, Some("destroyed"));
            let task = match kind {
                Kind::Lxc => "vzdestroy",
                Kind::Qemu => "qmdestroy",
            };
            Ok(s.start(node, "destroy", task, vmid, Effect::Destroy { vmid }))
        })
    }

    async fn agent_read(&self, node: &str, vmid: u32, command: &str) -> Result<Value, ProxmoxError> {
        let params = BTreeMap::from([("command".to_owned(), command.to_owned())]);
        self.call("agent", node, Some(vmid), params, |s| {
            agent_of(s, node, vmid)?
                .reads
                .get(command)
                .cloned()
                .ok_or_else(|| pve(format!("Agent error: The command {command} has been disabled")))
        })
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

impl BackupApi for FakeProxmox {
    async fn vzdump(&self, node: &str, job: &Vzdump<'_>) -> Result<String, ProxmoxError> {
        let params = BTreeMap::from([
            ("vmid".to_owned(), job.vmid.to_string()),
            ("storage".to_owned(), job.storage.to_owned()),
            ("mode".to_owned(), job.mode.to_owned()),
            ("notes-template".to_owned(), plain_notes(job.notes)),
        ]);
        self.call("vzdump", node, Some(job.vmid), params, |s| {
            if !s.storages.contains_key(job.storage) {
                return Err(pve(format!("storage '{}' does not exist", job.storage)));
            }
            let vmid = job.vmid;
            let effect = Effect::Vzdump {
                vmid,
                node: node.to_owned(),
                storage: job.storage.to_owned(),
                notes: plain_notes(job.notes),
            };
            // the task fails, as in Proxmox, for a guest elsewhere or locked
            let refusal = match s.guests.get(&vmid) {
                Some(g) if g.node != node => Some(format!("guest {vmid} is not on node {node}")),
                Some(g) => g.lock().map(|l| format!("{} is locked ({l})", what(g.kind))),
                None => Some(format!("guest {vmid} is not on node {node}")),
            };
            let upid = s.start_running(node, "vzdump", "vzdump", vmid, effect);
            match refusal {
                Some(message) => {
                    if let Some((task, _)) = s.tasks.get_mut(&upid) {
                        task.exitstatus = Some(message);
                    }
                }
                None => {
                    s.set_lock(vmid, Some("backup"));
                    if s.auto_complete {
                        s.finish(&upid, Ok(()));
                    }
                }
            }
            Ok(upid)
        })
    }

    async fn backups(&self, node: &str, storage: &str, vmid: u32) -> Result<Vec<BackupVolume>, ProxmoxError> {
        let params = BTreeMap::from([("storage".to_owned(), storage.to_owned())]);
        self.call("list_backups", node, Some(vmid), params, |s| {
            let archives = s.storages.get(storage).ok_or_else(|| pve(format!("storage '{storage}' does not exist")))?;
            Ok(archives
                .iter()
                .map(|a| a.volume.clone())
                .filter(|v| v.vmid == Some(vmid) && parse_archive(&v.volid).is_some_and(|(_, _, id)| id == vmid))
                .collect())
        })
    }

    async fn delete_volume(&self, node: &str, storage: &str, volid: &str) -> Result<Option<String>, ProxmoxError> {
        let params =
            BTreeMap::from([("storage".to_owned(), storage.to_owned()), ("volid".to_owned(), volid.to_owned())]);
        self.call("delete_backup", node, None, params, |s| {
            let archives = s.storages.get(storage).ok_or_else(|| pve(format!("storage '{storage}' does not exist")))?;
            if !archives.iter().any(|a| a.volume.volid == volid) {
                return Err(pve(format!("volume '{volid}' does not exist")));
            }
            let vmid = parse_archive(volid).map_or(0, |(_, _, id)| id);
            let effect = Effect::DeleteVolume { storage: storage.to_owned(), volid: volid.to_owned() };
            Ok(Some(s.start(node, "delete_backup", "imgdel", vmid, effect)))
        })
    }

    async fn restore(&self, node: &str, job: &Restore<'_>) -> Result<String, ProxmoxError> {
        let mut params = BTreeMap::from([
            ("vmid".to_owned(), job.vmid.to_string()),
            ("force".to_owned(), "1".to_owned()),
            ("archive".to_owned(), job.archive.to_owned()),
        ]);
        if let Some(storage) = job.storage {
            params.insert("storage".into(), storage.to_owned());
        }
        self.call("restore", node, Some(job.vmid), params, |s| {
            let vmid = job.vmid;
            let archive = s.storages.values().flatten().find(|a| a.volume.volid == job.archive);
            let Some(archive_kind) = archive.map(|a| a.kind) else {
                return Err(pve(format!("volume '{}' does not exist", job.archive)));
            };
            if archive_kind != job.kind {
                return Err(pve(format!("{} is not a {} backup", job.archive, job.kind.path())));
            }
            let guest = s.find(node, job.kind, vmid)?;
            if guest.status == "running" {
                return Err(pve(match job.kind {
                    Kind::Qemu => format!("unable to restore VM {vmid} - VM is running"),
                    Kind::Lxc => "can't overwrite running container".to_owned(),
                }));
            }
            State::unlocked(guest)?;
            s.set_lock(vmid, Some("create"));
            let effect =
                Effect::Restore { vmid, archive: job.archive.to_owned(), storage: job.storage.map(str::to_owned) };
            let task = match job.kind {
                Kind::Lxc => "vzrestore",
                Kind::Qemu => "qmrestore",
            };
            Ok(s.start(node, "restore", task, vmid, effect))
        })
    }
}

impl GuestAgent for FakeProxmox {
    async fn file_write(&self, node: &str, vmid: u32, file: &str, content: &str) -> Result<(), AgentError> {
        let params = BTreeMap::from([("file".to_owned(), file.to_owned())]);
        Ok(self.call("agent_file_write", node, Some(vmid), params, |s| {
            agent_of(s, node, vmid)?.files.insert(file.to_owned(), content.to_owned());
            Ok(())
        })?)
    }

    async fn exec(&self, node: &str, vmid: u32, command: &[String]) -> Result<u64, AgentError> {
        let params = BTreeMap::from([("command".to_owned(), command.join(" "))]);
        Ok(self.call("agent_exec", node, Some(vmid), params, |s| {
            s.next_pid += 1;
            let pid = 1000 + s.next_pid;
            let agent = agent_of(s, node, vmid)?;
            agent.ran.push(command.to_vec());
            agent.pids.insert(pid, command.to_vec());
            Ok(pid)
        })?)
    }

    async fn exec_status(&self, node: &str, vmid: u32, pid: u64) -> Result<ExecStatus, AgentError> {
        let params = BTreeMap::from([("pid".to_owned(), pid.to_string())]);
        Ok(self.call("agent_exec_status", node, Some(vmid), params, |s| {
            let agent = agent_of(s, node, vmid)?;
            let argv = agent.pids.get(&pid).ok_or_else(|| pve("Agent error: Invalid parameter 'pid'"))?;
            Ok(agent.exec.get(&argv.join(" ")).cloned().unwrap_or(ExecStatus {
                exited: true,
                exitcode: Some(0),
                signal: None,
                err_data: None,
            }))
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::proxmox::upid_node;
    use crate::providers::proxmox_agent;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn a_clone_runs_until_finished_and_a_taken_vmid_is_refused_in_proxmoxs_words() {
        let pve = FakeProxmox::testbed();
        let upid = pve
            .clone_guest("pve1", Kind::Lxc, 100, 1000, &params(&[("description", "mpanel CloudPod ns/a uid=u1")]))
            .await
            .unwrap();
        assert_eq!(upid_node(&upid), Some("pve1"));
        let task = pve.task("pve1", &upid).await.unwrap();
        assert!(task.running());
        // the template is locked while the clone runs
        assert_eq!(pve.config("pve1", Kind::Lxc, 100).await.unwrap()["lock"], "clone");
        assert!(pve.finish_task(&upid, Ok(())));
        let task = pve.task("pve1", &upid).await.unwrap();
        assert_eq!((task.running(), task.failure()), (false, None));
        let cloned = pve.guest(1000).unwrap();
        assert_eq!(cloned.get("description").as_deref(), Some("mpanel CloudPod ns/a uid=u1"));
        assert_eq!(cloned.get("rootfs").as_deref(), Some("local-lvm:vm-1000-disk-0,size=8G"));
        assert_eq!(cloned.lock(), None);
        assert!(!pve.config("pve1", Kind::Lxc, 100).await.unwrap().contains_key("lock"));

        let taken = pve.clone_guest("pve1", Kind::Lxc, 100, 1000, &BTreeMap::new()).await.unwrap_err();
        assert_eq!(taken.to_string(), "Proxmox answered 500: CT 1000 already exists on node 'pve1'");
        let taken = pve.clone_guest("pve1", Kind::Qemu, 9000, 1000, &BTreeMap::new()).await.unwrap_err();
        assert!(taken.to_string().ends_with("unable to create VM 1000: config file already exists"), "{taken}");
        assert_eq!(pve.count("clone"), 3);
        assert_eq!(pve.writes().len(), 3);
    }

    #[tokio::test]
    async fn a_failed_task_reports_its_error_and_leaves_no_guest() {
        let pve = FakeProxmox::testbed();
        let upid = pve.clone_guest("pve1", Kind::Qemu, 9000, 1001, &BTreeMap::new()).await.unwrap();
        assert!(pve.guest(1001).is_some(), "the guest exists, locked, while cloned");
        pve.finish_task(&upid, Err("storage 'local-lvm' is full"));
        let task = pve.task("pve1", &upid).await.unwrap();
        assert_eq!(task.failure(), Some("storage 'local-lvm' is full"));
        assert!(pve.guest(1001).is_none());
    }

    #[tokio::test]
    async fn config_power_and_destroy_follow_proxmox() {
        let pve = FakeProxmox::testbed();
        pve.set_auto_complete(true);
        pve.insert_guest(FakeGuest::new(1002, "pve2", Kind::Lxc).with("cores", "1").with("tags", "other"));
        assert_eq!(
            pve.config("pve1", Kind::Lxc, 1002).await.unwrap_err().to_string(),
            "Proxmox answered 500: Configuration file 'nodes/pve1/lxc/1002.conf' does not exist"
        );
        pve.set_config("pve2", Kind::Lxc, 1002, &params(&[("cores", "2"), ("delete", "tags")])).await.unwrap();
        let config = pve.config("pve2", Kind::Lxc, 1002).await.unwrap();
        assert_eq!((config["cores"].clone(), config.get("tags")), (Value::from(2), None));
        let start = pve.power("pve2", Kind::Lxc, 1002, "start").await.unwrap();
        assert_eq!(pve.task("pve2", &start).await.unwrap().failure(), None);
        assert_eq!(pve.power_state("pve2", Kind::Lxc, 1002).await.unwrap(), "running");
        let e = pve.destroy("pve2", Kind::Lxc, 1002).await.unwrap_err();
        assert_eq!(e.to_string(), "Proxmox answered 500: CT 1002 is running - destroy failed");
        pve.power("pve2", Kind::Lxc, 1002, "stop").await.unwrap();
        pve.destroy("pve2", Kind::Lxc, 1002).await.unwrap();
        assert!(pve.guest(1002).is_none());
        assert!(pve.guests().await.unwrap().iter().all(|g| g.vmid != 1002));
    }

    #[tokio::test]
    async fn an_injected_failure_carries_its_message_once() {
        let pve = FakeProxmox::testbed();
        pve.fail_next("list_guests", "cluster not ready - no quorum?");
        let e = pve.guests().await.unwrap_err();
        assert!(
            matches!(&e, ProxmoxError::Rejected { status: 500, message } if message == "cluster not ready - no quorum?")
        );
        assert_eq!(pve.guests().await.unwrap().len(), 2);
        pve.fail_next_error("get_config", ProxmoxError::Unreachable("connection refused".into()));
        assert_eq!(pve.config("pve1", Kind::Lxc, 100).await.unwrap_err().reason(), "ProxmoxUnreachable");
        assert_eq!(pve.count("list_guests"), 2);
        assert!(pve.writes().is_empty());
    }

    #[tokio::test]
    async fn a_backup_appears_when_its_task_ends_and_restores_the_config_it_kept() {
        let pve = FakeProxmox::testbed();
        pve.insert_guest(
            FakeGuest::new(1003, "pve1", Kind::Lxc)
                .with("cores", "2")
                .with("rootfs", "ceph-pool:vm-1003-disk-0,size=8G"),
        );
        let at: jiff::Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
        pve.set_clock(Clock::fixed(at));
        let job = Vzdump { vmid: 1003, storage: "backups", mode: "snapshot", notes: "mpanel-backup pod=p policy=q" };
        let upid = pve.vzdump("pve1", &job).await.unwrap();
        assert!(pve.backups("pve1", "backups", 1003).await.unwrap().is_empty(), "not while it runs");
        assert_eq!(pve.guest(1003).unwrap().lock().as_deref(), Some("backup"));
        pve.finish_task(&upid, Ok(()));
        let listed = pve.backups("pve1", "backups", 1003).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].notes.as_deref(), Some("mpanel-backup pod=p policy=q"));
        assert_eq!(parse_archive(&listed[0].volid), Some(("backups", Kind::Lxc, 1003)));
        assert_eq!(listed[0].ctime, at.as_second());
        assert!(listed[0].volid.contains("-1003-2027_01_15-08_00_00."), "{}", listed[0].volid);
        assert!(pve.vzdump("pve1", &Vzdump { storage: "nowhere", ..job.clone() }).await.is_err());

        pve.edit_guest(1003, |g| g.set("cores", "8"));
        pve.set_auto_complete(true);
        let restore = Restore { kind: Kind::Lxc, vmid: 1003, archive: &listed[0].volid, storage: Some("ceph-pool") };
        let upid = pve.restore("pve1", &restore).await.unwrap();
        assert_eq!(pve.task("pve1", &upid).await.unwrap().failure(), None);
        let g = pve.guest(1003).unwrap();
        assert_eq!(
            (g.get("cores").as_deref(), g.restored_from.as_deref()),
            (Some("2"), Some(listed[0].volid.as_str()))
        );

        let deleted = pve.delete_volume("pve1", "backups", &listed[0].volid).await.unwrap().unwrap();
        assert_eq!(pve.task("pve1", &deleted).await.unwrap().failure(), None);
        assert!(pve.archives("backups").is_empty());
    }

    #[tokio::test]
    async fn the_guest_agent_answers_only_for_a_running_vm_with_an_agent() {
        let pve = FakeProxmox::testbed();
        pve.insert_guest(FakeGuest::new(1004, "pve1", Kind::Qemu));
        pve.edit_guest(1004, |g| g.status = "running".into());
        let e = pve.agent_read("pve1", 1004, "get-osinfo").await.unwrap_err();
        assert!(matches!(AgentError::from(e), AgentError::NotRunning(m) if m == "QEMU guest agent is not running"));
        let mut agent = FakeAgent::answering("Debian GNU/Linux 12 (bookworm)", &[("eth0", "192.0.2.10/24")]);
        agent.exec.insert(
            "systemctl reload nginx".into(),
            ExecStatus { exited: true, exitcode: Some(1), signal: None, err_data: Some("no nginx".into()) },
        );
        pve.set_agent(1004, Some(agent));
        let os = pve.agent_read("pve1", 1004, "get-osinfo").await.unwrap();
        assert_eq!(os["pretty-name"], "Debian GNU/Linux 12 (bookworm)");
        pve.file_write("pve1", 1004, "/etc/ssl/a.pem", "PEM").await.unwrap();
        let ok = ["true".to_owned()];
        proxmox_agent::run(&pve, "pve1", 1004, &ok, std::time::Duration::from_secs(1)).await.unwrap();
        let reload: Vec<String> = ["systemctl", "reload", "nginx"].map(str::to_owned).to_vec();
        let e = proxmox_agent::run(&pve, "pve1", 1004, &reload, std::time::Duration::from_secs(1)).await.unwrap_err();
        assert!(e.to_string().contains("exited 1: no nginx"), "{e}");
        let seen = pve.agent(1004).unwrap();
        assert_eq!(seen.files["/etc/ssl/a.pem"], "PEM");
        assert_eq!(seen.ran.len(), 2);
    }
}
