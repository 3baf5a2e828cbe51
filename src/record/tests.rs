//! Unit tests of `record`.

use super::*;
use crate::sync::{Arc, Ordering};
use crate::wait::SpinPolicy;

type Heap = Arc<HeapRecordMem>;

fn pair(cap: usize) -> (RecordProducer<Heap>, RecordConsumer<Heap>, Heap) {
    let mem = Arc::new(HeapRecordMem::new(cap));
    let (p, c) = record_channel(mem.clone()).unwrap();
    (p, c, mem)
}

/// `len` bytes that depend on `seed` and on their position.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn word(mem: &HeapRecordMem, index: usize) -> u64 {
    // SAFETY: in bounds (the caller's test knows the capacity) and no other thread runs.
    unsafe { mem.read_word(index) }
}

fn poke(mem: &HeapRecordMem, index: usize, value: u64) {
    // SAFETY: as for `word`: a single-threaded test playing a hostile peer.
    unsafe { mem.write_word(index, value) }
}

fn tail(mem: &HeapRecordMem) -> u64 {
    mem.ctrl().producer.0.tail.load(Ordering::SeqCst)
}

fn corrupt(r: Result<usize, RecordError>) -> &'static str {
    match r {
        Err(RecordError::Corrupt { what, .. }) => what,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn sizes_and_limits() {
    assert_eq!(max_payload(16), 0);
    assert_eq!(max_payload(64), 24);
    assert_eq!(max_payload(1 << 20), (1 << 19) - 8);
    assert_eq!(max_payload(0), 0);
    assert_eq!(record_size(0), 8);
    assert_eq!(record_size(1), 16);
    assert_eq!(record_size(8), 16);
    assert_eq!(record_size(9), 24);
    assert_eq!(record_size(usize::MAX), usize::MAX);
    for cap in [16, 32, 1024, MAX_CAPACITY] {
        assert!(valid_capacity(cap), "{cap}");
        // The largest record takes half the ring.
        assert_eq!(record_size(max_payload(cap)), cap / 2);
    }
    for cap in [0, 8, 24, 1000, MAX_CAPACITY * 2] {
        assert!(!valid_capacity(cap), "{cap}");
    }
    assert_eq!(header(5, KIND_DATA), (1 << 32) | 5);
}

#[test]
#[should_panic(expected = "power of two")]
fn heap_capacity_is_checked() {
    let _ = HeapRecordMem::new(8);
}

#[test]
#[should_panic(expected = "already has a producer")]
fn a_second_producer_panics() {
    let (_p, _c, mem) = pair(64);
    let _ = RecordProducer::new(mem);
}

#[test]
#[should_panic(expected = "already has a consumer")]
fn a_second_consumer_panics() {
    let (_p, _c, mem) = pair(64);
    let _ = RecordConsumer::new(mem);
}

#[test]
fn fifo_with_mixed_sizes_including_empty_payloads() {
    let (mut p, mut c, _mem) = pair(256);
    assert_eq!((p.capacity(), c.capacity()), (256, 256));
    assert_eq!((p.max_payload(), c.max_payload()), (120, 120));
    let sizes = [0, 1, 7, 8, 9, 0, 15, 16, 17, 100, 120, 0, 0, 3, 64, 33];
    let mut buf = vec![0xEE; 5];
    assert_eq!(c.read_into(&mut buf), Err(RecordError::WouldBlock));
    assert_eq!(buf, vec![0xEE; 5], "a failed read leaves the buffer alone");
    let mut seed = 0u64;
    for round in 0..40 {
        // Write what fits, unpublished.
        let mut written = Vec::new();
        for (i, &n) in sizes.iter().enumerate().skip(round % sizes.len()) {
            let data = payload(seed + i as u64, n);
            match p.write(&data) {
                Ok(()) => written.push(data),
                Err(RecordError::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!written.is_empty());
        seed += 100;
        assert!(p.unpublished() > 0);
        assert_eq!(c.read_into(&mut buf), Err(RecordError::WouldBlock));
        p.publish();
        assert_eq!(p.unpublished(), 0);
        for data in &written {
            assert_eq!(c.read_into(&mut buf), Ok(data.len()));
            assert_eq!(&buf, data);
        }
        assert_eq!(c.read_into(&mut buf), Err(RecordError::WouldBlock));
        assert!(c.unreleased() > 0);
        c.release();
        assert_eq!(c.unreleased(), 0);
    }
    // Many rounds of up to 256 bytes each: the counters went around the ring many times.
    assert!(tail(p.mem()) > 20 * 256);
}

#[test]
fn a_record_that_exactly_fills_the_end_needs_no_padding() {
    let (mut p, mut c, mem) = pair(64);
    let mut buf = Vec::new();
    // 24 + 8 = 32 bytes each: [0, 32) and [32, 64).
    p.try_push(&payload(1, 24)).unwrap();
    p.try_push(&payload(2, 20)).unwrap();
    assert_eq!(tail(&mem), 64, "no padding");
    assert_eq!(word(&mem, 4), header(20, KIND_DATA));
    // Full: not even an empty record fits.
    assert_eq!(p.write(&[]), Err(RecordError::WouldBlock));
    assert_eq!(c.read_into(&mut buf), Ok(24));
    assert_eq!(buf, payload(1, 24));
    assert_eq!(p.write(&[]), Err(RecordError::WouldBlock), "not released");
    c.release();
    // The next record starts at offset 0.
    p.try_push(&[]).unwrap();
    assert_eq!(tail(&mem), 72);
    assert_eq!(word(&mem, 0), header(0, KIND_DATA));
    assert_eq!(c.read_into(&mut buf), Ok(20));
    assert_eq!(buf, payload(2, 20));
    assert_eq!(c.read_into(&mut buf), Ok(0));
    assert!(buf.is_empty());
}

#[test]
fn a_record_that_does_not_fit_before_the_end_is_padded() {
    let (mut p, mut c, mem) = pair(64);
    let mut buf = Vec::new();
    p.try_push(&payload(1, 8)).unwrap(); // [0, 16)
    p.try_push(&payload(2, 16)).unwrap(); // [16, 40)
    // 24 bytes would need 32 at offset 40: padding [40, 64) and the record at [0, 32),
    // 56 bytes in all, with only 24 free.
    assert_eq!(p.write(&payload(3, 24)), Err(RecordError::WouldBlock));
    assert_eq!(p.unpublished(), 0, "nothing written, not even the padding");
    assert_eq!(c.read_into(&mut buf), Ok(8));
    c.release();
    // 40 free now, still not 56.
    assert_eq!(p.write(&payload(3, 24)), Err(RecordError::WouldBlock));
    assert_eq!(c.read_into(&mut buf), Ok(16));
    assert_eq!(buf, payload(2, 16));
    c.release();
    p.write(&payload(3, 24)).unwrap();
    assert_eq!(p.unpublished(), 24 + 32);
    assert_eq!(word(&mem, 5), header(16, KIND_PADDING));
    assert_eq!(word(&mem, 0), header(24, KIND_DATA));
    p.publish();
    assert_eq!(tail(&mem), 40 + 24 + 32);
    assert_eq!(c.read_into(&mut buf), Ok(24));
    assert_eq!(buf, payload(3, 24));
    assert_eq!(c.read_into(&mut buf), Err(RecordError::WouldBlock));
    c.release();
    // A record that fits exactly in the 8 bytes at the end: an empty one, no padding.
    p.try_push(&payload(4, 16)).unwrap(); // [32, 56)
    p.try_push(&[]).unwrap(); // [56, 64)
    assert_eq!(tail(&mem), 96 + 32);
    assert_eq!(word(&mem, 7), header(0, KIND_DATA));
    // And a one-word padding: a 0-length padding record.
    assert_eq!(c.try_pop_into(&mut buf), Ok(16));
    assert_eq!(c.try_pop_into(&mut buf), Ok(0));
    p.try_push(&payload(5, 1)).unwrap(); // [0, 16)
    p.try_push(&payload(6, 16)).unwrap(); // [16, 40)
    p.try_push(&payload(7, 8)).unwrap(); // [40, 56)
    assert_eq!(c.try_pop_into(&mut buf), Ok(1));
    p.try_push(&payload(8, 8)).unwrap(); // padding [56, 64), then [0, 16)
    assert_eq!(word(&mem, 7), header(0, KIND_PADDING));
    assert_eq!(c.try_pop_into(&mut buf), Ok(16));
    assert_eq!(c.try_pop_into(&mut buf), Ok(8));
    assert_eq!(buf, payload(7, 8));
    assert_eq!(c.try_pop_into(&mut buf), Ok(8));
    assert_eq!(buf, payload(8, 8));
}

#[test]
fn the_largest_record_fits_an_empty_ring_at_every_offset_and_one_more_byte_never() {
    for cap in [16, 32, 64, 256] {
        let max = max_payload(cap);
        for start in (0..cap as u64).step_by(8) {
            let mem = Arc::new(HeapRecordMem::new(cap));
            mem.ctrl().producer.0.tail.store(start, Ordering::SeqCst);
            mem.ctrl().consumer.0.head.store(start, Ordering::SeqCst);
            let (mut p, mut c) = record_channel(mem).unwrap();
            let mut buf = Vec::new();
            for round in 0..4 {
                let data = payload(round, max);
                p.try_push(&data)
                    .unwrap_or_else(|e| panic!("{cap} {start}: {e}"));
                assert_eq!(c.try_pop_into(&mut buf), Ok(max));
                assert_eq!(buf, data);
            }
            let too_large = Err(RecordError::TooLarge { len: max + 1, max });
            assert_eq!(p.write(&payload(0, max + 1)), too_large);
            assert_eq!(p.try_push(&payload(0, max + 1)), too_large);
            assert_eq!(p.push(&payload(0, max + 1), None), too_large);
            assert_eq!(p.wait_space(max + 1, None), too_large.map(|_| ()));
            assert_eq!(
                p.wait_space(usize::MAX, None),
                Err(RecordError::TooLarge {
                    len: usize::MAX,
                    max
                })
            );
            assert_eq!(p.unpublished(), 0);
        }
    }
}

#[test]
fn counters_starting_near_u64_max_wrap_cleanly() {
    let mem = Arc::new(HeapRecordMem::new(64));
    let start = u64::MAX - 39; // a multiple of 8, at offset 24
    mem.ctrl().producer.0.tail.store(start, Ordering::SeqCst);
    mem.ctrl().consumer.0.head.store(start, Ordering::SeqCst);
    let (mut p, mut c) = record_channel(mem.clone()).unwrap();
    let mut buf = Vec::new();
    let mut rng = Rng(7);
    for i in 0..200 {
        let data = payload(i, (rng.next() % 25) as usize);
        p.try_push(&data).unwrap();
        if i % 3 == 0 {
            p.try_push(&[]).unwrap_or(());
            assert!(c.read_into(&mut buf).is_ok());
        }
        // Drain.
        while let Ok(n) = c.try_pop_into(&mut buf) {
            assert_eq!(buf.len(), n);
        }
    }
    assert!(tail(&mem) < start, "the counter wrapped");
}

#[test]
fn misaligned_starting_counters_are_refused() {
    let mem = Arc::new(HeapRecordMem::new(64));
    mem.ctrl().producer.0.tail.store(12, Ordering::SeqCst);
    assert!(matches!(
        RecordProducer::new(mem.clone()),
        Err(RecordError::Corrupt { theirs: 12, .. })
    ));
    mem.ctrl().consumer.0.head.store(4, Ordering::SeqCst);
    assert!(matches!(
        RecordConsumer::new(mem.clone()),
        Err(RecordError::Corrupt { theirs: 4, .. })
    ));
    // A refusal does not claim the side.
    mem.ctrl().producer.0.tail.store(16, Ordering::SeqCst);
    mem.ctrl().consumer.0.head.store(16, Ordering::SeqCst);
    assert!(record_channel(mem).is_ok());
}

#[test]
fn lying_producer_counters_are_refused() {
    let mut buf = Vec::new();
    // More than the capacity ahead of what we released.
    let (mut p, mut c, mem) = pair(64);
    p.try_push(&payload(1, 8)).unwrap();
    assert_eq!(c.read_into(&mut buf), Ok(8));
    p.try_push(&payload(2, 8)).unwrap();
    mem.ctrl().producer.0.tail.store(72, Ordering::SeqCst);
    // The cached tail says nothing is left: the lie is seen, nothing is read.
    corrupt(c.read_into(&mut buf));
    assert_eq!(buf, payload(1, 8));
    // Waiting releases the 16 bytes read first: then 72 is possible, 88 is not.
    mem.ctrl().producer.0.tail.store(88, Ordering::SeqCst);
    assert!(matches!(
        c.wait_data(Some(Duration::ZERO)),
        Err(RecordError::Corrupt { theirs: 88, .. })
    ));
    // Not a multiple of 8.
    let (_p, mut c, mem) = pair(64);
    mem.ctrl().producer.0.tail.store(12, Ordering::SeqCst);
    corrupt(c.read_into(&mut buf));
    // Going back.
    let (mut p, mut c, mem) = pair(64);
    p.try_push(&[]).unwrap();
    p.try_push(&[]).unwrap();
    assert_eq!(c.read_into(&mut buf), Ok(0));
    assert_eq!(c.read_into(&mut buf), Ok(0));
    mem.ctrl().producer.0.tail.store(8, Ordering::SeqCst);
    corrupt(c.read_into(&mut buf));
    // Far behind (wrapping: looks like far ahead).
    mem.ctrl()
        .producer
        .0
        .tail
        .store(u64::MAX - 7, Ordering::SeqCst);
    corrupt(c.read_into(&mut buf));
}

#[test]
fn lying_consumer_counters_are_refused() {
    // Past our published tail (a full ring makes the producer look).
    let (mut p, _c, mem) = pair(64);
    p.try_push(&payload(1, 24)).unwrap();
    p.write(&payload(2, 24)).unwrap();
    mem.ctrl().consumer.0.head.store(40, Ordering::SeqCst);
    assert!(matches!(
        p.write(&[]),
        Err(RecordError::Corrupt {
            ours: 32,
            theirs: 40,
            ..
        })
    ));
    // Waiting publishes our 64 bytes first: then a head of 40 is possible, 72 is not.
    mem.ctrl().consumer.0.head.store(72, Ordering::SeqCst);
    assert!(matches!(
        p.wait_space(0, Some(Duration::ZERO)),
        Err(RecordError::Corrupt { theirs: 72, .. })
    ));
    mem.ctrl().consumer.0.head.store(40, Ordering::SeqCst);
    assert_eq!(p.wait_space(0, Some(Duration::ZERO)), Ok(()));
    // Misaligned.
    let (mut p, _c, mem) = pair(64);
    p.try_push(&payload(1, 24)).unwrap();
    p.try_push(&payload(1, 24)).unwrap();
    mem.ctrl().consumer.0.head.store(4, Ordering::SeqCst);
    assert!(matches!(p.write(&[]), Err(RecordError::Corrupt { .. })));
    // Going back.
    let (mut p, mut c, mem) = pair(64);
    let mut buf = Vec::new();
    p.try_push(&payload(1, 24)).unwrap();
    p.try_push(&payload(1, 24)).unwrap();
    c.try_pop_into(&mut buf).unwrap();
    p.try_push(&payload(1, 24)).unwrap(); // the producer now caches head 32
    mem.ctrl().consumer.0.head.store(16, Ordering::SeqCst);
    assert!(matches!(p.write(&[]), Err(RecordError::Corrupt { .. })));
}

/// Every lie a header can tell is refused, with nothing copied and nothing consumed: the
/// same read fails the same way again, and the buffer keeps its old contents.
#[test]
fn lying_headers_are_refused() {
    // (what the peer writes at word `index` after an honest setup, the case).
    struct Lie {
        index: usize,
        word: u64,
        case: &'static str,
    }
    let lies = [
        Lie {
            index: 0,
            word: header(25, KIND_DATA),
            case: "longer than the maximum (24)",
        },
        Lie {
            index: 0,
            word: header(u32::MAX, KIND_DATA),
            case: "u32::MAX",
        },
        Lie {
            index: 0,
            word: header(9, KIND_DATA),
            case: "past the published bytes (16 published, 24 claimed)",
        },
        Lie {
            index: 0,
            word: header(1, 0),
            case: "kind 0 (zeroed memory)",
        },
        Lie {
            index: 0,
            word: header(1, 3),
            case: "unknown kind",
        },
        Lie {
            index: 0,
            word: header(56, KIND_PADDING),
            case: "padding at offset 0",
        },
        Lie {
            index: 0,
            word: u64::MAX,
            case: "all ones",
        },
    ];
    for lie in lies {
        let (mut p, mut c, mem) = pair(64);
        p.try_push(&payload(1, 8)).unwrap();
        poke(&mem, lie.index, lie.word);
        let mut buf = vec![7u8; 3];
        let what = corrupt(c.read_into(&mut buf));
        assert!(!what.is_empty(), "{}", lie.case);
        assert_eq!(buf, vec![7u8; 3], "{}: buffer touched", lie.case);
        assert_eq!(corrupt(c.read_into(&mut buf)), what, "{}", lie.case);
        assert_eq!(c.unreleased(), 0, "{}", lie.case);
    }

    // Headers at offset 40 (three words before the end), with 24 bytes published there.
    let at_40 = |word: u64| {
        let (mut p, mut c, mem) = pair(64);
        let mut buf = Vec::new();
        p.try_push(&payload(1, 24)).unwrap(); // [0, 32)
        p.try_push(&[]).unwrap(); // [32, 40)
        c.try_pop_into(&mut buf).unwrap();
        c.try_pop_into(&mut buf).unwrap();
        p.try_push(&payload(2, 16)).unwrap(); // [40, 64): exactly to the end
        poke(&mem, 5, word);
        c.read_into(&mut buf)
    };
    corrupt(at_40(header(24, KIND_DATA))); // crossing the end
    corrupt(at_40(header(8, KIND_PADDING))); // a padding short of the end
    corrupt(at_40(header(24, KIND_PADDING))); // a padding past the end
    // A padding exactly to the end is skipped; nothing was published after it.
    assert_eq!(
        at_40(header(16, KIND_PADDING)),
        Err(RecordError::WouldBlock)
    );

    // A padding that reaches the end but was not all published.
    let (mut p, mut c, mem) = pair(64);
    let mut buf = Vec::new();
    p.try_push(&payload(1, 24)).unwrap(); // [0, 32)
    c.try_pop_into(&mut buf).unwrap();
    p.try_push(&[]).unwrap(); // [32, 40)
    poke(&mem, 4, header(24, KIND_PADDING));
    corrupt(c.read_into(&mut buf));

    // A padding followed by another padding at 0.
    let (mut p, mut c, mem) = pair(64);
    p.try_push(&payload(1, 24)).unwrap(); // [0, 32)
    p.try_push(&payload(1, 16)).unwrap(); // [32, 56)
    c.try_pop_into(&mut buf).unwrap();
    c.try_pop_into(&mut buf).unwrap();
    p.try_push(&payload(3, 8)).unwrap(); // padding [56, 64), record [0, 16)
    assert_eq!(word(&mem, 7), header(0, KIND_PADDING));
    poke(&mem, 0, header(56, KIND_PADDING));
    corrupt(c.read_into(&mut buf));
}

#[test]
fn two_threads_wrap_around_many_times_with_random_sizes() {
    use crate::wait::SpinPolicy;
    for policy in [SpinPolicy::DEFAULT, SpinPolicy::BLOCK] {
        let (mut p, mut c, _mem) = pair(128);
        p.set_policy(policy);
        c.set_policy(policy);
        // Miri interprets every step: a few hundred records still wrap the ring often.
        const N: u64 = if cfg!(miri) { 300 } else { 20_000 };
        let max = p.max_payload() as u64;
        let t = std::thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            for i in 0..N {
                let data = payload(i, (rng.next() % (max + 1)) as usize);
                loop {
                    match p.write(&data) {
                        Ok(()) => break,
                        // Publishes what was written, then waits.
                        Err(RecordError::WouldBlock) => match p.wait_space(data.len(), None) {
                            Ok(()) | Err(RecordError::WouldBlock) => {}
                            Err(e) => panic!("{e}"),
                        },
                        Err(e) => panic!("{e}"),
                    }
                }
                // Batches of random length.
                if rng.next() % 4 == 0 {
                    p.publish();
                }
            }
            p.publish();
        });
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut buf = Vec::new();
        let mut batch = 0;
        for i in 0..N {
            let want = payload(i, (rng.next() % (max + 1)) as usize);
            rng.next();
            loop {
                match c.read_into(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, want.len(), "record {i}");
                        assert_eq!(buf, want, "record {i}");
                        break;
                    }
                    // Releases what was read, then waits.
                    Err(RecordError::WouldBlock) => match c.wait_data(None) {
                        Ok(()) | Err(RecordError::WouldBlock) => {}
                        Err(e) => panic!("{e}"),
                    },
                    Err(e) => panic!("{e}"),
                }
            }
            batch += 1;
            if batch == 3 {
                c.release();
                batch = 0;
            }
        }
        t.join().unwrap();
        assert_eq!(c.read_into(&mut buf), Err(RecordError::WouldBlock));
    }
}

