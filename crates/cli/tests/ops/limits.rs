//! Keys and values over the limits, refused by the client and, sent raw past it, by the
//! server; the memory budget; add under a short value limit; and many workers answering a
//! pipelining client.

use super::{refused, serve, too_large};
use crate::common::*;
use shmkv::client::{Client, ClientConfig, ClientError, Outcome};
use shmkv::wire::{ErrorCode, Field, Limits, Op};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of a request for `op` with id `id`.
fn request_bytes(id: u64, op: Op) -> Vec<u8> {
    let mut b = Vec::new();
    shmkv::wire::encode_request(&shmkv::wire::Request { id, op }, &mut b);
    b
}

/// Send `request` raw into a session's request ring and take the one response that comes.
fn raw_call(
    tx: &mut shmkv::record::RecordProducer<shmkv::record::ShmRecordMem>,
    rx: &mut shmkv::record::RecordConsumer<shmkv::record::ShmRecordMem>,
    request: &[u8],
) -> shmkv::wire::Response {
    tx.push(request, Some(DEADLINE)).unwrap();
    let mut buf = Vec::new();
    rx.pop_into(&mut buf, Some(DEADLINE)).unwrap();
    shmkv::wire::decode_response(&buf, &Limits::UNLIMITED).unwrap()
}

