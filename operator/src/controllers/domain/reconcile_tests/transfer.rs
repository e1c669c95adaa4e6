//! A transfer in, ordered once with the Secret's auth code.

use super::*;

fn auth_secret(code: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "example-com-auth", "namespace": NS},
        "stringData": {"code": code},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_transfer_is_ordered_once_with_the_secrets_auth_code_and_followed_to_completion() {
    let w = world(&[]);
    w.registrar.insert_elsewhere("example.com", "right-code", "2026-10-01", &OUR_NS);
    w.api.put(&auth_secret("wrong-code"));
    let d = w.put(&domain(
        "example-com",
        json!({"name": "example.com", "nameservers": OUR_NS,
               "registration": {"mode": "Transfer", "authCodeSecretRef": {"name": "example-com-auth", "key": "code"}}}),
    ));
    w.reconcile(&d, 4).await.unwrap();

    assert_eq!(w.registrar.count("transferDomain"), 1);
    let got = w.get("example-com");
    assert_eq!(phase_of(&got), Some(DomainPhase::Transferring));
    assert_eq!(shown(&got, REGISTERED).1, reasons::TRANSFER_AUTH_CODE_REJECTED.name);
    assert!(shown(&got, REGISTERED).2.contains("Incorrect Authorization Code"), "{:?}", shown(&got, REGISTERED));
    assert_eq!(w.warnings(reasons::TRANSFER_AUTH_CODE_REJECTED.name).len(), 1);

    // the customer corrects the code: it goes to the pending transfer, free
    w.api.put(&auth_secret("right-code"));
    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(w.registrar.count("transferUpdateChangeEPPCode"), 1);
    assert_eq!(w.registrar.count("transferDomain"), 1);
    let got = w.get("example-com");
    assert_eq!(shown(&got, REGISTERED).1, reasons::TRANSFER_PENDING.name);
    assert_eq!(got.status.as_ref().unwrap().transfer.as_ref().map(|t| t.state.as_str()), Some("Pending at Registry"));
    assert_eq!(w.normals(reasons::AUTH_CODE_UPDATED.name).len(), 1);

    assert_eq!(w.registrar.complete_transfers(), ["example.com"]);
    w.reconcile(&d, 2).await.unwrap();
    let got = w.get("example-com");
    assert_eq!(shown(&got, REGISTERED).1, reasons::TRANSFERRED.name);
    assert_eq!(shown(&got, "Ready").0, "True", "{:?}", got.status);
    assert_eq!(got.status.as_ref().unwrap().transfer.as_ref().map(|t| t.state.as_str()), Some("Transfer Completed"));
    assert_eq!(w.registrar.count("transferDomain"), 1);
    assert_eq!(w.registrar.paid().len(), 1);
}
