//! Loom models of shmkv's concurrency core: the ring with its wait/wake protocol, the bucket
//! locks, and the worker lane that keeps one client's same-key operations in order.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom`. Each model runs the
//! shipped code (the crate compiled with `--cfg loom`, where the facade in `shmkv::sync` maps to
//! loom) over heap memory. The preemption bound defaults to [`DEFAULT_PREEMPTIONS`] and can be
//! changed with `LOOM_MAX_PREEMPTIONS`.
#![cfg(loom)]

mod records;

use shmkv::protocol::{Op, Reply, Request, Response, decode_response, encode_request};
use shmkv::region::{HeapRingMem, SLOT_SIZE, Slot};
use shmkv::ring::{self, Consumer, Producer};
use shmkv::serve::{Control, Lane, ServedTable, Step};
use shmkv::sync::{Arc, AtomicBool, Mutex, Ordering, thread};
use shmkv::wait::SpinPolicy;

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
const DEFAULT_PREEMPTIONS: usize = 2;

/// A spin policy small enough for the model: one spin (a loom yield), then the futex.
const MODEL_SPIN: SpinPolicy = SpinPolicy {
    spins: 1,
    yields: 0,
};

fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    b.check(f);
}

fn slot(n: u64) -> Slot {
    let mut s = [0u8; SLOT_SIZE];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s[SLOT_SIZE - 8..].copy_from_slice(&(!n).to_le_bytes());
    s
}

fn num(s: &Slot) -> u64 {
    let n = u64::from_le_bytes(s[..8].try_into().unwrap());
    assert_eq!(
        u64::from_le_bytes(s[SLOT_SIZE - 8..].try_into().unwrap()),
        !n,
        "torn slot"
    );
    n
}

fn ring_pair(
    cap: usize,
    policy: SpinPolicy,
) -> (Producer<Arc<HeapRingMem>>, Consumer<Arc<HeapRingMem>>) {
    let (mut p, mut c) = ring::channel(Arc::new(HeapRingMem::new(cap)));
    p.set_policy(policy);
    c.set_policy(policy);
    (p, c)
}

/// Catches: a publication without Release/Acquire (the consumer reads a slot before its bytes,
/// a data race loom reports on the slot cell), a slot reused before it was read, and lost
/// wake-ups in both directions (the producer fills a 2-slot ring and must sleep for space; the
/// consumer drains it and must sleep for data): a lost wake-up leaves a thread asleep forever,
/// which loom reports as a deadlock. Three items through two slots also wraps around.
#[test]
fn ring_spsc_full_empty_wraparound() {
    model(|| {
        let (mut p, mut c) = ring_pair(2, MODEL_SPIN);
        let t = thread::spawn(move || {
            for i in 0..3 {
                p.push(&slot(i), None).unwrap();
            }
        });
        for i in 0..3 {
            assert_eq!(num(&c.pop(None).unwrap()), i);
        }
        t.join().unwrap();
    });
}

/// Catches: a lost wake-up in the futex handshake when both sides go straight to sleep (no
/// spinning): the consumer raises its flag and sleeps while the producer publishes and checks
/// the flag. Missing either SeqCst fence lets both miss each other (deadlock).
#[test]
fn ring_sleeping_consumer_is_woken() {
    model(|| {
        let (mut p, mut c) = ring_pair(1, SpinPolicy::BLOCK);
        let t = thread::spawn(move || {
            p.push(&slot(7), None).unwrap();
            p.push(&slot(8), None).unwrap();
        });
        assert_eq!(num(&c.pop(None).unwrap()), 7);
        assert_eq!(num(&c.pop(None).unwrap()), 8);
        t.join().unwrap();
    });
}

/// Catches: a batch (`write` ×2, one `publish`) that becomes visible partly, or a publish that
/// forgets the unpublished count.
#[test]
fn ring_batched_publish() {
    model(|| {
        let (mut p, mut c) = ring_pair(2, MODEL_SPIN);
        let t = thread::spawn(move || {
            p.write(&slot(1)).unwrap();
            p.write(&slot(2)).unwrap();
            p.publish();
        });
        let a = num(&c.pop(None).unwrap());
        let b = num(&c.pop(None).unwrap());
        assert_eq!((a, b), (1, 2));
        t.join().unwrap();
    });
}

/// Catches: a batched read (`read` ×2, one `release`) that gives a slot back before it was
/// copied out, or a release that forgets to wake a producer sleeping on a full ring.
#[test]
fn ring_batched_read_and_release() {
    model(|| {
        let (mut p, mut c) = ring_pair(2, SpinPolicy::BLOCK);
        let t = thread::spawn(move || {
            for i in 0..4 {
                p.push(&slot(i), None).unwrap();
            }
        });
        let mut next = 0;
        while next < 4 {
            c.wait_data(None).ok();
            while let Ok(s) = c.read() {
                assert_eq!(num(&s), next);
                next += 1;
            }
            c.release();
        }
        t.join().unwrap();
    });
}

