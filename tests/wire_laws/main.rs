//! Codec laws of `shmkv::wire` (the byte-string protocol), checked with quickcheck on random
//! messages and random bytes.
//!
//! * `decode(encode(m)) == Ok(m)` for every request (every `Op`) and every response (every
//!   `Reply`, every `ErrorCode`), and `encoded_len` is the encoding's length;
//! * encoding is injective: two different messages never encode alike (checked on pairs of
//!   neighbours: one byte moved from a key to its value, "absent" against "empty", one flag,
//!   one tag for another of the same shape, ...);
//! * every strict prefix of an encoding fails to decode;
//! * decoding any bytes returns (never panics), allocates at most a small multiple of the
//!   input's length, and when it succeeds re-encodes to exactly the input (the encoding is
//!   canonical); `request_id` is bytes 0..8, zero-padded;
//! * with the limits lowered below a field's length, decoding fails with `TooLarge` naming the
//!   first field over its limit in wire order (the field order is spelled out again here,
//!   [`limits::request_fields`], [`limits::reply_fields`], so that a change of the format
//!   changes this test).
//!
//! Each law's comment names the bugs it catches; the report of the change that added these
//! laws lists the bug planted in `src/wire.rs` that each law was seen to catch.
//!
//! The modules: `laws` (the laws), `coverage` (that the generators reach every variant),
//! `generators` (random valid messages), `neighbours` (pairs of near messages), `bytes`
//! (mutated encodings for the decoders), `limits` (the field layout and lowered limits),
//! `alloc` (counting this thread's allocations).
//!
//! Run with `cargo test --test wire_laws`; `QC_CASES=<n>` changes the number of cases per
//! property (default 10000).
#![cfg(not(loom))]

mod alloc;
mod bytes;
mod coverage;
mod generators;
mod laws;
mod limits;
mod neighbours;

use quickcheck::{QuickCheck, TestResult, Testable};
use shmkv::wire::{Limits, Request, Response, encode_request, encode_response};

/// The limits every generated message respects.
const LIMITS: Limits = Limits {
    max_key: 300,
    max_value: 700,
};

fn cases() -> u64 {
    std::env::var("QC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A property's verdict. On failure it carries `what` (the inputs and what the decoder said),
/// because quickcheck 1 prints a failing case's arguments only when one of its shrinks also
/// fails.
fn verdict(ok: bool, what: impl std::fmt::Debug) -> TestResult {
    if ok {
        TestResult::passed()
    } else {
        TestResult::error(format!("counterexample: {what:?}"))
    }
}

fn check<A: Testable>(prop: A) {
    QuickCheck::new()
        .tests(cases())
        .max_tests(cases() * 10)
        .quickcheck(prop);
}

fn enc_req(r: &Request) -> Vec<u8> {
    let mut v = Vec::new();
    encode_request(r, &mut v);
    v
}

fn enc_resp(r: &Response) -> Vec<u8> {
    let mut v = Vec::new();
    encode_response(r, &mut v);
    v
}
