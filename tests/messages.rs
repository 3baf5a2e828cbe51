//! The text of every refusal ([`ErrorCode`]) and every decoding error ([`WireError`]) of the
//! wire protocol: what users read (the CLI prints refusals; a server logs why a request did not
//! decode). The CLI tests see only some of them, and the codec laws none. Found missing by
//! cargo-mutants for the first protocol: replacing either `Display::fmt` with one that writes
//! nothing passed every other library test.
#![cfg(not(loom))]

use shmkv::wire::{ERROR_CODES, ErrorCode, Field, WireError};

#[test]
fn error_codes_read_as_documented() {
    let cases = [
        (
            ErrorCode::BadBucket {
                bucket: 100,
                buckets: 100,
            },
            "bucket 100 out of range (the table has 100 buckets, 0..=99)",
        ),
        (
            ErrorCode::BadBucket {
                bucket: 5,
                buckets: 0,
            },
            "bucket 5 out of range (the table has 0 buckets, 0..=0)",
        ),
        (
            ErrorCode::ThreadLimit { current: 3, max: 4 },
            "thread limit: this client has 3 worker threads and at most 4 are allowed",
        ),
        (
            ErrorCode::LastWorker,
            "cannot stop the last worker thread of a client",
        ),
        (ErrorCode::ShuttingDown, "the server is shutting down"),
        (ErrorCode::Malformed, "malformed request"),
        (
            ErrorCode::TooLarge {
                what: Field::Key,
                len: 5000,
                max: 4096,
            },
            "key of 5000 bytes is longer than the server's limit of 4096 bytes",
        ),
        (
            ErrorCode::TooLarge {
                what: Field::Value,
                len: 9,
                max: 8,
            },
            "value of 9 bytes is longer than the server's limit of 8 bytes",
        ),
        (
            ErrorCode::OutOfMemory,
            "out of memory (the server's --max-memory)",
        ),
        (
            ErrorCode::NotAnInteger,
            "the value is not a decimal 64-bit integer",
        ),
        (
            ErrorCode::Overflow,
            "the result would overflow a 64-bit integer",
        ),
    ];
    let mut codes: Vec<u16> = cases.iter().map(|(c, _)| c.code()).collect();
    codes.dedup();
    assert_eq!(codes.len(), ERROR_CODES, "every error code has a case");
    for (code, text) in cases {
        assert_eq!(code.to_string(), text);
    }
}

#[test]
fn decode_errors_read_as_documented() {
    let cases = [
        (
            WireError::ShortHeader { len: 3 },
            "3 bytes: shorter than the 12-byte header",
        ),
        (WireError::UnknownTag(200), "unknown tag 200"),
        (
            WireError::Reserved(0x0102),
            "reserved bytes 10..12 hold 0x0102, not 0",
        ),
        (
            WireError::BadFlags { tag: 2, flags: 4 },
            "flags 0x04 not allowed with tag 2",
        ),
        (
            WireError::Truncated {
                at: 12,
                need: 4,
                have: 1,
            },
            "truncated: 4 bytes needed at offset 12, 1 left",
        ),
        (
            WireError::TooLarge {
                what: Field::Key,
                len: 9,
                max: 8,
            },
            "key of 9 bytes is longer than the limit of 8",
        ),
        (WireError::EmptyKey, "empty key"),
        (
            WireError::AbsentWithValue { len: 3 },
            "flagged absent but carries a value of 3 bytes",
        ),
        (WireError::ZeroCount, "count 0 where at least 1 is required"),
        (WireError::ZeroStatId, "stat id 0"),
        (WireError::UnknownErrorCode(77), "unknown error code 77"),
        (WireError::UnknownField(9), "unknown field kind 9"),
        (
            WireError::TrailingBytes { at: 16, extra: 2 },
            "2 bytes after the end of the message at offset 16",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
    let boxed: Box<dyn std::error::Error> = Box::new(WireError::ZeroStatId);
    assert_eq!(boxed.to_string(), "stat id 0");
}

/// The error a server answers an undecodable request with: `TooLarge` with the field and sizes
/// for a field over the limit, `Malformed` for anything else.
#[test]
fn decode_errors_map_to_the_refusal_sent() {
    assert_eq!(
        WireError::TooLarge {
            what: Field::Value,
            len: 9,
            max: 8
        }
        .reply_code(),
        ErrorCode::TooLarge {
            what: Field::Value,
            len: 9,
            max: 8
        }
    );
    for e in [
        WireError::ShortHeader { len: 0 },
        WireError::UnknownTag(0),
        WireError::EmptyKey,
        WireError::ZeroCount,
    ] {
        assert_eq!(e.reply_code(), ErrorCode::Malformed, "{e:?}");
    }
}
