//! The statistics items a `Stats` reply carries: [`StatId`] (which statistic) and [`Stat`].

#[cfg(doc)] // Names the item docs link to.
use super::{ErrorCode, Reply, VerbInfo};

/// Which statistic a [`Stat`] is. Any value but 0 decodes; the constants are the ids this
/// version knows. An operation's counter is `StatId(tag)` ([`VerbInfo::stat_id`]), a refusal
/// counter `StatId(15 + code)` ([`ErrorCode::stat_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatId(pub u16);

impl StatId {
    /// Insert requests taken.
    pub const OPS_INSERT: StatId = StatId(1);
    /// Read requests taken.
    pub const OPS_READ: StatId = StatId(2);
    /// Delete requests taken.
    pub const OPS_DELETE: StatId = StatId(3);
    /// Print requests taken.
    pub const OPS_PRINT: StatId = StatId(4);
    /// ThStart requests taken.
    pub const OPS_THREADS_START: StatId = StatId(5);
    /// ThStop requests taken.
    pub const OPS_THREADS_STOP: StatId = StatId(6);
    /// Quit requests taken.
    pub const OPS_QUIT: StatId = StatId(7);
    /// Stats requests taken (including the one being answered).
    pub const OPS_STATS: StatId = StatId(8);
    /// Requests refused with `BadBucket`.
    pub const ERRORS_BAD_BUCKET: StatId = StatId(16);
    /// Requests refused with `ThreadLimit`.
    pub const ERRORS_THREAD_LIMIT: StatId = StatId(17);
    /// Requests refused with `LastWorker`.
    pub const ERRORS_LAST_WORKER: StatId = StatId(18);
    /// Requests refused with `ShuttingDown`.
    pub const ERRORS_SHUTTING_DOWN: StatId = StatId(19);
    /// Requests refused with `Malformed`.
    pub const ERRORS_MALFORMED: StatId = StatId(20);
    /// Pairs in the table.
    pub const ENTRIES: StatId = StatId(32);
    /// Buckets in the table.
    pub const BUCKETS: StatId = StatId(33);
    /// Pairs in the fullest bucket.
    pub const LONGEST_BUCKET: StatId = StatId(34);
    /// Bytes the table holds, as the server accounts them (keys, values, per-entry overhead).
    pub const MEMORY_USED: StatId = StatId(35);
    /// The server's memory budget for the table (`--max-memory`).
    pub const MEMORY_LIMIT: StatId = StatId(36);
    /// The longest key the server accepts.
    pub const MAX_KEY: StatId = StatId(37);
    /// The longest value the server accepts.
    pub const MAX_VALUE: StatId = StatId(38);
    /// Client slots of the server.
    pub const CLIENT_SLOTS: StatId = StatId(48);
    /// Per slot (`index`): pid of the attached client, 0 when free.
    pub const SLOT_OWNER: StatId = StatId(64);
    /// Per slot (`index`): worker threads serving it.
    pub const SLOT_WORKERS: StatId = StatId(65);
    /// Per slot (`index`): requests taken from it.
    pub const SLOT_REQUESTS: StatId = StatId(66);
    /// Requests timed in the latency window.
    pub const LATENCY_SAMPLES: StatId = StatId(80);
    /// Median service time, nanoseconds.
    pub const LATENCY_P50_NS: StatId = StatId(81);
    /// 99th percentile service time, nanoseconds.
    pub const LATENCY_P99_NS: StatId = StatId(82);
    /// 99.9th percentile service time, nanoseconds.
    pub const LATENCY_P999_NS: StatId = StatId(83);
    /// Longest service time in the window, nanoseconds.
    pub const LATENCY_MAX_NS: StatId = StatId(84);
    /// How far back the latency window reaches, milliseconds.
    pub const LATENCY_WINDOW_MS: StatId = StatId(85);
    /// One request in this many is timed.
    pub const LATENCY_SAMPLE_EVERY: StatId = StatId(86);
    /// Milliseconds since the server started.
    pub const UPTIME_MS: StatId = StatId(96);
}

/// One statistic as it travels in a [`Reply::Stats`] part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stat {
    /// What it is.
    pub id: StatId,
    /// The client slot it is about (per-slot statistics), else 0.
    pub index: u32,
    /// Its value.
    pub value: u64,
}
