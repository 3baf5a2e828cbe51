//! The wire protocol: requests and responses with byte-string keys and values, each carried as
//! ONE payload of a [`crate::record`] ring (at most its `max_payload` bytes).
//!
//! Every operation is defined once, in the [`VERBS`] table (wire tag, command-line name,
//! argument [`Shape`], statistics name and id, the replies it may get, a one-line summary);
//! the replies likewise in [`REPLIES`]. The codec, and later the command-line parser, the
//! renderer and the statistics counters, take tags and names from these tables.
//!
//! # Message layout (little endian)
//!
//! A request and a response have the same 12-byte header, then a body: the fields of the tag,
//! in the order the tables below list them, and nothing after them.
//!
//! | bytes  | request                          | response                              |
//! |--------|----------------------------------|---------------------------------------|
//! | 0..8   | request id (chosen by the client) | id of the request it answers         |
//! | 8      | verb tag ([`VERBS`])             | reply tag ([`REPLIES`])               |
//! | 9      | flags: bit 0 [`FLAG_ABSENT`]      | flags: bit 0 [`FLAG_ABSENT`], bit 1 [`FLAG_MORE`] |
//! | 10..12 | reserved, must be 0              | reserved, must be 0                   |
//! | 12..   | body                             | body                                  |
//!
//! A flag bit that the tag does not allow is an error (so is any bit above bit 1).
//!
//! Fields:
//!
//! | field | bytes |
//! |-------|-------|
//! | key   | `u32` length `L`, `1 ≤ L ≤ max_key`, then `L` bytes |
//! | value | `u32` length `L`, `L ≤ max_value`, then `L` bytes |
//! | `u16`, `u32`, `u64`, `i64` | 2, 4, 8, 8 bytes (`i64` in two's complement) |
//! | list of `T` | `u32` count `n`, then `n` times `T` |
//! | stat  | `u16` stat id (not 0), `u32` index, `u64` value: 14 bytes ([`Stat`]) |
//!
//! `max_key` and `max_value` are the [`Limits`] the server announces; the decoders take them
//! as a parameter.
//!
//! Requests (the argument shapes are those of [`Shape`]):
//!
//! | tag | verb | body | flags |
//! |----:|------|------|-------|
//! | 1  | `insert`        | key, value | |
//! | 2  | `read`          | key | |
//! | 3  | `delete`        | key | |
//! | 4  | `print`         | bucket `u64` | |
//! | 5  | `threads start` | n `u32` (at least 1) | |
//! | 6  | `threads stop`  | (none) | |
//! | 7  | `quit`          | (none) | |
//! | 8  | `stats`         | (none) | |
//! | 9  | `insert-new`    | key, value | |
//! | 10 | `cas`           | key, expected (a value), new (a value) | ABSENT: expect the key to be absent; expected is then empty |
//! | 11 | `add`           | key, delta `i64` | |
//! | 12 | `len`           | (none) | |
//! | 13 | `scan`          | cursor `u64`, count `u32` (at least 1) | |
//!
//! Tags 1 to 8 are those of the first protocol's (u64) operations, so that a verb's operation
//! statistic keeps its id (`StatId(tag)`, see [`VerbInfo::stat_id`]).
//!
//! Responses:
//!
//! | tag | reply | body | flags | answers |
//! |----:|-------|------|-------|---------|
//! | 1  | `Created`  | (none) | | insert, insert-new |
//! | 2  | `Replaced` | old value | | insert |
//! | 3  | `Value`    | value | | read |
//! | 4  | `NotFound` | (none) | | read, delete |
//! | 5  | `Deleted`  | old value | | delete |
//! | 6  | `Exists`   | current value | | insert-new |
//! | 7  | `Swapped`  | (none) | | cas |
//! | 8  | `Mismatch` | current value | ABSENT: the key is absent; the value is then empty | cas |
//! | 9  | `Number`   | `i64` | | add |
//! | 10 | `Count`    | `u64` | | len |
//! | 11 | `Keys`     | next cursor `u64` (0: done), list of key | MORE | scan |
//! | 12 | `Entries`  | list of (key, value) | MORE | print |
//! | 13 | `Threads`  | `u32` | | threads start, threads stop |
//! | 14 | `Stats`    | list of stat | MORE | stats |
//! | 15 | `Done`     | (none) | | quit |
//! | 16 | `Error`    | `u16` code, then its details (below) | | any |
//!
//! **Long answers.** A `Keys`, `Entries` or `Stats` reply with [`FLAG_MORE`] is one part of
//! an answer that continues in the next response with the same id; the last part has the flag
//! clear. The server splits a list that does not fit in one record into parts (each holding
//! at least one item; a part may be empty only when the whole answer is); the client
//! concatenates the lists. Every part of a `Keys` answer carries the same next cursor. Every
//! other answer is exactly one response. An answer that is refused is one `Error` response.
//!
//! Error codes (codes 1 to 5 are those of the first protocol, so that the refusal statistic
//! keeps its id, `StatId(15 + code)`, see [`ErrorCode::stat_id`]):
//!
//! | code | error | details |
//! |-----:|-------|---------|
//! | 1 | `BadBucket`    | bucket `u64`, buckets `u64` |
//! | 2 | `ThreadLimit`  | current `u32`, max `u32` |
//! | 3 | `LastWorker`   | (none) |
//! | 4 | `ShuttingDown` | (none) |
//! | 5 | `Malformed`    | (none) |
//! | 6 | `TooLarge`     | what `u8` (1 key, 2 value), len `u64`, max `u32` |
//! | 7 | `OutOfMemory`  | (none) |
//! | 8 | `NotAnInteger` | (none) |
//! | 9 | `Overflow`     | (none) |
//!
//! # Statistics
//!
//! A `Stats` part carries a list of [`Stat`]s, each one number: what it is ([`StatId`], a
//! `u16`), which client slot it is about (`index`, for the per-slot statistics; 0 otherwise)
//! and its value. The server takes the whole set at one moment (after every earlier request of
//! the asking client has been answered) and sends it in this order; [`crate::stats::Stats`]
//! is the typed form.
//!
//! | id | name | index | value |
//! |---:|------|-------|-------|
//! | 1–13 | one per verb, id = the verb's tag ([`VerbInfo::stat_id`]) | 0 | requests of that verb taken since the server started, from every client |
//! | 16–24 | one per error code, id = 15 + code ([`ErrorCode::stat_id`]) | 0 | requests refused with that error |
//! | 32 | `ENTRIES` | 0 | pairs in the table |
//! | 33 | `BUCKETS` | 0 | buckets in the table |
//! | 34 | `LONGEST_BUCKET` | 0 | pairs in the fullest bucket |
//! | 35 | `MEMORY_USED` | 0 | bytes the table holds, as accounted |
//! | 36 | `MEMORY_LIMIT` | 0 | the table's memory budget |
//! | 37 | `MAX_KEY` | 0 | the longest key accepted |
//! | 38 | `MAX_VALUE` | 0 | the longest value accepted |
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
//! # Decoding
//!
//! [`decode_request`] and [`decode_response`] take untrusted bytes (a copy of a record that a
//! peer may have filled with anything) and return a `Result`; they never panic. Decoding is
//! strict, so that every message has exactly one encoding: an unknown tag, code or field kind,
//! a flag the tag does not allow, a non-zero reserved byte, a length or count that runs past
//! the end of the input, a key or value longer than the limit ([`WireError::TooLarge`],
//! checked before anything is copied), an empty key, an ABSENT flag with a non-empty value,
//! a count of 0 where at least 1 is required, a stat id of 0, and any byte after the body are
//! all errors. A list's count is checked against the bytes left before anything is allocated,
//! so a decoder never allocates more than a small multiple of its input's length. Hence a
//! message that decodes re-encodes to exactly its input.
//!
//! A request that does not decode is still answered (with [`ErrorCode::Malformed`], or
//! [`ErrorCode::TooLarge`], see [`WireError::reply_code`]) under the id [`request_id`] reads.

