//! Serving one client: the [`Lane`] its worker threads share (the request ring's consumer, the
//! response ring's producer, the worker count) and the step each worker repeats
//! ([`Lane::serve_one`]): take one request, execute it on the table, answer it.
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
//! number of workers, so ThStart/ThStop need no hand-over: a stopping worker finishes the
//! request it holds and exits.
//!
//! The lane is generic over the ring memory, so loom runs this very code over heap rings.

use crate::protocol::{
    ErrorCode, Op, Reply, Response, Stat, decode_request, encode_response, request_id,
};
use crate::region::{RingMem, Slot};
use crate::ring::{Consumer, Producer, RingError};
use crate::stats::{DEFAULT_SAMPLE_EVERY, LaneCounters, Stats, table_stats};
use crate::sync::{AtomicBool, AtomicU32, Condvar, Mutex, MutexGuard, Ordering, fence};
use crate::table::Table;
use crate::wait::{SpinPolicy, Wake};
use std::time::{Duration, Instant};

/// The table a server serves: u64 keys to u64 values.
pub type ServedTable = Table<u64, u64>;

/// How long a worker blocked on a full response ring sleeps between checks that its client is
/// still there.
pub const RESPOND_POLL: Duration = Duration::from_millis(100);
/// The longest a Stats request parks between looks at the requests before it (it is woken as
/// soon as they are answered; this only bounds a lost wake-up).
pub const SETTLE_POLL: Duration = Duration::from_millis(20);

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
    fn stats(&self, table: &ServedTable) -> Vec<Stat> {
        let (entries, buckets, longest_bucket) = table_stats(table);
        Stats {
            entries,
            buckets,
            longest_bucket,
            ..Stats::default()
        }
        .to_stats()
    }
}

/// Ring slots a worker may read before giving them back (it gives them back sooner when it
/// finds the ring empty).
pub const RELEASE_BATCH: u64 = 16;
/// Requests known to wait, besides the one just taken, for which a worker handing the ring
/// over also wakes a sleeping spare worker (see [`Lane::serve_one`]).
pub const PASS_BACKLOG: u64 = 16;
/// The most answers a worker that keeps the ring leaves unpublished while more requests wait
/// (one publication, with its fence and its cache-line transfer to the client, for several).
pub const PUBLISH_BATCH: u64 = 8;

/// Something pointless a client made a worker do (see [`Control::misbehaved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehavior {
    /// A request that does not decode (it is still answered, with Malformed).
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
    /// The request was ThStop: this worker must exit now.
    Exit,
    /// The client's ring counters are corrupt; the client must be dropped.
    Corrupt(RingError),
}

/// The state shared by one client's workers. Lives in server-private memory.
#[derive(Debug)]
pub struct Lane<M: RingMem> {
    /// The response ring's memory, to wake a worker waiting for room (see [`Lane::nudge`]).
    responses: M,
    requests: M,
    policy: SpinPolicy,
    consumer: Mutex<Consumer<M>>,
    producer: Mutex<Producer<M>>,
    /// Workers serving the client now (changed by ThStart/ThStop under the consumer lock).
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
    /// a sleeping spare for a large one (see [`Lane::set_share_backlog`]).
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

impl<M: RingMem + Clone> Lane<M> {
    /// A lane over a request ring (consumed here) and a response ring (produced here), with
    /// `workers` workers counted and at most `max_workers` allowed.
    pub fn new(requests: M, responses: M, workers: u32, max_workers: u32) -> Self {
        Self {
            requests: requests.clone(),
            responses: responses.clone(),
            policy: SpinPolicy::DEFAULT,
            consumer: Mutex::new(Consumer::new(requests)),
            producer: Mutex::new(Producer::new(responses)),
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
        }
    }

