//! Hand edits in PowerDNS put back, and what sync and upsert-only do with extra RRsets.

use super::*;

#[tokio::test]
async fn a_hand_edit_in_powerdns_is_put_back_and_reported_as_drift() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    let serial = s.dns.zone(ZONE).unwrap().serial;
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    s.dns.clear_calls();

    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"]);
    let ops: Vec<_> = s.dns.writes().iter().map(|c| c.op).collect();
    assert_eq!(ops, ["patch_rrsets"]);
    assert!(s.has_event("Warning", reasons::DRIFT_REPAIRED.name, "1 rrsets were changed outside the operator"));
    let status = s.stored(&z).status.unwrap();
    assert_eq!(status.serial, s.dns.zone(ZONE).map(|z| z.serial), "the status shows the serial served now");
    assert!(status.serial > Some(serial + 1), "the repair moved the serial");
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "is served");
}

#[tokio::test]
async fn sync_removes_an_rrset_added_by_hand_while_upsert_only_keeps_it() {
    let stray = [RrSet::replace("hand.example.com.", "A", 300, ["192.0.2.77".to_owned()])];

    let s = setup();
    let z = s.put(&zone(json!({"policy": "Sync"})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.edit_rrsets(ZONE, &stray);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.rrset(ZONE, "hand.example.com.", "A"), None, "Sync kept an rrset the spec does not name");

    let s = setup();
    let z = s.put(&zone(json!({"policy": "UpsertOnly"})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.edit_rrsets(ZONE, &stray);
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.contents(ZONE, "hand.example.com.", "A"), ["192.0.2.77"], "UpsertOnly deleted an rrset");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"], "UpsertOnly still puts back its own");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
}
