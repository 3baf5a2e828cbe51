//! Tests of the order the checker asks for: real-time order, one order that every answer
//! fits, keys checked apart, pending calls.

use super::*;

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
