//! Reconcile modes: ObserveOnly and Paused, and an annotation that is not a mode.

use super::*;

/// ObserveOnly reports what it would do and orders nothing; Paused does nothing at all; an
/// annotation that is not a mode is reported.
#[tokio::test]
async fn reconcile_modes_observe_pause_and_report_an_invalid_one() {
    let bed = Bed::example().await;
    let mut cert = certificate(NS, "example-com", json!({}));
    cert.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "ObserveOnly".to_owned())]));
    bed.api.put(&cert);
    for _ in 0..3 {
        bed.reconcile(&cert).await.unwrap();
    }
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("False", reasons::OBSERVE_ONLY.name));
    assert!(message.contains("holds no certificate yet (ObserveOnly: not ordered)"), "{message}");
    assert_eq!(shown(bed.ready(&cert)).0, "False");
    assert!(bed.ca.calls().is_empty());
    assert!(bed.dns.writes().is_empty());
    assert!(bed.secret(NS, "example-com-tls").is_none());
    assert!(bed.api.get::<ConfigMap>(BUDGET_NS, BUDGET).is_none());

    let mut paused = certificate(NS, "paused", json!({}));
    paused.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "Paused".to_owned())]));
    bed.api.put(&paused);
    let writes = bed.api.writes();
    assert_eq!(bed.reconcile(&paused).await.unwrap(), Action::await_change());
    assert_eq!(bed.api.writes(), writes, "Paused writes nothing");
    assert!(bed.stored(&paused).status.is_none());
    assert!(bed.stored(&paused).finalizers().is_empty());
    assert!(bed.ca.calls().is_empty());

    let mut odd = certificate(NS, "odd", json!({}));
    odd.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "Sometimes".to_owned())]));
    bed.api.put(&odd);
    bed.reconcile(&odd).await.unwrap();
    let (ready, reason, message) = shown(bed.ready(&odd));
    assert_eq!((ready.as_str(), reason.as_str()), ("False", reasons::INVALID_RECONCILE_MODE.name));
    assert!(message.contains("Sometimes"), "{message}");
    assert!(bed.ca.calls().is_empty());
}

/// ObserveOnly after issuance: a CloudPod without the certificate is reported, nothing written
/// into its guest.
#[tokio::test]
async fn observe_only_reports_a_missing_delivery_and_writes_nothing() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod(NS, "vm-1", 4242));
    running_guest(&bed.pve, 4242);
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let mut observed = bed.stored(&cert);
    observed.spec.deliver_to = serde_json::from_value(json!([{"cloudPod": "vm-1"}])).unwrap();
    observed.metadata.annotations = Some(BTreeMap::from([(MODE.to_owned(), "ObserveOnly".to_owned())]));
    bed.api.put(&observed);
    bed.reconcile(&cert).await.unwrap();
    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("False", reasons::OBSERVE_ONLY.name));
    assert!(message.contains("is not in CloudPod vm-1 (ObserveOnly: nothing written)"), "{message}");
    assert!(bed.pve.calls().is_empty(), "{:?}", bed.pve.calls());
    assert!(bed.pve.agent(4242).unwrap().files.is_empty());
}
