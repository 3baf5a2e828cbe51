//! Loom models of shmkv's concurrency core: the record ring with its wait/wake protocol
//! (`records.rs`), the store's bucket locks, and the worker lane that keeps one client's
//! same-key operations in order.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom`. Each model runs the
//! shipped code (the crate compiled with `--cfg loom`, where the facade in `shmkv::sync` maps to
//! loom) over heap memory: the lane models drive a real [`Lane`] over two
//! [`HeapRecordMem`] rings with wire-encoded requests, executed on a real [`Store`]. The
//! preemption bound defaults to [`DEFAULT_PREEMPTIONS`] and can be changed with
//! `LOOM_MAX_PREEMPTIONS`.
#![cfg(loom)]

mod records;

use shmkv::record::{HeapRecordMem, RecordConsumer, RecordProducer};
use shmkv::serve::{Control, Lane, Scratch, Step};
use shmkv::store::Store;
use shmkv::sync::{Arc, AtomicBool, Mutex, Ordering, thread};
use shmkv::wait::SpinPolicy;
use shmkv::wire::{
    Assembly, Limits, Op, Outcome, Request, Response, Stat, StatId, decode_response, encode_request,
};

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
const DEFAULT_PREEMPTIONS: usize = 2;

/// A spin policy small enough for the model: one spin (a loom yield), then the futex.
const MODEL_SPIN: SpinPolicy = SpinPolicy {
    spins: 1,
    yields: 0,
};

/// The limits the model's lane decodes against (its keys and values are a byte or two).
const LIMITS: Limits = Limits {
    max_key: 8,
    max_value: 8,
};

/// Bytes in each of the model's rings: every request and answer here is one record of at most
/// 32 bytes, so a ring holds four of them (a pipelined batch fits without waiting).
const RING: usize = 256;

fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    b.check(f);
}

