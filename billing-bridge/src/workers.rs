//! The bridge's background workers run as long as the process does. When one ends, by returning
//! or by panicking, the bridge stops with an error that names it, so that the orchestrator
//! restarts the process rather than leaving it taking payments while nothing is provisioned.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

/// Test hook: the worker of this name ends right after it starts (`MPANEL_BRIDGE_FAULT_WORKER_EXIT`).
pub const FAULT_ENV: &str = "MPANEL_BRIDGE_FAULT_WORKER_EXIT";

/// How a worker ended.
#[derive(Debug, thiserror::Error)]
pub enum WorkerEnded {
    #[error("the {0} worker stopped; the bridge stops so that it is restarted")]
    Returned(&'static str),
    #[error("the {0} worker panicked ({1}); the bridge stops so that it is restarted")]
    Panicked(&'static str, String),
}

#[derive(Default)]
pub struct Workers {
    running: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Workers {
    pub fn spawn(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let fault = std::env::var(FAULT_ENV).is_ok_and(|v| v == name);
        let handle = self.running.spawn(async move {
            if !fault {
                work.await;
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits until a worker ends, and says which and how; pending forever when none runs.
    pub async fn ended(&mut self) -> WorkerEnded {
        let Some(done) = self.running.join_next_with_id().await else { return std::future::pending().await };
        let name = |id: Id| self.names.get(&id).copied().unwrap_or("unnamed");
        match done {
            Ok((id, ())) => WorkerEnded::Returned(name(id)),
            Err(e) => {
                let id = e.id();
                let why = match e.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".to_owned()),
                    Err(_) => "cancelled".to_owned(),
                };
                WorkerEnded::Panicked(name(id), why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_that_returns_or_panics_is_named() {
        let mut workers = Workers::default();
        workers.spawn("forever", std::future::pending());
        workers.spawn("outbox", async {});
        assert!(matches!(workers.ended().await, WorkerEnded::Returned("outbox")));
        workers.spawn("lifecycle", async { panic!("ledger gone") });
        let ended = workers.ended().await;
        assert!(matches!(&ended, WorkerEnded::Panicked("lifecycle", why) if why == "ledger gone"), "{ended:?}");
        assert!(ended.to_string().contains("the lifecycle worker panicked (ledger gone)"));
    }
}
