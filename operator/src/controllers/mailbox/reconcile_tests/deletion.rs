//! Deletion policies, the shared domain row and a failed delete that keeps the finalizer.

use super::*;

#[tokio::test]
async fn deleting_with_policy_delete_removes_rows_maildir_and_the_domain_row_it_made() {
    let s = setup("delete");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    let maildir = s.root.join("example.com/info");
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    std::fs::write(maildir.join("cur/1.mail"), "Subject: hi\n\nhello\n").unwrap();

    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_eq!(s.mail.alias_row(ALIAS), None);
    assert_eq!(s.mail.domain_row(DOMAIN), None, "the domain row the namespace made stayed");
    assert!(!Path::new(&maildir).exists(), "the maildir stayed");
    assert!(s.root.exists(), "the maildir root itself was removed");
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn the_domain_row_stays_while_another_mailbox_of_the_namespace_uses_it() {
    let s = setup("delete-shared");
    let first = s.put(&mailbox(json!({"aliases": []})));
    let second = s.put(&mailbox_in(NS, "sales", json!({"address": "sales@example.com", "aliases": []})));
    s.reconcile(&first, 3).await.unwrap();
    s.reconcile(&second, 3).await.unwrap();
    assert!(s.mail.mailbox_row("sales@example.com").is_some());
    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&first, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert!(s.mail.domain_row(DOMAIN).is_some(), "the domain row went while sales@ uses it");
}

#[tokio::test]
async fn deleting_with_policy_orphan_leaves_rows_and_maildir() {
    let s = setup("orphan");
    let m = s.put(&mailbox(json!({"deletionPolicy": "Orphan"})));
    s.reconcile(&m, 3).await.unwrap();
    let maildir = s.root.join("example.com/info");
    std::fs::create_dir_all(&maildir).unwrap();
    s.mail.clear_calls();
    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert!(s.mail.mailbox_row(ADDRESS).is_some() && s.mail.alias_row(ALIAS).is_some());
    assert!(maildir.exists(), "an orphaned maildir was removed");
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn a_failed_delete_on_mail_core_keeps_the_finalizer_until_a_retry_removes_the_rows() {
    let s = setup("delete-failure");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    s.api.delete::<Mailbox>(NS, NAME);
    s.mail.fail_next("delete_mailbox", "canceling statement due to lock timeout");
    let err = s.reconcile(&m, 1).await.unwrap_err();
    assert!(err.to_string().contains("lock timeout"), "{err}");
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
    let held = s.api.get::<Mailbox>(NS, NAME).expect("the object went while its mailbox stayed");
    assert_eq!(held.metadata.finalizers, Some(vec![mpanel_crds::FINALIZER.to_owned()]));

    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}
