//! An honest `RecordProducer` and an honest `RecordConsumer` of one record ring
//! (`shmkv::record`, over heap memory, both in this thread), driven by the input as a sequence
//! of actions: write a payload (its length and contents from the input), publish, read one
//! record (`read_into`, or `try_pop_into`), release, `available`, zero-timeout waits
//! (`wait_data`, `wait_space`), and hostile actions that store arbitrary values into the words
//! a peer process could write: the producer's `tail` (seen by the consumer), the consumer's
//! `head` (seen by the producer), or a word of the data area. A last action starts over on a
//! fresh ring (fresh memory: each half claims heap memory once), with counters starting at 0,
//! near `u64::MAX` or anywhere.
//!
//! Until a hostile action touches the current ring, everything is checked against a model (a
//! `VecDeque<Vec<u8>>` of the payloads published and not yet read, and the byte counters the
//! record format implies): every read returns exactly the next payload of the model, in
//! order, or `WouldBlock` when the model has none; a write succeeds exactly when the model
//! finds room for the record and the padding the wrap needs (`TooLarge` beyond
//! `max_payload`); the counters in the control block and each half's `unpublished` /
//! `unreleased` match the model; and at the end everything published is read back, nothing
//! lost, after which the empty ring takes the largest payload.
//!
//! After a hostile action only safety is checked: no panic, no hang, no out-of-bounds access
//! (the heap memory's word accessors index checked slices), a payload read is at most
//! `max_payload` bytes, a failed read leaves the buffer alone, errors are `Corrupt` or the
//! ones the call documents (`WouldBlock`, `TimedOut`, and `TooLarge` exactly for payloads over
//! the maximum), and neither half ever holds more than the capacity unpublished or unreleased.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::record::{
    HeapRecordMem, RecordConsumer, RecordError, RecordMem, RecordProducer, record_channel,
};
use shmkv::wait::SpinPolicy;
use shmkv_fuzz::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type Mem = Arc<HeapRecordMem>;

/// Header kinds, spelled out here independently of the crate.
const DATA: u64 = 1;
const PADDING: u64 = 2;

/// Bytes a record with a `len`-byte payload takes: a header word and the payload rounded up to
/// whole words.
fn record_bytes(len: usize) -> u64 {
    8 + (len as u64).div_ceil(8) * 8
}

/// One ring: its memory, its two halves, and the model of what they must do.
struct Ring {
    mem: Mem,
    p: RecordProducer<Mem>,
    c: RecordConsumer<Mem>,
    cap: u64,
    max: usize,
    /// Whether a hostile action touched this ring (the model no longer applies).
    hostile: bool,
    /// The producer's write position: `tail` plus the bytes written and not yet published.
    wpos: u64,
    /// The published `tail`.
    tail: u64,
    /// The consumer's read position.
    rpos: u64,
    /// The released `head`.
    head: u64,
    /// Written and not yet published: each payload, and the bytes it took (its record and any
    /// padding before it).
    unpublished: VecDeque<(Vec<u8>, u64)>,
    /// Published and not yet read, in order.
    fifo: VecDeque<Vec<u8>>,
    /// The bytes each payload of `fifo` took.
    spans: VecDeque<u64>,
    /// The consumer's buffer, kept across reads.
    buf: Vec<u8>,
}