    /// This lane's request counters.
    pub fn counters(&self) -> &LaneCounters {
        &self.counters
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

    /// Count a refusal; the witness shows the consumer lock is held (the counters' one writer).
    fn count_error(&self, _held: &MutexGuard<'_, Consumer<M>>, e: &ErrorCode) {
        self.counters.error(e);
    }

    /// With the consumer lock held (no request can start), wait until every earlier request
    /// has been executed and answered: until no request but the caller's own (`counted`: it
    /// was counted in flight) is in flight. (A request served without handing the ring over
    /// is answered before its worker lets go of the consumer lock, so only handed-over ones
    /// are counted.) Parks on a condition variable, never spins: the requests it waits for
    /// may themselves wait a long time for the client to make room for their answers.
    fn wait_earlier_answered(&self, _held: &MutexGuard<'_, Consumer<M>>, counted: bool) {
        let limit = u32::from(counted);
        if self.in_flight.load(Ordering::SeqCst) <= limit {
            return;
        }
        let mut g = self.settled.lock();
        self.settling.fetch_add(1, Ordering::SeqCst);
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
        if self.settling.load(Ordering::SeqCst) != 0 {
            let _g = self.settled.lock();
            self.settled_cv.notify_all();
        }
    }

    /// After a request holds its bucket lock: release the consumer lock if `more` requests
    /// wait (another worker may take them in parallel), else keep it (returned) until the
    /// request is answered.
    fn hand_off<'a>(
        &self,
        consumer: MutexGuard<'a, Consumer<M>>,
        more: bool,
    ) -> Option<MutexGuard<'a, Consumer<M>>> {
        if more {
            // Wake a sleeping spare only for a backlog worth a wake-up (a system call and a
            // context switch, microseconds): for a few requests the holder is back sooner,
            // and on a small machine the spare would only take the core the client needs.
            let backlog = consumer.ready_cached() >= PASS_BACKLOG;
            drop(consumer);
            if backlog {
                self.gate.pass_one();
            }
            None
        } else {
            Some(consumer)
        }
    }

    /// Whether the lane's workers share a backlog (default true): a worker that takes a
    /// request while more wait hands the ring over (lock coupling, so that another worker can
    /// take the next one in parallel) and, for a backlog of [`PASS_BACKLOG`], wakes a sleeping
    /// spare to do so. Worth it only with a core free for that spare: on a machine of two
    /// cores, one runs the client and one the worker holding the ring, and a woken spare only
    /// preempts one of them (measured: pipelined throughput with 2 workers fell from 5–7 M to
    /// 1.5–2 M ops/s in some runs, p50 from 9 to 45 µs), while a worker that keeps the ring
    /// may defer its answers' publication. Off, the lane's workers take turns: one holds the
    /// ring while the client keeps it busy, the others sleep. Same-key order holds either
    /// way (the consumer lock orders every take).
    pub fn set_share_backlog(&mut self, on: bool) {
        self.share_backlog = on;
    }

    /// Set how long workers spin before sleeping, waiting for requests and for room for
    /// responses.
    pub fn set_policy(&mut self, policy: SpinPolicy) {
        self.policy = policy;
        self.producer.lock().set_policy(policy);
    }

    /// Wake the worker sleeping for a request, so that it re-checks its `cancel` condition
    /// (set that condition first).
    pub fn nudge(&self) {
        Consumer::nudge(&self.requests);
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
    ) -> Option<MutexGuard<'_, Consumer<M>>> {
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

