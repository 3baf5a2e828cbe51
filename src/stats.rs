//! Server statistics: the counters a lane keeps on its hot path ([`LaneCounters`]), the
//! sampled service-time histogram ([`Latency`]), and the typed set a Stats request returns
//! ([`Stats`], sent as [`Stat`] slots; the wire table is in [`crate::protocol`]).
//!
//! # Cost on the hot path
//!
//! * Counting is a relaxed load and store of a lane-private `u64` (no read-modify-write): every
//!   count is taken while the lane's consumer lock is held, so one writer at a time.
//! * One request in [`DEFAULT_SAMPLE_EVERY`] (per lane) is timed: two clock reads, then a short
//!   critical section on a mutex to record the time in an HdrHistogram. The others pay nothing.
//!
//! The counters are `std` atomics and the histogram lock a `std` mutex on purpose, not the
//! [`crate::sync`] facade: they carry no synchronisation the ring or the table relies on, so the
//! model checker has no reason to explore them.

use crate::protocol::{ErrorCode, Op, Stat, StatId};
use crate::table::Table;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A lane times one request in this many (a power of two).
pub const DEFAULT_SAMPLE_EVERY: u64 = 64;

/// The latency window: percentiles cover the samples of the last one to two windows.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(10);

/// Highest service time the histogram records exactly (longer ones are recorded as this).
const MAX_TRACKED_NS: u64 = 3_600_000_000_000;

/// Requests of each kind, as counted by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Insert requests.
    pub insert: u64,
    /// Read requests.
    pub read: u64,
    /// Delete requests.
    pub delete: u64,
    /// Print requests.
    pub print: u64,
    /// ThStart requests.
    pub threads_start: u64,
    /// ThStop requests.
    pub threads_stop: u64,
    /// Quit requests.
    pub quit: u64,
    /// Stats requests.
    pub stats: u64,
}

impl OpCounts {
    /// All requests that decoded.
    pub fn total(&self) -> u64 {
        self.fields().iter().map(|(_, v)| *v).sum()
    }

    /// Each count with its [`StatId`] and its name, in wire order.
    pub fn fields(&self) -> [(StatId, u64); 8] {
        [
            (StatId::OPS_INSERT, self.insert),
            (StatId::OPS_READ, self.read),
            (StatId::OPS_DELETE, self.delete),
            (StatId::OPS_PRINT, self.print),
            (StatId::OPS_THREADS_START, self.threads_start),
            (StatId::OPS_THREADS_STOP, self.threads_stop),
            (StatId::OPS_QUIT, self.quit),
            (StatId::OPS_STATS, self.stats),
        ]
    }

    fn field_mut(&mut self, id: StatId) -> Option<&mut u64> {
        Some(match id {
            StatId::OPS_INSERT => &mut self.insert,
            StatId::OPS_READ => &mut self.read,
            StatId::OPS_DELETE => &mut self.delete,
            StatId::OPS_PRINT => &mut self.print,
            StatId::OPS_THREADS_START => &mut self.threads_start,
            StatId::OPS_THREADS_STOP => &mut self.threads_stop,
            StatId::OPS_QUIT => &mut self.quit,
            StatId::OPS_STATS => &mut self.stats,
            _ => return None,
        })
    }
}

impl std::ops::AddAssign for OpCounts {
    fn add_assign(&mut self, o: OpCounts) {
        for (id, v) in o.fields() {
            if let Some(f) = self.field_mut(id) {
                *f += v;
            }
        }
    }
}

/// Requests refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// [`ErrorCode::BadBucket`].
    pub bad_bucket: u64,
    /// [`ErrorCode::ThreadLimit`].
    pub thread_limit: u64,
    /// [`ErrorCode::LastWorker`].
    pub last_worker: u64,
    /// [`ErrorCode::ShuttingDown`].
    pub shutting_down: u64,
    /// [`ErrorCode::Malformed`].
    pub malformed: u64,
}

impl ErrorCounts {
    /// All refusals.
    pub fn total(&self) -> u64 {
        self.fields().iter().map(|(_, v)| *v).sum()
    }

