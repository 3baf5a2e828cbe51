//! Codec laws of `shmkv::protocol`, checked with quickcheck on random messages and random slots.
//!
//! * `decode(encode(m)) == m` for every request (every `Op`) and every response (every `Reply`,
//!   every `ErrorCode`);
//! * decoding any 32 bytes returns, never panics, and accepts exactly the slots the layout table
//!   at the top of `src/protocol.rs` describes;
//! * a slot that decodes re-encodes to the same meaningful bytes (id, tag, and the fields its
//!   op or reply uses), with zeros everywhere else, and bytes the layout calls unused or
//!   reserved never change what a slot decodes to.
//!
//! The byte layout is spelled out again here ([`request_fields`], [`response_fields`]) rather
//! than taken from the crate, so that a change of the wire format has to change this file too.
//!
//! Run with `cargo test --test quickcheck`; `QC_CASES=<n>` changes the number of cases per
//! property (default 10000).
#![cfg(not(loom))]

use quickcheck::{Arbitrary, Gen, QuickCheck, Testable};
use shmkv::protocol::{
    DecodeError, ErrorCode, Op, Reply, Request, Response, Stat, StatId, decode_request,
    decode_response, encode_request, encode_response, request_id,
};
use shmkv::region::{SLOT_SIZE, Slot};
use std::ops::Range;

const ID: Range<usize> = 0..8;
const TAG: usize = 8;
const CODE: Range<usize> = 10..12;
const INDEX: Range<usize> = 12..16;
const A: Range<usize> = 16..24;
const B: Range<usize> = 24..32;

