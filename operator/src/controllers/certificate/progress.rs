//! The order in flight, moved one step on per reconcile: challenges answered while it is pending,
//! finalised with a CSR once ready, the chain collected once valid, given up once invalid.
//!
//! After a step that leaves the order to the CA (challenges answered, CSR sent), the reconcile
//! follows the order for a few seconds on a short schedule ([`FOLLOW`], one request each) and ends
//! as soon as the CA has moved it on, so the next step follows at once instead of after `POLL`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::runtime::controller::Action;
use mpanel_crds::certificate::{Certificate, CertificatePhase};
use mpanel_crds::conditions::{Observation, READY};
use mpanel_crds::formats::parse_duration;
use mpanel_crds::reasons;

use super::challenges::{answer_challenges, remove_challenges};
use super::dns01::Dns01Error;
use super::issuers::AcmeAccounts;
use super::keys;
use super::observe::{Current, unserved_names};
use super::secrets::{delete_next_key, next_key_name, order_key, write_tls_secret};
use super::{
    Account, Context, DEFAULT_RENEW_BEFORE, Error, ISSUING, POLL, Providers, Step, attempt_failed, publish,
    resync_after, until,
};
use crate::providers::acme::{AcmeApi, AcmeError, OrderPhase, OrderView};

/// The delays before asking the CA again about an order it works on, within one reconcile: soon
/// at first (a CA that is not busy validates or issues within a second), then less often; 2.9 s in
/// all, after which the order is looked at again on `POLL`.
pub(super) const FOLLOW: [Duration; 6] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(300),
    Duration::from_millis(500),
    Duration::from_millis(800),
    Duration::from_millis(1000),
];

/// Follows the order at `url` on the [`FOLLOW`] schedule while it is in `phase`; returns the phase
/// it moved on to, or `phase` when the schedule ran out.
pub(super) async fn follow<A: AcmeApi>(acme: &A, url: &str, phase: OrderPhase) -> Result<OrderPhase, AcmeError> {
    for delay in FOLLOW {
        tokio::time::sleep(delay).await;
        let now = acme.phase(url).await?;
        if now != phase {
            return Ok(now);
        }
    }
    Ok(phase)
}

/// Right away when the order moved on from `waited` (the next step is due), else after `POLL`.
fn next_look(waited: OrderPhase, now: OrderPhase) -> Action {
    if now == waited { Action::requeue(POLL) } else { Action::requeue(Duration::ZERO) }
}

/// The order in flight and the Certificate it is for.
struct InFlight<'a, P: Providers> {
    api: &'a Api<Certificate>,
    cert: &'a Certificate,
    ctx: &'a Context<P>,
    order_url: &'a str,
    /// A certificate still serves while this order runs.
    usable: bool,
}

impl<P: Providers> InFlight<'_, P> {
    /// The order is over without a certificate: recorded as a failed attempt.
    async fn failed(&self, mut step: Step, reason: &str, message: String) -> Result<Action, Error> {
        step.status.order_url = None;
        attempt_failed(self.api, self.cert, step, reason, message, self.usable, self.ctx).await
    }
}

/// Moves the order in flight one step on.
pub(super) async fn progress<P: Providers>(
    api: &Api<Certificate>,
    cert: &Certificate,
    step: Step,
    order_url: &str,
    current: Option<Current>,
    usable: bool,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let order = InFlight { api, cert, ctx, order_url, usable };
    let acme = ctx.issuers.account(&cert.spec.issuer).await?;
    let view = match acme.order(order_url).await {
        Ok(view) => view,
        Err(e) if e.is_order_gone() => {
            let message = format!("the CA no longer knows order {order_url}: {e}");
            return order.failed(step, e.reason(), message).await;
        }
        Err(e) => return Err(e.into()),
    };
    match view.phase {
        OrderPhase::Pending => pending(&order, step, &view, acme.as_ref()).await,
        OrderPhase::Ready => finalise(&order, step, current.as_ref(), acme.as_ref()).await,
        OrderPhase::Processing => {
            let now = follow(acme.as_ref(), order_url, OrderPhase::Processing).await?;
            Ok(next_look(OrderPhase::Processing, now))
        }
        OrderPhase::Valid => collect(&order, step, &view, current.as_ref(), acme.as_ref()).await,
        OrderPhase::Invalid => invalid(&order, step, &view).await,
    }
}

