//! Reconcile-level unit tests of the backup controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::SignedDuration;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use mpanel_crds::backup::{BackupPolicy, BackupPolicyPhase, CloudPodRestore, RestorePhase};
use mpanel_crds::cloudpod::CloudPod;
use serde_json::{Value, json};

use crate::providers::proxmox::Kind;
use crate::providers::proxmox_backup::BackupVolume;
use crate::testing;
use crate::testing::harness::{Harness, derefs_to_harness};
use crate::testing::proxmox::{FakeGuest, FakeProxmox};

mod policy;
mod restore;

const NS: &str = "customer-acme";
const POD: &str = "web-1";
const VMID: u32 = 200;
const STORAGE: &str = "backups";

fn cloud_pod(ns: &str, status: Option<Value>) -> CloudPod {
    let mut manifest = json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": POD, "namespace": ns},
        "spec": {
            "plan": "pro", "type": "lxc", "template": "tmpl-debian", "hostname": POD,
            "network": {"bridge": "vmbr0", "ipv4": {"address": "198.51.100.10/24", "gateway": "198.51.100.1"}},
            "powerState": "Running"
        }
    });
    if let Some(status) = status {
        manifest["status"] = status;
    }
    serde_json::from_value(manifest).expect("a valid CloudPod")
}

/// The CloudPod's guest: a running container at [`VMID`] on pve1.
fn guest() -> FakeGuest {
    let mut g = FakeGuest::new(VMID, "pve1", Kind::Lxc)
        .with("hostname", POD)
        .with("cores", "2")
        .with("rootfs", "local-lvm:vm-200-disk-0,size=8G");
    g.status = "running".into();
    g
}

fn policy(every: &str, keep: u32) -> BackupPolicy {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": "web-1-daily", "namespace": NS},
        "spec": {"cloudPods": [POD], "schedule": {"every": every}, "keep": keep, "storage": STORAGE, "mode": "snapshot"}
    }))
    .expect("a valid BackupPolicy")
}

struct World {
    h: Harness<State<FakeProxmox>>,
    px: FakeProxmox,
}

derefs_to_harness!(World, State<FakeProxmox>);

impl World {
    /// The testbed's Proxmox with the guest, and the CloudPod that owns it (with its guest in the
    /// status unless `with_guest` is false).
    fn new(with_guest: bool) -> Self {
        let px = FakeProxmox::testbed();
        px.insert_guest(guest());
        let h = Harness::new(State { proxmox: Arc::new(px.clone()) });
        let status = with_guest.then(|| json!({"vmid": VMID, "node": "pve1", "phase": "Running"}));
        h.api.put(&cloud_pod(NS, status));
        px.set_clock(h.ctx.clock.clone());
        Self { h, px }
    }

    fn pod(&self) -> CloudPod {
        self.stored_at(NS, POD)
    }

    fn pod_uid(&self) -> String {
        self.pod().uid().unwrap()
    }

    fn advance(&self, minutes: i64) {
        self.ctx.clock.advance(SignedDuration::from_mins(minutes));
    }

    fn warnings(&self) -> Vec<(String, String)> {
        self.api.events().into_iter().filter(|e| e.type_ == "Warning").map(|e| (e.reason, e.note)).collect()
    }

    fn archives(&self) -> Vec<String> {
        self.px.archives(STORAGE).into_iter().map(|v| v.volid).collect()
    }
}
