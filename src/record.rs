//! The lock-free single-producer/single-consumer ring of variable-length byte records that
//! carries requests and responses, with its spin-then-futex wait/wake protocol, generic over the
//! memory it lives in ([`RecordMem`]: [`HeapRecordMem`] for tests, Miri and loom, `ShmRecordMem`
//! for a shared mapping).
//!
//! Each request and each answer (or part of one) of [`crate::wire`] is one record.
//!
//! # Algorithm
//!
//! A bounded SPSC queue after Lamport, with the refinements of FastForward/`rte_ring`: two
//! monotonically increasing 64-bit counters, `tail` (bytes ever published, written only by the
//! producer) and `head` (bytes ever consumed, written only by the consumer), each on its own
//! cache line of the control block ([`RingCtrl`]).
//!
//! * Publish: the producer writes records, then stores the new `tail` with `Release`. The
//!   consumer loads `tail` with `Acquire`, so the records' words happen-before its reads.
//! * Release: the consumer copies records out, then stores the new `head` with `Release`; the
//!   producer loads `head` with `Acquire` before reusing the bytes, so the copy is finished
//!   before they are overwritten.
//! * Each side keeps its own counter privately (never re-reading it from shared memory) and a
//!   cached copy of the other's, refreshed only when the cache says full/empty. A counter read
//!   from the peer is validated (see Validation below).
//!
//! # Prior art
//!
//! The record format and the wrap rule follow Aeron's one-to-one ring buffer (agrona's
//! `org.agrona.concurrent.ringbuffer.OneToOneRingBuffer`: 8-byte aligned records with a length
//! and type header, a padding record when a record does not fit before the end, a maximum
//! record length that is a fraction of the capacity) and `bbqueue` (a Rust bipartite buffer that
//! hands out contiguous grants with the same "never wrap, skip to the start" rule, generic over
//! its storage so that loom can run it over heap memory). The code is written for this crate;
//! two things differ from Aeron: a record is published by the producer's `tail` counter (so a
//! batch of records costs one publication), not by an ordered store of its length, and the
//! consumer therefore does not zero the bytes it consumed.
//!
//! # Layout
//!
//! The ring is a control block ([`RingCtrl`]) and `capacity` bytes of data, read and written
//! as 64-bit words. `tail` (producer) and `head` (consumer) count BYTES ever published and
//! consumed, always multiples of 8; the byte at counter `n` lives at offset `n & (capacity -
//! 1)`; the invariant is `head <= tail <= head + capacity`.
//!
//! A record is an 8-byte header word followed by its payload padded with zeros to a multiple of
//! 8 bytes:
//!
//! | bits of the header word | field |
//! |---|---|
//! | 0..32  | payload length in bytes (`u32`) |
//! | 32..64 | kind: [`KIND_DATA`] (1) or [`KIND_PADDING`] (2) |
//!
//! Payload byte `i` is byte `i % 8` (little endian) of word `i / 8` after the header. A record
//! never wraps: when one does not fit between the write position and the end of the data area,
//! the producer fills the rest with a padding record (whose length covers exactly the bytes up
//! to the end) and writes the record at offset 0; both must fit in the free space, or the write
//! waits. A record that ends exactly at the end needs no padding.
//!
//! # Maximum record
//!
//! A payload may hold at most [`max_payload`]`(capacity) = capacity / 2 - 8` bytes, so a record
//! (header included) takes at most `capacity / 2` bytes. That bound makes an EMPTY ring always
//! able to take the largest record, wherever its write position is: at offset `o`, either the
//! record (`r <= capacity / 2` bytes) fits in the `capacity - o` bytes before the end, or
//! `capacity - o < r <= capacity / 2`, so `o > capacity / 2 >= r` and the padding (`capacity -
//! o` bytes) plus the record take `capacity - o + r <= capacity` bytes. So a producer waiting
//! for room always gets it once the consumer has caught up. A larger payload is
//! [`RecordError::TooLarge`], never a panic.
//!
//! # Validation
//!
//! Everything read from shared memory may be a lie from a hostile peer. The consumer copies a
//! record out exactly once (the header word, then the payload words) and decides only from the
//! copy; it refuses, with [`RecordError::Corrupt`] and without copying anything or moving its
//! counter, a header whose kind is unknown, whose length exceeds the maximum, whose record
//! would cross the end of the data area or the published bytes, or a padding record that does
//! not end exactly at the end (or starts at offset 0). A peer's counter must be a multiple of 8
//! and respect `head <= tail <= head + capacity` (wrapping arithmetic: a counter's starting
//! value comes from shared memory and may be anything). Every word index is reduced below the
//! capacity before use, and shared memory is only accessed through atomics, so a lie can garble
//! data but never cause an out-of-bounds access or undefined behaviour.
//!
//! # Publication and waiting
//!
//! The producer writes records unpublished ([`RecordProducer::write`]) and stores `tail` once
//! with `Release` in [`RecordProducer::publish`], then executes a `SeqCst` fence and looks at
//! the consumer's waiter flag; the consumer reads records ([`RecordConsumer::read_into`]) and
//! gives their bytes back with one `Release` store of `head` in [`RecordConsumer::release`],
//! likewise followed by a fence and a look at the producer's waiter flag (see design.md §3 and
//! §4).
//!
//! A side that finds the ring empty (consumer) or without room for its record (producer) spins,
//! yields ([`SpinPolicy`]), then sleeps on a futex word in
//! [`WakeLine`](crate::region::WakeLine) with a Dekker-style handshake:
//!
//! ```text
//! sleeper (consumer)                          waker (producer)
//! seq = data_futex.load()                     tail.store(t + n, Release)
//! data_waiting.store(1)                       fence(SeqCst)
//! fence(SeqCst)                               if data_waiting.load() == 1 {
//! if tail changed: clear flag, return             data_waiting.store(0)
//! futex_wait(data_futex, seq)                     data_futex.fetch_add(1)
//!                                                 futex_wake(data_futex) }
//! ```
//!
//! The two `SeqCst` fences order each side's store before its load, so at least one side sees
//! the other's store: either the sleeper sees the new `tail` and does not sleep, or the waker
//! sees the flag and wakes. A wake that comes between the sleeper's check and its
//! `futex_wait` changes `data_futex` first, so the wait returns at once. The fast path (no
//! sleeper) makes no system call. The producer side is symmetric (`space_waiting`,
//! `space_futex`, woken by [`RecordConsumer::release`]). The futex is a [`Wake`]: the real
//! `futex(2)` over shared memory, a mutex and condition variable ([`ModelFutex`]) over heap
//! memory. The loom models in `tests/loom/` (`records.rs` for the ring alone, `main.rs` for the
//! serving lane over two rings) check exactly this code for data races and lost wake-ups.

