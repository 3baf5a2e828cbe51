//! Workloads and child-process roles shared by `tests/faults.rs` and `examples/soak.rs`
//! (included by both with `#[path]`): a pipelining client checked against a sequential model,
//! what a killed client may have left in the table, a hostile client that attacks its own
//! session object (scribbles over it, lies in its record ring, storms its futex words, punches
//! holes in it, tries to resize it), a slot claimant for races, and a listener that counts what
//! a client sends it.
//!
//! A role runs until its `stop` flag is set; in a child process nobody sets it, the parent
//! kills the child. Roles report on stdout, one line per event, each starting with a word the
//! parent looks for (`ATTACHED`, `ACK`, `ERR`, `READY`, `ROUNDS`, `WON`, `LOST`, `LISTENING`,
//! `READ`), flushed at once so that a killed child has reported everything it did.
#![allow(dead_code)]

use shmkv::channel::{DATA, MAGIC, REQ_CTRL, RESP_CTRL};
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::record::{KIND_DATA, KIND_PADDING, max_payload, record_size};
use shmkv::shm::Mapping;
use shmkv::wait::{SysFutex, Wake};
use shmkv::wire::{ErrorCode, Op, Request, encode_request};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// The canonical decimal `i64` `v` spells, as the server's add reads one (Redis rules: an
/// optional `-`, digits without leading zeros, `0` alone for zero, no `-0`, no `+`, no
/// spaces), written here independently of the server's parser.
pub fn canonical_i64(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// The table as one client sees its own keys, executed sequentially.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub map: HashMap<Vec<u8>, Vec<u8>>,
}

impl Model {
    /// Apply `op`; the outcome the server must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Insert { key, value } => self
                .map
                .insert(key.clone(), value.clone())
                .map_or(Outcome::Created, Outcome::Replaced),
            Op::Read { key } => self
                .map
                .get(key)
                .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
            Op::Delete { key } => self
                .map
                .remove(key)
                .map_or(Outcome::NotFound, Outcome::Deleted),
            Op::InsertNew { key, value } => match self.map.get(key) {
                Some(v) => Outcome::Exists(v.clone()),
                None => {
                    self.map.insert(key.clone(), value.clone());
                    Outcome::Created
                }
            },
            Op::Cas { key, expected, new } => {
                let current = self.map.get(key);
                if current != expected.as_ref() {
                    return Outcome::Mismatch(current.cloned());
                }
                self.map.insert(key.clone(), new.clone());
                Outcome::Swapped
            }
            Op::Add { key, delta } => {
                let current = match self.map.get(key) {
                    None => 0,
                    Some(v) => match canonical_i64(v) {
                        Some(n) => n,
                        None => return Outcome::Refused(ErrorCode::NotAnInteger),
                    },
                };
                let Some(n) = current.checked_add(*delta) else {
                    return Outcome::Refused(ErrorCode::Overflow);
                };
                self.map.insert(key.clone(), n.to_string().into_bytes());
                Outcome::Number(n)
            }
            other => panic!("workloads have no {other:?}"),
        }
    }
}

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

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Run the role described by `spec` (space-separated words) until `stop` is set. Returns the
/// process exit status the role asks for.
pub fn run_role(spec: &str, stop: &AtomicBool) -> i32 {
    let w: Vec<&str> = spec.split_whitespace().collect();
    let slot = |s: &str| -> Option<u32> { s.parse().ok() };
    let num = |i: usize| -> u64 { w.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    match w.first().copied() {
        // An optional last word: the client's timeout in seconds (default 1 s).
        Some("pipeline") if w.len() == 7 || w.len() == 8 => {
            let work = Workload {
                base: num(3),
                keys: num(4),
                seed: num(5),
                batch: num(6) as usize,
            };
            let timeout = (w.len() == 8).then(|| Duration::from_secs(num(7)));
            pipeline(w[1], slot(w[2]), &work, timeout, stop)
        }
        Some("hostile") if w.len() == 5 => hostile(w[1], num(2) as u32, w[3], num(4), stop),
        Some("claim") if w.len() == 3 => claim(w[1], num(2) as u32),
        Some("listen") if w.len() == 2 => listen(w[1], stop),
        _ => {
            say(&format!("ERR bad role spec {spec:?}"));
            2
        }
    }
}

/// Connect, report `ATTACHED <slot> <pid>`, then run batches forever, reporting `ACK <b>` after
/// each one is complete and checked. `ERR <what>` and status 1 on a wrong answer, status 3 on
/// a connection error.
fn pipeline(
    name: &str,
    slot: Option<u32>,
    w: &Workload,
    timeout: Option<Duration>,
    stop: &AtomicBool,
) -> i32 {
    let mut config = ClientConfig::new(name);
    config.slot = slot;
    if let Some(t) = timeout {
        config.timeout = t;
    }
    let c = match Client::connect(&config) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("ERR connect: {e}"));
            return 3;
        }
    };
    say(&format!("ATTACHED {} {}", c.slot(), std::process::id()));
    let mut model = Model::default();
    match run_checked(&c, w, &mut model, 0, u64::MAX, stop, |b| {
        say(&format!("ACK {b}"))
    }) {
        Ok(_) => 0,
        Err(e) => {
            say(&format!("ERR {e}"));
            if e.contains("the model says") { 1 } else { 3 }
        }
    }
}

