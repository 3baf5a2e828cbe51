//! The wire protocol: requests and responses, each encoded by hand into one fixed 32-byte slot.
//!
//! # Slot layout (little endian)
//!
//! | bytes   | request                     | response                          |
//! |---------|-----------------------------|-----------------------------------|
//! | 0..8    | request id (chosen by client) | id of the request it answers    |
//! | 8       | op tag (1–8)                | reply tag (1–10)                  |
//! | 9       | reserved, ignored           | reserved, ignored                 |
//! | 10..12  | reserved, ignored           | error code (tag 8) or stat id (tag 9) |
//! | 12..16  | reserved, ignored           | stat index (tag 9), else ignored  |
//! | 16..24  | `a`: key, bucket or count   | `a`: value, key, count or detail  |
//! | 24..32  | `b`: value                  | `b`: value or detail              |
//!
//! Op tags: 1 Insert(key=a, value=b), 2 Read(key=a), 3 Delete(key=a), 4 Print(bucket=a),
//! 5 ThStart(n=a, 1 ≤ n ≤ 2³²−1), 6 ThStop, 7 Quit, 8 Stats.
//!
//! Reply tags: 1 Done, 2 Value(a), 3 NotFound, 4 Replaced(previous=a), 5 Entry(key=a, value=b),
//! 6 PrintEnd(count=a), 7 Threads(count=a), 8 Error(code at 10..12, details in a and b),
//! 9 Stat(id at 10..12, index at 12..16, value=a), 10 StatsEnd(count=a).
//!
//! A Print is answered by zero or more `Entry` slots followed by one `PrintEnd`, and a Stats by
//! zero or more `Stat` slots followed by one `StatsEnd` (its count is the number of `Stat` slots
//! before it), all carrying the request's id; every other request by exactly one slot. A Print
//! or a Stats that is refused gets one `Error` slot instead.
//!
//! # Statistics
//!
//! A `Stat` slot carries one number: what it is ([`StatId`], a `u16`), which client slot it is
//! about (`index`, for the per-slot statistics; 0 otherwise) and its value. The server takes the
//! whole set at one moment (after every earlier request of the asking client has been answered)
//! and sends it in this order; [`crate::stats::Stats`] is the typed form.
//!
//! | id | name | index | value |
//! |---:|------|-------|-------|
//! | 1–8 | `OPS_*`: Insert, Read, Delete, Print, ThStart, ThStop, Quit, Stats (id = op tag) | 0 | requests of that kind taken since the server started, from every client |
//! | 16–20 | `ERRORS_*`: BadBucket, ThreadLimit, LastWorker, ShuttingDown, Malformed (id = 15 + error code) | 0 | requests refused with that error |
//! | 32 | `ENTRIES` | 0 | pairs in the table |
//! | 33 | `BUCKETS` | 0 | buckets in the table |
//! | 34 | `LONGEST_BUCKET` | 0 | pairs in the fullest bucket |
//! | 48 | `CLIENT_SLOTS` | 0 | client slots of the server |
//! | 64 | `SLOT_OWNER` | slot | pid of the attached client, 0 when the slot is free |
//! | 65 | `SLOT_WORKERS` | slot | worker threads serving the slot |
//! | 66 | `SLOT_REQUESTS` | slot | requests taken from the slot since the server started |
//! | 80 | `LATENCY_SAMPLES` | 0 | requests timed in the latency window |
//! | 81–84 | `LATENCY_P50_NS`, `LATENCY_P99_NS`, `LATENCY_P999_NS`, `LATENCY_MAX_NS` | 0 | service time percentiles and maximum in nanoseconds (0 without samples) |
//! | 85 | `LATENCY_WINDOW_MS` | 0 | how far back the window reaches |
//! | 86 | `LATENCY_SAMPLE_EVERY` | 0 | one request in this many is timed |
//! | 96 | `UPTIME_MS` | 0 | milliseconds since the server started |
//!
//! The id space is open: a decoder accepts any id but 0, so a newer server may send
//! statistics an older client does not know (it keeps them aside, see
//! [`crate::stats::Stats::other`]).
//!
//! [`decode_request`] and [`decode_response`] take untrusted bytes (a copy of a slot that a peer
//! may have filled with anything) and return a `Result`: they never panic, and a tag, code or
//! field they do not recognise is an error, never trusted. Fields an operation does not use are
//! ignored on decode and written as zero on encode, so `decode(encode(m)) == m` and a slot that
//! decodes re-encodes to the same meaningful bytes.

use crate::region::{SLOT_SIZE, Slot};

