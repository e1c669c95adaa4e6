//! Reconcile modes: observe-only, paused and an invalid mode.

use super::*;

#[tokio::test]
async fn observe_only_reports_a_missing_zone_and_drift_without_writing() {
    let s = setup();
    let z = s.put(&with_mode(zone(json!({})), "ObserveOnly"));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.writes(), [], "ObserveOnly created the zone");
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::ZONE_MISSING.name, "ObserveOnly: not created");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Pending));

    // the zone exists (this object's) but differs: reported, not written
    s.dns.insert_zone(
        ZONE,
        &z.uid().unwrap(),
        vec![RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])],
    );
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.writes(), []);
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.66"]);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::OUT_OF_SYNC.name, "ObserveOnly: not written");

    // and deleting it in ObserveOnly leaves the zone
    s.api.delete::<DnsZone>(NS, NAME);
    s.reconcile(&z, 1).await.unwrap();
    assert!(s.dns.zone(ZONE).is_some(), "ObserveOnly deleted the zone");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn paused_does_nothing_at_all() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    let paused = s.put(&with_mode(s.stored(&z), "Paused"));
    s.dns.clear_calls();
    let writes = s.api.writes();
    s.reconcile(&paused, 2).await.unwrap();
    assert_eq!(s.dns.calls(), [], "Paused looked at PowerDNS");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.66"], "Paused repaired drift");
    assert_eq!(s.api.writes(), writes, "Paused wrote to the API");

    let fresh = setup();
    let z = fresh.put(&with_mode(zone(json!({})), "Paused"));
    fresh.reconcile(&z, 2).await.unwrap();
    assert_eq!(fresh.dns.zone(ZONE), None);
    assert_eq!(fresh.stored(&z).status, None, "Paused wrote a status");
    assert_eq!(fresh.stored(&z).metadata.finalizers, None, "Paused added the finalizer");
}

#[tokio::test]
async fn an_invalid_reconcile_mode_is_reported_and_nothing_is_done() {
    let s = setup();
    let z = s.put(&with_mode(zone(json!({})), "Sometimes"));
    s.reconcile(&z, 2).await.unwrap();
    assert_eq!(s.dns.calls(), []);
    assert_condition(
        &s.expect_condition(&z, READY),
        "False",
        reasons::INVALID_RECONCILE_MODE.name,
        "\"Sometimes\"; expected Reconcile, ObserveOnly or Paused",
    );
}
