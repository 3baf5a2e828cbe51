//! Errors: why the server refused a request ([`ErrorCode`], with its [`Field`]) and why bytes
//! did not decode ([`WireError`]).

#[cfg(doc)] // Names the item docs link to.
use super::FLAG_ABSENT;
use super::{HEADER_LEN, StatId};

/// Which field a [`ErrorCode::TooLarge`] or a [`WireError::TooLarge`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// A key (wire 1).
    Key,
    /// A value (wire 2).
    Value,
}

impl Field {
    pub(super) const fn wire(self) -> u8 {
        match self {
            Field::Key => 1,
            Field::Value => 2,
        }
    }

    pub(super) const fn from_wire(b: u8) -> Option<Field> {
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
