//! The Namesilo double of the testbed answers as Namesilo's API reference says: reply codes and
//! their texts, money taken once and only on success, dates moved by whole years, transfers that
//! wait for the right auth code. Each test works in an account of its own.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use mpanel_tests::Testbed;
use mpanel_tests::namesilo::{Account, Namesilo};
use serde_json::{Value, json};

fn namesilo() -> anyhow::Result<Namesilo> {
    Namesilo::from_testbed(&Testbed::from_env()?)
}

/// A name no other test (or earlier run) uses: the registry and the names in accounts are shared.
fn unique_name(account: &Account, label: &str) -> String {
    format!("{label}-{}.com", &account.key()[4..20])
}

fn today() -> Date {
    jiff::Timestamp::now().to_zoned(TimeZone::UTC).date()
}

fn code(reply: &Value) -> u64 {
    reply["code"].as_u64().unwrap_or_default()
}

fn years_from(date: Date, years: i64) -> String {
    date.checked_add(years.years()).map(|d| d.to_string()).unwrap_or_default()
}

async fn register(account: &Account, name: &str, years: &str) -> anyhow::Result<Value> {
    account.call("registerDomain", &[("domain", name), ("years", years)]).await
}

#[tokio::test]
async fn an_unknown_key_is_110_and_a_missing_parameter_108() -> anyhow::Result<()> {
    let ns = namesilo()?;
    let reply = ns.account("no-such-key").call("getAccountBalance", &[]).await?;
    assert_eq!((code(&reply), reply["detail"].as_str()), (110, Some("Invalid API key")), "{reply}");

    let account = ns.new_account("10.00").await?;
    let reply = account.call("getDomainInfo", &[]).await?;
    assert_eq!(code(&reply), 108, "{reply}");
    assert_eq!(reply["detail"], "Missing parameters for the specified operation");
    Ok(())
}

#[tokio::test]
async fn registering_charges_once_and_the_domain_is_in_the_account() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("100.00").await?;
    let name = unique_name(&account, "reg");
    let reply = account
        .call(
            "registerDomain",
            &[("domain", &name), ("years", "2"), ("ns1", "ns1.example.net"), ("ns2", "NS2.example.net")],
        )
        .await?;
    assert_eq!(code(&reply), 300, "{reply}");
    assert_eq!(reply["message"], "Your domain registration was successfully processed.");
    assert_eq!(reply["order_amount"], json!(21.9));

    let balance = account.call("getAccountBalance", &[]).await?;
    assert_eq!(balance["balance"], json!(78.1), "{balance}");
    assert_eq!(account.balance().await?, "78.10");
    assert_eq!(account.count("registerDomain", &name).await?, 1);

    let info = account.call("getDomainInfo", &[("domain", &name)]).await?;
    assert_eq!(code(&info), 300, "{info}");
    assert_eq!(info["created"], today().to_string());
    assert_eq!(info["expires"], years_from(today(), 2));
    assert_eq!((&info["status"], &info["locked"], &info["private"]), (&json!("Active"), &json!("Yes"), &json!("No")));
    assert_eq!(
        info["nameservers"],
        json!([{"position": 1, "nameserver": "NS1.EXAMPLE.NET"}, {"position": 2, "nameserver": "NS2.EXAMPLE.NET"}])
    );

    let again = register(&account, &name, "1").await?;
    assert_eq!(code(&again), 262, "{again}");
    assert_eq!(again["detail"], "This domain is already active within our system and therefore cannot be processed.");
    assert_eq!(account.balance().await?, "78.10");
    Ok(())
}

#[tokio::test]
async fn a_name_registered_elsewhere_is_261_and_unavailable() -> anyhow::Result<()> {
    let ns = namesilo()?;
    let account = ns.new_account("100.00").await?;
    let name = unique_name(&account, "taken");
    ns.registry_add(&name, "secret", "2030-01-01", &["ns1.other.net", "ns2.other.net"]).await?;

    let reply = register(&account, &name, "1").await?;
    assert_eq!(code(&reply), 261, "{reply}");
    let check = account.call("checkRegisterAvailability", &[("domains", &name)]).await?;
    assert_eq!(check["unavailable"], json!({"domain": name}), "{check}");
    assert_eq!(account.balance().await?, "100.00");

    // a name in another account is just as taken
    let other = ns.new_account("100.00").await?;
    let mine = unique_name(&account, "mine");
    assert_eq!(code(&register(&account, &mine, "1").await?), 300);
    assert_eq!(code(&register(&other, &mine, "1").await?), 261);
    Ok(())
}

