//! A new mailbox, an unchanged resync, adoption by marker and a password Secret that is missing.

use super::*;

#[tokio::test]
async fn a_new_mailbox_gets_its_domain_row_mailbox_and_alias_and_is_active() {
    let s = setup("create");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();

    assert_eq!(s.mail.domain_row(DOMAIN), Some(domain_row(Some("namespace/acme"))));
    let row = s.mail.mailbox_row(ADDRESS).expect("the mailbox row was made");
    assert_eq!(row.owner, Some(marker(&m)));
    assert_eq!((row.quota_bytes, row.active, row.maildir.as_str()), (2048 * MIB, true, "example.com/info/"));
    assert!(password::matches(PASSWORD, &row.password), "the stored hash is not the Secret's password");
    let alias = s.mail.alias_row(ALIAS).expect("the alias row was made");
    assert_eq!((alias.goto.as_str(), alias.owner), (ADDRESS, Some(marker(&m))));

    assert_condition(&s.expect_condition(&m, READY), "True", reasons::ACTIVE.name, "info@example.com is active");
    assert_condition(&s.expect_condition(&m, PASSWORD_SYNCED), "True", reasons::SYNCED.name, "matches the Secret");
    assert_condition(
        &s.expect_condition(&m, DOMAIN_READY),
        "True",
        reasons::DOMAIN_ON_MAIL_CORE.name,
        "no DnsZone for example.com in this namespace",
    );
    assert_condition(&s.expect_condition(&m, CONFLICT), "False", reasons::OWNED.name, "this object's");
    assert_condition(&s.expect_condition(&m, DKIM_SIGNING), "False", reasons::DKIM_NOT_REQUESTED.name, "not signed");
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
    let status = s.stored(&m).status.unwrap();
    assert_eq!(status.quota_mib, Some(2048));
    assert!(status.last_password_sync.is_some() && status.password_secret_version.is_some());
    assert!(s.has_event("Normal", reasons::CREATED.name, "mailbox info@example.com created on mail-core"));
}

#[tokio::test]
async fn an_unchanged_resync_writes_nothing_to_mail_core_or_the_api() {
    let s = setup("resync");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    s.mail.clear_calls();
    let (writes, events) = (s.api.writes(), s.api.events().len());
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new(), "a resync wrote to mail-core");
    assert_eq!(s.api.writes(), writes, "a resync wrote to the API: {:?}", s.api.requests());
    assert_eq!(s.api.events().len(), events);
    assert!(!s.mail.calls().is_empty(), "the resync did not even look");
}

#[tokio::test]
async fn rows_carrying_this_objects_marker_are_adopted_and_converged() {
    let s = setup("adopt");
    let m = s.put(&mailbox(json!({})));
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    let mut row = mailbox_row(Some(&marker(&m)), PASSWORD);
    row.quota_bytes = MIB;
    s.mail.insert_mailbox(row);
    s.reconcile(&m, 3).await.unwrap();
    assert!(!s.write_ops().contains(&"add_mailbox"), "an adopted row was added again: {:?}", s.write_ops());
    assert!(s.write_ops().contains(&"change_mailbox"));
    assert_eq!(s.mail.mailbox_row(ADDRESS).unwrap().quota_bytes, 2048 * MIB);
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
    assert_condition(&s.expect_condition(&m, CONFLICT), "False", reasons::OWNED.name, "this object's");
}

#[tokio::test]
async fn a_missing_password_secret_creates_nothing_until_it_exists() {
    let s = setup("no-secret");
    let m = s.put(&mailbox(json!({"passwordSecretRef": {"name": "absent", "key": "password"}})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_condition(
        &s.expect_condition(&m, READY),
        "False",
        reasons::PASSWORD_SECRET_MISSING.name,
        "Secret absent does not exist",
    );
    assert_eq!(s.phase(&m), Some(MailboxPhase::Pending));

    let mut secret = password_secret(NS, PASSWORD);
    secret.metadata.name = Some("absent".to_owned());
    s.api.put(&secret);
    s.reconcile(&m, 1).await.unwrap();
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
}
