//! Unit tests of `store`.

use super::*;
use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The sum of the entries' costs, recomputed from the buckets.
fn recount(s: &Store) -> u64 {
    (0..s.bucket_count() as u64)
        .flat_map(|b| s.print(b).unwrap())
        .map(|(k, v)| entry_cost(k.len(), v.len()))
        .sum()
}

#[test]
fn entry_cost_formula() {
    // 8 + 16 + 16 + 8 = 48; a 40-byte malloc is a 48-byte glibc chunk.
    assert_eq!(entry_cost(16, 16), 48 + ENTRY_OVERHEAD);
    assert_eq!(entry_cost(1, 0), 32 + ENTRY_OVERHEAD);
    assert_eq!(entry_cost(8, 8), 32 + ENTRY_OVERHEAD); // 8 + 16 + 8 = 32
    assert_eq!(entry_cost(8, 9), 48 + ENTRY_OVERHEAD); // 33 -> 48
    assert_eq!(entry_cost(100, 1000), 1120 + ENTRY_OVERHEAD); // 1116 -> 1120
    assert_eq!(entry_cost(usize::MAX, usize::MAX), u64::MAX);
}

#[test]
fn entry_layout() {
    let e = Entry::new(b"key", b"value", 0x7abc).unwrap();
    // A 64-bit Linux address leaves the top bits free: the pointer carries the tag (15 bits).
    assert_eq!(e.tag(), Some(0x7abc));
    let mut header = 3u32.to_ne_bytes().to_vec();
    header.extend_from_slice(&5u32.to_ne_bytes());
    assert_eq!(e.allocation_len(), 16);
    assert_eq!(e.allocation(), [&header[..], b"keyvalue"].concat());
    assert_eq!(e.key(), b"key");
    assert_eq!(e.value(), b"value");
    assert_eq!(e.cost(), entry_cost(3, 5));
    assert_eq!(e.into_value(), b"value");
    // An empty value.
    let e = Entry::new(b"k", b"", 0).unwrap();
    assert_eq!(e.allocation_len(), 9);
    assert_eq!(e.value(), b"");
    assert_eq!(e.into_value(), b"");
    // A long key.
    let key = vec![7u8; 70_000];
    let e = Entry::new(&key, b"v", 0xffff).unwrap();
    assert_eq!(e.tag(), Some(0x7fff), "15 bits of the tag are kept");
    assert_eq!(e.allocation()[..4], 70_000u32.to_ne_bytes());
    assert_eq!(e.key(), &key[..]);
    assert_eq!(e.value(), b"v");
    // Hash, equality and borrowing are by key only.
    let a = Entry::new(b"same", b"1", 1).unwrap();
    let b = Entry::new(b"same", b"2", 2).unwrap();
    assert!(a == b);
    let h = DefaultHashBuilder::default();
    assert_eq!(h.hash_one(&a), h.hash_one(&b));
    assert_eq!(h.hash_one(&a), h.hash_one(&b"same"[..]));
    assert_eq!(<Entry as Borrow<[u8]>>::borrow(&a), b"same");
    assert!(a != Entry::new(b"other", b"1", 1).unwrap());
}

/// Entries keep their key's tag, and a bucket's table that grows many times re-hashes them
/// from it: every key is still found, replaced and deleted afterwards. (A wrong stored tag
/// would leave entries where lookups do not look.)
#[test]
fn growth_rehashes_from_the_stored_tags() {
    const N: u32 = if cfg!(miri) { 300 } else { 20_000 };
    let s = Store::new(3, u64::MAX).unwrap();
    for i in 0..N {
        s.write(&i.to_le_bytes()).insert(&i.to_be_bytes()).unwrap();
    }
    for b in 0..3 {
        let guard = s.table.read_bucket(b).unwrap();
        for e in guard.keys() {
            assert!(e.tag().is_some(), "every entry is tagged on this machine");
        }
    }
    for i in 0..N {
        assert_eq!(
            s.read(&i.to_le_bytes()).get(),
            Some(&i.to_be_bytes()[..]),
            "key {i}"
        );
    }
    for i in (0..N).step_by(2) {
        assert_eq!(
            s.write(&i.to_le_bytes()).delete(),
            Some(i.to_be_bytes().to_vec())
        );
    }
    for i in 0..N {
        let want = (i % 2 == 1).then(|| i.to_be_bytes().to_vec());
        assert_eq!(
            s.read(&i.to_le_bytes()).get().map(<[u8]>::to_vec),
            want,
            "key {i}"
        );
    }
    assert_eq!(s.len(), u64::from(N / 2));
}

