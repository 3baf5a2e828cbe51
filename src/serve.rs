//! Serving one client: the [`Lane`] its worker threads share (the request ring's consumer, the
//! response ring's producer, the worker count) and the step each worker repeats
//! ([`Lane::serve_one`]): take one request, execute it on the [`Store`], answer it.
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

use crate::record::{RecordConsumer, RecordError, RecordMem, RecordProducer};
use crate::stats::{DEFAULT_SAMPLE_EVERY, LaneCounters, Stats};
use crate::store::{Store, StoreError};
use crate::sync::{AtomicBool, AtomicU32, Condvar, Mutex, MutexGuard, Ordering, fence};
use crate::wait::{SpinPolicy, Wake};
use crate::wire::{
    self, ENTRIES_FIXED, ErrorCode, KEYS_FIXED, Limits, OpView, Reply, ReplyKind, Response,
    STATS_FIXED, Stat, decode_request_view, encode_response, request_id,
};
use std::time::{Duration, Instant};

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

/// What the server provides a lane: its control operations and its view of the client.
pub trait Control: Sync {
    /// Start `n` more worker threads for this lane; the lane's worker count already includes
    /// them. Returns how many were started (the count of the others is taken back).
    fn start_workers(&self, n: u32) -> u32;
    /// Begin a graceful shutdown of the whole server.
    fn request_quit(&self);
    /// The server is shutting down: take no more requests.
    fn stopping(&self) -> bool;
    /// A waiting worker should stop waiting and return (shutdown, or the client detaching).
    /// Read with `SeqCst`; whoever makes it true then calls [`Lane::nudge`].
    fn cancel_wait(&self) -> bool;
    /// The client has gone (detached or died): its responses can be dropped.
    fn peer_gone(&self) -> bool;
    /// The client made a worker do something pointless, which a well-behaved client never
    /// does ([`Misbehavior`]). Returns true once the server has decided to drop the client: a
    /// worker waiting for room for its answers then stops waiting and drops them. The default
    /// ignores it.
    fn misbehaved(&self, what: Misbehavior) -> bool {
        let _ = what;
        false
    }
    /// Record the service time of a sampled request (one in [`Lane::sample_every`]). The
    /// default drops it.
    fn record_latency(&self, took: Duration) {
        let _ = took;
    }
    /// The statistics a Stats request answers with, in the order they are sent. Called with the
    /// asking lane's consumer lock held, once every earlier request of that client has been
    /// answered. The default reports the table only.
    fn stats(&self, store: &Store) -> Vec<Stat> {
        Stats {
            entries: store.len(),
            buckets: store.bucket_count() as u64,
            longest_bucket: store.longest_bucket(),
            memory_used: store.memory_used(),
            memory_limit: store.budget(),
            ..Stats::default()
        }
        .to_stats()
    }
}

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
/// ring and more wait), before letting other workers and its own loop's checks in.
pub const BURST: u32 = 16;

/// Something pointless a client made a worker do (see [`Control::misbehaved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehavior {
    /// A request that does not decode, or carries a key or value over the limits (it is still
    /// answered, with Malformed or TooLarge).
    Malformed,
    /// The worker waiting for room for answers was woken, and there is still no room: only a
    /// client writing the response ring's futex word by hand does that.
    SpuriousWake,
}

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

