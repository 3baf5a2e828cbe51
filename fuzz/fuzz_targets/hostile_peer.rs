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
//!
//! The modules, in `hostile_peer/`: `session` (the server side the lane sees, the client's
//! view of the memory, one session), `rig` (the server and its current session, the client's
//! pushes and drains), `requests` (the request records the input chooses), `stores` (the
//! hostile stores into control words and the data area), `model` (what the server must
//! answer).
#![no_main]

#[path = "hostile_peer/model.rs"]
mod model;
#[path = "hostile_peer/requests.rs"]
mod requests;
#[path = "hostile_peer/rig.rs"]
mod rig;
#[path = "hostile_peer/session.rs"]
mod session;
#[path = "hostile_peer/stores.rs"]
mod stores;

use libfuzzer_sys::fuzz_target;
use model::Model;
use rig::{Rig, push};
use shmkv::record::HeapRecordMem;
use shmkv::serve::Step;
use shmkv::wire::{ErrorCode, Limits, Op, Request, Response, encode_request, request_id};
use shmkv_fuzz::Bytes;
use std::sync::Arc;
use stores::{CtrlStore, DataStore};

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
