//! The server's real serving step (`Lane::serve_one` over record rings in heap memory with the
//! emulated futex, executing on a real `Store`) against a hostile client whose actions the
//! fuzzer chooses: arbitrary byte records, mutated and valid wire requests pushed through a
//! real `RecordProducer`; arbitrary values stored into the control words the client can write
//! (the request ring's `tail`, the response ring's `head`, the futex words); arbitrary words
//! stored into the request ring's data area, among them record headers that lie (unknown
//! kinds, huge lengths, lengths over the ring's largest payload, records across the end of the
//! data area, padding that does not reach the end), at the position the server reads next,
//! optionally published by a forged `tail`; serving steps with a zero wait
//! (`Some(Duration::ZERO)`, which never sleeps); and draining of responses with a real
//! `RecordConsumer`.
//!
//! A *session* is what the server gives one client: fresh rings and a fresh `Lane` (never
//! reused), over the server's one store. Each input runs twice:
//!
//! 1. **Hostile**: every action. Nothing may panic or hang, and every response the server
//!    writes decodes and is canonical. A `Step::Corrupt` is handled as the server does: the
//!    session ends (the lane is abandoned, nudged and drained of what its ring still holds,
//!    with every answer dropped) and the client starts a new session. At the end the server
//!    refuses what is left (`Lane::refuse_pending`, as at shutdown), the hostile client leaves
//!    (its session ends), and a new client, in a new session over the same store, must be
//!    answered correctly, starting with one worker.
//! 2. **Checked**: a fresh store and one session, the same actions without the hostile stores
//!    (garbage only in record payloads). Every request must be answered, in order, with
//!    exactly what a model (a `HashMap` of byte strings, the memory each entry is charged, the
//!    budget, the worker count) predicts, including the refusals of requests that do not
//!    decode (`Malformed`, or `TooLarge` for a field over the limits) with the id in their
//!    bytes 0..8 (an answer may come a few steps late: a lone worker leaves up to
//!    `PUBLISH_BATCH` answers unpublished while more requests wait, never when the ring is
//!    empty). The store and the lane's worker count must match the model whenever every answer
//!    has come. Finally requests left in the ring are refused with `ErrorCode::ShuttingDown`,
//!    in order, without touching the store.
//!
//! The client drains the response ring before each step and, in the hostile run, skips
//! responses (stores `head = tail`) when the server could otherwise find no room for its
//! largest possible answer: a server worker rightly waits for a live client to read its
//! responses, and this single-threaded harness has nobody to read them meanwhile. A worker that
//! waits anyway reaches `Control::peer_gone`, which panics here.
//!
//! The client is another process in the real system: its mapping lets it build ring halves at
//! will (`ShmRecordMem::claim` always agrees), e.g. to re-read counters after its view of a
//! ring broke. Here its halves work on `ClientMem`, the same heap memory without the
//! per-process claim, while the lane's halves claim the heap memory itself (so a lane built
//! twice over one session's memory would panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::record::{
    HeapRecordMem, RecordConsumer, RecordError, RecordMem, RecordProducer, max_payload,
};
use shmkv::region::{RingCtrl, Side};
use shmkv::serve::{Control, Lane, PUBLISH_BYTES, RESPOND_POLL, Scratch, Step};
use shmkv::stats::Stats;
use shmkv::store::{Store, entry_cost};
use shmkv::wait::{ModelFutex, SpinPolicy};
use shmkv::wire::{
    Assembly, ErrorCode, Limits, Op, Outcome, Request, Response, decode_request, encode_request,
    request_id,
};
use shmkv_fuzz::{Bytes, canonical_response};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type Mem = Arc<HeapRecordMem>;

