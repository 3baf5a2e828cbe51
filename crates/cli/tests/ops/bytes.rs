//! Byte strings end to end through a real server: insert-new, cas, add and len, a full scan,
//! the largest values beside a client that keeps working, empty values, binary keys.

use super::{refused, serve, too_large};
use crate::common::*;
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::wire::{ErrorCode, Field, Limits, Op, Verb};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Byte strings, end to end through a real server.

#[test]
fn insert_new_cas_add_and_len_through_a_server() {
    let (server, name) = serve(64, 1, 2, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.len().unwrap(), 0);

    // insert-new creates once; then it reports the value there and changes nothing.
    assert_eq!(c.insert_new(b"a", b"1").unwrap(), None);
    assert_eq!(c.insert_new(b"a", b"2").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.read(b"a").unwrap(), Some(b"1".to_vec()));

    // cas swaps when the value is the expected one; otherwise it reports the value there and
    // changes nothing.
    assert_eq!(c.cas(b"a", Some(b"1"), b"3").unwrap(), Ok(()));
    assert_eq!(
        c.cas(b"a", Some(b"1"), b"4").unwrap(),
        Err(Some(b"3".to_vec()))
    );
    assert_eq!(c.read(b"a").unwrap(), Some(b"3".to_vec()));
    // Expecting the key absent: creates it when absent, not when present.
    assert_eq!(c.cas(b"b", None, b"x").unwrap(), Ok(()));
    assert_eq!(c.read(b"b").unwrap(), Some(b"x".to_vec()));
    assert_eq!(c.cas(b"b", None, b"y").unwrap(), Err(Some(b"x".to_vec())));
    assert_eq!(c.read(b"b").unwrap(), Some(b"x".to_vec()));
    // Expecting a value of an absent key: a mismatch saying "absent"; the key stays absent.
    assert_eq!(c.cas(b"c", Some(b"x"), b"y").unwrap(), Err(None));
    // The empty value is a value, not absence.
    assert_eq!(c.cas(b"c", Some(b""), b"y").unwrap(), Err(None));
    assert_eq!(c.read(b"c").unwrap(), None);
    assert_eq!(c.insert(b"c", b"").unwrap(), None);
    assert_eq!(c.cas(b"c", None, b"y").unwrap(), Err(Some(Vec::new())));
    assert_eq!(c.cas(b"c", Some(b""), b"y").unwrap(), Ok(()));
    assert_eq!(c.read(b"c").unwrap(), Some(b"y".to_vec()));

    // add: a missing key counts as 0; the result is stored as decimal text.
    assert_eq!(c.add(b"n", 5).unwrap(), 5);
    assert_eq!(c.read(b"n").unwrap(), Some(b"5".to_vec()));
    assert_eq!(c.add(b"n", -12).unwrap(), -7);
    assert_eq!(c.add(b"n", 0).unwrap(), -7);
    assert_eq!(c.read(b"n").unwrap(), Some(b"-7".to_vec()));
    assert_eq!(c.insert(b"n", b"40").unwrap(), Some(b"-7".to_vec()));
    assert_eq!(c.add(b"n", 2).unwrap(), 42);
    // A value that is not a canonical decimal i64 is refused, and stays as it was.
    for v in [
        &b"x"[..],
        b"",
        b"007",
        b"+5",
        b"-0",
        b" 5",
        b"5 ",
        b"1.0",
        b"5\0",
        b"9223372036854775808",
        b"99999999999999999999",
    ] {
        c.insert(b"s", v).unwrap();
        assert_eq!(c.add(b"s", 1), refused(ErrorCode::NotAnInteger), "{v:?}");
        assert_eq!(c.read(b"s").unwrap(), Some(v.to_vec()), "{v:?}");
    }
    // A result out of range is refused, and the value stays as it was.
    c.insert(b"max", i64::MAX.to_string().as_bytes()).unwrap();
    assert_eq!(c.add(b"max", 1), refused(ErrorCode::Overflow));
    assert_eq!(
        c.read(b"max").unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );
    assert_eq!(c.add(b"max", -1).unwrap(), i64::MAX - 1);
    c.insert(b"min", i64::MIN.to_string().as_bytes()).unwrap();
    assert_eq!(c.add(b"min", -1), refused(ErrorCode::Overflow));
    assert_eq!(
        c.read(b"min").unwrap(),
        Some(i64::MIN.to_string().into_bytes())
    );
    assert_eq!(c.add(b"min", i64::MAX).unwrap(), -1);
    assert_eq!(c.add(b"fresh", i64::MIN).unwrap(), i64::MIN);
    assert_eq!(c.add(b"fresh", -1), refused(ErrorCode::Overflow));
    assert_eq!(
        c.read(b"fresh").unwrap(),
        Some(i64::MIN.to_string().into_bytes())
    );

    // len counts the keys: a b c n s max min fresh.
    assert_eq!(c.len().unwrap(), 8);
    assert_eq!(
        c.delete(b"s").unwrap(),
        Some(b"99999999999999999999".to_vec())
    );
    assert_eq!(c.len().unwrap(), 7);
    // Refused and mismatched operations created nothing.
    assert_eq!(c.read(b"s").unwrap(), None);

    let st = c.stats().unwrap();
    assert_eq!(st.ops.get(Verb::InsertNew), 2);
    assert_eq!(st.ops.get(Verb::Cas), 8);
    assert_eq!(st.ops.get(Verb::Add), 21);
    assert_eq!(st.ops.get(Verb::Len), 3);
    assert_eq!(st.errors.get(ErrorCode::NotAnInteger.code()), 11);
    assert_eq!(st.errors.get(ErrorCode::Overflow.code()), 3);
    assert_eq!(st.errors.total(), 14);
    assert_eq!(st.entries, 7);
    drop(c);
    server.shutdown();
}

