//! Leader election on a `coordination.k8s.io` Lease: only the holder runs the controllers, so only
//! the holder writes status or touches external systems.

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::config::LeaderElection;

#[derive(Debug, thiserror::Error)]
#[error("leader election on Lease {namespace}/{name} failed: {message}")]
pub struct LeaderError {
    namespace: String,
    name: String,
    message: String,
}

/// Holds the Lease while it lives.
pub struct Leadership {
    changes: watch::Receiver<bool>,
}

impl Leadership {
    /// Starts competing for the Lease; returns once this process holds it.
    pub async fn acquire(client: Client, config: &LeaderElection, identity: &str) -> Result<Self, LeaderError> {
        let error = |message: String| LeaderError {
            namespace: config.namespace.clone(),
            name: config.lease_name.clone(),
            message,
        };
        let duration = config.lease_duration_seconds.max(2);
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .build()
            .await
            .map_err(|e| error(e.to_string()))?;
        let (mut changes, _task) = manager.watch().await;
        tracing::info!(lease = %config.lease_name, namespace = %config.namespace, %identity, "waiting for the Lease");
        while !*changes.borrow_and_update() {
            changes.changed().await.map_err(|_| error("the lease manager stopped".to_owned()))?;
        }
        tracing::info!(%identity, "holding the Lease: this replica is the leader");
        Ok(Self { changes })
    }

    /// Resolves when the Lease is lost (another replica may now write): the process must stop.
    pub async fn lost(mut self) {
        loop {
            if !*self.changes.borrow_and_update() {
                return;
            }
            if self.changes.changed().await.is_err() {
                return;
            }
        }
    }
}