fn cases() -> u64 {
    std::env::var("QC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn check<A: Testable>(prop: A) {
    QuickCheck::new()
        .tests(cases())
        .max_tests(cases() * 10)
        .quickcheck(prop);
}

// ---------------------------------------------------------------------------------------------
// Generators (local newtypes, since Arbitrary cannot be implemented for the crate's types here).
// ---------------------------------------------------------------------------------------------

/// A `u64` field: often a boundary (0, 1, the u32 edge, u64::MAX) or a small number, else any
/// value.
fn field(g: &mut Gen) -> u64 {
    match u8::arbitrary(g) % 4 {
        0 => *g
            .choose(&[
                0,
                1,
                u64::from(u32::MAX) - 1,
                u64::from(u32::MAX),
                u64::from(u32::MAX) + 1,
                u64::MAX - 1,
                u64::MAX,
            ])
            .unwrap(),
        1 => u64::from(u8::arbitrary(g)),
        _ => u64::arbitrary(g),
    }
}

/// A `u32` field: boundaries, small numbers, or any value.
fn field32(g: &mut Gen) -> u32 {
    match u8::arbitrary(g) % 4 {
        0 => *g.choose(&[0, 1, 64, u32::MAX - 1, u32::MAX]).unwrap(),
        1 => u32::from(u8::arbitrary(g)),
        _ => u32::arbitrary(g),
    }
}

/// A stat id: never 0 (not a valid id, see `decoding_any_slot_...`), often a known one.
fn stat_id(g: &mut Gen) -> StatId {
    let known = [
        StatId::OPS_INSERT,
        StatId::ERRORS_MALFORMED,
        StatId::SLOT_OWNER,
        StatId::UPTIME_MS,
        StatId(u16::MAX),
    ];
    match u8::arbitrary(g) % 2 {
        0 => *g.choose(&known).unwrap(),
        _ => StatId(u16::arbitrary(g).max(1)),
    }
}

/// A valid request: every `Op` variant, equally likely.
#[derive(Debug, Clone)]
struct ArbRequest(Request);

impl Arbitrary for ArbRequest {
    fn arbitrary(g: &mut Gen) -> Self {
        let op = match u8::arbitrary(g) % 8 {
            0 => Op::Insert {
                key: field(g),
                value: field(g),
            },
            1 => Op::Read { key: field(g) },
            2 => Op::Delete { key: field(g) },
            3 => Op::Print { bucket: field(g) },
            // ThStart of 0 threads is not a valid request (see `thstart_zero_is_refused`).
            4 => Op::ThStart {
                n: field32(g).max(1),
            },
            5 => Op::ThStop,
            6 => Op::Quit,
            _ => Op::Stats,
        };
        ArbRequest(Request { id: field(g), op })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let Request { id, op } = self.0;
        let with_id = id.shrink().map(move |id| ArbRequest(Request { id, op }));
        let ops: Vec<Op> = match op {
            Op::Insert { key, value } => (key, value)
                .shrink()
                .map(|(key, value)| Op::Insert { key, value })
                .collect(),
            Op::Read { key } => key.shrink().map(|key| Op::Read { key }).collect(),
            Op::Delete { key } => key.shrink().map(|key| Op::Delete { key }).collect(),
            Op::Print { bucket } => bucket.shrink().map(|bucket| Op::Print { bucket }).collect(),
            Op::ThStart { n } => n
                .shrink()
                .filter(|&n| n > 0)
                .map(|n| Op::ThStart { n })
                .collect(),
            Op::ThStop | Op::Quit | Op::Stats => Vec::new(),
        };
        Box::new(
            with_id.chain(
                ops.into_iter()
                    .map(move |op| ArbRequest(Request { id, op })),
            ),
        )
    }
}

/// A response: every `Reply` variant, and within `Error` every `ErrorCode`. (Shrinking only
/// the id keeps the variant, which is what a failure report needs.)
#[derive(Debug, Clone)]
struct ArbResponse(Response);

impl Arbitrary for ArbResponse {
    fn arbitrary(g: &mut Gen) -> Self {
        let reply = match u8::arbitrary(g) % 14 {
            0 => Reply::Done,
            1 => Reply::Value(field(g)),
            2 => Reply::NotFound,
            3 => Reply::Replaced(field(g)),
            4 => Reply::Entry {
                key: field(g),
                value: field(g),
            },
            5 => Reply::PrintEnd { count: field(g) },
            6 => Reply::Threads(field32(g)),
            7 => Reply::Error(ErrorCode::BadBucket {
                bucket: field(g),
                buckets: field(g),
            }),
            8 => Reply::Error(ErrorCode::ThreadLimit {
                current: field32(g),
                max: field32(g),
            }),
            9 => Reply::Error(ErrorCode::LastWorker),
            10 => Reply::Error(ErrorCode::ShuttingDown),
            11 => Reply::Error(ErrorCode::Malformed),
            12 => Reply::Stat(Stat {
                id: stat_id(g),
                index: field32(g),
                value: field(g),
            }),
            _ => Reply::StatsEnd { count: field(g) },
        };
        ArbResponse(Response {
            id: field(g),
            reply,
        })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let Response { id, reply } = self.0;
        Box::new(
            id.shrink()
                .map(move |id| ArbResponse(Response { id, reply })),
        )
    }
}

/// Any 32 bytes, biased towards slots that get past the tag check: byte 8 is usually a known
/// tag or a neighbour of one, the error code usually near the known ones, and `a` often a
/// boundary of the ThStart/Threads range. Fully random bytes would almost never decode.
#[derive(Debug, Clone)]
struct ArbSlot(Slot);

impl Arbitrary for ArbSlot {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut s = [0u8; SLOT_SIZE];
        for b in s.iter_mut() {
            *b = u8::arbitrary(g);
        }
        if u8::arbitrary(g) % 8 != 0 {
            s[TAG] = u8::arbitrary(g) % 12;
        }
        if u8::arbitrary(g) % 2 == 0 {
            s[CODE].copy_from_slice(&u16::from(u8::arbitrary(g) % 7).to_le_bytes());
        }
        if u8::arbitrary(g) % 4 == 0 {
            s[INDEX].fill(0);
        }
        if u8::arbitrary(g) % 2 == 0 {
            s[A].copy_from_slice(&field(g).to_le_bytes());
        }
        if u8::arbitrary(g) % 2 == 0 {
            s[B].copy_from_slice(&field(g).to_le_bytes());
        }
        ArbSlot(s)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // Zero one non-zero byte at a time: shrinks towards the fewest bytes that matter.
        let s = self.0;
        Box::new((0..SLOT_SIZE).filter(move |&i| s[i] != 0).map(move |i| {
            let mut t = s;
            t[i] = 0;
            ArbSlot(t)
        }))
    }
}

