//! The same properties through the real `shmkv-server` binary over shared memory, talked to
//! with the library `Client`: one client against the model (small limits, and a few cases at
//! the defaults); several concurrent clients on disjoint key pools, each with its own model;
//! several on one shared pool, whose history must be linearizable (`shmkv_testkit`).
//! Batches are pipelined and worker threads are started and stopped in between.

use crate::check_served;
use crate::model::{self, Action, BUCKETS, Checker, KeySpec, MAX_WORKERS, SMALL};
use crate::record;
use crate::server::ServerProc;
use proptest::prelude::*;
use shmkv::client::{Client, Outcome};
use shmkv::server::DEFAULT_LIMITS;
use shmkv::wire::{Limits, Op};
use shmkv_testkit::{self as lincheck, Call, KvOp};
use std::time::Instant;

/// A server binary with `clients` slots, `threads` workers per client to start with, and
/// `limits` (as flags when they are not the defaults).
fn start(clients: u32, threads: u32, limits: Limits) -> ServerProc {
    let (key, value) = (limits.max_key.to_string(), limits.max_value.to_string());
    let (buckets, clients, threads) = (
        BUCKETS.to_string(),
        clients.to_string(),
        threads.to_string(),
    );
    let max = MAX_WORKERS.to_string();
    let mut args = vec![
        "--buckets",
        &buckets,
        "--clients",
        &clients,
        "--threads",
        &threads,
        "--max-threads",
        &max,
        "--share-backlog",
        "on",
        "-q",
    ];
    if limits != DEFAULT_LIMITS {
        args.extend(["--max-key", &key, "--max-value", &value]);
    }
    ServerProc::start(&args)
}

/// One client of the binary: every action checked against the model; the table ends as the
/// model; the server quits cleanly.
fn one_client(
    pool: &[KeySpec],
    actions: &[Action],
    threads: u32,
    limits: Limits,
) -> Result<(), TestCaseError> {
    let server = start(1, threads, limits);
    let c = Client::connect(&record::patient(&server.name)).unwrap();
    let keys = check_served(&c, &c, c.slot(), pool, actions, threads, limits)?;
    prop_assert_eq!(c.len().unwrap(), keys.len() as u64);
    prop_assert_eq!(c.stray_responses(), 0);
    drop(c);
    server.quit_and_check_clean();
    Ok(())
}

/// Client `i`'s copy of a pool key: its first byte replaced by `i` (or `i` prepended to a
/// short key), so that clients' keys differ, and a maximum-size key stays maximum-size.
fn owned_key(i: u8, k: &[u8], max_key: usize) -> Vec<u8> {
    if k.len() >= max_key {
        let mut k = k.to_vec();
        k[0] = i;
        k
    } else {
        let mut v = vec![i];
        v.extend_from_slice(k);
        v
    }
}

/// Client `i`'s `n`th value written, made unique (as the old one's kind): a small number
/// becomes `(i + 1) * 10^9 + n * 1000` (so that adds still count and rarely meet another
/// write), other non-empty bytes get `0x00 i n 0xff` appended (or written over their start
/// at the maximum size); numbers near the `i64` limits and the empty value stay as they are.
/// Unique writes keep the checker's search small: a value read names its write.
fn unique(v: Vec<u8>, i: u8, n: u16) -> Vec<u8> {
    if let Some(x) = model::decimal(&v) {
        if x.unsigned_abs() < 1 << 40 {
            return ((i64::from(i) + 1) * 1_000_000_000 + i64::from(n) * 1000)
                .to_string()
                .into_bytes();
        }
        return v;
    }
    if v.is_empty() {
        return v;
    }
    let [hi, lo] = n.to_be_bytes();
    let tag = [0x00, i, hi, lo, 0xff];
    let mut v = v;
    if v.len() + tag.len() <= SMALL.max_value as usize {
        v.extend_from_slice(&tag);
    } else {
        v[..tag.len()].copy_from_slice(&tag);
    }
    v
}

