//! Unit tests of this crate.

use super::*;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
fn ins(c: u64, key: &str, value: &str, prev: Option<&str>, a: u64, z: u64) -> Call {
    let out = prev.map_or(Output::Created, |p| Output::Replaced(b(p)));
    let op = KvOp::Insert {
        key: b(key),
        value: b(value),
    };
    Call::new(c, op, out, a, z)
}
fn read(c: u64, key: &str, v: Option<&str>, a: u64, z: u64) -> Call {
    let out = v.map_or(Output::NotFound, |v| Output::Value(b(v)));
    Call::new(c, KvOp::Read { key: b(key) }, out, a, z)
}
fn del(c: u64, key: &str, v: Option<&str>, a: u64, z: u64) -> Call {
    let out = v.map_or(Output::NotFound, |v| Output::Deleted(b(v)));
    Call::new(c, KvOp::Delete { key: b(key) }, out, a, z)
}
/// Insert-new answering Created (`current` None) or Exists(current).
fn new(c: u64, key: &str, value: &str, current: Option<&str>, a: u64, z: u64) -> Call {
    let out = current.map_or(Output::Created, |v| Output::Exists(b(v)));
    let op = KvOp::InsertNew {
        key: b(key),
        value: b(value),
    };
    Call::new(c, op, out, a, z)
}
/// Cas answering Swapped (`Ok`) or Mismatch (`Err(current)`).
fn cas(
    c: u64,
    key: &str,
    expected: Option<&str>,
    value: &str,
    out: Result<(), Option<&str>>,
    a: u64,
    z: u64,
) -> Call {
    let out = match out {
        Ok(()) => Output::Swapped,
        Err(cur) => Output::Mismatch(cur.map(b)),
    };
    let op = KvOp::Cas {
        key: b(key),
        expected: expected.map(b),
        new: b(value),
    };
    Call::new(c, op, out, a, z)
}
fn add(c: u64, key: &str, delta: i64, out: Output, a: u64, z: u64) -> Call {
    Call::new(c, KvOp::Add { key: b(key), delta }, out, a, z)
}
fn num(n: i64) -> Output {
    Output::Number(n)
}

