//! What every property test shares: the generated actions (every operation of the wire
//! protocol, on a pool of binary keys with binary values, maximum sizes included), the
//! `HashMap<Vec<u8>, Vec<u8>>` model, and the [`Checker`] that runs actions in pipelined
//! batches against a [`Target`] (the store itself, or a client of a real server) and checks
//! every answer.
//!
//! # What is checked, and how exactly
//!
//! A client's operations on one key take effect in the order it sent them, however many
//! workers serve it; operations on different keys may run in parallel, and Len, Scan and Print
//! are ordered with nothing (a worker hands the ring on before it executes them). So within a
//! batch (requests submitted together, then all answers awaited):
//!
//! - key operations must answer exactly what the model answers when it applies the batch in
//!   order (different keys commute);
//! - Stats and the thread operations are ordered with everything (they run with the ring
//!   held, Stats once every earlier request is answered): exact too — the worker count, and,
//!   when the client is alone on the server, the entry count and the memory in use;
//! - Len, Scan and Print may see each key in any state it takes during the batch: Len lies
//!   between the keys present throughout the batch and the keys present at some moment; Print
//!   shows each key of its bucket at most once, with a value it held during the batch, and
//!   every key present throughout;
//! - a full scan (cursor 0 until the answer's cursor is 0, one step per batch, other
//!   operations in between) meets Redis SCAN's guarantee: it returns every key present from
//!   the batch of its first step to the batch of its last at least once, only keys present at
//!   some moment of that span, and it terminates (in at most as many steps as buckets). On
//!   shmkv it returns each key at most once ([`Checker::scan_once`]); Redis may return a key
//!   more than once, and its steps are bounded by [`Checker::max_scan_steps`] instead.
//!
//! A batch of one is exact in every respect; the store target runs every action alone.
//!
//! The same checker runs through [`shmkv::engine::Engine`] ([`EngineTarget`]): shmkv's shared
//! memory with every action, and Redis with the actions it has ([`Action::for_redis`]).
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::select;
use shmkv::client::{Client, ClientError, Outcome};
use shmkv::engine::{Engine, EngineError};
use shmkv::stats::Stats;
use shmkv::store::{Store, StoreError, entry_cost};
use shmkv::wire::{ErrorCode, Field, Limits, Op};
use std::collections::{HashMap, HashSet};

/// Buckets of every table under test (few, so that keys share them and scans take steps).
pub const BUCKETS: u64 = 8;
/// Most worker threads per client of every server under test.
pub const MAX_WORKERS: u32 = 6;
/// The small limits most tests run with, so that maximum-size keys and values are cheap.
pub const SMALL: Limits = Limits {
    max_key: 64,
    max_value: 4096,
};
/// Keys in a pool at most (actions name keys by index, modulo the pool's size).
pub const POOL: usize = 8;

/// A key of the pool, before the limits are known.
#[derive(Debug, Clone)]
pub enum KeySpec {
    /// These bytes (1 to 12 of them).
    Lit(Vec<u8>),
    /// `max_key` bytes, a pattern from this seed.
    Max(u8),
}

/// A value, before the limits are known.
#[derive(Debug, Clone)]
pub enum Val {
    /// These bytes (maybe none).
    Lit(Vec<u8>),
    /// The number in canonical decimal (what add reads and writes).
    Number(i64),
    /// `max_value` bytes, a pattern from this seed.
    Max(u8),
}

/// What a cas expects.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The key to be absent.
    Absent,
    /// The key's value when the cas is submitted, as the model knows it (absent if it is).
    Current,
    /// This value.
    Other(Val),
}

/// A key or value one byte over its limit (or an empty key): the client refuses it unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// A read of the empty key.
    EmptyKey,
    /// An add on a key of `max_key + 1` bytes.
    LongKey,
    /// An insert of a value of `max_value + 1` bytes.
    LongValue,
    /// An insert-new of a value of `max_value + 1` bytes.
    LongNewValue,
    /// A cas to a value of `max_value + 1` bytes.
    LongCasNew,
    /// A cas expecting a value of `max_value + 1` bytes.
    LongExpected,
}

/// One step of a test. Keys are indices into the pool (modulo its size).
#[derive(Debug, Clone)]
pub enum Action {
    /// Insert.
    Insert(usize, Val),
    /// Read.
    Read(usize),
    /// Delete.
    Delete(usize),
    /// Insert-new.
    InsertNew(usize, Val),
    /// Cas.
    Cas(usize, Expect, Val),
    /// Add.
    Add(usize, i64),
    /// Len.
    Len,
    /// The next step (of this count) of the full scan in progress, or the first of a new one.
    Scan(u32),
    /// One scan step from this cursor, on its own (past the last bucket too).
    ScanFrom(u64, u32),
    /// Print of a bucket (past the last one too).
    Print(u64),
    /// ThreadsStart.
    ThreadsStart(u32),
    /// ThreadsStop.
    ThreadsStop,
    /// Stats.
    Stats,
    /// An operation over the limits, submitted alone.
    TooLarge(usize, Oversize),
    /// End of a batch: submit what is queued, wait for every answer.
    Flush,
}

