//! Nameservers and settings at the registrar: drift repaired, failures shown verbatim.

use super::*;

#[tokio::test]
async fn nameserver_and_setting_drift_at_the_registrar_is_repaired_and_announced() {
    let w = world(&[]);
    let d = w.put(&register("2027-06-01"));
    w.reconcile(&d, 4).await.unwrap();
    assert_eq!(shown(&w.get("example-com"), "Ready").0, "True");

    // someone changes the delegation and unlocks the domain by hand
    let mut edited = w.registrar.domain("example.com").unwrap();
    edited.nameservers = vec!["ns1.evil.example".into(), "ns2.evil.example".into()];
    edited.locked = false;
    w.registrar.insert_domain("example.com", edited);
    w.registrar.clear_calls();
    // found at the next registrar sync
    w.ctx.clock.advance(past_the_sync());
    w.reconcile(&d, 1).await.unwrap();

    let now = w.registrar.domain("example.com").unwrap();
    assert_eq!(now.nameservers, OUR_NS);
    assert!(now.locked);
    assert_eq!(ops(&w.registrar), vec!["changeNameServers", "domainLock"]);
    let repaired = w.warnings(reasons::DRIFT_REPAIRED.name);
    assert_eq!(repaired.len(), 2, "{repaired:?}");
    assert!(repaired.iter().any(|n| n.contains("ns1.evil.example")), "{repaired:?}");
    assert!(repaired.iter().any(|n| n.contains("lock changed at the registrar")), "{repaired:?}");
    assert_eq!(shown(&w.get("example-com"), "Ready").0, "True");

    // and the next resync finds nothing to do
    w.registrar.clear_calls();
    let writes = w.api.writes();
    w.reconcile(&d, 1).await.unwrap();
    assert_eq!(w.registrar.writes(), vec![]);
    assert_eq!(w.api.writes(), writes);
}

#[tokio::test]
async fn a_failing_setting_is_shown_verbatim_in_its_condition() {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &["ns1.other.example", "ns2.other.example"]);
    info.private = true;
    w.registrar.insert_domain("example.com", info);
    let d = w.put(&with_annotation(register("2027-06-01"), ADOPT_REGISTRATION_ANNOTATION, "true"));
    w.registrar.fail_next("changeNameServers", 280, "DNS modification error");
    w.reconcile(&d, 1).await.unwrap();
    assert!(w.reconcile(&d, 1).await.is_err());

    let d = w.get("example-com");
    let said = "Namesilo changeNameServers: 280 DNS modification error";
    assert_eq!(shown(&d, NAMESERVERS_SYNCED).0, "False");
    assert!(shown(&d, NAMESERVERS_SYNCED).2.contains(said), "{:?}", shown(&d, NAMESERVERS_SYNCED));
    assert!(w.api.events().iter().any(|e| e.type_ == "Warning" && e.note.contains(said)));
    assert_eq!(w.registrar.domain("example.com").unwrap().nameservers[0], "ns1.other.example");
}
