//! Limits and the layout: [`ArbLimits`] (limits drawn around a message's field lengths) and,
//! independently of the crate, the key and value fields of a message in wire order, with what
//! decoding under lowered limits must give.

use crate::LIMITS;
use quickcheck::{Arbitrary, Gen};
use shmkv::wire::{Field, Limits, Op, Reply, WireError};

/// Limits drawn around a message's field lengths: each limit is below, at or above the longest
/// field of its kind.
#[derive(Debug, Clone)]
pub(crate) struct ArbLimits(pub(crate) Limits);

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

/// The byte-string fields of a request body, in wire order (see the request table in
/// `src/wire.rs`): insert/insert-new key, value; read/delete key; cas key, expected (empty when
/// absent), new; add key.
pub(crate) fn request_fields(op: &Op) -> Vec<(Field, usize)> {
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
pub(crate) fn reply_fields(r: &Reply) -> Vec<(Field, usize)> {
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
pub(crate) fn expected_under<T>(
    fields: &[(Field, usize)],
    l: &Limits,
    ok: T,
) -> Result<T, WireError> {
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
