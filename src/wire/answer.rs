//! Long answers: putting the parts of one answer together ([`Assembly`] into an [`Outcome`])
//! and splitting a list into parts that fit a record ([`split_parts`]).

#[cfg(doc)] // Names the item docs link to.
use super::Limits;
use super::{ErrorCode, HEADER_LEN, Reply, ReplyKind, STAT_ITEM, Stat};

/// The complete answer to one request: its one response, or the parts of a long answer put
/// together (see [`Assembly`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
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
    /// Scan: where the next scan starts (0: the scan is complete) and the keys found.
    Keys {
        /// The next cursor.
        cursor: u64,
        /// Keys, in the server's order.
        keys: Vec<Vec<u8>>,
    },
    /// Print: the bucket's pairs, in the server's order.
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
    /// ThreadsStart/ThreadsStop: the client's worker count now.
    Threads(u32),
    /// Stats: every statistic, in the order sent ([`crate::stats::Stats::from_stats`] types
    /// them).
    Stats(Vec<Stat>),
    /// Quit accepted.
    Done,
    /// Refused with a reason.
    Refused(ErrorCode),
}

/// Puts the parts of one answer together: feed it every response with the request's id, in
/// order, until it returns an [`Outcome`].
#[derive(Debug, Default)]
pub struct Assembly {
    /// Parts so far of a long answer (`Keys`, `Entries` or `Stats` with `more`).
    partial: Option<Reply>,
}

/// A response that does not continue the answer being put together (a peer's lie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfPlace {
    /// The kind of the answer's first part.
    pub expected: ReplyKind,
    /// The kind that came.
    pub got: ReplyKind,
}

impl std::fmt::Display for OutOfPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {:?} part in a {:?} answer", self.got, self.expected)
    }
}

impl Assembly {
    /// Whether some parts have come and the answer is not complete yet.
    pub fn is_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// Take the next response of the answer. `Ok(None)` while more parts are to come.
    pub fn add(&mut self, reply: Reply) -> Result<Option<Outcome>, OutOfPlace> {
        let more = reply.more();
        let joined = match (self.partial.take(), reply) {
            (None, r) => r,
            (
                Some(Reply::Keys {
                    cursor, mut keys, ..
                }),
                Reply::Keys { keys: k, more, .. },
            ) => {
                keys.extend(k);
                Reply::Keys { cursor, keys, more }
            }
            (Some(Reply::Entries { mut pairs, .. }), Reply::Entries { pairs: p, more }) => {
                pairs.extend(p);
                Reply::Entries { pairs, more }
            }
            (Some(Reply::Stats { mut stats, .. }), Reply::Stats { stats: s, more }) => {
                stats.extend(s);
                Reply::Stats { stats, more }
            }
            (Some(first), got) => {
                return Err(OutOfPlace {
                    expected: first.kind(),
                    got: got.kind(),
                });
            }
        };
        if more {
            self.partial = Some(joined);
            return Ok(None);
        }
        Ok(Some(match joined {
            Reply::Created => Outcome::Created,
            Reply::Replaced(v) => Outcome::Replaced(v),
            Reply::Value(v) => Outcome::Value(v),
            Reply::NotFound => Outcome::NotFound,
            Reply::Deleted(v) => Outcome::Deleted(v),
            Reply::Exists(v) => Outcome::Exists(v),
            Reply::Swapped => Outcome::Swapped,
            Reply::Mismatch(v) => Outcome::Mismatch(v),
            Reply::Number(n) => Outcome::Number(n),
            Reply::Count(n) => Outcome::Count(n),
            Reply::Keys { cursor, keys, .. } => Outcome::Keys { cursor, keys },
            Reply::Entries { pairs, .. } => Outcome::Entries(pairs),
            Reply::Threads(n) => Outcome::Threads(n),
            Reply::Stats { stats, .. } => Outcome::Stats(stats),
            Reply::Done => Outcome::Done,
            Reply::Error(e) => Outcome::Refused(e),
        }))
    }
}

/// Split a long answer's list into parts whose responses each encode in at most `max_len`
/// bytes (see "Long answers" in the [module](super) docs): `fixed` is the bytes a part takes
/// besides its items (header, list count, cursor), `item_len` an item's bytes. Each part holds
/// at least one item, so an item that alone exceeds the room gets a part of its own (the
/// limits keep that from happening: [`Limits::max_response_len`]); an empty list gives one
/// empty part.
pub fn split_parts<T>(
    items: Vec<T>,
    fixed: usize,
    item_len: impl Fn(&T) -> usize,
    max_len: usize,
) -> Vec<Vec<T>> {
    let room = max_len.saturating_sub(fixed);
    let mut parts = vec![Vec::new()];
    let mut used = 0;
    for item in items {
        let n = item_len(&item);
        let last = parts.last_mut().expect("never empty");
        if !last.is_empty() && used + n > room {
            parts.push(Vec::new());
            used = 0;
        }
        used += n;
        parts.last_mut().expect("never empty").push(item);
    }
    parts
}

/// The bytes a `Keys` part takes besides its keys.
pub const KEYS_FIXED: usize = HEADER_LEN + 8 + 4;
/// The bytes an `Entries` part takes besides its pairs.
pub const ENTRIES_FIXED: usize = HEADER_LEN + 4;
/// The bytes a `Stats` part takes besides its statistics.
pub const STATS_FIXED: usize = HEADER_LEN + 4;

/// A key's bytes in a `Keys` list.
pub fn key_item_len(k: &[u8]) -> usize {
    4 + k.len()
}

/// A pair's bytes in an `Entries` list.
pub fn entry_item_len(e: &(Vec<u8>, Vec<u8>)) -> usize {
    8 + e.0.len() + e.1.len()
}

/// A statistic's bytes in a `Stats` list.
pub fn stat_item_len(_: &Stat) -> usize {
    STAT_ITEM
}
