//! Executing one decoded request on the store: per-key operations, whole-table reads and
//! Stats, worker-count changes and Quit.

use super::{Control, Lane, SCAN_MAX_COUNT, Step, Taker};
use crate::record::RecordMem;
use crate::store::{Store, StoreError};
use crate::sync::{MutexGuard, Ordering};
use crate::table::KeyHash;
use crate::wire::{
    self, ENTRIES_FIXED, ErrorCode, KEYS_FIXED, Limits, OpView, Reply, ReplyKind, STATS_FIXED,
};

impl<M: RecordMem + Clone> Lane<M> {
    /// Execute one decoded request, releasing the consumer lock as soon as the request's order
    /// is fixed (see [`Lane::hand_off`]); the answer's parts, in order, or
    /// [`Answer::Encoded`] when it was encoded into `out` (a value, straight from the table).
    pub(super) fn execute(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
        out: &mut Vec<u8>,
    ) -> (Step, Answer) {
        match op {
            OpView::Insert { .. }
            | OpView::Read { .. }
            | OpView::Delete { .. }
            | OpView::InsertNew { .. }
            | OpView::Cas { .. }
            | OpView::Add { .. } => self.execute_keyed(exec, held, op, out),
            OpView::Len | OpView::Scan { .. } | OpView::Print { .. } | OpView::Stats => {
                self.execute_whole(exec, held, op)
            }
            OpView::ThreadsStart { .. } | OpView::ThreadsStop | OpView::Quit => {
                self.execute_control(exec, held, op)
            }
        }
    }

    /// [`Lane::execute`] for an operation on one key: the key's bucket is locked before the
    /// consumer lock is let go, which fixes the request's order among same-key requests.
    fn execute_keyed(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
        out: &mut Vec<u8>,
    ) -> (Step, Answer) {
        let Exec {
            store,
            hand,
            id,
            hash,
            ..
        } = *exec;
        // The key's hash, if it was taken when the request was (see `Lane::serve_burst`).
        let hashed = |key| hash.unwrap_or_else(|| store.key_hash(key));
        let stored = |r: Result<Reply, StoreError>| {
            let r = r.unwrap_or_else(|e| Reply::Error(store_error(e, &self.limits)));
            if let Reply::Error(e) = &r {
                self.counters.error(e);
            }
            (Step::Served, Answer::One(r))
        };
        match op {
            OpView::Insert { key, value } => {
                let g = store.write_hashed(key, hashed(key));
                self.hand_off(held, hand);
                // The previous value is encoded straight from the entry, before it goes.
                let replaced = g.insert_with(value, |prev| {
                    prev.map(|p| {
                        out.clear();
                        wire::encode_value_response(id, ReplyKind::Replaced, p, out);
                    })
                });
                match replaced {
                    Ok(Some(())) => (Step::Served, Answer::Encoded),
                    Ok(None) => one(Reply::Created),
                    Err(e) => stored(Err(e)),
                }
            }
            OpView::Read { key } => {
                let g = store.read_hashed(key, hashed(key));
                self.hand_off(held, hand);
                match g.get() {
                    Some(v) => {
                        out.clear();
                        wire::encode_value_response(id, ReplyKind::Value, v, out);
                        (Step::Served, Answer::Encoded)
                    }
                    None => one(Reply::NotFound),
                }
            }
            OpView::Delete { key } => {
                let g = store.write_hashed(key, hashed(key));
                self.hand_off(held, hand);
                one(match g.delete() {
                    Some(v) => Reply::Deleted(v),
                    None => Reply::NotFound,
                })
            }
            OpView::InsertNew { key, value } => {
                let g = store.write_hashed(key, hashed(key));
                self.hand_off(held, hand);
                stored(g.insert_new(value).map(|cur| match cur {
                    None => Reply::Created,
                    Some(v) => Reply::Exists(v),
                }))
            }
            OpView::Cas { key, expected, new } => {
                let g = store.write_hashed(key, hashed(key));
                self.hand_off(held, hand);
                stored(g.cas(expected, new).map(|r| match r {
                    Ok(()) => Reply::Swapped,
                    Err(cur) => Reply::Mismatch(cur),
                }))
            }
            OpView::Add { key, delta } => {
                let g = store.write_hashed(key, hashed(key));
                self.hand_off(held, hand);
                stored(
                    g.add_within(delta, self.limits.max_value as usize)
                        .map(Reply::Number),
                )
            }
            _ => unreachable!("not an operation on one key"),
        }
    }

