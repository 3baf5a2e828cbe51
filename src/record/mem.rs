//! The memory a record ring lives in: the [`RecordMem`] trait, its forwarding through an
//! `Arc`, and [`HeapRecordMem`], the heap memory of tests, Miri and loom.

use super::{MAX_CAPACITY, MIN_CAPACITY, valid_capacity};
#[cfg(doc)] // Names the item docs link to.
use super::{RecordConsumer, RecordProducer};
use crate::region::{RingCtrl, Side};
use crate::sync::{AtomicU32, Ordering, UnsafeCell};
use crate::wait::{ModelFutex, Wake};

/// The memory a record ring lives in: a control block, a data area of `capacity` bytes read and
/// written as 64-bit words, and the way to sleep on and wake its futex words.
pub trait RecordMem: Send + Sync {
    /// How a side sleeps on a word of [`RingCtrl::wake`].
    type Waker: Wake;

    /// The control block (its counters count bytes).
    fn ctrl(&self) -> &RingCtrl;

    /// Bytes in the data area: [`valid_capacity`], fixed for the memory's life, and known to this
    /// process independently of anything a peer can write.
    fn capacity(&self) -> usize;

    /// The futex implementation for this memory.
    fn waker(&self) -> &Self::Waker;

    /// Register the one producer or the one consumer of this memory in this process: true the
    /// first time for each side. [`RecordProducer::new`] and [`RecordConsumer::new`] panic on
    /// false, so that safe code cannot build two producers (or two consumers) over memory whose
    /// word accessors rely on the single-producer/single-consumer protocol, as heap memory's
    /// do. Memory whose accessors are atomics may always return true.
    fn claim(&self, side: Side) -> bool;

    /// Write the CPU the calling thread runs on into `side`'s line of the control block, for
    /// the peer's [`RecordMem::peer_shares_cpu`]. The default does nothing (heap memory: both
    /// halves are threads of one process, and Miri cannot ask for the CPU).
    fn note_cpu(&self, side: Side) {
        let _ = side;
    }

    /// Whether the other side of `me` last wrote its line from the CPU the calling thread runs
    /// on now: then it is (or was just) on our core, and a spin would only keep it off the core
    /// it needs, so a waiter stops spinning and goes on to its yields. Spinning pays only
    /// while the peer runs on another core; when the scheduler puts both on one core (now and
    /// then on a machine of two), a spinning waiter kept the peer off the core for its whole
    /// spin (pipelined requests took 150 µs instead of 15, synchronous ones 120 µs instead of
    /// 1, with both processes pinned to one core by `taskset -c 0`). Only a hint (a hostile
    /// peer can write anything there: it can only make us yield sooner). The default: false.
    fn peer_shares_cpu(&self, me: Side) -> bool {
        let _ = me;
        false
    }

    /// Start fetching data word `index` into this core's cache without using its value
    /// (`index` is reduced modulo the data area). A consumer that finds nothing published
    /// touches the word at its position together with its look at the producer's counter, so
    /// that the record, when it comes, arrives with the counter (two cache lines fetched at
    /// once instead of one after the other). The default does nothing: memory whose words may
    /// not be read while the producer writes them (heap memory) must not touch them.
    fn touch(&self, index: usize) {
        let _ = index;
    }

    /// Read data word `index` (bytes `8 * index .. 8 * index + 8` of the data area).
    ///
    /// # Safety
    ///
    /// `index < self.capacity() / 8`, and no thread of this process writes word `index` at the
    /// same time (the ring's single-producer/single-consumer protocol guarantees it).
    unsafe fn read_word(&self, index: usize) -> u64;

    /// Write data word `index`.
    ///
    /// # Safety
    ///
    /// `index < self.capacity() / 8`, and no thread of this process reads or writes word
    /// `index` at the same time (the ring's single-producer/single-consumer protocol guarantees
    /// it).
    unsafe fn write_word(&self, index: usize, value: u64);

    /// Copy `out.len()` bytes out of the data words from `first` on (little endian, the last
    /// word's extra bytes dropped). The default reads word by word; memory that can do better
    /// (one bounds check for the whole run) overrides it.
    ///
    /// # Safety
    ///
    /// `first + out.len().div_ceil(8) <= self.capacity() / 8`, and no thread of this process
    /// writes those words at the same time.
    unsafe fn read_bytes(&self, first: usize, out: &mut [u8]) {
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            // SAFETY: `first + i` is below the bound the caller promises; no concurrent writer.
            let w = unsafe { self.read_word(first + i) }.to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }

    /// Copy `bytes` into the data words from `first` on (little endian, the last word padded
    /// with zeros).
    ///
    /// # Safety
    ///
    /// `first + bytes.len().div_ceil(8) <= self.capacity() / 8`, and no thread of this process
    /// reads or writes those words at the same time.
    unsafe fn write_bytes(&self, first: usize, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: `first + i` is below the bound the caller promises; no concurrent access.
            unsafe { self.write_word(first + i, u64::from_le_bytes(w)) };
        }
    }
}

impl<T: RecordMem> RecordMem for crate::sync::Arc<T> {
    type Waker = T::Waker;

    fn ctrl(&self) -> &RingCtrl {
        (**self).ctrl()
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn waker(&self) -> &Self::Waker {
        (**self).waker()
    }
    fn claim(&self, side: Side) -> bool {
        (**self).claim(side)
    }
    unsafe fn read_word(&self, index: usize) -> u64 {
        // SAFETY: forwarded; the caller upholds the same contract.
        unsafe { (**self).read_word(index) }
    }
    unsafe fn write_word(&self, index: usize, value: u64) {
        // SAFETY: forwarded; the caller upholds the same contract.
        unsafe { (**self).write_word(index, value) }
    }
    unsafe fn read_bytes(&self, first: usize, out: &mut [u8]) {
        // SAFETY: forwarded; the caller upholds the same contract.
        unsafe { (**self).read_bytes(first, out) }
    }
    unsafe fn write_bytes(&self, first: usize, bytes: &[u8]) {
        // SAFETY: forwarded; the caller upholds the same contract.
        unsafe { (**self).write_bytes(first, bytes) }
    }
}

/// A record ring's memory on the heap, with an emulated futex ([`ModelFutex`]). Each data word
/// is an [`UnsafeCell`] from the facade, so under loom every word access is checked for data
/// races: a flaw in the publication protocol shows up as a race report.
///
/// Its control block is public atomics ([`RecordMem::ctrl`]) so that tests can play a hostile
/// peer; it relies on nobody but the two halves writing the counters while both halves run.
#[derive(Debug)]
pub struct HeapRecordMem {
    ctrl: RingCtrl,
    words: Box<[UnsafeCell<u64>]>,
    futex: ModelFutex,
    /// The sides claimed so far (bit 1 producer, bit 2 consumer): each at most once.
    claimed: AtomicU32,
}

// SAFETY: the data words are only accessed through `read_word`/`write_word`, whose contracts
// forbid concurrent conflicting access; everything else is atomics and a facade mutex.
unsafe impl Sync for HeapRecordMem {}
// SAFETY: all fields are owned data that may move between threads.
unsafe impl Send for HeapRecordMem {}

impl HeapRecordMem {
    /// Heap memory for a record ring with a data area of `capacity` bytes.
    ///
    /// # Panics
    ///
    /// If `capacity` is not [`valid_capacity`].
    pub fn new(capacity: usize) -> Self {
        assert!(
            valid_capacity(capacity),
            "record ring capacity must be a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"
        );
        Self {
            ctrl: RingCtrl::default(),
            words: (0..capacity / 8).map(|_| UnsafeCell::new(0)).collect(),
            futex: ModelFutex::new(),
            claimed: AtomicU32::new(0),
        }
    }
}

fn side_bit(side: Side) -> u32 {
    match side {
        Side::Producer => 1,
        Side::Consumer => 2,
    }
}

impl RecordMem for HeapRecordMem {
    type Waker = ModelFutex;

    fn ctrl(&self) -> &RingCtrl {
        &self.ctrl
    }
    fn capacity(&self) -> usize {
        self.words.len() * 8
    }
    fn waker(&self) -> &ModelFutex {
        &self.futex
    }
    fn claim(&self, side: Side) -> bool {
        let bit = side_bit(side);
        self.claimed.fetch_or(bit, Ordering::SeqCst) & bit == 0
    }
    unsafe fn read_word(&self, index: usize) -> u64 {
        // SAFETY: slice indexing checks `index`; the caller promises no concurrent write to
        // this word.
        self.words[index].with(|p| unsafe { *p })
    }
    unsafe fn write_word(&self, index: usize, value: u64) {
        // SAFETY: slice indexing checks `index`; the caller promises no concurrent access to
        // this word.
        self.words[index].with_mut(|p| unsafe { *p = value })
    }
}
