//! `shmkv-client --url`: the same command lines against a real `redis-server` and a real
//! `shmkv-server` print the same lines (command line, `--json`, standard input, the shell);
//! what only shmkv's own server has is refused on Redis; bad URLs, flags that mean nothing on
//! Redis, and an unreachable Redis are one line each with their exit statuses.
//!
//! Each test starts its own `redis-server` (Debian package `redis-server`) with the harness of
//! `shmkv_testkit::redis`: on a free loopback port, with persistence off, in a temporary
//! directory; a test that cannot start one fails.
#![cfg(not(loom))]

mod common;

use common::pty::Pty;
use common::*;
use shmkv_testkit::redis::{RedisServer, Reply};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on (as of now).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// Running the client.

/// Runs the client with `engine` (`--name N`, `--url U`) then `args`, `input` on standard input.
fn client(engine: &[&str], args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new(CLIENT)
        .args(engine)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writer = input.map(|text| {
        let mut stdin = child.stdin.take().unwrap();
        let text = text.as_bytes().to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&text);
        })
    });
    let out = finish(child);
    if let Some(w) = writer {
        w.join().unwrap();
    }
    out
}

/// Runs the same client invocation against shmkv and Redis; both must exit alike and print
/// exactly the same on stdout and stderr. Returns shmkv's output.
fn same(shm: &[&str], redis: &[&str], args: &[&str], input: Option<&str>) -> Output {
    let a = client(shm, args, input);
    let b = client(redis, args, input);
    assert_eq!(
        a.code, b.code,
        "{args:?} {input:?}\nshmkv: {a:?}\nredis: {b:?}"
    );
    assert_eq!(a.stdout, b.stdout, "{args:?} {input:?}");
    assert_eq!(a.stderr, b.stderr, "{args:?} {input:?}");
    assert!(!a.stderr.contains("panicked"), "{a:?}");
    a
}

/// A script of every operation both engines have, with answers of every kind: inserts
/// (created, replaced), insert-new (created, exists), cas (swapped, mismatch with a value and
/// absent, expecting absence), add (a sum, a refusal on a non-integer), delete (found, not
/// found), reads, len.
const SCRIPT: &[&str] = &[
    "insert",
    "a",
    "b",
    "read",
    "a",
    "insert",
    "a",
    "c",
    "insert-new",
    "a",
    "z",
    "insert-new",
    "n",
    "5",
    "cas",
    "a",
    "c",
    "d",
    "cas",
    "a",
    "c",
    "e",
    "cas",
    "m",
    "x",
    "y",
    "cas",
    "m",
    "--absent",
    "1",
    "add",
    "n",
    "10",
    "add",
    "new",
    "-3",
    "add",
    "a",
    "1",
    "read",
    "n",
    "delete",
    "a",
    "delete",
    "a",
    "read",
    "a",
    "insert",
    "bin",
    "\"\\x00\\xff\"",
    "read",
    "bin",
    "len",
];

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_same_command_lines_print_the_same_lines_on_redis_and_shmkv() {
    let s = ServerProc::start(&[]);
    let r = RedisServer::start();
    let (shm, url) = (["--name", s.name.as_str()], r.url());
    let redis = ["--url", url.as_str()];
    same(&shm, &redis, &["insert", "a", "b", "read", "a"], None).ok("insert a b: ok\nread a: b\n");
    same(&shm, &redis, &["delete", "a"], None).ok("delete a: ok\n");
    let out = same(&shm, &redis, SCRIPT, None);
    assert_eq!(out.code, 1, "the refused add: {out:?}");
    assert!(out.stdout.contains("cas m --absent 1: ok\n"), "{out:?}");
    assert!(
        out.stdout.contains("add n 10: 15\nadd new -3: -3\n"),
        "{out:?}"
    );
    assert!(
        out.stdout.ends_with("read bin: \"\\x00\\xff\"\nlen: 4\n"),
        "{out:?}"
    );
    assert_eq!(
        out.stderr,
        "shmkv-client: add a 1: error: the value is not a decimal 64-bit integer\n"
    );
    // `--url shm://NAME` is `--name NAME`, client id and --timeout included.
    let shm_url = format!("shm://{}", s.name);
    let a = client(&shm, &["0", "read", "n"], None);
    a.ok("read n: 15\n");
    let b = client(
        &["--url", &shm_url, "--timeout", "5"],
        &["0", "read", "n"],
        None,
    );
    b.ok("read n: 15\n");
    s.quit_and_check_clean();
}

