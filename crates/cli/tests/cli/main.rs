//! End-to-end tests of the real `shmkv-server` and `shmkv-client` binaries (and the library
//! client) over real shared memory.
#![cfg(not(loom))]

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod classic;
mod limits;
mod new_operations;
mod quoting;
mod servers;

use common::*;
use serde_json::Value;
use shmkv::client::{Client, ClientConfig};
use std::io::Write;
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------------------------
// Local helpers.
// ---------------------------------------------------------------------------------------------

/// Run the client of server `s` with `args`, feeding it `input` on standard input (then
/// closing it); waits with the common deadline.
fn client_stdin(s: &ServerProc, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(CLIENT)
        .args(["--name", &s.name])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.as_bytes().to_vec();
    // A writer thread: a client that stops reading early must not block the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = finish(child);
    writer.join().unwrap();
    out
}

/// A library client of server `s` on slot 1 (the client binary takes slot 0).
fn lib(s: &ServerProc) -> Client {
    Client::connect(&ClientConfig::new(&s.name).slot(1)).unwrap()
}

/// The one line of `out`'s stdout that starts with `prefix`, without the prefix.
fn after<'a>(out: &'a Output, prefix: &str) -> &'a str {
    let mut found = out.stdout.lines().filter_map(|l| l.strip_prefix(prefix));
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in {out:?}"));
    assert!(
        found.next().is_none(),
        "two lines start {prefix:?}: {out:?}"
    );
    first
}

/// The words of a printed list (keys of a scan), read back as the client reads a line.
fn words(text: &str) -> Vec<Vec<u8>> {
    shmkv_cli::split_line(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .into_iter()
        .map(|t| t.bytes)
        .collect()
}

/// `out`'s stdout as JSON objects, one a line.
fn json_lines(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Every byte 0..=255 once, in order.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}