use crate::region::{RingCtrl, Side};
use crate::sync::{AtomicU32, Ordering, UnsafeCell, fence, spin_hint, thread};
use crate::wait::{ModelFutex, SpinPolicy, Wake};
use std::time::{Duration, Instant};

/// Bytes of a record header (one word).
pub const HEADER_SIZE: usize = 8;
/// Header kind of a record that carries a payload.
pub const KIND_DATA: u32 = 1;
/// Header kind of the record that fills the data area up to its end when the next record does
/// not fit there; the consumer skips it.
pub const KIND_PADDING: u32 = 2;
/// Smallest data area: room for two headers (its maximum payload is 0 bytes).
pub const MIN_CAPACITY: usize = 16;
/// Largest data area (1 GiB), so that every payload length fits the header's `u32`.
pub const MAX_CAPACITY: usize = 1 << 30;

/// The largest payload a ring of `capacity` bytes carries: `capacity / 2 - 8` (so that an empty
/// ring always has room for it, see the module documentation); 0 for a capacity below
/// [`MIN_CAPACITY`].
pub const fn max_payload(capacity: usize) -> usize {
    (capacity / 2).saturating_sub(HEADER_SIZE)
}

/// Bytes a record with a `payload_len`-byte payload takes in the ring: the header plus the
/// payload rounded up to a multiple of 8 (saturating at `usize::MAX`).
pub const fn record_size(payload_len: usize) -> usize {
    HEADER_SIZE.saturating_add(payload_len.saturating_add(7) & !7)
}

