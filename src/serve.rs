//! Serving one client: the [`Lane`] its worker threads share (the request ring's consumer, the
//! response ring's producer, the worker count) and the step each worker repeats
//! ([`Lane::serve_one`]): take one request, execute it on the [`Store`], answer it. A worker
//! that keeps the ring (a lone worker, or workers that take turns) takes every request already
//! published, up to [`BURST`], as one burst: it decodes them and hashes their keys, prefetches
//! what their lookups will read ([`crate::store::Prefetch`]), and then executes and answers
//! them in ring order, so that the lookups' cache misses overlap.
//!
//! # The ordering guarantee
//!
//! Operations one client issues on the same key take effect in the order it issued them,
//! however many workers serve it. A worker pops a request while holding the lane's consumer lock
//! and takes the request's bucket lock *before* releasing the consumer lock ("lock coupling").
//! Pops are thus serialised in ring order, and so are bucket-lock acquisitions of one client:
//! when request `r2` follows `r1` on the same key (hence the same bucket), `r2`'s worker asks for
//! the bucket lock only after `r1`'s worker holds it, and every effect happens under the bucket
//! lock, so `r1` takes effect first. Requests on different buckets proceed in parallel, since
//! the consumer lock is released as soon as the bucket lock is held. Nothing depends on the
//! number of workers, so ThreadsStart/ThreadsStop need no hand-over: a stopping worker finishes
//! the request it holds and exits.
//!
//! A burst changes nothing here: its worker holds the consumer lock from the first take to the
//! last answer and executes the burst's requests one after another, in ring order. Nor does a
//! lone worker's chain of lone requests ([`CHAIN`]): one take of the consumer lock for them
//! all, the requests executed in ring order.
//!
//! Requests that read the whole table (`len`, `scan`, `print`) and `stats` are ordered with
//! *all* of the client's requests: the worker holding such a request keeps the consumer lock,
//! waits until every earlier request is answered, reads,
//! and only then lets the next request be taken. So `insert a 1 len` in one pipelined batch
//! always counts `a`.
//!
//! Each request is one record of the request ring, copied out once into the worker's
//! [`Scratch`] and decoded from that copy ([`crate::wire::decode_request`], against the
//! lane's [`Limits`]); each answer is one record of the response ring, or several for a long
//! answer ([`crate::wire::split_parts`]).
//!
//! The lane is generic over the ring memory, so loom runs this very code over heap rings.

mod control;
mod execute;
mod gate;
mod order;
mod respond;
mod step;

pub use control::{Control, Misbehavior};

use crate::record::{RecordConsumer, RecordError, RecordMem, RecordProducer};
use crate::stats::{DEFAULT_SAMPLE_EVERY, LaneCounters};
#[cfg(doc)]
use crate::store::Store;
use crate::sync::{AtomicBool, AtomicU32, Condvar, Mutex, Ordering};
use crate::wait::{SpinPolicy, Wake};
use crate::wire::Limits;
use gate::SpareGate;
use std::time::Duration;

/// How long a worker blocked on a full response ring sleeps between checks that its client is
/// still there.
pub const RESPOND_POLL: Duration = Duration::from_millis(100);
/// The longest a Stats request parks between looks at the requests before it (it is woken as
/// soon as they are answered; this only bounds a lost wake-up).
pub const SETTLE_POLL: Duration = Duration::from_millis(20);
/// A worker's scratch buffer larger than this after a request is given back to the allocator
/// (one huge value must not pin its size in every worker; below it, a buffer is reused, so
/// that 64 KiB values do not cost an allocation and its page faults per request).
pub const SCRATCH_KEEP: usize = 256 * 1024;

/// The most keys one `scan` step aims for, whatever count the client asks: the answer is
/// built in server memory before it is sent, so this bounds what one request can make the
/// server hold (Redis's SCAN count is a hint too). A step still visits whole buckets.
pub const SCAN_MAX_COUNT: u32 = 1024;

/// Requests a worker may read before giving their bytes back (it gives them back sooner when
/// it finds the ring empty).
pub const RELEASE_BATCH: u32 = 16;
/// The most answers a worker that keeps the ring leaves unpublished while more requests wait
/// (one publication, with its fence and its cache-line transfer to the client, for several).
pub const PUBLISH_BATCH: u32 = 8;
/// Bytes of answers a worker may leave unpublished while more requests wait.
pub const PUBLISH_BYTES: u64 = 4096;
/// The most requests a worker serves under one take of the consumer lock (while it keeps the
/// ring and more wait), before letting other workers and its own loop's checks in: a worker
/// that keeps the ring takes them all at once (a burst, see [`Lane::serve_one`]).
pub const BURST: u32 = 16;

