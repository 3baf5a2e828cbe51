//! The machine's own limit, measured in every run (`--no-limit` skips it) so that shmkv's
//! figures can be given as ratios to it. Written for the baseline alone: no shmkv code, only
//! std, libc and nix.
//!
//! * **Ping-pong**: one `AtomicU64` on its own cache line in memory shared by two processes
//!   (this one and a child, this executable run again with `--limit-child`); the parent
//!   writes an odd n, the child answers n+1, both spin. Nanoseconds per round trip: the cost
//!   of moving a line to the other core and back.
//! * **Bare request/response**: two single-producer single-consumer rings of 16-byte
//!   messages in the same memory, a request ring and a response ring; the child looks each
//!   request's key up in a process-local `std::collections::HashMap<u64, u64>` filled with
//!   the run's keys and sends the value back. No locks, no protocol, no bookkeeping; both
//!   sides spin ([`std::hint::spin_loop`]). At depth 1 (one request at a time, every round
//!   trip timed, as the sync mode) and at depth `--pipeline` (64 by default: that many in
//!   flight, refilled as answers arrive, every [`SAMPLE_EVERY`]th request timed from submit
//!   to answer, as the pipelined mode). Every answer is checked.
//! * **memcpy**: `copy_from_slice` of each value size, single-threaded, walking through two
//!   64 MiB buffers (larger than the caches, so that nothing is copied from a warm line
//!   twice in a row), in MB/s.
//!
//! The shared memory is a sealed memfd, created by the parent and inherited by the child at
//! a descriptor number given on its command line (nothing to clean up in /dev/shm). Every
//! word of it is accessed as an atomic; every offset is checked against its size; a ring
//! position read from the peer is checked against the ring's capacity. The child dies with
//! the parent (`PR_SET_PDEATHSIG`), checks that its parent is still there while it waits, and
//! gives up after a deadline; the parent gives up on a child that stops answering.