/// Whether `capacity` is a valid data area size: a power of two (hence a multiple of 8) in
/// [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`].
pub const fn valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY
}

/// A header word from its fields.
const fn header(len: u32, kind: u32) -> u64 {
    ((kind as u64) << 32) | len as u64
}

/// Why a record ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// No room for the record (write) or no record to read (read), and the call does not wait;
    /// or a wait was woken before its deadline with nothing to do.
    WouldBlock,
    /// A waiting call's timeout passed first.
    TimedOut,
    /// The payload is larger than the ring's maximum ([`max_payload`]); nothing was written.
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The ring's maximum payload.
        max: usize,
    },
    /// Something read from the peer is impossible: the peer is broken or hostile. Nothing was
    /// written or copied out, and the offending record (if any) was not consumed.
    Corrupt {
        /// What was wrong.
        what: &'static str,
        /// Our own counter.
        ours: u64,
        /// The offending value as read (the peer's counter, or the record header word).
        theirs: u64,
    },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::WouldBlock => f.write_str("record ring would block"),
            RecordError::TimedOut => f.write_str("timed out waiting on the record ring"),
            RecordError::TooLarge { len, max } => write!(
                f,
                "a record of {len} bytes is larger than the ring's maximum of {max}"
            ),
            RecordError::Corrupt { what, ours, theirs } => write!(
                f,
                "record ring corrupt: {what} (our counter {ours}, read {theirs:#x}; peer broken \
                 or hostile)"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

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

#[cfg(not(loom))]
pub use shm_mem::ShmRecordMem;

#[cfg(not(loom))]
mod shm_mem {
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
}

/// Create both halves of a record ring over `mem`, whose counters must be equal multiples of 8
/// (a fresh or reset ring). Used for heap rings; shared-memory rings build each half in its own
/// process.
///
/// # Panics
///
/// As [`RecordProducer::new`] and [`RecordConsumer::new`].
pub fn record_channel<M: RecordMem + Clone>(
    mem: M,
) -> Result<(RecordProducer<M>, RecordConsumer<M>), RecordError> {
    Ok((RecordProducer::new(mem.clone())?, RecordConsumer::new(mem)?))
}

fn remaining(deadline: Option<Instant>) -> Result<Option<Duration>, RecordError> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                Err(RecordError::TimedOut)
            } else {
                Ok(Some(d - now))
            }
        }
    }
}

fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The capacity of `mem`, checked once when a half is built.
fn checked_capacity<M: RecordMem>(mem: &M) -> u64 {
    let cap = mem.capacity();
    assert!(
        valid_capacity(cap),
        "record ring capacity {cap} is not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"
    );
    cap as u64
}

/// The writing half of a record ring. Exactly one may exist per ring at a time (in all
/// processes together).
#[derive(Debug)]
pub struct RecordProducer<M: RecordMem> {
    mem: M,
    /// Our authoritative `tail`: bytes published so far.
    tail: u64,
    /// Bytes written (records and padding) but not yet published.
    unpublished: u64,
    /// Last `head` read from the consumer.
    cached_head: u64,
    /// Bytes in the data area (a power of two).
    cap: u64,
    policy: SpinPolicy,
}

