//! The codec laws, each a quickcheck property over the generators.

use crate::alloc::allocated_by;
use crate::bytes::ArbBytes;
use crate::generators::{ArbRequest, ArbResponse};
use crate::limits::{ArbLimits, expected_under, reply_fields, request_fields};
use crate::neighbours::Neighbours;
use crate::{LIMITS, check, enc_req, enc_resp, verdict};
use quickcheck::TestResult;
use shmkv::wire::{
    Limits, Reply, Request, Response, decode_request, decode_response, request_id,
    value_response_view,
};

/// Catches: encoder and decoder disagreeing on a tag, a field's order, width, byte order or
/// signedness; a field dropped or defaulted (Cas's "absent" read as an empty value); a limit or
/// range check that refuses what the encoder produces (a key exactly `max_key` long); an
/// `encoded_len` that does not match the encoding.
#[test]
fn request_round_trips() {
    fn prop(r: ArbRequest) -> TestResult {
        let s = enc_req(&r.0);
        let d = decode_request(&s, &LIMITS);
        let ok = s.len() == r.0.encoded_len() && d.as_ref() == Ok(&r.0);
        verdict(ok, (&s, d))
    }
    check(prop as fn(ArbRequest) -> TestResult);
}

/// Catches the same for responses, every reply kind and every error code (a MORE flag lost, an
/// error code mapped to the wrong variant, a detail or a stat index lost).
#[test]
fn response_round_trips() {
    fn prop(r: ArbResponse) -> TestResult {
        let s = enc_resp(&r.0);
        let d = decode_response(&s, &LIMITS);
        let ok = s.len() == r.0.encoded_len() && d.as_ref() == Ok(&r.0);
        verdict(ok, (&s, d))
    }
    check(prop as fn(ArbResponse) -> TestResult);
}

/// Catches: an encoder that conflates two messages, e.g. two verbs of one shape written with
/// one tag, "expect absent" written like "expect the empty value", a field boundary that is not
/// encoded (two strings concatenated without their lengths), a flag not written. (Implied by
/// the round trips; checked directly on near neighbours, where conflation is likeliest.)
#[test]
fn encoding_is_injective() {
    fn prop(q: Neighbours<Request>, p: Neighbours<Response>) -> TestResult {
        let (a, b) = (enc_req(&q.0), enc_req(&q.1));
        let (c, d) = (enc_resp(&p.0), enc_resp(&p.1));
        let ok = (q.0 == q.1) == (a == b) && (p.0 == p.1) == (c == d);
        verdict(ok, (q, a, b, p, c, d))
    }
    check(prop as fn(Neighbours<Request>, Neighbours<Response>) -> TestResult);
}

/// Catches: a decoder that takes a missing trailing field as empty or zero, a list count
/// that is not checked against the items present, a short header read as zeros.
#[test]
fn every_strict_prefix_fails() {
    fn prop(r: ArbRequest, p: ArbResponse) -> TestResult {
        let s = enc_req(&r.0);
        let t = enc_resp(&p.0);
        let bad_req = (0..s.len()).find_map(|n| Some((n, decode_request(&s[..n], &LIMITS).ok()?)));
        let bad_resp =
            (0..t.len()).find_map(|n| Some((n, decode_response(&t[..n], &LIMITS).ok()?)));
        verdict(bad_req.is_none() && bad_resp.is_none(), (bad_req, bad_resp))
    }
    check(prop as fn(ArbRequest, ArbResponse) -> TestResult);
}

