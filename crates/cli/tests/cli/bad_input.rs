//! Bad input: one line and a nonzero status from either binary; out-of-range limits.

use super::json_lines;
use crate::common::*;
use shmkv::client::{Client, ClientConfig};

// ---------------------------------------------------------------------------------------------
// Bad input.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_client_input_is_one_line_and_nonzero() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["0", "frob", "1"], 2, "unknown operation 'frob'"),
        (&["0", "Read", "1"], 2, "unknown operation 'Read'"),
        (&["0", "insert", "1"], 2, "'insert' needs a value"),
        (&["0", "read"], 2, "'read' needs a key"),
        (&["0", "cas", "k", "v"], 2, "'cas' needs a new value"),
        (&["0", "add", "k"], 2, "'add' needs a delta"),
        (&["0", "read", r#""abc"#], 2, "unbalanced quotes"),
        (&["0", "read", r#"'abc"#], 2, "unbalanced quotes"),
        (
            &["0", "read", r#""a"b"#],
            2,
            "goes on after its closing quote",
        ),
        (&["0", "read", r#""""#], 2, "empty key for 'read'"),
        (&["0", "insert", "", "v"], 2, "empty key for 'insert'"),
        (
            &["0", "add", "k", "x"],
            2,
            "delta 'x' of 'add' is not an integer",
        ),
        (&["0", "add", "k", "9223372036854775808"], 2, "out of range"),
        (
            &["0", "print", "-1"],
            2,
            "bucket '-1' of 'print' is not a non-negative integer",
        ),
        (
            &["0", "scan", "x"],
            2,
            "cursor 'x' of 'scan' is not a non-negative integer",
        ),
        (&["0", "threads", "start", "0"], 2, "at least 1"),
        (&["0", "threads", "go"], 2, "unknown 'threads go'"),
        (&["0", "threads"], 2, "'threads' needs"),
        (
            &["0"],
            2,
            "no operations given on the command line or standard input",
        ),
        (
            &["7", "read", "1"],
            3,
            "client id 7 is out of range: server",
        ),
        (&["99999999999", "read", "1"], 2, "not a valid id"),
        (&["--timeout", "0", "0", "read", "1"], 2, "--timeout"),
    ];
    for (args, code, msg) in cases {
        let out = s.client(args);
        out.fails(*code, msg);
        assert_eq!(out.stdout, "", "{args:?}");
    }
    // Nothing of a command line with a bad word is sent.
    s.client(&["0", "insert", "z", "1", "frob"])
        .fails(2, "unknown operation 'frob'");
    s.client(&["0", "read", "z"]).ok("read z: not found\n");
    // What was invalid with u64 keys is fine now.
    s.client(&["0", "read", "x", "read", "-1", "read", "1.5"])
        .ok("read x: not found\nread -1: not found\nread 1.5: not found\n");
    // Slot in use: hold slot 0 from this process.
    let held = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    s.client(&["0", "read", "1"])
        .fails(3, "client id 0 is in use by process");
    drop(held);
    // No server.
    let out = run_client_named("no-such-server-x", &["0", "read", "1"]);
    out.fails(
        3,
        "no shmkv server named 'no-such-server-x' is running (start one with",
    );
    // Bad name.
    run_client_named("a/b", &["0", "read", "1"]).fails(2, "invalid name");
    s.quit_and_check_clean();
}

#[test]
fn bad_server_input_is_one_line_and_nonzero() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["0"], 2, "buckets must be 1 to"),
        (&["10", "0"], 2, "clients must be 1 to"),
        (&["10", "1", "0"], 2, "threads per client must be 1 to"),
        (&["10", "1", "65"], 2, "threads per client must be 1 to 64"),
        (&["abc"], 2, "invalid value 'abc'"),
        // The slot ring's size is gone with the slots.
        (&["--ring", "64"], 2, "unexpected argument '--ring'"),
        (&["--name", "../x"], 2, "invalid name"),
        (&["100000000"], 2, "buckets must be 1 to 16777216"),
        (&["10", "--buckets", "20"], 2, "cannot be used with"),
        // The limits.
        (&["--max-memory", "x"], 2, "'x' is not a size"),
        (&["--max-memory", "4T"], 2, "unknown unit 'T'"),
        (
            &["--max-value", "5G"],
            2,
            "--max-value 5368709120 is too large (at most 67108864 bytes)",
        ),
    ];
    for (args, code, msg) in cases {
        let out = run_server_expect_fail(args);
        assert_eq!(out.stdout, "", "{args:?}");
        out.fails(*code, msg);
    }
    // The largest limits are fine.
    let s = ServerProc::start(&["10", "1", "1", "--max-key", "64K", "--max-value", "64M"]);
    let out = s.client(&["--json", "0", "stats"]);
    let st = &json_lines(&out)[0]["stats"];
    assert_eq!(
        st["limits"],
        serde_json::json!({"max_key": 65536, "max_value": 64 << 20})
    );
    s.quit_and_check_clean();
}

/// Limits out of their range are bad command lines like any other bad flag value (`--max-value
/// 5G`, `--max-memory x`): status 2, as --help says ("2 on a bad command line").
#[test]
fn out_of_range_limits_are_usage_errors() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--max-value", "65M"],
            2,
            "max value must be 0 to 67108864 bytes",
        ),
        (&["--max-key", "0"], 2, "max key must be 1 to 65536 bytes"),
        (&["--max-key", "65K"], 2, "max key must be 1 to 65536 bytes"),
    ];
    for (args, code, msg) in cases {
        let out = run_server_expect_fail(args);
        assert_eq!(out.stdout, "", "{args:?}");
        out.fails(*code, msg);
    }
}
