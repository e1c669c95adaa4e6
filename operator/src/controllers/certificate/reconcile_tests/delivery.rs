//! Delivery into CloudPods through the guest agent, only in the Certificate's namespace, and its retries.

use super::*;

/// The certificate goes into the CloudPods of deliverTo through the guest agent, byte for byte as
/// in the Secret, and the reload command runs; a resync writes it again nowhere.
#[tokio::test]
async fn the_certificate_is_delivered_into_a_cloudpod_through_the_agent() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod(NS, "vm-1", 4242));
    running_guest(&bed.pve, 4242);
    let reload = ["systemctl", "reload", "nginx"];
    let cert = certificate(NS, "example-com", json!({"deliverTo": [{"cloudPod": "vm-1", "reloadCommand": reload}]}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();

    let secret = bed.secret(NS, "example-com-tls").unwrap();
    let agent = bed.pve.agent(4242).unwrap();
    assert_eq!(agent.files.get("/etc/ssl/mpanel/example-com-tls/tls.key"), Some(&data(&secret, "tls.key")));
    assert_eq!(agent.files.get("/etc/ssl/mpanel/example-com-tls/fullchain.pem"), Some(&data(&secret, "tls.crt")));
    assert_eq!(agent.ran.last().map(|c| c.join(" ")), Some(reload.join(" ")));
    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("True", "Delivered"));
    assert!(message.contains("is in CloudPod vm-1"), "{message}");
    let deliveries = bed.status(&cert).deliveries;
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].vmid, deliveries[0].serial.clone()), (Some(4242), Some(serial_of(&secret))));

    bed.pve.clear_calls();
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.pve.calls().is_empty(), "already there: {:?}", bed.pve.calls());
}

/// A CloudPod of that name in another namespace is not a target: nothing is written into its guest.
#[tokio::test]
async fn another_namespaces_cloudpod_is_never_delivered_to() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod("customer-victim", "vm-1", 4343));
    running_guest(&bed.pve, 4343);
    let cert = certificate(NS, "example-com", json!({"deliverTo": [{"cloudPod": "vm-1"}]}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();
    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("False", reasons::CLOUD_POD_NOT_FOUND.name));
    assert!(message.contains("no CloudPod vm-1 in this namespace"), "{message}");
    assert!(bed.pve.calls().is_empty(), "{:?}", bed.pve.calls());
    assert!(bed.pve.agent(4343).unwrap().files.is_empty());
    assert_eq!(bed.warnings(&cert, reasons::CLOUD_POD_NOT_FOUND.name).len(), 1);
}

/// A reload command failing in the guest: its stderr in Delivered and a Warning Event; the target
/// waits for its backoff, then gets the certificate once the command works.
#[tokio::test]
async fn a_failed_delivery_shows_the_guests_words_and_is_retried_after_its_backoff() {
    let bed = Bed::example().await;
    bed.api.put(&cloud_pod(NS, "vm-1", 4242));
    running_guest(&bed.pve, 4242);
    let stderr = "Job for nginx.service failed because the control process exited with error code.";
    let mut agent = bed.pve.agent(4242).unwrap();
    let failing = ExecStatus { exited: true, exitcode: Some(1), signal: None, err_data: Some(stderr.to_owned()) };
    agent.exec.insert("systemctl reload nginx".into(), failing);
    bed.pve.set_agent(4242, Some(agent));
    let reload = ["systemctl", "reload", "nginx"];
    let cert = certificate(NS, "example-com", json!({"deliverTo": [{"cloudPod": "vm-1", "reloadCommand": reload}]}));
    bed.api.put(&cert);
    bed.issue(&cert).await;
    bed.reconcile(&cert).await.unwrap();

    let (delivered, reason, message) = shown(bed.condition(&cert, "Delivered"));
    assert_eq!((delivered.as_str(), reason.as_str()), ("False", "GuestCommandFailed"));
    assert!(message.starts_with("CloudPod vm-1: ") && message.contains(stderr), "{message}");
    assert_eq!(bed.status(&cert).deliveries[0].failed_attempts, Some(1));
    let warned = bed.warnings(&cert, "GuestCommandFailed");
    assert_eq!(warned.len(), 1);
    assert!(warned[0].note.contains(stderr), "{warned:?}");
    assert_eq!(shown(bed.ready(&cert)).0, "True", "the certificate itself is fine");

    // within the backoff: the guest is left alone
    bed.pve.clear_calls();
    bed.reconcile(&cert).await.unwrap();
    assert!(bed.pve.calls().is_empty(), "{:?}", bed.pve.calls());
    // after it, with the service fixed: delivered
    let mut agent = bed.pve.agent(4242).unwrap();
    agent.exec.clear();
    bed.pve.set_agent(4242, Some(agent));
    bed.ctx.clock.advance(SignedDuration::from_secs(10));
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(shown(bed.condition(&cert, "Delivered")).0, "True");
    assert_eq!(bed.status(&cert).deliveries[0].failed_attempts, None);
}
