//! What the bench prints and writes: one [`Record`] per run, its ratios to the machine's
//! limit ([`crate::limit`]), the table, the limit section, the closing summary (ratios
//! first), the JSON document and the plot.

use crate::app::Args;
use crate::limit::Limit;
use crate::modes::{Mode, Part, SAMPLE_EVERY};
use crate::workload::{KeySet, Routine};
use serde_json::json;
use std::path::Path;

/// A run's figures as ratios to the matching baselines of [`Limit`].
#[derive(Debug, Clone)]
pub struct Ratios {
    /// The baseline of the throughput ratio: `bare_depth1` (sync) or `bare_pipelined`.
    pub ops_baseline: &'static str,
    /// The baseline's ops/s.
    pub limit_ops_per_sec: f64,
    /// The run's ops/s ÷ the baseline's.
    pub ops_of_limit: f64,
    /// The baseline of the latency ratio: `bare_depth1` (sync, threads: one request at a
    /// time per client) or `bare_pipelined`.
    pub p50_baseline: &'static str,
    /// The baseline's p50, nanoseconds.
    pub limit_p50_ns: u64,
    /// The run's p50 ÷ the baseline's.
    pub p50_over_limit: f64,
    /// memcpy of the run's value size, MB/s, and the run's MB/s ÷ it.
    pub memcpy: Option<(f64, f64)>,
}

/// One measured run, as printed and as written to JSON.
#[derive(Debug, Clone)]
pub struct Record {
    /// "shmkv", "redis" or "redis-cluster".
    pub system: &'static str,
    /// The engine's URL: as given to `--url`; `shm://` for the bench's own server;
    /// `redis+unix://PATH` for `--vs-redis`.
    pub engine: String,
    /// The routine's name.
    pub routine: &'static str,
    /// The client mode.
    pub mode: Mode,
    /// Bytes of each value.
    pub value_size: usize,
    /// The server's worker threads.
    pub server_threads: u32,
    /// Client threads (threads mode; 1 otherwise).
    pub client_threads: usize,
    /// Client processes (processes mode; 1 otherwise).
    pub client_processes: usize,
    /// Requests in flight per client (1: synchronous).
    pub pipeline: usize,
    /// Answers received, each checked.
    pub ops: u64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Latency percentiles (submission to answer), nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Every this-many-th request's latency was taken.
    pub sampled_every: usize,
    /// CPU of the server, in cores (1.0: one core busy all the run); `None` for a server the
    /// bench did not start (it cannot tell).
    pub server_cpu: Option<f64>,
    /// CPU of the client(s), in cores.
    pub client_cpu: f64,
    /// Ratios to the machine's limit (none with `--no-limit`).
    pub vs: Option<Ratios>,
}

impl Record {
    /// Answers per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    /// Value bytes moved per second (written or read), in MB/s.
    pub fn mb_per_sec(&self) -> f64 {
        self.ops_per_sec() * self.value_size as f64 / 1e6
    }

    /// Compare with the machine's limit. Sync: against the bare round trip at depth 1 (one
    /// request at a time, as sync). Pipelined and processes: against the bare pipe at
    /// `--pipeline` depth. Threads: throughput against the bare pipe too (the most request
    /// and response two processes move here: an upper bound, since threads keep only
    /// `--client-threads` requests in flight), latency against depth 1 (each thread waits
    /// for each answer).
    pub fn compare(&mut self, limit: &Limit) {
        let (ops_base, ops_name) = match self.mode {
            Mode::Sync => (&limit.depth1, "bare_depth1"),
            _ => (&limit.deep, "bare_pipelined"),
        };
        let (p50_base, p50_name) = match self.mode {
            Mode::Sync | Mode::Threads => (&limit.depth1, "bare_depth1"),
            _ => (&limit.deep, "bare_pipelined"),
        };
        let memcpy = limit.memcpy_of(self.value_size).map(|c| {
            let m = c.mb_per_sec();
            (m, self.mb_per_sec() / m.max(1e-9))
        });
        self.vs = Some(Ratios {
            ops_baseline: ops_name,
            limit_ops_per_sec: ops_base.ops_per_sec(),
            ops_of_limit: self.ops_per_sec() / ops_base.ops_per_sec().max(1e-9),
            p50_baseline: p50_name,
            limit_p50_ns: p50_base.p50_ns,
            p50_over_limit: self.p50_ns as f64 / p50_base.p50_ns.max(1) as f64,
            memcpy,
        });
    }

