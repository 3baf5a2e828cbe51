//! The three engines of `shmkv::engine` side by side: shmkv's shared memory (a library server,
//! `shm://NAME`), one real `redis-server` (`redis://`) and a three-master Redis Cluster
//! (`redis-cluster://`), each started fresh, run the same fixed script of operations and must
//! give exactly the same outcomes (insert and replace, read, delete, insert-new both ways, cas
//! expecting a value or absence both ways, add with an overflow at both ends, sums beyond
//! 2^53 and refused non-integers, len, a full scan, pipelined batches mixing them). And what
//! only shmkv's own server has (print, threads start/stop, stats, quit) is refused by the Redis
//! engines with `EngineError::Unsupported` without sending anything (and `Engine::supports`
//! says so beforehand), as is an empty key with `EngineError::TooLarge`, on every engine.
#![cfg(not(loom))]

use shmkv::client::ClientError;
use shmkv::engine::redis::REDIS_LIMITS;
use shmkv::engine::{self, Engine, EngineError};
use shmkv::server::{Server, ServerConfig};
use shmkv::wire::{ErrorCode, Field, Op, Outcome, VERBS, Verb};
use shmkv_testkit::redis::{RedisCluster, RedisServer};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A library shmkv server with a unique name (default limits, 16 buckets), and the engine
/// `shm://NAME` connected to it.
fn shm_engine() -> (Server, Box<dyn Engine>) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "eng-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let server = Server::start(ServerConfig {
        name: name.clone(),
        buckets: 16,
        clients: 2,
        threads: 2,
        ..ServerConfig::default()
    })
    .unwrap();
    let patience = Duration::from_secs(15);
    let e = engine::connect_with(&format!("shm://{name}"), |c| {
        let mut c = c.timeout(patience);
        c.attach_timeout = patience;
        c
    })
    .unwrap();
    assert_eq!(e.kind(), "shm");
    (server, e)
}

fn op_insert(k: &[u8], v: &[u8]) -> Op {
    Op::Insert {
        key: k.to_vec(),
        value: v.to_vec(),
    }
}
fn op_read(k: &[u8]) -> Op {
    Op::Read { key: k.to_vec() }
}
fn op_delete(k: &[u8]) -> Op {
    Op::Delete { key: k.to_vec() }
}
fn op_new(k: &[u8], v: &[u8]) -> Op {
    Op::InsertNew {
        key: k.to_vec(),
        value: v.to_vec(),
    }
}
fn op_cas(k: &[u8], expected: Option<&[u8]>, new: &[u8]) -> Op {
    Op::Cas {
        key: k.to_vec(),
        expected: expected.map(<[u8]>::to_vec),
        new: new.to_vec(),
    }
}
fn op_add(k: &[u8], delta: i64) -> Op {
    Op::Add {
        key: k.to_vec(),
        delta,
    }
}

/// One step of the script.
enum Step {
    /// One batch, pipelined (one operation: sent alone).
    Batch(Vec<Op>),
    /// A full scan (cursor 0 until 0), by steps of this count.
    FullScan(u32),
}

/// What a step gave, in a form every engine must agree on: a batch's outcomes, or the keys of
/// a full scan, sorted (cursors are each engine's own).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Outcomes(Vec<Outcome>),
    Keys(Vec<Vec<u8>>),
}

/// A key holding 0x00, 0xff, a space and a quote.
const BIN: &[u8] = b"bin \"\x00\xff\"";