// ---------------------------------------------------------------------------------------------
// Layout constants.
// ---------------------------------------------------------------------------------------------

/// Bytes of the header every request and response starts with.
pub const HEADER_LEN: usize = 12;
/// Flag bit (byte 9): in a `cas` request, expect the key to be absent; in a `Mismatch` reply,
/// the key is absent. The value field is then empty.
pub const FLAG_ABSENT: u8 = 0x01;
/// Flag bit (byte 9) of a `Keys`, `Entries` or `Stats` reply: more parts of this answer follow.
pub const FLAG_MORE: u8 = 0x02;

/// Bytes the shortest key takes in a list (length prefix and one byte).
const MIN_KEY_ITEM: usize = 4 + 1;
/// Bytes the smallest (key, value) pair of an `Entries` list takes.
const MIN_ENTRY_ITEM: usize = MIN_KEY_ITEM + 4;
/// Bytes a stat takes.
const STAT_ITEM: usize = 2 + 4 + 8;

// ---------------------------------------------------------------------------------------------
// Statistics items.
// ---------------------------------------------------------------------------------------------

/// Which statistic a [`Stat`] is. Any value but 0 decodes; the constants are the ids this
/// version knows. An operation's counter is `StatId(tag)` ([`VerbInfo::stat_id`]), a refusal
/// counter `StatId(15 + code)` ([`ErrorCode::stat_id`]).
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
    /// Requests refused with `BadBucket`.
    pub const ERRORS_BAD_BUCKET: StatId = StatId(16);
    /// Requests refused with `ThreadLimit`.
    pub const ERRORS_THREAD_LIMIT: StatId = StatId(17);
    /// Requests refused with `LastWorker`.
    pub const ERRORS_LAST_WORKER: StatId = StatId(18);
    /// Requests refused with `ShuttingDown`.
    pub const ERRORS_SHUTTING_DOWN: StatId = StatId(19);
    /// Requests refused with `Malformed`.
    pub const ERRORS_MALFORMED: StatId = StatId(20);
    /// Pairs in the table.
    pub const ENTRIES: StatId = StatId(32);
    /// Buckets in the table.
    pub const BUCKETS: StatId = StatId(33);
    /// Pairs in the fullest bucket.
    pub const LONGEST_BUCKET: StatId = StatId(34);
    /// Bytes the table holds, as the server accounts them (keys, values, per-entry overhead).
    pub const MEMORY_USED: StatId = StatId(35);
    /// The server's memory budget for the table (`--max-memory`).
    pub const MEMORY_LIMIT: StatId = StatId(36);
    /// The longest key the server accepts.
    pub const MAX_KEY: StatId = StatId(37);
    /// The longest value the server accepts.
    pub const MAX_VALUE: StatId = StatId(38);
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