/// One operation a client asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Insert or replace `key` → `value`.
    Insert {
        /// The key.
        key: u64,
        /// The value.
        value: u64,
    },
    /// Read the value of `key`.
    Read {
        /// The key.
        key: u64,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: u64,
    },
    /// List the pairs in bucket `bucket`.
    Print {
        /// Bucket index, `0..buckets`.
        bucket: u64,
    },
    /// Start `n` more server worker threads for this client.
    ThStart {
        /// How many (at least 1).
        n: u32,
    },
    /// Stop one of this client's server worker threads (never the last).
    ThStop,
    /// Shut the server down gracefully.
    Quit,
    /// Report the server's statistics (answered by [`Reply::Stat`] slots and a
    /// [`Reply::StatsEnd`]).
    Stats,
}

/// A request: an operation and the id its response will carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request {
    /// Chosen by the client; echoed in every response slot to this request.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// Why the server refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Print of a bucket index that does not exist.
    BadBucket {
        /// The index asked for.
        bucket: u64,
        /// How many buckets the table has.
        buckets: u64,
    },
    /// ThStart would exceed the per-client worker limit.
    ThreadLimit {
        /// Workers the client has now.
        current: u32,
        /// The limit.
        max: u32,
    },
    /// ThStop of the client's last worker.
    LastWorker,
    /// The server is shutting down and did not execute the request.
    ShuttingDown,
    /// The request slot did not decode (unknown tag or field out of range).
    Malformed,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorCode::BadBucket { bucket, buckets } => write!(
                f,
                "bucket {bucket} out of range (the table has {buckets} buckets, 0..={})",
                buckets.saturating_sub(1)
            ),
            ErrorCode::ThreadLimit { current, max } => write!(
                f,
                "thread limit: this client has {current} worker threads and at most {max} are allowed"
            ),
            ErrorCode::LastWorker => f.write_str("cannot stop the last worker thread of a client"),
            ErrorCode::ShuttingDown => f.write_str("the server is shutting down"),
            ErrorCode::Malformed => f.write_str("malformed request"),
        }
    }
}

/// Which statistic a [`Reply::Stat`] carries (see the table in the [module](self) docs). Any
/// value but 0 decodes; the constants are the ids this version knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatId(pub u16);

impl StatId {
    /// Insert requests taken.
    pub const OPS_INSERT: StatId = StatId(1);
    /// Read requests taken.
    pub const OPS_READ: StatId = StatId(2);
    /// Delete requests taken.
    pub const OPS_DELETE: StatId = StatId(3);
    /// Print requests taken.
    pub const OPS_PRINT: StatId = StatId(4);
    /// ThStart requests taken.
    pub const OPS_THREADS_START: StatId = StatId(5);
    /// ThStop requests taken.
    pub const OPS_THREADS_STOP: StatId = StatId(6);
    /// Quit requests taken.
    pub const OPS_QUIT: StatId = StatId(7);
    /// Stats requests taken (including the one being answered).
    pub const OPS_STATS: StatId = StatId(8);
    /// Requests refused with [`ErrorCode::BadBucket`].
    pub const ERRORS_BAD_BUCKET: StatId = StatId(16);
    /// Requests refused with [`ErrorCode::ThreadLimit`].
    pub const ERRORS_THREAD_LIMIT: StatId = StatId(17);
    /// Requests refused with [`ErrorCode::LastWorker`].
    pub const ERRORS_LAST_WORKER: StatId = StatId(18);
    /// Requests refused with [`ErrorCode::ShuttingDown`].
    pub const ERRORS_SHUTTING_DOWN: StatId = StatId(19);
    /// Requests refused with [`ErrorCode::Malformed`].
    pub const ERRORS_MALFORMED: StatId = StatId(20);
    /// Pairs in the table.
    pub const ENTRIES: StatId = StatId(32);
    /// Buckets in the table.
    pub const BUCKETS: StatId = StatId(33);
    /// Pairs in the fullest bucket.
    pub const LONGEST_BUCKET: StatId = StatId(34);
    /// Client slots of the server.
    pub const CLIENT_SLOTS: StatId = StatId(48);
    /// Per slot (`index`): pid of the attached client, 0 when free.
    pub const SLOT_OWNER: StatId = StatId(64);
    /// Per slot (`index`): worker threads serving it.
    pub const SLOT_WORKERS: StatId = StatId(65);
    /// Per slot (`index`): requests taken from it.
    pub const SLOT_REQUESTS: StatId = StatId(66);
    /// Requests timed in the latency window.
    pub const LATENCY_SAMPLES: StatId = StatId(80);
    /// Median service time, nanoseconds.
    pub const LATENCY_P50_NS: StatId = StatId(81);
    /// 99th percentile service time, nanoseconds.
    pub const LATENCY_P99_NS: StatId = StatId(82);
    /// 99.9th percentile service time, nanoseconds.
    pub const LATENCY_P999_NS: StatId = StatId(83);
    /// Longest service time in the window, nanoseconds.
    pub const LATENCY_MAX_NS: StatId = StatId(84);
    /// How far back the latency window reaches, milliseconds.
    pub const LATENCY_WINDOW_MS: StatId = StatId(85);
    /// One request in this many is timed.
    pub const LATENCY_SAMPLE_EVERY: StatId = StatId(86);
    /// Milliseconds since the server started.
    pub const UPTIME_MS: StatId = StatId(96);
}

