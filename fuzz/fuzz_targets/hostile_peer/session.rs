//! The server side the lane sees ([`Ctl`]), the client's view of a ring's memory
//! ([`ClientMem`]), and one [`Session`]: fresh rings, the lane over them and the client's
//! ring halves.

use crate::{LIMITS, MAX_WORKERS, Mem, RESP_CAP};
use shmkv::record::{HeapRecordMem, RecordConsumer, RecordMem, RecordProducer};
use shmkv::region::{RingCtrl, Side};
use shmkv::serve::{Control, Lane, RESPOND_POLL};
use shmkv::wait::{ModelFutex, SpinPolicy};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The server side seen by the lane. No thread is really started: a ThreadsStart is counted.
pub(crate) struct Ctl {
    pub(crate) quit: AtomicBool,
}

impl Control for Ctl {
    fn start_workers(&self, n: u32) -> u32 {
        n
    }
    fn request_quit(&self) {
        self.quit.store(true, Ordering::SeqCst);
    }
    fn stopping(&self) -> bool {
        false
    }
    fn cancel_wait(&self) -> bool {
        false
    }
    fn peer_gone(&self) -> bool {
        panic!(
            "a worker waited {RESPOND_POLL:?} for room in the response ring although the client \
             made room for the largest answer"
        );
    }
}

/// The client's view of a ring's memory: the lane's heap memory, with halves built at will.
#[derive(Debug, Clone)]
pub(crate) struct ClientMem(Mem);

impl RecordMem for ClientMem {
    type Waker = ModelFutex;

    fn ctrl(&self) -> &RingCtrl {
        self.0.ctrl()
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn waker(&self) -> &ModelFutex {
        self.0.waker()
    }
    fn claim(&self, _side: Side) -> bool {
        // A client process may rebuild its halves (see the crate docs); the old half is never
        // used again, and nothing here runs concurrently (below).
        true
    }
    unsafe fn read_word(&self, index: usize) -> u64 {
        // SAFETY: `index < capacity / 8` as the caller promises. This harness is
        // single-threaded (the lane runs in the calling thread and no worker thread is ever
        // started), so no access to a word is ever concurrent with another, whichever halves
        // exist.
        unsafe { self.0.read_word(index) }
    }
    unsafe fn write_word(&self, index: usize, value: u64) {
        // SAFETY: as for `read_word`.
        unsafe { self.0.write_word(index, value) }
    }
}

/// One session: fresh rings, the server's lane over them, and the client's ring halves (the
/// producer's `None` once the client cannot rebuild it: a hostile `tail` not a multiple of 8).
pub(crate) struct Session {
    pub(crate) req: Mem,
    pub(crate) resp: Mem,
    pub(crate) lane: Lane<Mem>,
    pub(crate) client_p: Option<RecordProducer<ClientMem>>,
    pub(crate) client_c: Option<RecordConsumer<ClientMem>>,
}

impl Session {
    pub(crate) fn new(req_cap: usize) -> Self {
        let req = Arc::new(HeapRecordMem::new(req_cap));
        let resp = Arc::new(HeapRecordMem::new(RESP_CAP));
        let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, MAX_WORKERS)
            .expect("fresh rings are not corrupt");
        lane.set_policy(SpinPolicy::BLOCK);
        Session {
            client_p: Some(RecordProducer::new(ClientMem(req.clone())).expect("a fresh ring")),
            client_c: Some(RecordConsumer::new(ClientMem(resp.clone())).expect("a fresh ring")),
            req,
            resp,
            lane,
        }
    }

    /// The client rebuilds its producer from the counters in memory (after its view broke).
    pub(crate) fn rebuild_producer(&mut self) {
        self.client_p = RecordProducer::new(ClientMem(self.req.clone())).ok();
    }

    /// The client rebuilds its consumer from the counters in memory.
    pub(crate) fn rebuild_consumer(&mut self) {
        self.client_c = RecordConsumer::new(ClientMem(self.resp.clone())).ok();
    }
}