/// One statistic as it travels in a [`Reply::Stats`] part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stat {
    /// What it is.
    pub id: StatId,
    /// The client slot it is about (per-slot statistics), else 0.
    pub index: u32,
    /// Its value.
    pub value: u64,
}

// ---------------------------------------------------------------------------------------------
// Limits.
// ---------------------------------------------------------------------------------------------

/// The largest key and value, announced by the server and passed to the decoders, which refuse
/// a longer field with [`WireError::TooLarge`] before copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest key in bytes (keys are `1..=max_key` bytes).
    pub max_key: u32,
    /// Largest value in bytes (values are `0..=max_value` bytes).
    pub max_value: u32,
}

impl Limits {
    /// No limit but the `u32` length prefix (for tests and tools that read what a peer wrote).
    pub const UNLIMITED: Limits = Limits {
        max_key: u32::MAX,
        max_value: u32::MAX,
    };

    /// The length of the longest request these limits allow: a `cas` with the longest key and
    /// two longest values.
    pub const fn max_request_len(&self) -> u64 {
        HEADER_LEN as u64 + 3 * 4 + self.max_key as u64 + 2 * self.max_value as u64
    }

    /// The length of the longest response these limits allow whose lists (if any) hold one
    /// item: an `Entries` part with the longest key and value, a `Keys` part with the longest
    /// key, a reply with the longest value, or (with tiny limits) a `BadBucket` error. A
    /// server whose records carry this many bytes can send every answer (it splits longer
    /// lists, see the [module](self) docs).
    pub const fn max_response_len(&self) -> u64 {
        let k = self.max_key as u64;
        let v = self.max_value as u64;
        let entries = 4 + 4 + k + 4 + v;
        let keys = 8 + 4 + 4 + k;
        let value = 4 + v;
        // The longest body without a key or value: a BadBucket error (2 + 16), or a Stats part
        // with one stat (4 + 14).
        let fixed = 18;
        let mut m = entries;
        if keys > m {
            m = keys;
        }
        if value > m {
            m = value;
        }
        if fixed > m {
            m = fixed;
        }
        HEADER_LEN as u64 + m
    }

    /// Whether every request and every (part of an) answer fits in a record of `max_payload`
    /// bytes ([`crate::record::max_payload`]).
    pub const fn fit(&self, max_payload: usize) -> bool {
        let p = max_payload as u64;
        self.max_request_len() <= p && self.max_response_len() <= p
    }
}

// ---------------------------------------------------------------------------------------------
// The verb table.
// ---------------------------------------------------------------------------------------------