use crate::modes::{SAMPLE_EVERY, new_hist, ns_since};
use crate::workload::{key_of, value_of};
use hdrhistogram::Histogram;
use serde_json::json;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, ExitCode, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Distance between words written by different sides (two cache lines: the adjacent-line
/// prefetcher pairs lines).
const LINE: usize = 128;
/// Control words: the magic (written by the parent before the child starts), the child's
/// words (ready, failed), the parent's word (stop), the ping-pong word.
const MAGIC_AT: usize = 0;
const MAGIC: u64 = u64::from_le_bytes(*b"shmkvlim");
const READY_AT: usize = LINE;
const FAILED_AT: usize = LINE + 8;
const STOP_AT: usize = 2 * LINE;
const PING_AT: usize = 3 * LINE;
/// The parent's last word to the ping-pong child: go on to the rings (odd, never an n).
const PING_DONE: u64 = u64::MAX;
/// The largest ring (slots) a child accepts.
const MAX_CAP: u64 = 1 << 20;
/// Each side checks its deadline (and the child its parent) every this many spins.
const CHECK_EVERY: u32 = 4096;

/// Where one ring lies in the shared memory: its producer's position (`head`), its
/// consumer's position (`tail`), each on its own line, then `cap` slots of two words.
#[derive(Debug, Clone, Copy)]
struct RingAt {
    head: usize,
    tail: usize,
    slots: usize,
    cap: u64,
}

impl RingAt {
    fn bytes(cap: u64) -> usize {
        2 * LINE + cap as usize * 16
    }
}

/// The shared memory's layout for rings of `cap` slots.
#[derive(Debug, Clone, Copy)]
struct Layout {
    req: RingAt,
    resp: RingAt,
    len: usize,
}

impl Layout {
    fn new(cap: u64) -> Layout {
        let ring = |at: usize| RingAt {
            head: at,
            tail: at + LINE,
            slots: at + 2 * LINE,
            cap,
        };
        let req_at = 4 * LINE;
        let resp_at = (req_at + RingAt::bytes(cap)).next_multiple_of(LINE);
        let len = (resp_at + RingAt::bytes(cap)).next_multiple_of(4096);
        Layout {
            req: ring(req_at),
            resp: ring(resp_at),
            len,
        }
    }
}

/// A shared mapping, unmapped on drop; only ever accessed through [`Shm::word`].
struct Shm {
    ptr: NonNull<u8>,
    len: usize,
}

impl Shm {
    /// Map all `len` bytes of `fd`, shared.
    fn map(fd: &OwnedFd, len: usize) -> Result<Shm, String> {
        // SAFETY: a fresh shared mapping of a descriptor we hold open; it replaces no memory
        // of ours (the kernel picks the address). The object is sealed against shrinking, so
        // every page stays backed.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast()).ok_or("mmap returned null")?;
        Ok(Shm { ptr, len })
    }

    /// The 8-byte word at byte offset `at`, as an atomic (panics if out of bounds).
    #[inline(always)]
    fn word(&self, at: usize) -> &AtomicU64 {
        assert!(
            at % 8 == 0 && at.checked_add(8).is_some_and(|end| end <= self.len),
            "shared word at {at} out of the mapping ({} bytes)",
            self.len
        );
        // SAFETY: the 8 bytes at `at` lie inside the mapping (checked above) and are 8-byte
        // aligned (the mapping is page-aligned, `at` a multiple of 8); they stay mapped for
        // as long as `self` is borrowed (unmapped only in Drop). Both processes access this
        // memory only as whole 8-byte atomics, as `AtomicU64::from_ptr` requires.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(at).cast()) }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are what mmap returned; no reference into the mapping outlives
        // `self` (every `word` borrows `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Why a side stopped waiting.
#[derive(Debug)]
enum Halt {
    /// The parent asked the child to stop (the child's normal end).
    Stop,
    /// Something went wrong.
    Fail(String),
}

impl From<String> for Halt {
    fn from(s: String) -> Halt {
        Halt::Fail(s)
    }
}

impl Halt {
    fn into_message(self) -> String {
        match self {
            Halt::Stop => "stopped".into(),
            Halt::Fail(m) => m,
        }
    }
}

/// The other side of a [`Watch`].
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// The limit child, from the parent.
    Child(i32),
    /// The parent, from the child.
    Parent(i32),
}

/// What a spinning side checks now and then: its deadline, and the other side.
struct Watch<'a> {
    shm: &'a Shm,
    deadline: Instant,
    /// The other side: the child's pid on the parent's side, the parent's on the child's.
    peer: Peer,
    what: &'static str,
}

impl Watch<'_> {
    #[cold]
    fn check(&self) -> Result<(), Halt> {
        match self.peer {
            Peer::Child(pid) => {
                if self.shm.word(FAILED_AT).load(Ordering::Acquire) != 0 {
                    return Err(Halt::Fail(format!(
                        "limit: the child failed during {} (its message is above)",
                        self.what
                    )));
                }
                // Whether it has exited, without reaping it (its status is read later).
                use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
                let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
                match waitid(Id::Pid(nix::unistd::Pid::from_raw(pid)), flags) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(st) => {
                        return Err(Halt::Fail(format!(
                            "limit: the child ended during {} ({st:?})",
                            self.what
                        )));
                    }
                    Err(e) => return Err(Halt::Fail(format!("limit: waitid: {e}"))),
                }
            }
            Peer::Parent(ppid) => {
                if self.shm.word(STOP_AT).load(Ordering::Acquire) != 0 {
                    return Err(Halt::Stop);
                }
                // SAFETY: getppid has no preconditions.
                if unsafe { libc::getppid() } != ppid {
                    return Err(Halt::Fail("the parent went away".into()));
                }
            }
        }
        if Instant::now() > self.deadline {
            return Err(Halt::Fail(format!(
                "limit: no progress in {} before the deadline (is another process spinning on these cores?)",
                self.what
            )));
        }
        Ok(())
    }

    /// Spin until `ready` says so, checking now and then.
    #[inline(always)]
    fn spin_until(&self, mut ready: impl FnMut() -> Result<bool, Halt>) -> Result<(), Halt> {
        let mut spins = 0u32;
        loop {
            if ready()? {
                return Ok(());
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % CHECK_EVERY == 0 {
                self.check()?;
            }
        }
    }
}

/// The producing side of a ring of two-word messages.
struct Producer<'a> {
    shm: &'a Shm,
    at: RingAt,
    /// Next position to write (published up to it by `publish`).
    head: u64,
    /// The consumer's position as last read.
    tail: u64,
}

impl<'a> Producer<'a> {
    fn new(shm: &'a Shm, at: RingAt) -> Self {
        Producer {
            shm,
            at,
            head: 0,
            tail: 0,
        }
    }