/// Answers the challenges, or says what the order waits for.
async fn pending<P: Providers>(
    order: &InFlight<'_, P>,
    mut step: Step,
    view: &OrderView,
    acme: &Account<P>,
) -> Result<Action, Error> {
    let (cert, ctx) = (order.cert, order.ctx);
    let waiting = match answer_challenges(cert, view, acme, ctx).await {
        // the namespace lost its name while the order was in flight: the order is given up
        Err(Error::Dns01(e @ Dns01Error::NotGranted { .. })) => {
            remove_challenges(cert, view, ctx).await?;
            let message = format!("order {} given up: {e}", order.order_url);
            return order.failed(step, e.reason(), message).await;
        }
        other => other?,
    };
    let message = if waiting.is_empty() {
        "the CA is validating the DNS-01 challenges".to_owned()
    } else {
        format!("waiting for PowerDNS to serve {}", waiting.join(", "))
    };
    step.set(Observation::new(ISSUING, true, reasons::VALIDATING.name, message));
    step.status.phase = Some(CertificatePhase::Issuing);
    step.write(order.api, cert).await?;
    if !waiting.is_empty() {
        return Ok(Action::requeue(POLL));
    }
    let now = follow(acme, order.order_url, OrderPhase::Pending).await?;
    Ok(next_look(OrderPhase::Pending, now))
}

/// Finalises the order with a CSR for the order's key.
async fn finalise<P: Providers>(
    order: &InFlight<'_, P>,
    mut step: Step,
    current: Option<&Current>,
    acme: &Account<P>,
) -> Result<Action, Error> {
    let (cert, order_url) = (order.cert, order.order_url);
    let key = order_key(cert, current, &next_key_name(cert), order.ctx, true).await?;
    let Some(key) = key else {
        return Ok(Action::requeue(POLL));
    };
    let csr = keys::csr(&cert.spec.dns_names, &key)?;
    acme.finalize(order_url, &csr).await?;
    step.set(Observation::new(ISSUING, true, reasons::FINALIZING.name, format!("order {order_url} finalised")));
    step.write(order.api, cert).await?;
    let now = follow(acme, order_url, OrderPhase::Processing).await?;
    Ok(next_look(OrderPhase::Processing, now))
}

/// Stores the issued chain with the order's key, then tidies up after the order.
async fn collect<P: Providers>(
    order: &InFlight<'_, P>,
    mut step: Step,
    view: &OrderView,
    current: Option<&Current>,
    acme: &Account<P>,
) -> Result<Action, Error> {
    let (cert, ctx, order_url) = (order.cert, order.ctx, order.order_url);
    let next_key = next_key_name(cert);
    let Some(key) = order_key(cert, current, &next_key, ctx, false).await? else {
        let message = format!("the private key of order {order_url} was lost; ordering again");
        return order.failed(step, reasons::KEY_LOST.name, message).await;
    };
    let chain = acme.certificate(order_url).await?;
    let issued = keys::inspect(chain.as_bytes(), &key)?;
    if !issued.key_matches {
        let message = "the CA's certificate is not for the private key of the order".to_owned();
        return order.failed(step, reasons::KEY_MISMATCH.name, message).await;
    }
    write_tls_secret(cert, &chain, &key, ctx).await?;
    remove_challenges(cert, view, ctx).await?;
    delete_next_key(cert, &next_key, ctx).await?;
    let renew_before = parse_duration(&cert.spec.renew_before).unwrap_or(DEFAULT_RENEW_BEFORE);
    let renewal = keys::renewal_time(issued.not_before, issued.not_after, renew_before);
    step.status.order_url = None;
    step.status.failed_attempts = None;
    step.status.not_before = Some(Time(issued.not_before));
    step.status.not_after = Some(Time(issued.not_after));
    step.status.renewal_time = Some(Time(renewal));
    step.status.phase = Some(CertificatePhase::Ready);
    let message = format!(
        "certificate {} issued for {}, valid until {}; challenge records removed",
        issued.serial,
        cert.spec.dns_names.join(", "),
        issued.not_after
    );
    step.set(Observation::new(
        READY,
        true,
        reasons::ISSUED.name,
        format!("certificate valid until {}", issued.not_after),
    ));
    step.set(Observation::new(ISSUING, false, reasons::ISSUED.name, message.clone()));
    publish(&ctx.recorder, cert, false, reasons::ISSUED.name, "Issue", message).await;
    step.write(order.api, cert).await?;
    Ok(Action::requeue(until(renewal, ctx.clock.now()).min(resync_after(cert, ctx.resync)).max(Duration::from_secs(1))))
}