/// Collect a full scan with `count`: every key it returned and how often, and the calls.
fn full_scan(c: &Client, count: u32, buckets: u64) -> (HashMap<Vec<u8>, u32>, u64) {
    let (mut cursor, mut calls) = (0, 0u64);
    let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
    loop {
        let (next, keys) = c.scan(cursor, count).unwrap();
        calls += 1;
        assert!(calls <= buckets, "a scan of {buckets} buckets is not over");
        let last = next == 0;
        assert!(
            last || !keys.is_empty(),
            "count {count}: an empty step that is not the last"
        );
        for k in keys {
            *seen.entry(k).or_default() += 1;
        }
        if last {
            return (seen, calls);
        }
        assert!(next > cursor, "the cursor went from {cursor} to {next}");
        cursor = next;
    }
}

#[test]
fn a_full_scan_returns_every_key_exactly_once() {
    let buckets = 64;
    let (server, name) = serve(buckets, 1, 1, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    // An empty table: done at once; a cursor past the buckets too.
    assert_eq!(c.scan(0, 10).unwrap(), (0, Vec::new()));
    assert_eq!(c.scan(1_000_000, 10).unwrap(), (0, Vec::new()));
    assert_eq!(c.keys().unwrap(), Vec::<Vec<u8>>::new());
    // 1000 keys, about 16 a bucket: binary ones and text ones.
    let keys: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            if i % 2 == 0 {
                i.to_le_bytes().to_vec()
            } else {
                format!("key {i}").into_bytes()
            }
        })
        .collect();
    let ops: Vec<Op> = keys
        .iter()
        .map(|k| Op::Insert {
            key: k.clone(),
            value: k.clone(),
        })
        .collect();
    for t in c.submit_all(&ops).unwrap() {
        assert_eq!(c.wait(t).unwrap(), Outcome::Created);
    }
    assert_eq!(c.len().unwrap(), 1000);
    let want: HashSet<Vec<u8>> = keys.iter().cloned().collect();
    for count in [1, 7, 1000, u32::MAX] {
        let (seen, calls) = full_scan(&c, count, buckets as u64);
        assert_eq!(seen.len(), 1000, "count {count}");
        assert!(seen.values().all(|&n| n == 1), "count {count}: a key twice");
        assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), want);
        match count {
            // One bucket (with a key) a step.
            1 => assert!(calls > 32, "{calls} steps"),
            7 => assert!(calls > 1, "{calls} steps"),
            _ => assert_eq!(calls, 1),
        }
    }
    let all = c.keys().unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), want);
    drop(c);
    server.shutdown();

    // Answers longer than one record come in parts: 1000 keys of 200 bytes (200 KB) through
    // a response ring of 64 KiB (records of at most 32 KiB), and a bucket of large pairs.
    let (server, name) = serve(4, 1, 1, |config| {
        config.limits = Limits {
            max_key: 256,
            max_value: 1024,
        }
    });
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.info().resp_capacity, 1 << 16);
    let long_key = |i: u32| {
        let mut k = format!("{i:06}").into_bytes();
        k.resize(200, b'.');
        k
    };
    let ops: Vec<Op> = (0..1000)
        .map(|i| Op::Insert {
            key: long_key(i),
            value: vec![i as u8; 1000],
        })
        .collect();
    for t in c.submit_all(&ops).unwrap() {
        assert_eq!(c.wait(t).unwrap(), Outcome::Created);
    }
    let (seen, calls) = full_scan(&c, 1000, 4);
    assert!(calls <= 4);
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 1));
    assert!((0..1000).all(|i| seen.contains_key(&long_key(i))));
    let (_, keys) = c.scan(0, u32::MAX).unwrap();
    assert_eq!(keys.len(), 1000, "one step takes every bucket");
    let mut pairs = 0;
    for b in 0..4 {
        for (k, v) in c.print(b).unwrap() {
            let i: u32 = std::str::from_utf8(&k[..6]).unwrap().parse().unwrap();
            assert_eq!((k, v), (long_key(i), vec![i as u8; 1000]));
            pairs += 1;
        }
    }
    assert_eq!(pairs, 1000, "every pair in some bucket, once");
    drop(c);
    server.shutdown();
}