    /// [`Lane::execute`] for a whole-table read (len, scan, print) or Stats: these follow
    /// every earlier request of this client and precede every later one, so they are taken
    /// with the consumer lock held, once the earlier ones are answered.
    fn execute_whole(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
    ) -> (Step, Answer) {
        let Exec {
            store, ctl, hand, ..
        } = *exec;
        self.wait_earlier_answered(held, hand);
        match op {
            OpView::Len => {
                let n = store.len();
                self.hand_off(held, hand);
                one(Reply::Count(n))
            }
            OpView::Scan { cursor, count } => {
                let (next, keys) = store.scan(cursor, count.min(SCAN_MAX_COUNT));
                self.hand_off(held, hand);
                let max = self.max_answer();
                let parts = wire::split_parts(keys, KEYS_FIXED, |k| wire::key_item_len(k), max);
                (
                    Step::Served,
                    with_more(parts, |keys, more| Reply::Keys {
                        cursor: next,
                        keys,
                        more,
                    }),
                )
            }
            OpView::Print { bucket } => {
                let pairs = store.print(bucket);
                self.hand_off(held, hand);
                match pairs {
                    None => {
                        let e = ErrorCode::BadBucket {
                            bucket,
                            buckets: store.bucket_count() as u64,
                        };
                        self.counters.error(&e);
                        one(Reply::Error(e))
                    }
                    Some(pairs) => {
                        let max = self.max_answer();
                        let parts =
                            wire::split_parts(pairs, ENTRIES_FIXED, wire::entry_item_len, max);
                        (
                            Step::Served,
                            with_more(parts, |pairs, more| Reply::Entries { pairs, more }),
                        )
                    }
                }
            }
            OpView::Stats => {
                let stats = ctl.stats(store);
                self.hand_off(held, hand);
                let max = self.max_answer();
                let parts = wire::split_parts(stats, STATS_FIXED, wire::stat_item_len, max);
                (
                    Step::Served,
                    with_more(parts, |stats, more| Reply::Stats { stats, more }),
                )
            }
            _ => unreachable!("not a whole-table read"),
        }
    }

    /// [`Lane::execute`] for a change of worker count or Quit. Worker-count changes happen
    /// under the consumer lock, so that a client's ThreadsStart/ThreadsStop take effect (and
    /// report counts) in the order it sent them.
    fn execute_control(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
    ) -> (Step, Answer) {
        let Exec { ctl, hand, .. } = *exec;
        match op {
            OpView::ThreadsStart { n } => {
                let reply = self.start(n, ctl);
                if let Reply::Error(e) = &reply {
                    self.counters.error(e);
                }
                self.hand_off(held, hand);
                one(reply)
            }
            OpView::ThreadsStop => {
                let r = self
                    .workers
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                        (w > 1).then(|| w - 1)
                    });
                self.hand_off(held, hand);
                match r {
                    Ok(w) => (Step::Exit, Answer::One(Reply::Threads(w - 1))),
                    Err(_) => {
                        self.counters.error(&ErrorCode::LastWorker);
                        one(Reply::Error(ErrorCode::LastWorker))
                    }
                }
            }
            // (The server is asked to stop once the answer is written: see `serve_one`.)
            OpView::Quit => {
                self.hand_off(held, hand);
                one(Reply::Done)
            }
            _ => unreachable!("not a control operation"),
        }
    }

    /// The longest answer record the response ring carries.
    fn max_answer(&self) -> usize {
        crate::record::max_payload(self.responses.capacity())
    }

    fn start(&self, n: u32, ctl: &dyn Control) -> Reply {
        let max = self.max_workers;
        match self
            .workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                w.checked_add(n).filter(|&t| t <= max)
            }) {
            Err(current) => Reply::Error(ErrorCode::ThreadLimit { current, max }),
            Ok(before) => {
                let started = ctl.start_workers(n).min(n);
                if started < n {
                    self.workers.fetch_sub(n - started, Ordering::SeqCst);
                }
                if started == 0 {
                    Reply::Error(ErrorCode::ShuttingDown)
                } else {
                    Reply::Threads(before + started)
                }
            }
        }
    }
}

/// A one-part answer, the request served.
fn one(r: Reply) -> (Step, Answer) {
    (Step::Served, Answer::One(r))
}

/// The parts of a long answer, each made by `make(items, more)`.
fn with_more<T>(parts: Vec<Vec<T>>, make: impl Fn(Vec<T>, bool) -> Reply) -> Answer {
    let last = parts.len() - 1;
    Answer::Parts(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| make(p, i < last))
            .collect(),
    )
}

/// The replies that answer one request: one (most), or the parts of a long answer, or one
/// already encoded into the worker's response buffer.
#[derive(Debug)]
pub(super) enum Answer {
    One(Reply),
    Parts(Vec<Reply>),
    Encoded,
}

/// What [`Lane::execute`] needs besides the operation.
#[derive(Clone, Copy)]
pub(super) struct Exec<'a> {
    pub(super) store: &'a Store,
    pub(super) ctl: &'a dyn Control,
    /// Whether the consumer lock is handed over once the request's order is fixed.
    pub(super) hand: bool,
    /// The request's id.
    pub(super) id: u64,
    /// The hash of the request's key, if it was taken already.
    pub(super) hash: Option<KeyHash>,
}

/// The refusal a store error becomes (`limits`: the lane's, for a result too long).
fn store_error(e: StoreError, limits: &Limits) -> ErrorCode {
    match e {
        StoreError::OutOfMemory => ErrorCode::OutOfMemory,
        StoreError::NotAnInteger => ErrorCode::NotAnInteger,
        StoreError::Overflow => ErrorCode::Overflow,
        StoreError::TooLong { len } => ErrorCode::TooLarge {
            what: crate::wire::Field::Value,
            len: len as u64,
            max: limits.max_value,
        },
    }
}