fn insert(key: &[u8], value: &[u8]) -> Op {
    Op::Insert {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn read(key: &[u8]) -> Op {
    Op::Read { key: key.to_vec() }
}

fn delete(key: &[u8]) -> Op {
    Op::Delete { key: key.to_vec() }
}

/// Catches: bucket-lock misuse in the store: two inserts of one key from two threads must end
/// in a state some sequential order explains (each returned previous value consistent, `len`
/// and the memory charged matching the contents).
#[test]
fn store_same_key_is_linearizable() {
    model(|| {
        let s = Arc::new(Store::new(2, u64::MAX).unwrap());
        let (s1, s2) = (s.clone(), s.clone());
        let a = thread::spawn(move || s1.write(b"k").insert(b"a").unwrap());
        let b = thread::spawn(move || s2.write(b"k").insert(b"b").unwrap());
        let ra = a.join().unwrap();
        let rb = b.join().unwrap();
        let end = s.read(b"k").get().map(<[u8]>::to_vec);
        // Either a then b, or b then a.
        assert!(
            (ra.is_none() && rb.as_deref() == Some(b"a") && end.as_deref() == Some(b"b"))
                || (rb.is_none() && ra.as_deref() == Some(b"b") && end.as_deref() == Some(b"a")),
            "{ra:?} {rb:?} {end:?}"
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.memory_used(), shmkv::store::entry_cost(1, 1));
    });
}

/// Catches: a deadlock or lost update between operations on two different buckets and a read
/// running beside a write of the same bucket.
#[test]
fn store_two_buckets_and_a_reader() {
    model(|| {
        let s = Arc::new(Store::new(4, u64::MAX).unwrap());
        // Two keys in different buckets.
        let k1 = b"a".to_vec();
        let k2 = (b'b'..=b'z')
            .map(|c| vec![c])
            .find(|k| s.bucket_of(k) != s.bucket_of(&k1))
            .unwrap();
        let (s1, s2) = (s.clone(), s.clone());
        let (k1a, k2a, k1b, k2b) = (k1.clone(), k2.clone(), k1, k2);
        let a = thread::spawn(move || {
            s1.write(&k1a).insert(b"1").unwrap();
            s1.write(&k2a).insert(b"2").unwrap();
        });
        let b = thread::spawn(move || {
            let v2 = s2.read(&k2b).get().map(<[u8]>::to_vec);
            let v1 = s2.read(&k1b).get().map(<[u8]>::to_vec);
            // Program order of `a`: k1 is written before k2.
            if v2.is_some() {
                assert_eq!(v1.as_deref(), Some(&b"1"[..]));
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(s.len(), 2);
    });
}

type Mem = Arc<HeapRecordMem>;

/// The model's server: starts workers as loom threads running the shipped worker step.
struct ModelControl {
    lane: Arc<Lane<Mem>>,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    spawned: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Control for ModelControl {
    fn start_workers(&self, n: u32) -> u32 {
        for _ in 0..n {
            let h = spawn_worker(
                self.lane.clone(),
                self.store.clone(),
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

/// A worker: the server's loop in miniature (serve until ThreadsStop, or until stopped and
/// nudged).
fn spawn_worker(
    lane: Arc<Lane<Mem>>,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    ctl: Option<Arc<ModelControl>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let plain = StopOnly(stop.clone());
        let ctl: &dyn Control = match &ctl {
            Some(c) => &**c,
            None => &plain,
        };
        let mut scratch = Scratch::default();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match lane.serve_one(&store, ctl, None, &mut scratch) {
                Step::Exit => return,
                Step::Corrupt(e) => panic!("an honest client's ring read as corrupt: {e}"),
                Step::Served | Step::Idle => {}
            }
        }
    })
}

/// Control for workers that start no threads; `stop` cancels their waits. Its Stats answer is
/// the store's entry count alone (one short record: the default, every statistic, would take
/// several records and many more interleavings).
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
    fn stats(&self, store: &Store) -> Vec<Stat> {
        vec![Stat {
            id: StatId::ENTRIES,
            index: 0,
            value: store.len(),
        }]
    }
}

/// Send `ops` as one pipelined batch (one publication) and collect the complete answers by id.
fn run_client(
    p: &mut RecordProducer<Mem>,
    c: &mut RecordConsumer<Mem>,
    ops: &[Op],
) -> Vec<Outcome> {
    let mut buf = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        buf.clear();
        encode_request(
            &Request {
                id: i as u64,
                op: op.clone(),
            },
            &mut buf,
        );
        p.write(&buf).unwrap();
    }
    p.publish();
    let mut parts: Vec<Assembly> = ops.iter().map(|_| Assembly::default()).collect();
    let mut outcomes = vec![None; ops.len()];
    while outcomes.iter().any(Option::is_none) {
        c.pop_into(&mut buf, None).unwrap();
        let Response { id, reply } = decode_response(&buf, &LIMITS).unwrap();
        let i = id as usize;
        assert!(
            outcomes[i].is_none(),
            "a response for {id} after its answer"
        );
        if let Some(done) = parts[i].add(reply).unwrap() {
            outcomes[i] = Some(done);
        }
    }
    outcomes.into_iter().map(Option::unwrap).collect()
}

struct Served {
    lane: Arc<Lane<Mem>>,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    client_p: RecordProducer<Mem>,
    client_c: RecordConsumer<Mem>,
}

impl Served {
    /// Stop every worker: set the flag their waits look at, then wake them.
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.lane.nudge();
    }
}

fn served(workers: u32) -> Served {
    let req = Arc::new(HeapRecordMem::new(RING));
    let resp = Arc::new(HeapRecordMem::new(RING));
    let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, workers, 4).unwrap();
    lane.set_policy(MODEL_SPIN);
    let mut client_p = RecordProducer::new(req).unwrap();
    let mut client_c = RecordConsumer::new(resp).unwrap();
    client_p.set_policy(MODEL_SPIN);
    client_c.set_policy(MODEL_SPIN);
    Served {
        lane: Arc::new(lane),
        store: Arc::new(Store::new(1, u64::MAX).unwrap()),
        stop: Arc::new(AtomicBool::new(false)),
        client_p,
        client_c,
    }
}

/// Catches: a worker that releases the ring (consumer lock) before it holds the key's bucket
/// lock. Then the second worker can take the Read and execute it before the first worker's
/// Insert, and the Read answers "not found". With lock coupling the Read always sees the
/// Insert, whichever worker takes which request.
#[test]
fn lane_same_key_order_across_two_workers() {
    model(|| {
        let mut s = served(2);
        let w: Vec<_> = (0..2)
            .map(|_| spawn_worker(s.lane.clone(), s.store.clone(), s.stop.clone(), None))
            .collect();
        let outcomes = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[insert(b"k", b"v"), read(b"k")],
        );
        assert_eq!(
            outcomes,
            vec![Outcome::Created, Outcome::Value(b"v".to_vec())]
        );
        s.stop();
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
        let w = spawn_worker(s.lane.clone(), s.store.clone(), s.stop.clone(), None);
        let outcomes = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[insert(b"k", b"v"), read(b"k"), delete(b"k")],
        );
        assert_eq!(
            outcomes,
            vec![
                Outcome::Created,
                Outcome::Value(b"v".to_vec()),
                Outcome::Deleted(b"v".to_vec())
            ]
        );
        s.stop();
        w.join().unwrap();
    });
}

/// Catches: ThreadsStart/ThreadsStop breaking same-key order or losing a request: a worker that
/// exits on ThreadsStop with a request still unanswered, or a new worker that overtakes an
/// older request.
#[test]
fn lane_order_survives_thread_start_and_stop() {
    model(|| {
        let mut s = served(1);
        let ctl = Arc::new(ModelControl {
            lane: s.lane.clone(),
            store: s.store.clone(),
            stop: s.stop.clone(),
            spawned: Mutex::new(Vec::new()),
        });
        let first = spawn_worker(
            s.lane.clone(),
            s.store.clone(),
            s.stop.clone(),
            Some(ctl.clone()),
        );
        let outcomes = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[
                Op::ThreadsStart { n: 1 },
                insert(b"k", b"v"),
                Op::ThreadsStop,
                read(b"k"),
            ],
        );
        assert_eq!(
            outcomes,
            vec![
                Outcome::Threads(2),
                Outcome::Created,
                Outcome::Threads(1),
                Outcome::Value(b"v".to_vec())
            ]
        );
        assert_eq!(s.lane.workers(), 1);
        s.stop();
        first.join().unwrap();
        let spawned = std::mem::take(&mut *ctl.spawned.lock());
        for h in spawned {
            h.join().unwrap();
        }
    });
}

