//! The reconcile modes: ObserveOnly, Paused and an invalid mode.

use super::*;

/// ObserveOnly reports the guest as it is (out of sync, stopped) and never changes its config or
/// power state; back in Reconcile, both are put right.
#[tokio::test]
async fn observe_only_reports_the_guest_as_it_is_and_changes_nothing() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.set_annotation(Some("ObserveOnly"));
    w.px.edit_guest(FIRST, |g| g.status = "stopped".into());
    w.px.clear_calls();
    w.once().await.unwrap();
    let ready = w.condition("Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("ObserveOnly: not changed"), "{}", ready.message);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Stopped));
    assert_eq!(w.condition(STARTED).map(|c| c.status), Some("False".into()));

    w.px.edit_guest(FIRST, |g| g.set("cores", "6"));
    w.once().await.unwrap();
    let ready = w.condition("Ready").unwrap();
    assert_eq!(ready.reason, "OutOfSync");
    assert!(ready.message.contains("cores") && ready.message.contains("not written"), "{}", ready.message);
    assert!(w.px.writes().is_empty(), "{:?}", w.px.writes());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("stopped".into()));

    // back in Reconcile: both are put right
    w.set_annotation(None);
    w.converge(6).await;
    assert_eq!(w.px.guest(FIRST).map(|g| (g.get("cores"), g.status)), Some((Some("2".into()), "running".into())));
}

/// ObserveOnly on a CloudPod with no guest reports it not created and reserves nothing.
#[tokio::test]
async fn observe_only_without_a_guest_creates_nothing() {
    let mut pod = pod_with(spec());
    pod.metadata.annotations = Some(BTreeMap::from([(RECONCILE_MODE_ANNOTATION.to_owned(), "ObserveOnly".into())]));
    let w = World::new(pod);
    w.once().await.unwrap();
    w.once().await.unwrap();
    assert_eq!(w.status().vmid, None);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Pending));
    assert_eq!(w.condition("Ready").map(|c| c.reason), Some("NotCreated".into()));
    assert!(w.px.writes().is_empty());
}

/// Paused does nothing at all; an annotation that is not a mode is reported and nothing is done.
#[tokio::test]
async fn paused_does_nothing_and_an_invalid_mode_is_reported() {
    let w = World::new(pod_with(spec()));
    w.converge(10).await;
    w.set_annotation(Some("Paused"));
    w.px.edit_guest(FIRST, |g| g.status = "stopped".into());
    w.px.clear_calls();
    let writes = w.api.writes();
    w.once().await.unwrap();
    assert!(w.px.calls().is_empty(), "{:?}", w.px.calls());
    assert_eq!(w.api.writes(), writes);

    w.set_annotation(Some("Sometimes"));
    w.once().await.unwrap();
    let ready = w.condition("Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidReconcileMode"));
    assert!(ready.message.contains("Sometimes"), "{}", ready.message);
    assert!(w.px.calls().is_empty(), "{:?}", w.px.calls());
    assert_eq!(w.px.guest(FIRST).map(|g| g.status), Some("stopped".into()));
}
