//! A worker's lanes: tasks that each claim one ready item, carry it out, and claim the next, so an
//! item that takes its time (an apiserver slow to answer) holds up its own lane only and the others
//! go on. A lane that finds nothing ready waits for a kick (`Wakeup`) or until the first item in
//! backoff is due again. Only the ledger failing pauses a lane (1 s, doubling to 30 s).
//!
//! The first lane serves customers in turns (the oldest of the customers' first pending items),
//! the others the oldest item of all: a customer's single order is not held behind another
//! customer's burst, and the burst is not slowed by a per-claim search over every customer.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::ledger::LedgerError;
use crate::ledger::work_attempts::{self, Worker};
use crate::metrics::Metrics;
use crate::wakeup::Wakeup;

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// Which item a lane claims next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The oldest of the customers' first pending items, else the oldest of all.
    Turns,
    /// The oldest of all.
    Oldest,
}

/// An error a lane logs with its stable reason.
pub trait Reasoned: Display {
    fn reason(&self) -> &'static str;
}

impl Reasoned for LedgerError {
    fn reason(&self) -> &'static str {
        LedgerError::reason(self)
    }
}

/// When a lane that found nothing ready looks again at the latest (a kick comes sooner): the first
/// item waiting for its next attempt, if any.
pub async fn first_in_backoff(pool: &PgPool, worker: Worker, metrics: &Metrics) -> Option<DateTime<Utc>> {
    let backoff = work_attempts::backoff(pool, worker).await.ok()?;
    metrics.set_work_in_backoff(worker, backoff.items);
    backoff.next_due
}

/// Runs `count` lanes named `name` until the process ends. `step` claims one ready item in its
/// lane's `Order` and carries it out (`Ok(false)`: none was ready); once it holds its claim it calls
/// `Wakeup::pass_on`, so that another lane looks for the next item meanwhile. A lane that found
/// nothing waits for a kick or until `next_due` (the first item in backoff); `scan` bounds every
/// wait, to catch what a lost notification missed.
pub async fn run<S, F, E, N, D>(name: &'static str, count: usize, wakeup: Wakeup, scan: Duration, next_due: N, step: S)
where
    S: Fn(Order, Wakeup) -> F,
    F: Future<Output = Result<bool, E>>,
    E: Reasoned,
    N: Fn() -> D,
    D: Future<Output = Option<DateTime<Utc>>>,
{
    let (step, next_due, wakeup) = (&step, &next_due, &wakeup);
    let lane = |n| async move {
        let order = if n == 0 { Order::Turns } else { Order::Oldest };
        let mut pause = FIRST_PAUSE;
        loop {
            match step(order, wakeup.clone()).await {
                Ok(true) => pause = FIRST_PAUSE,
                Ok(false) => wakeup.wait(work_attempts::wait_for(next_due().await, scan)).await,
                Err(e) => {
                    tracing::warn!(worker = name, error = %e, reason = e.reason(), retry_in = ?pause, "the ledger failed; will retry");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    };
    futures::future::join_all((0..count).map(lane)).await;
}
