//! The PowerDNS client against the testbed's real PowerDNS, checked by asking its DNS listener.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use std::sync::Arc;

use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::powerdns::{Config, DnsApi, NewZone, PowerDns, PowerDnsError, RrSet};
use mpanel_tests::Testbed;

fn client(tb: &Testbed) -> anyhow::Result<PowerDns> {
    Ok(PowerDns::new(
        Config {
            api_url: tb.get("PDNS_API_URL")?.to_owned(),
            api_key: tb.get("PDNS_API_KEY")?.to_owned(),
            server_id: tb.get("PDNS_SERVER_ID")?.to_owned(),
            timeout: Duration::from_secs(10),
        },
        Arc::new(Metrics::default()),
    )?)
}

/// A zone name no other test uses.
fn unique_zone(label: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!("{label}-{}-{}.mpanel-test.", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

fn new_zone(name: &str, account: &str) -> NewZone {
    NewZone {
        name: name.to_owned(),
        kind: "Native".to_owned(),
        nameservers: vec!["ns1.migrahosting.com.".to_owned(), "ns2.migrahosting.com.".to_owned()],
        account: account.to_owned(),
        soa_edit_api: "DEFAULT".to_owned(),
        rrsets: vec![RrSet::replace(format!("www.{name}"), "A", 300, ["192.0.2.10".to_owned()])],
    }
}

#[tokio::test]
async fn zone_lifecycle_is_what_the_dns_server_answers() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let pdns = client(&tb)?;
    let zone = unique_zone("lifecycle");
    let www = format!("www.{zone}");

    assert_eq!(pdns.zone(&zone).await?, None);
    let created = pdns.create_zone(&new_zone(&zone, "customer-acme/example/uid-1")).await?;
    assert_eq!(created.name, zone);
    let stored = pdns.zone(&zone).await?.ok_or_else(|| anyhow::anyhow!("zone vanished"))?;
    assert_eq!(stored.account, "customer-acme/example/uid-1");
    assert!(stored.rrsets.iter().any(|r| r.rtype == "SOA"), "{stored:?}");
    assert_eq!(tb.dig(&www, "A")?.answers, ["192.0.2.10"]);
    let mut ns = tb.dig(&zone, "NS")?.answers;
    ns.sort(); // a DNS answer has no order
    assert_eq!(ns, ["ns1.migrahosting.com.", "ns2.migrahosting.com."]);

    // REPLACE changes what is served, and the SOA serial moves
    pdns.patch_rrsets(&zone, &[RrSet::replace(&www, "A", 300, ["192.0.2.20".to_owned(), "192.0.2.21".to_owned()])])
        .await?;
    let mut served = tb.dig(&www, "A")?.answers;
    served.sort();
    assert_eq!(served, ["192.0.2.20", "192.0.2.21"]);
    let after = pdns.zone(&zone).await?.ok_or_else(|| anyhow::anyhow!("zone vanished"))?;
    assert!(after.serial > stored.serial, "serial {} did not move past {}", after.serial, stored.serial);

    // DELETE removes the name entirely
    pdns.patch_rrsets(&zone, &[RrSet::delete(&www, "A")]).await?;
    assert_eq!(tb.dig(&www, "A")?.rcode, "NXDOMAIN");

    assert!(pdns.delete_zone(&zone).await?);
    assert_eq!(pdns.zone(&zone).await?, None);
    assert!(!pdns.delete_zone(&zone).await?, "a second delete reports the zone already gone");
    assert_eq!(tb.dig(&zone, "SOA")?.rcode, "REFUSED", "the server no longer claims the zone");
    Ok(())
}

#[tokio::test]
async fn invalid_content_is_refused_with_powerdns_own_message_and_changes_nothing() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let pdns = client(&tb)?;
    let zone = unique_zone("invalid");
    pdns.create_zone(&new_zone(&zone, "owner")).await?;
    let before = pdns.zone(&zone).await?;

    // one valid and one invalid rrset in one PATCH: atomic, so neither is applied
    let err = pdns
        .patch_rrsets(
            &zone,
            &[
                RrSet::replace(format!("ok.{zone}"), "A", 300, ["192.0.2.30".to_owned()]),
                RrSet::replace(format!("bad.{zone}"), "A", 300, ["not-an-address".to_owned()]),
            ],
        )
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("PowerDNS accepted an A record of 'not-an-address'"))?;
    let PowerDnsError::Rejected { status, message } = &err else { panic!("unexpected error {err:?}") };
    assert_eq!(*status, 422);
    assert!(message.contains("not-an-address"), "PowerDNS's message should name the content: {message}");
    assert_eq!(err.reason(), "PowerDnsRejected");
    assert_eq!(pdns.zone(&zone).await?, before, "a refused PATCH changed the zone");
    assert_eq!(tb.dig(&format!("ok.{zone}"), "A")?.rcode, "NXDOMAIN");

    pdns.delete_zone(&zone).await?;
    Ok(())
}

#[tokio::test]
async fn creating_an_existing_zone_is_a_conflict_and_the_account_marker_can_be_set() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let pdns = client(&tb)?;
    let zone = unique_zone("conflict");
    pdns.create_zone(&new_zone(&zone, "first-owner")).await?;

    let err = pdns.create_zone(&new_zone(&zone, "second-owner")).await.err();
    assert!(matches!(&err, Some(PowerDnsError::Rejected { status: 409, .. })), "{err:?}");
    assert_eq!(err.map(|e| e.reason()), Some("PowerDnsConflict"));

    pdns.set_account(&zone, "second-owner").await?;
    let listed = pdns.zones().await?;
    let summary = listed.iter().find(|z| z.name == zone).ok_or_else(|| anyhow::anyhow!("{zone} not listed"))?;
    assert_eq!(summary.account, "second-owner");

    pdns.delete_zone(&zone).await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // closed again at once
    let pdns = PowerDns::new(
        Config {
            api_url: format!("http://127.0.0.1:{port}"),
            api_key: "unused".to_owned(),
            server_id: "localhost".to_owned(),
            timeout: Duration::from_secs(2),
        },
        Arc::new(Metrics::default()),
    )?;
    let err = pdns.zones().await.err();
    assert_eq!(err.as_ref().map(PowerDnsError::reason), Some("PowerDnsUnreachable"), "{err:?}");
    Ok(())
}
