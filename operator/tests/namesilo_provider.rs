//! The Namesilo client against the testbed's Namesilo double (no Namesilo sandbox runs here; the
//! double follows Namesilo's API reference), each test with an account of its own.

use std::sync::Arc;
use std::time::Duration;

use mpanel_operator::metrics::Metrics;
use mpanel_operator::providers::namesilo::{Config, Namesilo, NamesiloApi, NamesiloError, OrderOptions};
use mpanel_tests::Testbed;
use mpanel_tests::namesilo::{Account, Namesilo as Double};

async fn account(tb: &Testbed, balance: &str) -> anyhow::Result<(Namesilo, Account)> {
    let account = Double::from_testbed(tb)?.new_account(balance).await?;
    let client = client(tb, account.key())?;
    Ok((client, account))
}

fn client(tb: &Testbed, key: &str) -> anyhow::Result<Namesilo> {
    Ok(Namesilo::new(
        Config {
            api_url: tb.get("NAMESILO_URL")?.to_owned(),
            api_key: key.to_owned(),
            timeout: Duration::from_secs(10),
        },
        Arc::new(Metrics::default()),
    )?)
}

fn unique(label: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{label}-{}-{nanos}.com", std::process::id())
}

fn options() -> OrderOptions {
    OrderOptions {
        nameservers: vec!["ns1.example.net".into(), "ns2.example.net".into()],
        private: true,
        auto_renew: false,
        contact: None,
    }
}

#[tokio::test]
async fn registration_is_read_back_and_settings_already_in_state_are_success() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let (ns, account) = account(&tb, "100.00").await?;
    let name = unique("prov-reg");
    assert_eq!(ns.domain_info(&name).await?, None, "not in the account (code 200) is None");
    assert!(ns.available(&name).await?);
    let receipt = ns.register(&name, 2, &options()).await?;
    assert_eq!(receipt.code, 300);
    assert_eq!(receipt.amount.as_deref(), Some("21.9"), "what the registrar charged, as it wrote it");
    assert!(!ns.available(&name).await?);

    let info = ns.domain_info(&name).await?.expect("registered");
    let held = account.domain(&name).await?.expect("in the account");
    assert_eq!(info.expires, held["expires"].as_str().unwrap_or_default());
    assert_eq!(info.nameservers, ["ns1.example.net", "ns2.example.net"], "lowercased, in position order");
    assert!(info.locked && info.private && !info.auto_renew);

    // each of these is already so: Namesilo answers 250–256, which is success
    ns.set_lock(&name, true).await?;
    ns.set_privacy(&name, true).await?;
    ns.set_auto_renew(&name, false).await?;
    let codes: Vec<u16> = account
        .requests()
        .await?
        .into_iter()
        .filter(|r| matches!(r.operation.as_str(), "domainLock" | "addPrivacy" | "removeAutoRenewal"))
        .map(|r| r.code)
        .collect();
    assert_eq!(codes, [252, 255, 251]);
    ns.set_lock(&name, false).await?;
    assert!(!ns.domain_info(&name).await?.expect("registered").locked);

    ns.set_nameservers(&name, &["ns1.other.net".into(), "ns2.other.net".into(), "ns3.other.net".into()]).await?;
    assert_eq!(ns.domain_info(&name).await?.expect("registered").nameservers.len(), 3);
    Ok(())
}

#[tokio::test]
async fn paid_calls_fail_with_namesilos_code_and_detail_and_the_key_never_shows() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let (ns, _account) = account(&tb, "5.00").await?;
    let name = unique("prov-poor");
    let err = ns.register(&name, 1, &options()).await.expect_err("5.00 does not buy a domain");
    assert_eq!(err.reason(), "NamesiloInsufficientFunds");
    assert!(err.to_string().starts_with("Namesilo registerDomain: 119 "), "{err}");
    assert_eq!(ns.domain_info(&name).await?, None);
    assert!(matches!(ns.renew(&name, 1).await, Err(NamesiloError::Reply { code: 200, .. })));
    assert_eq!(ns.transfer_status(&name).await?, None, "no transfer (code 266) is None");

    let secret = "not-a-key-0123456789";
    let stranger = client(&tb, secret)?;
    let err = stranger.domain_info(&name).await.expect_err("an unknown key is refused");
    assert_eq!(err.reason(), "NamesiloUnauthorized");
    assert!(!err.to_string().contains(secret), "{err}");

    let nowhere = Namesilo::new(
        Config { api_url: "http://127.0.0.1:9/api".into(), api_key: secret.into(), timeout: Duration::from_secs(2) },
        Arc::new(Metrics::default()),
    )?;
    let err = nowhere.register(&name, 1, &options()).await.expect_err("nothing listens on port 9");
    assert_eq!(err.reason(), "NamesiloUnreachable");
    assert!(!err.to_string().contains(secret), "the key is in the URL and must not reach an error: {err}");
    Ok(())
}