fn not_lin(h: &[Call]) -> Violation {
    match check(h) {
        Err(CheckError::NotLinearizable(v)) => *v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn empty_and_sequential_histories_pass() {
    assert_eq!(check(&[]).unwrap().calls, 0);
    let h = [
        read(0, "1", None, 0, 1),
        ins(0, "1", "10", None, 2, 3),
        ins(0, "1", "11", Some("10"), 4, 5),
        read(0, "1", Some("11"), 6, 7),
        del(0, "1", Some("11"), 8, 9),
        del(0, "1", None, 10, 11),
        read(0, "1", None, 12, 13),
        ins(0, "2", "20", None, 14, 15),
    ];
    let r = check(&h).unwrap();
    assert_eq!((r.keys, r.calls, r.configurations), (2, 8, 8));
    // Every new operation, sequentially, on one key.
    let h = [
        new(0, "k", "a", None, 0, 1),
        new(0, "k", "b", Some("a"), 2, 3),
        cas(0, "k", Some("a"), "5", Ok(()), 4, 5),
        cas(0, "k", Some("a"), "6", Err(Some("5")), 6, 7),
        cas(0, "k", None, "6", Err(Some("5")), 8, 9),
        add(0, "k", -7, num(-2), 10, 11),
        read(0, "k", Some("-2"), 12, 13),
        add(0, "k", i64::MIN, Output::Overflow, 14, 15),
        add(0, "k", i64::MAX, num(i64::MAX - 2), 16, 17),
        add(0, "k", 3, Output::Overflow, 18, 19),
        del(0, "k", Some("9223372036854775805"), 20, 21),
        cas(0, "k", Some(""), "x", Err(None), 22, 23),
        cas(0, "k", None, "", Ok(()), 24, 25),
        add(0, "k", 1, Output::NotAnInteger, 26, 27),
        new(0, "k", "z", Some(""), 28, 29),
        ins(0, "k", "007", Some(""), 30, 31),
        add(0, "k", 1, Output::NotAnInteger, 32, 33),
        del(0, "k", Some("007"), 34, 35),
        add(0, "k", 3, num(3), 36, 37),
    ];
    let r = check(&h).unwrap();
    assert_eq!((r.keys, r.calls, r.configurations), (1, 19, 19));
}

#[test]
fn add_counts_only_canonical_decimals() {
    let add1 = KvOp::Add {
        key: b("n"),
        delta: 1,
    };
    for good in [
        "0",
        "-1",
        "12",
        "9223372036854775806",
        "-9223372036854775808",
    ] {
        let n: i64 = good.parse().unwrap();
        let sum = n + 1;
        assert_eq!(
            add1.apply(Some(good.as_bytes())),
            (num(sum), Some(sum.to_string().into_bytes())),
            "{good}"
        );
    }
    for bad in [
        "",
        "-0",
        "+1",
        "01",
        "00",
        " 1",
        "1 ",
        "1.0",
        "0x1",
        "-",
        "1e3",
        "١",
        "\u{0}1",
        "99999999999999999999",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        assert_eq!(
            add1.apply(Some(bad.as_bytes())),
            (Output::NotAnInteger, Some(b(bad))),
            "{bad:?}"
        );
    }
    assert_eq!(add1.apply(None), (num(1), Some(b("1"))));
    assert_eq!(
        add1.apply(Some(b"9223372036854775807")),
        (Output::Overflow, Some(b("9223372036854775807")))
    );
}

#[test]
fn sequential_history_with_a_wrong_answer_fails() {
    let h = [
        ins(0, "1", "10", None, 0, 1),
        read(0, "1", Some("11"), 2, 3),
    ];
    let v = not_lin(&h);
    assert_eq!(
        (v.key.clone(), v.longest.clone(), v.blocked),
        (b("1"), vec![0], 1)
    );
    let h = [ins(0, "1", "10", None, 0, 1), ins(0, "1", "11", None, 2, 3)];
    not_lin(&h);
    let h = [del(0, "1", Some("5"), 0, 1)];
    not_lin(&h);
    // An answer of another operation's kind never fits.
    let h = [Call::new(
        0,
        KvOp::Read { key: b("1") },
        Output::Created,
        0,
        1,
    )];
    not_lin(&h);
    let h = [Call::new(
        0,
        KvOp::Delete { key: b("1") },
        Output::Mismatch(None),
        0,
        1,
    )];
    not_lin(&h);
}

#[test]
fn overlapping_calls_may_take_either_order() {
    // The read overlaps both inserts: it may see either value, or none.
    for seen in [None, Some("10"), Some("11")] {
        let h = [
            ins(0, "1", "10", None, 0, 10),
            ins(1, "1", "11", Some("10"), 5, 20),
            read(2, "1", seen, 1, 30),
        ];
        check(&h).unwrap();
    }
    // Here insert 11 must go first (insert 10 answers that it replaced 11), though 10 was
    // invoked first.
    let h = [
        ins(0, "1", "10", Some("11"), 0, 10),
        ins(1, "1", "11", None, 5, 20),
        read(2, "1", Some("10"), 21, 22),
    ];
    check(&h).unwrap();
    // Calls that touch at one instant overlap.
    let h = [
        ins(0, "1", "10", Some("11"), 0, 5),
        ins(1, "1", "11", None, 5, 6),
    ];
    check(&h).unwrap();
}

#[test]
fn read_of_a_value_inserted_after_the_read_returned_fails() {
    let h = [
        read(1, "1", Some("10"), 0, 4),
        ins(0, "1", "10", None, 5, 10),
    ];
    let v = not_lin(&h);
    assert_eq!(v.blocked, 0);
    assert!(v.to_string().contains("read 1 -> value 10"), "{v}");
}

#[test]
fn stale_read_after_a_completed_overwrite_fails() {
    let h = [
        ins(0, "1", "10", None, 0, 1),
        ins(0, "1", "11", Some("10"), 2, 3),
        read(1, "1", Some("10"), 4, 5),
    ];
    not_lin(&h);
    // The same read overlapping the overwrite is fine.
    let h = [
        ins(0, "1", "10", None, 0, 1),
        ins(0, "1", "11", Some("10"), 2, 6),
        read(1, "1", Some("10"), 4, 5),
    ];
    check(&h).unwrap();
}

#[test]
fn reads_must_agree_on_one_order() {
    // Two readers each see both inserts, in opposite orders, all overlapping: the writes
    // cannot be ordered both ways (a violation only the search, not a pairwise test, finds).
    let h = [
        ins(0, "1", "10", None, 0, 100),
        ins(1, "1", "11", Some("10"), 0, 100),
        read(2, "1", Some("10"), 1, 2),
        read(2, "1", Some("11"), 3, 4),
        read(3, "1", Some("11"), 1, 2),
        read(3, "1", Some("10"), 3, 4),
    ];
    not_lin(&h);
}

#[test]
fn a_delete_answers_only_once() {
    let h = [
        ins(0, "1", "10", None, 0, 1),
        del(1, "1", Some("10"), 2, 10),
        del(2, "1", Some("10"), 2, 10),
    ];
    not_lin(&h);
    let h = [
        ins(0, "1", "10", None, 0, 1),
        del(1, "1", Some("10"), 2, 10),
        del(2, "1", None, 2, 10),
    ];
    check(&h).unwrap();
}

#[test]
fn insert_new_creates_only_once_and_reports_the_current_value() {
    // Two overlapping insert-news of an absent key: one creates, the other sees its value.
    let ok = [
        new(0, "k", "a", None, 0, 10),
        new(1, "k", "b", Some("a"), 0, 10),
    ];
    check(&ok).unwrap();
    // Both creating: not linearizable.
    not_lin(&[new(0, "k", "a", None, 0, 10), new(1, "k", "b", None, 0, 10)]);
    // Seeing its own value, or a value nobody wrote.
    not_lin(&[
        new(0, "k", "a", None, 0, 10),
        new(1, "k", "b", Some("b"), 0, 10),
    ]);
    not_lin(&[
        new(0, "k", "a", None, 0, 10),
        new(1, "k", "b", Some("c"), 0, 10),
    ]);
    // Creating although an insert had completed before it began.
    not_lin(&[ins(0, "k", "a", None, 0, 1), new(1, "k", "b", None, 2, 3)]);
    // "Exists" after a completed delete, with the deleted value.
    not_lin(&[
        ins(0, "k", "a", None, 0, 1),
        del(0, "k", Some("a"), 2, 3),
        new(1, "k", "b", Some("a"), 4, 5),
    ]);
    // Exists changes nothing: a later read must not see its value.
    not_lin(&[
        ins(0, "k", "a", None, 0, 1),
        new(1, "k", "b", Some("a"), 2, 3),
        read(1, "k", Some("b"), 4, 5),
    ]);
    // Created stores its value: a later read must see it.
    check(&[new(1, "k", "b", None, 2, 3), read(1, "k", Some("b"), 4, 5)]).unwrap();
    not_lin(&[new(1, "k", "b", None, 2, 3), read(1, "k", None, 4, 5)]);
}

#[test]
fn cas_swaps_only_from_the_expected_value() {
    let start = ins(0, "k", "a", None, 0, 1);
    // Two overlapping cas from "a": at most one swaps.
    check(&[
        start.clone(),
        cas(1, "k", Some("a"), "b", Ok(()), 2, 10),
        cas(2, "k", Some("a"), "c", Err(Some("b")), 2, 10),
    ])
    .unwrap();
    not_lin(&[
        start.clone(),
        cas(1, "k", Some("a"), "b", Ok(()), 2, 10),
        cas(2, "k", Some("a"), "c", Ok(()), 2, 10),
    ]);
    // A chain a -> b -> c is fine in that order, whichever was invoked first.
    check(&[
        start.clone(),
        cas(2, "k", Some("b"), "c", Ok(()), 2, 10),
        cas(1, "k", Some("a"), "b", Ok(()), 3, 10),
        read(1, "k", Some("c"), 11, 12),
    ])
    .unwrap();
    // But not when the second had returned before the first began.
    not_lin(&[
        start.clone(),
        cas(2, "k", Some("b"), "c", Ok(()), 2, 3),
        cas(1, "k", Some("a"), "b", Ok(()), 4, 10),
    ]);
    // A mismatch must report the value then current, never the expected one.
    not_lin(&[
        start.clone(),
        cas(1, "k", Some("a"), "b", Err(Some("a")), 2, 3),
    ]);
    not_lin(&[
        start.clone(),
        cas(1, "k", Some("x"), "b", Err(Some("z")), 2, 3),
    ]);
    not_lin(&[start.clone(), cas(1, "k", Some("x"), "b", Err(None), 2, 3)]);
    check(&[
        start.clone(),
        cas(1, "k", Some("x"), "b", Err(Some("a")), 2, 3),
    ])
    .unwrap();
    // A swap stores the new value; a mismatch stores nothing.
    not_lin(&[
        start.clone(),
        cas(1, "k", Some("a"), "b", Ok(()), 2, 3),
        read(1, "k", Some("a"), 4, 5),
    ]);
    not_lin(&[
        start.clone(),
        cas(1, "k", Some("x"), "b", Err(Some("a")), 2, 3),
        read(1, "k", Some("b"), 4, 5),
    ]);
    // Swapping from a value no one wrote.
    not_lin(&[start, cas(1, "k", Some("q"), "b", Ok(()), 2, 3)]);
}

#[test]
fn cas_may_expect_absence() {
    // Expect-absent on an absent key swaps; only one of two overlapping ones can.
    check(&[
        cas(0, "k", None, "a", Ok(()), 0, 1),
        read(0, "k", Some("a"), 2, 3),
    ])
    .unwrap();
    check(&[
        cas(0, "k", None, "a", Ok(()), 0, 10),
        cas(1, "k", None, "b", Err(Some("a")), 0, 10),
    ])
    .unwrap();
    not_lin(&[
        cas(0, "k", None, "a", Ok(()), 0, 10),
        cas(1, "k", None, "b", Ok(()), 0, 10),
    ]);
    // Expect-absent on a present key mismatches with the value; swapping is a violation.
    not_lin(&[
        ins(0, "k", "a", None, 0, 1),
        cas(1, "k", None, "b", Ok(()), 2, 3),
    ]);
    check(&[
        ins(0, "k", "a", None, 0, 1),
        cas(1, "k", None, "b", Err(Some("a")), 2, 3),
    ])
    .unwrap();
    // Expecting a value of an absent key mismatches with "absent", not with a value.
    check(&[cas(0, "k", Some("a"), "b", Err(None), 0, 1)]).unwrap();
    not_lin(&[cas(0, "k", Some("a"), "b", Ok(()), 0, 1)]);
    not_lin(&[cas(0, "k", Some("a"), "b", Err(Some("")), 0, 1)]);
    // The empty value is a value, not absence.
    not_lin(&[
        ins(0, "k", "", None, 0, 1),
        cas(1, "k", None, "b", Ok(()), 2, 3),
    ]);
    check(&[
        ins(0, "k", "", None, 0, 1),
        cas(1, "k", Some(""), "b", Ok(()), 2, 3),
    ])
    .unwrap();
    // After a completed delete the key is absent again.
    not_lin(&[
        ins(0, "k", "a", None, 0, 1),
        del(0, "k", Some("a"), 2, 3),
        cas(1, "k", None, "b", Err(Some("a")), 4, 5),
    ]);
}

#[test]
fn add_is_atomic_and_refusals_change_nothing() {
    // Two overlapping adds of 1 to a missing key: 1 and 2, in either order; never 1 twice.
    for (x, y) in [(1, 2), (2, 1)] {
        check(&[
            add(0, "n", 1, num(x), 0, 10),
            add(1, "n", 1, num(y), 0, 10),
            read(2, "n", Some("2"), 11, 12),
        ])
        .unwrap();
    }
    not_lin(&[add(0, "n", 1, num(1), 0, 10), add(1, "n", 1, num(1), 0, 10)]);
    // The sum is stored in decimal: a later read sees exactly that.
    not_lin(&[add(0, "n", 5, num(5), 0, 1), read(0, "n", Some("05"), 2, 3)]);
    not_lin(&[add(0, "n", 5, num(5), 0, 1), read(0, "n", None, 2, 3)]);
    // Adding to a stored number.
    check(&[ins(0, "n", "-3", None, 0, 1), add(0, "n", 10, num(7), 2, 3)]).unwrap();
    not_lin(&[
        ins(0, "n", "-3", None, 0, 1),
        add(0, "n", 10, num(10), 2, 3),
    ]);
    // Not an integer: only when the value is not one.
    check(&[
        ins(0, "n", "x", None, 0, 1),
        add(0, "n", 1, Output::NotAnInteger, 2, 3),
    ])
    .unwrap();
    not_lin(&[
        ins(0, "n", "7", None, 0, 1),
        add(0, "n", 1, Output::NotAnInteger, 2, 3),
    ]);
    not_lin(&[add(0, "n", 1, Output::NotAnInteger, 0, 1)]);
    not_lin(&[ins(0, "n", "x", None, 0, 1), add(0, "n", 1, num(1), 2, 3)]);
    // A refused add changes nothing.
    not_lin(&[
        ins(0, "n", "x", None, 0, 1),
        add(0, "n", 1, Output::NotAnInteger, 2, 3),
        read(0, "n", Some("1"), 4, 5),
    ]);
    let max = i64::MAX.to_string();
    not_lin(&[
        ins(0, "n", &max, None, 0, 1),
        add(0, "n", 1, Output::Overflow, 2, 3),
        read(0, "n", None, 4, 5),
    ]);
    // Overflow: only at the edges.
    check(&[
        ins(0, "n", &max, None, 0, 1),
        add(0, "n", 1, Output::Overflow, 2, 3),
        add(0, "n", -1, num(i64::MAX - 1), 4, 5),
    ])
    .unwrap();
    not_lin(&[add(0, "n", 1, Output::Overflow, 0, 1)]);
    not_lin(&[
        ins(0, "n", &max, None, 0, 1),
        add(0, "n", 1, num(i64::MIN), 2, 3),
    ]);
    // An add overlapping an insert of a non-number may be refused (insert first) or
    // count from 0 (add first, and the insert replaces its sum); not both at once.
    check(&[
        add(0, "n", 1, Output::NotAnInteger, 0, 10),
        ins(1, "n", "x", None, 0, 10),
    ])
    .unwrap();
    check(&[
        add(0, "n", 1, num(1), 0, 10),
        ins(1, "n", "x", Some("1"), 0, 10),
    ])
    .unwrap();
    not_lin(&[add(0, "n", 1, num(1), 0, 10), ins(1, "n", "x", None, 0, 10)]);
    not_lin(&[
        add(0, "n", 1, Output::NotAnInteger, 0, 10),
        ins(1, "n", "x", Some("1"), 0, 10),
    ]);
}

#[test]
fn binary_keys_and_values_are_compared_exactly() {
    let k = "\u{0}\"k y\"";
    let h = [
        ins(0, k, "\u{0}", None, 0, 1),
        read(1, k, Some("\u{0}"), 2, 3),
        read(1, "\u{0}\"k y", None, 2, 3),
    ];
    check(&h).unwrap();
    let h = [ins(0, k, "\u{0}", None, 0, 1), read(1, k, Some(""), 2, 3)];
    let v = not_lin(&h);
    let text = v.to_string();
    assert!(text.contains("key \"\\x00\\\"k y\\\"\""), "{text}");
    assert!(text.contains("holding \"\\x00\""), "{text}");
    assert!(text.contains("-> value \"\""), "{text}");
    // Bytes that are not UTF-8.
    let raw = Call::new(
        0,
        KvOp::Insert {
            key: vec![0xff],
            value: vec![0xfe, 0],
        },
        Output::Created,
        0,
        1,
    );
    let wrong = Call::new(
        1,
        KvOp::Read { key: vec![0xff] },
        Output::Value(vec![0xfe]),
        2,
        3,
    );
    assert!(not_lin(&[raw, wrong]).to_string().contains("\"\\xfe\""));
}

#[test]
fn keys_are_checked_separately() {
    // Each key alone is fine, and the violation on key 2 is found among them.
    let mut h: Vec<Call> = (0..50u64)
        .map(|k| ins(k, &k.to_string(), &(k + 100).to_string(), None, k, k + 1000))
        .collect();
    check(&h).unwrap();
    h.push(read(99, "2", Some("7"), 2000, 2001));
    assert_eq!(not_lin(&h).key, b("2"));
}

#[test]
fn pending_calls_may_or_may_not_take_effect() {
    let pins = |key: &str, value: &str, at| {
        Call::pending(
            0,
            KvOp::Insert {
                key: b(key),
                value: b(value),
            },
            at,
        )
    };
    let h = [
        pins("1", "10", 0),
        read(1, "1", None, 5, 6),
        read(1, "1", Some("10"), 7, 8),
    ];
    check(&h).unwrap();
    let h = [pins("1", "10", 0), read(1, "1", None, 5, 6)];
    check(&h).unwrap();
    // But not before it was invoked.
    let h = [read(1, "1", Some("10"), 0, 1), pins("1", "10", 5)];
    not_lin(&h);
    // And only once.
    let h = [
        pins("1", "10", 0),
        read(1, "1", Some("10"), 5, 6),
        del(1, "1", Some("10"), 7, 8),
        read(1, "1", Some("10"), 9, 10),
    ];
    not_lin(&h);
    // The new operations too: a pending add counts once, and a pending cas may swap.
    let padd = Call::pending(
        0,
        KvOp::Add {
            key: b("n"),
            delta: 5,
        },
        0,
    );
    check(&[padd.clone(), add(1, "n", 1, num(6), 1, 2)]).unwrap();
    check(&[padd.clone(), add(1, "n", 1, num(1), 1, 2)]).unwrap();
    not_lin(&[padd.clone(), add(1, "n", 1, num(11), 1, 2)]);
    let pcas = Call::pending(
        0,
        KvOp::Cas {
            key: b("k"),
            expected: None,
            new: b("a"),
        },
        0,
    );
    check(&[pcas.clone(), new(1, "k", "b", Some("a"), 1, 2)]).unwrap();
    not_lin(&[
        pcas,
        new(1, "k", "b", Some("a"), 1, 2),
        new(1, "k", "c", None, 3, 4),
    ]);
}

#[test]
fn bad_calls_and_limits_are_reported() {
    let c = ins(0, "1", "10", None, 5, 4);
    assert_eq!(
        check(std::slice::from_ref(&c)),
        Err(CheckError::BadCall(Box::new(c)))
    );
    // Returned without an answer, or answered without returning.
    let mut c = ins(0, "1", "10", None, 0, 4);
    c.output = None;
    assert!(matches!(check(&[c]), Err(CheckError::BadCall(_))));
    let mut c = ins(0, "1", "10", None, 0, 4);
    c.ret = None;
    assert!(matches!(check(&[c]), Err(CheckError::BadCall(_))));
    // Sixteen overlapping reads of an absent key, then a read of a value nobody wrote: the
    // search visits every subset of the reads (2^16 configurations) before it knows; with
    // a small limit it gives up.
    let mut h: Vec<Call> = (0..16).map(|i| read(i, "1", None, 0, 100)).collect();
    h.push(read(99, "1", Some("1000"), 101, 102));
    assert_eq!(not_lin(&h).blocked, 16);
    let opts = Options {
        max_configurations: 50,
    };
    assert!(matches!(
        check_with(&h, &opts),
        Err(CheckError::Inconclusive { key, .. }) if key == b("1")
    ));
}

#[test]
fn long_sequential_history_is_linear_in_work() {
    let mut h = Vec::new();
    let mut prev: Option<String> = None;
    for i in 0..20_000u64 {
        let v = i.to_string();
        let c = match i % 4 {
            0 | 1 => ins(i % 4, "7", &v, prev.as_deref(), 2 * i, 2 * i + 1),
            2 => cas(i % 4, "7", prev.as_deref(), &v, Ok(()), 2 * i, 2 * i + 1),
            _ => {
                let n: i64 = prev.as_deref().unwrap().parse().unwrap();
                let (d, sum) = (i as i64 - n, i as i64);
                add(i % 4, "7", d, num(sum), 2 * i, 2 * i + 1)
            }
        };
        h.push(c);
        prev = Some(v);
    }
    let r = check(&h).unwrap();
    assert_eq!(r.configurations, 20_000);
}

#[test]
fn big_values_cost_no_more_configurations() {
    // Values of 64 KiB: interned, so the memo holds ids, not copies.
    let big = |c: u8| vec![c; 64 * 1024];
    let op = |v: Vec<u8>| KvOp::Insert {
        key: b("k"),
        value: v,
    };
    let mut h: Vec<Call> = (0..8u8)
        .map(|i| {
            let out = if i == 0 {
                Output::Created
            } else {
                Output::Replaced(big(i - 1))
            };
            Call::new(i as u64, op(big(i)), out, 0, 100)
        })
        .collect();
    h.push(Call::new(
        9,
        KvOp::Read { key: b("k") },
        Output::Value(big(7)),
        101,
        102,
    ));
    check(&h).unwrap();
    h.last_mut().unwrap().output = Some(Output::Value(big(3)));
    not_lin(&h);
}

/// xorshift64*, for the random histories below.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Whether some order of `calls` (each pending one placed or left out) keeps real-time
/// order and fits every answer: every permutation, tried by brute force.
fn brute_force(calls: &[Call]) -> bool {
    fn go(calls: &[Call], used: &mut Vec<bool>, state: Option<Vec<u8>>) -> bool {
        // Done when every returned call is placed.
        if calls
            .iter()
            .zip(used.iter())
            .all(|(c, &u)| u || c.ret.is_none())
        {
            return true;
        }
        for i in 0..calls.len() {
            if used[i] {
                continue;
            }
            // Every call that returned before this one was invoked must be placed.
            let ready = calls
                .iter()
                .zip(used.iter())
                .all(|(d, &u)| u || d.ret.is_none_or(|r| r >= calls[i].invoke));
            if !ready {
                continue;
            }
            let (out, after) = calls[i].op.apply(state.as_deref());
            if calls[i].ret.is_some() && Some(&out) != calls[i].output.as_ref() {
                continue;
            }
            used[i] = true;
            if go(calls, used, after) {
                return true;
            }
            used[i] = false;
        }
        false
    }
    go(calls, &mut vec![false; calls.len()], None)
}

#[test]
fn agrees_with_brute_force_on_random_histories() {
    // Small histories of every operation on one key, over few values (so that answers
    // often fit by chance), with answers from a random sequential run (mostly
    // linearizable) or corrupted (mostly not), some calls pending.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let values: [&[u8]; 4] = [b"", b"1", b"x", b"-1"];
    let (mut yes, mut no) = (0, 0);
    for round in 0..3000 {
        let n = 1 + rng.below(6) as usize;
        let key = b("k");
        let mut calls: Vec<Call> = (0..n)
            .map(|c| {
                let v = |r: &mut Rng| values[r.below(4) as usize].to_vec();
                let op = match rng.below(6) {
                    0 => KvOp::Insert {
                        key: key.clone(),
                        value: v(&mut rng),
                    },
                    1 => KvOp::Read { key: key.clone() },
                    2 => KvOp::Delete { key: key.clone() },
                    3 => KvOp::InsertNew {
                        key: key.clone(),
                        value: v(&mut rng),
                    },
                    4 => KvOp::Cas {
                        key: key.clone(),
                        expected: (rng.below(3) > 0).then(|| v(&mut rng)),
                        new: v(&mut rng),
                    },
                    _ => KvOp::Add {
                        key: key.clone(),
                        delta: [1, -1, 2, i64::MAX][rng.below(4) as usize],
                    },
                };
                let invoke = rng.below(12);
                Call::new(c as u64, op, Output::Created, invoke, invoke + rng.below(8))
            })
            .collect();
        // Answers: run the calls in a random order (then shuffle a little).
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut state: Option<Vec<u8>> = None;
        for &i in &order {
            let (out, after) = calls[i].op.apply(state.as_deref());
            calls[i].output = Some(out);
            state = after;
        }
        if round % 3 == 0 {
            let i = rng.below(n as u64) as usize;
            let other = calls[rng.below(n as u64) as usize].output.clone();
            calls[i].output = other;
        }
        if rng.below(4) == 0 {
            let i = rng.below(n as u64) as usize;
            calls[i].ret = None;
            calls[i].output = None;
        }
        let want = brute_force(&calls);
        let got = check(&calls);
        assert_eq!(got.is_ok(), want, "{got:?} for {calls:#?}");
        if want {
            yes += 1;
        } else {
            no += 1;
        }
    }
    // Both verdicts must be common, or the comparison shows little.
    assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
}
