//! Proxmox tasks and calls that fail are shown with Proxmox's own words.

use super::*;

/// A task that fails is reported with Proxmox's exit status verbatim, in the condition of its
/// operation and a Warning Event.
#[tokio::test]
async fn a_failed_clone_task_is_shown_verbatim() {
    let w = World::new(pod_with(spec()));
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    let upid = w.status().task_ref.expect("a clone in flight").upid;
    let exit = "clone failed: lvcreate 'pve/vm-200-disk-0' error: Insufficient free space";
    assert!(w.px.finish_task(&upid, Err(exit)));

    let err = w.once().await.unwrap_err();
    assert!(matches!(&err, Error::Task { message, .. } if message == exit), "{err:?}");
    let cloned = w.condition(CLONED).unwrap();
    assert_eq!((cloned.status.as_str(), cloned.reason.as_str()), ("False", "ProxmoxTaskFailed"));
    assert!(cloned.message.contains(exit), "{}", cloned.message);
    assert_eq!(w.status().phase, Some(CloudPodPhase::Failed));
    assert_eq!(w.status().task_ref, None);
    assert!(w.warnings().iter().any(|(r, note)| r == "ProxmoxTaskFailed" && note.contains(exit)), "{:?}", w.warnings());
}

/// A Proxmox call that fails is shown with Proxmox's words, and a Warning Event is recorded.
#[tokio::test]
async fn a_proxmox_error_is_shown_verbatim_in_the_condition() {
    let w = World::new(pod_with(spec()));
    w.once().await.unwrap();
    let words = "unable to create CT 200 - storage 'local-lvm' is not online";
    w.px.fail_next("clone", words);
    assert!(w.once().await.is_err());
    let cloned = w.condition(CLONED).unwrap();
    assert_eq!(cloned.status, "False");
    assert!(cloned.message.contains(words), "{}", cloned.message);
    let ready = w.condition("Ready").unwrap();
    assert!(ready.message.contains(words), "{}", ready.message);
    assert!(w.warnings().iter().any(|(_, note)| note.contains(words)), "{:?}", w.warnings());
    assert!(w.px.guest(FIRST).is_none());

    // the next attempt clones
    w.converge(6).await;
    assert_eq!(w.px.count("clone"), 2);
}

/// A start task that fails is shown verbatim in Started, with a Warning Event.
#[tokio::test]
async fn a_failed_start_is_shown_verbatim_in_started() {
    let w = World::new(pod_with(spec()));
    for _ in 0..3 {
        w.once().await.unwrap();
    }
    w.px.finish_all_tasks();
    w.once().await.unwrap();
    let task = w.status().task_ref.expect("a start in flight");
    assert_eq!(task.operation, TaskOperation::Start);
    let exit = "startup for container '200' failed";
    assert!(w.px.finish_task(&task.upid, Err(exit)));
    assert!(w.once().await.is_err());
    let started = w.condition(STARTED).unwrap();
    assert_eq!((started.status.as_str(), started.reason.as_str()), ("False", "ProxmoxTaskFailed"));
    assert!(started.message.contains(exit), "{}", started.message);
    assert!(w.warnings().iter().any(|(_, note)| note.contains(exit)), "{:?}", w.warnings());
}
