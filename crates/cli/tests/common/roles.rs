//! Workloads and child-process roles shared by `tests/faults/` and `examples/soak.rs`
//! (included by both with `#[path]`): a pipelining client checked against a sequential model,
//! what a killed client may have left in the table, a hostile client that attacks its own
//! session object (scribbles over it, lies in its record ring, storms its futex words, punches
//! holes in it, tries to resize it), a slot claimant for races, a listener that counts what
//! a client sends it, and a client that publishes a batch of requests and reads no answer.
//!
//! A role runs until its `stop` flag is set; in a child process nobody sets it, the parent
//! kills the child. Roles report on stdout, one line per event, each starting with a word the
//! parent looks for (`ATTACHED`, `ACK`, `ERR`, `READY`, `ROUNDS`, `WON`, `LOST`, `LISTENING`,
//! `READ`, `PUBLISHED`), flushed at once so that a killed child has reported everything it did.
#![allow(dead_code)]

use shmkv::client::{Client, ClientConfig};
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "roles/hostility.rs"]
mod hostility;
#[path = "roles/workload.rs"]
mod workload;

pub use hostility::*;
pub use workload::*;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Run the role described by `spec` (space-separated words) until `stop` is set. Returns the
/// process exit status the role asks for.
pub fn run_role(spec: &str, stop: &AtomicBool) -> i32 {
    let w: Vec<&str> = spec.split_whitespace().collect();
    let slot = |s: &str| -> Option<u32> { s.parse().ok() };
    let num = |i: usize| -> u64 { w.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    match w.first().copied() {
        // An optional last word: the client's timeout in seconds (default 1 s).
        Some("pipeline") if w.len() == 7 || w.len() == 8 => {
            let work = Workload {
                base: num(3),
                keys: num(4),
                seed: num(5),
                batch: num(6) as usize,
            };
            let timeout = (w.len() == 8).then(|| Duration::from_secs(num(7)));
            pipeline(w[1], slot(w[2]), &work, timeout, stop)
        }
        Some("hostile") if w.len() == 5 => hostile(w[1], num(2) as u32, w[3], num(4), stop),
        Some("claim") if w.len() == 3 => claim(w[1], num(2) as u32),
        Some("listen") if w.len() == 2 => listen(w[1], stop),
        Some("publish") if w.len() == 4 => publish(w[1], num(2) as u32, num(3), stop),
        _ => {
            say(&format!("ERR bad role spec {spec:?}"));
            2
        }
    }
}

/// Connect, report `ATTACHED <slot> <pid>`, then run batches forever, reporting `ACK <b>` after
/// each one is complete and checked. `ERR <what>` and status 1 on a wrong answer, status 3 on
/// a connection error.
fn pipeline(
    name: &str,
    slot: Option<u32>,
    w: &Workload,
    timeout: Option<Duration>,
    stop: &AtomicBool,
) -> i32 {
    let mut config = ClientConfig::new(name);
    config.slot = slot;
    if let Some(t) = timeout {
        config.timeout = t;
    }
    let c = match Client::connect(&config) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("ERR connect: {e}"));
            return 3;
        }
    };
    say(&format!("ATTACHED {} {}", c.slot(), std::process::id()));
    let mut model = Model::default();
    match run_checked(&c, w, &mut model, 0, u64::MAX, stop, |b| {
        say(&format!("ACK {b}"))
    }) {
        Ok(_) => 0,
        Err(e) => {
            say(&format!("ERR {e}"));
            if e.contains("the model says") { 1 } else { 3 }
        }
    }
}

/// Report `READY`, wait for a line on stdin, try once to take `slot` (no retry), report `WON`
/// or `LOST <error>`, hold the slot until stdin ends, then leave.
fn claim(name: &str, slot: u32) -> i32 {
    say("READY");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let _ = stdin.read_line(&mut line);
    let mut config = ClientConfig::new(name).slot(slot);
    config.attach_timeout = Duration::ZERO;
    let held = match Client::connect(&config) {
        Ok(c) => {
            say(&format!("WON {}", std::process::id()));
            Some(c)
        }
        Err(e) => {
            say(&format!("LOST {e}"));
            None
        }
    };
    while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {}
    drop(held);
    0
}

/// Listen on a unix socket at `path` (as whatever user this process runs as: a socket planted
/// for a client to find), report `LISTENING <pid>`, accept one connection, count the bytes the
/// client sends until it closes, and report `READ <n>`. Gives up after 20 s, or when stopped.
fn listen(path: &str, stop: &AtomicBool) -> i32 {
    let _ = std::fs::remove_file(path);
    let listener = match std::os::unix::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            say(&format!("ERR bind {path}: {e}"));
            return 3;
        }
    };
    let _ = listener.set_nonblocking(true);
    say(&format!("LISTENING {}", std::process::id()));
    let end = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) || Instant::now() > end {
                    say("ERR nobody connected");
                    return 3;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                say(&format!("ERR accept: {e}"));
                return 3;
            }
        }
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut total = 0usize;
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                say(&format!("ERR read after {total} bytes: {e}"));
                return 3;
            }
        }
    }
    let _ = std::fs::remove_file(path);
    say(&format!("READ {total}"));
    0
}

/// What [`publish`] sends for keys `0..keys` (each the 8 little-endian bytes of its number):
/// for each key in turn, a delete, then an insert of [`published_value`].
pub fn published_ops(keys: u64) -> Vec<shmkv::wire::Op> {
    (0..keys)
        .flat_map(|k| {
            let key = k.to_le_bytes().to_vec();
            [
                shmkv::wire::Op::Delete { key: key.clone() },
                shmkv::wire::Op::Insert {
                    key,
                    value: published_value(k),
                },
            ]
        })
        .collect()
}

/// The value [`publish`] inserts under key number `k`.
pub fn published_value(k: u64) -> Vec<u8> {
    format!("new {k}").into_bytes()
}

/// Take `slot`, submit [`published_ops`] for `keys` keys in one batch (one publication),
/// report `PUBLISHED <pid>`, then read no answer until stopped (or killed; it gives up after
/// 20 s). Stopped, it collects every answer and leaves.
fn publish(name: &str, slot: u32, keys: u64, stop: &AtomicBool) -> i32 {
    let c = match Client::connect(&ClientConfig::new(name).slot(slot)) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("ERR connect: {e}"));
            return 3;
        }
    };
    let tickets = match c.submit_all(&published_ops(keys)) {
        Ok(t) => t,
        Err(e) => {
            say(&format!("ERR submit: {e}"));
            return 3;
        }
    };
    say(&format!("PUBLISHED {}", std::process::id()));
    let end = Instant::now() + Duration::from_secs(20);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in tickets {
        if let Err(e) = c.wait(t) {
            say(&format!("ERR answer: {e}"));
            return 3;
        }
    }
    0
}
