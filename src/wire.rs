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

mod answer;
mod codec;
mod error;
mod limits;
mod request;
mod response;
mod stat;
mod tables;

pub use answer::{
    Assembly, ENTRIES_FIXED, KEYS_FIXED, OutOfPlace, Outcome, STATS_FIXED, entry_item_len,
    key_item_len, split_parts, stat_item_len,
};
pub use error::{ERROR_CODES, ERROR_NAMES, ErrorCode, Field, WireError};
pub use limits::Limits;
pub use request::{
    Op, OpView, Request, decode_request, decode_request_view, encode_op, encode_request,
    encode_view, request_id, request_verb,
};
pub use response::{
    Reply, Response, decode_response, encode_response, encode_value_response, value_response_view,
};
pub use stat::{Stat, StatId};
pub use tables::{Arg, ArgKind, REPLIES, ReplyInfo, ReplyKind, Shape, VERBS, Verb, VerbInfo};

#[cfg(all(test, not(loom)))]
mod tests;