/// An operation a client asks of the server. [`VERBS`] holds each verb's wire tag, name, shape
/// and statistics; `VERBS[v as usize].verb == v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// Create or replace a key's value.
    Insert,
    /// Read a key's value.
    Read,
    /// Delete a key.
    Delete,
    /// Create a key only if it is absent (Redis `SET NX`).
    InsertNew,
    /// Compare and swap a key's value (or its absence).
    Cas,
    /// Add to a key's value read as a decimal integer (Redis `INCRBY`).
    Add,
    /// Count the keys.
    Len,
    /// A page of keys, by bucket cursor (Redis `SCAN`).
    Scan,
    /// The pairs of one bucket.
    Print,
    /// Start more server worker threads for this client.
    ThreadsStart,
    /// Stop one of this client's server worker threads.
    ThreadsStop,
    /// The server's statistics.
    Stats,
    /// Shut the server down.
    Quit,
}

/// What a verb takes as arguments, in order (on the command line and in the request body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Nothing.
    None,
    /// A key.
    Key,
    /// A key and a value.
    KeyValue,
    /// A key, the expected value (or "absent"), the new value.
    KeyExpectedNew,
    /// A key and a signed 64-bit delta.
    KeyDelta,
    /// A `u64` cursor and a `u32` count (at least 1).
    CursorCount,
    /// A `u64` bucket index.
    Bucket,
    /// A `u32` count (at least 1).
    Count,
}

/// The type of one argument, and so its wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// A key: `u32` length (1 to `max_key`) and bytes.
    Key,
    /// A value: `u32` length (0 to `max_value`) and bytes.
    Value,
    /// A value or "absent" ([`FLAG_ABSENT`] with an empty value).
    Expected,
    /// A `u64`, 8 bytes.
    U64,
    /// An `i64`, 8 bytes.
    I64,
    /// A `u32` of at least 1, 4 bytes.
    PositiveU32,
}

impl ArgKind {
    /// Bytes the argument takes in a body when its byte string (if any) is `len` bytes long.
    pub const fn wire_len(self, len: usize) -> usize {
        match self {
            ArgKind::Key | ArgKind::Value | ArgKind::Expected => 4 + len,
            ArgKind::U64 | ArgKind::I64 => 8,
            ArgKind::PositiveU32 => 4,
        }
    }
}

/// One argument of a [`Shape`]: its name (as a command-line usage would show it) and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arg {
    /// The name, e.g. `"key"`.
    pub name: &'static str,
    /// The kind.
    pub kind: ArgKind,
}

const KEY: Arg = Arg {
    name: "key",
    kind: ArgKind::Key,
};
const VALUE: Arg = Arg {
    name: "value",
    kind: ArgKind::Value,
};

impl Shape {
    /// The arguments, in command-line and wire order.
    pub const fn args(self) -> &'static [Arg] {
        match self {
            Shape::None => &[],
            Shape::Key => &[KEY],
            Shape::KeyValue => &[KEY, VALUE],
            Shape::KeyExpectedNew => &[
                KEY,
                Arg {
                    name: "expected",
                    kind: ArgKind::Expected,
                },
                Arg {
                    name: "new",
                    kind: ArgKind::Value,
                },
            ],
            Shape::KeyDelta => &[
                KEY,
                Arg {
                    name: "delta",
                    kind: ArgKind::I64,
                },
            ],
            Shape::CursorCount => &[
                Arg {
                    name: "cursor",
                    kind: ArgKind::U64,
                },
                Arg {
                    name: "count",
                    kind: ArgKind::PositiveU32,
                },
            ],
            Shape::Bucket => &[Arg {
                name: "bucket",
                kind: ArgKind::U64,
            }],
            Shape::Count => &[Arg {
                name: "n",
                kind: ArgKind::PositiveU32,
            }],
        }
    }
}

/// Everything about one verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerbInfo {
    /// The verb.
    pub verb: Verb,
    /// Its tag on the wire (byte 8 of a request).
    pub tag: u8,
    /// Its command-line name (one or two words, e.g. `"insert-new"`, `"threads start"`).
    pub name: &'static str,
    /// Its arguments.
    pub shape: Shape,
    /// Its stable statistics name (a JSON key, e.g. `"threads_start"`).
    pub stat_name: &'static str,
    /// The id of the statistic counting its requests: `StatId(tag)` (the `OPS_*` ids for tags
    /// 1 to 8).
    pub stat_id: StatId,
    /// The replies that answer it (besides `Error`, which may answer any verb).
    pub replies: &'static [ReplyKind],
    /// One line for a command-line help.
    pub summary: &'static str,
}

const fn verb(
    verb: Verb,
    tag: u8,
    name: &'static str,
    shape: Shape,
    stat_name: &'static str,
    replies: &'static [ReplyKind],
    summary: &'static str,
) -> VerbInfo {
    VerbInfo {
        verb,
        tag,
        name,
        shape,
        stat_name,
        stat_id: StatId(tag as u16),
        replies,
        summary,
    }
}

