//! A Stats answer as text (an indented block) and as JSON.

#[cfg(doc)]
use crate::render::render_json;
use serde_json::{Map, Value, json};
use shmkv::stats::Stats;
use std::fmt::Write as _;

pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn duration_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

/// A size in bytes: `512 bytes`, `1 KiB`, `1.5 MiB`.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return plural(n, "byte", "bytes");
    }
    let mut unit = 0;
    let mut scale = 1024u64;
    while unit + 1 < UNITS.len() && n / scale >= 1024 {
        unit += 1;
        scale *= 1024;
    }
    if n % scale == 0 {
        format!("{} {}", n / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / scale as f64, UNITS[unit])
    }
}

/// `memory_limit` when the server has no memory budget.
const NO_MEMORY_LIMIT: u64 = u64::MAX;

/// The text form of a Stats answer: `{label}:` and an indented block, one topic a line.
pub fn render_stats(label: &str, s: &Stats) -> String {
    let mut out = format!("{label}:\n");
    let ops: Vec<String> = s
        .ops
        .iter()
        .map(|(v, n)| format!("{} {n}", v.info().name))
        .collect();
    let _ = writeln!(out, "  requests   {} ({})", s.ops.total(), ops.join(", "));
    let errors: Vec<String> = s
        .errors
        .iter()
        .map(|(name, n)| format!("{} {n}", name.replace('_', " ")))
        .collect();
    let _ = writeln!(
        out,
        "  refused    {} ({})",
        s.errors.total(),
        errors.join(", ")
    );
    let _ = writeln!(
        out,
        "  table      {}, {}, longest bucket {}",
        plural(s.entries, "entry", "entries"),
        plural(s.buckets, "bucket", "buckets"),
        s.longest_bucket
    );
    if s.memory_limit == NO_MEMORY_LIMIT {
        let _ = writeln!(out, "  memory     {} used, no limit", size(s.memory_used));
    } else {
        let _ = writeln!(
            out,
            "  memory     {} used of {}",
            size(s.memory_used),
            size(s.memory_limit)
        );
    }
    let _ = writeln!(
        out,
        "  limits     keys up to {}, values up to {}",
        size(s.max_key),
        size(s.max_value)
    );
    let _ = writeln!(
        out,
        "  clients    {} of {} connected, {} in all",
        s.connected(),
        plural(s.client_slots, "slot", "slots"),
        plural(s.worker_threads(), "worker thread", "worker threads")
    );
    for slot in s.slots.iter().filter(|x| x.connected()) {
        let _ = writeln!(
            out,
            "    slot {}   pid {}, {}, {}",
            slot.slot,
            slot.owner_pid,
            plural(slot.workers, "worker thread", "worker threads"),
            plural(slot.requests, "request", "requests")
        );
    }
    let l = &s.latency;
    if l.samples == 0 {
        let _ = writeln!(
            out,
            "  latency    no samples yet (1 in {} requests is timed)",
            l.sample_every
        );
    } else {
        let _ = writeln!(
            out,
            "  latency    p50 {}, p99 {}, p99.9 {}, max {} ({} over the last {:.1}s, 1 in {} requests timed)",
            duration_ns(l.p50_ns),
            duration_ns(l.p99_ns),
            duration_ns(l.p999_ns),
            duration_ns(l.max_ns),
            plural(l.samples, "sample", "samples"),
            l.window_ms as f64 / 1000.0,
            l.sample_every
        );
    }
    if !s.other.is_empty() {
        let other: Vec<String> = s
            .other
            .iter()
            .map(|x| format!("{}[{}] {}", x.id.0, x.index, x.value))
            .collect();
        let _ = writeln!(out, "  unknown    {}", other.join(", "));
    }
    let _ = write!(out, "  uptime     {:.1}s", s.uptime_ms as f64 / 1000.0);
    out
}

/// The JSON form of a Stats answer (the `"stats"` field of [`render_json`]'s object).
pub fn stats_json(s: &Stats) -> Value {
    let mut requests: Map<String, Value> = s
        .ops
        .iter()
        .map(|(v, n)| (v.info().stat_name.to_string(), json!(n)))
        .collect();
    requests.insert("total".into(), json!(s.ops.total()));
    let mut errors: Map<String, Value> = s
        .errors
        .iter()
        .map(|(name, n)| (name.to_string(), json!(n)))
        .collect();
    errors.insert("total".into(), json!(s.errors.total()));
    let l = &s.latency;
    let mut v = json!({
        "requests": requests,
        "errors": errors,
        "table": {
            "entries": s.entries, "buckets": s.buckets, "longest_bucket": s.longest_bucket,
        },
        "memory": {
            "used": s.memory_used,
            "limit": if s.memory_limit == NO_MEMORY_LIMIT { Value::Null } else { json!(s.memory_limit) },
        },
        "limits": { "max_key": s.max_key, "max_value": s.max_value },
        "client_slots": s.client_slots,
        "connected": s.connected(),
        "worker_threads": s.worker_threads(),
        "slots": s.slots.iter().map(|x| json!({
            "slot": x.slot,
            "pid": if x.connected() { json!(x.owner_pid) } else { Value::Null },
            "workers": x.workers,
            "requests": x.requests,
        })).collect::<Vec<_>>(),
        "latency": {
            "samples": l.samples, "p50_ns": l.p50_ns, "p99_ns": l.p99_ns,
            "p999_ns": l.p999_ns, "max_ns": l.max_ns, "window_ms": l.window_ms,
            "sample_every": l.sample_every,
        },
        "uptime_ms": s.uptime_ms,
    });
    if !s.other.is_empty() {
        v["unknown"] = s
            .other
            .iter()
            .map(|x| json!({"id": x.id.0, "index": x.index, "value": x.value}))
            .collect();
    }
    v
}
