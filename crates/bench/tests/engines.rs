//! `shmkv-bench --url`: a short run against the bench's own shmkv-server and a real
//! `redis-server` (Debian package `redis-server`; a test that cannot start one fails) prints
//! both side by side, writes a JSON record per engine, routine and mode with every answer
//! checked, and leaves no key of its own in the Redis it did not start.
#![cfg(not(loom))]

use shmkv_testkit::redis::{RedisServer, Reply};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_shmkv-bench");

/// Runs the bench with `args`, 300 s at most; its exit code, stdout and stderr.
fn bench(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(BENCH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("shmkv-bench did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        o.join().unwrap(),
        e.join().unwrap(),
    )
}

#[test]
fn url_runs_each_engine_side_by_side_with_every_answer_checked() {
    let r = RedisServer::start();
    assert_eq!(
        r.command(&[b"SET", b"other-key", b"kept"]),
        Reply::Simple("OK".into())
    );
    let redis = r.url();
    let json = r.dir().join("out.json");
    let urls = format!("shm://,{redis}");
    let (code, out, err) = bench(&[
        "--url",
        &urls,
        "--keys",
        "200",
        "--value-size",
        "8",
        "--routines",
        "insert,read",
        "--modes",
        "sync,pipelined,threads,processes",
        "--no-limit",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("note: the processes mode is not run with --url"),
        "{out}"
    );
    assert!(out.contains(&format!("  [2] {redis}\n")), "{out}");
    let side = out
        .split("side by side")
        .nth(1)
        .expect("a side-by-side table");
    for (routine, mode) in [
        ("insert", "sync"),
        ("read", "pipelined"),
        ("read", "threads"),
    ] {
        let row = side
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([routine, mode]))
            .unwrap_or_else(|| panic!("no {routine} {mode} row in:\n{side}"));
        assert!(row.contains("1.00×"), "{row}");
        assert_eq!(row.matches("p50").count(), 2, "{row}");
    }
    assert!(
        out.contains("every answer checked: 1200 shmkv answers, 1200 redis answers"),
        "{out}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let records = doc["results"].as_array().unwrap();
    assert_eq!(records.len(), 12, "{doc}");
    for (engine, system) in [("shm://", "shmkv"), (redis.as_str(), "redis")] {
        let mine: Vec<_> = records.iter().filter(|v| v["engine"] == engine).collect();
        assert_eq!(mine.len(), 6, "{engine}: {doc}");
        for v in mine {
            assert_eq!(v["system"], system, "{v}");
            assert_eq!(v["answers_checked"], 200, "{v}");
            assert_ne!(v["mode"], "processes", "{v}");
        }
    }
    // Without a delete routine the bench removed its keys itself, and only its keys.
    assert_eq!(r.dbsize(), 1);
    assert_eq!(r.command(&[b"EXISTS", b"other-key"]), Reply::Integer(1));
}

#[test]
fn url_refuses_what_does_not_go_with_it() {
    for (args, msg) in [
        (&["--url", "localhost:1"][..], "not a URL"),
        (&["--url", "shm://,shm://"], "twice"),
        (&["--url", "shm://", "--vs-redis"], "do not go together"),
        (&["--url", "shm://", "--spin", "off"], "do not go together"),
        (
            &["--url", "shm://", "--server-threads", "1,2"],
            "one --server-threads",
        ),
    ] {
        let (code, out, err) = bench(args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // Nobody listening: one line, status 1, before anything is measured.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let (code, _, err) = bench(&["--url", &url, "--no-limit", "--keys", "10"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{url}: redis: ")), "{err}");
}
