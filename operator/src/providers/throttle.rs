//! Client-side limits on the calls to one external system: requests per second and requests in
//! flight. A call over either limit waits for its turn, first come first served; it is never
//! refused. Every provider client sends each request through its [`Throttle`]; clients of the same
//! system share one (clones share the limits).
//!
//! The rate is a token bucket holding one token, refilled `1 / requestsPerSecond` after the last
//! request started: requests start at least that far apart, so no one-second window sees more than
//! `requestsPerSecond` of them, whatever the burst. The spacing counts from when the last request
//! really started, not from when it was due, so a process that was stalled for a moment does not
//! send the requests it owes at once afterwards. A larger bucket would let a burst through at
//! once, which is what the backends' limits are about.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// How fast and how many at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Requests started per second, at least [`Limits::SLOWEST`] (a lower rate counts as that).
    pub requests_per_second: f64,
    /// Requests waiting for their answer at the same time (≥ 1).
    pub max_in_flight: u32,
}

impl Limits {
    /// One request every 1000 s: the slowest rate there is.
    pub const SLOWEST: f64 = 0.001;
}

/// The limiter of one external system. Cheap to clone; clones share the limits.
#[derive(Clone)]
pub struct Throttle {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    provider: &'static str,
    spacing: Duration,
    /// When the last request started; held by the request whose start is next (a fair lock, so
    /// turns go in the order they were asked for).
    last_start: Mutex<Option<Instant>>,
    in_flight: Semaphore,
    metrics: Option<Arc<Metrics>>,
}

/// A request's turn: hold it while the request is in flight.
#[must_use = "the request counts as in flight only while its turn is held"]
pub struct Turn<'a> {
    _in_flight: Option<SemaphorePermit<'a>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => f
                .debug_struct("Throttle")
                .field("provider", &i.provider)
                .field("spacing", &i.spacing)
                .field("available_in_flight", &i.in_flight.available_permits())
                .finish(),
            None => f.write_str("Throttle(unlimited)"),
        }
    }
}

impl Throttle {
    /// Limits the calls to `provider` (the `provider` label of the metrics); the time each call
    /// waited is observed in `metrics` when given.
    pub fn new(provider: &'static str, limits: Limits, metrics: Option<Arc<Metrics>>) -> Self {
        // an infinite rate needs no spacing; NaN counts as the slowest
        let spacing = Duration::from_secs_f64(1.0 / limits.requests_per_second.max(Limits::SLOWEST));
        Self {
            inner: Some(Arc::new(Inner {
                provider,
                spacing,
                last_start: Mutex::new(None),
                in_flight: Semaphore::new(limits.max_in_flight.max(1) as usize),
                metrics,
            })),
        }
    }

    /// No limits: for clients made outside the operator's configuration (tools, tests).
    pub fn unlimited() -> Self {
        Self { inner: None }
    }

    /// Waits until a request may start: first for a place among those in flight, then for the
    /// rate. Requests get their turns in the order they asked.
    pub async fn turn(&self) -> Turn<'_> {
        let Some(inner) = &self.inner else {
            return Turn { _in_flight: None };
        };
        let asked = Instant::now();
        // the semaphore is never closed
        let permit = inner.in_flight.acquire().await.ok();
        let mut last_start = inner.last_start.lock().await;
        if let Some(last) = *last_start {
            tokio::time::sleep_until(last + inner.spacing).await;
        }
        *last_start = Some(Instant::now());
        drop(last_start);
        if let Some(metrics) = &inner.metrics {
            metrics.provider_throttled(inner.provider, asked.elapsed());
        }
        Turn { _in_flight: permit }
    }

    /// Runs `request` in its turn.
    pub async fn run<T>(&self, request: impl Future<Output = T>) -> T {
        let _turn = self.turn().await;
        request.await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn limits(requests_per_second: f64, max_in_flight: u32) -> Limits {
        Limits { requests_per_second, max_in_flight }
    }

    /// Starts `n` requests at once, each taking `takes`; returns when each started, in the order
    /// they started.
    async fn burst(throttle: &Throttle, n: usize, takes: Duration) -> Vec<Duration> {
        let t0 = Instant::now();
        let started = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (throttle, started) = (throttle.clone(), started.clone());
            tasks.spawn(async move {
                throttle
                    .run(async {
                        started.lock().unwrap().push(t0.elapsed());
                        tokio::time::sleep(takes).await;
                    })
                    .await
            });
        }
        while tasks.join_next().await.is_some() {}
        let mut started = started.lock().unwrap().clone();
        started.sort();
        started
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_queued_at_the_rate_and_every_request_runs() {
        let throttle = Throttle::new("test", limits(20.0, 1000), None);
        let started = burst(&throttle, 200, Duration::ZERO).await;
        assert_eq!(started.len(), 200, "every request ran; none was refused");
        assert_eq!(started[0], Duration::ZERO, "the first goes at once");
        for pair in started.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(50), "spaced 1/20 s apart: {pair:?}");
        }
        // 200 at 20/s: the last starts 199 spacings after the first
        assert_eq!(started[199], Duration::from_millis(50 * 199));
        for (i, at) in started.iter().enumerate() {
            let in_window = started.iter().filter(|t| **t >= *at && **t < *at + Duration::from_secs(1)).count();
            assert!(in_window <= 20, "{in_window} requests in the second from request {i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_in_flight_requests_wait_for_their_answers_at_once() {
        let throttle = Throttle::new("test", limits(1000.0, 3), None);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..30 {
            let (throttle, now, most) = (throttle.clone(), now.clone(), most.clone());
            tasks.spawn(async move {
                throttle
                    .run(async {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            });
        }
        let t0 = Instant::now();
        while tasks.join_next().await.is_some() {}
        assert_eq!(most.load(Ordering::SeqCst), 3, "three at a time, and the cap was reached");
        // 30 requests of 100 ms, three at a time
        assert!(t0.elapsed() >= Duration::from_millis(1000), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_after_a_quiet_spell_goes_at_once_and_turns_are_first_come_first_served() {
        let throttle = Throttle::new("test", limits(2.0, 10), None);
        let _ = throttle.turn().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let asked = Instant::now();
        drop(throttle.turn().await);
        assert_eq!(asked.elapsed(), Duration::ZERO, "nothing to wait for after a quiet spell");

        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (throttle, order) = (throttle.clone(), order.clone());
            tasks.push(tokio::spawn(async move { throttle.run(async { order.lock().unwrap().push(i) }).await }));
            // each asks a moment after the one before
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_the_limits_and_the_wait_is_measured() {
        let metrics = Arc::new(Metrics::default());
        let throttle = Throttle::new("namesilo", limits(10.0, 5), Some(metrics.clone()));
        let other = throttle.clone();
        let t0 = Instant::now();
        for _ in 0..5 {
            drop(throttle.turn().await);
            drop(other.turn().await);
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(900), "ten requests through both clones, 100 ms apart");
        let text = metrics.render();
        let count = text
            .lines()
            .find(|l| l.starts_with("mpanel_provider_throttle_wait_seconds_count{provider=\"namesilo\"}"))
            .unwrap_or_else(|| panic!("no wait metric in {text}"));
        assert!(count.ends_with(" 10"), "{count}");
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let started = burst(&Throttle::unlimited(), 100, Duration::from_millis(10)).await;
        assert!(started.iter().all(|t| t.is_zero()));
    }
}