impl Action {
    /// Whether the action is a key-value operation (what the linearizability test records).
    pub fn is_keyed(&self) -> bool {
        matches!(
            self,
            Action::Insert(..)
                | Action::Read(_)
                | Action::Delete(_)
                | Action::InsertNew(..)
                | Action::Cas(..)
                | Action::Add(..)
        )
    }

    /// Whether a Redis engine has it: every key-value operation, len, full scans and batch
    /// ends; not print, the thread operations or stats (shmkv's own server's), not a scan from
    /// an arbitrary cursor (a cursor is a bucket index only on shmkv), and not the size
    /// refusals (Redis's limits are 512 MiB; the empty key is tested on its own).
    pub fn for_redis(&self) -> bool {
        self.is_keyed() || matches!(self, Action::Len | Action::Scan(_) | Action::Flush)
    }

    /// Whether a store alone can run it (not the thread operations, Stats, or the client's
    /// size checks).
    pub fn for_store(&self) -> bool {
        !matches!(
            self,
            Action::ThreadsStart(_) | Action::ThreadsStop | Action::Stats | Action::TooLarge(..)
        )
    }
}

/// `len` bytes of a pattern from `seed` (every byte value occurs, 0x00 and 0xff included).
pub fn fill(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(37)) ^ (i >> 8) as u8)
        .collect()
}

/// The pool's keys under `limits`.
pub fn resolve_keys(specs: &[KeySpec], limits: Limits) -> Vec<Vec<u8>> {
    specs
        .iter()
        .map(|s| match s {
            KeySpec::Lit(k) => k.clone(),
            KeySpec::Max(seed) => fill(limits.max_key as usize, *seed),
        })
        .collect()
}

/// A value under `limits`.
pub fn resolve(v: &Val, limits: Limits) -> Vec<u8> {
    match v {
        Val::Lit(b) => b.clone(),
        Val::Number(n) => n.to_string().into_bytes(),
        Val::Max(seed) => fill(limits.max_value as usize, *seed),
    }
}

/// Keys that mean something to a client or a shell: bytes 0x00 and 0xff, quotes, spaces,
/// numbers.
const SPECIAL_KEYS: &[&[u8]] = &[
    b"\x00",
    b"\xff",
    b"\"",
    b" ",
    b"a b",
    b"\"q\" \x00\xff",
    b"0",
    b"-1",
    b"\\",
];

/// Values likewise, and decimals add must refuse as not canonical.
const SPECIAL_VALUES: &[&[u8]] = &[
    b"", b"\x00", b"\xff", b"\"", b" ", b"a b", b"-0", b"+1", b"01", b" 1", b"1 ", b"1\x00",
    b"0x10", b"1.5", b"--1",
];

/// A key of the pool.
pub fn key_spec() -> impl Strategy<Value = KeySpec> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(KeySpec::Lit),
        2 => select(SPECIAL_KEYS).prop_map(|k| KeySpec::Lit(k.to_vec())),
        1 => any::<u8>().prop_map(KeySpec::Max),
    ]
}

/// A pool of 1 to [`POOL`] keys.
pub fn pool() -> impl Strategy<Value = Vec<KeySpec>> {
    proptest::collection::vec(key_spec(), 1..=POOL)
}

/// A value.
pub fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(Val::Lit),
        2 => select(SPECIAL_VALUES).prop_map(|v| Val::Lit(v.to_vec())),
        3 => (-20i64..20).prop_map(Val::Number),
        1 => select(&[i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1][..]).prop_map(Val::Number),
        1 => any::<u8>().prop_map(Val::Max),
    ]
}

/// What an add adds: mostly small, sometimes the extremes (overflow).
pub fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        5 => -5i64..=5,
        1 => select(&[i64::MAX, i64::MIN, -i64::MAX, 1 << 62][..]),
    ]
}

/// What a cas expects.
pub fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        3 => Just(Expect::Current),
        1 => Just(Expect::Absent),
        1 => val().prop_map(Expect::Other),
    ]
}

/// A key-value operation on the pool.
pub fn keyed_action() -> impl Strategy<Value = Action> {
    let k = 0..POOL;
    prop_oneof![
        4 => (k.clone(), val()).prop_map(|(k, v)| Action::Insert(k, v)),
        3 => k.clone().prop_map(Action::Read),
        2 => k.clone().prop_map(Action::Delete),
        2 => (k.clone(), val()).prop_map(|(k, v)| Action::InsertNew(k, v)),
        3 => (k.clone(), expect(), val()).prop_map(|(k, e, v)| Action::Cas(k, e, v)),
        3 => (k, delta()).prop_map(|(k, d)| Action::Add(k, d)),
    ]
}

