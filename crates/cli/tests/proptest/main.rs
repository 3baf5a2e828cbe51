//! Property tests: the byte-string store, and the store served over real shared memory (by
//! the library here, by the `shmkv-server` binary in [`binary`]), against a
//! `HashMap<Vec<u8>, Vec<u8>>` model, over every operation: insert, read, delete, insert-new,
//! cas (expecting a value or absence), add, len, scan (Redis SCAN's guarantee), print, thread
//! changes, stats, and the client's refusal of keys and values over the limits. Keys and
//! values are binary (0x00, 0xff, quotes, spaces), values may be empty, and keys and values
//! of exactly the maximum size occur: most servers run with small limits (64-byte keys,
//! 4 KiB values) so that they are cheap, a few cases run at the default limits (4 KiB keys,
//! 1 MiB values). What is checked, and how exactly under pipelining, is in [`model`]. The
//! same checks run through `shmkv::engine` on shmkv, one Redis server and a Redis Cluster in
//! [`engines`].
#![cfg(not(loom))]

mod binary;
mod engines;
#[path = "../common/kv_model.rs"]
mod kv_model;
mod model;
#[path = "../lin/record.rs"]
mod record;
#[path = "../lin/server.rs"]
mod server;

use model::{Action, BUCKETS, Checker, MAX_WORKERS, SMALL, Target};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use shmkv::client::Client;
use shmkv::engine::Engine;
use shmkv::server::{DEFAULT_LIMITS, Server, ServerConfig};
use shmkv::store::{Store, entry_cost};
use shmkv::wire::Limits;

/// Run `actions` on a fresh store, each alone (so every check is exact), with the model's
/// limits `limits` (the store has none of its own); the store ends as the model, its memory
/// charged as the model's entries cost. Returns what was seen.
fn run_on_store(
    pool: &[model::KeySpec],
    actions: &[Action],
    limits: Limits,
) -> Result<model::Coverage, TestCaseError> {
    let store = Store::new(BUCKETS as usize, u64::MAX).unwrap();
    let keys = model::resolve_keys(pool, limits);
    let bucket_of = |k: &[u8]| store.bucket_of(k) as u64;
    let mine = |_: &[u8]| true;
    let mut c = Checker::new(keys, limits, 1, &bucket_of, &mine, true);
    for a in actions.iter().filter(|a| a.for_store()) {
        c.act(&store, a)?;
        c.flush(&store)?;
        prop_assert_eq!(store.len(), c.model.kv.map.len() as u64);
        prop_assert_eq!(store.memory_used(), c.model.memory());
    }
    c.finish(&store)?;
    for (k, v) in &c.model.kv.map {
        let got = store.read(k).get().map(<[u8]>::to_vec);
        prop_assert_eq!(got.as_ref(), Some(v));
    }
    Ok(c.coverage)
}

/// A fresh library server for one case, and its name (`prefix` and a unique suffix):
/// `BUCKETS` buckets, one client slot, `threads` workers to start with (at most
/// `MAX_WORKERS`), the limits `limits`, backlog sharing on.
fn library_server(prefix: &str, threads: u32, limits: Limits) -> (Server, String) {
    let name = server::unique_name(prefix);
    let server = Server::start(ServerConfig {
        name: name.clone(),
        buckets: BUCKETS as usize,
        clients: 1,
        threads,
        max_threads: MAX_WORKERS,
        limits,
        log: false,
        share_backlog: Some(true),
        ..ServerConfig::default()
    })
    .unwrap();
    (server, name)
}