/// The most requests a lone worker serves one at a time under one take of the consumer lock,
/// keeping the producer's lock too, before it lets go of both and its own loop looks at its
/// session. A synchronous client's requests come one at a time, each a burst of one, and
/// taking and releasing the two locks for each costs four locked instructions on the
/// request's path. The chain ends sooner when a burst takes more than one request (a
/// pipelining client: the locks are already shared by the burst), when the worker stops being
/// the lane's only worker, when it is asked to stop or to look ([`Control::cancel_wait`]), or
/// when no request comes within the spin phase of the wait (the worker then waits in its own
/// loop, its locks let go).
pub const CHAIN: u32 = 16;

/// A worker that keeps the ring takes no more requests into one burst once those taken hold
/// this many bytes (so that a burst's copies stay small: see [`Scratch`]).
pub const BURST_BYTES: usize = 64 * 1024;

/// Bytes of requests known to wait, besides the one just taken, for which a worker handing the
/// ring over also wakes a sleeping spare worker (about 16 small requests).
pub const PASS_BACKLOG: u64 = 16 * 48;

/// What one call to [`Lane::serve_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Executed and answered one request.
    Served,
    /// No request came within the wait (or the worker was nudged).
    Idle,
    /// The request was ThreadsStop: this worker must exit now.
    Exit,
    /// The client's ring is corrupt; the client must be dropped.
    Corrupt(RecordError),
}

/// A worker's own buffers: the copies of the requests it serves and the encoding of an answer.
/// Reused from request to request.
#[derive(Debug, Default)]
pub struct Scratch {
    request: Vec<u8>,
    response: Vec<u8>,
    /// The copies of a burst's requests (see `Lane::serve_burst`).
    burst: Vec<Vec<u8>>,
}

impl Scratch {
    /// Give back a buffer that a huge message grew (see [`SCRATCH_KEEP`]).
    fn trim(&mut self) {
        let bufs = [&mut self.request, &mut self.response];
        let first = self.burst.first_mut();
        for b in bufs.into_iter().chain(first) {
            if b.capacity() > SCRATCH_KEEP {
                *b = Vec::new();
            }
        }
        // A burst's later copies are taken only while the burst holds under BURST_BYTES, so
        // that is what they keep (a worker keeps at most SCRATCH_KEEP + 15 * BURST_BYTES).
        for b in self.burst.iter_mut().skip(1) {
            if b.capacity() > BURST_BYTES {
                *b = Vec::new();
            }
        }
    }
}

/// The consumer half and the count of requests read since its last release.
#[derive(Debug)]
struct Taker<M: RecordMem> {
    ring: RecordConsumer<M>,
    unreleased: u32,
}

/// The producer half and the count of answers written since its last publication.
#[derive(Debug)]
struct Answerer<M: RecordMem> {
    ring: RecordProducer<M>,
    unpublished: u32,
}

/// The state shared by one client's workers. Lives in server-private memory.
#[derive(Debug)]
pub struct Lane<M: RecordMem> {
    /// The request and response rings' memory, to wake a waiting worker (see [`Lane::nudge`]).
    requests: M,
    responses: M,
    limits: Limits,
    policy: SpinPolicy,
    consumer: Mutex<Taker<M>>,
    producer: Mutex<Answerer<M>>,
    /// Workers serving the client now (changed by ThreadsStart/ThreadsStop under the consumer
    /// lock).
    workers: AtomicU32,
    max_workers: u32,
    /// Requests taken and handed over, not yet answered.
    in_flight: AtomicU32,
    /// Where a Stats request parks until the requests before it are answered (see
    /// [`Lane::wait_earlier_answered`]); `settling` counts the parked.
    settled: Mutex<()>,
    settled_cv: Condvar,
    settling: AtomicU32,
    abandoned: AtomicBool,
    counters: LaneCounters,
    /// One request in `sample_mask + 1` (a power of two) is timed.
    sample_mask: u64,
    /// Where workers that find the ring taken wait (see [`SpareGate`]).
    gate: SpareGate,
    /// Whether workers share a backlog: hand the ring over while more requests wait, and wake
    /// a sleeping spare (see [`Lane::set_share_backlog`]).
    share_backlog: bool,
}

