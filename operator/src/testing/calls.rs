//! What every provider fake keeps about the calls made to it: the calls in order ([`CallLog`]) and
//! the failures a test queued per operation ([`Failures`]), both in one [`Recorder`] whose
//! [`Recorder::begin`] each operation of a fake runs before it acts.

use std::collections::{BTreeMap, VecDeque};

/// A recorded call, which names its operation (the real client's name for it).
pub trait Op {
    fn op(&self) -> &str;
}

/// One call made to a fake: the operation and what it named (a zone, a domain, an address, an
/// order URL; empty when it named nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: &'static str,
    pub target: String,
}

impl Op for Call {
    fn op(&self) -> &str {
        self.op
    }
}

/// The calls made to a fake, oldest first (failed ones included).
#[derive(Debug)]
pub struct CallLog<C> {
    calls: Vec<C>,
}

impl<C> Default for CallLog<C> {
    fn default() -> Self {
        Self { calls: Vec::new() }
    }
}

impl<C: Op + Clone> CallLog<C> {
    pub fn record(&mut self, call: C) {
        self.calls.push(call);
    }

    /// Every call, oldest first.
    pub fn all(&self) -> Vec<C> {
        self.calls.clone()
    }

    /// The calls `keep` accepts, oldest first.
    pub fn matching(&self, keep: impl Fn(&C) -> bool) -> Vec<C> {
        self.calls.iter().filter(|c| keep(c)).cloned().collect()
    }

    /// The calls of an operation other than the `reads`, oldest first.
    pub fn writes(&self, reads: &[&str]) -> Vec<C> {
        self.matching(|c| !reads.contains(&c.op()))
    }

    /// The calls of one of the operations `ops`, oldest first.
    pub fn of(&self, ops: &[&str]) -> Vec<C> {
        self.matching(|c| ops.contains(&c.op()))
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.calls.iter().filter(|c| c.op() == op).count()
    }

    /// Forgets the calls recorded so far.
    pub fn clear(&mut self) {
        self.calls.clear();
    }
}

/// Errors queued per operation: each call of the operation takes the oldest.
#[derive(Debug)]
pub struct Failures<E> {
    queues: BTreeMap<String, VecDeque<E>>,
}

impl<E> Default for Failures<E> {
    fn default() -> Self {
        Self { queues: BTreeMap::new() }
    }
}

impl<E> Failures<E> {
    /// Queues `error` for a coming call of `op`, after those already queued.
    pub fn push(&mut self, op: &str, error: E) {
        self.queues.entry(op.to_owned()).or_default().push_back(error);
    }

    /// The oldest error queued for `op`, taken off its queue.
    pub fn take(&mut self, op: &str) -> Option<E> {
        self.queues.get_mut(op).and_then(VecDeque::pop_front)
    }
}

/// A fake's call log and its queued failures.
#[derive(Debug)]
pub struct Recorder<C, E> {
    pub log: CallLog<C>,
    pub failures: Failures<E>,
}

impl<C, E> Default for Recorder<C, E> {
    fn default() -> Self {
        Self { log: CallLog::default(), failures: Failures::default() }
    }
}

impl<C: Op + Clone, E> Recorder<C, E> {
    /// Records `call` and hands out the failure queued for its operation, if one waits.
    pub fn begin(&mut self, call: C) -> Result<(), E> {
        let failure = self.failures.take(call.op());
        self.log.record(call);
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: &'static str, target: &str) -> Call {
        Call { op, target: target.to_owned() }
    }

    #[test]
    fn a_queued_failure_goes_to_the_next_call_of_its_operation_only() {
        let mut rec: Recorder<Call, String> = Recorder::default();
        rec.failures.push("create", "first".to_owned());
        rec.failures.push("create", "second".to_owned());
        assert_eq!(rec.begin(call("read", "a")), Ok(()), "another operation is not failed");
        assert_eq!(rec.begin(call("create", "a")), Err("first".to_owned()));
        assert_eq!(rec.begin(call("create", "b")), Err("second".to_owned()));
        assert_eq!(rec.begin(call("create", "c")), Ok(()), "the queue is spent");
        assert_eq!(rec.log.all().len(), 4, "failed calls are recorded too");
    }

    #[test]
    fn the_log_filters_counts_and_forgets() {
        let mut log = CallLog::default();
        for (op, target) in [("read", "a"), ("write", "a"), ("delete", "b"), ("write", "c")] {
            log.record(call(op, target));
        }
        assert_eq!(log.count("write"), 2);
        assert_eq!(log.count("missing"), 0);
        assert_eq!(log.writes(&["read"]).iter().map(|c| c.target.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(log.of(&["delete"]), vec![call("delete", "b")]);
        assert_eq!(log.matching(|c| c.target == "a").len(), 2);
        log.clear();
        assert!(log.all().is_empty());
    }
}
