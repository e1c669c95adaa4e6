//! Issuance and renewal: the Secret made and kept, the order resumed and the names changed.

use super::*;

/// The Certificate is issued into its Secret: a kubernetes.io/tls Secret of the operator whose
/// chain verifies against the CA's root, for the order's key and names; notAfter and renewalTime
/// in the status, one order, no challenge record left and the order's key Secret gone.
#[tokio::test]
async fn a_certificate_is_issued_into_its_secret_and_the_chain_verifies_against_the_ca() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;

    let secret = bed.secret(NS, "example-com-tls").expect("the Secret was written");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(secret.labels().get(CERTIFICATE_LABEL).map(String::as_str), Some("example-com"));
    let uid = bed.stored(&cert).uid().unwrap();
    assert!(secret.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true)));
    let chain = data(&secret, "tls.crt");
    assert!(chain.ends_with(&bed.ca.ca_pem()), "the chain ends with the CA's root");
    verify_chain(&chain, &bed.ca.ca_pem(), "www.example.com", t0() + SignedDuration::from_hours(1));
    let key = keys::load(&data(&secret, "tls.key")).unwrap();
    let issued = keys::inspect(chain.as_bytes(), &key).unwrap();
    assert!(issued.key_matches, "tls.key is the leaf's key");
    assert_eq!(issued.dns_names, ["*.example.com".to_owned(), "example.com".to_owned()].into());

    let status = bed.status(&cert);
    assert_eq!(status.phase, Some(CertificatePhase::Ready));
    assert_eq!(status.not_after.as_ref().map(|t| t.0), Some(t0() + days(90)));
    assert_eq!(status.renewal_time.as_ref().map(|t| t.0), Some(t0() + days(60)), "30 days before the end");
    assert_eq!(status.order_url, None);
    let (ready, reason, message) = shown(bed.ready(&cert));
    assert_eq!((ready.as_str(), reason.as_str()), ("True", reasons::ISSUED.name));
    assert!(message.contains("valid until"), "{message}");
    assert!(bed.events(&cert).iter().any(|e| e.type_ == "Normal" && e.reason == reasons::ISSUED.name));
    assert_eq!(bed.ca.count("new_order"), 1);
    assert_eq!(bed.ca.orders()[0].names, ["example.com", "*.example.com"]);
    assert!(bed.challenge_txt().is_empty(), "the challenge values came out again");
    assert!(bed.secret(NS, "example-com-next-key").is_none(), "the order's key Secret is gone");
}

/// Once issued, a resync changes nothing: no write to the API, PowerDNS or the CA.
#[tokio::test]
async fn an_unchanged_resync_writes_nothing() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();
    let (writes, events) = (bed.api.writes(), bed.api.events().len());
    bed.dns.clear_calls();
    bed.ca.clear_calls();
    for _ in 0..2 {
        let next = bed.reconcile(&cert).await.unwrap();
        assert_eq!(next, bed.on_resync(&cert), "looked at again on the resync");
    }
    assert_eq!(bed.api.writes(), writes, "no write to the API: {:?}", bed.api.requests());
    assert_eq!(bed.api.events().len(), events, "no Event");
    assert!(bed.dns.writes().is_empty(), "{:?}", bed.dns.writes());
    assert!(bed.ca.calls().is_empty(), "{:?}", bed.ca.calls());
}

/// A short-lived certificate (a lifetime one second short of ten days, as CAs issue them, under
/// the default renewBefore of 720h) renews at two thirds of its lifetime, a time that is not a
/// whole second: resyncs real minutes apart still write nothing, and the renewal time shown is the
/// one the operator acts on.
#[tokio::test]
async fn a_short_lived_certificate_is_not_written_again_as_resyncs_go_by() {
    let bed = Bed::example().await;
    let now = bed.ctx.clock.now();
    bed.ca.set_validity_window(now, now + days(10) - SignedDuration::from_secs(1));
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();
    let (writes, events) = (bed.api.writes(), bed.api.events().len());
    bed.dns.clear_calls();
    bed.ca.clear_calls();
    for _ in 0..3 {
        bed.ctx.clock.advance(SignedDuration::from_secs(61));
        let next = bed.reconcile(&cert).await.unwrap();
        assert_eq!(next, bed.on_resync(&cert), "looked at again on the resync");
    }
    assert_eq!(bed.api.writes(), writes, "no write to the API: {:?}", bed.api.requests());
    assert_eq!(bed.api.events().len(), events, "no Event");
    assert!(bed.dns.writes().is_empty(), "{:?}", bed.dns.writes());
    assert!(bed.ca.calls().is_empty(), "{:?}", bed.ca.calls());
    let status = bed.status(&cert);
    let (not_before, not_after) = (status.not_before.unwrap().0, status.not_after.unwrap().0);
    let renewal = status.renewal_time.unwrap().0;
    assert_eq!(renewal.subsec_nanosecond(), 0, "a whole second");
    let lifetime = not_after.duration_since(not_before);
    assert!(
        (not_after.duration_since(renewal) - lifetime / 3).abs() < SignedDuration::from_secs(1),
        "renewed a third of the lifetime before the end: {not_before} {renewal} {not_after}"
    );
}

