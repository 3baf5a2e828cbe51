//! Linearizability of the served table, from histories of real concurrent clients: several
//! processes (this test binary run again as `child_role`) with several threads each, running
//! every key-value operation (insert, read, delete, insert-new, cas, add) on a small shared
//! set of binary keys; every call's invoke and return time on `CLOCK_MONOTONIC`; the merged
//! history is checked by `shmkv_testkit`, and so are copies of it with one answer made
//! impossible, which it must reject. The same recording and checking run on every engine of
//! `shmkv::engine`: the real `shmkv-server` binary (through the library client, worker
//! threads started and stopped meanwhile), one real `redis-server`, and a three-master Redis
//! Cluster (the children connect with `shmkv::engine::connect(url)`). The large version is
//! `cargo run --release --example linearizability`.
#![cfg(not(loom))]

#[path = "lin/record.rs"]
mod record;
#[path = "lin/server.rs"]
mod server;

use record::Role;
use server::{ServerProc, finish, unique_name};
use shmkv_testkit::redis::{RedisCluster, RedisServer, Reply};
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
    assert_every_kind(&calls);
    lincheck::check(&calls).unwrap_or_else(|e| panic!("{e}"));
    server.shutdown();
}

/// Every operation occurred with each of its usual answers.
fn assert_every_kind(calls: &[Call]) {
    let counts = record::answer_counts(calls);
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
}

/// Run `processes` recording children (each its own role); their merged history.
fn record(processes: u64, role: impl Fn(u64) -> Role) -> Vec<Call> {
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
    // An add of a small delta answering a number far from the limits: the sums tried
    // below neither wrap nor make `m - delta` overflow (with a delta of `i64::MAX`, the
    // search would have to wrap around the whole `i64` range to find a candidate).
    let i = calls
        .iter()
        .position(|c| match (&c.op, &c.output) {
            (KvOp::Add { delta, .. }, Some(Output::Number(n))) => {
                delta.unsigned_abs() < 1 << 20 && n.unsigned_abs() < 1 << 60
            }
            _ => false,
        })
        .expect("some add of a small delta answered a number");
    let KvOp::Add { delta, .. } = calls[i].op else {
        unreachable!()
    };
    let Some(Output::Number(n)) = calls[i].output else {
        unreachable!()
    };
    let m = (1..1_000_000)
        .map(|k| n + 7919 * k)
        .find(|m| {
            m.checked_sub(delta)
                .is_some_and(|before| !held.contains(&before))
        })
        .expect("a sum no state gives");
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

/// Three processes of three threads on `target` (a shmkv server's name, or an engine URL),
/// 8 shared keys, pipelined batches of up to 4, worker threads started and stopped every
/// `thread_changes` calls (0: never): the history is linearizable, every operation and answer
/// occurs, calls of different processes overlap on one key; and changed so that one answer of
/// any kind names (or a swap expects) a value written only after it returned, or a read sees
/// a value overwritten before it began, or an add answers a sum no state could give, it is
/// not (so the history recorded is one the checker can tell wrong from right).
fn record_and_check(target: &str, thread_changes: u64) {
    let (processes, threads, ops) = (3, 3, 500);
    let calls = record(processes, |p| Role {
        name: target.to_string(),
        process: p,
        threads,
        ops,
        keys: 8,
        batch: 4,
        thread_changes,
        seed: 0x11_2024 + p,
    });
    assert_eq!(calls.len() as u64, processes * threads * ops);
    // Calls of different processes on one key must overlap, or the check would be sequential.
    let overlaps = record::overlapping_pairs(&calls);
    assert!(overlaps > 0, "no concurrency in the history");
    assert_every_kind(&calls);
    let t0 = std::time::Instant::now();
    let report = lincheck::check(&calls).unwrap_or_else(|e| panic!("{target}: {e}"));
    assert_eq!((report.keys, report.calls), (8, calls.len()));
    eprintln!(
        "{target}: {} calls, {overlaps} overlapping pairs, {} configurations, checked in {:.2?}",
        calls.len(),
        report.configurations,
        t0.elapsed(),
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
}

/// The real `shmkv-server` binary (2 workers per client, 4 buckets so that keys share them),
/// its clients starting and stopping worker threads meanwhile; it quits cleanly afterwards.
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
    record_and_check(&server.name, 50);
    server.quit_and_check_clean();
}

/// One real `redis-server`, through the Redis engine (`redis://127.0.0.1:PORT`).
#[test]
fn redis_clients_are_linearizable() {
    let redis = RedisServer::start();
    record_and_check(&redis.url(), 0);
    assert_eq!(redis.command(&[b"PING"]), Reply::Simple("PONG".into()));
}

/// A three-master Redis Cluster, through the cluster engine; the 8 shared keys live on more
/// than one master (so the history spans nodes and connections).
#[test]
fn redis_cluster_clients_are_linearizable() {
    let cluster = RedisCluster::start();
    record_and_check(&cluster.url(), 0);
    let masters: HashSet<i64> = (0..8)
        .map(
            |i| match cluster.nodes()[0].command(&[b"CLUSTER", b"KEYSLOT", &record::key(i)]) {
                Reply::Integer(slot) => master_port(&cluster, slot),
                other => panic!("CLUSTER KEYSLOT: {other:?}"),
            },
        )
        .collect();
    assert!(masters.len() > 1, "every key on one master: {masters:?}");
}

/// The port of the master serving `slot` (from `CLUSTER SLOTS`).
fn master_port(cluster: &RedisCluster, slot: i64) -> i64 {
    let Reply::Array(Some(ranges)) = cluster.nodes()[0].command(&[b"CLUSTER", b"SLOTS"]) else {
        panic!("CLUSTER SLOTS");
    };
    ranges
        .iter()
        .find_map(|r| match r {
            Reply::Array(Some(f)) => match &f[..] {
                [
                    Reply::Integer(lo),
                    Reply::Integer(hi),
                    Reply::Array(Some(m)),
                    ..,
                ] if (*lo..=*hi).contains(&slot) => match m.get(1) {
                    Some(Reply::Integer(port)) => Some(*port),
                    other => panic!("CLUSTER SLOTS master {other:?}"),
                },
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_else(|| panic!("slot {slot} has no master"))
}