/// A client that keeps working on keys of its own in a thread (insert, read back, checked)
/// until stopped; counts its operations.
struct Busy {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ops: Arc<std::sync::atomic::AtomicU64>,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Busy {
    fn start(name: &str, slot: u32) -> Busy {
        use std::sync::atomic::Ordering::SeqCst;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ops = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = Client::connect(&ClientConfig::new(name).slot(slot)).unwrap();
        let (s, n) = (stop.clone(), ops.clone());
        let handle = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(SeqCst) {
                let key = format!("busy {}", i % 100).into_bytes();
                let value = i.to_le_bytes();
                c.insert(&key, &value).map_err(|e| format!("insert: {e}"))?;
                match c.read(&key) {
                    Ok(Some(v)) if v == value => {}
                    other => return Err(format!("read {i}: {other:?}")),
                }
                i += 1;
                n.fetch_add(2, SeqCst);
            }
            Ok(i)
        });
        Busy {
            stop,
            ops,
            handle: Some(handle),
        }
    }

    fn ops(&self) -> u64 {
        self.ops.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let r = self.handle.take().unwrap().join().unwrap();
        r.expect("the busy client saw an error or a wrong answer")
    }
}

/// Values of exactly `max` bytes (the server's limit) through every operation that carries
/// one, on slot 0, while a client on slot 1 keeps working; one byte more is refused by the
/// client.
fn largest_values(name: &str, max: usize) {
    let busy = Busy::start(name, 1);
    let c = Client::connect(
        &ClientConfig::new(name)
            .slot(0)
            .timeout(Duration::from_secs(30)),
    )
    .unwrap();
    assert_eq!(c.limits().max_value as usize, max);
    let a: Vec<u8> = (0..max).map(|i| (i * 7 % 251) as u8).collect();
    let mut b = a.clone();
    b[0] ^= 1;
    b[max - 1] ^= 0xff;
    let before = busy.ops();
    let mut buf = Vec::new();
    for round in 0..3 {
        let k = format!("large {round}").into_bytes();
        assert_eq!(c.insert(&k, &a).unwrap(), None);
        assert!(c.read(&k).unwrap() == Some(a.clone()));
        assert!(c.read_into(&k, &mut buf).unwrap());
        assert!(buf == a);
        // The largest request: cas with two values of the limit.
        assert_eq!(c.cas(&k, Some(&a), &b).unwrap(), Ok(()));
        assert!(c.cas(&k, Some(&a), &a).unwrap() == Err(Some(b.clone())));
        assert!(c.insert_new(&k, &a).unwrap() == Some(b.clone()));
        assert!(c.insert(&k, &a).unwrap() == Some(b.clone()));
        assert!(c.delete(&k).unwrap() == Some(a.clone()));
        assert_eq!(c.read(&k).unwrap(), None);
    }
    let during = busy.ops() - before;
    let over = vec![7u8; max + 1];
    assert_eq!(
        c.insert(b"over", &over),
        too_large(Field::Value, max as u64 + 1, max as u32)
    );
    assert_eq!(
        c.cas(b"over", Some(&over), b""),
        too_large(Field::Value, max as u64 + 1, max as u32)
    );
    assert_eq!(c.read(b"over").unwrap(), None);
    let st = c.stats().unwrap();
    assert_eq!(st.max_value, max as u64);
    assert_eq!(st.errors.total(), 0, "the client refused them unsent");
    drop(c);
    let total = busy.finish();
    assert!(
        during >= 10,
        "the other client did {during} operations meanwhile ({total} rounds in all)"
    );
    eprintln!("values of {max} bytes: the other client did {during} operations meanwhile");
}

/// The largest values round-trip while another client keeps working: 1 MiB (the default
/// limit) on a server in this process, 8 MiB on `shmkv-server --max-value 8M`.
#[test]
fn the_largest_values_round_trip_while_another_client_works() {
    let (server, name) = serve(64, 2, 1, |_| {});
    largest_values(&name, 1 << 20);
    server.shutdown();
    let s = ServerProc::start(&["--clients", "2", "--max-value", "8M"]);
    largest_values(&s.name, 8 << 20);
    s.quit_and_check_clean();
}

