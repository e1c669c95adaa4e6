//! Reconcile-level unit tests of the domain controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use mpanel_crds::RECONCILE_MODE_ANNOTATION;
use mpanel_crds::domain::{Adoption, OrderState};
use serde_json::{Value, json};

use crate::testing;
use crate::testing::apiserver::FakeApiServer;
use crate::testing::harness::{Harness, derefs_to_harness, phase_of, shown, with_annotation};
use crate::testing::namesilo::FakeNamesilo;

const NS: &str = "customer-acme";
/// The registrar's today, the same day as the context's clock ([`testing::T0`]).
const TODAY: &str = "2026-06-01";
const OUR_NS: [&str; 2] = ["ns1.migrahosting.com", "ns2.migrahosting.com"];

/// A Domain `name` in [`NS`] with `spec` (registration given in full).
fn domain(name: &str, spec: Value) -> Domain {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Domain",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .expect("a valid Domain")
}

/// A Domain registering `example.com` for a year, delegated to [`OUR_NS`], paid until `paid_until`.
fn register(paid_until: &str) -> Domain {
    domain(
        "example-com",
        json!({"name": "example.com", "registration": {"mode": "Register", "years": 1, "privacy": true, "lock": true},
               "paidUntil": paid_until, "nameservers": OUR_NS}),
    )
}

struct World {
    h: Harness<State<FakeNamesilo>>,
    registrar: FakeNamesilo,
}

/// The fake API and registrar, with the registrar's today aligned to the context's clock.
fn world(domains: &[Domain]) -> World {
    let registrar = FakeNamesilo::new();
    registrar.set_today(TODAY);
    let state = State {
        names: testing::names_of(&[], &[]),
        registrar: registrar.clone(),
        nameservers: OUR_NS.map(String::from).to_vec(),
        zone_defaults: ZoneDefaults::default(),
        domains: testing::store_of(domains),
        exit_after: None,
    };
    World { h: Harness::new(state), registrar }
}

derefs_to_harness!(World, State<FakeNamesilo>);

impl World {
    fn get(&self, name: &str) -> Domain {
        self.stored_at(NS, name)
    }

    fn normals(&self, reason: &str) -> Vec<String> {
        self.events("Normal", reason)
    }
}

fn t0() -> jiff::Timestamp {
    testing::T0.parse().unwrap()
}

fn ops(registrar: &FakeNamesilo) -> Vec<&'static str> {
    registrar.writes().into_iter().map(|c| c.op).collect()
}

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

#[tokio::test]
async fn renewal_reaches_paid_until_once_per_payment_as_time_goes_by() {
    let w = world(&[]);
    // registered today for a year: expiring 2027-06-01, paid until 2027-11-23
    let d = w.put(&register("2027-11-23"));
    w.reconcile(&d, 6).await.unwrap();
    assert_eq!(w.registrar.count("registerDomain"), 1);
    assert_eq!(w.registrar.count("renewDomain"), 1);
    assert_eq!(w.registrar.domain("example.com").unwrap().expires, "2028-06-01");
    let d = w.get("example-com");
    assert_eq!(shown(&d, RENEWED).1, reasons::COVERED.name);
    let order = d.status.as_ref().unwrap().last_order.clone().unwrap();
    assert_eq!(
        (order.operation, order.state, order.for_paid_until.as_deref()),
        (OrderOperation::Renew, OrderState::Succeeded, Some("2027-11-23"))
    );
    assert_eq!(w.normals(reasons::RENEWED.name).len(), 1);

    // a year on, nothing new was paid for: nothing is renewed
    w.ctx.clock.advance(SignedDuration::from_hours(24 * 365));
    w.registrar.set_today("2027-06-01");
    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(w.registrar.count("renewDomain"), 1);
    assert_eq!(phase_of(&w.get("example-com")), Some(DomainPhase::Active));

    // billing pays another year: one more renewal
    let mut paid = w.get("example-com");
    paid.spec.paid_until = Some("2028-11-23".into());
    let paid = w.put(&paid);
    w.reconcile(&paid, 4).await.unwrap();
    assert_eq!(w.registrar.count("renewDomain"), 2);
    assert_eq!(w.registrar.domain("example.com").unwrap().expires, "2029-06-01");
    assert_eq!(shown(&w.get("example-com"), "Ready").0, "True");
}

