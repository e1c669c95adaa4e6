//! What a CloudPod may attach to: bridges, VLANs and templates the operator configuration allows,
//! and a static address no other CloudPod uses and no pool gives out.
//!
//! Two CloudPods asking for one static address are decided by [`Precedence`]: one already
//! configured with it keeps it, else the one created first.

use std::net::Ipv4Addr;

use kube::ResourceExt;
use mpanel_crds::cloudpod::CloudPod;
use mpanel_crds::reasons;

use crate::config::{IpPool, ProxmoxAllowed};
use crate::precedence::Precedence;

/// Why a CloudPod's network or template is refused; never names another tenant's object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bridge {0:?} is not one the operator configuration allows")]
    BridgeNotAllowed(String),
    #[error("VLAN {0} is not one the operator configuration allows")]
    VlanNotAllowed(u16),
    #[error("template {0:?} is not one the operator configuration allows")]
    TemplateNotAllowed(String),
    #[error("address {0} is inside the IPv4 pool {1:?}, which the operator gives out; use the pool or another address")]
    AddressInPool(Ipv4Addr, String),
    #[error("address {0} is already used by another CloudPod")]
    AddressInUse(Ipv4Addr),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BridgeNotAllowed(_) | Self::VlanNotAllowed(_) => reasons::NETWORK_NOT_ALLOWED.name,
            Self::TemplateNotAllowed(_) => reasons::TEMPLATE_NOT_ALLOWED.name,
            Self::AddressInPool(..) => reasons::ADDRESS_IN_POOL.name,
            Self::AddressInUse(_) => reasons::ADDRESS_IN_USE.name,
        }
    }
}

/// The static address of a CloudPod's spec, if it has one.
fn static_address(pod: &CloudPod) -> Option<Ipv4Addr> {
    pod.spec.network.ipv4.address.as_deref()?.split('/').next()?.parse().ok()
}

/// Who asks first for its static address: the operator acted on a CloudPod's request once its
/// status carries the address.
fn precedence(pod: &CloudPod) -> Precedence {
    let given = pod
        .status
        .as_ref()
        .and_then(|s| s.ip_address.as_deref())
        .is_some_and(|ip| static_address(pod).is_some_and(|a| ip.parse::<Ipv4Addr>().is_ok_and(|ip| ip == a)));
    Precedence::of(pod, given)
}

