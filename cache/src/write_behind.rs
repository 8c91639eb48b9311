//! The write-behind queue: bounded, coalescing, FIFO by first write.
//!
//! Each pending key holds its latest operation and a sequence number; a
//! newer write to a pending key replaces the operation in place
//! (coalescing: the store sees one write). `begin_batch` hands out keys in
//! FIFO order and marks them in flight (still visible to readers until the
//! store has applied them); `finish` removes an applied key unless a newer
//! write arrived meanwhile, and requeues failed or superseded keys, so a
//! write is never dropped. A failed key keeps its last error until a later
//! attempt succeeds ([`Queue::failures`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::CacheError;

/// A pending store operation.
#[derive(Debug, Clone)]
pub(crate) enum Op<V> {
    Put(V),
    Delete,
}

impl<V> Op<V> {
    /// The store call's name in errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Put(_) => "put",
            Op::Delete => "delete",
        }
    }
}

struct Pending<V> {
    op: Op<V>,
    seq: u64,
    in_flight: bool,
    /// Why the last attempt to apply this key failed, if it did.
    last_error: Option<CacheError>,
}

/// Outcome of enqueueing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// A new pending key.
    New,
    /// Replaced the pending operation of the key.
    Coalesced,
    /// The queue is full of other keys; nothing changed.
    Full,
}

pub(crate) struct Queue<K, V> {
    map: HashMap<K, Pending<V>, foldhash::fast::RandomState>,
    order: VecDeque<K>,
    capacity: usize,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Queue<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::default(),
            order: VecDeque::new(),
            capacity,
            next_seq: 0,
        }
    }

    /// Pending keys (queued or in flight).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `op` for `key`, coalescing with a pending write of the key.
    pub(crate) fn enqueue(&mut self, key: &K, op: Op<V>) -> Enqueued {
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(p) = self.map.get_mut(key) {
            p.op = op;
            p.seq = seq;
            return Enqueued::Coalesced;
        }
        if self.map.len() >= self.capacity {
            return Enqueued::Full;
        }
        self.map.insert(
            key.clone(),
            Pending {
                op,
                seq,
                in_flight: false,
                last_error: None,
            },
        );
        self.order.push_back(key.clone());
        Enqueued::New
    }

    /// The pending operation of `key` (what a reader must see instead of
    /// the store's stale value).
    pub(crate) fn peek(&self, key: &K) -> Option<&Op<V>> {
        self.map.get(key).map(|p| &p.op)
    }

    /// Takes up to `max` queued keys in FIFO order and marks them in
    /// flight; returns `(key, op, seq)` to apply.
    pub(crate) fn begin_batch(&mut self, max: usize) -> Vec<(K, Op<V>, u64)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.map.get_mut(&k) {
                p.in_flight = true;
                out.push((k, p.op.clone(), p.seq));
            }
        }
        out
    }

    /// Records the result of applying `key`'s operation `seq`: applied and
    /// not superseded → done; otherwise back at the end of the queue (a
    /// failure keeps its error). Returns whether the key left the queue.
    pub(crate) fn finish(&mut self, key: K, seq: u64, result: Result<(), &CacheError>) -> bool {
        let Some(p) = self.map.get_mut(&key) else {
            return false;
        };
        p.in_flight = false;
        match result {
            Ok(()) if p.seq == seq => {
                self.map.remove(&key);
                return true;
            }
            Ok(()) => p.last_error = None,
            Err(e) => p.last_error = Some(e.clone()),
        }
        self.order.push_back(key);
        false
    }

    /// Pending keys whose last attempt failed, with its error, in queue
    /// order (in-flight keys last).
    pub(crate) fn failures(&self) -> Vec<(K, CacheError)> {
        let mut out: Vec<(K, CacheError)> = self
            .order
            .iter()
            .filter_map(|k| {
                let e = self.map.get(k)?.last_error.clone()?;
                Some((k.clone(), e))
            })
            .collect();
        out.extend(
            self.map
                .iter()
                .filter(|(_, p)| p.in_flight)
                .filter_map(|(k, p)| Some((k.clone(), p.last_error.clone()?))),
        );
        out
    }

    /// Pending keys being applied by a flush now.
    pub(crate) fn in_flight(&self) -> usize {
        self.map.len() - self.order.len()
    }

    /// Checks that every pending key is queued exactly once or in flight.
    pub(crate) fn check_invariants(&self) {
        let mut queued: HashMap<&K, usize, foldhash::fast::RandomState> = HashMap::default();
        for k in &self.order {
            *queued.entry(k).or_default() += 1;
        }
        for (k, p) in &self.map {
            let n = queued.get(k).copied().unwrap_or(0);
            if p.in_flight {
                assert_eq!(n, 0, "an in-flight key is also queued");
            } else {
                assert_eq!(n, 1, "a pending key is queued {n} times");
            }
        }
        assert_eq!(
            queued.len(),
            self.order.len(),
            "a queued key is not pending"
        );
        assert!(self.map.len() <= self.capacity, "queue over capacity");
    }
}

