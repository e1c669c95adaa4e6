//! Reconcile-level unit tests of the cloudpod controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use serde_json::json;

use crate::config::{IpPool, ProxmoxAllowed};
use crate::testing;
use crate::testing::harness::{Harness, derefs_to_harness};
use crate::testing::proxmox::{FakeGuest, FakeProxmox};

mod admission;
mod configuration;
mod creation;
mod deletion;
mod failures;
mod modes;
mod scale;

const NS: &str = "customer-acme";
const NAME: &str = "web-1";
/// The first VMID of the range the tests' operator hands out.
const FIRST: u32 = 200;

fn pod_with(spec: serde_json::Value) -> CloudPod {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": spec
    }))
    .expect("a valid CloudPod")
}

/// A running LXC container from `tmpl-debian` with a static address, 2 cores, 1 GiB and the
/// template's own 8 GiB disk.
fn spec() -> serde_json::Value {
    json!({
        "plan": "pro", "type": "lxc", "template": "tmpl-debian", "hostname": NAME,
        "resources": {"cores": 2, "memoryMiB": 1024, "diskGiB": 8},
        "network": {"bridge": "vmbr0", "ipv4": {"address": "198.51.100.10/24", "gateway": "198.51.100.1"}},
        "powerState": "Running"
    })
}

fn state(px: &FakeProxmox) -> State<FakeProxmox> {
    let pool = IpPool {
        first: "203.0.113.100".parse().unwrap(),
        last: "203.0.113.199".parse().unwrap(),
        prefix: 24,
        gateway: "203.0.113.1".parse().unwrap(),
    };
    State {
        proxmox: px.clone(),
        vmids: (FIRST, FIRST + 9),
        storage: None,
        snippets: None,
        ip_pools: BTreeMap::from([("public".to_owned(), pool)]),
        allowed: ProxmoxAllowed {
            bridges: vec!["vmbr0".into()],
            vlans: vec![100],
            templates: vec!["tmpl-debian".into(), "tmpl-qemu".into()],
        },
        reserved_addresses: Mutex::default(),
        plans: BTreeMap::new(),
        cloudpods: testing::store_of::<CloudPod>(&[]),
        reserved: Mutex::default(),
        cloning: Default::default(),
        exit_after_clone: false,
    }
}

struct World {
    h: Harness<State<FakeProxmox>>,
    px: FakeProxmox,
    pod: CloudPod,
}

derefs_to_harness!(World, State<FakeProxmox>);

impl World {
    fn new(pod: CloudPod) -> Self {
        Self::with(pod, |_| {})
    }

    /// As [`World::new`], with the operator configuration changed by `configure`.
    fn with(pod: CloudPod, configure: impl FnOnce(&mut State<FakeProxmox>)) -> Self {
        let px = FakeProxmox::testbed();
        let mut st = state(&px);
        configure(&mut st);
        let h = Harness::new(st);
        let pod = h.put(&pod);
        Self { h, px, pod }
    }

    async fn once(&self) -> Result<Action, Error> {
        self.h.reconcile(&self.pod, 1).await
    }

    /// Reconciles, finishing every task Proxmox runs, until Ready is True (at most `n` looks).
    async fn converge(&self, n: usize) {
        for _ in 0..n {
            let _ = self.once().await;
            self.px.finish_all_tasks();
            if self.condition("Ready").is_some_and(|c| c.status == "True") {
                return;
            }
        }
        panic!("not Ready after {n} reconciles: {:?}", self.stored().status);
    }

    fn stored(&self) -> CloudPod {
        self.h.stored(&self.pod)
    }

    fn status(&self) -> CloudPodStatus {
        self.stored().status.unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> Option<Condition> {
        self.h.condition(&self.pod, type_)
    }

    fn set_annotation(&self, value: Option<&str>) {
        let mut pod = self.stored();
        match value {
            Some(v) => {
                pod.metadata.annotations.get_or_insert_default().insert(RECONCILE_MODE_ANNOTATION.into(), v.into());
            }
            None => {
                pod.metadata.annotations.get_or_insert_default().remove(RECONCILE_MODE_ANNOTATION);
            }
        }
        self.api.put(&pod);
    }

    fn edit_spec(&self, change: impl FnOnce(&mut CloudPod)) {
        let mut pod = self.stored();
        change(&mut pod);
        pod.metadata.generation = None;
        self.api.put(&pod);
    }

    fn warnings(&self) -> Vec<(String, String)> {
        self.api.events().into_iter().filter(|e| e.type_ == "Warning").map(|e| (e.reason, e.note)).collect()
    }

    fn uid(&self) -> String {
        self.stored().metadata.uid.unwrap()
    }
}