/// Every verb, in the order of [`Verb`]'s variants (`VERBS[v as usize].verb == v`).
#[rustfmt::skip]
pub const VERBS: [VerbInfo; 13] = {
    use ReplyKind as R;
    [
        verb(Verb::Insert, 1, "insert", Shape::KeyValue, "insert",
            &[R::Created, R::Replaced], "create or replace"),
        verb(Verb::Read, 2, "read", Shape::Key, "read",
            &[R::Value, R::NotFound], "read"),
        verb(Verb::Delete, 3, "delete", Shape::Key, "delete",
            &[R::Deleted, R::NotFound], "delete"),
        verb(Verb::InsertNew, 9, "insert-new", Shape::KeyValue, "insert_new",
            &[R::Created, R::Exists], "create only if absent"),
        verb(Verb::Cas, 10, "cas", Shape::KeyExpectedNew, "cas",
            &[R::Swapped, R::Mismatch], "replace if the value (or absence) is as expected"),
        verb(Verb::Add, 11, "add", Shape::KeyDelta, "add",
            &[R::Number], "add to a decimal integer value (missing: 0)"),
        verb(Verb::Len, 12, "len", Shape::None, "len",
            &[R::Count], "count the keys"),
        verb(Verb::Scan, 13, "scan", Shape::CursorCount, "scan",
            &[R::Keys], "a page of keys from a cursor (0 starts, 0 ends)"),
        verb(Verb::Print, 4, "print", Shape::Bucket, "print",
            &[R::Entries], "list a bucket's pairs"),
        verb(Verb::ThreadsStart, 5, "threads start", Shape::Count, "threads_start",
            &[R::Threads], "n more server worker threads"),
        verb(Verb::ThreadsStop, 6, "threads stop", Shape::None, "threads_stop",
            &[R::Threads], "one fewer (never the last)"),
        verb(Verb::Stats, 8, "stats", Shape::None, "stats",
            &[R::Stats], "the server's statistics"),
        verb(Verb::Quit, 7, "quit", Shape::None, "quit",
            &[R::Done], "shut the server down"),
    ]
};

/// `tag → verb`, built from [`VERBS`] at compile time.
const VERB_OF_TAG: [Option<Verb>; 256] = {
    let mut t = [None; 256];
    let mut i = 0;
    while i < VERBS.len() {
        // Each verb in its place, each tag once, tag 0 unused.
        assert!(VERBS[i].verb as usize == i);
        assert!(VERBS[i].tag != 0);
        assert!(t[VERBS[i].tag as usize].is_none());
        t[VERBS[i].tag as usize] = Some(VERBS[i].verb);
        i += 1;
    }
    t
};

impl Verb {
    /// Every verb, in table order.
    pub const ALL: [Verb; 13] = {
        let mut a = [Verb::Insert; 13];
        let mut i = 0;
        while i < VERBS.len() {
            a[i] = VERBS[i].verb;
            i += 1;
        }
        a
    };

    /// The verb's row of [`VERBS`].
    pub const fn info(self) -> &'static VerbInfo {
        &VERBS[self as usize]
    }

    /// The verb's position in [`VERBS`] (for arrays of per-verb counters).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The verb with wire tag `tag`.
    pub const fn from_tag(tag: u8) -> Option<Verb> {
        VERB_OF_TAG[tag as usize]
    }

    /// The verb with command-line name `name` (exactly as in [`VerbInfo::name`]; a two-word
    /// name with one space).
    pub fn from_name(name: &str) -> Option<Verb> {
        VERBS.iter().find(|v| v.name == name).map(|v| v.verb)
    }
}

/// The kind of a [`Reply`], without its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplyKind {
    /// [`Reply::Created`].
    Created,
    /// [`Reply::Replaced`].
    Replaced,
    /// [`Reply::Value`].
    Value,
    /// [`Reply::NotFound`].
    NotFound,
    /// [`Reply::Deleted`].
    Deleted,
    /// [`Reply::Exists`].
    Exists,
    /// [`Reply::Swapped`].
    Swapped,
    /// [`Reply::Mismatch`].
    Mismatch,
    /// [`Reply::Number`].
    Number,
    /// [`Reply::Count`].
    Count,
    /// [`Reply::Keys`].
    Keys,
    /// [`Reply::Entries`].
    Entries,
    /// [`Reply::Threads`].
    Threads,
    /// [`Reply::Stats`].
    Stats,
    /// [`Reply::Done`].
    Done,
    /// [`Reply::Error`].
    Error,
}

