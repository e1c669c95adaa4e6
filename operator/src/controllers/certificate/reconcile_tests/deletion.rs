//! Deletion: the Secret removed or orphaned, challenge records taken out, the finalizer released.

use super::*;

/// `deletionPolicy: Delete` removes the Secret; the finalizer goes and the Certificate with it.
#[tokio::test]
async fn deletion_policy_delete_removes_the_secret() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"deletionPolicy": "Delete"}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    assert!(bed.stored(&cert).finalizers().iter().any(|f| f == mpanel_crds::FINALIZER));
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    assert!(bed.secret(NS, "example-com-tls").is_none(), "the Secret was deleted");
}

/// `deletionPolicy: Orphan` keeps the Secret without the owner reference; a new Certificate of the
/// same name adopts it (its label) without ordering.
#[tokio::test]
async fn deletion_policy_orphan_keeps_the_secret_and_a_new_certificate_adopts_it() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"deletionPolicy": "Orphan"}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    let serial = serial_of(&bed.secret(NS, "example-com-tls").unwrap());
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    let kept = bed.secret(NS, "example-com-tls").expect("the Secret stays");
    assert!(kept.owner_references().is_empty(), "{:?}", kept.owner_references());

    let again = certificate(NS, "example-com", json!({}));
    bed.api.put(&again);
    for _ in 0..2 {
        bed.reconcile(&again).await.unwrap();
    }
    let (ready, reason, _) = shown(bed.ready(&again));
    assert_eq!((ready.as_str(), reason.as_str()), ("True", reasons::ISSUED.name));
    assert_eq!(shown(bed.issuing(&again)).1, reasons::UP_TO_DATE.name);
    assert_eq!(bed.ca.count("new_order"), 1, "adopted, not ordered again");
    assert_eq!(serial_of(&bed.secret(NS, "example-com-tls").unwrap()), serial);
}

/// Deleting a Certificate whose order is in flight takes its challenge values out of PowerDNS.
#[tokio::test]
async fn deleting_during_an_order_removes_its_challenge_records() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({"deletionPolicy": "Delete"}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    bed.listener.set_serving(false);
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(bed.challenge_txt().len(), 2);
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    assert!(bed.challenge_txt().is_empty(), "{:?}", bed.challenge_txt());
}

/// An issuer taken out of the configuration does not keep a Certificate with an order in flight
/// from going away: the finalizer goes, with a Warning that records may remain.
#[tokio::test]
async fn deleting_with_an_issuer_no_longer_configured_still_releases_the_certificate() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let url = bed.status(&cert).order_url.unwrap();
    let mut gone = bed.stored(&cert);
    gone.spec.issuer = "retired".into();
    bed.api.put(&gone);
    bed.api.delete::<Certificate>(NS, "example-com");
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.api.get::<Certificate>(NS, "example-com").is_none(), "the finalizer went");
    let warned = bed.warnings(&cert, reasons::UNKNOWN_ISSUER.name);
    assert_eq!(warned.len(), 1, "{:?}", bed.events(&cert));
    assert!(warned[0].note.contains(&format!("challenge records of order {url} may remain")), "{warned:?}");
}
