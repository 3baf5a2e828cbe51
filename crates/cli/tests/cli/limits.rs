//! Limits and memory: keys and values over the limits, and a small `--max-memory`.

use super::{client_stdin, json_lines};
use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Limits and memory.
// ---------------------------------------------------------------------------------------------

/// A key or value longer than the server takes is refused by the client before anything is
/// sent: one line, status 2, nothing of its batch done.
#[test]
fn keys_and_values_over_the_limits_are_refused_by_the_client() {
    let s = ServerProc::start(&["10", "1", "1", "--max-key", "8", "--max-value", "16"]);
    // Exactly at the limits: fine.
    s.client(&["0", "insert", "12345678", "0123456789abcdef"])
        .ok("insert 12345678 0123456789abcdef: ok\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["0", "insert", "123456789", "v"],
            "key of 9 bytes is longer than the server's limit of 8 bytes",
        ),
        (
            &["0", "insert", "k", "0123456789abcdefg"],
            "value of 17 bytes is longer than the server's limit of 16 bytes",
        ),
        // Bytes, not characters: 5 two-byte characters are 10 bytes.
        (
            &["0", "read", "ééééé"],
            "key of 10 bytes is longer than the server's limit of 8 bytes",
        ),
        (
            &["0", "read", r#""\xff\xff\xff\xff\xff\xff\xff\xff\xff""#],
            "key of 9 bytes",
        ),
        (
            &["0", "cas", "k", "0123456789abcdefg", "v"],
            "value of 17 bytes",
        ),
        (
            &["0", "cas", "k", "--absent", "0123456789abcdefg"],
            "value of 17 bytes",
        ),
        (&["0", "insert-new", "123456789", "v"], "key of 9 bytes"),
        (&["0", "add", "123456789", "1"], "key of 9 bytes"),
        (&["0", "delete", "123456789"], "key of 9 bytes"),
        // In a batch: nothing of it is sent, the operations before it included.
        (
            &["0", "insert", "a", "1", "insert", "123456789", "x"],
            "key of 9 bytes",
        ),
    ];
    for (args, msg) in cases {
        let out = s.client(args);
        out.fails(2, msg);
        assert_eq!(out.stdout, "", "{out:?}");
    }
    s.client(&["0", "read", "a"]).ok("read a: not found\n");
    // On standard input: the lines before are done, the bad one stops the client.
    let out = client_stdin(
        &s,
        &["0"],
        "insert b 1\ninsert c 0123456789abcdefg\ninsert d 1\n",
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "insert b 1: ok\n");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("line 2: value of 17 bytes is longer than the server's limit of 16 bytes"),
        "{out:?}"
    );
    s.client(&["0", "read", "b", "read", "c", "read", "d"])
        .ok("read b: 1\nread c: not found\nread d: not found\n");
    // The server never saw them: it refused nothing as too large.
    let out = s.client(&["--json", "0", "stats"]);
    let st = &json_lines(&out)[0]["stats"];
    assert_eq!(st["errors"]["too_large"], 0, "{st}");
    assert_eq!(st["errors"]["total"], 0, "{st}");
    assert_eq!(
        st["limits"],
        serde_json::json!({"max_key": 8, "max_value": 16})
    );
    let out = s.client(&["0", "stats"]);
    assert!(
        out.stdout
            .contains("  limits     keys up to 8 bytes, values up to 16 bytes\n"),
        "{out:?}"
    );
    s.quit_and_check_clean();
}

/// With a small --max-memory, inserts are eventually refused with "out of memory" (status 1)
/// while reads and deletes go on, and stats shows the memory used.
#[test]
fn small_max_memory_refuses_writes_but_not_reads_and_deletes() {
    let s = ServerProc::start(&["10", "1", "1", "--max-memory", "4K"]);
    let value = "0123456789abcdef";
    let mut args = vec!["0".to_string()];
    for i in 100..300 {
        args.extend(["insert".into(), format!("k{i}"), value.into()]);
    }
    let out = s.client(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 1, "{out:?}");
    let done = out.stdout.lines().count();
    assert!(done > 0 && done < 200, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 200 - done, "{out:?}");
    for l in out.stderr.lines() {
        assert!(
            l.starts_with("shmkv-client: insert k")
                && l.ends_with(": error: out of memory (the server's --max-memory)"),
            "{l}"
        );
    }
    // The first ones went in, then none (every entry costs the same).
    for (i, l) in out.stdout.lines().enumerate() {
        assert_eq!(l, format!("insert k{} {value}: ok", 100 + i));
    }
    let cost = shmkv::store::entry_cost(4, value.len());
    assert_eq!(done as u64, 4096 / cost, "entry cost {cost}");
    // Reads and deletes go on; the memory a delete frees takes a new entry; replacing a value
    // with a longer one is refused.
    s.client(&["0", "read", "k100", "len"])
        .ok(&format!("read k100: {value}\nlen: {done}\n"));
    s.client(&["0", "insert", "k999", value])
        .fails(1, "insert k999 0123456789abcdef: error: out of memory");
    s.client(&["0", "read", "k999", "insert-new", "k999", value])
        .fails(1, "insert-new k999 0123456789abcdef: error: out of memory");
    s.client(&[
        "0", "delete", "k100", "insert", "k999", value, "read", "k999",
    ])
    .ok(&format!(
        "delete k100: ok\ninsert k999 {value}: ok\nread k999: {value}\n"
    ));
    let long = "0123456789abcdef0123456789abcdef0123456789abcdef";
    s.client(&["0", "insert", "k101", long]).fails(
        1,
        "insert k101 0123456789abcdef0123456789abcdef0123456789abcdef: error: out of memory",
    );
    s.client(&["0", "read", "k101"])
        .ok(&format!("read k101: {value}\n"));
    // Stats shows the memory used, and the refusals.
    let used = done as u64 * cost;
    let out = s.client(&["0", "stats"]);
    assert_eq!(out.code, 0, "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("  memory "))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.ends_with(" used of 4 KiB"), "{line}");
    let out = s.client(&["--json", "0", "stats"]);
    let st = &json_lines(&out)[0]["stats"];
    assert_eq!(
        st["memory"],
        serde_json::json!({"used": used, "limit": 4096})
    );
    assert_eq!(st["errors"]["out_of_memory"], 200 - done as u64 + 3, "{st}");
    s.quit_and_check_clean();
}