    /// Each count with its [`StatId`], in wire order.
    pub fn fields(&self) -> [(StatId, u64); 5] {
        [
            (StatId::ERRORS_BAD_BUCKET, self.bad_bucket),
            (StatId::ERRORS_THREAD_LIMIT, self.thread_limit),
            (StatId::ERRORS_LAST_WORKER, self.last_worker),
            (StatId::ERRORS_SHUTTING_DOWN, self.shutting_down),
            (StatId::ERRORS_MALFORMED, self.malformed),
        ]
    }

    fn field_mut(&mut self, id: StatId) -> Option<&mut u64> {
        Some(match id {
            StatId::ERRORS_BAD_BUCKET => &mut self.bad_bucket,
            StatId::ERRORS_THREAD_LIMIT => &mut self.thread_limit,
            StatId::ERRORS_LAST_WORKER => &mut self.last_worker,
            StatId::ERRORS_SHUTTING_DOWN => &mut self.shutting_down,
            StatId::ERRORS_MALFORMED => &mut self.malformed,
            _ => return None,
        })
    }
}

impl std::ops::AddAssign for ErrorCounts {
    fn add_assign(&mut self, o: ErrorCounts) {
        for (id, v) in o.fields() {
            if let Some(f) = self.field_mut(id) {
                *f += v;
            }
        }
    }
}

/// One client slot as the server sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// The slot index.
    pub slot: u32,
    /// Pid of the attached client, 0 when the slot is free.
    pub owner_pid: u64,
    /// Worker threads serving the slot.
    pub workers: u64,
    /// Requests taken from the slot since the server started.
    pub requests: u64,
}

impl SlotStats {
    /// A client is attached.
    pub fn connected(&self) -> bool {
        self.owner_pid != 0
    }
}

/// Service time (from the moment a worker takes a request to the moment its answer is
/// published) of the sampled requests of a recent window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyStats {
    /// Requests timed in the window.
    pub samples: u64,
    /// Median, nanoseconds (0 without samples).
    pub p50_ns: u64,
    /// 99th percentile, nanoseconds.
    pub p99_ns: u64,
    /// 99.9th percentile, nanoseconds.
    pub p999_ns: u64,
    /// Longest, nanoseconds.
    pub max_ns: u64,
    /// How far back the window reaches, milliseconds.
    pub window_ms: u64,
    /// One request in this many is timed.
    pub sample_every: u64,
}

/// Everything a Stats request reports, taken at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests taken, by kind, from every client since the server started.
    pub ops: OpCounts,
    /// Requests refused, by reason.
    pub errors: ErrorCounts,
    /// Pairs in the table.
    pub entries: u64,
    /// Buckets in the table.
    pub buckets: u64,
    /// Pairs in the fullest bucket.
    pub longest_bucket: u64,
    /// Client slots of the server.
    pub client_slots: u64,
    /// Each client slot, by index.
    pub slots: Vec<SlotStats>,
    /// Sampled service times.
    pub latency: LatencyStats,
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
    /// Statistics this version does not know (sent by a newer server), as received.
    pub other: Vec<Stat>,
}

impl Stats {
    /// Clients attached now.
    pub fn connected(&self) -> usize {
        self.slots.iter().filter(|s| s.connected()).count()
    }

    /// Worker threads of every slot.
    pub fn worker_threads(&self) -> u64 {
        self.slots.iter().map(|s| s.workers).sum()
    }

    /// The wire form, in the documented order.
    pub fn to_stats(&self) -> Vec<Stat> {
        let one = |id, value| Stat {
            id,
            index: 0,
            value,
        };
        let mut v: Vec<Stat> = Vec::with_capacity(32 + 3 * self.slots.len());
        v.extend(self.ops.fields().iter().map(|&(id, x)| one(id, x)));
        v.extend(self.errors.fields().iter().map(|&(id, x)| one(id, x)));
        v.push(one(StatId::ENTRIES, self.entries));
        v.push(one(StatId::BUCKETS, self.buckets));
        v.push(one(StatId::LONGEST_BUCKET, self.longest_bucket));
        v.push(one(StatId::CLIENT_SLOTS, self.client_slots));
        for s in &self.slots {
            for (id, value) in [
                (StatId::SLOT_OWNER, s.owner_pid),
                (StatId::SLOT_WORKERS, s.workers),
                (StatId::SLOT_REQUESTS, s.requests),
            ] {
                v.push(Stat {
                    id,
                    index: s.slot,
                    value,
                });
            }
        }
        let l = &self.latency;
        for (id, x) in [
            (StatId::LATENCY_SAMPLES, l.samples),
            (StatId::LATENCY_P50_NS, l.p50_ns),
            (StatId::LATENCY_P99_NS, l.p99_ns),
            (StatId::LATENCY_P999_NS, l.p999_ns),
            (StatId::LATENCY_MAX_NS, l.max_ns),
            (StatId::LATENCY_WINDOW_MS, l.window_ms),
            (StatId::LATENCY_SAMPLE_EVERY, l.sample_every),
        ] {
            v.push(one(id, x));
        }
        v.push(one(StatId::UPTIME_MS, self.uptime_ms));
        v.extend_from_slice(&self.other);
        v
    }

