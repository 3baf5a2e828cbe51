//! A linearizability checker for key-value histories: the Wing–Gong–Lowe search, per key.
//!
//! A *history* is a list of [`Call`]s, each an operation on one key ([`KvOp`]), the answer it
//! got ([`Output`]), and the times it was invoked and returned, read from one clock that every
//! recording thread and process shares (on Linux, `CLOCK_MONOTONIC` in nanoseconds). Keys and
//! values are byte strings. The history is *linearizable* when the calls can be put in one
//! order that (1) keeps every call that returned before another was invoked before it, and
//! (2) is a legal run of a sequential map ([`KvOp::apply`]):
//!
//! | operation | answer | effect |
//! |-----------|--------|--------|
//! | insert `k v` | [`Output::Created`], or [`Output::Replaced`] with the previous value | sets `v` |
//! | read `k` | [`Output::Value`], or [`Output::NotFound`] | none |
//! | delete `k` | [`Output::Deleted`] with the value removed, or [`Output::NotFound`] | removes |
//! | insert-new `k v` | [`Output::Created`], or [`Output::Exists`] with the current value | sets `v` only if absent |
//! | cas `k e n` (`e`: a value, or absent) | [`Output::Swapped`], or [`Output::Mismatch`] with the current value or absent | sets `n` only if the value is `e` |
//! | add `k d` | [`Output::Number`] with the sum, or [`Output::NotAnInteger`] / [`Output::Overflow`] | stores the sum in decimal; refusals change nothing |
//!
//! Add is Redis `INCRBY`: a missing key counts as 0, and a value counts as an integer only in
//! its canonical decimal form (what `i64`'s `Display` writes: an optional `-`, no `+`, no
//! leading zeros, no spaces, not `-0`).
//!
//! Every operation is on one key, so the history is linearizable exactly when each key's
//! sub-history is (linearizability is compositional, Herlihy and Wing's locality property;
//! "P-compositionality" in Horn and Kroening's terms). [`check`] therefore searches each key
//! on its own, which turns one search over all calls into many small ones.
//!
//! The search for one key is Wing and Gong's, with Lowe's memoization: calls and returns are
//! one list in time order; a call may be linearized next when it was invoked before the first
//! return still in the list (it is *minimal*); linearizing it applies it to the state and must
//! give the answer it got, then lifts it out of the list; when the first entry is a return whose
//! call could not be linearized, the search backtracks. A set of (linearized calls, state)
//! pairs already explored cuts every path that reaches a known configuration again; states (the
//! key's value, or absent) are interned, so a configuration costs the same whatever the size of
//! the values. The cost is linear in the calls for the usual history (few calls overlap) and
//! exponential in the worst case; [`Options::max_configurations`] bounds it.
//!
//! A call without a return time (its process died, or the answer was lost) may have taken
//! effect or not: the search may linearize it anywhere after its invocation, with any answer,
//! or leave it out.
//!
//! The module uses only `std` and has no `unsafe`; it does not depend on the rest of the crate.
//!
//! ```
//! use shmkv_testkit::{check, Call, KvOp, Output};
//!
//! let insert = KvOp::Insert { key: b"k".to_vec(), value: b"10".to_vec() };
//! let read = KvOp::Read { key: b"k".to_vec() };
//! // Two clients; the read overlaps the insert, so it may see either value.
//! let h = [
//!     Call::new(0, insert.clone(), Output::Created, 0, 10),
//!     Call::new(1, read.clone(), Output::Value(b"10".to_vec()), 5, 15),
//! ];
//! assert!(check(&h).is_ok());
//!
//! // The read ended before the insert began, yet it saw the insert's value: not linearizable.
//! let h = [
//!     Call::new(1, read, Output::Value(b"10".to_vec()), 0, 4),
//!     Call::new(0, insert, Output::Created, 5, 10),
//! ];
//! assert!(check(&h).is_err());
//!
//! // Two adds of 1 to a missing key cannot both answer 1 (a lost update).
//! let add = KvOp::Add { key: b"n".to_vec(), delta: 1 };
//! let h = [
//!     Call::new(0, add.clone(), Output::Number(1), 0, 10),
//!     Call::new(1, add, Output::Number(1), 0, 10),
//! ];
//! assert!(check(&h).is_err());
//! ```

