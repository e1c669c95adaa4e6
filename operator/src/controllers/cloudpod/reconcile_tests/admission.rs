//! What the operator refuses before anything is made: networks, templates and addresses not allowed,
//! and pool addresses given out.

use super::*;

/// A bridge or template the operator configuration does not allow is refused before any VMID is
/// reserved or anything is cloned.
#[tokio::test]
async fn a_network_or_template_not_allowed_is_refused_and_nothing_is_made() {
    for (field, value, reason) in [
        ("bridge", json!("vmbr9"), "NetworkNotAllowed"),
        ("vlan", json!(300), "NetworkNotAllowed"),
        ("template", json!("tmpl-other"), "TemplateNotAllowed"),
    ] {
        let mut s = spec();
        match field {
            "template" => s["template"] = value,
            _ => s["network"][field] = value,
        }
        let w = World::new(pod_with(s));
        w.once().await.unwrap();
        w.once().await.unwrap();
        let configured = w.condition(CONFIGURED).expect("refused in Configured");
        assert_eq!((configured.status.as_str(), configured.reason.as_str()), ("False", reason), "{field}");
        assert_eq!(w.status().vmid, None, "{field}");
        assert_eq!(w.status().phase, Some(CloudPodPhase::Failed), "{field}");
        assert!(w.warnings().iter().any(|(r, _)| r == reason), "{field}: {:?}", w.warnings());
        assert!(w.px.writes().is_empty(), "{field}: {:?}", w.px.writes());
    }
}

/// A static address inside a pool the operator gives out is refused.
#[tokio::test]
async fn a_static_address_inside_a_pool_is_refused() {
    let mut s = spec();
    s["network"]["ipv4"] = json!({"address": "203.0.113.150/24", "gateway": "203.0.113.1"});
    let w = World::new(pod_with(s));
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.condition(CONFIGURED).map(|c| c.reason), Some("AddressInPool".into()));
    assert!(w.px.writes().is_empty());
}

/// A pool address is given out once and kept in the status.
#[tokio::test]
async fn a_pool_address_is_given_out_and_configured() {
    let mut s = spec();
    s["network"]["ipv4"] = json!({"pool": "public"});
    let w = World::new(pod_with(s));
    w.converge(10).await;
    assert_eq!(w.status().ip_address.as_deref(), Some("203.0.113.100"));
    assert!(w.px.guest(FIRST).unwrap().get("net0").unwrap().contains("ip=203.0.113.100/24,gw=203.0.113.1"));
}

/// A static address another customer's CloudPod already has is refused, without naming that
/// CloudPod or its namespace, and nothing is made in Proxmox.
#[tokio::test]
async fn an_address_another_customers_cloudpod_holds_is_refused_without_naming_it() {
    let mut theirs = pod_with(spec());
    theirs.metadata.name = Some("their-shop".into());
    theirs.metadata.namespace = Some("customer-other".into());
    theirs.metadata.uid = Some("their-uid".into());
    theirs.status = Some(CloudPodStatus {
        vmid: Some(FIRST + 5),
        ip_address: Some("198.51.100.10".into()),
        ..CloudPodStatus::default()
    });
    let w = World::with(pod_with(spec()), |st| st.cloudpods = testing::store_of(&[theirs]));
    w.once().await.unwrap();
    w.once().await.unwrap();
    let status = w.stored().status.unwrap();
    let configured = status.conditions.iter().find(|c| c.type_ == CONFIGURED).expect("refused in Configured");
    assert_eq!((configured.status.as_str(), configured.reason.as_str()), ("False", "AddressInUse"));
    assert!(
        !configured.message.contains("their-shop") && !configured.message.contains("customer-other"),
        "{}",
        configured.message
    );
    assert_eq!(status.vmid, None);
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
}