/// A Secret deleted by hand is issued again; a Secret whose certificate was replaced by hand with
/// one for another key is too.
#[tokio::test]
async fn a_secret_deleted_or_broken_by_hand_is_issued_again() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let first = serial_of(&bed.secret(NS, "example-com-tls").unwrap());

    bed.api.delete::<Secret>(NS, "example-com-tls");
    assert!(bed.secret(NS, "example-com-tls").is_none());
    bed.issue(&cert).await;
    let second = bed.secret(NS, "example-com-tls").expect("written again");
    assert_ne!(serial_of(&second), first, "a new certificate");
    assert_eq!(bed.ca.count("new_order"), 2);

    // another key put in by hand: the certificate no longer matches it
    let mut broken = second.clone();
    let other = keys::generate(&cert.spec.private_key).unwrap();
    broken.data.as_mut().unwrap().insert("tls.key".into(), k8s_openapi::ByteString(other.serialize_pem().into()));
    bed.api.put(&broken);
    bed.reconcile(&cert).await.unwrap();
    let (_, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(reason, reasons::ORDER_PLACED.name);
    assert!(message.contains("does not match the private key"), "{message}");
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 3);
    let third = bed.secret(NS, "example-com-tls").unwrap();
    assert!(
        keys::inspect(data(&third, "tls.crt").as_bytes(), &keys::load(&data(&third, "tls.key")).unwrap())
            .unwrap()
            .key_matches
    );
}

/// Before the renewal time nothing is ordered; past it a new order is placed while the old
/// certificate keeps serving (Ready stays True), and the new one replaces it.
#[tokio::test]
async fn the_certificate_is_renewed_at_its_renewal_time_and_not_before() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let first = serial_of(&bed.secret(NS, "example-com-tls").unwrap());

    bed.ctx.clock.advance(days(60) - SignedDuration::from_hours(1));
    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, bed.on_resync(&cert), "looked at again on the resync");
    assert_eq!(bed.ca.count("new_order"), 1, "not yet");

    bed.ctx.clock.advance(SignedDuration::from_hours(2));
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(bed.ca.count("new_order"), 2, "renewal time passed: a new order");
    let (_, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(reason, reasons::ORDER_PLACED.name);
    assert!(message.contains("renewal time"), "{message}");
    assert_eq!(shown(bed.ready(&cert)).0, "True", "the old certificate still serves");
    assert!(bed.status(&cert).order_url.is_some());

    bed.issue(&cert).await;
    let renewed = bed.secret(NS, "example-com-tls").unwrap();
    assert_ne!(serial_of(&renewed), first);
    let now = t0() + days(60) + SignedDuration::from_hours(1);
    assert_eq!(bed.status(&cert).renewal_time.map(|t| t.0), Some(now + days(60)));
}

/// An order in flight is resumed by a restarted operator from status.orderURL, not ordered again.
#[tokio::test]
async fn an_order_in_flight_is_resumed_not_ordered_again() {
    let mut bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap(); // the finalizer
    bed.reconcile(&cert).await.unwrap();
    let url = bed.status(&cert).order_url.expect("orderURL in the status");
    assert_eq!(bed.ca.orders().len(), 1);
    assert_eq!(bed.status(&cert).phase, Some(CertificatePhase::Issuing));

    bed.h.ctx = bed.restarted();
    bed.ca.clear_calls();
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 0, "not ordered again");
    assert!(bed.ca.calls().iter().all(|c| c.target == url || c.op == "new_order"), "{:?}", bed.ca.calls());
    assert_eq!(bed.ca.orders().len(), 1);
    assert_eq!(bed.ca.orders()[0].chain.as_deref().map(|c| c.ends_with(&bed.ca.ca_pem())), Some(true));
}

/// While PowerDNS's listener does not serve the challenge value yet, the CA is not told to look.
#[tokio::test]
async fn the_ca_is_told_only_once_the_value_is_served() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    bed.listener.set_serving(false);
    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, Action::requeue(POLL));
    assert_eq!(bed.challenge_txt().len(), 2, "apex and wildcard values in one rrset: {:?}", bed.challenge_txt());
    assert_eq!(bed.ca.count("answer"), 0, "not answered while not served");
    let (status, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((status.as_str(), reason.as_str()), ("True", reasons::VALIDATING.name));
    assert!(message.contains("waiting for PowerDNS to serve _acme-challenge.example.com."), "{message}");
    bed.listener.set_serving(true);
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("answer"), 2);
}

/// A change of dnsNames is a new certificate for the new names.
#[tokio::test]
async fn changed_dns_names_are_ordered_again() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let mut changed = bed.stored(&cert);
    changed.spec.dns_names = vec!["example.com".into(), "www.example.com".into()];
    bed.api.put(&changed);
    bed.reconcile(&cert).await.unwrap();
    let (_, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(reason, reasons::ORDER_PLACED.name);
    assert!(message.contains("the certificate's names differ from dnsNames"), "{message}");
    bed.issue(&cert).await;
    let secret = bed.secret(NS, "example-com-tls").unwrap();
    let issued = keys::inspect(data(&secret, "tls.crt").as_bytes(), &keys::load(&data(&secret, "tls.key")).unwrap());
    assert_eq!(issued.unwrap().dns_names, ["example.com".to_owned(), "www.example.com".to_owned()].into());
    assert_eq!(bed.ca.orders()[1].names, ["example.com", "www.example.com"]);
}
