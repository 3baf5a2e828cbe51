//! `Client::read_into` through a real in-process server: a lone call copies the value from
//! the response record into the caller's buffer and allocates nothing for it; with another
//! request in flight it still returns the right value and files the other answer.
#![cfg(not(loom))]

// The thread-local allocation counter of the codec laws (only this test's thread counts:
// the server's threads allocate as they please).
#[path = "wire_laws/alloc.rs"]
mod alloc;

use alloc::allocated_by;
use shmkv::wire::Op;
use shmkv::{Client, ClientConfig, Outcome, Server, ServerConfig};
use std::time::Duration;

/// A one-worker server of a name no other test uses, and a client of it.
fn serve(tag: &str) -> (Server, Client) {
    let name = format!("read-into-{tag}-{}", std::process::id());
    let server = Server::start(ServerConfig {
        name: name.clone(),
        buckets: 16,
        clients: 1,
        threads: 1,
        log: false,
        ..ServerConfig::default()
    })
    .unwrap();
    let c = Client::connect(&ClientConfig::new(&name).timeout(Duration::from_secs(20))).unwrap();
    (server, c)
}

/// Catches: a `read_into` that decodes the answer into an owned value and copies it (one
/// allocation of the value's size a call: 100 kB over these reads), or that takes the
/// shared path (the ticket book) when nothing else is in flight.
#[test]
fn a_lone_read_into_allocates_nothing() {
    let (server, c) = serve("alloc");
    let value: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    c.insert(b"big", &value).unwrap();
    c.insert(b"empty", b"").unwrap();
    let mut buf = Vec::new();
    // The first call may grow the client's scratch buffers and `buf`.
    assert!(c.read_into(b"big", &mut buf).unwrap());
    let (ok, bytes) = allocated_by(|| {
        let mut ok = true;
        for _ in 0..50 {
            ok &= c.read_into(b"big", &mut buf).unwrap() && buf == value;
            ok &= c.read_into(b"empty", &mut buf).unwrap() && buf.is_empty();
        }
        ok
    });
    assert!(ok, "read_into returned a wrong value");
    assert_eq!(bytes, 0, "bytes allocated by 100 lone read_into calls");
    buf.extend_from_slice(b"stale");
    assert!(!c.read_into(b"absent", &mut buf).unwrap());
    assert!(buf.is_empty(), "a key not found leaves the buffer empty");
    drop(c);
    server.shutdown();
}

/// Catches: a `read_into` that takes the first value response it reads for its own (here the
/// answer to an earlier read), or that drops it instead of filing it for its ticket.
#[test]
fn read_into_with_another_request_in_flight() {
    let (server, c) = serve("filed");
    c.insert(b"a", b"first").unwrap();
    c.insert(b"b", b"second").unwrap();
    // Nobody waits for `t` (a read: its answer is a value response too), so `read_into` is a
    // lone call and reads `t`'s answer first: it must file it, not take it.
    let t = c.submit(Op::Read { key: b"a".to_vec() }).unwrap();
    let mut buf = Vec::new();
    assert!(c.read_into(b"b", &mut buf).unwrap());
    assert_eq!(buf, b"second");
    assert_eq!(c.lone_filings(), 1, "t's answer was filed by the lone call");
    assert_eq!(c.wait(t).unwrap(), Outcome::Value(b"first".to_vec()));
    drop(c);
    server.shutdown();
}
