//! Linearizability of the served table, from histories of real concurrent clients: several
//! processes (this test binary run again as `child_role`) with several threads each, running
//! every key-value operation (insert, read, delete, insert-new, cas, add) on a small shared
//! set of binary keys, against the real `shmkv-server` binary; every call's invoke and return
//! time on `CLOCK_MONOTONIC`; the merged history is checked by `shmkv_testkit`, and so are
//! copies of it with one answer made impossible, which it must reject. The large version is
//! `cargo run --release --example linearizability`.
#![cfg(not(loom))]

#[path = "lin/record.rs"]
mod record;
#[path = "lin/server.rs"]
mod server;

use record::Role;
use server::{ServerProc, finish, unique_name};
use shmkv_testkit::{self as lincheck, Call, CheckError, KvOp, Output};
use std::collections::HashSet;
use std::process::{Command, Stdio};

const ROLE_ENV: &str = "SHMKV_LIN_ROLE";

/// The entry point of the child processes (this binary run again with `SHMKV_LIN_ROLE` set).
/// Run as an ordinary test, it runs a role in this process against an in-process server and
/// checks what it recorded, so the role the other test relies on is itself checked: every
/// line round-trips, every operation kind occurs, the history is linearizable.
#[test]
fn child_role() {
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        record::run_child(&spec);
        std::process::exit(0);
    }
    let name = unique_name("lin-role");
    let server = shmkv::server::Server::start(shmkv::server::ServerConfig {
        name: name.clone(),
        buckets: 4,
        clients: 1,
        threads: 2,
        share_backlog: Some(true),
        ..Default::default()
    })
    .unwrap();
    let role = Role {
        name: name.clone(),
        process: 3,
        threads: 2,
        ops: 300,
        keys: 4,
        batch: 3,
        thread_changes: 16,
        seed: 1,
    };
    assert_eq!(Role::parse(&role.spec()), role);
    let calls = role.run();
    assert_eq!(calls.len(), 600);
    for c in &calls {
        let line = record::format_call(c);
        assert_eq!(record::parse_call(&line).as_ref(), Some(c), "{line}");
        assert!(c.ret.unwrap() >= c.invoke);
    }
    // A pending call and odd bytes round-trip too; other lines are not calls.
    let odd = Call::pending(
        7,
        KvOp::Cas {
            key: vec![0, b' ', b'"', 0xff],
            expected: Some(Vec::new()),
            new: Vec::new(),
        },
        5,
    );
    assert_eq!(record::parse_call(&record::format_call(&odd)), Some(odd));
    for junk in ["", "running 1 test", "1 2 3 read x = ", "1 2 3 read xz = -"] {
        assert_eq!(record::parse_call(junk), None, "{junk:?}");
    }
    let counts = record::answer_counts(&calls);
    eprintln!("answers: {counts:?}");
    for kind in [
        "insert/created",
        "insert/replaced",
        "read/value",
        "read/not-found",
        "delete/deleted",
        "insert-new/created",
        "insert-new/exists",
        "cas/swapped",
        "cas/mismatch-value",
        "add/number",
        "add/not-an-integer",
    ] {
        assert!(
            counts.iter().any(|&(k, n)| k == kind && n > 0),
            "no {kind} in {counts:?}"
        );
    }
    lincheck::check(&calls).unwrap_or_else(|e| panic!("{e}"));
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

/// The value a call's answer names, when it names one (replaced, value, deleted, exists,
/// mismatch with a value), and a copy of the answer naming `other` instead.
fn named_value(output: &Output, other: &[u8]) -> Option<(Vec<u8>, Output)> {
    let o = other.to_vec();
    Some(match output {
        Output::Replaced(v) => (v.clone(), Output::Replaced(o)),
        Output::Value(v) => (v.clone(), Output::Value(o)),
        Output::Deleted(v) => (v.clone(), Output::Deleted(o)),
        Output::Exists(v) => (v.clone(), Output::Exists(o)),
        Output::Mismatch(Some(v)) => (v.clone(), Output::Mismatch(Some(o))),
        _ => return None,
    })
}

