//! Tests of rendering answers as text and as JSON.

use super::*;

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
