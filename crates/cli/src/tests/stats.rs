//! Tests of a Stats answer as text and as JSON, and of sizes as they are shown.

use super::*;
use crate::stats::size;

// --- stats -----------------------------------------------------------------------------

fn sample_stats() -> Vec<Stat> {
    let st = |id: shmkv::wire::StatId, index: u32, value: u64| Stat { id, index, value };
    let mut v = vec![
        st(Verb::Insert.info().stat_id, 0, 5),
        st(Verb::Read.info().stat_id, 0, 2),
        st(Verb::Scan.info().stat_id, 0, 1),
        st(Verb::Stats.info().stat_id, 0, 1),
        st(
            ErrorCode::BadBucket {
                bucket: 0,
                buckets: 0,
            }
            .stat_id(),
            0,
            1,
        ),
        st(ErrorCode::Overflow.stat_id(), 0, 2),
    ];
    let mut s = Stats::from_stats(&v);
    s.entries = 4;
    s.buckets = 10;
    s.longest_bucket = 2;
    s.memory_used = 1536;
    s.memory_limit = 64 << 20;
    s.max_key = 1024;
    s.max_value = 1 << 20;
    s.client_slots = 2;
    s.slots = vec![
        shmkv::stats::SlotStats {
            slot: 0,
            owner_pid: 0,
            workers: 0,
            requests: 13,
        },
        shmkv::stats::SlotStats {
            slot: 1,
            owner_pid: 4242,
            workers: 2,
            requests: 1,
        },
    ];
    s.latency.sample_every = 64;
    s.uptime_ms = 12_345;
    v = s.to_stats();
    v
}

#[test]
fn stats_text_is_an_indented_block() {
    let item = one("stats");
    let t = render_text(&item, &Outcome::Stats(sample_stats())).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "stats:");
    assert!(lines[1..].iter().all(|l| l.starts_with("  ")), "{t}");
    assert!(
            t.contains(
                "  requests   9 (insert 5, read 2, delete 0, insert-new 0, cas 0, add 0, len 0, scan 1, print 0, threads start 0, threads stop 0, stats 1, quit 0)\n"
            ),
            "{t}"
        );
    assert!(
            t.contains("  refused    3 (bad bucket 1, thread limit 0, last worker 0, shutting down 0, malformed 0, too large 0, out of memory 0, not an integer 0, overflow 2)\n"),
            "{t}"
        );
    assert!(
        t.contains("  table      4 entries, 10 buckets, longest bucket 2\n"),
        "{t}"
    );
    assert!(t.contains("  memory     1.5 KiB used of 64 MiB\n"), "{t}");
    assert!(
        t.contains("  limits     keys up to 1 KiB, values up to 1 MiB\n"),
        "{t}"
    );
    assert!(
        t.contains("  clients    1 of 2 slots connected, 2 worker threads in all\n"),
        "{t}"
    );
    assert!(
        t.contains("    slot 1   pid 4242, 2 worker threads, 1 request\n"),
        "{t}"
    );
    assert!(!t.contains("slot 0 "), "{t}");
    assert!(
        t.contains("  latency    no samples yet (1 in 64 requests is timed)\n"),
        "{t}"
    );
    assert!(t.ends_with("  uptime     12.3s"), "{t}");

    let mut s = Stats::from_stats(&sample_stats());
    s.memory_limit = u64::MAX;
    s.latency.samples = 1;
    s.latency.p50_ns = 999;
    s.latency.p99_ns = 1_500;
    s.latency.p999_ns = 2_500_000;
    s.latency.max_ns = 3_000_000_000;
    s.latency.window_ms = 10_000;
    let t = render_stats("stats", &s);
    assert!(t.contains("  memory     1.5 KiB used, no limit\n"), "{t}");
    assert!(
            t.contains("  latency    p50 999ns, p99 1.5µs, p99.9 2.5ms, max 3.0s (1 sample over the last 10.0s, 1 in 64 requests timed)\n"),
            "{t}"
        );
    s.other.push(Stat {
        id: shmkv::wire::StatId(200),
        index: 3,
        value: 7,
    });
    assert!(render_stats("stats", &s).contains("  unknown    200[3] 7\n"));
}

#[test]
fn stats_json_has_requests_errors_table_memory_limits() {
    let (v, refused) = render_json(&one("stats"), &Outcome::Stats(sample_stats()));
    assert!(!refused);
    assert_eq!(v["op"], "stats");
    assert_eq!(v["status"], "ok");
    let s = &v["stats"];
    let req = s["requests"].as_object().unwrap();
    let names: Vec<&str> = req.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = VERBS.iter().map(|v| v.stat_name).collect();
    want.push("total");
    assert_eq!(names, want);
    assert_eq!(req["insert"], 5);
    assert_eq!(req["total"], 9);
    assert_eq!(s["errors"]["bad_bucket"], 1);
    assert_eq!(s["errors"]["overflow"], 2);
    assert_eq!(s["errors"]["total"], 3);
    assert_eq!(
        s["table"],
        json!({"entries": 4, "buckets": 10, "longest_bucket": 2})
    );
    assert_eq!(s["memory"], json!({"used": 1536, "limit": 64 << 20}));
    assert_eq!(s["limits"], json!({"max_key": 1024, "max_value": 1 << 20}));
    assert_eq!(s["client_slots"], 2);
    assert_eq!(s["connected"], 1);
    assert_eq!(s["worker_threads"], 2);
    assert_eq!(
        s["slots"],
        json!([
            {"slot": 0, "pid": null, "workers": 0, "requests": 13},
            {"slot": 1, "pid": 4242, "workers": 2, "requests": 1},
        ])
    );
    assert_eq!(s["latency"]["sample_every"], 64);
    assert_eq!(s["uptime_ms"], 12_345);
    assert!(s.get("unknown").is_none());
    let mut st = Stats::from_stats(&sample_stats());
    st.memory_limit = u64::MAX;
    assert_eq!(stats_json(&st)["memory"]["limit"], Value::Null);
}

#[test]
fn sizes_read_naturally() {
    assert_eq!(size(0), "0 bytes");
    assert_eq!(size(1), "1 byte");
    assert_eq!(size(1023), "1023 bytes");
    assert_eq!(size(1024), "1 KiB");
    assert_eq!(size(1536), "1.5 KiB");
    assert_eq!(size(1 << 20), "1 MiB");
    assert_eq!(size((1 << 20) - 1), "1024.0 KiB");
    assert_eq!(size(5 << 30), "5 GiB");
    assert_eq!(size(u64::MAX), "16.0 EiB");
}