/// Random bytes to write over the bytes of a slot that the layout says are ignored.
#[derive(Debug, Clone)]
struct Noise(Slot);

impl Arbitrary for Noise {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut s = [0u8; SLOT_SIZE];
        for b in s.iter_mut() {
            *b = u8::arbitrary(g);
        }
        Noise(s)
    }
}

// ---------------------------------------------------------------------------------------------
// The layout, independently of the crate: which byte ranges a decodable slot's meaning lies in.
// ---------------------------------------------------------------------------------------------

/// The byte ranges that carry a request with op tag `tag`, or `None` for an unknown tag.
fn request_fields(tag: u8) -> Option<Vec<Range<usize>>> {
    let head = [ID, TAG..TAG + 1];
    Some(match tag {
        1 => [&head[..], &[A, B]].concat(),
        2..=5 => [&head[..], &[A]].concat(),
        6..=8 => head.to_vec(),
        _ => return None,
    })
}

/// The byte ranges that carry a response with reply tag `tag` and error code `code`, or `None`
/// for an unknown tag or code.
fn response_fields(tag: u8, code: u16) -> Option<Vec<Range<usize>>> {
    let head = [ID, TAG..TAG + 1];
    Some(match tag {
        1 | 3 => head.to_vec(),
        2 | 4 | 6 | 7 | 10 => [&head[..], &[A]].concat(),
        5 => [&head[..], &[A, B]].concat(),
        9 if code != 0 => [&head[..], &[CODE, INDEX, A]].concat(),
        8 => match code {
            1 | 2 => [&head[..], &[CODE, A, B]].concat(),
            3..=5 => [&head[..], &[CODE]].concat(),
            _ => return None,
        },
        _ => return None,
    })
}

fn code_of(s: &Slot) -> u16 {
    u16::from_le_bytes([s[CODE.start], s[CODE.start + 1]])
}

fn u64_at(s: &Slot, r: Range<usize>) -> u64 {
    u64::from_le_bytes(s[r].try_into().unwrap())
}

/// A mask with 0xFF on the bytes in `fields`.
fn mask_of(fields: &[Range<usize>]) -> Slot {
    let mut m = [0u8; SLOT_SIZE];
    for r in fields {
        m[r.clone()].fill(0xFF);
    }
    m
}

/// `s` and `t` agree on the masked bytes, and `t` is zero elsewhere.
fn same_meaning_and_zero_elsewhere(s: &Slot, t: &Slot, mask: &Slot) -> bool {
    (0..SLOT_SIZE).all(|i| {
        if mask[i] != 0 {
            s[i] == t[i]
        } else {
            t[i] == 0
        }
    })
}

