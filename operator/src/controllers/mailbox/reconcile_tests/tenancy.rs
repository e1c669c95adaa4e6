//! Rows, mail domains and aliases of other objects and namespaces: refused, left untouched, reported.

use super::*;

#[tokio::test]
async fn a_mailbox_row_without_this_objects_marker_is_a_conflict_and_untouched() {
    for (test, owner) in [("conflict-none", None), ("conflict-other", Some("rival/info/uid-of-another"))] {
        let s = setup(test);
        let m = s.put(&mailbox(json!({})));
        s.mail.insert_domain(domain_row(Some("namespace/acme")));
        s.mail.insert_mailbox(mailbox_row(owner, "their-password"));
        let before = s.mail.mailbox_row(ADDRESS);
        s.reconcile(&m, 3).await.unwrap();

        assert_eq!(s.write_ops(), Vec::<&str>::new(), "{test}: a row not this object's was written");
        assert_eq!(s.mail.mailbox_row(ADDRESS), before);
        assert_eq!(s.mail.alias_row(ALIAS), None, "{test}: an alias was made for a row not this object's");
        let conflict = s.expect_condition(&m, CONFLICT);
        assert_condition(&conflict, "True", reasons::ROW_OWNED_ELSEWHERE.name, "is not this object's");
        assert!(!conflict.message.contains("uid-of-another"), "the other owner is shown: {}", conflict.message);
        assert_condition(&s.expect_condition(&m, READY), "False", reasons::CONFLICT.name, "nothing was changed");
        assert_eq!(s.phase(&m), Some(MailboxPhase::Failed));
        assert!(s.has_event("Warning", reasons::CONFLICT.name, "mailbox info@example.com exists on mail-core"));

        // deleting the object leaves the row that was not its own
        s.api.delete::<Mailbox>(NS, NAME);
        s.reconcile(&m, 1).await.unwrap();
        assert_eq!(s.mail.mailbox_row(ADDRESS), before, "{test}: deleting removed a row not this object's");
        assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
    }
}

#[tokio::test]
async fn a_mail_domain_of_another_namespace_is_refused_before_anything_is_written() {
    // the domain row marked for another namespace
    let s = setup("domain-row");
    s.mail.insert_domain(domain_row(Some("namespace/rival")));
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    let conflict = s.expect_condition(&m, CONFLICT);
    assert_condition(&conflict, "True", reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, "used by another namespace");
    assert!(!conflict.message.contains("rival"), "the other namespace is shown: {}", conflict.message);
    assert_condition(
        &s.expect_condition(&m, DOMAIN_READY),
        "False",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "nothing was written",
    );
    assert_eq!(s.phase(&m), Some(MailboxPhase::Failed));
    assert!(s.has_event("Warning", reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, "example.com"));

    // the name held by another namespace's DnsZone, the row not there yet
    let theirs: DnsZone = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "theirs", "namespace": "rival", "uid": "uid-theirs", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"zone": "example.com.", "nameservers": ["ns1.migrahosting.com."]},
        "status": {"conditions": [{"type": "Conflict", "status": "False", "reason": "Owned", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .unwrap();
    let s = setup_with("domain-name", Options { names: vec![theirs], ..Options::default() });
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.domain_row(DOMAIN), None);
    assert_condition(
        &s.expect_condition(&m, CONFLICT),
        "True",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "used by another namespace",
    );
}

#[tokio::test]
async fn an_alias_in_another_namespaces_domain_is_refused() {
    let s = setup("alias-domain");
    s.mail.insert_domain(DomainRow {
        domain: "other.net".to_owned(),
        active: true,
        owner: Some("namespace/rival".to_owned()),
    });
    let m = s.put(&mailbox(json!({"aliases": ["sales@other.net"]})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.alias_row("sales@other.net"), None);
    assert_condition(
        &s.expect_condition(&m, CONFLICT),
        "True",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "mail domain other.net",
    );
}

#[tokio::test]
async fn a_domain_row_made_outside_the_operator_is_used_only_where_it_is_granted() {
    let s = setup("ungranted");
    s.mail.insert_domain(domain_row(None));
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_condition(
        &s.expect_condition(&m, CONFLICT),
        "True",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "not granted to this namespace",
    );

    let grants = BTreeMap::from([(DOMAIN.to_owned(), NS.to_owned())]);
    let s = setup_with("granted", Options { grants, ..Options::default() });
    s.mail.insert_domain(domain_row(None));
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS).and_then(|r| r.owner), Some(marker(&m)));
    assert_eq!(s.mail.domain_row(DOMAIN), Some(domain_row(None)), "the granted row was changed");
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));

    // the granted row was there before: deleting the last mailbox leaves it
    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_eq!(s.mail.domain_row(DOMAIN), Some(domain_row(None)), "a row the operator did not make was removed");
}

#[tokio::test]
async fn an_alias_dropped_from_the_spec_is_deleted_and_another_objects_alias_is_a_conflict() {
    let s = setup("aliases");
    let m = s.put(&mailbox(json!({"aliases": [ALIAS, "sales@example.com"]})));
    s.reconcile(&m, 3).await.unwrap();
    assert!(s.mail.alias_row("sales@example.com").is_some());
    let mut fewer = s.stored(&m);
    fewer.spec.aliases = vec![ALIAS.to_owned()];
    s.api.put(&fewer);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.alias_row("sales@example.com"), None, "the dropped alias still delivers");
    assert!(s.mail.alias_row(ALIAS).is_some());

    // an alias row of another object is never taken over
    let theirs = AliasRow {
        address: "support@example.com".to_owned(),
        goto: "someone@example.com".to_owned(),
        domain: DOMAIN.to_owned(),
        active: true,
        owner: Some("acme/someone/uid-of-someone".to_owned()),
    };
    s.mail.insert_alias(theirs.clone());
    let mut more = s.stored(&m);
    more.spec.aliases = vec![ALIAS.to_owned(), "support@example.com".to_owned()];
    s.api.put(&more);
    s.mail.clear_calls();
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.alias_row("support@example.com"), Some(theirs));
    let conflict = s.expect_condition(&m, CONFLICT);
    assert_condition(&conflict, "True", reasons::ROW_OWNED_ELSEWHERE.name, "alias support@example.com exists");
    assert!(!conflict.message.contains("uid-of-someone"), "the other owner is shown: {}", conflict.message);
}
