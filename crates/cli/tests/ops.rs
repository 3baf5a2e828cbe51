//! Operator experience, end to end with the real binaries: the interactive shell (driven
//! through a pseudo-terminal), operations piped through standard input, `--json`, the Stats
//! operation, and the server's log lines. Then every operation on byte strings through a real
//! server (in this process or the binary): insert-new, cas, add, len, scan; the largest values
//! beside a client that keeps working; empty values and binary keys; keys and values over the
//! limits, refused by the client and, sent raw past it, by the server; the memory budget; and
//! many workers answering a pipelining client.
#![cfg(not(loom))]

mod common;

use common::*;
use serde_json::Value;
use shmkv::client::{Client, ClientConfig, ClientError, Outcome};
use shmkv::server::{Server, ServerConfig};
use shmkv::wire::{ErrorCode, Field, Limits, Op, Verb};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// A pseudo-terminal driver: the child gets the slave side as its controlling terminal and its
// stdin, stdout and stderr; the test reads the master side with deadlines (poll), never sleeps.

struct Pty {
    master: OwnedFd,
    child: Child,
    /// Everything read so far, with escape sequences and carriage returns removed.
    seen: String,
    /// `seen[..pos]` has been matched by earlier expectations.
    pos: usize,
    raw: Vec<u8>,
}

/// Remove ANSI escape sequences (CSI and two-byte ESC sequences) and carriage returns.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\x07' => {}
            c => out.push(c),
        }
    }
    out
}

impl Pty {
    fn spawn(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Pty {
        let ws = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        drop(pty.slave);
        Pty {
            master: pty.master,
            child,
            seen: String::new(),
            pos: 0,
            raw: Vec::new(),
        }
    }

    /// Read what is available, waiting at most until `until`. False at end of output.
    fn fill(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(1000) as u16;
        let mut fds = [nix::poll::PollFd::new(
            self.master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, ms) {
            Ok(0) => true,
            Ok(_) => {
                let mut buf = [0u8; 4096];
                match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
                    Ok(0) => false,
                    Ok(n) => {
                        self.raw.extend_from_slice(&buf[..n]);
                        self.seen = clean(&self.raw);
                        true
                    }
                    // EIO: the child closed the terminal.
                    Err(_) => false,
                }
            }
            Err(nix::errno::Errno::EINTR) => true,
            Err(e) => panic!("poll: {e}"),
        }
    }

    /// Wait until `needle` appears after what earlier expectations matched; returns the text
    /// between the previous match and the end of this one.
    fn expect(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.seen[self.pos..].find(needle) {
                let from = self.pos;
                self.pos += i + needle.len();
                return self.seen[from..self.pos].to_string();
            }
            let open = self.fill(end);
            assert!(
                open || self.seen[self.pos..].contains(needle),
                "output ended without {needle:?}; after the last match: {:?}",
                &self.seen[self.pos..]
            );
            assert!(
                Instant::now() < end,
                "no {needle:?} within {DEADLINE:?}; after the last match: {:?}",
                &self.seen[self.pos..]
            );
        }
    }

    fn send(&mut self, text: &str) {
        let mut b = text.as_bytes();
        while !b.is_empty() {
            let n = nix::unistd::write(&self.master, b).unwrap();
            b = &b[n..];
        }
    }

    /// Wait for the child to exit (reading its output meanwhile); its exit code.
    fn wait(mut self) -> (i32, String) {
        let end = Instant::now() + DEADLINE;
        while self.fill(end) {
            assert!(
                Instant::now() < end,
                "the shell did not end: {:?}",
                self.seen
            );
        }
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), std::mem::take(&mut self.seen));
            }
            assert!(Instant::now() < end, "the shell did not exit");
            std::thread::yield_now();
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("shmkv-ops-{}-{what}", unique_name()))
}

#[test]
fn the_shell_through_a_pseudo_terminal() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let history = temp_path("history");
    let mut t = Pty::spawn(
        CLIENT,
        &["--name", &s.name, "0"],
        &[("SHMKV_HISTORY", history.to_str().unwrap())],
    );
    let prompt = format!("shmkv[{}:0]> ", s.name);
    t.expect(&format!("connected to server '{}' as client 0", s.name));
    t.expect(&prompt);

    // Tab completes the command as far as it is unique ('insert' and 'insert-new' share
    // 'insert'), a second Tab lists the candidates; several operations on one line run as
    // one batch.
    t.send("ins\t");
    t.expect("insert");
    t.send("\t");
    t.expect("insert-new");
    t.send(" 1 2 rea\t");
    t.expect("read ");
    t.send("1\r");
    t.expect("insert 1 2: ok\n");
    t.expect("read 1: 2\n");
    t.expect(&prompt);

    // A refusal and a line that does not parse are shown, and the shell stays.
    t.send("print 99\r");
    t.expect("shmkv-client: print 99: error: bucket 99 out of range (the table has 10 buckets");
    t.expect(&prompt);
    t.send("frob 3\r");
    t.expect("unknown operation 'frob'");
    t.expect(&prompt);
    t.send("read\r");
    t.expect("'read' needs a key");
    t.expect(&prompt);

    t.send("help\r");
    let help = t.expect(&prompt);
    assert!(help.contains("insert <key> <value>"), "{help}");
    assert!(help.contains("Shell commands:"), "{help}");
    assert!(help.contains("Ctrl-D"), "{help}");

    // Two Tabs list what may follow 'threads'.
    t.send("threads \t\t");
    t.expect("start  stop");
    t.expect(&format!("{prompt}threads "));
    t.send("\x15"); // Ctrl-U: clear the line
    t.send("stats\r");
    t.expect("stats\n");
    let stats = t.expect(&prompt);
    assert!(
        stats.starts_with("stats:\n  requests   4 (insert 1, read 1,"),
        "{stats}"
    );
    assert!(
        stats.contains("  table      1 entry, 10 buckets"),
        "{stats}"
    );

    // History: Up six times reaches the first line (before print, frob, read, help, stats).
    t.send("\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\r");
    t.expect("insert 1 2 read 1");
    t.expect("insert 1 2: ok, replaced 2\n");
    t.expect(&prompt);

    // Ctrl-D leaves with status 0 and the server sees the client go.
    t.send("\x04");
    let (code, seen) = t.wait();
    assert_eq!(code, 0, "{seen}");
    let saved = std::fs::read_to_string(&history).unwrap();
    let _ = std::fs::remove_file(&history);
    assert!(saved.contains("insert 1 2 read 1"), "{saved}");
    assert!(saved.contains("print 99"), "{saved}");
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);
    s.client(&["0", "read", "1"]).ok("read 1: 2\n");
    s.quit_and_check_clean();
}

