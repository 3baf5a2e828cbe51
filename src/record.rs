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

mod consumer;
mod mem;
mod producer;
#[cfg(not(loom))]
mod shm_mem;

pub use consumer::RecordConsumer;
pub use mem::{HeapRecordMem, RecordMem};
pub use producer::RecordProducer;
#[cfg(not(loom))]
pub use shm_mem::ShmRecordMem;

#[cfg(doc)] // Names the module docs link to.
use crate::region::RingCtrl;
#[cfg(doc)] // Names the module docs link to.
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

#[cfg(all(test, not(loom)))]
mod tests;