/// Any action.
pub fn action() -> impl Strategy<Value = Action> {
    let oversize = select(
        &[
            Oversize::EmptyKey,
            Oversize::LongKey,
            Oversize::LongValue,
            Oversize::LongNewValue,
            Oversize::LongCasNew,
            Oversize::LongExpected,
        ][..],
    );
    prop_oneof![
        17 => keyed_action(),
        1 => Just(Action::Len),
        3 => (1..4u32).prop_map(Action::Scan),
        1 => (0..BUCKETS + 3, 1..4u32).prop_map(|(c, n)| Action::ScanFrom(c, n)),
        1 => (0..BUCKETS + 2).prop_map(Action::Print),
        1 => (1..3u32).prop_map(Action::ThreadsStart),
        1 => Just(Action::ThreadsStop),
        1 => Just(Action::Stats),
        1 => (0..POOL, oversize).prop_map(|(k, o)| Action::TooLarge(k, o)),
        3 => Just(Action::Flush),
    ]
}

/// Key-value operations, thread changes and batch ends: what clients sharing keys run.
pub fn shared_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        10 => keyed_action(),
        1 => (1..3u32).prop_map(Action::ThreadsStart),
        1 => Just(Action::ThreadsStop),
        2 => Just(Action::Flush),
    ]
}

/// `pool` and `actions` with a maximum-size key added to the pool, and a maximum-size value
/// inserted there, read, swapped for the empty value and back, first: so that every run
/// holds both, whatever was generated.
pub fn with_maximum_sizes(pool: &[KeySpec], actions: &[Action]) -> (Vec<KeySpec>, Vec<Action>) {
    let mut pool = pool.to_vec();
    pool.push(KeySpec::Max(0xa5));
    let k = pool.len() - 1;
    let mut all = vec![
        Action::Insert(k, Val::Max(0x5a)),
        Action::Read(k),
        Action::Cas(k, Expect::Other(Val::Max(0x5a)), Val::Lit(Vec::new())),
        Action::Cas(k, Expect::Current, Val::Max(0x33)),
        Action::Flush,
    ];
    all.extend_from_slice(actions);
    (pool, all)
}

/// What runs the operations.
pub trait Target {
    /// Submit `ops` together and return their answers in order (panics on a client error).
    fn batch(&self, ops: &[Op]) -> Vec<Outcome>;
    /// Submit `op` alone and return the client's refusal (`None`: it was sent).
    fn refuse(&self, op: &Op) -> Option<ClientError>;
}

impl Target for Client {
    fn batch(&self, ops: &[Op]) -> Vec<Outcome> {
        let tickets = self.submit_all(ops).expect("submit");
        tickets
            .into_iter()
            .map(|t| self.wait(t).expect("wait"))
            .collect()
    }

    fn refuse(&self, op: &Op) -> Option<ClientError> {
        match self.submit(op.clone()) {
            Err(e) => Some(e),
            Ok(t) => {
                let _ = self.wait(t);
                None
            }
        }
    }
}

/// An [`Engine`] as a [`Target`]: a batch is one `execute_all`.
pub struct EngineTarget<'a>(pub &'a dyn Engine);

impl Target for EngineTarget<'_> {
    fn batch(&self, ops: &[Op]) -> Vec<Outcome> {
        let kind = self.0.kind();
        self.0
            .execute_all(ops)
            .unwrap_or_else(|e| panic!("{kind}: batch refused: {e}"))
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{kind}: no answer: {e}")))
            .collect()
    }

    fn refuse(&self, op: &Op) -> Option<ClientError> {
        match self.0.execute_all(std::slice::from_ref(op)) {
            Err(EngineError::TooLarge(e)) => Some(e),
            Err(e) => panic!(
                "{}: {op:?} refused, but not as too large: {e}",
                self.0.kind()
            ),
            Ok(_) => None,
        }
    }
}

/// A store error as the server reports it.
fn code(e: StoreError) -> ErrorCode {
    match e {
        StoreError::OutOfMemory => ErrorCode::OutOfMemory,
        StoreError::NotAnInteger => ErrorCode::NotAnInteger,
        StoreError::Overflow => ErrorCode::Overflow,
        // (Only `add_within` gives it; these tests' limits hold any integer's text.)
        StoreError::TooLong { len } => ErrorCode::TooLarge {
            what: shmkv::wire::Field::Value,
            len: len as u64,
            max: u32::MAX,
        },
    }
}

