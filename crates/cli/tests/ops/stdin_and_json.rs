//! Operations piped through standard input, and `--json`.

use super::json_lines;
use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------------------------
// Standard input.

fn client_with_stdin(name: &str, args: &[&str], input: &str) -> Output {
    let mut a = vec!["--name", name];
    a.extend_from_slice(args);
    let mut child = Command::new(CLIENT)
        .args(&a)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = finish(child);
    writer.join().unwrap();
    out
}

#[test]
fn operations_piped_through_standard_input() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let out = client_with_stdin(
        &s.name,
        &["0"],
        "insert 1 2\n# a comment\n\n  read 1 read 9   # two on one line\ndelete 1\nprint 99\nread 1\n",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stdout,
        "insert 1 2: ok\nread 1: 2\nread 9: not found\ndelete 1: ok\nread 1: not found\n"
    );
    assert_eq!(
        out.stderr,
        "shmkv-client: print 99: error: bucket 99 out of range (the table has 10 buckets, 0..=9)\n"
    );

    // Many lines: each is a batch; the order holds across them.
    let mut script = String::new();
    let mut want = String::new();
    for i in 0..500 {
        script += &format!("insert 7 {i} read 7\n");
        let replaced = match i {
            0 => String::new(),
            _ => format!(", replaced {}", i - 1),
        };
        want += &format!("insert 7 {i}: ok{replaced}\nread 7: {i}\n");
    }
    client_with_stdin(&s.name, &["-"], &script).ok(&want);

    // A line that does not parse stops there: what came before ran, nothing after it.
    let out = client_with_stdin(&s.name, &["0"], "insert 3 3\nread 3 frob\ninsert 4 4\n");
    out.fails(2, "line 2: unknown operation 'frob'");
    assert_eq!(out.stdout, "insert 3 3: ok\n");
    s.client(&["0", "read", "4"]).ok("read 4: not found\n");

    // 'exit' ends the input; quit ends it too.
    client_with_stdin(&s.name, &["0"], "read 3\nexit\nread 3\n").ok("read 3: 3\n");

    // No operations anywhere: one line, status 2, and no connection made.
    for input in ["", "\n# nothing\n"] {
        client_with_stdin(&s.name, &["0"], input).fails(
            2,
            "no operations given on the command line or standard input",
        );
    }
    client_with_stdin("no-such-server-y", &["0"], "").fails(2, "no operations given");
    client_with_stdin("no-such-server-y", &["0"], "read 1\n")
        .fails(3, "no shmkv server named 'no-such-server-y'");
    s.quit_and_check_clean();
}

// ---------------------------------------------------------------------------------------------
// --json.

#[test]
fn json_prints_one_object_per_operation() {
    let s = ServerProc::start(&["10", "1", "1"]);
    let out = s.client(&[
        "--json", "0", "insert", "1", "2", "insert", "1", "3", "read", "1", "read", "9", "delete",
        "1", "delete", "1", "print", "99", "threads", "start", "2", "threads", "stop",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "");
    let v = json_lines(&out);
    let want: Vec<Value> = [
        r#"{"op":"insert","key":"1","value":"2","previous":null,"status":"ok"}"#,
        r#"{"op":"insert","key":"1","value":"3","previous":"2","status":"ok"}"#,
        r#"{"op":"read","key":"1","value":"3","status":"ok"}"#,
        r#"{"op":"read","key":"9","value":null,"status":"not_found"}"#,
        r#"{"op":"delete","key":"1","value":"3","status":"ok"}"#,
        r#"{"op":"delete","key":"1","value":null,"status":"not_found"}"#,
        r#"{"op":"print","bucket":99,"error":"bucket 99 out of range (the table has 10 buckets, 0..=9)","status":"error"}"#,
        r#"{"op":"threads_start","count":2,"threads":3,"status":"ok"}"#,
        r#"{"op":"threads_stop","threads":2,"status":"ok"}"#,
    ]
    .iter()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(v, want);
    // The field order is the documented one (op first, status last).
    assert!(
        out.stdout
            .starts_with(r#"{"op":"insert","key":"1","value":"2","previous":null,"status":"ok"}"#),
        "{}",
        out.stdout
    );

    // The new operations, and a value that is not UTF-8 (base64).
    let out = s.client(&[
        "--json",
        "0",
        "insert-new",
        "n",
        "5",
        "insert-new",
        "n",
        "6",
        "cas",
        "n",
        "5",
        "7",
        "cas",
        "n",
        "5",
        "8",
        "cas",
        "m",
        "--absent",
        "x",
        "add",
        "n",
        "-10",
        "add",
        "m",
        "1",
        "len",
        "insert",
        "b",
        "\"\\xff\\x00\"",
        "read",
        "b",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let want: Vec<Value> = [
        r#"{"op":"insert_new","key":"n","value":"5","status":"ok"}"#,
        r#"{"op":"insert_new","key":"n","value":"6","current":"5","status":"exists"}"#,
        r#"{"op":"cas","key":"n","expected":"5","new":"7","status":"ok"}"#,
        r#"{"op":"cas","key":"n","expected":"5","new":"8","current":"7","status":"mismatch"}"#,
        r#"{"op":"cas","key":"m","expected":null,"new":"x","status":"ok"}"#,
        r#"{"op":"add","key":"n","delta":-10,"value":-3,"status":"ok"}"#,
        r#"{"op":"add","key":"m","delta":1,"error":"the value is not a decimal 64-bit integer","status":"error"}"#,
        r#"{"op":"len","count":2,"status":"ok"}"#,
        r#"{"op":"insert","key":"b","value":{"base64":"/wA="},"previous":null,"status":"ok"}"#,
        r#"{"op":"read","key":"b","value":{"base64":"/wA="},"status":"ok"}"#,
    ]
    .iter()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(json_lines(&out), want, "{}", out.stdout);
    s.client(&["0", "delete", "n", "delete", "m", "delete", "b"])
        .ok("delete n: ok\ndelete m: ok\ndelete b: ok\n");

    let out = s.client(&[
        "--json", "0", "insert", "5", "6", "insert", "8", "9", "print", "0",
    ]);
    let v = json_lines(&out);
    // Every pair lands in one of the 10 buckets; print 0 lists those of bucket 0, sorted.
    let entries = v[2]["entries"].as_array().unwrap();
    assert_eq!(v[2]["status"], "ok");
    for e in entries {
        assert!(e == &serde_json::json!(["5", "6"]) || e == &serde_json::json!(["8", "9"]));
    }
    let out = s.client(&["--json", "0", "quit"]);
    assert_eq!(
        json_lines(&out),
        [serde_json::json!({"op": "quit", "status": "ok"})]
    );
    s.wait_exit_and_check_clean();
}