impl<M: RecordMem> RecordProducer<M> {
    /// The producer half over `mem`, starting from the `tail` the memory holds now (taken as the
    /// truth; the consumer's `head` is validated when first used). Fails with
    /// [`RecordError::Corrupt`] when that `tail` is not a multiple of 8.
    ///
    /// # Panics
    ///
    /// If `mem` already has a producer in this process (see [`RecordMem::claim`]), or if its
    /// capacity is not [`valid_capacity`].
    pub fn new(mem: M) -> Result<Self, RecordError> {
        let cap = checked_capacity(&mem);
        let tail = mem.ctrl().producer.0.tail.load(Ordering::Acquire);
        if tail % 8 != 0 {
            return Err(RecordError::Corrupt {
                what: "the producer's tail is not a multiple of 8",
                ours: tail,
                theirs: tail,
            });
        }
        assert!(
            mem.claim(Side::Producer),
            "this record ring memory already has a producer"
        );
        Ok(Self {
            mem,
            tail,
            unpublished: 0,
            cached_head: tail,
            cap,
            policy: SpinPolicy::DEFAULT,
        })
    }

    /// Set how long waits spin before sleeping.
    pub fn set_policy(&mut self, policy: SpinPolicy) {
        self.policy = policy;
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest payload this ring carries ([`max_payload`] of its capacity).
    pub fn max_payload(&self) -> usize {
        max_payload(self.cap as usize)
    }

    /// The memory this half works on.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Bytes (records and padding) written and not yet published.
    pub fn unpublished(&self) -> u64 {
        self.unpublished
    }

    /// Reload the consumer's `head` and check it: a multiple of 8 that never goes back nor
    /// passes what we published (wrapping arithmetic: the starting value came from shared
    /// memory and may be anything).
    fn refresh_head(&mut self) -> Result<(), RecordError> {
        let head = self.mem.ctrl().consumer.0.head.load(Ordering::Acquire);
        if head % 8 != 0
            || head.wrapping_sub(self.cached_head) > self.tail.wrapping_sub(self.cached_head)
        {
            return Err(RecordError::Corrupt {
                what: "the consumer's head is misaligned, went back, or passed our tail",
                ours: self.tail,
                theirs: head,
            });
        }
        self.cached_head = head;
        Ok(())
    }

    /// Whether `need` bytes are free after the write position, refreshing the consumer's
    /// counter when our cache says no.
    fn room(&mut self, need: u64) -> Result<bool, RecordError> {
        let pos = self.tail.wrapping_add(self.unpublished);
        let cap = self.cap;
        let free = |cached_head: u64| cap.saturating_sub(pos.wrapping_sub(cached_head));
        if free(self.cached_head) >= need {
            return Ok(true);
        }
        self.refresh_head()?;
        Ok(free(self.cached_head) >= need)
    }

    /// Bytes of padding and bytes of record that a `len`-byte payload takes at the write
    /// position.
    fn plan(&self, len: usize) -> Result<(u64, u64), RecordError> {
        let max = self.max_payload();
        if len > max {
            return Err(RecordError::TooLarge { len, max });
        }
        let rec = record_size(len) as u64;
        let off = self.tail.wrapping_add(self.unpublished) & (self.cap - 1);
        let to_end = self.cap - off;
        Ok((if rec <= to_end { 0 } else { to_end }, rec))
    }

    /// Whether a record with a `len`-byte payload fits now.
    fn fits(&mut self, len: usize) -> Result<bool, RecordError> {
        let (pad, rec) = self.plan(len)?;
        self.room(pad + rec)
    }

    /// Append one record without publishing it (see [`RecordProducer::publish`]). Fails with
    /// [`RecordError::TooLarge`] when `payload` is longer than [`RecordProducer::max_payload`]
    /// and with [`RecordError::WouldBlock`] when the ring has no room for it (and the padding
    /// it may need) now.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), RecordError> {
        let (pad, rec) = self.plan(payload.len())?;
        if !self.room(pad + rec)? {
            return Err(RecordError::WouldBlock);
        }
        let mask = self.cap - 1;
        let mut pos = self.tail.wrapping_add(self.unpublished);
        if pad > 0 {
            // SAFETY: the index is below `cap / 8`. The `pad + rec` bytes from `pos` are free:
            // the consumer gave them back (its `head`, loaded with Acquire, is at least
            // `pos + pad + rec - cap`) and will not read them until we publish a `tail` past
            // them. We are the only producer (claimed in `new`).
            unsafe {
                self.mem.write_word(
                    ((pos & mask) / 8) as usize,
                    header((pad - 8) as u32, KIND_PADDING),
                )
            };
            pos = pos.wrapping_add(pad);
        }
        let first = ((pos & mask) / 8) as usize;
        // SAFETY: the record's `rec` bytes lie before the end of the data area (`plan` padded
        // otherwise), so its payload words `first + 1 ..` end by `cap / 8`; they are free, as
        // above.
        unsafe { self.mem.write_bytes(first + 1, payload) };
        // SAFETY: `first < cap / 8`; the word is free, as above.
        unsafe {
            self.mem
                .write_word(first, header(payload.len() as u32, KIND_DATA))
        };
        self.unpublished += pad + rec;
        Ok(())
    }