/// The CA refused the order: its challenge records come out and the attempt counts as failed.
async fn invalid<P: Providers>(order: &InFlight<'_, P>, step: Step, view: &OrderView) -> Result<Action, Error> {
    let (cert, ctx, order_url) = (order.cert, order.ctx, order.order_url);
    remove_challenges(cert, view, ctx).await?;
    let problem = view.problem.clone().unwrap_or_else(|| "the CA gave no reason".to_owned());
    let served = unserved_names(cert, ctx);
    let message = if served.is_empty() {
        format!("order {order_url} failed: {problem}")
    } else {
        format!("order {order_url} failed: {problem} (no DnsZone in this namespace serves {})", served.join(", "))
    };
    order.failed(step, reasons::ORDER_FAILED.name, message).await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A CA whose order moves on after `asked_until_moved` questions about its phase.
    struct Ca {
        asked: Mutex<Vec<tokio::time::Instant>>,
        moves_after: usize,
    }

    impl AcmeApi for Ca {
        async fn new_order(&self, _: &[String]) -> Result<OrderView, AcmeError> {
            unreachable!()
        }
        async fn order(&self, _: &str) -> Result<OrderView, AcmeError> {
            unreachable!()
        }
        async fn phase(&self, _: &str) -> Result<OrderPhase, AcmeError> {
            let mut asked = self.asked.lock().unwrap();
            asked.push(tokio::time::Instant::now());
            Ok(if asked.len() >= self.moves_after { OrderPhase::Ready } else { OrderPhase::Pending })
        }
        async fn answer(&self, _: &str, _: &str) -> Result<(), AcmeError> {
            unreachable!()
        }
        async fn finalize(&self, _: &str, _: &[u8]) -> Result<(), AcmeError> {
            unreachable!()
        }
        async fn certificate(&self, _: &str) -> Result<String, AcmeError> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_order_is_followed_soon_at_first_and_for_a_bounded_time() {
        let t0 = tokio::time::Instant::now();
        let quick = Ca { asked: Mutex::default(), moves_after: 2 };
        assert_eq!(follow(&quick, "o", OrderPhase::Pending).await.unwrap(), OrderPhase::Ready);
        let asked: Vec<_> = quick.asked.lock().unwrap().iter().map(|t| *t - t0).collect();
        assert_eq!(asked, [Duration::from_millis(100), Duration::from_millis(300)], "asked at 100 ms, then 300 ms");
        assert_eq!(next_look(OrderPhase::Pending, OrderPhase::Ready), Action::requeue(Duration::ZERO));

        let t0 = tokio::time::Instant::now();
        let slow = Ca { asked: Mutex::default(), moves_after: usize::MAX };
        assert_eq!(follow(&slow, "o", OrderPhase::Pending).await.unwrap(), OrderPhase::Pending);
        assert_eq!(slow.asked.lock().unwrap().len(), FOLLOW.len(), "one question per delay");
        assert_eq!(t0.elapsed(), Duration::from_millis(2900), "given up after 2.9 s");
        assert_eq!(next_look(OrderPhase::Pending, OrderPhase::Pending), Action::requeue(POLL));
    }
}
