//! External registrations and the reconcile modes: ObserveOnly, Paused and an invalid mode.

use super::*;

#[tokio::test]
async fn external_and_observe_only_buy_nothing_and_say_so() {
    let w = world(&[]);
    let ext = w.put(&domain(
        "ext",
        json!({"name": "example.com", "registration": {"mode": "External"}, "nameservers": OUR_NS}),
    ));
    w.reconcile(&ext, 3).await.unwrap();
    let ext = w.get("ext");
    assert_eq!(shown(&ext, REGISTERED).1, reasons::NOT_IN_ACCOUNT.name);
    assert!(shown(&ext, REGISTERED).2.contains("External: nothing is bought"), "{:?}", shown(&ext, REGISTERED));
    assert_eq!(phase_of(&ext), Some(DomainPhase::Pending));

    let w = world(&[]);
    let observed = w.put(&with_annotation(
        domain("obs", json!({"name": "example.org", "registration": {"mode": "Register"}, "nameservers": OUR_NS})),
        RECONCILE_MODE_ANNOTATION,
        "ObserveOnly",
    ));
    w.reconcile(&observed, 3).await.unwrap();
    let observed = w.get("obs");
    assert_eq!(shown(&observed, REGISTERED).1, reasons::NOT_IN_ACCOUNT.name);
    assert!(shown(&observed, REGISTERED).2.contains("ObserveOnly"));
    assert_eq!(w.registrar.writes(), vec![]);
    assert!(w.registrar.domain("example.org").is_none());
}

#[tokio::test]
async fn observe_only_reports_drift_and_a_due_renewal_without_writing() {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &["ns1.other.example", "ns2.other.example"]);
    info.locked = false;
    w.registrar.insert_domain("example.com", info);
    let d = with_annotation(register("2027-11-23"), RECONCILE_MODE_ANNOTATION, "ObserveOnly");
    let d = w.put(&with_annotation(d, ADOPT_REGISTRATION_ANNOTATION, "true"));
    w.reconcile(&d, 3).await.unwrap();

    let d = w.get("example-com");
    assert_eq!(shown(&d, NAMESERVERS_SYNCED).1, reasons::OUT_OF_SYNC.name);
    assert!(shown(&d, NAMESERVERS_SYNCED).2.contains("ns1.other.example"));
    assert_eq!(shown(&d, SETTINGS_SYNCED).1, reasons::OUT_OF_SYNC.name);
    assert!(shown(&d, SETTINGS_SYNCED).2.contains("lock"), "{:?}", shown(&d, SETTINGS_SYNCED));
    assert_eq!(shown(&d, RENEWED).1, reasons::RENEWAL_DUE.name);
    assert_eq!(shown(&d, "Ready").0, "False");
    assert_eq!(w.registrar.writes(), vec![]);
}

#[tokio::test]
async fn paused_does_nothing_and_an_invalid_mode_is_reported() {
    let w = world(&[]);
    let d = w.put(&with_annotation(register("2027-06-01"), RECONCILE_MODE_ANNOTATION, "Paused"));
    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(w.registrar.calls(), vec![]);
    assert_eq!(w.api.writes(), 0, "{:?}", w.api.requests());
    assert!(w.get("example-com").status.is_none());

    let d = w.put(&with_annotation(register("2027-06-01"), RECONCILE_MODE_ANNOTATION, "Sometimes"));
    w.reconcile(&d, 2).await.unwrap();
    let d = w.get("example-com");
    let (status, reason, message) = shown(&d, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", reasons::INVALID_RECONCILE_MODE.name));
    assert!(message.contains("Sometimes"), "{message}");
    assert_eq!(w.registrar.calls(), vec![]);
}
