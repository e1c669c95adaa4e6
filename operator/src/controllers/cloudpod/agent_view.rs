//! The guest as its QEMU guest agent sees it: the OS's pretty name and the addresses of its
//! interfaces (loopback left out). Read on every look at a running VM; absent when no agent answers.

use mpanel_crds::cloudpod::{GuestAddress, GuestAgentStatus};
use serde_json::Value;

use super::OwnedGuest;
use crate::providers::proxmox::{Kind, ProxmoxApi};

/// What the agent of a running QEMU guest reports; None for a container, a stopped guest, or a VM
/// whose agent does not answer.
pub(super) async fn observe<P: ProxmoxApi>(proxmox: &P, owned: &OwnedGuest<'_>) -> Option<GuestAgentStatus> {
    if owned.kind != Kind::Qemu || owned.found.status != "running" {
        return None;
    }
    let (node, vmid) = (&owned.found.node, owned.vmid);
    let os = match proxmox.agent_read(node, vmid, "get-osinfo").await {
        Ok(info) => info.get("pretty-name").and_then(Value::as_str).map(str::to_owned),
        Err(e) => {
            tracing::debug!(vmid, error = %e, "no guest agent answer");
            return None;
        }
    };
    let addresses = match proxmox.agent_read(node, vmid, "network-get-interfaces").await {
        Ok(interfaces) => addresses(&interfaces),
        Err(e) => {
            tracing::debug!(vmid, error = %e, "the guest agent did not list interfaces");
            Vec::new()
        }
    };
    Some(GuestAgentStatus { os, addresses })
}

/// The non-loopback addresses of a `network-get-interfaces` result, as `address/prefix`.
fn addresses(interfaces: &Value) -> Vec<GuestAddress> {
    let mut found = Vec::new();
    for interface in interfaces.as_array().into_iter().flatten() {
        let name = interface.get("name").and_then(Value::as_str).unwrap_or_default();
        for ip in interface.get("ip-addresses").and_then(Value::as_array).into_iter().flatten() {
            let Some(address) = ip.get("ip-address").and_then(Value::as_str) else { continue };
            if address.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback()) {
                continue;
            }
            let address = match ip.get("prefix").and_then(Value::as_u64) {
                Some(prefix) => format!("{address}/{prefix}"),
                None => address.to_owned(),
            };
            found.push(GuestAddress { interface: name.to_owned(), address });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_leave_loopback_out_and_keep_their_prefix() {
        let interfaces = serde_json::json!([
            {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "prefix": 8}, {"ip-address": "::1", "prefix": 128}]},
            {"name": "eth0", "ip-addresses": [
                {"ip-address": "192.0.2.10", "ip-address-type": "ipv4", "prefix": 24},
                {"ip-address": "2001:db8::10", "ip-address-type": "ipv6", "prefix": 64}]}
        ]);
        let got: Vec<String> =
            addresses(&interfaces).into_iter().map(|a| format!("{} {}", a.interface, a.address)).collect();
        assert_eq!(got, ["eth0 192.0.2.10/24", "eth0 2001:db8::10/64"]);
    }
}
