//! Refused before an order or a write: names and zones of others, a spent budget, an unknown
//! issuer, a Secret the operator did not make.

use super::*;

/// A name no DnsZone of the namespace serves is refused before the budget and the CA.
#[tokio::test]
async fn a_name_no_zone_of_the_namespace_serves_is_not_ordered() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "nobody", json!({"dnsNames": ["www.nobody.test"]}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::NO_ZONE_FOR_NAME.name));
    assert!(message.contains("no DnsZone in this namespace serves www.nobody.test: no order is placed"), "{message}");
    assert!(bed.ca.calls().is_empty());
    assert!(bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).is_none(), "nothing counted");
    assert_eq!(bed.warnings(&cert, reasons::NO_ZONE_FOR_NAME.name).len(), 1);
}

/// Another customer's name: refused without an order, nothing written into their zone, and the
/// holder is not named.
#[tokio::test]
async fn another_namespaces_name_is_refused_without_an_order() {
    let victim = zone("customer-victim", "example-com", "example.com", "zone-uid-victim");
    let bed = Bed::new(vec![victim]).await;
    // the attacker's own DnsZone inside the victim's zone is not granted, and not in PowerDNS
    let inside = new_zone("attacker", "shop", "shop.example.com", "zone-uid-attacker");
    let ctx = bed.context_knowing(&[bed.zones[0].clone(), inside]);
    let cert = certificate("attacker", "steal", json!({"dnsNames": ["shop.example.com", "www.example.com"]}));
    bed.api.put(&cert);
    for _ in 0..3 {
        testing::reconcile_once(&ctx, &bed.api, &cert).await.unwrap();
    }
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "NameHeldElsewhere"));
    assert!(message.contains("www.example.com is in a zone another namespace holds"), "{message}");
    assert!(!message.contains("customer-victim"), "the holder is not named: {message}");
    assert!(bed.ca.calls().is_empty(), "no order");
    assert!(bed.dns.writes().is_empty(), "nothing written into the victim's zone");
    assert!(bed.challenge_txt().is_empty());
    assert!(bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).is_none(), "nothing counted against example.com");
    assert!(bed.secret("attacker", "steal-tls").is_none());
}

/// A spent order budget (the ConfigMap's count) is a condition with when the next order is
/// possible, and no order reaches the CA.
#[tokio::test]
async fn a_spent_order_budget_places_no_order() {
    let bed = Bed::example().await;
    let hour_ago = (t0() - SignedDuration::from_hours(1)).as_second();
    let spent: Vec<String> = (0..BUDGET_LIMIT).map(|i| format!("{}@other", hour_ago + i64::from(i))).collect();
    let budget: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": BUDGET, "namespace": BUDGET_NS},
        "data": {"example.com": spent.join(" ")}
    }))
    .unwrap();
    bed.api.put(&budget);
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::ORDER_BUDGET_EXHAUSTED.name));
    let free_at = Timestamp::from_second(hour_ago).unwrap() + days(7);
    assert!(message.contains("the order budget of example.com is spent (3 orders in 7 days)"), "{message}");
    assert!(message.contains(&format!("next order possible at {free_at}")), "{message}");
    assert_eq!(bed.ca.count("new_order"), 0);
    let kept = bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).unwrap();
    assert_eq!(kept.data.unwrap()["example.com"], spent.join(" "), "not counted");
    assert_eq!(bed.warnings(&cert, reasons::ORDER_BUDGET_EXHAUSTED.name).len(), 1);
}

/// An order is counted in the budget ConfigMap before it is placed.
#[tokio::test]
async fn an_order_is_counted_in_the_budget() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let budget = bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).expect("the budget ConfigMap");
    assert_eq!(budget.data.unwrap()["example.com"], format!("{}@{NS}", t0().as_second()));
}

/// An issuer the configuration does not have: said so, nothing ordered.
#[tokio::test]
async fn an_unknown_issuer_is_reported_and_nothing_is_ordered() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"issuer": "nope"}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, Action::await_change());
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::UNKNOWN_ISSUER.name));
    assert_eq!(message, "issuer \"nope\" is not configured (configured: letsencrypt)");
    assert_eq!(bed.status(&cert).phase, Some(CertificatePhase::Failed));
    assert!(bed.ca.calls().is_empty());
    assert!(bed.secret(NS, "example-com-tls").is_none());
}