/// Everything about one reply kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyInfo {
    /// The kind.
    pub kind: ReplyKind,
    /// Its tag on the wire (byte 8 of a response).
    pub tag: u8,
    /// Its name (lower case, for rendering and JSON).
    pub name: &'static str,
    /// The flags it may carry.
    pub flags: u8,
}

const fn reply(kind: ReplyKind, tag: u8, name: &'static str, flags: u8) -> ReplyInfo {
    ReplyInfo {
        kind,
        tag,
        name,
        flags,
    }
}

/// Every reply kind, in the order of [`ReplyKind`]'s variants.
pub const REPLIES: [ReplyInfo; 16] = {
    use ReplyKind as R;
    [
        reply(R::Created, 1, "created", 0),
        reply(R::Replaced, 2, "replaced", 0),
        reply(R::Value, 3, "value", 0),
        reply(R::NotFound, 4, "not found", 0),
        reply(R::Deleted, 5, "deleted", 0),
        reply(R::Exists, 6, "exists", 0),
        reply(R::Swapped, 7, "swapped", 0),
        reply(R::Mismatch, 8, "mismatch", FLAG_ABSENT),
        reply(R::Number, 9, "number", 0),
        reply(R::Count, 10, "count", 0),
        reply(R::Keys, 11, "keys", FLAG_MORE),
        reply(R::Entries, 12, "entries", FLAG_MORE),
        reply(R::Threads, 13, "threads", 0),
        reply(R::Stats, 14, "stats", FLAG_MORE),
        reply(R::Done, 15, "done", 0),
        reply(R::Error, 16, "error", 0),
    ]
};

const REPLY_OF_TAG: [Option<ReplyKind>; 256] = {
    let mut t = [None; 256];
    let mut i = 0;
    while i < REPLIES.len() {
        assert!(REPLIES[i].kind as usize == i);
        assert!(REPLIES[i].tag != 0);
        assert!(t[REPLIES[i].tag as usize].is_none());
        t[REPLIES[i].tag as usize] = Some(REPLIES[i].kind);
        i += 1;
    }
    t
};

impl ReplyKind {
    /// The kind's row of [`REPLIES`].
    pub const fn info(self) -> &'static ReplyInfo {
        &REPLIES[self as usize]
    }

    /// The reply kind with wire tag `tag`.
    pub const fn from_tag(tag: u8) -> Option<ReplyKind> {
        REPLY_OF_TAG[tag as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.
// ---------------------------------------------------------------------------------------------

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

impl OpView<'_> {
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

/// Which field a [`ErrorCode::TooLarge`] or a [`WireError::TooLarge`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// A key (wire 1).
    Key,
    /// A value (wire 2).
    Value,
}

impl Field {
    const fn wire(self) -> u8 {
        match self {
            Field::Key => 1,
            Field::Value => 2,
        }
    }

    const fn from_wire(b: u8) -> Option<Field> {
        match b {
            1 => Some(Field::Key),
            2 => Some(Field::Value),
            _ => None,
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Key => "key",
            Field::Value => "value",
        })
    }
}

/// Why the server refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Print of a bucket index that does not exist (code 1).
    BadBucket {
        /// The index asked for.
        bucket: u64,
        /// How many buckets the table has.
        buckets: u64,
    },
    /// ThreadsStart would exceed the per-client worker limit (code 2).
    ThreadLimit {
        /// Workers the client has now.
        current: u32,
        /// The limit.
        max: u32,
    },
    /// ThreadsStop of the client's last worker (code 3).
    LastWorker,
    /// The server is shutting down and did not execute the request (code 4).
    ShuttingDown,
    /// The request did not decode (code 5).
    Malformed,
    /// A key or value is longer than the server's limit (code 6).
    TooLarge {
        /// Which field.
        what: Field,
        /// Its length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The server could not allocate memory for the request (code 7); nothing changed.
    OutOfMemory,
    /// `add` on a value that is not a decimal integer (code 8); nothing changed.
    NotAnInteger,
    /// `add` whose result does not fit an `i64` (code 9); nothing changed.
    Overflow,
}

/// Error codes there are (1 to this).
pub const ERROR_CODES: usize = 9;

/// Each error code's statistics name (a JSON key), by code − 1.
pub const ERROR_NAMES: [&str; ERROR_CODES] = [
    "bad_bucket",
    "thread_limit",
    "last_worker",
    "shutting_down",
    "malformed",
    "too_large",
    "out_of_memory",
    "not_an_integer",
    "overflow",
];