pub mod redis;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// One key-value operation on byte strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Insert or replace: [`Output::Created`] or [`Output::Replaced`].
    Insert {
        /// The key.
        key: Vec<u8>,
        /// The value stored.
        value: Vec<u8>,
    },
    /// Read: [`Output::Value`] or [`Output::NotFound`].
    Read {
        /// The key.
        key: Vec<u8>,
    },
    /// Delete: [`Output::Deleted`] or [`Output::NotFound`].
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Insert only if absent (Redis `SET NX`): [`Output::Created`] or [`Output::Exists`].
    InsertNew {
        /// The key.
        key: Vec<u8>,
        /// The value stored if the key is absent.
        value: Vec<u8>,
    },
    /// Compare and set: [`Output::Swapped`] or [`Output::Mismatch`].
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value expected; `None`: the key is expected absent.
        expected: Option<Vec<u8>>,
        /// The value stored if the expectation holds.
        new: Vec<u8>,
    },
    /// Add to the decimal integer stored (Redis `INCRBY`): [`Output::Number`],
    /// [`Output::NotAnInteger`] or [`Output::Overflow`].
    Add {
        /// The key.
        key: Vec<u8>,
        /// What to add.
        delta: i64,
    },
}

/// The answer of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// Insert or insert-new: the key was absent and is now set.
    Created,
    /// Insert: the key held this value, now replaced.
    Replaced(Vec<u8>),
    /// Read: the key's value.
    Value(Vec<u8>),
    /// Read or delete: the key was absent.
    NotFound,
    /// Delete: the key held this value, now removed.
    Deleted(Vec<u8>),
    /// Insert-new: the key holds this value; nothing changed.
    Exists(Vec<u8>),
    /// Cas: the expectation held; the new value is set.
    Swapped,
    /// Cas: the key held this value (`None`: it was absent), not the one expected; nothing
    /// changed.
    Mismatch(Option<Vec<u8>>),
    /// Add: the sum, now stored.
    Number(i64),
    /// Add: the value is not a canonical decimal `i64`; nothing changed.
    NotAnInteger,
    /// Add: the sum does not fit an `i64`; nothing changed.
    Overflow,
}