#[test]
fn insert_read_delete() {
    let s = Store::new(8, u64::MAX).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.budget(), u64::MAX);
    assert_eq!(s.bucket_count(), 8);
    assert_eq!(s.read(b"a").get(), None);
    assert_eq!(s.write(b"a").insert(b"1").unwrap(), None);
    assert_eq!(s.read(b"a").get(), Some(&b"1"[..]));
    assert_eq!(s.write(b"a").get(), Some(&b"1"[..]));
    assert_eq!(s.write(b"a").insert(b"22").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.write(b"b").insert(b"").unwrap(), None);
    assert_eq!(s.read(b"b").get(), Some(&b""[..]));
    assert_eq!(s.len(), 2);
    assert_eq!(s.memory_used(), entry_cost(1, 2) + entry_cost(1, 0));
    assert_eq!(s.write(b"a").delete(), Some(b"22".to_vec()));
    assert_eq!(s.write(b"a").delete(), None);
    assert_eq!(s.write(b"b").delete(), Some(Vec::new()));
    assert!(s.is_empty());
    assert_eq!(s.memory_used(), 0);
    assert_eq!(
        format!("{s:?}"),
        format!(
            "Store {{ buckets: 8, len: 0, memory_used: 0, budget: {} }}",
            u64::MAX
        )
    );
}

/// A replace takes the new key allocation too: the stored entry is the new one, whole.
#[test]
fn replace_changes_size_both_ways() {
    let s = Store::new(1, u64::MAX).unwrap();
    s.write(b"k").insert(&[1; 100]).unwrap();
    assert_eq!(s.memory_used(), entry_cost(1, 100));
    assert_eq!(s.write(b"k").insert(b"x").unwrap(), Some(vec![1; 100]));
    assert_eq!(s.memory_used(), entry_cost(1, 1));
    assert_eq!(s.write(b"k").insert(&[2; 50]).unwrap(), Some(b"x".to_vec()));
    assert_eq!(s.read(b"k").get(), Some(&[2; 50][..]));
    assert_eq!(s.memory_used(), entry_cost(1, 50));
    assert_eq!(s.memory_used(), recount(&s));
    assert_eq!(s.len(), 1);
}

/// A value as long as the one it replaces is written over it in place: `seen` gets the old
/// value before it goes, the budget does not move, a full budget does not refuse it, and the
/// key's neighbours in the bucket keep theirs.
#[test]
fn a_replace_of_the_same_length_is_written_in_place() {
    let s = Store::new(1, entry_cost(1, 3) * 2).unwrap();
    s.write(b"a").insert(b"old").unwrap();
    s.write(b"b").insert(b"bbb").unwrap();
    assert_eq!(s.write(b"c").insert(b"x"), Err(StoreError::OutOfMemory));
    let seen = s.write(b"a").insert_with(b"new", |p| p.map(<[u8]>::to_vec));
    assert_eq!(seen, Ok(Some(b"old".to_vec())));
    assert_eq!(s.read(b"a").get(), Some(&b"new"[..]));
    assert_eq!(s.read(b"b").get(), Some(&b"bbb"[..]));
    assert_eq!(s.memory_used(), recount(&s));
    assert_eq!(s.write(b"a").insert(b"NEW"), Ok(Some(b"new".to_vec())));
    assert_eq!(
        s.write(b"c").insert_with(b"", |p| p.is_none()),
        Err(StoreError::OutOfMemory)
    );
    assert_eq!(
        s.write(b"a").insert_with(b"", |p| p.map(<[u8]>::len)),
        Ok(Some(3))
    );
    assert_eq!(s.read(b"a").get(), Some(&b""[..]));
    assert_eq!(s.memory_used(), recount(&s));
    assert_eq!(s.len(), 2);
}