/// A tier's write-behind queue and how it is drained, whatever the tier:
/// `apply` is the tier's store write (with its retries).
pub(crate) struct WriteBehind<K, V> {
    queue: Mutex<Queue<K, V>>,
    coalesced: AtomicU64,
}

/// The store error inside a [`CacheError::Store`] (or the error itself).
pub(crate) fn store_source(e: CacheError) -> Arc<dyn std::error::Error + Send + Sync> {
    match e {
        CacheError::Store { source, .. } => source,
        other => Arc::new(other),
    }
}

impl<K: Hash + Eq + Clone, V: Clone> WriteBehind<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::new(capacity)),
            coalesced: AtomicU64::new(0),
        }
    }

    /// Pending writes.
    pub(crate) fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// The pending operation of `key` (what a read must see).
    pub(crate) fn peek(&self, key: &K) -> Option<Op<V>> {
        self.queue.lock().peek(key).cloned()
    }

    /// Writes merged into an already pending write of their key.
    pub(crate) fn coalesced(&self) -> u64 {
        self.coalesced.load(Relaxed)
    }

    /// Pending writes whose last attempt failed, with that error.
    pub(crate) fn failures(&self) -> Vec<(K, CacheError)> {
        self.queue.lock().failures()
    }

    /// Panics if the queue breaks an invariant.
    pub(crate) fn check_invariants(&self) {
        self.queue.lock().check_invariants();
    }

    /// Queues `op` for `key`. When the queue is full this call applies the
    /// oldest queued write itself (`apply`); it never waits for another
    /// thread.
    pub(crate) fn enqueue(
        &self,
        key: &K,
        op: Op<V>,
        apply: impl Fn(&K, &Op<V>) -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        loop {
            let Some((mut oldest, capacity)) = self.make_room(key, &op)? else {
                return Ok(());
            };
            let Some((k, o, _)) = oldest.next() else {
                continue;
            };
            let r = apply(k, o);
            oldest.finish(r.as_ref().map(|_| ()));
            r.map_err(|e| full(capacity, e))?;
        }
    }

    /// [`enqueue`](Self::enqueue) with an async `apply` (given the key and
    /// operation by value). Dropped mid-apply, the oldest write goes back
    /// to pending.
    pub(crate) async fn enqueue_async<F, Fut>(
        &self,
        key: &K,
        op: Op<V>,
        apply: F,
    ) -> Result<(), CacheError>
    where
        F: Fn(K, Op<V>) -> Fut,
        Fut: std::future::Future<Output = Result<(), CacheError>>,
    {
        loop {
            let Some((mut oldest, capacity)) = self.make_room(key, &op)? else {
                return Ok(());
            };
            let Some((k, o, _)) = oldest.next() else {
                continue;
            };
            let r = apply(k.clone(), o.clone()).await;
            oldest.finish(r.as_ref().map(|_| ()));
            r.map_err(|e| full(capacity, e))?;
        }
    }

    /// Queues `op` for `key` if there is room (`None`); when the queue is
    /// full, takes its oldest write for the caller to apply (with the
    /// queue's capacity). Every pending write being applied by a
    /// concurrent flush: `QueueFull` rather than wait.
    fn make_room(&self, key: &K, op: &Op<V>) -> Result<Room<'_, K, V>, CacheError> {
        let mut q = self.queue.lock();
        match q.enqueue(key, op.clone()) {
            Enqueued::New => Ok(None),
            Enqueued::Coalesced => {
                self.coalesced.fetch_add(1, Relaxed);
                Ok(None)
            }
            Enqueued::Full => {
                let oldest = q.begin_batch(1);
                if oldest.is_empty() {
                    return Err(CacheError::QueueFull {
                        capacity: q.capacity(),
                        in_flight: q.in_flight(),
                    });
                }
                let capacity = q.capacity();
                drop(q);
                Ok(Some((InFlight::new(&self.queue, oldest), capacity)))
            }
        }
    }

    /// Applies every write pending when called (`apply`); returns how many
    /// were applied. A write that fails goes back to pending with its
    /// error; one abandoned by a panic too.
    pub(crate) fn flush(
        &self,
        apply: impl Fn(&K, &Op<V>) -> Result<(), CacheError>,
    ) -> Result<usize, CacheError> {
        let mut batch = self.begin_flush();
        let mut tally = Tally::default();
        while let Some((key, op, _)) = batch.next() {
            let r = apply(key, op);
            batch.finish(r.as_ref().map(|_| ()));
            tally.add(r);
        }
        tally.outcome()
    }

    /// [`flush`](Self::flush) with an async `apply`. Dropped mid-flush,
    /// the writes not yet applied go back to pending.
    pub(crate) async fn flush_async<F, Fut>(&self, apply: F) -> Result<usize, CacheError>
    where
        F: Fn(K, Op<V>) -> Fut,
        Fut: std::future::Future<Output = Result<(), CacheError>>,
    {
        let mut batch = self.begin_flush();
        let mut tally = Tally::default();
        while let Some((key, op, _)) = batch.next() {
            let r = apply(key.clone(), op.clone()).await;
            batch.finish(r.as_ref().map(|_| ()));
            tally.add(r);
        }
        tally.outcome()
    }

    /// Every write pending now, marked in flight.
    fn begin_flush(&self) -> InFlight<'_, K, V> {
        let batch = {
            let mut q = self.queue.lock();
            let n = q.len();
            q.begin_batch(n)
        };
        InFlight::new(&self.queue, batch)
    }
}