/// An answer computed from a state, borrowing the state's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer<'s> {
    Created,
    Replaced(&'s [u8]),
    Value(&'s [u8]),
    NotFound,
    Deleted(&'s [u8]),
    Exists(&'s [u8]),
    Swapped,
    Mismatch(Option<&'s [u8]>),
    Number(i64),
    NotAnInteger,
    Overflow,
}

impl Answer<'_> {
    /// Whether this is the answer `o` (without building an [`Output`]).
    fn is(&self, o: &Output) -> bool {
        match (*self, o) {
            (Answer::Created, Output::Created)
            | (Answer::NotFound, Output::NotFound)
            | (Answer::Swapped, Output::Swapped)
            | (Answer::NotAnInteger, Output::NotAnInteger)
            | (Answer::Overflow, Output::Overflow) => true,
            (Answer::Replaced(a), Output::Replaced(b))
            | (Answer::Value(a), Output::Value(b))
            | (Answer::Deleted(a), Output::Deleted(b))
            | (Answer::Exists(a), Output::Exists(b)) => a == b.as_slice(),
            (Answer::Mismatch(a), Output::Mismatch(b)) => a == b.as_deref(),
            (Answer::Number(a), Output::Number(b)) => a == *b,
            _ => false,
        }
    }

    fn to_output(self) -> Output {
        match self {
            Answer::Created => Output::Created,
            Answer::Replaced(v) => Output::Replaced(v.to_vec()),
            Answer::Value(v) => Output::Value(v.to_vec()),
            Answer::NotFound => Output::NotFound,
            Answer::Deleted(v) => Output::Deleted(v.to_vec()),
            Answer::Exists(v) => Output::Exists(v.to_vec()),
            Answer::Swapped => Output::Swapped,
            Answer::Mismatch(v) => Output::Mismatch(v.map(<[u8]>::to_vec)),
            Answer::Number(n) => Output::Number(n),
            Answer::NotAnInteger => Output::NotAnInteger,
            Answer::Overflow => Output::Overflow,
        }
    }
}

/// What an operation does to its key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Nothing.
    Keep,
    /// The key becomes absent.
    Remove,
    /// The key takes the operation's own value (insert's, insert-new's, cas's new one).
    SetOwn,
    /// The key takes this number, in decimal.
    SetNumber(i64),
}

/// `bytes` as an integer, if it is one in Redis's sense: the canonical decimal form of an
/// `i64`, exactly what its `Display` writes.
fn decimal(bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

impl KvOp {
    /// The key the operation is on.
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Insert { key, .. }
            | KvOp::Read { key }
            | KvOp::Delete { key }
            | KvOp::InsertNew { key, .. }
            | KvOp::Cas { key, .. }
            | KvOp::Add { key, .. } => key,
        }
    }

    /// The value the operation may store, if it stores one of its own (insert, insert-new,
    /// cas).
    pub fn written(&self) -> Option<&[u8]> {
        match self {
            KvOp::Insert { value, .. } | KvOp::InsertNew { value, .. } => Some(value),
            KvOp::Cas { new, .. } => Some(new),
            KvOp::Read { .. } | KvOp::Delete { .. } | KvOp::Add { .. } => None,
        }
    }

    /// Answer and effect on the key's state, without copying anything.
    fn step<'s>(&self, state: Option<&'s [u8]>) -> (Answer<'s>, Effect) {
        match self {
            KvOp::Insert { .. } => (
                state.map_or(Answer::Created, Answer::Replaced),
                Effect::SetOwn,
            ),
            KvOp::Read { .. } => (state.map_or(Answer::NotFound, Answer::Value), Effect::Keep),
            KvOp::Delete { .. } => (
                state.map_or(Answer::NotFound, Answer::Deleted),
                Effect::Remove,
            ),
            KvOp::InsertNew { .. } => match state {
                None => (Answer::Created, Effect::SetOwn),
                Some(v) => (Answer::Exists(v), Effect::Keep),
            },
            KvOp::Cas { expected, .. } => {
                if state == expected.as_deref() {
                    (Answer::Swapped, Effect::SetOwn)
                } else {
                    (Answer::Mismatch(state), Effect::Keep)
                }
            }
            KvOp::Add { delta, .. } => {
                let current = match state {
                    None => 0,
                    Some(v) => match decimal(v) {
                        Some(n) => n,
                        None => return (Answer::NotAnInteger, Effect::Keep),
                    },
                };
                match current.checked_add(*delta) {
                    Some(n) => (Answer::Number(n), Effect::SetNumber(n)),
                    None => (Answer::Overflow, Effect::Keep),
                }
            }
        }
    }

    /// Apply to the state of this key (`None`: absent); returns the answer and the new state.
    ///
    /// ```
    /// use shmkv_testkit::{KvOp, Output};
    /// let add = KvOp::Add { key: b"n".to_vec(), delta: 5 };
    /// assert_eq!(add.apply(Some(b"-2")), (Output::Number(3), Some(b"3".to_vec())));
    /// assert_eq!(add.apply(Some(b"02")), (Output::NotAnInteger, Some(b"02".to_vec())));
    /// let cas = KvOp::Cas { key: b"k".to_vec(), expected: None, new: b"v".to_vec() };
    /// assert_eq!(cas.apply(None), (Output::Swapped, Some(b"v".to_vec())));
    /// assert_eq!(cas.apply(Some(b"w")), (Output::Mismatch(Some(b"w".to_vec())), Some(b"w".to_vec())));
    /// ```
    pub fn apply(&self, state: Option<&[u8]>) -> (Output, Option<Vec<u8>>) {
        let (answer, effect) = self.step(state);
        let after = match effect {
            Effect::Keep => state.map(<[u8]>::to_vec),
            Effect::Remove => None,
            Effect::SetOwn => self.written().map(<[u8]>::to_vec),
            Effect::SetNumber(n) => Some(n.to_string().into_bytes()),
        };
        (answer.to_output(), after)
    }
}

