//! A linearizability checker for key-value histories: the Wing–Gong–Lowe search, per key.
//!
//! A *history* is a list of [`Call`]s, each an operation on one key ([`KvOp`]: insert, read or
//! delete), the value it answered, and the times it was invoked and returned, read from one
//! clock that every recording thread and process shares (on Linux, `CLOCK_MONOTONIC` in
//! nanoseconds). The history is *linearizable* when the calls can be
//! put in one order that (1) keeps every call that returned before another was invoked before
//! it, and (2) is a legal run of a sequential map: an insert answers the value it replaced, a
//! read the current value, a delete the value it removed (`None`: there was none).
//!
//! The sequential map's keys are independent, so the history is linearizable exactly when each
//! key's sub-history is (linearizability is compositional, Herlihy and Wing's locality
//! property; "P-compositionality" in Horn and Kroening's terms). [`check`] therefore searches
//! each key on its own, which turns one search over all calls into many small ones.
//!
//! The search for one key is Wing and Gong's, with Lowe's memoization: calls and returns are
//! one list in time order; a call may be linearized next when it was invoked before the first
//! return still in the list (it is *minimal*); linearizing it applies it to the state and must
//! give the answer it got, then lifts it out of the list; when the first entry is a return whose
//! call could not be linearized, the search backtracks. A set of (linearized calls, state)
//! pairs already explored cuts every path that reaches a known configuration again. The cost is
//! linear in the calls for the usual history (few calls overlap) and exponential in the worst
//! case; [`Options::max_configurations`] bounds it.
//!
//! A call without a return time (its process died, or the answer was lost) may have taken
//! effect or not: the search may linearize it anywhere after its invocation, with any answer,
//! or leave it out.
//!
//! The module uses only `std` and has no `unsafe`; it does not depend on the rest of the crate.
//!
//! ```
//! use shmkv::lincheck::{check, Call, KvOp};
//!
//! // Two clients; the read overlaps the insert, so it may see either value.
//! let h = [
//!     Call::new(0, KvOp::Insert { key: 1, value: 10 }, None, 0, 10),
//!     Call::new(1, KvOp::Read { key: 1 }, Some(10), 5, 15),
//! ];
//! assert!(check(&h).is_ok());
//!
//! // The read ended before the insert began, yet it saw the insert's value: not linearizable.
//! let h = [
//!     Call::new(1, KvOp::Read { key: 1 }, Some(10), 0, 4),
//!     Call::new(0, KvOp::Insert { key: 1, value: 10 }, None, 5, 10),
//! ];
//! assert!(check(&h).is_err());
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// One key-value operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Insert or replace; answers the value replaced (`None`: the key was new).
    Insert {
        /// The key.
        key: u64,
        /// The value stored.
        value: u64,
    },
    /// Read; answers the value (`None`: absent).
    Read {
        /// The key.
        key: u64,
    },
    /// Delete; answers the value removed (`None`: absent).
    Delete {
        /// The key.
        key: u64,
    },
}

impl KvOp {
    /// The key the operation is on.
    pub fn key(&self) -> u64 {
        match *self {
            KvOp::Insert { key, .. } | KvOp::Read { key } | KvOp::Delete { key } => key,
        }
    }

    /// Apply to the state of this key; returns the answer and the new state.
    pub fn apply(&self, state: Option<u64>) -> (Option<u64>, Option<u64>) {
        match *self {
            KvOp::Insert { value, .. } => (state, Some(value)),
            KvOp::Read { .. } => (state, state),
            KvOp::Delete { .. } => (state, None),
        }
    }
}

impl fmt::Display for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KvOp::Insert { key, value } => write!(f, "insert {key} {value}"),
            KvOp::Read { key } => write!(f, "read {key}"),
            KvOp::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Who made the call (a process or thread number); only for reports.
    pub client: u64,
    /// The operation.
    pub op: KvOp,
    /// Its answer: the previous value (insert), the value read (read) or removed (delete);
    /// `None` when there was none. Ignored when `ret` is `None`.
    pub output: Option<u64>,
    /// When it was invoked (before the request was sent).
    pub invoke: u64,
    /// When it returned (after the answer arrived); `None` if it never did.
    pub ret: Option<u64>,
}