#[test]
fn push_and_pop_stream_in_order() {
    let (mut p, mut c, _mem) = pair(64);
    p.set_policy(SpinPolicy::BLOCK);
    c.set_policy(SpinPolicy::BLOCK);
    const N: u64 = if cfg!(miri) { 100 } else { 5_000 };
    let t = std::thread::spawn(move || {
        for i in 0..N {
            p.push(&payload(i, (i % 25) as usize), None).unwrap();
        }
    });
    let mut buf = Vec::new();
    for i in 0..N {
        assert_eq!(c.pop_into(&mut buf, None), Ok((i % 25) as usize));
        assert_eq!(buf, payload(i, (i % 25) as usize));
    }
    t.join().unwrap();
}

#[test]
fn timeouts_expire_and_zero_timeouts_return_at_once() {
    for policy in [SpinPolicy::BLOCK, SpinPolicy::DEFAULT] {
        let (mut p, mut c, _mem) = pair(32);
        p.set_policy(policy);
        c.set_policy(policy);
        let mut buf = Vec::new();
        let t = Some(Duration::from_millis(5));
        assert_eq!(c.wait_data(t), Err(RecordError::TimedOut), "{policy:?}");
        assert_eq!(c.pop_into(&mut buf, t), Err(RecordError::TimedOut));
        assert_eq!(
            c.wait_data(Some(Duration::ZERO)),
            Err(RecordError::TimedOut)
        );
        assert_eq!(p.wait_space(8, Some(Duration::ZERO)), Ok(()));
        p.try_push(&payload(1, 8)).unwrap();
        p.try_push(&payload(2, 8)).unwrap();
        assert_eq!(p.wait_space(0, t), Err(RecordError::TimedOut));
        assert_eq!(p.push(&[], t), Err(RecordError::TimedOut));
        assert_eq!(
            p.wait_space(0, Some(Duration::ZERO)),
            Err(RecordError::TimedOut)
        );
        assert_eq!(c.wait_data(Some(Duration::ZERO)), Ok(()));
        assert_eq!(c.read_into(&mut buf), Ok(8));
        // Waiting for space does not release what the consumer read; waiting for data does.
        assert_eq!(
            p.wait_space(0, Some(Duration::ZERO)),
            Err(RecordError::TimedOut)
        );
        assert_eq!(c.wait_data(Some(Duration::ZERO)), Ok(()));
        assert_eq!(p.wait_space(8, Some(Duration::ZERO)), Ok(()));
    }
}