/// `--url redis+unix:///PATH`: a Redis server on a unix socket in its temporary directory
/// answers the same command line with the same lines as shmkv, and the key is in that server.
#[test]
fn a_redis_unix_socket_url_prints_the_same_lines_as_shmkv() {
    let s = ServerProc::start(&[]);
    let r = RedisServer::start_with_unix_socket();
    let url = r.unix_url().unwrap();
    assert!(
        url.starts_with("redis+unix:///") && url.ends_with("/r.sock"),
        "{url}"
    );
    let (shm, unix) = (["--name", s.name.as_str()], ["--url", url.as_str()]);
    same(&shm, &unix, &["insert", "a", "b", "read", "a"], None).ok("insert a b: ok\nread a: b\n");
    assert_eq!(r.command(&[b"GET", b"a"]), Reply::Bulk(Some(b"b".to_vec())));
    s.quit_and_check_clean();
}

#[test]
fn json_and_standard_input_print_the_same_on_redis_and_shmkv() {
    let s = ServerProc::start(&[]);
    let r = RedisServer::start();
    let (shm, url) = (["--name", s.name.as_str()], r.url());
    let redis = ["--url", url.as_str()];
    let mut json = vec!["--json"];
    json.extend_from_slice(SCRIPT);
    let out = same(&shm, &redis, &json, None);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 19, "{out:?}");
    assert!(
        out.stdout.contains(
            r#"{"op":"add","key":"a","delta":1,"error":"the value is not a decimal 64-bit integer","status":"error"}"#
        ),
        "{out:?}"
    );
    // Standard input: a line is a batch; comments, blank lines and help are local.
    let input = "insert k 1 # a comment\n\nadd k 41 read k\ninsert-new k 2 cas k 42 43\n\
                 delete k read k len\nexit\nread never\n";
    let out = same(&shm, &redis, &[], Some(input));
    out.ok(
        "insert k 1: ok\nadd k 41: 42\nread k: 42\ninsert-new k 2: exists, value 42\n\
            cas k 42 43: ok\ndelete k: ok\nread k: not found\nlen: 4\n",
    );
    let out = same(&shm, &redis, &["--json"], Some("read n\nread zz\n"));
    out.ok(
        "{\"op\":\"read\",\"key\":\"n\",\"value\":\"15\",\"status\":\"ok\"}\n\
            {\"op\":\"read\",\"key\":\"zz\",\"value\":null,\"status\":\"not_found\"}\n",
    );
    // A line that does not parse stops both at the same place.
    let out = same(&shm, &redis, &[], Some("read n\nread\nread n\n"));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "read n: 15\n");
    s.quit_and_check_clean();
}

#[test]
fn redis_refuses_what_only_shmkvs_server_has_and_sends_nothing_of_that_batch() {
    let r = RedisServer::start();
    let url = r.url();
    let redis = ["--url", url.as_str()];
    for (op, name) in [
        (&["print", "0"][..], "print"),
        (&["threads", "start", "1"], "threads start"),
        (&["threads", "stop"], "threads stop"),
        (&["stats"], "stats"),
        (&["quit"], "quit"),
    ] {
        let mut args = vec!["insert", "k", "v"];
        args.extend_from_slice(op);
        args.extend(["read", "k"]);
        let out = client(&redis, &args, None);
        let want = format!(
            "shmkv-client: '{name}' is not supported by the redis engine (only shmkv's own server has it)\n"
        );
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (2, ""),
            "{args:?}: {out:?}"
        );
        assert_eq!(out.stderr, want, "{args:?}");
        // Nothing of the batch ran: k is still absent.
        client(&redis, &["read", "k"], None).ok("read k: not found\n");
    }
    // On standard input: the lines before run, the refused line stops the client.
    let out = client(&redis, &[], Some("insert k 1\nstats read k\nread k\n"));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "insert k 1: ok\n");
    out.fails(2, "line 2: 'stats' is not supported by the redis engine");
    // --json: the same refusal, no JSON.
    let out = client(&redis, &["--json", "read", "k", "print", "1"], None);
    assert_eq!(out.stdout, "");
    out.fails(2, "'print' is not supported by the redis engine");
}