    /// The typed form of statistics received in any order. Never fails: a statistic it does not
    /// know goes to [`Stats::other`]; for one sent twice, the last wins.
    pub fn from_stats(stats: &[Stat]) -> Stats {
        let mut out = Stats::default();
        let mut slots: BTreeMap<u32, SlotStats> = BTreeMap::new();
        for st in stats {
            let x = st.value;
            if let Some(f) = out.ops.field_mut(st.id) {
                *f = x;
                continue;
            }
            if let Some(f) = out.errors.field_mut(st.id) {
                *f = x;
                continue;
            }
            let l = &mut out.latency;
            match st.id {
                StatId::ENTRIES => out.entries = x,
                StatId::BUCKETS => out.buckets = x,
                StatId::LONGEST_BUCKET => out.longest_bucket = x,
                StatId::CLIENT_SLOTS => out.client_slots = x,
                StatId::SLOT_OWNER | StatId::SLOT_WORKERS | StatId::SLOT_REQUESTS => {
                    let s = slots.entry(st.index).or_insert(SlotStats {
                        slot: st.index,
                        ..SlotStats::default()
                    });
                    match st.id {
                        StatId::SLOT_OWNER => s.owner_pid = x,
                        StatId::SLOT_WORKERS => s.workers = x,
                        _ => s.requests = x,
                    }
                }
                StatId::LATENCY_SAMPLES => l.samples = x,
                StatId::LATENCY_P50_NS => l.p50_ns = x,
                StatId::LATENCY_P99_NS => l.p99_ns = x,
                StatId::LATENCY_P999_NS => l.p999_ns = x,
                StatId::LATENCY_MAX_NS => l.max_ns = x,
                StatId::LATENCY_WINDOW_MS => l.window_ms = x,
                StatId::LATENCY_SAMPLE_EVERY => l.sample_every = x,
                StatId::UPTIME_MS => out.uptime_ms = x,
                _ => out.other.push(*st),
            }
        }
        out.slots = slots.into_values().collect();
        out
    }
}

/// The table's part of the statistics: entries, buckets, longest bucket. Reads every bucket
/// under its read lock, one at a time.
pub fn table_stats<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Clone>(
    table: &Table<K, V, S>,
) -> (u64, u64, u64) {
    let buckets = table.bucket_count();
    let longest = (0..buckets)
        .filter_map(|b| table.read_bucket(b).map(|g| g.len()))
        .max()
        .unwrap_or(0);
    (table.len() as u64, buckets as u64, longest as u64)
}

/// One lane's counters. Written only by the worker holding the lane's consumer lock (so a
/// relaxed load and store suffice), read by anyone.
#[derive(Debug, Default)]
pub struct LaneCounters {
    taken: AtomicU64,
    ops: [AtomicU64; 8],
    errors: [AtomicU64; 5],
}

fn bump(c: &AtomicU64) -> u64 {
    let n = c.load(Relaxed) + 1;
    c.store(n, Relaxed);
    n
}

impl LaneCounters {
    /// Count a request taken from the ring (decoded or not); returns how many this lane has
    /// taken. The caller holds the lane's consumer lock.
    pub(crate) fn taken(&self) -> u64 {
        bump(&self.taken)
    }

    /// Count a decoded request of kind `op`. The caller holds the lane's consumer lock.
    pub(crate) fn op(&self, op: &Op) {
        let i = match op {
            Op::Insert { .. } => 0,
            Op::Read { .. } => 1,
            Op::Delete { .. } => 2,
            Op::Print { .. } => 3,
            Op::ThStart { .. } => 4,
            Op::ThStop => 5,
            Op::Quit => 6,
            Op::Stats => 7,
        };
        bump(&self.ops[i]);
    }