#[tokio::test]
async fn a_payment_renewed_once_but_still_short_is_not_renewed_twice() {
    let w = world(&[]);
    let mut d = register("2027-11-23");
    d.status = Some(DomainStatus {
        last_order: Some(mpanel_crds::domain::RegistrarOrder {
            operation: OrderOperation::Renew,
            years: 1,
            for_paid_until: Some("2027-11-23".into()),
            amount: Some("10.95".into()),
            state: OrderState::Succeeded,
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()),
        }),
        ..Default::default()
    });
    let d = w.put(&d);
    let info = w.registrar.registered_info(1, &OUR_NS);
    w.registrar.insert_domain("example.com", info);
    w.reconcile(&d, 3).await.unwrap();

    assert_eq!(w.registrar.count("renewDomain"), 0);
    let d = w.get("example-com");
    assert_eq!(shown(&d, RENEWED).0, "False");
    assert_eq!(shown(&d, RENEWED).1, reasons::RENEWED_ONCE.name);
    assert_eq!(shown(&d, "Ready").1, reasons::RENEWED.name);
}

/// An External Domain over a registration in the account that matches its spec.
fn external(expires: &str) -> (World, Domain) {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &OUR_NS);
    info.expires = expires.into();
    info.private = true;
    w.registrar.insert_domain("example.com", info);
    let d = w.put(&domain(
        "example-com",
        json!({"name": "example.com", "registration": {"mode": "External"}, "nameservers": OUR_NS}),
    ));
    (w, d)
}

#[tokio::test]
async fn a_registration_that_ran_out_shows_the_expired_phase() {
    let (w, d) = external("2026-07-01");
    w.reconcile(&d, 2).await.unwrap();
    let d = w.get("example-com");
    assert_eq!(phase_of(&d), Some(DomainPhase::Active));
    assert_eq!(shown(&d, REGISTERED).1, reasons::IN_ACCOUNT.name);
    assert_eq!(shown(&d, "Ready").0, "True");

    w.ctx.clock.advance(SignedDuration::from_hours(24 * 31));
    w.registrar.set_today("2026-07-02");
    w.reconcile(&d, 1).await.unwrap();
    let d = w.get("example-com");
    assert_eq!(phase_of(&d), Some(DomainPhase::Expired));
    assert_eq!(
        shown(&d, "Ready"),
        ("False".to_owned(), reasons::EXPIRED.name.to_owned(), "example.com expired on 2026-07-01".to_owned())
    );
    assert_eq!(w.registrar.writes(), vec![], "an External Domain changed the registrar");
}

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

fn auth_secret(code: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "example-com-auth", "namespace": NS},
        "stringData": {"code": code},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_transfer_is_ordered_once_with_the_secrets_auth_code_and_followed_to_completion() {
    let w = world(&[]);
    w.registrar.insert_elsewhere("example.com", "right-code", "2026-10-01", &OUR_NS);
    w.api.put(&auth_secret("wrong-code"));
    let d = w.put(&domain(
        "example-com",
        json!({"name": "example.com", "nameservers": OUR_NS,
               "registration": {"mode": "Transfer", "authCodeSecretRef": {"name": "example-com-auth", "key": "code"}}}),
    ));
    w.reconcile(&d, 4).await.unwrap();

    assert_eq!(w.registrar.count("transferDomain"), 1);
    let got = w.get("example-com");
    assert_eq!(phase_of(&got), Some(DomainPhase::Transferring));
    assert_eq!(shown(&got, REGISTERED).1, reasons::TRANSFER_AUTH_CODE_REJECTED.name);
    assert!(shown(&got, REGISTERED).2.contains("Incorrect Authorization Code"), "{:?}", shown(&got, REGISTERED));
    assert_eq!(w.warnings(reasons::TRANSFER_AUTH_CODE_REJECTED.name).len(), 1);

    // the customer corrects the code: it goes to the pending transfer, free
    w.api.put(&auth_secret("right-code"));
    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(w.registrar.count("transferUpdateChangeEPPCode"), 1);
    assert_eq!(w.registrar.count("transferDomain"), 1);
    let got = w.get("example-com");
    assert_eq!(shown(&got, REGISTERED).1, reasons::TRANSFER_PENDING.name);
    assert_eq!(got.status.as_ref().unwrap().transfer.as_ref().map(|t| t.state.as_str()), Some("Pending at Registry"));
    assert_eq!(w.normals(reasons::AUTH_CODE_UPDATED.name).len(), 1);

    assert_eq!(w.registrar.complete_transfers(), ["example.com"]);
    w.reconcile(&d, 2).await.unwrap();
    let got = w.get("example-com");
    assert_eq!(shown(&got, REGISTERED).1, reasons::TRANSFERRED.name);
    assert_eq!(shown(&got, "Ready").0, "True", "{:?}", got.status);
    assert_eq!(got.status.as_ref().unwrap().transfer.as_ref().map(|t| t.state.as_str()), Some("Transfer Completed"));
    assert_eq!(w.registrar.count("transferDomain"), 1);
    assert_eq!(w.registrar.paid().len(), 1);
}

