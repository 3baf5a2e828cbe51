//! The server's real consume loop (`Lane::serve_one`, over heap rings with the emulated futex)
//! against a hostile client whose actions the fuzzer chooses: arbitrary slots and valid
//! requests pushed through a real `Producer`, arbitrary values stored into the ring control
//! words the client can write, serving steps with a zero wait (`Some(Duration::ZERO)`, which
//! never sleeps), and draining of responses with a real `Consumer`.
//!
//! A *session* is what the server gives one client: fresh rings and a fresh `Lane` (never
//! reused), over the server's one table. Each input runs twice:
//!
//! 1. **Hostile**: counters included. Nothing may panic or hang. A `Step::Corrupt` is handled
//!    as the server does: the session ends (the lane is abandoned, nudged and drained of what
//!    its ring still holds, with every answer dropped) and the client starts a new session.
//!    At the end the server refuses what is left (`Lane::refuse_pending`, as at shutdown), the
//!    hostile client leaves (its session ends), and a new client, in a new session over the
//!    same table, must be answered correctly, starting with one worker.
//! 2. **Checked**: a fresh table and one session, the same actions without the counter stores
//!    (garbage only in slot bytes). Every request must be answered, in order, with exactly what
//!    a `HashMap` model predicts (an answer may come a few steps late: a lone worker leaves up
//!    to `PUBLISH_BATCH` answers unpublished while more requests wait, never when the ring is
//!    empty); every slot that does not decode with `ErrorCode::Malformed` and the id in its
//!    bytes 0..8. The table and the lane's worker count must match the model whenever every
//!    answer has come. Finally requests left in the ring are refused with
//!    `ErrorCode::ShuttingDown`, in order, without touching the table.
//!
//! The client drains the response ring before each step and, in the hostile run, skips
//! responses (stores `head = tail`) when the server could otherwise find no room for its
//! largest possible answer: a server worker rightly waits for a live client to read its
//! responses, and this single-threaded harness has nobody to read them meanwhile. A worker that
//! waits anyway reaches `Control::peer_gone`, which panics here.
//!
//! The client is another process in the real system: its mapping lets it build ring halves at
//! will (`ShmRingMem::claim` always agrees), e.g. to re-read counters after its view of a ring
//! broke. Here its halves work on `ClientMem`, the same heap memory without the per-process
//! claim, while the lane's halves claim the heap memory itself (so a lane built twice over one
//! session's memory would panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::protocol::{
    ErrorCode, Op, Reply, Request, Response, StatId, decode_request, decode_response,
    encode_request, request_id,
};
use shmkv::region::{HeapRingMem, RingCtrl, RingMem, Side, Slot};
use shmkv::ring::{Consumer, Producer, RingError};
use shmkv::serve::{Control, Lane, PUBLISH_BATCH, RESPOND_POLL, ServedTable, Step};
use shmkv::wait::{ModelFutex, SpinPolicy};
use shmkv_fuzz::{Bytes, check_response_reencodes};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type Mem = Arc<HeapRingMem>;

/// Response ring slots: more than the largest answer (a Print of every key, or a Stats).
const RESP_CAP: usize = 128;
/// Table buckets; Print asks for 0..6, so some are out of range.
const BUCKETS: usize = 4;
/// Worker limit of the lane.
const MAX_WORKERS: u32 = 4;
/// Serving steps per run chosen by the input.
const MAX_SERVES: usize = 48;
/// Largest request ring.
const MAX_REQ_CAP: usize = 16;
/// Serving steps per run that drain ending sessions (a ring's worth). Each serving step takes
/// at most one request, so the table never holds more than `MAX_SERVES + MAX_DRAINS` keys plus
/// the two of the last session's checks (see `RESP_CAP`).
const MAX_DRAINS: usize = MAX_REQ_CAP;

