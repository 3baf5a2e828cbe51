//! Loom models of the variable-length record ring ([`shmkv::record`]): records that exactly
//! fill the end of the data area, padding at the wrap, a producer asleep on a full ring,
//! batched publication, batched release, and a nudge that ends a consumer's wait. Each runs the shipped code over [`HeapRecordMem`], whose data words are
//! loom cells (a publication flaw is a data race report) and whose futex is loom's mutex and
//! condition variable (a lost wake-up is a deadlock report).

use super::{MODEL_SPIN, model};
use shmkv::record::{HeapRecordMem, RecordConsumer, RecordMem, RecordProducer, record_channel};
use shmkv::sync::{Arc, AtomicBool, Ordering, thread};
use shmkv::wait::SpinPolicy;

/// A record ring of `cap` bytes, with both halves set to `policy`.
fn pair(
    cap: usize,
    policy: SpinPolicy,
) -> (
    RecordProducer<Arc<HeapRecordMem>>,
    RecordConsumer<Arc<HeapRecordMem>>,
    Arc<HeapRecordMem>,
) {
    let mem = Arc::new(HeapRecordMem::new(cap));
    let (mut p, mut c) = record_channel(mem.clone()).unwrap();
    p.set_policy(policy);
    c.set_policy(policy);
    (p, c, mem)
}

/// `len` bytes, all `tag` but the last, which is `!tag` (a torn or stale record shows).
fn rec(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag; len];
    if let Some(last) = v.last_mut() {
        *last = !tag;
    }
    v
}

fn pop(c: &mut RecordConsumer<Arc<HeapRecordMem>>) -> Vec<u8> {
    let mut buf = Vec::new();
    c.pop_into(&mut buf, None).unwrap();
    buf
}

/// A 32-byte ring (largest payload 8): two 8-byte records fill it, the second one ending
/// exactly at the end of the data area, and a third goes to offset 0 once the first is
/// released, without any padding (the tail ends at 48).
///
/// Catches (each planted and seen to fail): a `tail` stored `Relaxed` instead of `Release` in
/// `publish` (the consumer copies words whose writes do not happen-before its read: loom
/// reports the race on the word cell); a producer that pads a record ending exactly at the end
/// (`rec < to_end`: the tail ends at 80, not 48); a consumer that refuses such a record as
/// crossing the end (`rec >= to_end`: `Corrupt`).
#[test]
fn record_exactly_fills_the_end() {
    model(|| {
        let (mut p, mut c, mem) = pair(32, MODEL_SPIN);
        let t = thread::spawn(move || {
            p.push(&rec(1, 8), None).unwrap(); // [0, 16)
            p.push(&rec(2, 7), None).unwrap(); // [16, 32): exactly to the end
            p.push(&rec(3, 5), None).unwrap(); // [0, 16) again, after a wait for room
        });
        assert_eq!(pop(&mut c), rec(1, 8));
        assert_eq!(pop(&mut c), rec(2, 7));
        assert_eq!(pop(&mut c), rec(3, 5));
        t.join().unwrap();
        assert_eq!(mem.ctrl().producer.0.tail.load(Ordering::SeqCst), 48);
    });
}

/// A 32-byte ring: an 8-byte record at [0, 16) and an empty one at [16, 24) leave 8 bytes
/// before the end, too few for the third (16 bytes): the producer writes a padding record at
/// [24, 32) and the record at [0, 16), once the consumer has released the first.
///
/// Catches: a padding header that is not written (the consumer reads the never-written word
/// at offset 24 and refuses it as a record of unknown kind).
#[test]
fn record_padding_at_the_wrap() {
    model(|| {
        let (mut p, mut c, mem) = pair(32, MODEL_SPIN);
        let t = thread::spawn(move || {
            p.push(&rec(1, 8), None).unwrap();
            p.push(&[], None).unwrap();
            p.push(&rec(3, 6), None).unwrap();
        });
        assert_eq!(pop(&mut c), rec(1, 8));
        assert_eq!(pop(&mut c), Vec::<u8>::new());
        assert_eq!(pop(&mut c), rec(3, 6));
        t.join().unwrap();
        assert_eq!(mem.ctrl().producer.0.tail.load(Ordering::SeqCst), 48);
    });
}

