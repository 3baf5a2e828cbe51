//! Tests of each operation's sequential meaning: delete, insert-new, cas, add, and byte
//! strings compared exactly.

use super::*;

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