/// `None`: queued. Else the oldest write, taken for the caller to apply,
/// and the queue's capacity.
type Room<'a, K, V> = Option<(InFlight<'a, K, V>, usize)>;

/// The error of a SET that found the queue full and could not drain it.
fn full(capacity: usize, e: CacheError) -> CacheError {
    CacheError::WriteBehindFull {
        capacity,
        source: store_source(e),
    }
}

/// A flush's results.
#[derive(Default)]
struct Tally {
    applied: usize,
    failed: usize,
    first_error: Option<CacheError>,
}

impl Tally {
    fn add(&mut self, r: Result<(), CacheError>) {
        match r {
            Ok(()) => self.applied += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn outcome(self) -> Result<usize, CacheError> {
        match self.first_error {
            None => Ok(self.applied),
            Some(e) => Err(CacheError::FlushFailed {
                applied: self.applied,
                failed: self.failed,
                source: store_source(e),
            }),
        }
    }
}

/// Write-behind writes taken out of the queue to be applied: each is
/// finished with its result, and whatever is not finished when this is
/// dropped (a panic while applying) goes back to pending, so a key is
/// never left "in flight" for ever.
struct InFlight<'a, K: Hash + Eq + Clone, V: Clone> {
    queue: &'a Mutex<Queue<K, V>>,
    items: Vec<(K, Op<V>, u64)>,
    /// Items before this index are finished; `items[next - 1]` is the one
    /// handed out by the last `next`, unfinished while `open`.
    next: usize,
    open: bool,
}

impl<'a, K: Hash + Eq + Clone, V: Clone> InFlight<'a, K, V> {
    fn new(queue: &'a Mutex<Queue<K, V>>, items: Vec<(K, Op<V>, u64)>) -> Self {
        Self {
            queue,
            items,
            next: 0,
            open: false,
        }
    }

    /// The next write to apply.
    fn next(&mut self) -> Option<(&K, &Op<V>, u64)> {
        debug_assert!(!self.open, "finish the previous write first");
        let (k, o, seq) = self.items.get(self.next)?;
        self.next += 1;
        self.open = true;
        Some((k, o, *seq))
    }

    /// Records the result of the write handed out by `next`.
    fn finish(&mut self, result: Result<(), &CacheError>) {
        if let Some((k, _, seq)) = self.items.get(self.next - 1)
            && self.open
        {
            self.open = false;
            self.queue.lock().finish(k.clone(), *seq, result);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for InFlight<'_, K, V> {
    fn drop(&mut self) {
        let from = if self.open { self.next - 1 } else { self.next };
        if from >= self.items.len() {
            return;
        }
        let abandoned = CacheError::FlushAbandoned;
        let mut q = self.queue.lock();
        for (k, _, seq) in self.items.drain(from..) {
            q.finish(k, seq, Err(&abandoned));
        }
    }
}