impl Call {
    /// A call that returned `output` at time `ret`.
    pub fn new(client: u64, op: KvOp, output: Option<u64>, invoke: u64, ret: u64) -> Call {
        Call {
            client,
            op,
            output,
            invoke,
            ret: Some(ret),
        }
    }

    /// A call that was invoked at `invoke` and never returned.
    pub fn pending(client: u64, op: KvOp, invoke: u64) -> Call {
        Call {
            client,
            op,
            output: None,
            invoke,
            ret: None,
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
        match self.ret {
            Some(r) => write!(
                f,
                "[{}..{}] client {}: {} -> {}",
                self.invoke,
                r,
                self.client,
                self.op,
                show(self.output)
            ),
            None => write!(
                f,
                "[{}..] client {}: {} -> (no answer)",
                self.invoke, self.client, self.op
            ),
        }
    }
}

/// Limits of the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Most configurations (linearized set, state) one key's search may remember before it
    /// gives up with [`CheckError::Inconclusive`].
    pub max_configurations: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_configurations: 4_000_000,
        }
    }
}

/// What a successful check looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys in the history.
    pub keys: usize,
    /// Calls in the history.
    pub calls: usize,
    /// Configurations explored over all keys (equal to `calls` when no backtracking was
    /// needed).
    pub configurations: u64,
}

/// Why a history is not linearizable: one key's calls, the longest linearizable prefix the
/// search found, and the call that could not be placed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: u64,
    /// Every call on the key, in invocation order.
    pub calls: Vec<Call>,
    /// Indices into `calls`: the longest order the search could build, in that order.
    pub longest: Vec<usize>,
    /// Index into `calls` of a call that had returned but could not be linearized after
    /// `longest`.
    pub blocked: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {}: {} calls are not linearizable; the longest legal order found ({} calls) is",
            self.key,
            self.calls.len(),
            self.longest.len()
        )?;
        let mut state = None;
        let skip = self.longest.len().saturating_sub(8);
        for (n, &i) in self.longest.iter().enumerate() {
            state = self.calls[i].op.apply(state).1;
            if n >= skip {
                writeln!(f, "  {}", self.calls[i])?;
            }
        }
        if skip > 0 {
            writeln!(f, "  (the first {skip} not shown)")?;
        }
        let show = state.map_or("absent".to_string(), |v| format!("{v}"));
        write!(
            f,
            "leaving the key {show}; after it no order fits this call, which had returned:\n  {}",
            self.calls[self.blocked]
        )
    }
}