#[test]
fn insert_new_only_when_absent() {
    let s = Store::new(4, u64::MAX).unwrap();
    assert_eq!(s.write(b"k").insert_new(b"first").unwrap(), None);
    assert_eq!(
        s.write(b"k").insert_new(b"second").unwrap(),
        Some(b"first".to_vec())
    );
    assert_eq!(s.read(b"k").get(), Some(&b"first"[..]));
    assert_eq!(s.len(), 1);
    assert_eq!(s.memory_used(), entry_cost(1, 5));
}

#[test]
fn cas_compares_then_sets() {
    let s = Store::new(4, u64::MAX).unwrap();
    // Absent expected absent: set.
    assert_eq!(s.write(b"k").cas(None, b"1").unwrap(), Ok(()));
    // Present, expected absent: the current value.
    assert_eq!(
        s.write(b"k").cas(None, b"2").unwrap(),
        Err(Some(b"1".to_vec()))
    );
    // Wrong value.
    assert_eq!(
        s.write(b"k").cas(Some(b"9"), b"2").unwrap(),
        Err(Some(b"1".to_vec()))
    );
    // Right value.
    assert_eq!(s.write(b"k").cas(Some(b"1"), b"22").unwrap(), Ok(()));
    assert_eq!(s.read(b"k").get(), Some(&b"22"[..]));
    // Absent, expected a value: None.
    assert_eq!(s.write(b"x").cas(Some(b""), b"2").unwrap(), Err(None));
    // An empty value is not absence.
    s.write(b"e").insert(b"").unwrap();
    assert_eq!(s.write(b"e").cas(None, b"2").unwrap(), Err(Some(vec![])));
    assert_eq!(s.write(b"e").cas(Some(b""), b"3").unwrap(), Ok(()));
    assert_eq!(s.len(), 2);
    assert_eq!(s.memory_used(), recount(&s));
}

#[test]
fn parse_is_canonical() {
    for (text, want) in [
        (&b"0"[..], Some(0)),
        (b"1", Some(1)),
        (b"-1", Some(-1)),
        (b"10", Some(10)),
        (b"9223372036854775807", Some(i64::MAX)),
        (b"-9223372036854775808", Some(i64::MIN)),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"99999999999999999999", None),
        (b"-99999999999999999999", None),
        (b"000000000000000000001", None),
        (b"007", None),
        (b"00", None),
        (b"-01", None),
        (b"-0", None),
        (b"-", None),
        (b"", None),
        (b" 1", None),
        (b"1 ", None),
        (b"+1", None),
        (b"1a", None),
        (b"1.0", None),
        (b"--1", None),
        (b"\x001", None),
    ] {
        assert_eq!(parse_i64(text), want, "{:?}", String::from_utf8_lossy(text));
    }
    let mut buf = [0u8; 20];
    for n in [0, 1, -1, 10, -10, 12345, i64::MAX, i64::MIN, i64::MIN + 1] {
        let text = format_i64(n, &mut buf).to_vec();
        assert_eq!(text, n.to_string().as_bytes());
        assert_eq!(parse_i64(&text), Some(n));
    }
}

