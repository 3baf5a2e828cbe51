//! The [`Rig`]: the server (its store and control) and the current session, with the client's
//! side of it: pushing request records ([`push`]), making room and draining responses.

use crate::session::{Ctl, Session};
use crate::{BUCKETS, LIMITS, MAX_DRAINS, MAX_WORKERS, RESP_CAP, record_bytes};
use shmkv::record::{RecordError, RecordMem, max_payload};
use shmkv::serve::{PUBLISH_BYTES, Scratch, Step};
use shmkv::store::Store;
use shmkv::wire::Response;
use shmkv_fuzz::{Bytes, canonical_response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The server (its store and control) and the current session.
pub(crate) struct Rig {
    pub(crate) s: Session,
    pub(crate) req_cap: usize,
    pub(crate) ctl: Ctl,
    pub(crate) store: Store,
    pub(crate) scratch: Scratch,
    /// Serving steps chosen by the input so far (see `MAX_SERVES`).
    pub(crate) serves: usize,
    /// Serving steps that drained ending sessions so far (see `MAX_DRAINS`).
    pub(crate) drains: usize,
    pub(crate) next_id: u64,
    pub(crate) buf: Vec<u8>,
}

impl Rig {
    pub(crate) fn new(b: &mut Bytes) -> Self {
        let req_cap = 512 << (b.u8() % 3);
        // Unlimited, or a budget of a few entries (writes past it are refused).
        let budget = match b.u8() % 3 {
            0 => 200 + 8 * u64::from(b.u8()),
            _ => u64::MAX,
        };
        Rig {
            s: Session::new(req_cap),
            req_cap,
            ctl: Ctl {
                quit: AtomicBool::new(false),
            },
            store: Store::new(BUCKETS, budget).unwrap(),
            scratch: Scratch::default(),
            serves: 0,
            drains: 0,
            next_id: 0x5EED_0000_0000_0000,
            buf: Vec::new(),
        }
    }

    /// End the session as the server does when it drops the client or sees it hang up: answers
    /// are dropped from now on, the workers are woken, and they take what the ring still holds
    /// (at most a ring's worth; nothing more is published), then the session's memory goes.
    /// The client then starts a new session, which starts with one worker.
    pub(crate) fn new_session(&mut self) {
        let lane = &self.s.lane;
        lane.abandon();
        lane.nudge();
        let published = self.s.resp.ctrl().producer.0.tail.load(Ordering::SeqCst);
        for _ in 0..self.req_cap / 16 {
            if self.drains >= MAX_DRAINS {
                break;
            }
            self.drains += 1;
            match self.serve() {
                Step::Served | Step::Exit => {}
                // (A ring whose counters are corrupt cannot be drained: stop.)
                Step::Idle | Step::Corrupt(_) => break,
            }
            assert_eq!(
                self.s.lane.in_flight(),
                0,
                "a step left a request in flight"
            );
        }
        assert_eq!(
            self.s.resp.ctrl().producer.0.tail.load(Ordering::SeqCst),
            published,
            "an ended session published answers"
        );
        self.s = Session::new(self.req_cap);
        assert_eq!(self.s.lane.workers(), 1);
        assert!(!self.s.lane.is_abandoned());
    }

    /// The bytes of the largest answer the next request could get (in one record: the
    /// response ring takes a Print or Scan of every key in one part).
    pub(crate) fn largest_answer(&self) -> u64 {
        let mut entries = 0u64;
        for bucket in 0..BUCKETS as u64 {
            for (k, v) in self.store.print(bucket).expect("a bucket") {
                entries += 8 + k.len() as u64 + v.len() as u64;
            }
        }
        // A Stats of every statistic (14 bytes each), or an error or value reply.
        let others = 14 * 64;
        12 + 16 + entries.max(others)
    }

    /// Hostile run: pop whatever the response ring offers; every response must be canonical
    /// (the server is honest, whatever the client did). A client whose own view broke re-reads
    /// the counters.
    pub(crate) fn drain_any(&mut self) {
        for _ in 0..RESP_CAP / 16 {
            let Some(c) = self.s.client_c.as_mut() else {
                self.s.rebuild_consumer();
                return;
            };
            match c.try_pop_into(&mut self.buf) {
                Ok(_) => {
                    canonical_response(&self.buf, &LIMITS);
                }
                Err(RecordError::Corrupt { .. }) => {
                    self.s.rebuild_consumer();
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Hostile run: skip unread responses when the server might not find room for an answer
    /// of `need` bytes (see the crate docs).
    pub(crate) fn make_room(&self, need: u64) {
        let c = self.s.resp.ctrl();
        let tail = c.producer.0.tail.load(Ordering::SeqCst);
        let head = c.consumer.0.head.load(Ordering::SeqCst);
        // Up to PUBLISH_BYTES (and one answer past it) may be written and not yet published:
        // they take room the published counters do not show. A record may need padding of up
        // to its own size before it.
        let rec = record_bytes(need);
        if head <= tail && tail - head + PUBLISH_BYTES + 4 * rec > RESP_CAP as u64 {
            c.consumer.0.head.store(tail, Ordering::SeqCst);
        }
    }

    pub(crate) fn serve(&mut self) -> Step {
        let step = self.s.lane.serve_one(
            &self.store,
            &self.ctl,
            Some(Duration::ZERO),
            &mut self.scratch,
        );
        let workers = self.s.lane.workers();
        assert!(
            (1..=MAX_WORKERS).contains(&workers),
            "{workers} workers counted"
        );
        step
    }

    /// Checked run: every response now in the ring; the client's view must never break.
    pub(crate) fn drain_checked(&mut self) -> Vec<Response> {
        let mut out = Vec::new();
        let c = self
            .s
            .client_c
            .as_mut()
            .expect("the checked run never breaks the client's consumer");
        loop {
            match c.try_pop_into(&mut self.buf) {
                Ok(_) => {
                    assert!(
                        out.len() <= RESP_CAP / 16,
                        "more responses than the ring holds"
                    );
                    out.push(canonical_response(&self.buf, &LIMITS));
                }
                Err(RecordError::WouldBlock) => return out,
                Err(e) => panic!("client's response ring broke without hostile stores: {e}"),
            }
        }
    }
}

/// Write one or more records and publish them. A record over the ring's largest payload is
/// refused (`TooLarge`) and not sent. Hostile run: a broken client view re-reads the counters.
/// Returns the records that were published.
pub(crate) fn push(rig: &mut Rig, records: &[Vec<u8>], hostile: bool) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    if rig.s.client_p.is_none() {
        rig.s.rebuild_producer();
    }
    let Some(p) = rig.s.client_p.as_mut() else {
        return sent;
    };
    for r in records {
        match p.write(r) {
            Ok(()) => sent.push(r.clone()),
            Err(RecordError::WouldBlock) => break,
            Err(RecordError::TooLarge { len, max }) => {
                assert_eq!((len, max), (r.len(), max_payload(rig.req_cap)));
            }
            Err(_) if hostile => {
                p.publish();
                rig.s.rebuild_producer();
                return sent;
            }
            Err(e) => panic!("client's request ring broke without hostile stores: {e}"),
        }
    }
    p.publish();
    sent
}