/// Bytes for reports: bare when they are a plain word (letters, digits, `-_.:/+=@,`), else
/// quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\xHH` escapes (redis-cli's style).
pub struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:/+=@,".contains(b);
        if !self.0.is_empty() && self.0.iter().all(plain) {
            // Plain bytes are ASCII.
            return f.write_str(std::str::from_utf8(self.0).unwrap_or_default());
        }
        f.write_str("\"")?;
        for &b in self.0 {
            match b {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                b' '..=b'~' => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

/// A value or absence for reports: [`Shown`], or `(absent)`.
struct Maybe<'a>(Option<&'a [u8]>);

impl fmt::Display for Maybe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => Shown(v).fmt(f),
            None => f.write_str("(absent)"),
        }
    }
}

impl fmt::Display for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOp::Insert { key, value } => write!(f, "insert {} {}", Shown(key), Shown(value)),
            KvOp::Read { key } => write!(f, "read {}", Shown(key)),
            KvOp::Delete { key } => write!(f, "delete {}", Shown(key)),
            KvOp::InsertNew { key, value } => {
                write!(f, "insert-new {} {}", Shown(key), Shown(value))
            }
            KvOp::Cas { key, expected, new } => write!(
                f,
                "cas {} {} {}",
                Shown(key),
                Maybe(expected.as_deref()),
                Shown(new)
            ),
            KvOp::Add { key, delta } => write!(f, "add {} {delta}", Shown(key)),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Created => f.write_str("created"),
            Output::Replaced(v) => write!(f, "replaced {}", Shown(v)),
            Output::Value(v) => write!(f, "value {}", Shown(v)),
            Output::NotFound => f.write_str("not found"),
            Output::Deleted(v) => write!(f, "deleted {}", Shown(v)),
            Output::Exists(v) => write!(f, "exists {}", Shown(v)),
            Output::Swapped => f.write_str("swapped"),
            Output::Mismatch(v) => write!(f, "mismatch {}", Maybe(v.as_deref())),
            Output::Number(n) => write!(f, "number {n}"),
            Output::NotAnInteger => f.write_str("not an integer"),
            Output::Overflow => f.write_str("overflow"),
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Who made the call (a process or thread number); only for reports.
    pub client: u64,
    /// The operation.
    pub op: KvOp,
    /// Its answer; `None` exactly when it never returned (`ret` is `None`).
    pub output: Option<Output>,
    /// When it was invoked (before the request was sent).
    pub invoke: u64,
    /// When it returned (after the answer arrived); `None` if it never did.
    pub ret: Option<u64>,
}