impl Target for Store {
    /// Each operation through the store's own API, one after the other.
    fn batch(&self, ops: &[Op]) -> Vec<Outcome> {
        ops.iter()
            .map(|op| match op {
                Op::Insert { key, value } => match self.write(key).insert(value) {
                    Ok(None) => Outcome::Created,
                    Ok(Some(p)) => Outcome::Replaced(p),
                    Err(e) => Outcome::Refused(code(e)),
                },
                Op::Read { key } => self
                    .read(key)
                    .get()
                    .map_or(Outcome::NotFound, |v| Outcome::Value(v.to_vec())),
                Op::Delete { key } => self
                    .write(key)
                    .delete()
                    .map_or(Outcome::NotFound, Outcome::Deleted),
                Op::InsertNew { key, value } => match self.write(key).insert_new(value) {
                    Ok(None) => Outcome::Created,
                    Ok(Some(v)) => Outcome::Exists(v),
                    Err(e) => Outcome::Refused(code(e)),
                },
                Op::Cas { key, expected, new } => {
                    match self.write(key).cas(expected.as_deref(), new) {
                        Ok(Ok(())) => Outcome::Swapped,
                        Ok(Err(cur)) => Outcome::Mismatch(cur),
                        Err(e) => Outcome::Refused(code(e)),
                    }
                }
                Op::Add { key, delta } => match self.write(key).add(*delta) {
                    Ok(n) => Outcome::Number(n),
                    Err(e) => Outcome::Refused(code(e)),
                },
                Op::Len => Outcome::Count(self.len()),
                Op::Scan { cursor, count } => {
                    let (cursor, keys) = self.scan(*cursor, *count);
                    Outcome::Keys { cursor, keys }
                }
                Op::Print { bucket } => match self.print(*bucket) {
                    Some(pairs) => Outcome::Entries(pairs),
                    None => Outcome::Refused(ErrorCode::BadBucket {
                        bucket: *bucket,
                        buckets: self.bucket_count() as u64,
                    }),
                },
                other => panic!("not a store operation: {other:?}"),
            })
            .collect()
    }

    fn refuse(&self, _: &Op) -> Option<ClientError> {
        unreachable!("the store has no size limits to check")
    }
}

/// Bytes as an integer, as Redis `INCRBY` reads them: exactly the canonical decimal form of
/// an `i64` (the model's own rule: parse, then print back and compare).
pub fn decimal(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// The model of one client's view: its keys and their values, its worker count.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The keys and values.
    pub map: HashMap<Vec<u8>, Vec<u8>>,
    /// The client's worker threads.
    pub workers: u32,
}

impl Model {
    /// Apply a key-value operation; what the server must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Insert { key, value } => match self.map.insert(key.clone(), value.clone()) {
                None => Outcome::Created,
                Some(p) => Outcome::Replaced(p),
            },
            Op::Read { key } => self
                .map
                .get(key)
                .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
            Op::Delete { key } => self
                .map
                .remove(key)
                .map_or(Outcome::NotFound, Outcome::Deleted),
            Op::InsertNew { key, value } => match self.map.get(key) {
                Some(v) => Outcome::Exists(v.clone()),
                None => {
                    self.map.insert(key.clone(), value.clone());
                    Outcome::Created
                }
            },
            Op::Cas { key, expected, new } => {
                let current = self.map.get(key);
                if current == expected.as_ref() {
                    self.map.insert(key.clone(), new.clone());
                    Outcome::Swapped
                } else {
                    Outcome::Mismatch(current.cloned())
                }
            }
            Op::Add { key, delta } => {
                let current = match self.map.get(key) {
                    None => 0,
                    Some(v) => match decimal(v) {
                        Some(n) => n,
                        None => return Outcome::Refused(ErrorCode::NotAnInteger),
                    },
                };
                match current.checked_add(*delta) {
                    None => Outcome::Refused(ErrorCode::Overflow),
                    Some(n) => {
                        self.map.insert(key.clone(), n.to_string().into_bytes());
                        Outcome::Number(n)
                    }
                }
            }
            Op::ThreadsStart { n } => {
                if self.workers + n > MAX_WORKERS {
                    Outcome::Refused(ErrorCode::ThreadLimit {
                        current: self.workers,
                        max: MAX_WORKERS,
                    })
                } else {
                    self.workers += n;
                    Outcome::Threads(self.workers)
                }
            }
            Op::ThreadsStop => {
                if self.workers > 1 {
                    self.workers -= 1;
                    Outcome::Threads(self.workers)
                } else {
                    Outcome::Refused(ErrorCode::LastWorker)
                }
            }
            other => panic!("the model does not apply {other:?}"),
        }
    }

    /// The memory the store charges for the model's entries.
    pub fn memory(&self) -> u64 {
        self.map
            .iter()
            .map(|(k, v)| entry_cost(k.len(), v.len()))
            .sum()
    }
}

/// A full scan in progress.
#[derive(Debug, Default)]
struct ScanState {
    /// Where its next step starts.
    cursor: u64,
    /// Steps answered so far.
    steps: u64,
    /// Whether its first step's batch has been checked.
    started: bool,
    /// Keys returned so far.
    returned: HashSet<Vec<u8>>,
    /// Keys present throughout, so far (they must be returned).
    required: HashSet<Vec<u8>>,
    /// Keys present at some moment, so far (no other may be returned).
    ever: HashSet<Vec<u8>>,
}

