//! Operator experience, end to end with the real binaries: the interactive shell (driven
//! through a pseudo-terminal), operations piped through standard input, `--json`, the Stats
//! operation, and the server's log lines.
#![cfg(not(loom))]

mod common;

use common::*;
use serde_json::Value;
use shmkv::client::{Client, ClientConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

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

    // Tab completes the command; several operations on one line run as one batch.
    t.send("ins\t");
    t.expect("insert ");
    t.send("1 2 read 1\r");
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
    t.expect("insert 1 2: ok\n");
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
    t.expect(r#"{"op":"insert","key":4,"value":5,"previous":null,"status":"ok"}"#);
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
        want += &format!("insert 7 {i}: ok\nread 7: {i}\n");
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
        r#"{"op":"insert","key":1,"value":2,"previous":null,"status":"ok"}"#,
        r#"{"op":"insert","key":1,"value":3,"previous":2,"status":"ok"}"#,
        r#"{"op":"read","key":1,"value":3,"status":"ok"}"#,
        r#"{"op":"read","key":9,"value":null,"status":"not_found"}"#,
        r#"{"op":"delete","key":1,"value":3,"status":"ok"}"#,
        r#"{"op":"delete","key":1,"value":null,"status":"not_found"}"#,
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
            .starts_with(r#"{"op":"insert","key":1,"value":2,"previous":null,"status":"ok"}"#),
        "{}",
        out.stdout
    );

    let out = s.client(&[
        "--json", "0", "insert", "5", "6", "insert", "8", "9", "print", "0",
    ]);
    let v = json_lines(&out);
    // Every pair lands in one of the 10 buckets; print 0 lists those of bucket 0, sorted.
    let entries = v[2]["entries"].as_array().unwrap();
    assert_eq!(v[2]["status"], "ok");
    for e in entries {
        assert!(e == &serde_json::json!([5, 6]) || e == &serde_json::json!([8, 9]));
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
        (
            o.insert,
            o.read,
            o.delete,
            o.print,
            o.threads_start,
            o.threads_stop,
            o.quit,
            o.stats
        ),
        (5, 2, 1, 1, 1, 3, 0, 1),
        "{st:?}"
    );
    assert_eq!(st.errors.bad_bucket, 1);
    assert_eq!(st.errors.last_worker, 1);
    assert_eq!(st.errors.total(), 2);
    assert_eq!((st.entries, st.buckets, st.client_slots), (4, 10, 2));
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
    assert_eq!(c.stats().unwrap().ops.stats, 2);
    drop(c);
    wait_until(DEADLINE, || owner_of(&s.name, 1) == 0);

    // The command line: text and JSON.
    let out = s.client(&["0", "stats"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "stats:");
    assert_eq!(
        lines[1],
        "  requests   16 (insert 5, read 2, delete 1, print 1, threads start 1, threads stop 3, stats 3, quit 0)"
    );
    assert_eq!(
        lines[2],
        "  refused    2 (bad bucket 1, thread limit 0, last worker 1, shutting down 0, malformed 0)"
    );
    assert!(lines[3].starts_with("  table      4 entries, 10 buckets, longest bucket "));
    assert_eq!(
        lines[4],
        "  clients    1 of 2 slots connected, 2 worker threads in all"
    );
    assert!(lines[5].starts_with("    slot 0   pid "), "{}", out.stdout);
    assert!(
        lines[5].ends_with(", 2 worker threads, 14 requests"),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[6],
        "  latency    no samples yet (1 in 64 requests is timed)"
    );
    assert!(lines[7].starts_with("  uptime     "));
    assert_eq!(lines.len(), 8);
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);

    let out = s.client(&["--json", "1", "stats"]);
    let v = &json_lines(&out)[0];
    assert_eq!(v["op"], "stats");
    assert_eq!(v["status"], "ok");
    let j = &v["stats"];
    assert_eq!(j["requests"]["insert"], 5);
    assert_eq!(j["requests"]["stats"], 4);
    assert_eq!(j["requests"]["total"], 17);
    assert_eq!(j["errors"]["total"], 2);
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
    // Small rings: workers often wait for room for their answers, with the request in flight.
    let s = ServerProc::start(&["1000", "1", "4", "--ring", "4"]);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let mut inserted = 0u64;
    for round in 0..20u64 {
        let mut ops: Vec<shmkv::protocol::Op> = (0..200u64)
            .map(|i| shmkv::protocol::Op::Insert {
                key: round * 1000 + i,
                value: i,
            })
            .collect();
        inserted += 200;
        ops.push(shmkv::protocol::Op::Stats);
        ops.push(shmkv::protocol::Op::Delete { key: round * 1000 });
        let tickets = c.submit_all(&ops).unwrap();
        let mut outcomes = Vec::new();
        for t in tickets {
            outcomes.push(c.wait(t).unwrap());
        }
        let shmkv::client::Outcome::Stats(st) = &outcomes[200] else {
            panic!("{:?}", outcomes[200]);
        };
        // Every insert before it, none of the deletes of this round after it.
        assert_eq!(st.entries, inserted - round, "round {round}");
        assert_eq!(st.ops.insert, inserted, "round {round}");
        assert_eq!(st.ops.delete, round, "round {round}");
        assert_eq!(st.slots[0].requests, round * 202 + 201, "round {round}");
        // Every 64th request is timed once answered: all those before the Stats are counted.
        assert_eq!(
            st.latency.samples,
            (round * 202 + 200) / 64,
            "round {round}"
        );
    }
    let st = c.stats().unwrap();
    // 20 × 202 + 1 requests on one lane: every 64th is timed.
    assert_eq!(st.latency.samples, (20 * 202 + 1) / 64);
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
