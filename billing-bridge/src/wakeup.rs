//! What wakes a worker's lanes: a PostgreSQL NOTIFY on its channel, a kick from inside the process,
//! or the lane's own timer, whichever comes first. One relay per worker turns notifications into
//! kicks; a kick wakes one idle lane, and a lane that finds work passes a kick on, so a burst draws
//! in more lanes while a single item wakes only one. A kick given while no lane waits is kept for
//! the next, so none is lost between a lane finding nothing and starting to wait. A lost LISTEN
//! connection is made again after a pause; until then the timers alone wake the lanes, so a missed
//! notification only costs time.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

/// How long the relay waits before listening again after its connection was lost.
const RELISTEN_AFTER: Duration = Duration::from_secs(5);

/// A worker's wakes, shared by its lanes.
#[derive(Clone)]
pub struct Wakeup {
    kick: Arc<Notify>,
}

impl Wakeup {
    /// Relays `channel`'s notifications to `kick`, which the process's own kicks also use.
    pub fn relay(pool: PgPool, channel: &'static str, kick: Arc<Notify>) -> Self {
        tokio::spawn(relay(pool, channel, kick.clone()));
        Self { kick }
    }

    /// Waits for a kick, or `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        tokio::select! {
            () = self.kick.notified() => {}
            () = tokio::time::sleep(timeout) => {}
        }
    }

    /// Wakes one more idle lane: there may be more work than this lane can take.
    pub fn pass_on(&self) {
        self.kick.notify_one();
    }
}

async fn relay(pool: PgPool, channel: &'static str, kick: Arc<Notify>) {
    let mut listener = None;
    loop {
        if listener.is_none() {
            listener = listen(&pool, channel).await;
        }
        match listener.as_mut() {
            Some(l) => match l.recv().await {
                Ok(_) => kick.notify_one(),
                Err(_) => listener = None,
            },
            None => tokio::time::sleep(RELISTEN_AFTER).await,
        }
    }
}

async fn listen(pool: &PgPool, channel: &'static str) -> Option<PgListener> {
    let listening = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listening.await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(channel, error = %e, "cannot LISTEN; waking by the timer only");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kick_while_no_lane_waits_wakes_the_next_one_to_wait() {
        let lanes = Wakeup { kick: Arc::new(Notify::new()) };
        // the kick comes after a lane found nothing and before it waits
        lanes.pass_on();
        let waited = tokio::time::timeout(Duration::from_secs(5), lanes.wait(Duration::from_secs(60))).await;
        assert!(waited.is_ok(), "the lane slept through a kick given before it waited");
        // taken: the next wait runs to its timeout
        let started = tokio::time::Instant::now();
        lanes.wait(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