#[test]
fn the_shell_ends_on_exit_and_on_quit() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let mut t = Pty::spawn(CLIENT, &["--name", &s.name], &[("SHMKV_HISTORY", "")]);
    let prompt = format!("shmkv[{}:0]> ", s.name);
    t.expect(&prompt);
    t.send("exit\r");
    assert_eq!(t.wait().0, 0);

    // The id '-' takes the first free slot: slot 1 while this process holds slot 0.
    let held = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let mut t = Pty::spawn(
        CLIENT,
        &["--name", &s.name, "--json", "-"],
        &[("SHMKV_HISTORY", "")],
    );
    let prompt = format!("shmkv[{}:1]> ", s.name);
    t.expect(&prompt);
    t.send("insert 4 5\r");
    t.expect(r#"{"op":"insert","key":"4","value":"5","previous":null,"status":"ok"}"#);
    t.expect(&prompt);
    t.send("quit\r");
    t.expect(r#"{"op":"quit","status":"ok"}"#);
    assert_eq!(t.wait().0, 0);
    drop(held);
    s.wait_exit_and_check_clean();
}

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

fn json_lines(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

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

// ---------------------------------------------------------------------------------------------
// Stats.

#[test]
fn stats_after_a_known_workload_are_exact() {
    let s = ServerProc::start(&["10", "2", "2"]);
    s.client(&[
        "0", "insert", "1", "1", "insert", "2", "2", "insert", "3", "3", "insert", "4", "4",
        "insert", "5", "5", "read", "1", "read", "99", "delete", "5",
    ])
    .ok("insert 1 1: ok\ninsert 2 2: ok\ninsert 3 3: ok\ninsert 4 4: ok\ninsert 5 5: ok\nread 1: 1\nread 99: not found\ndelete 5: ok\n");
    s.client(&["0", "print", "10"])
        .fails(1, "bucket 10 out of range");
    s.client(&[
        "0", "threads", "start", "1", "threads", "stop", "threads", "stop", "threads", "stop",
    ])
    .fails(1, "threads stop: error: cannot stop the last worker thread");
    // Slot 0 is freed asynchronously after its client left.
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);

    let c = Client::connect(&ClientConfig::new(&s.name).slot(1)).unwrap();
    let st = c.stats().unwrap();
    let o = &st.ops;
    assert_eq!(
        [
            Verb::Insert,
            Verb::Read,
            Verb::Delete,
            Verb::Print,
            Verb::ThreadsStart,
            Verb::ThreadsStop,
            Verb::Quit,
            Verb::Stats
        ]
        .map(|v| o.get(v)),
        [5, 2, 1, 1, 1, 3, 0, 1],
        "{st:?}"
    );
    for v in [Verb::InsertNew, Verb::Cas, Verb::Add, Verb::Len, Verb::Scan] {
        assert_eq!(o.get(v), 0, "{v:?}");
    }
    assert_eq!(o.total(), 14);
    assert_eq!(st.errors.get(ErrorCode::LastWorker.code()), 1);
    assert_eq!(st.errors.get(1), 1, "bad bucket");
    assert_eq!(st.errors.total(), 2);
    assert_eq!((st.entries, st.buckets, st.client_slots), (4, 10, 2));
    // Four entries of a 1-byte key and a 1-byte value; the default budget and limits.
    assert_eq!(st.memory_used, 4 * shmkv::store::entry_cost(1, 1));
    assert_eq!(st.memory_limit, shmkv::server::default_max_memory());
    assert_eq!((st.max_key, st.max_value), (4096, 1 << 20));
    assert!((1..=4).contains(&st.longest_bucket), "{st:?}");
    assert_eq!(st.slots.len(), 2);
    let (s0, s1) = (st.slots[0], st.slots[1]);
    assert_eq!(
        (s0.slot, s0.owner_pid, s0.workers, s0.requests),
        (0, 0, 0, 13),
        "a free slot has no workers; its requests count every session it had"
    );
    assert_eq!(
        (s1.slot, s1.owner_pid, s1.workers, s1.requests),
        (1, u64::from(std::process::id()), 2, 1)
    );
    assert_eq!((st.connected(), st.worker_threads()), (1, 2));
    assert_eq!(st.latency.sample_every, 64);
    assert_eq!(
        st.latency.samples, 0,
        "14 requests, none is the 64th of its lane"
    );
    assert!(st.other.is_empty());
    // A second look counts the first.
    assert_eq!(c.stats().unwrap().ops.get(Verb::Stats), 2);
    drop(c);
    wait_until(DEADLINE, || owner_of(&s.name, 1) == 0);

    // The command line: text and JSON.
    let out = s.client(&["0", "stats"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "stats:");
    assert_eq!(
        lines[1],
        "  requests   16 (insert 5, read 2, delete 1, insert-new 0, cas 0, add 0, len 0, scan 0, print 1, threads start 1, threads stop 3, stats 3, quit 0)"
    );
    assert_eq!(
        lines[2],
        "  refused    2 (bad bucket 1, thread limit 0, last worker 1, shutting down 0, malformed 0, too large 0, out of memory 0, not an integer 0, overflow 0)"
    );
    assert!(lines[3].starts_with("  table      4 entries, 10 buckets, longest bucket "));
    assert!(
        lines[4].starts_with("  memory     224 bytes used of "),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[5],
        "  limits     keys up to 4 KiB, values up to 1 MiB"
    );
    assert_eq!(
        lines[6],
        "  clients    1 of 2 slots connected, 2 worker threads in all"
    );
    assert!(lines[7].starts_with("    slot 0   pid "), "{}", out.stdout);
    assert!(
        lines[7].ends_with(", 2 worker threads, 14 requests"),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[8],
        "  latency    no samples yet (1 in 64 requests is timed)"
    );
    assert!(lines[9].starts_with("  uptime     "));
    assert_eq!(lines.len(), 10);
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);

    let out = s.client(&["--json", "1", "stats"]);
    let v = &json_lines(&out)[0];
    assert_eq!(v["op"], "stats");
    assert_eq!(v["status"], "ok");
    let j = &v["stats"];
    assert_eq!(j["requests"]["insert"], 5);
    assert_eq!(j["requests"]["insert_new"], 0);
    assert_eq!(j["requests"]["stats"], 4);
    assert_eq!(j["requests"]["total"], 17);
    assert_eq!(j["errors"]["total"], 2);
    assert_eq!(j["errors"]["out_of_memory"], 0);
    assert_eq!(j["memory"]["used"], 224);
    assert_eq!(j["memory"]["limit"], shmkv::server::default_max_memory());
    assert_eq!(j["limits"]["max_key"], 4096);
    assert_eq!(j["limits"]["max_value"], 1 << 20);
    assert_eq!(j["table"]["entries"], 4);
    assert_eq!(j["table"]["buckets"], 10);
    assert_eq!(j["client_slots"], 2);
    assert_eq!(j["connected"], 1);
    assert_eq!(j["worker_threads"], 2);
    assert_eq!(j["slots"][0]["pid"], Value::Null);
    assert_eq!(j["slots"][0]["requests"], 14);
    assert!(j["slots"][1]["pid"].as_u64().unwrap() > 0);
    assert_eq!(j["latency"]["sample_every"], 64);
    s.quit_and_check_clean();
}

/// A Stats pipelined after other requests sees all of them, however many workers serve the
/// client (it waits for the earlier requests in flight), and latency samples appear.
#[test]
fn stats_follow_every_earlier_request_of_the_batch() {
    // Small rings (64 KiB) and large answers: workers often wait for room for their answers,
    // with the request in flight.
    let s = ServerProc::start(&["1000", "1", "4", "--max-value", "1K"]);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let big = vec![0x5a; 900];
    assert_eq!(c.insert(b"big", &big).unwrap(), None);
    let key = |round: u64, i: u64| format!("k{}", round * 1000 + i).into_bytes();
    let mut inserted = 1u64;
    for round in 0..20u64 {
        // 100 inserts and 100 reads of a 900-byte value (90 KB of answers), a Stats, a delete.
        let mut ops: Vec<Op> = Vec::new();
        for i in 0..100u64 {
            ops.push(Op::Insert {
                key: key(round, i),
                value: i.to_le_bytes().to_vec(),
            });
            ops.push(Op::Read {
                key: b"big".to_vec(),
            });
        }
        inserted += 100;
        ops.push(Op::Stats);
        ops.push(Op::Delete { key: key(round, 0) });
        let tickets = c.submit_all(&ops).unwrap();
        let mut outcomes = Vec::new();
        for t in tickets {
            outcomes.push(c.wait(t).unwrap());
        }
        assert_eq!(outcomes[1], Outcome::Value(big.clone()));
        let Outcome::Stats(st) = &outcomes[200] else {
            panic!("{:?}", outcomes[200]);
        };
        let st = shmkv::stats::Stats::from_stats(st);
        // Every insert and read before it, none of the deletes of this round after it.
        assert_eq!(st.entries, inserted - round, "round {round}");
        assert_eq!(st.ops.get(Verb::Insert), inserted, "round {round}");
        assert_eq!(st.ops.get(Verb::Read), 100 * (round + 1), "round {round}");
        assert_eq!(st.ops.get(Verb::Delete), round, "round {round}");
        assert_eq!(st.slots[0].requests, 1 + round * 202 + 201, "round {round}");
        // Every 64th request is timed once answered: all those before the Stats are counted.
        assert_eq!(
            st.latency.samples,
            (1 + round * 202 + 200) / 64,
            "round {round}"
        );
        assert_eq!(outcomes[201], Outcome::Deleted(0u64.to_le_bytes().to_vec()));
    }
    let st = c.stats().unwrap();
    // 1 + 20 × 202 + 1 requests on one lane: every 64th is timed.
    assert_eq!(st.latency.samples, (1 + 20 * 202 + 1) / 64);
    let l = st.latency;
    assert!(l.p50_ns > 0 && l.p50_ns <= l.p99_ns && l.p99_ns <= l.p999_ns && l.p999_ns <= l.max_ns);
    assert!(l.window_ms <= 20_000, "{l:?}");
    drop(c);
    s.quit_and_check_clean();
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// A server whose stderr is collected line by line as it comes, to wait for log lines.
struct LoggingServer {
    name: String,
    child: Child,
    /// The log so far, and whether stderr has ended.
    log: Arc<(Mutex<(String, bool)>, Condvar)>,
}

impl LoggingServer {
    fn start(args: &[&str], env: &[(&str, &str)]) -> LoggingServer {
        let name = unique_name();
        let mut cmd = Command::new(SERVER);
        cmd.args(args)
            .args(["--name", &name])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new((String::new(), false)), Condvar::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            let (m, c) = &*l2;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                m.lock().unwrap().0.push_str(&(line + "\n"));
                c.notify_all();
            }
            m.lock().unwrap().1 = true;
            c.notify_all();
        });
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        assert!(ready.contains("ready"), "{ready:?}");
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
        });
        LoggingServer { name, child, log }
    }

    /// Wait until the log has a line containing every one of `parts`; returns that line.
    fn wait_for(&self, parts: &[&str]) -> String {
        let (m, c) = &*self.log;
        let end = Instant::now() + DEADLINE;
        let mut log = m.lock().unwrap();
        loop {
            if let Some(l) = log.0.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.to_string();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !log.1,
                "no log line with {parts:?} in:\n{}",
                log.0
            );
            log = c.wait_timeout(log, left).unwrap().0;
        }
    }

    /// Wait for the end of the server's stderr; the whole log.
    fn wait_log_end(&self) -> String {
        let (m, c) = &*self.log;
        let end = Instant::now() + DEADLINE;
        let mut log = m.lock().unwrap();
        while !log.1 {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "stderr still open:\n{}", log.0);
            log = c.wait_timeout(log, left).unwrap().0;
        }
        log.0.clone()
    }

    fn client(&self, args: &[&str]) -> Output {
        run_client_named(&self.name, args)
    }

    /// Quit through a client, wait for the exit; the whole log.
    fn quit(mut self) -> String {
        self.client(&["-", "quit"]).ok("quit: ok\n");
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < end, "server did not exit");
            std::thread::yield_now();
        };
        assert_eq!(status.code(), Some(0));
        self.wait_log_end()
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_server_files(&self.name);
    }
}