/// The server's limits: small, so that the input reaches them.
const LIMITS: Limits = Limits {
    max_key: 16,
    max_value: 48,
};
/// Response ring bytes: room for the largest answer (a Print or Scan of every key, or a Stats)
/// in one record, twice (padding), besides `PUBLISH_BYTES` of deferred answers.
const RESP_CAP: usize = 1 << 16;
/// Store buckets; Print asks for 0..6, so some are out of range.
const BUCKETS: usize = 4;
/// Worker limit of the lane.
const MAX_WORKERS: u32 = 4;
/// Serving steps per run chosen by the input.
const MAX_SERVES: usize = 48;
/// Largest request ring.
const MAX_REQ_CAP: usize = 2048;
/// Serving steps per run that drain ending sessions (a ring's worth of the smallest records).
const MAX_DRAINS: usize = MAX_REQ_CAP / 16;
/// Bytes of a record's header, and the header kinds, spelled out here independently of the
/// crate.
const HEADER: u64 = 8;
const KIND_DATA: u64 = 1;
const KIND_PADDING: u64 = 2;

/// Bytes a record with a `len`-byte payload takes.
fn record_bytes(len: u64) -> u64 {
    HEADER + len.div_ceil(8) * 8
}

/// The server side seen by the lane. No thread is really started: a ThreadsStart is counted.
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
        // A client process may rebuild its halves (see the module docs); the old half is never
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
struct Session {
    req: Mem,
    resp: Mem,
    lane: Lane<Mem>,
    client_p: Option<RecordProducer<ClientMem>>,
    client_c: Option<RecordConsumer<ClientMem>>,
}