    /// Count a refusal. The caller holds the lane's consumer lock.
    pub(crate) fn error(&self, e: &ErrorCode) {
        let i = match e {
            ErrorCode::BadBucket { .. } => 0,
            ErrorCode::ThreadLimit { .. } => 1,
            ErrorCode::LastWorker => 2,
            ErrorCode::ShuttingDown => 3,
            ErrorCode::Malformed => 4,
        };
        bump(&self.errors[i]);
    }

    /// Requests taken from the ring so far.
    pub fn requests(&self) -> u64 {
        self.taken.load(Relaxed)
    }

    /// Decoded requests so far, by kind.
    pub fn op_counts(&self) -> OpCounts {
        let o = |i: usize| self.ops[i].load(Relaxed);
        OpCounts {
            insert: o(0),
            read: o(1),
            delete: o(2),
            print: o(3),
            threads_start: o(4),
            threads_stop: o(5),
            quit: o(6),
            stats: o(7),
        }
    }

    /// Refusals so far, by reason.
    pub fn error_counts(&self) -> ErrorCounts {
        let e = |i: usize| self.errors[i].load(Relaxed);
        ErrorCounts {
            bad_bucket: e(0),
            thread_limit: e(1),
            last_worker: e(2),
            shutting_down: e(3),
            malformed: e(4),
        }
    }
}

struct Window {
    current: Option<Box<Histogram<u64>>>,
    previous: Option<Box<Histogram<u64>>>,
    started: Instant,
}

impl Window {
    /// Start a new window if the current one is over (dropping the one before it).
    fn rotate(&mut self, now: Instant, window: Duration) {
        let age = now.saturating_duration_since(self.started);
        if age >= window {
            self.previous = if age >= 2 * window {
                None
            } else {
                self.current.take()
            };
            self.current = None;
            self.started = now;
        }
    }
}

/// Service times of sampled requests over a recent window, in an HdrHistogram (2 significant
/// digits, 1 ns to 1 hour). Two histograms alternate: percentiles cover the current window and
/// the one before it, so between one and two [`Latency::window`] lengths.
pub struct Latency {
    window: Duration,
    inner: Mutex<Window>,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new(LATENCY_WINDOW)
    }
}