#[test]
fn waiting_for_space_publishes_first() {
    let (mut p, mut c, _mem) = pair(32);
    p.set_policy(SpinPolicy::BLOCK);
    p.write(&payload(1, 8)).unwrap();
    p.write(&payload(2, 8)).unwrap();
    let mut buf = Vec::new();
    assert_eq!(c.read_into(&mut buf), Err(RecordError::WouldBlock));
    assert_eq!(
        p.wait_space(0, Some(Duration::ZERO)),
        Err(RecordError::TimedOut)
    );
    assert_eq!(p.unpublished(), 0);
    assert_eq!(c.read_into(&mut buf), Ok(8));
}

#[test]
fn cancel_and_nudge_end_a_wait() {
    let (mut p, mut c, mem) = pair(32);
    assert_eq!(
        c.wait_data_or(None, SpinPolicy::BLOCK, &|| true),
        Err(RecordError::WouldBlock)
    );
    assert_eq!(
        c.wait_data_or(None, SpinPolicy::DEFAULT, &|| true),
        Err(RecordError::WouldBlock)
    );
    p.try_push(&payload(1, 8)).unwrap();
    p.try_push(&payload(1, 8)).unwrap();
    p.set_policy(SpinPolicy::BLOCK);
    assert_eq!(
        p.wait_space_or(0, None, &|| true),
        Err(RecordError::WouldBlock)
    );
    let mut buf = Vec::new();
    c.try_pop_into(&mut buf).unwrap();
    c.try_pop_into(&mut buf).unwrap();
    // A nudge wakes a consumer asleep on an empty ring: WouldBlock well before its deadline.
    let stop = Arc::new(crate::sync::AtomicBool::new(false));
    let stop2 = stop.clone();
    let waiter = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = c.wait_data_or(Some(Duration::from_secs(30)), SpinPolicy::BLOCK, &|| {
            stop2.load(Ordering::SeqCst)
        });
        (r, t0.elapsed())
    });
    while mem.ctrl().wake.0.data_waiting.load(Ordering::SeqCst) == 0 && !waiter.is_finished() {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    RecordConsumer::nudge(&mem);
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r, Err(RecordError::WouldBlock));
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn errors_say_what_happened() {
    assert_eq!(
        RecordError::WouldBlock.to_string(),
        "record ring would block"
    );
    assert_eq!(
        RecordError::TimedOut.to_string(),
        "timed out waiting on the record ring"
    );
    assert_eq!(
        RecordError::TooLarge { len: 9, max: 8 }.to_string(),
        "a record of 9 bytes is larger than the ring's maximum of 8"
    );
    assert_eq!(
        RecordError::Corrupt {
            what: "a lie",
            ours: 16,
            theirs: 255
        }
        .to_string(),
        "record ring corrupt: a lie (our counter 16, read 0xff; peer broken or hostile)"
    );
    let remaining_now = remaining(Some(Instant::now()));
    assert_eq!(remaining_now, Err(RecordError::TimedOut));
    assert_eq!(remaining(None), Ok(None));
    assert!(deadline_of(None).is_none());
}