    /// The record as JSON, its ratio fields included when the limit was measured.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({
            "system": self.system,
            "engine": self.engine,
            "routine": self.routine,
            "mode": self.mode.name(),
            "value_size": self.value_size,
            "mb_per_sec": self.mb_per_sec(),
            "server_threads": self.server_threads,
            "client_threads": self.client_threads,
            "client_processes": self.client_processes,
            "pipeline": self.pipeline,
            "ops": self.ops,
            "answers_checked": self.ops,
            "answers_wrong": 0,
            "seconds": self.seconds,
            "ops_per_sec": self.ops_per_sec(),
            "p50_ns": self.p50_ns,
            "p99_ns": self.p99_ns,
            "p999_ns": self.p999_ns,
            "latency_sampled_every": self.sampled_every,
            "server_cpu_cores": self.server_cpu,
            "client_cpu_cores": self.client_cpu,
        });
        if let (Some(r), Some(o)) = (&self.vs, v.as_object_mut()) {
            o.insert("ops_limit".into(), json!(r.ops_baseline));
            o.insert("ops_limit_per_sec".into(), json!(r.limit_ops_per_sec));
            o.insert("ops_per_sec_of_limit".into(), json!(r.ops_of_limit));
            o.insert("p50_limit".into(), json!(r.p50_baseline));
            o.insert("p50_limit_ns".into(), json!(r.limit_p50_ns));
            o.insert("p50_over_limit".into(), json!(r.p50_over_limit));
            if let Some((m, f)) = r.memcpy {
                o.insert("memcpy_mb_per_sec".into(), json!(m));
                o.insert("mb_per_sec_of_memcpy".into(), json!(f));
            }
        }
        v
    }
}

/// The record of one run (its `engine` is `shm://` for a shmkv system, the system's name
/// otherwise, until the caller sets it). `srv_ns`: the server's CPU time, if known.
#[allow(clippy::too_many_arguments)]
pub fn record_of(
    system: &'static str,
    (routine, set): (Routine, KeySet),
    mode: Mode,
    server_threads: u32,
    args: &Args,
    p: &Part,
    secs: f64,
    srv_ns: Option<u64>,
    limit: Option<&Limit>,
) -> Record {
    let mut r = Record {
        system,
        engine: if system == "shmkv" {
            "shm://".to_string()
        } else {
            system.to_string()
        },
        routine: routine.name(),
        mode,
        value_size: set.value_size,
        server_threads,
        client_threads: if mode == Mode::Threads {
            args.client_threads
        } else {
            1
        },
        client_processes: if mode == Mode::Processes {
            args.client_processes
        } else {
            1
        },
        pipeline: if mode.pipelines() { args.pipeline } else { 1 },
        ops: p.ops,
        seconds: secs,
        p50_ns: p.hist.value_at_quantile(0.5),
        p99_ns: p.hist.value_at_quantile(0.99),
        p999_ns: p.hist.value_at_quantile(0.999),
        sampled_every: if mode.pipelines() && args.pipeline > 1 {
            SAMPLE_EVERY
        } else {
            1
        },
        server_cpu: srv_ns.map(|ns| ns as f64 / 1e9 / secs.max(1e-9)),
        client_cpu: p.cpu_ns as f64 / 1e9 / secs.max(1e-9),
        vs: None,
    };
    if let Some(l) = limit {
        r.compare(l);
    }
    r
}

/// Nanoseconds, in ns, µs or ms.
pub fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// A size in bytes, with K or M when exact.
pub fn fmt_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}

/// A rate in k or M per second.
pub fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.1} k", r / 1e3)
    }
}

/// A fraction as a percentage with two significant digits or so.
pub fn fmt_pct(f: f64) -> String {
    let p = f * 100.0;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 1.0 {
        format!("{p:.1}%")
    } else if p >= 0.01 {
        format!("{p:.2}%")
    } else {
        "<0.01%".into()
    }
}

/// A ratio such as "1.8×".
pub fn fmt_times(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}×")
    } else {
        format!("{x:.1}×")
    }
}

/// The limit section, before the table.
pub fn print_limit(l: &Limit) {
    println!(
        "\nlimit: this machine, measured now ({:.1} s) by code that shares nothing with shmkv (two processes, memory shared through a memfd, both spinning):",
        l.seconds
    );
    println!(
        "  cache-line ping-pong between two processes     {:>9} per round trip",
        fmt_ns(l.pingpong.ns().round() as u64)
    );
    for p in [&l.depth1, &l.deep] {
        println!(
            "  bare request/response, depth {:<4}             {:>9} ops/s, p50 {}, p99 {}  ({} latency; a std HashMap of {} keys answers)",
            p.depth,
            fmt_rate(p.ops_per_sec()),
            fmt_ns(p.p50_ns),
            fmt_ns(p.p99_ns),
            if p.sampled_every == 1 {
                "every request's".to_string()
            } else {
                format!("every {}th request's", p.sampled_every)
            },
            p.keys
        );
    }
    for c in &l.memcpy {
        println!(
            "  memcpy of {:>5}-byte values, one thread       {:>9.0} MB/s",
            fmt_size(c.size),
            c.mb_per_sec()
        );
    }
    println!("  every answer checked: {} answers, 0 wrong", l.checked());
}

