//! The generated actions: a pool of binary keys, values and expectations (maximum sizes
//! included), every operation of the wire protocol, and their strategies.

use super::{BUCKETS, POOL};
use proptest::prelude::*;
use proptest::sample::select;
use shmkv::wire::Limits;

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