/// A worker's own buffers: the copy of the request it serves and the encoding of an answer.
/// Reused from request to request.
#[derive(Debug, Default)]
pub struct Scratch {
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Scratch {
    /// Give back a buffer that a huge message grew (see [`SCRATCH_KEEP`]).
    fn trim(&mut self) {
        for b in [&mut self.request, &mut self.response] {
            if b.capacity() > SCRATCH_KEEP {
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

/// Where a lane's spare workers (those that find the consumer lock taken) wait for the ring to
/// be handed over, instead of queueing on the consumer lock. Queued there, each of the
/// holder's unlocks would wake one of them only to find the lock taken again by the holder
/// (which keeps the ring while the client sends one request at a time): a system call and a
/// context switch per request, on the core the client needs. With 16 workers on 2 cores that
/// cut synchronous throughput to a quarter. A spare is let through when the holder hands the
/// ring over (more requests wait), leaves it (ThStop, exit), or when the lane
/// is nudged; otherwise it times out like an idle worker. A lost signal only delays: the
/// holder serves on by itself.
#[derive(Debug)]
struct SpareGate {
    state: Mutex<GateState>,
    cv: Condvar,
    /// Spares registered to wait (incremented before their last look at the lock).
    waiting: AtomicU32,
}

#[derive(Debug, Default)]
struct GateState {
    /// Passes for one spare each (at most one outstanding).
    passes: u32,
    /// Bumped by [`SpareGate::nudge`]: every waiting spare returns.
    nudges: u64,
}

impl SpareGate {
    fn new() -> SpareGate {
        SpareGate {
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
            waiting: AtomicU32::new(0),
        }
    }

    /// Wait, as a registered spare, for a pass (true), or for a nudge, `stop()` or `timeout`
    /// (false). `stop` is looked at under the gate's lock, which [`SpareGate::nudge`] takes
    /// too: a nudge after `stop()` became true is never missed. Unregisters.
    fn wait(&self, timeout: Option<Duration>, stop: &dyn Fn() -> bool) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.state.lock();
        let nudges = st.nudges;
        let passed = loop {
            if st.passes > 0 {
                st.passes -= 1;
                break true;
            }
            if st.nudges != nudges || stop() {
                break false;
            }
            match deadline {
                None => st = self.cv.wait(st),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    st = self.cv.wait_timeout(st, d - now);
                }
            }
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        passed
    }

    /// Let one waiting spare through (call after releasing the consumer lock). The fence
    /// pairs with the one a spare issues after registering: either it sees the lock free, or
    /// we see it registered.
    fn pass_one(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut st = self.state.lock();
        if st.passes == 0 {
            st.passes = 1;
            self.cv.notify_one();
        }
    }

    /// Send every waiting spare back to its caller.
    fn nudge(&self) {
        let mut st = self.state.lock();
        st.nudges = st.nudges.wrapping_add(1);
        self.cv.notify_all();
    }
}

/// Bytes of requests known to wait, besides the one just taken, for which a worker handing the
/// ring over also wakes a sleeping spare worker (about 16 small requests).
pub const PASS_BACKLOG: u64 = 16 * 48;

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

    /// With the consumer lock held (no request can start), wait until every earlier request
    /// has been executed and answered: until no request but the caller's own (`counted`: it
    /// was counted in flight) is in flight. (A request served without handing the ring over
    /// is answered before its worker lets go of the consumer lock, so only handed-over ones
    /// are counted.) Parks on a condition variable, never spins: the requests it waits for
    /// may themselves wait a long time for the client to make room for their answers.
    fn wait_earlier_answered(&self, _held: &Option<MutexGuard<'_, Taker<M>>>, counted: bool) {
        let limit = u32::from(counted);
        if self.in_flight.load(Ordering::SeqCst) <= limit {
            return;
        }
        let mut g = self.settled.lock();
        self.settling.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) > limit {
            // The timeout only bounds the cost of a lost wake-up; `answered` wakes us.
            g = self.settled_cv.wait_timeout(g, SETTLE_POLL);
        }
        self.settling.fetch_sub(1, Ordering::SeqCst);
        drop(g);
    }

    /// A handed-over request is answered: count it out and wake a parked Stats request.
    fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // Dekker pairing with `wait_earlier_answered`: either it sees our decrement, or we see
        // it registered. (The fences make the SeqCst order explicit; loom, which models SeqCst
        // accesses as acquire/release, needs them to see it.)
        fence(Ordering::SeqCst);
        if self.settling.load(Ordering::SeqCst) != 0 {
            let _g = self.settled.lock();
            self.settled_cv.notify_all();
        }
    }

    /// After a request holds its bucket lock: release the consumer lock (`held`) if `hand`
    /// (more requests wait and another worker may take them in parallel), else leave it held
    /// until the request is answered (the caller drops it after [`Lane::respond_all`]: an
    /// answer deferred by a worker that keeps the ring is then published by its next one).
    fn hand_off(&self, held: &mut Option<MutexGuard<'_, Taker<M>>>, hand: bool) {
        if !hand {
            return;
        }
        if let Some(consumer) = held.take() {
            // Wake a sleeping spare only for a backlog worth a wake-up (a system call and a
            // context switch, microseconds): for a few requests the holder is back sooner,
            // and on a small machine the spare would only take the core the client needs.
            let backlog = consumer.ring.ready_cached() >= PASS_BACKLOG;
            drop(consumer);
            if backlog {
                self.gate.pass_one();
            }
        }
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

    /// A worker leaves the lane for good (it exits): let a spare take its place at the ring.
    pub fn leave(&self) {
        self.gate.pass_one();
    }

    /// Take the consumer lock: at once if it is free, else as a spare at the gate (see
    /// [`SpareGate`]), for up to `wait` or until [`Control::stopping`] holds and the lane is
    /// nudged. None if no pass came.
    fn take_ring(
        &self,
        wait: Option<Duration>,
        ctl: &dyn Control,
    ) -> Option<MutexGuard<'_, Taker<M>>> {
        if let Some(c) = self.consumer.try_lock() {
            return Some(c);
        }
        self.gate.waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(c) = self.consumer.try_lock() {
            self.gate.waiting.fetch_sub(1, Ordering::SeqCst);
            return Some(c);
        }
        if !self.gate.wait(wait, &|| ctl.stopping()) {
            return None;
        }
        Some(self.consumer.lock())
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

    /// Copy the next request out of the ring into `buf`, waiting up to `wait` (or until
    /// [`Control::cancel_wait`] holds after a [`Lane::nudge`]). Err(None): nothing came.
    fn take(
        &self,
        c: &mut Taker<M>,
        buf: &mut Vec<u8>,
        ctl: &dyn Control,
        wait: Option<Duration>,
    ) -> Result<(), Option<RecordError>> {
        let corrupt = |e| match e {
            e @ RecordError::Corrupt { .. } => Some(e),
            _ => None,
        };
        match c.ring.read_into(buf) {
            Ok(_) => {}
            Err(RecordError::WouldBlock) => {
                c.unreleased = 0;
                c.ring
                    .wait_data_or(wait, self.policy, &|| ctl.cancel_wait())
                    .map_err(corrupt)?;
                c.ring.read_into(buf).map_err(corrupt)?;
            }
            Err(e) => return Err(corrupt(e)),
        }
        c.unreleased += 1;
        Ok(())
    }

    /// Take one request (waiting up to `wait` for one, or until [`Control::cancel_wait`] holds
    /// after a [`Lane::nudge`]), execute it on `store`, and answer it; then, while the worker
    /// keeps the ring and more requests are known to wait, serve them too (up to
    /// [`BURST`] in all) under the same take of the consumer lock. Takes nothing once
    /// [`Control::stopping`] holds.
    pub fn serve_one(
        &self,
        store: &Store,
        ctl: &dyn Control,
        wait: Option<Duration>,
        scratch: &mut Scratch,
    ) -> Step {
        let Some(consumer) = self.take_ring(wait, ctl) else {
            return Step::Idle;
        };
        let mut held = Some(consumer);
        let mut step = Step::Idle;
        for served in 0..BURST {
            let Some(consumer) = held.as_mut() else {
                break;
            };
            // After the first request: only one already published, and only for a client that
            // is still there (an ended session's requests are counted one by one).
            if served > 0 && (consumer.ring.ready_cached() == 0 || ctl.cancel_wait()) {
                break;
            }
            // (Counting below happens before `consumer` is released: it is the counters' one
            // writer.)
            if ctl.stopping() {
                break;
            }
            match self.take(consumer, &mut scratch.request, ctl, wait) {
                Ok(()) => {}
                Err(None) => break,
                Err(Some(e)) => return Step::Corrupt(e),
            }
            step = self.serve_taken(store, ctl, &mut held, scratch);
            if !matches!(step, Step::Served) {
                break;
            }
        }
        // A worker that kept the ring lets go of it only now, after answering (see
        // `hand_off`).
        drop(held);
        scratch.trim();
        step
    }

    /// Execute and answer the request just copied into `scratch` (the consumer lock `held`).
    fn serve_taken(
        &self,
        store: &Store,
        ctl: &dyn Control,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        scratch: &mut Scratch,
    ) -> Step {
        let consumer = held.as_mut().expect("the caller holds the ring");
        // Are more requests waiting? Then hand the ring to another worker as soon as this
        // request holds its bucket lock (lock coupling), and let releases batch up. If not,
        // keep the ring while executing and answering: another worker could only spin on an
        // empty ring, and on a busy machine it would take the core this one needs (the
        // oversubscription cliff). (Known from our cached copy of the producer's counter:
        // looking at the shared one would cost a cache miss on every request of a synchronous
        // client; when the cache says none, keeping the ring is the safe choice either way.)
        let more = consumer.ring.ready_cached() > 0;
        // Hand the ring over only if another worker could take it; a lone worker keeps it.
        let hand = more && self.share_backlog && self.workers.load(Ordering::Relaxed) > 1;
        // Bytes read are given back in batches: at RELEASE_BATCH requests, or when a worker
        // finds the ring empty (the wait releases before it waits). Not before answering a
        // lone request: its release (a store and a fence) would delay the answer a synchronous
        // client is waiting for, and that client needs no room.
        if consumer.unreleased >= RELEASE_BATCH {
            consumer.ring.release();
            consumer.unreleased = 0;
        }
        // Counted in flight only when the ring is handed over: a Stats waits for the counted
        // ones; the others finish before their worker lets go of the ring.
        if hand {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
        }
        // Answers may wait in the ring unpublished while this worker keeps the ring and more
        // requests are known to wait (at most PUBLISH_BATCH of them): the next answer's
        // publication covers them. A worker that hands the ring over publishes at once (a
        // deferred answer there once deadlocked a loom model: nobody was bound to publish it).
        let defer = more && !hand;
        let started = (self.counters.taken() & self.sample_mask == 0).then(Instant::now);
        let Scratch { request, response } = scratch;
        let id = request_id(request);
        let mut quit = false;
        let (step, replies) = match decode_request_view(request, &self.limits) {
            Err(e) => {
                let code = e.reply_code();
                self.counters.error(&code);
                ctl.misbehaved(Misbehavior::Malformed);
                self.hand_off(held, hand);
                (Step::Served, Answer::One(Reply::Error(code)))
            }
            Ok((_, op)) => {
                self.counters.op(op.verb());
                quit = op == OpView::Quit;
                let exec = Exec {
                    store,
                    ctl,
                    hand,
                    id,
                };
                self.execute(&exec, held, op, response)
            }
        };
        let answered = self.respond_all(ctl, id, replies, defer, response);
        if quit {
            ctl.request_quit();
        }
        if let Some(t0) = started {
            ctl.record_latency(t0.elapsed());
        }
        if hand {
            self.answered();
        }
        if matches!(step, Step::Exit) {
            // Let go of the ring before leaving it to a spare.
            drop(held.take());
            self.leave();
        }
        match answered {
            Err(e) => Step::Corrupt(e),
            Ok(_) => step,
        }
    }

    /// Execute one decoded request, releasing the consumer lock as soon as the request's order
    /// is fixed (see [`Lane::hand_off`]); the answer's parts, in order, or
    /// [`Answer::Encoded`] when it was encoded into `out` (a value, straight from the table).
    fn execute(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
        out: &mut Vec<u8>,
    ) -> (Step, Answer) {
        match op {
            OpView::Insert { .. }
            | OpView::Read { .. }
            | OpView::Delete { .. }
            | OpView::InsertNew { .. }
            | OpView::Cas { .. }
            | OpView::Add { .. } => self.execute_keyed(exec, held, op, out),
            OpView::Len | OpView::Scan { .. } | OpView::Print { .. } | OpView::Stats => {
                self.execute_whole(exec, held, op)
            }
            OpView::ThreadsStart { .. } | OpView::ThreadsStop | OpView::Quit => {
                self.execute_control(exec, held, op)
            }
        }
    }

    /// [`Lane::execute`] for an operation on one key: the key's bucket is locked before the
    /// consumer lock is let go, which fixes the request's order among same-key requests.
    fn execute_keyed(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
        out: &mut Vec<u8>,
    ) -> (Step, Answer) {
        let Exec {
            store, hand, id, ..
        } = *exec;
        let stored = |r: Result<Reply, StoreError>| {
            let r = r.unwrap_or_else(|e| Reply::Error(store_error(e, &self.limits)));
            if let Reply::Error(e) = &r {
                self.counters.error(e);
            }
            (Step::Served, Answer::One(r))
        };
        match op {
            OpView::Insert { key, value } => {
                let g = store.write(key);
                self.hand_off(held, hand);
                stored(g.insert(value).map(|prev| match prev {
                    None => Reply::Created,
                    Some(p) => Reply::Replaced(p),
                }))
            }
            OpView::Read { key } => {
                let g = store.read(key);
                self.hand_off(held, hand);
                match g.get() {
                    Some(v) => {
                        out.clear();
                        wire::encode_value_response(id, ReplyKind::Value, v, out);
                        (Step::Served, Answer::Encoded)
                    }
                    None => one(Reply::NotFound),
                }
            }
            OpView::Delete { key } => {
                let g = store.write(key);
                self.hand_off(held, hand);
                one(match g.delete() {
                    Some(v) => Reply::Deleted(v),
                    None => Reply::NotFound,
                })
            }
            OpView::InsertNew { key, value } => {
                let g = store.write(key);
                self.hand_off(held, hand);
                stored(g.insert_new(value).map(|cur| match cur {
                    None => Reply::Created,
                    Some(v) => Reply::Exists(v),
                }))
            }
            OpView::Cas { key, expected, new } => {
                let g = store.write(key);
                self.hand_off(held, hand);
                stored(g.cas(expected, new).map(|r| match r {
                    Ok(()) => Reply::Swapped,
                    Err(cur) => Reply::Mismatch(cur),
                }))
            }
            OpView::Add { key, delta } => {
                let g = store.write(key);
                self.hand_off(held, hand);
                stored(
                    g.add_within(delta, self.limits.max_value as usize)
                        .map(Reply::Number),
                )
            }
            _ => unreachable!("not an operation on one key"),
        }
    }

    /// [`Lane::execute`] for a whole-table read (len, scan, print) or Stats: these follow
    /// every earlier request of this client and precede every later one, so they are taken
    /// with the consumer lock held, once the earlier ones are answered.
    fn execute_whole(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
    ) -> (Step, Answer) {
        let Exec {
            store, ctl, hand, ..
        } = *exec;
        self.wait_earlier_answered(held, hand);
        match op {
            OpView::Len => {
                let n = store.len();
                self.hand_off(held, hand);
                one(Reply::Count(n))
            }
            OpView::Scan { cursor, count } => {
                let (next, keys) = store.scan(cursor, count.min(SCAN_MAX_COUNT));
                self.hand_off(held, hand);
                let max = self.max_answer();
                let parts = wire::split_parts(keys, KEYS_FIXED, |k| wire::key_item_len(k), max);
                (
                    Step::Served,
                    with_more(parts, |keys, more| Reply::Keys {
                        cursor: next,
                        keys,
                        more,
                    }),
                )
            }
            OpView::Print { bucket } => {
                let pairs = store.print(bucket);
                self.hand_off(held, hand);
                match pairs {
                    None => {
                        let e = ErrorCode::BadBucket {
                            bucket,
                            buckets: store.bucket_count() as u64,
                        };
                        self.counters.error(&e);
                        one(Reply::Error(e))
                    }
                    Some(pairs) => {
                        let max = self.max_answer();
                        let parts =
                            wire::split_parts(pairs, ENTRIES_FIXED, wire::entry_item_len, max);
                        (
                            Step::Served,
                            with_more(parts, |pairs, more| Reply::Entries { pairs, more }),
                        )
                    }
                }
            }
            OpView::Stats => {
                let stats = ctl.stats(store);
                self.hand_off(held, hand);
                let max = self.max_answer();
                let parts = wire::split_parts(stats, STATS_FIXED, wire::stat_item_len, max);
                (
                    Step::Served,
                    with_more(parts, |stats, more| Reply::Stats { stats, more }),
                )
            }
            _ => unreachable!("not a whole-table read"),
        }
    }

    /// [`Lane::execute`] for a change of worker count or Quit. Worker-count changes happen
    /// under the consumer lock, so that a client's ThreadsStart/ThreadsStop take effect (and
    /// report counts) in the order it sent them.
    fn execute_control(
        &self,
        exec: &Exec<'_>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        op: OpView<'_>,
    ) -> (Step, Answer) {
        let Exec { ctl, hand, .. } = *exec;
        match op {
            OpView::ThreadsStart { n } => {
                let reply = self.start(n, ctl);
                if let Reply::Error(e) = &reply {
                    self.counters.error(e);
                }
                self.hand_off(held, hand);
                one(reply)
            }
            OpView::ThreadsStop => {
                let r = self
                    .workers
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                        (w > 1).then(|| w - 1)
                    });
                self.hand_off(held, hand);
                match r {
                    Ok(w) => (Step::Exit, Answer::One(Reply::Threads(w - 1))),
                    Err(_) => {
                        self.counters.error(&ErrorCode::LastWorker);
                        one(Reply::Error(ErrorCode::LastWorker))
                    }
                }
            }
            // (The server is asked to stop once the answer is written: see `serve_one`.)
            OpView::Quit => {
                self.hand_off(held, hand);
                one(Reply::Done)
            }
            _ => unreachable!("not a control operation"),
        }
    }

