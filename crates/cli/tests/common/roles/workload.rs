//! Workloads and what checks them: a small random generator, a pipelining workload's
//! batches, the sequential model its answers are checked against, what a killed client may
//! have left in the table, and the checked run of batches.

use shmkv::client::{Client, Outcome};
use shmkv::wire::Op;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// xorshift64*: small, deterministic, good enough to pick operations and offsets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// The longest value a workload writes: under a server started with `--max-value 1K` (the
/// smallest rings, 64 KiB each), which the fault tests use to keep rings small.
pub const MAX_WORKLOAD_VALUE: usize = 1000;

/// Values a workload often writes, so that cas finds what it expects now and then and add
/// finds integers (the last one overflows with a large delta).
const COMMON: [&[u8]; 7] = [
    b"",
    b"0",
    b"42",
    b"-7",
    b"a",
    b"007",
    b"9223372036854775800",
];

/// Batches of random operations (insert, read, delete, insert-new, cas, add) over keys
/// `base..base + keys`, a pure function of the fields: the parent regenerates what a child sent
/// from the same description. Keys are byte strings ([`Workload::key`]): binary ones (the
/// number's 8 little-endian bytes) and text ones; values are empty to
/// [`MAX_WORKLOAD_VALUE`] bytes long, binary or decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub base: u64,
    pub keys: u64,
    pub seed: u64,
    pub batch: usize,
}

impl Workload {
    /// Key number `k` as bytes: 8 binary bytes, or (one in four) 24 bytes of text; the two
    /// lengths differ, so no two numbers share a key.
    pub fn key(k: u64) -> Vec<u8> {
        if k % 4 == 3 {
            format!("key:{k:020}").into_bytes()
        } else {
            k.to_le_bytes().to_vec()
        }
    }

    fn value(rng: &mut Rng) -> Vec<u8> {
        match rng.below(10) {
            0..=3 => COMMON[rng.below(COMMON.len() as u64) as usize].to_vec(),
            4..=6 => {
                let n = 1 + rng.below(16) as usize;
                rng.bytes(n)
            }
            7..=8 => {
                let n = rng.below(256) as usize;
                rng.bytes(n)
            }
            _ => {
                let n = rng.below(MAX_WORKLOAD_VALUE as u64 + 1) as usize;
                rng.bytes(n)
            }
        }
    }

    /// Batch number `b`, each operation with its key's number.
    pub fn batch_keyed(&self, b: u64) -> Vec<(u64, Op)> {
        let mut rng = Rng::new(self.seed ^ b.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5eed);
        (0..self.batch)
            .map(|_| {
                let k = self.base + rng.below(self.keys);
                let key = Workload::key(k);
                let op = match rng.below(20) {
                    0..=7 => Op::Insert {
                        key,
                        value: Workload::value(&mut rng),
                    },
                    8..=11 => Op::Read { key },
                    12..=13 => Op::Delete { key },
                    14 => Op::InsertNew {
                        key,
                        value: Workload::value(&mut rng),
                    },
                    15..=16 => Op::Cas {
                        key,
                        expected: (rng.below(3) > 0)
                            .then(|| COMMON[rng.below(COMMON.len() as u64) as usize].to_vec()),
                        new: Workload::value(&mut rng),
                    },
                    17..=18 => Op::Add {
                        key,
                        delta: rng.below(200) as i64 - 100,
                    },
                    _ => Op::Add {
                        key,
                        delta: i64::MAX - rng.below(16) as i64,
                    },
                };
                (k, op)
            })
            .collect()
    }

    /// Batch number `b`.
    pub fn batch(&self, b: u64) -> Vec<Op> {
        self.batch_keyed(b).into_iter().map(|(_, op)| op).collect()
    }

    /// `name slot base keys seed batch` → the role's argument string (slot `-`: any).
    pub fn spec(&self, name: &str, slot: Option<u32>) -> String {
        format!(
            "pipeline {name} {} {} {} {} {}",
            slot.map_or("-".to_string(), |s| s.to_string()),
            self.base,
            self.keys,
            self.seed,
            self.batch
        )
    }
}