/// How a hostile client misbehaves, always in its own session object (the descriptor it was
/// handed, mapped a second time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    /// Arbitrary values at arbitrary places: header, counters, futex words, record headers
    /// and payloads in both rings.
    Random,
    /// Records whose header lies (a length past the ring's maximum or past the published
    /// bytes, a padding record that does not end at the end of the data area, an unknown
    /// kind) or counters that do (a misaligned tail, a tail more than the capacity ahead),
    /// published and the server woken: lie number `seed % 6` of [`LIES`], told once (so that
    /// the server finds that very lie), then the server woken again and again.
    Lying,
    /// A futex storm that changes the words: bump (fetch_add) the request ring's data futex and
    /// the response ring's space futex, then FUTEX_WAKE them, as fast as it can.
    Futex,
    /// A futex storm that leaves the words alone: FUTEX_WAKE only, on the same two words.
    WakeOnly,
    /// Keep the request ring full of valid requests, never read a response (so that the
    /// server fills the response ring and waits for room with requests still waiting), and
    /// keep waking the server's wait for room to answer (changing the word or not).
    Full,
    /// Well-formed records of garbage as fast as the server takes them, responses "read" by
    /// moving the response ring's head.
    Flood,
    /// Flip the header's session state word and magic, and wake the server.
    State,
    /// Queue valid requests, then punch a hole over the whole object (`fallocate` PUNCH_HOLE,
    /// which zeroes every page: header, ring counters, records), over and over.
    Punch,
    /// Try to resize the object every way there is (truncate to 0 and to a page, grow to
    /// 512 MiB with `ftruncate`, `fallocate` and a write past the end, change the seals): each
    /// must fail with EPERM (else `ERR`, status 1). Meanwhile it uses its session normally,
    /// which must keep working (else `ERR`, status 3).
    Resize,
}

impl Hostility {
    pub const ALL: [Hostility; 9] = [
        Hostility::Random,
        Hostility::Lying,
        Hostility::Futex,
        Hostility::WakeOnly,
        Hostility::Full,
        Hostility::Flood,
        Hostility::State,
        Hostility::Punch,
        Hostility::Resize,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hostility::Random => "random",
            Hostility::Lying => "lying",
            Hostility::Futex => "futex",
            Hostility::WakeOnly => "wake-only",
            Hostility::Full => "full",
            Hostility::Flood => "flood",
            Hostility::State => "state",
            Hostility::Punch => "punch",
            Hostility::Resize => "resize",
        }
    }

    pub fn parse(s: &str) -> Option<Hostility> {
        Hostility::ALL.into_iter().find(|h| h.name() == s)
    }

    /// Whether the server must drop a client doing this (it makes the server work for
    /// nothing, or breaks its rings). The others are refused by the kernel and harm nobody.
    pub fn must_be_dropped(self) -> bool {
        self != Hostility::Resize
    }
}

/// What the server says of each lie of [`Hostility::Lying`] (in the order it tells them) when
/// it finds it in the request ring.
pub const LIES: [&str; 6] = [
    "a record longer than the maximum",
    "a record crossing the end of the data area or the published bytes",
    "a padding record at offset 0, not ending at the end of the data area, or not published",
    "a record of unknown kind",
    "the producer's tail is misaligned, went back, or ran past the capacity",
    "the producer's tail is misaligned, went back, or ran past the capacity",
];

