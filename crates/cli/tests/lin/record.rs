//! Recording key-value histories from real clients, for the linearizability checker
//! (`shmkv_testkit`): a child-process role that runs random operations of every key-value
//! kind (insert, read, delete, insert-new, cas, add) on a small shared key set from several
//! threads, and prints one line per call with its invoke and return times on
//! `CLOCK_MONOTONIC`. Included with `#[path]` by `tests/linearizability.rs`,
//! `tests/proptest/main.rs` and `examples/linearizability.rs`.
//!
//! A role runs against a shmkv server by its name (the library `Client`, each answer timed as
//! it arrives), or against any engine by its URL (`shmkv::engine::connect`: `shm://NAME`,
//! `redis://HOST:PORT`, `redis-cluster://…`; a batch is one `execute_all`, every answer of it
//! timed when the batch returns).
//!
//! Keys and values are binary: keys hold a space, a quote, 0x00 and 0xff; most values written
//! are unique to their call (process, thread, counter) and hold 0x00 (so no add result can
//! equal them); the others are decimal numbers (so adds count), numbers near `i64::MAX` (so
//! adds overflow), or empty.
#![allow(dead_code)]

use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::engine::{self, Engine};
use shmkv::wire::{ErrorCode, Op};
use shmkv_testkit::{Call, KvOp, Output};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// How long the tests' clients wait for a server that makes no progress (and for the
/// handshake) before they fail: long, because these tests check answers, not latency, and
/// a loaded machine (a debug build, two cores, other builds running) has stalled the default
/// second.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A client configuration for server `name` with [`PATIENCE`].
pub fn patient(name: &str) -> ClientConfig {
    let mut c = ClientConfig::new(name).timeout(PATIENCE);
    c.attach_timeout = PATIENCE;
    c
}

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
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Key number `i` of the shared key set: `k "i"` followed by 0x00 0xff.
pub fn key(i: u64) -> Vec<u8> {
    let mut k = format!("k \"{i}\"").into_bytes();
    k.extend_from_slice(&[0x00, 0xff]);
    k
}

/// Whether `v` is one of the values unique to the call that wrote it (they, and only they,
/// start with 0x00).
pub fn is_unique(v: &[u8]) -> bool {
    v.first() == Some(&0)
}

/// The wire operation of a checker operation.
pub fn wire_op(op: &KvOp) -> Op {
    match op.clone() {
        KvOp::Insert { key, value } => Op::Insert { key, value },
        KvOp::Read { key } => Op::Read { key },
        KvOp::Delete { key } => Op::Delete { key },
        KvOp::InsertNew { key, value } => Op::InsertNew { key, value },
        KvOp::Cas { key, expected, new } => Op::Cas { key, expected, new },
        KvOp::Add { key, delta } => Op::Add { key, delta },
    }
}

/// The checker's form of a key-value answer; `None` for any other answer (a refusal other
/// than add's two, or an answer that is no key-value operation's).
pub fn output_of(outcome: Outcome) -> Option<Output> {
    Some(match outcome {
        Outcome::Created => Output::Created,
        Outcome::Replaced(v) => Output::Replaced(v),
        Outcome::Value(v) => Output::Value(v),
        Outcome::NotFound => Output::NotFound,
        Outcome::Deleted(v) => Output::Deleted(v),
        Outcome::Exists(v) => Output::Exists(v),
        Outcome::Swapped => Output::Swapped,
        Outcome::Mismatch(v) => Output::Mismatch(v),
        Outcome::Number(n) => Output::Number(n),
        Outcome::Refused(ErrorCode::NotAnInteger) => Output::NotAnInteger,
        Outcome::Refused(ErrorCode::Overflow) => Output::Overflow,
        _ => return None,
    })
}

/// Whether `output` is one `op` may answer (its kind, not its value).
pub fn answers(op: &KvOp, output: &Output) -> bool {
    matches!(
        (op, output),
        (KvOp::Insert { .. }, Output::Created | Output::Replaced(_))
            | (KvOp::Read { .. }, Output::Value(_) | Output::NotFound)
            | (KvOp::Delete { .. }, Output::Deleted(_) | Output::NotFound)
            | (KvOp::InsertNew { .. }, Output::Created | Output::Exists(_))
            | (KvOp::Cas { .. }, Output::Swapped | Output::Mismatch(_))
            | (
                KvOp::Add { .. },
                Output::Number(_) | Output::NotAnInteger | Output::Overflow
            )
    )
}