#[path = "../kv_model.rs"]
mod kv_model;
pub use kv_model::KvModel as Model;

/// `what` shortened to `max` characters (operations may carry values of a kilobyte).
pub fn short(what: &impl std::fmt::Debug, max: usize) -> String {
    let s = format!("{what:?}");
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// What the table may hold for the keys of workload `w` when the client that ran it reported
/// `acked` complete batches (0..acked) and then died: every batch before is in, and of batch
/// `acked` some prefix (the server executes what reached the ring, in order). Per key number,
/// every value it may have (`None`: absent).
pub fn possible_states(w: &Workload, acked: u64) -> HashMap<u64, Vec<Option<Vec<u8>>>> {
    let mut m = Model::default();
    for b in 0..acked {
        for op in w.batch(b) {
            m.apply(&op);
        }
    }
    let mut out: HashMap<u64, Vec<Option<Vec<u8>>>> = (w.base..w.base + w.keys)
        .map(|k| (k, vec![m.map.get(&Workload::key(k)).cloned()]))
        .collect();
    for (k, op) in w.batch_keyed(acked) {
        m.apply(&op);
        let now = m.map.get(&Workload::key(k)).cloned();
        let seen = out.get_mut(&k).expect("keys of the workload");
        if !seen.contains(&now) {
            seen.push(now);
        }
    }
    out
}

/// Read every key of `w` through `c` (pipelined) and check it against
/// [`possible_states`]`(w, acked)`. Returns the number of keys checked.
pub fn verify_left_behind(c: &Client, w: &Workload, acked: u64) -> Result<usize, String> {
    let states = possible_states(w, acked);
    let keys: Vec<u64> = (w.base..w.base + w.keys).collect();
    let ops: Vec<Op> = keys
        .iter()
        .map(|&k| Op::Read {
            key: Workload::key(k),
        })
        .collect();
    let tickets = c
        .submit_all(&ops)
        .map_err(|e| format!("verify submit: {e}"))?;
    for (key, t) in keys.iter().zip(tickets) {
        let got = match c.wait(t).map_err(|e| format!("verify read {key}: {e}"))? {
            Outcome::Value(v) => Some(v),
            Outcome::NotFound => None,
            o => return Err(format!("verify read {key}: unexpected {}", short(&o, 200))),
        };
        let allowed = &states[key];
        if !allowed.contains(&got) {
            return Err(format!(
                "key {key}: holds {}, but after {acked} acknowledged batches it may only hold one of {}",
                short(&got, 200),
                short(allowed, 600)
            ));
        }
    }
    Ok(keys.len())
}

/// Run batches `first..` of `w` through `c`, checking every answer against `model`, until
/// `stop` is set or `max` batches ran; after each complete batch call `acked(b)`. Returns the
/// number of batches run, or what went wrong.
pub fn run_checked(
    c: &Client,
    w: &Workload,
    model: &mut Model,
    first: u64,
    max: u64,
    stop: &AtomicBool,
    mut acked: impl FnMut(u64),
) -> Result<u64, String> {
    let mut b = first;
    while b < first + max && !stop.load(Ordering::Relaxed) {
        let ops = w.batch(b);
        let tickets = c
            .submit_all(&ops)
            .map_err(|e| format!("batch {b}: submit: {e}"))?;
        for (i, (op, t)) in ops.iter().zip(tickets).enumerate() {
            let got = c
                .wait(t)
                .map_err(|e| format!("batch {b} op {i} {}: {e}", short(op, 200)))?;
            let want = model.apply(op);
            if got != want {
                return Err(format!(
                    "batch {b} op {i} {}: got {}, the model says {} (a stale or wrong answer)",
                    short(op, 200),
                    short(&got, 200),
                    short(&want, 200)
                ));
            }
        }
        acked(b);
        b += 1;
    }
    Ok(b - first)
}