/// Offsets of one ring control block's words.
const TAIL: usize = 0;
const HEAD: usize = 64;
const DATA_FUTEX: usize = 132;
const SPACE_FUTEX: usize = 140;
/// The header's session state word (1 running, 2 stopping, 3 dropped).
const STATE: usize = 44;
/// The largest size a resize attempt asks for.
pub const GROW_TO: i64 = 512 << 20;

/// Every way to resize the sealed object behind `fd` (of `len` bytes): each must fail with
/// EPERM. Returns what did not.
pub fn resize_attempts(fd: std::os::fd::BorrowedFd<'_>, len: i64) -> Vec<String> {
    use nix::errno::Errno;
    use nix::fcntl::{FallocateFlags, FcntlArg, SealFlag, fcntl};
    let raw = fd.as_raw_fd();
    let reopened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{raw}"));
    let mut attempts: Vec<(String, Result<(), Errno>)> = [0, 4096, GROW_TO]
        .into_iter()
        .map(|size| {
            (
                format!("ftruncate to {size}"),
                nix::unistd::ftruncate(fd, size),
            )
        })
        .collect();
    attempts.extend([
        (
            "fallocate to 512 MiB".to_string(),
            nix::fcntl::fallocate(raw, FallocateFlags::empty(), 0, GROW_TO),
        ),
        (
            "fallocate past the end".to_string(),
            nix::fcntl::fallocate(raw, FallocateFlags::empty(), len, 4096),
        ),
        (
            "a write past the end".to_string(),
            nix::sys::uio::pwrite(fd, b"x", len).map(drop),
        ),
        (
            "adding a write seal".to_string(),
            fcntl(raw, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE)).map(drop),
        ),
        // A new open file description of the same object (through /proc) changes nothing.
        (
            "ftruncate through a descriptor reopened from /proc".to_string(),
            match &reopened {
                Ok(f) => nix::unistd::ftruncate(f, 0),
                Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            },
        ),
    ]);
    let mut wrong: Vec<String> = attempts
        .into_iter()
        .filter(|(_, r)| *r != Err(Errno::EPERM))
        .map(|(what, r)| format!("{what}: {r:?}, expected EPERM"))
        .collect();
    match nix::sys::stat::fstat(raw) {
        Ok(st) if st.st_size == len => {}
        Ok(st) => wrong.push(format!("the size is now {}, was {len}", st.st_size)),
        Err(e) => wrong.push(format!("fstat: {e}")),
    }
    wrong
}

/// Zero every page of the object behind `fd` (of `len` bytes) with a hole punch.
pub fn punch_hole(fd: std::os::fd::BorrowedFd<'_>, len: i64) -> nix::Result<()> {
    use nix::fcntl::FallocateFlags;
    nix::fcntl::fallocate(
        fd.as_raw_fd(),
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        0,
        len,
    )
}

/// One record ring of a mapped session object, written by hand as a hostile client does: the
/// control block at `ctrl` (counters in bytes: `tail` at 0, `head` at 64), `cap` bytes of data
/// at `data`. A record is a header word `(kind << 32) | len` and the payload in 8-byte words.
pub struct RawRing<'a> {
    pub map: &'a Mapping,
    pub ctrl: usize,
    pub data: usize,
    pub cap: u64,
}

/// A record header word.
pub const fn record_header(kind: u32, len: u32) -> u64 {
    ((kind as u64) << 32) | len as u64
}