    /// Write one message if there is room (unpublished until [`Producer::publish`]).
    #[inline(always)]
    fn push(&mut self, a: u64, b: u64) -> Result<bool, Halt> {
        if self.head.wrapping_sub(self.tail) >= self.at.cap {
            let tail = self.shm.word(self.at.tail).load(Ordering::Acquire);
            // The consumer cannot be ahead of us, nor more than a ring behind.
            if self.head.wrapping_sub(tail) > self.at.cap {
                return Err(Halt::Fail(format!(
                    "limit: ring consumer position {tail} out of range (producer at {})",
                    self.head
                )));
            }
            self.tail = tail;
            if self.head.wrapping_sub(tail) >= self.at.cap {
                return Ok(false);
            }
        }
        let slot = self.at.slots + (self.head & (self.at.cap - 1)) as usize * 16;
        self.shm.word(slot).store(a, Ordering::Relaxed);
        self.shm.word(slot + 8).store(b, Ordering::Relaxed);
        self.head = self.head.wrapping_add(1);
        Ok(true)
    }

    /// Make every written message visible to the consumer.
    #[inline(always)]
    fn publish(&self) {
        self.shm
            .word(self.at.head)
            .store(self.head, Ordering::Release);
    }
}

/// The consuming side of a ring of two-word messages.
struct Consumer<'a> {
    shm: &'a Shm,
    at: RingAt,
    /// Next position to read (released up to it by `release`).
    tail: u64,
    /// The producer's position as last read.
    head: u64,
}

impl<'a> Consumer<'a> {
    fn new(shm: &'a Shm, at: RingAt) -> Self {
        Consumer {
            shm,
            at,
            tail: 0,
            head: 0,
        }
    }

    /// How many messages can be read now.
    #[inline(always)]
    fn available(&mut self) -> Result<u64, Halt> {
        if self.head == self.tail {
            let head = self.shm.word(self.at.head).load(Ordering::Acquire);
            // The producer cannot be behind us, nor more than a ring ahead.
            if head.wrapping_sub(self.tail) > self.at.cap {
                return Err(Halt::Fail(format!(
                    "limit: ring producer position {head} out of range (consumer at {})",
                    self.tail
                )));
            }
            self.head = head;
        }
        Ok(self.head.wrapping_sub(self.tail))
    }

    /// Read the next message; only after [`Consumer::available`] said there is one.
    #[inline(always)]
    fn read(&mut self) -> (u64, u64) {
        debug_assert!(self.head != self.tail);
        let slot = self.at.slots + (self.tail & (self.at.cap - 1)) as usize * 16;
        let a = self.shm.word(slot).load(Ordering::Relaxed);
        let b = self.shm.word(slot + 8).load(Ordering::Relaxed);
        self.tail = self.tail.wrapping_add(1);
        (a, b)
    }

    /// Give every read slot back to the producer.
    #[inline(always)]
    fn release(&self) {
        self.shm
            .word(self.at.tail)
            .store(self.tail, Ordering::Release);
    }
}

/// The ping-pong's result.
#[derive(Debug, Clone)]
pub struct PingPong {
    /// Round trips measured (after the warm-up).
    pub round_trips: u64,
    /// Seconds they took.
    pub seconds: f64,
}

impl PingPong {
    /// Nanoseconds per round trip.
    pub fn ns(&self) -> f64 {
        self.seconds * 1e9 / self.round_trips.max(1) as f64
    }
}

/// A bare request/response run's result.
#[derive(Debug, Clone)]
pub struct Pipe {
    /// Requests in flight.
    pub depth: usize,
    /// Keys in the answering side's map.
    pub keys: u64,
    /// Answers received (after the warm-up).
    pub ops: u64,
    /// Seconds they took.
    pub seconds: f64,
    /// Every this-many-th request's latency was taken.
    pub sampled_every: usize,
    /// Submit→answer latency percentiles, nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Answers checked (warm-up included), all right.
    pub checked: u64,
}

impl Pipe {
    /// Answers per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }
}

/// A memcpy rate.
#[derive(Debug, Clone)]
pub struct CopyRate {
    /// Bytes per copy.
    pub size: usize,
    /// Bytes copied (after the warm-up).
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
}

