//! The response codec: [`Reply`] and [`Response`], their encoders and decoder.

use super::codec::{Reader, header, put_bytes, put_header, put_len};
use super::{
    ErrorCode, FLAG_ABSENT, FLAG_MORE, Field, HEADER_LEN, Limits, MIN_ENTRY_ITEM, MIN_KEY_ITEM,
    ReplyKind, STAT_ITEM, Stat, StatId, WireError,
};

/// The server's answer to a request, or one part of a long answer (`more: true`, see the
/// [module](super) docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply {
    /// The key was absent and is now set (insert, insert-new).
    Created,
    /// Insert replaced this value.
    Replaced(Vec<u8>),
    /// Read found this value.
    Value(Vec<u8>),
    /// The key was absent (read, delete).
    NotFound,
    /// Delete removed the key, which had this value.
    Deleted(Vec<u8>),
    /// Insert-new found the key present with this value and changed nothing.
    Exists(Vec<u8>),
    /// Cas found the expected value (or absence) and set the new value.
    Swapped,
    /// Cas found this value (`None`: the key is absent) and changed nothing.
    Mismatch(Option<Vec<u8>>),
    /// Add's result, now stored.
    Number(i64),
    /// Len: the number of keys.
    Count(u64),
    /// A part of a Scan's answer.
    Keys {
        /// Where the next Scan starts; 0 when the scan is complete. The same in every part.
        cursor: u64,
        /// Keys.
        keys: Vec<Vec<u8>>,
        /// More parts follow.
        more: bool,
    },
    /// A part of a Print's answer: pairs of the bucket.
    Entries {
        /// (key, value) pairs.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// More parts follow.
        more: bool,
    },
    /// ThreadsStart/ThreadsStop done: the client's worker count now.
    Threads(u32),
    /// A part of a Stats answer ([`crate::stats::Stats::from_stats`] gives the typed form of
    /// all parts' statistics).
    Stats {
        /// Statistics.
        stats: Vec<Stat>,
        /// More parts follow.
        more: bool,
    },
    /// Quit accepted.
    Done,
    /// Refused.
    Error(ErrorCode),
}

impl Reply {
    /// The reply's kind.
    pub const fn kind(&self) -> ReplyKind {
        match self {
            Reply::Created => ReplyKind::Created,
            Reply::Replaced(_) => ReplyKind::Replaced,
            Reply::Value(_) => ReplyKind::Value,
            Reply::NotFound => ReplyKind::NotFound,
            Reply::Deleted(_) => ReplyKind::Deleted,
            Reply::Exists(_) => ReplyKind::Exists,
            Reply::Swapped => ReplyKind::Swapped,
            Reply::Mismatch(_) => ReplyKind::Mismatch,
            Reply::Number(_) => ReplyKind::Number,
            Reply::Count(_) => ReplyKind::Count,
            Reply::Keys { .. } => ReplyKind::Keys,
            Reply::Entries { .. } => ReplyKind::Entries,
            Reply::Threads(_) => ReplyKind::Threads,
            Reply::Stats { .. } => ReplyKind::Stats,
            Reply::Done => ReplyKind::Done,
            Reply::Error(_) => ReplyKind::Error,
        }
    }

    /// Whether more responses of the same answer follow (a `Keys`, `Entries` or `Stats` part
    /// with `more`).
    pub const fn more(&self) -> bool {
        match self {
            Reply::Keys { more, .. } | Reply::Entries { more, .. } | Reply::Stats { more, .. } => {
                *more
            }
            _ => false,
        }
    }
}

/// A response: a reply and the id of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The reply.
    pub reply: Reply,
}

// ---------------------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------------------

/// Append the encoding of a one-value reply (`kind` one of [`ReplyKind::Value`],
/// [`ReplyKind::Replaced`], [`ReplyKind::Deleted`], [`ReplyKind::Exists`]) to request `id`
/// from a borrowed value: the bytes [`encode_response`] writes for that reply, without
/// building it (the server encodes a value straight from the table).
///
/// # Panics
///
/// If `kind` carries no single value, or `value` is longer than `u32::MAX` bytes.
pub fn encode_value_response(id: u64, kind: ReplyKind, value: &[u8], out: &mut Vec<u8>) {
    assert!(
        matches!(
            kind,
            ReplyKind::Value | ReplyKind::Replaced | ReplyKind::Deleted | ReplyKind::Exists
        ),
        "{kind:?} does not carry one value"
    );
    out.reserve(HEADER_LEN + 4 + value.len());
    put_header(out, id, kind.info().tag, 0);
    put_bytes(out, value);
}