    /// Stop waiting for the client to make room for responses: they are dropped from now on
    /// (the client has gone, or the server is shutting down).
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Whether responses are being dropped.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Take one request (waiting up to `wait` for one, or until [`Control::cancel_wait`] holds
    /// after a [`Lane::nudge`]), execute it on `table`, and answer it. Takes nothing once
    /// [`Control::stopping`] holds.
    pub fn serve_one(
        &self,
        table: &ServedTable,
        ctl: &dyn Control,
        wait: Option<Duration>,
    ) -> Step {
        let Some(mut consumer) = self.take_ring(wait, ctl) else {
            return Step::Idle;
        };
        // (Counting below happens before `consumer` is released: it is the counters' one writer.)
        if ctl.stopping() {
            return Step::Idle;
        }
        let cancel = || ctl.cancel_wait();
        let raw = match consumer.read() {
            Ok(s) => s,
            Err(RingError::WouldBlock) => match consumer.wait_data_or(wait, self.policy, &cancel) {
                Ok(()) => match consumer.read() {
                    Ok(s) => s,
                    Err(RingError::Corrupt { ours, theirs }) => {
                        return Step::Corrupt(RingError::Corrupt { ours, theirs });
                    }
                    Err(_) => return Step::Idle,
                },
                Err(RingError::Corrupt { ours, theirs }) => {
                    return Step::Corrupt(RingError::Corrupt { ours, theirs });
                }
                Err(_) => return Step::Idle,
            },
            Err(e) => return Step::Corrupt(e),
        };
        // Are more requests waiting? Then hand the ring to another worker as soon as this
        // request holds its bucket lock (lock coupling), and let ring releases batch up. If not, keep the ring while executing and answering: another worker could
        // only spin on an empty ring, and on a busy machine it would take the core this one
        // needs (the oversubscription cliff).
        // (Known from our cached copy of the producer's counter: looking at the shared one
        // would cost a cache miss on every request of a synchronous client; when the cache
        // says none, keeping the ring is the safe choice either way.)
        let more = consumer.ready_cached() > 0;
        // Hand the ring over only if another worker could take it; a lone worker keeps it.
        let hand = more && self.share_backlog && self.workers.load(Ordering::Relaxed) > 1;
        // (Publishing once per whole burst from a worker that keeps the ring was tried: safe,
        // but the first answer of a burst then waits for the last, and pipelined p50 rose from
        // 10.6 to 16.5 µs with no throughput gain; `defer` below caps it at PUBLISH_BATCH.)
        // Slots read are given back in batches: at RELEASE_BATCH, or when a worker finds the
        // ring empty (`wait_data_or` releases before it waits). Not before answering a lone
        // request: its release (a store and a fence) would delay the answer a synchronous
        // client is waiting for, and that client needs no room.
        if consumer.unreleased() >= RELEASE_BATCH {
            consumer.release();
        }
        // Counted in flight only when the ring is handed over: a Stats waits for
        // the counted ones; the others finish before their worker lets go of the ring (two
        // locked instructions saved on every request of a synchronous client).
        if hand {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
        }
        // Answers to data requests may wait in the ring unpublished while this worker keeps
        // the ring and more requests are known to wait (at most PUBLISH_BATCH of them): the
        // next answer's publication covers them, and there is a next answer, as a request
        // waits. A worker that hands the ring over publishes at once (a deferred answer there
        // once deadlocked a loom model: nobody was bound to publish it).
        let defer = more && !hand;
        let started = (self.counters.taken() & self.sample_mask == 0).then(Instant::now);
        let id = request_id(&raw);
        let one = |reply| [encode_response(&Response { id, reply })];
        let mut step = Step::Served;
        let mut broken = None;
        let mut note = |r: Result<bool, RingError>| {
            if let Err(e) = r {
                broken = Some(e);
            }
        };
        let decoded = decode_request(&raw);
        if let Ok(req) = &decoded {
            self.counters.op(&req.op);
        }
        match decoded {
            Err(_) => {
                self.count_error(&consumer, &ErrorCode::Malformed);
                ctl.misbehaved(Misbehavior::Malformed);
                let _held = self.hand_off(consumer, hand);
                note(self.respond(ctl, &one(Reply::Error(ErrorCode::Malformed))));
            }
            Ok(req) => match req.op {
                Op::Insert { key, value } => {
                    let g = table.lock_key(key);
                    let _held = self.hand_off(consumer, hand);
                    let reply = match g.insert(value) {
                        None => Reply::Done,
                        Some(prev) => Reply::Replaced(prev),
                    };
                    note(self.respond_deferred(ctl, &one(reply), defer));
                }
                Op::Read { key } => {
                    let g = table.read_key(&key);
                    let _held = self.hand_off(consumer, hand);
                    let reply = match g.get() {
                        Some(v) => Reply::Value(*v),
                        None => Reply::NotFound,
                    };
                    drop(g);
                    note(self.respond_deferred(ctl, &one(reply), defer));
                }
                Op::Delete { key } => {
                    let g = table.lock_key(key);
                    let _held = self.hand_off(consumer, hand);
                    let reply = match g.remove() {
                        Some(v) => Reply::Value(v),
                        None => Reply::NotFound,
                    };
                    note(self.respond_deferred(ctl, &one(reply), defer));
                }
                Op::Print { bucket } => {
                    let g = usize::try_from(bucket)
                        .ok()
                        .and_then(|b| table.read_bucket(b));
                    let bad = ErrorCode::BadBucket {
                        bucket,
                        buckets: table.bucket_count() as u64,
                    };
                    if g.is_none() {
                        self.count_error(&consumer, &bad);
                    }
                    let _held = self.hand_off(consumer, hand);
                    match g {
                        None => {
                            note(self.respond(ctl, &one(Reply::Error(bad))));
                        }
                        Some(g) => {
                            let entries = g.entries();
                            drop(g);
                            let mut out: Vec<Slot> = entries
                                .iter()
                                .map(|&(key, value)| {
                                    encode_response(&Response {
                                        id,
                                        reply: Reply::Entry { key, value },
                                    })
                                })
                                .collect();
                            out.push(encode_response(&Response {
                                id,
                                reply: Reply::PrintEnd {
                                    count: entries.len() as u64,
                                },
                            }));
                            note(self.respond(ctl, &out));
                        }
                    };
                }
                // Worker-count changes happen under the consumer lock too, so that a client's
                // ThStart/ThStop take effect (and report counts) in the order it sent them.
                Op::ThStart { n } => {
                    let reply = self.start(n, ctl);
                    if let Reply::Error(e) = &reply {
                        self.count_error(&consumer, e);
                    }
                    let _held = self.hand_off(consumer, hand);
                    note(self.respond(ctl, &one(reply)));
                }
                Op::ThStop => {
                    let reply =
                        match self
                            .workers
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                                if w > 1 { Some(w - 1) } else { None }
                            }) {
                            Ok(w) => {
                                step = Step::Exit;
                                Reply::Threads(w - 1)
                            }
                            Err(_) => {
                                self.count_error(&consumer, &ErrorCode::LastWorker);
                                Reply::Error(ErrorCode::LastWorker)
                            }
                        };
                    let _held = self.hand_off(consumer, hand);
                    note(self.respond(ctl, &one(reply)));
                }
                Op::Quit => {
                    let _held = self.hand_off(consumer, hand);
                    note(self.respond(ctl, &one(Reply::Done)));
                    ctl.request_quit();
                }
                // The snapshot follows every earlier request of this client and precedes every
                // later one: it is taken with the consumer lock held, once the earlier ones are
                // answered.
                Op::Stats => {
                    self.wait_earlier_answered(&consumer, hand);
                    let stats = ctl.stats(table);
                    let _held = self.hand_off(consumer, hand);
                    let mut out: Vec<Slot> = stats
                        .iter()
                        .map(|&st| {
                            encode_response(&Response {
                                id,
                                reply: Reply::Stat(st),
                            })
                        })
                        .collect();
                    out.push(encode_response(&Response {
                        id,
                        reply: Reply::StatsEnd {
                            count: stats.len() as u64,
                        },
                    }));
                    note(self.respond(ctl, &out));
                }
            },
        }
        if let Some(t0) = started {
            ctl.record_latency(t0.elapsed());
        }
        if hand {
            self.answered();
        }
        if matches!(step, Step::Exit) {
            self.leave();
        }
        match broken {
            Some(e) => Step::Corrupt(e),
            None => step,
        }
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

