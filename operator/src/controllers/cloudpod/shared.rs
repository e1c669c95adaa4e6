//! What the CloudPod reconciles of one process share, so that Proxmox is asked once for what many
//! of them need: one clone per node at a time, one list of the cluster's guests for every
//! reconcile that asks while a list is under way, and the configuration this process itself last
//! left on a guest (so that the reconcile after its own task need not read it back).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::provision::NodeClones;
use crate::fresh_read::FreshRead;
use crate::providers::proxmox::{Guest, ProxmoxError};

/// How long a configuration this process left on a guest is trusted by the reconcile that
/// follows its own task (a resync always reads it again).
const KNOWN_FOR: Duration = Duration::from_secs(300);

/// The configuration this process left on a CloudPod's guest: read by it, or derived from what it
/// cloned and wrote since.
#[derive(Clone, Debug)]
struct Known {
    /// Where the guest is and its power state as this process left it.
    guest: Guest,
    config: BTreeMap<String, Value>,
    at: Instant,
}

#[derive(Default)]
pub struct Shared {
    nodes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<NodeClones>>>>,
    guests: FreshRead<Arc<Vec<Guest>>>,
    known: Mutex<HashMap<String, Known>>,
}

impl Shared {
    /// The clone lock of `node`.
    pub fn node(&self, node: &str) -> Arc<tokio::sync::Mutex<NodeClones>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).entry(node.to_owned()).or_default().clone()
    }

    /// The cluster's guests as listed by a request that started after this call: one request runs
    /// at a time, and every caller that asks while one is under way shares the next.
    pub async fn guests<F, Fut>(&self, list: F) -> Result<Arc<Vec<Guest>>, ProxmoxError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Guest>, ProxmoxError>>,
    {
        self.guests.get(|| async { list().await.map(Arc::new) }).await
    }

    /// The guest (node, power state) and configuration this process last left for `uid` at
    /// `vmid`, if recent.
    pub fn known(&self, uid: &str, vmid: u32) -> Option<(Guest, BTreeMap<String, Value>)> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(uid)
            .filter(|k| k.guest.vmid == vmid && k.at.elapsed() < KNOWN_FOR)
            .map(|k| (k.guest.clone(), k.config.clone()))
    }

    /// Remembers `uid`'s guest and its configuration as read or made by this process.
    pub fn remember(&self, uid: &str, guest: Guest, config: BTreeMap<String, Value>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|_, k| k.at.elapsed() < KNOWN_FOR);
        known.insert(uid.to_owned(), Known { guest, config, at: Instant::now() });
    }

    /// The power state `uid`'s guest at `vmid` has once a start or stop of this process ended
    /// well (a failed task forgets it all).
    pub fn powered(&self, uid: &str, vmid: u32, status: &str) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = known.get_mut(uid).filter(|k| k.guest.vmid == vmid) {
            status.clone_into(&mut k.guest.status);
            k.at = Instant::now();
        }
    }

    /// Applies a config write (`delete` removes keys) to what is known of `uid`'s guest.
    pub fn written(&self, uid: &str, vmid: u32, params: &BTreeMap<String, String>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = known.get_mut(uid).filter(|k| k.guest.vmid == vmid) {
            for (key, value) in params.iter().filter(|(key, _)| key.as_str() != "delete") {
                k.config.insert(key.clone(), Value::from(value.clone()));
            }
            for key in params.get("delete").into_iter().flat_map(|d| d.split(',')) {
                k.config.remove(key.trim());
            }
            k.at = Instant::now();
        }
    }

    /// Forgets what is known of `uid`'s guest (a task of it failed, or it is not this CloudPod's).
    pub fn forget(&self, uid: &str) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_changes_what_is_known_and_another_vmid_is_not_this_one() {
        let shared = Shared::default();
        let guest = Guest {
            vmid: 200,
            node: "pve1".into(),
            kind: crate::providers::proxmox::Kind::Lxc,
            name: "web".into(),
            status: "stopped".into(),
            template: false,
            tags: String::new(),
        };
        let config = BTreeMap::from([("cores".to_owned(), Value::from(1)), ("x".into(), "y".into())]);
        shared.remember("u1", guest.clone(), config);
        shared.written("u1", 200, &BTreeMap::from([("cores".into(), "2".into()), ("delete".into(), "x".into())]));
        shared.powered("u1", 200, "running");
        let (known, config) = shared.known("u1", 200).unwrap();
        assert_eq!((known.node.as_str(), known.status.as_str()), ("pve1", "running"));
        assert_eq!(config, BTreeMap::from([("cores".to_owned(), Value::from("2"))]));
        assert_eq!(shared.known("u1", 201), None);
        shared.forget("u1");
        assert_eq!(shared.known("u1", 200), None);
    }
}
