//! [`ShmRecordMem`]: a record ring's memory inside a shared [`Mapping`], every data word a
//! 64-bit atomic.

use super::{RecordMem, valid_capacity};
use crate::region::{RING_CTRL_SIZE, RingCtrl, Side};
use crate::shm::Mapping;
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::wait::SysFutex;

/// The CPU the calling thread runs on, plus one (0 if unknown). `sched_getcpu` reads it
/// from the thread's restartable-sequence area (glibc 2.35 and later): a few nanoseconds.
fn current_cpu() -> u32 {
    // SAFETY: no arguments, no memory handed over; it returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).map_or(0, |c| c.wrapping_add(1))
}

/// A record ring's memory inside a [`Mapping`]: a control block and a data area of
/// `capacity` bytes at offsets checked when it is built. Every data word is accessed as a
/// `Relaxed` 64-bit atomic through [`Mapping::atomic_u64`] (bounds- and alignment-checked),
/// so a peer writing the same word at the same time (a hostile peer can) is a race on
/// atomics, never undefined behaviour.
#[derive(Debug, Clone)]
pub struct ShmRecordMem {
    map: Arc<Mapping>,
    ctrl_offset: usize,
    data_offset: usize,
    capacity: usize,
    waker: SysFutex,
}

impl ShmRecordMem {
    /// The record ring whose control block is at `ctrl_offset` and whose `capacity`-byte
    /// data area starts at `data_offset`. `None` when `capacity` is not
    /// [`valid_capacity`], when a part lies outside the mapping or is misaligned (64 for the
    /// control block, 8 for the data area), or when the two overlap.
    pub fn new(
        map: Arc<Mapping>,
        ctrl_offset: usize,
        data_offset: usize,
        capacity: usize,
    ) -> Option<Self> {
        if !valid_capacity(capacity) {
            return None;
        }
        map.ring_ctrl(ctrl_offset)?;
        // The first and the last word in bounds and aligned: so is every word between.
        let last = data_offset.checked_add(capacity - 8)?;
        map.atomic_u64(data_offset)?;
        map.atomic_u64(last)?;
        let (ctrl_end, data_end) = (ctrl_offset + RING_CTRL_SIZE, last + 8);
        if ctrl_offset < data_end && data_offset < ctrl_end {
            return None;
        }
        Some(Self {
            map,
            ctrl_offset,
            data_offset,
            capacity,
            waker: SysFutex,
        })
    }

    /// The data words holding `len` bytes from word `first` on, checked once.
    fn words(&self, first: usize, len: usize) -> &[AtomicU64] {
        let n = len.div_ceil(8);
        assert!(
            first + n <= self.capacity / 8,
            "a record's words lie inside the data area"
        );
        self.map
            .atomic_u64_slice(self.data_offset + first * 8, n)
            .expect("data offsets were checked when the ring was built")
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        let index = index & (self.capacity / 8 - 1);
        self.map
            .atomic_u64(self.data_offset + index * 8)
            .expect("data offsets were checked when the ring was built")
    }
}

impl RecordMem for ShmRecordMem {
    type Waker = SysFutex;

    fn ctrl(&self) -> &RingCtrl {
        self.map
            .ring_ctrl(self.ctrl_offset)
            .expect("control offset was checked when the ring was built")
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn waker(&self) -> &SysFutex {
        &self.waker
    }
    fn claim(&self, _side: Side) -> bool {
        // Every word access is atomic: a second half in this process (or a hostile peer's
        // writes) can garble data but never cause undefined behaviour.
        true
    }
    fn note_cpu(&self, side: Side) {
        let ctrl = self.ctrl();
        let word = match side {
            Side::Producer => &ctrl.producer.0.cpu,
            Side::Consumer => &ctrl.consumer.0.cpu,
        };
        word.store(current_cpu(), Ordering::Relaxed);
    }
    fn peer_shares_cpu(&self, me: Side) -> bool {
        let ctrl = self.ctrl();
        let peer = match me {
            Side::Producer => &ctrl.consumer.0.cpu,
            Side::Consumer => &ctrl.producer.0.cpu,
        };
        let theirs = peer.load(Ordering::Relaxed);
        theirs != 0 && theirs == current_cpu()
    }
    fn touch(&self, index: usize) {
        // A relaxed atomic load: racing with the producer's stores is allowed.
        std::hint::black_box(self.word(index).load(Ordering::Relaxed));
    }
    unsafe fn read_word(&self, index: usize) -> u64 {
        self.word(index).load(Ordering::Relaxed)
    }
    unsafe fn write_word(&self, index: usize, value: u64) {
        self.word(index).store(value, Ordering::Relaxed)
    }
    unsafe fn read_bytes(&self, first: usize, out: &mut [u8]) {
        // Whole words first, then the tail: fixed-size copies that the compiler turns into
        // plain moves (a per-chunk copy of variable length was a `memcpy` call per word,
        // ten times slower for large records).
        let mut words = self.words(first, out.len()).iter();
        let mut chunks = out.chunks_exact_mut(8);
        for (chunk, w) in (&mut chunks).zip(&mut words) {
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if let Some(w) = words.next() {
            tail.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes()[..tail.len()]);
        }
    }
    unsafe fn write_bytes(&self, first: usize, bytes: &[u8]) {
        let mut words = self.words(first, bytes.len()).iter();
        let mut chunks = bytes.chunks_exact(8);
        for (chunk, w) in (&mut chunks).zip(&mut words) {
            let b: [u8; 8] = chunk.try_into().expect("chunks of 8");
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        let tail = chunks.remainder();
        if let Some(w) = words.next() {
            let mut b = [0u8; 8];
            b[..tail.len()].copy_from_slice(tail);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }
}
