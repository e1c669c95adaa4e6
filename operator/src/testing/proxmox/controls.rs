//! What a test does to the fake cluster (nodes, guests, tasks, failures, archives) and what it reads back.

use super::*;

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

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
    pub(super) fn call<T>(
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
