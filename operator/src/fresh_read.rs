//! A read that must start after it was asked for (so that it sees every write made before), shared
//! by the callers that ask while one is under way: they all wait for the next read to start rather
//! than each making their own. Many reconciles that need a fresh list at once make one list per
//! wave instead of one each.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// The last fresh value and the number of the read that produced it.
pub struct FreshRead<T> {
    started: AtomicU64,
    last: tokio::sync::Mutex<Option<(u64, T)>>,
}

impl<T: Clone> Default for FreshRead<T> {
    fn default() -> Self {
        Self { started: AtomicU64::new(0), last: tokio::sync::Mutex::new(None) }
    }
}

impl<T: Clone> FreshRead<T> {
    /// A value read by a call of `read` that started after this call began: the one under way
    /// when it began does not count, the next one (made by this caller or shared with others
    /// that waited with it) does.
    pub async fn get<E, F, Fut>(&self, read: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let wanted = self.started.load(Ordering::Acquire) + 1;
        let mut last = self.last.lock().await;
        if let Some((number, value)) = last.as_ref()
            && *number >= wanted
        {
            return Ok(value.clone());
        }
        let number = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let value = read().await?;
        *last = Some((number, value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Callers that ask while a read is under way share the next one; none gets a value read
    /// before it asked.
    #[tokio::test]
    async fn callers_during_a_read_share_the_next_and_never_get_an_older_one() {
        let shared = Arc::new(FreshRead::<usize>::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ()>(n)
        };
        let first = tokio::spawn({
            let (shared, reads) = (shared.clone(), reads.clone());
            async move { shared.get(|| read(reads)).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let (shared, reads) = (shared.clone(), reads.clone());
                tokio::spawn(async move { shared.get(|| read(reads)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(1));
        for w in waiting {
            assert_eq!(w.await.unwrap(), Ok(2), "asked during read 1, so read 2 or later");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2, "ten callers shared one read");
        assert_eq!(shared.get(|| read(reads.clone())).await, Ok(3), "asked after read 2 ended: a new read");
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept() {
        let shared = FreshRead::<u8>::default();
        assert_eq!(shared.get(|| async { Err::<u8, &str>("apiserver down") }).await, Err("apiserver down"));
        assert_eq!(shared.get(|| async { Ok::<u8, &str>(7) }).await, Ok(7));
    }
}
