//! DKIM keys the zone asks for: made, kept in their Secret, and another owner's left alone.

use super::*;

fn dkim_zone() -> DnsZone {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "example-com", "namespace": NS},
        "spec": {"zone": "example.com.", "nameservers": ["ns1.migrahosting.com."],
            "mail": {"mx": [{"host": "mail.migrahosting.com.", "priority": 10}], "dkim": {"selector": "mail2026"}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_dkim_key_the_zone_asks_for_is_made_kept_in_its_secret_and_signs() {
    let s = setup_with("dkim", Options { zones: vec![dkim_zone()], ..Options::default() });
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();

    let secret: Secret = s.api.get(NS, &dnszone::dkim_secret_name(DOMAIN)).expect("the key Secret was made");
    assert!(dkim::is_managed(&secret), "the key Secret lacks the operator's mark");
    let pem = dkim::private_key_in(&secret, "mail2026").expect("the selector's key is in the Secret");
    let row = s.mail.signing_key(DOMAIN).expect("mail-core signs example.com");
    assert_eq!((row.selector.as_str(), row.owner.as_str()), ("mail2026", "namespace/acme"));
    assert_eq!(row.private_key, pem, "mail-core signs with another key than the Secret's");
    assert_condition(&s.expect_condition(&m, DKIM_SIGNING), "True", reasons::SIGNING.name, "selector mail2026");
    assert_condition(
        &s.expect_condition(&m, DOMAIN_READY),
        "True",
        reasons::DOMAIN_ON_MAIL_CORE.name,
        "publishes MX 10 mail.migrahosting.com.",
    );

    // a resync keeps the key
    s.mail.clear_calls();
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    let again: Secret = s.api.get(NS, &dnszone::dkim_secret_name(DOMAIN)).unwrap();
    assert_eq!(dkim::private_key_in(&again, "mail2026"), Some(pem));
}

#[tokio::test]
async fn a_dkim_key_row_of_another_owner_is_left_and_reported() {
    let s = setup_with("dkim-other", Options { zones: vec![dkim_zone()], ..Options::default() });
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    let theirs = crate::providers::mailcore::DkimKeyRow {
        domain: DOMAIN.to_owned(),
        selector: "old".to_owned(),
        private_key: "not ours".to_owned(),
        owner: "namespace/rival".to_owned(),
    };
    s.mail.insert_dkim_key(theirs.clone());
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.mail.dkim_key_row(DOMAIN), Some(theirs));
    assert_condition(
        &s.expect_condition(&m, DKIM_SIGNING),
        "False",
        reasons::ROW_OWNED_ELSEWHERE.name,
        "left untouched",
    );
}
