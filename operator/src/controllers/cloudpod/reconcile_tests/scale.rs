//! A cold start of many CloudPods at once: the Proxmox requests it takes, which at Proxmox's rate
//! limit are the time until every CloudPod is Ready.

use super::*;

use std::time::Duration;

use crate::providers::proxmox::{Node, Task};

/// How long the Proxmox stand-in takes to answer: reconciles running at once overlap their
/// requests, as they do against a real one.
const LATENCY: Duration = Duration::from_millis(3);

/// [`FakeProxmox`] answering each request after [`LATENCY`].
#[derive(Clone)]
struct Slow(FakeProxmox);

impl ProxmoxApi for Slow {
    async fn nodes(&self) -> Result<Vec<Node>, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.nodes().await
    }
    async fn guests(&self) -> Result<Vec<Guest>, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.guests().await
    }
    async fn clone_guest(
        &self,
        node: &str,
        kind: Kind,
        source: u32,
        newid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<String, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.clone_guest(node, kind, source, newid, params).await
    }
    async fn task(&self, node: &str, upid: &str) -> Result<Task, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.task(node, upid).await
    }
    async fn config(&self, node: &str, kind: Kind, vmid: u32) -> Result<BTreeMap<String, Value>, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.config(node, kind, vmid).await
    }
    async fn set_config(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<(), ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.set_config(node, kind, vmid, params).await
    }
    async fn resize(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Option<String>, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.resize(node, kind, vmid, disk, size).await
    }
    async fn power(&self, node: &str, kind: Kind, vmid: u32, action: &str) -> Result<String, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.power(node, kind, vmid, action).await
    }
    async fn power_state(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.power_state(node, kind, vmid).await
    }
    async fn destroy(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.destroy(node, kind, vmid).await
    }
    async fn agent_read(&self, node: &str, vmid: u32, command: &str) -> Result<Value, ProxmoxError> {
        tokio::time::sleep(LATENCY).await;
        self.0.agent_read(node, vmid, command).await
    }
}

/// `n` CloudPods made at once, each with an address from the pool and a disk larger than the
/// template's, reconciled together (tasks ending at once, as in the testbed's Proxmox) until all
/// are Ready; what Proxmox was asked, and how many reconciles it took.
async fn cold_start(n: usize) -> (FakeProxmox, Harness<State<Slow>>, Vec<CloudPod>, usize) {
    let px = FakeProxmox::testbed();
    px.set_auto_complete(true);
    let base = state(&px);
    let st = State {
        proxmox: Slow(px.clone()),
        vmids: (FIRST, FIRST + 999),
        storage: base.storage,
        snippets: base.snippets,
        ip_pools: base.ip_pools,
        allowed: base.allowed,
        reserved_addresses: Mutex::default(),
        plans: base.plans,
        cloudpods: base.cloudpods,
        reserved: Mutex::default(),
        cloning: Default::default(),
        exit_after_clone: false,
    };
    let h = Harness::new(st);
    let pods: Vec<CloudPod> = (0..n)
        .map(|i| {
            let mut pod = pod_with(json!({
                "plan": "pro", "type": "lxc", "template": "tmpl-debian", "hostname": format!("p{i}"),
                "resources": {"cores": 2, "memoryMiB": 1024, "diskGiB": 10},
                "network": {"bridge": "vmbr0", "ipv4": {"pool": "public"}},
                "powerState": "Running"
            }));
            pod.metadata.name = Some(format!("p{i}"));
            h.put(&pod)
        })
        .collect();
    let ready =
        |h: &Harness<State<Slow>>, pod: &CloudPod| h.condition(pod, "Ready").is_some_and(|c| c.status == "True");
    let mut reconciles = 0;
    for _ in 0..12 {
        let waiting: Vec<&CloudPod> = pods.iter().filter(|p| !ready(&h, p)).collect();
        if waiting.is_empty() {
            return (px, h, pods, reconciles);
        }
        reconciles += waiting.len();
        futures::future::join_all(waiting.iter().map(|p| h.reconcile(*p, 1))).await;
    }
    let stuck: Vec<_> = pods.iter().filter(|p| !ready(&h, p)).map(|p| h.stored(p).status).collect();
    panic!("not all Ready after 12 rounds: {stuck:?}");
}

/// Twenty CloudPods made at once share their lists of the cluster's guests (far fewer than one
/// per reconcile) and do not read back the configuration of a guest this operator itself just
/// cloned, configured and started: each gets one guest, configured, grown and running, for about
/// nine requests (the clone, its configuration, the disk, the start, their tasks, the template's
/// lock and the nodes) instead of some twenty.
#[tokio::test]
async fn a_cold_start_of_twenty_cloudpods_shares_guest_lists_and_reads_no_config_back() {
    const N: usize = 20;
    let (px, h, pods, reconciles) = cold_start(N).await;
    let mut vmids = BTreeSet::new();
    for pod in &pods {
        let status = h.stored(pod).status.unwrap_or_default();
        assert_eq!(status.phase, Some(CloudPodPhase::Running), "{status:?}");
        let vmid = status.vmid.expect("a VMID");
        assert!(vmids.insert(vmid), "VMID {vmid} twice");
        let guest = px.guest(vmid).expect("its guest");
        assert_eq!((guest.status.as_str(), guest.get("cores").as_deref()), ("running", Some("2")));
        assert!(guest.get("rootfs").unwrap().contains("size=10G"), "{guest:?}");
        assert!(guest.get("tags").unwrap().contains(&guest::tag(&pod.uid().unwrap())), "{guest:?}");
    }
    assert_eq!(px.count("clone"), N, "one guest per CloudPod");
    let calls = px.calls();
    let lists = px.count("list_guests");
    let own_configs =
        calls.iter().filter(|c| c.op == "get_config" && c.vmid.is_some_and(|v| vmids.contains(&v))).count();
    let per_pod = calls.len() as f64 / N as f64;
    eprintln!(
        "{N} CloudPods: {} Proxmox calls ({per_pod:.1} each), {lists} guest lists, {own_configs} config reads of their guests, {reconciles} reconciles",
        calls.len()
    );
    assert!(lists * 4 <= N, "{lists} guest lists for {N} CloudPods");
    assert_eq!(own_configs, 0, "configuration read back from guests this operator made");
    assert!(per_pod < 10.0, "{per_pod:.1} Proxmox calls per CloudPod: {:?}", px.count("task_status"));
    assert!(reconciles <= 5 * N, "{reconciles} reconciles for {N} CloudPods");

    // a resync afterwards reads each guest's configuration (drift is still found) and changes nothing
    px.clear_calls();
    futures::future::join_all(pods.iter().map(|p| h.reconcile(p, 1))).await;
    assert_eq!(px.count("get_config"), N);
    assert!(px.writes().is_empty(), "{:?}", px.writes());
}