/// A Secret of that name the operator did not make is never replaced, and nothing is ordered.
#[tokio::test]
async fn a_secret_not_made_by_the_operator_is_never_replaced() {
    let bed = Bed::example().await;
    let theirs: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "example-com-tls", "namespace": NS},
        "type": "kubernetes.io/tls", "stringData": {"tls.crt": "theirs", "tls.key": "theirs"}
    }))
    .unwrap();
    bed.api.put(&theirs);
    let before = bed.secret(NS, "example-com-tls").unwrap();
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    for _ in 0..3 {
        bed.reconcile(&cert).await.unwrap();
    }
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::SECRET_OWNED_ELSEWHERE.name));
    assert!(message.contains("Secret example-com-tls exists and is not this Certificate's"), "{message}");
    let after = bed.secret(NS, "example-com-tls").unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "not written");
    assert!(bed.ca.calls().is_empty(), "no order");
    assert_eq!(bed.warnings(&cert, reasons::SECRET_OWNED_ELSEWHERE.name).len(), 1, "one Event, not one per try");
}

/// A PowerDNS zone of that name that is not the DnsZone's (another account) is never written into:
/// the order waits with the reason, and the zone keeps its records.
#[tokio::test]
async fn a_powerdns_zone_that_is_not_the_dnszones_is_never_written() {
    let bed = Bed::example().await;
    let theirs = RrSetOf::txt("_acme-challenge.example.com.", "theirs");
    bed.dns.insert_zone("example.com.", "someone-else", vec![theirs]);
    bed.dns.clear_calls();
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let refused = bed.reconcile(&cert).await.unwrap_err();
    assert_eq!(refused.reason(), "ZoneOwnedElsewhere");
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("True", "ZoneOwnedElsewhere"));
    assert!(message.contains("zone example.com. in PowerDNS is not the DnsZone's"), "{message}");
    assert!(!message.contains("someone-else"), "the other account is not shown: {message}");
    assert!(bed.dns.writes().is_empty(), "{:?}", bed.dns.writes());
    assert_eq!(bed.challenge_txt(), ["\"theirs\""]);
    assert_eq!(bed.ca.count("answer"), 0);
    assert!(bed.events(&cert).iter().any(|e| e.type_ == "Warning" && e.reason == "ZoneOwnedElsewhere"));
}

/// TXT rrsets for the tests.
struct RrSetOf;

impl RrSetOf {
    fn txt(name: &str, value: &str) -> crate::providers::powerdns::RrSet {
        crate::providers::powerdns::RrSet::replace(name, "TXT", 60, [format!("\"{value}\"")])
    }
}

/// Reservations asked for at once are decided one after another on one copy of the budget and
/// stored together: exactly the budget is granted, with far fewer writes than reservations, and the
/// reservations of a failed write are not counted while the others of its batch still are.
#[tokio::test]
async fn reservations_asked_for_at_once_grant_exactly_the_budget_in_few_writes() {
    let api = FakeApiServer::new();
    let budget = Budget::new(Api::namespaced(api.client(), BUDGET_NS), BUDGET.to_owned(), 10);
    let holds = |_: &str| None;
    let reserve_all = |names: Vec<Vec<String>>| {
        let (budget, holds) = (&budget, &holds);
        futures::future::join_all(names.into_iter().map(move |n| async move {
            let orderer = budget::Orderer { namespace: NS, sharing: holds };
            budget.reserve(&n, &orderer, t0()).await
        }))
    };
    let counted = |domain: &str| -> usize {
        let map = api.get::<ConfigMap>(BUDGET_NS, BUDGET).expect("the budget ConfigMap");
        map.data.unwrap_or_default().get(domain).map_or(0, |t| t.split_whitespace().count())
    };

    let verdicts = reserve_all((0..30).map(|i| vec![format!("c{i}.example.com")]).collect()).await;
    let granted = verdicts.iter().filter(|v| matches!(v, Ok(budget::Verdict::Granted))).count();
    let refused = verdicts.iter().filter(|v| matches!(v, Ok(budget::Verdict::Exhausted { used: 10, .. }))).count();
    assert_eq!((granted, refused), (10, 20), "{verdicts:?}");
    assert_eq!(counted("example.com"), 10, "every granted order is counted, no other");
    let writes = api.writes();
    assert!(writes <= 3, "30 reservations stored in {writes} writes");

    // the write of a batch fails: its writer gets the error and its reservation is not counted;
    // the others of the batch (queued behind a refused one) are decided again and stored
    api.fail_next("PUT", BUDGET, 500, "etcd is gone");
    let names = std::iter::once(vec!["x.example.com".to_owned()])
        .chain((0..5).map(|i| vec![format!("d{i}.other.test")]))
        .collect();
    let verdicts = reserve_all(names).await;
    assert!(matches!(verdicts[0], Ok(budget::Verdict::Exhausted { .. })), "{verdicts:?}");
    let failed = verdicts.iter().filter(|v| v.is_err()).count();
    let granted = verdicts.iter().filter(|v| matches!(v, Ok(budget::Verdict::Granted))).count();
    assert_eq!((failed, granted), (1, 4), "{verdicts:?}");
    assert_eq!(counted("other.test"), 4, "the failed reservation is not counted");
    assert_eq!(counted("example.com"), 10);
}
