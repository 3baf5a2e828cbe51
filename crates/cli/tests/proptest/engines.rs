//! The same property through `shmkv::engine`, on all three engines: shmkv's shared memory
//! (`shm://NAME`, a library server, every action), one real `redis-server` (`redis://`) and a
//! three-master Redis Cluster (`redis-cluster://`), both with the actions Redis has
//! ([`Action::for_redis`]: every key-value operation, len, full scans, pipelined batches).
//! Every answer is checked against the `HashMap` model by [`Checker`]; on Redis a full scan
//! must return every key present throughout at least once (shmkv: exactly once), and the
//! database must end as the model (read back through the engine, counted by each node's own
//! `DBSIZE`, and walked by a full scan).
//!
//! One Redis server (or cluster) serves every case of a test, flushed (`FLUSHALL` on every
//! master) before each case; the engine connects once per test.

use crate::model::{self, Action, BUCKETS, Checker, Coverage, EngineTarget, KeySpec, SMALL};
use crate::record;
use crate::{check_served, library_server};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shmkv::engine::redis::REDIS_LIMITS;
use shmkv::engine::{self, Engine};
use shmkv_testkit::redis::{RedisCluster, RedisServer};
use std::cell::RefCell;
use std::collections::HashSet;

/// Cases per Redis engine.
const REDIS_CASES: u32 = 48;
/// Most steps a full scan of one Redis node may take: its table has at most 16 buckets for
/// the pool's 9 keys, and a step visits at least one (generous: a rehash may be under way).
const REDIS_STEPS_PER_NODE: u64 = 64;

/// Every key, by a full scan through `e` (each once, sorted; fails after `max_steps` steps).
pub fn full_scan(e: &dyn Engine, max_steps: u64) -> Vec<Vec<u8>> {
    let (mut cursor, mut keys, mut steps) = (0, HashSet::new(), 0);
    loop {
        let (next, got) = e.scan(cursor, 3).unwrap();
        keys.extend(got);
        steps += 1;
        assert!(steps <= max_steps, "scan not done after {steps} steps");
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut keys: Vec<_> = keys.into_iter().collect();
    keys.sort();
    keys
}

/// Runs `actions` through the shared-memory engine on a fresh library server (small limits,
/// `threads` workers): every action, the table ending as the model.
fn run_on_shm_engine(
    pool: &[KeySpec],
    actions: &[Action],
    threads: u32,
) -> Result<(), TestCaseError> {
    let (server, name) = library_server("pte", threads, SMALL);
    let patient = record::patient(&name);
    let e = engine::connect_with(&format!("shm://{name}"), |c| {
        let mut c = c.timeout(record::PATIENCE).slot(0);
        c.attach_timeout = patient.attach_timeout;
        c
    })
    .unwrap();
    prop_assert_eq!(e.kind(), "shm");
    let keys = check_served(&*e, &EngineTarget(&*e), 0, pool, actions, threads, SMALL)?;
    prop_assert_eq!(e.len().unwrap(), keys.len() as u64);
    prop_assert_eq!(&full_scan(&*e, BUCKETS), &keys);
    drop(e);
    prop_assert_eq!(server.len(), keys.len());
    server.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The shared-memory engine (`engine::connect("shm://…")`) against the model, with every
    /// action: print, thread changes, stats and the size refusals included.
    #[test]
    fn shm_engine_matches_hashmap(
        pool in model::pool(),
        actions in proptest::collection::vec(model::action(), 1..150),
        threads in 1..4u32,
    ) {
        run_on_shm_engine(&pool, &actions, threads)?;
    }
}

/// A Redis database under test: a server or a cluster, flushed and counted through each
/// node's own connection (not the engine's).
trait Database {
    fn url(&self) -> String;
    fn flushall(&self);
    fn dbsize(&self) -> u64;
    /// Nodes (each a master).
    fn nodes(&self) -> u64;
    /// Nodes holding at least one key.
    fn holding(&self) -> u64;
}

impl Database for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
    fn flushall(&self) {
        RedisServer::flushall(self)
    }
    fn dbsize(&self) -> u64 {
        RedisServer::dbsize(self)
    }
    fn nodes(&self) -> u64 {
        1
    }
    fn holding(&self) -> u64 {
        u64::from(self.dbsize() > 0)
    }
}