impl RawRing<'_> {
    fn counter(&self, off: usize) -> &AtomicU64 {
        self.map
            .atomic_u64(self.ctrl + off)
            .expect("inside the object")
    }
    pub fn tail(&self) -> u64 {
        self.counter(TAIL).load(Ordering::Acquire)
    }
    pub fn head(&self) -> u64 {
        self.counter(HEAD).load(Ordering::Acquire)
    }
    pub fn set_tail(&self, v: u64) {
        self.counter(TAIL).store(v, Ordering::Release)
    }
    pub fn set_head(&self, v: u64) {
        self.counter(HEAD).store(v, Ordering::Release)
    }
    /// The data word at counter `pos` (reduced below the capacity).
    pub fn word(&self, pos: u64) -> &AtomicU64 {
        let off = (pos & (self.cap - 1)) as usize & !7;
        self.map
            .atomic_u64(self.data + off)
            .expect("inside the object")
    }
    /// Write a header `(kind, len)` and `payload` at `pos`, whatever they say; returns the
    /// position after the payload (rounded up to a word).
    pub fn put(&self, pos: u64, kind: u32, len: u32, payload: &[u8]) -> u64 {
        for (i, chunk) in payload.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.word(pos + 8 + 8 * i as u64)
                .store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        self.word(pos)
            .store(record_header(kind, len), Ordering::Relaxed);
        pos + record_size(payload.len()) as u64
    }
    /// An honest record at `pos` (after a padding record if it would cross the end of the
    /// data area) when it and its padding fit in the room left with the consumer at `head`;
    /// the position after it.
    pub fn push(&self, pos: u64, head: u64, payload: &[u8]) -> Option<u64> {
        let rec = record_size(payload.len()) as u64;
        let to_end = self.cap - (pos & (self.cap - 1));
        let pad = if rec <= to_end { 0 } else { to_end };
        let room = self.cap.checked_sub(pos.wrapping_sub(head))?;
        if payload.len() > max_payload(self.cap as usize) || pad + rec > room {
            return None;
        }
        let mut p = pos;
        if pad > 0 {
            self.put(p, KIND_PADDING, (pad - 8) as u32, &[]);
            p += pad;
        }
        Some(self.put(p, KIND_DATA, payload.len() as u32, payload))
    }
}

/// `value` with every byte that is 5 or 7 changed (see [`hostile`]: no record the hostile
/// client writes into its request ring can then carry the tag of ThreadsStart or Quit).
fn tame(value: u64) -> u64 {
    let mut b = value.to_le_bytes();
    for x in &mut b {
        if *x == 5 || *x == 7 {
            *x ^= 0x80;
        }
    }
    u64::from_le_bytes(b)
}

/// Garbage of 0 to 64 bytes, tamed: mostly a request header that does not decode.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(65) as usize;
    let mut g = rng.bytes(n);
    for x in &mut g {
        if *x == 5 || *x == 7 {
            *x ^= 0x80;
        }
    }
    g
}

