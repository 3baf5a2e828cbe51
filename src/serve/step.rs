//! The step each worker repeats: take a request (or a burst of them) from the ring, have it
//! executed, answer it.

#[cfg(doc)]
use super::PUBLISH_BATCH;
use super::execute::{Answer, Exec};
use super::{
    Answerer, BURST, BURST_BYTES, CHAIN, Control, Lane, Misbehavior, RELEASE_BATCH, Scratch, Step,
    Taker,
};
use crate::record::{RecordError, RecordMem};
use crate::store::{Prefetch, Store};
use crate::sync::{CACHE_HINTS, MutexGuard, Ordering};
use crate::table::KeyHash;
use crate::wire::{
    Limits, OpView, Reply, Verb, WireError, decode_request_view, request_id, request_verb,
};
use std::time::{Duration, Instant};

impl<M: RecordMem + Clone> Lane<M> {
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
        let step = if self.share_backlog && self.workers.load(Ordering::Relaxed) > 1 {
            self.serve_shared(store, ctl, wait, &mut held, scratch)
        } else {
            self.serve_burst(store, ctl, wait, &mut held, scratch)
        };
        // A worker that kept the ring lets go of it only now, after answering (see
        // `hand_off`).
        drop(held);
        scratch.trim();
        step
    }

    /// [`Lane::serve_one`] for a worker that may hand the ring over after each request (its
    /// lane shares a backlog among several workers): take, execute and answer one request at
    /// a time.
    fn serve_shared(
        &self,
        store: &Store,
        ctl: &dyn Control,
        wait: Option<Duration>,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        scratch: &mut Scratch,
    ) -> Step {
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
            step = self.serve_taken(store, ctl, held, scratch);
            if !matches!(step, Step::Served) {
                break;
            }
        }
        step
    }

    /// [`Lane::serve_one`] for a worker that keeps the ring (a lone worker, or a lane whose
    /// workers take turns): take every request already published (up to [`BURST`]), decode
    /// them and hash their keys, prefetch their buckets and then their buckets' slots, and
    /// only then execute and answer them in ring order. The lookups' cache misses, three
    /// dependent ones per request, overlap across the burst instead of following one another
    /// (the technique of MICA's and DPDK's batched hash lookups).
    ///
    /// Every request taken is answered before the worker lets go of the ring. A ThreadsStop
    /// ends the taking (the requests behind it are left in the ring for the workers that stay,
    /// and a worker exits at most once, for one stop), and so does a corrupt record, the
    /// requests before it still answered.
    ///
    /// A lone worker whose burst was one request goes on taking requests under the same take
    /// of the consumer lock, keeping the producer's lock for their single-key answers (see
    /// [`CHAIN`]).
    fn serve_burst<'l>(
        &'l self,
        store: &Store,
        ctl: &dyn Control,
        wait: Option<Duration>,
        held: &mut Option<MutexGuard<'l, Taker<M>>>,
        scratch: &mut Scratch,
    ) -> Step {
        let mut out = None;
        let (mut step, mut n) = self.serve_burst_once(store, ctl, wait, held, &mut out, scratch);
        for _ in 1..CHAIN {
            let lone = self.workers.load(Ordering::Relaxed) == 1;
            if !matches!(step, Step::Served) || n != 1 || !lone || held.is_none() {
                break;
            }
            if ctl.stopping() || ctl.cancel_wait() {
                break;
            }
            // A chained burst waits no longer than the spin: a client that pauses finds the
            // worker back in its own loop, waiting there as `wait` says.
            let spin = Some(Duration::ZERO);
            match self.serve_burst_once(store, ctl, spin, held, &mut out, scratch) {
                // (Requests were served in this call: it reports them, and the worker's next
                // step finds the ring idle again if it still is.)
                (Step::Idle, _) => break,
                (s, taken) => (step, n) = (s, taken),
            }
        }
        step
    }

    /// One burst of [`Lane::serve_burst`], and how many requests it took; `out`: the
    /// producer's lock, kept from burst to burst by a lone worker (let go before anything that
    /// may lock it itself).
    fn serve_burst_once<'l>(
        &'l self,
        store: &Store,
        ctl: &dyn Control,
        wait: Option<Duration>,
        held: &mut Option<MutexGuard<'l, Taker<M>>>,
        out: &mut Option<MutexGuard<'l, Answerer<M>>>,
        scratch: &mut Scratch,
    ) -> (Step, usize) {
        let consumer = held.as_mut().expect("the caller holds the ring");
        let (n, fault) = self.take_burst(consumer, ctl, wait, &mut scratch.burst);
        let Scratch {
            burst, response, ..
        } = scratch;
        let mut step = if n == 0 { Step::Idle } else { Step::Served };
        let lone = self.workers.load(Ordering::Relaxed) == 1;
        let mut answer = |i: usize, t: Taken<'_>| {
            // Answers may wait unpublished while more requests follow (see `serve_taken`).
            let more = i + 1 < n || held.as_ref().is_some_and(|c| c.ring.ready_cached() > 0);
            // A burst's answers to single-key operations share one lock of the producer; any
            // other operation may take locks of its own (the ring, a publication), so the
            // producer is let go before it (the order consumer → producer holds everywhere).
            // A lone worker keeps it from burst to burst, even for a lone request.
            let kept = if (n > 1 || lone) && t.hash.is_some() {
                Some(&mut **out.get_or_insert_with(|| self.producer.lock()))
            } else {
                *out = None;
                None
            };
            let how = Answering {
                hand: false,
                more,
                kept,
            };
            match self.run(store, ctl, held, t, how, response) {
                Step::Exit => step = Step::Exit,
                Step::Corrupt(e) => return Err(e),
                Step::Served | Step::Idle => {}
            }
            Ok(())
        };
        let answered = if n == 1 {
            // (A lone request, as a synchronous client sends: no burst array to fill, and only
            // its slots prefetched: they then load together with its control bytes.)
            let t = Taken::decode(&burst[0], &self.limits, store);
            if let Some(h) = t.hash.filter(|_| CACHE_HINTS) {
                store.prefetch(h, Prefetch::Slots);
            }
            answer(0, t)
        } else {
            let taken = self.prepare(store, &burst[..n]);
            (taken.into_iter().flatten().enumerate()).try_for_each(|(i, t)| answer(i, t))
        };
        if !lone || answered.is_err() || fault.is_some() || matches!(step, Step::Exit) {
            *out = None;
        }
        if let Err(e) = answered {
            return (Step::Corrupt(e), n);
        }
        if let Some(e) = fault {
            // The last answers may have been deferred for the record found corrupt: nobody
            // else would publish them.
            self.publish();
            return (Step::Corrupt(e), n);
        }
        if matches!(step, Step::Exit) {
            self.exit_after_stop(held);
        }
        (step, n)
    }

    /// Decode a burst's requests (the copies in `bufs`, at most [`BURST`]) and hash their keys;
    /// then prefetch every key's bucket, then every key's slots, then
    /// every key's entries, each stage giving the one before time to arrive.
    fn prepare<'a>(
        &self,
        store: &Store,
        bufs: &'a [Vec<u8>],
    ) -> [Option<Taken<'a>>; BURST as usize] {
        let mut taken = [const { None }; BURST as usize];
        for (slot, buf) in taken.iter_mut().zip(bufs) {
            *slot = Some(Taken::decode(buf, &self.limits, store));
        }
        if CACHE_HINTS {
            let hashes = || taken.iter().flatten().filter_map(|t| t.hash);
            for what in [Prefetch::Bucket, Prefetch::Slots, Prefetch::Entries] {
                hashes().for_each(|h| store.prefetch(h, what));
            }
        }
        taken
    }

    /// Copy the requests of a burst out of the ring into `bufs`, waiting up to `wait` for the
    /// first; the rest only while some are known to wait (none once [`Control::stopping`]
    /// holds), and none after a ThreadsStop. Returns how many were taken, and the error that
    /// ended the taking if the ring turned out corrupt.
    fn take_burst(
        &self,
        consumer: &mut Taker<M>,
        ctl: &dyn Control,
        wait: Option<Duration>,
        bufs: &mut Vec<Vec<u8>>,
    ) -> (usize, Option<RecordError>) {
        let (mut n, mut bytes) = (0, 0);
        while n < BURST as usize {
            // After the first request: only one already published, only for a client that is
            // still there (an ended session's requests are counted one by one), and only while
            // the burst holds less than BURST_BYTES.
            let enough = bytes >= BURST_BYTES;
            if n > 0 && (enough || consumer.ring.ready_cached() == 0 || ctl.cancel_wait()) {
                break;
            }
            if ctl.stopping() {
                break;
            }
            if bufs.len() == n {
                bufs.push(Vec::new());
            }
            match self.take(consumer, &mut bufs[n], ctl, wait) {
                Ok(()) => {
                    bytes += bufs[n].len();
                    n += 1;
                    if request_verb(&bufs[n - 1]) == Some(Verb::ThreadsStop) {
                        break;
                    }
                }
                Err(None) => break,
                Err(Some(e)) => return (n, Some(e)),
            }
        }
        // Bytes read are given back in batches (see `serve_taken`).
        if consumer.unreleased >= RELEASE_BATCH {
            consumer.ring.release();
            consumer.unreleased = 0;
        }
        (n, None)
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
        let Scratch {
            request, response, ..
        } = scratch;
        let mut taken = Taken::decode(request, &self.limits, store);
        // Hashed again under the bucket lock when needed: nothing to overlap it with here.
        taken.hash = None;
        let how = Answering {
            hand,
            more,
            kept: None,
        };
        let step = self.run(store, ctl, held, taken, how, response);
        if hand {
            self.answered();
        }
        if matches!(step, Step::Exit) {
            self.exit_after_stop(held);
        }
        step
    }

    /// The worker that ran a ThreadsStop leaves. The answers may have been deferred for the
    /// requests behind the stop, which this worker leaves to others: publish them now. Then
    /// let go of the ring before leaving it to a spare.
    fn exit_after_stop(&self, held: &mut Option<MutexGuard<'_, Taker<M>>>) {
        self.publish();
        drop(held.take());
        self.leave();
    }

    /// Execute one decoded request and answer it as `how` says.
    fn run(
        &self,
        store: &Store,
        ctl: &dyn Control,
        held: &mut Option<MutexGuard<'_, Taker<M>>>,
        taken: Taken<'_>,
        how: Answering<'_, M>,
        response: &mut Vec<u8>,
    ) -> Step {
        let Answering { hand, more, kept } = how;
        let defer = more && !hand;
        let started = (self.counters.taken() & self.sample_mask == 0).then(Instant::now);
        let Taken { id, op, hash } = taken;
        let mut quit = false;
        let (step, replies) = match op {
            Err(e) => {
                let code = e.reply_code();
                self.counters.error(&code);
                ctl.misbehaved(Misbehavior::Malformed);
                self.hand_off(held, hand);
                (Step::Served, Answer::One(Reply::Error(code)))
            }
            Ok(op) => {
                self.counters.op(op.verb());
                quit = op == OpView::Quit;
                let exec = Exec {
                    store,
                    ctl,
                    hand,
                    id,
                    hash,
                };
                self.execute(&exec, held, op, response)
            }
        };
        let answered = self.respond_all(ctl, id, replies, defer, response, kept);
        if quit {
            ctl.request_quit();
        }
        if let Some(t0) = started {
            ctl.record_latency(t0.elapsed());
        }
        match answered {
            Err(e) => Step::Corrupt(e),
            Ok(_) => step,
        }
    }
}