impl Ring {
    fn new(b: &mut Bytes) -> Self {
        let cap = 16u64 << (b.u8() % 5);
        let start = match b.u8() % 4 {
            0 | 1 => 0,
            // Within 256 bytes of the top: the counters wrap.
            2 => u64::MAX - 7 - 8 * u64::from(b.u8() % 32),
            _ => b.u64() & !7,
        };
        let mem = Arc::new(HeapRecordMem::new(cap as usize));
        mem.ctrl().producer.0.tail.store(start, Ordering::SeqCst);
        mem.ctrl().consumer.0.head.store(start, Ordering::SeqCst);
        let (mut p, mut c) = record_channel(mem.clone()).expect("a fresh ring");
        p.set_policy(SpinPolicy::BLOCK);
        c.set_policy(SpinPolicy::BLOCK);
        let max = (cap / 2 - 8) as usize;
        assert_eq!((p.max_payload(), c.max_payload()), (max, max));
        Ring {
            mem,
            p,
            c,
            cap,
            max,
            hostile: false,
            wpos: start,
            tail: start,
            rpos: start,
            head: start,
            unpublished: VecDeque::new(),
            fifo: VecDeque::new(),
            spans: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    fn tail_word(&self) -> &AtomicU64 {
        &self.mem.ctrl().producer.0.tail
    }

    fn head_word(&self) -> &AtomicU64 {
        &self.mem.ctrl().consumer.0.head
    }

    /// The model's invariants (honest ring), or the safety bounds (hostile ring).
    fn check(&self) {
        assert!(self.p.unpublished() <= self.cap, "unpublished > capacity");
        assert!(self.c.unreleased() <= self.cap, "unreleased > capacity");
        if self.hostile {
            return;
        }
        assert_eq!(self.tail_word().load(Ordering::SeqCst), self.tail, "tail");
        assert_eq!(self.head_word().load(Ordering::SeqCst), self.head, "head");
        assert_eq!(self.p.unpublished(), self.wpos.wrapping_sub(self.tail));
        assert_eq!(self.c.unreleased(), self.rpos.wrapping_sub(self.head));
        assert!(self.wpos.wrapping_sub(self.head) <= self.cap);
    }

    /// Whether a `len`-byte payload fits now, and the bytes it takes (padding included).
    fn plan(&self, len: usize) -> (bool, u64) {
        let off = self.wpos % self.cap;
        let rec = record_bytes(len);
        let pad = if rec <= self.cap - off {
            0
        } else {
            self.cap - off
        };
        (
            self.wpos.wrapping_sub(self.head) + pad + rec <= self.cap,
            pad + rec,
        )
    }

    fn write(&mut self, payload: Vec<u8>) {
        let len = payload.len();
        let r = self.p.write(&payload);
        if len > self.max {
            // Checked before anything is read from the peer: also on a hostile ring.
            assert_eq!(r, Err(RecordError::TooLarge { len, max: self.max }));
            return;
        }
        if self.hostile {
            assert!(
                matches!(
                    r,
                    Ok(()) | Err(RecordError::WouldBlock | RecordError::Corrupt { .. })
                ),
                "write: {r:?}"
            );
            return;
        }
        let (fits, span) = self.plan(len);
        if fits {
            assert_eq!(r, Ok(()), "write of {len} bytes at {:#x}", self.wpos);
            self.wpos = self.wpos.wrapping_add(span);
            self.unpublished.push_back((payload, span));
        } else {
            assert_eq!(r, Err(RecordError::WouldBlock), "write of {len} bytes");
        }
    }

    /// The model's side of a publish.
    fn published(&mut self) {
        self.tail = self.wpos;
        for (payload, span) in self.unpublished.drain(..) {
            self.fifo.push_back(payload);
            self.spans.push_back(span);
        }
    }

    fn publish(&mut self) {
        self.p.publish();
        self.published();
    }

    fn read(&mut self, pop: bool) {
        let before = self.buf.clone();
        let r = if pop {
            self.c.try_pop_into(&mut self.buf)
        } else {
            self.c.read_into(&mut self.buf)
        };
        match r {
            Ok(n) => {
                assert!(
                    n <= self.max,
                    "a payload of {n} bytes, maximum {}",
                    self.max
                );
                assert_eq!(n, self.buf.len());
            }
            Err(RecordError::WouldBlock | RecordError::Corrupt { .. }) => {
                assert_eq!(self.buf, before, "a failed read touched the buffer");
            }
            Err(e) => panic!("read: {e:?}"),
        }
        if self.hostile {
            return;
        }
        match self.fifo.pop_front() {
            Some(want) => {
                assert_eq!(r, Ok(want.len()), "read at {:#x}", self.rpos);
                assert_eq!(self.buf, want, "payload read at {:#x}", self.rpos);
                self.rpos = self.rpos.wrapping_add(self.spans.pop_front().unwrap());
                if pop {
                    self.head = self.rpos;
                }
            }
            None => assert_eq!(r, Err(RecordError::WouldBlock), "read of an empty ring"),
        }
    }

    fn release(&mut self) {
        self.c.release();
        self.head = self.rpos;
    }

    fn available(&mut self) {
        let r = self.c.available();
        if let Ok(n) = r {
            assert!(n <= self.cap && n % 8 == 0, "available {n}");
        }
        if self.hostile {
            assert!(
                matches!(r, Ok(_) | Err(RecordError::Corrupt { .. })),
                "available: {r:?}"
            );
            return;
        }
        // The consumer may answer from its cached `tail`: never more than was published, and
        // something whenever something is.
        let published = self.tail.wrapping_sub(self.rpos);
        match r {
            Ok(n) => assert!(
                n <= published && (n > 0) == (published > 0),
                "available {n}, {published} published"
            ),
            Err(e) => panic!("available: {e:?}"),
        }
    }

    fn wait_data(&mut self) {
        let r = self.c.wait_data(Some(Duration::ZERO));
        if self.hostile {
            assert!(
                matches!(
                    r,
                    Ok(())
                        | Err(RecordError::TimedOut
                            | RecordError::WouldBlock
                            | RecordError::Corrupt { .. })
                ),
                "wait_data: {r:?}"
            );
            return;
        }
        // Waiting gives back what was read first.
        self.head = self.rpos;
        let want = if self.fifo.is_empty() {
            Err(RecordError::TimedOut)
        } else {
            Ok(())
        };
        assert_eq!(r, want, "wait_data");
    }

    fn wait_space(&mut self, len: usize) {
        let r = self.p.wait_space(len, Some(Duration::ZERO));
        if len > self.max {
            assert_eq!(
                r,
                Err(RecordError::TooLarge { len, max: self.max }),
                "wait_space"
            );
        }
        if self.hostile {
            assert!(
                matches!(
                    r,
                    Ok(())
                        | Err(RecordError::TimedOut
                            | RecordError::WouldBlock
                            | RecordError::TooLarge { .. }
                            | RecordError::Corrupt { .. })
                ),
                "wait_space: {r:?}"
            );
            return;
        }
        // Waiting publishes what was written first.
        self.published();
        if len <= self.max {
            let want = if self.plan(len).0 {
                Ok(())
            } else {
                Err(RecordError::TimedOut)
            };
            assert_eq!(r, want, "wait_space({len})");
        }
    }

    /// A hostile store into the peer's counter: `tail` (seen by the consumer) or `head` (seen
    /// by the producer).
    fn store_counter(&mut self, b: &mut Bytes) {
        let which = b.u8();
        let mode = b.u8();
        let raw = b.u64();
        let word = if which & 1 == 0 {
            self.tail_word()
        } else {
            self.head_word()
        };
        let current = word.load(Ordering::SeqCst);
        let small = i64::from(raw as u8 as i8);
        let value = match mode % 6 {
            0 => raw,
            1 => current.wrapping_add_signed(small),
            2 => current.wrapping_add_signed(small * 8),
            3 => 0,
            4 => u64::MAX - (raw & 0xFF),
            _ => current,
        };
        word.store(value, Ordering::SeqCst);
        self.hostile = true;
    }

    /// A hostile store into a word of the data area.
    fn store_data(&mut self, b: &mut Bytes) {
        let index = usize::from(b.u8()) % (self.cap as usize / 8);
        let mode = b.u8();
        let raw = b.u64();
        // SAFETY: `index < cap / 8`; this harness is single-threaded, so no half reads or
        // writes any data word while this runs.
        let current = unsafe { self.mem.read_word(index) };
        let value = match mode % 3 {
            0 => raw,
            // A header: a short length, or the length of a padding to the end, of any kind.
            1 => {
                let kind = [0, DATA, PADDING, 3][usize::from(raw as u8 % 4)];
                let len = if raw & 0x100 == 0 {
                    (raw >> 16) % 64
                } else {
                    (self.cap - index as u64 * 8).wrapping_sub(8) & 0xffff_ffff
                };
                kind << 32 | len
            }
            _ => current ^ (1 << (raw % 64)),
        };
        // SAFETY: as above.
        unsafe { self.mem.write_word(index, value) };
        self.hostile = true;
    }

    /// End of the input: an honest ring gives back everything published, in order, then
    /// takes the largest payload; a hostile one is drained for whatever it yields.
    fn finish(mut self) {
        if self.hostile {
            for _ in 0..self.cap / 8 + 2 {
                self.read(true);
                self.check();
            }
            return;
        }
        self.publish();
        while !self.fifo.is_empty() {
            self.read(self.fifo.len().is_multiple_of(2));
            self.check();
        }
        self.read(false);
        self.release();
        self.check();
        assert_eq!(self.c.unreleased(), 0);
        assert_eq!(self.tail, self.head, "everything read and given back");
        let largest: Vec<u8> = (0..self.max).map(|i| (i * 13 + 5) as u8).collect();
        self.write(largest.clone());
        self.publish();
        self.read(true);
        assert_eq!(
            self.buf, largest,
            "the largest payload through an empty ring"
        );
        self.check();
    }
}

/// A payload: a length (sometimes over the maximum) and contents from the input, or a pattern.
fn payload(b: &mut Bytes, max: usize) -> Vec<u8> {
    let l = b.u8();
    let len = if l == 0xFF {
        max + 1 + usize::from(b.u8())
    } else {
        usize::from(l) % (max + 2)
    };
    let c = b.u8();
    if c & 1 == 1 {
        let mut v = b.take(len).to_vec();
        v.resize(len, 0);
        v
    } else {
        (0..len)
            .map(|i| ((usize::from(c) * 31 + i * 7) % 251) as u8)
            .collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let mut ring = Ring::new(&mut b);
    while !b.is_empty() {
        match b.u8() % 13 {
            0..=2 => {
                let data = payload(&mut b, ring.max);
                ring.write(data);
            }
            3 => ring.publish(),
            4 | 5 => ring.read(false),
            6 => ring.read(true),
            7 => ring.release(),
            8 => ring.available(),
            9 => {
                let n = b.u8();
                if n & 1 == 0 {
                    ring.wait_data();
                } else {
                    ring.wait_space(usize::from(n >> 1) % (ring.max + 2));
                }
            }
            10 => ring.store_counter(&mut b),
            11 => ring.store_data(&mut b),
            _ => {
                // A fresh ring; the old one must still give back what it holds.
                let next = Ring::new(&mut b);
                std::mem::replace(&mut ring, next).finish();
            }
        }
        ring.check();
    }
    ring.finish();
});
