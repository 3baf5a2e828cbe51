//! The seeds' examples and the classic operations: the README's examples verbatim, ids and
//! numbers, print/threads/quit, same-key order, many threads and processes, thread changes.

use super::client_stdin;
use crate::common::*;
use shmkv::client::{Client, ClientConfig, ClientError, Outcome};
use shmkv::wire::{ErrorCode, Op};
use std::collections::HashMap;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// The seeds' examples and the classic operations.
// ---------------------------------------------------------------------------------------------

#[test]
fn readme_examples_verbatim() {
    let s = ServerProc::start(&["100", "2", "3"]);
    let out = s.client(&["0", "insert", "1", "2", "insert", "2", "4"]);
    out.ok("insert 1 2: ok\ninsert 2 4: ok\n");
    s.client(&["1", "read", "1", "read", "2"])
        .ok("read 1: 2\nread 2: 4\n");
    s.client(&["0", "read", "1", "read", "9", "delete", "1", "delete", "1"])
        .ok("read 1: 2\nread 9: not found\ndelete 1: ok\ndelete 1: not found\n");
    s.client(&["0", "insert", "5", "6", "read", "5", "insert", "5", "7"])
        .ok("insert 5 6: ok\nread 5: 6\ninsert 5 7: ok, replaced 6\n");
    // The other examples of --help.
    s.client(&["0", "insert", "a key", r#""\x00\xff""#, "read", "a key"])
        .ok("insert \"a key\" \"\\x00\\xff\": ok\nread \"a key\": \"\\x00\\xff\"\n");
    client_stdin(&s, &["0"], "insert 1 2\nread 1\n").ok("insert 1 2: ok\nread 1: 2\n");
    s.quit_and_check_clean();
}

/// The client id may be `-` or left out; keys and values are byte strings, so words that
/// look like numbers (of any size, with signs or leading zeros) are just bytes.
#[test]
fn id_may_be_dash_or_omitted_and_numbers_are_just_bytes() {
    let s = ServerProc::start(&["--buckets", "10", "--clients", "2"]);
    s.client(&["-", "insert", "4294967295", "4294967295"])
        .ok("insert 4294967295 4294967295: ok\n");
    s.client(&["read", "4294967295"])
        .ok("read 4294967295: 4294967295\n");
    // Past u64: was "out of range", now a key like any other.
    s.client(&[
        "insert",
        "18446744073709551616",
        "1",
        "read",
        "18446744073709551616",
    ])
    .ok("insert 18446744073709551616 1: ok\nread 18446744073709551616: 1\n");
    // "7", "07" and "+7" are three keys; "-1" and "x" are keys too.
    s.client(&[
        "-", "insert", "7", "a", "insert", "07", "b", "insert", "+7", "c", "insert", "-1", "d",
        "insert", "x", "e", "read", "7", "read", "07", "read", "+7", "read", "-1", "read", "x",
    ])
    .ok(
        "insert 7 a: ok\ninsert 07 b: ok\ninsert +7 c: ok\ninsert -1 d: ok\ninsert x e: ok\n\
         read 7: a\nread 07: b\nread +7: c\nread -1: d\nread x: e\n",
    );
    s.quit_and_check_clean();
}

#[test]
fn print_threads_and_quit_output() {
    let s = ServerProc::start(&["1", "1", "1"]);
    s.client(&["0", "insert", "3", "30", "insert", "1", "10", "print", "0"])
        .ok("insert 3 30: ok\ninsert 1 10: ok\nprint 0: (1, 10) (3, 30)\n");
    // Sorted by bytes, keys and values quoted where they need it.
    s.client(&["0", "insert", "10", "a b", "insert", "a", "", "print", "0"])
        .ok("insert 10 \"a b\": ok\ninsert a \"\": ok\nprint 0: (1, 10) (10, \"a b\") (3, 30) (a, \"\")\n");
    s.client(&[
        "0", "threads", "start", "2", "threads", "stop", "threads", "stop",
    ])
    .ok(
        "threads start 2: ok, 3 threads\nthreads stop: ok, 2 threads\nthreads stop: ok, 1 thread\n",
    );
    let out = s.client(&["0", "threads", "stop"]);
    out.fails(1, "threads stop: error: cannot stop the last worker thread");
    let out = s.client(&["0", "print", "1"]);
    out.fails(1, "print 1: error: bucket 1 out of range");
    s.quit_and_check_clean();
}

/// The issue's example, many times, with 3 workers per client: a read issued after an insert
/// of the same key in one pipelined command line always sees it.
#[test]
fn same_key_order_with_three_workers_cli() {
    // (Backlog sharing on, so that workers hand the ring over on this 2-core machine too.)
    let s = ServerProc::start(&["100", "2", "3", "--share-backlog", "on"]);
    for i in 0..40 {
        let v = i.to_string();
        s.client(&[
            "0", "insert", "5", &v, "read", "5", "add", "5", "1", "read", "5", "delete", "5",
            "read", "5",
        ])
        .ok(&format!(
            "insert 5 {v}: ok\nread 5: {v}\nadd 5 1: {n}\nread 5: {n}\ndelete 5: ok\nread 5: not found\n",
            n = i + 1
        ));
    }
    s.quit_and_check_clean();
}

/// The model of [`same_key_order_pipelined_library`]: the answer `op` must get after the
/// operations before it.
fn model_answer(model: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Op) -> Outcome {
    match op {
        Op::Insert { key, value } => model
            .insert(key.clone(), value.clone())
            .map_or(Outcome::Created, Outcome::Replaced),
        Op::Read { key } => model
            .get(key)
            .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
        Op::Delete { key } => model
            .remove(key)
            .map_or(Outcome::NotFound, Outcome::Deleted),
        Op::InsertNew { key, value } => match model.get(key) {
            Some(v) => Outcome::Exists(v.clone()),
            None => {
                model.insert(key.clone(), value.clone());
                Outcome::Created
            }
        },
        Op::Cas { key, expected, new } => {
            if model.get(key) == expected.as_ref() {
                model.insert(key.clone(), new.clone());
                Outcome::Swapped
            } else {
                Outcome::Mismatch(model.get(key).cloned())
            }
        }
        Op::Add { key, delta } => {
            // The values here are canonical decimals or start with 'v'.
            let current = match model.get(key) {
                None => 0,
                Some(v) => match std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()) {
                    Some(n) => n,
                    None => return Outcome::Refused(ErrorCode::NotAnInteger),
                },
            };
            let Some(n) = i64::checked_add(current, *delta) else {
                return Outcome::Refused(ErrorCode::Overflow);
            };
            model.insert(key.clone(), n.to_string().into_bytes());
            Outcome::Number(n)
        }
        _ => unreachable!(),
    }
}

/// Long pipelined batches over few keys with 4 workers, every operation that changes or reads
/// a key: every reply equals a sequential model. Values up to ~600 bytes make a batch larger
/// than the request ring, so it fills and wraps.
#[test]
fn same_key_order_pipelined_library() {
    let s = ServerProc::start(&["64", "1", "4", "--max-value", "1K", "--share-backlog", "on"]);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rng = 0x1234_5678_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let value = |r: u64| -> Vec<u8> {
        match r % 4 {
            0 => b"1".to_vec(),
            1 => (r % 100).to_string().into_bytes(),
            // Long non-integers, few distinct ones (so that cas sometimes matches).
            _ => {
                let mut v = format!("v{}-", r % 3).into_bytes();
                v.resize(100 + (r % 3) as usize * 450, b'a' + (r % 3) as u8);
                v
            }
        }
    };
    let mut kinds = [0usize; 6];
    for _round in 0..20 {
        let mut ops = Vec::new();
        for _ in 0..500 {
            let r = next();
            let key = format!("k{}", r % 4).into_bytes();
            let kind = (r >> 8) % 6;
            kinds[kind as usize] += 1;
            ops.push(match kind {
                0 => Op::Insert {
                    key,
                    value: value(next()),
                },
                1 => Op::Read { key },
                2 => Op::Delete { key },
                3 => Op::InsertNew {
                    key,
                    value: value(next()),
                },
                4 => {
                    let r = next();
                    Op::Cas {
                        key,
                        expected: (r % 3 != 0).then(|| value(r >> 2)),
                        new: value(next()),
                    }
                }
                _ => Op::Add {
                    key,
                    delta: (next() % 7) as i64 - 3,
                },
            });
        }
        let tickets = c.submit_all(&ops).unwrap();
        for (op, t) in ops.iter().zip(tickets) {
            let got = c.wait(t).unwrap();
            let want = model_answer(&mut model, op);
            assert_eq!(got, want, "{op:?}");
        }
    }
    assert!(kinds.iter().all(|&n| n > 1000), "{kinds:?}");
    assert_eq!(c.stray_responses(), 0);
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn many_threads_share_one_connection() {
    let s = ServerProc::start(&["1000", "1", "2"]);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    let key = |t: u64, i: u64| format!("t{t}-{i}").into_bytes();
    let hs: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let k = key(t, i);
                    let v = i.to_string().into_bytes();
                    assert_eq!(c.insert(&k, &v).unwrap(), None);
                    assert_eq!(c.read(&k).unwrap(), Some(v.clone()));
                    if i % 3 == 0 {
                        assert_eq!(c.delete(&k).unwrap(), Some(v));
                        assert_eq!(c.read(&k).unwrap(), None);
                    }
                }
                // And some pipelined batches from every thread.
                let ops: Vec<_> = (0..200u64)
                    .map(|i| Op::Insert {
                        key: key(t, 500 + i),
                        value: i.to_string().into_bytes(),
                    })
                    .collect();
                let ts = c.submit_all(&ops).unwrap();
                for t in ts {
                    assert_eq!(c.wait(t).unwrap(), Outcome::Created);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    for t in 0..8u64 {
        for i in 0..300u64 {
            let want = (i % 3 != 0).then(|| i.to_string().into_bytes());
            assert_eq!(c.read(&key(t, i)).unwrap(), want);
        }
    }
    assert_eq!(c.len().unwrap(), 8 * (200 + 200));
    assert_eq!(c.stray_responses(), 0);
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn two_client_processes_at_once() {
    let s = ServerProc::start(&["100", "2", "2"]);
    let mut args0 = vec!["0".to_string()];
    let mut args1 = vec!["1".to_string()];
    let mut want0 = String::new();
    let mut want1 = String::new();
    for i in 0..300 {
        args0.extend([
            "insert".into(),
            i.to_string(),
            (i * 2).to_string(),
            "read".into(),
            i.to_string(),
        ]);
        want0 += &format!("insert {i} {}: ok\nread {i}: {}\n", i * 2, i * 2);
        let k = 10_000 + i;
        args1.extend([
            "insert".into(),
            k.to_string(),
            (i * 3).to_string(),
            "read".into(),
            k.to_string(),
        ]);
        want1 += &format!("insert {k} {}: ok\nread {k}: {}\n", i * 3, i * 3);
    }
    let a = s.spawn_client(&args0.iter().map(String::as_str).collect::<Vec<_>>());
    let b = s.spawn_client(&args1.iter().map(String::as_str).collect::<Vec<_>>());
    finish(a).ok(&want0);
    finish(b).ok(&want1);
    s.client(&["0", "len"]).ok("len: 600\n");
    s.quit_and_check_clean();
}

#[test]
fn threads_start_and_stop_while_traffic_flows() {
    let s = ServerProc::start(&["100", "1", "1"]);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    let c2 = c.clone();
    let traffic = std::thread::spawn(move || {
        for i in 0..3000u64 {
            let k = (i % 50).to_string().into_bytes();
            let v = i.to_string().into_bytes();
            c2.insert(&k, &v).unwrap();
            assert_eq!(c2.read(&k).unwrap(), Some(v));
        }
    });
    for round in 0..20 {
        assert_eq!(c.start_threads(2).unwrap(), 3, "round {round}");
        assert_eq!(c.stop_thread().unwrap(), 2);
        assert_eq!(c.stop_thread().unwrap(), 1);
    }
    assert!(matches!(
        c.stop_thread(),
        Err(ClientError::Refused(ErrorCode::LastWorker))
    ));
    assert!(matches!(
        c.start_threads(1000),
        Err(ClientError::Refused(ErrorCode::ThreadLimit { .. }))
    ));
    traffic.join().unwrap();
    drop(c);
    s.quit_and_check_clean();
}
