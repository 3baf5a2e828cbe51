//! That the generators reach every variant and keep every law meaningful.

use crate::LIMITS;
use crate::bytes::ArbBytes;
use crate::generators::{ArbRequest, ArbResponse};
use crate::limits::{ArbLimits, expected_under, request_fields};
use crate::neighbours::Neighbours;
use quickcheck::{Arbitrary, Gen};
use shmkv::wire::{
    REPLIES, Reply, ReplyKind, Request, VERBS, Verb, decode_request, decode_response,
};
use std::collections::HashSet;

/// The generators reach every verb, every reply kind and every error code, the neighbours
/// generator makes different messages most of the time, the limits generator makes both
/// outcomes, and mutated bytes decode to every verb and reply kind often enough for the
/// canonical-encoding law to mean something. Catches: a generator change that silently stops
/// producing some variant or makes a law vacuous.
#[test]
fn generators_cover_every_variant() {
    let mut g = Gen::new(100);
    let mut verbs = HashSet::new();
    let mut kinds = HashSet::new();
    let mut codes = HashSet::new();
    let (mut same, mut differ) = (0, 0);
    let (mut too_large, mut fine) = (0, 0);
    for _ in 0..20_000 {
        verbs.insert(ArbRequest::arbitrary(&mut g).0.op.verb());
        let reply = ArbResponse::arbitrary(&mut g).0.reply;
        if let Reply::Error(e) = &reply {
            codes.insert(e.code());
        }
        kinds.insert(reply.kind());
        let n = Neighbours::<Request>::arbitrary(&mut g);
        if n.0 == n.1 {
            same += 1
        } else {
            differ += 1
        }
        let r = ArbRequest::arbitrary(&mut g).0;
        let l = ArbLimits::arbitrary(&mut g).0;
        match expected_under(&request_fields(&r.op), &l, ()) {
            Ok(()) => fine += 1,
            Err(_) => too_large += 1,
        }
    }
    assert_eq!(verbs.len(), VERBS.len(), "every verb");
    assert_eq!(kinds.len(), REPLIES.len(), "every reply kind");
    assert_eq!(codes.len(), 9, "every error code");
    assert!(
        same > 500 && differ > 4 * same,
        "{same} same, {differ} differ"
    );
    assert!(
        too_large > 2000 && fine > 2000,
        "{too_large} TooLarge, {fine} fine"
    );

    let mut decoded_verbs: HashSet<Verb> = HashSet::new();
    let mut decoded_kinds: HashSet<ReplyKind> = HashSet::new();
    let mut mutated_ok = 0;
    for _ in 0..50_000 {
        let s = ArbBytes::arbitrary(&mut g).0;
        if let Ok(r) = decode_request(&s, &LIMITS) {
            decoded_verbs.insert(r.op.verb());
            mutated_ok += 1;
        }
        if let Ok(r) = decode_response(&s, &LIMITS) {
            decoded_kinds.insert(r.reply.kind());
            mutated_ok += 1;
        }
    }
    assert_eq!(
        decoded_verbs.len(),
        VERBS.len(),
        "bytes decode to every verb"
    );
    assert_eq!(
        decoded_kinds.len(),
        REPLIES.len(),
        "bytes decode to every reply"
    );
    assert!(
        mutated_ok > 5_000,
        "only {mutated_ok} of 50000 inputs decoded"
    );
    // And a good share of them fail, each way a decoder can refuse.
    let mut errors = HashSet::new();
    for _ in 0..50_000 {
        let s = ArbBytes::arbitrary(&mut g).0;
        for e in [
            decode_request(&s, &LIMITS).err(),
            decode_response(&s, &LIMITS).err(),
        ]
        .into_iter()
        .flatten()
        {
            errors.insert(std::mem::discriminant(&e));
        }
    }
    assert!(errors.len() >= 13, "{} kinds of decode error", errors.len());
}