/// What the table's columns are, before its header.
pub fn print_legend(limit: bool, pipeline: usize) {
    println!(
        "\nlatency (p50, p99, p99.9): from submitting a request to having its answer; sync and threads time every request, pipelined and processes every {SAMPLE_EVERY}th"
    );
    println!(
        "srv %core, cli %core: CPU time of the server and of the client(s), in % of ONE core (100% = one core busy the whole run, 200% = two)"
    );
    if limit {
        println!(
            "vs limit: sync: p50 ÷ the bare depth-1 p50 (×); pipelined, threads, processes: ops/s in % of the bare depth-{pipeline} ops/s. vs memcpy: MB/s in % of memcpy of that value size"
        );
    }
}

/// The table's header.
pub fn print_header() {
    println!(
        "{:<13} {:<7} {:<10} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "system",
        "routine",
        "mode",
        "value",
        "srv thr",
        "ops/s",
        "MB/s",
        "p50",
        "p99",
        "p99.9",
        "srv %core",
        "cli %core",
        "vs limit",
        "vs memcpy"
    );
}

/// The table cell of a record's main ratio.
fn limit_cell(r: &Record) -> String {
    match &r.vs {
        None => "-".into(),
        Some(v) if r.mode == Mode::Sync => format!("{} p50", fmt_times(v.p50_over_limit)),
        Some(v) => format!("{} ops", fmt_pct(v.ops_of_limit)),
    }
}

/// One row of the table.
pub fn print_record(r: &Record) {
    println!(
        "{:<13} {:<7} {:<10} {:>7} {:>7} {:>10} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>8.0}% {:>9} {:>9}",
        r.system,
        r.routine,
        r.mode.name(),
        fmt_size(r.value_size),
        r.server_threads,
        fmt_rate(r.ops_per_sec()),
        r.mb_per_sec(),
        fmt_ns(r.p50_ns),
        fmt_ns(r.p99_ns),
        fmt_ns(r.p999_ns),
        r.server_cpu
            .map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
        r.client_cpu * 100.0,
        limit_cell(r),
        r.vs.as_ref()
            .and_then(|v| v.memcpy)
            .map_or("-".into(), |(_, f)| fmt_pct(f)),
    );
}

/// Median and range of `xs` (not empty).
fn spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let mid = if xs.len() % 2 == 1 {
        xs[xs.len() / 2]
    } else {
        (xs[xs.len() / 2 - 1] + xs[xs.len() / 2]) / 2.0
    };
    (mid, xs[0], xs[xs.len() - 1])
}

/// The median of `xs` formatted by `f`, and " [low–high]" (empty if the range rounds to
/// one value).
fn fmt_spread(xs: Vec<f64>, f: fn(f64) -> String) -> (String, String) {
    if xs.is_empty() {
        return ("-".into(), String::new());
    }
    let (m, lo, hi) = spread(xs);
    let (m, lo, hi) = (f(m), f(lo), f(hi));
    if lo == hi {
        (m, String::new())
    } else {
        (m, format!(" [{lo}–{hi}]"))
    }
}