impl Session {
    fn new(req_cap: usize) -> Self {
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
    fn rebuild_producer(&mut self) {
        self.client_p = RecordProducer::new(ClientMem(self.req.clone())).ok();
    }

    /// The client rebuilds its consumer from the counters in memory.
    fn rebuild_consumer(&mut self) {
        self.client_c = RecordConsumer::new(ClientMem(self.resp.clone())).ok();
    }
}

/// The server (its store and control) and the current session.
struct Rig {
    s: Session,
    req_cap: usize,
    ctl: Ctl,
    store: Store,
    scratch: Scratch,
    /// Serving steps chosen by the input so far (see `MAX_SERVES`).
    serves: usize,
    /// Serving steps that drained ending sessions so far (see `MAX_DRAINS`).
    drains: usize,
    next_id: u64,
    buf: Vec<u8>,
}

impl Rig {
    fn new(b: &mut Bytes) -> Self {
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
    fn new_session(&mut self) {
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

    /// A key: usually one of a few short ones (so that operations meet), sometimes empty or
    /// over the limit (refused).
    fn key(b: &mut Bytes) -> Vec<u8> {
        let k = b.u8();
        match k % 16 {
            0..=9 => vec![b'a' + k % 4],
            10..=12 => vec![b'a' + k % 4, b'0' + k / 16 % 4],
            13 => Vec::new(),
            14 => vec![b'k'; LIMITS.max_key as usize + 1 + usize::from(k / 16)],
            _ => vec![k; LIMITS.max_key as usize],
        }
    }

    /// A value: bytes from the input, a decimal number (for `add`), or over the limit.
    fn value(b: &mut Bytes) -> Vec<u8> {
        let v = b.u8();
        match v % 8 {
            0..=3 => b.take(usize::from(v / 8) % 12).to_vec(),
            4 | 5 => {
                let n = match v / 8 % 4 {
                    0 => i64::MAX - i64::from(b.u8()),
                    1 => i64::MIN + i64::from(b.u8()),
                    _ => i64::from(b.u8() as i8),
                };
                n.to_string().into_bytes()
            }
            6 => vec![b'v'; LIMITS.max_value as usize],
            _ => vec![b'v'; LIMITS.max_value as usize + 1 + usize::from(v / 8)],
        }
    }

    fn valid_op(b: &mut Bytes) -> Op {
        let kind = b.u8();
        match kind % 18 {
            0 | 1 => Op::Insert {
                key: Self::key(b),
                value: Self::value(b),
            },
            2 | 3 => Op::Read { key: Self::key(b) },
            4 => Op::Delete { key: Self::key(b) },
            5 => Op::InsertNew {
                key: Self::key(b),
                value: Self::value(b),
            },
            6 | 7 => Op::Cas {
                key: Self::key(b),
                expected: (kind & 0x80 == 0).then(|| Self::value(b)),
                new: Self::value(b),
            },
            8 | 9 => Op::Add {
                key: Self::key(b),
                delta: match b.u8() % 4 {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    _ => i64::from(b.u8() as i8),
                },
            },
            10 => Op::Len,
            11 => Op::Scan {
                cursor: u64::from(b.u8() % 6),
                count: u32::from(b.u8() % 5),
            },
            12 => Op::Print {
                bucket: match b.u8() {
                    255 => u64::MAX,
                    n => u64::from(n % 6),
                },
            },
            13 => Op::ThreadsStart {
                n: u32::from(b.u8() % 6),
            },
            14 => Op::ThreadsStop,
            15 => Op::Quit,
            _ => Op::Stats,
        }
    }

    /// An encoded request: valid (its fields may still be over the limits, or a count 0).
    fn valid_request(&mut self, b: &mut Bytes) -> Vec<u8> {
        let op = Self::valid_op(b);
        self.next_id += 1;
        let mut out = Vec::new();
        encode_request(
            &Request {
                id: self.next_id,
                op,
            },
            &mut out,
        );
        out
    }

    /// An encoded valid request with one change: a byte flipped, the end cut, or bytes added.
    fn mutated_request(&mut self, b: &mut Bytes) -> Vec<u8> {
        let mut r = self.valid_request(b);
        let at = usize::from(b.u8());
        let x = b.u8();
        match x % 3 {
            0 => {
                let i = at % r.len();
                r[i] ^= x | 1;
            }
            1 => r.truncate(at % r.len()),
            _ => r.extend(std::iter::repeat_n(x, at % 4 + 1)),
        }
        r
    }

    /// Any bytes as a request record.
    fn raw_request(b: &mut Bytes) -> Vec<u8> {
        let n = usize::from(b.u8());
        b.take(n).to_vec()
    }

    /// One request record of any of the three sorts.
    fn any_request(&mut self, b: &mut Bytes) -> Vec<u8> {
        match b.u8() % 4 {
            0 => Self::raw_request(b),
            1 => self.mutated_request(b),
            _ => self.valid_request(b),
        }
    }

    /// The bytes of the largest answer the next request could get (in one record: the
    /// response ring takes a Print or Scan of every key in one part).
    fn largest_answer(&self) -> u64 {
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
    fn drain_any(&mut self) {
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
    /// of `need` bytes (see the module docs).
    fn make_room(&self, need: u64) {
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

    fn serve(&mut self) -> Step {
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
    fn drain_checked(&mut self) -> Vec<Response> {
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
fn push(rig: &mut Rig, records: &[Vec<u8>], hostile: bool) -> Vec<Vec<u8>> {
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

/// A hostile store into a control word the client can write; always 10 input bytes.
struct CtrlStore {
    word: u8,
    mode: u8,
    raw: u64,
}

impl CtrlStore {
    fn parse(b: &mut Bytes) -> Self {
        CtrlStore {
            word: b.u8(),
            mode: b.u8(),
            raw: b.u64(),
        }
    }

    /// The value: anything, near the word's current value (by bytes, or by whole words), zero,
    /// or near the top.
    fn value(&self, current: u64) -> u64 {
        match self.mode % 5 {
            0 => self.raw,
            1 => current.wrapping_add_signed(i64::from(self.raw as u8 as i8)),
            2 => current.wrapping_add_signed(8 * i64::from(self.raw as u8 as i8)),
            3 => 0,
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
                ][usize::from(self.mode / 8 % 4)];
                let v = self.value(u64::from(word.load(Ordering::SeqCst)));
                word.store(v as u32, Ordering::SeqCst);
                return;
            }
        };
        counter.store(self.value(counter.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
}

/// A hostile store of a word into the request ring's data area, often a record header that
/// lies, at the position the client writes next (the published `tail`) or the server reads
/// next (the released `head`), optionally published by a forged `tail`; always 12 input
/// bytes.
struct DataStore {
    place: u8,
    what: u8,
    publish: u8,
    len: u32,
    raw: u32,
    extra: u8,
}

impl DataStore {
    fn parse(b: &mut Bytes) -> Self {
        DataStore {
            place: b.u8(),
            what: b.u8(),
            publish: b.u8(),
            len: b.u32(),
            raw: b.u32(),
            extra: b.u8(),
        }
    }

    fn apply(&self, rig: &Rig) {
        let mem = &rig.s.req;
        let cap = mem.capacity() as u64;
        let ctrl = mem.ctrl();
        let tail = ctrl.producer.0.tail.load(Ordering::SeqCst);
        let head = ctrl.consumer.0.head.load(Ordering::SeqCst);
        let pos = match self.place % 4 {
            0 | 1 => tail,
            2 => head,
            _ => u64::from(self.raw),
        };
        let off = (pos % cap) & !7;
        let to_end = cap - off;
        let max = max_payload(cap as usize) as u64;
        let small = u64::from(self.extra);
        // The length the header claims.
        let len = match self.what % 8 {
            0 => u64::from(self.len),
            1 => u64::from(u32::MAX) - small,
            2 => max + 1 + small,
            // Crossing the end of the data area by a few bytes (or ending exactly there).
            3 => (to_end - HEADER + small % 24).saturating_sub(8),
            4 => max - small.min(max),
            _ => small % 64,
        };
        let kind = match self.what / 8 % 4 {
            0 | 1 => KIND_DATA,
            // A padding record that should reach exactly the end, or not.
            2 => KIND_PADDING,
            _ => u64::from(self.raw) % 5,
        };
        let header = if self.what / 8 % 4 == 2 && self.what & 0x80 != 0 {
            (KIND_PADDING << 32) | (to_end - HEADER)
        } else {
            (kind << 32) | (len & 0xffff_ffff)
        };
        let word = if self.place & 0x80 != 0 {
            // A payload word instead of a header.
            u64::from(self.raw) | (u64::from(self.len) << 32)
        } else {
            header
        };
        // SAFETY: `off / 8 < cap / 8`. Single-threaded harness: no other access runs at the
        // same time (see `ClientMem::read_word`).
        unsafe { mem.write_word((off / 8) as usize, word) };
        // Publish the lie: past the header, past the record it claims, or by a few words.
        let advance = match self.publish % 4 {
            0 => 0,
            1 => HEADER,
            2 => record_bytes(len).min(1 << 32),
            _ => 8 * u64::from(self.extra % 8),
        };
        if advance > 0 {
            ctrl.producer
                .0
                .tail
                .store(pos.wrapping_add(advance), Ordering::SeqCst);
        }
    }
}

/// Whether `v` is a canonical decimal `i64` as `add` reads it (optional `-`, no `+`, no
/// leading zeros, no spaces, not `-0`), and its value; spelled out here independently of the
/// store.
fn decimal(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

/// What the server must answer, from a `HashMap`, the memory charged and the lane's worker
/// count.
struct Model {
    map: HashMap<Vec<u8>, Vec<u8>>,
    /// Whether `map` holds the whole store (else Len, Scan, Print and Stats are not checked).
    whole: bool,
    used: u64,
    budget: u64,
    workers: u32,
    /// Requests sent and not yet served.
    pending: VecDeque<Vec<u8>>,
    /// Requests served whose answers have not all come (a lone worker may leave up to
    /// `PUBLISH_BATCH` answers unpublished while more requests wait), with whether serving
    /// them returned `Step::Exit`.
    served: VecDeque<(Vec<u8>, bool)>,
    /// Responses received and not yet matched to a served request.
    unmatched: VecDeque<Response>,
}

impl Model {
    fn new(rig: &Rig, whole: bool) -> Self {
        Model {
            map: HashMap::new(),
            whole,
            used: rig.store.memory_used(),
            budget: rig.store.budget(),
            workers: rig.s.lane.workers(),
            pending: VecDeque::new(),
            served: VecDeque::new(),
            unmatched: VecDeque::new(),
        }
    }

    /// Set `key` to `value` if the budget allows; the previous value, or the refusal.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ErrorCode> {
        let old = self
            .map
            .get(key)
            .map_or(0, |v| entry_cost(key.len(), v.len()));
        let new = entry_cost(key.len(), value.len());
        if new > old && self.used + (new - old) > self.budget {
            return Err(ErrorCode::OutOfMemory);
        }
        self.used = self.used - old + new;
        Ok(self.map.insert(key.to_vec(), value.to_vec()))
    }

    fn remove(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.map.remove(key)?;
        self.used -= entry_cost(key.len(), v.len());
        Some(v)
    }

    fn bucket(&self, rig: &Rig, b: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(k, _)| rig.store.bucket_of(k) as u64 == b)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Check the complete answer `got` to request `raw`; returns whether the worker must exit.
    fn check(&mut self, raw: &[u8], got: Outcome, rig: &Rig) -> bool {
        let mut exit = false;
        let want = match decode_request(raw, &LIMITS) {
            Err(e) => Outcome::Refused(e.reply_code()),
            Ok(req) => match req.op {
                Op::Insert { key, value } => match self.put(&key, &value) {
                    Err(e) => Outcome::Refused(e),
                    Ok(None) => Outcome::Created,
                    Ok(Some(p)) => Outcome::Replaced(p),
                },
                Op::Read { key } => match self.map.get(&key) {
                    Some(v) => Outcome::Value(v.clone()),
                    None => Outcome::NotFound,
                },
                Op::Delete { key } => match self.remove(&key) {
                    Some(v) => Outcome::Deleted(v),
                    None => Outcome::NotFound,
                },
                Op::InsertNew { key, value } => match self.map.get(&key) {
                    Some(v) => Outcome::Exists(v.clone()),
                    None => match self.put(&key, &value) {
                        Err(e) => Outcome::Refused(e),
                        Ok(_) => Outcome::Created,
                    },
                },
                Op::Cas { key, expected, new } => {
                    let current = self.map.get(&key).cloned();
                    if current != expected {
                        Outcome::Mismatch(current)
                    } else {
                        match self.put(&key, &new) {
                            Err(e) => Outcome::Refused(e),
                            Ok(_) => Outcome::Swapped,
                        }
                    }
                }
                Op::Add { key, delta } => {
                    let current = match self.map.get(&key) {
                        None => Some(0),
                        Some(v) => decimal(v),
                    };
                    match current.map(|c| c.checked_add(delta)) {
                        None => Outcome::Refused(ErrorCode::NotAnInteger),
                        Some(None) => Outcome::Refused(ErrorCode::Overflow),
                        Some(Some(n)) => match self.put(&key, n.to_string().as_bytes()) {
                            Err(e) => Outcome::Refused(e),
                            Ok(_) => Outcome::Number(n),
                        },
                    }
                }
                Op::Len => {
                    assert!(self.whole);
                    Outcome::Count(self.map.len() as u64)
                }
                Op::Scan { cursor, count } => {
                    assert!(self.whole);
                    // Whole buckets from `cursor` on, until `count` keys or the end.
                    let mut next = cursor;
                    let mut keys = Vec::new();
                    while next < BUCKETS as u64 {
                        keys.extend(self.bucket(rig, next).into_iter().map(|(k, _)| k));
                        next += 1;
                        if keys.len() >= count as usize {
                            break;
                        }
                    }
                    if next >= BUCKETS as u64 {
                        next = 0;
                    }
                    match got {
                        Outcome::Keys {
                            cursor: c,
                            keys: mut k,
                        } => {
                            k.sort();
                            keys.sort();
                            assert_eq!((c, k), (next, keys), "scan {cursor} {count}");
                            return false;
                        }
                        other => panic!("scan {cursor} {count} answered {other:?}"),
                    }
                }
                Op::Print { bucket } if bucket >= BUCKETS as u64 => {
                    Outcome::Refused(ErrorCode::BadBucket {
                        bucket,
                        buckets: BUCKETS as u64,
                    })
                }
                Op::Print { bucket } => {
                    assert!(self.whole);
                    match got {
                        Outcome::Entries(mut pairs) => {
                            pairs.sort();
                            assert_eq!(pairs, self.bucket(rig, bucket), "bucket {bucket}");
                            return false;
                        }
                        other => panic!("print {bucket} answered {other:?}"),
                    }
                }
                Op::ThreadsStart { n } => {
                    match self.workers.checked_add(n).filter(|&t| t <= MAX_WORKERS) {
                        Some(t) => {
                            self.workers = t;
                            Outcome::Threads(t)
                        }
                        None => Outcome::Refused(ErrorCode::ThreadLimit {
                            current: self.workers,
                            max: MAX_WORKERS,
                        }),
                    }
                }
                Op::ThreadsStop => {
                    if self.workers > 1 {
                        self.workers -= 1;
                        exit = true;
                        Outcome::Threads(self.workers)
                    } else {
                        Outcome::Refused(ErrorCode::LastWorker)
                    }
                }
                Op::Quit => {
                    assert!(
                        rig.ctl.quit.load(Ordering::SeqCst),
                        "Quit reached the server"
                    );
                    Outcome::Done
                }
                Op::Stats => {
                    assert!(self.whole);
                    let longest = (0..BUCKETS as u64)
                        .map(|b| self.bucket(rig, b).len() as u64)
                        .max()
                        .unwrap_or(0);
                    let want = Stats {
                        entries: self.map.len() as u64,
                        buckets: BUCKETS as u64,
                        longest_bucket: longest,
                        memory_used: self.used,
                        memory_limit: self.budget,
                        ..Stats::default()
                    };
                    match got {
                        Outcome::Stats(list) => {
                            assert_eq!(Stats::from_stats(&list), want);
                            return false;
                        }
                        other => panic!("stats answered {other:?}"),
                    }
                }
            },
        };
        assert_eq!(got, want, "request {raw:?}");
        exit
    }

    /// Check every served request whose answer is complete among the responses received, in
    /// order; once all are, the store and the worker count must match the model.
    fn match_answers(&mut self, rig: &Rig) {
        while let Some((raw, exit_expected)) = self.served.front().cloned() {
            // An answer is its parts (`more` on all but the last), each with the request's id.
            let id = request_id(&raw);
            let mut assembly = Assembly::default();
            let mut n = 0;
            let mut outcome = None;
            for r in &self.unmatched {
                assert_eq!(r.id, id, "response carries the request's id");
                n += 1;
                if let Some(o) = assembly.add(r.reply.clone()).expect("parts of one kind") {
                    outcome = Some(o);
                    break;
                }
            }
            let Some(outcome) = outcome else {
                break;
            };
            for _ in 0..n {
                self.unmatched.pop_front();
            }
            self.served.pop_front();
            let exit = self.check(&raw, outcome, rig);
            assert_eq!(exit_expected, exit, "request {raw:?}");
        }
        if self.served.is_empty() {
            assert!(self.unmatched.is_empty(), "responses without a request");
            assert_eq!(rig.s.lane.workers(), self.workers);
            assert_eq!(rig.store.memory_used(), self.used);
            if self.whole {
                assert_eq!(rig.store.len(), self.map.len() as u64);
            }
        }
    }

    /// One checked serving step: the oldest requests sent are served (a burst; their answers
    /// may wait unpublished while more requests wait), or Idle when none is left, by which time
    /// every answer must have come.
    fn serve(&mut self, rig: &mut Rig) {
        let before = rig.s.lane.counters().requests();
        let step = rig.serve();
        // A step serves a burst: the request it took first and those already waiting behind
        // it (up to `serve::BURST`), in order; only the last can be the one that stops the
        // worker.
        let taken = rig.s.lane.counters().requests() - before;
        self.unmatched.extend(rig.drain_checked());
        match step {
            Step::Idle => {
                assert!(self.pending.is_empty(), "idle with a request waiting");
                assert_eq!(taken, 0, "idle after taking requests");
            }
            Step::Served | Step::Exit => {
                assert!(
                    (1..=u64::from(shmkv::serve::BURST)).contains(&taken),
                    "{taken} requests taken in one step"
                );
                for i in 0..taken {
                    let raw = self
                        .pending
                        .pop_front()
                        .expect("served a request never sent");
                    self.served
                        .push_back((raw, step == Step::Exit && i + 1 == taken));
                }
            }
            Step::Corrupt(e) => panic!("corrupt without hostile stores: {e}"),
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

/// Run the actions in `data`; `hostile` includes the hostile stores.
fn run(data: &[u8], hostile: bool) {
    let mut b = Bytes::new(data);
    let mut rig = Rig::new(&mut b);
    let mut model = Model::new(&rig, true);
    while !b.is_empty() {
        match b.u8() % 10 {
            0 => {
                let r = Rig::raw_request(&mut b);
                model.pending.extend(push(&mut rig, &[r], hostile));
            }
            1 => {
                let r = rig.mutated_request(&mut b);
                model.pending.extend(push(&mut rig, &[r], hostile));
            }
            2 | 3 => {
                let r = rig.valid_request(&mut b);
                model.pending.extend(push(&mut rig, &[r], hostile));
            }
            4 => {
                let n = b.u8() % 4 + 1;
                let batch: Vec<Vec<u8>> = (0..n).map(|_| rig.any_request(&mut b)).collect();
                model.pending.extend(push(&mut rig, &batch, hostile));
            }
            5 => {
                // The checked run reads the same bytes and skips the store.
                let store = CtrlStore::parse(&mut b);
                if hostile {
                    store.apply(&rig);
                }
            }
            6 => {
                let store = DataStore::parse(&mut b);
                if hostile {
                    store.apply(&rig);
                }
            }
            7 | 8 => {
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
    // What the ring still holds is refused, as at shutdown (one answer each, at most a ring's
    // worth), whatever the counters say; then the hostile client leaves, its session ends, and
    // the next client, in a new session over the same store, must be served correctly.
    rig.drain_any();
    rig.make_room(64);
    let refused = rig.s.lane.refuse_pending(&rig.ctl);
    assert!(refused <= rig.req_cap / 16, "refused {refused} requests");
    rig.drain_any();
    rig.new_session();
    let mut after = Model::new(&rig, false);
    for key in [&b"a"[..], &[7u8; 16][..]] {
        if let Some(v) = rig.store.read(key).get() {
            after.map.insert(key.to_vec(), v.to_vec());
        }
        for op in [
            Op::Read { key: key.to_vec() },
            Op::Insert {
                key: key.to_vec(),
                value: b"77".to_vec(),
            },
            Op::Read { key: key.to_vec() },
            Op::Add {
                key: key.to_vec(),
                delta: 1,
            },
            Op::Delete { key: key.to_vec() },
            Op::Read { key: key.to_vec() },
        ] {
            let mut r = Vec::new();
            encode_request(
                &Request {
                    id: key.len() as u64 ^ 0xABCD,
                    op,
                },
                &mut r,
            );
            after.pending.extend(push(&mut rig, &[r], false));
            after.serve(&mut rig);
        }
    }
    let mut garbage = vec![0xEEu8; 32];
    garbage[8] = 0; // no such op tag
    after.pending.extend(push(&mut rig, &[garbage], false));
    after.flush(&mut rig);
}

/// Checked run, once every request is answered: requests left in the ring when the server
/// shuts down are refused (`Lane::refuse_pending`), each with `ShuttingDown` and its id, in
/// order, and none is executed.
fn check_refusals(rig: &mut Rig) {
    const KEY: &[u8] = b"a";
    let entries = rig.store.len();
    let used = rig.store.memory_used();
    let value = rig.store.read(KEY).get().map(<[u8]>::to_vec);
    let workers = rig.s.lane.workers();
    let mut garbage = vec![0xEEu8; 32];
    garbage[8] = 0; // no such op tag
    let requests = [
        Op::Insert {
            key: KEY.to_vec(),
            value: b"refused".to_vec(),
        },
        Op::ThreadsStart { n: 1 },
        Op::Delete { key: KEY.to_vec() },
        Op::Stats,
    ]
    .map(|op| {
        rig.next_id += 1;
        let mut r = Vec::new();
        encode_request(
            &Request {
                id: rig.next_id,
                op,
            },
            &mut r,
        );
        r
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
    for (raw, r) in sent.iter().zip(&got) {
        assert_eq!(
            *r,
            Response {
                id: request_id(raw),
                reply: shmkv::wire::Reply::Error(ErrorCode::ShuttingDown),
            },
            "request {raw:?}"
        );
    }
    assert_eq!(rig.store.len(), entries, "a refused request was executed");
    assert_eq!(
        rig.store.memory_used(),
        used,
        "a refused request was executed"
    );
    assert_eq!(
        rig.store.read(KEY).get().map(<[u8]>::to_vec),
        value,
        "a refused request was executed"
    );
    assert_eq!(
        rig.s.lane.workers(),
        workers,
        "a refused ThreadsStart was executed"
    );
}

fuzz_target!(|data: &[u8]| {
    run(data, true);
    run(data, false);
});