/// The operation of a keyed action in the shared-keys test: values written made [`unique`],
/// and a cas expecting "the current value" expecting what the client last saw there (no
/// model knows the current value while others write).
fn shared_op(
    c: &Checker<'_>,
    a: &Action,
    seen: &std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
    i: u8,
    n: &mut u16,
) -> Op {
    *n += 1;
    let n = *n;
    match (a, c.keyed_op(a)) {
        (Action::Cas(_, e, _), Op::Cas { key, expected, new }) => Op::Cas {
            expected: match e {
                model::Expect::Current => seen.get(&key).cloned().flatten(),
                _ => expected,
            },
            key,
            new: unique(new, i, n),
        },
        (_, Op::Insert { key, value }) => Op::Insert {
            key,
            value: unique(value, i, n),
        },
        (_, Op::InsertNew { key, value }) => Op::InsertNew {
            key,
            value: unique(value, i, n),
        },
        (_, op) => op,
    }
}

/// What a thread that panicked said.
fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a thread panicked".into())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// One client of the real binary (small limits): pipelined batches of every operation,
    /// every answer as the model allows; the table ends as the model.
    #[test]
    fn binary_matches_hashmap(
        pool in model::pool(),
        actions in proptest::collection::vec(model::action(), 1..150),
        threads in 1..4u32,
    ) {
        one_client(&pool, &actions, threads, SMALL)?;
    }

    /// Three clients of the binary at once, each on its own copy of the key pool with its own
    /// model and its own worker count (Len and the entry count of Stats are not checked:
    /// the others change them; Print and Scan answers are checked on the client's own keys).
    #[test]
    fn binary_disjoint_clients_match_their_models(
        pool in model::pool(),
        per_client in proptest::collection::vec(proptest::collection::vec(model::action(), 1..80), 3),
        threads in 1..3u32,
    ) {
        let server = start(3, threads, SMALL);
        let clients: Vec<Client> = (0..3)
            .map(|_| Client::connect(&record::patient(&server.name)).unwrap())
            .collect();
        let base = model::resolve_keys(&pool, SMALL);
        let pools: Vec<Vec<Vec<u8>>> = (0..3u8)
            .map(|i| base.iter().map(|k| owned_key(i, k, SMALL.max_key as usize)).collect())
            .collect();
        let buckets = model::learn_buckets(&clients[0], &pools.concat());
        let results: Vec<Result<model::Model, TestCaseError>> = std::thread::scope(|s| {
            let hs: Vec<_> = clients
                .iter()
                .zip(&per_client)
                .zip(&pools)
                .enumerate()
                .map(|(i, ((c, actions), keys))| {
                    let buckets = &buckets;
                    s.spawn(move || {
                        let bucket_of = |k: &[u8]| buckets[k];
                        let mine = |k: &[u8]| k.first() == Some(&(i as u8));
                        let mut checker =
                            Checker::new(keys.clone(), SMALL, threads, &bucket_of, &mine, false);
                        checker.slot = c.slot();
                        checker.run(c, actions)?;
                        Ok(checker.model)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|e| Err(TestCaseError::fail(panic_message(e)))))
                .collect()
        });
        let mut total = 0;
        for (i, r) in results.into_iter().enumerate() {
            let model = r?;
            for (k, v) in &model.kv.map {
                let got = clients[i].read(k).unwrap();
                prop_assert_eq!(got.as_ref(), Some(v));
            }
            total += model.kv.map.len();
        }
        prop_assert_eq!(clients[0].len().unwrap() as usize, total);
        prop_assert_eq!(clients[0].stats().unwrap().entries as usize, total);
        drop(clients);
        server.quit_and_check_clean();
    }

    /// Three clients of the binary at once on one shared key pool, pipelined, with thread
    /// changes: the recorded history (invoke before a batch is submitted, return when each
    /// answer arrives) must be linearizable.
    #[test]
    fn binary_shared_keys_are_linearizable(
        pool in model::pool(),
        per_client in proptest::collection::vec(proptest::collection::vec(model::shared_action(), 1..80), 3),
        threads in 1..3u32,
    ) {
        let server = start(3, threads, SMALL);
        let clients: Vec<Client> = (0..3)
            .map(|_| Client::connect(&record::patient(&server.name)).unwrap())
            .collect();
        let keys = model::resolve_keys(&pool, SMALL);
        let t0 = Instant::now();
        let now = || t0.elapsed().as_nanos() as u64;
        let histories: Vec<Result<Vec<Call>, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = clients
                .iter()
                .zip(&per_client)
                .enumerate()
                .map(|(i, (c, actions))| {
                    let keys = keys.clone();
                    s.spawn(move || {
                        let no_bucket = |_: &[u8]| 0;
                        let all = |_: &[u8]| true;
                        // Used only to build operations: the model is not this client's.
                        let builder = Checker::new(keys, SMALL, threads, &no_bucket, &all, false);
                        let mut seen = std::collections::HashMap::new();
                        let mut n = 0u16;
                        let mut calls = Vec::new();
                        let mut workers = threads;
                        for batch in actions.split(|a| matches!(a, Action::Flush)) {
                            let ops: Vec<Op> = batch
                                .iter()
                                .map(|a| match a {
                                    Action::ThreadsStart(n) => Op::ThreadsStart { n: *n },
                                    Action::ThreadsStop => Op::ThreadsStop,
                                    a => shared_op(&builder, a, &seen, i as u8, &mut n),
                                })
                                .collect();
                            let invoke = now();
                            let tickets = c.submit_all(&ops).unwrap();
                            for (op, t) in ops.into_iter().zip(tickets) {
                                let got = c.wait(t).unwrap();
                                let ret = now();
                                let kv = match op {
                                    Op::ThreadsStart { n } => {
                                        if workers + n <= MAX_WORKERS {
                                            workers += n;
                                            assert_eq!(got, Outcome::Threads(workers));
                                        } else {
                                            assert!(matches!(got, Outcome::Refused(_)), "{got:?}");
                                        }
                                        continue;
                                    }
                                    Op::ThreadsStop => {
                                        if workers > 1 {
                                            workers -= 1;
                                            assert_eq!(got, Outcome::Threads(workers));
                                        } else {
                                            assert!(matches!(got, Outcome::Refused(_)), "{got:?}");
                                        }
                                        continue;
                                    }
                                    Op::Insert { key, value } => KvOp::Insert { key, value },
                                    Op::Read { key } => KvOp::Read { key },
                                    Op::Delete { key } => KvOp::Delete { key },
                                    Op::InsertNew { key, value } => KvOp::InsertNew { key, value },
                                    Op::Cas { key, expected, new } => KvOp::Cas { key, expected, new },
                                    Op::Add { key, delta } => KvOp::Add { key, delta },
                                    other => unreachable!("{other:?}"),
                                };
                                let output = record::output_of(got.clone())
                                    .filter(|o| record::answers(&kv, o))
                                    .unwrap_or_else(|| panic!("{kv} answered {got:?}"));
                                let after = kv.apply(seen.get(kv.key()).cloned().flatten().as_deref()).1;
                                // What the client believes is there now (its next cas expects it).
                                let now_there = match &output {
                                    lincheck::Output::Value(v) | lincheck::Output::Exists(v) => Some(v.clone()),
                                    lincheck::Output::Mismatch(v) => v.clone(),
                                    lincheck::Output::NotFound | lincheck::Output::Deleted(_) => None,
                                    lincheck::Output::Number(n) => Some(n.to_string().into_bytes()),
                                    _ => after,
                                };
                                seen.insert(kv.key().to_vec(), now_there);
                                calls.push(Call::new(i as u64, kv, output, invoke, ret));
                            }
                        }
                        calls
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().map_err(panic_message)).collect()
        });
        let mut all: Vec<Call> = Vec::new();
        for h in histories {
            all.extend(h.map_err(TestCaseError::fail)?);
        }
        // A history whose search would run long (many overlapping calls on one key that
        // answer alike) is set aside, not failed: that is the checker's limit, not the
        // server's fault. Unique writes make it rare.
        match lincheck::check_with(&all, &lincheck::Options { max_configurations: 500_000 }) {
            Ok(_) => {}
            Err(lincheck::CheckError::Inconclusive { .. }) => {
                drop(clients);
                server.quit_and_check_clean();
                return Err(TestCaseError::reject("history too ambiguous to check quickly"));
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        }
        drop(clients);
        server.quit_and_check_clean();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    /// One client of the binary at its default limits (4 KiB keys, 1 MiB values): maximum
    /// sizes included.
    #[test]
    fn binary_at_default_limits(
        pool in model::pool(),
        actions in proptest::collection::vec(model::action(), 1..40),
        threads in 1..3u32,
    ) {
        one_client(&pool, &actions, threads, DEFAULT_LIMITS)?;
    }
}