/// Runs `actions` (maximum sizes added) through `target`, a client in slot `slot` of a server
/// with `threads` workers to start with, against the model: every answer checked, then every
/// key of the pool read back through `e` (the same client, or the engine it is), present with
/// the model's value or absent as in the model. Returns the model's keys, sorted.
fn check_served(
    e: &dyn Engine,
    target: &dyn Target,
    slot: u32,
    pool: &[model::KeySpec],
    actions: &[Action],
    threads: u32,
    limits: Limits,
) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let (pool, actions) = &model::with_maximum_sizes(pool, actions);
    prop_assert_eq!(e.limits(), limits);
    let keys = model::resolve_keys(pool, limits);
    let buckets = model::learn_buckets(e, &keys);
    let bucket_of = |k: &[u8]| buckets[k];
    let mine = |_: &[u8]| true;
    let mut c = Checker::new(keys, limits, threads, &bucket_of, &mine, true);
    c.slot = slot;
    c.run(target, actions)?;
    c.read_back(e)?;
    Ok(c.model_keys())
}

/// Run `actions` through a library server over real shared memory with `threads` workers to
/// start with; the server ends holding what the model holds.
fn run_on_server(
    pool: &[model::KeySpec],
    actions: &[Action],
    threads: u32,
    limits: Limits,
) -> Result<(), TestCaseError> {
    let (server, name) = library_server("pt", threads, limits);
    let client = Client::connect(&record::patient(&name)).unwrap();
    let want = check_served(
        &client,
        &client,
        client.slot(),
        pool,
        actions,
        threads,
        limits,
    )?;
    let mut all = client.keys().unwrap();
    all.sort();
    prop_assert_eq!(&all, &want);
    prop_assert_eq!(client.stray_responses(), 0);
    drop(client);
    prop_assert_eq!(server.len(), want.len());
    server.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The store alone against the model: every answer, the entry count and the memory
    /// charged after every operation, and the final contents.
    #[test]
    fn store_matches_hashmap(
        pool in model::pool(),
        actions in proptest::collection::vec(model::action(), 0..200),
    ) {
        run_on_store(&pool, &actions, SMALL)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random pipelined batches through a library server over shared memory (small limits),
    /// with worker threads started and stopped in between: every answer as the model allows.
    #[test]
    fn served_store_matches_hashmap(
        pool in model::pool(),
        actions in proptest::collection::vec(model::action(), 1..150),
        threads in 1..4u32,
    ) {
        run_on_server(&pool, &actions, threads, SMALL)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    /// The same at the default limits (4 KiB keys, 1 MiB values, maximum sizes included).
    #[test]
    fn served_store_at_default_limits(
        pool in model::pool(),
        actions in proptest::collection::vec(model::action(), 1..40),
        threads in 1..3u32,
    ) {
        run_on_server(&pool, &actions, threads, DEFAULT_LIMITS)?;
    }
}

/// The generated actions reach every answer the store gives (each kind at least once over
/// a few dozen runs), complete full scans, and hold maximum-size keys and values; so a
/// property that passes has checked all of them.
#[test]
fn actions_reach_every_answer() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = (
        model::pool(),
        proptest::collection::vec(model::action(), 100..200),
    );
    let mut seen = model::Coverage::default();
    let mut max_key = false;
    for _ in 0..40 {
        let (pool, actions) = strategy.new_tree(&mut runner).unwrap().current();
        max_key |= pool.iter().any(|k| matches!(k, model::KeySpec::Max(_)));
        seen.add(run_on_store(&pool, &actions, SMALL).unwrap());
    }
    eprintln!("{seen:?}");
    assert!(max_key, "no maximum-size key");
    assert!(seen.scans > 10, "{} full scans", seen.scans);
    let missing = seen.missing(&[
        model::KEY_VALUE_ANSWERS,
        &["entries", "refused: bad bucket"],
    ]);
    assert!(missing.is_empty(), "no {missing:?}: {seen:?}");
    // A maximum-size key with a maximum-size value costs what the store charges for it.
    let store = Store::new(1, u64::MAX).unwrap();
    let (k, v) = (model::fill(64, 1), model::fill(4096, 2));
    store.write(&k).insert(&v).unwrap();
    assert_eq!(store.memory_used(), entry_cost(64, 4096));
}