/// The script: every operation and answer, in order, with the outcome shmkv gives (which the
/// Redis engines must then give too).
fn script() -> Vec<(Step, Option<Seen>)> {
    use Outcome::*;
    let one = |op: Op, want: Outcome| (Step::Batch(vec![op]), Some(Seen::Outcomes(vec![want])));
    let s = |b: &[u8]| b.to_vec();
    let max = i64::MAX.to_string().into_bytes();
    let big = (1i64 << 53) + 1;
    let mut steps = vec![
        // Insert and replace; read; delete.
        one(op_insert(b"a", b"1"), Created),
        one(op_insert(b"a", b"2"), Replaced(s(b"1"))),
        one(op_read(b"a"), Value(s(b"2"))),
        one(op_read(b"absent"), NotFound),
        one(op_insert(BIN, b""), Created),
        one(op_read(BIN), Value(Vec::new())),
        one(op_insert(BIN, b"\x00\xff \"v\""), Replaced(Vec::new())),
        one(op_delete(b"a"), Deleted(s(b"2"))),
        one(op_delete(b"a"), NotFound),
        one(op_read(b"a"), NotFound),
        // Insert-new, both ways.
        one(op_new(b"b", b"x"), Created),
        one(op_new(b"b", b"y"), Exists(s(b"x"))),
        one(op_read(b"b"), Value(s(b"x"))),
        // Cas expecting a value, both ways; expecting absence, both ways.
        one(op_cas(b"b", Some(b"x"), b"z"), Swapped),
        one(op_cas(b"b", Some(b"x"), b"w"), Mismatch(Some(s(b"z")))),
        one(op_cas(b"b", None, b"w"), Mismatch(Some(s(b"z")))),
        one(op_cas(b"c", None, b"1"), Swapped),
        one(op_cas(b"c", None, b"2"), Mismatch(Some(s(b"1")))),
        one(op_cas(b"d", Some(b"x"), b"1"), Mismatch(None)),
        one(op_cas(b"b", Some(b"z"), b""), Swapped),
        one(op_cas(b"b", Some(b""), b"e"), Swapped),
        one(op_read(b"b"), Value(s(b"e"))),
        one(op_read(b"d"), NotFound),
        // Add: from absent, negative, to the limits and over them, beyond 2^53.
        one(op_add(b"n", 5), Number(5)),
        one(op_add(b"n", -7), Number(-2)),
        one(op_read(b"n"), Value(s(b"-2"))),
        one(op_add(b"m", i64::MAX), Number(i64::MAX)),
        one(op_add(b"m", 1), Refused(ErrorCode::Overflow)),
        one(op_read(b"m"), Value(max.clone())),
        one(op_add(b"neg", i64::MIN), Number(i64::MIN)),
        one(op_add(b"neg", -1), Refused(ErrorCode::Overflow)),
        one(op_add(b"neg", i64::MAX), Number(-1)),
        one(op_add(b"big", big), Number(big)),
        one(op_add(b"big", 2), Number(big + 2)),
        one(op_read(b"big"), Value(format!("{}", big + 2).into_bytes())),
        // Add on values that are not canonical decimal integers: refused, nothing changed.
        one(op_add(b"b", 1), Refused(ErrorCode::NotAnInteger)),
        one(op_read(b"b"), Value(s(b"e"))),
    ];
    for (i, v) in [
        &b""[..],
        b"01",
        b"-0",
        b"+1",
        b" 1",
        b"1 ",
        b"1.5",
        b"0x10",
        b"9223372036854775808",
    ]
    .into_iter()
    .enumerate()
    {
        let k = format!("odd{i}").into_bytes();
        steps.push(one(op_insert(&k, v), Created));
        steps.push(one(op_add(&k, 1), Refused(ErrorCode::NotAnInteger)));
        steps.push(one(op_read(&k), Value(v.to_vec())));
    }
    let mut keys: Vec<Vec<u8>> = [&b"b"[..], b"c", BIN, b"n", b"m", b"neg", b"big"]
        .iter()
        .map(|k| k.to_vec())
        .chain((0..9).map(|i| format!("odd{i}").into_bytes()))
        .collect();
    keys.sort();
    steps.push(one(Op::Len, Count(keys.len() as u64)));
    steps.push((Step::FullScan(3), Some(Seen::Keys(keys.clone()))));
    steps.push((Step::FullScan(1000), Some(Seen::Keys(keys.clone()))));
    // A pipelined batch mixing them, on keys spread over a cluster's masters, len between.
    let batch = vec![
        op_insert(b"p", b"1"),
        op_read(b"p"),
        op_add(b"p", 2),
        op_cas(b"p", Some(b"3"), b"4"),
        Op::Len,
        op_new(b"p", b"9"),
        op_new(b"q", b"9"),
        op_cas(b"q", None, b"8"),
        op_add(b"q", 1),
        op_add(b"m", 1),
        op_add(b"b", 1),
        op_delete(b"p"),
        op_read(b"p"),
        Op::Len,
        op_read(b"c"),
        op_delete(b"c"),
        op_cas(b"c", None, b"again"),
        op_read(b"c"),
        op_insert(BIN, b"last"),
    ];
    let want = vec![
        Created,
        Value(s(b"1")),
        Number(3),
        Swapped,
        Count(keys.len() as u64 + 1),
        Exists(s(b"4")),
        Created,
        Mismatch(Some(s(b"9"))),
        Number(10),
        Refused(ErrorCode::Overflow),
        Refused(ErrorCode::NotAnInteger),
        Deleted(s(b"4")),
        NotFound,
        Count(keys.len() as u64 + 1),
        Value(s(b"1")),
        Deleted(s(b"1")),
        Swapped,
        Value(s(b"again")),
        Replaced(s(b"\x00\xff \"v\"")),
    ];
    steps.push((Step::Batch(batch), Some(Seen::Outcomes(want))));
    keys.push(b"q".to_vec());
    keys.sort();
    // A batch of reads of every key at once (spread over the masters), then the scan again.
    let reads: Vec<Op> = keys.iter().map(|k| op_read(k)).collect();
    steps.push((Step::Batch(reads), None));
    steps.push((Step::FullScan(2), Some(Seen::Keys(keys.clone()))));
    steps.push((
        Step::Batch(vec![Op::Len]),
        Some(Seen::Outcomes(vec![Count(keys.len() as u64)])),
    ));
    steps
}