/// What a role's threads share: a client of a shmkv server, or an engine.
pub enum Conn {
    /// The library client of the shmkv server of that name.
    Shm(Box<Client>),
    /// An engine, connected by URL.
    Engine(Box<dyn Engine>),
}

impl Conn {
    /// Connects to `target`: a URL (it holds `://`) through `shmkv::engine`, else the shmkv
    /// server of that name through the library client; both with [`PATIENCE`].
    pub fn connect(target: &str) -> Conn {
        if target.contains("://") {
            Conn::Engine(
                engine::connect_with(target, |c| {
                    let mut c = c.timeout(PATIENCE);
                    c.attach_timeout = PATIENCE;
                    c
                })
                .unwrap_or_else(|e| panic!("connect to {target}: {e}")),
            )
        } else {
            Conn::Shm(Box::new(
                Client::connect(&patient(target)).expect("connect"),
            ))
        }
    }

    /// Submits `ops` as one pipelined batch; each answer with the time it was seen returned
    /// (the client's: as each arrives; an engine's: when the whole batch has).
    pub fn batch(&self, ops: &[Op]) -> Vec<(Outcome, u64)> {
        match self {
            Conn::Shm(client) => {
                let tickets = client.submit_all(ops).expect("submit");
                tickets
                    .into_iter()
                    .map(|t| {
                        let outcome = client.wait(t).expect("wait");
                        (outcome, monotonic_nanos())
                    })
                    .collect()
            }
            Conn::Engine(e) => {
                let answers = e.execute_all(ops).expect("submit");
                let ret = monotonic_nanos();
                answers
                    .into_iter()
                    .map(|a| (a.expect("answer"), ret))
                    .collect()
            }
        }
    }

    /// Starts one more worker thread (`start`) or stops one (shmkv only).
    pub fn change_threads(&self, start: bool) {
        let op = if start {
            Op::ThreadsStart { n: 1 }
        } else {
            Op::ThreadsStop
        };
        match self.batch(&[op]).pop() {
            Some((Outcome::Threads(_), _)) => {}
            other => panic!("thread change answered {other:?}"),
        }
    }
}

/// What one recording process does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Server name, or an engine URL (see [`Conn::connect`]).
    pub name: String,
    /// This process's number (part of every unique value it writes, and of the client
    /// numbers).
    pub process: u64,
    /// Threads, sharing one connection.
    pub threads: u64,
    /// Calls per thread.
    pub ops: u64,
    /// Keys `key(0)..key(keys)`, shared by every process.
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

    /// Run against the server, returning every call. Panics on any error from the server
    /// and on any answer that is not its operation's.
    pub fn run(&self) -> Vec<Call> {
        let client = Conn::connect(&self.name);
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

    /// A value to write: unique (0x00, then process, thread and counter, with a quote and a
    /// space and 0xff), or a decimal number, one near `i64::MAX`, or empty.
    fn value(&self, rng: &mut Rng, t: u64, counter: u64) -> Vec<u8> {
        match rng.below(20) {
            0..=11 => {
                let mut v = vec![0x00];
                v.extend_from_slice(format!("p{} t{t} \"{counter}\"", self.process).as_bytes());
                v.push(0xff);
                v
            }
            12..=17 => (rng.below(200) as i64 - 100).to_string().into_bytes(),
            18 => (i64::MAX - rng.below(4) as i64).to_string().into_bytes(),
            _ => Vec::new(),
        }
    }

    fn run_thread(&self, client: &Conn, t: u64) -> Vec<Call> {
        let who = self.process * 1000 + t;
        let mut rng = Rng::new(self.seed ^ who.wrapping_mul(0xA076_1D64_78BD_642F));
        let mut calls = Vec::with_capacity(self.ops as usize);
        let mut counter = 0u64;
        let mut started = false;
        // The value this thread last saw at each key (what its cas expects).
        let mut seen: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        while (calls.len() as u64) < self.ops {
            if t == 0
                && self.thread_changes > 0
                && counter % self.thread_changes == 0
                && counter > 0
            {
                client.change_threads(!started);
                started = !started;
            }
            let n = (1 + rng.below(self.batch)).min(self.ops - calls.len() as u64);
            let ops: Vec<KvOp> = (0..n)
                .map(|_| {
                    let key = key(rng.below(self.keys));
                    counter += 1;
                    match rng.below(20) {
                        0..=3 => KvOp::Insert {
                            value: self.value(&mut rng, t, counter),
                            key,
                        },
                        4..=8 => KvOp::Read { key },
                        9..=10 => KvOp::Delete { key },
                        11..=12 => KvOp::InsertNew {
                            value: self.value(&mut rng, t, counter),
                            key,
                        },
                        13..=15 => KvOp::Cas {
                            expected: match rng.below(4) {
                                0 => None,
                                _ => seen.get(&key).cloned().flatten(),
                            },
                            new: self.value(&mut rng, t, counter),
                            key,
                        },
                        _ => KvOp::Add {
                            key,
                            delta: match rng.below(10) {
                                0 => i64::MAX,
                                1 => -(rng.below(1000) as i64),
                                _ => rng.below(10) as i64,
                            },
                        },
                    }
                })
                .collect();
            let wire: Vec<Op> = ops.iter().map(wire_op).collect();
            let invoke = monotonic_nanos();
            let got = client.batch(&wire);
            assert_eq!(got.len(), ops.len(), "answers to a batch");
            for (op, (outcome, ret)) in ops.into_iter().zip(got) {
                let output = output_of(outcome.clone())
                    .filter(|o| answers(&op, o))
                    .unwrap_or_else(|| panic!("{op}: unexpected answer {outcome:?}"));
                let now = match (&op, &output) {
                    (_, Output::Replaced(_) | Output::Created | Output::Swapped) => {
                        op.written().map(<[u8]>::to_vec)
                    }
                    (_, Output::Value(v) | Output::Exists(v)) => Some(v.clone()),
                    (_, Output::Deleted(_) | Output::NotFound) => None,
                    (_, Output::Mismatch(v)) => v.clone(),
                    (_, Output::Number(n)) => Some(n.to_string().into_bytes()),
                    (_, Output::NotAnInteger | Output::Overflow) => {
                        seen.get(op.key()).cloned().flatten()
                    }
                };
                seen.insert(op.key().to_vec(), now);
                calls.push(Call::new(who, op, output, invoke, ret));
            }
        }
        calls
    }
}