/// What a submitted request's answer is checked against.
#[derive(Debug)]
enum Planned {
    /// Exactly this.
    Exact(Outcome),
    /// A count of keys within the batch's range.
    Len,
    /// The statistics at this point: entries and memory (checked when alone), workers.
    Stats {
        entries: u64,
        memory: u64,
        workers: u32,
    },
    /// A bucket's pairs.
    Print(u64),
    /// The full scan's next step.
    Scan,
    /// A lone scan step from this cursor.
    ScanFrom(u64),
}

/// How many answers of each kind a checker has seen (to show the actions reach them all).
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    /// Answers by kind (the outcome's variant, refusals by code).
    pub answers: HashMap<&'static str, u64>,
    /// Full scans completed.
    pub scans: u64,
    /// Client-side size refusals.
    pub refused_unsent: u64,
}

/// Runs actions against a [`Target`] in batches and checks every answer (see the module
/// docs).
pub struct Checker<'a> {
    /// The model.
    pub model: Model,
    /// The pool's keys.
    pub keys: Vec<Vec<u8>>,
    /// The server's limits.
    pub limits: Limits,
    /// The bucket of each key of the pool.
    pub bucket_of: &'a dyn Fn(&[u8]) -> u64,
    /// Keys this checker owns (answers of Print and Scan are filtered to them).
    pub mine: &'a dyn Fn(&[u8]) -> bool,
    /// Whether the client is alone on the server (then Len and Stats are exact).
    pub alone: bool,
    /// The client's slot (whose worker count Stats reports).
    pub slot: u32,
    /// What has been seen.
    pub coverage: Coverage,
    /// Whether a full scan must return each key at most once (shmkv: yes; Redis: no).
    pub scan_once: bool,
    /// Most steps a full scan may take (shmkv: one bucket at least per step).
    pub max_scan_steps: u64,
    scan: Option<ScanState>,
    ops: Vec<Op>,
    plans: Vec<Planned>,
    /// The model when the batch began.
    start: HashMap<Vec<u8>, Vec<u8>>,
    /// States the keys the batch touches take after each of its operations.
    after: HashMap<Vec<u8>, Vec<Option<Vec<u8>>>>,
}

/// A proptest failure unless `cond`.
fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(msg()))
    }
}

/// The kind of an answer, for [`Coverage`].
fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Replaced(_) => "replaced",
        Outcome::Value(_) => "value",
        Outcome::NotFound => "not found",
        Outcome::Deleted(_) => "deleted",
        Outcome::Exists(_) => "exists",
        Outcome::Swapped => "swapped",
        Outcome::Mismatch(None) => "mismatch absent",
        Outcome::Mismatch(Some(_)) => "mismatch value",
        Outcome::Number(_) => "number",
        Outcome::Count(_) => "count",
        Outcome::Keys { .. } => "keys",
        Outcome::Entries(_) => "entries",
        Outcome::Threads(_) => "threads",
        Outcome::Stats(_) => "stats",
        Outcome::Done => "done",
        Outcome::Refused(ErrorCode::BadBucket { .. }) => "refused: bad bucket",
        Outcome::Refused(ErrorCode::ThreadLimit { .. }) => "refused: thread limit",
        Outcome::Refused(ErrorCode::LastWorker) => "refused: last worker",
        Outcome::Refused(ErrorCode::NotAnInteger) => "refused: not an integer",
        Outcome::Refused(ErrorCode::Overflow) => "refused: overflow",
        Outcome::Refused(_) => "refused: other",
    }
}