/// Take `slot` as a client (legitimately), then attack its own session object until stopped:
/// through a second mapping of the descriptor it was handed, or the descriptor itself. Reports
/// `READY <pid>` once attached.
///
/// One thing it never writes into its request ring: a byte 5 or 7, which could be the verb tag
/// of ThreadsStart (5) or Quit (7) in a record that decodes. Quit is a request any client of
/// the server's user may send (it stops the server by design), and ThreadsStart starts threads
/// up to the configured limit; neither is a fault. Everything else, the server must survive.
fn hostile(name: &str, slot: u32, mode: &str, seed: u64, stop: &AtomicBool) -> i32 {
    let Some(mode) = Hostility::parse(mode) else {
        say(&format!("ERR unknown hostility {mode:?}"));
        return 2;
    };
    let client = match Client::connect(&ClientConfig::new(name).slot(slot)) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("ERR connect: {e}"));
            return 3;
        }
    };
    let fd = client.object_fd();
    let map = match Mapping::open_sealed(&fd) {
        Ok(m) => m,
        Err(e) => {
            say(&format!("ERR map: {e}"));
            return 3;
        }
    };
    let info = *client.info();
    let req = RawRing {
        map: &map,
        ctrl: REQ_CTRL,
        data: DATA,
        cap: u64::from(info.req_capacity),
    };
    let resp = RawRing {
        map: &map,
        ctrl: RESP_CTRL,
        data: DATA + info.req_capacity as usize,
        cap: u64::from(info.resp_capacity),
    };
    let cap = req.cap;
    let (req_data, resp_data) = (req.data, resp.data);
    let len = map.len();
    let u64_at = |off: usize| map.atomic_u64(off).expect("inside the object");
    let u32_at = |off: usize| map.atomic_u32(off).expect("inside the object");
    let bump = |off: usize| {
        let w = u32_at(off);
        w.fetch_add(1, Ordering::SeqCst);
        SysFutex.wake(w);
    };
    let wake_only = |off: usize| SysFutex.wake(u32_at(off));
    // Keep the request ring's data free of bytes 5 and 7 (see above).
    let tame_at = |off: usize, value: u64| -> u64 {
        if (req_data..resp_data).contains(&off) {
            tame(value)
        } else {
            value
        }
    };
    say(&format!("READY {}", std::process::id()));
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    let mut id = 1u64 << 62;
    let mut read_request = |rng: &mut Rng| {
        id += 1;
        let mut buf = Vec::new();
        encode_request(
            &Request {
                id,
                op: Op::Read {
                    key: rng.below(64).to_le_bytes().to_vec(),
                },
            },
            &mut buf,
        );
        buf
    };
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match mode {
            Hostility::Random => {
                // Pick a region, then an aligned place in it.
                let (lo, hi) = match rng.below(6) {
                    0 => (0, 128),
                    1 => (REQ_CTRL, REQ_CTRL + 192),
                    2 => (RESP_CTRL, RESP_CTRL + 192),
                    3 | 4 => (req_data, resp_data),
                    _ => (resp_data, len),
                };
                let value = match rng.below(5) {
                    0 => rng.next(),
                    1 => rng.below(4 * cap),
                    2 => u64::MAX - rng.below(4 * cap),
                    // A record header of any kind with any length.
                    3 => record_header(rng.below(4) as u32, rng.below(2 * cap) as u32),
                    _ => 0,
                };
                if rng.below(2) == 0 {
                    let off = (lo + rng.below((hi - lo) as u64 / 8) as usize * 8).min(len - 8);
                    u64_at(off).store(tame_at(off, value), Ordering::Relaxed);
                } else {
                    let off = (lo + rng.below((hi - lo) as u64 / 4) as usize * 4).min(len - 4);
                    u32_at(off).store(tame_at(off, value) as u32, Ordering::Relaxed);
                }
                if n % 64 == 0 {
                    bump(REQ_CTRL + DATA_FUTEX);
                }
            }
            Hostility::Lying if n > 1 => {
                bump(REQ_CTRL + DATA_FUTEX);
                if n % 100 == 0 {
                    say(&format!("ROUNDS {n}"));
                }
                std::thread::yield_now();
            }
            Hostility::Lying => {
                let (head, tail) = (req.head(), req.tail());
                let max = max_payload(cap as usize) as u64;
                let new_tail = match seed % 6 {
                    // Longer than the ring's maximum record.
                    0 => {
                        let lie = max + 1 + rng.below(cap);
                        req.put(tail, KIND_DATA, lie as u32, &[]);
                        tail + 8
                    }
                    // Longer than what is published (only its header and a word are).
                    1 => {
                        let payload = read_request(&mut rng);
                        req.put(tail, KIND_DATA, 64 + rng.below(max - 64) as u32, &payload);
                        tail + 16
                    }
                    // A padding record that does not end at the end of the data area.
                    2 => {
                        let to_end = cap - (tail & (cap - 1));
                        let lie = (to_end + 8 + 8 * rng.below(8)) % cap;
                        req.put(tail, KIND_PADDING, lie as u32, &[]);
                        tail + 8
                    }
                    // A kind that does not exist.
                    3 => {
                        let payload = read_request(&mut rng);
                        let k = [0, 3, 4, u32::MAX][rng.below(4) as usize];
                        req.put(tail, k, payload.len() as u32, &payload)
                    }
                    // A tail that is not a multiple of 8.
                    4 => tail + 1 + rng.below(7),
                    // A tail more than the capacity ahead of the head.
                    _ => head + cap + 8 * (1 + rng.below(cap / 8)),
                };
                req.set_tail(new_tail);
                bump(REQ_CTRL + DATA_FUTEX);
            }
            Hostility::Futex => {
                bump(REQ_CTRL + DATA_FUTEX);
                bump(RESP_CTRL + SPACE_FUTEX);
            }
            Hostility::WakeOnly => {
                wake_only(REQ_CTRL + DATA_FUTEX);
                wake_only(RESP_CTRL + SPACE_FUTEX);
            }
            Hostility::Full => {
                // Fill every byte of room with valid reads, which the server answers until
                // its response ring is full.
                let head = req.head();
                let mut pos = req.tail();
                while let Some(p) = req.push(pos, head, &read_request(&mut rng)) {
                    pos = p;
                }
                req.set_tail(pos);
                if rng.below(2) == 0 {
                    bump(REQ_CTRL + DATA_FUTEX);
                    bump(RESP_CTRL + SPACE_FUTEX);
                } else {
                    wake_only(REQ_CTRL + DATA_FUTEX);
                    wake_only(RESP_CTRL + SPACE_FUTEX);
                }
            }
            Hostility::Flood => {
                let head = req.head();
                let mut pos = req.tail();
                while let Some(p) = req.push(pos, head, &garbage(&mut rng)) {
                    pos = p;
                }
                req.set_tail(pos);
                bump(REQ_CTRL + DATA_FUTEX);
                resp.set_head(resp.tail());
                bump(RESP_CTRL + SPACE_FUTEX);
            }
            Hostility::State => {
                u32_at(STATE).store(rng.below(5) as u32, Ordering::SeqCst);
                let magic = if rng.below(2) == 0 { MAGIC } else { rng.next() };
                u64_at(0).store(magic, Ordering::SeqCst);
                bump(REQ_CTRL + DATA_FUTEX);
            }
            Hostility::Punch => {
                // A few valid requests where the tail says, so that the server has taken some
                // (and moved its head) when the punch sets every counter back to zero.
                let head = req.head();
                let mut pos = req.tail();
                for _ in 0..1 + rng.below(64) {
                    match req.push(pos, head, &read_request(&mut rng)) {
                        Some(p) => pos = p,
                        None => break,
                    }
                }
                req.set_tail(pos);
                bump(REQ_CTRL + DATA_FUTEX);
                // Let the server take them before the punch, now and then.
                if rng.below(4) == 0 {
                    std::thread::yield_now();
                }
                if let Err(e) = punch_hole(fd, len as i64) {
                    say(&format!("ERR punch: {e}"));
                    return 3;
                }
                if n % 100 == 0 {
                    say(&format!("ROUNDS {n}"));
                }
            }
            Hostility::Resize => {
                let wrong = resize_attempts(fd, len as i64);
                if !wrong.is_empty() {
                    say(&format!("ERR the object changed: {}", wrong.join("; ")));
                    return 1;
                }
                // Its session is unaffected (keys of its own).
                let key = format!("resize-{}", n % 64).into_bytes();
                let vlen = rng.below(100) as usize;
                let value = rng.bytes(vlen);
                let ok = client
                    .insert(&key, &value)
                    .and_then(|_| client.read(&key))
                    .map(|got| got == Some(value));
                if ok != Ok(true) {
                    say(&format!("ERR its own session broke: {ok:?}"));
                    return 3;
                }
                if n % 100 == 0 {
                    say(&format!("ROUNDS {n}"));
                }
            }
        }
    }
    drop(client);
    0
}