/// One statistic as it travels in a [`Reply::Stat`] slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stat {
    /// What it is.
    pub id: StatId,
    /// The client slot it is about (per-slot statistics), else 0.
    pub index: u32,
    /// Its value.
    pub value: u64,
}

/// The server's answer to a request (or one part of a Print's or a Stats's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// Done, nothing to report: Insert of a new key, Quit accepted.
    Done,
    /// A value: what Read found, or what Delete removed.
    Value(u64),
    /// The key was not present (Read, Delete).
    NotFound,
    /// Insert replaced this previous value.
    Replaced(u64),
    /// One pair of a Print's bucket.
    Entry {
        /// The key.
        key: u64,
        /// The value.
        value: u64,
    },
    /// End of a Print: the number of `Entry` slots sent before it.
    PrintEnd {
        /// Entries sent.
        count: u64,
    },
    /// ThStart/ThStop done: the client's worker count now.
    Threads(u32),
    /// Refused.
    Error(ErrorCode),
    /// One statistic of a Stats answer.
    Stat(Stat),
    /// End of a Stats answer: the number of `Stat` slots sent before it.
    StatsEnd {
        /// Statistics sent.
        count: u64,
    },
}

/// A response slot: a reply and the id of the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The reply.
    pub reply: Reply,
}

/// Why a slot did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Byte 8 holds no known tag.
    UnknownTag(u8),
    /// Bytes 10..12 hold no known error code.
    UnknownErrorCode(u16),
    /// A Stat slot with stat id 0.
    ZeroStatId,
    /// A field is out of its range (e.g. ThStart with 0 or more than 2³²−1 threads).
    FieldRange,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnknownTag(t) => write!(f, "unknown tag {t}"),
            DecodeError::UnknownErrorCode(c) => write!(f, "unknown error code {c}"),
            DecodeError::ZeroStatId => f.write_str("stat id 0"),
            DecodeError::FieldRange => f.write_str("field out of range"),
        }
    }
}

impl std::error::Error for DecodeError {}

const TAG: usize = 8;
const CODE: usize = 10;
const INDEX: usize = 12;
const A: usize = 16;
const B: usize = 24;