/// The closing summary: shmkv's ratios to the limit first (median over the routines and
/// server-thread counts of each mode and value size, and their range), then how many
/// answers were checked.
pub fn print_summary(
    records: &[Record],
    limit: Option<&Limit>,
    pipeline: usize,
    client_threads: usize,
) {
    let shmkv: Vec<&Record> = records.iter().filter(|r| r.system == "shmkv").collect();
    match limit {
        None => println!("\nsummary: the limit was not measured (--no-limit): no ratios"),
        Some(l) => {
            println!(
                "\nsummary: shmkv as a ratio to this machine's limit measured in this run (median over the routines and server-thread counts, [range]; values bound by copying lead with memcpy):"
            );
            let mut keys: Vec<(Mode, usize)> = Vec::new();
            for r in &shmkv {
                if !keys.contains(&(r.mode, r.value_size)) {
                    keys.push((r.mode, r.value_size));
                }
            }
            for (mode, size) in keys {
                let rs: Vec<&Ratios> = shmkv
                    .iter()
                    .filter(|r| r.mode == mode && r.value_size == size)
                    .filter_map(|r| r.vs.as_ref())
                    .collect();
                if rs.is_empty() {
                    continue;
                }
                let depth = |name: &str| if name == "bare_depth1" { 1 } else { pipeline };
                let (m, range) =
                    fmt_spread(rs.iter().map(|v| v.p50_over_limit).collect(), fmt_times);
                let lat = format!(
                    "p50 {m} limit{range} (bare depth-{} p50 {})",
                    depth(rs[0].p50_baseline),
                    fmt_ns(rs[0].limit_p50_ns)
                );
                let (m, range) = fmt_spread(rs.iter().map(|v| v.ops_of_limit).collect(), fmt_pct);
                let thr = format!(
                    "ops/s {m} of limit{range} (bare depth-{} {}/s)",
                    depth(rs[0].ops_baseline),
                    fmt_rate(rs[0].limit_ops_per_sec)
                );
                let mut parts = if mode == Mode::Sync {
                    vec![lat, thr]
                } else {
                    vec![thr, lat]
                };
                if let Some(c) = l.memcpy_of(size) {
                    let (m, range) = fmt_spread(
                        rs.iter().filter_map(|v| v.memcpy.map(|x| x.1)).collect(),
                        fmt_pct,
                    );
                    let copy = format!("MB/s {m} of memcpy{range} ({:.0} MB/s)", c.mb_per_sec());
                    // A value whose one copy takes longer than a bare round trip is bound by
                    // copying: its memcpy ratio comes first.
                    let copy_ns = size as f64 / c.mb_per_sec().max(1e-9) * 1e3;
                    if copy_ns >= l.depth1.p50_ns as f64 {
                        parts.insert(0, copy);
                    } else {
                        parts.push(copy);
                    }
                }
                println!(
                    "  {:<10} {:>5}-byte values: {}",
                    mode.name(),
                    fmt_size(size),
                    parts.join("; ")
                );
            }
            if shmkv.iter().any(|r| r.mode == Mode::Threads) {
                println!(
                    "  (threads: {client_threads} synchronous threads keep at most {client_threads} requests in flight; the bare depth-{pipeline} pipe is the most that two processes move here, an upper bound rather than a like-for-like)"
                );
            }
        }
    }
    let answers: u64 = shmkv.iter().map(|r| r.ops).sum();
    let mut others = String::new();
    for system in ["redis", "redis-cluster"] {
        let n: u64 = records
            .iter()
            .filter(|r| r.system == system)
            .map(|r| r.ops)
            .sum();
        if n > 0 {
            others.push_str(&format!(", {n} {system} answers"));
        }
    }
    let bare = limit.map_or(0, Limit::checked);
    println!(
        "every answer checked: {answers} shmkv answers{others}{}, 0 wrong (a wrong answer stops the run with exit status 1)",
        if bare > 0 {
            format!(", {bare} answers of the bare baseline")
        } else {
            String::new()
        }
    );
}

/// The JSON document: the baselines (`"system": "limit"`), then every run.
pub fn write_json(path: &Path, records: &[Record], limit: Option<&Limit>) -> Result<(), String> {
    let mut results = limit.map(Limit::to_json).unwrap_or_default();
    results.extend(records.iter().map(Record::to_json));
    let doc = json!({ "results": results });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Whether two engines of `records` are of one system (then the plot names engines).
fn engines_share_a_system(records: &[Record]) -> bool {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in records {
        if !seen.contains(&(r.system, r.engine.as_str())) {
            seen.push((r.system, r.engine.as_str()));
        }
    }
    let systems = seen
        .iter()
        .map(|(s, _)| *s)
        .collect::<std::collections::BTreeSet<_>>();
    systems.len() < seen.len()
}

/// Throughput against server threads, one panel per routine, one line per system (or
/// engine) and mode.
pub fn plot(path: &Path, records: &[Record], routines: &[Routine]) -> Result<(), String> {
    use plotters::prelude::*;
    let n = routines.len().max(1);
    let root = SVGBackend::new(path, (900, 300 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((n, 1));
    let colors = [RED, BLUE, GREEN, MAGENTA, BLACK, CYAN];
    for (panel, routine) in panels.iter().zip(routines) {
        let rs: Vec<&Record> = records
            .iter()
            .filter(|r| r.routine == routine.name())
            .collect();
        let max_t = rs
            .iter()
            .map(|r| r.server_threads)
            .max()
            .unwrap_or(1)
            .max(2);
        let max_y = rs.iter().map(|r| r.ops_per_sec()).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{}: throughput vs server threads", routine.name()),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d((1u32..max_t).log_scale(), 0f64..max_y)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("server worker threads")
            .y_desc("ops/s")
            .y_label_formatter(&|y| fmt_rate(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        let mut series: Vec<(String, Vec<(u32, f64)>)> = Vec::new();
        let by_engine = engines_share_a_system(records);
        for r in &rs {
            let who = if by_engine {
                r.engine.as_str()
            } else {
                r.system
            };
            let label = format!("{who} {}", r.mode.name());
            match series.iter_mut().find(|(l, _)| *l == label) {
                Some((_, v)) => v.push((r.server_threads, r.ops_per_sec())),
                None => series.push((label, vec![(r.server_threads, r.ops_per_sec())])),
            }
        }
        for (i, (label, pts)) in series.into_iter().enumerate() {
            let c = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
