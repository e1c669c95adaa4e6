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