#[test]
fn keys_and_values_over_the_limits_are_refused_by_the_client_and_by_the_server() {
    use shmkv::wire::Reply;
    let limits = Limits {
        max_key: 16,
        max_value: 64,
    };
    let (server, name) = serve(16, 2, 1, |config| config.limits = limits);
    let c = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
    assert_eq!(c.limits(), limits);
    // The longest key and value pass; a byte more is refused before anything is sent.
    assert_eq!(c.insert(&[1; 16], &[2; 64]).unwrap(), None);
    assert_eq!(c.insert(&[1; 17], b"v"), too_large(Field::Key, 17, 16));
    assert_eq!(c.insert(b"k", &[0; 65]), too_large(Field::Value, 65, 64));
    assert_eq!(c.read(&[0; 17]), too_large(Field::Key, 17, 16));
    assert_eq!(c.delete(&[0; 17]), too_large(Field::Key, 17, 16));
    assert_eq!(
        c.insert_new(b"k", &[0; 65]),
        too_large(Field::Value, 65, 64)
    );
    assert_eq!(
        c.cas(b"k", Some(&[0; 65]), b""),
        too_large(Field::Value, 65, 64)
    );
    assert_eq!(c.cas(b"k", None, &[0; 65]), too_large(Field::Value, 65, 64));
    assert_eq!(c.add(&[0; 17], 1), too_large(Field::Key, 17, 16));
    // The empty key is no key.
    assert_eq!(c.read(b""), too_large(Field::Key, 0, 16));
    assert_eq!(c.insert(b"", b"v"), too_large(Field::Key, 0, 16));
    // A batch with one such operation sends none of it.
    let before = c.stats().unwrap().ops.total();
    let batch = [
        Op::Insert {
            key: b"fine".to_vec(),
            value: b"v".to_vec(),
        },
        Op::Insert {
            key: b"k".to_vec(),
            value: vec![0; 65],
        },
    ];
    assert!(matches!(
        c.submit_all(&batch),
        Err(ClientError::TooLarge { .. })
    ));
    assert_eq!(c.read(b"fine").unwrap(), None);
    let st = c.stats().unwrap();
    assert_eq!(st.ops.total(), before + 2, "the read and this stats only");
    assert_eq!(st.errors.total(), 0);
    assert_eq!(c.read(&[1; 16]).unwrap(), Some(vec![2; 64]));

    // Sent raw into a session's request ring, past the client's check: the server refuses
    // each with TooLarge (Malformed for the empty key) and the session goes on.
    let raw = Client::connect(&ClientConfig::new(&name).slot(1)).unwrap();
    let info = *raw.info();
    let map = Arc::new(shmkv::shm::Mapping::open_sealed(&raw.object_fd()).unwrap());
    let req = info.req_capacity as usize;
    let mem = |ctrl, data, cap| shmkv::record::ShmRecordMem::new(map.clone(), ctrl, data, cap);
    let mut tx = shmkv::record::RecordProducer::new(
        mem(shmkv::channel::REQ_CTRL, shmkv::channel::DATA, req).unwrap(),
    )
    .unwrap();
    let mut rx = shmkv::record::RecordConsumer::new(
        mem(
            shmkv::channel::RESP_CTRL,
            shmkv::channel::DATA + req,
            info.resp_capacity as usize,
        )
        .unwrap(),
    )
    .unwrap();
    let too = |what, len| {
        Reply::Error(ErrorCode::TooLarge {
            what,
            len,
            max: if what == Field::Key { 16 } else { 64 },
        })
    };
    let cases = [
        (
            Op::Insert {
                key: vec![1; 17],
                value: b"v".to_vec(),
            },
            too(Field::Key, 17),
        ),
        (
            Op::Insert {
                key: b"k".to_vec(),
                value: vec![0; 65],
            },
            too(Field::Value, 65),
        ),
        (
            Op::Cas {
                key: b"k".to_vec(),
                expected: Some(vec![0; 65]),
                new: Vec::new(),
            },
            too(Field::Value, 65),
        ),
        (Op::Read { key: vec![9; 4096] }, too(Field::Key, 4096)),
        (
            Op::Read { key: Vec::new() },
            Reply::Error(ErrorCode::Malformed),
        ),
    ];
    for (id, (op, want)) in (100..).zip(cases) {
        let r = raw_call(&mut tx, &mut rx, &request_bytes(id, op.clone()));
        assert_eq!((r.id, r.reply), (id, want), "{op:?}");
    }
    // A value whose length prefix lies (a million bytes announced, three there) is refused
    // for its length, before anything is copied.
    let mut lying = request_bytes(
        200,
        Op::Insert {
            key: b"k".to_vec(),
            value: b"abc".to_vec(),
        },
    );
    let at = lying.len() - 3 - 4;
    lying[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    let r = raw_call(&mut tx, &mut rx, &lying);
    assert_eq!((r.id, r.reply), (200, too(Field::Value, 1_000_000)));
    // The session goes on, and so does the other client.
    let ok = Op::Insert {
        key: b"raw".to_vec(),
        value: b"ok".to_vec(),
    };
    let r = raw_call(&mut tx, &mut rx, &request_bytes(201, ok));
    assert_eq!((r.id, r.reply), (201, Reply::Created));
    let r = raw_call(
        &mut tx,
        &mut rx,
        &request_bytes(
            202,
            Op::Read {
                key: b"raw".to_vec(),
            },
        ),
    );
    assert_eq!((r.id, r.reply), (202, Reply::Value(b"ok".to_vec())));
    assert_eq!(c.read(b"raw").unwrap(), Some(b"ok".to_vec()));
    assert_eq!(c.read(b"k").unwrap(), None, "nothing refused was stored");
    let st = c.stats().unwrap();
    assert_eq!(st.errors.get(6), 5, "too large");
    assert_eq!(st.errors.get(5), 1, "malformed");
    assert_eq!(
        st.slots[1].owner_pid,
        u64::from(std::process::id()),
        "the raw client is still connected"
    );
    drop((tx, rx, raw));
    drop(c);
    server.shutdown();
}

#[test]
fn the_memory_budget_refuses_growth_and_allows_reads_deletes_and_shrinking() {
    use shmkv::store::entry_cost;
    let budget: u64 = 64 * 1024;
    let (server, name) = serve(64, 1, 1, |config| config.max_memory = budget);
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    let used = || {
        let st = c.stats().unwrap();
        assert_eq!(st.memory_limit, budget);
        assert!(
            st.memory_used <= budget,
            "{} bytes used, budget {budget}",
            st.memory_used
        );
        st.memory_used
    };
    let key = |i: u64| format!("k{i:07}").into_bytes();
    let value = |i: u64| vec![i as u8; 1000];
    fn oom<T>() -> Result<T, ClientError> {
        Err(ClientError::Refused(ErrorCode::OutOfMemory))
    }
    // Fill with 1000-byte values until the budget refuses one.
    let cost = entry_cost(8, 1000);
    let mut n = 0;
    loop {
        match c.insert(&key(n), &value(n)) {
            Ok(None) => n += 1,
            Err(ClientError::Refused(ErrorCode::OutOfMemory)) => break,
            other => panic!("insert {n}: {other:?}"),
        }
        assert_eq!(used(), n * cost);
        assert!(n < 1000, "the budget refused nothing");
    }
    assert_eq!(n, budget / cost, "as many as fit");
    // Then small entries until none fits.
    let small = entry_cost(8, 0);
    let mut m = 0;
    while c.insert(&key(10_000 + m), b"") == Ok(None) {
        m += 1;
    }
    assert_eq!(m, (budget - n * cost) / small);
    let full = used();
    assert_eq!(full, n * cost + m * small);
    // Nothing new fits, whatever the operation; each refusal changes nothing.
    assert_eq!(c.insert(&key(n), &value(n)), oom());
    assert_eq!(c.insert(b"x", b""), oom());
    assert_eq!(c.insert_new(b"x", b""), oom());
    assert_eq!(c.cas(b"x", None, b""), oom());
    assert_eq!(c.add(b"x", 1), refused(ErrorCode::OutOfMemory));
    assert_eq!(c.read(b"x").unwrap(), None);
    assert_eq!(c.read(&key(n)).unwrap(), None);
    // Growing an entry is refused and leaves it as it was.
    assert_eq!(c.insert(&key(0), &[0; 1100]), oom());
    assert_eq!(c.cas(&key(0), Some(&value(0)), &[0; 1100]), oom());
    assert_eq!(used(), full);
    // Reads work; rewriting in place at the same size works; a mismatched cas needs no room.
    for i in 0..n {
        assert_eq!(c.read(&key(i)).unwrap(), Some(value(i)), "{i}");
    }
    assert_eq!(
        c.insert(&key(0), &[9; 1000]).unwrap(),
        Some(value(0)),
        "same size"
    );
    assert_eq!(
        c.cas(&key(0), Some(b"no"), &[0; 1100]).unwrap(),
        Err(Some(vec![9; 1000]))
    );
    assert_eq!(used(), full);
    // Shrinking works and frees room.
    assert_eq!(c.insert(&key(1), b"").unwrap(), Some(value(1)));
    assert_eq!(used(), full - cost + small);
    assert_eq!(c.insert(&key(1), &value(1)).unwrap(), Some(Vec::new()));
    assert_eq!(used(), full);
    // A delete makes room for a new entry.
    assert_eq!(c.delete(&key(2)).unwrap(), Some(value(2)));
    assert_eq!(used(), full - cost);
    assert_eq!(c.insert(&key(n), &value(n)).unwrap(), None);
    assert_eq!(used(), full);
    assert_eq!(c.insert(&key(2), &value(2)), oom());
    let st = c.stats().unwrap();
    assert_eq!(st.errors.get(ErrorCode::OutOfMemory.code()), 10);
    assert_eq!(st.entries, n + m);
    drop(c);
    server.shutdown();

    // The binary's --max-memory, and what the command line says.
    let budget = entry_cost(1, 1) + 10;
    let s = ServerProc::start(&["--max-memory", &budget.to_string()]);
    let out = s.client(&["0", "insert", "a", "1", "insert", "b", "2", "read", "a"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "insert a 1: ok\nread a: 1\n");
    assert_eq!(
        out.stderr,
        "shmkv-client: insert b 2: error: out of memory (the server's --max-memory)\n"
    );
    s.client(&["0", "delete", "a", "insert", "b", "2"])
        .ok("delete a: ok\ninsert b 2: ok\n");
    s.quit_and_check_clean();
}

/// A server whose values are short: add may not store a number longer than the limit (the
/// client could not read it back: its answer would not decode against the limits).
#[test]
fn add_never_stores_a_value_over_the_limit() {
    let limits = Limits {
        max_key: 16,
        max_value: 2,
    };
    let (server, name) = serve(16, 1, 1, |config| config.limits = limits);
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.add(b"n", 99).unwrap(), 99);
    let r = c.add(b"n", 1);
    let back = c.read(b"n");
    assert!(
        matches!(r, Err(ClientError::Refused(_))) && back == Ok(Some(b"99".to_vec())),
        "add under a 2-byte limit: {r:?}; reading the value back: {back:?}"
    );
    let r = c.add(b"m", -10);
    let back = c.read(b"m");
    assert!(
        matches!(r, Err(ClientError::Refused(_))) && back == Ok(None),
        "add under a 2-byte limit: {r:?}; reading the value back: {back:?}"
    );
    drop(c);
    server.shutdown();
}

/// Many workers serving one pipelining client answer every request, in batches of 1 to 40
/// mixed operations checked against a model, with the workers sharing the backlog or taking
/// turns (a worker that keeps the ring defers publishing its answers while more requests
/// wait: the publication must never be left undone, whichever worker takes the rest).
#[test]
fn several_workers_answer_every_pipelined_request() {
    for share in [false, true] {
        let (server, name) = serve(256, 1, 16, |config| config.share_backlog = Some(share));
        let c = Client::connect(&ClientConfig::new(&name).timeout(Duration::from_secs(2))).unwrap();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let t0 = Instant::now();
        for batch in 0..4000 {
            if t0.elapsed() > Duration::from_secs(15) {
                eprintln!("share_backlog {share}: {batch} batches in 15 s");
                break;
            }
            let ops: Vec<Op> = (0..1 + next() % 40)
                .map(|_| {
                    let key = (next() % 64).to_le_bytes().to_vec();
                    match next() % 8 {
                        0..=2 => Op::Insert {
                            key,
                            value: next().to_string().into_bytes()[..(next() % 6) as usize]
                                .to_vec(),
                        },
                        3..=4 => Op::Read { key },
                        5 => Op::Delete { key },
                        _ => Op::Add {
                            key,
                            delta: (next() % 100) as i64,
                        },
                    }
                })
                .collect();
            let tickets = c.submit_all(&ops).unwrap_or_else(|e| {
                panic!("share_backlog {share}, batch {batch}: {e}");
            });
            for (i, (op, t)) in ops.iter().zip(tickets).enumerate() {
                let got = c.wait(t).unwrap_or_else(|e| {
                    panic!("share_backlog {share}, batch {batch}, op {i} {op:?}: {e}")
                });
                let want = match op {
                    Op::Insert { key, value } => model
                        .insert(key.clone(), value.clone())
                        .map_or(Outcome::Created, Outcome::Replaced),
                    Op::Read { key } => model
                        .get(key)
                        .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
                    Op::Delete { key } => model
                        .remove(key)
                        .map_or(Outcome::NotFound, Outcome::Deleted),
                    Op::Add { key, delta } => {
                        let now = model.get(key).map_or(Some(0), |v| {
                            std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse::<i64>().ok())
                                .filter(|n| n.to_string().as_bytes() == v.as_slice())
                        });
                        match now.map(|n| n + delta) {
                            Some(n) => {
                                model.insert(key.clone(), n.to_string().into_bytes());
                                Outcome::Number(n)
                            }
                            None => Outcome::Refused(ErrorCode::NotAnInteger),
                        }
                    }
                    _ => unreachable!(),
                };
                assert_eq!(
                    got, want,
                    "share_backlog {share}, batch {batch}, op {i} {op:?}"
                );
            }
        }
        assert_eq!(c.stray_responses(), 0);
        drop(c);
        server.shutdown();
    }
}
