//! The layout shared by every ring's control block: [`RingCtrl`] (the producer's, the
//! consumer's and the wake cache lines, all atomics) and [`Side`], the two halves of a ring.
//!
//! The record ring ([`crate::record`]) lives in memory that provides this control block and a
//! data area: [`crate::record::HeapRecordMem`] on the heap (unit tests, Miri and loom), or
//! [`crate::record::ShmRecordMem`] inside a sealed shared-memory mapping ([`crate::shm`]).
//! Because the ring is generic over its memory, the code that the model checker explores over
//! heap memory is the code that the binaries run over a real mapping.

use crate::sync::{AtomicU32, AtomicU64};

/// A value alone on its own 64-byte cache line, so that fields written by different sides do not
/// share a line (false sharing).
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct CacheLine<T>(pub T);

/// The producer's line: written only by the producer.
#[derive(Debug, Default)]
#[repr(C)]
pub struct ProducerLine {
    /// Count of bytes ever published (monotonic; see [`crate::record`] for how it maps to the
    /// data area).
    pub tail: AtomicU64,
    /// The CPU the producer last published from, plus one (0: not known). Only a hint for the
    /// consumer's spin (see [`crate::record::RecordMem::peer_shares_cpu`]).
    pub cpu: AtomicU32,
}

/// The consumer's line: written only by the consumer.
#[derive(Debug, Default)]
#[repr(C)]
pub struct ConsumerLine {
    /// Count of bytes ever consumed (monotonic; `head <= tail <= head + capacity`).
    pub head: AtomicU64,
    /// The CPU the consumer last released from, plus one (0: not known); a hint, as the
    /// producer's.
    pub cpu: AtomicU32,
}

/// The wake line: written only when a side goes to sleep or wakes the other, so that the fast
/// path merely reads it (it stays shared in both caches).
#[derive(Debug, Default)]
#[repr(C)]
pub struct WakeLine {
    /// Set to 1 by a consumer about to sleep on `data_futex`; cleared by the producer that wakes it.
    pub data_waiting: AtomicU32,
    /// Futex word the consumer sleeps on; the producer bumps it before waking.
    pub data_futex: AtomicU32,
    /// Set to 1 by a producer about to sleep on `space_futex` (ring full).
    pub space_waiting: AtomicU32,
    /// Futex word the producer sleeps on; the consumer bumps it before waking.
    pub space_futex: AtomicU32,
}

/// A ring's control block: three cache lines, 192 bytes, all atomics (any bit pattern is a valid
/// value, so a hostile peer can write nonsense into it but cannot make reading it undefined).
#[derive(Debug, Default)]
#[repr(C)]
pub struct RingCtrl {
    /// Producer-owned counter.
    pub producer: CacheLine<ProducerLine>,
    /// Consumer-owned counter.
    pub consumer: CacheLine<ConsumerLine>,
    /// Sleep/wake flags and futex words.
    pub wake: CacheLine<WakeLine>,
}

/// Bytes a [`RingCtrl`] occupies in a mapping.
pub const RING_CTRL_SIZE: usize = 3 * 64;

/// One half of a ring (see [`crate::record::RecordMem::claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The writing half.
    Producer,
    /// The reading half.
    Consumer,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ctrl_layout_is_three_cache_lines() {
        assert_eq!(std::mem::size_of::<RingCtrl>(), RING_CTRL_SIZE);
        assert_eq!(std::mem::align_of::<RingCtrl>(), 64);
        let c = RingCtrl::default();
        let base = &c as *const RingCtrl as usize;
        assert_eq!(&c.consumer as *const _ as usize - base, 64);
        assert_eq!(&c.wake as *const _ as usize - base, 128);
    }
}