impl ErrorCode {
    /// The code on the wire.
    pub const fn code(&self) -> u16 {
        match self {
            ErrorCode::BadBucket { .. } => 1,
            ErrorCode::ThreadLimit { .. } => 2,
            ErrorCode::LastWorker => 3,
            ErrorCode::ShuttingDown => 4,
            ErrorCode::Malformed => 5,
            ErrorCode::TooLarge { .. } => 6,
            ErrorCode::OutOfMemory => 7,
            ErrorCode::NotAnInteger => 8,
            ErrorCode::Overflow => 9,
        }
    }

    /// The id of the statistic counting refusals with this code: `StatId(15 + code)`, the
    /// `ERRORS_*` ids for codes 1 to 5.
    pub const fn stat_id(&self) -> StatId {
        StatId(15 + self.code())
    }
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
            ErrorCode::TooLarge { what, len, max } => write!(
                f,
                "{what} of {len} bytes is longer than the server's limit of {max} bytes"
            ),
            ErrorCode::OutOfMemory => f.write_str("out of memory (the server's --max-memory)"),
            ErrorCode::NotAnInteger => f.write_str("the value is not a decimal 64-bit integer"),
            ErrorCode::Overflow => f.write_str("the result would overflow a 64-bit integer"),
        }
    }
}

/// The server's answer to a request, or one part of a long answer (`more: true`, see the
/// [module](self) docs).
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
/// bytes (see "Long answers" in the [module](self) docs): `fixed` is the bytes a part takes
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

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// Why bytes did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// Fewer than [`HEADER_LEN`] bytes.
    ShortHeader {
        /// Bytes given.
        len: usize,
    },
    /// Byte 8 holds no known tag.
    UnknownTag(u8),
    /// Bytes 10..12 are not zero.
    Reserved(u16),
    /// Byte 9 has a bit set that the tag does not allow.
    BadFlags {
        /// The tag.
        tag: u8,
        /// The flags byte.
        flags: u8,
    },
    /// A field (a number, a length prefix, the bytes a length announces, or the items a count
    /// announces) runs past the end of the input.
    Truncated {
        /// Offset where the missing bytes start.
        at: usize,
        /// Bytes needed from there.
        need: u64,
        /// Bytes left from there.
        have: usize,
    },
    /// A key or value is longer than the limit (refused before it is copied).
    TooLarge {
        /// Which field.
        what: Field,
        /// Its length prefix.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A key of length 0.
    EmptyKey,
    /// [`FLAG_ABSENT`] with a non-empty value (a `cas` expecting both "absent" and a value, or a
    /// `Mismatch` finding both).
    AbsentWithValue {
        /// The value's length prefix.
        len: u32,
    },
    /// A count that must be at least 1 is 0 (`threads start`, `scan`).
    ZeroCount,
    /// A stat id of 0.
    ZeroStatId,
    /// An error code this version does not know.
    UnknownErrorCode(u16),
    /// A [`ErrorCode::TooLarge`] field kind this version does not know.
    UnknownField(u8),
    /// Bytes after the body.
    TrailingBytes {
        /// Where the body ended.
        at: usize,
        /// Bytes after it.
        extra: usize,
    },
}

impl WireError {
    /// The error a server answers a request that failed to decode with this error:
    /// [`ErrorCode::TooLarge`] for a field over the limit, else [`ErrorCode::Malformed`].
    pub const fn reply_code(&self) -> ErrorCode {
        match *self {
            WireError::TooLarge { what, len, max } => ErrorCode::TooLarge {
                what,
                len: len as u64,
                max,
            },
            _ => ErrorCode::Malformed,
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::ShortHeader { len } => {
                write!(f, "{len} bytes: shorter than the {HEADER_LEN}-byte header")
            }
            WireError::UnknownTag(t) => write!(f, "unknown tag {t}"),
            WireError::Reserved(r) => write!(f, "reserved bytes 10..12 hold {r:#06x}, not 0"),
            WireError::BadFlags { tag, flags } => {
                write!(f, "flags {flags:#04x} not allowed with tag {tag}")
            }
            WireError::Truncated { at, need, have } => write!(
                f,
                "truncated: {need} bytes needed at offset {at}, {have} left"
            ),
            WireError::TooLarge { what, len, max } => {
                write!(f, "{what} of {len} bytes is longer than the limit of {max}")
            }
            WireError::EmptyKey => f.write_str("empty key"),
            WireError::AbsentWithValue { len } => {
                write!(f, "flagged absent but carries a value of {len} bytes")
            }
            WireError::ZeroCount => f.write_str("count 0 where at least 1 is required"),
            WireError::ZeroStatId => f.write_str("stat id 0"),
            WireError::UnknownErrorCode(c) => write!(f, "unknown error code {c}"),
            WireError::UnknownField(b) => write!(f, "unknown field kind {b}"),
            WireError::TrailingBytes { at, extra } => {
                write!(
                    f,
                    "{extra} bytes after the end of the message at offset {at}"
                )
            }
        }
    }
}