    /// Write `slots` to the response ring and publish them, waiting for room while the lane is
    /// not abandoned and the client is there ([`Control::peer_gone`], checked every
    /// [`RESPOND_POLL`]). Ok(false) if the responses were dropped; an error if the client broke
    /// the ring's counters (the lane is then abandoned).
    pub fn respond(&self, ctl: &dyn Control, slots: &[Slot]) -> Result<bool, RingError> {
        self.respond_deferred(ctl, slots, false)
    }

    /// As [`Lane::respond`], but if `defer`, leave the answers unpublished while fewer than
    /// [`PUBLISH_BATCH`] are (the caller knows that another request waits, whose answer
    /// will publish them).
    fn respond_deferred(
        &self,
        ctl: &dyn Control,
        slots: &[Slot],
        defer: bool,
    ) -> Result<bool, RingError> {
        let mut p = self.producer.lock();
        for s in slots {
            loop {
                if self.is_abandoned() {
                    return Ok(false);
                }
                match p.write(s) {
                    Ok(()) => break,
                    Err(RingError::WouldBlock) => {
                        p.publish();
                        // Cut short once the lane is abandoned (see `Lane::nudge`).
                        match p.wait_space_or(Some(RESPOND_POLL), &|| self.is_abandoned()) {
                            Ok(()) => {}
                            // (Woken by a nudge: the loop looks at `abandoned` first.)
                            Err(RingError::WouldBlock) if self.is_abandoned() => {}
                            Err(RingError::WouldBlock) => {
                                if ctl.misbehaved(Misbehavior::SpuriousWake) {
                                    self.abandon();
                                    return Ok(false);
                                }
                            }
                            Err(RingError::TimedOut) => {
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
                    Err(e) => {
                        self.abandon();
                        return Err(e);
                    }
                }
            }
        }
        if !(defer && p.unpublished() < PUBLISH_BATCH) {
            p.publish();
        }
        Ok(true)
    }

    /// Answer every request still in the ring with [`ErrorCode::ShuttingDown`], without
    /// executing it (used at shutdown). Returns how many were refused.
    pub fn refuse_pending(&self, ctl: &dyn Control) -> usize {
        let mut consumer = self.consumer.lock();
        let mut n = 0;
        // At most one ring's worth: a client that keeps refilling its ring must not hold a
        // shutting-down worker forever.
        let limit = consumer.capacity();
        while n < limit {
            let Ok(raw) = consumer.try_pop() else { break };
            n += 1;
            self.counters.taken();
            if let Ok(req) = decode_request(&raw) {
                self.counters.op(&req.op);
            }
            self.count_error(&consumer, &ErrorCode::ShuttingDown);
            let id = request_id(&raw);
            let _ = self.respond(
                ctl,
                &[encode_response(&Response {
                    id,
                    reply: Reply::Error(ErrorCode::ShuttingDown),
                })],
            );
        }
        n
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::protocol::{Request, StatId, decode_response, encode_request};
    use crate::region::HeapRingMem;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

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
        fn stats(&self, _table: &ServedTable) -> Vec<Stat> {
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
        let req = Arc::new(HeapRingMem::new(64));
        let resp = Arc::new(HeapRingMem::new(64));
        let mut lane = Lane::new(req.clone(), resp.clone(), 3, 3);
        lane.set_sample_every(1);
        let lane = Arc::new(lane);
        let table = Arc::new(ServedTable::new(4).unwrap());
        let ctl = Arc::new(SlowRecorder::default());
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (lane, table, ctl) = (lane.clone(), table.clone(), ctl.clone());
                std::thread::spawn(move || {
                    while !ctl.stop.load(Ordering::SeqCst) {
                        lane.serve_one(&table, &*ctl, Some(Duration::from_millis(5)));
                    }
                })
            })
            .collect();
        let mut p = Producer::new(req);
        let mut c = Consumer::new(resp);
        let mut id = 0;
        for round in 1..=5u64 {
            for key in 0..9 {
                id += 1;
                p.push(
                    &encode_request(&Request {
                        id,
                        op: Op::Read { key },
                    }),
                    None,
                )
                .unwrap();
            }
            id += 1;
            p.push(&encode_request(&Request { id, op: Op::Stats }), None)
                .unwrap();
            let mut seen = None;
            while seen.is_none() {
                let r = decode_response(&c.pop(None).unwrap()).unwrap();
                if let Reply::Stat(st) = r.reply {
                    seen = Some(st.value);
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
        assert_eq!(lane.counters().op_counts().read, 45);
        assert_eq!(lane.counters().op_counts().stats, 5);
        assert_eq!(lane.counters().requests(), 50);
    }

    /// Grants every ThStart.
    struct Grants;

    impl Control for Grants {
        fn start_workers(&self, n: u32) -> u32 {
            n
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
        fn record_latency(&self, _took: Duration) {}
        fn stats(&self, _table: &ServedTable) -> Vec<Stat> {
            Vec::new()
        }
    }

    /// ThStart counts the new workers and refuses to go past the lane's maximum; a second
    /// consumer of the lane's request memory cannot be built from safe code.
    #[test]
    fn thread_starts_are_counted_and_bounded() {
        let req = Arc::new(HeapRingMem::new(8));
        let resp = Arc::new(HeapRingMem::new(8));
        let lane = Lane::new(req.clone(), resp.clone(), 2, 8);
        let table = ServedTable::new(4).unwrap();
        let mut p = Producer::new(req.clone());
        let mut c = Consumer::new(resp);
        for (id, n, want) in [
            (1, 3, Reply::Threads(5)),
            (
                2,
                4,
                Reply::Error(ErrorCode::ThreadLimit { current: 5, max: 8 }),
            ),
        ] {
            p.push(
                &encode_request(&Request {
                    id,
                    op: Op::ThStart { n },
                }),
                None,
            )
            .unwrap();
            assert!(matches!(
                lane.serve_one(&table, &Grants, None),
                Step::Served
            ));
            assert_eq!(decode_response(&c.pop(None).unwrap()).unwrap().reply, want);
        }
        assert_eq!(lane.workers(), 5);
        let second =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Consumer::new(req.clone())));
        assert!(
            second.is_err(),
            "a second consumer of heap memory must panic"
        );
    }
}
