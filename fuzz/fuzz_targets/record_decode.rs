//! The record ring's consumer (`shmkv::record::RecordConsumer`) against a data area and
//! counters written entirely by a hostile producer: the input is the capacity, the two counters
//! and the raw bytes of the data area. The consumer drains the ring (`read_into`,
//! `try_pop_into`, `available`, `release`, in an order the input chooses) and must never panic
//! nor loop; every answer is checked against a decoder written here from the record format
//! alone (the module documentation), reading the input bytes, not the ring:
//!
//! * an `Ok` payload is at most `max_payload(capacity)` bytes and is exactly the bytes the input
//!   put after a `KIND_DATA` header word at the consumer's position (header word little endian:
//!   length in bits 0..32, kind in bits 32..64);
//! * `WouldBlock` and `Corrupt` leave the buffer untouched; `Corrupt` names our position and the
//!   offending word (the header word, or the producer's `tail`), and does not consume the
//!   offending record: the same read fails the same way again, also after a `release`;
//! * the consumer's position (`unreleased`) and the `head` it publishes follow the decoder's
//!   (a padding record ending exactly at the end of the data area is skipped, nothing else).
//!
//! Input layout (every byte past the end reads as zero):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | capacity: `16 << (b % 9)` (16..=4096) |
//! | 1 | counter mode (below) |
//! | 2..10 | `head` (little endian) |
//! | 10..18 | `tail` (little endian) |
//! | 18..26 | schedule: two bits per step, which call the next step makes |
//! | 26.. | the data area, `capacity` bytes (zero-padded) |
//!
//! Counter mode: bit 0 clear rounds `head` down to a multiple of 8 (set: as given, so a
//! misaligned `head` is tried); bit 1 set takes `tail` as given, clear makes it `head` plus
//! `tail % (capacity + 1)` rounded down to 8, or (bit 2 set) plus `tail % (2 * capacity + 17)`
//! as is: a tail just past the capacity or misaligned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::record::{HeapRecordMem, RecordConsumer, RecordError, RecordMem};
use shmkv_fuzz::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Header kinds, spelled out here independently of the crate.
const DATA: u64 = 1;
const PADDING: u64 = 2;

struct Input {
    cap: u64,
    head: u64,
    tail: u64,
    schedule: u64,
    /// The data area's bytes, `cap` of them.
    area: Vec<u8>,
}

impl Input {
    fn parse(data: &[u8]) -> Self {
        let mut b = Bytes::new(data);
        let cap = 16u64 << (b.u8() % 9);
        let mode = b.u8();
        let head_raw = b.u64();
        let tail_raw = b.u64();
        let schedule = b.u64();
        let head = if mode & 1 == 0 {
            head_raw & !7
        } else {
            head_raw
        };
        let tail = if mode & 2 != 0 {
            tail_raw
        } else if mode & 4 == 0 {
            head.wrapping_add((tail_raw % (cap + 1)) & !7)
        } else {
            head.wrapping_add(tail_raw % (2 * cap + 17))
        };
        let mut area = b.take(cap as usize).to_vec();
        area.resize(cap as usize, 0);
        Input {
            cap,
            head,
            tail,
            schedule,
            area,
        }
    }

    /// The little-endian word at byte offset `off` of the data area.
    fn word(&self, off: u64) -> u64 {
        let off = off as usize;
        u64::from_le_bytes(self.area[off..off + 8].try_into().unwrap())
    }

    /// Whether the consumer must accept the producer's `tail`: a multiple of 8, at most the
    /// capacity ahead of the starting `head` (wrapping). It never changes here, so it is checked
    /// against the starting `head` whenever the consumer looks.
    fn tail_ok(&self) -> bool {
        self.tail.is_multiple_of(8) && self.tail.wrapping_sub(self.head) <= self.cap
    }
}

/// What the next read must return, decoded from the input.
#[derive(Debug, PartialEq)]
enum Want {
    /// A record: its payload, and the position after it.
    Data { payload: Vec<u8>, next: u64 },
    /// Nothing published at position `at` (after any padding skipped).
    Block { at: u64 },
    /// A lie, seen with the consumer at `at` (after any padding skipped): `theirs` is the
    /// offending header word or `tail`.
    Corrupt { at: u64, theirs: u64 },
}

/// The next read from position `pos`, decoded from the format alone.
fn want(inp: &Input, mut pos: u64) -> Want {
    if !inp.tail_ok() {
        return Want::Corrupt {
            at: pos,
            theirs: inp.tail,
        };
    }
    let max = inp.cap / 2 - 8;
    // A padding is only valid away from offset 0 and the round after one starts at 0: two
    // rounds at most.
    for round in 0..2 {
        let avail = inp.tail.wrapping_sub(pos);
        if avail == 0 {
            return Want::Block { at: pos };
        }
        let off = pos % inp.cap;
        let to_end = inp.cap - off;
        let h = inp.word(off);
        let (len, kind) = (h & 0xffff_ffff, h >> 32);
        let corrupt = Want::Corrupt { at: pos, theirs: h };
        if kind == PADDING {
            if off == 0 || len + 8 != to_end || to_end > avail {
                return corrupt;
            }
            assert_eq!(round, 0, "the decoder skipped two paddings");
            pos = pos.wrapping_add(to_end);
            continue;
        }
        if kind != DATA || len > max {
            return corrupt;
        }
        let size = 8 + len.div_ceil(8) * 8;
        if size > to_end || size > avail {
            return corrupt;
        }
        let start = (off + 8) as usize;
        return Want::Data {
            payload: inp.area[start..start + len as usize].to_vec(),
            next: pos.wrapping_add(size),
        };
    }
    unreachable!("a second round always returns")
}