/// Report `READY`, wait for a line on stdin, try once to take `slot` (no retry), report `WON`
/// or `LOST <error>`, hold the slot until stdin ends, then leave.
fn claim(name: &str, slot: u32) -> i32 {
    say("READY");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let _ = stdin.read_line(&mut line);
    let mut config = ClientConfig::new(name).slot(slot);
    config.attach_timeout = Duration::ZERO;
    let held = match Client::connect(&config) {
        Ok(c) => {
            say(&format!("WON {}", std::process::id()));
            Some(c)
        }
        Err(e) => {
            say(&format!("LOST {e}"));
            None
        }
    };
    while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {}
    drop(held);
    0
}

/// Listen on a unix socket at `path` (as whatever user this process runs as: a socket planted
/// for a client to find), report `LISTENING <pid>`, accept one connection, count the bytes the
/// client sends until it closes, and report `READ <n>`. Gives up after 20 s, or when stopped.
fn listen(path: &str, stop: &AtomicBool) -> i32 {
    let _ = std::fs::remove_file(path);
    let listener = match std::os::unix::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            say(&format!("ERR bind {path}: {e}"));
            return 3;
        }
    };
    let _ = listener.set_nonblocking(true);
    say(&format!("LISTENING {}", std::process::id()));
    let end = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) || Instant::now() > end {
                    say("ERR nobody connected");
                    return 3;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                say(&format!("ERR accept: {e}"));
                return 3;
            }
        }
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut total = 0usize;
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                say(&format!("ERR read after {total} bytes: {e}"));
                return 3;
            }
        }
    }
    let _ = std::fs::remove_file(path);
    say(&format!("READ {total}"));
    0
}
