//! Unit tests of `serve`.

use super::*;
use crate::record::{HeapRecordMem, RecordConsumer, RecordProducer};
use crate::store::Store;
use crate::wire::{
    ErrorCode, Op, Reply, Request, Response, Stat, StatId, decode_response, encode_request,
};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

const LIMITS: Limits = Limits {
    max_key: 64,
    max_value: 256,
};

type Heap = Arc<HeapRecordMem>;

fn rings(cap: usize) -> (Heap, Heap) {
    (
        Arc::new(HeapRecordMem::new(cap)),
        Arc::new(HeapRecordMem::new(cap)),
    )
}

fn push(p: &mut RecordProducer<Heap>, id: u64, op: Op) {
    let mut buf = Vec::new();
    encode_request(&Request { id, op }, &mut buf);
    p.push(&buf, None).unwrap();
}

fn pop(c: &mut RecordConsumer<Heap>) -> Response {
    let mut buf = Vec::new();
    c.pop_into(&mut buf, None).unwrap();
    decode_response(&buf, &LIMITS).unwrap()
}

/// Times every request, slowly (so that requests stay in flight a while), and reports how
/// many it timed as its only statistic.
#[derive(Default)]
struct SlowRecorder {
    recorded: AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl Control for SlowRecorder {
    fn start_workers(&self, _n: u32) -> u32 {
        0
    }
    fn request_quit(&self) {}
    fn stopping(&self) -> bool {
        false
    }
    fn cancel_wait(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn peer_gone(&self) -> bool {
        false
    }
    fn record_latency(&self, _took: Duration) {
        std::thread::sleep(Duration::from_millis(2));
        self.recorded.fetch_add(1, Ordering::SeqCst);
    }
    fn stats(&self, _store: &Store) -> Vec<Stat> {
        vec![Stat {
            id: StatId(999),
            index: 0,
            value: self.recorded.load(Ordering::SeqCst),
        }]
    }
}

/// A Stats is answered only once every request taken before it has been answered (here:
/// its latency recorded), even with other workers still busy with those requests.
#[test]
fn stats_wait_for_the_requests_taken_before() {
    let (req, resp) = rings(4096);
    let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, 3, 3).unwrap();
    lane.set_sample_every(1);
    let lane = Arc::new(lane);
    let store = Arc::new(Store::new(4, u64::MAX).unwrap());
    let ctl = Arc::new(SlowRecorder::default());
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (lane, store, ctl) = (lane.clone(), store.clone(), ctl.clone());
            std::thread::spawn(move || {
                let mut scratch = Scratch::default();
                while !ctl.stop.load(Ordering::SeqCst) {
                    lane.serve_one(&store, &*ctl, Some(Duration::from_millis(5)), &mut scratch);
                }
            })
        })
        .collect();
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let mut id = 0;
    for round in 1..=5u64 {
        for key in 0..9u8 {
            id += 1;
            push(
                &mut p,
                id,
                Op::Read {
                    key: vec![b'k', key],
                },
            );
        }
        id += 1;
        push(&mut p, id, Op::Stats);
        let mut seen = None;
        while seen.is_none() {
            if let Reply::Stats { stats, .. } = pop(&mut c).reply {
                seen = Some(stats[0].value);
            }
        }
        // The 9 reads of this round and everything of earlier rounds (each Stats is timed
        // after its own snapshot).
        assert_eq!(seen, Some(round * 10 - 1), "round {round}");
    }
    ctl.stop.store(true, Ordering::SeqCst);
    lane.nudge();
    for w in workers {
        w.join().unwrap();
    }
    let ops = lane.counters().op_counts();
    assert_eq!(ops.get(crate::wire::Verb::Read), 45);
    assert_eq!(ops.get(crate::wire::Verb::Stats), 5);
    assert_eq!(lane.counters().requests(), 50);
}

