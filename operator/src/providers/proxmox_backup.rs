//! Backups through the Proxmox VE API: vzdump, the archives a storage holds, their deletion, and
//! restores (a VM from a `vma` archive with `archive=`, a container with `restore=1`).
//!
//! Every call that does work returns the task (UPID) at once, as in [`super::proxmox`]; nothing
//! here waits for a task.

use std::collections::BTreeMap;
use std::future::Future;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::proxmox::{Kind, Proxmox, ProxmoxApi, ProxmoxError, json_params};

/// A backup archive as `GET /nodes/{node}/storage/{storage}/content?content=backup` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BackupVolume {
    pub volid: String,
    #[serde(default)]
    pub vmid: Option<u32>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub ctime: i64,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub notes: Option<String>,
}

/// What a vzdump run is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vzdump<'a> {
    pub vmid: u32,
    pub storage: &'a str,
    /// `snapshot`, `suspend` or `stop`.
    pub mode: &'a str,
    /// The archive's notes (vzdump's `notes-template`; `{{` would start a template variable).
    pub notes: &'a str,
}

/// A restore from `archive` onto the guest `vmid` of `kind` on `node`, overwriting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore<'a> {
    pub kind: Kind,
    pub vmid: u32,
    pub archive: &'a str,
    /// Where the restored disks go; their original storage when absent.
    pub storage: Option<&'a str>,
}

/// The volume ID's parts of a vzdump archive: `(storage, kind, vmid)`, or None for any other
/// volume.
pub fn parse_archive(volid: &str) -> Option<(&str, Kind, u32)> {
    let (storage, name) = volid.split_once(':')?;
    let rest = name.strip_prefix("backup/vzdump-")?;
    let (kind, rest) = rest.split_once('-')?;
    let kind = match kind {
        "lxc" => Kind::Lxc,
        "qemu" => Kind::Qemu,
        _ => return None,
    };
    let (vmid, _) = rest.split_once('-')?;
    Some((storage, kind, vmid.parse().ok()?))
}

/// What the backup controllers need from Proxmox VE besides [`ProxmoxApi`].
pub trait BackupApi: ProxmoxApi {
    /// Starts a vzdump of one guest on `node`; returns the task.
    fn vzdump(&self, node: &str, job: &Vzdump<'_>) -> impl Future<Output = Result<String, ProxmoxError>> + Send;
    /// The backup archives of `vmid` in `storage`, as seen from `node`.
    fn backups(
        &self,
        node: &str,
        storage: &str,
        vmid: u32,
    ) -> impl Future<Output = Result<Vec<BackupVolume>, ProxmoxError>> + Send;
    /// Deletes the volume `volid` of `storage`; returns the task.
    fn delete_volume(
        &self,
        node: &str,
        storage: &str,
        volid: &str,
    ) -> impl Future<Output = Result<Option<String>, ProxmoxError>> + Send;
    /// Restores a guest in place from an archive (the guest must be stopped); returns the task.
    fn restore(&self, node: &str, job: &Restore<'_>) -> impl Future<Output = Result<String, ProxmoxError>> + Send;
}

/// `{{`/`}}` start and end vzdump's template variables: a note is written without them.
fn plain_notes(notes: &str) -> String {
    notes.replace("{{", "{ {").replace("}}", "} }").replace('\n', " ")
}

/// A path segment: `/` and the like percent-encoded (a volume ID holds `:` and `/`).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl BackupApi for Proxmox {
    async fn vzdump(&self, node: &str, job: &Vzdump<'_>) -> Result<String, ProxmoxError> {
        let params = BTreeMap::from([
            ("vmid".to_owned(), job.vmid.to_string()),
            ("storage".to_owned(), job.storage.to_owned()),
            ("mode".to_owned(), job.mode.to_owned()),
            ("compress".to_owned(), "zstd".to_owned()),
            ("notes-template".to_owned(), plain_notes(job.notes)),
            // retention is the policy's: the storage's own prune-backups must not remove these
            ("remove".to_owned(), "0".to_owned()),
        ]);
        let path = format!("/nodes/{node}/vzdump");
        Self::upid(self.send("vzdump", Method::POST, &path, Some(json_params(&params))).await?)
    }

    async fn backups(&self, node: &str, storage: &str, vmid: u32) -> Result<Vec<BackupVolume>, ProxmoxError> {
        let path = format!("/nodes/{node}/storage/{}/content?content=backup&vmid={vmid}", segment(storage));
        let all: Vec<BackupVolume> = Self::decode(self.send("list_backups", Method::GET, &path, None).await?)?;
        // the filter is Proxmox's; the volume name says whose archive it is too
        Ok(all
            .into_iter()
            .filter(|v| v.vmid == Some(vmid) && parse_archive(&v.volid).is_some_and(|(_, _, id)| id == vmid))
            .collect())
    }

    async fn delete_volume(&self, node: &str, storage: &str, volid: &str) -> Result<Option<String>, ProxmoxError> {
        let path = format!("/nodes/{node}/storage/{}/content/{}", segment(storage), segment(volid));
        match self.send("delete_backup", Method::DELETE, &path, None).await? {
            Value::Null => Ok(None),
            other => Self::upid(other).map(Some),
        }
    }

    async fn restore(&self, node: &str, job: &Restore<'_>) -> Result<String, ProxmoxError> {
        let mut params =
            BTreeMap::from([("vmid".to_owned(), job.vmid.to_string()), ("force".to_owned(), "1".to_owned())]);
        match job.kind {
            Kind::Qemu => {
                params.insert("archive".into(), job.archive.to_owned());
            }
            Kind::Lxc => {
                params.insert("ostemplate".into(), job.archive.to_owned());
                params.insert("restore".into(), "1".into());
            }
        }
        if let Some(storage) = job.storage {
            params.insert("storage".into(), storage.to_owned());
        }
        let path = format!("/nodes/{node}/{}", job.kind.path());
        Self::upid(self.send("restore", Method::POST, &path, Some(json_params(&params))).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_volid_names_its_storage_kind_and_vmid() {
        assert_eq!(
            parse_archive("backups:backup/vzdump-lxc-100123-2026_12_01-20_05_03.tar.zst"),
            Some(("backups", Kind::Lxc, 100_123))
        );
        assert_eq!(
            parse_archive("nfs:backup/vzdump-qemu-9000-2026_12_01-20_05_03.vma.zst"),
            Some(("nfs", Kind::Qemu, 9000))
        );
        assert_eq!(parse_archive("ceph-pool:vm-100-disk-0"), None);
        assert_eq!(parse_archive("backups:backup/vzdump-openvz-1-2026_12_01-20_05_03.tar"), None);
    }

    #[test]
    fn notes_never_start_a_template_variable() {
        assert_eq!(plain_notes("a {{vmid}}\nb"), "a { {vmid} } b");
        assert_eq!(segment("backups:backup/x.tar.zst"), "backups%3Abackup%2Fx.tar.zst");
    }
}