#[test]
fn empty_values_are_values() {
    let buckets = 16;
    let (server, name) = serve(buckets, 2, 1, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    assert_eq!(c.insert(b"e", b"").unwrap(), None);
    assert_eq!(c.read(b"e").unwrap(), Some(Vec::new()));
    let mut buf = b"stale".to_vec();
    assert!(c.read_into(b"e", &mut buf).unwrap());
    assert!(buf.is_empty());
    assert!(!c.read_into(b"nothing", &mut buf).unwrap());
    assert_eq!(c.insert(b"e", b"x").unwrap(), Some(Vec::new()));
    assert_eq!(c.insert(b"e", b"").unwrap(), Some(b"x".to_vec()));
    assert_eq!(c.insert_new(b"e", b"y").unwrap(), Some(Vec::new()));
    assert_eq!(c.cas(b"e", Some(b""), b"").unwrap(), Ok(()));
    assert_eq!(c.cas(b"e", None, b"z").unwrap(), Err(Some(Vec::new())));
    assert_eq!(c.add(b"e", 1), refused(ErrorCode::NotAnInteger));
    assert_eq!(c.read(b"e").unwrap(), Some(Vec::new()));
    let printed: Vec<(Vec<u8>, Vec<u8>)> = (0..buckets as u64)
        .flat_map(|b| c.print(b).unwrap())
        .collect();
    assert_eq!(printed, [(b"e".to_vec(), Vec::new())]);
    assert_eq!(c.keys().unwrap(), [b"e".to_vec()]);
    assert_eq!(c.len().unwrap(), 1);
    // The command line shows and takes the empty value as "".
    run_client_named(&name, &["-", "read", "e", "insert", "f", "\"\""])
        .ok("read e: \"\"\ninsert f \"\": ok\n");
    assert_eq!(c.delete(b"f").unwrap(), Some(Vec::new()));
    assert_eq!(c.delete(b"e").unwrap(), Some(Vec::new()));
    assert_eq!(c.read(b"e").unwrap(), None);
    assert_eq!(c.delete(b"e").unwrap(), None);
    assert_eq!(c.len().unwrap(), 0);
    drop(c);
    server.shutdown();
}

#[test]
fn binary_keys_of_every_byte_value() {
    let (server, name) = serve(64, 2, 1, |_| {});
    let c = Client::connect(&ClientConfig::new(&name)).unwrap();
    // Every one-byte key, keys holding all 256 byte values (both ways round), runs of NUL and
    // of 0xff, and the longest key.
    let mut keys: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    keys.push((0..=255u8).collect());
    keys.push((0..=255u8).rev().collect());
    keys.push(vec![0; 2]);
    keys.push(vec![0; 100]);
    keys.push(vec![0xff; 2]);
    keys.push(vec![0xff; 4096]);
    let value = |k: &[u8]| {
        let mut v: Vec<u8> = k.iter().rev().map(|b| b ^ 0x55).collect();
        v.extend_from_slice(&[0, 0xff, b'\n']);
        v
    };
    let ops: Vec<Op> = keys
        .iter()
        .map(|k| Op::Insert {
            key: k.clone(),
            value: value(k),
        })
        .collect();
    for (k, t) in keys.iter().zip(c.submit_all(&ops).unwrap()) {
        assert_eq!(c.wait(t).unwrap(), Outcome::Created, "{k:?}");
    }
    let reads: Vec<Op> = keys.iter().map(|k| Op::Read { key: k.clone() }).collect();
    for (k, t) in keys.iter().zip(c.submit_all(&reads).unwrap()) {
        assert_eq!(c.wait(t).unwrap(), Outcome::Value(value(k)), "{k:?}");
    }
    assert_eq!(c.len().unwrap(), keys.len() as u64);
    let (seen, _) = full_scan(&c, 10, 64);
    assert_eq!(seen.len(), keys.len());
    assert!(seen.values().all(|&n| n == 1));
    assert!(keys.iter().all(|k| seen.contains_key(k)));
    // The command line reads and writes them quoted.
    run_client_named(
        &name,
        &[
            "-",
            "read",
            "\"\\x00\"",
            "insert",
            "\"\\x00\\xff\"",
            "\"\\x01\"",
        ],
    )
    .ok("read \"\\x00\": \"U\\x00\\xff\\n\"\ninsert \"\\x00\\xff\" \"\\x01\": ok\n");
    assert_eq!(c.read(&[0, 0xff]).unwrap(), Some(vec![1]));
    for k in keys.iter().chain([&vec![0, 0xff]]) {
        assert!(c.delete(k).unwrap().is_some(), "{k:?}");
    }
    assert_eq!(c.len().unwrap(), 0);
    drop(c);
    server.shutdown();
}