/// Both sides sleep at once (no spinning): the producer fills a 32-byte ring with two records
/// and goes to sleep for room for a third, while the consumer takes them one at a time (each
/// `pop_into` releases at once, so each release must wake the producer).
///
/// Catches: a release without the `SeqCst` fence between its `head` store and its look at the
/// producer's waiter flag (store-buffering: the producer misses the new `head`, the consumer
/// misses the flag, and the producer sleeps forever: a deadlock); the same fence missing on
/// the sleeping producer's side (between raising its flag and looking at `head`), or in
/// `publish` (the consumer, asleep on the empty ring, is never woken).
#[test]
fn record_full_ring_wakes_the_sleeping_producer() {
    model(|| {
        let (mut p, mut c, _mem) = pair(32, SpinPolicy::BLOCK);
        let t = thread::spawn(move || {
            for i in 1..=3 {
                p.push(&rec(i, 8), None).unwrap();
            }
        });
        for i in 1..=3 {
            assert_eq!(pop(&mut c), rec(i, 8));
        }
        t.join().unwrap();
    });
}

/// Batched release: the producer pushes four records through a ring that holds two and sleeps
/// for room; the consumer reads whatever is there with `read_into` and gives it all back with
/// one `release` per batch (and waits, releasing first, when it runs dry).
///
/// Catches: a `release` that forgets to wake a producer sleeping for room (it sleeps forever:
/// a deadlock); a record given back (its `head` stored) before it was copied out, and a
/// `head` stored `Relaxed` instead of `Release` (the producer overwrites words the consumer is
/// still reading: a race on the word cells).
#[test]
fn record_batched_release() {
    model(|| {
        let (mut p, mut c, _mem) = pair(32, SpinPolicy::BLOCK);
        let t = thread::spawn(move || {
            for i in 0..4 {
                p.push(&rec(i, 1 + i as usize), None).unwrap();
            }
        });
        let mut next = 0u8;
        let mut buf = Vec::new();
        while next < 4 {
            c.wait_data(None).ok();
            while let Ok(n) = c.read_into(&mut buf) {
                assert_eq!(n, 1 + next as usize);
                assert_eq!(buf, rec(next, n));
                next += 1;
            }
            c.release();
        }
        t.join().unwrap();
    });
}

/// Batched publication: two records written unpublished (`write` ×2) and published with one
/// `publish`, through a ring that holds exactly those two.
///
/// Catches: a `publish` that moves `tail` by less than every byte written since the last one
/// (only the last record's, say: the consumer takes the first record and waits forever for the
/// second, a deadlock), and a `write` that stores `tail` before the record's words are written
/// (the consumer copies words being written: a race on the word cells).
#[test]
fn record_batched_publish() {
    model(|| {
        let (mut p, mut c, mem) = pair(32, MODEL_SPIN);
        let t = thread::spawn(move || {
            p.write(&rec(1, 8)).unwrap();
            p.write(&rec(2, 3)).unwrap();
            assert_eq!(p.unpublished(), 32);
            p.publish();
        });
        assert_eq!(pop(&mut c), rec(1, 8));
        assert_eq!(pop(&mut c), rec(2, 3));
        t.join().unwrap();
        assert_eq!(mem.ctrl().producer.0.tail.load(Ordering::SeqCst), 32);
    });
}

/// A consumer asleep on an empty ring is nudged ([`RecordConsumer::nudge`]) after its cancel
/// condition was set: its wait must return, with nothing published.
///
/// Catches: a nudge that a sleeping consumer misses: the cancel condition looked at before the
/// waiter flag is raised (or not at all), or a nudge that wakes without changing the futex word
/// (the consumer checks, finds nothing, and sleeps forever: a deadlock).
#[test]
fn record_nudge_cancels_a_wait() {
    model(|| {
        let (_p, mut c, mem) = pair(32, SpinPolicy::BLOCK);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = thread::spawn(move || {
            stop2.store(true, Ordering::SeqCst);
            RecordConsumer::nudge(&mem);
        });
        loop {
            let r = c.wait_data_or(None, SpinPolicy::BLOCK, &|| stop.load(Ordering::SeqCst));
            if r.is_err() && stop.load(Ordering::SeqCst) {
                break;
            }
        }
        t.join().unwrap();
    });
}