impl Latency {
    /// An empty recorder whose windows last `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            inner: Mutex::new(Window {
                current: None,
                previous: None,
                started: Instant::now(),
            }),
        }
    }

    /// How long one window lasts.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Record one service time.
    pub fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_NS);
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.rotate(Instant::now(), self.window);
        let h = w.current.get_or_insert_with(|| {
            Box::new(
                Histogram::new_with_bounds(1, MAX_TRACKED_NS, 2)
                    .expect("constant histogram bounds are valid"),
            )
        });
        h.saturating_record(ns);
    }

    /// Percentiles of the samples in the window (`sample_every` is filled in by the caller).
    pub fn snapshot(&self) -> LatencyStats {
        let now = Instant::now();
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.rotate(now, self.window);
        let reach = self.window + now.saturating_duration_since(w.started);
        let mut out = LatencyStats {
            window_ms: if w.previous.is_some() {
                reach.as_millis() as u64
            } else {
                now.saturating_duration_since(w.started).as_millis() as u64
            },
            ..LatencyStats::default()
        };
        let mut all: Option<Histogram<u64>> = None;
        for h in [&w.previous, &w.current].into_iter().flatten() {
            match &mut all {
                None => all = Some((**h).clone()),
                Some(a) => {
                    let _ = a.add(&**h);
                }
            }
        }
        drop(w);
        if let Some(h) = all.filter(|h| !h.is_empty()) {
            out.samples = h.len();
            out.p50_ns = h.value_at_quantile(0.50);
            out.p99_ns = h.value_at_quantile(0.99);
            out.p999_ns = h.value_at_quantile(0.999);
            out.max_ns = h.max();
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn sample() -> Stats {
        Stats {
            ops: OpCounts {
                insert: 1,
                read: 2,
                delete: 3,
                print: 4,
                threads_start: 5,
                threads_stop: 6,
                quit: 7,
                stats: 8,
            },
            errors: ErrorCounts {
                bad_bucket: 9,
                thread_limit: 10,
                last_worker: 11,
                shutting_down: 12,
                malformed: 13,
            },
            entries: 14,
            buckets: 15,
            longest_bucket: 16,
            client_slots: 2,
            slots: vec![
                SlotStats {
                    slot: 0,
                    owner_pid: 17,
                    workers: 18,
                    requests: 19,
                },
                SlotStats {
                    slot: 1,
                    owner_pid: 0,
                    workers: 1,
                    requests: 0,
                },
            ],
            latency: LatencyStats {
                samples: 20,
                p50_ns: 21,
                p99_ns: 22,
                p999_ns: 23,
                max_ns: 24,
                window_ms: 25,
                sample_every: 26,
            },
            uptime_ms: 27,
            other: vec![Stat {
                id: StatId(999),
                index: 3,
                value: 28,
            }],
        }
    }

    #[test]
    fn stats_round_trip_through_the_wire_form() {
        let s = sample();
        let wire = s.to_stats();
        assert_eq!(wire.len(), 8 + 5 + 4 + 3 * 2 + 7 + 1 + 1);
        assert_eq!(Stats::from_stats(&wire), s);
        // Order does not matter.
        let mut rev = wire.clone();
        rev.reverse();
        assert_eq!(Stats::from_stats(&rev), s);
        assert_eq!(s.ops.total(), 36);
        assert_eq!(s.errors.total(), 55);
        assert_eq!(s.connected(), 1);
        assert_eq!(s.worker_threads(), 19);
    }

    /// The ids in the first column of protocol.rs's statistics table ("N" or "A–B").
    fn documented_ids() -> Vec<u16> {
        let doc = include_str!("protocol.rs");
        let table = &doc[doc.find("# Statistics").unwrap()..];
        let mut ids = Vec::new();
        for line in table.lines().skip(1).take_while(|l| l.starts_with("//!")) {
            let Some(cell) = line.strip_prefix("//! |").and_then(|r| r.split('|').next()) else {
                continue;
            };
            let cell = cell.trim();
            if let Some((a, b)) = cell.split_once('–') {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    ids.extend(a..=b);
                }
            } else if let Ok(n) = cell.parse::<u16>() {
                ids.push(n);
            }
        }
        ids
    }

    #[test]
    fn the_documented_table_lists_exactly_the_known_ids() {
        let mut sent: Vec<u16> = sample()
            .to_stats()
            .iter()
            .map(|s| s.id.0)
            .filter(|&id| id != 999)
            .collect();
        sent.sort_unstable();
        sent.dedup();
        assert_eq!(sent, documented_ids());
    }

    #[test]
    fn lane_counters_count() {
        let c = LaneCounters::default();
        assert_eq!(c.taken(), 1);
        assert_eq!(c.taken(), 2);
        c.op(&Op::Read { key: 1 });
        c.op(&Op::Stats);
        c.op(&Op::Stats);
        c.error(&ErrorCode::LastWorker);
        assert_eq!(c.requests(), 2);
        assert_eq!(
            c.op_counts(),
            OpCounts {
                read: 1,
                stats: 2,
                ..OpCounts::default()
            }
        );
        assert_eq!(c.error_counts().last_worker, 1);
        assert_eq!(c.error_counts().total(), 1);
    }

    #[test]
    fn latency_percentiles_and_window() {
        let l = Latency::new(Duration::from_secs(3600));
        assert_eq!(l.snapshot().samples, 0);
        for i in 1..=1000u64 {
            l.record(Duration::from_micros(i));
        }
        let s = l.snapshot();
        assert_eq!(s.samples, 1000);
        // Two significant digits: within 1%.
        let near = |got: u64, want: u64| got.abs_diff(want) * 100 <= want;
        assert!(near(s.p50_ns, 500_000), "{s:?}");
        assert!(near(s.p99_ns, 990_000), "{s:?}");
        assert!(near(s.p999_ns, 999_000), "{s:?}");
        assert!(near(s.max_ns, 1_000_000), "{s:?}");
        // A window of zero length drops everything at the next look.
        let z = Latency::new(Duration::ZERO);
        z.record(Duration::from_micros(5));
        assert_eq!(z.snapshot().samples, 0);
    }
}
