//! The request codec: [`Op`], [`OpView`] and [`Request`], their encoders and decoders.

use super::codec::{header, put_bytes, put_header};
#[cfg(doc)] // Names the item docs link to.
use super::{ErrorCode, Reply};
use super::{FLAG_ABSENT, HEADER_LEN, Limits, Verb, WireError};

/// One operation with its arguments. Keys must be 1 to `max_key` bytes and values at most
/// `max_value` bytes to decode; the encoder writes whatever it is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Create or replace `key` → `value`: [`Reply::Created`] or [`Reply::Replaced`].
    Insert {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Read `key`: [`Reply::Value`] or [`Reply::NotFound`].
    Read {
        /// The key.
        key: Vec<u8>,
    },
    /// Delete `key`: [`Reply::Deleted`] or [`Reply::NotFound`].
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Create `key` → `value` only if `key` is absent: [`Reply::Created`] or
    /// [`Reply::Exists`].
    InsertNew {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Set `key` to `new` if its value is `expected` (`None`: if it is absent):
    /// [`Reply::Swapped`] or [`Reply::Mismatch`].
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value expected, or `None` for "absent".
        expected: Option<Vec<u8>>,
        /// The value to set.
        new: Vec<u8>,
    },
    /// Add `delta` to the decimal ASCII integer stored at `key` (a missing key counts as 0):
    /// [`Reply::Number`] with the result, or [`ErrorCode::NotAnInteger`] /
    /// [`ErrorCode::Overflow`] with nothing changed.
    Add {
        /// The key.
        key: Vec<u8>,
        /// What to add.
        delta: i64,
    },
    /// Count the keys: [`Reply::Count`].
    Len,
    /// Keys of the buckets from `cursor` on, about `count` of them (Redis `SCAN`): [`Reply::Keys`]
    /// parts.
    Scan {
        /// Where to start: 0 first, then the cursor of the previous answer.
        cursor: u64,
        /// How many keys to aim for (at least 1).
        count: u32,
    },
    /// The pairs of bucket `bucket`: [`Reply::Entries`] parts, or [`ErrorCode::BadBucket`].
    Print {
        /// Bucket index, `0..buckets`.
        bucket: u64,
    },
    /// Start `n` more worker threads for this client: [`Reply::Threads`].
    ThreadsStart {
        /// How many (at least 1).
        n: u32,
    },
    /// Stop one of this client's worker threads (never the last): [`Reply::Threads`].
    ThreadsStop,
    /// The server's statistics: [`Reply::Stats`] parts.
    Stats,
    /// Shut the server down: [`Reply::Done`].
    Quit,
}

impl Op {
    /// The operation's verb.
    pub const fn verb(&self) -> Verb {
        match self {
            Op::Insert { .. } => Verb::Insert,
            Op::Read { .. } => Verb::Read,
            Op::Delete { .. } => Verb::Delete,
            Op::InsertNew { .. } => Verb::InsertNew,
            Op::Cas { .. } => Verb::Cas,
            Op::Add { .. } => Verb::Add,
            Op::Len => Verb::Len,
            Op::Scan { .. } => Verb::Scan,
            Op::Print { .. } => Verb::Print,
            Op::ThreadsStart { .. } => Verb::ThreadsStart,
            Op::ThreadsStop => Verb::ThreadsStop,
            Op::Stats => Verb::Stats,
            Op::Quit => Verb::Quit,
        }
    }
}

/// A request: an operation and the id its response(s) will carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// Chosen by the client; echoed in every response to this request.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// An [`Op`] whose keys and values borrow the bytes they came from: what [`decode_request_view`]
/// returns (the server executes it straight from its copy of the record, allocating nothing)
/// and what the encoder writes (a client encodes from the caller's slices, copying nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // The fields are those of `Op`'s variants of the same names.
pub enum OpView<'a> {
    Insert {
        key: &'a [u8],
        value: &'a [u8],
    },
    Read {
        key: &'a [u8],
    },
    Delete {
        key: &'a [u8],
    },
    InsertNew {
        key: &'a [u8],
        value: &'a [u8],
    },
    Cas {
        key: &'a [u8],
        expected: Option<&'a [u8]>,
        new: &'a [u8],
    },
    Add {
        key: &'a [u8],
        delta: i64,
    },
    Len,
    Scan {
        cursor: u64,
        count: u32,
    },
    Print {
        bucket: u64,
    },
    ThreadsStart {
        n: u32,
    },
    ThreadsStop,
    Stats,
    Quit,
}

