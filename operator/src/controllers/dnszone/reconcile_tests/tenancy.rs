//! Zones of other accounts and names other namespaces hold: refused, never written, served once freed.

use super::*;

#[tokio::test]
async fn a_zone_of_another_account_is_a_conflict_and_never_written() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    let theirs = RrSet::replace("www.example.com.", "A", 300, ["198.51.100.1".to_owned()]);
    s.dns.insert_zone(ZONE, "uid-of-someone-else", vec![theirs]);
    let before = s.dns.zone(ZONE);
    s.reconcile(&z, 3).await.unwrap();

    assert_eq!(s.dns.writes(), [], "a zone owned elsewhere was written");
    assert_eq!(s.dns.zone(ZONE), before);
    let conflict = s.expect_condition(&z, CONFLICT);
    assert_condition(&conflict, "True", reasons::ZONE_OWNED_ELSEWHERE.name, "is not this object's");
    assert!(!conflict.message.contains("uid-of-someone-else"), "the other owner is shown: {}", conflict.message);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::CONFLICT.name, "left untouched");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Conflict));
    assert!(s.has_event("Warning", reasons::CONFLICT.name, "not this object's"));

    // deleting the object leaves the other account's zone where it is
    s.api.delete::<DnsZone>(NS, NAME);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE), before, "deleting the object removed a zone that was not its own");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
    assert!(s.has_event("Warning", reasons::NOT_OWNER.name, "left in PowerDNS"));
}

/// A zone of namespace `rival` that was served first, as the API and the name index hold it.
async fn holder(s: &Setup, zone_name: &str) -> DnsZone {
    let theirs = s.put(&zone_in("rival", "theirs", json!({"zone": zone_name})));
    s.reconcile(&theirs, 3).await.unwrap();
    let theirs = s.stored(&theirs);
    assert_eq!(theirs.status.as_ref().and_then(|st| st.phase), Some(DnsZonePhase::Ready));
    theirs
}

#[tokio::test]
async fn a_name_another_namespace_holds_is_refused_and_nothing_is_written() {
    for (ours, held) in [("example.com.", "example.com."), ("shop.example.com.", "example.com.")] {
        let s = setup();
        let theirs = holder(&s, held).await;
        let served = s.dns.zone(held);
        let seen = setup_with(names_of(std::slice::from_ref(&theirs), &[]), &[]);
        let ctx = seen.ctx_on(&s);
        let s = s.with_ctx(ctx);
        let z = s.put(&zone(json!({"zone": ours})));
        s.dns.clear_calls();
        s.reconcile(&z, 3).await.unwrap();

        assert_eq!(s.dns.calls(), [], "{ours}: PowerDNS was touched for a name held elsewhere");
        assert_eq!(s.dns.zone(held), served, "{ours}: the holder's zone changed");
        let conflict = s.expect_condition(&z, CONFLICT);
        assert_condition(&conflict, "True", reasons::NAME_HELD_ELSEWHERE.name, "another namespace holds");
        assert!(!conflict.message.contains("rival"), "the holder's namespace is shown: {}", conflict.message);
        assert_condition(
            &s.expect_condition(&z, READY),
            "False",
            reasons::NAME_HELD_ELSEWHERE.name,
            "nothing was written",
        );
        assert_eq!(s.phase(&z), Some(DnsZonePhase::Conflict));
        assert!(s.has_event("Warning", reasons::NAME_HELD_ELSEWHERE.name, "another namespace holds"));
    }
}

#[tokio::test]
async fn a_public_suffix_is_refused() {
    let s = setup();
    let z = s.put(&zone(json!({"zone": "co.uk.", "records": []})));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.calls(), []);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::PUBLIC_SUFFIX.name, "co.uk is a public suffix");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Failed));
}

#[tokio::test]
async fn a_refused_zone_is_served_once_the_other_namespace_lets_the_name_go() {
    let s = setup();
    let theirs = holder(&s, ZONE).await;
    let seen = setup_with(names_of(std::slice::from_ref(&theirs), &[]), &[]);
    let ctx = seen.ctx_on(&s);
    let held = s.with_ctx(ctx);
    let z = held.put(&zone(json!({})));
    held.reconcile(&z, 3).await.unwrap();
    assert_eq!(held.phase(&z), Some(DnsZonePhase::Conflict));

    // the holder is deleted (its zone with it); the index no longer holds its claim
    held.api.delete::<DnsZone>("rival", "theirs");
    held.reconcile(&theirs, 1).await.unwrap();
    assert_eq!(held.dns.zone(ZONE), None);
    let freed = setup_with(names_of(&[], &[]), &[]);
    let ctx = freed.ctx_on(&held);
    let s = held.with_ctx(ctx);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE).map(|served| served.account), z.uid(), "the zone is now this object's");
    assert_condition(&s.expect_condition(&z, CONFLICT), "False", reasons::OWNED.name, "belongs to this object");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
}

#[tokio::test]
async fn a_name_another_operator_granted_counts_before_this_ones_watches_show_it() {
    // theirs was served by another shard's operator; this operator's watches do not hold it yet
    let s = setup();
    holder(&s, "example.com.").await;
    let seen = setup_with(names_of(&[], &[]).with_other_operators(), &[]);
    let ctx = seen.ctx_on(&s);
    let s = s.with_ctx(ctx);
    let z = s.put(&zone(json!({"zone": "shop.example.com."})));
    s.dns.clear_calls();
    s.reconcile(&z, 3).await.unwrap();

    assert_eq!(s.dns.calls(), [], "PowerDNS was touched for a name held elsewhere");
    let conflict = s.expect_condition(&z, CONFLICT);
    assert_condition(&conflict, "True", reasons::NAME_HELD_ELSEWHERE.name, "another namespace holds");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Conflict));
}