/// The server side seen by the lane. No thread is really started: a ThStart is counted.
struct Ctl {
    quit: AtomicBool,
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
struct ClientMem(Mem);

impl RingMem for ClientMem {
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
        // A client process may rebuild its halves (see the module docs); the old half is never
        // used again, and nothing here runs concurrently (below).
        true
    }
    unsafe fn read_slot(&self, index: usize) -> Slot {
        // SAFETY: `index < capacity` as the caller promises. This harness is single-threaded
        // (the lane runs in the calling thread and no worker thread is ever started), so no
        // access to a slot is ever concurrent with another, whichever halves exist.
        unsafe { self.0.read_slot(index) }
    }
    unsafe fn write_slot(&self, index: usize, slot: &Slot) {
        // SAFETY: as for `read_slot`.
        unsafe { self.0.write_slot(index, slot) }
    }
}

/// One session: fresh rings, the server's lane over them, and the client's ring halves.
struct Session {
    req: Mem,
    resp: Mem,
    lane: Lane<Mem>,
    client_p: Producer<ClientMem>,
    client_c: Consumer<ClientMem>,
}

impl Session {
    fn new(req_cap: usize) -> Self {
        let req = Arc::new(HeapRingMem::new(req_cap));
        let resp = Arc::new(HeapRingMem::new(RESP_CAP));
        let mut lane = Lane::new(req.clone(), resp.clone(), 1, MAX_WORKERS);
        lane.set_policy(SpinPolicy::BLOCK);
        Session {
            client_p: Producer::new(ClientMem(req.clone())),
            client_c: Consumer::new(ClientMem(resp.clone())),
            req,
            resp,
            lane,
        }
    }
}

/// The server (its table and control) and the current session.
struct Rig {
    s: Session,
    req_cap: usize,
    ctl: Ctl,
    table: ServedTable,
    /// Serving steps chosen by the input so far (see `MAX_SERVES`).
    serves: usize,
    /// Serving steps that drained ending sessions so far (see `MAX_DRAINS`).
    drains: usize,
    next_id: u64,
}

impl Rig {
    fn new(req_cap: usize) -> Self {
        Rig {
            s: Session::new(req_cap),
            req_cap,
            ctl: Ctl {
                quit: AtomicBool::new(false),
            },
            table: ServedTable::new(BUCKETS).unwrap(),
            serves: 0,
            drains: 0,
            next_id: 0x5EED_0000_0000_0000,
        }
    }

