//! Reconcile modes: observe-only, paused and an invalid mode.

use super::*;

#[tokio::test]
async fn observe_only_reports_what_differs_without_writing() {
    let s = setup("observe");
    let m = s.put(&with_mode(mailbox(json!({})), "ObserveOnly"));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new(), "ObserveOnly wrote");
    assert_condition(&s.expect_condition(&m, READY), "False", reasons::OUT_OF_SYNC.name, "ObserveOnly: not written");

    // rows that are this object's and in sync: reported Active, still nothing written
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    s.mail.insert_mailbox(mailbox_row(Some(&marker(&m)), PASSWORD));
    s.mail.insert_alias(AliasRow {
        address: ALIAS.to_owned(),
        goto: ADDRESS.to_owned(),
        domain: DOMAIN.to_owned(),
        active: true,
        owner: Some(marker(&m)),
    });
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));

    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert!(s.mail.mailbox_row(ADDRESS).is_some(), "ObserveOnly deleted the mailbox");
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn paused_does_nothing_and_an_invalid_mode_is_reported() {
    let s = setup("paused");
    let m = s.put(&with_mode(mailbox(json!({})), "Paused"));
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.mail.calls(), []);
    assert_eq!(s.stored(&m).status, None);
    assert_eq!(s.stored(&m).metadata.finalizers, None);

    let s = setup("invalid-mode");
    let m = s.put(&with_mode(mailbox(json!({})), "Sometimes"));
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.mail.calls(), []);
    assert_condition(
        &s.expect_condition(&m, READY),
        "False",
        mpanel_crds::reasons::INVALID_RECONCILE_MODE.name,
        "expected Reconcile, ObserveOnly or Paused",
    );
}