/// Why [`check`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The history is not linearizable.
    NotLinearizable(Box<Violation>),
    /// The search for one key met [`Options::max_configurations`] first.
    Inconclusive {
        /// The key.
        key: u64,
        /// Configurations remembered.
        configurations: usize,
    },
    /// A call returned before it was invoked.
    BadCall(Call),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotLinearizable(v) => v.fmt(f),
            CheckError::Inconclusive {
                key,
                configurations,
            } => write!(
                f,
                "key {key}: gave up after {configurations} configurations (raise max_configurations)"
            ),
            CheckError::BadCall(c) => write!(f, "a call returned before it was invoked: {c}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// Check `history` with the default [`Options`].
pub fn check(history: &[Call]) -> Result<Report, CheckError> {
    check_with(history, &Options::default())
}

/// Check `history`: `Ok` when it is linearizable with respect to a sequential map.
pub fn check_with(history: &[Call], options: &Options) -> Result<Report, CheckError> {
    let mut by_key: BTreeMap<u64, Vec<Call>> = BTreeMap::new();
    for c in history {
        if c.ret.is_some_and(|r| r < c.invoke) {
            return Err(CheckError::BadCall(*c));
        }
        by_key.entry(c.op.key()).or_default().push(*c);
    }
    let mut report = Report {
        keys: by_key.len(),
        calls: history.len(),
        configurations: 0,
    };
    for (key, mut calls) in by_key {
        calls.sort_by_key(|c| (c.invoke, c.ret));
        match search(&calls, options.max_configurations, false) {
            Outcome::Linearizable(n) => report.configurations += n as u64,
            Outcome::Inconclusive(n) => {
                return Err(CheckError::Inconclusive {
                    key,
                    configurations: n,
                });
            }
            Outcome::Not { .. } => {
                // Search again, recording the deepest order, for the report.
                let Outcome::Not { longest, blocked } =
                    search(&calls, options.max_configurations, true)
                else {
                    unreachable!("the search is deterministic");
                };
                return Err(CheckError::NotLinearizable(Box::new(Violation {
                    key,
                    calls,
                    longest,
                    blocked,
                })));
            }
        }
    }
    Ok(report)
}

enum Outcome {
    Linearizable(usize),
    Inconclusive(usize),
    Not { longest: Vec<usize>, blocked: usize },
}

/// A set of call indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

const HEAD: usize = usize::MAX;

/// The Wing–Gong–Lowe search over the calls of one key, sorted by invocation.
fn search(calls: &[Call], max_configurations: usize, record: bool) -> Outcome {
    // Events: call i is event 2i, its return 2i+1 (absent when it never returned). Order:
    // by time, a call before a return at the same instant (they overlap then).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * calls.len());
    for (i, c) in calls.iter().enumerate() {
        events.push((c.invoke, false, 2 * i));
        if let Some(r) = c.ret {
            events.push((r, true, 2 * i + 1));
        }
    }
    events.sort_unstable();
    // A doubly linked list over event ids in that order; HEAD is the sentinel.
    let n = 2 * calls.len();
    let mut next = vec![HEAD; n];
    let mut prev = vec![HEAD; n];
    let mut first = HEAD;
    let mut last = HEAD;
    for &(_, _, e) in &events {
        if last == HEAD {
            first = e;
        } else {
            next[last] = e;
        }
        prev[e] = last;
        last = e;
    }
    let returned = |i: usize| calls[i].ret.is_some();
    let mut returns_left = calls.iter().filter(|c| c.ret.is_some()).count();

    // Unlink event e (its neighbours keep pointing past it) and link it back.
    fn lift(e: usize, first: &mut usize, next: &mut [usize], prev: &mut [usize]) {
        let (p, nx) = (prev[e], next[e]);
        if p == HEAD {
            *first = nx;
        } else {
            next[p] = nx;
        }
        if nx != HEAD {
            prev[nx] = p;
        }
    }
    fn unlift(e: usize, first: &mut usize, next: &mut [usize], prev: &mut [usize]) {
        let (p, nx) = (prev[e], next[e]);
        if p == HEAD {
            *first = e;
        } else {
            next[p] = e;
        }
        if nx != HEAD {
            prev[nx] = e;
        }
    }

    let mut linearized = Bits(vec![0; calls.len().div_ceil(64)]);
    let mut seen: HashSet<(Bits, Option<u64>)> = HashSet::new();
    let mut state: Option<u64> = None;
    // (call index, state before it)
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut blocked = 0;
    let mut entry = first;
    while returns_left > 0 {
        debug_assert!(entry != HEAD, "a return is always left in the list");
        let i = entry / 2;
        if entry % 2 == 0 {
            // A minimal call: try it next.
            let c = &calls[i];
            let (out, after) = c.op.apply(state);
            if !returned(i) || out == c.output {
                linearized.set(i);
                if seen.insert((linearized.clone(), after)) {
                    if seen.len() > max_configurations {
                        return Outcome::Inconclusive(seen.len());
                    }
                    stack.push((i, state));
                    state = after;
                    lift(2 * i, &mut first, &mut next, &mut prev);
                    if returned(i) {
                        lift(2 * i + 1, &mut first, &mut next, &mut prev);
                        returns_left -= 1;
                    }
                    entry = first;
                    continue;
                }
                linearized.clear(i);
            }
            entry = next[entry];
        } else {
            // The first return left: its call must come before every call not yet placed,
            // and cannot be placed now. Backtrack.
            if record && stack.len() >= longest.len() {
                longest = stack.iter().map(|&(c, _)| c).collect();
                blocked = i;
            }
            let Some((j, before)) = stack.pop() else {
                return Outcome::Not { longest, blocked };
            };
            linearized.clear(j);
            state = before;
            if returned(j) {
                unlift(2 * j + 1, &mut first, &mut next, &mut prev);
                returns_left += 1;
            }
            unlift(2 * j, &mut first, &mut next, &mut prev);
            entry = next[2 * j];
        }
    }
    Outcome::Linearizable(seen.len())
}

// Not under Miri: the checker has no unsafe code and no threads, and its searches (up to tens
// of thousands of configurations) would take Miri many minutes.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn ins(c: u64, key: u64, value: u64, prev: Option<u64>, a: u64, b: u64) -> Call {
        Call::new(c, KvOp::Insert { key, value }, prev, a, b)
    }
    fn read(c: u64, key: u64, v: Option<u64>, a: u64, b: u64) -> Call {
        Call::new(c, KvOp::Read { key }, v, a, b)
    }
    fn del(c: u64, key: u64, v: Option<u64>, a: u64, b: u64) -> Call {
        Call::new(c, KvOp::Delete { key }, v, a, b)
    }

    fn not_lin(h: &[Call]) -> Violation {
        match check(h) {
            Err(CheckError::NotLinearizable(v)) => *v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn empty_and_sequential_histories_pass() {
        assert_eq!(check(&[]).unwrap().calls, 0);
        let h = [
            read(0, 1, None, 0, 1),
            ins(0, 1, 10, None, 2, 3),
            ins(0, 1, 11, Some(10), 4, 5),
            read(0, 1, Some(11), 6, 7),
            del(0, 1, Some(11), 8, 9),
            del(0, 1, None, 10, 11),
            read(0, 1, None, 12, 13),
            ins(0, 2, 20, None, 14, 15),
        ];
        let r = check(&h).unwrap();
        assert_eq!((r.keys, r.calls, r.configurations), (2, 8, 8));
    }

    #[test]
    fn sequential_history_with_a_wrong_answer_fails() {
        let h = [ins(0, 1, 10, None, 0, 1), read(0, 1, Some(11), 2, 3)];
        let v = not_lin(&h);
        assert_eq!((v.key, v.longest.clone(), v.blocked), (1, vec![0], 1));
        let h = [ins(0, 1, 10, None, 0, 1), ins(0, 1, 11, None, 2, 3)];
        not_lin(&h);
        let h = [del(0, 1, Some(5), 0, 1)];
        not_lin(&h);
    }

    #[test]
    fn overlapping_calls_may_take_either_order() {
        // The read overlaps both inserts: it may see either value, or none.
        for seen in [None, Some(10), Some(11)] {
            let h = [
                ins(0, 1, 10, None, 0, 10),
                ins(1, 1, 11, Some(10), 5, 20),
                read(2, 1, seen, 1, 30),
            ];
            check(&h).unwrap();
        }
        // Here insert 11 must go first (insert 10 answers that it replaced 11), though 10 was
        // invoked first.
        let h = [
            ins(0, 1, 10, Some(11), 0, 10),
            ins(1, 1, 11, None, 5, 20),
            read(2, 1, Some(10), 21, 22),
        ];
        check(&h).unwrap();
        // Calls that touch at one instant overlap.
        let h = [ins(0, 1, 10, Some(11), 0, 5), ins(1, 1, 11, None, 5, 6)];
        check(&h).unwrap();
    }

    #[test]
    fn read_of_a_value_inserted_after_the_read_returned_fails() {
        let h = [read(1, 1, Some(10), 0, 4), ins(0, 1, 10, None, 5, 10)];
        let v = not_lin(&h);
        assert_eq!(v.blocked, 0);
        assert!(v.to_string().contains("read 1 -> 10"), "{v}");
    }

    #[test]
    fn stale_read_after_a_completed_overwrite_fails() {
        let h = [
            ins(0, 1, 10, None, 0, 1),
            ins(0, 1, 11, Some(10), 2, 3),
            read(1, 1, Some(10), 4, 5),
        ];
        not_lin(&h);
        // The same read overlapping the overwrite is fine.
        let h = [
            ins(0, 1, 10, None, 0, 1),
            ins(0, 1, 11, Some(10), 2, 6),
            read(1, 1, Some(10), 4, 5),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn reads_must_agree_on_one_order() {
        // Two readers each see both inserts, in opposite orders, all overlapping: the writes
        // cannot be ordered both ways (a violation only the search, not a pairwise test, finds).
        let h = [
            ins(0, 1, 10, None, 0, 100),
            ins(1, 1, 11, Some(10), 0, 100),
            read(2, 1, Some(10), 1, 2),
            read(2, 1, Some(11), 3, 4),
            read(3, 1, Some(11), 1, 2),
            read(3, 1, Some(10), 3, 4),
        ];
        not_lin(&h);
    }

    #[test]
    fn a_delete_answers_only_once() {
        let h = [
            ins(0, 1, 10, None, 0, 1),
            del(1, 1, Some(10), 2, 10),
            del(2, 1, Some(10), 2, 10),
        ];
        not_lin(&h);
        let h = [
            ins(0, 1, 10, None, 0, 1),
            del(1, 1, Some(10), 2, 10),
            del(2, 1, None, 2, 10),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn keys_are_checked_separately() {
        // Each key alone is fine, and the violation on key 2 is found among them.
        let mut h: Vec<Call> = (0..50)
            .map(|k| ins(k, k, k + 100, None, k, k + 1000))
            .collect();
        check(&h).unwrap();
        h.push(read(99, 2, Some(7), 2000, 2001));
        assert_eq!(not_lin(&h).key, 2);
    }

    #[test]
    fn pending_calls_may_or_may_not_take_effect() {
        let h = [
            Call::pending(0, KvOp::Insert { key: 1, value: 10 }, 0),
            read(1, 1, None, 5, 6),
            read(1, 1, Some(10), 7, 8),
        ];
        check(&h).unwrap();
        let h = [
            Call::pending(0, KvOp::Insert { key: 1, value: 10 }, 0),
            read(1, 1, None, 5, 6),
        ];
        check(&h).unwrap();
        // But not before it was invoked.
        let h = [
            read(1, 1, Some(10), 0, 1),
            Call::pending(0, KvOp::Insert { key: 1, value: 10 }, 5),
        ];
        not_lin(&h);
        // And only once.
        let h = [
            Call::pending(0, KvOp::Insert { key: 1, value: 10 }, 0),
            read(1, 1, Some(10), 5, 6),
            del(1, 1, Some(10), 7, 8),
            read(1, 1, Some(10), 9, 10),
        ];
        not_lin(&h);
    }

    #[test]
    fn bad_calls_and_limits_are_reported() {
        let c = ins(0, 1, 10, None, 5, 4);
        assert_eq!(check(&[c]), Err(CheckError::BadCall(c)));
        // Sixteen overlapping reads of an absent key, then a read of a value nobody wrote: the
        // search visits every subset of the reads (2^16 configurations) before it knows; with
        // a small limit it gives up.
        let mut h: Vec<Call> = (0..16).map(|i| read(i, 1, None, 0, 100)).collect();
        h.push(read(99, 1, Some(1000), 101, 102));
        assert_eq!(not_lin(&h).blocked, 16);
        let opts = Options {
            max_configurations: 50,
        };
        assert!(matches!(
            check_with(&h, &opts),
            Err(CheckError::Inconclusive { key: 1, .. })
        ));
    }

    #[test]
    fn long_sequential_history_is_linear_in_work() {
        let mut h = Vec::new();
        let mut prev = None;
        for i in 0..20_000u64 {
            h.push(ins(i % 4, 7, i, prev, 2 * i, 2 * i + 1));
            prev = Some(i);
        }
        let r = check(&h).unwrap();
        assert_eq!(r.configurations, 20_000);
    }
}
