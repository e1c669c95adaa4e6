use super::*;

fn options(nameservers: &[&str]) -> OrderOptions {
    OrderOptions {
        nameservers: nameservers.iter().map(|n| (*n).to_owned()).collect(),
        private: true,
        auto_renew: false,
        contact: None,
    }
}

#[tokio::test]
async fn a_registration_charges_once_and_is_never_repeated() {
    let ns = FakeNamesilo::new();
    let handle = ns.clone();
    ns.set_today("2026-03-01");
    assert!(ns.available("example.com").await.unwrap());
    let receipt = ns.register("example.com", 2, &options(&["NS1.Example.net.", "ns2.example.net"])).await.unwrap();
    assert_eq!((receipt.code, receipt.amount.as_deref()), (300, Some("21.90")));
    assert_eq!(handle.balance_cents(), START_BALANCE_CENTS - 2190);
    let info = handle.domain("example.com").unwrap();
    assert_eq!(info.expires, "2028-03-01");
    assert_eq!(info.nameservers, ["ns1.example.net", "ns2.example.net"]);
    assert!(info.locked && info.private && !info.auto_renew);
    assert_eq!(ns.domain_info("Example.COM").await.unwrap(), Some(info));

    let again = ns.register("example.com", 1, &options(&[])).await.unwrap_err();
    assert!(matches!(again, NamesiloError::Reply { code: 262, .. }), "{again}");
    assert_eq!(handle.balance_cents(), START_BALANCE_CENTS - 2190, "a refused order charged");
    assert!(!ns.available("example.com").await.unwrap());
    assert_eq!(handle.count("registerDomain"), 2);
    assert_eq!(handle.writes().len(), 2);
    assert_eq!(handle.paid().len(), 2);
    assert_eq!(handle.domains(), ["example.com"]);
    handle.clear_calls();
    assert!(ns.calls().is_empty());
}

#[tokio::test]
async fn a_name_held_by_someone_else_is_not_ours_and_cannot_be_bought() {
    let ns = FakeNamesilo::new();
    ns.insert_taken("taken.com");
    assert!(!ns.available("taken.com").await.unwrap());
    assert_eq!(ns.domain_info("taken.com").await.unwrap(), None);
    let err = ns.register("taken.com", 1, &options(&[])).await.unwrap_err();
    assert_eq!(err.to_string(), "Namesilo registerDomain: 261 Domain unavailable for registration.");
    assert_eq!(err.reason(), "NamesiloUnavailable");
    let err = ns.set_nameservers("taken.com", &["a.example.net".into(), "b.example.net".into()]).await.unwrap_err();
    assert!(matches!(err, NamesiloError::Reply { code: 200, .. }), "{err}");
    assert_eq!(ns.balance_cents(), START_BALANCE_CENTS);

    ns.set_balance_cents(500);
    let err = ns.register("free.com", 1, &options(&[])).await.unwrap_err();
    assert!(matches!(err, NamesiloError::Reply { code: 119, .. }), "{err}");
    assert!(ns.domain("free.com").is_none());
}

#[tokio::test]
async fn settings_renewals_and_a_transfer_change_what_the_registrar_reports() {
    let ns = FakeNamesilo::new();
    ns.set_today("2026-03-01");
    let info = ns.registered_info(1, &["ns1.owner.example", "ns2.owner.example"]);
    ns.insert_domain("orphan.com", info);
    ns.set_lock("orphan.com", true).await.unwrap();
    ns.set_lock("orphan.com", false).await.unwrap();
    ns.set_auto_renew("orphan.com", true).await.unwrap();
    let now = ns.domain("orphan.com").unwrap();
    assert!(!now.locked && now.auto_renew);
    ns.renew("orphan.com", 3).await.unwrap();
    assert_eq!(ns.domain("orphan.com").unwrap().expires, "2030-03-01");
    let err = ns.renew("orphan.com", 7).await.unwrap_err();
    assert!(matches!(err, NamesiloError::Reply { code: 264, .. }), "{err}");

    ns.insert_elsewhere("moving.com", "right", "2026-06-01", &["ns1.old.net", "ns2.old.net"]);
    assert_eq!(ns.transfer_status("moving.com").await.unwrap(), None);
    ns.transfer("moving.com", "wrong", &options(&[])).await.unwrap();
    let status = ns.transfer_status("moving.com").await.unwrap().unwrap();
    assert_eq!(status.status, "Incorrect Authorization Code");
    assert!(ns.complete_transfers().is_empty());
    ns.change_auth_code("moving.com", "right").await.unwrap();
    assert_eq!(ns.complete_transfers(), ["moving.com"]);
    assert!(ns.transfer_status("moving.com").await.unwrap().unwrap().completed());
    let moved = ns.domain("moving.com").unwrap();
    assert_eq!((moved.expires.as_str(), moved.nameservers.len()), ("2027-06-01", 2));
    assert_eq!(ns.balance_cents(), START_BALANCE_CENTS - 3 * YEAR_CENTS - TRANSFER_CENTS);
}

#[tokio::test]
async fn a_queued_reply_keeps_namesilos_code_and_detail_and_changes_nothing() {
    let ns = FakeNamesilo::new();
    ns.fail_next("registerDomain", 119, "Insufficient account funds for requested transaction");
    let err = ns.register("example.com", 1, &options(&[])).await.unwrap_err();
    assert_eq!(err.to_string(), "Namesilo registerDomain: 119 Insufficient account funds for requested transaction");
    assert!(ns.domain("example.com").is_none());
    assert_eq!(ns.balance_cents(), START_BALANCE_CENTS);
    ns.register("example.com", 1, &options(&[])).await.unwrap();
    ns.fail_next("domainUnlock", 253, "Domain is already Unlocked - No update made.");
    ns.set_lock("example.com", false).await.unwrap();
    assert!(ns.domain("example.com").unwrap().locked, "an answered 253 changed nothing");
    ns.fail_next_with("getDomainInfo", NamesiloError::Unreachable("timed out".into()));
    assert!(matches!(ns.domain_info("example.com").await, Err(NamesiloError::Unreachable(_))));
    assert_eq!(ns.count("registerDomain"), 2);
}
