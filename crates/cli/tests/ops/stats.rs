//! The Stats operation: exact after a known workload, and ordered after every earlier request
//! of its batch.

use super::json_lines;
use crate::common::*;
use serde_json::Value;
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::wire::{ErrorCode, Op, Verb};

// ---------------------------------------------------------------------------------------------
// Stats.

#[test]
fn stats_after_a_known_workload_are_exact() {
    let s = ServerProc::start(&["10", "2", "2"]);
    s.client(&[
        "0", "insert", "1", "1", "insert", "2", "2", "insert", "3", "3", "insert", "4", "4",
        "insert", "5", "5", "read", "1", "read", "99", "delete", "5",
    ])
    .ok("insert 1 1: ok\ninsert 2 2: ok\ninsert 3 3: ok\ninsert 4 4: ok\ninsert 5 5: ok\nread 1: 1\nread 99: not found\ndelete 5: ok\n");
    s.client(&["0", "print", "10"])
        .fails(1, "bucket 10 out of range");
    s.client(&[
        "0", "threads", "start", "1", "threads", "stop", "threads", "stop", "threads", "stop",
    ])
    .fails(1, "threads stop: error: cannot stop the last worker thread");
    // Slot 0 is freed asynchronously after its client left.
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);

    let c = Client::connect(&ClientConfig::new(&s.name).slot(1)).unwrap();
    let st = c.stats().unwrap();
    let o = &st.ops;
    assert_eq!(
        [
            Verb::Insert,
            Verb::Read,
            Verb::Delete,
            Verb::Print,
            Verb::ThreadsStart,
            Verb::ThreadsStop,
            Verb::Quit,
            Verb::Stats
        ]
        .map(|v| o.get(v)),
        [5, 2, 1, 1, 1, 3, 0, 1],
        "{st:?}"
    );
    for v in [Verb::InsertNew, Verb::Cas, Verb::Add, Verb::Len, Verb::Scan] {
        assert_eq!(o.get(v), 0, "{v:?}");
    }
    assert_eq!(o.total(), 14);
    assert_eq!(st.errors.get(ErrorCode::LastWorker.code()), 1);
    assert_eq!(st.errors.get(1), 1, "bad bucket");
    assert_eq!(st.errors.total(), 2);
    assert_eq!((st.entries, st.buckets, st.client_slots), (4, 10, 2));
    // Four entries of a 1-byte key and a 1-byte value; the default budget and limits.
    assert_eq!(st.memory_used, 4 * shmkv::store::entry_cost(1, 1));
    assert_eq!(st.memory_limit, shmkv::server::default_max_memory());
    assert_eq!((st.max_key, st.max_value), (4096, 1 << 20));
    assert!((1..=4).contains(&st.longest_bucket), "{st:?}");
    assert_eq!(st.slots.len(), 2);
    let (s0, s1) = (st.slots[0], st.slots[1]);
    assert_eq!(
        (s0.slot, s0.owner_pid, s0.workers, s0.requests),
        (0, 0, 0, 13),
        "a free slot has no workers; its requests count every session it had"
    );
    assert_eq!(
        (s1.slot, s1.owner_pid, s1.workers, s1.requests),
        (1, u64::from(std::process::id()), 2, 1)
    );
    assert_eq!((st.connected(), st.worker_threads()), (1, 2));
    assert_eq!(st.latency.sample_every, 64);
    assert_eq!(
        st.latency.samples, 0,
        "14 requests, none is the 64th of its lane"
    );
    assert!(st.other.is_empty());
    // A second look counts the first.
    assert_eq!(c.stats().unwrap().ops.get(Verb::Stats), 2);
    drop(c);
    wait_until(DEADLINE, || owner_of(&s.name, 1) == 0);

    // The command line: text and JSON.
    let out = s.client(&["0", "stats"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "stats:");
    assert_eq!(
        lines[1],
        "  requests   16 (insert 5, read 2, delete 1, insert-new 0, cas 0, add 0, len 0, scan 0, print 1, threads start 1, threads stop 3, stats 3, quit 0)"
    );
    assert_eq!(
        lines[2],
        "  refused    2 (bad bucket 1, thread limit 0, last worker 1, shutting down 0, malformed 0, too large 0, out of memory 0, not an integer 0, overflow 0)"
    );
    assert!(lines[3].starts_with("  table      4 entries, 10 buckets, longest bucket "));
    assert!(
        lines[4].starts_with(&format!(
            "  memory     {} bytes used of ",
            4 * shmkv::store::entry_cost(1, 1)
        )),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[5],
        "  limits     keys up to 4 KiB, values up to 1 MiB"
    );
    assert_eq!(
        lines[6],
        "  clients    1 of 2 slots connected, 2 worker threads in all"
    );
    assert!(lines[7].starts_with("    slot 0   pid "), "{}", out.stdout);
    assert!(
        lines[7].ends_with(", 2 worker threads, 14 requests"),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[8],
        "  latency    no samples yet (1 in 64 requests is timed)"
    );
    assert!(lines[9].starts_with("  uptime     "));
    assert_eq!(lines.len(), 10);
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);

    let out = s.client(&["--json", "1", "stats"]);
    let v = &json_lines(&out)[0];
    assert_eq!(v["op"], "stats");
    assert_eq!(v["status"], "ok");
    let j = &v["stats"];
    assert_eq!(j["requests"]["insert"], 5);
    assert_eq!(j["requests"]["insert_new"], 0);
    assert_eq!(j["requests"]["stats"], 4);
    assert_eq!(j["requests"]["total"], 17);
    assert_eq!(j["errors"]["total"], 2);
    assert_eq!(j["errors"]["out_of_memory"], 0);
    assert_eq!(j["memory"]["used"], 4 * shmkv::store::entry_cost(1, 1));
    assert_eq!(j["memory"]["limit"], shmkv::server::default_max_memory());
    assert_eq!(j["limits"]["max_key"], 4096);
    assert_eq!(j["limits"]["max_value"], 1 << 20);
    assert_eq!(j["table"]["entries"], 4);
    assert_eq!(j["table"]["buckets"], 10);
    assert_eq!(j["client_slots"], 2);
    assert_eq!(j["connected"], 1);
    assert_eq!(j["worker_threads"], 2);
    assert_eq!(j["slots"][0]["pid"], Value::Null);
    assert_eq!(j["slots"][0]["requests"], 14);
    assert!(j["slots"][1]["pid"].as_u64().unwrap() > 0);
    assert_eq!(j["latency"]["sample_every"], 64);
    s.quit_and_check_clean();
}