    /// Publish every record written since the last publish (one `Release` store of `tail`), and
    /// wake the consumer if it sleeps for data.
    pub fn publish(&mut self) {
        if self.unpublished == 0 {
            return;
        }
        self.tail = self.tail.wrapping_add(self.unpublished);
        self.unpublished = 0;
        self.mem.note_cpu(Side::Producer);
        let ctrl = self.mem.ctrl();
        ctrl.producer.0.tail.store(self.tail, Ordering::Release);
        fence(Ordering::SeqCst);
        let wake = &ctrl.wake.0;
        if wake.data_waiting.load(Ordering::Relaxed) != 0 {
            wake.data_waiting.store(0, Ordering::Relaxed);
            wake.data_futex.fetch_add(1, Ordering::SeqCst);
            self.mem.waker().wake(&wake.data_futex);
        }
    }

    /// Write and publish one record without waiting.
    pub fn try_push(&mut self, payload: &[u8]) -> Result<(), RecordError> {
        self.write(payload)?;
        self.publish();
        Ok(())
    }

    /// Write and publish one record, waiting for room up to `timeout` (`None`: no limit).
    pub fn push(&mut self, payload: &[u8], timeout: Option<Duration>) -> Result<(), RecordError> {
        let deadline = deadline_of(timeout);
        loop {
            match self.try_push(payload) {
                Err(RecordError::WouldBlock) => {}
                other => return other,
            }
            match self.wait_space(payload.len(), remaining(deadline)?) {
                Ok(()) | Err(RecordError::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Publish what was written, then wait until a record with a `len`-byte payload fits or
    /// `timeout` passes (`None`: no limit). Spins, yields, then sleeps on the futex. Returns
    /// [`RecordError::WouldBlock`] when woken before the deadline without room,
    /// [`RecordError::TimedOut`] on timeout, [`RecordError::TooLarge`] when `len` can never fit.
    pub fn wait_space(&mut self, len: usize, timeout: Option<Duration>) -> Result<(), RecordError> {
        self.wait_space_or(len, timeout, &|| false)
    }

    /// As [`RecordProducer::wait_space`], but returns [`RecordError::WouldBlock`] instead of
    /// sleeping once `cancel` holds (looked at after each yield and just before each sleep).
    pub fn wait_space_or(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
        cancel: &dyn Fn() -> bool,
    ) -> Result<(), RecordError> {
        // Never wait holding records the consumer may be waiting for.
        self.publish();
        if self.fits(len)? {
            return Ok(());
        }
        for _ in 0..self.policy.spins {
            if self.mem.peer_shares_cpu(Side::Producer) {
                break;
            }
            spin_hint();
            if self.fits(len)? {
                return Ok(());
            }
        }
        for _ in 0..self.policy.yields {
            thread::yield_now();
            if self.fits(len)? {
                return Ok(());
            }
            if cancel() {
                return Err(RecordError::WouldBlock);
            }
        }
        let deadline = deadline_of(timeout);
        loop {
            let wake = &self.mem.ctrl().wake.0;
            let seq = wake.space_futex.load(Ordering::SeqCst);
            wake.space_waiting.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let done = match self.fits(len) {
                Ok(true) => Some(Ok(())),
                Ok(false) if cancel() => Some(Err(RecordError::WouldBlock)),
                Ok(false) => remaining(deadline).err().map(Err),
                Err(e) => Some(Err(e)),
            };
            let wake = &self.mem.ctrl().wake.0;
            if let Some(r) = done {
                wake.space_waiting.store(0, Ordering::Relaxed);
                return r;
            }
            let left = remaining(deadline)?;
            self.mem.waker().wait(&wake.space_futex, seq, left);
            if self.fits(len)? {
                return Ok(());
            }
            // Woken before the deadline (by anyone waking the word, changed or not) and still
            // no room: let the caller look around, and count it.
            let wake = &self.mem.ctrl().wake.0;
            if wake.space_futex.load(Ordering::SeqCst) != seq || remaining(deadline).is_ok() {
                return Err(RecordError::WouldBlock);
            }
        }
    }
}

/// The reading half of a record ring. Exactly one may exist per ring at a time.
#[derive(Debug)]
pub struct RecordConsumer<M: RecordMem> {
    mem: M,
    /// Our authoritative `head`: bytes read so far (released or not).
    head: u64,
    /// The `head` last published to the producer (`released <= head`).
    released: u64,
    /// Last `tail` read from the producer.
    cached_tail: u64,
    /// Bytes in the data area (a power of two).
    cap: u64,
    policy: SpinPolicy,
}

impl<M: RecordMem> RecordConsumer<M> {
    /// The consumer half over `mem`, starting from the `head` the memory holds now (taken as the
    /// truth; the producer's `tail` is validated when used). Fails with
    /// [`RecordError::Corrupt`] when that `head` is not a multiple of 8.
    ///
    /// # Panics
    ///
    /// If `mem` already has a consumer in this process (see [`RecordMem::claim`]), or if its
    /// capacity is not [`valid_capacity`].
    pub fn new(mem: M) -> Result<Self, RecordError> {
        let cap = checked_capacity(&mem);
        let head = mem.ctrl().consumer.0.head.load(Ordering::Acquire);
        if head % 8 != 0 {
            return Err(RecordError::Corrupt {
                what: "the consumer's head is not a multiple of 8",
                ours: head,
                theirs: head,
            });
        }
        assert!(
            mem.claim(Side::Consumer),
            "this record ring memory already has a consumer"
        );
        Ok(Self {
            mem,
            head,
            released: head,
            cached_tail: head,
            cap,
            policy: SpinPolicy::DEFAULT,
        })
    }

    /// Set how long waits spin before sleeping.
    pub fn set_policy(&mut self, policy: SpinPolicy) {
        self.policy = policy;
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest payload this ring carries ([`max_payload`] of its capacity).
    pub fn max_payload(&self) -> usize {
        max_payload(self.cap as usize)
    }

    /// The memory this half works on.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Published bytes not yet read, refreshing the producer's counter when our cache says
    /// none. Its `tail` must be a multiple of 8, never go back, and never run more than the
    /// capacity ahead of what we released (wrapping arithmetic: the starting value may be
    /// anything).
    pub fn available(&mut self) -> Result<u64, RecordError> {
        let ready = self.cached_tail.wrapping_sub(self.head);
        if ready > 0 {
            return Ok(ready);
        }
        self.mem.touch(((self.head & (self.cap - 1)) / 8) as usize);
        let tail = self.mem.ctrl().producer.0.tail.load(Ordering::Acquire);
        let ahead = tail.wrapping_sub(self.released);
        if tail % 8 != 0 || ahead > self.cap || ahead < self.cached_tail.wrapping_sub(self.released)
        {
            return Err(RecordError::Corrupt {
                what: "the producer's tail is misaligned, went back, or ran past the capacity",
                ours: self.head,
                theirs: tail,
            });
        }
        self.cached_tail = tail;
        Ok(tail.wrapping_sub(self.head))
    }

    /// Copy the next record's payload into `buf` (replacing its contents) and return its
    /// length, skipping a padding record, without giving its bytes back yet (see
    /// [`RecordConsumer::release`]). [`RecordError::WouldBlock`] when no record is published;
    /// [`RecordError::Corrupt`] when the header lies (then `buf` and our counter are untouched).
    ///
    /// The header word and each payload word are read from the ring exactly once; every
    /// decision is made on the copy.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecordError> {
        // At most two rounds: a padding record is never at offset 0, where the round after it
        // starts.
        loop {
            let avail = self.available()?;
            if avail == 0 {
                return Err(RecordError::WouldBlock);
            }
            let off = self.head & (self.cap - 1);
            let to_end = self.cap - off;
            // SAFETY: `off / 8 < cap / 8`. The producer published this word (`head` and `tail`
            // are multiples of 8 and `avail > 0`, so at least these 8 bytes are published; we
            // loaded `tail` with Acquire) and will not write it again before we publish a
            // `head` past it (`release` publishes at most `self.head`, which passes it only
            // after this copy). We are the only consumer (claimed in `new`).
            let word = unsafe { self.mem.read_word((off / 8) as usize) };
            let (len, kind) = (word & 0xffff_ffff, word >> 32);
            let ours = self.head;
            let corrupt = move |what| RecordError::Corrupt {
                what,
                ours,
                theirs: word,
            };
            match kind as u32 {
                KIND_PADDING => {
                    if off == 0 || len + 8 != to_end || to_end > avail {
                        return Err(corrupt(
                            "a padding record at offset 0, not ending at the end of the data \
                             area, or not published",
                        ));
                    }
                    // Skipped at once: our counter stays on a record boundary.
                    self.head = self.head.wrapping_add(to_end);
                    continue;
                }
                KIND_DATA => {}
                _ => return Err(corrupt("a record of unknown kind")),
            }
            if len > self.max_payload() as u64 {
                return Err(corrupt("a record longer than the maximum"));
            }
            let rec = record_size(len as usize) as u64;
            if rec > to_end || rec > avail {
                return Err(corrupt(
                    "a record crossing the end of the data area or the published bytes",
                ));
            }
            let len = len as usize;
            // (Only bytes beyond the old length are zeroed first; the copy overwrites all.)
            buf.truncate(len);
            buf.resize(len, 0);
            // SAFETY: the payload's words `off / 8 + 1 ..` end by `(off + rec) / 8 <= cap / 8`
            // (the record ends before the end of the data area, checked above); they are
            // published and not yet released, as for the header (the record ends within
            // `avail`).
            unsafe { self.mem.read_bytes((off / 8) as usize + 1, buf) };
            self.head = self.head.wrapping_add(rec);
            return Ok(len);
        }
    }

    /// Read one record and give its bytes back at once, without waiting.
    pub fn try_pop_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecordError> {
        let n = self.read_into(buf)?;
        self.release();
        Ok(n)
    }

    /// Read one record and give its bytes back, waiting up to `timeout` (`None`: no limit).
    pub fn pop_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<usize, RecordError> {
        let deadline = deadline_of(timeout);
        loop {
            match self.try_pop_into(buf) {
                Err(RecordError::WouldBlock) => {}
                other => return other,
            }
            match self.wait_data(remaining(deadline)?) {
                Ok(()) | Err(RecordError::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Published bytes waiting unread, as far as our cached copy of the producer's counter
    /// knows (no shared-memory access: 0 may be stale, more is not).
    pub fn ready_cached(&self) -> u64 {
        self.cached_tail.wrapping_sub(self.head)
    }

    /// Bytes read and not yet given back.
    pub fn unreleased(&self) -> u64 {
        self.head.wrapping_sub(self.released)
    }

    /// Give every record read so far back to the producer (one `Release` store of `head`), and
    /// wake it if it sleeps for room.
    pub fn release(&mut self) {
        if self.released == self.head {
            return;
        }
        self.released = self.head;
        self.mem.note_cpu(Side::Consumer);
        let ctrl = self.mem.ctrl();
        ctrl.consumer.0.head.store(self.head, Ordering::Release);
        fence(Ordering::SeqCst);
        let wake = &ctrl.wake.0;
        if wake.space_waiting.load(Ordering::Relaxed) != 0 {
            wake.space_waiting.store(0, Ordering::Relaxed);
            wake.space_futex.fetch_add(1, Ordering::SeqCst);
            self.mem.waker().wake(&wake.space_futex);
        }
    }

    /// Release what was read, then wait until a record is published or `timeout` passes
    /// (`None`: no limit). Spins, yields, then sleeps on the futex. Returns
    /// [`RecordError::WouldBlock`] when woken before the deadline with nothing to read (a
    /// nudge, a wake-up without a publish, a signal), [`RecordError::TimedOut`] on timeout.
    pub fn wait_data(&mut self, timeout: Option<Duration>) -> Result<(), RecordError> {
        self.wait_data_or(timeout, self.policy, &|| false)
    }

    /// [`RecordConsumer::wait_data`] with an explicit spin policy that also gives up, with
    /// [`RecordError::WouldBlock`], once `cancel()` returns true. `cancel` is checked after each
    /// yield and after the waiter flag is raised, before sleeping, so a canceller that sets its
    /// condition (with `SeqCst`) and then bumps and wakes `data_futex` (as
    /// [`RecordConsumer::nudge`] does) is never missed.
    pub fn wait_data_or(
        &mut self,
        timeout: Option<Duration>,
        policy: SpinPolicy,
        cancel: &dyn Fn() -> bool,
    ) -> Result<(), RecordError> {
        // Never wait holding bytes the producer may be waiting for.
        self.release();
        if self.available()? > 0 {
            return Ok(());
        }
        for _ in 0..policy.spins {
            if self.mem.peer_shares_cpu(Side::Consumer) {
                break;
            }
            spin_hint();
            if self.available()? > 0 {
                return Ok(());
            }
        }
        for _ in 0..policy.yields {
            thread::yield_now();
            if self.available()? > 0 {
                return Ok(());
            }
            if cancel() {
                return Err(RecordError::WouldBlock);
            }
        }
        let deadline = deadline_of(timeout);
        loop {
            let wake = &self.mem.ctrl().wake.0;
            let seq = wake.data_futex.load(Ordering::SeqCst);
            wake.data_waiting.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let done = match self.available() {
                Ok(n) if n > 0 => Some(Ok(())),
                Ok(_) if cancel() => Some(Err(RecordError::WouldBlock)),
                Ok(_) => remaining(deadline).err().map(Err),
                Err(e) => Some(Err(e)),
            };
            let wake = &self.mem.ctrl().wake.0;
            if let Some(r) = done {
                wake.data_waiting.store(0, Ordering::Relaxed);
                return r;
            }
            let left = remaining(deadline)?;
            self.mem.waker().wait(&wake.data_futex, seq, left);
            if self.available()? > 0 {
                return Ok(());
            }
            // Woken before the deadline with nothing to read (a nudge, or anyone waking the
            // word, changed or not): let the caller look around and count a wake-up that had
            // no reason.
            let wake = &self.mem.ctrl().wake.0;
            if wake.data_futex.load(Ordering::SeqCst) != seq || remaining(deadline).is_ok() {
                return Err(RecordError::WouldBlock);
            }
        }
    }

    /// Wake a consumer sleeping on `mem`'s data futex without publishing anything (its wait
    /// returns [`RecordError::WouldBlock`]). Set the condition the waiter's `cancel` checks
    /// first.
    pub fn nudge(mem: &M) {
        let wake = &mem.ctrl().wake.0;
        wake.data_futex.fetch_add(1, Ordering::SeqCst);
        mem.waker().wake(&wake.data_futex);
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
