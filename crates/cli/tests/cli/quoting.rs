//! Quoting: escapes on the command line and on standard input, printed values fed back in,
//! `--json` for UTF-8 and binary values.

use super::{after, all_bytes, client_stdin, json_lines, lib, words};
use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Quoting.
// ---------------------------------------------------------------------------------------------

/// Command-line arguments are taken as they are, except that one starting with a quote is
/// read as one quoted word (escapes and all).
#[test]
fn quoting_and_escapes_on_the_command_line() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    // A quoted word never names an operation.
    s.client(&["0", r#""a b""#, "1"])
        .fails(2, "unknown operation '\"a b\"'");
    s.client(&["0", "insert", r#""a b""#, r#""x\ny""#, "read", "a b"])
        .ok("insert \"a b\" \"x\\ny\": ok\nread \"a b\": \"x\\ny\"\n");
    assert_eq!(c.read(b"a b").unwrap(), Some(b"x\ny".to_vec()));
    s.client(&["0", "insert", r#""\x00""#, r#""\xff""#, "read", r#""\x00""#])
        .ok("insert \"\\x00\" \"\\xff\": ok\nread \"\\x00\": \"\\xff\"\n");
    assert_eq!(c.read(&[0]).unwrap(), Some(vec![0xff]));
    // Every escape.
    s.client(&["0", "insert", "e", r#""\n\r\t\b\a\\\"\x41'""#])
        .ok("insert e \"\\n\\r\\t\\b\\a\\\\\\\"A'\": ok\n");
    assert_eq!(
        c.read(b"e").unwrap(),
        Some(b"\n\r\t\x08\x07\\\"A'".to_vec())
    );
    // Single quotes: only \' is an escape.
    s.client(&["0", "insert", "sq", r"'it\'s \x00'"])
        .ok("insert sq \"it's \\\\x00\": ok\n");
    assert_eq!(c.read(b"sq").unwrap(), Some(br"it's \x00".to_vec()));
    // An argument that does not start with a quote is taken literally, backslashes included.
    s.client(&["0", "insert", r"\x00", r#"a"b"#])
        .ok("insert \"\\\\x00\" \"a\\\"b\": ok\n");
    assert_eq!(c.read(br"\x00").unwrap(), Some(br#"a"b"#.to_vec()));
    // A bad \x escape is no error (as in redis-cli): the backslash goes, the chars stay.
    s.client(&["0", "insert", r#""\xZZ""#, r#""\x4""#, "read", "xZZ"])
        .ok("insert xZZ x4: ok\nread xZZ: x4\n");
    assert_eq!(c.read(b"xZZ").unwrap(), Some(b"x4".to_vec()));
    // The empty value; a quoted verb is a word, not the operation.
    s.client(&["0", "insert", "empty", r#""""#, "read", "empty"])
        .ok("insert empty \"\": ok\nread empty: \"\"\n");
    assert_eq!(c.read(b"empty").unwrap(), Some(Vec::new()));
    s.client(&["0", r#""read""#, "1"])
        .fails(2, "unknown operation '\"read\"'");
    drop(c);
    s.quit_and_check_clean();
}

/// Lines on standard input split as redis-cli splits: quotes, escapes, comments.
#[test]
fn quoting_and_escapes_on_stdin() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    let input = "\
insert \"a b\" \"x\\ny\"   # a comment \"with an open quote
read 'a b'
insert \"\\x00\" \"\\xff\" read \"\\x00\"
insert e \"\\n\\r\\t\\b\\a\\\\\\\"\\x41'\"
insert sq 'it\\'s \\x00'
insert \\x00 a\\b
# only a comment

insert \"\\xZZ\" \"\\x4\"
insert empty \"\"
read empty
";
    client_stdin(&s, &["0"], input).ok("\
insert \"a b\" \"x\\ny\": ok
read \"a b\": \"x\\ny\"
insert \"\\x00\" \"\\xff\": ok
read \"\\x00\": \"\\xff\"
insert e \"\\n\\r\\t\\b\\a\\\\\\\"A'\": ok
insert sq \"it's \\\\x00\": ok
insert \"\\\\x00\" \"a\\\\b\": ok
insert xZZ x4: ok
insert empty \"\": ok
read empty: \"\"
");
    assert_eq!(c.read(b"a b").unwrap(), Some(b"x\ny".to_vec()));
    assert_eq!(c.read(&[0]).unwrap(), Some(vec![0xff]));
    assert_eq!(
        c.read(b"e").unwrap(),
        Some(b"\n\r\t\x08\x07\\\"A'".to_vec())
    );
    assert_eq!(c.read(b"sq").unwrap(), Some(br"it's \x00".to_vec()));
    assert_eq!(c.read(br"\x00").unwrap(), Some(br"a\b".to_vec()));
    assert_eq!(c.read(b"xZZ").unwrap(), Some(b"x4".to_vec()));
    assert_eq!(c.read(b"empty").unwrap(), Some(Vec::new()));
    // A line that does not split stops the client there (status 2), after the lines before it.
    let out = client_stdin(&s, &["0"], "insert u 1\nread \"u\nread u\n");
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "insert u 1: ok\n");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("line 2: unbalanced quotes"),
        "{}",
        out.stderr
    );
    let out = client_stdin(&s, &["0"], "read \"u\"x\n");
    out.fails(
        2,
        "line 1: the closing \" at column 8 must be followed by a space",
    );
    let out = client_stdin(&s, &["0"], "read \"\"\n");
    out.fails(2, "line 1: empty key for 'read'");
    drop(c);
    s.quit_and_check_clean();
}

/// What the client prints can be given back to it: a binary value read, then inserted from
/// the printed word, through standard input and as an argument, reads back byte-identical.
#[test]
fn printed_values_and_keys_can_be_fed_back_in() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    let binary = all_bytes();
    // A binary value, inserted through the client binary.
    let mut arg = String::from("\"");
    for b in &binary {
        arg += &format!("\\x{b:02x}");
    }
    arg.push('"');
    let out = s.client(&["0", "insert", "bin", &arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c.read(b"bin").unwrap(), Some(binary.clone()));

    let out = s.client(&["0", "read", "bin"]);
    assert_eq!(out.code, 0, "{out:?}");
    let token = after(&out, "read bin: ").to_string();
    assert!(token.starts_with('"') && token.ends_with('"'), "{token}");
    assert!(token.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{token}");
    // Back in through standard input, and as one argument.
    client_stdin(&s, &["0"], &format!("insert copy {token}\n"))
        .ok(&format!("insert copy {token}: ok\n"));
    s.client(&["0", "insert", "copy2", &token])
        .ok(&format!("insert copy2 {token}: ok\n"));
    assert_eq!(c.read(b"copy").unwrap(), Some(binary.clone()));
    assert_eq!(c.read(b"copy2").unwrap(), Some(binary.clone()));
    assert_eq!(c.read(b"bin").unwrap(), Some(binary.clone()));
    s.client(&["0", "read", "copy", "read", "copy2"])
        .ok(&format!("read copy: {token}\nread copy2: {token}\n"));

    // A binary key, inserted through the library: its printed form (from scan) reads it.
    let key = b"\x00k e\"y\xff#\\".to_vec();
    c.insert(&key, b"found").unwrap();
    let out = s.client(&["0", "scan", "0", "100"]);
    let line = after(&out, "scan 0 100: cursor 0, 4 keys: ");
    let keys = words(line);
    assert!(keys.contains(&key), "{out:?}");
    // The other keys print bare: the quoted word is the binary key's, to its closing quote.
    let printed = {
        let b = line.as_bytes();
        let start = line.find('"').unwrap();
        let mut end = start + 1;
        while b[end] != b'"' {
            end += if b[end] == b'\\' { 2 } else { 1 };
        }
        line[start..=end].to_string()
    };
    assert_eq!(words(&printed), std::slice::from_ref(&key));
    s.client(&["0", "read", &printed])
        .ok(&format!("read {printed}: found\n"));
    client_stdin(
        &s,
        &["0"],
        &format!("read {printed}\ninsert {printed} again\n"),
    )
    .ok(&format!(
        "read {printed}: found\ninsert {printed} again: ok, replaced found\n"
    ));
    assert_eq!(c.read(&key).unwrap(), Some(b"again".to_vec()));
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn json_output_for_utf8_and_binary_values() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    c.insert(b"bin", &[0xff, 0x00, 0xfe]).unwrap();
    let out = s.client(&[
        "--json",
        "0",
        "insert",
        "u",
        "héllo wörld",
        "read",
        "u",
        "read",
        "bin",
        "read",
        "missing",
        "insert",
        r#""\xc3""#,
        "x",
        "add",
        "n",
        "3",
        "len",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    let lines = json_lines(&out);
    assert_eq!(
        out.stdout.lines().next().unwrap(),
        r#"{"op":"insert","key":"u","value":"héllo wörld","previous":null,"status":"ok"}"#
    );
    assert_eq!(
        lines[1],
        serde_json::json!({"op": "read", "key": "u", "value": "héllo wörld", "status": "ok"})
    );
    assert_eq!(
        lines[2],
        serde_json::json!({"op": "read", "key": "bin", "value": {"base64": "/wD+"}, "status": "ok"})
    );
    assert_eq!(
        lines[3],
        serde_json::json!({"op": "read", "key": "missing", "value": null, "status": "not_found"})
    );
    // A key that is not UTF-8 (half a character) is base64 too.
    assert_eq!(lines[4]["key"], serde_json::json!({"base64": "ww=="}));
    assert_eq!(
        lines[5],
        serde_json::json!({"op": "add", "key": "n", "delta": 3, "value": 3, "status": "ok"})
    );
    assert_eq!(
        lines[6],
        serde_json::json!({"op": "len", "count": 4, "status": "ok"})
    );
    assert_eq!(lines.len(), 7);
    // Decoding the base64 gives the bytes back.
    assert_eq!(
        shmkv_cli::bytes_from_json(&lines[2]["value"]),
        Some(vec![0xff, 0x00, 0xfe])
    );
    // Refusals are objects on stdout too, with status 1.
    let out = s.client(&["--json", "0", "insert", "s", "x", "add", "s", "1"]);
    assert_eq!(out.code, 1, "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines[1]["status"], "error");
    assert_eq!(
        lines[1]["error"],
        "the value is not a decimal 64-bit integer"
    );
    drop(c);
    s.quit_and_check_clean();
}