/// A Stats pipelined after other requests sees all of them, however many workers serve the
/// client (it waits for the earlier requests in flight), and latency samples appear.
#[test]
fn stats_follow_every_earlier_request_of_the_batch() {
    // Small rings (64 KiB) and large answers: workers often wait for room for their answers,
    // with the request in flight.
    let s = ServerProc::start(&["1000", "1", "4", "--max-value", "1K"]);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let big = vec![0x5a; 900];
    assert_eq!(c.insert(b"big", &big).unwrap(), None);
    let key = |round: u64, i: u64| format!("k{}", round * 1000 + i).into_bytes();
    let mut inserted = 1u64;
    for round in 0..20u64 {
        // 100 inserts and 100 reads of a 900-byte value (90 KB of answers), a Stats, a delete.
        let mut ops: Vec<Op> = Vec::new();
        for i in 0..100u64 {
            ops.push(Op::Insert {
                key: key(round, i),
                value: i.to_le_bytes().to_vec(),
            });
            ops.push(Op::Read {
                key: b"big".to_vec(),
            });
        }
        inserted += 100;
        ops.push(Op::Stats);
        ops.push(Op::Delete { key: key(round, 0) });
        let tickets = c.submit_all(&ops).unwrap();
        let mut outcomes = Vec::new();
        for t in tickets {
            outcomes.push(c.wait(t).unwrap());
        }
        assert_eq!(outcomes[1], Outcome::Value(big.clone()));
        let Outcome::Stats(st) = &outcomes[200] else {
            panic!("{:?}", outcomes[200]);
        };
        let st = shmkv::stats::Stats::from_stats(st);
        // Every insert and read before it, none of the deletes of this round after it.
        assert_eq!(st.entries, inserted - round, "round {round}");
        assert_eq!(st.ops.get(Verb::Insert), inserted, "round {round}");
        assert_eq!(st.ops.get(Verb::Read), 100 * (round + 1), "round {round}");
        assert_eq!(st.ops.get(Verb::Delete), round, "round {round}");
        assert_eq!(st.slots[0].requests, 1 + round * 202 + 201, "round {round}");
        // Every 64th request is timed once answered: all those before the Stats are counted.
        assert_eq!(
            st.latency.samples,
            (1 + round * 202 + 200) / 64,
            "round {round}"
        );
        assert_eq!(outcomes[201], Outcome::Deleted(0u64.to_le_bytes().to_vec()));
    }
    let st = c.stats().unwrap();
    // 1 + 20 × 202 + 1 requests on one lane: every 64th is timed.
    assert_eq!(st.latency.samples, (1 + 20 * 202 + 1) / 64);
    let l = st.latency;
    assert!(l.p50_ns > 0 && l.p50_ns <= l.p99_ns && l.p99_ns <= l.p999_ns && l.p999_ns <= l.max_ns);
    assert!(l.window_ms <= 20_000, "{l:?}");
    drop(c);
    s.quit_and_check_clean();
}
