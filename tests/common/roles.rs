//! Workloads and child-process roles shared by `tests/faults.rs` and `examples/soak.rs`
//! (included by both with `#[path]`): a pipelining client checked against a sequential model,
//! what a killed client may have left in the table, a hostile client that attacks its own
//! session object (scribbles over it, storms its futex words, punches holes in it, tries to
//! resize it), a slot claimant for races, and a listener that counts what a client sends it.
//!
//! A role runs until its `stop` flag is set; in a child process nobody sets it, the parent
//! kills the child. Roles report on stdout, one line per event, each starting with a word the
//! parent looks for (`ATTACHED`, `ACK`, `ERR`, `READY`, `ROUNDS`, `WON`, `LOST`, `LISTENING`,
//! `READ`), flushed at once so that a killed child has reported everything it did.
#![allow(dead_code)]

use shmkv::channel::{MAGIC, REQ_CTRL, RESP_CTRL, SLOTS};
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::protocol::{Op, Request, encode_request};
use shmkv::region::SLOT_SIZE;
use shmkv::shm::Mapping;
use shmkv::wait::{SysFutex, Wake};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

/// Batches of random inserts, reads and deletes over keys `base..base + keys`, a pure function
/// of the fields: the parent regenerates what a child sent from the same description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub base: u64,
    pub keys: u64,
    pub seed: u64,
    pub batch: usize,
}

impl Workload {
    /// Batch number `b`.
    pub fn batch(&self, b: u64) -> Vec<Op> {
        let mut rng = Rng::new(self.seed ^ b.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5eed);
        (0..self.batch)
            .map(|_| {
                let key = self.base + rng.below(self.keys);
                match rng.below(8) {
                    0..=3 => Op::Insert {
                        key,
                        value: rng.next() >> 1,
                    },
                    4..=6 => Op::Read { key },
                    _ => Op::Delete { key },
                }
            })
            .collect()
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

/// The table as one client sees its own keys, executed sequentially.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub map: HashMap<u64, u64>,
}

impl Model {
    /// Apply `op`; the outcome the server must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Insert { key, value } => self
                .map
                .insert(key, value)
                .map_or(Outcome::Done, Outcome::Replaced),
            Op::Read { key } => self
                .map
                .get(&key)
                .map_or(Outcome::NotFound, |v| Outcome::Value(*v)),
            Op::Delete { key } => self
                .map
                .remove(&key)
                .map_or(Outcome::NotFound, Outcome::Value),
            ref other => panic!("workloads have no {other:?}"),
        }
    }
}