fuzz_target!(|data: &[u8]| {
    let inp = Input::parse(data);
    let mem = Arc::new(HeapRecordMem::new(inp.cap as usize));
    assert_eq!(mem.capacity() as u64, inp.cap);
    for (i, w) in inp.area.chunks_exact(8).enumerate() {
        // SAFETY: `i < cap / 8` (the area has `cap` bytes), and no consumer exists yet: this
        // single thread is the only one touching the memory.
        unsafe { mem.write_word(i, u64::from_le_bytes(w.try_into().unwrap())) };
    }
    let ctrl = mem.ctrl();
    ctrl.consumer.0.head.store(inp.head, Ordering::SeqCst);
    ctrl.producer.0.tail.store(inp.tail, Ordering::SeqCst);

    let mut c = match RecordConsumer::new(mem.clone()) {
        Ok(c) => {
            assert_eq!(inp.head % 8, 0, "a misaligned head was accepted");
            c
        }
        Err(RecordError::Corrupt { ours, theirs, .. }) => {
            assert_ne!(inp.head % 8, 0, "an aligned head was refused");
            assert_eq!((ours, theirs), (inp.head, inp.head));
            return;
        }
        Err(e) => panic!("RecordConsumer::new: {e:?}"),
    };
    let max = c.max_payload();
    assert_eq!(max as u64, inp.cap / 2 - 8);

    // The decoder's position and what it has given back.
    let mut pos = inp.head;
    let mut released = inp.head;
    let mut buf = Vec::new();
    let mut schedule = inp.schedule;
    // Each Ok consumes at least 8 of at most `cap` published bytes.
    for step in 0..inp.cap / 8 + 2 {
        let call = schedule & 3;
        schedule = schedule.rotate_right(2);
        match call {
            2 => {
                c.release();
                released = pos;
            }
            3 => match c.available() {
                Ok(n) => {
                    assert!(inp.tail_ok(), "available accepted a lying tail");
                    assert_eq!(n, inp.tail.wrapping_sub(pos), "available");
                }
                Err(RecordError::Corrupt { ours, theirs, .. }) => {
                    assert!(!inp.tail_ok(), "available refused an honest tail");
                    assert_eq!((ours, theirs), (pos, inp.tail));
                }
                Err(e) => panic!("available: {e:?}"),
            },
            _ => {}
        }
        let want = want(&inp, pos);
        let before = buf.clone();
        let got = if call == 1 {
            c.try_pop_into(&mut buf)
        } else {
            c.read_into(&mut buf)
        };
        match (&want, got) {
            (Want::Data { payload, next }, Ok(n)) => {
                assert!(n <= max, "a payload of {n} bytes, maximum {max}");
                assert_eq!(n, buf.len());
                assert_eq!(&buf, payload, "step {step}: payload at {pos:#x}");
                pos = *next;
                if call == 1 {
                    released = pos;
                }
            }
            (Want::Block { at }, Err(RecordError::WouldBlock)) => {
                assert_eq!(buf, before, "WouldBlock touched the buffer");
                pos = *at;
            }
            (
                Want::Corrupt { at, theirs },
                Err(
                    e @ RecordError::Corrupt {
                        ours, theirs: t, ..
                    },
                ),
            ) => {
                assert_eq!(buf, before, "Corrupt touched the buffer");
                assert_eq!((ours, t), (*at, *theirs), "Corrupt names {e:?}");
                pos = *at;
            }
            (want, got) => panic!(
                "step {step} at {pos:#x}: read returned {got:?}, the format says {want:?} \
                 (capacity {}, head {:#x}, tail {:#x})",
                inp.cap, inp.head, inp.tail
            ),
        }
        assert_eq!(c.unreleased(), pos.wrapping_sub(released), "position");
        assert_eq!(
            ctrl.consumer.0.head.load(Ordering::SeqCst),
            released,
            "published head"
        );
        if let Want::Data { .. } = want {
            continue;
        }
        // An error is final here (nothing changes the ring): the same read fails the same way
        // again, with nothing consumed, also after giving back what was read.
        let first = c.read_into(&mut buf);
        assert_eq!(first, got, "the same read again");
        assert_eq!(buf, before, "a repeated failure touched the buffer");
        assert_eq!(c.unreleased(), pos.wrapping_sub(released));
        c.release();
        assert_eq!(c.read_into(&mut buf), first, "after release");
        assert_eq!(c.try_pop_into(&mut buf), first, "try_pop_into");
        assert_eq!(c.unreleased(), 0);
        assert_eq!(ctrl.consumer.0.head.load(Ordering::SeqCst), pos);
        assert_eq!(buf, before);
        return;
    }
    panic!(
        "more records read than {} bytes can hold (capacity {}, head {:#x}, tail {:#x})",
        inp.tail.wrapping_sub(inp.head),
        inp.cap,
        inp.head,
        inp.tail
    );
});
