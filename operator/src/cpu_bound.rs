//! CPU-heavy work (password hashing and verifying, key generation) runs on blocking threads, a
//! few at a time, so that it never holds up the async workers that renew the Lease, answer health
//! checks and drive every other reconcile.

use tokio::sync::Semaphore;

/// How many such jobs run at once: the machine's cores are shared with everything else.
const AT_ONCE: usize = 2;

static SLOTS: Semaphore = Semaphore::const_new(AT_ONCE);

/// Runs `work` on a blocking thread once a slot is free; a panic in it goes on in the caller (so
/// the reconcile that asked fails as any panicking reconcile does).
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _slot = SLOTS.acquire().await.unwrap_or_else(|_| unreachable!("the semaphore is never closed"));
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_off_the_async_thread_a_few_jobs_at_a_time() {
        let caller = std::thread::current().id();
        assert_ne!(run(move || std::thread::current().id()).await, caller);

        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..6).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        futures::future::join_all(jobs).await;
        assert!(most.load(Ordering::SeqCst) <= AT_ONCE, "{} at once", most.load(Ordering::SeqCst));
    }
}
