//! Deletion policies and a failed delete that keeps the finalizer.

use super::*;

#[tokio::test]
async fn deleting_with_policy_delete_removes_the_zone_and_the_finalizer() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    assert!(s.dns.zone(ZONE).is_some());
    s.api.delete::<DnsZone>(NS, NAME);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE), None, "the zone stayed in PowerDNS");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn deleting_with_policy_orphan_leaves_the_zone_and_removes_the_finalizer() {
    let s = setup();
    let z = s.put(&zone(json!({"deletionPolicy": "Orphan"})));
    s.reconcile(&z, 3).await.unwrap();
    let served = s.dns.zone(ZONE);
    s.api.delete::<DnsZone>(NS, NAME);
    s.dns.clear_calls();
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.writes(), []);
    assert_eq!(s.dns.zone(ZONE), served, "an orphaned zone changed");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn a_failed_delete_in_powerdns_keeps_the_finalizer_until_a_retry_removes_the_zone() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    s.api.delete::<DnsZone>(NS, NAME);
    s.dns.fail_next("delete_zone", "Deleting domain 'example.com.' failed: backend busy");
    let err = s.reconcile(&z, 1).await.unwrap_err();
    assert!(err.to_string().contains("backend busy"), "{err}");
    assert!(s.dns.zone(ZONE).is_some());
    let held = s.api.get::<DnsZone>(NS, NAME).expect("the object went while its zone stayed");
    assert_eq!(held.metadata.finalizers, Some(vec![mpanel_crds::FINALIZER.to_owned()]));

    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE), None);
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}