/// With several workers sharing the backlog, a len, scan or print counts every write the
/// client sent before it, and none it sent after (the whole-table reads are ordered).
#[test]
fn whole_table_reads_follow_earlier_writes() {
    let (req, resp) = rings(1 << 16);
    let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, 3, 3).unwrap();
    lane.set_share_backlog(true);
    let lane = Arc::new(lane);
    let store = Arc::new(Store::new(1, u64::MAX).unwrap());
    let ctl = Arc::new(SlowRecorder::default());
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (lane, store, ctl) = (lane.clone(), store.clone(), ctl.clone());
            std::thread::spawn(move || {
                let mut scratch = Scratch::default();
                while !ctl.stop.load(Ordering::SeqCst) {
                    lane.serve_one(&store, &*ctl, Some(Duration::from_millis(5)), &mut scratch);
                }
            })
        })
        .collect();
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let mut id = 0;
    let mut buf = Vec::new();
    for round in 1..=4u64 {
        let mut ids = Vec::new();
        for i in 0..40u64 {
            id += 1;
            buf.clear();
            let key = (round * 100 + i).to_le_bytes().to_vec();
            encode_request(
                &Request {
                    id,
                    op: Op::Insert {
                        key,
                        value: vec![1],
                    },
                },
                &mut buf,
            );
            p.write(&buf).unwrap();
        }
        for op in [
            Op::Len,
            Op::Scan {
                cursor: 0,
                count: 10_000,
            },
            Op::Print { bucket: 0 },
        ] {
            id += 1;
            ids.push(id);
            buf.clear();
            encode_request(&Request { id, op }, &mut buf);
            p.write(&buf).unwrap();
        }
        p.publish();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let r = pop(&mut c);
            let n = match r.reply {
                Reply::Count(n) => n,
                Reply::Keys { keys, .. } => keys.len() as u64,
                Reply::Entries { pairs, .. } => pairs.len() as u64,
                _ => continue,
            };
            assert!(ids.contains(&r.id));
            seen.push(n);
        }
        assert_eq!(seen, vec![round * 40; 3], "round {round}");
    }
    ctl.stop.store(true, Ordering::SeqCst);
    lane.nudge();
    for w in workers {
        w.join().unwrap();
    }
}

/// Starts at most this many of the workers a ThreadsStart asks for (a server that cannot
/// spawn them all: one shutting down, or out of threads).
struct GrantsAtMost(u32);

/// Grants every ThreadsStart.
const GRANTS: GrantsAtMost = GrantsAtMost(u32::MAX);

impl Control for GrantsAtMost {
    fn start_workers(&self, n: u32) -> u32 {
        n.min(self.0)
    }
    fn request_quit(&self) {}
    fn stopping(&self) -> bool {
        false
    }
    fn cancel_wait(&self) -> bool {
        false
    }
    fn peer_gone(&self) -> bool {
        false
    }
}

/// Serve what `ops` ask, one request at a time, and return the answers' replies (taken
/// while the worker answers: a long answer may need more room than the ring has).
fn serve(
    lane: &Lane<Heap>,
    store: &Store,
    p: &mut RecordProducer<Heap>,
    c: &mut RecordConsumer<Heap>,
    ops: Vec<Op>,
) -> Vec<Reply> {
    serve_under(&GRANTS, lane, store, p, c, ops)
}

/// [`serve`] under the control `ctl`.
fn serve_under(
    ctl: &(dyn Control + Sync),
    lane: &Lane<Heap>,
    store: &Store,
    p: &mut RecordProducer<Heap>,
    c: &mut RecordConsumer<Heap>,
    ops: Vec<Op>,
) -> Vec<Reply> {
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for (id, op) in (1..).zip(ops) {
        push(p, id, op);
        std::thread::scope(|s| {
            let worker = s.spawn(|| lane.serve_one(store, ctl, None, &mut scratch));
            loop {
                let r = pop(c);
                assert_eq!(r.id, id);
                let more = r.reply.more();
                out.push(r.reply);
                if !more {
                    break;
                }
            }
            assert_eq!(worker.join().unwrap(), Step::Served);
        });
    }
    out
}

