//! The step each worker repeats: take a request (or a burst of them) from the ring, have it
//! executed, answer it.

use super::execute::{Answer, Exec};
use super::{BURST, Control, Lane, Misbehavior, RELEASE_BATCH, Scratch, Step, Taker};
use crate::record::{RecordError, RecordMem};
use crate::store::Store;
use crate::sync::{MutexGuard, Ordering};
use crate::wire::{OpView, Reply, decode_request_view, request_id};
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
}
