//! Deleting a CloudPod: the guest stopped and destroyed, or orphaned.

use super::*;

/// Deletion stops, then destroys the guest, each a task; a destroy in flight is a wait (the
/// `Destroying` reason), not a failure, and the finalizer goes once the guest is gone.
#[tokio::test]
async fn deletion_stops_then_destroys_and_waits_without_failing() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.api.delete::<CloudPod>(NS, NAME);

    let err = w.once().await.unwrap_err();
    assert!(matches!(err, Error::Destroying), "{err:?}");
    assert_eq!(err.reason(), "Destroying");
    assert_eq!(err.waiting(), Some(POLL));
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Stop));
    assert_eq!(w.status().phase, Some(CloudPodPhase::Deleting));
    // still running: a wait
    assert!(matches!(w.once().await.unwrap_err(), Error::Destroying));
    w.px.finish_all_tasks();

    assert!(matches!(w.once().await.unwrap_err(), Error::Destroying));
    assert_eq!(w.status().task_ref.map(|t| t.operation), Some(TaskOperation::Destroy));
    w.px.finish_all_tasks();
    assert!(w.px.guest(FIRST).is_none());

    w.once().await.unwrap();
    assert!(w.api.get::<CloudPod>(NS, NAME).is_none(), "the finalizer went");
    assert!(w.warnings().is_empty(), "a deletion is no failure: {:?}", w.warnings());
}

/// `deletionPolicy: Orphan` leaves the guest running where it is; the finalizer goes.
#[tokio::test]
async fn deletion_with_orphan_leaves_the_guest() {
    let mut s = spec();
    s["deletionPolicy"] = json!("Orphan");
    let w = World::new(pod_with(s));
    w.converge(10).await;
    w.api.delete::<CloudPod>(NS, NAME);
    w.px.clear_calls();
    w.once().await.unwrap();
    assert!(w.api.get::<CloudPod>(NS, NAME).is_none());
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("running".into()));
}
