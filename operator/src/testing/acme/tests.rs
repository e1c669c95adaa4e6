use super::*;
use crate::controllers::certificate::keys;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn an_order_goes_from_pending_to_a_real_chain_for_the_csrs_key_and_names() {
    let ca = FakeAcme::new();
    ca.set_validity(30);
    let order = ca.new_order(&names(&["example.com", "*.example.com"])).await.unwrap();
    assert_eq!(order.phase, OrderPhase::Pending);
    let authz: Vec<(&str, bool, bool)> =
        order.authorizations.iter().map(|a| (a.name.as_str(), a.wildcard, a.settled)).collect();
    assert_eq!(authz, [("example.com", false, false), ("example.com", true, false)]);
    assert_eq!(order.txt_values().len(), 2);

    let key = KeyPair::generate().unwrap();
    let csr = keys::csr(&names(&["example.com", "*.example.com"]), &key).unwrap();
    let early = ca.finalize(&order.url, &csr).await.unwrap_err();
    assert!(early.to_string().contains("Order's status (\"pending\") is not acceptable"), "{early}");

    for a in &order.authorizations {
        ca.answer(&order.url, &a.dns01.as_ref().unwrap().url).await.unwrap();
    }
    assert_eq!(ca.phase(&order.url).await.unwrap(), OrderPhase::Ready);
    ca.finalize(&order.url, &csr).await.unwrap();
    assert_eq!(ca.phase(&order.url).await.unwrap(), OrderPhase::Valid);
    let chain = ca.certificate(&order.url).await.unwrap();
    assert!(chain.ends_with(&ca.ca_pem()));
    let issued = keys::inspect(chain.as_bytes(), &key).unwrap();
    assert!(issued.key_matches);
    assert_eq!(issued.dns_names, BTreeSet::from(["example.com".to_owned(), "*.example.com".to_owned()]));
    let days = issued.not_after.duration_since(issued.not_before).as_hours() / 24;
    assert_eq!(days, 30);
    assert_eq!(ca.count("finalize"), 2);
}

#[tokio::test]
async fn a_failed_challenge_makes_the_order_invalid_with_the_cas_words() {
    let ca = FakeAcme::new();
    ca.set_auto_validate(false);
    let order = ca.new_order(&names(&["a.test"])).await.unwrap();
    let challenge = order.authorizations[0].dns01.clone().unwrap();
    ca.answer(&order.url, &challenge.url).await.unwrap();
    let seen = ca.order(&order.url).await.unwrap();
    assert_eq!(seen.phase, OrderPhase::Pending);
    assert!(seen.authorizations[0].dns01.as_ref().unwrap().answered);
    assert!(!seen.authorizations[0].settled);
    ca.fail_challenge(&order.url, "a.test", "No TXT record found at _acme-challenge.a.test");
    let seen = ca.order(&order.url).await.unwrap();
    assert_eq!(seen.phase, OrderPhase::Invalid);
    assert_eq!(seen.problem.as_deref(), Some("a.test: No TXT record found at _acme-challenge.a.test"));
}

#[tokio::test]
async fn injected_errors_are_the_real_error_type() {
    let ca = FakeAcme::new();
    ca.rate_limit_next("new_order", "too many certificates already issued for example.com");
    let e = ca.new_order(&names(&["example.com"])).await.unwrap_err();
    assert_eq!(e.reason(), "AcmeRateLimited");
    assert!(e.to_string().contains("too many certificates already issued for example.com"));
    let order = ca.new_order(&names(&["example.com"])).await.unwrap();
    ca.forget_order(&order.url);
    let gone = ca.order(&order.url).await.unwrap_err();
    assert!(gone.is_order_gone(), "{gone}");
    ca.fail_next("phase", "internal error");
    assert_eq!(ca.phase("x").await.unwrap_err().reason(), "AcmeRejected");
    assert_eq!(ca.calls().len(), 4);
}

#[tokio::test]
async fn a_fixed_window_and_manual_issuance_are_honoured() {
    let ca = FakeAcme::new();
    ca.set_auto_issue(false);
    let from = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let to = jiff::Timestamp::from_second(1_800_086_400).unwrap();
    ca.set_validity_window(from, to);
    let order = ca.new_order(&names(&["b.test"])).await.unwrap();
    ca.answer(&order.url, &order.authorizations[0].dns01.as_ref().unwrap().url).await.unwrap();
    let key = KeyPair::generate().unwrap();
    let wrong = keys::csr(&names(&["c.test"]), &key).unwrap();
    assert!(ca.finalize(&order.url, &wrong).await.unwrap_err().to_string().contains("same identifiers"));
    ca.finalize(&order.url, &keys::csr(&names(&["b.test"]), &key).unwrap()).await.unwrap();
    assert_eq!(ca.phase(&order.url).await.unwrap(), OrderPhase::Processing);
    assert!(ca.certificate(&order.url).await.is_err());
    ca.issue(&order.url).unwrap();
    let issued = keys::inspect(ca.certificate(&order.url).await.unwrap().as_bytes(), &key).unwrap();
    assert_eq!((issued.not_before, issued.not_after), (from, to));
    assert_eq!(ca.orders()[0].csr_names.as_deref(), Some(&names(&["b.test"])[..]));

    // issued by the controllers' clock, for the days set
    let clock = Clock::fixed(from);
    ca.set_clock(clock.clone());
    ca.set_auto_issue(true);
    ca.set_validity(10);
    clock.advance(jiff::SignedDuration::from_hours(1));
    let order = ca.new_order(&names(&["b.test"])).await.unwrap();
    ca.answer(&order.url, &order.authorizations[0].dns01.as_ref().unwrap().url).await.unwrap();
    ca.finalize(&order.url, &keys::csr(&names(&["b.test"]), &key).unwrap()).await.unwrap();
    let issued = keys::inspect(ca.certificate(&order.url).await.unwrap().as_bytes(), &key).unwrap();
    let hour = from + jiff::SignedDuration::from_hours(1);
    assert_eq!((issued.not_before, issued.not_after), (hour, hour + jiff::SignedDuration::from_hours(240)));
}