fn put_u64(s: &mut Slot, at: usize, v: u64) {
    s[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(s: &Slot, at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(b)
}

fn slot_of(id: u64, tag: u8, a: u64, b: u64) -> Slot {
    let mut s = [0u8; SLOT_SIZE];
    put_u64(&mut s, 0, id);
    s[TAG] = tag;
    put_u64(&mut s, A, a);
    put_u64(&mut s, B, b);
    s
}

/// Encode a request into a slot.
pub fn encode_request(r: &Request) -> Slot {
    let (tag, a, b) = match r.op {
        Op::Insert { key, value } => (1, key, value),
        Op::Read { key } => (2, key, 0),
        Op::Delete { key } => (3, key, 0),
        Op::Print { bucket } => (4, bucket, 0),
        Op::ThStart { n } => (5, u64::from(n), 0),
        Op::ThStop => (6, 0, 0),
        Op::Quit => (7, 0, 0),
        Op::Stats => (8, 0, 0),
    };
    slot_of(r.id, tag, a, b)
}

/// The id in a request slot, readable even when the rest does not decode (so that a malformed
/// request can still be answered).
pub fn request_id(s: &Slot) -> u64 {
    get_u64(s, 0)
}

/// Decode an untrusted request slot.
pub fn decode_request(s: &Slot) -> Result<Request, DecodeError> {
    let (a, b) = (get_u64(s, A), get_u64(s, B));
    let op = match s[TAG] {
        1 => Op::Insert { key: a, value: b },
        2 => Op::Read { key: a },
        3 => Op::Delete { key: a },
        4 => Op::Print { bucket: a },
        5 => match u32::try_from(a) {
            Ok(n) if n > 0 => Op::ThStart { n },
            _ => return Err(DecodeError::FieldRange),
        },
        6 => Op::ThStop,
        7 => Op::Quit,
        8 => Op::Stats,
        t => return Err(DecodeError::UnknownTag(t)),
    };
    Ok(Request {
        id: get_u64(s, 0),
        op,
    })
}

/// Encode a response into a slot.
pub fn encode_response(r: &Response) -> Slot {
    let mut index = 0u32;
    let (tag, a, b, code) = match r.reply {
        Reply::Done => (1, 0, 0, 0u16),
        Reply::Value(v) => (2, v, 0, 0),
        Reply::NotFound => (3, 0, 0, 0),
        Reply::Replaced(v) => (4, v, 0, 0),
        Reply::Entry { key, value } => (5, key, value, 0),
        Reply::PrintEnd { count } => (6, count, 0, 0),
        Reply::Threads(n) => (7, u64::from(n), 0, 0),
        Reply::Error(e) => match e {
            ErrorCode::BadBucket { bucket, buckets } => (8, bucket, buckets, 1),
            ErrorCode::ThreadLimit { current, max } => (8, u64::from(current), u64::from(max), 2),
            ErrorCode::LastWorker => (8, 0, 0, 3),
            ErrorCode::ShuttingDown => (8, 0, 0, 4),
            ErrorCode::Malformed => (8, 0, 0, 5),
        },
        Reply::Stat(st) => {
            index = st.index;
            (9, st.value, 0, st.id.0)
        }
        Reply::StatsEnd { count } => (10, count, 0, 0),
    };
    let mut s = slot_of(r.id, tag, a, b);
    s[CODE..CODE + 2].copy_from_slice(&code.to_le_bytes());
    s[INDEX..INDEX + 4].copy_from_slice(&index.to_le_bytes());
    s
}

/// Decode an untrusted response slot.
pub fn decode_response(s: &Slot) -> Result<Response, DecodeError> {
    let (a, b) = (get_u64(s, A), get_u64(s, B));
    let small = |v: u64| u32::try_from(v).map_err(|_| DecodeError::FieldRange);
    let reply = match s[TAG] {
        1 => Reply::Done,
        2 => Reply::Value(a),
        3 => Reply::NotFound,
        4 => Reply::Replaced(a),
        5 => Reply::Entry { key: a, value: b },
        6 => Reply::PrintEnd { count: a },
        7 => Reply::Threads(small(a)?),
        8 => {
            let code = u16::from_le_bytes([s[CODE], s[CODE + 1]]);
            Reply::Error(match code {
                1 => ErrorCode::BadBucket {
                    bucket: a,
                    buckets: b,
                },
                2 => ErrorCode::ThreadLimit {
                    current: small(a)?,
                    max: small(b)?,
                },
                3 => ErrorCode::LastWorker,
                4 => ErrorCode::ShuttingDown,
                5 => ErrorCode::Malformed,
                c => return Err(DecodeError::UnknownErrorCode(c)),
            })
        }
        9 => {
            let id = u16::from_le_bytes([s[CODE], s[CODE + 1]]);
            if id == 0 {
                return Err(DecodeError::ZeroStatId);
            }
            let index = u32::from_le_bytes([s[INDEX], s[INDEX + 1], s[INDEX + 2], s[INDEX + 3]]);
            Reply::Stat(Stat {
                id: StatId(id),
                index,
                value: a,
            })
        }
        10 => Reply::StatsEnd { count: a },
        t => return Err(DecodeError::UnknownTag(t)),
    };
    Ok(Response {
        id: get_u64(s, 0),
        reply,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn all_ops() -> Vec<Op> {
        vec![
            Op::Insert {
                key: u64::MAX,
                value: 7,
            },
            Op::Read { key: 0 },
            Op::Delete { key: 42 },
            Op::Print { bucket: 4999 },
            Op::ThStart { n: u32::MAX },
            Op::ThStop,
            Op::Quit,
            Op::Stats,
        ]
    }

    fn all_replies() -> Vec<Reply> {
        vec![
            Reply::Done,
            Reply::Value(9),
            Reply::NotFound,
            Reply::Replaced(u64::MAX),
            Reply::Entry { key: 1, value: 2 },
            Reply::PrintEnd { count: 3 },
            Reply::Threads(u32::MAX),
            Reply::Error(ErrorCode::BadBucket {
                bucket: 10,
                buckets: 5,
            }),
            Reply::Error(ErrorCode::ThreadLimit {
                current: 64,
                max: 64,
            }),
            Reply::Error(ErrorCode::LastWorker),
            Reply::Error(ErrorCode::ShuttingDown),
            Reply::Error(ErrorCode::Malformed),
            Reply::Stat(Stat {
                id: StatId::SLOT_OWNER,
                index: u32::MAX,
                value: u64::MAX,
            }),
            Reply::Stat(Stat {
                id: StatId(u16::MAX),
                index: 0,
                value: 1,
            }),
            Reply::StatsEnd { count: 7 },
        ]
    }

    /// The lists above hold every kind (the tests below would pass vacuously on an empty one).
    #[test]
    fn the_lists_cover_every_kind() {
        use std::collections::HashSet;
        use std::mem::discriminant;
        let ops: HashSet<_> = all_ops().iter().map(discriminant).collect();
        assert_eq!(ops.len(), 8);
        let replies: HashSet<_> = all_replies().iter().map(discriminant).collect();
        assert_eq!(replies.len(), 10);
    }

    #[test]
    fn every_request_round_trips() {
        for (i, op) in all_ops().into_iter().enumerate() {
            let r = Request {
                id: 0xDEAD_BEEF_0000 + i as u64,
                op,
            };
            let s = encode_request(&r);
            assert_eq!(decode_request(&s), Ok(r));
            assert_eq!(request_id(&s), r.id);
        }
    }

    #[test]
    fn every_response_round_trips() {
        for reply in all_replies() {
            let r = Response { id: 77, reply };
            assert_eq!(decode_response(&encode_response(&r)), Ok(r));
        }
    }

    #[test]
    fn u32_keys_travel_as_u64() {
        let k = u32::MAX;
        let r = Request {
            id: 1,
            op: Op::Insert {
                key: u64::from(k),
                value: u64::from(k),
            },
        };
        assert_eq!(decode_request(&encode_request(&r)), Ok(r));
    }

    #[test]
    fn bad_tags_and_fields_are_errors() {
        let mut s = [0u8; SLOT_SIZE];
        assert_eq!(decode_request(&s), Err(DecodeError::UnknownTag(0)));
        s[TAG] = 200;
        assert_eq!(decode_request(&s), Err(DecodeError::UnknownTag(200)));
        assert_eq!(decode_response(&s), Err(DecodeError::UnknownTag(200)));
        s[TAG] = 5; // ThStart with n = 0
        assert_eq!(decode_request(&s), Err(DecodeError::FieldRange));
        put_u64(&mut s, A, u64::from(u32::MAX) + 1);
        assert_eq!(decode_request(&s), Err(DecodeError::FieldRange));
        let mut r = [0u8; SLOT_SIZE];
        r[TAG] = 8;
        r[CODE] = 99;
        assert_eq!(decode_response(&r), Err(DecodeError::UnknownErrorCode(99)));
        r[TAG] = 7;
        put_u64(&mut r, A, u64::MAX);
        assert_eq!(decode_response(&r), Err(DecodeError::FieldRange));
    }

    #[test]
    fn stat_slots_lay_out_as_documented_and_id_zero_is_refused() {
        let s = encode_response(&Response {
            id: 3,
            reply: Reply::Stat(Stat {
                id: StatId::SLOT_WORKERS,
                index: 0x0102_0304,
                value: 0x1122_3344_5566_7788,
            }),
        });
        assert_eq!(s[TAG], 9);
        assert_eq!(u16::from_le_bytes([s[CODE], s[CODE + 1]]), 65);
        assert_eq!(s[INDEX..INDEX + 4], [4, 3, 2, 1]);
        assert_eq!(get_u64(&s, A), 0x1122_3344_5566_7788);
        assert_eq!(get_u64(&s, B), 0);
        let mut z = s;
        z[CODE..CODE + 2].copy_from_slice(&[0, 0]);
        assert_eq!(decode_response(&z), Err(DecodeError::ZeroStatId));
        // The index bytes mean nothing in other replies: ignored on decode, zero on encode.
        let mut d = encode_response(&Response {
            id: 4,
            reply: Reply::StatsEnd { count: 2 },
        });
        assert_eq!(d[INDEX..INDEX + 4], [0, 0, 0, 0]);
        d[INDEX] = 0xFF;
        assert_eq!(
            decode_response(&d),
            Ok(Response {
                id: 4,
                reply: Reply::StatsEnd { count: 2 }
            })
        );
    }

    #[test]
    fn reserved_bytes_are_ignored() {
        let r = Request {
            id: 5,
            op: Op::Read { key: 6 },
        };
        let mut s = encode_request(&r);
        s[9] = 0xFF;
        s[12] = 0xFF;
        put_u64(&mut s, B, 12345);
        assert_eq!(decode_request(&s), Ok(r));
    }
}