/// ThreadsStart counts the new workers and refuses to go past the lane's maximum; a second
/// consumer of the lane's request memory cannot be built from safe code.
#[test]
fn thread_starts_are_counted_and_bounded() {
    let (req, resp) = rings(4096);
    let lane = Lane::new(req.clone(), resp.clone(), LIMITS, 2, 8).unwrap();
    let store = Store::new(4, u64::MAX).unwrap();
    let mut p = RecordProducer::new(req.clone()).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let got = serve(
        &lane,
        &store,
        &mut p,
        &mut c,
        vec![Op::ThreadsStart { n: 3 }, Op::ThreadsStart { n: 4 }],
    );
    assert_eq!(
        got,
        vec![
            Reply::Threads(5),
            Reply::Error(ErrorCode::ThreadLimit { current: 5, max: 8 })
        ]
    );
    assert_eq!(lane.workers(), 5);
    let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RecordConsumer::new(req.clone())
    }));
    assert!(
        second.is_err(),
        "a second consumer of heap memory must panic"
    );
}

/// Workers the server could not start are not counted: a ThreadsStart that got fewer says
/// how many run now, one that got none is refused as "shutting down".
#[test]
fn thread_starts_the_server_cannot_make_are_not_counted() {
    let (req, resp) = rings(4096);
    let lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, 8).unwrap();
    let store = Store::new(4, u64::MAX).unwrap();
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let got = serve_under(
        &GrantsAtMost(1),
        &lane,
        &store,
        &mut p,
        &mut c,
        vec![Op::ThreadsStart { n: 3 }],
    );
    assert_eq!(got, vec![Reply::Threads(2)]);
    assert_eq!(lane.workers(), 2, "one of the three started");
    let got = serve_under(
        &GrantsAtMost(0),
        &lane,
        &store,
        &mut p,
        &mut c,
        vec![Op::ThreadsStart { n: 2 }],
    );
    assert_eq!(got, vec![Reply::Error(ErrorCode::ShuttingDown)]);
    assert_eq!(lane.workers(), 2, "none started");
}

/// A worker that finds the ring taken waits at the gate; the holder leaving the lane lets it
/// through at once (not when its wait runs out).
#[test]
fn a_leaving_worker_lets_a_waiting_spare_take_the_ring() {
    let (req, resp) = rings(4096);
    let lane = Lane::new(req, resp, LIMITS, 2, 2).unwrap();
    let held = lane.consumer.lock();
    std::thread::scope(|s| {
        let spare = s.spawn(|| {
            let t0 = std::time::Instant::now();
            let got = lane
                .take_ring(Some(Duration::from_secs(10)), &GRANTS)
                .is_some();
            (got, t0.elapsed())
        });
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while lane.gate.waiting.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < end, "the spare never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        lane.leave();
        let (got, took) = spare.join().unwrap();
        assert!(got, "the spare got no pass");
        assert!(took < Duration::from_secs(5), "let through after {took:?}");
    });
}

/// Stats under a control that keeps the default report the table: its entries, buckets and
/// longest bucket, the memory it uses (grown by inserts, shrunk by deletes) and its budget.
#[test]
fn the_default_stats_report_the_table() {
    let (req, resp) = rings(4096);
    let lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, 1).unwrap();
    let store = Store::new(2, 1 << 20).unwrap();
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let k = |s: &str| s.as_bytes().to_vec();
    let insert = |key: &str, value: &str| Op::Insert {
        key: k(key),
        value: k(value),
    };
    let got = serve(
        &lane,
        &store,
        &mut p,
        &mut c,
        vec![
            Op::Stats,
            insert("a", "1"),
            insert("bb", "22"),
            Op::Stats,
            Op::Delete { key: k("a") },
            Op::Stats,
        ],
    );
    let stats: Vec<crate::stats::Stats> = got
        .iter()
        .filter_map(|r| match r {
            Reply::Stats { stats, more: false } => Some(crate::stats::Stats::from_stats(stats)),
            _ => None,
        })
        .collect();
    let [empty, two, one] = &stats[..] else {
        panic!("three Stats answers expected: {got:?}");
    };
    let (a, bb) = (
        crate::store::entry_cost(1, 1),
        crate::store::entry_cost(2, 2),
    );
    let table = |s: &crate::stats::Stats| (s.entries, s.buckets, s.memory_used, s.memory_limit);
    assert_eq!(table(empty), (0, 2, 0, 1 << 20));
    assert_eq!(table(two), (2, 2, a + bb, 1 << 20), "grown by both inserts");
    assert_eq!(table(one), (1, 2, bb, 1 << 20), "shrunk by the delete");
    assert_eq!(empty.longest_bucket, 0);
    assert!((1..=2).contains(&two.longest_bucket), "{two:?}");
    assert_eq!(one.longest_bucket, 1);
}