/// Catches: a decoder that panics on hostile bytes (a slice past the end, an unchecked length,
/// an overflow); one that accepts more than one encoding of a message (ignores reserved bytes,
/// unknown flag bits, trailing bytes, the value of an "absent" field, a flag on a reply that
/// has no use for it); one that reads the id from elsewhere than bytes 0..8.
#[test]
fn decoding_any_bytes_returns_and_is_canonical() {
    fn prop(b: ArbBytes) -> TestResult {
        let s = b.0;
        let mut padded = [0u8; 8];
        let n = s.len().min(8);
        padded[..n].copy_from_slice(&s[..n]);
        let id_ok = request_id(&s) == u64::from_le_bytes(padded);
        let req = decode_request(&s, &LIMITS);
        let req_ok = match &req {
            Ok(r) => r.id == request_id(&s) && enc_req(r) == s,
            Err(_) => true,
        };
        let resp = decode_response(&s, &LIMITS);
        let resp_ok = match &resp {
            Ok(r) => enc_resp(r) == s,
            Err(_) => true,
        };
        let re = (
            req.as_ref().map(enc_req).ok(),
            resp.as_ref().map(enc_resp).ok(),
        );
        verdict(id_ok && req_ok && resp_ok, (req, resp, "re-encoded:", re))
    }
    check(prop as fn(ArbBytes) -> TestResult);
}

/// Catches: the borrowing decoder of value responses (the allocation-free `read_into`'s)
/// disagreeing with `decode_response`: a value it returns that the full decoder refuses or
/// reads otherwise (a flag, a length over the limit or trailing bytes let through, the id
/// read from elsewhere), or a well-formed value response it passes over. On encoded responses
/// of every kind and on hostile bytes.
#[test]
fn the_value_view_agrees_with_the_decoder() {
    fn agrees(s: &[u8]) -> bool {
        let full = decode_response(s, &LIMITS);
        match (value_response_view(s, &LIMITS), full) {
            (Some((id, v)), Ok(r)) => {
                r == Response {
                    id,
                    reply: Reply::Value(v.to_vec()),
                }
            }
            (Some(_), Err(_)) => false,
            (None, Ok(r)) => !matches!(r.reply, Reply::Value(_)),
            (None, Err(_)) => true,
        }
    }
    fn prop(p: ArbResponse, b: ArbBytes) -> TestResult {
        let s = enc_resp(&p.0);
        verdict(agrees(&s) && agrees(&b.0), (p, s, b))
    }
    check(prop as fn(ArbResponse, ArbBytes) -> TestResult);
}

/// Catches: a decoder that reserves what a count or length claims before checking it against
/// the input (`Vec::with_capacity(count)` on a peer's count): decoding `n` bytes may allocate at
/// most `8 n` bytes in all (a key copied is at most its length; a list reserves at most
/// `48 / 9` bytes per input byte).
#[test]
fn decoding_allocates_in_proportion_to_the_input() {
    fn prop(b: ArbBytes) -> TestResult {
        let s = b.0;
        let bound = 8 * s.len();
        let (_, a) = allocated_by(|| decode_request(&s, &Limits::UNLIMITED));
        let (_, b) = allocated_by(|| decode_response(&s, &Limits::UNLIMITED));
        verdict(
            a <= bound && b <= bound,
            ("bound", bound, "allocated", a, b),
        )
    }
    check(prop as fn(ArbBytes) -> TestResult);
}

/// Catches: a limit not enforced (or enforced on the wrong field kind: a key held to
/// `max_value`), an off-by-one (`>=` for `>`), a limit checked after another field's error
/// would have stopped the decode, or a `TooLarge` that names the wrong field or length.
#[test]
fn fields_over_the_limits_are_too_large() {
    fn prop(r: ArbRequest, p: ArbResponse, l: ArbLimits) -> TestResult {
        let l = l.0;
        let want_req = expected_under(&request_fields(&r.0.op), &l, r.0.clone());
        let want_resp = expected_under(&reply_fields(&p.0.reply), &l, p.0.clone());
        let got_req = decode_request(&enc_req(&r.0), &l);
        let got_resp = decode_response(&enc_resp(&p.0), &l);
        let ok = got_req == want_req && got_resp == want_resp;
        verdict(ok, ("got", got_req, got_resp, "want", want_req, want_resp))
    }
    check(prop as fn(ArbRequest, ArbResponse, ArbLimits) -> TestResult);
}
