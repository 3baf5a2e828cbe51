//! Property tests: the table, and the table served over real shared memory, against a
//! `std::collections::HashMap` oracle.
#![cfg(not(loom))]

mod binary;
#[path = "../common/mod.rs"]
mod common;

use proptest::prelude::*;
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::protocol::{ErrorCode, Op};
use shmkv::server::{Server, ServerConfig};
use shmkv::stats::{SlotStats, Stats};
use shmkv::table::Table;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// One step of a test: an operation, or a batch boundary (submit what is queued, then wait).
#[derive(Debug, Clone)]
enum Action {
    Op(Op),
    Flush,
}

const KEYS: u64 = 16;
const BUCKETS: usize = 8;

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..KEYS, any::<u64>()).prop_map(|(key, value)| Action::Op(Op::Insert { key, value })),
        4 => (0..KEYS).prop_map(|key| Action::Op(Op::Read { key })),
        2 => (0..KEYS).prop_map(|key| Action::Op(Op::Delete { key })),
        1 => (0..BUCKETS as u64 + 2).prop_map(|bucket| Action::Op(Op::Print { bucket })),
        1 => (1..3u32).prop_map(|n| Action::Op(Op::ThStart { n })),
        1 => Just(Action::Op(Op::ThStop)),
        1 => Just(Action::Op(Op::Stats)),
        2 => Just(Action::Flush),
    ]
}

/// The oracle: what the served table must answer, given the ops of one client in order.
struct Model {
    map: HashMap<u64, u64>,
    workers: u32,
    max_workers: u32,
}

impl Model {
    fn apply(&mut self, op: Op, bucket_of: &dyn Fn(u64) -> usize) -> Outcome {
        match op {
            Op::Insert { key, value } => match self.map.insert(key, value) {
                None => Outcome::Done,
                Some(p) => Outcome::Replaced(p),
            },
            Op::Read { key } => self
                .map
                .get(&key)
                .map_or(Outcome::NotFound, |v| Outcome::Value(*v)),
            Op::Delete { key } => self
                .map
                .remove(&key)
                .map_or(Outcome::NotFound, Outcome::Value),
            Op::Print { bucket } => {
                if bucket >= BUCKETS as u64 {
                    return Outcome::Refused(ErrorCode::BadBucket {
                        bucket,
                        buckets: BUCKETS as u64,
                    });
                }
                let mut e: Vec<(u64, u64)> = self
                    .map
                    .iter()
                    .filter(|(k, _)| bucket_of(**k) == bucket as usize)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                e.sort_unstable();
                Outcome::Entries(e)
            }
            Op::ThStart { n } => {
                if self.workers + n > self.max_workers {
                    Outcome::Refused(ErrorCode::ThreadLimit {
                        current: self.workers,
                        max: self.max_workers,
                    })
                } else {
                    self.workers += n;
                    Outcome::Threads(self.workers)
                }
            }
            Op::ThStop => {
                if self.workers > 1 {
                    self.workers -= 1;
                    Outcome::Threads(self.workers)
                } else {
                    Outcome::Refused(ErrorCode::LastWorker)
                }
            }
            Op::Quit => Outcome::Done,
            // What the model knows of the statistics (see `same`).
            Op::Stats => Outcome::Stats(Box::new(Stats {
                entries: self.map.len() as u64,
                buckets: BUCKETS as u64,
                slots: vec![SlotStats {
                    slot: 0,
                    workers: u64::from(self.workers),
                    ..SlotStats::default()
                }],
                ..Stats::default()
            })),
        }
    }
}

fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pt-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The table alone against a HashMap: every return value and the final contents.
    #[test]
    fn table_matches_hashmap(ops in proptest::collection::vec(action(), 0..200)) {
        let t: Table<u64, u64> = Table::new(BUCKETS).unwrap();
        let mut m = HashMap::new();
        for a in ops {
            match a {
                Action::Op(Op::Insert { key, value }) => prop_assert_eq!(t.insert(key, value), m.insert(key, value)),
                Action::Op(Op::Read { key }) => prop_assert_eq!(t.get(&key), m.get(&key).copied()),
                Action::Op(Op::Delete { key }) => prop_assert_eq!(t.remove(&key), m.remove(&key)),
                _ => {}
            }
            prop_assert_eq!(t.len(), m.len());
        }
        for (k, v) in &m {
            prop_assert_eq!(t.get(k), Some(*v));
        }
    }

    /// Random pipelined batches through a real server over shared memory, with worker threads
    /// started and stopped in between: every response equals the HashMap oracle's.
    #[test]
    fn served_table_matches_hashmap(ops in proptest::collection::vec(action(), 1..120), threads in 1..4u32) {
        let name = unique_name();
        let server = Server::start(ServerConfig {
            name: name.clone(),
            buckets: BUCKETS,
            clients: 1,
            threads,
            max_threads: 6,
            ring_capacity: 16,
            log: false,
            share_backlog: Some(true),
            ..ServerConfig::default()
        }).unwrap();
        let client = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
        // The oracle needs the server's bucket function: learn it from Print of a lone key.
        let mut bucket_map = HashMap::new();
        for k in 0..KEYS {
            client.insert(k, 0).unwrap();
            for b in 0..BUCKETS as u64 {
                if client.print(b).unwrap().iter().any(|(kk, _)| *kk == k) {
                    bucket_map.insert(k, b as usize);
                }
            }
            client.delete(k).unwrap();
        }
        let bucket_of = |k: u64| bucket_map[&k];
        let mut model = Model { map: HashMap::new(), workers: threads, max_workers: 6 };
        let mut batch = Vec::new();
        let flush = |batch: &mut Vec<Op>, model: &mut Model| -> Result<(), TestCaseError> {
            let tickets = client.submit_all(batch).unwrap();
            for (op, t) in batch.iter().zip(tickets) {
                let mut got = client.wait(t).unwrap();
                if let Outcome::Entries(e) = &mut got {
                    e.sort_unstable();
                }
                let want = model.apply(*op, &bucket_of);
                if let (Outcome::Stats(g), Outcome::Stats(w)) = (&got, &want) {
                    // A Stats follows every earlier request of the client: exact entries and
                    // worker count, whatever the number of workers.
                    prop_assert_eq!(
                        (g.entries, g.buckets, g.slots[0].workers),
                        (w.entries, w.buckets, w.slots[0].workers)
                    );
                } else {
                    prop_assert_eq!(got, want, "op {:?}", op);
                }
            }
            batch.clear();
            Ok(())
        };
        for a in ops {
            match a {
                Action::Op(op) => batch.push(op),
                Action::Flush => flush(&mut batch, &mut model)?,
            }
        }
        flush(&mut batch, &mut model)?;
        prop_assert_eq!(client.stray_responses(), 0);
        drop(client);
        prop_assert_eq!(server.len(), model.map.len());
        server.shutdown();
    }
}