impl std::error::Error for WireError {}

// ---------------------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------------------

fn put_len(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("a field or list longer than u32::MAX cannot be encoded");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_header(out: &mut Vec<u8>, id: u64, tag: u8, flags: u8) {
    out.extend_from_slice(&id.to_le_bytes());
    out.push(tag);
    out.push(flags);
    out.extend_from_slice(&[0, 0]);
}

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

/// Reads an untrusted message front to back; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let have = self.left();
        if n > have {
            return Err(WireError::Truncated {
                at: self.pos,
                need: n as u64,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        self.array().map(i64::from_le_bytes)
    }

    fn positive_u32(&mut self) -> Result<u32, WireError> {
        match self.u32()? {
            0 => Err(WireError::ZeroCount),
            n => Ok(n),
        }
    }

    /// The bytes of a field whose length prefix `len` has been read: checked against the limit
    /// first, then against the input.
    fn field(&mut self, what: Field, len: u32, max: u32) -> Result<&'a [u8], WireError> {
        if len > max {
            return Err(WireError::TooLarge { what, len, max });
        }
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(n)
    }

    fn key_view(&mut self, l: &Limits) -> Result<&'a [u8], WireError> {
        let len = self.u32()?;
        if len == 0 {
            return Err(WireError::EmptyKey);
        }
        self.field(Field::Key, len, l.max_key)
    }

    fn value_view(&mut self, l: &Limits) -> Result<&'a [u8], WireError> {
        let len = self.u32()?;
        self.field(Field::Value, len, l.max_value)
    }

    fn key(&mut self, l: &Limits) -> Result<Vec<u8>, WireError> {
        self.key_view(l).map(<[u8]>::to_vec)
    }

    fn value(&mut self, l: &Limits) -> Result<Vec<u8>, WireError> {
        self.value_view(l).map(<[u8]>::to_vec)
    }

    /// A value, or `None` when `absent` (the field must then be empty).
    fn maybe_value_view(
        &mut self,
        absent: bool,
        l: &Limits,
    ) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.u32()?;
        if absent {
            return match len {
                0 => Ok(None),
                len => Err(WireError::AbsentWithValue { len }),
            };
        }
        self.field(Field::Value, len, l.max_value).map(Some)
    }

    fn maybe_value(&mut self, absent: bool, l: &Limits) -> Result<Option<Vec<u8>>, WireError> {
        Ok(self.maybe_value_view(absent, l)?.map(<[u8]>::to_vec))
    }

    /// A list count, checked against the bytes left (each item takes at least `min_item`) so
    /// that no more is reserved than the input can fill.
    fn count(&mut self, min_item: usize) -> Result<usize, WireError> {
        let at = self.pos;
        let n = self.u32()?;
        let need = u64::from(n) * min_item as u64;
        if need > self.left() as u64 {
            return Err(WireError::Truncated {
                at: at + 4,
                need,
                have: self.left(),
            });
        }
        Ok(n as usize)
    }

    fn finish(self) -> Result<(), WireError> {
        match self.left() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes {
                at: self.pos,
                extra,
            }),
        }
    }
}

/// The header's id, tag and flags, and a reader at the start of the body.
fn header(buf: &[u8]) -> Result<(u64, u8, u8, Reader<'_>), WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::ShortHeader { len: buf.len() });
    }
    let mut r = Reader { buf, pos: 0 };
    let id = r.u64()?;
    let tag = r.u8()?;
    let flags = r.u8()?;
    let reserved = r.u16()?;
    if reserved != 0 {
        return Err(WireError::Reserved(reserved));
    }
    Ok((id, tag, flags, r))
}

/// The id in an encoded request, readable whatever the rest holds (so that a request that does
/// not decode can be answered): bytes 0..8, little endian, zero-padded when there are fewer.
pub fn request_id(buf: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = buf.len().min(8);
    b[..n].copy_from_slice(&buf[..n]);
    u64::from_le_bytes(b)
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

#[cfg(all(test, not(loom)))]
mod tests;