#[tokio::test]
async fn years_outside_one_to_ten_are_263() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("500.00").await?;
    let name = unique_name(&account, "years");
    for years in ["0", "11"] {
        let reply = register(&account, &name, years).await?;
        assert_eq!(code(&reply), 263, "{years}: {reply}");
        assert_eq!(reply["detail"], "Invalid number of years, or no years provided.");
    }
    assert_eq!(account.balance().await?, "500.00");
    assert_eq!(account.domain(&name).await?, None);
    Ok(())
}

#[tokio::test]
async fn without_the_money_an_order_is_119_and_changes_nothing() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("5.00").await?;
    let name = unique_name(&account, "poor");
    let reply = register(&account, &name, "1").await?;
    assert_eq!(code(&reply), 119, "{reply}");
    assert_eq!(reply["detail"], "Insufficient account funds for requested transaction");
    assert_eq!(account.balance().await?, "5.00");
    assert_eq!(account.domain(&name).await?, None);
    assert_eq!(code(&account.call("getDomainInfo", &[("domain", &name)]).await?), 200);

    account.set_balance("10.95").await?;
    assert_eq!(code(&register(&account, &name, "1").await?), 300);
    assert_eq!(account.balance().await?, "0.00");
    Ok(())
}

#[tokio::test]
async fn renewing_moves_the_expiry_by_exactly_the_years() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("200.00").await?;
    let name = unique_name(&account, "renew");
    assert_eq!(code(&register(&account, &name, "1").await?), 300);

    let reply = account.call("renewDomain", &[("domain", &name), ("years", "3")]).await?;
    assert_eq!(code(&reply), 300, "{reply}");
    assert_eq!(reply["order_amount"], json!(32.85));
    let info = account.call("getDomainInfo", &[("domain", &name)]).await?;
    assert_eq!(info["expires"], years_from(today(), 4));

    // 4 + 7 years would end more than ten years from today
    let too_far = account.call("renewDomain", &[("domain", &name), ("years", "7")]).await?;
    assert_eq!(code(&too_far), 264, "{too_far}");
    assert_eq!(account.balance().await?, "156.20");

    let stranger = unique_name(&account, "notmine");
    assert_eq!(code(&account.call("renewDomain", &[("domain", &stranger), ("years", "1")]).await?), 200);
    Ok(())
}

#[tokio::test]
async fn asking_for_the_state_a_domain_is_in_answers_its_own_code_and_changes_nothing() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("50.00").await?;
    let name = unique_name(&account, "state");
    assert_eq!(code(&register(&account, &name, "1").await?), 300);
    let domain = [("domain", name.as_str())];

    // a registration is locked, not private, not renewed automatically
    for (operation, expected) in [
        ("domainLock", 252),
        ("domainUnlock", 300),
        ("domainUnlock", 253),
        ("domainLock", 300),
        ("removePrivacy", 256),
        ("addPrivacy", 300),
        ("addPrivacy", 255),
        ("removeAutoRenewal", 251),
        ("addAutoRenewal", 300),
        ("addAutoRenewal", 250),
    ] {
        let reply = account.call(operation, &domain).await?;
        assert_eq!(code(&reply), expected, "{operation}: {reply}");
    }
    let reply = account.call("domainLock", &domain).await?;
    assert_eq!(reply["detail"], "Domain is already Locked - No update made.");
    let state = account.domain(&name).await?.context("the domain is gone")?;
    assert_eq!((&state["locked"], &state["private"], &state["autoRenew"]), (&json!(true), &json!(true), &json!(true)));
    Ok(())
}

#[tokio::test]
async fn nameservers_change_only_to_two_or_more_hostnames() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("50.00").await?;
    let name = unique_name(&account, "dns");
    assert_eq!(code(&register(&account, &name, "1").await?), 300);
    let state = account.domain(&name).await?.context("registered")?;
    assert_eq!(state["nameservers"], json!(["ns1.dnsowl.com", "ns2.dnsowl.com", "ns3.dnsowl.com"]));

    let ok = account
        .call("changeNameServers", &[("domain", &name), ("ns1", "a.ns.example.org"), ("ns2", "b.ns.example.org")])
        .await?;
    assert_eq!(code(&ok), 300, "{ok}");
    let one = account.call("changeNameServers", &[("domain", &name), ("ns1", "c.ns.example.org")]).await?;
    assert_eq!(code(&one), 108, "{one}");
    let bad = account
        .call("changeNameServers", &[("domain", &name), ("ns1", "c.ns.example.org"), ("ns2", "not a host")])
        .await?;
    assert_eq!(code(&bad), 254, "{bad}");

    let info = account.call("getDomainInfo", &[("domain", &name)]).await?;
    assert_eq!(
        info["nameservers"],
        json!([{"position": 1, "nameserver": "A.NS.EXAMPLE.ORG"}, {"position": 2, "nameserver": "B.NS.EXAMPLE.ORG"}])
    );

    // a change made at the registrar, not through the API, shows in the API
    account.edit_domain(&name, json!({"nameservers": ["x.example.net", "y.example.net"], "locked": false})).await?;
    let info = account.call("getDomainInfo", &[("domain", &name)]).await?;
    assert_eq!(info["nameservers"][0]["nameserver"], "X.EXAMPLE.NET");
    assert_eq!(info["locked"], "No");
    Ok(())
}

