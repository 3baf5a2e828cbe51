//! What every property test shares: the generated actions (every operation of the wire
//! protocol, on a pool of binary keys with binary values, maximum sizes included), the
//! `HashMap<Vec<u8>, Vec<u8>>` model, and the [`Checker`] that runs actions in pipelined
//! batches against a [`Target`] (the store itself, or a client of a real server) and checks
//! every answer.
//!
//! # What is checked, and how exactly
//!
//! A client's operations on one key take effect in the order it sent them, however many
//! workers serve it; operations on different keys may run in parallel, and Len, Scan and Print
//! are ordered with nothing (a worker hands the ring on before it executes them). So within a
//! batch (requests submitted together, then all answers awaited):
//!
//! - key operations must answer exactly what the model answers when it applies the batch in
//!   order (different keys commute);
//! - Stats and the thread operations are ordered with everything (they run with the ring
//!   held, Stats once every earlier request is answered): exact too — the worker count, and,
//!   when the client is alone on the server, the entry count and the memory in use;
//! - Len, Scan and Print may see each key in any state it takes during the batch: Len lies
//!   between the keys present throughout the batch and the keys present at some moment; Print
//!   shows each key of its bucket at most once, with a value it held during the batch, and
//!   every key present throughout;
//! - a full scan (cursor 0 until the answer's cursor is 0, one step per batch, other
//!   operations in between) meets Redis SCAN's guarantee: it returns every key present from
//!   the batch of its first step to the batch of its last at least once, only keys present at
//!   some moment of that span, and it terminates (in at most as many steps as buckets). On
//!   shmkv it returns each key at most once ([`Checker::scan_once`]); Redis may return a key
//!   more than once, and its steps are bounded by [`Checker::max_scan_steps`] instead.
//!
//! A batch of one is exact in every respect; the store target runs every action alone.
//!
//! The same checker runs through [`shmkv::engine::Engine`] ([`EngineTarget`]): shmkv's shared
//! memory with every action, and Redis with the actions it has ([`Action::for_redis`]).
#![allow(dead_code)]

use shmkv::client::Outcome;
use shmkv::store::entry_cost;
use shmkv::wire::{ErrorCode, Limits, Op};

mod actions;
mod checker;
mod targets;

pub use actions::*;
pub use checker::*;
pub use targets::*;

/// Buckets of every table under test (few, so that keys share them and scans take steps).
pub const BUCKETS: u64 = 8;
/// Most worker threads per client of every server under test.
pub const MAX_WORKERS: u32 = 6;
/// The small limits most tests run with, so that maximum-size keys and values are cheap.
pub const SMALL: Limits = Limits {
    max_key: 64,
    max_value: 4096,
};
/// Keys in a pool at most (actions name keys by index, modulo the pool's size).
pub const POOL: usize = 8;

use crate::kv_model::KvModel;
pub use crate::kv_model::canonical_i64 as decimal;

/// The model of one client's view: its keys and their values, its worker count.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The keys and values, and the key-value operations on them.
    pub kv: KvModel,
    /// The client's worker threads.
    pub workers: u32,
}

impl Model {
    /// Apply an operation of the model (a key-value one, or a thread change); what the server
    /// must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::ThreadsStart { n } => {
                if self.workers + n > MAX_WORKERS {
                    Outcome::Refused(ErrorCode::ThreadLimit {
                        current: self.workers,
                        max: MAX_WORKERS,
                    })
                } else {
                    self.workers += n;
                    Outcome::Threads(self.workers)
                }
            }
            Op::ThreadsStop => {
                if self.workers > 1 {
                    self.workers -= 1;
                    Outcome::Threads(self.workers)
                } else {
                    Outcome::Refused(ErrorCode::LastWorker)
                }
            }
            key_value => self.kv.apply(key_value),
        }
    }

    /// The memory the store charges for the model's entries.
    pub fn memory(&self) -> u64 {
        self.kv
            .map
            .iter()
            .map(|(k, v)| entry_cost(k.len(), v.len()))
            .sum()
    }
}