/// Append the encoding of `r` to `out`.
///
/// # Panics
///
/// If a key, value or list is longer than `u32::MAX` bytes or items (none fits in a record).
pub fn encode_response(r: &Response, out: &mut Vec<u8>) {
    out.reserve(r.encoded_len());
    let tag = r.reply.kind().info().tag;
    let flags = match &r.reply {
        Reply::Mismatch(None) => FLAG_ABSENT,
        reply if reply.more() => FLAG_MORE,
        _ => 0,
    };
    put_header(out, r.id, tag, flags);
    match &r.reply {
        Reply::Created | Reply::NotFound | Reply::Swapped | Reply::Done => {}
        Reply::Replaced(v) | Reply::Value(v) | Reply::Deleted(v) | Reply::Exists(v) => {
            put_bytes(out, v)
        }
        Reply::Mismatch(v) => put_bytes(out, v.as_deref().unwrap_or_default()),
        Reply::Number(n) => out.extend_from_slice(&n.to_le_bytes()),
        Reply::Count(n) => out.extend_from_slice(&n.to_le_bytes()),
        Reply::Keys { cursor, keys, .. } => {
            out.extend_from_slice(&cursor.to_le_bytes());
            put_len(out, keys.len());
            for k in keys {
                put_bytes(out, k);
            }
        }
        Reply::Entries { pairs, .. } => {
            put_len(out, pairs.len());
            for (k, v) in pairs {
                put_bytes(out, k);
                put_bytes(out, v);
            }
        }
        Reply::Threads(n) => out.extend_from_slice(&n.to_le_bytes()),
        Reply::Stats { stats, .. } => {
            put_len(out, stats.len());
            for s in stats {
                out.extend_from_slice(&s.id.0.to_le_bytes());
                out.extend_from_slice(&s.index.to_le_bytes());
                out.extend_from_slice(&s.value.to_le_bytes());
            }
        }
        Reply::Error(e) => {
            out.extend_from_slice(&e.code().to_le_bytes());
            match *e {
                ErrorCode::BadBucket { bucket, buckets } => {
                    out.extend_from_slice(&bucket.to_le_bytes());
                    out.extend_from_slice(&buckets.to_le_bytes());
                }
                ErrorCode::ThreadLimit { current, max } => {
                    out.extend_from_slice(&current.to_le_bytes());
                    out.extend_from_slice(&max.to_le_bytes());
                }
                ErrorCode::TooLarge { what, len, max } => {
                    out.push(what.wire());
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&max.to_le_bytes());
                }
                ErrorCode::LastWorker
                | ErrorCode::ShuttingDown
                | ErrorCode::Malformed
                | ErrorCode::OutOfMemory
                | ErrorCode::NotAnInteger
                | ErrorCode::Overflow => {}
            }
        }
    }
}

impl Response {
    /// The length of its encoding, without encoding it (a server filling a part of a long
    /// answer up to a record's `max_payload` can add items' sizes to it: 4 + key for a key,
    /// 8 + key + value for a pair, 14 for a stat).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match &self.reply {
                Reply::Created | Reply::NotFound | Reply::Swapped | Reply::Done => 0,
                Reply::Replaced(v) | Reply::Value(v) | Reply::Deleted(v) | Reply::Exists(v) => {
                    4 + v.len()
                }
                Reply::Mismatch(v) => 4 + v.as_ref().map_or(0, Vec::len),
                Reply::Number(_) | Reply::Count(_) => 8,
                Reply::Keys { keys, .. } => 8 + 4 + keys.iter().map(|k| 4 + k.len()).sum::<usize>(),
                Reply::Entries { pairs, .. } => {
                    4 + pairs
                        .iter()
                        .map(|(k, v)| 8 + k.len() + v.len())
                        .sum::<usize>()
                }
                Reply::Threads(_) => 4,
                Reply::Stats { stats, .. } => 4 + STAT_ITEM * stats.len(),
                Reply::Error(e) => {
                    2 + match e {
                        ErrorCode::BadBucket { .. } => 16,
                        ErrorCode::ThreadLimit { .. } => 8,
                        ErrorCode::TooLarge { .. } => 1 + 8 + 4,
                        _ => 0,
                    }
                }
            }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding.