/// `s` with every byte outside `mask` replaced by the noise's byte.
fn scribble(s: &Slot, mask: &Slot, noise: &Slot) -> Slot {
    let mut t = *s;
    for i in 0..SLOT_SIZE {
        if mask[i] == 0 {
            t[i] = noise[i];
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Laws.
// ---------------------------------------------------------------------------------------------

/// Catches: encoder and decoder disagreeing on a tag number, a field's offset, its width or its
/// byte order; a field that is dropped (e.g. Insert's value); a range check that rejects values
/// the encoder produces (ThStart of u32::MAX threads).
#[test]
fn request_round_trips() {
    fn prop(r: ArbRequest) -> bool {
        decode_request(&encode_request(&r.0)) == Ok(r.0)
    }
    check(prop as fn(ArbRequest) -> bool);
}

/// Catches the same for responses, including the error code at bytes 10..12 and the details
/// of BadBucket and ThreadLimit (an error code mapped to the wrong variant, a detail lost).
#[test]
fn response_round_trips() {
    fn prop(r: ArbResponse) -> bool {
        decode_response(&encode_response(&r.0)) == Ok(r.0)
    }
    check(prop as fn(ArbResponse) -> bool);
}

/// Catches: an encoder that writes a field outside its place in the layout, or leaves a byte
/// the layout calls unused non-zero (which an older or stricter peer could misread).
#[test]
fn encoding_follows_the_layout() {
    fn prop(r: ArbRequest, p: ArbResponse) -> bool {
        let s = encode_request(&r.0);
        let Some(rf) = request_fields(s[TAG]) else {
            return false;
        };
        let t = encode_response(&p.0);
        let Some(pf) = response_fields(t[TAG], code_of(&t)) else {
            return false;
        };
        same_meaning_and_zero_elsewhere(&s, &s, &mask_of(&rf))
            && same_meaning_and_zero_elsewhere(&t, &t, &mask_of(&pf))
            && u64_at(&s, ID) == r.0.id
            && u64_at(&t, ID) == p.0.id
    }
    check(prop as fn(ArbRequest, ArbResponse) -> bool);
}

/// Catches: a decoder that panics on hostile bytes (an index out of bounds, an unchecked
/// conversion, an `unwrap` on a peer's value), and one that accepts slots the layout does not
/// define or rejects slots it does (the decision must depend only on the tag, the error code
/// and the ThStart/Threads/ThreadLimit ranges, and the Stat id being non-zero).
#[test]
fn decoding_any_slot_returns_and_accepts_exactly_the_layout() {
    fn prop(s: ArbSlot) -> bool {
        let s = s.0;
        let (a, b) = (u64_at(&s, A), u64_at(&s, B));
        let fits = |v: u64| v <= u64::from(u32::MAX);
        let req_ok = match s[TAG] {
            1..=4 | 6..=8 => true,
            5 => a >= 1 && fits(a),
            _ => false,
        };
        let resp_ok = match (s[TAG], code_of(&s)) {
            (1..=6, _) => true,
            (7, _) => fits(a),
            (8, 1 | 3..=5) => true,
            (8, 2) => fits(a) && fits(b),
            (9, c) => c != 0,
            (10, _) => true,
            _ => false,
        };
        let req = decode_request(&s);
        let resp = decode_response(&s);
        let req_err_right = match req {
            Err(DecodeError::UnknownTag(t)) => t == s[TAG] && !(1..=8).contains(&t),
            Err(DecodeError::FieldRange) => s[TAG] == 5,
            Err(DecodeError::UnknownErrorCode(_) | DecodeError::ZeroStatId) => false,
            Ok(_) => true,
        };
        let resp_err_right = match resp {
            Err(DecodeError::UnknownTag(t)) => t == s[TAG] && !(1..=10).contains(&t),
            Err(DecodeError::UnknownErrorCode(c)) => s[TAG] == 8 && c == code_of(&s),
            Err(DecodeError::ZeroStatId) => s[TAG] == 9 && code_of(&s) == 0,
            Err(DecodeError::FieldRange) => matches!(s[TAG], 7 | 8),
            Ok(_) => true,
        };
        req.is_ok() == req_ok && resp.is_ok() == resp_ok && req_err_right && resp_err_right
    }
    check(prop as fn(ArbSlot) -> bool);
}

/// Catches: a decoder that reads a field from the wrong offset, truncates it (a key read as
/// u32), or ignores a byte that carries meaning; re-encoding such a decode would not give the
/// slot's meaningful bytes back. Also catches an encoder that does not zero unused bytes.
#[test]
fn a_decoded_slot_re_encodes_to_its_meaningful_bytes() {
    fn prop(s: ArbSlot) -> bool {
        let s = s.0;
        let req_ok = match decode_request(&s) {
            Err(_) => true,
            Ok(r) => {
                let Some(f) = request_fields(s[TAG]) else {
                    return false;
                };
                same_meaning_and_zero_elsewhere(&s, &encode_request(&r), &mask_of(&f))
            }
        };
        let resp_ok = match decode_response(&s) {
            Err(_) => true,
            Ok(r) => {
                let Some(f) = response_fields(s[TAG], code_of(&s)) else {
                    return false;
                };
                same_meaning_and_zero_elsewhere(&s, &encode_response(&r), &mask_of(&f))
            }
        };
        req_ok && resp_ok
    }
    check(prop as fn(ArbSlot) -> bool);
}

/// Catches: a decoder whose result depends on bytes the layout reserves or that the op does
/// not use (e.g. reading the error code of a non-error reply, treating bytes 8..10 as one
/// u16 tag, reading Read's unused `b`). Such a decoder would misread slots written by a
/// peer that leaves garbage there, which the layout allows.
#[test]
fn ignored_bytes_do_not_change_the_decoding() {
    fn prop(s: ArbSlot, noise: Noise) -> bool {
        let s = s.0;
        let req_ok = match request_fields(s[TAG]) {
            None => true,
            Some(f) => decode_request(&scribble(&s, &mask_of(&f), &noise.0)) == decode_request(&s),
        };
        let resp_ok = match response_fields(s[TAG], code_of(&s)) {
            None => true,
            Some(f) => {
                decode_response(&scribble(&s, &mask_of(&f), &noise.0)) == decode_response(&s)
            }
        };
        req_ok && resp_ok
    }
    check(prop as fn(ArbSlot, Noise) -> bool);
}

/// Catches: a malformed request answered with the wrong id (the server answers a slot that
/// does not decode with the id `request_id` reads, so it must be bytes 0..8 whatever the rest
/// holds, and agree with the decoded id when the slot decodes).
#[test]
fn request_id_is_bytes_0_to_8() {
    fn prop(s: ArbSlot) -> bool {
        let s = s.0;
        let id = request_id(&s);
        id == u64_at(&s, ID) && decode_request(&s).ok().is_none_or(|r| r.id == id)
    }
    check(prop as fn(ArbSlot) -> bool);
}

/// ThStart of 0 threads is representable in `Op` but not a valid request: it must encode to a
/// slot the server refuses (FieldRange, answered Malformed), never to one it misreads as some
/// other request. Catches: an encoder that maps 0 to a valid count (e.g. `n - 1` on the wire).
#[test]
fn thstart_zero_is_refused() {
    fn prop(id: u64) -> bool {
        let s = encode_request(&Request {
            id,
            op: Op::ThStart { n: 0 },
        });
        decode_request(&s) == Err(DecodeError::FieldRange) && request_id(&s) == id
    }
    check(prop as fn(u64) -> bool);
}

/// The generators reach every variant, so that the laws above cover every message type.
/// Catches: a generator change that silently stops producing some variant.
#[test]
fn generators_cover_every_variant() {
    /// The reply's variant, and for an error its code's variant.
    fn kind(r: &Reply) -> String {
        match r {
            Reply::Error(e) => format!("error {:?}", std::mem::discriminant(e)),
            r => format!("reply {:?}", std::mem::discriminant(r)),
        }
    }
    let mut g = Gen::new(100);
    let mut ops = std::collections::HashSet::new();
    let mut replies = std::collections::HashSet::new();
    let mut req_tags = std::collections::HashSet::new();
    let mut resp_kinds = std::collections::HashSet::new();
    for _ in 0..10_000 {
        ops.insert(std::mem::discriminant(&ArbRequest::arbitrary(&mut g).0.op));
        let reply = ArbResponse::arbitrary(&mut g).0.reply;
        replies.insert(kind(&reply));
    }
    // Random slots reach the rarest kinds (a ThreadLimit error needs a small value in both
    // fields: about 1 slot in 12,000) only over many draws: 10,000 missed one now and then.
    for _ in 0..400_000 {
        let s = ArbSlot::arbitrary(&mut g).0;
        if let Ok(r) = decode_request(&s) {
            req_tags.insert(std::mem::discriminant(&r.op));
        }
        if let Ok(r) = decode_response(&s) {
            resp_kinds.insert(kind(&r.reply));
        }
    }
    assert_eq!(ops.len(), 8, "every Op");
    assert_eq!(
        replies.len(),
        9 + 5,
        "every Reply but Error, and every ErrorCode"
    );
    assert_eq!(req_tags.len(), 8, "random slots decode to every Op");
    assert_eq!(resp_kinds.len(), 14, "random slots decode to every reply");
}