#[test]
fn the_server_logs_connects_disconnects_thread_changes_and_dead_clients() {
    let s = LoggingServer::start(&["10", "2", "1"], &[]);
    let server = format!("server={}", s.name);
    s.client(&["0", "threads", "start", "2", "threads", "stop", "read", "1"])
        .ok("threads start 2: ok, 3 threads\nthreads stop: ok, 2 threads\nread 1: not found\n");
    let connected = s.wait_for(&["INFO", "client connected", &server, "slot=0"]);
    let pid = connected.split("pid=").nth(1).unwrap().to_string();
    s.wait_for(&[
        "INFO",
        "worker threads started",
        "slot=0",
        "started=2",
        "workers=3",
    ]);
    s.wait_for(&["INFO", "worker thread stopped", "slot=0", "workers=2"]);
    s.wait_for(&[
        "INFO",
        "client disconnected",
        &format!("pid={pid}"),
        "reason=\"detached\"",
    ]);

    // A client killed while attached: its process died without detaching.
    let mut victim = Command::new(CLIENT)
        .args(["--name", &s.name, "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = victim.stdin.take().unwrap();
    input.write_all(b"read 1\n").unwrap();
    let mut out = BufReader::new(victim.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "read 1: not found\n");
    let vpid = victim.id();
    victim.kill().unwrap();
    victim.wait().unwrap();
    s.wait_for(&[
        "WARN",
        "client disconnected",
        "slot=1",
        &format!("pid={vpid}"),
        "reason=\"its process died without detaching\"",
    ]);
    let log = s.quit();
    // One line per event, and nothing at debug level by default.
    assert_eq!(log.matches("worker threads started").count(), 1, "{log}");
    assert!(log.contains("quit requested by a client"), "{log}");
    assert!(!log.contains("DEBUG"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn quiet_verbose_and_rust_log_choose_the_log_lines() {
    // --quiet: nothing at all.
    let s = LoggingServer::start(&["10", "1", "1", "--quiet"], &[("RUST_LOG", "debug")]);
    s.client(&["0", "read", "1"]).ok("read 1: not found\n");
    let log = s.quit();
    assert_eq!(log, "");

    // --verbose: debug lines too (each worker thread), whatever RUST_LOG says.
    let s = LoggingServer::start(&["10", "1", "2", "--verbose"], &[("RUST_LOG", "error")]);
    s.client(&["0", "read", "1"]).ok("read 1: not found\n");
    s.wait_for(&["INFO", "client connected"]);
    let log = s.quit();
    assert_eq!(
        log.matches("DEBUG worker thread running").count(),
        4,
        "two sessions (the read, then the quit) of 2 workers each: {log}"
    );
    assert!(log.contains("DEBUG started"), "{log}");

    // RUST_LOG=warn: no info lines.
    let s = LoggingServer::start(&["10", "1", "1"], &[("RUST_LOG", "warn")]);
    s.client(&["0", "read", "1"]).ok("read 1: not found\n");
    let log = s.quit();
    assert_eq!(log, "");

    // A RUST_LOG that does not parse: one warning line, then the default level.
    let s = LoggingServer::start(&["10", "1", "1"], &[("RUST_LOG", "=[")]);
    s.client(&["0", "read", "1"]).ok("read 1: not found\n");
    let log = s.quit();
    assert!(
        log.starts_with("shmkv-server: ignoring RUST_LOG=\"=[\""),
        "{log}"
    );
    assert!(log.contains("INFO client connected"), "{log}");

    // Both flags: a usage error.
    let out = run_server_expect_fail(&["--quiet", "--verbose"]);
    out.fails(2, "cannot be used with");
}

#[test]
fn help_documents_examples_exit_codes_and_the_new_modes() {
    let h = run(SERVER, &["--help"]);
    assert_eq!(h.code, 0);
    for want in [
        "Examples:",
        "Exit status:",
        "--verbose",
        "--quiet",
        "RUST_LOG",
        "--max-key",
        "--max-value",
        "--max-memory",
    ] {
        assert!(h.stdout.contains(want), "server --help lacks {want:?}");
    }
    let h = run(CLIENT, &["--help"]);
    assert_eq!(h.code, 0);
    for want in [
        "Examples:",
        "Exit status:",
        "--json",
        "interactive shell",
        "standard input",
        "stats",
        "4 the terminal",
        "insert-new <key> <value>",
        "cas <key> <expected>|--absent <new>",
        "add <key> <delta>",
        "scan <cursor> [<count>]",
        "len",
        "byte strings",
    ] {
        assert!(h.stdout.contains(want), "client --help lacks {want:?}");
    }
    let v = run(SERVER, &["-V"]);
    assert_eq!(
        v.stdout,
        format!("shmkv-server {}\n", env!("CARGO_PKG_VERSION"))
    );
    let v = run(CLIENT, &["-V"]);
    assert_eq!(
        v.stdout,
        format!("shmkv-client {}\n", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------------------------
// The example.

/// `examples/two_processes.rs` (built by `cargo test` beside the test binaries) runs: two
/// processes, one table.
#[test]
fn the_two_processes_example_runs() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("two_processes"))
        .unwrap();
    assert!(example.exists(), "{} not built", example.display());
    let out = run(example.to_str().unwrap(), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    for want in [
        "inserted 3 -> 30",
        "read 1 -> 10",
        "read 3 -> 30",
        "the server counted 3 inserts and 3 reads; the table has 3 entries",
        "server shut down",
    ] {
        assert!(out.stdout.contains(want), "no {want:?} in {}", out.stdout);
    }
    assert_eq!(out.stdout.lines().count(), 10, "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------------
// Byte strings, end to end through a real server.

/// A server in this process with a unique name, `buckets` buckets, `clients` slots and
/// `threads` workers per client, configured further by `tweak`.
fn serve(
    buckets: usize,
    clients: u32,
    threads: u32,
    tweak: impl FnOnce(&mut ServerConfig),
) -> (Server, String) {
    let name = unique_name();
    let mut config = ServerConfig {
        name: name.clone(),
        buckets,
        clients,
        threads,
        ..ServerConfig::default()
    };
    tweak(&mut config);
    (Server::start(config).unwrap(), name)
}

fn refused(code: ErrorCode) -> Result<i64, ClientError> {
    Err(ClientError::Refused(code))
}

fn too_large<T>(what: Field, len: u64, max: u32) -> Result<T, ClientError> {
    Err(ClientError::TooLarge { what, len, max })
}

#[test]
fn insert_new_cas_add_and_len_through_a_server() {
    let (server, name) = serve(64, 1, 2, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.len().unwrap(), 0);

    // insert-new creates once; then it reports the value there and changes nothing.
    assert_eq!(c.insert_new(b"a", b"1").unwrap(), None);
    assert_eq!(c.insert_new(b"a", b"2").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.read(b"a").unwrap(), Some(b"1".to_vec()));

    // cas swaps when the value is the expected one; otherwise it reports the value there and
    // changes nothing.
    assert_eq!(c.cas(b"a", Some(b"1"), b"3").unwrap(), Ok(()));
    assert_eq!(
        c.cas(b"a", Some(b"1"), b"4").unwrap(),
        Err(Some(b"3".to_vec()))
    );
    assert_eq!(c.read(b"a").unwrap(), Some(b"3".to_vec()));
    // Expecting the key absent: creates it when absent, not when present.
    assert_eq!(c.cas(b"b", None, b"x").unwrap(), Ok(()));
    assert_eq!(c.read(b"b").unwrap(), Some(b"x".to_vec()));
    assert_eq!(c.cas(b"b", None, b"y").unwrap(), Err(Some(b"x".to_vec())));
    assert_eq!(c.read(b"b").unwrap(), Some(b"x".to_vec()));
    // Expecting a value of an absent key: a mismatch saying "absent"; the key stays absent.
    assert_eq!(c.cas(b"c", Some(b"x"), b"y").unwrap(), Err(None));
    // The empty value is a value, not absence.
    assert_eq!(c.cas(b"c", Some(b""), b"y").unwrap(), Err(None));
    assert_eq!(c.read(b"c").unwrap(), None);
    assert_eq!(c.insert(b"c", b"").unwrap(), None);
    assert_eq!(c.cas(b"c", None, b"y").unwrap(), Err(Some(Vec::new())));
    assert_eq!(c.cas(b"c", Some(b""), b"y").unwrap(), Ok(()));
    assert_eq!(c.read(b"c").unwrap(), Some(b"y".to_vec()));

    // add: a missing key counts as 0; the result is stored as decimal text.
    assert_eq!(c.add(b"n", 5).unwrap(), 5);
    assert_eq!(c.read(b"n").unwrap(), Some(b"5".to_vec()));
    assert_eq!(c.add(b"n", -12).unwrap(), -7);
    assert_eq!(c.add(b"n", 0).unwrap(), -7);
    assert_eq!(c.read(b"n").unwrap(), Some(b"-7".to_vec()));
    assert_eq!(c.insert(b"n", b"40").unwrap(), Some(b"-7".to_vec()));
    assert_eq!(c.add(b"n", 2).unwrap(), 42);
    // A value that is not a canonical decimal i64 is refused, and stays as it was.
    for v in [
        &b"x"[..],
        b"",
        b"007",
        b"+5",
        b"-0",
        b" 5",
        b"5 ",
        b"1.0",
        b"5\0",
        b"9223372036854775808",
        b"99999999999999999999",
    ] {
        c.insert(b"s", v).unwrap();
        assert_eq!(c.add(b"s", 1), refused(ErrorCode::NotAnInteger), "{v:?}");
        assert_eq!(c.read(b"s").unwrap(), Some(v.to_vec()), "{v:?}");
    }
    // A result out of range is refused, and the value stays as it was.
    c.insert(b"max", i64::MAX.to_string().as_bytes()).unwrap();
    assert_eq!(c.add(b"max", 1), refused(ErrorCode::Overflow));
    assert_eq!(
        c.read(b"max").unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );
    assert_eq!(c.add(b"max", -1).unwrap(), i64::MAX - 1);
    c.insert(b"min", i64::MIN.to_string().as_bytes()).unwrap();
    assert_eq!(c.add(b"min", -1), refused(ErrorCode::Overflow));
    assert_eq!(
        c.read(b"min").unwrap(),
        Some(i64::MIN.to_string().into_bytes())
    );
    assert_eq!(c.add(b"min", i64::MAX).unwrap(), -1);
    assert_eq!(c.add(b"fresh", i64::MIN).unwrap(), i64::MIN);
    assert_eq!(c.add(b"fresh", -1), refused(ErrorCode::Overflow));
    assert_eq!(
        c.read(b"fresh").unwrap(),
        Some(i64::MIN.to_string().into_bytes())
    );

    // len counts the keys: a b c n s max min fresh.
    assert_eq!(c.len().unwrap(), 8);
    assert_eq!(
        c.delete(b"s").unwrap(),
        Some(b"99999999999999999999".to_vec())
    );
    assert_eq!(c.len().unwrap(), 7);
    // Refused and mismatched operations created nothing.
    assert_eq!(c.read(b"s").unwrap(), None);

    let st = c.stats().unwrap();
    assert_eq!(st.ops.get(Verb::InsertNew), 2);
    assert_eq!(st.ops.get(Verb::Cas), 8);
    assert_eq!(st.ops.get(Verb::Add), 21);
    assert_eq!(st.ops.get(Verb::Len), 3);
    assert_eq!(st.errors.get(ErrorCode::NotAnInteger.code()), 11);
    assert_eq!(st.errors.get(ErrorCode::Overflow.code()), 3);
    assert_eq!(st.errors.total(), 14);
    assert_eq!(st.entries, 7);
    drop(c);
    server.shutdown();
}

/// Collect a full scan with `count`: every key it returned and how often, and the calls.
fn full_scan(c: &Client, count: u32, buckets: u64) -> (HashMap<Vec<u8>, u32>, u64) {
    let (mut cursor, mut calls) = (0, 0u64);
    let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
    loop {
        let (next, keys) = c.scan(cursor, count).unwrap();
        calls += 1;
        assert!(calls <= buckets, "a scan of {buckets} buckets is not over");
        let last = next == 0;
        assert!(
            last || !keys.is_empty(),
            "count {count}: an empty step that is not the last"
        );
        for k in keys {
            *seen.entry(k).or_default() += 1;
        }
        if last {
            return (seen, calls);
        }
        assert!(next > cursor, "the cursor went from {cursor} to {next}");
        cursor = next;
    }
}

#[test]
fn a_full_scan_returns_every_key_exactly_once() {
    let buckets = 64;
    let (server, name) = serve(buckets, 1, 1, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    // An empty table: done at once; a cursor past the buckets too.
    assert_eq!(c.scan(0, 10).unwrap(), (0, Vec::new()));
    assert_eq!(c.scan(1_000_000, 10).unwrap(), (0, Vec::new()));
    assert_eq!(c.keys().unwrap(), Vec::<Vec<u8>>::new());
    // 1000 keys, about 16 a bucket: binary ones and text ones.
    let keys: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            if i % 2 == 0 {
                i.to_le_bytes().to_vec()
            } else {
                format!("key {i}").into_bytes()
            }
        })
        .collect();
    let ops: Vec<Op> = keys
        .iter()
        .map(|k| Op::Insert {
            key: k.clone(),
            value: k.clone(),
        })
        .collect();
    for t in c.submit_all(&ops).unwrap() {
        assert_eq!(c.wait(t).unwrap(), Outcome::Created);
    }
    assert_eq!(c.len().unwrap(), 1000);
    let want: HashSet<Vec<u8>> = keys.iter().cloned().collect();
    for count in [1, 7, 1000, u32::MAX] {
        let (seen, calls) = full_scan(&c, count, buckets as u64);
        assert_eq!(seen.len(), 1000, "count {count}");
        assert!(seen.values().all(|&n| n == 1), "count {count}: a key twice");
        assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), want);
        match count {
            // One bucket (with a key) a step.
            1 => assert!(calls > 32, "{calls} steps"),
            7 => assert!(calls > 1, "{calls} steps"),
            _ => assert_eq!(calls, 1),
        }
    }
    let all = c.keys().unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), want);
    drop(c);
    server.shutdown();

    // Answers longer than one record come in parts: 1000 keys of 200 bytes (200 KB) through
    // a response ring of 64 KiB (records of at most 32 KiB), and a bucket of large pairs.
    let (server, name) = serve(4, 1, 1, |config| {
        config.limits = Limits {
            max_key: 256,
            max_value: 1024,
        }
    });
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.info().resp_capacity, 1 << 16);
    let long_key = |i: u32| {
        let mut k = format!("{i:06}").into_bytes();
        k.resize(200, b'.');
        k
    };
    let ops: Vec<Op> = (0..1000)
        .map(|i| Op::Insert {
            key: long_key(i),
            value: vec![i as u8; 1000],
        })
        .collect();
    for t in c.submit_all(&ops).unwrap() {
        assert_eq!(c.wait(t).unwrap(), Outcome::Created);
    }
    let (seen, calls) = full_scan(&c, 1000, 4);
    assert!(calls <= 4);
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 1));
    assert!((0..1000).all(|i| seen.contains_key(&long_key(i))));
    let (_, keys) = c.scan(0, u32::MAX).unwrap();
    assert_eq!(keys.len(), 1000, "one step takes every bucket");
    let mut pairs = 0;
    for b in 0..4 {
        for (k, v) in c.print(b).unwrap() {
            let i: u32 = std::str::from_utf8(&k[..6]).unwrap().parse().unwrap();
            assert_eq!((k, v), (long_key(i), vec![i as u8; 1000]));
            pairs += 1;
        }
    }
    assert_eq!(pairs, 1000, "every pair in some bucket, once");
    drop(c);
    server.shutdown();
}

/// A client that keeps working on keys of its own in a thread (insert, read back, checked)
/// until stopped; counts its operations.
struct Busy {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ops: Arc<std::sync::atomic::AtomicU64>,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Busy {
    fn start(name: &str, slot: u32) -> Busy {
        use std::sync::atomic::Ordering::SeqCst;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ops = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = Client::connect(&ClientConfig::new(name).slot(slot)).unwrap();
        let (s, n) = (stop.clone(), ops.clone());
        let handle = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(SeqCst) {
                let key = format!("busy {}", i % 100).into_bytes();
                let value = i.to_le_bytes();
                c.insert(&key, &value).map_err(|e| format!("insert: {e}"))?;
                match c.read(&key) {
                    Ok(Some(v)) if v == value => {}
                    other => return Err(format!("read {i}: {other:?}")),
                }
                i += 1;
                n.fetch_add(2, SeqCst);
            }
            Ok(i)
        });
        Busy {
            stop,
            ops,
            handle: Some(handle),
        }
    }

    fn ops(&self) -> u64 {
        self.ops.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let r = self.handle.take().unwrap().join().unwrap();
        r.expect("the busy client saw an error or a wrong answer")
    }
}