impl<'a> OpView<'a> {
    /// The key of an operation on one key (insert, read, delete, insert-new, cas, add).
    pub const fn key(&self) -> Option<&'a [u8]> {
        match *self {
            OpView::Insert { key, .. }
            | OpView::Read { key }
            | OpView::Delete { key }
            | OpView::InsertNew { key, .. }
            | OpView::Cas { key, .. }
            | OpView::Add { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The operation's verb.
    pub const fn verb(&self) -> Verb {
        match self {
            OpView::Insert { .. } => Verb::Insert,
            OpView::Read { .. } => Verb::Read,
            OpView::Delete { .. } => Verb::Delete,
            OpView::InsertNew { .. } => Verb::InsertNew,
            OpView::Cas { .. } => Verb::Cas,
            OpView::Add { .. } => Verb::Add,
            OpView::Len => Verb::Len,
            OpView::Scan { .. } => Verb::Scan,
            OpView::Print { .. } => Verb::Print,
            OpView::ThreadsStart { .. } => Verb::ThreadsStart,
            OpView::ThreadsStop => Verb::ThreadsStop,
            OpView::Stats => Verb::Stats,
            OpView::Quit => Verb::Quit,
        }
    }

    /// The owned operation (its keys and values copied).
    pub fn to_op(&self) -> Op {
        match *self {
            OpView::Insert { key, value } => Op::Insert {
                key: key.to_vec(),
                value: value.to_vec(),
            },
            OpView::Read { key } => Op::Read { key: key.to_vec() },
            OpView::Delete { key } => Op::Delete { key: key.to_vec() },
            OpView::InsertNew { key, value } => Op::InsertNew {
                key: key.to_vec(),
                value: value.to_vec(),
            },
            OpView::Cas { key, expected, new } => Op::Cas {
                key: key.to_vec(),
                expected: expected.map(<[u8]>::to_vec),
                new: new.to_vec(),
            },
            OpView::Add { key, delta } => Op::Add {
                key: key.to_vec(),
                delta,
            },
            OpView::Len => Op::Len,
            OpView::Scan { cursor, count } => Op::Scan { cursor, count },
            OpView::Print { bucket } => Op::Print { bucket },
            OpView::ThreadsStart { n } => Op::ThreadsStart { n },
            OpView::ThreadsStop => Op::ThreadsStop,
            OpView::Stats => Op::Stats,
            OpView::Quit => Op::Quit,
        }
    }
}

impl Op {
    /// The operation as a view borrowing its keys and values.
    pub fn view(&self) -> OpView<'_> {
        match self {
            Op::Insert { key, value } => OpView::Insert { key, value },
            Op::Read { key } => OpView::Read { key },
            Op::Delete { key } => OpView::Delete { key },
            Op::InsertNew { key, value } => OpView::InsertNew { key, value },
            Op::Cas { key, expected, new } => OpView::Cas {
                key,
                expected: expected.as_deref(),
                new,
            },
            Op::Add { key, delta } => OpView::Add { key, delta: *delta },
            Op::Len => OpView::Len,
            Op::Scan { cursor, count } => OpView::Scan {
                cursor: *cursor,
                count: *count,
            },
            Op::Print { bucket } => OpView::Print { bucket: *bucket },
            Op::ThreadsStart { n } => OpView::ThreadsStart { n: *n },
            Op::ThreadsStop => OpView::ThreadsStop,
            Op::Stats => OpView::Stats,
            Op::Quit => OpView::Quit,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------------------

/// Append the encoding of `r` to `out`. Encodes whatever it is given (an empty key, a count of
/// 0, a field over some limit): such a request is refused by [`decode_request`].
///
/// # Panics
///
/// If a key or value is longer than `u32::MAX` bytes (none fits in a record).
pub fn encode_request(r: &Request, out: &mut Vec<u8>) {
    encode_op(r.id, &r.op, out);
}

/// Append the encoding of the request `op` with id `id` to `out`: [`encode_request`] without
/// building a [`Request`] (no copy of the operation's keys and values).
///
/// # Panics
///
/// As [`encode_request`].
pub fn encode_op(id: u64, op: &Op, out: &mut Vec<u8>) {
    encode_view(id, &op.view(), out);
}

/// Append the encoding of the request `op` with id `id` to `out`, from borrowed keys and
/// values (the one request encoder: [`encode_op`] and [`encode_request`] call it).
///
/// # Panics
///
/// As [`encode_request`].
pub fn encode_view(id: u64, op: &OpView<'_>, out: &mut Vec<u8>) {
    let flags = match op {
        OpView::Cas { expected: None, .. } => FLAG_ABSENT,
        _ => 0,
    };
    put_header(out, id, op.verb().info().tag, flags);
    match *op {
        OpView::Insert { key, value } | OpView::InsertNew { key, value } => {
            put_bytes(out, key);
            put_bytes(out, value);
        }
        OpView::Read { key } | OpView::Delete { key } => put_bytes(out, key),
        OpView::Cas { key, expected, new } => {
            put_bytes(out, key);
            put_bytes(out, expected.unwrap_or_default());
            put_bytes(out, new);
        }
        OpView::Add { key, delta } => {
            put_bytes(out, key);
            out.extend_from_slice(&delta.to_le_bytes());
        }
        OpView::Scan { cursor, count } => {
            out.extend_from_slice(&cursor.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        OpView::Print { bucket } => out.extend_from_slice(&bucket.to_le_bytes()),
        OpView::ThreadsStart { n } => out.extend_from_slice(&n.to_le_bytes()),
        OpView::Len | OpView::ThreadsStop | OpView::Stats | OpView::Quit => {}
    }
}

impl Request {
    /// The length of its encoding, without encoding it.
    pub fn encoded_len(&self) -> usize {
        let args = self.op.verb().info().shape.args();
        let lens: [usize; 3] = match &self.op {
            Op::Insert { key, value } | Op::InsertNew { key, value } => [key.len(), value.len(), 0],
            Op::Read { key } | Op::Delete { key } | Op::Add { key, .. } => [key.len(), 0, 0],
            Op::Cas { key, expected, new } => {
                [key.len(), expected.as_ref().map_or(0, Vec::len), new.len()]
            }
            _ => [0; 3],
        };
        HEADER_LEN
            + args
                .iter()
                .zip(lens)
                .map(|(a, len)| a.kind.wire_len(len))
                .sum::<usize>()
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding.
// ---------------------------------------------------------------------------------------------

/// The id in an encoded request, readable whatever the rest holds (so that a request that does
/// not decode can be answered): bytes 0..8, little endian, zero-padded when there are fewer.
pub fn request_id(buf: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = buf.len().min(8);
    b[..n].copy_from_slice(&buf[..n]);
    u64::from_le_bytes(b)
}

/// The verb a request names, read from its header alone (`None` if the header is short or the
/// tag unknown: decoding the request says why). For a server to see what comes before it
/// decodes.
pub fn request_verb(buf: &[u8]) -> Option<Verb> {
    let (_, tag, _, _) = header(buf).ok()?;
    Verb::from_tag(tag)
}

/// Decode an untrusted request (a copy of one record's payload) under the server's limits.
pub fn decode_request(buf: &[u8], limits: &Limits) -> Result<Request, WireError> {
    decode_request_view(buf, limits).map(|(id, op)| Request { id, op: op.to_op() })
}

/// Decode an untrusted request in place: its id and the operation, whose keys and values
/// borrow `buf` (the one request decoder: [`decode_request`] copies its result).
pub fn decode_request_view<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<(u64, OpView<'a>), WireError> {
    let (id, tag, flags, mut r) = header(buf)?;
    let verb = Verb::from_tag(tag).ok_or(WireError::UnknownTag(tag))?;
    let allowed = if verb == Verb::Cas { FLAG_ABSENT } else { 0 };
    if flags & !allowed != 0 {
        return Err(WireError::BadFlags { tag, flags });
    }
    let l = limits;
    let op = match verb {
        Verb::Insert => OpView::Insert {
            key: r.key_view(l)?,
            value: r.value_view(l)?,
        },
        Verb::Read => OpView::Read {
            key: r.key_view(l)?,
        },
        Verb::Delete => OpView::Delete {
            key: r.key_view(l)?,
        },
        Verb::InsertNew => OpView::InsertNew {
            key: r.key_view(l)?,
            value: r.value_view(l)?,
        },
        Verb::Cas => OpView::Cas {
            key: r.key_view(l)?,
            expected: r.maybe_value_view(flags & FLAG_ABSENT != 0, l)?,
            new: r.value_view(l)?,
        },
        Verb::Add => OpView::Add {
            key: r.key_view(l)?,
            delta: r.i64()?,
        },
        Verb::Len => OpView::Len,
        Verb::Scan => OpView::Scan {
            cursor: r.u64()?,
            count: r.positive_u32()?,
        },
        Verb::Print => OpView::Print { bucket: r.u64()? },
        Verb::ThreadsStart => OpView::ThreadsStart {
            n: r.positive_u32()?,
        },
        Verb::ThreadsStop => OpView::ThreadsStop,
        Verb::Stats => OpView::Stats,
        Verb::Quit => OpView::Quit,
    };
    r.finish()?;
    Ok((id, op))
}
