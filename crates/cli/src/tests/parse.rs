//! Tests of parsing operations: labels, arguments and their errors, limits, completion.

use super::*;
use crate::args::{ArgValue, build_op, label, op_args};
use crate::bytes::quoted;

// --- parse_ops -------------------------------------------------------------------------

#[test]
fn todays_command_lines_parse_as_before() {
    let tokens: Vec<Token> = ["insert", "1", "2", "insert", "2", "4"]
        .into_iter()
        .map(Token::bare)
        .collect();
    assert_eq!(
        parse_ops(&tokens).unwrap(),
        [
            item(
                "insert 1 2",
                Op::Insert {
                    key: b("1"),
                    value: b("2")
                }
            ),
            item(
                "insert 2 4",
                Op::Insert {
                    key: b("2"),
                    value: b("4")
                }
            ),
        ]
    );
    assert_eq!(one("read 1"), item("read 1", Op::Read { key: b("1") }));
    assert_eq!(
        one("delete 7"),
        item("delete 7", Op::Delete { key: b("7") })
    );
    assert_eq!(one("print 0"), item("print 0", Op::Print { bucket: 0 }));
    assert_eq!(
        one("threads start 2"),
        item("threads start 2", Op::ThreadsStart { n: 2 })
    );
    assert_eq!(one("threads stop"), item("threads stop", Op::ThreadsStop));
    assert_eq!(one("stats"), item("stats", Op::Stats));
    assert_eq!(one("quit"), item("quit", Op::Quit));
    assert!(parse_ops(&[]).unwrap().is_empty());
    assert_eq!(parse("read 1 read 2 stats").unwrap().len(), 3);
}

