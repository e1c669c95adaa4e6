//! VMIDs and addresses, each handed out to one CloudPod: free in Proxmox or its pool, not in
//! another CloudPod's status, and not handed out by this process to a reconcile that has not
//! written it yet.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use mpanel_crds::cloudpod::CloudPod;

use super::{Context, Step, guest};

/// Reserves a VMID for `pod`: free in Proxmox, not in another CloudPod's status, not handed out by
/// this process to a reconcile that has not written it yet.
pub(super) fn reserve_vmid<P>(
    ctx: &Context<P>,
    store: &Store<CloudPod>,
    guests: &[crate::providers::proxmox::Guest],
) -> Option<u32> {
    let mut reserved = ctx.reserved.lock().unwrap_or_else(|e| e.into_inner());
    let mut taken: BTreeSet<u32> = store.state().iter().filter_map(|p| p.status.as_ref()?.vmid).collect();
    // a reservation is released once a status holds it
    reserved.retain(|id| !taken.contains(id));
    taken.extend(reserved.iter().copied());
    let id = guest::free_vmid(ctx.vmids.0, ctx.vmids.1, guests, &taken)?;
    reserved.insert(id);
    Some(id)
}

/// The guest's address: the spec's static one, or the one its pool gave out (kept in
/// `status.ipAddress`, given out once). Sets `status.ipAddress`.
pub(super) fn address<P>(
    pod: &CloudPod,
    step: &mut Step,
    ctx: &Context<P>,
    store: &Store<CloudPod>,
) -> Result<Option<guest::Ipv4>, String> {
    let v4 = &pod.spec.network.ipv4;
    if let (Some(cidr), Some(gateway)) = (&v4.address, &v4.gateway) {
        step.status.ip_address = cidr.split('/').next().map(str::to_owned);
        return Ok(Some(guest::Ipv4 { cidr: cidr.clone(), gateway: gateway.clone() }));
    }
    let Some(name) = &v4.pool else { return Ok(None) };
    let pool =
        ctx.ip_pools.get(name).ok_or_else(|| format!("IPv4 pool {name:?} is not in the operator configuration"))?;
    if let Some(ip) = &step.status.ip_address {
        return Ok(Some(guest::Ipv4 { cidr: format!("{ip}/{}", pool.prefix), gateway: pool.gateway.to_string() }));
    }
    let mut reserved = ctx.reserved_addresses.lock().unwrap_or_else(|e| e.into_inner());
    let mut taken: BTreeSet<String> = store
        .state()
        .iter()
        .filter(|p| p.uid() != pod.uid())
        .filter_map(|p| p.status.as_ref()?.ip_address.clone())
        .collect();
    reserved.retain(|a| !taken.contains(a));
    taken.extend(reserved.iter().cloned());
    let given = guest::free_address(pool, &taken).ok_or_else(|| format!("IPv4 pool {name:?} has no free address"))?;
    let ip = given.cidr.split('/').next().unwrap_or_default().to_owned();
    reserved.insert(ip.clone());
    step.status.ip_address = Some(ip);
    Ok(Some(given))
}
