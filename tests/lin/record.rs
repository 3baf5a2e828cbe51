//! Recording key-value histories from real clients, for the linearizability checker
//! (`shmkv::lincheck`): a child-process role that runs random inserts, reads and deletes on a
//! small shared key set from several threads and prints one line per call with its invoke and
//! return times on `CLOCK_MONOTONIC`. Included with `#[path]` by `tests/linearizability.rs`
//! and `examples/linearizability.rs`.
#![allow(dead_code)]

use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::lincheck::{Call, KvOp};
use shmkv::protocol::Op;
use std::io::Write;

/// Nanoseconds of `CLOCK_MONOTONIC`, one clock for every process of the machine (Linux).
/// `std::time::Instant` reads the same clock but cannot be compared across processes.
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// xorshift64*: deterministic per seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one recording process does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Server name.
    pub name: String,
    /// This process's number (part of every value it writes, and of the client numbers).
    pub process: u64,
    /// Threads, sharing one connection.
    pub threads: u64,
    /// Calls per thread.
    pub ops: u64,
    /// Keys `0..keys`, shared by every process.
    pub keys: u64,
    /// Largest pipelined batch (1: every call synchronous).
    pub batch: u64,
    /// Every this many calls, thread 0 starts a worker thread or stops one (0: never).
    pub thread_changes: u64,
    /// Seed.
    pub seed: u64,
}

impl Role {
    /// The role as one argument string.
    pub fn spec(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {}",
            self.name,
            self.process,
            self.threads,
            self.ops,
            self.keys,
            self.batch,
            self.thread_changes,
            self.seed
        )
    }

    /// Parse [`Role::spec`]'s output.
    pub fn parse(s: &str) -> Role {
        let f: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(f.len(), 8, "bad role {s:?}");
        let n = |i: usize| f[i].parse::<u64>().expect("bad role number");
        Role {
            name: f[0].to_string(),
            process: n(1),
            threads: n(2),
            ops: n(3),
            keys: n(4),
            batch: n(5),
            thread_changes: n(6),
            seed: n(7),
        }
    }

    /// Run against the server, returning every call. Values are unique: process, thread and
    /// a counter. Panics on any error from the server.
    pub fn run(&self) -> Vec<Call> {
        let client = Client::connect(&ClientConfig::new(&self.name)).expect("connect");
        let calls = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.threads)
                .map(|t| {
                    let client = &client;
                    s.spawn(move || self.run_thread(client, t))
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a recording thread panicked"))
                .collect()
        });
        drop(client);
        calls
    }

    fn run_thread(&self, client: &Client, t: u64) -> Vec<Call> {
        let who = self.process * 1000 + t;
        let mut rng = Rng::new(self.seed ^ who.wrapping_mul(0xA076_1D64_78BD_642F));
        let mut calls = Vec::with_capacity(self.ops as usize);
        let mut counter = 0u64;
        let mut started = false;
        while (calls.len() as u64) < self.ops {
            if t == 0
                && self.thread_changes > 0
                && counter % self.thread_changes == 0
                && counter > 0
            {
                if started {
                    client.stop_thread().expect("threads stop");
                } else {
                    client.start_threads(1).expect("threads start");
                }
                started = !started;
            }
            let n = (1 + rng.below(self.batch)).min(self.ops - calls.len() as u64);
            let ops: Vec<KvOp> = (0..n)
                .map(|_| {
                    let key = rng.below(self.keys);
                    counter += 1;
                    match rng.below(10) {
                        0..=3 => KvOp::Insert {
                            key,
                            value: (self.process + 1) << 48 | t << 32 | counter,
                        },
                        4..=7 => KvOp::Read { key },
                        _ => KvOp::Delete { key },
                    }
                })
                .collect();
            let wire: Vec<Op> = ops
                .iter()
                .map(|o| match *o {
                    KvOp::Insert { key, value } => Op::Insert { key, value },
                    KvOp::Read { key } => Op::Read { key },
                    KvOp::Delete { key } => Op::Delete { key },
                })
                .collect();
            let invoke = monotonic_nanos();
            let tickets = client.submit_all(&wire).expect("submit");
            for (op, ticket) in ops.into_iter().zip(tickets) {
                let outcome = client.wait(ticket).expect("wait");
                let ret = monotonic_nanos();
                let output = match outcome {
                    Outcome::Done | Outcome::NotFound => None,
                    Outcome::Value(v) | Outcome::Replaced(v) => Some(v),
                    other => panic!("{op}: unexpected answer {other:?}"),
                };
                calls.push(Call::new(who, op, output, invoke, ret));
            }
        }
        calls
    }
}

/// One call as a line: `client op key value output invoke return` (`-` for none).
pub fn format_call(c: &Call) -> String {
    let (op, key, value) = match c.op {
        KvOp::Insert { key, value } => ("i", key, value.to_string()),
        KvOp::Read { key } => ("r", key, "-".to_string()),
        KvOp::Delete { key } => ("d", key, "-".to_string()),
    };
    let output = c.output.map_or("-".to_string(), |v| v.to_string());
    let ret = c.ret.map_or("-".to_string(), |v| v.to_string());
    format!(
        "{} {op} {key} {value} {output} {} {ret}",
        c.client, c.invoke
    )
}

/// Parse [`format_call`]'s output.
pub fn parse_call(line: &str) -> Option<Call> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 7 {
        return None;
    }
    let opt = |s: &str| -> Option<Option<u64>> {
        if s == "-" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let key: u64 = f[2].parse().ok()?;
    let op = match f[1] {
        "i" => KvOp::Insert {
            key,
            value: f[3].parse().ok()?,
        },
        "r" => KvOp::Read { key },
        "d" => KvOp::Delete { key },
        _ => return None,
    };
    Some(Call {
        client: f[0].parse().ok()?,
        op,
        output: opt(f[4])?,
        invoke: f[5].parse().ok()?,
        ret: opt(f[6])?,
    })
}

/// The role's entry point in a child process: run, print every call, flush.
pub fn run_child(spec: &str) {
    let calls = Role::parse(spec).run();
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for c in &calls {
        writeln!(out, "{}", format_call(c)).unwrap();
    }
    out.flush().unwrap();
}

/// Pairs of calls on one key by different processes whose intervals overlap (a history
/// without any checks little).
pub fn overlapping_pairs(calls: &[Call]) -> usize {
    let mut by_key: std::collections::HashMap<u64, Vec<&Call>> = Default::default();
    for c in calls {
        by_key.entry(c.op.key()).or_default().push(c);
    }
    let mut n = 0;
    for v in by_key.values_mut() {
        v.sort_by_key(|c| c.invoke);
        for (i, a) in v.iter().enumerate() {
            let end = a.ret.unwrap_or(u64::MAX);
            for b in &v[i + 1..] {
                if b.invoke > end {
                    break;
                }
                if b.client / 1000 != a.client / 1000 {
                    n += 1;
                }
            }
        }
    }
    n
}