#[test]
fn add_follows_incrby() {
    let s = Store::new(4, u64::MAX).unwrap();
    // Missing counts as 0.
    assert_eq!(s.write(b"n").add(5), Ok(5));
    assert_eq!(s.read(b"n").get(), Some(&b"5"[..]));
    assert_eq!(s.write(b"n").add(-7), Ok(-2));
    assert_eq!(s.read(b"n").get(), Some(&b"-2"[..]));
    assert_eq!(s.write(b"n").add(2), Ok(0));
    assert_eq!(s.read(b"n").get(), Some(&b"0"[..]));
    assert_eq!(s.write(b"z").add(0), Ok(0));
    assert_eq!(s.read(b"z").get(), Some(&b"0"[..]));
    // The limits.
    s.write(b"m").insert(b"9223372036854775806").unwrap();
    assert_eq!(s.write(b"m").add(1), Ok(i64::MAX));
    assert_eq!(s.write(b"m").add(1), Err(StoreError::Overflow));
    assert_eq!(s.read(b"m").get(), Some(&b"9223372036854775807"[..]));
    assert_eq!(s.write(b"lo").add(i64::MIN), Ok(i64::MIN));
    assert_eq!(s.read(b"lo").get(), Some(&b"-9223372036854775808"[..]));
    assert_eq!(s.write(b"lo").add(-1), Err(StoreError::Overflow));

    assert_eq!(s.write(b"lo").add(i64::MAX), Ok(-1));
    assert_eq!(s.write(b"absent").add(i64::MAX), Ok(i64::MAX));
    // Not integers: nothing changes.
    for bad in [
        &b"007"[..],
        b"",
        b" 1",
        b"+1",
        b"-0",
        b"9223372036854775808",
        b"abc",
    ] {
        s.write(b"bad").insert(bad).unwrap();
        let used = s.memory_used();
        assert_eq!(s.write(b"bad").add(1), Err(StoreError::NotAnInteger));
        assert_eq!(s.read(b"bad").get(), Some(bad));
        assert_eq!(s.memory_used(), used);
    }
    assert_eq!(s.len(), 6);
    assert_eq!(s.memory_used(), recount(&s));
}

/// A result too long for the value limit is refused and changes nothing.
#[test]
fn add_within_refuses_results_over_the_value_limit() {
    let s = Store::new(2, u64::MAX).unwrap();
    assert_eq!(s.write(b"t").add_within(99, 2), Ok(99));
    assert_eq!(
        s.write(b"t").add_within(1, 2),
        Err(StoreError::TooLong { len: 3 })
    );
    assert_eq!(s.read(b"t").get(), Some(&b"99"[..]));
    assert_eq!(s.write(b"t").add_within(-9, 2), Ok(90));
}

#[test]
fn error_messages() {
    assert_eq!(StoreError::OutOfMemory.to_string(), "out of memory");
    assert_eq!(
        StoreError::NotAnInteger.to_string(),
        "the value is not a decimal 64-bit integer"
    );
    assert_eq!(
        StoreError::Overflow.to_string(),
        "the result would overflow a 64-bit integer"
    );
    assert!(Store::new(0, 1).is_err());
}