impl<'a> Checker<'a> {
    /// A checker for a client with `workers` worker threads, over the pool `keys`.
    pub fn new(
        keys: Vec<Vec<u8>>,
        limits: Limits,
        workers: u32,
        bucket_of: &'a dyn Fn(&[u8]) -> u64,
        mine: &'a dyn Fn(&[u8]) -> bool,
        alone: bool,
    ) -> Checker<'a> {
        Checker {
            model: Model {
                map: HashMap::new(),
                workers,
            },
            keys,
            limits,
            bucket_of,
            mine,
            alone,
            slot: 0,
            coverage: Coverage::default(),
            scan_once: true,
            max_scan_steps: BUCKETS,
            scan: None,
            ops: Vec::new(),
            plans: Vec::new(),
            start: HashMap::new(),
            after: HashMap::new(),
        }
    }

    /// The key-value operation of a keyed action (a cas's `Current` resolved by the model).
    pub fn keyed_op(&self, a: &Action) -> Op {
        let key = |k: &usize| self.keys[k % self.keys.len()].clone();
        let v = |v: &Val| resolve(v, self.limits);
        match a {
            Action::Insert(k, x) => Op::Insert {
                key: key(k),
                value: v(x),
            },
            Action::Read(k) => Op::Read { key: key(k) },
            Action::Delete(k) => Op::Delete { key: key(k) },
            Action::InsertNew(k, x) => Op::InsertNew {
                key: key(k),
                value: v(x),
            },
            Action::Cas(k, e, x) => Op::Cas {
                key: key(k),
                expected: match e {
                    Expect::Absent => None,
                    Expect::Current => self.model.map.get(&key(k)).cloned(),
                    Expect::Other(o) => Some(v(o)),
                },
                new: v(x),
            },
            Action::Add(k, d) => Op::Add {
                key: key(k),
                delta: *d,
            },
            other => panic!("not a key-value action: {other:?}"),
        }
    }

    /// The over-limit operation of `o` on pool key `k`, and the refusal it must get.
    fn oversize(&self, k: usize, o: Oversize) -> (Op, ClientError) {
        let key = self.keys[k % self.keys.len()].clone();
        let (max_key, max_value) = (self.limits.max_key, self.limits.max_value);
        let long = fill(max_value as usize + 1, 7);
        let too_long = |what, len: usize, max| ClientError::TooLarge {
            what,
            len: len as u64,
            max,
        };
        let value_refusal = too_long(Field::Value, long.len(), max_value);
        match o {
            Oversize::EmptyKey => (
                Op::Read { key: Vec::new() },
                too_long(Field::Key, 0, max_key),
            ),
            Oversize::LongKey => {
                let key = fill(max_key as usize + 1, 3);
                let e = too_long(Field::Key, key.len(), max_key);
                (Op::Add { key, delta: 1 }, e)
            }
            Oversize::LongValue => (Op::Insert { key, value: long }, value_refusal),
            Oversize::LongNewValue => (Op::InsertNew { key, value: long }, value_refusal),
            Oversize::LongCasNew => (
                Op::Cas {
                    key,
                    expected: None,
                    new: long,
                },
                value_refusal,
            ),
            Oversize::LongExpected => (
                Op::Cas {
                    key,
                    expected: Some(long),
                    new: Vec::new(),
                },
                value_refusal,
            ),
        }
    }

    /// Queue (or, for [`Action::Flush`] and [`Action::TooLarge`], do) one action.
    pub fn act(&mut self, t: &dyn Target, a: &Action) -> Result<(), TestCaseError> {
        if self.ops.is_empty() {
            self.start = self.model.map.clone();
            self.after.clear();
        }
        match a {
            Action::Flush => return self.flush(t),
            Action::TooLarge(k, o) => {
                self.flush(t)?;
                let (op, want) = self.oversize(*k, *o);
                let got = t.refuse(&op);
                self.coverage.refused_unsent += 1;
                return ensure(got.as_ref() == Some(&want), || {
                    format!("{o:?}: want {want:?}, got {got:?}")
                });
            }
            _ if a.is_keyed() => {
                let op = self.keyed_op(a);
                let want = self.model.apply(&op);
                let key = op_key(&op).to_vec();
                let now = self.model.map.get(&key).cloned();
                self.after.entry(key).or_default().push(now);
                self.plans.push(Planned::Exact(want));
                self.ops.push(op);
            }
            Action::ThreadsStart(n) => {
                let op = Op::ThreadsStart { n: *n };
                self.plans.push(Planned::Exact(self.model.apply(&op)));
                self.ops.push(op);
            }
            Action::ThreadsStop => {
                self.plans
                    .push(Planned::Exact(self.model.apply(&Op::ThreadsStop)));
                self.ops.push(Op::ThreadsStop);
            }
            Action::Stats => {
                self.plans.push(Planned::Stats {
                    entries: self.model.map.len() as u64,
                    memory: self.model.memory(),
                    workers: self.model.workers,
                });
                self.ops.push(Op::Stats);
            }
            Action::Len => {
                self.plans.push(Planned::Len);
                self.ops.push(Op::Len);
            }
            Action::Print(b) => {
                self.plans.push(Planned::Print(*b));
                self.ops.push(Op::Print { bucket: *b });
            }
            Action::ScanFrom(c, n) => {
                self.plans.push(Planned::ScanFrom(*c));
                self.ops.push(Op::Scan {
                    cursor: *c,
                    count: *n,
                });
            }
            Action::Scan(n) => {
                // One step of the full scan per batch: the next needs this one's cursor.
                if self.plans.iter().any(|p| matches!(p, Planned::Scan)) {
                    self.flush(t)?;
                    return self.act(t, a);
                }
                let cursor = self.scan.get_or_insert_with(ScanState::default).cursor;
                self.plans.push(Planned::Scan);
                self.ops.push(Op::Scan { cursor, count: *n });
            }
            _ => unreachable!(),
        }
        Ok(())
    }

    /// Run `actions` and then complete the scan in progress, if any; every answer checked.
    pub fn run(&mut self, t: &dyn Target, actions: &[Action]) -> Result<(), TestCaseError> {
        for a in actions {
            self.act(t, a)?;
        }
        self.finish(t)
    }

    /// Submit what is queued, then complete the scan in progress (one step per batch).
    pub fn finish(&mut self, t: &dyn Target) -> Result<(), TestCaseError> {
        self.flush(t)?;
        while self.scan.is_some() {
            self.act(t, &Action::Scan(2))?;
            self.flush(t)?;
        }
        Ok(())
    }

    /// Submit the batch, wait for every answer, check them.
    pub fn flush(&mut self, t: &dyn Target) -> Result<(), TestCaseError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.ops);
        let plans = std::mem::take(&mut self.plans);
        let got = t.batch(&ops);
        // Every state each key takes during the batch: where it began, then after each
        // operation on it.
        let mut must: HashSet<Vec<u8>> = HashSet::new();
        let mut may: HashSet<Vec<u8>> = HashSet::new();
        let mut values: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        let keys: HashSet<&Vec<u8>> = self.start.keys().chain(self.after.keys()).collect();
        for k in keys {
            let states: Vec<Option<&Vec<u8>>> = std::iter::once(self.start.get(k))
                .chain(self.after.get(k).into_iter().flatten().map(Option::as_ref))
                .collect();
            if states.iter().all(Option::is_some) {
                must.insert(k.clone());
            }
            if states.iter().any(Option::is_some) {
                may.insert(k.clone());
            }
            values.insert(k.clone(), states.into_iter().flatten().cloned().collect());
        }
        if let Some(s) = &mut self.scan {
            if s.started {
                s.required.retain(|k| must.contains(k));
                s.ever.extend(may.iter().cloned());
            } else {
                s.required = must.clone();
                s.ever = may.clone();
                s.started = true;
            }
        }
        for ((op, plan), got) in ops.iter().zip(plans).zip(got) {
            *self.coverage.answers.entry(kind(&got)).or_default() += 1;
            self.check(op, plan, got, &must, &may, &values)?;
        }
        Ok(())
    }

    fn check(
        &mut self,
        op: &Op,
        plan: Planned,
        got: Outcome,
        must: &HashSet<Vec<u8>>,
        may: &HashSet<Vec<u8>>,
        values: &HashMap<Vec<u8>, Vec<Vec<u8>>>,
    ) -> Result<(), TestCaseError> {
        let mine = self.mine;
        let bucket_of = self.bucket_of;
        match plan {
            Planned::Exact(want) => {
                ensure(got == want, || {
                    format!(
                        "{}: want {}, got {}",
                        brief(op),
                        brief_o(&want),
                        brief_o(&got)
                    )
                })?;
            }
            Planned::Len => {
                let Outcome::Count(n) = got else {
                    return Err(TestCaseError::fail(format!("len answered {got:?}")));
                };
                if self.alone {
                    let (lo, hi) = (must.len() as u64, may.len() as u64);
                    ensure((lo..=hi).contains(&n), || {
                        format!("len {n}, not within {lo}..={hi}")
                    })?;
                }
            }
            Planned::Stats {
                entries,
                memory,
                workers,
            } => {
                let Outcome::Stats(s) = got else {
                    return Err(TestCaseError::fail(format!("stats answered {got:?}")));
                };
                let s = Stats::from_stats(&s);
                ensure(
                    s.buckets == BUCKETS
                        && s.max_key == u64::from(self.limits.max_key)
                        && s.max_value == u64::from(self.limits.max_value),
                    || format!("stats table and limits: {s:?}"),
                )?;
                let slot = s.slots.iter().find(|x| x.slot == self.slot);
                ensure(
                    slot.is_some_and(|x| x.workers == u64::from(workers)),
                    || {
                        format!(
                            "stats: slot {} should have {workers} workers: {slot:?}",
                            self.slot
                        )
                    },
                )?;
                if self.alone {
                    ensure(s.entries == entries && s.memory_used == memory, || {
                        format!(
                            "stats: entries {} memory {}, want {entries} and {memory}",
                            s.entries, s.memory_used
                        )
                    })?;
                }
            }
            Planned::Print(bucket) => {
                if bucket >= BUCKETS {
                    let want = Outcome::Refused(ErrorCode::BadBucket {
                        bucket,
                        buckets: BUCKETS,
                    });
                    return ensure(got == want, || format!("print {bucket}: {got:?}"));
                }
                let Outcome::Entries(pairs) = got else {
                    return Err(TestCaseError::fail(format!("print answered {got:?}")));
                };
                let mut shown = HashSet::new();
                for (k, v) in pairs.iter().filter(|(k, _)| mine(k)) {
                    ensure(shown.insert(k.clone()), || {
                        format!("print {bucket}: key {k:?} twice")
                    })?;
                    ensure(bucket_of(k) == bucket, || {
                        format!("print {bucket}: key {k:?} of bucket {}", bucket_of(k))
                    })?;
                    ensure(values.get(k).is_some_and(|vs| vs.contains(v)), || {
                        format!("print {bucket}: ({k:?}, {v:?}) never held")
                    })?;
                }
                for k in must.iter().filter(|k| bucket_of(k) == bucket) {
                    ensure(shown.contains(k), || {
                        format!("print {bucket}: key {k:?} missing")
                    })?;
                }
            }
            Planned::ScanFrom(cursor) => {
                let Outcome::Keys { cursor: next, keys } = got else {
                    return Err(TestCaseError::fail(format!("scan answered {got:?}")));
                };
                if cursor >= BUCKETS {
                    return ensure(next == 0 && keys.is_empty(), || {
                        format!("scan from {cursor} past the end: {next} {keys:?}")
                    });
                }
                ensure(next == 0 || (cursor < next && next < BUCKETS), || {
                    format!("scan from {cursor}: next cursor {next}")
                })?;
                for k in keys.iter().filter(|k| mine(k)) {
                    ensure(may.contains(k) && bucket_of(k) >= cursor, || {
                        format!("scan from {cursor}: key {k:?} (bucket {})", bucket_of(k))
                    })?;
                }
            }
            Planned::Scan => {
                let Outcome::Keys { cursor: next, keys } = got else {
                    return Err(TestCaseError::fail(format!("scan answered {got:?}")));
                };
                let s = self.scan.as_mut().expect("a scan in progress");
                s.steps += 1;
                for k in keys.into_iter().filter(|k| mine(k)) {
                    ensure(s.ever.contains(&k), || {
                        format!("scan returned {k:?}, never present during it")
                    })?;
                    let first = s.returned.insert(k.clone());
                    ensure(first || !self.scan_once, || {
                        format!("full scan returned {k:?} twice")
                    })?;
                }
                let max = self.max_scan_steps;
                ensure(s.steps <= max, || {
                    format!("scan not done after {} steps", s.steps)
                })?;
                if next == 0 {
                    let missing: Vec<_> = s.required.difference(&s.returned).collect();
                    ensure(missing.is_empty(), || {
                        format!("full scan missed keys present throughout: {missing:?}")
                    })?;
                    self.scan = None;
                    self.coverage.scans += 1;
                } else {
                    s.cursor = next;
                }
            }
        }
        Ok(())
    }
}