/// Values of exactly `max` bytes (the server's limit) through every operation that carries
/// one, on slot 0, while a client on slot 1 keeps working; one byte more is refused by the
/// client.
fn largest_values(name: &str, max: usize) {
    let busy = Busy::start(name, 1);
    let c = Client::connect(
        &ClientConfig::new(name)
            .slot(0)
            .timeout(Duration::from_secs(30)),
    )
    .unwrap();
    assert_eq!(c.limits().max_value as usize, max);
    let a: Vec<u8> = (0..max).map(|i| (i * 7 % 251) as u8).collect();
    let mut b = a.clone();
    b[0] ^= 1;
    b[max - 1] ^= 0xff;
    let before = busy.ops();
    let mut buf = Vec::new();
    for round in 0..3 {
        let k = format!("large {round}").into_bytes();
        assert_eq!(c.insert(&k, &a).unwrap(), None);
        assert!(c.read(&k).unwrap() == Some(a.clone()));
        assert!(c.read_into(&k, &mut buf).unwrap());
        assert!(buf == a);
        // The largest request: cas with two values of the limit.
        assert_eq!(c.cas(&k, Some(&a), &b).unwrap(), Ok(()));
        assert!(c.cas(&k, Some(&a), &a).unwrap() == Err(Some(b.clone())));
        assert!(c.insert_new(&k, &a).unwrap() == Some(b.clone()));
        assert!(c.insert(&k, &a).unwrap() == Some(b.clone()));
        assert!(c.delete(&k).unwrap() == Some(a.clone()));
        assert_eq!(c.read(&k).unwrap(), None);
    }
    let during = busy.ops() - before;
    let over = vec![7u8; max + 1];
    assert_eq!(
        c.insert(b"over", &over),
        too_large(Field::Value, max as u64 + 1, max as u32)
    );
    assert_eq!(
        c.cas(b"over", Some(&over), b""),
        too_large(Field::Value, max as u64 + 1, max as u32)
    );
    assert_eq!(c.read(b"over").unwrap(), None);
    let st = c.stats().unwrap();
    assert_eq!(st.max_value, max as u64);
    assert_eq!(st.errors.total(), 0, "the client refused them unsent");
    drop(c);
    let total = busy.finish();
    assert!(
        during >= 10,
        "the other client did {during} operations meanwhile ({total} rounds in all)"
    );
    eprintln!("values of {max} bytes: the other client did {during} operations meanwhile");
}

