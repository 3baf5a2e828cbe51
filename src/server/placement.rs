//! Placement of workers: while the busy sessions need more threads than there are cores (a
//! client thread and the worker holding its ring each), a worker runs on the CPU its client
//! last published from, so that a client and its worker take turns on one core instead of
//! spinning against another session's threads; otherwise it runs where the scheduler puts it
//! (design.md §10a, "Workers placed beside their clients").

use crate::affinity::CpuSet;
use crate::sync::{AtomicU32, Ordering};

/// Served steps of a worker between two looks at its placement.
pub const LOOK_EVERY: u32 = 64;

/// The server's count of busy sessions, shared by its workers.
#[derive(Debug)]
pub struct Busy {
    /// CPUs the server may use (`available_parallelism` at start).
    cores: u32,
    /// Sessions with a worker that served within the last `IDLE_POLL`.
    sessions: AtomicU32,
}

impl Busy {
    /// No session busy yet.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Busy {
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            sessions: AtomicU32::new(0),
        }
    }

    /// Whether the busy sessions' threads (two each: a session's other workers mostly wait
    /// for its ring) outnumber the cores. (A session's count moves by separate atomic steps
    /// of its workers, so for a moment it may lag: a placement is a heuristic.)
    fn oversubscribed(&self) -> bool {
        let s = self.sessions.load(Ordering::Relaxed) as i32;
        2 * i64::from(s) > i64::from(self.cores)
    }
}

/// One worker's placement: counted busy or not, and the CPU it is pinned to.
#[derive(Debug)]
pub struct Placement<'a> {
    busy: &'a Busy,
    /// Its session's busy workers.
    session_busy: &'a AtomicU32,
    /// The CPUs the worker may run on, as it started (a `taskset` of the server stays
    /// respected: a worker is only ever pinned to one of them, and given them back).
    allowed: Option<CpuSet>,
    pinned: Option<u32>,
    counted: bool,
    steps: u32,
}

impl<'a> Placement<'a> {
    /// A worker not busy yet, running where it started.
    pub fn new(busy: &'a Busy, session_busy: &'a AtomicU32) -> Self {
        Placement {
            busy,
            session_busy,
            allowed: CpuSet::of_this_thread(),
            pinned: None,
            counted: false,
            steps: 0,
        }
    }

    /// After a served step: the worker counts as busy; every [`LOOK_EVERY`] steps it moves
    /// to its client's CPU (`client_cpu`: the CPU plus one, 0 if unknown; written by the
    /// client, so only a CPU the worker may run on is taken) while the server is
    /// oversubscribed, and back to its own CPUs when not.
    pub fn served(&mut self, client_cpu: impl FnOnce() -> u32) {
        self.count(true);
        self.steps = self.steps.wrapping_add(1);
        if self.steps % LOOK_EVERY != 0 {
            return;
        }
        let want = if self.busy.oversubscribed() {
            match client_cpu().checked_sub(1) {
                None => self.pinned,
                Some(cpu) => Some(cpu).filter(|&c| self.allowed.is_some_and(|a| a.contains(c))),
            }
        } else {
            None
        };
        self.place(want);
    }

    /// After an idle step (nothing to take for `IDLE_POLL`): no longer busy, and free to run
    /// anywhere it may.
    pub fn idle(&mut self) {
        self.count(false);
        self.place(None);
    }

    /// The CPU the worker is pinned to, if any.
    #[cfg(test)]
    pub fn pinned(&self) -> Option<u32> {
        self.pinned
    }

    fn count(&mut self, busy: bool) {
        if busy == self.counted {
            return;
        }
        self.counted = busy;
        let sessions = &self.busy.sessions;
        if busy {
            if self.session_busy.fetch_add(1, Ordering::Relaxed) == 0 {
                sessions.fetch_add(1, Ordering::Relaxed);
            }
        } else if self.session_busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn place(&mut self, want: Option<u32>) {
        if want == self.pinned {
            return;
        }
        let Some(allowed) = &self.allowed else {
            return;
        };
        let set = match want {
            Some(cpu) => CpuSet::only(cpu),
            None => Some(*allowed),
        };
        // A refused change leaves the worker where it was; the next look tries again.
        if set.is_some_and(|s| s.apply()) {
            self.pinned = want;
        }
    }
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        self.count(false);
    }
}

#[cfg(all(test, not(miri)))] // sched_getaffinity, sched_setaffinity, sched_getcpu
mod tests {
    use super::*;

    fn busy(cores: u32) -> Busy {
        Busy {
            cores,
            sessions: AtomicU32::new(0),
        }
    }

    fn look(p: &mut Placement<'_>, cpu: u32) {
        for _ in 0..LOOK_EVERY {
            p.served(|| cpu + 1);
        }
    }

    fn sessions(b: &Busy) -> u32 {
        b.sessions.load(Ordering::Relaxed)
    }

    #[test]
    fn a_worker_follows_its_client_only_while_threads_outnumber_cores() {
        std::thread::spawn(|| {
            let all = CpuSet::of_this_thread().unwrap();
            let cpu = (0..CpuSet::SIZE).find(|&c| all.contains(c)).unwrap();
            let b = busy(2);
            let (s1, s2) = (AtomicU32::new(0), AtomicU32::new(0));
            let mut mine = Placement::new(&b, &s1);
            // One session: its client and its worker, two threads on two cores. A second
            // worker of the same session changes nothing.
            let mut second = Placement::new(&b, &s1);
            second.served(|| 0);
            look(&mut mine, cpu);
            assert_eq!(mine.pinned(), None);
            assert_eq!(sessions(&b), 1);
            // Two sessions, four threads: the worker goes to its client's CPU.
            let mut other = Placement::new(&b, &s2);
            other.served(|| 0);
            assert_eq!(sessions(&b), 2);
            look(&mut mine, cpu);
            assert_eq!(mine.pinned(), Some(cpu));
            // SAFETY: no arguments; returns -1 on failure.
            assert_eq!(unsafe { libc::sched_getcpu() }, cpu as i32);
            // A CPU the worker may not use (or that does not exist) is not taken.
            look(&mut mine, CpuSet::SIZE + 5);
            assert_eq!(mine.pinned(), None);
            look(&mut mine, cpu);
            assert_eq!(mine.pinned(), Some(cpu));
            // The other session goes idle: back to every CPU allowed.
            other.idle();
            assert_eq!(sessions(&b), 1);
            look(&mut mine, cpu);
            assert_eq!(mine.pinned(), None);
            let now = CpuSet::of_this_thread().unwrap();
            assert!((0..CpuSet::SIZE).all(|c| now.contains(c) == all.contains(c)));
            drop(other);
            drop(mine);
            assert_eq!(sessions(&b), 1);
            drop(second);
            assert_eq!((s1.load(Ordering::Relaxed), sessions(&b)), (0, 0));
        })
        .join()
        .unwrap();
    }
}