fn with_zone(d: Domain) -> Domain {
    let mut d = d;
    d.spec.dns = serde_json::from_value(json!({"createZone": true})).unwrap();
    d
}

#[tokio::test]
async fn its_dns_zone_is_created_owned_and_gates_ready() {
    let w = world(&[]);
    let d = w.put(&with_zone(register("2027-06-01")));
    w.reconcile(&d, 4).await.unwrap();

    let zone: DnsZone = w.api.get(NS, "example-com").expect("the DnsZone was created");
    let owner = &zone.owner_references()[0];
    assert_eq!((owner.kind.as_str(), Some(&owner.uid), owner.controller), ("Domain", d.uid().as_ref(), Some(true)));
    assert_eq!(zone.spec.zone, "example.com");
    let got = w.get("example-com");
    assert_eq!(shown(&got, ZONE_READY).1, reasons::WAITING.name);
    assert_eq!(shown(&got, "Ready").0, "False");
    assert_eq!(got.status.as_ref().unwrap().zone_ref.as_deref(), Some("example-com"));

    // the DnsZone controller serves it
    let mut served = zone.clone();
    served.status =
        serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Served",
        "message": "served", "lastTransitionTime": testing::T0, "observedGeneration": zone.metadata.generation}]}))
        .unwrap();
    w.api.put(&served);
    w.reconcile(&d, 1).await.unwrap();
    let got = w.get("example-com");
    assert_eq!(shown(&got, ZONE_READY).0, "True");
    assert_eq!(shown(&got, "Ready").0, "True");
}

#[tokio::test]
async fn an_existing_dns_zone_not_its_own_is_reported_and_left_untouched() {
    let w = world(&[]);
    let foreign: DnsZone = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "example-com", "namespace": NS},
        "spec": {"zone": "example.com.", "nameservers": ["ns1.hand.example.", "ns2.hand.example."]}
    }))
    .unwrap();
    w.api.put(&foreign);
    let before: Value = serde_json::to_value(w.api.get::<DnsZone>(NS, "example-com").unwrap()).unwrap();
    let d = w.put(&with_zone(register("2027-06-01")));
    w.reconcile(&d, 4).await.unwrap();

    let got = w.get("example-com");
    assert_eq!(shown(&got, ZONE_READY).1, reasons::ZONE_OWNED_ELSEWHERE.name);
    assert!(shown(&got, ZONE_READY).2.contains("not this Domain's"));
    assert_eq!(shown(&got, "Ready").0, "False");
    let after: Value = serde_json::to_value(w.api.get::<DnsZone>(NS, "example-com").unwrap()).unwrap();
    assert_eq!(after, before, "a DnsZone that is not the Domain's was changed");
}

#[tokio::test]
async fn deleting_with_delete_turns_auto_renew_off_and_orphan_leaves_the_registration() {
    for (policy, auto_renew_after) in [("Delete", false), ("Orphan", true)] {
        let w = world(&[]);
        let mut d = register("2027-06-01");
        d.spec.registration.auto_renew = true;
        d.spec.deletion_policy = serde_json::from_value(json!(policy)).unwrap();
        let d = w.put(&d);
        w.reconcile(&d, 4).await.unwrap();
        assert!(w.registrar.domain("example.com").unwrap().auto_renew);

        w.registrar.clear_calls();
        w.api.delete::<Domain>(NS, "example-com");
        w.reconcile(&d, 1).await.unwrap();
        assert!(w.api.get::<Domain>(NS, "example-com").is_none(), "{policy}: the finalizer stayed");
        let info = w.registrar.domain("example.com").expect("a registration cannot be undone");
        assert_eq!(info.auto_renew, auto_renew_after, "{policy}");
        let off = w.normals(reasons::AUTO_RENEW_OFF.name);
        assert_eq!(off.len(), usize::from(!auto_renew_after), "{policy}: {off:?}");
        if auto_renew_after {
            assert_eq!(w.registrar.writes(), vec![], "{policy}");
        }
    }
}

#[tokio::test]
async fn deleting_a_domain_that_never_managed_its_registration_changes_nothing() {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &OUR_NS);
    info.auto_renew = true;
    w.registrar.insert_domain("example.com", info);
    let mut d = register("2027-06-01");
    d.spec.deletion_policy = serde_json::from_value(json!("Delete")).unwrap();
    let d = w.put(&d);
    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(shown(&w.get("example-com"), REGISTERED).1, reasons::REGISTRATION_NOT_ADOPTED.name);

    w.api.delete::<Domain>(NS, "example-com");
    w.reconcile(&d, 1).await.unwrap();
    assert!(w.api.get::<Domain>(NS, "example-com").is_none());
    assert!(w.registrar.domain("example.com").unwrap().auto_renew, "someone else's registration was changed");
    assert_eq!(w.registrar.writes(), vec![]);
}