#[tokio::test]
async fn lists_of_one_come_wrapped_and_longer_ones_as_arrays() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("50.00").await?;
    let (first, second) = (unique_name(&account, "list1"), unique_name(&account, "list2"));
    let empty = account.call("listDomains", &[]).await?;
    assert_eq!(empty.get("domains"), None, "{empty}");

    assert_eq!(code(&register(&account, &first, "1").await?), 300);
    let one = account.call("listDomains", &[]).await?;
    let expires = years_from(today(), 1);
    let entry = |name: &str| json!({"domain": name, "created": today().to_string(), "expires": expires});
    assert_eq!(one["domains"], json!({"domain": entry(&first)}), "{one}");

    assert_eq!(code(&register(&account, &second, "1").await?), 300);
    let two = account.call("listDomains", &[]).await?;
    assert_eq!(two["domains"], json!([entry(&first), entry(&second)]), "{two}");
    Ok(())
}

/// Polls `checkTransferStatus` until it reports `wanted`.
async fn transfer_reaches(account: &Account, name: &str, wanted: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = account.call("checkTransferStatus", &[("domain", name)]).await?;
        if reply["status"] == wanted {
            return Ok(reply);
        }
        ensure!(Instant::now() < deadline, "the transfer did not reach {wanted:?}: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_transfer_waits_for_the_right_auth_code_and_then_completes() -> anyhow::Result<()> {
    let ns = namesilo()?;
    let account = ns.new_account("20.00").await?;
    let name = unique_name(&account, "move");
    let old_expiry = today().checked_add(200.days())?;
    ns.registry_add(&name, "right-code", &old_expiry.to_string(), &["ns1.old.example", "ns2.old.example"]).await?;

    let ordered =
        account.call("transferDomain", &[("domain", &name), ("auth", "wrong-code"), ("private", "1")]).await?;
    assert_eq!(code(&ordered), 300, "{ordered}");
    assert_eq!(ordered["order_amount"], json!(9.95));
    let status = account.call("checkTransferStatus", &[("domain", &name)]).await?;
    assert_eq!(status["status"], "Incorrect Authorization Code", "{status}");
    assert!(status["message"].as_str().is_some_and(|m| m.contains("authorization")), "{status}");
    let again = account.call("transferDomain", &[("domain", &name), ("auth", "right-code")]).await?;
    assert_eq!(code(&again), 265, "a second transfer of the same name: {again}");

    let fixed = account.call("transferUpdateChangeEPPCode", &[("domain", &name), ("auth", "right-code")]).await?;
    assert_eq!(code(&fixed), 300, "{fixed}");
    let done = transfer_reaches(&account, &name, "Transfer Completed").await?;
    assert!(done["date"].as_str().is_some_and(|d| d.len() == 19), "{done}");

    let info = account.call("getDomainInfo", &[("domain", &name)]).await?;
    assert_eq!(code(&info), 300, "{info}");
    assert_eq!(info["expires"], years_from(old_expiry, 1));
    assert_eq!((&info["locked"], &info["private"]), (&json!("Yes"), &json!("Yes")));
    assert_eq!(info["nameservers"][1]["nameserver"], "NS2.OLD.EXAMPLE");
    assert_eq!(account.balance().await?, "10.05");

    let late = account.call("transferUpdateChangeEPPCode", &[("domain", &name), ("auth", "x")]).await?;
    assert_eq!(code(&late), 266, "{late}");
    Ok(())
}

#[tokio::test]
async fn transfers_refused_and_absent() -> anyhow::Result<()> {
    let account = namesilo()?.new_account("20.00").await?;
    let nowhere = unique_name(&account, "nowhere");
    let none = account.call("checkTransferStatus", &[("domain", &nowhere)]).await?;
    assert_eq!(code(&none), 266, "{none}");
    assert_eq!(none["detail"], "No domain transfer exists for this user for this domain");

    let unregistered = account.call("transferDomain", &[("domain", &nowhere), ("auth", "x")]).await?;
    assert_eq!(code(&unregistered), 265, "{unregistered}");
    let mine = unique_name(&account, "mine");
    assert_eq!(code(&register(&account, &mine, "1").await?), 300);
    assert_eq!(code(&account.call("transferDomain", &[("domain", &mine)]).await?), 262);
    assert_eq!(account.balance().await?, "9.05");
    Ok(())
}