// ---------------------------------------------------------------------------------------------

fn decode_error_code(r: &mut Reader<'_>) -> Result<ErrorCode, WireError> {
    Ok(match r.u16()? {
        1 => ErrorCode::BadBucket {
            bucket: r.u64()?,
            buckets: r.u64()?,
        },
        2 => ErrorCode::ThreadLimit {
            current: r.u32()?,
            max: r.u32()?,
        },
        3 => ErrorCode::LastWorker,
        4 => ErrorCode::ShuttingDown,
        5 => ErrorCode::Malformed,
        6 => {
            let b = r.u8()?;
            ErrorCode::TooLarge {
                what: Field::from_wire(b).ok_or(WireError::UnknownField(b))?,
                len: r.u64()?,
                max: r.u32()?,
            }
        }
        7 => ErrorCode::OutOfMemory,
        8 => ErrorCode::NotAnInteger,
        9 => ErrorCode::Overflow,
        c => return Err(WireError::UnknownErrorCode(c)),
    })
}

/// The id and value of a response that is a whole, well-formed [`Reply::Value`], borrowed from
/// `buf` (a copy of one record's payload, as for [`decode_response`]); `None` for anything else,
/// which [`decode_response`] then decodes or refuses. For a `Value` response the two agree:
/// the same checks (tag, flags, the value's length under `limits`, nothing after it), but no
/// allocation, so a caller can copy the value where it wants it.
pub fn value_response_view<'a>(buf: &'a [u8], limits: &Limits) -> Option<(u64, &'a [u8])> {
    let (id, tag, flags, mut r) = header(buf).ok()?;
    if ReplyKind::from_tag(tag) != Some(ReplyKind::Value) || flags != 0 {
        return None;
    }
    let value = r.value_view(limits).ok()?;
    r.finish().ok()?;
    Some((id, value))
}

/// Decode an untrusted response (a copy of one record's payload) under the limits the server
/// announced: keys and values in it are held to them too.
pub fn decode_response(buf: &[u8], limits: &Limits) -> Result<Response, WireError> {
    let (id, tag, flags, mut r) = header(buf)?;
    let kind = ReplyKind::from_tag(tag).ok_or(WireError::UnknownTag(tag))?;
    if flags & !kind.info().flags != 0 {
        return Err(WireError::BadFlags { tag, flags });
    }
    let more = flags & FLAG_MORE != 0;
    let l = limits;
    let reply = match kind {
        ReplyKind::Created => Reply::Created,
        ReplyKind::Replaced => Reply::Replaced(r.value(l)?),
        ReplyKind::Value => Reply::Value(r.value(l)?),
        ReplyKind::NotFound => Reply::NotFound,
        ReplyKind::Deleted => Reply::Deleted(r.value(l)?),
        ReplyKind::Exists => Reply::Exists(r.value(l)?),
        ReplyKind::Swapped => Reply::Swapped,
        ReplyKind::Mismatch => Reply::Mismatch(r.maybe_value(flags & FLAG_ABSENT != 0, l)?),
        ReplyKind::Number => Reply::Number(r.i64()?),
        ReplyKind::Count => Reply::Count(r.u64()?),
        ReplyKind::Keys => {
            let cursor = r.u64()?;
            let n = r.count(MIN_KEY_ITEM)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(r.key(l)?);
            }
            Reply::Keys { cursor, keys, more }
        }
        ReplyKind::Entries => {
            let n = r.count(MIN_ENTRY_ITEM)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                pairs.push((r.key(l)?, r.value(l)?));
            }
            Reply::Entries { pairs, more }
        }
        ReplyKind::Threads => Reply::Threads(r.u32()?),
        ReplyKind::Stats => {
            let n = r.count(STAT_ITEM)?;
            let mut stats = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.u16()?;
                if id == 0 {
                    return Err(WireError::ZeroStatId);
                }
                stats.push(Stat {
                    id: StatId(id),
                    index: r.u32()?,
                    value: r.u64()?,
                });
            }
            Reply::Stats { stats, more }
        }
        ReplyKind::Done => Reply::Done,
        ReplyKind::Error => Reply::Error(decode_error_code(&mut r)?),
    };
    r.finish()?;
    Ok(Response { id, reply })
}
