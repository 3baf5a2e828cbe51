//! The lock coupling that orders a client's requests: taking the request ring (at once, or
//! as a spare at the gate), handing it over once a request holds its bucket lock, and
//! holding it until the earlier requests are answered.

#[cfg(doc)]
use super::SpareGate;
use super::{Control, Lane, PASS_BACKLOG, SETTLE_POLL, Taker};
use crate::record::RecordMem;
use crate::sync::{MutexGuard, Ordering, fence};
use std::time::Duration;

impl<M: RecordMem + Clone> Lane<M> {
    /// With the consumer lock held (no request can start), wait until every earlier request
    /// has been executed and answered: until no request but the caller's own (`counted`: it
    /// was counted in flight) is in flight. (A request served without handing the ring over
    /// is answered before its worker lets go of the consumer lock, so only handed-over ones
    /// are counted.) Parks on a condition variable, never spins: the requests it waits for
    /// may themselves wait a long time for the client to make room for their answers.
    pub(super) fn wait_earlier_answered(
        &self,
        _held: &Option<MutexGuard<'_, Taker<M>>>,
        counted: bool,
    ) {
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
    pub(super) fn answered(&self) {
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
    pub(super) fn hand_off(&self, held: &mut Option<MutexGuard<'_, Taker<M>>>, hand: bool) {
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

    /// Take the consumer lock: at once if it is free, else as a spare at the gate (see
    /// [`SpareGate`]), for up to `wait` or until [`Control::stopping`] holds and the lane is
    /// nudged. None if no pass came.
    pub(super) fn take_ring(
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
}