#[test]
fn bad_urls_and_flags_without_meaning_on_redis_are_usage_errors() {
    // Nobody listens there: each case must fail before connecting.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--url", "localhost:6379"],
            "not a URL; use shm://NAME, redis://HOST:PORT",
        ),
        (&["--url", "http://h:1"], "unknown scheme 'http'"),
        (
            &["--url", "redis://h"],
            "is not HOST:PORT (the port is required)",
        ),
        (&["--url", "redis://h:0"], "'0' is not a port"),
        (&["--url", "redis-cluster://h:1,h"], "'h' is not HOST:PORT"),
        (
            &["--url", "redis+unix://relative"],
            "redis+unix:///ABSOLUTE/PATH",
        ),
        (&["--url", "shm://a/b"], "shm://a/b:"),
        (
            &["--url", &url, "--name", "x"],
            "'--url <URL>' cannot be used with '--name",
        ),
        (
            &["--url", &url, "--socket", "/x"],
            "'--url <URL>' cannot be used with '--socket",
        ),
        (
            &["--url", &url, "0"],
            "client ids are slots of shmkv's own server",
        ),
        (
            &["--url", &url, "--timeout", "3"],
            "--timeout is for shmkv's own server",
        ),
    ];
    for (args, msg) in cases {
        let mut a = args.to_vec();
        a.extend(["read", "k"]);
        let out = run(CLIENT, &a);
        out.fails(2, msg);
        assert_eq!(out.stdout, "", "{a:?}");
    }
    // '-' (any slot) means nothing in particular, and is accepted: the failure is connecting.
    run(CLIENT, &["--url", &url, "-", "read", "k"]).fails(3, "cannot connect to");
}

#[test]
fn an_unreachable_redis_is_one_line_and_status_3() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let want = format!("shmkv-client: cannot connect to {url}: redis: ");
    for input in [None, Some("read k\n")] {
        let args: &[&str] = if input.is_some() { &[] } else { &["read", "k"] };
        let out = client(&["--url", &url], args, input);
        out.fails(3, &want);
        assert!(out.stderr.starts_with(&want), "{out:?}");
        assert_eq!(out.stdout, "");
    }
    let sock = std::env::temp_dir().join(format!("{}-none.sock", unique_name()));
    let unix = format!("redis+unix://{}", sock.display());
    run(CLIENT, &["--url", &unix, "len"]).fails(3, &format!("cannot connect to {unix}"));
    let cluster = format!("redis-cluster://127.0.0.1:{port},127.0.0.1:{}", free_port());
    run(CLIENT, &["--url", &cluster, "len"]).fails(3, "cannot connect to redis-cluster://");
}

#[test]
fn a_redis_that_goes_away_is_status_3() {
    let r = RedisServer::start();
    let url = r.url();
    let mut child = spawn_piped(&["--url", &url]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    stdin.write_all(b"insert k 1\n").unwrap();
    let first = lines.recv_timeout(DEADLINE).expect("the first answer");
    assert_eq!(first, "insert k 1: ok");
    // Dropping the server kills it and waits for it.
    drop(r);
    stdin.write_all(b"read k\n").unwrap();
    drop(stdin);
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "the client did not exit");
        std::thread::sleep(Duration::from_millis(2));
    };
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert_eq!(
        lines.recv_timeout(DEADLINE).ok(),
        None,
        "nothing more on stdout"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("shmkv-client: redis: "), "{err}");
}

/// The client with piped stdin, stdout and stderr.
fn spawn_piped(args: &[&str]) -> Child {
    Command::new(CLIENT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lines of `out`, as they come, from a reader thread (the channel closes at its end).
fn lines_of(out: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

// ---------------------------------------------------------------------------------------------
// The shell, through a pseudo-terminal.

/// The shell on Redis: its prompt names the URL, Tab offers only the operations the engine
/// has (no print, threads, stats or quit), and print is refused with the shell going on.
#[test]
fn the_shell_on_redis_prompts_with_the_url_and_refuses_print() {
    let r = RedisServer::start();
    let url = r.url();
    let mut t = Pty::spawn(CLIENT, &["--url", &url], &[("SHMKV_HISTORY", "")]);
    t.expect(&format!("connected to {url} (the redis engine)"));
    let prompt = format!("shmkv[{url}]> ");
    t.expect(&prompt);
    // Two Tabs on an empty line list every word offered; 's' completes to 'scan' alone.
    t.send("\t\t");
    let listed = t.expect(&prompt);
    for w in [
        "insert-new",
        "delete",
        "cas",
        "add",
        "len",
        "scan",
        "help",
        "exit",
    ] {
        assert!(listed.contains(w), "{w:?} not offered: {listed:?}");
    }
    for w in ["print", "threads", "stats", "quit"] {
        assert!(!listed.contains(w), "{w:?} offered: {listed:?}");
    }
    t.send("s\t");
    t.expect(&format!("{prompt}scan "));
    t.send("\x15"); // Ctrl-U: clear the line
    t.send("insert k 1 add k 2\r");
    t.expect("insert k 1: ok\nadd k 2: 3\n");
    t.send("print 0\r");
    t.expect("shmkv-client: 'print' is not supported by the redis engine (only shmkv's own server has it)\n");
    t.send("read k\r");
    t.expect("read k: 3\n");
    t.send("exit\r");
    let (code, seen) = t.wait();
    assert_eq!(code, 0, "{seen:?}");
}
