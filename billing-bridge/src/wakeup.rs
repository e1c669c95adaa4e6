//! What wakes a worker: a PostgreSQL NOTIFY on its channel, a kick from inside the process, or its
//! timer, whichever comes first. A lost LISTEN connection is made again on the next wait; until
//! then the timer alone wakes the worker, so a missed notification only costs time.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

pub struct Wakeup {
    pool: PgPool,
    channel: &'static str,
    kick: Arc<Notify>,
    listener: Option<PgListener>,
}

impl Wakeup {
    pub fn new(pool: PgPool, channel: &'static str, kick: Arc<Notify>) -> Self {
        Self { pool, channel, kick, listener: None }
    }

    /// Waits for a notification, a kick, or `timeout`.
    pub async fn wait(&mut self, timeout: Duration) {
        if self.listener.is_none() {
            self.listener = self.listen().await;
        }
        let notified = async {
            match self.listener.as_mut() {
                Some(l) => l.recv().await.map(drop),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = notified => if result.is_err() { self.listener = None },
            () = self.kick.notified() => {}
            () = tokio::time::sleep(timeout) => {}
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let listening = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(self.channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(channel = self.channel, error = %e, "cannot LISTEN; waking by the timer only");
                None
            }
        }
    }
}