/// Every data operation answers as the wire table says; oversized and undecodable
/// requests are answered with an error under their id and counted.
#[test]
fn every_operation_is_answered() {
    let (req, resp) = rings(4096);
    let lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, 1).unwrap();
    let store = Store::new(2, u64::MAX).unwrap();
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let k = |s: &str| s.as_bytes().to_vec();
    let got = serve(
        &lane,
        &store,
        &mut p,
        &mut c,
        vec![
            Op::Insert {
                key: k("a"),
                value: k("1"),
            },
            Op::Insert {
                key: k("a"),
                value: k("2"),
            },
            Op::InsertNew {
                key: k("a"),
                value: k("3"),
            },
            Op::Cas {
                key: k("a"),
                expected: Some(k("9")),
                new: k("4"),
            },
            Op::Cas {
                key: k("a"),
                expected: Some(k("2")),
                new: k("40"),
            },
            Op::Add {
                key: k("a"),
                delta: 2,
            },
            Op::Add {
                key: k("b"),
                delta: -5,
            },
            Op::Len,
            Op::Read { key: k("a") },
            Op::Delete { key: k("b") },
            Op::Delete { key: k("b") },
            Op::Cas {
                key: k("b"),
                expected: None,
                new: k(""),
            },
            Op::Read { key: k("b") },
            Op::Print { bucket: 7 },
        ],
    );
    assert_eq!(
        got,
        vec![
            Reply::Created,
            Reply::Replaced(k("1")),
            Reply::Exists(k("2")),
            Reply::Mismatch(Some(k("2"))),
            Reply::Swapped,
            Reply::Number(42),
            Reply::Number(-5),
            Reply::Count(2),
            Reply::Value(k("42")),
            Reply::Deleted(k("-5")),
            Reply::NotFound,
            Reply::Swapped,
            Reply::Value(Vec::new()),
            Reply::Error(ErrorCode::BadBucket {
                bucket: 7,
                buckets: 2
            }),
        ]
    );
    // A key over the limit (encoded by hand: a well-behaved client refuses it) and bytes
    // that are no request at all.
    let mut scratch = Scratch::default();
    let mut big = Vec::new();
    encode_request(
        &Request {
            id: 77,
            op: Op::Read { key: vec![1; 65] },
        },
        &mut big,
    );
    let before = lane.counters().requests();
    p.push(&big, None).unwrap();
    p.push(&[9; 20], None).unwrap();
    // Both in one burst: the second was waiting when the first was taken.
    assert_eq!(
        lane.serve_one(&store, &GRANTS, None, &mut scratch),
        Step::Served
    );
    assert_eq!(lane.counters().requests(), before + 2);
    assert_eq!(
        pop(&mut c),
        Response {
            id: 77,
            reply: Reply::Error(ErrorCode::TooLarge {
                what: crate::wire::Field::Key,
                len: 65,
                max: 64
            })
        }
    );
    assert_eq!(pop(&mut c).reply, Reply::Error(ErrorCode::Malformed));
    let e = lane.counters().error_counts();
    assert_eq!((e.get(1), e.get(5), e.get(6)), (1, 1, 1));
}

