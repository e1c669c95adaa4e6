//! The Domain's DNSZone: created, owned and gating Ready; another's zone left alone.

use super::*;

fn with_zone(d: Domain) -> Domain {
    let mut d = d;
    d.spec.dns = serde_json::from_value(json!({"createZone": true})).unwrap();
    d
}

#[tokio::test]
async fn its_dns_zone_is_created_owned_and_gates_ready() {
    let w = world(&[]);
    let d = w.put(&with_zone(register("2027-06-01")));
    w.reconcile(&d, 4).await.unwrap();

    let zone: DnsZone = w.api.get(NS, "example-com").expect("the DnsZone was created");
    let owner = &zone.owner_references()[0];
    assert_eq!((owner.kind.as_str(), Some(&owner.uid), owner.controller), ("Domain", d.uid().as_ref(), Some(true)));
    assert_eq!(zone.spec.zone, "example.com");
    let got = w.get("example-com");
    assert_eq!(shown(&got, ZONE_READY).1, reasons::WAITING.name);
    assert_eq!(shown(&got, "Ready").0, "False");
    assert_eq!(got.status.as_ref().unwrap().zone_ref.as_deref(), Some("example-com"));

    // the DnsZone controller serves it
    let mut served = zone.clone();
    served.status =
        serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Served",
        "message": "served", "lastTransitionTime": testing::T0, "observedGeneration": zone.metadata.generation}]}))
        .unwrap();
    w.api.put(&served);
    w.reconcile(&d, 1).await.unwrap();
    let got = w.get("example-com");
    assert_eq!(shown(&got, ZONE_READY).0, "True");
    assert_eq!(shown(&got, "Ready").0, "True");
}

#[tokio::test]
async fn an_existing_dns_zone_not_its_own_is_reported_and_left_untouched() {
    let w = world(&[]);
    let foreign: DnsZone = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "example-com", "namespace": NS},
        "spec": {"zone": "example.com.", "nameservers": ["ns1.hand.example.", "ns2.hand.example."]}
    }))
    .unwrap();
    w.api.put(&foreign);
    let before: Value = serde_json::to_value(w.api.get::<DnsZone>(NS, "example-com").unwrap()).unwrap();
    let d = w.put(&with_zone(register("2027-06-01")));
    w.reconcile(&d, 4).await.unwrap();

    let got = w.get("example-com");
    assert_eq!(shown(&got, ZONE_READY).1, reasons::ZONE_OWNED_ELSEWHERE.name);
    assert!(shown(&got, ZONE_READY).2.contains("not this Domain's"));
    assert_eq!(shown(&got, "Ready").0, "False");
    let after: Value = serde_json::to_value(w.api.get::<DnsZone>(NS, "example-com").unwrap()).unwrap();
    assert_eq!(after, before, "a DnsZone that is not the Domain's was changed");
}