#[cfg(not(miri))] // memfd_create, mmap, futex(2)
mod shm {
    use super::*;
    use crate::shm::Mapping;

    #[test]
    fn offsets_and_capacities_are_checked() {
        let (_fd, m) = Mapping::create_sealed(4096).unwrap();
        let m = Arc::new(m);
        assert!(ShmRecordMem::new(m.clone(), 0, 256, 1024).is_some());
        assert!(ShmRecordMem::new(m.clone(), 0, 192, 2048).is_some());
        assert!(ShmRecordMem::new(m.clone(), 3072, 0, 2048).is_some());
        assert!(
            ShmRecordMem::new(m.clone(), 0, 256, 1000).is_none(),
            "not 2^k"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 0, 256, 8).is_none(),
            "too small"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 0, 256, 4096).is_none(),
            "past the end"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 0, 260, 1024).is_none(),
            "misaligned"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 32, 256, 1024).is_none(),
            "ctrl misaligned"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 0, 128, 1024).is_none(),
            "overlap"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 1024, 0, 2048).is_none(),
            "overlap"
        );
        assert!(
            ShmRecordMem::new(m.clone(), 4032, 0, 1024).is_none(),
            "ctrl out"
        );
        assert!(
            ShmRecordMem::new(m, 0, usize::MAX - 7, 1024).is_none(),
            "overflow"
        );
    }

    #[test]
    fn record_ring_over_two_mappings_of_one_object() {
        let (fd, a) = Mapping::create_sealed(4096).unwrap();
        let a = Arc::new(a);
        let b = Arc::new(Mapping::open_sealed(&fd).unwrap());
        let mut p = RecordProducer::new(ShmRecordMem::new(a, 0, 256, 512).unwrap()).unwrap();
        let mut c = RecordConsumer::new(ShmRecordMem::new(b, 0, 256, 512).unwrap()).unwrap();
        let max = p.max_payload() as u64;
        const N: u64 = 20_000;
        let t = std::thread::spawn(move || {
            let mut rng = Rng(12345);
            for i in 0..N {
                let data = payload(i, (rng.next() % (max + 1)) as usize);
                p.push(&data, None).unwrap();
            }
        });
        let mut rng = Rng(12345);
        let mut buf = Vec::new();
        for i in 0..N {
            let want = payload(i, (rng.next() % (max + 1)) as usize);
            assert_eq!(c.pop_into(&mut buf, None), Ok(want.len()), "record {i}");
            assert_eq!(buf, want, "record {i}");
        }
        t.join().unwrap();
    }

    #[test]
    fn a_hostile_peer_in_the_mapping_is_refused() {
        let (fd, a) = Mapping::create_sealed(4096).unwrap();
        let a = Arc::new(a);
        let b = Arc::new(Mapping::open_sealed(&fd).unwrap());
        let mut p = RecordProducer::new(ShmRecordMem::new(a, 0, 256, 64).unwrap()).unwrap();
        let mut c = RecordConsumer::new(ShmRecordMem::new(b.clone(), 0, 256, 64).unwrap()).unwrap();
        p.try_push(&payload(1, 8)).unwrap();
        // The peer rewrites the header in the object: a record far too long.
        b.atomic_u64(256)
            .unwrap()
            .store(header(1 << 20, KIND_DATA), Ordering::SeqCst);
        let mut buf = Vec::new();
        corrupt(c.read_into(&mut buf));
        // And, in a second ring of the object, a tail far ahead.
        let mut c =
            RecordConsumer::new(ShmRecordMem::new(b.clone(), 512, 1024, 64).unwrap()).unwrap();
        b.atomic_u64(512).unwrap().store(1 << 40, Ordering::SeqCst);
        assert!(matches!(
            c.wait_data(Some(Duration::ZERO)),
            Err(RecordError::Corrupt {
                theirs: 0x100_0000_0000,
                ..
            })
        ));
    }
}
