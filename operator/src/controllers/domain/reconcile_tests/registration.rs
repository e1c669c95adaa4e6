//! Registering a name: once as the spec says, a crash's order settled, adoption granted by staff, names
//! held elsewhere or taken, and the registrar's refusals.

use super::*;

#[tokio::test]
async fn a_new_domain_is_registered_once_as_the_spec_says_and_is_ready() {
    let w = world(&[]);
    let d = w.put(&register("2027-06-01"));
    w.reconcile(&d, 4).await.unwrap();

    let info = w.registrar.domain("example.com").expect("registered");
    assert_eq!(info.nameservers, OUR_NS);
    assert!(info.locked && info.private && !info.auto_renew);
    assert_eq!(info.expires, "2027-06-01");
    assert_eq!(w.registrar.count("registerDomain"), 1);
    assert_eq!(w.registrar.paid().len(), 1, "{:?}", w.registrar.paid());

    let d = w.get("example-com");
    let status = d.status.clone().unwrap();
    assert_eq!(phase_of(&d), Some(DomainPhase::Active));
    assert_eq!(shown(&d, "Ready").0, "True");
    assert_eq!(shown(&d, "Ready").1, reasons::ACTIVE.name);
    assert_eq!(shown(&d, REGISTERED).1, reasons::REGISTERED.name);
    assert_eq!(shown(&d, RENEWED).1, reasons::COVERED.name);
    assert_eq!(status.expires_at.as_deref(), Some("2027-06-01"));
    let order = status.last_order.unwrap();
    assert_eq!(
        (order.operation, order.state, order.amount.as_deref()),
        (OrderOperation::Register, OrderState::Succeeded, Some("10.95"))
    );
    assert_eq!(w.normals(reasons::REGISTERED.name).len(), 1);
    assert!(d.finalizers().iter().any(|f| f == mpanel_crds::FINALIZER));

    // an unchanged resync writes nothing, at the registrar or the API
    w.registrar.clear_calls();
    let writes = w.api.writes();
    w.reconcile(&d, 2).await.unwrap();
    assert_eq!(ops(&w.registrar), Vec::<&str>::new());
    assert_eq!(w.api.writes(), writes, "{:?}", w.api.requests());
}

#[tokio::test]
async fn an_order_left_sent_by_a_crash_is_settled_by_the_account_not_paid_again() {
    let w = world(&[]);
    // the registration went through, but the operator died before recording the answer
    let mut d = register("2027-06-01");
    d.status = Some(DomainStatus {
        phase: Some(DomainPhase::Registering),
        last_order: Some(mpanel_crds::domain::RegistrarOrder {
            operation: OrderOperation::Register,
            years: 1,
            for_paid_until: Some("2027-06-01".into()),
            amount: None,
            state: OrderState::Sent,
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()),
        }),
        ..Default::default()
    });
    let d = w.put(&d);
    let info = w.registrar.registered_info(1, &OUR_NS);
    w.registrar.insert_domain("example.com", info);
    w.reconcile(&d, 4).await.unwrap();

    assert_eq!(w.registrar.paid(), vec![], "paid again after a crash");
    let d = w.get("example-com");
    let status = d.status.clone().unwrap();
    assert_eq!(status.last_order.map(|o| o.state), Some(OrderState::Succeeded));
    assert_eq!(status.adopted, Some(Adoption::Ordered), "recognised as its own order");
    assert_eq!(shown(&d, REGISTERED).0, "True");
    assert_eq!(shown(&d, "Ready").0, "True");
}

#[tokio::test]
async fn a_registration_already_in_the_account_is_adopted_only_when_staff_grant_it() {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &["ns1.other.example", "ns2.other.example"]);
    info.locked = false;
    w.registrar.insert_domain("example.com", info);
    let d = w.put(&register("2027-06-01"));
    w.reconcile(&d, 3).await.unwrap();

    let d = w.get("example-com");
    assert_eq!(shown(&d, REGISTERED).0, "False");
    assert_eq!(shown(&d, REGISTERED).1, reasons::REGISTRATION_NOT_ADOPTED.name);
    assert!(shown(&d, "Ready").2.contains(ADOPT_REGISTRATION_ANNOTATION), "{:?}", shown(&d, "Ready"));
    assert_eq!(phase_of(&d), Some(DomainPhase::Failed));
    assert_eq!(w.warnings(reasons::REGISTRATION_NOT_ADOPTED.name).len(), 1);
    assert_eq!(ops(&w.registrar), Vec::<&str>::new(), "an unadopted registration was changed");
    assert_eq!(d.status.as_ref().unwrap().nameservers, Vec::<String>::new(), "its details are not shown");
    let before = w.registrar.domain("example.com").unwrap();
    assert!(!before.locked && before.nameservers[0] == "ns1.other.example");

    let granted = w.put(&with_annotation(d, ADOPT_REGISTRATION_ANNOTATION, "true"));
    w.reconcile(&granted, 2).await.unwrap();
    let d = w.get("example-com");
    assert_eq!(d.status.as_ref().unwrap().adopted, Some(Adoption::Granted));
    assert_eq!(shown(&d, "Ready").0, "True", "{:?}", d.status);
    let after = w.registrar.domain("example.com").unwrap();
    assert_eq!(after.nameservers, OUR_NS);
    assert!(after.locked);
    assert_eq!(w.registrar.paid(), vec![], "adoption bought something");
}

