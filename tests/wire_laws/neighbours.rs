//! [`Neighbours`]: a message and a near neighbour of it, the pairs an encoder could conflate
//! (for the law that encoding is injective).

use crate::generators::{ArbRequest, ArbResponse};
use quickcheck::{Arbitrary, Gen};
use shmkv::wire::{ErrorCode, Field, Op, Reply, Request, Response};

/// A message and a neighbour of it: usually a different message that differs in one small way
/// (the cases an encoder could conflate), sometimes the same message.
#[derive(Debug, Clone)]
pub(crate) struct Neighbours<T>(pub(crate) T, pub(crate) T);

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