impl CopyRate {
    /// MB (10⁶ bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / 1e6
    }
}

/// Every baseline of one run.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Cache-line ping-pong.
    pub pingpong: PingPong,
    /// Bare request/response, one at a time.
    pub depth1: Pipe,
    /// Bare request/response, `--pipeline` in flight.
    pub deep: Pipe,
    /// memcpy of each value size.
    pub memcpy: Vec<CopyRate>,
    /// Seconds the whole measurement took (child start and warm-ups included).
    pub seconds: f64,
}

impl Limit {
    /// The memcpy rate of `size`-byte copies, if measured.
    pub fn memcpy_of(&self, size: usize) -> Option<&CopyRate> {
        self.memcpy.iter().find(|c| c.size == size)
    }

    /// Answers the baselines checked.
    pub fn checked(&self) -> u64 {
        self.depth1.checked + self.deep.checked
    }

    /// One JSON record per baseline, each with `"system": "limit"`.
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        let pipe = |name: &str, p: &Pipe| {
            json!({
                "system": "limit",
                "baseline": name,
                "depth": p.depth,
                "keys": p.keys,
                "ops": p.ops,
                "seconds": p.seconds,
                "ops_per_sec": p.ops_per_sec(),
                "p50_ns": p.p50_ns,
                "p99_ns": p.p99_ns,
                "p999_ns": p.p999_ns,
                "latency_sampled_every": p.sampled_every,
                "answers_checked": p.checked,
                "answers_wrong": 0,
            })
        };
        let mut v = vec![
            json!({
                "system": "limit",
                "baseline": "pingpong",
                "round_trips": self.pingpong.round_trips,
                "seconds": self.pingpong.seconds,
                "ns_per_round_trip": self.pingpong.ns(),
            }),
            pipe("bare_depth1", &self.depth1),
            pipe("bare_pipelined", &self.deep),
        ];
        v.extend(self.memcpy.iter().map(|c| {
            json!({
                "system": "limit",
                "baseline": "memcpy",
                "value_size": c.size,
                "bytes": c.bytes,
                "seconds": c.seconds,
                "mb_per_sec": c.mb_per_sec(),
            })
        }));
        v
    }
}

/// Warm-up before each baseline's measurement.
fn warmup(secs: f64) -> Duration {
    Duration::from_secs_f64((secs * 0.2).min(0.1))
}

/// Measure every baseline: each process baseline for `secs` (after a short warm-up), the
/// child's map holding `keys` keys, the deep pipe at `depth`; then memcpy of each of
/// `value_sizes` for `secs / 2` each.
pub fn measure(keys: u64, depth: usize, value_sizes: &[usize], secs: f64) -> Result<Limit, String> {
    let t0 = Instant::now();
    let (pingpong, depth1, deep) = measure_processes(keys, depth, secs)?;
    let memcpy = memcpy_rates(value_sizes, secs / 2.0);
    Ok(Limit {
        pingpong,
        depth1,
        deep,
        memcpy,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The limit child, killed (and reaped) on drop if it is still running.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Wait up to `limit` for `child` to exit.
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(1)),
            _ => return None,
        }
    }
}

/// Create the sealed shared object of `len` bytes; its descriptor is close-on-exec (cleared
/// only in the limit child, between fork and exec).
fn create_object(len: usize) -> Result<OwnedFd, String> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    let e = |what: &str, e: nix::Error| format!("limit: {what}: {e}");
    let fd = memfd_create(
        c"shmkv-bench-limit",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|x| e("memfd_create", x))?;
    nix::unistd::ftruncate(&fd, len as libc::off_t).map_err(|x| e("ftruncate", x))?;
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
    fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(|x| e("seal", x))?;
    Ok(fd)
}

