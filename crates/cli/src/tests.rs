//! Unit tests of this crate.

use super::*;

#[test]
fn sizes_parse_with_binary_units() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("64K"), Ok(65536));
    assert_eq!(parse_size("1m"), Ok(1 << 20));
    assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    assert!(parse_size("x").is_err());
    assert!(parse_size("5T").is_err());
    assert!(parse_size("99999999999999999999").is_err());
    assert!(parse_size("18014398509481984G").is_err());
}
use proptest::prelude::*;
use shmkv::wire::{Stat, Verb};

fn words(line: &str) -> Vec<Vec<u8>> {
    split_line(line)
        .unwrap()
        .into_iter()
        .map(|t| t.bytes)
        .collect()
}

fn parse(line: &str) -> Result<Vec<Item>, String> {
    parse_ops(&split_line(line).unwrap())
}

fn one(line: &str) -> Item {
    let mut items = parse(line).unwrap();
    assert_eq!(items.len(), 1, "{line}");
    items.pop().unwrap()
}

fn err(line: &str) -> String {
    parse(line).unwrap_err()
}

fn item(label: &str, op: Op) -> Item {
    Item {
        label: label.into(),
        op,
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

// --- split_line ------------------------------------------------------------------------

#[test]
fn split_line_separates_words_on_any_whitespace() {
    assert!(split_line("").unwrap().is_empty());
    assert!(split_line(" \t\r\n\x0b\x0c ").unwrap().is_empty());
    assert_eq!(words("  insert 1\t2\r\n"), [b("insert"), b("1"), b("2")]);
    assert_eq!(words("a\x0bb\x0cc"), [b("a"), b("b"), b("c")]);
    // Bare words are taken as they are, backslashes and non-ASCII included.
    assert_eq!(words(r"a\n é"), [b(r"a\n"), b("é")]);
    let t = split_line("read k").unwrap();
    assert_eq!(t, [Token::bare("read"), Token::bare("k")]);
}

#[test]
fn split_line_comments_start_at_an_unquoted_hash_that_starts_a_word() {
    assert!(split_line("# only a comment").unwrap().is_empty());
    assert!(split_line("   #").unwrap().is_empty());
    assert_eq!(
        words("insert 1 2   # comment \"x"),
        [b("insert"), b("1"), b("2")]
    );
    assert_eq!(words("a#b c#"), [b("a#b"), b("c#")]);
    assert_eq!(words("\"#x\" '#y'"), [b("#x"), b("#y")]);
}

#[test]
fn split_line_double_quotes_take_redis_escapes() {
    assert_eq!(
        words(r#""a b" "\n\r\t\b\a\\\"" "\x00\xff\x7F\xAb""#),
        [
            b("a b"),
            b"\n\r\t\x08\x07\\\"".to_vec(),
            vec![0x00, 0xff, 0x7f, 0xab],
        ]
    );
    // Any other escaped character is itself; \x without two hex digits is "x".
    assert_eq!(words(r#""\q\'\ \é""#), [b("q' é")]);
    assert_eq!(words(r#""\xZZ" "\x4" "\x""#), [b("xZZ"), b("x4"), b("x")]);
    // A single quote inside double quotes is a character.
    assert_eq!(words(r#""it's""#), [b("it's")]);
    // The empty word.
    let t = split_line(r#""""#).unwrap();
    assert_eq!(
        t,
        [Token {
            bytes: vec![],
            quoted: true
        }]
    );
}

#[test]
fn split_line_single_quotes_take_only_the_quote_escape() {
    assert_eq!(words(r"'it\'s'"), [b("it's")]);
    assert_eq!(words(r"'a\nb\x00'"), [b(r"a\nb\x00")]);
    assert_eq!(words(r#"'say "hi"'"#), [b(r#"say "hi""#)]);
    assert_eq!(words("''"), [b("")]);
}

#[test]
fn split_line_a_quote_inside_a_word_opens_a_quoted_part_as_redis_does() {
    let t = split_line(r#"a"b c" d'e f'"#).unwrap();
    assert_eq!(
        t,
        [
            Token {
                bytes: b("ab c"),
                quoted: true
            },
            Token {
                bytes: b("de f"),
                quoted: true
            }
        ]
    );
}

#[test]
fn split_line_errors_are_one_line_with_the_column() {
    let e = split_line(r#"insert "a b"#).unwrap_err();
    assert_eq!(e, "unbalanced quotes: the \" at column 8 is never closed");
    let e = split_line("read 'abc").unwrap_err();
    assert_eq!(e, "unbalanced quotes: the ' at column 6 is never closed");
    // A backslash at the end does not close anything.
    assert!(
        split_line(r#""abc\"#)
            .unwrap_err()
            .starts_with("unbalanced quotes")
    );
    assert!(
        split_line(r#""abc\""#)
            .unwrap_err()
            .starts_with("unbalanced quotes")
    );
    assert!(
        split_line(r"'abc\'")
            .unwrap_err()
            .starts_with("unbalanced quotes")
    );
    let e = split_line(r#"read "a"b"#).unwrap_err();
    assert_eq!(
        e,
        "the closing \" at column 8 must be followed by a space or the end of the line"
    );
    assert_eq!(
        split_line("é 'x'y").unwrap_err(),
        "the closing ' at column 5 must be followed by a space or the end of the line"
    );
    // A quote followed by whitespace of any kind is fine.
    assert_eq!(words("\"a\"\t'b'\n"), [b("a"), b("b")]);
    for line in [r#"""#, "'", r#""a"b"#, r#"''x"#] {
        assert!(!split_line(line).unwrap_err().contains('\n'));
    }
}

// --- argv_token ------------------------------------------------------------------------

#[test]
fn argv_token_is_literal_unless_it_starts_with_a_quote() {
    for arg in [
        "insert", "a b", r"a\x00", "#x", r#"a"b""#, "", "--absent", "é",
    ] {
        assert_eq!(argv_token(arg).unwrap(), Token::bare(arg));
    }
    let t = argv_token(r#""a\x00b""#).unwrap();
    assert_eq!(
        t,
        Token {
            bytes: vec![b'a', 0, b'b'],
            quoted: true
        }
    );
    assert_eq!(argv_token(r"'it\'s'").unwrap().bytes, b("it's"));
    assert_eq!(argv_token(r#""a b""#).unwrap().bytes, b("a b"));
    assert_eq!(
        argv_token(r#""""#).unwrap(),
        Token {
            bytes: vec![],
            quoted: true
        }
    );
    assert!(argv_token(r#""--absent""#).unwrap().quoted);
}

#[test]
fn argv_token_errors() {
    assert_eq!(
        argv_token(r#""abc"#).unwrap_err(),
        "argument \"abc: unbalanced quotes: the \" at column 1 is never closed"
    );
    assert_eq!(
        argv_token(r#""a"b"#).unwrap_err(),
        "argument \"a\"b goes on after its closing quote (quote the whole argument)"
    );
    assert!(argv_token(r#""a" "b""#).is_err());
    assert!(argv_token("'a' ").is_err());
}

// --- quote -----------------------------------------------------------------------------

#[test]
fn quote_prints_plain_words_bare_and_the_rest_escaped() {
    let cases: &[(&[u8], &str)] = &[
        (b"abc", "abc"),
        (b"1", "1"),
        (b"a#", "a#"),
        (b"--absent", "--absent"),
        (b"!~{}", "!~{}"),
        (b"", r#""""#),
        (b"#x", r##""#x""##),
        (b"a b", r#""a b""#),
        (b" ", r#"" ""#),
        (b"it's", r#""it's""#),
        (b"say \"hi\"", r#""say \"hi\"""#),
        (b"a\\b", r#""a\\b""#),
        (b"\n\r\t\x07\x08", r#""\n\r\t\a\b""#),
        (b"\x00\x1f\x7f\x80\xff", r#""\x00\x1f\x7f\x80\xff""#),
        ("é".as_bytes(), r#""\xc3\xa9""#),
        (b"\x0b\x0c", r#""\x0b\x0c""#),
    ];
    for (bytes, want) in cases {
        assert_eq!(quote(bytes), *want, "{bytes:?}");
    }
}

/// Bytes with the awkward ones often: quotes, backslashes, `#`, whitespace, `x` and hex
/// digits after backslashes, high bytes.
fn awkward_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\"'\\# \t\n\r\x0b\x0cxXaf09\x00\x7f\x80\xff-".to_vec()),
    ];
    prop::collection::vec(byte, 0..24)
}

/// `cases` cases (a few under Miri, which interprets every step), with no failure file:
/// Miri's isolation forbids the file system, and a failing case is printed anyway.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { cases },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn quote_reads_back_as_exactly_one_word(bytes in awkward_bytes()) {
        let q = quote(&bytes);
        let tokens = split_line(&q).unwrap();
        prop_assert_eq!(tokens.len(), 1);
        prop_assert_eq!(&tokens[0].bytes, &bytes);
        prop_assert_eq!(argv_token(&q).unwrap().bytes, bytes.clone());
        // Bare exactly when split_line sees no quote.
        prop_assert_eq!(tokens[0].quoted, q.starts_with('"'));
        // Output is printable ASCII.
        prop_assert!(q.bytes().all(|c| (0x20..=0x7e).contains(&c)));
    }

    #[test]
    fn quoted_words_in_a_line_read_back_in_order(
        list in prop::collection::vec(awkward_bytes(), 0..6),
        sep in prop::sample::select(vec![" ", "\t", "  ", " \r\n "]),
    ) {
        let line = list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(sep);
        let got: Vec<Vec<u8>> = split_line(&line).unwrap().into_iter().map(|t| t.bytes).collect();
        prop_assert_eq!(got, list);
    }

    #[test]
    fn splitting_any_text_never_panics(line in any::<String>()) {
        let _ = split_line(&line);
        let _ = argv_token(&line);
    }

    #[test]
    fn splitting_quote_heavy_text_never_panics(
        line in prop::collection::vec(prop::sample::select(vec!['"', '\'', '\\', 'x', 'f', ' ', '#', 'é', 'a']), 0..20)
    ) {
        let line: String = line.into_iter().collect();
        if let Ok(tokens) = split_line(&line) {
            // Whatever split, quoted back, splits the same.
            let again = tokens.iter().map(|t| quote(&t.bytes)).collect::<Vec<_>>().join(" ");
            let back: Vec<Vec<u8>> = split_line(&again).unwrap().into_iter().map(|t| t.bytes).collect();
            prop_assert_eq!(back, tokens.into_iter().map(|t| t.bytes).collect::<Vec<_>>());
        }
        let _ = argv_token(&line);
    }
}

/// A small xorshift generator: the law over every length up to 64, with no framework.
#[test]
fn quote_law_over_random_bytes_of_every_length() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..=64 {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    // Half the bytes from the printable range, where bare words live.
                    if r & 1 == 0 {
                        0x20 + (r >> 8) as u8 % 0x5f
                    } else {
                        (r >> 8) as u8
                    }
                })
                .collect();
            let q = quote(&bytes);
            let t = split_line(&q).unwrap();
            assert_eq!(t.len(), 1, "{q}");
            assert_eq!(t[0].bytes, bytes, "{q}");
            assert_eq!(argv_token(&q).unwrap().bytes, bytes, "{q}");
        }
    }
    // Every single byte, and every pair with a backslash or quote.
    for c in 0..=255u8 {
        for bytes in [vec![c], vec![b'\\', c], vec![c, b'"'], vec![b'#', c]] {
            let q = quote(&bytes);
            assert_eq!(split_line(&q).unwrap()[0].bytes, bytes, "{q}");
            assert_eq!(argv_token(&q).unwrap().bytes, bytes, "{q}");
        }
    }
}

// --- base64 and JSON bytes -------------------------------------------------------------

#[test]
fn base64_matches_the_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, coded) in vectors {
        assert_eq!(base64(plain.as_bytes()), coded);
        assert_eq!(unbase64(coded).unwrap(), plain.as_bytes());
    }
    assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    assert_eq!(base64(&[0]), "AA==");
    assert_eq!(base64(&[0x00, 0x10, 0x83, 0x10, 0x51, 0x87]), "ABCDEFGH");
}

#[test]
fn unbase64_takes_only_canonical_padded_text() {
    for bad in [
        "Zg", "Zg=", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v!A==", "Zm 9",
        "Zm9vYg=a", "=Zm9",
    ] {
        assert_eq!(unbase64(bad), None, "{bad}");
    }
}

#[test]
fn json_bytes_is_a_string_when_utf8_else_base64() {
    assert_eq!(json_bytes(b"abc"), json!("abc"));
    assert_eq!(json_bytes("é\n\0".as_bytes()), json!("é\n\0"));
    assert_eq!(json_bytes(b""), json!(""));
    assert_eq!(json_bytes(b"a\xff"), json!({"base64": "Yf8="}));
    assert_eq!(json_bytes(b"\xc3"), json!({"base64": "ww=="}));
    assert_eq!(bytes_from_json(&json!("é")), Some("é".as_bytes().to_vec()));
    assert_eq!(
        bytes_from_json(&json!({"base64": "Yf8="})),
        Some(b"a\xff".to_vec())
    );
    for bad in [
        json!(1),
        json!(null),
        json!(["a"]),
        json!({"base64": "Yf8"}),
        json!({"base64": 1}),
        json!({"base64": "Yf8=", "x": 1}),
        json!({"b64": "Yf8="}),
    ] {
        assert_eq!(bytes_from_json(&bad), None, "{bad}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_bytes_and_base64_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let v = json_bytes(&bytes);
        prop_assert_eq!(bytes_from_json(&v), Some(bytes.clone()));
        // Through the JSON text too.
        let back: Value = serde_json::from_str(&v.to_string()).unwrap();
        prop_assert_eq!(bytes_from_json(&back), Some(bytes.clone()));
        prop_assert_eq!(unbase64(&base64(&bytes)), Some(bytes.clone()));
        prop_assert_eq!(base64(&bytes).len(), bytes.len().div_ceil(3) * 4);
    }
}

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
    let next = |line: &str| next_words(&split_line(line).unwrap());
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
}

// --- help ------------------------------------------------------------------------------

#[test]
fn help_lists_every_verb_from_the_table() {
    let h = operations_help();
    for info in &VERBS {
        let line = h
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", info.name)))
            .unwrap_or_else(|| panic!("{} missing:\n{h}", info.name));
        assert!(line.ends_with(info.summary), "{line}");
    }
    assert!(h.contains("  insert <key> <value>  "));
    assert!(h.contains("  cas <key> <expected>|--absent <new>  "));
    assert!(h.contains("  scan <cursor> [<count>]  "));
    assert!(h.contains("  threads start <n>  "));
    assert!(h.contains("\\xHH"));
    assert!(h.contains("redis-cli"));
    assert!(h.contains("--absent"));
    assert!(h.lines().all(|l| l.chars().count() <= 100), "{h}");
}

// --- rendering -------------------------------------------------------------------------

fn text(line: &str, outcome: Outcome) -> String {
    render_text(&one(line), &outcome).unwrap()
}

#[test]
fn text_answers_keep_todays_forms() {
    assert_eq!(text("read 1", Outcome::Value(b("2"))), "read 1: 2");
    assert_eq!(text("read 9", Outcome::NotFound), "read 9: not found");
    assert_eq!(text("insert 1 2", Outcome::Created), "insert 1 2: ok");
    assert_eq!(
        text("insert 1 2", Outcome::Replaced(b("7"))),
        "insert 1 2: ok, replaced 7"
    );
    assert_eq!(text("delete 1", Outcome::Deleted(b("2"))), "delete 1: ok");
    assert_eq!(text("delete 1", Outcome::NotFound), "delete 1: not found");
    assert_eq!(
        text(
            "print 0",
            Outcome::Entries(vec![(b("7"), b("3")), (b("1"), b("2"))])
        ),
        "print 0: (1, 2) (7, 3)"
    );
    assert_eq!(text("print 0", Outcome::Entries(vec![])), "print 0: empty");
    assert_eq!(
        text("threads start 2", Outcome::Threads(3)),
        "threads start 2: ok, 3 threads"
    );
    assert_eq!(
        text("threads stop", Outcome::Threads(2)),
        "threads stop: ok, 2 threads"
    );
    assert_eq!(
        text("threads stop", Outcome::Threads(1)),
        "threads stop: ok, 1 thread"
    );
    assert_eq!(text("quit", Outcome::Done), "quit: ok");
}

#[test]
fn text_answers_of_the_new_verbs() {
    assert_eq!(
        text("insert-new k v", Outcome::Created),
        "insert-new k v: ok"
    );
    assert_eq!(
        text("insert-new k v", Outcome::Exists(b("5"))),
        "insert-new k v: exists, value 5"
    );
    assert_eq!(
        text("cas k --absent v", Outcome::Swapped),
        "cas k --absent v: ok"
    );
    assert_eq!(
        text("cas k a v", Outcome::Mismatch(Some(b("5")))),
        "cas k a v: mismatch, value 5"
    );
    assert_eq!(
        text("cas k a v", Outcome::Mismatch(None)),
        "cas k a v: mismatch, absent"
    );
    assert_eq!(text("add k 3", Outcome::Number(8)), "add k 3: 8");
    assert_eq!(text("add k -9", Outcome::Number(-1)), "add k -9: -1");
    assert_eq!(text("len", Outcome::Count(12)), "len: 12");
    assert_eq!(
        text(
            "scan 0",
            Outcome::Keys {
                cursor: 17,
                keys: vec![b("a"), b("b"), b("c d")]
            }
        ),
        r#"scan 0 10: cursor 17, 3 keys: a b "c d""#
    );
    assert_eq!(
        text(
            "scan 17 1",
            Outcome::Keys {
                cursor: 0,
                keys: vec![b("z")]
            }
        ),
        "scan 17 1: cursor 0, 1 key: z"
    );
    assert_eq!(
        text(
            "scan 17",
            Outcome::Keys {
                cursor: 0,
                keys: vec![]
            }
        ),
        "scan 17 10: cursor 0, 0 keys"
    );
}

#[test]
fn text_answers_quote_values_and_keys() {
    assert_eq!(text("read k", Outcome::Value(b("a b"))), r#"read k: "a b""#);
    assert_eq!(text("read k", Outcome::Value(vec![])), r#"read k: """#);
    assert_eq!(
        text("read k", Outcome::Value(vec![0xff])),
        r#"read k: "\xff""#
    );
    assert_eq!(
        text("insert k v", Outcome::Replaced(b("#1"))),
        r##"insert k v: ok, replaced "#1""##
    );
    assert_eq!(
        text(
            "print 0",
            Outcome::Entries(vec![(b("b"), vec![]), (b("a b"), b("\n"))])
        ),
        r#"print 0: ("a b", "\n") (b, "")"#
    );
    assert_eq!(
        text("cas k a v", Outcome::Mismatch(Some(vec![]))),
        r#"cas k a v: mismatch, value """#
    );
    // Byte order, not numeric order.
    assert_eq!(
        text(
            "print 0",
            Outcome::Entries(vec![(b("2"), b("x")), (b("10"), b("y"))])
        ),
        "print 0: (10, y) (2, x)"
    );
}

#[test]
fn refusals_are_errors_with_the_label() {
    let e = render_text(
        &one("print 99"),
        &Outcome::Refused(ErrorCode::BadBucket {
            bucket: 99,
            buckets: 10,
        }),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "print 99: error: bucket 99 out of range (the table has 10 buckets, 0..=9)"
    );
    let e = render_text(&one("add k 1"), &Outcome::Refused(ErrorCode::NotAnInteger)).unwrap_err();
    assert_eq!(
        e,
        "add k 1: error: the value is not a decimal 64-bit integer"
    );
}

fn js(line: &str, outcome: Outcome) -> Value {
    let (v, refused) = render_json(&one(line), &outcome);
    assert_eq!(refused, matches!(outcome, Outcome::Refused(_)));
    v
}

#[test]
fn json_objects_carry_op_arguments_answer_and_status() {
    assert_eq!(
        js("read 1", Outcome::Value(b("2"))),
        json!({"op": "read", "key": "1", "value": "2", "status": "ok"})
    );
    assert_eq!(
        js("read 1", Outcome::NotFound),
        json!({"op": "read", "key": "1", "value": null, "status": "not_found"})
    );
    assert_eq!(
        js("insert 1 2", Outcome::Created),
        json!({"op": "insert", "key": "1", "value": "2", "previous": null, "status": "ok"})
    );
    assert_eq!(
        js("insert 1 3", Outcome::Replaced(b("2"))),
        json!({"op": "insert", "key": "1", "value": "3", "previous": "2", "status": "ok"})
    );
    assert_eq!(
        js("delete 1", Outcome::Deleted(b("3"))),
        json!({"op": "delete", "key": "1", "value": "3", "status": "ok"})
    );
    assert_eq!(
        js("delete 1", Outcome::NotFound),
        json!({"op": "delete", "key": "1", "value": null, "status": "not_found"})
    );
    assert_eq!(
        js("insert-new k v", Outcome::Created),
        json!({"op": "insert_new", "key": "k", "value": "v", "status": "ok"})
    );
    assert_eq!(
        js("insert-new k v", Outcome::Exists(b("5"))),
        json!({"op": "insert_new", "key": "k", "value": "v", "current": "5", "status": "exists"})
    );
    assert_eq!(
        js("cas k --absent v", Outcome::Swapped),
        json!({"op": "cas", "key": "k", "expected": null, "new": "v", "status": "ok"})
    );
    assert_eq!(
        js("cas k a v", Outcome::Mismatch(Some(b("5")))),
        json!({"op": "cas", "key": "k", "expected": "a", "new": "v", "current": "5", "status": "mismatch"})
    );
    assert_eq!(
        js("cas k a v", Outcome::Mismatch(None)),
        json!({"op": "cas", "key": "k", "expected": "a", "new": "v", "current": null, "status": "mismatch"})
    );
    assert_eq!(
        js("add k -3", Outcome::Number(5)),
        json!({"op": "add", "key": "k", "delta": -3, "value": 5, "status": "ok"})
    );
    assert_eq!(
        js("len", Outcome::Count(12)),
        json!({"op": "len", "count": 12, "status": "ok"})
    );
    assert_eq!(
        js(
            "scan 4",
            Outcome::Keys {
                cursor: 9,
                keys: vec![b("a"), vec![0xff]]
            }
        ),
        json!({"op": "scan", "from": 4, "count": 10, "cursor": 9,
                   "keys": ["a", {"base64": "/w=="}], "status": "ok"})
    );
    assert_eq!(
        js(
            "print 0",
            Outcome::Entries(vec![(b("7"), b("3")), (b("1"), b("2"))])
        ),
        json!({"op": "print", "bucket": 0, "entries": [["1", "2"], ["7", "3"]], "status": "ok"})
    );
    assert_eq!(
        js("threads start 2", Outcome::Threads(3)),
        json!({"op": "threads_start", "count": 2, "threads": 3, "status": "ok"})
    );
    assert_eq!(
        js("threads stop", Outcome::Threads(2)),
        json!({"op": "threads_stop", "threads": 2, "status": "ok"})
    );
    assert_eq!(
        js("quit", Outcome::Done),
        json!({"op": "quit", "status": "ok"})
    );
}

#[test]
fn json_field_order_is_op_arguments_answer_status() {
    let v = js("insert 1 2", Outcome::Created);
    assert_eq!(
        v.to_string(),
        r#"{"op":"insert","key":"1","value":"2","previous":null,"status":"ok"}"#
    );
    let v = js(r#"read "\xff\xfe""#, Outcome::Value(b("é")));
    assert_eq!(
        v.to_string(),
        r#"{"op":"read","key":{"base64":"//4="},"value":"é","status":"ok"}"#
    );
}

#[test]
fn json_refusals_carry_the_message() {
    let (v, refused) = render_json(&one("read 1"), &Outcome::Refused(ErrorCode::ShuttingDown));
    assert!(refused);
    assert_eq!(
        v,
        json!({"op": "read", "key": "1", "error": "the server is shutting down", "status": "error"})
    );
    let (v, _) = render_json(
        &one("insert k v"),
        &Outcome::Refused(ErrorCode::TooLarge {
            what: Field::Value,
            len: 9,
            max: 4,
        }),
    );
    assert_eq!(
        v["error"],
        "value of 9 bytes is longer than the server's limit of 4 bytes"
    );
}

// --- stats -----------------------------------------------------------------------------

fn sample_stats() -> Vec<Stat> {
    let st = |id: shmkv::wire::StatId, index: u32, value: u64| Stat { id, index, value };
    let mut v = vec![
        st(Verb::Insert.info().stat_id, 0, 5),
        st(Verb::Read.info().stat_id, 0, 2),
        st(Verb::Scan.info().stat_id, 0, 1),
        st(Verb::Stats.info().stat_id, 0, 1),
        st(
            ErrorCode::BadBucket {
                bucket: 0,
                buckets: 0,
            }
            .stat_id(),
            0,
            1,
        ),
        st(ErrorCode::Overflow.stat_id(), 0, 2),
    ];
    let mut s = Stats::from_stats(&v);
    s.entries = 4;
    s.buckets = 10;
    s.longest_bucket = 2;
    s.memory_used = 1536;
    s.memory_limit = 64 << 20;
    s.max_key = 1024;
    s.max_value = 1 << 20;
    s.client_slots = 2;
    s.slots = vec![
        shmkv::stats::SlotStats {
            slot: 0,
            owner_pid: 0,
            workers: 0,
            requests: 13,
        },
        shmkv::stats::SlotStats {
            slot: 1,
            owner_pid: 4242,
            workers: 2,
            requests: 1,
        },
    ];
    s.latency.sample_every = 64;
    s.uptime_ms = 12_345;
    v = s.to_stats();
    v
}

#[test]
fn stats_text_is_an_indented_block() {
    let item = one("stats");
    let t = render_text(&item, &Outcome::Stats(sample_stats())).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "stats:");
    assert!(lines[1..].iter().all(|l| l.starts_with("  ")), "{t}");
    assert!(
            t.contains(
                "  requests   9 (insert 5, read 2, delete 0, insert-new 0, cas 0, add 0, len 0, scan 1, print 0, threads start 0, threads stop 0, stats 1, quit 0)\n"
            ),
            "{t}"
        );
    assert!(
            t.contains("  refused    3 (bad bucket 1, thread limit 0, last worker 0, shutting down 0, malformed 0, too large 0, out of memory 0, not an integer 0, overflow 2)\n"),
            "{t}"
        );
    assert!(
        t.contains("  table      4 entries, 10 buckets, longest bucket 2\n"),
        "{t}"
    );
    assert!(t.contains("  memory     1.5 KiB used of 64 MiB\n"), "{t}");
    assert!(
        t.contains("  limits     keys up to 1 KiB, values up to 1 MiB\n"),
        "{t}"
    );
    assert!(
        t.contains("  clients    1 of 2 slots connected, 2 worker threads in all\n"),
        "{t}"
    );
    assert!(
        t.contains("    slot 1   pid 4242, 2 worker threads, 1 request\n"),
        "{t}"
    );
    assert!(!t.contains("slot 0 "), "{t}");
    assert!(
        t.contains("  latency    no samples yet (1 in 64 requests is timed)\n"),
        "{t}"
    );
    assert!(t.ends_with("  uptime     12.3s"), "{t}");

    let mut s = Stats::from_stats(&sample_stats());
    s.memory_limit = u64::MAX;
    s.latency.samples = 1;
    s.latency.p50_ns = 999;
    s.latency.p99_ns = 1_500;
    s.latency.p999_ns = 2_500_000;
    s.latency.max_ns = 3_000_000_000;
    s.latency.window_ms = 10_000;
    let t = render_stats("stats", &s);
    assert!(t.contains("  memory     1.5 KiB used, no limit\n"), "{t}");
    assert!(
            t.contains("  latency    p50 999ns, p99 1.5µs, p99.9 2.5ms, max 3.0s (1 sample over the last 10.0s, 1 in 64 requests timed)\n"),
            "{t}"
        );
    s.other.push(Stat {
        id: shmkv::wire::StatId(200),
        index: 3,
        value: 7,
    });
    assert!(render_stats("stats", &s).contains("  unknown    200[3] 7\n"));
}

#[test]
fn stats_json_has_requests_errors_table_memory_limits() {
    let (v, refused) = render_json(&one("stats"), &Outcome::Stats(sample_stats()));
    assert!(!refused);
    assert_eq!(v["op"], "stats");
    assert_eq!(v["status"], "ok");
    let s = &v["stats"];
    let req = s["requests"].as_object().unwrap();
    let names: Vec<&str> = req.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = VERBS.iter().map(|v| v.stat_name).collect();
    want.push("total");
    assert_eq!(names, want);
    assert_eq!(req["insert"], 5);
    assert_eq!(req["total"], 9);
    assert_eq!(s["errors"]["bad_bucket"], 1);
    assert_eq!(s["errors"]["overflow"], 2);
    assert_eq!(s["errors"]["total"], 3);
    assert_eq!(
        s["table"],
        json!({"entries": 4, "buckets": 10, "longest_bucket": 2})
    );
    assert_eq!(s["memory"], json!({"used": 1536, "limit": 64 << 20}));
    assert_eq!(s["limits"], json!({"max_key": 1024, "max_value": 1 << 20}));
    assert_eq!(s["client_slots"], 2);
    assert_eq!(s["connected"], 1);
    assert_eq!(s["worker_threads"], 2);
    assert_eq!(
        s["slots"],
        json!([
            {"slot": 0, "pid": null, "workers": 0, "requests": 13},
            {"slot": 1, "pid": 4242, "workers": 2, "requests": 1},
        ])
    );
    assert_eq!(s["latency"]["sample_every"], 64);
    assert_eq!(s["uptime_ms"], 12_345);
    assert!(s.get("unknown").is_none());
    let mut st = Stats::from_stats(&sample_stats());
    st.memory_limit = u64::MAX;
    assert_eq!(stats_json(&st)["memory"]["limit"], Value::Null);
}

#[test]
fn sizes_read_naturally() {
    assert_eq!(size(0), "0 bytes");
    assert_eq!(size(1), "1 byte");
    assert_eq!(size(1023), "1023 bytes");
    assert_eq!(size(1024), "1 KiB");
    assert_eq!(size(1536), "1.5 KiB");
    assert_eq!(size(1 << 20), "1 MiB");
    assert_eq!(size((1 << 20) - 1), "1024.0 KiB");
    assert_eq!(size(5 << 30), "5 GiB");
    assert_eq!(size(u64::MAX), "16.0 EiB");
}