#[test]
fn budget_refuses_growth_and_allows_the_rest() {
    let cost = entry_cost(8, 8);
    let s = Store::new(4, 10 * cost).unwrap();
    let key = |i: u32| format!("key{i:05}").into_bytes();
    let mut n = 0;
    loop {
        match s.write(&key(n)).insert(b"valueval") {
            Ok(None) => n += 1,
            Err(e) => {
                assert_eq!(e, StoreError::OutOfMemory);
                break;
            }
            Ok(Some(_)) => unreachable!(),
        }
    }
    assert_eq!(n, 10);
    assert_eq!(s.len(), 10);
    assert_eq!(s.memory_used(), 10 * cost);
    // Nothing changed by the refusal; every growing write is refused.
    assert_eq!(s.read(&key(10)).get(), None);
    assert_eq!(
        s.write(&key(11)).insert_new(b"v"),
        Err(StoreError::OutOfMemory)
    );
    assert_eq!(
        s.write(&key(11)).cas(None, b"v"),
        Err(StoreError::OutOfMemory)
    );
    assert_eq!(s.write(&key(11)).add(1), Err(StoreError::OutOfMemory));
    assert_eq!(
        s.write(&key(0)).insert(&[0; 13]), // 4 + 8 + 13 + 8 = 33: a 48-byte chunk
        Err(StoreError::OutOfMemory)
    );
    assert_eq!(s.read(&key(0)).get(), Some(&b"valueval"[..]));
    assert_eq!(s.len(), 10);
    assert_eq!(s.memory_used(), 10 * cost);
    // Reads still work; a same-size replace and a shrinking one are allowed at the limit.
    assert_eq!(s.read(&key(3)).get(), Some(&b"valueval"[..]));
    assert_eq!(
        s.write(&key(3)).insert(b"VALUEVAL"),
        Ok(Some(b"valueval".to_vec()))
    );
    assert_eq!(s.write(&key(3)).cas(Some(b"VALUEVAL"), b"v"), Ok(Ok(())));
    assert_eq!(s.memory_used(), 10 * cost); // 8 + 1 bytes: the same 32-byte chunk
    assert_eq!(s.write(&key(4)).insert(b""), Ok(Some(b"valueval".to_vec())));
    assert_eq!(s.memory_used(), recount(&s));
    // A delete frees room for a new key.
    assert_eq!(s.write(&key(5)).delete(), Some(b"valueval".to_vec()));
    assert_eq!(s.memory_used(), recount(&s));
    assert_eq!(s.write(&key(20)).insert(b"valueval"), Ok(None));
    assert_eq!(
        s.write(&key(21)).insert(b"valueval"),
        Err(StoreError::OutOfMemory)
    );
    // Deleting everything gives back every byte.
    for i in 0..=21 {
        s.write(&key(i)).delete();
    }
    assert!(s.is_empty());
    assert_eq!(s.memory_used(), 0);
    // A zero budget refuses every entry.
    let z = Store::new(1, 0).unwrap();
    assert_eq!(z.write(b"k").insert(b""), Err(StoreError::OutOfMemory));
    assert!(z.is_empty());
    assert_eq!(z.memory_used(), 0);
}

/// A key that does not fit the length prefix is refused and its reservation given back.
/// (Only the accounting is exercised: no 4 GiB key is built.)
#[test]
fn charge_and_credit() {
    let s = Store::new(1, 100).unwrap();
    assert_eq!(s.charge(0), Ok(()));
    assert_eq!(s.charge(60), Ok(()));
    assert_eq!(s.charge(41), Err(StoreError::OutOfMemory));
    assert_eq!(s.charge(40), Ok(()));
    assert_eq!(s.charge(1), Err(StoreError::OutOfMemory));
    s.credit(100);
    assert_eq!(s.memory_used(), 0);
    let unlimited = Store::new(1, u64::MAX).unwrap();
    assert_eq!(unlimited.charge(u64::MAX), Ok(()));
    assert_eq!(unlimited.charge(1), Err(StoreError::OutOfMemory));
}

#[test]
fn large_keys_and_values() {
    let s = Store::new(2, u64::MAX).unwrap();
    let key = vec![b'k'; 1 << 16];
    let value = vec![b'v'; 1 << 20];
    s.write(&key).insert(&value).unwrap();
    let other = vec![b'k'; (1 << 16) - 1];
    s.write(&other).insert(b"").unwrap();
    assert_eq!(s.read(&key).get(), Some(&value[..]));
    assert_eq!(s.read(&other).get(), Some(&b""[..]));
    assert_eq!(
        s.memory_used(),
        entry_cost(1 << 16, 1 << 20) + entry_cost((1 << 16) - 1, 0)
    );
    assert_eq!(s.write(&key).delete(), Some(value));
    assert_eq!(s.write(&other).delete(), Some(Vec::new()));
    assert_eq!(s.memory_used(), 0);
}