/// A long answer is split into parts that each fit a record, and they add up to the whole.
#[test]
fn long_answers_come_in_parts() {
    let (req, resp) = rings(1024);
    let lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, 1).unwrap();
    let store = Store::new(1, u64::MAX).unwrap();
    for i in 0..100u32 {
        store.write(&i.to_le_bytes()).insert(&[7; 40]).unwrap();
    }
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let got = serve(
        &lane,
        &store,
        &mut p,
        &mut c,
        vec![
            Op::Print { bucket: 0 },
            Op::Scan {
                cursor: 0,
                count: 1000,
            },
        ],
    );
    let mut a = crate::wire::Assembly::default();
    let mut outcomes = Vec::new();
    for r in &got {
        if let Some(o) = a.add(r.clone()).unwrap() {
            outcomes.push(o);
        }
    }
    assert!(got.len() > 4, "{} parts", got.len());
    match &outcomes[..] {
        [
            crate::wire::Outcome::Entries(e),
            crate::wire::Outcome::Keys { cursor: 0, keys },
        ] => {
            assert_eq!(e.len(), 100);
            assert_eq!(keys.len(), 100);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn scratch_gives_back_only_buffers_above_the_keep() {
    let mut s = Scratch {
        request: Vec::with_capacity(SCRATCH_KEEP + 1),
        response: Vec::with_capacity(SCRATCH_KEEP),
        burst: vec![
            Vec::with_capacity(SCRATCH_KEEP),
            Vec::with_capacity(BURST_BYTES + 1),
            Vec::with_capacity(BURST_BYTES),
        ],
    };
    let kept = s.response.capacity();
    let burst_kept = [s.burst[0].capacity(), 0, s.burst[2].capacity()];
    s.trim();
    let burst: Vec<usize> = s.burst.iter().map(Vec::capacity).collect();
    assert_eq!(
        burst, burst_kept,
        "a burst's first copy keeps up to SCRATCH_KEEP, the others up to BURST_BYTES"
    );
    assert_eq!(
        s.request.capacity(),
        0,
        "a buffer above SCRATCH_KEEP is given back"
    );
    assert_eq!(
        s.response.capacity(),
        kept,
        "a buffer of SCRATCH_KEEP is kept"
    );
}

/// Push `ops` (ids from 1) without serving any, so that one worker finds them all at once.
fn push_all(p: &mut RecordProducer<Heap>, ops: Vec<Op>) {
    for (id, op) in (1..).zip(ops) {
        push(p, id, op);
    }
}

/// The replies of every answer waiting in the response ring, with their ids.
fn drain(c: &mut RecordConsumer<Heap>) -> Vec<(u64, Reply)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while c.try_pop_into(&mut buf).is_ok() {
        let r = decode_response(&buf, &LIMITS).unwrap();
        out.push((r.id, r.reply));
    }
    out
}

/// A worker that keeps the ring takes the waiting requests as one burst, up to and including
/// the first ThreadsStop, and answers them in order before it exits; the requests behind the
/// stop wait for the workers that stay (a worker stops once, however many stops wait).
#[test]
fn a_threads_stop_ends_a_burst() {
    let (req, resp) = rings(4096);
    let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, 3, 3).unwrap();
    lane.set_share_backlog(false);
    let store = Store::new(4, u64::MAX).unwrap();
    let mut p = RecordProducer::new(req).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let k = |s: &str| s.as_bytes().to_vec();
    let insert = |key, value| Op::Insert {
        key: k(key),
        value: k(value),
    };
    push_all(
        &mut p,
        vec![
            insert("a", "1"),
            Op::ThreadsStop,
            Op::Read { key: k("a") },
            Op::ThreadsStop,
            insert("b", "2"),
            Op::Read { key: k("b") },
        ],
    );
    let serve = || lane.serve_one(&store, &GRANTS, None, &mut Scratch::default());
    assert_eq!(serve(), Step::Exit);
    assert_eq!(
        drain(&mut c),
        vec![(1, Reply::Created), (2, Reply::Threads(2))]
    );
    assert_eq!(lane.workers(), 2);
    assert_eq!(serve(), Step::Exit);
    assert_eq!(
        drain(&mut c),
        vec![(3, Reply::Value(k("1"))), (4, Reply::Threads(1))]
    );
    assert_eq!(serve(), Step::Served);
    assert_eq!(
        drain(&mut c),
        vec![(5, Reply::Created), (6, Reply::Value(k("2")))]
    );
    assert_eq!(lane.workers(), 1);
}

