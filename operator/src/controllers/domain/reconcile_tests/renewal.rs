//! Renewal up to the paid date, once per payment, and a registration that ran out.

use super::*;

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