/// The key of a key-value operation.
pub fn op_key(op: &Op) -> &[u8] {
    match op {
        Op::Insert { key, .. }
        | Op::Read { key }
        | Op::Delete { key }
        | Op::InsertNew { key, .. }
        | Op::Cas { key, .. }
        | Op::Add { key, .. } => key,
        other => panic!("no key: {other:?}"),
    }
}

/// Bytes shortened for messages (maximum-size values are long).
fn short(b: &[u8]) -> String {
    if b.len() <= 24 {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        format!(
            "{:?}..({} bytes)",
            String::from_utf8_lossy(&b[..16]),
            b.len()
        )
    }
}

fn brief(op: &Op) -> String {
    match op {
        Op::Insert { key, value } => format!("insert {} {}", short(key), short(value)),
        Op::InsertNew { key, value } => format!("insert-new {} {}", short(key), short(value)),
        Op::Cas { key, expected, new } => format!(
            "cas {} {} {}",
            short(key),
            expected.as_deref().map_or("(absent)".into(), short),
            short(new)
        ),
        Op::Read { key } => format!("read {}", short(key)),
        Op::Delete { key } => format!("delete {}", short(key)),
        Op::Add { key, delta } => format!("add {} {delta}", short(key)),
        other => format!("{other:?}"),
    }
}

