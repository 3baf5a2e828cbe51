//! Laws of the statistics a Stats request answers with: the typed form
//! ([`shmkv::stats::Stats`]) and its wire form (a list of [`shmkv::wire::Stat`]), checked with
//! quickcheck on random statistics.
//!
//! * `Stats::from_stats(s.to_stats()) == s` for any typed statistics, whatever order the list
//!   arrives in;
//! * typed statistics survive the whole trip a Stats answer makes: split into parts that fit a
//!   record of any size ([`split_parts`]), each part encoded and decoded as a response, the
//!   parts put together again ([`Assembly`]);
//! * `from_stats` of any list returns (never panics); a statistic sent twice counts once, with
//!   the value sent last; a statistic this version does not know is kept, in order, and sent on.
//!
//! (The codec laws of the wire protocol itself are in `tests/wire_laws/`.)
//!
//! Run with `cargo test --test quickcheck`; `QC_CASES=<n>` changes the number of cases per
//! property (default 10000).
#![cfg(not(loom))]

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult, Testable};
use shmkv::stats::{ErrorCounts, LatencyStats, OpCounts, SlotStats, Stats};
use shmkv::wire::{
    Assembly, Limits, Outcome, Reply, Response, STATS_FIXED, Stat, StatId, decode_response,
    encode_response, split_parts, stat_item_len,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// A property's verdict, carrying the inputs on failure (quickcheck 1 prints a failing case's
/// arguments only when one of its shrinks also fails).
fn verdict(ok: bool, what: impl std::fmt::Debug) -> TestResult {
    if ok {
        TestResult::passed()
    } else {
        TestResult::error(format!("counterexample: {what:?}"))
    }
}

/// The per-slot statistics' ids (sent once per slot, `index` = the slot).
const SLOT_IDS: [StatId; 3] = [
    StatId::SLOT_OWNER,
    StatId::SLOT_WORKERS,
    StatId::SLOT_REQUESTS,
];

/// The ids of the statistics sent once (`index` 0), as this version sends them.
fn global_ids() -> Vec<StatId> {
    Stats::default().to_stats().iter().map(|s| s.id).collect()
}

/// Every id this version knows.
fn known_ids() -> BTreeSet<StatId> {
    global_ids().into_iter().chain(SLOT_IDS).collect()
}

// ---------------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------------

/// A counter: often a boundary (0, 1, the u32 edge, u64::MAX) or a small number, else any value.
fn field(g: &mut Gen) -> u64 {
    match u8::arbitrary(g) % 4 {
        0 => *g
            .choose(&[
                0,
                1,
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

/// A slot index: small, a boundary, or any value.
fn index(g: &mut Gen) -> u32 {
    match u8::arbitrary(g) % 3 {
        0 => *g.choose(&[0, 1, u32::MAX - 1, u32::MAX]).unwrap(),
        1 => u32::from(u8::arbitrary(g) % 8),
        _ => u32::arbitrary(g),
    }
}

/// An id this version does not know (never 0, which does not decode).
fn unknown_id(g: &mut Gen, known: &BTreeSet<StatId>) -> StatId {
    loop {
        let id = match u8::arbitrary(g) % 3 {
            0 => StatId(u16::arbitrary(g) % 128),
            1 => *g.choose(&[StatId(999), StatId(u16::MAX)]).unwrap(),
            _ => StatId(u16::arbitrary(g)),
        };
        if id.0 != 0 && !known.contains(&id) {
            return id;
        }
    }
}

/// Typed statistics: every field random, up to 6 slots (distinct indices, in order, as
/// `from_stats` gives them), and up to 3 statistics of unknown ids.
#[derive(Debug, Clone)]
struct ArbStats(Stats);

impl Arbitrary for ArbStats {
    fn arbitrary(g: &mut Gen) -> Self {
        let known = known_ids();
        let indices: BTreeSet<u32> = (0..usize::arbitrary(g) % 7).map(|_| index(g)).collect();
        let slots = indices
            .into_iter()
            .map(|slot| SlotStats {
                slot,
                owner_pid: field(g),
                workers: field(g),
                requests: field(g),
            })
            .collect();
        let other = (0..usize::arbitrary(g) % 4)
            .map(|_| Stat {
                id: unknown_id(g, &known),
                index: index(g),
                value: field(g),
            })
            .collect();
        ArbStats(Stats {
            ops: OpCounts(std::array::from_fn(|_| field(g))),
            errors: ErrorCounts(std::array::from_fn(|_| field(g))),
            entries: field(g),
            buckets: field(g),
            longest_bucket: field(g),
            memory_used: field(g),
            memory_limit: field(g),
            max_key: field(g),
            max_value: field(g),
            client_slots: field(g),
            slots,
            latency: LatencyStats {
                samples: field(g),
                p50_ns: field(g),
                p99_ns: field(g),
                p999_ns: field(g),
                max_ns: field(g),
                window_ms: field(g),
                sample_every: field(g),
            },
            uptime_ms: field(g),
            other,
        })
    }
}

/// Any list of statistics, as a hostile or newer server might send: ids mostly known (global or
/// per slot, often repeated), some unknown; any index; any value.
#[derive(Debug, Clone)]
struct ArbList(Vec<Stat>);

impl Arbitrary for ArbList {
    fn arbitrary(g: &mut Gen) -> Self {
        let known = known_ids();
        let global = global_ids();
        let list = (0..usize::arbitrary(g) % 40)
            .map(|_| {
                let id = match u8::arbitrary(g) % 4 {
                    0 | 1 => *g.choose(&global).unwrap(),
                    2 => *g.choose(&SLOT_IDS).unwrap(),
                    _ => unknown_id(g, &known),
                };
                Stat {
                    id,
                    index: u32::from(u8::arbitrary(g) % 4),
                    value: field(g),
                }
            })
            .collect();
        ArbList(list)
    }

    /// The list without one of its statistics.
    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let v = self.0.clone();
        Box::new((0..v.len()).map(move |i| {
            let mut w = v.clone();
            w.remove(i);
            ArbList(w)
        }))
    }
}

/// `v` reordered by `seed` (a deterministic shuffle: sorted by a hash of seed and position).
fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mix = |i: u64| {
        // splitmix64
        let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut keyed: Vec<(u64, T)> = v
        .iter()
        .enumerate()
        .map(|(i, x)| (mix(i as u64), x.clone()))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, x)| x).collect()
}

// ---------------------------------------------------------------------------------------------
// Laws.
// ---------------------------------------------------------------------------------------------

/// Catches: a statistic `to_stats` sends under one id and `from_stats` files under another (two
/// fields swapped, an op counter off by one verb, an error counter off by one code), one that
/// is not sent or not read back, a slot's statistic attached to the wrong slot, and a decoder
/// that depends on the order the list arrives in (the unknown ones aside, whose order is kept).
#[test]
fn stats_round_trip_through_the_wire_form_in_any_order() {
    fn prop(s: ArbStats, seed: u64) -> TestResult {
        let s = s.0;
        let wire = s.to_stats();
        if Stats::from_stats(&wire) != s {
            return verdict(false, ("in order", &s));
        }
        // Shuffle the known statistics; keep the unknown ones (the tail) in order, after them.
        let known = wire.len() - s.other.len();
        let mut mixed = shuffled(&wire[..known], seed);
        mixed.extend_from_slice(&wire[known..]);
        verdict(Stats::from_stats(&mixed) == s, ("shuffled", &s, seed))
    }
    check(prop as fn(ArbStats, u64) -> TestResult);
}

/// Catches: a Stats answer that does not survive its trip: a part that does not fit the record
/// it was split for, a statistic lost or repeated at a part boundary, parts put together in the
/// wrong order or with a `more` flag wrong (the answer ends early or never), a field of a
/// statistic mangled by the codec.
#[test]
fn stats_survive_split_encode_decode_and_assembly() {
    fn prop(s: ArbStats, room: u16, id: u64) -> TestResult {
        let s = s.0;
        // Records from one statistic per part up to all of them in one.
        let max_len = STATS_FIXED + 14 + usize::from(room) % 1200;
        let parts = split_parts(s.to_stats(), STATS_FIXED, stat_item_len, max_len);
        let last = parts.len() - 1;
        let mut assembly = Assembly::default();
        let mut outcome = None;
        let mut buf = Vec::new();
        for (i, stats) in parts.into_iter().enumerate() {
            let sent = Response {
                id,
                reply: Reply::Stats {
                    stats,
                    more: i < last,
                },
            };
            buf.clear();
            encode_response(&sent, &mut buf);
            if buf.len() > max_len {
                return verdict(false, ("part too long", buf.len(), max_len, &s));
            }
            let got = match decode_response(&buf, &Limits::UNLIMITED) {
                Ok(r) if r == sent => r,
                other => return verdict(false, ("decode", other, &sent)),
            };
            if outcome.is_some() {
                return verdict(false, ("a part after the answer was complete", &s));
            }
            match assembly.add(got.reply) {
                Ok(done) => outcome = done,
                Err(e) => return verdict(false, ("out of place", e, &s)),
            }
        }
        match outcome {
            Some(Outcome::Stats(list)) => {
                verdict(Stats::from_stats(&list) == s, ("assembled", &list, &s))
            }
            other => verdict(false, ("no Stats outcome", other, &s)),
        }
    }
    check(prop as fn(ArbStats, u16, u64) -> TestResult);
}

/// Catches: a `from_stats` that panics on a list a server may send (a repeated statistic, a
/// slot index out of order, an unknown id), that keeps the first of two values sent for one
/// statistic instead of the last, that drops an unknown statistic or reorders them, or that
/// is not a normal form (typing, sending and typing again changes something).
#[test]
fn any_list_types_to_the_last_value_of_each_statistic() {
    fn prop(l: ArbList) -> TestResult {
        let l = l.0;
        let global: BTreeSet<StatId> = global_ids().into_iter().collect();
        let typed = Stats::from_stats(&l);
        let sent = typed.to_stats();
        if Stats::from_stats(&sent) != typed {
            return verdict(false, ("not a normal form", &l));
        }
        // The last value of each statistic, as it should be sent back.
        let mut want_global: HashMap<StatId, u64> = global.iter().map(|&id| (id, 0)).collect();
        let mut want_slots: BTreeMap<(u32, StatId), u64> = BTreeMap::new();
        let mut want_other = Vec::new();
        for st in &l {
            if global.contains(&st.id) {
                want_global.insert(st.id, st.value);
            } else if SLOT_IDS.contains(&st.id) {
                for id in SLOT_IDS {
                    want_slots.entry((st.index, id)).or_insert(0);
                }
                want_slots.insert((st.index, st.id), st.value);
            } else {
                want_other.push(*st);
            }
        }
        let mut got_global = HashMap::new();
        let mut got_slots = BTreeMap::new();
        let mut got_other = Vec::new();
        for st in &sent {
            if global.contains(&st.id) {
                if st.index != 0 || got_global.insert(st.id, st.value).is_some() {
                    return verdict(false, ("a global statistic twice or indexed", st, &l));
                }
            } else if SLOT_IDS.contains(&st.id) {
                if got_slots.insert((st.index, st.id), st.value).is_some() {
                    return verdict(false, ("a slot statistic twice", st, &l));
                }
            } else {
                got_other.push(*st);
            }
        }
        verdict(
            got_global == want_global && got_slots == want_slots && got_other == want_other,
            (&l, &sent),
        )
    }
    check(prop as fn(ArbList) -> TestResult);
}

/// The generators reach what the laws are about. Catches: a generator change that silently
/// stops producing slots, unknown statistics, or lists with repeated statistics.
#[test]
fn generators_cover_slots_unknown_ids_and_repeats() {
    let mut g = Gen::new(100);
    let (mut slots, mut other, mut repeats) = (false, false, false);
    for _ in 0..1000 {
        let s = ArbStats::arbitrary(&mut g).0;
        slots |= s.slots.len() >= 2;
        other |= !s.other.is_empty();
        let l = ArbList::arbitrary(&mut g).0;
        let ids: BTreeSet<(StatId, u32)> = l.iter().map(|s| (s.id, s.index)).collect();
        repeats |= ids.len() < l.len();
    }
    assert!(slots && other && repeats, "{slots} {other} {repeats}");
}
