//! Linearizability of the served table, from histories of real concurrent clients: several
//! processes (this test binary run again as `child_role`) with several threads each, on a
//! small shared key set, against the real `shmkv-server` binary; every call's invoke and
//! return time on `CLOCK_MONOTONIC`; the merged history is checked by `shmkv::lincheck`.
//! The large version is `cargo run --release --example linearizability`.
#![cfg(not(loom))]

mod common;
#[path = "lin/record.rs"]
mod record;

use common::*;
use record::Role;
use shmkv::lincheck::{self, Call, CheckError, KvOp};
use std::process::{Command, Stdio};

const ROLE_ENV: &str = "SHMKV_LIN_ROLE";

/// The entry point of the child processes (this binary run again with `SHMKV_LIN_ROLE` set).
/// Run as an ordinary test, it runs a role in this process against an in-process server and
/// checks what it recorded, so the role the other test relies on is itself checked.
#[test]
fn child_role() {
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        record::run_child(&spec);
        std::process::exit(0);
    }
    let name = unique_name();
    let server = shmkv::server::Server::start(shmkv::server::ServerConfig {
        name: name.clone(),
        buckets: 4,
        clients: 1,
        threads: 2,
        ring_capacity: 16,
        share_backlog: Some(true),
        ..Default::default()
    })
    .unwrap();
    let role = Role {
        name: name.clone(),
        process: 3,
        threads: 2,
        ops: 200,
        keys: 4,
        batch: 3,
        thread_changes: 16,
        seed: 1,
    };
    assert_eq!(Role::parse(&role.spec()), role);
    let calls = role.run();
    assert_eq!(calls.len(), 400);
    for c in &calls {
        assert_eq!(record::parse_call(&record::format_call(c)), Some(*c));
        assert!(c.ret.unwrap() >= c.invoke);
    }
    lincheck::check(&calls).unwrap();
    server.shutdown();
}

/// Run `processes` recording children against `server`; their merged history.
fn record(server: &ServerProc, processes: u64, role: impl Fn(u64) -> Role) -> Vec<Call> {
    let kids: Vec<_> = (0..processes)
        .map(|p| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "child_role",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ])
                .env(ROLE_ENV, role(p).spec())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let _ = server;
    let mut calls = Vec::new();
    for k in kids {
        let out = finish(k);
        assert_eq!(out.code, 0, "child failed: {}", out.stderr);
        // The test harness may print its own lines around the role's output.
        let mine: Vec<Call> = out.stdout.lines().filter_map(record::parse_call).collect();
        calls.extend(mine);
    }
    calls
}

/// Three processes of three threads, 8 shared keys, pipelined batches, worker threads
/// started and stopped meanwhile, a server with 2 workers per client and 4 buckets (so keys
/// share buckets): the history is linearizable; and changed to read a value before it was
/// written, or a value overwritten before the read began, it is not.
#[test]
fn concurrent_clients_are_linearizable() {
    let server = ServerProc::start(&[
        "--buckets",
        "4",
        "--clients",
        "4",
        "--threads",
        "2",
        "--share-backlog",
        "on",
        "-q",
    ]);
    let (processes, threads, ops) = (3, 3, 400);
    let calls = record(&server, processes, |p| Role {
        name: server.name.clone(),
        process: p,
        threads,
        ops,
        keys: 8,
        batch: 4,
        thread_changes: 50,
        seed: 0x11_2024 + p,
    });
    assert_eq!(calls.len() as u64, processes * threads * ops);
    // Calls of different processes on one key must overlap, or the check would be sequential.
    let overlaps = record::overlapping_pairs(&calls);
    assert!(overlaps > 0, "no concurrency in the history");
    let report = lincheck::check(&calls).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.keys, report.calls), (8, calls.len()));
    eprintln!(
        "{} calls, {overlaps} overlapping pairs, {} configurations",
        calls.len(),
        report.configurations
    );

    // The checker must reject this history once one read is made to return a value whose
    // insert was invoked after the read returned.
    let mut bad = calls.clone();
    let (r, v) = bad
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.op, KvOp::Read { .. }))
        .find_map(|(i, c)| {
            calls.iter().find_map(|w| match w.op {
                KvOp::Insert { key, value } if key == c.op.key() && w.invoke > c.ret.unwrap() => {
                    Some((i, value))
                }
                _ => None,
            })
        })
        .expect("some read precedes some insert of its key");
    bad[r].output = Some(v);
    assert!(matches!(
        lincheck::check(&bad),
        Err(CheckError::NotLinearizable(_))
    ));

    // And a stale read: a read that began after an insert of its key had returned, made to
    // return the value that insert replaced (when that was a value).
    let mut bad = calls.clone();
    let (r, old) = bad
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.op, KvOp::Read { .. }))
        .find_map(|(i, c)| {
            calls.iter().find_map(|w| match (w.op, w.output) {
                (KvOp::Insert { key, value }, Some(old))
                    if key == c.op.key()
                        && w.ret.unwrap() < c.invoke
                        && c.output == Some(value) =>
                {
                    Some((i, old))
                }
                _ => None,
            })
        })
        .expect("some read sees an overwrite");
    bad[r].output = Some(old);
    assert!(matches!(
        lincheck::check(&bad),
        Err(CheckError::NotLinearizable(_))
    ));
    server.quit_and_check_clean();
}