/// Runs the script on `e`: what each step gave.
fn run(e: &dyn Engine) -> Vec<Seen> {
    let kind = e.kind();
    script()
        .into_iter()
        .map(|(step, _)| match step {
            Step::Batch(ops) => Seen::Outcomes(
                e.execute_all(&ops)
                    .unwrap_or_else(|err| panic!("{kind}: {ops:?}: {err}"))
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|err| panic!("{kind}: {ops:?}: {err}")))
                    .collect(),
            ),
            Step::FullScan(count) => {
                let (mut cursor, mut keys, mut steps) = (0, Vec::new(), 0);
                loop {
                    let (next, got) = e.scan(cursor, count).unwrap();
                    keys.extend(got);
                    steps += 1;
                    assert!(steps < 1000, "{kind}: scan not done after {steps} steps");
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                keys.sort();
                if kind == "shm" {
                    let n = keys.len();
                    keys.dedup();
                    assert_eq!(keys.len(), n, "shm: a full scan returned a key twice");
                } else {
                    keys.dedup();
                }
                Seen::Keys(keys)
            }
        })
        .collect()
}

/// shmkv gives what the script says; one Redis server and a Redis Cluster give exactly what
/// shmkv gives, step by step; and the typed methods report add's refusals as
/// `EngineError::Refused` on all three.
#[test]
fn every_engine_gives_the_same_outcomes() {
    let (server, shm) = shm_engine();
    let single = RedisServer::start();
    let cluster = RedisCluster::start();
    let engines = [
        shm,
        engine::connect(&single.url()).unwrap(),
        engine::connect(&cluster.url()).unwrap(),
    ];
    let kinds: Vec<&str> = engines.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, ["shm", "redis", "redis-cluster"]);

    let wanted: Vec<Option<Seen>> = script().into_iter().map(|(_, w)| w).collect();
    let on_shm = run(&*engines[0]);
    assert_eq!(on_shm.len(), wanted.len());
    for (i, (got, want)) in on_shm.iter().zip(&wanted).enumerate() {
        if let Some(want) = want {
            assert_eq!(got, want, "shm, step {i}");
        }
    }
    for e in &engines[1..] {
        let got = run(&**e);
        for (i, (g, s)) in got.iter().zip(&on_shm).enumerate() {
            assert_eq!(g, s, "{} differs from shm at step {i}", e.kind());
        }
        assert_eq!(got.len(), on_shm.len());
    }
    // The keys really are spread over the cluster's masters, and each server holds them all.
    let n = match on_shm.last() {
        Some(Seen::Outcomes(o)) => match o[..] {
            [Outcome::Count(n)] => n,
            _ => panic!("{o:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(single.dbsize(), n);
    assert_eq!(server.len() as u64, n);
    let per_node: Vec<u64> = cluster.nodes().iter().map(RedisServer::dbsize).collect();
    assert_eq!(per_node.iter().sum::<u64>(), n);
    assert!(
        per_node.iter().all(|&k| k > 0),
        "keys on every master: {per_node:?}"
    );

    // The typed methods, on every engine alike.
    for e in &engines {
        let kind = e.kind();
        assert_eq!(e.insert(b"t", b"1").unwrap(), None, "{kind}");
        assert_eq!(e.insert_new(b"t", b"2").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.cas(b"t", Some(b"1"), b"3").unwrap(), Ok(()));
        assert_eq!(e.cas(b"t", None, b"4").unwrap(), Err(Some(b"3".to_vec())));
        assert_eq!(e.add(b"t", 4).unwrap(), 7);
        assert!(
            matches!(
                e.add(b"m", 1),
                Err(EngineError::Refused(ErrorCode::Overflow))
            ),
            "{kind}"
        );
        assert!(
            matches!(
                e.add(b"b", 1),
                Err(EngineError::Refused(ErrorCode::NotAnInteger))
            ),
            "{kind}"
        );
        assert_eq!(e.read(b"t").unwrap(), Some(b"7".to_vec()));
        assert_eq!(e.delete(b"t").unwrap(), Some(b"7".to_vec()));
        assert_eq!(e.len().unwrap(), n, "{kind}");
        assert!(!e.is_empty().unwrap());
    }
    drop(engines);
    server.shutdown();
}

/// What only shmkv's own server has, and its key check.
fn shmkv_only() -> Vec<Op> {
    vec![
        Op::Print { bucket: 0 },
        Op::ThreadsStart { n: 1 },
        Op::ThreadsStop,
        Op::Stats,
        Op::Quit,
    ]
}

/// A batch with an empty key, or a key over `max` bytes, must be refused as too large.
fn assert_too_large(e: &dyn Engine, op: Op, len: u64, max: u32) {
    let kind = e.kind();
    let batch = [op_insert(b"sent?", b"yes"), op];
    match e.execute_all(&batch) {
        Err(EngineError::TooLarge(ClientError::TooLarge {
            what: Field::Key,
            len: l,
            max: m,
        })) => assert_eq!((l, m), (len, max), "{kind}"),
        Err(other) => panic!("{kind}: {other:?}"),
        Ok(r) => panic!("{kind}: sent: {r:?}"),
    }
}

/// On both Redis engines: print, threads start, threads stop, stats and quit are refused
/// with `EngineError::Unsupported` naming the operation and the engine, alone or in a batch,
/// and nothing of the batch reaches any node (each node's command counter moves by only the
/// reads of it); an empty key is `EngineError::TooLarge` (nothing sent) on Redis as on shmkv.
#[test]
fn redis_refuses_what_only_shmkv_has_and_sends_nothing() {
    let single = RedisServer::start();
    let cluster = RedisCluster::start();
    let nodes: Vec<&RedisServer> = std::iter::once(&single)
        .chain(cluster.nodes().iter())
        .collect();
    let redis = [
        engine::connect(&single.url()).unwrap(),
        engine::connect(&cluster.url()).unwrap(),
    ];
    for e in &redis {
        assert_eq!(e.limits(), REDIS_LIMITS);
        let before: Vec<u64> = nodes.iter().map(|n| n.commands_processed()).collect();
        // `supports` says so beforehand: exactly the operations refused below are missing.
        let only: Vec<Verb> = shmkv_only().iter().map(Op::verb).collect();
        for v in VERBS.map(|i| i.verb) {
            assert_eq!(e.supports(v), !only.contains(&v), "{}: {v:?}", e.kind());
        }
        for op in shmkv_only() {
            let name = op.verb().info().name;
            for batch in [
                vec![op.clone()],
                vec![op_insert(b"sent?", b"yes"), op.clone(), Op::Len],
            ] {
                match e.execute_all(&batch) {
                    Err(err @ EngineError::Unsupported { op, engine }) => {
                        assert_eq!((op, engine), (name, e.kind()));
                        assert_eq!(
                            err.to_string(),
                            format!(
                                "'{name}' is not supported by the {} engine (only shmkv's own \
                                 server has it)",
                                e.kind()
                            )
                        );
                    }
                    other => panic!("{}: {name}: {other:?}", e.kind()),
                }
            }
            match e.execute(op) {
                Err(EngineError::Unsupported { op, .. }) => assert_eq!(op, name),
                other => panic!("{}: {name}: {other:?}", e.kind()),
            }
        }
        assert_too_large(&**e, op_read(b""), 0, REDIS_LIMITS.max_key);
        assert_too_large(&**e, op_insert(b"", b"v"), 0, REDIS_LIMITS.max_key);
        assert!(matches!(e.read(b""), Err(EngineError::TooLarge(_))));
        // Each node saw the two INFOs that read its counter, and nothing else.
        let after: Vec<u64> = nodes.iter().map(|n| n.commands_processed()).collect();
        let moved: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(
            moved,
            vec![1; nodes.len()],
            "{}: commands reached a node",
            e.kind()
        );
        assert_eq!(e.read(b"sent?").unwrap(), None);
        assert_eq!(e.len().unwrap(), 0);
    }
    // The shared-memory engine has them all; its empty key is refused the same way.
    let (server, shm) = shm_engine();
    assert!(VERBS.iter().all(|i| shm.supports(i.verb)));
    assert!(matches!(
        shm.execute(Op::Print { bucket: 0 }),
        Ok(Outcome::Entries(_))
    ));
    assert!(matches!(shm.execute(Op::Stats), Ok(Outcome::Stats(_))));
    assert_too_large(&*shm, op_read(b""), 0, shm.limits().max_key);
    assert_eq!(shm.read(b"sent?").unwrap(), None);
    drop(shm);
    server.shutdown();
}
