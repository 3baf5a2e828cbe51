//! The worker threads: each serves one session's lane over the shared table until the
//! session ends, the client stops it (ThStop) or the server shuts down. [`SessionControl`] is
//! the one narrow trait implementation ([`Control`]) through which serving code reaches the
//! server.

use super::abuse::Pointless;
use super::placement::Placement;
use super::sessions::{self, Session};
use super::{IDLE_POLL, SHUTDOWN_GRACE, Shared, log_event};
use crate::serve::{Control, Misbehavior, Scratch, Step};
use crate::stats::{SlotStats, Stats};
use crate::store::Store;
use crate::sync::Arc;
use crate::wire::Stat;
use std::time::{Duration, Instant};

/// Start one more worker thread for `session`. Joins the workers that have exited first, so
/// that sessions coming and going never leave unjoined threads (each keeps its stack).
pub(super) fn spawn(shared: &Arc<Shared>, session: &Arc<Session>) -> std::io::Result<()> {
    let mut threads = shared.threads.lock();
    if shared.stopping() {
        return Err(std::io::Error::other("server is stopping"));
    }
    let mut i = 0;
    while i < threads.len() {
        if threads[i].is_finished() {
            let _ = threads.swap_remove(i).join();
        } else {
            i += 1;
        }
    }
    let (me, s) = (shared.clone(), session.clone());
    sessions::worker_starts(session);
    let spawned = std::thread::Builder::new()
        .name(format!("shmkv-s{}", session.slot))
        .spawn(move || {
            run(&me, &s);
            sessions::worker_exits(&me, &s);
        });
    match spawned {
        Ok(h) => {
            threads.push(h);
            Ok(())
        }
        Err(e) => {
            drop(threads);
            sessions::worker_exits(shared, session);
            Err(e)
        }
    }
}

/// Join every worker (the server is stopping): wait up to [`SHUTDOWN_GRACE`] for clients to
/// take their last answers, then drop the answers of those that do not.
pub(super) fn join_all(shared: &Arc<Shared>) {
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    loop {
        let handles: Vec<_> = std::mem::take(&mut *shared.threads.lock());
        if handles.is_empty() {
            return;
        }
        for h in handles {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if !h.is_finished() {
                log_event!(
                    shared,
                    warn,
                    grace = ?SHUTDOWN_GRACE,
                    "clients did not take their last responses; dropping them"
                );
                for s in shared.slots.lock().iter().flatten() {
                    s.lane.abandon();
                }
            }
            let _ = h.join();
        }
    }
}

/// One worker's life.
fn run(shared: &Arc<Shared>, session: &Arc<Session>) {
    let ctl = SessionControl { shared, session };
    log_event!(shared, debug, slot = session.slot, "worker thread running");
    if shared.config.huge_pages {
        let heap = crate::hugepage::advise_thread_heap();
        log_event!(shared, debug, slot = session.slot, ?heap, "worker heap");
    }
    let mut last_idle = Instant::now();
    // Requests an ended session may still have executed: one ring's worth.
    // Requests a session that ended may still have in its ring (a record takes 16 bytes or
    // more): they are served, then the worker leaves.
    let mut drain = (session.lane.request_capacity() / 16) as u64;
    let mut scratch = Scratch::default();
    let mut placement = Placement::new(&shared.busy, &session.busy);
    loop {
        if shared.stopping() {
            let refused = session.lane.refuse_pending(&ctl);
            session.lane.leave();
            log_event!(
                shared,
                debug,
                slot = session.slot,
                refused,
                "worker thread exits: shutting down"
            );
            return;
        }
        let ended = session.ended();
        if ended && drain == 0 {
            break;
        }
        match session
            .lane
            .serve_one(&shared.store, &ctl, Some(IDLE_POLL), &mut scratch)
        {
            Step::Served => {
                drain = drain.saturating_sub(u64::from(ended));
                placement.served(|| session.lane.client_cpu());
                session.map_resident();
            }
            Step::Idle if session.ended() => break,
            Step::Idle => {
                placement.idle();
                // Idle sooner than IDLE_POLL after the last idle step: woken with nothing to
                // take. Nothing a well-behaved client does causes that often.
                let now = Instant::now();
                if now.duration_since(last_idle) < IDLE_POLL && !shared.stopping() {
                    ctl.pointless(Pointless::Wakeup);
                }
                last_idle = now;
            }
            Step::Exit => {
                log_event!(
                    shared,
                    info,
                    slot = session.slot,
                    workers = session.lane.workers(),
                    reason = "threads stop requested by the client",
                    "worker thread stopped"
                );
                return;
            }
            Step::Corrupt(e) => {
                // A ring whose counters are corrupt cannot be drained: every later take would
                // fail the same way at once.
                ctl.drop_client(format!("its ring is corrupt: {e}"));
                break;
            }
        }
    }
    session.lane.leave();
    log_event!(
        shared,
        debug,
        slot = session.slot,
        "worker thread exits: the session ended"
    );
}