#[test]
fn new_verbs_parse_with_labels_through_quote() {
    assert_eq!(
        one(r#"insert "a b" 2"#),
        item(
            r#"insert "a b" 2"#,
            Op::Insert {
                key: b("a b"),
                value: b("2")
            }
        )
    );
    assert_eq!(
        one("insert-new k v"),
        item(
            "insert-new k v",
            Op::InsertNew {
                key: b("k"),
                value: b("v")
            }
        )
    );
    assert_eq!(
        one("cas k --absent v"),
        item(
            "cas k --absent v",
            Op::Cas {
                key: b("k"),
                expected: None,
                new: b("v")
            }
        )
    );
    assert_eq!(
        one(r#"cas k "--absent" v"#),
        item(
            r#"cas k "--absent" v"#,
            Op::Cas {
                key: b("k"),
                expected: Some(b("--absent")),
                new: b("v")
            }
        )
    );
    assert_eq!(
        one(r#"cas k old "\x00""#),
        item(
            r#"cas k old "\x00""#,
            Op::Cas {
                key: b("k"),
                expected: Some(b("old")),
                new: vec![0]
            }
        )
    );
    // --absent is only the expected value: as a key or a value it is a word.
    assert_eq!(
        one("insert --absent --absent").op,
        Op::Insert {
            key: b("--absent"),
            value: b("--absent")
        }
    );
    assert_eq!(
        one("cas --absent --absent --absent").op,
        Op::Cas {
            key: b("--absent"),
            expected: None,
            new: b("--absent")
        }
    );
    assert_eq!(
        one("add n -3"),
        item(
            "add n -3",
            Op::Add {
                key: b("n"),
                delta: -3
            }
        )
    );
    assert_eq!(one("add n +3").label, "add n 3");
    assert_eq!(one("len"), item("len", Op::Len));
    // Keys may look like verbs or numbers: arguments are positional.
    assert_eq!(
        one("insert read 1").op,
        Op::Insert {
            key: b("read"),
            value: b("1")
        }
    );
    // Numbers may be quoted (only scan's optional count may not).
    assert_eq!(one(r#"print "3""#).op, Op::Print { bucket: 3 });
    // Values may be empty, keys not.
    assert_eq!(
        one(r#"insert k """#),
        item(
            r#"insert k """#,
            Op::Insert {
                key: b("k"),
                value: vec![]
            }
        )
    );
    assert_eq!(
        err(r#"read """#),
        "empty key for 'read' (a key is at least 1 byte)"
    );
    assert!(err(r#"insert "" v"#).contains("empty key"));
    // The label of a non-UTF-8 key.
    assert_eq!(one(r#"read "\xff""#).label, r#"read "\xff""#);
}

#[test]
fn scan_count_is_optional_and_taken_only_from_an_unquoted_number() {
    assert_eq!(
        one("scan 0"),
        item(
            "scan 0 10",
            Op::Scan {
                cursor: 0,
                count: 10
            }
        )
    );
    assert_eq!(
        one("scan 17 5"),
        item(
            "scan 17 5",
            Op::Scan {
                cursor: 17,
                count: 5
            }
        )
    );
    let items = parse("scan 3 read 1").unwrap();
    assert_eq!(
        items[0].op,
        Op::Scan {
            cursor: 3,
            count: SCAN_COUNT
        }
    );
    assert_eq!(items[1].op, Op::Read { key: b("1") });
    assert_eq!(parse("scan 3 2 len").unwrap().len(), 2);
    // A quoted number is not the count: it is the next operation, which does not exist.
    assert!(err(r#"scan 3 "2""#).starts_with("unknown operation '\"2\"'"));
    assert!(err("scan 3 0").contains("at least 1"));
    assert!(err("scan 3 4294967296").contains("out of range (1..=4294967295)"));
    assert_eq!(err("scan"), "'scan' needs a cursor");
    assert_eq!(
        err("scan x"),
        "cursor 'x' of 'scan' is not a non-negative integer"
    );
}

#[test]
fn missing_arguments_are_named() {
    assert_eq!(err("insert 1"), "'insert' needs a value");
    assert_eq!(err("insert"), "'insert' needs a key");
    assert_eq!(err("read"), "'read' needs a key");
    assert_eq!(err("read 1 delete"), "'delete' needs a key");
    assert_eq!(err("print"), "'print' needs a bucket");
    assert_eq!(err("cas k"), "'cas' needs an expected value (or --absent)");
    assert_eq!(err("cas k --absent"), "'cas' needs a new value");
    assert_eq!(err("add k"), "'add' needs a delta");
    assert_eq!(err("threads start"), "'threads start' needs a number n");
}

#[test]
fn bad_numbers_say_which_and_why() {
    assert_eq!(
        err("print x"),
        "bucket 'x' of 'print' is not a non-negative integer"
    );
    assert_eq!(
        err("print -1"),
        "bucket '-1' of 'print' is not a non-negative integer"
    );
    assert_eq!(
        err("print +1"),
        "bucket '+1' of 'print' is not a non-negative integer"
    );
    assert_eq!(
        err(r#"print """#),
        "bucket '\"\"' of 'print' is not a non-negative integer"
    );
    assert_eq!(
        err("print 18446744073709551616"),
        "bucket '18446744073709551616' of 'print' is out of range (0..=18446744073709551615)"
    );
    assert_eq!(
        one("print 18446744073709551615").op,
        Op::Print { bucket: u64::MAX }
    );
    assert_eq!(err("add k 1.5"), "delta '1.5' of 'add' is not an integer");
    assert_eq!(err("add k -"), "delta '-' of 'add' is not an integer");
    assert_eq!(err("add k --1"), "delta '--1' of 'add' is not an integer");
    assert_eq!(
        err("add k 9223372036854775808"),
        "delta '9223372036854775808' of 'add' is out of range (-9223372036854775808..=9223372036854775807)"
    );
    assert_eq!(
        one("add k -9223372036854775808").op,
        Op::Add {
            key: b("k"),
            delta: i64::MIN
        }
    );
    assert_eq!(
        err("threads start 0"),
        "n '0' of 'threads start' must be at least 1 (1..=4294967295)"
    );
    assert_eq!(
        err("threads start 4294967296"),
        "n '4294967296' of 'threads start' is out of range (1..=4294967295)"
    );
    assert_eq!(
        err("threads start two"),
        "n 'two' of 'threads start' is not a positive integer"
    );
    assert_eq!(
        one("threads start 4294967295").op,
        Op::ThreadsStart { n: u32::MAX }
    );
}

#[test]
fn unknown_operations_list_the_table() {
    let names: Vec<&str> = VERBS.iter().map(|v| v.name).collect();
    assert_eq!(
        err("frob 1"),
        format!(
            "unknown operation 'frob' (operations: {})",
            names.join(", ")
        )
    );
    assert!(err("frob").contains("insert, read, delete, insert-new, cas"));
    assert!(err("read 1 2").starts_with("unknown operation '2'"));
    // A quoted word never names an operation, and is shown quoted.
    assert!(err(r#""read" 1"#).starts_with("unknown operation '\"read\"'"));
    assert!(err(r#"threads "stop""#).starts_with("unknown 'threads \"stop\"'"));
    // Names are case-sensitive.
    assert!(err("READ 1").starts_with("unknown operation 'READ'"));
    // The first word of a two-word name says what may follow it.
    assert_eq!(err("threads"), "'threads' needs 'start <n>' or 'stop'");
    assert_eq!(
        err("threads go"),
        "unknown 'threads go': use 'threads start <n>' or 'threads stop'"
    );
    assert!(err("start 1").starts_with("unknown operation 'start'"));
}

#[test]
fn parse_errors_are_one_line() {
    for line in [
        "frob",
        "threads",
        "threads x",
        "insert",
        "print x",
        "read \"\"",
        "add k x",
        "threads start 0",
        "scan 0 0",
        "\"\\n\"",
    ] {
        let e = err(line);
        assert!(!e.contains('\n'), "{line}: {e}");
    }
}

/// A random argument of `kind`, with awkward bytes often.
fn random_arg(kind: ArgKind, r: &mut impl FnMut() -> u64) -> ArgValue {
    fn random_bytes(min: usize, r: &mut impl FnMut() -> u64) -> Vec<u8> {
        let len = min + (r() % 6) as usize;
        (0..len)
            .map(|_| {
                let x = r();
                match x % 4 {
                    0 => b"\"'\\# -x"[(x >> 8) as usize % 7],
                    1 => (x >> 8) as u8,
                    _ => b'a' + (x >> 8) as u8 % 26,
                }
            })
            .collect()
    }
    match kind {
        ArgKind::Key => ArgValue::Bytes(random_bytes(1, r)),
        ArgKind::Value => ArgValue::Bytes(random_bytes(0, r)),
        ArgKind::Expected => match r() % 4 {
            0 => ArgValue::Absent,
            1 => ArgValue::Bytes(ABSENT.as_bytes().to_vec()),
            _ => ArgValue::Bytes(random_bytes(0, r)),
        },
        ArgKind::U64 => ArgValue::U64(r() >> (r() % 64)),
        ArgKind::I64 => ArgValue::I64((r() >> (r() % 64)) as i64),
        ArgKind::PositiveU32 => ArgValue::U32(((r() >> (r() % 32)) as u32).max(1)),
    }
}

/// For every verb of the table, with random arguments: the label written from the
/// arguments parses back to the same operation and label, and the operation's arguments
/// read back from the codec are those given.
#[test]
fn labels_parse_back_to_the_same_operation_for_every_verb() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut r = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let mut line = String::new();
        let mut want = Vec::new();
        for _ in 0..1 + round % 4 {
            let info = &VERBS[(r() % VERBS.len() as u64) as usize];
            let args: Vec<ArgValue> = info
                .shape
                .args()
                .iter()
                .map(|a| random_arg(a.kind, &mut r))
                .collect();
            let op = build_op(info, &args).unwrap();
            assert_eq!(op.verb(), info.verb);
            assert_eq!(op_args(&op), args, "{op:?}");
            let l = label(info, &args);
            line.push_str(&l);
            line.push(' ');
            want.push(Item { label: l, op });
        }
        let got = parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(got, want, "{line}");
        // Each label alone too, and as shell arguments.
        for it in &want {
            assert_eq!(one(&it.label), *it);
            let argv: Vec<Token> = split_line(&it.label)
                .unwrap()
                .iter()
                .map(|t| {
                    if t.quoted {
                        argv_token(&quoted(&t.bytes)).unwrap()
                    } else {
                        argv_token(std::str::from_utf8(&t.bytes).unwrap()).unwrap()
                    }
                })
                .collect();
            assert_eq!(parse_ops(&argv).unwrap(), std::slice::from_ref(it));
        }
    }
}

#[test]
fn every_verb_of_the_table_parses_from_its_usage() {
    for info in &VERBS {
        let line: Vec<String> = std::iter::once(info.name.to_string())
            .chain(info.shape.args().iter().map(|a| match a.kind {
                ArgKind::Key | ArgKind::Value | ArgKind::Expected => "k".to_string(),
                _ => "1".to_string(),
            }))
            .collect();
        let line = line.join(" ");
        let it = one(&line);
        assert_eq!(it.op.verb(), info.verb);
        assert_eq!(it.label, line);
    }
}

#[test]
fn limits_are_checked_per_field() {
    let limits = Limits {
        max_key: 3,
        max_value: 4,
    };
    for ok in [
        "insert abc abcd",
        "cas abc --absent abcd",
        "cas k abcd v",
        "print 99999",
    ] {
        assert_eq!(check_limits(&one(ok), &limits), Ok(()), "{ok}");
    }
    assert_eq!(
        check_limits(&one("read abcd"), &limits).unwrap_err(),
        "key of 4 bytes is longer than the server's limit of 3 bytes (in 'read')"
    );
    assert_eq!(
        check_limits(&one("insert k abcde"), &limits).unwrap_err(),
        "value of 5 bytes is longer than the server's limit of 4 bytes (in 'insert')"
    );
    assert!(
        check_limits(&one("cas k abcde v"), &limits)
            .unwrap_err()
            .starts_with("value of 5 bytes")
    );
    assert!(
        check_limits(&one("cas k v abcde"), &limits)
            .unwrap_err()
            .starts_with("value of 5 bytes")
    );
    assert_eq!(
        check_limits(
            &one("len"),
            &Limits {
                max_key: 1,
                max_value: 0
            }
        ),
        Ok(())
    );
}

#[test]
fn completion_follows_the_table() {
    let next = |line: &str| next_words(&split_line(line).unwrap(), |_| true);
    let firsts = next("");
    assert_eq!(firsts.iter().filter(|w| **w == "threads").count(), 1);
    for v in &VERBS {
        assert!(
            firsts.contains(&v.name.split(' ').next().unwrap()),
            "{}",
            v.name
        );
    }
    assert_eq!(next("read 1"), firsts);
    assert!(next("read").is_empty());
    assert!(next("insert 1").is_empty());
    assert_eq!(next("insert 1 2"), firsts);
    assert!(next("cas k --absent").is_empty());
    assert_eq!(next("cas k --absent v"), firsts);
    assert_eq!(next("threads"), ["start", "stop"]);
    assert_eq!(next("read 1 threads"), ["start", "stop"]);
    assert!(next("threads start").is_empty());
    assert_eq!(next("threads start 2"), firsts);
    assert_eq!(next("threads stop"), firsts);
    // Scan's count is optional: after the cursor, an operation may come.
    assert!(next("scan").is_empty());
    assert_eq!(next("scan 0"), firsts);
    assert_eq!(next("scan 0 5"), firsts);
    // A quoted word is never a verb; unknown words are skipped.
    assert_eq!(next(r#""threads""#), firsts);
    assert_eq!(next("frob"), firsts);
    assert!(next("frob read").is_empty());
    // Only the verbs `has` accepts are offered; the walk still knows every verb.
    let no_threads = |v: Verb| !matches!(v, Verb::ThreadsStart | Verb::ThreadsStop);
    let next = |line: &str| next_words(&split_line(line).unwrap(), no_threads);
    let without: Vec<_> = firsts.iter().copied().filter(|w| *w != "threads").collect();
    assert_eq!(next(""), without);
    assert_eq!(next("threads"), without);
    assert!(next("threads start").is_empty());
    let only_print = |v: Verb| v == Verb::Print;
    assert_eq!(
        next_words(&split_line("threads").unwrap(), only_print),
        ["print"]
    );
}