/// The ping-pong and both pipes, against one child.
fn measure_processes(keys: u64, depth: usize, secs: f64) -> Result<(PingPong, Pipe, Pipe), String> {
    use std::os::unix::process::CommandExt;
    let cap = (depth.max(2).next_power_of_two() as u64).min(MAX_CAP);
    let depth = depth.min(cap as usize);
    let layout = Layout::new(cap);
    let fd = create_object(layout.len)?;
    let shm = Shm::map(&fd, layout.len)?;
    shm.word(MAGIC_AT).store(MAGIC, Ordering::Release);
    // The child's lifetime: three baselines and their warm-ups, and a wide margin.
    let lifetime = 3.0 * (secs + 0.1) + 30.0;
    let raw: RawFd = fd.as_raw_fd();
    let spec = format!("{raw}:{cap}:{keys}:{}:{lifetime}", std::process::id());
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(me);
    cmd.args(["--limit-child", &spec])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec only async-signal-safe calls that touch no memory of
    // ours: fcntl clears close-on-exec on the child's copy of the object's descriptor (the
    // parent's keeps it, so no other child inherits it), prctl makes the child die with us.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut peer = ChildGuard(
        cmd.spawn()
            .map_err(|e| format!("limit: cannot start the child: {e}"))?,
    );
    // The child fills its map first: allow for a large key set.
    let ready_by = Instant::now() + Duration::from_secs(30 + keys / 1_000_000 * 2);
    while shm.word(READY_AT).load(Ordering::Acquire) == 0 {
        if let Ok(Some(st)) = peer.0.try_wait() {
            return Err(format!(
                "limit: the child exited before it was ready ({st})"
            ));
        }
        if Instant::now() > ready_by {
            return Err("limit: the child was not ready in time".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let res = (|| -> Result<_, Halt> {
        let child = Peer::Child(peer.0.id() as i32);
        let pp = ping_pong(&shm, child, secs)?;
        let mut tx = Producer::new(&shm, layout.req);
        let mut rx = Consumer::new(&shm, layout.resp);
        let d1 = pipe(&shm, child, (&mut tx, &mut rx), keys, 1, secs)?;
        let dd = pipe(&shm, child, (&mut tx, &mut rx), keys, depth, secs)?;
        Ok((pp, d1, dd))
    })();
    shm.word(STOP_AT).store(1, Ordering::Release);
    let res = res.map_err(Halt::into_message)?;
    match exit_within(&mut peer.0, Duration::from_secs(5)) {
        Some(st) if st.success() => Ok(res),
        Some(st) => Err(format!("limit: the child failed ({st})")),
        None => Err("limit: the child did not stop".into()),
    }
}

/// The ping-pong, parent's side: write odd n, wait for n+1.
fn ping_pong(shm: &Shm, child: Peer, secs: f64) -> Result<PingPong, Halt> {
    let w = shm.word(PING_AT);
    let start = Instant::now();
    let warm_end = start + warmup(secs);
    let end = warm_end + Duration::from_secs_f64(secs);
    let watch = Watch {
        shm,
        deadline: end + Duration::from_secs(5),
        peer: child,
        what: "the ping-pong",
    };
    let mut n = 1u64;
    let mut count = 0u64;
    let mut t0 = start;
    let mut measuring = false;
    loop {
        for _ in 0..256 {
            w.store(n, Ordering::Release);
            watch.spin_until(|| Ok(w.load(Ordering::Acquire) == n + 1))?;
            n += 2;
        }
        count += 256;
        let now = Instant::now();
        if !measuring && now >= warm_end {
            measuring = true;
            count = 0;
            t0 = now;
        } else if measuring && now >= end {
            w.store(PING_DONE, Ordering::Release);
            return Ok(PingPong {
                round_trips: count,
                seconds: now.duration_since(t0).as_secs_f64(),
            });
        }
    }
}

/// A bare pipe, parent's side: keep `depth` requests in flight for `secs` (after a warm-up),
/// refilling as answers arrive; check every answer; time every request at depth 1, every
/// [`SAMPLE_EVERY`]th otherwise.
fn pipe(
    shm: &Shm,
    child: Peer,
    (tx, rx): (&mut Producer<'_>, &mut Consumer<'_>),
    keys: u64,
    depth: usize,
    secs: f64,
) -> Result<Pipe, Halt> {
    let cap = tx.at.cap;
    let mask = cap - 1;
    let every = if depth == 1 { 1 } else { SAMPLE_EVERY as u64 };
    let start = Instant::now();
    let warm_end = start + warmup(secs);
    let end = warm_end + Duration::from_secs_f64(secs);
    let watch = Watch {
        shm,
        deadline: end + Duration::from_secs(5),
        peer: child,
        what: "the bare request/response",
    };
    // Per ring position (mod cap): the value its answer must carry, and when it was sent.
    let mut expect = vec![0u64; cap as usize];
    let mut sent_at = vec![start; cap as usize];
    let mut hist: Histogram<u64> = new_hist();
    let mut key_index = 0u64;
    let mut in_flight = 0usize;
    let (mut ops, mut checked, mut since_clock) = (0u64, 0u64, 0u32);
    let mut t0 = start;
    let mut measuring = false;
    let mut submitting = true;
    let mut last = start;
    loop {
        if submitting && in_flight < depth {
            while in_flight < depth {
                let pos = tx.head;
                let key = key_of(key_index);
                key_index = if key_index + 1 == keys {
                    0
                } else {
                    key_index + 1
                };
                expect[(pos & mask) as usize] = value_of(key);
                if pos % every == 0 {
                    sent_at[(pos & mask) as usize] = Instant::now();
                }
                if !tx.push(pos, key)? {
                    return Err(Halt::Fail("limit: request ring full".into()));
                }
                in_flight += 1;
            }
            tx.publish();
        }
        if in_flight == 0 {
            break;
        }
        let mut n = 0;
        watch.spin_until(|| {
            n = rx.available()?;
            Ok(n > 0)
        })?;
        for _ in 0..n {
            let pos = rx.tail;
            let (tag, value) = rx.read();
            if tag != pos || value != expect[(pos & mask) as usize] {
                return Err(Halt::Fail(format!(
                    "limit: wrong answer at position {pos}: tag {tag}, value {value:#x}, expected {:#x}",
                    expect[(pos & mask) as usize]
                )));
            }
            if pos % every == 0 {
                let _ = hist.record(ns_since(sent_at[(pos & mask) as usize]));
            }
            in_flight -= 1;
            ops += 1;
            checked += 1;
        }
        rx.release();
        since_clock += n as u32;
        if since_clock >= 1024 {
            since_clock = 0;
            let now = Instant::now();
            if !measuring && now >= warm_end {
                measuring = true;
                ops = 0;
                hist.reset();
                t0 = now;
            } else if measuring && now >= end {
                submitting = false;
            }
            last = now;
        }
        if !submitting && in_flight == 0 {
            last = Instant::now();
        }
    }
    Ok(Pipe {
        depth,
        keys,
        ops,
        seconds: last.duration_since(t0).as_secs_f64(),
        sampled_every: every as usize,
        p50_ns: hist.value_at_quantile(0.5),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        checked,
    })
}

/// The limit child (`--limit-child FD:CAP:KEYS:PARENT:LIFETIME`): map the parent's object,
/// fill a map with the run's keys, answer the ping-pong, then the request ring, until the
/// parent says stop.
pub fn run_child(spec: &str) -> ExitCode {
    let f: Vec<&str> = spec.split(':').collect();
    let parsed = (|| {
        Some((
            f.first()?.parse::<RawFd>().ok()?,
            f.get(1)?.parse::<u64>().ok()?,
            f.get(2)?.parse::<u64>().ok()?,
            f.get(3)?.parse::<i32>().ok()?,
            f.get(4)?.parse::<f64>().ok()?,
        ))
    })();
    let Some((fd, cap, keys, parent, lifetime)) = parsed else {
        eprintln!("shmkv-bench: bad --limit-child spec");
        return ExitCode::from(2);
    };
    match child(fd, cap, keys, parent, lifetime) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmkv-bench limit child: {e}");
            ExitCode::from(1)
        }
    }
}