/// The largest values round-trip while another client keeps working: 1 MiB (the default
/// limit) on a server in this process, 8 MiB on `shmkv-server --max-value 8M`.
#[test]
fn the_largest_values_round_trip_while_another_client_works() {
    let (server, name) = serve(64, 2, 1, |_| {});
    largest_values(&name, 1 << 20);
    server.shutdown();
    let s = ServerProc::start(&["--clients", "2", "--max-value", "8M"]);
    largest_values(&s.name, 8 << 20);
    s.quit_and_check_clean();
}

#[test]
fn empty_values_are_values() {
    let buckets = 16;
    let (server, name) = serve(buckets, 2, 1, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.insert(b"e", b"").unwrap(), None);
    assert_eq!(c.read(b"e").unwrap(), Some(Vec::new()));
    let mut buf = b"stale".to_vec();
    assert!(c.read_into(b"e", &mut buf).unwrap());
    assert!(buf.is_empty());
    assert!(!c.read_into(b"nothing", &mut buf).unwrap());
    assert_eq!(c.insert(b"e", b"x").unwrap(), Some(Vec::new()));
    assert_eq!(c.insert(b"e", b"").unwrap(), Some(b"x".to_vec()));
    assert_eq!(c.insert_new(b"e", b"y").unwrap(), Some(Vec::new()));
    assert_eq!(c.cas(b"e", Some(b""), b"").unwrap(), Ok(()));
    assert_eq!(c.cas(b"e", None, b"z").unwrap(), Err(Some(Vec::new())));
    assert_eq!(c.add(b"e", 1), refused(ErrorCode::NotAnInteger));
    assert_eq!(c.read(b"e").unwrap(), Some(Vec::new()));
    let printed: Vec<(Vec<u8>, Vec<u8>)> = (0..buckets as u64)
        .flat_map(|b| c.print(b).unwrap())
        .collect();
    assert_eq!(printed, [(b"e".to_vec(), Vec::new())]);
    assert_eq!(c.keys().unwrap(), [b"e".to_vec()]);
    assert_eq!(c.len().unwrap(), 1);
    // The command line shows and takes the empty value as "".
    run_client_named(&name, &["-", "read", "e", "insert", "f", "\"\""])
        .ok("read e: \"\"\ninsert f \"\": ok\n");
    assert_eq!(c.delete(b"f").unwrap(), Some(Vec::new()));
    assert_eq!(c.delete(b"e").unwrap(), Some(Vec::new()));
    assert_eq!(c.read(b"e").unwrap(), None);
    assert_eq!(c.delete(b"e").unwrap(), None);
    assert_eq!(c.len().unwrap(), 0);
    drop(c);
    server.shutdown();
}

