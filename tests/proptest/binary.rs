//! The same properties through the real `shmkv-server` binary over shared memory, talked to
//! with the library `Client`: one client against the HashMap oracle; several concurrent
//! clients on disjoint key sets, each with its own oracle; several on shared keys, whose
//! history must be linearizable (`shmkv::lincheck`). Batches are pipelined and worker
//! threads are started and stopped in between.

use super::{Action, BUCKETS, KEYS, Model, action};
use crate::common::ServerProc;
use proptest::prelude::*;
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::lincheck::{self, Call, KvOp};
use shmkv::protocol::Op;
use std::collections::HashMap;
use std::time::Instant;

const MAX_WORKERS: u32 = 6;

fn start(clients: u32, threads: u32) -> ServerProc {
    ServerProc::start(&[
        "--buckets",
        &BUCKETS.to_string(),
        "--clients",
        &clients.to_string(),
        "--threads",
        &threads.to_string(),
        "--max-threads",
        &MAX_WORKERS.to_string(),
        "--ring",
        "16",
        "--share-backlog",
        "on",
        "-q",
    ])
}

/// The server's bucket of each key in `keys` (its hasher is seeded at random): insert the key
/// alone, find it with Print, delete it.
fn learn_buckets(c: &Client, keys: impl Iterator<Item = u64>) -> HashMap<u64, usize> {
    let mut map = HashMap::new();
    for k in keys {
        c.insert(k, 0).unwrap();
        for b in 0..BUCKETS as u64 {
            if c.print(b).unwrap().iter().any(|(kk, _)| *kk == k) {
                map.insert(k, b as usize);
            }
        }
        c.delete(k).unwrap();
    }
    map
}

/// Run `actions` (batches split at `Flush`) on `c`, comparing every answer with `model`. Print
/// answers are filtered to `mine` (other clients may have keys in the bucket). Stats are
/// compared only for the worker count when `alone` is false.
fn run_against_model(
    c: &Client,
    actions: &[Action],
    model: &mut Model,
    bucket_of: &dyn Fn(u64) -> usize,
    mine: &dyn Fn(u64) -> bool,
    alone: bool,
) -> Result<(), TestCaseError> {
    for batch in actions.split(|a| matches!(a, Action::Flush)) {
        let ops: Vec<Op> = batch
            .iter()
            .map(|a| match a {
                Action::Op(op) => *op,
                Action::Flush => unreachable!(),
            })
            .collect();
        let tickets = c.submit_all(&ops).unwrap();
        for (op, t) in ops.iter().zip(tickets) {
            let mut got = c.wait(t).unwrap();
            if let Outcome::Entries(e) = &mut got {
                e.retain(|(k, _)| mine(*k));
                e.sort_unstable();
            }
            let want = model.apply(*op, bucket_of);
            match (&got, &want) {
                (Outcome::Stats(g), Outcome::Stats(w)) => {
                    if alone {
                        // Alone on the server, the entry count is exact too.
                        prop_assert_eq!(g.entries, w.entries, "entries after {:?}", op);
                    }
                    let g = g.slots.iter().find(|s| s.slot == c.slot()).unwrap();
                    prop_assert_eq!(g.workers, w.slots[0].workers, "workers after {:?}", op);
                }
                _ => prop_assert_eq!(&got, &want, "op {:?}", op),
            }
        }
    }
    Ok(())
}

