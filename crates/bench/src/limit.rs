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

mod child;
mod memcpy;
mod parent;
mod ring;
mod shm;
mod watch;

pub use child::run_child;

#[cfg(doc)]
use crate::modes::SAMPLE_EVERY;
use memcpy::memcpy_rates;
use parent::measure_processes;
use serde_json::json;
use std::time::{Duration, Instant};

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
