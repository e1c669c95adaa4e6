//! Mail core failures shown verbatim and retried.

use super::*;

#[tokio::test]
async fn a_mail_core_failure_is_shown_verbatim_with_a_warning_then_retried() {
    let s = setup("failure");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 1).await.unwrap(); // the finalizer
    let refusal = "new row for relation \"mailbox\" violates check constraint \"mailbox_quota_check\"";
    s.mail.fail_next("add_mailbox", refusal);
    let err = s.reconcile(&m, 1).await.unwrap_err();
    let reason = err.reason();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_condition(&s.expect_condition(&m, READY), "False", reason, refusal);
    assert!(s.has_event("Warning", reason, refusal), "{:?}", s.api.events());

    s.reconcile(&m, 1).await.unwrap();
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
    assert_condition(&s.expect_condition(&m, READY), "True", reasons::ACTIVE.name, "is active");

    // unreachable while reading: shown the same way, nothing changes
    let down = MailCoreError::Unreachable("connection refused (os error 111)".to_owned());
    s.mail.fail_next_with("get_domain", down);
    let err = s.reconcile(&m, 1).await.unwrap_err();
    let ready = s.expect_condition(&m, READY);
    assert_condition(&ready, "False", err.reason(), "could not be reached: connection refused (os error 111)");
    assert!(s.has_event("Warning", err.reason(), "connection refused"));
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
}