fn brief_o(o: &Outcome) -> String {
    match o {
        Outcome::Replaced(v) => format!("Replaced({})", short(v)),
        Outcome::Value(v) => format!("Value({})", short(v)),
        Outcome::Deleted(v) => format!("Deleted({})", short(v)),
        Outcome::Exists(v) => format!("Exists({})", short(v)),
        Outcome::Mismatch(Some(v)) => format!("Mismatch({})", short(v)),
        other => format!("{other:?}"),
    }
}

/// The bucket of each of `keys` on the shmkv server `c` is a client of (a `Client`, or the
/// shared-memory engine): insert them all, find them with Print, delete them (the server's
/// hasher is seeded at random).
pub fn learn_buckets(c: &dyn Engine, keys: &[Vec<u8>]) -> HashMap<Vec<u8>, u64> {
    for k in keys {
        c.insert(k, b"").unwrap();
    }
    let mut map = HashMap::new();
    for b in 0..BUCKETS {
        let Outcome::Entries(pairs) = c.execute(Op::Print { bucket: b }).unwrap() else {
            panic!("print {b}: not entries");
        };
        for (k, _) in pairs {
            map.insert(k, b);
        }
    }
    for k in keys {
        c.delete(k).unwrap();
    }
    assert!(
        keys.iter().all(|k| map.contains_key(k)),
        "a key in no bucket"
    );
    map
}