#[tokio::test]
async fn a_name_held_by_another_namespace_is_refused_and_the_registrar_left_alone() {
    let w = world(&[]);
    let theirs: Domain = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Domain",
        "metadata": {"name": "theirs", "namespace": "customer-other", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"name": "example.com", "registration": {"mode": "Register"}},
        "status": {"adopted": "Granted"},
    }))
    .unwrap();
    w.api.put(&theirs);
    let d = w.put(&register("2027-06-01"));
    w.reconcile(&d, 3).await.unwrap();

    let d = w.get("example-com");
    assert_eq!(
        shown(&d, REGISTERED),
        (
            "False".to_owned(),
            reasons::NAME_HELD_ELSEWHERE.name.to_owned(),
            "example.com is held by another namespace; this Domain leaves the registrar alone".to_owned()
        )
    );
    assert_eq!(phase_of(&d), Some(DomainPhase::Failed));
    assert_eq!(w.warnings(reasons::NAME_HELD_ELSEWHERE.name).len(), 1);
    assert_eq!(w.registrar.calls(), vec![], "the registrar was asked about another namespace's name");
}

#[tokio::test]
async fn a_second_domain_for_the_same_name_in_a_namespace_is_a_conflict_and_acts_not() {
    let first =
        domain("first", json!({"name": "example.com", "registration": {"mode": "Register"}, "nameservers": OUR_NS}));
    let mut first = first;
    first.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
    let second = register("2027-06-01");
    let setup = FakeApiServer::new();
    setup.put(&first);
    setup.put(&second);
    let (first, second): (Domain, Domain) = (setup.get(NS, "first").unwrap(), setup.get(NS, "example-com").unwrap());

    let w = world(&[first.clone(), second.clone()]);
    w.api.put(&first);
    w.api.put(&second);
    w.reconcile(&second, 3).await.unwrap();

    let d = w.get("example-com");
    let (status, reason, message) = shown(&d, CONFLICT);
    assert_eq!((status.as_str(), reason.as_str()), ("True", reasons::CLAIMED_BY_ANOTHER_DOMAIN.name));
    assert!(message.contains("managed by Domain first"), "{message}");
    assert_eq!(shown(&d, "Ready").1, reasons::CONFLICT.name);
    assert_eq!(w.warnings(reasons::CONFLICT.name).len(), 1);
    assert_eq!(w.registrar.calls(), vec![]);
}

#[tokio::test]
async fn a_name_taken_elsewhere_is_reported_unavailable_and_not_bought() {
    let w = world(&[]);
    w.registrar.insert_taken("example.com");
    let d = w.put(&register("2027-06-01"));
    w.reconcile(&d, 3).await.unwrap();

    let d = w.get("example-com");
    assert_eq!(shown(&d, REGISTERED).1, reasons::UNAVAILABLE.name);
    assert_eq!(shown(&d, REGISTERED).2, "example.com is not available for registration");
    assert_eq!(phase_of(&d), Some(DomainPhase::Failed));
    assert_eq!(w.warnings(reasons::UNAVAILABLE.name).len(), 1);
    assert_eq!(w.registrar.paid(), vec![]);
    assert_eq!(w.registrar.balance_cents(), testing::namesilo::START_BALANCE_CENTS);
}

#[tokio::test]
async fn a_namesilo_refusal_is_shown_verbatim_and_the_retry_registers_once() {
    let w = world(&[]);
    w.registrar.fail_next("registerDomain", 119, "Insufficient account funds for requested transaction");
    let d = w.put(&register("2027-06-01"));
    w.reconcile(&d, 1).await.unwrap();
    let failed = w.reconcile(&d, 1).await;
    assert!(failed.is_err(), "a refused order reconciled fine");

    let d = w.get("example-com");
    let said = "Namesilo registerDomain: 119 Insufficient account funds for requested transaction";
    assert_eq!(shown(&d, REGISTERED).0, "False");
    assert!(shown(&d, REGISTERED).2.contains(said), "{:?}", shown(&d, REGISTERED));
    assert!(w.api.events().iter().any(|e| e.type_ == "Warning" && e.note.contains(said)), "{:?}", w.api.events());
    assert_eq!(d.status.as_ref().unwrap().last_order.as_ref().map(|o| o.state), Some(OrderState::Failed));
    assert!(w.registrar.domain("example.com").is_none());

    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(w.registrar.count("registerDomain"), 2, "one refused, one that went through");
    assert!(w.registrar.domain("example.com").is_some());
    assert_eq!(shown(&w.get("example-com"), "Ready").0, "True");
}
