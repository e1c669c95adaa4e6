//! Out-of-band changes put back, password rotation and suspension.

use super::*;

#[tokio::test]
async fn an_out_of_band_change_of_quota_state_or_password_is_put_back() {
    let s = setup("drift");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    let mut row = s.mail.mailbox_row(ADDRESS).unwrap();
    row.quota_bytes = 5 * MIB;
    row.active = false;
    row.password = password::hash("set-by-hand").unwrap();
    s.mail.insert_mailbox(row);
    s.mail.clear_calls();

    s.reconcile(&m, 1).await.unwrap();
    let row = s.mail.mailbox_row(ADDRESS).unwrap();
    assert_eq!((row.quota_bytes, row.active), (2048 * MIB, true));
    assert!(password::matches(PASSWORD, &row.password), "the hand-set password stayed");
    assert_eq!(s.write_ops(), ["change_mailbox"]);
    assert!(s.has_event("Warning", reasons::DRIFT_REPAIRED.name, "changed outside the operator and restored"));
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
}

#[tokio::test]
async fn rotating_the_secret_rehashes_and_suspending_disables_login() {
    let s = setup("rotate");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    s.api.put(&password_secret(NS, "a-new-password-2027"));
    s.reconcile(&m, 1).await.unwrap();
    assert!(password::matches("a-new-password-2027", &s.mail.mailbox_row(ADDRESS).unwrap().password));
    assert!(!s.has_event("Warning", reasons::DRIFT_REPAIRED.name, ""), "a rotation is no drift");

    let mut suspended = s.stored(&m);
    suspended.spec.suspended = true;
    s.api.put(&suspended);
    s.reconcile(&m, 1).await.unwrap();
    assert!(!s.mail.mailbox_row(ADDRESS).unwrap().active);
    assert_eq!(s.phase(&m), Some(MailboxPhase::Suspended));
    assert_condition(&s.expect_condition(&m, READY), "True", reasons::SUSPENDED.name, "suspended (login disabled)");
}

#[tokio::test]
async fn resyncs_verify_an_unchanged_password_once_and_catch_a_hash_changed_in_mail_core() {
    let s = setup("verify-once");
    let m = s.put(&mailbox(json!({})));
    // rows made before this process started: their hash is not known to match yet
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    s.mail.insert_mailbox(mailbox_row(Some(&marker(&m)), PASSWORD));
    let uid = m.uid().unwrap();
    s.reconcile(&m, 1).await.unwrap();
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.ctx.verified.verifies(&uid), 1, "two resyncs of an unchanged mailbox");
    assert_condition(&s.expect_condition(&m, PASSWORD_SYNCED), "True", reasons::SYNCED.name, "matches the Secret");

    // someone sets another password in mail-core: the next resync sees it and puts the Secret's back
    let mut row = s.mail.mailbox_row(ADDRESS).unwrap();
    row.password = password::hash("set-by-hand").unwrap();
    s.mail.insert_mailbox(row);
    s.mail.clear_calls();
    s.reconcile(&m, 1).await.unwrap();
    assert!(password::matches(PASSWORD, &s.mail.mailbox_row(ADDRESS).unwrap().password), "the hand-set hash stayed");
    assert_eq!(s.write_ops(), ["change_mailbox"]);
    assert_eq!(s.ctx.verified.verifies(&uid), 2);
    // the hash just written is known to match: the resyncs after it verify nothing
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.ctx.verified.verifies(&uid), 2);

    // a rotated Secret is verified again and rehashed
    s.api.put(&password_secret(NS, "rotated-password-2027"));
    s.reconcile(&m, 1).await.unwrap();
    assert!(password::matches("rotated-password-2027", &s.mail.mailbox_row(ADDRESS).unwrap().password));
    assert_eq!(s.ctx.verified.verifies(&uid), 3);
}

#[tokio::test]
async fn a_mailbox_the_operator_created_needs_no_verify_at_its_resyncs() {
    let s = setup("verify-none");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 4).await.unwrap();
    assert_eq!(s.ctx.verified.verifies(&m.uid().unwrap()), 0, "the hash it wrote was verified again");
    assert_condition(&s.expect_condition(&m, PASSWORD_SYNCED), "True", reasons::SYNCED.name, "matches the Secret");
}
