//! Server statistics: the counters a lane keeps on its hot path ([`LaneCounters`]), the
//! sampled service-time histogram ([`Latency`]), and the typed set a Stats request returns
//! ([`Stats`], sent as [`Stat`]s; the wire table is in [`crate::wire`]).
//!
//! # Cost on the hot path
//!
//! * Counting is a relaxed load and store of a lane-private `u64` (no read-modify-write): every
//!   count is taken while the lane's consumer lock is held, so one writer at a time.
//! * One request in [`DEFAULT_SAMPLE_EVERY`] (per lane) is timed: two clock reads, then a short
//!   critical section on a mutex to record the time in an HdrHistogram. The others pay nothing.
//!
//! The counters and the histogram lock come from [`crate::sync::unmodeled`], the facade's
//! part that loom does not model: they carry no synchronisation the ring or the table relies
//! on, so the model checker has no reason to explore them.

use crate::sync::unmodeled::{AtomicU64, Mutex, Ordering::Relaxed};
use crate::wire::{ERROR_CODES, ERROR_NAMES, ErrorCode, Stat, StatId, VERBS, Verb};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A lane times one request in this many (a power of two).
pub const DEFAULT_SAMPLE_EVERY: u64 = 64;

/// The latency window: percentiles cover the samples of the last one to two windows.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(10);

/// Highest service time the histogram records exactly (longer ones are recorded as this).
const MAX_TRACKED_NS: u64 = 3_600_000_000_000;

/// Requests of each kind, as counted by the server, by [`Verb::index`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts(pub [u64; VERBS.len()]);

impl OpCounts {
    /// Requests of verb `v`.
    pub fn get(&self, v: Verb) -> u64 {
        self.0[v.index()]
    }

    /// All requests that decoded.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each verb with its count, in [`VERBS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Verb, u64)> + '_ {
        Verb::ALL.iter().map(|&v| (v, self.get(v)))
    }

    fn field_mut(&mut self, id: StatId) -> Option<&mut u64> {
        let i = VERBS.iter().position(|v| v.stat_id == id)?;
        Some(&mut self.0[i])
    }
}

impl std::ops::AddAssign for OpCounts {
    fn add_assign(&mut self, o: OpCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }
}

/// Requests refused, by error code − 1 ([`ERROR_NAMES`] gives the names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts(pub [u64; ERROR_CODES]);

impl ErrorCounts {
    /// Refusals with error code `code` (0 for an unknown code).
    pub fn get(&self, code: u16) -> u64 {
        (code as usize)
            .checked_sub(1)
            .and_then(|i| self.0.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each error's statistics name with its count, by code.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ERROR_NAMES.iter().copied().zip(self.0.iter().copied())
    }

    fn stat_id(i: usize) -> StatId {
        StatId(16 + i as u16)
    }

    fn field_mut(&mut self, id: StatId) -> Option<&mut u64> {
        let i = (id.0 as usize).checked_sub(16)?;
        self.0.get_mut(i)
    }
}

impl std::ops::AddAssign for ErrorCounts {
    fn add_assign(&mut self, o: ErrorCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
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
    /// Bytes the table holds, as the server accounts them (see `store::entry_cost`).
    pub memory_used: u64,
    /// The table's memory budget (`--max-memory`; `u64::MAX`: none).
    pub memory_limit: u64,
    /// The longest key the server accepts.
    pub max_key: u64,
    /// The longest value the server accepts.
    pub max_value: u64,
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
        v.extend(self.ops.iter().map(|(verb, x)| one(verb.info().stat_id, x)));
        v.extend((0..ERROR_CODES).map(|i| one(ErrorCounts::stat_id(i), self.errors.0[i])));
        v.push(one(StatId::ENTRIES, self.entries));
        v.push(one(StatId::BUCKETS, self.buckets));
        v.push(one(StatId::LONGEST_BUCKET, self.longest_bucket));
        v.push(one(StatId::MEMORY_USED, self.memory_used));
        v.push(one(StatId::MEMORY_LIMIT, self.memory_limit));
        v.push(one(StatId::MAX_KEY, self.max_key));
        v.push(one(StatId::MAX_VALUE, self.max_value));
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
                StatId::MEMORY_USED => out.memory_used = x,
                StatId::MEMORY_LIMIT => out.memory_limit = x,
                StatId::MAX_KEY => out.max_key = x,
                StatId::MAX_VALUE => out.max_value = x,
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

/// One lane's counters. Requests are counted only by the worker holding the lane's consumer
/// lock (so a relaxed load and store suffice), refusals by any worker; read by anyone.
#[derive(Debug, Default)]
pub struct LaneCounters {
    taken: AtomicU64,
    ops: [AtomicU64; VERBS.len()],
    errors: [AtomicU64; ERROR_CODES],
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

    /// Count a decoded request of verb `v`. The caller holds the lane's consumer lock.
    pub(crate) fn op(&self, v: Verb) {
        bump(&self.ops[v.index()]);
    }

    /// Count a refusal (from any worker: some are known only after the consumer lock is
    /// released, so this one is an atomic add; refusals are rare).
    pub(crate) fn error(&self, e: &ErrorCode) {
        self.errors[usize::from(e.code()) - 1].fetch_add(1, Relaxed);
    }

    /// Requests taken from the ring so far.
    pub fn requests(&self) -> u64 {
        self.taken.load(Relaxed)
    }

    /// Decoded requests so far, by kind.
    pub fn op_counts(&self) -> OpCounts {
        OpCounts(std::array::from_fn(|i| self.ops[i].load(Relaxed)))
    }

    /// Refusals so far, by reason.
    pub fn error_counts(&self) -> ErrorCounts {
        ErrorCounts(std::array::from_fn(|i| self.errors[i].load(Relaxed)))
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
            ops: OpCounts(std::array::from_fn(|i| i as u64 + 1)),
            errors: ErrorCounts(std::array::from_fn(|i| i as u64 + 100)),
            entries: 14,
            buckets: 15,
            longest_bucket: 16,
            memory_used: 30,
            memory_limit: 31,
            max_key: 32,
            max_value: 33,
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
        assert_eq!(
            wire.len(),
            VERBS.len() + ERROR_CODES + 8 + 3 * 2 + 7 + 1 + 1
        );
        assert_eq!(Stats::from_stats(&wire), s);
        // Order does not matter.
        let mut rev = wire.clone();
        rev.reverse();
        assert_eq!(Stats::from_stats(&rev), s);
        assert_eq!(s.ops.total(), 13 * 14 / 2);
        assert_eq!(s.errors.total(), 100 * 9 + 36);
        assert_eq!(s.connected(), 1);
        assert_eq!(s.worker_threads(), 19);
    }

    /// The ids in the first column of wire.rs's statistics table ("N" or "A–B").
    fn documented_ids() -> Vec<u16> {
        let doc = include_str!("wire.rs");
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
        c.op(Verb::Read);
        c.op(Verb::Stats);
        c.op(Verb::Stats);
        c.error(&ErrorCode::LastWorker);
        assert_eq!(c.requests(), 2);
        let ops = c.op_counts();
        assert_eq!(
            (ops.get(Verb::Read), ops.get(Verb::Stats), ops.total()),
            (1, 2, 3)
        );
        assert_eq!(c.error_counts().get(ErrorCode::LastWorker.code()), 1);
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
