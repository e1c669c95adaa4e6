//! The registrar sync: resyncs between syncs leave the registrar alone, each Domain is read once a
//! sync interval, a changed spec is read at once, and drift is found and repaired at a sync.

use super::*;

/// Domains registering `a.com`, `b.com` and `c.com`, each registered and Ready.
async fn three_ready() -> (World, Vec<Domain>) {
    let specs: Vec<Domain> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            domain(
                &format!("{n}-com"),
                json!({"name": format!("{n}.com"), "registration": {"mode": "Register", "years": 1, "lock": true},
                       "nameservers": OUR_NS}),
            )
        })
        .collect();
    let w = world(&[]);
    let mut ready = Vec::new();
    for d in &specs {
        let d = w.put(d);
        w.reconcile(&d, 4).await.unwrap();
        assert_eq!(shown(&w.get(&d.name_any()), "Ready").0, "True");
        ready.push(w.get(&d.name_any()));
    }
    (w, ready)
}

/// The names `getDomainInfo` was asked about, sorted.
fn reads_of(registrar: &FakeNamesilo) -> Vec<String> {
    let mut reads: Vec<String> =
        registrar.calls().into_iter().filter(|c| c.op == "getDomainInfo").map(|c| c.target).collect();
    reads.sort();
    reads
}

#[tokio::test]
async fn resyncs_between_syncs_ask_the_registrar_nothing_and_a_sync_reads_each_domain_once() {
    let (w, domains) = three_ready().await;
    w.registrar.clear_calls();
    let writes = w.api.writes();

    // ten resyncs of each Domain within the sync interval: the registrar is not asked
    for _ in 0..10 {
        w.ctx.clock.advance(SignedDuration::from_secs(300));
        for d in &domains {
            w.reconcile(d, 1).await.unwrap();
        }
    }
    assert_eq!(w.registrar.calls(), vec![], "a resync between syncs asked the registrar");
    assert_eq!(w.api.writes(), writes, "a resync between syncs wrote: {:?}", w.api.requests());
    for d in &domains {
        let d = w.get(&d.name_any());
        assert_eq!(shown(&d, "Ready").0, "True", "the last observation is still shown");
        assert_eq!(d.status.as_ref().unwrap().expires_at.as_deref(), Some("2027-06-01"));
    }

    // past the interval: one read per Domain, then quiet again
    w.ctx.clock.advance(past_the_sync());
    for _ in 0..3 {
        for d in &domains {
            w.reconcile(d, 1).await.unwrap();
        }
    }
    assert_eq!(reads_of(&w.registrar), vec!["a.com", "b.com", "c.com"]);
    assert_eq!(w.registrar.writes(), vec![]);
    assert_eq!(w.api.writes(), writes);
}

#[tokio::test]
async fn a_changed_spec_is_read_and_applied_at_once() {
    let (w, domains) = three_ready().await;
    w.registrar.clear_calls();
    let mut moved = domains[1].clone();
    moved.spec.nameservers = vec!["ns1.second.net".into(), "ns2.second.net".into()];
    moved.metadata.generation = None;
    let moved = w.put(&moved);
    assert_eq!(moved.metadata.generation, Some(2));
    w.reconcile(&moved, 1).await.unwrap();

    assert_eq!(reads_of(&w.registrar), vec!["b.com"]);
    assert_eq!(ops(&w.registrar), vec!["changeNameServers"]);
    assert_eq!(w.registrar.domain("b.com").unwrap().nameservers, ["ns1.second.net", "ns2.second.net"]);
    let d = w.get("b-com");
    assert_eq!(d.status.as_ref().unwrap().nameservers, ["ns1.second.net", "ns2.second.net"]);
    assert_eq!(shown(&d, NAMESERVERS_SYNCED).0, "True");
    assert_eq!(shown(&d, "Ready").0, "True");
    // the other Domains wait for their sync
    for d in [&domains[0], &domains[2]] {
        w.reconcile(d, 1).await.unwrap();
    }
    assert_eq!(reads_of(&w.registrar), vec!["b.com"]);
}

#[tokio::test]
async fn drift_at_the_registrar_is_found_at_the_next_sync_and_repaired() {
    let (w, domains) = three_ready().await;
    // someone unlocks b.com and moves its delegation at the registrar
    let mut edited = w.registrar.domain("b.com").unwrap();
    edited.nameservers = vec!["ns1.evil.example".into(), "ns2.evil.example".into()];
    edited.locked = false;
    w.registrar.insert_domain("b.com", edited);
    w.registrar.clear_calls();

    w.ctx.clock.advance(SignedDuration::from_secs(600));
    w.reconcile(&domains[1], 1).await.unwrap();
    assert_eq!(w.registrar.calls(), vec![], "read before its sync");

    w.ctx.clock.advance(past_the_sync());
    w.reconcile(&domains[1], 1).await.unwrap();
    assert_eq!(reads_of(&w.registrar), vec!["b.com"]);
    assert_eq!(ops(&w.registrar), vec!["changeNameServers", "domainLock"]);
    let now = w.registrar.domain("b.com").unwrap();
    assert_eq!(now.nameservers, OUR_NS);
    assert!(now.locked);
    let repaired = w.warnings(reasons::DRIFT_REPAIRED.name);
    assert_eq!(repaired.len(), 2, "{repaired:?}");
    assert!(repaired.iter().any(|n| n.contains("ns1.evil.example")), "{repaired:?}");
    let d = w.get("b-com");
    assert_eq!(shown(&d, "Ready").0, "True");
    assert_eq!(d.status.as_ref().unwrap().locked, Some(true));

    // the repair is looked at once more, then the schedule is back to the interval
    w.registrar.clear_calls();
    for _ in 0..3 {
        w.reconcile(&domains[1], 1).await.unwrap();
    }
    assert_eq!(reads_of(&w.registrar), vec!["b.com"]);
    assert_eq!(w.registrar.writes(), vec![]);
}

#[tokio::test]
async fn a_domain_let_out_of_observe_only_is_read_at_once() {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &["ns1.other.example", "ns2.other.example"]);
    info.locked = true;
    w.registrar.insert_domain("example.com", info);
    let watched = with_annotation(register("2027-06-01"), ADOPT_REGISTRATION_ANNOTATION, "true");
    let d = w.put(&with_annotation(watched, RECONCILE_MODE_ANNOTATION, "ObserveOnly"));
    w.reconcile(&d, 2).await.unwrap();
    assert_eq!(shown(&w.get("example-com"), NAMESERVERS_SYNCED).1, reasons::OUT_OF_SYNC.name);
    w.registrar.clear_calls();
    w.reconcile(&d, 2).await.unwrap();
    assert_eq!(w.registrar.calls(), vec![], "an ObserveOnly Domain was read between syncs");

    let mut managed = w.get("example-com");
    managed.metadata.annotations.as_mut().unwrap().remove(RECONCILE_MODE_ANNOTATION);
    let managed = w.put(&managed);
    w.reconcile(&managed, 1).await.unwrap();
    assert_eq!(reads_of(&w.registrar), vec!["example.com"]);
    assert_eq!(w.registrar.domain("example.com").unwrap().nameservers, OUR_NS);
    assert_eq!(shown(&w.get("example-com"), "Ready").0, "True");
}