impl Call {
    /// A call that returned `output` at time `ret`.
    pub fn new(client: u64, op: KvOp, output: Output, invoke: u64, ret: u64) -> Call {
        Call {
            client,
            op,
            output: Some(output),
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

    /// Whether the call is well formed: it returned no earlier than it was invoked, and it
    /// has an answer exactly when it returned.
    pub fn is_well_formed(&self) -> bool {
        match self.ret {
            Some(r) => r >= self.invoke && self.output.is_some(),
            None => self.output.is_none(),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ret, &self.output) {
            (Some(r), Some(o)) => write!(
                f,
                "[{}..{}] client {}: {} -> {}",
                self.invoke, r, self.client, self.op, o
            ),
            (Some(r), None) => write!(
                f,
                "[{}..{}] client {}: {} -> (answer missing)",
                self.invoke, r, self.client, self.op
            ),
            (None, _) => write!(
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
    pub key: Vec<u8>,
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
            Shown(&self.key),
            self.calls.len(),
            self.longest.len()
        )?;
        let mut state: Option<Vec<u8>> = None;
        let skip = self.longest.len().saturating_sub(8);
        for (n, &i) in self.longest.iter().enumerate() {
            state = self.calls[i].op.apply(state.as_deref()).1;
            if n >= skip {
                writeln!(f, "  {}", self.calls[i])?;
            }
        }
        if skip > 0 {
            writeln!(f, "  (the first {skip} not shown)")?;
        }
        let show = match &state {
            Some(v) => format!("holding {}", Shown(v)),
            None => "absent".to_string(),
        };
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
        key: Vec<u8>,
        /// Configurations remembered.
        configurations: usize,
    },
    /// A call is not [well formed](Call::is_well_formed): it returned before it was invoked,
    /// or it returned without an answer, or has an answer but never returned.
    BadCall(Box<Call>),
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
                "key {}: gave up after {configurations} configurations (raise max_configurations)",
                Shown(key)
            ),
            CheckError::BadCall(c) => write!(
                f,
                "a malformed call (returned before it was invoked, or answer and return disagree): {c}"
            ),
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
    let mut by_key: BTreeMap<&[u8], Vec<&Call>> = BTreeMap::new();
    for c in history {
        if !c.is_well_formed() {
            return Err(CheckError::BadCall(Box::new(c.clone())));
        }
        by_key.entry(c.op.key()).or_default().push(c);
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
                    key: key.to_vec(),
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
                    key: key.to_vec(),
                    calls: calls.into_iter().cloned().collect(),
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

/// The states of one key's search, interned: id 0 is "absent", id `i + 1` is `values[i]`.
#[derive(Default)]
struct States {
    values: Vec<Vec<u8>>,
    ids: HashMap<Vec<u8>, u32>,
}

/// The state id of "absent".
const ABSENT: u32 = 0;

impl States {
    fn intern(&mut self, v: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.values.push(v.to_vec());
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.ids.insert(v.to_vec(), id);
        id
    }

    fn get(&self, id: u32) -> Option<&[u8]> {
        (id != ABSENT).then(|| self.values[id as usize - 1].as_slice())
    }
}

const HEAD: usize = usize::MAX;

/// The Wing–Gong–Lowe search over the calls of one key, sorted by invocation.
fn search(calls: &[&Call], max_configurations: usize, record: bool) -> Outcome {
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

    // Each call's own value (what it stores when it stores one), interned once.
    let mut states = States::default();
    let own: Vec<u32> = calls
        .iter()
        .map(|c| c.op.written().map_or(ABSENT, |v| states.intern(v)))
        .collect();

    let mut linearized = Bits(vec![0; calls.len().div_ceil(64)]);
    let mut seen: HashSet<(Bits, u32)> = HashSet::new();
    let mut state: u32 = ABSENT;
    // (call index, state before it)
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut blocked = 0;
    let mut entry = first;
    while returns_left > 0 {
        debug_assert!(entry != HEAD, "a return is always left in the list");
        let i = entry / 2;
        if entry % 2 == 0 {
            // A minimal call: try it next.
            let c = calls[i];
            let (answer, effect) = c.op.step(states.get(state));
            let fits = match &c.output {
                Some(o) if returned(i) => answer.is(o),
                _ => true,
            };
            if fits {
                let after = match effect {
                    Effect::Keep => state,
                    Effect::Remove => ABSENT,
                    Effect::SetOwn => own[i],
                    Effect::SetNumber(n) => states.intern(n.to_string().as_bytes()),
                };
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
mod tests;