#[test]
fn print_and_longest_bucket() {
    let s = Store::new(3, u64::MAX).unwrap();
    assert_eq!(s.longest_bucket(), 0);
    for i in 0..30u32 {
        s.write(&i.to_le_bytes()).insert(&[i as u8; 3]).unwrap();
    }
    let mut seen = HashSet::new();
    let mut longest = 0;
    for b in 0..3 {
        let pairs = s.print(b).unwrap();
        longest = longest.max(pairs.len() as u64);
        for (k, v) in pairs {
            assert_eq!(s.bucket_of(&k) as u64, b);
            assert_eq!(v, vec![k[0]; 3]);
            assert!(seen.insert(k));
        }
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(s.longest_bucket(), longest);
    assert!(s.print(3).is_none());
    assert!(s.print(u64::MAX).is_none());
}

/// Every key returned exactly once by a full scan, whatever the count.
#[test]
fn scan_visits_every_bucket_once() {
    let s = Store::new(16, u64::MAX).unwrap();
    assert_eq!(s.scan(0, 10), (0, vec![]));
    for i in 0..200u32 {
        s.write(format!("k{i}").as_bytes()).insert(b"").unwrap();
    }
    for count in [0, 1, 7, 50, 1000] {
        let mut keys = Vec::new();
        let (mut cursor, mut calls) = (0, 0);
        loop {
            let (next, got) = s.scan(cursor, count);
            calls += 1;
            assert!(got.len() >= count as usize || next == 0, "{count}");
            assert!(next == 0 || next > cursor);
            keys.extend(got);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert!(calls <= s.bucket_count());
        let unique: HashSet<_> = keys.iter().cloned().collect();
        assert_eq!(keys.len(), 200, "{count}");
        assert_eq!(unique.len(), 200);
    }
    // One bucket per call with count 0 or 1 when every bucket holds a key.
    assert_eq!(s.scan(0, 0).0, 1);
    assert_eq!(s.scan(15, 0).0, 0);
    assert_eq!(s.scan(16, 5), (0, vec![]));
    assert_eq!(s.scan(u64::MAX, 5), (0, vec![]));
}

/// A scan beside a writer that inserts and deletes other keys returns every key present
/// throughout, exactly once.
#[test]
fn scan_during_writes_returns_the_stable_keys() {
    let rounds = if cfg!(miri) { 3 } else { 50 };
    let s = Arc::new(Store::new(32, u64::MAX).unwrap());
    let stable: HashSet<Vec<u8>> = (0..300u32)
        .map(|i| format!("stable{i}").into_bytes())
        .collect();
    for k in &stable {
        s.write(k).insert(b"s").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = format!("churn{}", i % 500).into_bytes();
                if i % 1000 < 500 {
                    s.write(&k).insert(&i.to_le_bytes()).unwrap();
                } else {
                    s.write(&k).delete();
                }
                i = i.wrapping_add(1);
            }
        })
    };
    for _ in 0..rounds {
        let mut cursor = 0;
        let mut found = Vec::new();
        loop {
            let (next, keys) = s.scan(cursor, 10);
            found.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let stable_found: Vec<_> = found.iter().filter(|k| stable.contains(*k)).collect();
        assert_eq!(stable_found.len(), stable.len());
        let unique: HashSet<_> = found.iter().collect();
        assert_eq!(unique.len(), found.len(), "a key returned twice");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(s.memory_used(), recount(&s));
}

#[test]
fn concurrent_inserts_from_threads() {
    let per: u32 = if cfg!(miri) { 50 } else { 2000 };
    let s = Arc::new(Store::new(64, u64::MAX).unwrap());
    let hs: Vec<_> = (0..4u32)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    let k = format!("t{t}-{i}").into_bytes();
                    assert_eq!(
                        s.write(&k).insert(&vec![t as u8; i as usize % 40]),
                        Ok(None)
                    );
                    // A shared counter too.
                    s.write(b"counter").add(1).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(s.len(), 4 * u64::from(per) + 1);
    assert_eq!(
        s.read(b"counter").get(),
        Some((4 * per).to_string().as_bytes())
    );
    for t in 0..4u32 {
        for i in 0..per {
            let k = format!("t{t}-{i}").into_bytes();
            assert_eq!(s.read(&k).get(), Some(&vec![t as u8; i as usize % 40][..]));
        }
    }
    assert_eq!(s.memory_used(), recount(&s));
}

/// Concurrent writers against a budget never take the total past it, and the count stays
/// exact.
#[test]
fn concurrent_writers_respect_the_budget() {
    let per: u32 = if cfg!(miri) { 30 } else { 1000 };
    let cost = entry_cost(8, 8);
    let s = Arc::new(Store::new(16, 500 * cost).unwrap());
    let hs: Vec<_> = (0..4u32)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut stored = 0u64;
                for i in 0..per {
                    let k = (u64::from(t) << 32 | u64::from(i)).to_le_bytes();
                    match s.write(&k).insert(b"12345678") {
                        Ok(_) => stored += 1,
                        Err(e) => assert_eq!(e, StoreError::OutOfMemory),
                    }
                    assert!(s.memory_used() <= s.budget());
                }
                stored
            })
        })
        .collect();
    let stored: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(stored, s.len());
    assert_eq!(stored, (4 * u64::from(per)).min(500));
    assert_eq!(s.memory_used(), stored * cost);
}