/// Catches: a nudge that a sleeping consumer misses (the cancel flag checked before the
/// waiter flag is raised, or not at all): the consumer would sleep forever.
#[test]
fn ring_nudge_cancels_a_wait() {
    model(|| {
        let mem = Arc::new(HeapRingMem::new(2));
        let mut c = Consumer::new(mem.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = thread::spawn(move || {
            stop2.store(true, Ordering::SeqCst);
            Consumer::nudge(&mem);
        });
        loop {
            let r = c.wait_data_or(None, SpinPolicy::BLOCK, &|| stop.load(Ordering::SeqCst));
            if r.is_err() && stop.load(Ordering::SeqCst) {
                break;
            }
        }
        t.join().unwrap();
    });
}

/// Catches: bucket-lock misuse in the table: two inserts and a remove of one key from three
/// threads must end in a state some sequential order explains (each returned previous value
/// consistent, `len` matching the contents).
#[test]
fn table_same_key_is_linearizable() {
    model(|| {
        let t = Arc::new(ServedTable::new(2).unwrap());
        let (t1, t2) = (t.clone(), t.clone());
        let a = thread::spawn(move || t1.insert(1, 10));
        let b = thread::spawn(move || t2.insert(1, 20));
        let ra = a.join().unwrap();
        let rb = b.join().unwrap();
        let end = t.get(&1).unwrap();
        // Either a then b, or b then a.
        assert!(
            (ra.is_none() && rb == Some(10) && end == 20)
                || (rb.is_none() && ra == Some(20) && end == 10),
            "{ra:?} {rb:?} {end}"
        );
        assert_eq!(t.len(), 1);
    });
}

/// Catches: a deadlock or lost update between operations on two different buckets and a read
/// running beside a write of the same bucket.
#[test]
fn table_two_buckets_and_a_reader() {
    model(|| {
        let t = Arc::new(ServedTable::new(4).unwrap());
        // Two keys in different buckets.
        let k1 = 1u64;
        let k2 = (2..100)
            .find(|k| t.bucket_of(k) != t.bucket_of(&k1))
            .unwrap();
        let (t1, t2) = (t.clone(), t.clone());
        let a = thread::spawn(move || {
            t1.insert(k1, 1);
            t1.insert(k2, 2);
        });
        let b = thread::spawn(move || {
            let v2 = t2.get(&k2);
            let v1 = t2.get(&k1);
            // Program order of `a`: k1 is written before k2.
            if v2.is_some() {
                assert_eq!(v1, Some(1));
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(t.len(), 2);
    });
}

/// The model's server: starts workers as loom threads running the shipped worker step.
struct ModelControl {
    lane: Arc<Lane<Arc<HeapRingMem>>>,
    table: Arc<ServedTable>,
    stop: Arc<AtomicBool>,
    spawned: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Control for ModelControl {
    fn start_workers(&self, n: u32) -> u32 {
        for _ in 0..n {
            let h = spawn_worker(
                self.lane.clone(),
                self.table.clone(),
                self.stop.clone(),
                None,
            );
            self.spawned.lock().push(h);
        }
        n
    }
    fn request_quit(&self) {}
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn cancel_wait(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn peer_gone(&self) -> bool {
        false
    }
}

/// A worker: the server's loop in miniature (serve until ThStop, or until stopped and nudged).
fn spawn_worker(
    lane: Arc<Lane<Arc<HeapRingMem>>>,
    table: Arc<ServedTable>,
    stop: Arc<AtomicBool>,
    ctl: Option<Arc<ModelControl>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let plain = StopOnly(stop.clone());
        let ctl: &dyn Control = match &ctl {
            Some(c) => &**c,
            None => &plain,
        };
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if lane.serve_one(&table, ctl, None) == Step::Exit {
                return;
            }
        }
    })
}

/// Control for workers that start no threads; `stop` cancels their waits.
struct StopOnly(Arc<AtomicBool>);
impl Control for StopOnly {
    fn start_workers(&self, _n: u32) -> u32 {
        0
    }
    fn request_quit(&self) {}
    fn stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn cancel_wait(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn peer_gone(&self) -> bool {
        false
    }
}

/// Send `ops` as one pipelined batch and collect the replies by id.
fn run_client(
    p: &mut Producer<Arc<HeapRingMem>>,
    c: &mut Consumer<Arc<HeapRingMem>>,
    ops: &[Op],
) -> Vec<Reply> {
    for (i, op) in ops.iter().enumerate() {
        p.write(&encode_request(&Request {
            id: i as u64,
            op: *op,
        }))
        .unwrap();
    }
    p.publish();
    let mut replies = vec![None; ops.len()];
    for _ in 0..ops.len() {
        let Response { id, reply } = decode_response(&c.pop(None).unwrap()).unwrap();
        assert!(
            replies[id as usize].replace(reply).is_none(),
            "two replies for {id}"
        );
    }
    replies.into_iter().map(Option::unwrap).collect()
}

struct Served {
    lane: Arc<Lane<Arc<HeapRingMem>>>,
    table: Arc<ServedTable>,
    stop: Arc<AtomicBool>,
    client_p: Producer<Arc<HeapRingMem>>,
    client_c: Consumer<Arc<HeapRingMem>>,
}

fn served(workers: u32) -> Served {
    let req = Arc::new(HeapRingMem::new(8));
    let resp = Arc::new(HeapRingMem::new(8));
    let mut lane = Lane::new(req.clone(), resp.clone(), workers, 4);
    lane.set_policy(MODEL_SPIN);
    let mut client_p = Producer::new(req);
    let mut client_c = Consumer::new(resp);
    client_p.set_policy(MODEL_SPIN);
    client_c.set_policy(MODEL_SPIN);
    Served {
        lane: Arc::new(lane),
        table: Arc::new(ServedTable::new(1).unwrap()),
        stop: Arc::new(AtomicBool::new(false)),
        client_p,
        client_c,
    }
}

/// Catches: a worker that releases the ring (consumer lock) before it holds the key's bucket
/// lock. Then the second worker can pop the Read and execute it before the first worker's
/// Insert, and the Read returns "not found". With lock coupling the Read always sees the
/// Insert, whichever worker takes which request.
#[test]
fn lane_same_key_order_across_two_workers() {
    model(|| {
        let mut s = served(2);
        let w: Vec<_> = (0..2)
            .map(|_| spawn_worker(s.lane.clone(), s.table.clone(), s.stop.clone(), None))
            .collect();
        let replies = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[Op::Insert { key: 5, value: 6 }, Op::Read { key: 5 }],
        );
        assert_eq!(replies, vec![Reply::Done, Reply::Value(6)]);
        s.stop.store(true, Ordering::SeqCst);
        s.lane.nudge();
        for h in w {
            h.join().unwrap();
        }
    });
}

/// Catches: a lone worker that leaves an answer unpublished with no further request known to
/// wait (`defer` without `more`): the client then waits forever for it (loom reports the
/// deadlock). The lone worker may defer the first answers of a burst; the last one publishes
/// them all.
#[test]
fn lane_lone_worker_publishes_every_deferred_answer() {
    model(|| {
        let mut s = served(1);
        let w = spawn_worker(s.lane.clone(), s.table.clone(), s.stop.clone(), None);
        let replies = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[
                Op::Insert { key: 5, value: 6 },
                Op::Read { key: 5 },
                Op::Delete { key: 5 },
            ],
        );
        assert_eq!(replies, vec![Reply::Done, Reply::Value(6), Reply::Value(6)]);
        s.stop.store(true, Ordering::SeqCst);
        s.lane.nudge();
        w.join().unwrap();
    });
}

/// Catches: ThStart/ThStop breaking same-key order or losing a request: a worker that exits on
/// ThStop with a request still unanswered, or a new worker that overtakes an older request.
#[test]
fn lane_order_survives_thread_start_and_stop() {
    model(|| {
        let mut s = served(1);
        let ctl = Arc::new(ModelControl {
            lane: s.lane.clone(),
            table: s.table.clone(),
            stop: s.stop.clone(),
            spawned: Mutex::new(Vec::new()),
        });
        let first = spawn_worker(
            s.lane.clone(),
            s.table.clone(),
            s.stop.clone(),
            Some(ctl.clone()),
        );
        let replies = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[
                Op::ThStart { n: 1 },
                Op::Insert { key: 5, value: 6 },
                Op::ThStop,
                Op::Read { key: 5 },
            ],
        );
        assert_eq!(
            replies,
            vec![
                Reply::Threads(2),
                Reply::Done,
                Reply::Threads(1),
                Reply::Value(6)
            ]
        );
        assert_eq!(s.lane.workers(), 1);
        s.stop.store(true, Ordering::SeqCst);
        s.lane.nudge();
        first.join().unwrap();
        let spawned = std::mem::take(&mut *ctl.spawned.lock());
        for h in spawned {
            h.join().unwrap();
        }
    });
}