    /// End the session as the server does when it drops the client or sees it hang up: answers
    /// are dropped from now on, the workers are woken, and they take what the ring still holds
    /// (at most a ring's worth; nothing more is published), then the session's memory goes.
    /// The client then starts a new session, which starts with one worker.
    fn new_session(&mut self) {
        let lane = &self.s.lane;
        lane.abandon();
        lane.nudge();
        let published = self.s.resp.ctrl().producer.0.tail.load(Ordering::SeqCst);
        for _ in 0..self.req_cap {
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

    fn valid_request(&mut self, b: &mut Bytes) -> Slot {
        let kind = b.u8();
        let key = u64::from(b.u8() % 16);
        let op = match kind % 10 {
            0 | 1 => Op::Insert {
                key,
                value: u64::from(b.u8()),
            },
            2 => Op::Read { key },
            3 => Op::Delete { key },
            4 => Op::Print {
                bucket: u64::from(b.u8() % 6),
            },
            5 => Op::ThStart {
                n: u32::from(b.u8() % 5) + 1,
            },
            6 => Op::ThStop,
            7 => Op::Quit,
            8 => Op::Stats,
            _ => Op::Print { bucket: u64::MAX },
        };
        self.next_id += 1;
        encode_request(&Request {
            id: self.next_id,
            op,
        })
    }

    /// The largest answer the next request could get, in slots.
    fn largest_answer(&self) -> u64 {
        let print = self.table.len() + 1;
        let stats = self.ctl.stats(&self.table).len() + 1;
        print.max(stats) as u64
    }

    /// Hostile run: pop and decode whatever the response ring offers (errors end the drain; a
    /// client whose own view broke re-reads the counters).
    fn drain_any(&mut self) {
        for _ in 0..2 * RESP_CAP {
            match self.s.client_c.try_pop() {
                Ok(s) => {
                    if let Ok(r) = decode_response(&s) {
                        check_response_reencodes(&s, &r);
                    }
                }
                Err(RingError::Corrupt { .. }) => {
                    self.s.client_c = Consumer::new(ClientMem(self.s.resp.clone()));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Hostile run: skip unread responses when the server might not find room for `need`
    /// answer slots (see the module docs).
    fn make_room(&self, need: u64) {
        let c = self.s.resp.ctrl();
        let tail = c.producer.0.tail.load(Ordering::SeqCst);
        let head = c.consumer.0.head.load(Ordering::SeqCst);
        // (Up to PUBLISH_BATCH answers may be written and not yet published: they take room
        // the published counters do not show.)
        if head <= tail && tail - head + need + PUBLISH_BATCH > RESP_CAP as u64 {
            c.consumer.0.head.store(tail, Ordering::SeqCst);
        }
    }

    fn serve(&self) -> Step {
        let step = self
            .s
            .lane
            .serve_one(&self.table, &self.ctl, Some(Duration::ZERO));
        let workers = self.s.lane.workers();
        assert!(
            (1..=MAX_WORKERS).contains(&workers),
            "{workers} workers counted"
        );
        step
    }

    /// Checked run: every response slot now in the ring; the client's view must never break.
    fn drain_checked(&mut self) -> Vec<Slot> {
        let mut out = Vec::new();
        loop {
            match self.s.client_c.try_pop() {
                Ok(s) => {
                    assert!(out.len() <= RESP_CAP, "more responses than the ring holds");
                    out.push(s);
                }
                Err(RingError::WouldBlock) => return out,
                Err(e) => panic!("client's response ring broke without hostile counters: {e}"),
            }
        }
    }
}

/// Write one or more slots and publish them. Hostile run: a broken client view re-reads the
/// counters. Returns the slots that were published.
fn push(rig: &mut Rig, slots: &[Slot], hostile: bool) -> Vec<Slot> {
    let mut sent = Vec::new();
    for s in slots {
        match rig.s.client_p.write(s) {
            Ok(()) => sent.push(*s),
            Err(RingError::WouldBlock) => break,
            Err(_) if hostile => {
                rig.s.client_p = Producer::new(ClientMem(rig.s.req.clone()));
                break;
            }
            Err(e) => panic!("client's request ring broke without hostile counters: {e}"),
        }
    }
    rig.s.client_p.publish();
    sent
}

/// A store into a control word a client can write; always 10 input bytes.
struct Store {
    word: u8,
    mode: u8,
    raw: u64,
}

impl Store {
    fn parse(b: &mut Bytes) -> Self {
        Store {
            word: b.u8(),
            mode: b.u8(),
            raw: b.u64(),
        }
    }

    /// The value: anything, near the word's current value, zero, or near the top.
    fn value(&self, current: u64) -> u64 {
        match self.mode % 4 {
            0 => self.raw,
            1 => current.wrapping_add_signed(i64::from(self.raw as u8 as i8)),
            2 => 0,
            _ => u64::MAX - (self.raw & 0xFF),
        }
    }

    fn apply(&self, rig: &Rig) {
        let (rq, rs) = (rig.s.req.ctrl(), rig.s.resp.ctrl());
        let counter = match self.word % 8 {
            0 | 1 => &rq.producer.0.tail,
            2 => &rq.consumer.0.head,
            3 | 4 => &rs.consumer.0.head,
            w => {
                let wake = if w == 5 { &rq.wake.0 } else { &rs.wake.0 };
                let word = [
                    &wake.data_waiting,
                    &wake.data_futex,
                    &wake.space_waiting,
                    &wake.space_futex,
                ][usize::from(self.mode / 4 % 4)];
                let v = self.value(u64::from(word.load(Ordering::SeqCst)));
                word.store(v as u32, Ordering::SeqCst);
                return;
            }
        };
        counter.store(self.value(counter.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
}

/// What the server must answer, from a `HashMap` and the lane's worker count.
struct Model {
    map: HashMap<u64, u64>,
    /// Whether `map` holds the whole table (else Print and Stats are not checked).
    whole: bool,
    workers: u32,
    /// Requests sent and not yet served.
    pending: VecDeque<Slot>,
    /// Requests served whose answers have not all come (a lone worker may leave up to
    /// `PUBLISH_BATCH` answers unpublished while more requests wait), with whether serving
    /// them returned `Step::Exit`.
    served: VecDeque<(Slot, bool)>,
    /// Response slots received and not yet matched to a served request.
    unmatched: VecDeque<Slot>,
}

impl Model {
    /// Check the responses `got` to request slot `raw`; returns whether the worker must exit.
    fn check(&mut self, raw: &Slot, got: &[Slot], rig: &Rig) -> bool {
        let id = request_id(raw);
        let replies: Vec<Reply> = got
            .iter()
            .map(|s| {
                let r = decode_response(s).expect("the server's response slot decodes");
                check_response_reencodes(s, &r);
                assert_eq!(r.id, id, "response carries the request's id");
                r.reply
            })
            .collect();
        let one = |r: Reply| assert_eq!(replies, [r], "request {raw:?}");
        let mut exit = false;
        match decode_request(raw) {
            Err(_) => one(Reply::Error(ErrorCode::Malformed)),
            Ok(req) => match req.op {
                Op::Insert { key, value } => one(match self.map.insert(key, value) {
                    None => Reply::Done,
                    Some(p) => Reply::Replaced(p),
                }),
                Op::Read { key } => one(match self.map.get(&key) {
                    Some(&v) => Reply::Value(v),
                    None => Reply::NotFound,
                }),
                Op::Delete { key } => one(match self.map.remove(&key) {
                    Some(v) => Reply::Value(v),
                    None => Reply::NotFound,
                }),
                Op::Print { bucket } if bucket >= BUCKETS as u64 => {
                    one(Reply::Error(ErrorCode::BadBucket {
                        bucket,
                        buckets: BUCKETS as u64,
                    }))
                }
                Op::Print { bucket } => {
                    assert!(self.whole);
                    let (last, entries) = replies.split_last().expect("a Print is answered");
                    let mut seen: Vec<(u64, u64)> = entries
                        .iter()
                        .map(|r| match *r {
                            Reply::Entry { key, value } => (key, value),
                            r => panic!("Print answered with {r:?} before its end"),
                        })
                        .collect();
                    assert_eq!(
                        *last,
                        Reply::PrintEnd {
                            count: seen.len() as u64
                        }
                    );
                    let mut want: Vec<(u64, u64)> = self
                        .map
                        .iter()
                        .filter(|(k, _)| rig.table.bucket_of(k) as u64 == bucket)
                        .map(|(&k, &v)| (k, v))
                        .collect();
                    seen.sort_unstable();
                    want.sort_unstable();
                    assert_eq!(seen, want, "bucket {bucket}");
                }
                Op::ThStart { n } => {
                    match self.workers.checked_add(n).filter(|&t| t <= MAX_WORKERS) {
                        Some(t) => {
                            self.workers = t;
                            one(Reply::Threads(t));
                        }
                        None => one(Reply::Error(ErrorCode::ThreadLimit {
                            current: self.workers,
                            max: MAX_WORKERS,
                        })),
                    }
                }
                Op::ThStop => {
                    if self.workers > 1 {
                        self.workers -= 1;
                        exit = true;
                        one(Reply::Threads(self.workers));
                    } else {
                        one(Reply::Error(ErrorCode::LastWorker));
                    }
                }
                Op::Quit => {
                    one(Reply::Done);
                    assert!(
                        rig.ctl.quit.load(Ordering::SeqCst),
                        "Quit reached the server"
                    );
                }
                Op::Stats => {
                    assert!(self.whole);
                    let (last, stats) = replies.split_last().expect("a Stats is answered");
                    let stats: Vec<_> = stats
                        .iter()
                        .map(|r| match *r {
                            Reply::Stat(st) => st,
                            r => panic!("Stats answered with {r:?} before its end"),
                        })
                        .collect();
                    assert_eq!(
                        *last,
                        Reply::StatsEnd {
                            count: stats.len() as u64
                        }
                    );
                    assert_eq!(stats, rig.ctl.stats(&rig.table));
                    for st in &stats {
                        if st.id == StatId::ENTRIES {
                            assert_eq!(st.value, self.map.len() as u64);
                        }
                        if st.id == StatId::BUCKETS {
                            assert_eq!(st.value, BUCKETS as u64);
                        }
                    }
                }
            },
        }
        exit
    }

    /// Check every served request whose answer is complete among the responses received, in
    /// order; once all are, the table and the worker count must match the model.
    fn match_answers(&mut self, rig: &Rig) {
        while let Some(&(raw, exit_expected)) = self.served.front() {
            // An answer is any Entry/Stat slots, then one slot of another kind.
            let mut n = 0;
            let mut complete = false;
            for s in &self.unmatched {
                let r = decode_response(s).expect("the server's response slot decodes");
                n += 1;
                if !matches!(r.reply, Reply::Entry { .. } | Reply::Stat(_)) {
                    complete = true;
                    break;
                }
            }
            if !complete {
                break;
            }
            let got: Vec<Slot> = self.unmatched.drain(..n).collect();
            self.served.pop_front();
            let exit = self.check(&raw, &got, rig);
            assert_eq!(exit_expected, exit, "request {raw:?}");
        }
        if self.served.is_empty() {
            assert!(self.unmatched.is_empty(), "responses without a request");
            assert_eq!(rig.s.lane.workers(), self.workers);
            if self.whole {
                assert_eq!(rig.table.len(), self.map.len());
            }
        }
    }

    /// One checked serving step: the oldest request sent is served (its answer may wait
    /// unpublished while more requests wait), or Idle when none is left, by which time every
    /// answer must have come.
    fn serve(&mut self, rig: &mut Rig) {
        let step = rig.serve();
        self.unmatched.extend(rig.drain_checked());
        match step {
            Step::Idle => {
                assert!(self.pending.is_empty(), "idle with a request waiting");
            }
            Step::Served | Step::Exit => {
                let raw = self
                    .pending
                    .pop_front()
                    .expect("served a request never sent");
                self.served.push_back((raw, step == Step::Exit));
            }
            Step::Corrupt(e) => panic!("corrupt without hostile counters: {e}"),
        }
        self.match_answers(rig);
        if matches!(step, Step::Idle) {
            assert!(self.served.is_empty(), "idle with answers unpublished");
        }
    }

    /// Serve until every request sent is answered, then once more (Idle).
    fn flush(&mut self, rig: &mut Rig) {
        while !self.pending.is_empty() {
            self.serve(rig);
        }
        self.serve(rig);
    }
}

/// Run the actions in `data`; `hostile` includes the counter stores.
fn run(data: &[u8], hostile: bool) {
    let mut b = Bytes::new(data);
    let mut rig = Rig::new(2 << (b.u8() % 4));
    let mut model = Model {
        map: HashMap::new(),
        whole: true,
        workers: 1,
        pending: VecDeque::new(),
        served: VecDeque::new(),
        unmatched: VecDeque::new(),
    };
    while !b.is_empty() {
        match b.u8() % 8 {
            0 => {
                let s = b.slot();
                model.pending.extend(push(&mut rig, &[s], hostile));
            }
            1 | 2 => {
                let s = rig.valid_request(&mut b);
                model.pending.extend(push(&mut rig, &[s], hostile));
            }
            3 => {
                let n = b.u8();
                let batch: Vec<Slot> = (0..n % 4 + 1)
                    .map(|i| {
                        if n >> (4 + i) & 1 == 0 {
                            rig.valid_request(&mut b)
                        } else {
                            b.slot()
                        }
                    })
                    .collect();
                model.pending.extend(push(&mut rig, &batch, hostile));
            }
            4 => {
                // The checked run reads the same bytes and skips the store.
                let store = Store::parse(&mut b);
                if hostile {
                    store.apply(&rig);
                }
            }
            5 | 6 => {
                if rig.serves >= MAX_SERVES {
                    continue;
                }
                rig.serves += 1;
                if hostile {
                    rig.drain_any();
                    rig.make_room(rig.largest_answer());
                    if let Step::Corrupt(_) = rig.serve() {
                        rig.new_session();
                    }
                } else {
                    model.serve(&mut rig);
                }
            }
            _ => {
                if hostile {
                    rig.drain_any();
                } else {
                    assert!(rig.drain_checked().is_empty(), "responses nobody asked for");
                }
            }
        }
    }
    if !hostile {
        model.flush(&mut rig);
        check_refusals(&mut rig);
        return;
    }
    // What the ring still holds is refused, as at shutdown (one answer slot each, at most a
    // ring's worth), whatever the counters say; then the hostile client leaves, its session
    // ends, and the next client, in a new session over the same table, must be served
    // correctly.
    rig.drain_any();
    rig.make_room(rig.req_cap as u64);
    let refused = rig.s.lane.refuse_pending(&rig.ctl);
    assert!(refused <= rig.req_cap, "refused {refused} requests");
    rig.drain_any();
    rig.new_session();
    let mut after = Model {
        map: HashMap::new(),
        whole: false,
        workers: 1,
        pending: VecDeque::new(),
        served: VecDeque::new(),
        unmatched: VecDeque::new(),
    };
    for key in [3u64, 1 << 40] {
        if let Some(v) = rig.table.get(&key) {
            after.map.insert(key, v);
        }
        for op in [
            Op::Read { key },
            Op::Insert { key, value: 77 },
            Op::Read { key },
            Op::Delete { key },
            Op::Read { key },
        ] {
            let s = encode_request(&Request {
                id: key ^ 0xABCD,
                op,
            });
            after.pending.extend(push(&mut rig, &[s], false));
            after.serve(&mut rig);
        }
    }
    let mut garbage = [0xEEu8; 32];
    garbage[8] = 0; // no such op tag
    after.pending.extend(push(&mut rig, &[garbage], false));
    after.flush(&mut rig);
}

/// Checked run, once every request is answered: requests left in the ring when the server
/// shuts down are refused (`Lane::refuse_pending`), each with `ShuttingDown` and its id, in
/// order, and none is executed.
fn check_refusals(rig: &mut Rig) {
    const KEY: u64 = 5;
    let (entries, value, workers) = (rig.table.len(), rig.table.get(&KEY), rig.s.lane.workers());
    let mut garbage = [0xEEu8; 32];
    garbage[8] = 0; // no such op tag
    let requests = [
        Op::Insert {
            key: KEY,
            value: 0xD00D,
        },
        Op::ThStart { n: 1 },
        Op::Delete { key: KEY },
        Op::Stats,
    ]
    .map(|op| {
        rig.next_id += 1;
        encode_request(&Request {
            id: rig.next_id,
            op,
        })
    });
    let sent = push(
        rig,
        &[&requests[..2], &[garbage], &requests[2..]].concat(),
        false,
    );
    let refused = rig.s.lane.refuse_pending(&rig.ctl);
    assert_eq!(refused, sent.len(), "refused what was left, no more");
    let got = rig.drain_checked();
    assert_eq!(got.len(), sent.len(), "one refusal per request");
    for (raw, s) in sent.iter().zip(&got) {
        let r = decode_response(s).expect("the server's response slot decodes");
        check_response_reencodes(s, &r);
        assert_eq!(
            r,
            Response {
                id: request_id(raw),
                reply: Reply::Error(ErrorCode::ShuttingDown),
            },
            "request {raw:?}"
        );
    }
    assert_eq!(rig.table.len(), entries, "a refused request was executed");
    assert_eq!(rig.table.get(&KEY), value, "a refused request was executed");
    assert_eq!(
        rig.s.lane.workers(),
        workers,
        "a refused ThStart was executed"
    );
}

fuzz_target!(|data: &[u8]| {
    run(data, true);
    run(data, false);
});