    /// The longest answer record the response ring carries.
    fn max_answer(&self) -> usize {
        crate::record::max_payload(self.responses.capacity())
    }

    fn start(&self, n: u32, ctl: &dyn Control) -> Reply {
        let max = self.max_workers;
        match self
            .workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                w.checked_add(n).filter(|&t| t <= max)
            }) {
            Err(current) => Reply::Error(ErrorCode::ThreadLimit { current, max }),
            Ok(before) => {
                let started = ctl.start_workers(n).min(n);
                if started < n {
                    self.workers.fetch_sub(n - started, Ordering::SeqCst);
                }
                if started == 0 {
                    Reply::Error(ErrorCode::ShuttingDown)
                } else {
                    Reply::Threads(before + started)
                }
            }
        }
    }

    /// Encode the replies (the parts of one answer to request `id`) and write them to the
    /// response ring, publishing unless `defer` (see [`Lane::serve_one`]).
    fn respond_all(
        &self,
        ctl: &dyn Control,
        id: u64,
        replies: Answer,
        defer: bool,
        buf: &mut Vec<u8>,
    ) -> Result<bool, RecordError> {
        let mut p = self.producer.lock();
        let mut write = |reply: Option<Reply>| {
            if let Some(reply) = reply {
                buf.clear();
                encode_response(&Response { id, reply }, buf);
            }
            self.write_answer(ctl, &mut p, buf)
        };
        let written = match replies {
            Answer::Encoded => write(None)?,
            Answer::One(reply) => write(Some(reply))?,
            Answer::Parts(parts) => {
                let mut all = true;
                for reply in parts {
                    if !write(Some(reply))? {
                        all = false;
                        break;
                    }
                }
                all
            }
        };
        if !written {
            return Ok(false);
        }
        p.unpublished += 1;
        if !(defer && p.unpublished < PUBLISH_BATCH && p.ring.unpublished() < PUBLISH_BYTES) {
            p.ring.publish();
            p.unpublished = 0;
        }
        Ok(true)
    }

    /// Write and publish one answer (for tests and tools; the workers batch publications).
    /// Ok(false) if it was dropped (the lane is abandoned); an error if the client broke the
    /// ring's counters (the lane is then abandoned).
    pub fn respond(&self, ctl: &dyn Control, response: &Response) -> Result<bool, RecordError> {
        let mut buf = Vec::new();
        self.respond_all(
            ctl,
            response.id,
            Answer::One(response.reply.clone()),
            false,
            &mut buf,
        )
    }

    /// Write one encoded answer, waiting for room while the lane is not abandoned and the
    /// client is there ([`Control::peer_gone`], checked every [`RESPOND_POLL`]).
    fn write_answer(
        &self,
        ctl: &dyn Control,
        p: &mut Answerer<M>,
        bytes: &[u8],
    ) -> Result<bool, RecordError> {
        loop {
            if self.is_abandoned() {
                return Ok(false);
            }
            let e = match p.ring.write(bytes) {
                Ok(()) => return Ok(true),
                Err(e) => e,
            };
            if e != RecordError::WouldBlock {
                self.abandon();
                return Err(e);
            }
            p.unpublished = 0;
            // Publishes what was written, then waits; cut short once the lane is abandoned
            // (see `Lane::nudge`).
            match p
                .ring
                .wait_space_or(bytes.len(), Some(RESPOND_POLL), &|| self.is_abandoned())
            {
                Ok(()) => {}
                // (Woken by a nudge: the loop looks at `abandoned` first.)
                Err(RecordError::WouldBlock) if self.is_abandoned() => {}
                Err(RecordError::WouldBlock) => {
                    if ctl.misbehaved(Misbehavior::SpuriousWake) {
                        self.abandon();
                        return Ok(false);
                    }
                }
                Err(RecordError::TimedOut) => {
                    if ctl.peer_gone() {
                        self.abandon();
                    }
                }
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            }
        }
    }

    /// Answer every request still in the ring with [`ErrorCode::ShuttingDown`], without
    /// executing it (used at shutdown). Returns how many were refused.
    pub fn refuse_pending(&self, ctl: &dyn Control) -> usize {
        let mut consumer = self.consumer.lock();
        let mut n = 0;
        let mut buf = Vec::new();
        // At most one ring's worth (a record takes at least 16 bytes): a client that keeps
        // refilling its ring must not hold a shutting-down worker forever.
        let limit = self.requests.capacity() / 16;
        while n < limit {
            if consumer.ring.read_into(&mut buf).is_err() {
                break;
            }
            consumer.ring.release();
            consumer.unreleased = 0;
            n += 1;
            self.counters.taken();
            if let Ok((_, op)) = decode_request_view(&buf, &self.limits) {
                self.counters.op(op.verb());
            }
            self.counters.error(&ErrorCode::ShuttingDown);
            let id = request_id(&buf);
            let _ = self.respond(
                ctl,
                &Response {
                    id,
                    reply: Reply::Error(ErrorCode::ShuttingDown),
                },
            );
        }
        n
    }
}