/// Checks `pod` against what `allowed` permits, the pools, and every other CloudPod in `all`.
pub fn check<'a>(
    pod: &CloudPod,
    allowed: &ProxmoxAllowed,
    pools: impl IntoIterator<Item = (&'a String, &'a IpPool)>,
    all: &[std::sync::Arc<CloudPod>],
) -> Result<(), Refusal> {
    let net = &pod.spec.network;
    if !allowed.bridges.is_empty() && !allowed.bridges.contains(&net.bridge) {
        return Err(Refusal::BridgeNotAllowed(net.bridge.clone()));
    }
    if let Some(vlan) = net.vlan
        && !allowed.vlans.is_empty()
        && !allowed.vlans.contains(&vlan)
    {
        return Err(Refusal::VlanNotAllowed(vlan));
    }
    if !allowed.templates.is_empty() && !allowed.templates.contains(&pod.spec.template) {
        return Err(Refusal::TemplateNotAllowed(pod.spec.template.clone()));
    }
    let Some(address) = static_address(pod) else { return Ok(()) };
    for (name, pool) in pools {
        if (pool.first..=pool.last).contains(&address) {
            return Err(Refusal::AddressInPool(address, name.clone()));
        }
    }
    let mine = precedence(pod);
    let used_before = all.iter().filter(|other| other.uid() != pod.uid()).any(|other| {
        let given = other.status.as_ref().and_then(|s| s.ip_address.as_deref()?.parse::<Ipv4Addr>().ok());
        // an address a pool gave out is the other's for good; a static one goes to the first asker
        let holds_pool_address = other.spec.network.ipv4.pool.is_some() && given == Some(address);
        let asks_first = static_address(other) == Some(address) && precedence(other) < mine;
        holds_pool_address || asks_first
    });
    if used_before { Err(Refusal::AddressInUse(address)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn pod(name: &str, uid: &str, second: i64, network: serde_json::Value) -> Arc<CloudPod> {
        let mut pod: CloudPod = serde_json::from_value(serde_json::json!({
            "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
            "metadata": {"name": name, "namespace": "ns", "uid": uid,
                         "creationTimestamp": Timestamp::from_second(1_800_000_000 + second).unwrap().to_string()},
            "spec": {"plan": "mini", "type": "lxc", "template": "tmpl-debian", "hostname": name, "network": network}
        }))
        .unwrap();
        pod.status = None;
        Arc::new(pod)
    }

    fn static_net(address: &str) -> serde_json::Value {
        serde_json::json!({"bridge": "vmbr0", "ipv4": {"address": address, "gateway": "198.51.100.1"}})
    }

    fn pools() -> BTreeMap<String, IpPool> {
        let pool = IpPool {
            first: "203.0.113.100".parse().unwrap(),
            last: "203.0.113.199".parse().unwrap(),
            prefix: 24,
            gateway: "203.0.113.1".parse().unwrap(),
        };
        BTreeMap::from([("public".to_owned(), pool)])
    }

    #[test]
    fn the_first_static_claim_keeps_an_address() {
        let first = pod("a", "u1", 1, static_net("198.51.100.5/24"));
        let second = pod("b", "u2", 2, static_net("198.51.100.5/24"));
        let all = vec![first.clone(), second.clone()];
        let allowed = ProxmoxAllowed::default();
        assert_eq!(check(&first, &allowed, &pools(), &all), Ok(()));
        let refused = check(&second, &allowed, &pools(), &all).unwrap_err();
        assert_eq!(refused.reason(), "AddressInUse");
        assert!(!refused.to_string().contains("u1") && !refused.to_string().contains("\"a\""), "{refused}");

        // one the operator already configured with the address keeps it, whenever it was made
        let mut configured = (*pod("c", "u9", 5, static_net("198.51.100.5/24"))).clone();
        configured.status = Some(serde_json::from_value(serde_json::json!({"ipAddress": "198.51.100.5"})).unwrap());
        let configured = Arc::new(configured);
        let all = vec![first.clone(), configured.clone()];
        assert_eq!(check(&configured, &allowed, &pools(), &all), Ok(()));
        assert_eq!(check(&first, &allowed, &pools(), &all).unwrap_err().reason(), "AddressInUse");
    }

    #[test]
    fn a_static_address_inside_a_pool_or_given_out_by_one_is_refused() {
        let inside = pod("a", "u1", 1, static_net("203.0.113.150/24"));
        assert_eq!(check(&inside, &ProxmoxAllowed::default(), &pools(), &[]).unwrap_err().reason(), "AddressInPool");

        let mut pooled =
            (*pod("p", "u0", 9, serde_json::json!({"bridge": "vmbr0", "ipv4": {"pool": "other"}}))).clone();
        pooled.status = Some(serde_json::from_value(serde_json::json!({"ipAddress": "198.51.100.7"})).unwrap());
        let later_static = pod("s", "u5", 1, static_net("198.51.100.7/24"));
        let all = vec![Arc::new(pooled), later_static.clone()];
        assert_eq!(
            check(&later_static, &ProxmoxAllowed::default(), &pools(), &all).unwrap_err().reason(),
            "AddressInUse"
        );
    }

    #[test]
    fn bridges_vlans_and_templates_are_limited_to_the_configuration() {
        let allowed =
            ProxmoxAllowed { bridges: vec!["vmbr0".into()], vlans: vec![100], templates: vec!["tmpl-debian".into()] };
        let ok = pod("a", "u1", 1, serde_json::json!({"bridge": "vmbr0", "vlan": 100, "ipv4": {"pool": "public"}}));
        assert_eq!(check(&ok, &allowed, &pools(), &[]), Ok(()));
        let bridge = pod("b", "u2", 1, serde_json::json!({"bridge": "vmbr9", "ipv4": {"pool": "public"}}));
        assert_eq!(check(&bridge, &allowed, &pools(), &[]).unwrap_err().reason(), "NetworkNotAllowed");
        let vlan = pod("c", "u3", 1, serde_json::json!({"bridge": "vmbr0", "vlan": 200, "ipv4": {"pool": "public"}}));
        assert_eq!(check(&vlan, &allowed, &pools(), &[]).unwrap_err(), Refusal::VlanNotAllowed(200));
        let mut template = (*ok).clone();
        template.spec.template = "9000".into();
        assert_eq!(check(&template, &allowed, &pools(), &[]).unwrap_err().reason(), "TemplateNotAllowed");
    }
}