/// Bytes as one token: `x` and their hex digits (`x` alone: empty).
fn hex(v: &[u8]) -> String {
    let mut s = String::with_capacity(1 + 2 * v.len());
    s.push('x');
    for b in v {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parse [`hex`]'s token.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let d = s.strip_prefix('x')?;
    if d.len() % 2 != 0 {
        return None;
    }
    (0..d.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(d.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A value or absence as one token: [`hex`], or `-`.
fn maybe_hex(v: Option<&[u8]>) -> String {
    v.map_or("-".to_string(), hex)
}

/// Parse [`maybe_hex`]'s token.
fn maybe_unhex(s: &str) -> Option<Option<Vec<u8>>> {
    if s == "-" {
        Some(None)
    } else {
        unhex(s).map(Some)
    }
}

/// One call as a line: `client invoke return op key args... = output` (`-` for no return or
/// no answer; byte strings as [`hex`] tokens).
pub fn format_call(c: &Call) -> String {
    let op = match &c.op {
        KvOp::Insert { key, value } => format!("insert {} {}", hex(key), hex(value)),
        KvOp::Read { key } => format!("read {}", hex(key)),
        KvOp::Delete { key } => format!("delete {}", hex(key)),
        KvOp::InsertNew { key, value } => format!("insert-new {} {}", hex(key), hex(value)),
        KvOp::Cas { key, expected, new } => format!(
            "cas {} {} {}",
            hex(key),
            maybe_hex(expected.as_deref()),
            hex(new)
        ),
        KvOp::Add { key, delta } => format!("add {} {delta}", hex(key)),
    };
    let output = match &c.output {
        None => "-".to_string(),
        Some(Output::Created) => "created".to_string(),
        Some(Output::Replaced(v)) => format!("replaced {}", hex(v)),
        Some(Output::Value(v)) => format!("value {}", hex(v)),
        Some(Output::NotFound) => "not-found".to_string(),
        Some(Output::Deleted(v)) => format!("deleted {}", hex(v)),
        Some(Output::Exists(v)) => format!("exists {}", hex(v)),
        Some(Output::Swapped) => "swapped".to_string(),
        Some(Output::Mismatch(v)) => format!("mismatch {}", maybe_hex(v.as_deref())),
        Some(Output::Number(n)) => format!("number {n}"),
        Some(Output::NotAnInteger) => "not-an-integer".to_string(),
        Some(Output::Overflow) => "overflow".to_string(),
    };
    let ret = c.ret.map_or("-".to_string(), |v| v.to_string());
    format!("{} {} {ret} {op} = {output}", c.client, c.invoke)
}

/// Parse [`format_call`]'s output; `None` for any other line.
pub fn parse_call(line: &str) -> Option<Call> {
    let (left, right) = line.split_once(" = ")?;
    let f: Vec<&str> = left.split_whitespace().collect();
    let o: Vec<&str> = right.split_whitespace().collect();
    let client = f.first()?.parse().ok()?;
    let invoke = f.get(1)?.parse().ok()?;
    let ret = match *f.get(2)? {
        "-" => None,
        r => Some(r.parse().ok()?),
    };
    let key = unhex(f.get(4)?)?;
    let op = match (*f.get(3)?, f.len()) {
        ("insert", 6) => KvOp::Insert {
            key,
            value: unhex(f[5])?,
        },
        ("read", 5) => KvOp::Read { key },
        ("delete", 5) => KvOp::Delete { key },
        ("insert-new", 6) => KvOp::InsertNew {
            key,
            value: unhex(f[5])?,
        },
        ("cas", 7) => KvOp::Cas {
            key,
            expected: maybe_unhex(f[5])?,
            new: unhex(f[6])?,
        },
        ("add", 6) => KvOp::Add {
            key,
            delta: f[5].parse().ok()?,
        },
        _ => return None,
    };
    let output = match (o.first().copied()?, o.get(1).copied(), o.len()) {
        ("-", None, 1) => None,
        ("created", None, 1) => Some(Output::Created),
        ("replaced", Some(v), 2) => Some(Output::Replaced(unhex(v)?)),
        ("value", Some(v), 2) => Some(Output::Value(unhex(v)?)),
        ("not-found", None, 1) => Some(Output::NotFound),
        ("deleted", Some(v), 2) => Some(Output::Deleted(unhex(v)?)),
        ("exists", Some(v), 2) => Some(Output::Exists(unhex(v)?)),
        ("swapped", None, 1) => Some(Output::Swapped),
        ("mismatch", Some(v), 2) => Some(Output::Mismatch(maybe_unhex(v)?)),
        ("number", Some(n), 2) => Some(Output::Number(n.parse().ok()?)),
        ("not-an-integer", None, 1) => Some(Output::NotAnInteger),
        ("overflow", None, 1) => Some(Output::Overflow),
        _ => return None,
    };
    Some(Call {
        client,
        op,
        output,
        invoke,
        ret,
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
    let mut by_key: HashMap<&[u8], Vec<&Call>> = HashMap::new();
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

/// How many calls of each kind of answer the history holds, by [`answer_kind`] name, in
/// name order: to show that every operation and answer was exercised.
pub fn answer_counts(calls: &[Call]) -> Vec<(&'static str, usize)> {
    let mut m: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for c in calls {
        *m.entry(answer_kind(c)).or_default() += 1;
    }
    m.into_iter().collect()
}

/// A call's operation and the kind of its answer, as one name (`cas/mismatch-absent`).
pub fn answer_kind(c: &Call) -> &'static str {
    match (&c.op, &c.output) {
        (_, None) => "pending",
        (KvOp::Insert { .. }, Some(Output::Created)) => "insert/created",
        (KvOp::Insert { .. }, Some(_)) => "insert/replaced",
        (KvOp::Read { .. }, Some(Output::NotFound)) => "read/not-found",
        (KvOp::Read { .. }, Some(_)) => "read/value",
        (KvOp::Delete { .. }, Some(Output::NotFound)) => "delete/not-found",
        (KvOp::Delete { .. }, Some(_)) => "delete/deleted",
        (KvOp::InsertNew { .. }, Some(Output::Created)) => "insert-new/created",
        (KvOp::InsertNew { .. }, Some(_)) => "insert-new/exists",
        (KvOp::Cas { .. }, Some(Output::Swapped)) => "cas/swapped",
        (KvOp::Cas { .. }, Some(Output::Mismatch(None))) => "cas/mismatch-absent",
        (KvOp::Cas { .. }, Some(_)) => "cas/mismatch-value",
        (KvOp::Add { .. }, Some(Output::Number(_))) => "add/number",
        (KvOp::Add { .. }, Some(Output::NotAnInteger)) => "add/not-an-integer",
        (KvOp::Add { .. }, Some(_)) => "add/overflow",
    }
}