/// A one-part answer, the request served.
fn one(r: Reply) -> (Step, Answer) {
    (Step::Served, Answer::One(r))
}

/// The parts of a long answer, each made by `make(items, more)`.
fn with_more<T>(parts: Vec<Vec<T>>, make: impl Fn(Vec<T>, bool) -> Reply) -> Answer {
    let last = parts.len() - 1;
    Answer::Parts(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| make(p, i < last))
            .collect(),
    )
}

/// The replies that answer one request: one (most), or the parts of a long answer, or one
/// already encoded into the worker's response buffer.
#[derive(Debug)]
enum Answer {
    One(Reply),
    Parts(Vec<Reply>),
    Encoded,
}

/// What [`Lane::execute`] needs besides the operation.
#[derive(Clone, Copy)]
struct Exec<'a> {
    store: &'a Store,
    ctl: &'a dyn Control,
    /// Whether the consumer lock is handed over once the request's order is fixed.
    hand: bool,
    /// The request's id.
    id: u64,
}

/// The refusal a store error becomes (`limits`: the lane's, for a result too long).
fn store_error(e: StoreError, limits: &Limits) -> ErrorCode {
    match e {
        StoreError::OutOfMemory => ErrorCode::OutOfMemory,
        StoreError::NotAnInteger => ErrorCode::NotAnInteger,
        StoreError::Overflow => ErrorCode::Overflow,
        StoreError::TooLong { len } => ErrorCode::TooLarge {
            what: crate::wire::Field::Value,
            len: len as u64,
            max: limits.max_value,
        },
    }
}
#[cfg(all(test, not(loom)))]
mod tests;
