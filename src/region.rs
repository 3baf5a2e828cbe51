//! The memory a ring lives in: the [`RingMem`] trait, the control block layout [`RingCtrl`], and
//! [`HeapRingMem`], a ring's memory on the heap for unit tests, Miri and loom.
//!
//! The shared-memory implementation of the same trait is [`crate::shm::ShmRingMem`]. Because
//! the ring in [`crate::ring`] is generic over `RingMem`, the code that the model checker
//! explores over heap memory is the code that the binaries run over a real mapping.

use crate::sync::{Arc, AtomicU32, AtomicU64, UnsafeCell};
use crate::wait::{ModelFutex, Wake};

/// Bytes in one ring slot: one encoded request or response (see [`crate::protocol`]).
pub const SLOT_SIZE: usize = 32;

/// One slot's bytes, always handled by value: a slot is copied out of the ring once and then
/// decoded from the copy.
pub type Slot = [u8; SLOT_SIZE];

/// A value alone on its own 64-byte cache line, so that fields written by different sides do not
/// share a line (false sharing).
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct CacheLine<T>(pub T);

/// The producer's line: written only by the producer.
#[derive(Debug, Default)]
#[repr(C)]
pub struct ProducerLine {
    /// Count of slots ever published (monotonic; the slot index is `tail & (capacity - 1)`).
    pub tail: AtomicU64,
}

/// The consumer's line: written only by the consumer.
#[derive(Debug, Default)]
#[repr(C)]
pub struct ConsumerLine {
    /// Count of slots ever consumed (monotonic; `head <= tail <= head + capacity`).
    pub head: AtomicU64,
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

/// The memory a ring lives in: a control block, `capacity` slots, and the way to sleep on and
/// wake its futex words.
pub trait RingMem: Send + Sync {
    /// How a side sleeps on a word of [`RingCtrl::wake`].
    type Waker: Wake;

    /// The control block.
    fn ctrl(&self) -> &RingCtrl;

    /// Number of slots: a power of two, fixed for the memory's life, and known to this process
    /// independently of anything a peer can write.
    fn capacity(&self) -> usize;

    /// The futex implementation for this memory.
    fn waker(&self) -> &Self::Waker;

    /// Register the one producer or the one consumer of this memory in this process: true the
    /// first time for each side. [`crate::ring::Producer::new`] and
    /// [`crate::ring::Consumer::new`] panic on false, so that safe code cannot build two
    /// producers (or two consumers) over memory whose slot accessors rely on the
    /// single-producer/single-consumer protocol for soundness, as heap memory's do. Memory
    /// whose accessors are atomics (a shared mapping, which another process writes anyway) may
    /// always return true.
    fn claim(&self, side: Side) -> bool;

    /// Copy slot `index` out.
    ///
    /// # Safety
    ///
    /// `index < self.capacity()`, and no thread of this process writes slot `index` at the same
    /// time (the ring's single-producer/single-consumer protocol guarantees it).
    unsafe fn read_slot(&self, index: usize) -> Slot;

    /// Copy `slot` into slot `index`.
    ///
    /// # Safety
    ///
    /// `index < self.capacity()`, and no thread of this process reads or writes slot `index` at
    /// the same time (the ring's single-producer/single-consumer protocol guarantees it).
    unsafe fn write_slot(&self, index: usize, slot: &Slot);
}

/// One half of a ring (see [`RingMem::claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The writing half.
    Producer,
    /// The reading half.
    Consumer,
}

impl Side {
    fn bit(self) -> u32 {
        match self {
            Side::Producer => 1,
            Side::Consumer => 2,
        }
    }
}

impl<T: RingMem> RingMem for Arc<T> {
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
    unsafe fn read_slot(&self, index: usize) -> Slot {
        // SAFETY: forwarded; the caller upholds the same contract.
        unsafe { (**self).read_slot(index) }
    }
    unsafe fn write_slot(&self, index: usize, slot: &Slot) {
        // SAFETY: forwarded; the caller upholds the same contract.
        unsafe { (**self).write_slot(index, slot) }
    }
}

/// A ring's memory on the heap, with an emulated futex ([`ModelFutex`]). Slots are
/// [`UnsafeCell`]s from the facade, so under loom every slot access is checked for data races:
/// a flaw in the ring's publication protocol shows up as a race report.
#[derive(Debug)]
pub struct HeapRingMem {
    ctrl: RingCtrl,
    slots: Box<[UnsafeCell<Slot>]>,
    futex: ModelFutex,
    /// The sides claimed so far ([`Side`] bits): each at most once.
    claimed: AtomicU32,
}

// SAFETY: the slots are only accessed through `read_slot`/`write_slot`, whose contracts forbid
// concurrent conflicting access; everything else is atomics and a facade mutex.
unsafe impl Sync for HeapRingMem {}
// SAFETY: all fields are owned data that may move between threads.
unsafe impl Send for HeapRingMem {}

impl HeapRingMem {
    /// Heap memory for a ring of `capacity` slots (a power of two, at least 1).
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "ring capacity must be a power of two"
        );
        Self {
            ctrl: RingCtrl::default(),
            slots: (0..capacity)
                .map(|_| UnsafeCell::new([0u8; SLOT_SIZE]))
                .collect(),
            futex: ModelFutex::new(),
            claimed: AtomicU32::new(0),
        }
    }
}

impl RingMem for HeapRingMem {
    type Waker = ModelFutex;

    fn ctrl(&self) -> &RingCtrl {
        &self.ctrl
    }
    fn capacity(&self) -> usize {
        self.slots.len()
    }
    fn waker(&self) -> &ModelFutex {
        &self.futex
    }
    fn claim(&self, side: Side) -> bool {
        self.claimed
            .fetch_or(side.bit(), crate::sync::Ordering::SeqCst)
            & side.bit()
            == 0
    }
    unsafe fn read_slot(&self, index: usize) -> Slot {
        // SAFETY: `index` is in bounds (slice indexing checks it anyway) and the caller promises
        // no concurrent write to this slot.
        self.slots[index].with(|p| unsafe { *p })
    }
    unsafe fn write_slot(&self, index: usize, slot: &Slot) {
        // SAFETY: `index` is in bounds (slice indexing checks it anyway) and the caller promises
        // no concurrent access to this slot.
        self.slots[index].with_mut(|p| unsafe { *p = *slot })
    }
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

    #[test]
    fn each_side_of_heap_memory_is_claimed_once() {
        let m = HeapRingMem::new(2);
        assert!(m.claim(Side::Producer));
        assert!(!m.claim(Side::Producer));
        assert!(m.claim(Side::Consumer));
        assert!(!m.claim(Side::Consumer));
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn heap_capacity_must_be_power_of_two() {
        let _ = HeapRingMem::new(3);
    }
}