/// Accounted bytes per entry at the size the memory target names (16-byte keys and
/// values), and an estimate of the real heap bytes from the maps' capacities. The server's
/// real resident memory per entry is measured by `shmkv-bench`'s memory report.
#[test]
fn bytes_per_entry() {
    let n: u32 = if cfg!(miri) { 2_000 } else { 200_000 };
    // As the bench sizes the table: 16 entries a bucket.
    let s = Store::new(n as usize / 16, u64::MAX).unwrap();
    for i in 0..n {
        let key = format!("key-{i:012}").into_bytes();
        let value = format!("val-{i:012}").into_bytes();
        assert_eq!((key.len(), value.len()), (16, 16));
        s.write(&key).insert(&value).unwrap();
    }
    // One 40-byte allocation per entry.
    for b in 0..s.bucket_count() {
        assert!(
            s.table
                .read_bucket(b)
                .unwrap()
                .keys()
                .all(|e| e.allocation_len() == 40)
        );
    }
    let per_entry = s.memory_used() as f64 / f64::from(n);
    assert_eq!(s.memory_used(), u64::from(n) * entry_cost(16, 16));
    assert!(per_entry <= 80.0, "{per_entry} accounted bytes per entry");
    // The estimate: each entry's 48-byte chunk, each map's allocation (8-byte slots, a
    // control byte each and 16 more, in a malloc chunk) and the 64-byte bucket headers.
    let chunk = |bytes: u64| (bytes + 8).div_ceil(16).max(2) * 16;
    let mut maps = 0;
    for b in 0..s.bucket_count() {
        let cap = s.table.read_bucket(b).unwrap().capacity() as u64;
        let slots = match cap {
            0 => 0,
            1..8 => cap + 1,
            _ => (cap * 8 / 7).next_power_of_two(),
        };
        if slots > 0 {
            maps += chunk(slots * 9 + 16);
        }
    }
    let estimate =
        (u64::from(n) * chunk(40) + maps + 64 * s.bucket_count() as u64) as f64 / f64::from(n);
    println!(
        "{n} entries of 16-byte keys and values: {per_entry} accounted bytes per entry, \
             about {estimate:.1} heap bytes per entry"
    );
}