/// Key-value actions for the shared-key test: operations on `0..KEYS`, thread changes, and
/// batch boundaries (no Print or Stats: other clients change the table meanwhile).
fn shared_action() -> impl Strategy<Value = Action> {
    action().prop_filter("key-value or threads", |a| {
        !matches!(a, Action::Op(Op::Print { .. } | Op::Stats | Op::Quit))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// One client of the real binary: pipelined batches with Print, Stats, ThStart and ThStop,
    /// every answer equal to the HashMap oracle's; the table ends as the oracle.
    #[test]
    fn binary_matches_hashmap(ops in proptest::collection::vec(action(), 1..120), threads in 1..4u32) {
        let server = start(1, threads);
        let c = Client::connect(&ClientConfig::new(&server.name)).unwrap();
        let buckets = learn_buckets(&c, 0..KEYS);
        let mut model = Model { map: HashMap::new(), workers: threads, max_workers: MAX_WORKERS };
        run_against_model(&c, &ops, &mut model, &|k| buckets[&k], &|_| true, true)?;
        for k in 0..KEYS {
            prop_assert_eq!(c.read(k).unwrap(), model.map.get(&k).copied());
        }
        prop_assert_eq!(c.stray_responses(), 0);
        drop(c);
        server.quit_and_check_clean();
    }

    /// Three clients of the binary at once, each on its own keys (client i uses keys
    /// i*KEYS..(i+1)*KEYS) with its own oracle and its own worker count.
    #[test]
    fn binary_disjoint_clients_match_their_models(
        per_client in proptest::collection::vec(proptest::collection::vec(action(), 1..80), 3),
        threads in 1..3u32,
    ) {
        let server = start(3, threads);
        let clients: Vec<Client> = (0..3)
            .map(|_| Client::connect(&ClientConfig::new(&server.name)).unwrap())
            .collect();
        let buckets = learn_buckets(&clients[0], 0..3 * KEYS);
        let results: Vec<Result<Model, TestCaseError>> = std::thread::scope(|s| {
            let hs: Vec<_> = clients
                .iter()
                .zip(&per_client)
                .enumerate()
                .map(|(i, (c, actions))| {
                    let buckets = &buckets;
                    s.spawn(move || {
                        let base = i as u64 * KEYS;
                        // Move the generated keys (and print buckets stay) into this client's range.
                        let actions: Vec<Action> = actions
                            .iter()
                            .map(|a| match *a {
                                Action::Op(Op::Insert { key, value }) => {
                                    Action::Op(Op::Insert { key: key + base, value })
                                }
                                Action::Op(Op::Read { key }) => Action::Op(Op::Read { key: key + base }),
                                Action::Op(Op::Delete { key }) => Action::Op(Op::Delete { key: key + base }),
                                ref other => other.clone(),
                            })
                            .collect();
                        let mut model = Model { map: HashMap::new(), workers: threads, max_workers: MAX_WORKERS };
                        run_against_model(
                            c,
                            &actions,
                            &mut model,
                            &|k| buckets[&k],
                            &|k| (base..base + KEYS).contains(&k),
                            false,
                        )?;
                        Ok(model)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut total = 0;
        for (i, r) in results.into_iter().enumerate() {
            let model = r?;
            for (k, v) in &model.map {
                prop_assert_eq!(clients[i].read(*k).unwrap(), Some(*v));
            }
            total += model.map.len();
        }
        prop_assert_eq!(clients[0].stats().unwrap().entries as usize, total);
        drop(clients);
        server.quit_and_check_clean();
    }

    /// Three clients of the binary at once on the same keys, pipelined, with thread changes:
    /// the recorded history (invoke before a batch is submitted, return when each answer
    /// arrives) must be linearizable.
    #[test]
    fn binary_shared_keys_are_linearizable(
        per_client in proptest::collection::vec(proptest::collection::vec(shared_action(), 1..100), 3),
        threads in 1..3u32,
    ) {
        let server = start(3, threads);
        let clients: Vec<Client> = (0..3)
            .map(|_| Client::connect(&ClientConfig::new(&server.name)).unwrap())
            .collect();
        let t0 = Instant::now();
        let now = || t0.elapsed().as_nanos() as u64;
        let histories: Vec<Vec<Call>> = std::thread::scope(|s| {
            let hs: Vec<_> = clients
                .iter()
                .zip(&per_client)
                .enumerate()
                .map(|(i, (c, actions))| {
                    s.spawn(move || {
                        let mut calls = Vec::new();
                        let mut n = 0u64;
                        let mut workers = threads;
                        for batch in actions.split(|a| matches!(a, Action::Flush)) {
                            // Unique values: the client and a counter.
                            let ops: Vec<Op> = batch
                                .iter()
                                .map(|a| match *a {
                                    Action::Op(Op::Insert { key, .. }) => {
                                        n += 1;
                                        Op::Insert { key, value: (i as u64) << 32 | n }
                                    }
                                    Action::Op(op) => op,
                                    Action::Flush => unreachable!(),
                                })
                                .collect();
                            let invoke = now();
                            let tickets = c.submit_all(&ops).unwrap();
                            for (op, t) in ops.iter().zip(tickets) {
                                let got = c.wait(t).unwrap();
                                let ret = now();
                                let (kv, output) = match (*op, got) {
                                    (Op::Insert { key, value }, Outcome::Done) => (KvOp::Insert { key, value }, None),
                                    (Op::Insert { key, value }, Outcome::Replaced(p)) => (KvOp::Insert { key, value }, Some(p)),
                                    (Op::Read { key }, Outcome::Value(v)) => (KvOp::Read { key }, Some(v)),
                                    (Op::Read { key }, Outcome::NotFound) => (KvOp::Read { key }, None),
                                    (Op::Delete { key }, Outcome::Value(v)) => (KvOp::Delete { key }, Some(v)),
                                    (Op::Delete { key }, Outcome::NotFound) => (KvOp::Delete { key }, None),
                                    (Op::ThStart { n }, got) => {
                                        if workers + n <= MAX_WORKERS {
                                            workers += n;
                                            assert_eq!(got, Outcome::Threads(workers));
                                        } else {
                                            assert!(matches!(got, Outcome::Refused(_)), "{got:?}");
                                        }
                                        continue;
                                    }
                                    (Op::ThStop, got) => {
                                        if workers > 1 {
                                            workers -= 1;
                                            assert_eq!(got, Outcome::Threads(workers));
                                        } else {
                                            assert!(matches!(got, Outcome::Refused(_)), "{got:?}");
                                        }
                                        continue;
                                    }
                                    (op, got) => panic!("{op:?} answered {got:?}"),
                                };
                                calls.push(Call::new(i as u64, kv, output, invoke, ret));
                            }
                        }
                        calls
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all: Vec<Call> = histories.into_iter().flatten().collect();
        if let Err(e) = lincheck::check(&all) {
            return Err(TestCaseError::fail(format!("{e}")));
        }
        drop(clients);
        server.quit_and_check_clean();
    }
}