/// What the table may hold for the keys of workload `w` when the client that ran it reported
/// `acked` complete batches (0..acked) and then died: every batch before is in, and of batch
/// `acked` some prefix (the server executes what reached the ring, in order). Per key, every
/// value it may have (`None`: absent).
pub fn possible_states(w: &Workload, acked: u64) -> HashMap<u64, Vec<Option<u64>>> {
    let mut m = Model::default();
    for b in 0..acked {
        for op in w.batch(b) {
            m.apply(&op);
        }
    }
    let mut out: HashMap<u64, Vec<Option<u64>>> = (w.base..w.base + w.keys)
        .map(|k| (k, vec![m.map.get(&k).copied()]))
        .collect();
    for op in w.batch(acked) {
        m.apply(&op);
        let key = match op {
            Op::Insert { key, .. } | Op::Read { key } | Op::Delete { key } => key,
            _ => continue,
        };
        let now = m.map.get(&key).copied();
        let seen = out.get_mut(&key).expect("keys of the workload");
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
    let ops: Vec<Op> = keys.iter().map(|&key| Op::Read { key }).collect();
    let tickets = c
        .submit_all(&ops)
        .map_err(|e| format!("verify submit: {e}"))?;
    for (key, t) in keys.iter().zip(tickets) {
        let got = match c.wait(t).map_err(|e| format!("verify read {key}: {e}"))? {
            Outcome::Value(v) => Some(v),
            Outcome::NotFound => None,
            o => return Err(format!("verify read {key}: unexpected {o:?}")),
        };
        let allowed = &states[key];
        if !allowed.contains(&got) {
            return Err(format!(
                "key {key}: holds {got:?}, but after {acked} acknowledged batches it may only hold one of {allowed:?}"
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
                .map_err(|e| format!("batch {b} op {i} {op:?}: {e}"))?;
            let want = model.apply(op);
            if got != want {
                return Err(format!(
                    "batch {b} op {i} {op:?}: got {got:?}, the model says {want:?} (a stale or wrong answer)"
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
    /// Arbitrary values at arbitrary places: header, counters, futex words, slots.
    Random,
    /// A futex storm that changes the words: bump (fetch_add) the request ring's data futex and
    /// the response ring's space futex, then FUTEX_WAKE them, as fast as it can.
    Futex,
    /// A futex storm that leaves the words alone: FUTEX_WAKE only, on the same two words.
    WakeOnly,
    /// Keep the request ring full of garbage, never read a response, and keep waking the
    /// server's wait for room to answer (changing the word or not).
    Full,
    /// Garbage requests as fast as the server takes them, responses "read" by moving the
    /// response ring's head.
    Flood,
    /// Flip the header's session state word and magic, and wake the server.
    State,
    /// Queue valid requests, then punch a hole over the whole object (`fallocate` PUNCH_HOLE,
    /// which zeroes every page: header, ring counters, slots), over and over.
    Punch,
    /// Try to resize the object every way there is (truncate to 0 and to a page, grow to
    /// 512 MiB with `ftruncate`, `fallocate` and a write past the end, change the seals): each
    /// must fail with EPERM (else `ERR`, status 1). Meanwhile it uses its session normally,
    /// which must keep working (else `ERR`, status 3).
    Resize,
}

impl Hostility {
    pub const ALL: [Hostility; 8] = [
        Hostility::Random,
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

/// Take `slot` as a client (legitimately), then attack its own session object until stopped:
/// through a second mapping of the descriptor it was handed, or the descriptor itself. Reports
/// `READY <pid>` once attached.
///
/// One thing it never writes: a request slot whose op tag is Quit (7) or ThStart (5). Quit is a
/// request any client of the server's user may send (it stops the server by design), and
/// ThStart starts threads up to the configured limit; neither is a fault. Everything else, the
/// server must survive.
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
    let cap = client.info().req_capacity as u64;
    let req_slots = SLOTS;
    let resp_slots = SLOTS + cap as usize * SLOT_SIZE;
    let len = map.len();
    let u64_at = |off: usize| map.atomic_u64(off).expect("inside the object");
    let u32_at = |off: usize| map.atomic_u32(off).expect("inside the object");
    let bump = |off: usize| {
        let w = u32_at(off);
        w.fetch_add(1, Ordering::SeqCst);
        SysFutex.wake(w);
    };
    let wake_only = |off: usize| SysFutex.wake(u32_at(off));
    // Keep a request slot's op tag away from Quit and ThStart (see above).
    let tame = |off: usize, value: u64, size: usize| -> u64 {
        if off < req_slots || off >= resp_slots {
            return value;
        }
        let tag_off = req_slots + (off - req_slots) / SLOT_SIZE * SLOT_SIZE + 8;
        if tag_off < off || tag_off >= off + size {
            return value;
        }
        let shift = 8 * (tag_off - off);
        if matches!((value >> shift) & 0xff, 5 | 7) {
            value ^ (0x80 << shift)
        } else {
            value
        }
    };
    say(&format!("READY {}", std::process::id()));
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    let mut id = 1u64 << 62;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match mode {
            Hostility::Random => {
                // Pick a region, then an aligned place in it.
                let (lo, hi) = match rng.below(6) {
                    0 => (0, 128),
                    1 => (REQ_CTRL, REQ_CTRL + 192),
                    2 => (RESP_CTRL, RESP_CTRL + 192),
                    3 | 4 => (req_slots, resp_slots),
                    _ => (resp_slots, len),
                };
                let value = match rng.below(4) {
                    0 => rng.next(),
                    1 => rng.below(4 * cap),
                    2 => u64::MAX - rng.below(4 * cap),
                    _ => 0,
                };
                if rng.below(2) == 0 {
                    let off = (lo + rng.below((hi - lo) as u64 / 8) as usize * 8).min(len - 8);
                    u64_at(off).store(tame(off, value, 8), Ordering::Relaxed);
                } else {
                    let off = (lo + rng.below((hi - lo) as u64 / 4) as usize * 4).min(len - 4);
                    u32_at(off).store(tame(off, value, 4) as u32, Ordering::Relaxed);
                }
                if n % 64 == 0 {
                    bump(REQ_CTRL + DATA_FUTEX);
                }
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
                let head = u64_at(REQ_CTRL + HEAD).load(Ordering::Acquire);
                u64_at(REQ_CTRL + TAIL).store(head.wrapping_add(cap), Ordering::Release);
                if rng.below(2) == 0 {
                    bump(REQ_CTRL + DATA_FUTEX);
                    bump(RESP_CTRL + SPACE_FUTEX);
                } else {
                    wake_only(REQ_CTRL + DATA_FUTEX);
                    wake_only(RESP_CTRL + SPACE_FUTEX);
                }
            }
            Hostility::Flood => {
                let head = u64_at(REQ_CTRL + HEAD).load(Ordering::Acquire);
                let tail = u64_at(REQ_CTRL + TAIL).load(Ordering::Relaxed);
                if tail.wrapping_sub(head) < cap {
                    for i in 0..cap as usize {
                        let off = req_slots + i * SLOT_SIZE + 8;
                        u64_at(off).store(tame(off, rng.next(), 8), Ordering::Relaxed);
                    }
                    u64_at(REQ_CTRL + TAIL).store(head.wrapping_add(cap), Ordering::Release);
                    bump(REQ_CTRL + DATA_FUTEX);
                }
                let rtail = u64_at(RESP_CTRL + TAIL).load(Ordering::Acquire);
                u64_at(RESP_CTRL + HEAD).store(rtail, Ordering::Release);
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
                let tail = u64_at(REQ_CTRL + TAIL).load(Ordering::Relaxed);
                let head = u64_at(REQ_CTRL + HEAD).load(Ordering::Acquire);
                let room = cap.saturating_sub(tail.wrapping_sub(head)).min(cap / 2);
                for i in 0..room {
                    id += 1;
                    let slot = encode_request(&Request {
                        id,
                        op: Op::Read { key: rng.below(64) },
                    });
                    let at = req_slots + (tail.wrapping_add(i) % cap) as usize * SLOT_SIZE;
                    for (w, chunk) in slot.chunks_exact(8).enumerate() {
                        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                        u64_at(at + w * 8).store(v, Ordering::Relaxed);
                    }
                }
                u64_at(REQ_CTRL + TAIL).store(tail.wrapping_add(room), Ordering::Release);
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
                // Its session is unaffected (keys of its own, at the top of the key space).
                let (key, value) = (u64::MAX - n % 64, rng.next() >> 1);
                let ok = client
                    .insert(key, value)
                    .and_then(|_| client.read(key))
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