/// What a session's lane sees of the server.
struct SessionControl<'a> {
    shared: &'a Arc<Shared>,
    session: &'a Arc<Session>,
}

impl SessionControl<'_> {
    /// Count a pointless event; drop the client when the policy says so.
    fn pointless(&self, what: Pointless) -> bool {
        let valid = self.session.lane.counters().op_counts().total();
        let verdict = self.session.abuse.pointless(what, valid);
        if verdict.suppressed > 0 {
            log_event!(
                self.shared,
                warn,
                slot = self.session.slot,
                suppressed = verdict.suppressed,
                "log lines about this session suppressed (more than {} in a second)",
                super::LOG_LIMIT
            );
        }
        match verdict.drop {
            Some(why) => {
                self.drop_client(why);
                true
            }
            None => self.session.ended(),
        }
    }

    /// Drop the client, logging why (once).
    fn drop_client(&self, why: String) {
        if self.session.drop_client() {
            log_event!(
                self.shared,
                warn,
                slot = self.session.slot,
                pid = self.session.peer.pid,
                reason = %why,
                "client dropped"
            );
        }
    }
}

impl Control for SessionControl<'_> {
    fn start_workers(&self, n: u32) -> u32 {
        let mut started = 0;
        let mut failure = None;
        while started < n {
            match spawn(self.shared, self.session) {
                Ok(()) => started += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // The lane counted the n new workers before calling; it takes back those not started.
        let workers = self.session.lane.workers().saturating_sub(n - started);
        let slot = self.session.slot;
        match failure {
            None => log_event!(
                self.shared,
                info,
                slot,
                started,
                workers,
                reason = "threads start requested by the client",
                "worker threads started"
            ),
            Some(e) => log_event!(
                self.shared,
                warn,
                slot,
                asked = n,
                started,
                workers,
                error = %e,
                "worker threads started: fewer than asked"
            ),
        }
        started
    }

    fn request_quit(&self) {
        log_event!(
            self.shared,
            info,
            slot = self.session.slot,
            "quit requested by a client"
        );
        self.shared.request_stop();
    }

    fn stopping(&self) -> bool {
        self.shared.stopping()
    }

    fn cancel_wait(&self) -> bool {
        self.shared.stopping() || self.session.ended()
    }

    fn peer_gone(&self) -> bool {
        self.session.ended()
    }

    fn misbehaved(&self, what: Misbehavior) -> bool {
        self.pointless(match what {
            Misbehavior::Malformed => Pointless::Malformed,
            Misbehavior::SpuriousWake => Pointless::Spurious,
        })
    }

    fn record_latency(&self, took: Duration) {
        self.shared.latency.record(took);
    }

    fn stats(&self, store: &Store) -> Vec<Stat> {
        let shared = self.shared;
        // Under the slots' lock a session's counts are in its slot or retired, never both.
        let open = shared.slots.lock();
        let retired = shared.retired.lock();
        let (mut ops, mut errors) = (retired.ops, retired.errors);
        let mut slots = Vec::with_capacity(open.len());
        for (i, s) in open.iter().enumerate() {
            let mut st = SlotStats {
                slot: i as u32,
                requests: retired.by_slot.get(i).copied().unwrap_or(0),
                ..SlotStats::default()
            };
            if let Some(s) = s {
                let c = s.lane.counters();
                ops += c.op_counts();
                errors += c.error_counts();
                st.owner_pid = u64::from(s.peer.pid);
                st.workers = u64::from(s.lane.workers());
                st.requests += c.requests();
            }
            slots.push(st);
        }
        drop((retired, open));
        let mut latency = shared.latency.snapshot();
        latency.sample_every = self.session.lane.sample_every();
        Stats {
            ops,
            errors,
            entries: store.len(),
            buckets: store.bucket_count() as u64,
            longest_bucket: store.longest_bucket(),
            memory_used: store.memory_used(),
            memory_limit: store.budget(),
            max_key: u64::from(shared.config.limits.max_key),
            max_value: u64::from(shared.config.limits.max_value),
            client_slots: slots.len() as u64,
            slots,
            latency,
            uptime_ms: shared.started.elapsed().as_millis() as u64,
            other: Vec::new(),
        }
        .to_stats()
    }
}