/// A corrupt record in the middle of a burst ends it: the requests taken before it are
/// answered, then the corruption is reported (the client is to be dropped).
#[test]
fn a_corrupt_record_ends_a_burst_after_the_requests_before_it() {
    let (req, resp) = rings(4096);
    let lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, 1).unwrap();
    let store = Store::new(4, u64::MAX).unwrap();
    let mut p = RecordProducer::new(req.clone()).unwrap();
    let mut c = RecordConsumer::new(resp).unwrap();
    let k = |s: &str| s.as_bytes().to_vec();
    push_all(
        &mut p,
        vec![
            Op::Insert {
                key: k("a"),
                value: k("1"),
            },
            Op::Read { key: k("a") },
        ],
    );
    let third = req.ctrl().producer.0.tail.load(Ordering::SeqCst) as usize / 8;
    push(&mut p, 3, Op::Read { key: k("a") });
    // SAFETY: word `third` is in the ring (the third record's header) and no other thread
    // runs: the test plays a hostile client rewriting a published header.
    unsafe { req.write_word(third, u64::MAX) };
    let step = lane.serve_one(&store, &GRANTS, None, &mut Scratch::default());
    assert!(matches!(step, Step::Corrupt(_)), "{step:?}");
    assert_eq!(
        drain(&mut c),
        vec![(1, Reply::Created), (2, Reply::Value(k("1")))]
    );
}

/// A client that sends its next request only once the worker looks around
/// ([`Control::cancel_wait`], which a lone worker asks before each chained request): requests
/// that come one at a time, deterministically.
struct OneAtATime {
    ring: std::sync::Mutex<(RecordProducer<Heap>, std::ops::RangeInclusive<u64>)>,
}

impl Control for OneAtATime {
    fn start_workers(&self, n: u32) -> u32 {
        n
    }
    fn request_quit(&self) {}
    fn stopping(&self) -> bool {
        false
    }
    fn cancel_wait(&self) -> bool {
        let (p, ids) = &mut *self.ring.lock().unwrap();
        if let Some(id) = ids.next() {
            let key = id.to_string().into_bytes();
            let value = key.clone();
            push(p, id, Op::Insert { key, value });
        }
        false
    }
    fn peer_gone(&self) -> bool {
        false
    }
}

/// A lone worker whose requests come one at a time (as a synchronous client sends them)
/// serves them under one take of the ring, up to CHAIN, answering and publishing each before
/// it takes the next, and lets go of both rings' locks when it returns; a lane of two workers
/// serves one request a step.
#[test]
fn a_lone_worker_chains_requests_that_come_one_at_a_time() {
    let chain = CHAIN as u64;
    for (workers, more, served) in [(1, 5, 6), (1, 40, chain), (2, 5, 1)] {
        let (req, resp) = rings(4096);
        let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, workers, 2).unwrap();
        lane.set_share_backlog(false);
        let store = Store::new(4, u64::MAX).unwrap();
        let mut p = RecordProducer::new(req).unwrap();
        let mut c = RecordConsumer::new(resp).unwrap();
        let first = Op::Insert {
            key: b"1".to_vec(),
            value: b"1".to_vec(),
        };
        push(&mut p, 1, first);
        let client = OneAtATime {
            ring: std::sync::Mutex::new((p, 2..=1 + more)),
        };
        let step = lane.serve_one(&store, &client, None, &mut Scratch::default());
        assert_eq!(step, Step::Served);
        let want: Vec<_> = (1..=served).map(|id| (id, Reply::Created)).collect();
        assert_eq!(
            drain(&mut c),
            want,
            "{workers} workers, {more} more requests"
        );
        assert_eq!(store.len(), served);
        // Both locks were let go: a tool's answer goes through.
        let r = Response {
            id: 99,
            reply: Reply::Done,
        };
        assert!(lane.respond(&GRANTS, &r).unwrap());
        assert!(lane.consumer.try_lock().is_some());
    }
}
