//! The [`VERBS`] and [`REPLIES`] tables: every operation's tag, name, argument [`Shape`] and
//! statistics, and every reply kind's tag, name and flags.

#[cfg(doc)] // Names the item docs link to.
use super::Reply;
use super::{FLAG_ABSENT, FLAG_MORE, StatId};

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