/// How [`Lane::run`] answers a request.
struct Answering<'a, M: RecordMem> {
    /// The ring is handed over once the request's order is fixed.
    hand: bool,
    /// More requests are known to wait, so a worker that keeps the ring may leave this answer
    /// unpublished (at most [`PUBLISH_BATCH`] of them: the next answer's publication covers
    /// them; a worker that hands the ring over publishes at once: a deferred answer there once
    /// deadlocked a loom model, nobody being bound to publish it).
    more: bool,
    /// The producer, when the caller already holds its lock (a burst's single-key answers).
    kept: Option<&'a mut Answerer<M>>,
}

/// A request copied out of the ring and decoded: its id, its operation (or why it could not
/// be decoded) and, for an operation on one key, the key's hash.
struct Taken<'a> {
    id: u64,
    op: Result<OpView<'a>, WireError>,
    hash: Option<KeyHash>,
}

impl<'a> Taken<'a> {
    /// Decode the request in `buf` against `limits`, hashing its key for `store`.
    fn decode(buf: &'a [u8], limits: &Limits, store: &Store) -> Self {
        let id = request_id(buf);
        let op = decode_request_view(buf, limits).map(|(_, op)| op);
        let hash = op
            .as_ref()
            .ok()
            .and_then(OpView::key)
            .map(|k| store.key_hash(k));
        Taken { id, op, hash }
    }
}