fn child(fd: RawFd, cap: u64, keys: u64, parent: i32, lifetime: f64) -> Result<(), String> {
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err("the parent went away before the start".into());
    }
    if !cap.is_power_of_two() || !(2..=MAX_CAP).contains(&cap) || keys == 0 || fd < 3 {
        return Err(format!(
            "bad parameters: fd {fd}, ring of {cap}, {keys} keys"
        ));
    }
    let deadline = Duration::try_from_secs_f64(lifetime)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
        .ok_or("bad lifetime")?;
    let layout = Layout::new(cap);
    // The descriptor must be open, and the object exactly the size of the layout.
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
        .map_err(|e| format!("descriptor {fd}: {e}"))?;
    // SAFETY: `fd` is open (checked just above) and was handed to this process by the parent
    // for this alone: nothing else in this process owns or closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| format!("fstat: {e}"))?;
    if st.st_size != layout.len as libc::off_t || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return Err(format!(
            "the shared object is {} bytes (mode {:o}), not the {} of a ring of {cap}",
            st.st_size, st.st_mode, layout.len
        ));
    }
    let shm = Shm::map(&fd, layout.len)?;
    drop(fd);
    let failed = |e: String| {
        shm.word(FAILED_AT).store(1, Ordering::Release);
        e
    };
    if shm.word(MAGIC_AT).load(Ordering::Acquire) != MAGIC {
        return Err(failed("the shared object is not the parent's".into()));
    }
    let map: HashMap<u64, u64> = (0..keys)
        .map(|i| (key_of(i), value_of(key_of(i))))
        .collect();
    shm.word(READY_AT).store(1, Ordering::Release);
    let watch = Watch {
        shm: &shm,
        deadline,
        peer: Peer::Parent(parent),
        what: "the limit child",
    };
    match serve(&shm, layout, &map, &watch) {
        Ok(()) | Err(Halt::Stop) => Ok(()),
        Err(Halt::Fail(e)) => Err(failed(e)),
    }
}

