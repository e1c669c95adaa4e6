//! Deleting a Domain: auto-renew off, or the registration orphaned.

use super::*;

#[tokio::test]
async fn deleting_with_delete_turns_auto_renew_off_and_orphan_leaves_the_registration() {
    for (policy, auto_renew_after) in [("Delete", false), ("Orphan", true)] {
        let w = world(&[]);
        let mut d = register("2027-06-01");
        d.spec.registration.auto_renew = true;
        d.spec.deletion_policy = serde_json::from_value(json!(policy)).unwrap();
        let d = w.put(&d);
        w.reconcile(&d, 4).await.unwrap();
        assert!(w.registrar.domain("example.com").unwrap().auto_renew);

        w.registrar.clear_calls();
        w.api.delete::<Domain>(NS, "example-com");
        w.reconcile(&d, 1).await.unwrap();
        assert!(w.api.get::<Domain>(NS, "example-com").is_none(), "{policy}: the finalizer stayed");
        let info = w.registrar.domain("example.com").expect("a registration cannot be undone");
        assert_eq!(info.auto_renew, auto_renew_after, "{policy}");
        let off = w.normals(reasons::AUTO_RENEW_OFF.name);
        assert_eq!(off.len(), usize::from(!auto_renew_after), "{policy}: {off:?}");
        if auto_renew_after {
            assert_eq!(w.registrar.writes(), vec![], "{policy}");
        }
    }
}

#[tokio::test]
async fn deleting_a_domain_that_never_managed_its_registration_changes_nothing() {
    let w = world(&[]);
    let mut info = w.registrar.registered_info(1, &OUR_NS);
    info.auto_renew = true;
    w.registrar.insert_domain("example.com", info);
    let mut d = register("2027-06-01");
    d.spec.deletion_policy = serde_json::from_value(json!("Delete")).unwrap();
    let d = w.put(&d);
    w.reconcile(&d, 3).await.unwrap();
    assert_eq!(shown(&w.get("example-com"), REGISTERED).1, reasons::REGISTRATION_NOT_ADOPTED.name);

    w.api.delete::<Domain>(NS, "example-com");
    w.reconcile(&d, 1).await.unwrap();
    assert!(w.api.get::<Domain>(NS, "example-com").is_none());
    assert!(w.registrar.domain("example.com").unwrap().auto_renew, "someone else's registration was changed");
    assert_eq!(w.registrar.writes(), vec![]);
}
