//! A new zone, an unchanged resync, adoption by UID and records that follow a CloudPod.

use super::*;

#[tokio::test]
async fn a_new_zone_is_created_with_its_records_marked_as_this_objects_and_ready() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();

    let served = s.dns.zone(ZONE).expect("the zone was created");
    assert_eq!(served.account, z.uid().unwrap(), "the zone carries this object's UID");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"]);
    assert_eq!(s.dns.contents(ZONE, ZONE, "NS"), ["ns1.migrahosting.com."]);
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "zone example.com. is served");
    assert_condition(&s.expect_condition(&z, PROGRAMMED), "True", reasons::SYNCED.name, "rrsets in sync");
    assert_condition(&s.expect_condition(&z, CONFLICT), "False", reasons::OWNED.name, "belongs to this object");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
    let status = s.stored(&z).status.unwrap();
    assert_eq!(status.serial, Some(served.serial));
    assert_eq!(status.records, Some(2), "www A and the apex NS");
    assert!(s.has_event("Normal", reasons::CREATED.name, "created zone example.com. in PowerDNS"));
    assert_eq!(s.stored(&z).metadata.finalizers, Some(vec![mpanel_crds::FINALIZER.to_owned()]));
}

#[tokio::test]
async fn an_unchanged_resync_writes_nothing_to_powerdns_or_the_api() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.clear_calls();
    let (writes, events) = (s.api.writes(), s.api.events().len());
    s.reconcile(&z, 2).await.unwrap();
    assert_eq!(s.dns.writes(), [], "a resync wrote to PowerDNS");
    assert_eq!(s.api.writes(), writes, "a resync wrote to the API: {:?}", s.api.requests());
    assert_eq!(s.api.events().len(), events, "a resync recorded an Event");
    assert!(!s.dns.calls().is_empty(), "the resync did not even look");
}

#[tokio::test]
async fn a_zone_carrying_this_objects_uid_is_adopted_and_converged_without_creating_it() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    let uid = z.uid().unwrap();
    s.dns.insert_zone(
        ZONE,
        &uid,
        vec![
            RrSet::replace("www.example.com.", "A", 300, ["192.0.2.99".to_owned()]),
            RrSet::replace("old.example.com.", "A", 300, ["192.0.2.98".to_owned()]),
        ],
    );
    s.reconcile(&z, 3).await.unwrap();
    let ops: Vec<_> = s.dns.writes().iter().map(|c| c.op).collect();
    assert_eq!(ops, ["patch_rrsets"], "adopting is no create");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"]);
    assert_eq!(s.dns.rrset(ZONE, "old.example.com.", "A"), None, "Sync removes what the spec does not name");
    assert_eq!(s.dns.zone(ZONE).unwrap().account, uid);
    assert_condition(&s.expect_condition(&z, CONFLICT), "False", reasons::OWNED.name, "belongs to this object");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
}

fn cloud_pod(ip: Option<&str>) -> CloudPod {
    let mut pod = json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": "web-1", "namespace": NS},
        "spec": {
            "plan": "pro", "type": "lxc", "template": "100", "hostname": "web-1",
            "resources": {"cores": 2, "memoryMiB": 2048, "diskGiB": 50},
            "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.10/24", "gateway": "203.0.113.1"}},
            "powerState": "Running"
        }
    });
    if let Some(ip) = ip {
        pod["status"] = json!({"ipAddress": ip});
    }
    serde_json::from_value(pod).unwrap()
}

fn following_zone() -> DnsZone {
    zone(json!({"records": [
        {"name": "www", "type": "A", "ttl": 300, "values": ["192.0.2.10"]},
        {"name": "app", "type": "A", "ttl": 300, "cloudPodRef": {"name": "web-1"}}
    ]}))
}

#[tokio::test]
async fn a_record_following_a_cloud_pod_waits_for_its_address_then_serves_it() {
    let s = setup_with(names_of(&[], &[]), &[cloud_pod(None)]);
    let z = s.put(&following_zone());
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.rrset(ZONE, "app.example.com.", "A"), None);
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"], "the other records are served");
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::WAITING_FOR_CLOUD_POD.name, "CloudPod web-1");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Pending));

    // the CloudPod got its address: the same zone, reconciled by a controller whose store has it
    let placed = setup_with(names_of(&[], &[]), &[cloud_pod(Some("203.0.113.7"))]);
    let placed = Setup { h: Harness { api: s.api.clone(), ctx: placed.ctx_on(&s) }, dns: s.dns.clone() };
    placed.reconcile(&z, 1).await.unwrap();
    assert_eq!(placed.dns.contents(ZONE, "app.example.com.", "A"), ["203.0.113.7"]);
    assert_condition(&placed.expect_condition(&z, READY), "True", reasons::READY.name, "is served");
    assert_eq!(placed.phase(&z), Some(DnsZonePhase::Ready));
}