/// The child's work: answer the ping-pong until [`PING_DONE`], then answer requests from
/// the map until stopped.
fn serve(
    shm: &Shm,
    layout: Layout,
    map: &HashMap<u64, u64>,
    watch: &Watch<'_>,
) -> Result<(), Halt> {
    let w = shm.word(PING_AT);
    let mut last = 0u64;
    loop {
        let mut v = 0;
        watch.spin_until(|| {
            v = w.load(Ordering::Acquire);
            Ok(v % 2 == 1 && v != last)
        })?;
        if v == PING_DONE {
            break;
        }
        w.store(v + 1, Ordering::Release);
        last = v;
    }
    let mut rx = Consumer::new(shm, layout.req);
    let mut tx = Producer::new(shm, layout.resp);
    loop {
        let mut n = 0;
        watch.spin_until(|| {
            n = rx.available()?;
            Ok(n > 0)
        })?;
        for _ in 0..n {
            let (tag, key) = rx.read();
            let value = map.get(&key).copied().unwrap_or(0);
            if !tx.push(tag, value)? {
                // The parent keeps fewer in flight than the ring holds; wait all the same.
                tx.publish();
                watch.spin_until(|| tx.push(tag, value))?;
            }
        }
        rx.release();
        tx.publish();
    }
}

/// Bytes of each memcpy buffer: more than the caches hold.
const ARENA: usize = 64 << 20;

/// memcpy (`copy_from_slice`) of each size in `sizes`, single-threaded, `secs` each after a
/// warm-up: consecutive `size`-byte pieces of one 64 MiB buffer into another, wrapping.
fn memcpy_rates(sizes: &[usize], secs: f64) -> Vec<CopyRate> {
    use std::hint::black_box;
    let arena_of = |s: usize| {
        if s >= ARENA {
            s
        } else {
            ARENA / s.max(1) * s.max(1)
        }
    };
    let biggest = sizes.iter().map(|&s| arena_of(s)).max().unwrap_or(0);
    // Filled (not zeroed), so that every page is faulted in before any timing.
    let src = vec![0x5Au8; biggest];
    let mut dst = vec![0xA5u8; biggest];
    let mut out = Vec::new();
    for &size in sizes {
        let size = size.max(1);
        let chunks = arena_of(size) / size;
        // Copies between clock reads: about 1 MiB of them.
        let batch = ((1 << 20) / size).clamp(1, chunks);
        let start = Instant::now();
        let warm_end = start + warmup(secs);
        let end = warm_end + Duration::from_secs_f64(secs);
        let (mut c, mut copies, mut t0, mut measuring) = (0usize, 0u64, start, false);
        loop {
            for _ in 0..batch {
                let off = c * size;
                dst[off..off + size].copy_from_slice(black_box(&src[off..off + size]));
                black_box(&mut dst[off..off + size]);
                c += 1;
                if c == chunks {
                    c = 0;
                }
            }
            copies += batch as u64;
            let now = Instant::now();
            if !measuring && now >= warm_end {
                measuring = true;
                copies = 0;
                t0 = now;
            } else if measuring && now >= end {
                out.push(CopyRate {
                    size,
                    bytes: copies * size as u64,
                    seconds: now.duration_since(t0).as_secs_f64(),
                });
                break;
            }
        }
    }
    out
}
