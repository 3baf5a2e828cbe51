//! The server's log lines (and `--quiet`, `--verbose`, `RUST_LOG`), `--help` and `--version`,
//! and the `two_processes` example.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

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
