//! Codec laws of `shmkv::wire` (the byte-string protocol), checked with quickcheck on random
//! messages and random bytes.
//!
//! * `decode(encode(m)) == Ok(m)` for every request (every `Op`) and every response (every
//!   `Reply`, every `ErrorCode`), and `encoded_len` is the encoding's length;
//! * encoding is injective: two different messages never encode alike (checked on pairs of
//!   neighbours: one byte moved from a key to its value, "absent" against "empty", one flag,
//!   one tag for another of the same shape, ...);
//! * every strict prefix of an encoding fails to decode;
//! * decoding any bytes returns (never panics), allocates at most a small multiple of the
//!   input's length, and when it succeeds re-encodes to exactly the input (the encoding is
//!   canonical); `request_id` is bytes 0..8, zero-padded;
//! * with the limits lowered below a field's length, decoding fails with `TooLarge` naming the
//!   first field over its limit in wire order (the field order is spelled out again here,
//!   [`request_fields`], [`reply_fields`], so that a change of the format changes this file).
//!
//! Each law's comment names the bugs it catches; the report of the change that added this file
//! lists the bug planted in `src/wire.rs` that each law was seen to catch.
//!
//! Run with `cargo test --test wire_laws`; `QC_CASES=<n>` changes the number of cases per
//! property (default 10000).
#![cfg(not(loom))]

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult, Testable};
use shmkv::wire::{
    ErrorCode, Field, Limits, Op, REPLIES, Reply, ReplyKind, Request, Response, Stat, StatId,
    VERBS, Verb, WireError, decode_request, decode_response, encode_request, encode_response,
    request_id,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;

/// The limits every generated message respects.
const LIMITS: Limits = Limits {
    max_key: 300,
    max_value: 700,
};

fn cases() -> u64 {
    std::env::var("QC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A property's verdict. On failure it carries `what` (the inputs and what the decoder said),
/// because quickcheck 1 prints a failing case's arguments only when one of its shrinks also
/// fails.
fn verdict(ok: bool, what: impl std::fmt::Debug) -> TestResult {
    if ok {
        TestResult::passed()
    } else {
        TestResult::error(format!("counterexample: {what:?}"))
    }
}

fn check<A: Testable>(prop: A) {
    QuickCheck::new()
        .tests(cases())
        .max_tests(cases() * 10)
        .quickcheck(prop);
}

// ---------------------------------------------------------------------------------------------
// Counting allocations of this thread (for the law that a decoder allocates in proportion to
// its input). Thread-local, so that tests running in other threads do not count.
// ---------------------------------------------------------------------------------------------

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: nothing to count while the thread's locals are being torn down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping touches
// only const-initialised thread-local cells (which never allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `f()` and the bytes this thread allocated while running it.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCATED.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let t = f();
    COUNTING.with(|c| c.set(false));
    (t, ALLOCATED.with(Cell::get))
}

// ---------------------------------------------------------------------------------------------
// Generators (local newtypes, since Arbitrary cannot be implemented for the crate's types here).
// ---------------------------------------------------------------------------------------------

/// A number field: often a boundary or a small number, else any value.
fn field(g: &mut Gen) -> u64 {
    match u8::arbitrary(g) % 4 {
        0 => *g
            .choose(&[
                0,
                1,
                u64::from(u32::MAX),
                u64::from(u32::MAX) + 1,
                i64::MAX as u64,
                1 << 63,
                u64::MAX,
            ])
            .unwrap(),
        1 => u64::from(u8::arbitrary(g)),
        _ => u64::arbitrary(g),
    }
}

fn field32(g: &mut Gen) -> u32 {
    match u8::arbitrary(g) % 4 {
        0 => *g.choose(&[0, 1, 64, u32::MAX - 1, u32::MAX]).unwrap(),
        1 => u32::from(u8::arbitrary(g)),
        _ => u32::arbitrary(g),
    }
}

/// A length in `min..=max`: usually short, sometimes one of the ends.
fn length(g: &mut Gen, min: usize, max: usize) -> usize {
    match u8::arbitrary(g) % 8 {
        0 => min,
        1 => max,
        2 => min + usize::arbitrary(g) % (max - min + 1),
        _ => min + usize::arbitrary(g) % (8.min(max - min) + 1),
    }
}

/// A byte string of `min..=max` bytes: random bytes, or a few distinct ones (so that equal
/// neighbours and repeated patterns come up).
fn bytes(g: &mut Gen, min: usize, max: usize) -> Vec<u8> {
    let n = length(g, min, max);
    let few = bool::arbitrary(g);
    (0..n)
        .map(|_| {
            let b = u8::arbitrary(g);
            if few { b % 3 } else { b }
        })
        .collect()
}

fn key(g: &mut Gen) -> Vec<u8> {
    bytes(g, 1, LIMITS.max_key as usize)
}

fn value(g: &mut Gen) -> Vec<u8> {
    bytes(g, 0, LIMITS.max_value as usize)
}

fn list<T>(g: &mut Gen, mut item: impl FnMut(&mut Gen) -> T) -> Vec<T> {
    let n = match u8::arbitrary(g) % 4 {
        0 => 0,
        1 => 1,
        _ => usize::arbitrary(g) % 6,
    };
    (0..n).map(|_| item(g)).collect()
}

fn op(g: &mut Gen) -> Op {
    match usize::arbitrary(g) % VERBS.len() {
        0 => Op::Insert {
            key: key(g),
            value: value(g),
        },
        1 => Op::Read { key: key(g) },
        2 => Op::Delete { key: key(g) },
        3 => Op::InsertNew {
            key: key(g),
            value: value(g),
        },
        4 => Op::Cas {
            key: key(g),
            expected: if bool::arbitrary(g) {
                Some(value(g))
            } else {
                None
            },
            new: value(g),
        },
        5 => Op::Add {
            key: key(g),
            delta: field(g) as i64,
        },
        6 => Op::Len,
        7 => Op::Scan {
            cursor: field(g),
            count: field32(g).max(1),
        },
        8 => Op::Print { bucket: field(g) },
        9 => Op::ThreadsStart {
            n: field32(g).max(1),
        },
        10 => Op::ThreadsStop,
        11 => Op::Stats,
        _ => Op::Quit,
    }
}

fn error_code(g: &mut Gen) -> ErrorCode {
    match u8::arbitrary(g) % 9 {
        0 => ErrorCode::BadBucket {
            bucket: field(g),
            buckets: field(g),
        },
        1 => ErrorCode::ThreadLimit {
            current: field32(g),
            max: field32(g),
        },
        2 => ErrorCode::LastWorker,
        3 => ErrorCode::ShuttingDown,
        4 => ErrorCode::Malformed,
        5 => ErrorCode::TooLarge {
            what: if bool::arbitrary(g) {
                Field::Key
            } else {
                Field::Value
            },
            len: field(g),
            max: field32(g),
        },
        6 => ErrorCode::OutOfMemory,
        7 => ErrorCode::NotAnInteger,
        _ => ErrorCode::Overflow,
    }
}

fn reply(g: &mut Gen) -> Reply {
    match usize::arbitrary(g) % REPLIES.len() {
        0 => Reply::Created,
        1 => Reply::Replaced(value(g)),
        2 => Reply::Value(value(g)),
        3 => Reply::NotFound,
        4 => Reply::Deleted(value(g)),
        5 => Reply::Exists(value(g)),
        6 => Reply::Swapped,
        7 => Reply::Mismatch(if bool::arbitrary(g) {
            Some(value(g))
        } else {
            None
        }),
        8 => Reply::Number(field(g) as i64),
        9 => Reply::Count(field(g)),
        10 => Reply::Keys {
            cursor: field(g),
            keys: list(g, key),
            more: bool::arbitrary(g),
        },
        11 => Reply::Entries {
            pairs: list(g, |g| (key(g), value(g))),
            more: bool::arbitrary(g),
        },
        12 => Reply::Threads(field32(g)),
        13 => Reply::Stats {
            stats: list(g, |g| Stat {
                id: StatId(u16::arbitrary(g).max(1)),
                index: field32(g),
                value: field(g),
            }),
            more: bool::arbitrary(g),
        },
        14 => Reply::Done,
        _ => Reply::Error(error_code(g)),
    }
}

/// Byte strings of a message, each cut to its shortest valid length (shrinking candidates).
fn shorter(b: &[u8], min: usize) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    if b.len() > min {
        v.push(b[..min].to_vec());
        v.push(b[..b.len() / 2 + min / 2].to_vec());
    }
    v.dedup();
    v.retain(|c| c.len() < b.len());
    v
}

/// A valid request (keys and values within [`LIMITS`]), every verb equally likely.
#[derive(Debug, Clone, PartialEq)]
struct ArbRequest(Request);

impl Arbitrary for ArbRequest {
    fn arbitrary(g: &mut Gen) -> Self {
        ArbRequest(Request {
            id: field(g),
            op: op(g),
        })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let Request { id, op } = self.0.clone();
        let mut out: Vec<Self> = id
            .shrink()
            .take(8)
            .map(|id| ArbRequest(Request { id, op: op.clone() }))
            .collect();
        let ops: Vec<Op> = match &op {
            Op::Insert { key, value } => shorter(key, 1)
                .into_iter()
                .map(|key| Op::Insert {
                    key,
                    value: value.clone(),
                })
                .chain(shorter(value, 0).into_iter().map(|value| Op::Insert {
                    key: key.clone(),
                    value,
                }))
                .collect(),
            Op::Read { key } => shorter(key, 1)
                .into_iter()
                .map(|key| Op::Read { key })
                .collect(),
            _ => Vec::new(),
        };
        out.extend(ops.into_iter().map(|op| ArbRequest(Request { id, op })));
        Box::new(out.into_iter())
    }
}

/// A valid response, every reply kind and error code reachable.
#[derive(Debug, Clone, PartialEq)]
struct ArbResponse(Response);

impl Arbitrary for ArbResponse {
    fn arbitrary(g: &mut Gen) -> Self {
        ArbResponse(Response {
            id: field(g),
            reply: reply(g),
        })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let Response { id, reply } = self.0.clone();
        let mut out: Vec<Self> = id
            .shrink()
            .take(8)
            .map(|id| {
                ArbResponse(Response {
                    id,
                    reply: reply.clone(),
                })
            })
            .collect();
        // Fewer items in a list.
        let fewer: Vec<Reply> = match &reply {
            Reply::Keys { cursor, keys, more } if !keys.is_empty() => (0..keys.len())
                .map(|i| {
                    let mut keys = keys.clone();
                    keys.remove(i);
                    Reply::Keys {
                        cursor: *cursor,
                        keys,
                        more: *more,
                    }
                })
                .collect(),
            Reply::Entries { pairs, more } if !pairs.is_empty() => (0..pairs.len())
                .map(|i| {
                    let mut pairs = pairs.clone();
                    pairs.remove(i);
                    Reply::Entries { pairs, more: *more }
                })
                .collect(),
            _ => Vec::new(),
        };
        out.extend(
            fewer
                .into_iter()
                .map(|reply| ArbResponse(Response { id, reply })),
        );
        Box::new(out.into_iter())
    }
}

/// A message and a neighbour of it: usually a different message that differs in one small way
/// (the cases an encoder could conflate), sometimes the same message.
#[derive(Debug, Clone)]
struct Neighbours<T>(T, T);

/// One byte moved from the end of `a` to the start of `b` (when `a` keeps `min` bytes).
fn shift(a: &[u8], b: &[u8], min: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let (&last, rest) = a.split_last()?;
    if rest.len() < min {
        return None;
    }
    let mut b2 = vec![last];
    b2.extend_from_slice(b);
    Some((rest.to_vec(), b2))
}

fn flip_one(v: &[u8], g: &mut Gen) -> Vec<u8> {
    let mut v = v.to_vec();
    if v.is_empty() {
        v.push(0);
    } else {
        let i = usize::arbitrary(g) % v.len();
        v[i] ^= 1 << (u8::arbitrary(g) % 8);
    }
    v
}

fn op_neighbour(op: &Op, g: &mut Gen) -> Op {
    let pick = u8::arbitrary(g) % 4;
    match (op.clone(), pick) {
        // Same shape, other verb.
        (Op::Insert { key, value }, 0) => Op::InsertNew { key, value },
        (Op::InsertNew { key, value }, 0) => Op::Insert { key, value },
        (Op::Read { key }, 0) => Op::Delete { key },
        (Op::Delete { key }, 0) => Op::Read { key },
        (Op::Len, _) => Op::Stats,
        (Op::Stats, _) => Op::Quit,
        (Op::Quit, _) => Op::ThreadsStop,
        (Op::ThreadsStop, _) => Op::Len,
        (Op::ThreadsStart { n }, _) => Op::Scan {
            cursor: u64::from(n),
            count: n,
        },
        (Op::Print { bucket }, _) => Op::Scan {
            cursor: bucket,
            count: 1,
        },
        (Op::Scan { cursor, count }, 0) => Op::Scan {
            cursor: count.into(),
            count: (cursor as u32).max(1),
        },
        (Op::Scan { cursor, count }, _) => Op::Print {
            bucket: cursor ^ u64::from(count),
        },
        // A byte moved across the boundary of two fields.
        (Op::Insert { key, value }, 1) => match shift(&key, &value, 1) {
            Some((key, value)) => Op::Insert { key, value },
            None => Op::Insert {
                key: flip_one(&key, g),
                value,
            },
        },
        (Op::Cas { key, expected, new }, 0) => match expected {
            // "absent" against "empty".
            None => Op::Cas {
                key,
                expected: Some(Vec::new()),
                new,
            },
            Some(e) if e.is_empty() => Op::Cas {
                key,
                expected: None,
                new,
            },
            Some(e) => match shift(&e, &new, 0) {
                Some((e, new)) => Op::Cas {
                    key,
                    expected: Some(e),
                    new,
                },
                None => Op::Cas {
                    key,
                    expected: None,
                    new,
                },
            },
        },
        (Op::Cas { key, expected, new }, _) => Op::Cas {
            key,
            expected,
            new: flip_one(&new, g),
        },
        (Op::Add { key, delta }, _) => Op::Add {
            key,
            delta: delta ^ (1 << (u8::arbitrary(g) % 64)),
        },
        // One bit of a key or value.
        (Op::Insert { key, value }, _) | (Op::InsertNew { key, value }, _) => Op::Insert {
            key: flip_one(&key, g),
            value,
        },
        (Op::Read { key }, _) => Op::Read {
            key: flip_one(&key, g),
        },
        (Op::Delete { key }, _) => Op::Delete {
            key: flip_one(&key, g),
        },
    }
}

fn reply_neighbour(r: &Reply, g: &mut Gen) -> Reply {
    match r.clone() {
        Reply::Created => Reply::Swapped,
        Reply::Swapped => Reply::Done,
        Reply::Done => Reply::NotFound,
        Reply::NotFound => Reply::Created,
        Reply::Replaced(v) => Reply::Value(v),
        Reply::Value(v) => Reply::Deleted(v),
        Reply::Deleted(v) => Reply::Exists(v),
        Reply::Exists(v) => Reply::Mismatch(Some(v)),
        Reply::Mismatch(None) => Reply::Mismatch(Some(Vec::new())),
        Reply::Mismatch(Some(v)) if v.is_empty() => Reply::Mismatch(None),
        Reply::Mismatch(Some(v)) => Reply::Replaced(v),
        Reply::Number(n) => Reply::Count(n as u64),
        Reply::Count(n) => Reply::Number(n as i64),
        Reply::Threads(n) => Reply::Error(ErrorCode::ThreadLimit { current: n, max: n }),
        Reply::Keys { cursor, keys, more } => match u8::arbitrary(g) % 3 {
            0 => Reply::Keys {
                cursor,
                keys,
                more: !more,
            },
            1 if keys.len() >= 2 && keys[0].len() >= 2 => {
                // A byte moved from the first key to the second.
                let (a, b) = shift(&keys[0], &keys[1], 1).unwrap();
                let mut keys = keys.clone();
                keys[0] = a;
                keys[1] = b;
                Reply::Keys { cursor, keys, more }
            }
            _ => Reply::Keys {
                cursor: cursor ^ 1,
                keys,
                more,
            },
        },
        Reply::Entries { pairs, more } => match pairs.first() {
            Some((k, v)) if bool::arbitrary(g) => {
                // The first pair's key and value swapped (when the value can be a key), or a
                // byte moved from the key to the value.
                let mut pairs = pairs.clone();
                pairs[0] = match shift(k, v, 1) {
                    Some(kv) => kv,
                    None if !v.is_empty() => (v.clone(), k.clone()),
                    None => (k.clone(), vec![0]),
                };
                Reply::Entries { pairs, more }
            }
            _ => Reply::Entries { pairs, more: !more },
        },
        Reply::Stats { stats, more } => {
            if stats.is_empty() {
                Reply::Stats { stats, more: !more }
            } else {
                let mut stats = stats.clone();
                stats[0].index ^= 1;
                Reply::Stats { stats, more }
            }
        }
        Reply::Error(e) => Reply::Error(match e {
            ErrorCode::LastWorker => ErrorCode::ShuttingDown,
            ErrorCode::ShuttingDown => ErrorCode::Malformed,
            ErrorCode::Malformed => ErrorCode::OutOfMemory,
            ErrorCode::OutOfMemory => ErrorCode::NotAnInteger,
            ErrorCode::NotAnInteger => ErrorCode::Overflow,
            ErrorCode::Overflow => ErrorCode::LastWorker,
            ErrorCode::BadBucket { bucket, buckets } => ErrorCode::BadBucket {
                bucket: buckets,
                buckets: bucket ^ 1,
            },
            ErrorCode::ThreadLimit { current, max } => ErrorCode::ThreadLimit {
                current: max,
                max: current ^ 1,
            },
            ErrorCode::TooLarge { what, len, max } => ErrorCode::TooLarge {
                what: match what {
                    Field::Key => Field::Value,
                    Field::Value => Field::Key,
                },
                len,
                max,
            },
        }),
    }
}

impl Arbitrary for Neighbours<Request> {
    fn arbitrary(g: &mut Gen) -> Self {
        let a = ArbRequest::arbitrary(g).0;
        let b = match u8::arbitrary(g) % 8 {
            0 => a.clone(),
            1 => Request {
                id: a.id ^ 1,
                op: a.op.clone(),
            },
            _ => Request {
                id: a.id,
                op: op_neighbour(&a.op, g),
            },
        };
        Neighbours(a, b)
    }
}

impl Arbitrary for Neighbours<Response> {
    fn arbitrary(g: &mut Gen) -> Self {
        let a = ArbResponse::arbitrary(g).0;
        let b = match u8::arbitrary(g) % 8 {
            0 => a.clone(),
            1 => Response {
                id: a.id.wrapping_add(1 << 56),
                reply: a.reply.clone(),
            },
            _ => Response {
                id: a.id,
                reply: reply_neighbour(&a.reply, g),
            },
        };
        Neighbours(a, b)
    }
}

/// Bytes for the decoders: a valid request or response encoding with a few mutations (most
/// cases), or plain random bytes. Mutations aim at what a decoder checks: a 4-byte length or
/// count overwritten with a boundary, the tag, flags or reserved bytes, a cut, bytes added,
/// removed or flipped.
#[derive(Debug, Clone)]
struct ArbBytes(Vec<u8>);

fn mutate(v: &mut Vec<u8>, g: &mut Gen) {
    let at = |g: &mut Gen, v: &Vec<u8>| usize::arbitrary(g) % (v.len() + 1);
    match u8::arbitrary(g) % 9 {
        0 => {
            // A u32 (length or count) overwritten.
            let i = at(g, v);
            let x: u32 = *g
                .choose(&[0, 1, 2, 3, 5, 14, 255, 256, 1 << 16, u32::MAX - 1, u32::MAX])
                .unwrap();
            for (j, b) in x.to_le_bytes().into_iter().enumerate() {
                if let Some(s) = v.get_mut(i + j) {
                    *s = b;
                }
            }
        }
        1 => {
            if let Some(t) = v.get_mut(8) {
                *t = u8::arbitrary(g) % 18;
            }
        }
        2 => {
            if let Some(f) = v.get_mut(9) {
                *f = *g.choose(&[0, 1, 2, 3, 4, 0x80]).unwrap();
            }
        }
        3 => {
            if let Some(r) = v.get_mut(10 + usize::from(bool::arbitrary(g))) {
                *r = 1;
            }
        }
        4 => {
            let n = at(g, v);
            v.truncate(n);
        }
        5 => {
            for _ in 0..1 + usize::arbitrary(g) % 4 {
                v.push(u8::arbitrary(g));
            }
        }
        6 => {
            if !v.is_empty() {
                let i = usize::arbitrary(g) % v.len();
                v.remove(i);
            }
        }
        7 => {
            let i = at(g, v);
            v.insert(i, u8::arbitrary(g));
        }
        _ => {
            if !v.is_empty() {
                let i = usize::arbitrary(g) % v.len();
                v[i] ^= 1 << (u8::arbitrary(g) % 8);
            }
        }
    }
}

impl Arbitrary for ArbBytes {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut v = Vec::new();
        match u8::arbitrary(g) % 8 {
            0 => {
                let n = usize::arbitrary(g) % 64;
                v.extend((0..n).map(|_| u8::arbitrary(g)));
            }
            k => {
                if k % 2 == 0 {
                    encode_request(&ArbRequest::arbitrary(g).0, &mut v);
                } else {
                    encode_response(&ArbResponse::arbitrary(g).0, &mut v);
                }
                for _ in 0..u8::arbitrary(g) % 4 {
                    mutate(&mut v, g);
                }
            }
        }
        ArbBytes(v)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // Drop one byte at a time (from the end first), then zero one byte at a time.
        let v = self.0.clone();
        let drops = (0..v.len()).rev().map({
            let v = v.clone();
            move |i| {
                let mut t = v.clone();
                t.remove(i);
                ArbBytes(t)
            }
        });
        let zeros = (0..v.len()).filter(move |&i| v[i] != 0).map({
            let v = self.0.clone();
            move |i| {
                let mut t = v.clone();
                t[i] = 0;
                ArbBytes(t)
            }
        });
        Box::new(drops.chain(zeros))
    }
}

