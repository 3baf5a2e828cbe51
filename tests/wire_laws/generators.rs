//! Generators of valid messages: [`ArbRequest`] and [`ArbResponse`] (local newtypes, since
//! `Arbitrary` cannot be implemented for the crate's types here) and the field generators
//! they are built from.

use crate::LIMITS;
use quickcheck::{Arbitrary, Gen};
use shmkv::wire::{ErrorCode, Field, Op, REPLIES, Reply, Request, Response, Stat, StatId, VERBS};

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
pub(crate) struct ArbRequest(pub(crate) Request);

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
pub(crate) struct ArbResponse(pub(crate) Response);

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
