//! The mail block: MX, SPF, DMARC and the DKIM key of the zone's Secret.

use super::*;

#[tokio::test]
async fn the_mail_block_publishes_mx_spf_dmarc_and_the_dkim_key_of_the_zones_secret() {
    let s = setup();
    let z = s.put(&zone(json!({"mail": {
        "mx": [{"host": "mail.migrahosting.com.", "priority": 10}],
        "spf": "v=spf1 mx -all",
        "dmarc": "v=DMARC1; p=quarantine",
        "dkim": {"selector": "mail2026"}
    }})));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.contents(ZONE, ZONE, "MX"), ["10 mail.migrahosting.com."]);
    assert_eq!(s.dns.contents(ZONE, ZONE, "TXT"), ["\"v=spf1 mx -all\""]);
    assert_eq!(s.dns.contents(ZONE, "_dmarc.example.com.", "TXT"), ["\"v=DMARC1; p=quarantine\""]);
    assert_eq!(s.dns.rrset(ZONE, "mail2026._domainkey.example.com.", "TXT"), None);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::WAITING_FOR_DKIM_KEY.name, "selector mail2026");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Pending));

    // the key the operator made for the mail domain (as the Mailbox controller does) is published
    let pair = dkim::generate(1024).unwrap();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(dkim_secret_name(ZONE)),
            namespace: Some(NS.to_owned()),
            labels: Some(managed_labels(BTreeMap::new())),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            dkim::private_key_field("mail2026"),
            ByteString(pair.private_pem.clone().into_bytes()),
        )])),
        ..Default::default()
    };
    s.api.put(&secret);
    s.reconcile(&z, 1).await.unwrap();
    let published = s.dns.contents(ZONE, "mail2026._domainkey.example.com.", "TXT").concat();
    assert!(published.starts_with("\"v=DKIM1; k=rsa; p="), "{published}");
    assert!(published.contains(&pair.public_key[..120]), "{published} lacks the public key");
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "is served");
}

#[tokio::test]
async fn a_dkim_secret_without_the_operators_mark_is_not_published() {
    let s = setup();
    let z = s.put(&zone(json!({"mail": {"mx": [], "dkim": {"selector": "mail2026"}}})));
    let pair = dkim::generate(1024).unwrap();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(dkim_secret_name(ZONE)),
            namespace: Some(NS.to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(dkim::private_key_field("mail2026"), ByteString(pair.private_pem.into_bytes()))])),
        ..Default::default()
    };
    s.api.put(&secret);
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.rrset(ZONE, "mail2026._domainkey.example.com.", "TXT"), None);
    assert_condition(
        &s.expect_condition(&z, READY),
        "False",
        reasons::WAITING_FOR_DKIM_KEY.name,
        "without the operator's mark",
    );
}