/// Limits drawn around a message's field lengths: each limit is below, at or above the longest
/// field of its kind.
#[derive(Debug, Clone)]
struct ArbLimits(Limits);

impl Arbitrary for ArbLimits {
    fn arbitrary(g: &mut Gen) -> Self {
        let one = |g: &mut Gen, top: u32| match u8::arbitrary(g) % 4 {
            0 => u32::arbitrary(g) % 4,
            1 => top,
            _ => u32::arbitrary(g) % (top + 1),
        };
        ArbLimits(Limits {
            max_key: one(g, LIMITS.max_key),
            max_value: one(g, LIMITS.max_value),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The layout, independently of the crate: the key and value fields of a message in wire order.
// ---------------------------------------------------------------------------------------------

/// The byte-string fields of a request body, in wire order (see the request table in
/// `src/wire.rs`): insert/insert-new key, value; read/delete key; cas key, expected (empty when
/// absent), new; add key.
fn request_fields(op: &Op) -> Vec<(Field, usize)> {
    use Field::{Key as K, Value as V};
    match op {
        Op::Insert { key, value } | Op::InsertNew { key, value } => {
            vec![(K, key.len()), (V, value.len())]
        }
        Op::Read { key } | Op::Delete { key } | Op::Add { key, .. } => vec![(K, key.len())],
        Op::Cas { key, expected, new } => vec![
            (K, key.len()),
            (V, expected.as_ref().map_or(0, Vec::len)),
            (V, new.len()),
        ],
        Op::Len
        | Op::Scan { .. }
        | Op::Print { .. }
        | Op::ThreadsStart { .. }
        | Op::ThreadsStop
        | Op::Stats
        | Op::Quit => Vec::new(),
    }
}

/// The byte-string fields of a reply body, in wire order.
fn reply_fields(r: &Reply) -> Vec<(Field, usize)> {
    use Field::{Key as K, Value as V};
    match r {
        Reply::Replaced(v) | Reply::Value(v) | Reply::Deleted(v) | Reply::Exists(v) => {
            vec![(V, v.len())]
        }
        Reply::Mismatch(v) => vec![(V, v.as_ref().map_or(0, Vec::len))],
        Reply::Keys { keys, .. } => keys.iter().map(|k| (K, k.len())).collect(),
        Reply::Entries { pairs, .. } => pairs
            .iter()
            .flat_map(|(k, v)| [(K, k.len()), (V, v.len())])
            .collect(),
        _ => Vec::new(),
    }
}

/// What decoding under `l` must give for a message with these fields: `TooLarge` for the first
/// field over its limit, else the message.
fn expected_under<T>(fields: &[(Field, usize)], l: &Limits, ok: T) -> Result<T, WireError> {
    for &(what, len) in fields {
        let max = match what {
            Field::Key => l.max_key,
            Field::Value => l.max_value,
        };
        if len > max as usize {
            return Err(WireError::TooLarge {
                what,
                len: len as u32,
                max,
            });
        }
    }
    Ok(ok)
}

fn enc_req(r: &Request) -> Vec<u8> {
    let mut v = Vec::new();
    encode_request(r, &mut v);
    v
}

fn enc_resp(r: &Response) -> Vec<u8> {
    let mut v = Vec::new();
    encode_response(r, &mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// Laws.
// ---------------------------------------------------------------------------------------------

/// Catches: encoder and decoder disagreeing on a tag, a field's order, width, byte order or
/// signedness; a field dropped or defaulted (Cas's "absent" read as an empty value); a limit or
/// range check that refuses what the encoder produces (a key exactly `max_key` long); an
/// `encoded_len` that does not match the encoding.
#[test]
fn request_round_trips() {
    fn prop(r: ArbRequest) -> TestResult {
        let s = enc_req(&r.0);
        let d = decode_request(&s, &LIMITS);
        let ok = s.len() == r.0.encoded_len() && d.as_ref() == Ok(&r.0);
        verdict(ok, (&s, d))
    }
    check(prop as fn(ArbRequest) -> TestResult);
}

/// Catches the same for responses, every reply kind and every error code (a MORE flag lost, an
/// error code mapped to the wrong variant, a detail or a stat index lost).
#[test]
fn response_round_trips() {
    fn prop(r: ArbResponse) -> TestResult {
        let s = enc_resp(&r.0);
        let d = decode_response(&s, &LIMITS);
        let ok = s.len() == r.0.encoded_len() && d.as_ref() == Ok(&r.0);
        verdict(ok, (&s, d))
    }
    check(prop as fn(ArbResponse) -> TestResult);
}

/// Catches: an encoder that conflates two messages, e.g. two verbs of one shape written with
/// one tag, "expect absent" written like "expect the empty value", a field boundary that is not
/// encoded (two strings concatenated without their lengths), a flag not written. (Implied by
/// the round trips; checked directly on near neighbours, where conflation is likeliest.)
#[test]
fn encoding_is_injective() {
    fn prop(q: Neighbours<Request>, p: Neighbours<Response>) -> TestResult {
        let (a, b) = (enc_req(&q.0), enc_req(&q.1));
        let (c, d) = (enc_resp(&p.0), enc_resp(&p.1));
        let ok = (q.0 == q.1) == (a == b) && (p.0 == p.1) == (c == d);
        verdict(ok, (q, a, b, p, c, d))
    }
    check(prop as fn(Neighbours<Request>, Neighbours<Response>) -> TestResult);
}

/// Catches: a decoder that takes a missing trailing field as empty or zero, a list count
/// that is not checked against the items present, a short header read as zeros.
#[test]
fn every_strict_prefix_fails() {
    fn prop(r: ArbRequest, p: ArbResponse) -> TestResult {
        let s = enc_req(&r.0);
        let t = enc_resp(&p.0);
        let bad_req = (0..s.len()).find_map(|n| Some((n, decode_request(&s[..n], &LIMITS).ok()?)));
        let bad_resp =
            (0..t.len()).find_map(|n| Some((n, decode_response(&t[..n], &LIMITS).ok()?)));
        verdict(bad_req.is_none() && bad_resp.is_none(), (bad_req, bad_resp))
    }
    check(prop as fn(ArbRequest, ArbResponse) -> TestResult);
}

/// Catches: a decoder that panics on hostile bytes (a slice past the end, an unchecked length,
/// an overflow); one that accepts more than one encoding of a message (ignores reserved bytes,
/// unknown flag bits, trailing bytes, the value of an "absent" field, a flag on a reply that
/// has no use for it); one that reads the id from elsewhere than bytes 0..8.
#[test]
fn decoding_any_bytes_returns_and_is_canonical() {
    fn prop(b: ArbBytes) -> TestResult {
        let s = b.0;
        let mut padded = [0u8; 8];
        let n = s.len().min(8);
        padded[..n].copy_from_slice(&s[..n]);
        let id_ok = request_id(&s) == u64::from_le_bytes(padded);
        let req = decode_request(&s, &LIMITS);
        let req_ok = match &req {
            Ok(r) => r.id == request_id(&s) && enc_req(r) == s,
            Err(_) => true,
        };
        let resp = decode_response(&s, &LIMITS);
        let resp_ok = match &resp {
            Ok(r) => enc_resp(r) == s,
            Err(_) => true,
        };
        let re = (
            req.as_ref().map(enc_req).ok(),
            resp.as_ref().map(enc_resp).ok(),
        );
        verdict(id_ok && req_ok && resp_ok, (req, resp, "re-encoded:", re))
    }
    check(prop as fn(ArbBytes) -> TestResult);
}

/// Catches: a decoder that reserves what a count or length claims before checking it against
/// the input (`Vec::with_capacity(count)` on a peer's count): decoding `n` bytes may allocate at
/// most `8 n` bytes in all (a key copied is at most its length; a list reserves at most
/// `48 / 9` bytes per input byte).
#[test]
fn decoding_allocates_in_proportion_to_the_input() {
    fn prop(b: ArbBytes) -> TestResult {
        let s = b.0;
        let bound = 8 * s.len();
        let (_, a) = allocated_by(|| decode_request(&s, &Limits::UNLIMITED));
        let (_, b) = allocated_by(|| decode_response(&s, &Limits::UNLIMITED));
        verdict(
            a <= bound && b <= bound,
            ("bound", bound, "allocated", a, b),
        )
    }
    check(prop as fn(ArbBytes) -> TestResult);
}

/// Catches: a limit not enforced (or enforced on the wrong field kind: a key held to
/// `max_value`), an off-by-one (`>=` for `>`), a limit checked after another field's error
/// would have stopped the decode, or a `TooLarge` that names the wrong field or length.
#[test]
fn fields_over_the_limits_are_too_large() {
    fn prop(r: ArbRequest, p: ArbResponse, l: ArbLimits) -> TestResult {
        let l = l.0;
        let want_req = expected_under(&request_fields(&r.0.op), &l, r.0.clone());
        let want_resp = expected_under(&reply_fields(&p.0.reply), &l, p.0.clone());
        let got_req = decode_request(&enc_req(&r.0), &l);
        let got_resp = decode_response(&enc_resp(&p.0), &l);
        let ok = got_req == want_req && got_resp == want_resp;
        verdict(ok, ("got", got_req, got_resp, "want", want_req, want_resp))
    }
    check(prop as fn(ArbRequest, ArbResponse, ArbLimits) -> TestResult);
}

/// The generators reach every verb, every reply kind and every error code, the neighbours
/// generator makes different messages most of the time, the limits generator makes both
/// outcomes, and mutated bytes decode to every verb and reply kind often enough for the
/// canonical-encoding law to mean something. Catches: a generator change that silently stops
/// producing some variant or makes a law vacuous.
#[test]
fn generators_cover_every_variant() {
    let mut g = Gen::new(100);
    let mut verbs = HashSet::new();
    let mut kinds = HashSet::new();
    let mut codes = HashSet::new();
    let (mut same, mut differ) = (0, 0);
    let (mut too_large, mut fine) = (0, 0);
    for _ in 0..20_000 {
        verbs.insert(ArbRequest::arbitrary(&mut g).0.op.verb());
        let reply = ArbResponse::arbitrary(&mut g).0.reply;
        if let Reply::Error(e) = &reply {
            codes.insert(e.code());
        }
        kinds.insert(reply.kind());
        let n = Neighbours::<Request>::arbitrary(&mut g);
        if n.0 == n.1 {
            same += 1
        } else {
            differ += 1
        }
        let r = ArbRequest::arbitrary(&mut g).0;
        let l = ArbLimits::arbitrary(&mut g).0;
        match expected_under(&request_fields(&r.op), &l, ()) {
            Ok(()) => fine += 1,
            Err(_) => too_large += 1,
        }
    }
    assert_eq!(verbs.len(), VERBS.len(), "every verb");
    assert_eq!(kinds.len(), REPLIES.len(), "every reply kind");
    assert_eq!(codes.len(), 9, "every error code");
    assert!(
        same > 500 && differ > 4 * same,
        "{same} same, {differ} differ"
    );
    assert!(
        too_large > 2000 && fine > 2000,
        "{too_large} TooLarge, {fine} fine"
    );

    let mut decoded_verbs: HashSet<Verb> = HashSet::new();
    let mut decoded_kinds: HashSet<ReplyKind> = HashSet::new();
    let mut mutated_ok = 0;
    for _ in 0..50_000 {
        let s = ArbBytes::arbitrary(&mut g).0;
        if let Ok(r) = decode_request(&s, &LIMITS) {
            decoded_verbs.insert(r.op.verb());
            mutated_ok += 1;
        }
        if let Ok(r) = decode_response(&s, &LIMITS) {
            decoded_kinds.insert(r.reply.kind());
            mutated_ok += 1;
        }
    }
    assert_eq!(
        decoded_verbs.len(),
        VERBS.len(),
        "bytes decode to every verb"
    );
    assert_eq!(
        decoded_kinds.len(),
        REPLIES.len(),
        "bytes decode to every reply"
    );
    assert!(
        mutated_ok > 5_000,
        "only {mutated_ok} of 50000 inputs decoded"
    );
    // And a good share of them fail, each way a decoder can refuse.
    let mut errors = HashSet::new();
    for _ in 0..50_000 {
        let s = ArbBytes::arbitrary(&mut g).0;
        for e in [
            decode_request(&s, &LIMITS).err(),
            decode_response(&s, &LIMITS).err(),
        ]
        .into_iter()
        .flatten()
        {
            errors.insert(std::mem::discriminant(&e));
        }
    }
    assert!(errors.len() >= 13, "{} kinds of decode error", errors.len());
}