/// Two workers; an Insert, then a Stats. The worker that takes the Insert hands the ring over
/// (a request waits behind it), so the other can take the Stats while the Insert is still
/// being executed.
///
/// Catches: a Stats snapshot taken without waiting for the handed-over requests before it to be
/// answered (the Insert holds its bucket lock but has not counted its entry: the Stats reports
/// 0 entries), and a parked Stats that is never woken when the last of them is answered (its
/// wait is untimed under loom: a deadlock). Both were planted and seen to fail.
///
/// `Lane::answered` (`in_flight.fetch_sub`, then `settling.load`) and
/// `Lane::wait_earlier_answered` (`settling.fetch_add`, then `in_flight.load`) are a Dekker
/// pair; each side has a `fence(SeqCst)` between its write and its load, which loom needs (it
/// models `SeqCst` accesses as `AcqRel`, tokio-rs/loom#180; without the fences it reports a
/// deadlock the real memory model forbids).
#[test]
fn lane_stats_follow_every_earlier_request() {
    model(|| {
        let mut s = served(2);
        let w: Vec<_> = (0..2)
            .map(|_| spawn_worker(s.lane.clone(), s.store.clone(), s.stop.clone(), None))
            .collect();
        let outcomes = run_client(
            &mut s.client_p,
            &mut s.client_c,
            &[insert(b"k", b"v"), Op::Stats],
        );
        assert_eq!(
            outcomes,
            vec![
                Outcome::Created,
                Outcome::Stats(vec![Stat {
                    id: StatId::ENTRIES,
                    index: 0,
                    value: 1
                }])
            ]
        );
        s.stop();
        for h in w {
            h.join().unwrap();
        }
    });
}