impl Database for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }
    fn flushall(&self) {
        RedisCluster::flushall(self)
    }
    fn dbsize(&self) -> u64 {
        RedisCluster::dbsize(self)
    }
    fn nodes(&self) -> u64 {
        self.nodes().len() as u64
    }
    fn holding(&self) -> u64 {
        self.nodes().iter().filter(|n| n.dbsize() > 0).count() as u64
    }
}

/// One case on a Redis engine: the database flushed, the Redis actions run through the
/// engine and checked, the database ending as the model. What the checker saw, and how many
/// nodes ended holding keys.
fn run_on_redis(
    db: &dyn Database,
    e: &dyn Engine,
    pool: &[KeySpec],
    actions: &[Action],
) -> Result<(Coverage, u64), TestCaseError> {
    db.flushall();
    let actions: Vec<Action> = actions.iter().filter(|a| a.for_redis()).cloned().collect();
    let (pool, actions) = &model::with_maximum_sizes(pool, &actions);
    let keys = model::resolve_keys(pool, SMALL);
    // Print and lone scans are filtered out: buckets mean nothing on Redis.
    let no_bucket = |_: &[u8]| -> u64 { unreachable!("no buckets on Redis") };
    let mine = |_: &[u8]| true;
    let mut c = Checker::new(keys, SMALL, 1, &no_bucket, &mine, true);
    c.scan_once = false;
    c.max_scan_steps = REDIS_STEPS_PER_NODE * db.nodes();
    c.run(&EngineTarget(e), actions)?;
    c.read_back(e)?;
    let n = c.model.kv.map.len() as u64;
    prop_assert_eq!(e.len().unwrap(), n);
    prop_assert_eq!(db.dbsize(), n);
    prop_assert_eq!(full_scan(e, c.max_scan_steps), c.model_keys());
    Ok((c.coverage, db.holding()))
}

/// [`REDIS_CASES`] random cases on `db` through one engine; then the answers seen must cover
/// every kind a Redis engine gives (so the property checked all of them), and some case
/// must have ended with keys on every node (in a cluster: len and scan crossed masters).
fn redis_property(db: &dyn Database, kind: &str) {
    let e = engine::connect(&db.url()).unwrap();
    assert_eq!(e.kind(), kind);
    assert_eq!(e.limits(), REDIS_LIMITS);
    let seen = RefCell::new((Coverage::default(), 0));
    let mut runner = TestRunner::new(Config {
        cases: REDIS_CASES,
        ..Config::default()
    });
    let strategy = (
        model::pool(),
        proptest::collection::vec(model::action(), 1..150),
    );
    let result = runner.run(&strategy, |(pool, actions)| {
        let (c, holding) = run_on_redis(db, &*e, &pool, &actions)?;
        let mut seen = seen.borrow_mut();
        seen.0.add(c);
        seen.1 = seen.1.max(holding);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{kind}: {e}");
    }
    let (seen, holding) = seen.into_inner();
    eprintln!("{kind}: {seen:?}; at most {holding} nodes holding keys");
    assert!(seen.scans > 10, "{kind}: {} full scans", seen.scans);
    assert_eq!(
        holding,
        db.nodes(),
        "{kind}: no case ended with keys on every node"
    );
    let missing = seen.missing(&[model::KEY_VALUE_ANSWERS]);
    assert!(missing.is_empty(), "{kind}: no {missing:?}: {seen:?}");
    for answer in ["entries", "threads", "stats"] {
        assert!(!seen.answers.contains_key(answer), "{kind}: {answer} sent");
    }
}

/// One `redis-server` through the Redis engine against the model.
#[test]
fn redis_engine_matches_hashmap() {
    let db = RedisServer::start();
    redis_property(&db, "redis");
}

/// A three-master Redis Cluster through the cluster engine against the model: keys spread
/// over the masters, len summed over them, scans walking them one after the other.
#[test]
fn redis_cluster_engine_matches_hashmap() {
    let db = RedisCluster::start();
    redis_property(&db, "redis-cluster");
}