/// A copy of `calls` in which one call of `kind` (see [`record::answer_kind`]) claims to have
/// seen a value that was written (once in the whole history: a unique value) only by a call
/// invoked after the claiming call returned: for a cas that swapped, by expecting it; for
/// every other kind, by naming it in its answer. No order can fit that claim.
fn claim_future_value(calls: &[Call], kind: &str) -> Vec<Call> {
    let writes: Vec<&Call> = calls
        .iter()
        .filter(|w| w.op.written().is_some_and(record::is_unique))
        .collect();
    for (i, c) in calls.iter().enumerate() {
        if record::answer_kind(c) != kind {
            continue;
        }
        let Some(w) = writes
            .iter()
            .find(|w| w.op.key() == c.op.key() && w.invoke > c.ret.unwrap())
        else {
            continue;
        };
        let future = w.op.written().unwrap().to_vec();
        let mut bad = calls.to_vec();
        match (&c.op, c.output.as_ref().unwrap()) {
            (KvOp::Cas { key, new, .. }, Output::Swapped) => {
                bad[i].op = KvOp::Cas {
                    key: key.clone(),
                    expected: Some(future),
                    new: new.clone(),
                };
            }
            (_, out) => bad[i].output = Some(named_value(out, &future).unwrap().1),
        }
        return bad;
    }
    panic!("no {kind} call precedes a unique write of its key");
}

/// A copy of `calls` in which one add that answered a number answers one that no state of
/// its key could give: the number minus the delta is no value the key ever held (every state
/// of a key is absent, a value written, or a number some add answered: all in the history).
fn impossible_sum(calls: &[Call]) -> Vec<Call> {
    let held: HashSet<i64> = calls
        .iter()
        .flat_map(|c| {
            let written =
                c.op.written()
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            let sum = match c.output {
                Some(Output::Number(n)) => Some(n),
                _ => None,
            };
            [written, sum, Some(0)]
        })
        .flatten()
        .collect();
    let i = calls
        .iter()
        .position(|c| matches!(c.output, Some(Output::Number(_))))
        .expect("some add answered a number");
    let KvOp::Add { delta, .. } = calls[i].op else {
        unreachable!()
    };
    let Some(Output::Number(n)) = calls[i].output else {
        unreachable!()
    };
    let m = (1..)
        .map(|k| n.wrapping_add(7919 * k))
        .find(|m| {
            m.checked_sub(delta)
                .is_some_and(|before| !held.contains(&before))
        })
        .unwrap();
    let mut bad = calls.to_vec();
    bad[i].output = Some(Output::Number(m));
    bad
}

fn assert_rejected(bad: &[Call], what: &str) {
    match lincheck::check(bad) {
        Err(CheckError::NotLinearizable(v)) => {
            eprintln!("{what}: rejected at key {}", lincheck::Shown(&v.key));
        }
        other => panic!("{what}: expected a violation, got {other:?}"),
    }
}

/// Three processes of three threads, 8 shared keys, pipelined batches, worker threads
/// started and stopped meanwhile, a server with 2 workers per client and 4 buckets (so keys
/// share buckets): the history is linearizable; and changed so that one answer of any kind
/// names (or a swap expects) a value written only after it returned, or a read sees a value
/// overwritten before it began, or an add answers a sum no state could give, it is not.
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
    let (processes, threads, ops) = (3, 3, 500);
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
    let t0 = std::time::Instant::now();
    let report = lincheck::check(&calls).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.keys, report.calls), (8, calls.len()));
    eprintln!(
        "{} calls, {overlaps} overlapping pairs, {} configurations, checked in {:.2?}; answers: {:?}",
        calls.len(),
        report.configurations,
        t0.elapsed(),
        record::answer_counts(&calls)
    );

    for kind in [
        "insert/replaced",
        "read/value",
        "delete/deleted",
        "insert-new/exists",
        "cas/mismatch-value",
        "cas/swapped",
    ] {
        assert_rejected(&claim_future_value(&calls, kind), kind);
    }

    // A stale read: a read that began after an insert of its key had returned, made to
    // return the (unique) value that insert replaced.
    let mut bad = calls.clone();
    let (r, old) = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.op, KvOp::Read { .. }))
        .find_map(|(i, c)| {
            calls.iter().find_map(|w| match (&w.op, &w.output) {
                (KvOp::Insert { key, .. }, Some(Output::Replaced(old)))
                    if key == c.op.key() && w.ret.unwrap() < c.invoke && record::is_unique(old) =>
                {
                    Some((i, old.clone()))
                }
                _ => None,
            })
        })
        .expect("some read follows an overwrite of a unique value");
    bad[r].output = Some(Output::Value(old));
    assert_rejected(&bad, "stale read");

    assert_rejected(&impossible_sum(&calls), "add/number");
    server.quit_and_check_clean();
}
