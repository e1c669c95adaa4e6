//! [`BackupApi`] over the shared state: vzdump, archive listing and deletion, restore.

use super::*;

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