impl<M: RecordMem + Clone> Lane<M> {
    /// A lane over a request ring (consumed here) and a response ring (produced here), with
    /// `workers` workers counted and at most `max_workers` allowed, decoding requests against
    /// `limits`. Fails when a ring's counters are corrupt.
    ///
    /// # Panics
    ///
    /// If either memory already has its half in this process ([`RecordMem::claim`]).
    pub fn new(
        requests: M,
        responses: M,
        limits: Limits,
        workers: u32,
        max_workers: u32,
    ) -> Result<Self, RecordError> {
        Ok(Self {
            consumer: Mutex::new(Taker {
                ring: RecordConsumer::new(requests.clone())?,
                unreleased: 0,
            }),
            producer: Mutex::new(Answerer {
                ring: RecordProducer::new(responses.clone())?,
                unpublished: 0,
            }),
            requests,
            responses,
            limits,
            policy: SpinPolicy::DEFAULT,
            workers: AtomicU32::new(workers),
            max_workers,
            in_flight: AtomicU32::new(0),
            settled: Mutex::new(()),
            settled_cv: Condvar::new(),
            settling: AtomicU32::new(0),
            abandoned: AtomicBool::new(false),
            counters: LaneCounters::default(),
            sample_mask: DEFAULT_SAMPLE_EVERY - 1,
            gate: SpareGate::new(),
            share_backlog: true,
        })
    }

    /// This lane's request counters.
    pub fn counters(&self) -> &LaneCounters {
        &self.counters
    }

    /// The limits requests are decoded against.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// One request in this many is timed for [`Control::record_latency`].
    pub fn sample_every(&self) -> u64 {
        self.sample_mask + 1
    }

    /// Time one request in `every` (rounded up to a power of two; 1 times them all) instead of
    /// [`DEFAULT_SAMPLE_EVERY`].
    pub fn set_sample_every(&mut self, every: u64) {
        self.sample_mask = every.checked_next_power_of_two().unwrap_or(1 << 63) - 1;
    }

    /// Whether the lane's workers share a backlog (default true): a worker that takes a
    /// request while more wait hands the ring over (lock coupling, so that another worker can
    /// take the next one in parallel) and, for a backlog of [`PASS_BACKLOG`] bytes, wakes a
    /// sleeping spare to do so. Worth it only with a core free for that spare: on a machine
    /// of two cores, one runs the client and one the worker holding the ring, and a woken
    /// spare only preempts one of them (measured: pipelined throughput with 2 workers fell
    /// from 5–7 M to 1.5–2 M ops/s in some runs, p50 from 9 to 45 µs), while a worker that
    /// keeps the ring may defer its answers' publication. Off, the lane's workers take turns:
    /// one holds the ring while the client keeps it busy, the others sleep. Same-key order
    /// holds either way (the consumer lock orders every take).
    pub fn set_share_backlog(&mut self, on: bool) {
        self.share_backlog = on;
    }

    /// Set how long workers spin before sleeping, waiting for requests and for room for
    /// responses.
    pub fn set_policy(&mut self, policy: SpinPolicy) {
        self.policy = policy;
        self.producer.lock().ring.set_policy(policy);
    }

    /// Wake the worker sleeping for a request, so that it re-checks its `cancel` condition
    /// (set that condition first).
    pub fn nudge(&self) {
        RecordConsumer::nudge(&self.requests);
        // A worker waiting for room for answers, too: it sees the lane abandoned at once
        // instead of after RESPOND_POLL.
        let wake = &self.responses.ctrl().wake.0;
        wake.space_futex.fetch_add(1, Ordering::SeqCst);
        self.responses.waker().wake(&wake.space_futex);
        self.gate.nudge();
    }

    /// The CPU the client last published requests from, plus one (0: unknown). Written by the
    /// client: a hint for placing its workers, nothing more.
    pub fn client_cpu(&self) -> u32 {
        self.requests.ctrl().producer.0.cpu.load(Ordering::Relaxed)
    }

    /// A worker leaves the lane for good (it exits): let a spare take its place at the ring.
    pub fn leave(&self) {
        self.gate.pass_one();
    }

    /// Workers counted for this lane.
    pub fn workers(&self) -> u32 {
        self.workers.load(Ordering::SeqCst)
    }

    /// Requests taken and not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Bytes in the request ring (a bound on the requests it can hold).
    pub fn request_capacity(&self) -> usize {
        self.requests.capacity()
    }

    /// Stop waiting for the client to make room for responses: they are dropped from now on
    /// (the client has gone, or the server is shutting down).
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Whether responses are being dropped.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
