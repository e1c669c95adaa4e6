//! Failures of the CA, PowerDNS and the Kubernetes API: shown in their words, retried or backed off.

use super::*;

/// An invalid order shows the CA's problem verbatim, its records come out, and the next order
/// waits for the backoff of the failed attempts.
#[tokio::test]
async fn an_invalid_order_shows_the_cas_words_and_backs_off() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    bed.listener.set_serving(false);
    bed.reconcile(&cert).await.unwrap();
    assert!(!bed.challenge_txt().is_empty());
    let url = bed.status(&cert).order_url.unwrap();
    let detail = "Incorrect TXT record \"nope\" found at _acme-challenge.example.com";
    bed.ca.fail_order(&url, detail);

    let next = bed.reconcile(&cert).await.unwrap();
    assert_eq!(next, Action::requeue(Duration::from_secs(5)), "retried after 5 s");
    let status = bed.status(&cert);
    assert_eq!(status.failed_attempts, Some(1));
    assert_eq!(status.order_url, None);
    assert_eq!(status.phase, Some(CertificatePhase::Failed));
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("False", reasons::ORDER_FAILED.name));
    assert_eq!(message, format!("order {url} failed: {detail}"));
    assert_eq!(shown(bed.ready(&cert)).0, "False");
    assert!(bed.challenge_txt().is_empty(), "the challenge records came out");
    let warned = bed.warnings(&cert, reasons::ORDER_FAILED.name);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].note.contains(detail), "{warned:?}");

    // within the backoff: no order
    bed.reconcile(&cert).await.unwrap();
    assert_eq!(bed.ca.count("new_order"), 1);
    assert_eq!(shown(bed.issuing(&cert)).1, reasons::ORDER_FAILED.name, "the failure stays readable");
    // after it: ordered again, and issued
    bed.ctx.clock.advance(SignedDuration::from_secs(10));
    bed.listener.set_serving(true);
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 2);
    assert_eq!(bed.status(&cert).failed_attempts, None);
}

/// A rate-limited order is a failed attempt with the CA's words.
#[tokio::test]
async fn a_rate_limited_order_is_shown_verbatim() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    let detail = "too many certificates (5) already issued for this exact set of domains in the last 168h0m0s";
    bed.ca.rate_limit_next("new_order", detail);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!((issuing.as_str(), reason.as_str()), ("False", "AcmeRateLimited"));
    assert!(message.contains(detail), "{message}");
    assert_eq!(bed.status(&cert).failed_attempts, Some(1));
    assert!(bed.ca.orders().is_empty());
    assert_eq!(bed.warnings(&cert, "AcmeRateLimited").len(), 1);
}

/// PowerDNS refusing the challenge record: its words in Issuing and a Warning Event; the order
/// stays in flight and goes on once PowerDNS takes the record.
#[tokio::test]
async fn a_powerdns_failure_is_shown_verbatim_and_the_order_goes_on() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.reconcile(&cert).await.unwrap();
    bed.reconcile(&cert).await.unwrap();
    let words = "RRset _acme-challenge.example.com. IN TXT: Conflicts with pre-existing RRset";
    bed.dns.fail_next("patch_rrsets", words);
    let failed = bed.reconcile(&cert).await.unwrap_err();
    assert!(failed.to_string().contains(words), "{failed}");
    let (issuing, reason, message) = shown(bed.issuing(&cert));
    assert_eq!(issuing, "True", "still issuing");
    assert_eq!(reason, failed.reason());
    assert!(message.contains(words), "{message}");
    assert!(bed.events(&cert).iter().any(|e| e.type_ == "Warning" && e.note.contains(words)));
    assert!(bed.status(&cert).order_url.is_some(), "the order stays in flight");
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 1);
}

/// The Kubernetes API failing to take the Secret: the reconcile fails with its words, and the next
/// one stores the chain of the same order.
#[tokio::test]
async fn a_failed_secret_write_is_retried_with_the_same_order() {
    let bed = Bed::example().await;
    let cert = certificate(NS, "example-com", json!({}));
    bed.api.put(&cert);
    bed.api.fail_next("PATCH", "secrets/example-com-tls", 500, "etcdserver: request timed out");
    let mut failure = None;
    for _ in 0..8 {
        if let Err(e) = bed.reconcile(&cert).await {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("the Secret write failed");
    assert_eq!(failure.reason(), "KubernetesApiError");
    assert!(failure.to_string().contains("etcdserver: request timed out"), "{failure}");
    assert!(bed.secret(NS, "example-com-tls").is_none());
    bed.issue(&cert).await;
    assert_eq!(bed.ca.count("new_order"), 1, "the same order");
    assert!(bed.secret(NS, "example-com-tls").is_some());
}
