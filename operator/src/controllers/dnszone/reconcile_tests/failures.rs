//! PowerDNS failures and invalid records, reported and retried.

use super::*;

#[tokio::test]
async fn a_powerdns_failure_is_shown_verbatim_with_a_warning_then_retried() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 1).await.unwrap(); // the finalizer
    s.dns.fail_next("create_zone", "Creation of zone example.com. failed: backend unavailable");
    let err = s.reconcile(&z, 1).await.unwrap_err();
    let reason = err.reason();
    assert_eq!(s.dns.zone(ZONE), None);
    let ready = s.expect_condition(&z, READY);
    assert_condition(
        &ready,
        "False",
        reason,
        "PowerDNS answered 422: Creation of zone example.com. failed: backend unavailable",
    );
    assert_condition(&s.expect_condition(&z, PROGRAMMED), "False", reason, "backend unavailable");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Failed));
    assert!(s.has_event("Warning", reason, "backend unavailable"));

    s.reconcile(&z, 1).await.unwrap();
    assert!(s.dns.zone(ZONE).is_some());
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "is served");

    // a refused PATCH of a later repair is shown the same way
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    s.dns.fail_next("patch_rrsets", "RRset www.example.com. IN A: refused by the backend");
    s.reconcile(&z, 1).await.unwrap_err();
    assert_condition(
        &s.expect_condition(&z, READY),
        "False",
        reason,
        "RRset www.example.com. IN A: refused by the backend",
    );
    // the Event recorder counts a repeated reason as a series of the first Event
    let warnings: Vec<_> = s.api.events().into_iter().filter(|e| e.type_ == "Warning" && e.reason == reason).collect();
    assert_eq!(warnings.iter().map(|e| e.count).max(), Some(2), "{warnings:?}");
}

#[tokio::test]
async fn an_invalid_record_is_reported_and_nothing_is_written() {
    let s = setup();
    let z = s.put(&zone(json!({"records": [{"name": "mx", "type": "MX", "values": ["mail.example.com"]}]})));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.calls(), []);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::INVALID_RECORD.name, "<priority> <host>");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Failed));
}