#[test]
fn binary_keys_of_every_byte_value() {
    let (server, name) = serve(64, 2, 1, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    // Every one-byte key, keys holding all 256 byte values (both ways round), runs of NUL and
    // of 0xff, and the longest key.
    let mut keys: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    keys.push((0..=255u8).collect());
    keys.push((0..=255u8).rev().collect());
    keys.push(vec![0; 2]);
    keys.push(vec![0; 100]);
    keys.push(vec![0xff; 2]);
    keys.push(vec![0xff; 4096]);
    let value = |k: &[u8]| {
        let mut v: Vec<u8> = k.iter().rev().map(|b| b ^ 0x55).collect();
        v.extend_from_slice(&[0, 0xff, b'\n']);
        v
    };
    let ops: Vec<Op> = keys
        .iter()
        .map(|k| Op::Insert {
            key: k.clone(),
            value: value(k),
        })
        .collect();
    for (k, t) in keys.iter().zip(c.submit_all(&ops).unwrap()) {
        assert_eq!(c.wait(t).unwrap(), Outcome::Created, "{k:?}");
    }
    let reads: Vec<Op> = keys.iter().map(|k| Op::Read { key: k.clone() }).collect();
    for (k, t) in keys.iter().zip(c.submit_all(&reads).unwrap()) {
        assert_eq!(c.wait(t).unwrap(), Outcome::Value(value(k)), "{k:?}");
    }
    assert_eq!(c.len().unwrap(), keys.len() as u64);
    let (seen, _) = full_scan(&c, 10, 64);
    assert_eq!(seen.len(), keys.len());
    assert!(seen.values().all(|&n| n == 1));
    assert!(keys.iter().all(|k| seen.contains_key(k)));
    // The command line reads and writes them quoted.
    run_client_named(
        &name,
        &[
            "-",
            "read",
            "\"\\x00\"",
            "insert",
            "\"\\x00\\xff\"",
            "\"\\x01\"",
        ],
    )
    .ok("read \"\\x00\": \"U\\x00\\xff\\n\"\ninsert \"\\x00\\xff\" \"\\x01\": ok\n");
    assert_eq!(c.read(&[0, 0xff]).unwrap(), Some(vec![1]));
    for k in keys.iter().chain([&vec![0, 0xff]]) {
        assert!(c.delete(k).unwrap().is_some(), "{k:?}");
    }
    assert_eq!(c.len().unwrap(), 0);
    drop(c);
    server.shutdown();
}

/// Bytes of a request for `op` with id `id`.
fn request_bytes(id: u64, op: Op) -> Vec<u8> {
    let mut b = Vec::new();
    shmkv::wire::encode_request(&shmkv::wire::Request { id, op }, &mut b);
    b
}

/// Send `request` raw into a session's request ring and take the one response that comes.
fn raw_call(
    tx: &mut shmkv::record::RecordProducer<shmkv::record::ShmRecordMem>,
    rx: &mut shmkv::record::RecordConsumer<shmkv::record::ShmRecordMem>,
    request: &[u8],
) -> shmkv::wire::Response {
    tx.push(request, Some(DEADLINE)).unwrap();
    let mut buf = Vec::new();
    rx.pop_into(&mut buf, Some(DEADLINE)).unwrap();
    shmkv::wire::decode_response(&buf, &Limits::UNLIMITED).unwrap()
}

#[test]
fn keys_and_values_over_the_limits_are_refused_by_the_client_and_by_the_server() {
    use shmkv::wire::Reply;
    let limits = Limits {
        max_key: 16,
        max_value: 64,
    };
    let (server, name) = serve(16, 2, 1, |config| config.limits = limits);
    let c = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
    assert_eq!(c.limits(), limits);
    // The longest key and value pass; a byte more is refused before anything is sent.
    assert_eq!(c.insert(&[1; 16], &[2; 64]).unwrap(), None);
    assert_eq!(c.insert(&[1; 17], b"v"), too_large(Field::Key, 17, 16));
    assert_eq!(c.insert(b"k", &[0; 65]), too_large(Field::Value, 65, 64));
    assert_eq!(c.read(&[0; 17]), too_large(Field::Key, 17, 16));
    assert_eq!(c.delete(&[0; 17]), too_large(Field::Key, 17, 16));
    assert_eq!(
        c.insert_new(b"k", &[0; 65]),
        too_large(Field::Value, 65, 64)
    );
    assert_eq!(
        c.cas(b"k", Some(&[0; 65]), b""),
        too_large(Field::Value, 65, 64)
    );
    assert_eq!(c.cas(b"k", None, &[0; 65]), too_large(Field::Value, 65, 64));
    assert_eq!(c.add(&[0; 17], 1), too_large(Field::Key, 17, 16));
    // The empty key is no key.
    assert_eq!(c.read(b""), too_large(Field::Key, 0, 16));
    assert_eq!(c.insert(b"", b"v"), too_large(Field::Key, 0, 16));
    // A batch with one such operation sends none of it.
    let before = c.stats().unwrap().ops.total();
    let batch = [
        Op::Insert {
            key: b"fine".to_vec(),
            value: b"v".to_vec(),
        },
        Op::Insert {
            key: b"k".to_vec(),
            value: vec![0; 65],
        },
    ];
    assert!(matches!(
        c.submit_all(&batch),
        Err(ClientError::TooLarge { .. })
    ));
    assert_eq!(c.read(b"fine").unwrap(), None);
    let st = c.stats().unwrap();
    assert_eq!(st.ops.total(), before + 2, "the read and this stats only");
    assert_eq!(st.errors.total(), 0);
    assert_eq!(c.read(&[1; 16]).unwrap(), Some(vec![2; 64]));

    // Sent raw into a session's request ring, past the client's check: the server refuses
    // each with TooLarge (Malformed for the empty key) and the session goes on.
    let raw = Client::connect(&ClientConfig::new(&name).slot(1)).unwrap();
    let info = *raw.info();
    let map = Arc::new(shmkv::shm::Mapping::open_sealed(&raw.object_fd()).unwrap());
    let req = info.req_capacity as usize;
    let mem = |ctrl, data, cap| shmkv::record::ShmRecordMem::new(map.clone(), ctrl, data, cap);
    let mut tx = shmkv::record::RecordProducer::new(
        mem(shmkv::channel::REQ_CTRL, shmkv::channel::DATA, req).unwrap(),
    )
    .unwrap();
    let mut rx = shmkv::record::RecordConsumer::new(
        mem(
            shmkv::channel::RESP_CTRL,
            shmkv::channel::DATA + req,
            info.resp_capacity as usize,
        )
        .unwrap(),
    )
    .unwrap();
    let too = |what, len| {
        Reply::Error(ErrorCode::TooLarge {
            what,
            len,
            max: if what == Field::Key { 16 } else { 64 },
        })
    };
    let cases = [
        (
            Op::Insert {
                key: vec![1; 17],
                value: b"v".to_vec(),
            },
            too(Field::Key, 17),
        ),
        (
            Op::Insert {
                key: b"k".to_vec(),
                value: vec![0; 65],
            },
            too(Field::Value, 65),
        ),
        (
            Op::Cas {
                key: b"k".to_vec(),
                expected: Some(vec![0; 65]),
                new: Vec::new(),
            },
            too(Field::Value, 65),
        ),
        (Op::Read { key: vec![9; 4096] }, too(Field::Key, 4096)),
        (
            Op::Read { key: Vec::new() },
            Reply::Error(ErrorCode::Malformed),
        ),
    ];
    for (id, (op, want)) in (100..).zip(cases) {
        let r = raw_call(&mut tx, &mut rx, &request_bytes(id, op.clone()));
        assert_eq!((r.id, r.reply), (id, want), "{op:?}");
    }
    // A value whose length prefix lies (a million bytes announced, three there) is refused
    // for its length, before anything is copied.
    let mut lying = request_bytes(
        200,
        Op::Insert {
            key: b"k".to_vec(),
            value: b"abc".to_vec(),
        },
    );
    let at = lying.len() - 3 - 4;
    lying[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    let r = raw_call(&mut tx, &mut rx, &lying);
    assert_eq!((r.id, r.reply), (200, too(Field::Value, 1_000_000)));
    // The session goes on, and so does the other client.
    let ok = Op::Insert {
        key: b"raw".to_vec(),
        value: b"ok".to_vec(),
    };
    let r = raw_call(&mut tx, &mut rx, &request_bytes(201, ok));
    assert_eq!((r.id, r.reply), (201, Reply::Created));
    let r = raw_call(
        &mut tx,
        &mut rx,
        &request_bytes(
            202,
            Op::Read {
                key: b"raw".to_vec(),
            },
        ),
    );
    assert_eq!((r.id, r.reply), (202, Reply::Value(b"ok".to_vec())));
    assert_eq!(c.read(b"raw").unwrap(), Some(b"ok".to_vec()));
    assert_eq!(c.read(b"k").unwrap(), None, "nothing refused was stored");
    let st = c.stats().unwrap();
    assert_eq!(st.errors.get(6), 5, "too large");
    assert_eq!(st.errors.get(5), 1, "malformed");
    assert_eq!(
        st.slots[1].owner_pid,
        u64::from(std::process::id()),
        "the raw client is still connected"
    );
    drop((tx, rx, raw));
    drop(c);
    server.shutdown();
}

#[test]
fn the_memory_budget_refuses_growth_and_allows_reads_deletes_and_shrinking() {
    use shmkv::store::entry_cost;
    let budget: u64 = 64 * 1024;
    let (server, name) = serve(64, 1, 1, |config| config.max_memory = budget);
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    let used = || {
        let st = c.stats().unwrap();
        assert_eq!(st.memory_limit, budget);
        assert!(
            st.memory_used <= budget,
            "{} bytes used, budget {budget}",
            st.memory_used
        );
        st.memory_used
    };
    let key = |i: u64| format!("k{i:07}").into_bytes();
    let value = |i: u64| vec![i as u8; 1000];
    fn oom<T>() -> Result<T, ClientError> {
        Err(ClientError::Refused(ErrorCode::OutOfMemory))
    }
    // Fill with 1000-byte values until the budget refuses one.
    let cost = entry_cost(8, 1000);
    let mut n = 0;
    loop {
        match c.insert(&key(n), &value(n)) {
            Ok(None) => n += 1,
            Err(ClientError::Refused(ErrorCode::OutOfMemory)) => break,
            other => panic!("insert {n}: {other:?}"),
        }
        assert_eq!(used(), n * cost);
        assert!(n < 1000, "the budget refused nothing");
    }
    assert_eq!(n, budget / cost, "as many as fit");
    // Then small entries until none fits.
    let small = entry_cost(8, 0);
    let mut m = 0;
    while c.insert(&key(10_000 + m), b"") == Ok(None) {
        m += 1;
    }
    assert_eq!(m, (budget - n * cost) / small);
    let full = used();
    assert_eq!(full, n * cost + m * small);
    // Nothing new fits, whatever the operation; each refusal changes nothing.
    assert_eq!(c.insert(&key(n), &value(n)), oom());
    assert_eq!(c.insert(b"x", b""), oom());
    assert_eq!(c.insert_new(b"x", b""), oom());
    assert_eq!(c.cas(b"x", None, b""), oom());
    assert_eq!(c.add(b"x", 1), refused(ErrorCode::OutOfMemory));
    assert_eq!(c.read(b"x").unwrap(), None);
    assert_eq!(c.read(&key(n)).unwrap(), None);
    // Growing an entry is refused and leaves it as it was.
    assert_eq!(c.insert(&key(0), &[0; 1100]), oom());
    assert_eq!(c.cas(&key(0), Some(&value(0)), &[0; 1100]), oom());
    assert_eq!(used(), full);
    // Reads work; rewriting in place at the same size works; a mismatched cas needs no room.
    for i in 0..n {
        assert_eq!(c.read(&key(i)).unwrap(), Some(value(i)), "{i}");
    }
    assert_eq!(
        c.insert(&key(0), &[9; 1000]).unwrap(),
        Some(value(0)),
        "same size"
    );
    assert_eq!(
        c.cas(&key(0), Some(b"no"), &[0; 1100]).unwrap(),
        Err(Some(vec![9; 1000]))
    );
    assert_eq!(used(), full);
    // Shrinking works and frees room.
    assert_eq!(c.insert(&key(1), b"").unwrap(), Some(value(1)));
    assert_eq!(used(), full - cost + small);
    assert_eq!(c.insert(&key(1), &value(1)).unwrap(), Some(Vec::new()));
    assert_eq!(used(), full);
    // A delete makes room for a new entry.
    assert_eq!(c.delete(&key(2)).unwrap(), Some(value(2)));
    assert_eq!(used(), full - cost);
    assert_eq!(c.insert(&key(n), &value(n)).unwrap(), None);
    assert_eq!(used(), full);
    assert_eq!(c.insert(&key(2), &value(2)), oom());
    let st = c.stats().unwrap();
    assert_eq!(st.errors.get(ErrorCode::OutOfMemory.code()), 10);
    assert_eq!(st.entries, n + m);
    drop(c);
    server.shutdown();

    // The binary's --max-memory, and what the command line says.
    let budget = entry_cost(1, 1) + 10;
    let s = ServerProc::start(&["--max-memory", &budget.to_string()]);
    let out = s.client(&["0", "insert", "a", "1", "insert", "b", "2", "read", "a"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "insert a 1: ok\nread a: 1\n");
    assert_eq!(
        out.stderr,
        "shmkv-client: insert b 2: error: out of memory (the server's --max-memory)\n"
    );
    s.client(&["0", "delete", "a", "insert", "b", "2"])
        .ok("delete a: ok\ninsert b 2: ok\n");
    s.quit_and_check_clean();
}

/// A server whose values are short: add may not store a number longer than the limit (the
/// client could not read it back: its answer would not decode against the limits).
#[test]
fn add_never_stores_a_value_over_the_limit() {
    let limits = Limits {
        max_key: 16,
        max_value: 2,
    };
    let (server, name) = serve(16, 1, 1, |config| config.limits = limits);
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.add(b"n", 99).unwrap(), 99);
    let r = c.add(b"n", 1);
    let back = c.read(b"n");
    assert!(
        matches!(r, Err(ClientError::Refused(_))) && back == Ok(Some(b"99".to_vec())),
        "add under a 2-byte limit: {r:?}; reading the value back: {back:?}"
    );
    let r = c.add(b"m", -10);
    let back = c.read(b"m");
    assert!(
        matches!(r, Err(ClientError::Refused(_))) && back == Ok(None),
        "add under a 2-byte limit: {r:?}; reading the value back: {back:?}"
    );
    drop(c);
    server.shutdown();
}

/// Many workers serving one pipelining client answer every request, in batches of 1 to 40
/// mixed operations checked against a model, with the workers sharing the backlog or taking
/// turns (a worker that keeps the ring defers publishing its answers while more requests
/// wait: the publication must never be left undone, whichever worker takes the rest).
#[test]
fn several_workers_answer_every_pipelined_request() {
    for share in [false, true] {
        let (server, name) = serve(256, 1, 16, |config| config.share_backlog = Some(share));
        let c = Client::connect(&ClientConfig::new(&name).timeout(Duration::from_secs(2))).unwrap();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let t0 = Instant::now();
        for batch in 0..4000 {
            if t0.elapsed() > Duration::from_secs(15) {
                eprintln!("share_backlog {share}: {batch} batches in 15 s");
                break;
            }
            let ops: Vec<Op> = (0..1 + next() % 40)
                .map(|_| {
                    let key = (next() % 64).to_le_bytes().to_vec();
                    match next() % 8 {
                        0..=2 => Op::Insert {
                            key,
                            value: next().to_string().into_bytes()[..(next() % 6) as usize]
                                .to_vec(),
                        },
                        3..=4 => Op::Read { key },
                        5 => Op::Delete { key },
                        _ => Op::Add {
                            key,
                            delta: (next() % 100) as i64,
                        },
                    }
                })
                .collect();
            let tickets = c.submit_all(&ops).unwrap_or_else(|e| {
                panic!("share_backlog {share}, batch {batch}: {e}");
            });
            for (i, (op, t)) in ops.iter().zip(tickets).enumerate() {
                let got = c.wait(t).unwrap_or_else(|e| {
                    panic!("share_backlog {share}, batch {batch}, op {i} {op:?}: {e}")
                });
                let want = match op {
                    Op::Insert { key, value } => model
                        .insert(key.clone(), value.clone())
                        .map_or(Outcome::Created, Outcome::Replaced),
                    Op::Read { key } => model
                        .get(key)
                        .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
                    Op::Delete { key } => model
                        .remove(key)
                        .map_or(Outcome::NotFound, Outcome::Deleted),
                    Op::Add { key, delta } => {
                        let now = model.get(key).map_or(Some(0), |v| {
                            std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse::<i64>().ok())
                                .filter(|n| n.to_string().as_bytes() == v.as_slice())
                        });
                        match now.map(|n| n + delta) {
                            Some(n) => {
                                model.insert(key.clone(), n.to_string().into_bytes());
                                Outcome::Number(n)
                            }
                            None => Outcome::Refused(ErrorCode::NotAnInteger),
                        }
                    }
                    _ => unreachable!(),
                };
                assert_eq!(
                    got, want,
                    "share_backlog {share}, batch {batch}, op {i} {op:?}"
                );
            }
        }
        assert_eq!(c.stray_responses(), 0);
        drop(c);
        server.shutdown();
    }
}
