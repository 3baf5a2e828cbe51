//! The new operations on the command line: insert-new, cas, add, len and scan.

use super::{after, client_stdin, words};
use crate::common::*;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// The new operations.
// ---------------------------------------------------------------------------------------------

#[test]
fn insert_new_and_cas_text_output() {
    let s = ServerProc::start(&["10", "1", "1"]);
    s.client(&[
        "0",
        "insert-new",
        "k",
        "v",
        "insert-new",
        "k",
        "w",
        "read",
        "k",
    ])
    .ok("insert-new k v: ok\ninsert-new k w: exists, value v\nread k: v\n");
    s.client(&[
        "0", "cas", "k", "v", "x", "cas", "k", "v", "y", "read", "k", "cas", "k", "--absent", "z",
        "cas", "n", "v", "z", "cas", "n", "--absent", "1", "read", "n",
    ])
    .ok("cas k v x: ok\ncas k v y: mismatch, value x\nread k: x\n\
         cas k --absent z: mismatch, value x\ncas n v z: mismatch, absent\n\
         cas n --absent 1: ok\nread n: 1\n");
    // A quoted "--absent" is that value, not absence; an empty expected value is not absence.
    s.client(&[
        "0",
        "insert",
        "q",
        "--absent",
        "cas",
        "q",
        r#""--absent""#,
        "",
        "cas",
        "q",
        "--absent",
        "no",
        "cas",
        "q",
        "",
        "e",
        "read",
        "q",
    ])
    .ok("insert q --absent: ok\ncas q \"--absent\" \"\": ok\ncas q --absent no: mismatch, value \"\"\n\
         cas q \"\" e: ok\nread q: e\n");
    // "exists" and "mismatch" are answers, not refusals: the status is 0 (checked by ok).
    s.quit_and_check_clean();
}

#[test]
fn add_text_output_and_its_errors() {
    let s = ServerProc::start(&["10", "1", "1"]);
    s.client(&[
        "0", "add", "n", "5", "add", "n", "-7", "add", "n", "+2", "read", "n",
    ])
    .ok("add n 5: 5\nadd n -7: -2\nadd n 2: 0\nread n: 0\n");
    // Not an integer: refused (status 1), one line, the value unchanged; the batch goes on.
    let out = s.client(&[
        "0", "insert", "s", "abc", "add", "s", "1", "read", "s", "add", "n", "1",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "insert s abc: ok\nread s: abc\nadd n 1: 1\n");
    assert_eq!(
        out.stderr,
        "shmkv-client: add s 1: error: the value is not a decimal 64-bit integer\n"
    );
    // Non-canonical decimals are not integers either.
    for v in ["+1", "01", " 1", "1.0", "-0", ""] {
        let out = s.client(&["0", "insert", "t", v, "add", "t", "1"]);
        out.fails(
            1,
            "add t 1: error: the value is not a decimal 64-bit integer",
        );
        s.client(&["0", "read", "t"])
            .ok(&format!("read t: {}\n", shmkv_cli::quote(v.as_bytes())));
    }
    // Overflow, both ways: refused, the value unchanged.
    s.client(&["0", "insert", "m", "9223372036854775806", "add", "m", "1"])
        .ok("insert m 9223372036854775806: ok\nadd m 1: 9223372036854775807\n");
    s.client(&["0", "add", "m", "1"]).fails(
        1,
        "add m 1: error: the result would overflow a 64-bit integer",
    );
    s.client(&["0", "read", "m"])
        .ok("read m: 9223372036854775807\n");
    s.client(&["0", "insert", "l", "-9223372036854775808", "add", "l", "-1"])
        .fails(
            1,
            "add l -1: error: the result would overflow a 64-bit integer",
        );
    s.client(&["0", "read", "l"])
        .ok("read l: -9223372036854775808\n");
    // A delta past i64 is a bad command line, not a refusal.
    s.client(&["0", "add", "m", "9223372036854775808"])
        .fails(2, "out of range");
    s.client(&["0", "read", "m"])
        .ok("read m: 9223372036854775807\n");
    s.quit_and_check_clean();
}

#[test]
fn len_and_scan_until_cursor_zero_collect_every_key() {
    let s = ServerProc::start(&["16", "1", "1"]);
    s.client(&["0", "len", "scan", "0"])
        .ok("len: 0\nscan 0 10: cursor 0, 0 keys\n");
    // Keys of every awkward kind, inserted through standard input.
    let mut want: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut input = String::new();
    for i in 0..40 {
        want.insert(format!("key{i}").into_bytes());
        input += &format!("insert key{i} {i}\n");
    }
    for (line_word, bytes) in [
        (r#""a b""#, b"a b".to_vec()),
        (r#""\x00""#, vec![0]),
        (r#""\xff\xfe""#, vec![0xff, 0xfe]),
        (r##""#x""##, b"#x".to_vec()),
        (r#"'it\'s'"#, b"it's".to_vec()),
        (r#""\n""#, b"\n".to_vec()),
        (r#""say \"hi\"""#, b"say \"hi\"".to_vec()),
    ] {
        want.insert(bytes);
        input += &format!("insert {line_word} x\n");
    }
    let out = client_stdin(&s, &["0"], &input);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), want.len());
    s.client(&["0", "len"])
        .ok(&format!("len: {}\n", want.len()));

    // Scan 3 at a time from 0 until the cursor comes back to 0.
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps <= 16, "a full scan takes at most one step per bucket");
        let c = cursor.to_string();
        let out = s.client(&["0", "scan", &c, "3"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
        let rest = after(&out, &format!("scan {c} 3: cursor ")).to_string();
        let (next, rest) = rest.split_once(", ").unwrap();
        let (n, rest) = rest.split_once(' ').unwrap();
        let n: usize = n.parse().unwrap();
        let keys = match rest {
            "keys" | "key" => Vec::new(),
            _ => words(
                rest.strip_prefix("keys: ")
                    .or_else(|| rest.strip_prefix("key: "))
                    .unwrap_or_else(|| panic!("{rest:?}")),
            ),
        };
        assert_eq!(keys.len(), n, "{out:?}");
        assert_eq!(rest.starts_with("key:") || rest == "key", n == 1);
        // Buckets are visited whole until there are at least 3 keys (or the end).
        cursor = next.parse().unwrap();
        if cursor != 0 {
            assert!(n >= 3, "{out:?}");
        }
        got.extend(keys);
        if cursor == 0 {
            break;
        }
    }
    let set: BTreeSet<Vec<u8>> = got.iter().cloned().collect();
    assert_eq!(set.len(), got.len(), "a key came twice: {got:?}");
    assert_eq!(set, want);
    // Scan's count defaults to 10; a count past the keys takes all in one step.
    let out = s.client(&["0", "scan", "0", "1000"]);
    let rest = after(&out, "scan 0 1000: cursor 0, ");
    assert!(
        rest.starts_with(&format!("{} keys: ", want.len())),
        "{rest}"
    );
    s.client(&["0", "scan", "99"])
        .ok("scan 99 10: cursor 0, 0 keys\n");
    s.quit_and_check_clean();
}
