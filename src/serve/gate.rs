//! The gate where a lane's spare workers wait for the request ring to be handed over.

use crate::sync::{AtomicU32, Condvar, Mutex, Ordering, fence};
use std::time::{Duration, Instant};

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
pub(super) struct SpareGate {
    state: Mutex<GateState>,
    cv: Condvar,
    /// Spares registered to wait (incremented before their last look at the lock).
    pub(super) waiting: AtomicU32,
}

#[derive(Debug, Default)]
struct GateState {
    /// Passes for one spare each (at most one outstanding).
    passes: u32,
    /// Bumped by [`SpareGate::nudge`]: every waiting spare returns.
    nudges: u64,
}

impl SpareGate {
    pub(super) fn new() -> SpareGate {
        SpareGate {
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
            waiting: AtomicU32::new(0),
        }
    }

    /// Wait, as a registered spare, for a pass (true), or for a nudge, `stop()` or `timeout`
    /// (false). `stop` is looked at under the gate's lock, which [`SpareGate::nudge`] takes
    /// too: a nudge after `stop()` became true is never missed. Unregisters.
    pub(super) fn wait(&self, timeout: Option<Duration>, stop: &dyn Fn() -> bool) -> bool {
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
    pub(super) fn pass_one(&self) {
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
    pub(super) fn nudge(&self) {
        let mut st = self.state.lock();
        st.nudges = st.nudges.wrapping_add(1);
        self.cv.notify_all();
    }
}
