//! The lock-free single-producer/single-consumer ring of fixed-size slots, with its
//! spin-then-futex wait/wake protocol, generic over the memory it lives in ([`RingMem`]).
//!
//! # Algorithm
//!
//! A bounded SPSC queue after Lamport, with the refinements of FastForward/`rte_ring`: two
//! monotonically increasing 64-bit counters, `tail` (slots ever published, written only by the
//! producer) and `head` (slots ever consumed, written only by the consumer), each on its own cache
//! line. Slot `i` lives at `i & (capacity - 1)`. The invariant is `head <= tail <= head + capacity`.
//!
//! * Push: the producer writes the slot at `tail`, then stores `tail + 1` with `Release`. The
//!   consumer loads `tail` with `Acquire`, so the slot's bytes happen-before its read.
//! * Pop: the consumer copies the slot at `head` out, then stores `head + 1` with `Release`; the
//!   producer loads `head` with `Acquire` before reusing the slot, so the read is finished before
//!   the slot is overwritten.
//! * Each side keeps its own counter privately (never re-reading it from shared memory) and a
//!   cached copy of the other's, refreshed only when the cache says full/empty. A counter read
//!   from the peer is validated against the invariant; a violation is [`RingError::Corrupt`]
//!   and nothing is read or written.
//!
//! # Wait/wake
//!
//! A side that finds the ring empty (consumer) or full (producer) spins, yields, then sleeps on
//! a futex word in [`WakeLine`](crate::region::WakeLine) with a Dekker-style handshake:
//!
//! ```text
//! sleeper (consumer)                          waker (producer)
//! seq = data_futex.load()                     tail.store(t + 1, Release)
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
//! `space_futex`). The loom models in `tests/loom/` check exactly this code for lost wake-ups.

use crate::region::{RingMem, Side, Slot};
use crate::sync::{Ordering, fence, spin_hint, thread};
use crate::wait::{SpinPolicy, Wake};
use std::time::{Duration, Instant};

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The ring is full (push) or empty (pop) and the call does not wait.
    WouldBlock,
    /// A waiting call's timeout passed first.
    TimedOut,
    /// A counter read from the peer breaks `head <= tail <= head + capacity`: the peer is
    /// broken or hostile. Nothing was read or written.
    Corrupt {
        /// Our own counter.
        ours: u64,
        /// The peer's counter as read.
        theirs: u64,
    },
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::WouldBlock => f.write_str("ring would block"),
            RingError::TimedOut => f.write_str("timed out waiting on the ring"),
            RingError::Corrupt { ours, theirs } => write!(
                f,
                "ring counters corrupt: ours {ours}, peer's {theirs} (peer broken or hostile)"
            ),
        }
    }
}

impl std::error::Error for RingError {}

/// Create both halves of a ring over `mem`, whose counters must be equal (a fresh or reset
/// ring). Used for heap rings; shared-memory rings build each half in its own process.
pub fn channel<M: RingMem + Clone>(mem: M) -> (Producer<M>, Consumer<M>) {
    (Producer::new(mem.clone()), Consumer::new(mem))
}

/// The writing half of a ring. Exactly one `Producer` may exist per ring at a time (in all
/// processes together); several threads share one behind a process-private lock.
#[derive(Debug)]
pub struct Producer<M: RingMem> {
    mem: M,
    /// Our authoritative `tail`: slots published so far.
    tail: u64,
    /// Slots written but not yet published (`write` without `publish`).
    unpublished: u64,
    /// Last `head` read from the consumer.
    cached_head: u64,
    mask: u64,
    policy: SpinPolicy,
}

/// The reading half of a ring. Exactly one `Consumer` may exist per ring at a time.
#[derive(Debug)]
pub struct Consumer<M: RingMem> {
    mem: M,
    /// Our authoritative `head`: slots read so far (released or not).
    head: u64,
    /// The `head` last published to the producer (`released <= head`).
    released: u64,
    /// Last `tail` read from the producer.
    cached_tail: u64,
    mask: u64,
    policy: SpinPolicy,
}

fn remaining(deadline: Option<Instant>) -> Result<Option<Duration>, RingError> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                Err(RingError::TimedOut)
            } else {
                Ok(Some(d - now))
            }
        }
    }
}

fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

impl<M: RingMem> Producer<M> {
    /// The producer half over `mem`, starting from the counters the memory holds now (its own
    /// `tail` is taken as the truth; the peer's `head` is validated when first used).
    ///
    /// # Panics
    ///
    /// If `mem` already has a producer in this process (see [`RingMem::claim`]).
    pub fn new(mem: M) -> Self {
        assert!(
            mem.claim(Side::Producer),
            "this ring memory already has a producer"
        );
        let tail = mem.ctrl().producer.0.tail.load(Ordering::Acquire);
        let mask = mem.capacity() as u64 - 1;
        Self {
            mem,
            tail,
            unpublished: 0,
            cached_head: tail,
            mask,
            policy: SpinPolicy::DEFAULT,
        }
    }

    /// Set how long waits spin before sleeping.
    pub fn set_policy(&mut self, policy: SpinPolicy) {
        self.policy = policy;
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.mem.capacity()
    }

    /// The memory this half works on.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Free slots as far as we know, refreshing the consumer's counter when our cache says none.
    fn free(&mut self) -> Result<u64, RingError> {
        let cap = self.mask + 1;
        let next = self.tail.wrapping_add(self.unpublished);
        let used = next.wrapping_sub(self.cached_head);
        if used < cap {
            return Ok(cap - used);
        }
        let head = self.mem.ctrl().consumer.0.head.load(Ordering::Acquire);
        // Valid: the consumer never goes back nor passes what we published, i.e. `head` lies
        // in `cached_head..=tail` (counted with wrapping arithmetic: the starting value came
        // from shared memory and may be anything).
        if head.wrapping_sub(self.cached_head) > self.tail.wrapping_sub(self.cached_head) {
            return Err(RingError::Corrupt {
                ours: self.tail,
                theirs: head,
            });
        }
        self.cached_head = head;
        Ok(cap - next.wrapping_sub(head))
    }

    /// Slots written and not yet published.
    pub fn unpublished(&self) -> u64 {
        self.unpublished
    }

    /// Write `slot` without publishing it (see [`Producer::publish`]); fails with
    /// [`RingError::WouldBlock`] when the ring is full.
    pub fn write(&mut self, slot: &Slot) -> Result<(), RingError> {
        if self.free()? == 0 {
            return Err(RingError::WouldBlock);
        }
        let index = (self.tail.wrapping_add(self.unpublished) & self.mask) as usize;
        // SAFETY: `index <= mask < capacity`. The slot is free: the consumer has consumed it
        // (its `head`, loaded with Acquire, is past it), and it will not read it until we
        // publish a `tail` past it. We are the only producer.
        unsafe { self.mem.write_slot(index, slot) };
        self.unpublished += 1;
        Ok(())
    }

    /// Publish every slot written since the last publish, and wake a sleeping consumer.
    pub fn publish(&mut self) {
        if self.unpublished == 0 {
            return;
        }
        self.tail = self.tail.wrapping_add(self.unpublished);
        self.unpublished = 0;
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

    /// Write and publish one slot without waiting.
    pub fn try_push(&mut self, slot: &Slot) -> Result<(), RingError> {
        self.write(slot)?;
        self.publish();
        Ok(())
    }

    /// Wait until at least one slot is free or `timeout` passes (`None`: no limit). Spins,
    /// yields, then sleeps on the futex. Returns [`RingError::WouldBlock`] when woken before
    /// the deadline while still full, [`RingError::TimedOut`] on timeout.
    pub fn wait_space(&mut self, timeout: Option<Duration>) -> Result<(), RingError> {
        self.wait_space_or(timeout, &|| false)
    }

    /// As [`Producer::wait_space`], but returns [`RingError::WouldBlock`] instead of sleeping
    /// once `cancel` holds (looked at after each yield and just before each sleep).
    pub fn wait_space_or(
        &mut self,
        timeout: Option<Duration>,
        cancel: &dyn Fn() -> bool,
    ) -> Result<(), RingError> {
        if self.free()? > 0 {
            return Ok(());
        }
        for _ in 0..self.policy.spins {
            spin_hint();
            if self.free()? > 0 {
                return Ok(());
            }
        }
        for _ in 0..self.policy.yields {
            thread::yield_now();
            if self.free()? > 0 {
                return Ok(());
            }
            if cancel() {
                return Err(RingError::WouldBlock);
            }
        }
        let deadline = deadline_of(timeout);
        loop {
            let seq = self.mem.ctrl().wake.0.space_futex.load(Ordering::SeqCst);
            self.mem
                .ctrl()
                .wake
                .0
                .space_waiting
                .store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.free()? > 0 {
                self.mem
                    .ctrl()
                    .wake
                    .0
                    .space_waiting
                    .store(0, Ordering::Relaxed);
                return Ok(());
            }
            if cancel() {
                self.mem
                    .ctrl()
                    .wake
                    .0
                    .space_waiting
                    .store(0, Ordering::Relaxed);
                return Err(RingError::WouldBlock);
            }
            let left = match remaining(deadline) {
                Ok(left) => left,
                Err(e) => {
                    self.mem
                        .ctrl()
                        .wake
                        .0
                        .space_waiting
                        .store(0, Ordering::Relaxed);
                    return Err(e);
                }
            };
            self.mem
                .waker()
                .wait(&self.mem.ctrl().wake.0.space_futex, seq, left);
            if self.free()? > 0 {
                return Ok(());
            }
            // Woken before the deadline (by a nudge, or by anyone waking the word without
            // changing it) and still full: let the caller look around, and count it.
            if self.mem.ctrl().wake.0.space_futex.load(Ordering::SeqCst) != seq
                || remaining(deadline).is_ok()
            {
                return Err(RingError::WouldBlock);
            }
        }
    }

    /// Push one slot, waiting for space up to `timeout`.
    pub fn push(&mut self, slot: &Slot, timeout: Option<Duration>) -> Result<(), RingError> {
        let deadline = deadline_of(timeout);
        loop {
            match self.wait_space(remaining(deadline)?) {
                Ok(()) => return self.try_push(slot),
                Err(RingError::WouldBlock) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl<M: RingMem> Consumer<M> {
    /// The consumer half over `mem`, starting from the counters the memory holds now (its own
    /// `head` is taken as the truth; the peer's `tail` is validated when used).
    ///
    /// # Panics
    ///
    /// If `mem` already has a consumer in this process (see [`RingMem::claim`]).
    pub fn new(mem: M) -> Self {
        assert!(
            mem.claim(Side::Consumer),
            "this ring memory already has a consumer"
        );
        let head = mem.ctrl().consumer.0.head.load(Ordering::Acquire);
        let mask = mem.capacity() as u64 - 1;
        Self {
            mem,
            head,
            released: head,
            cached_tail: head,
            mask,
            policy: SpinPolicy::DEFAULT,
        }
    }

    /// Set how long waits spin before sleeping.
    pub fn set_policy(&mut self, policy: SpinPolicy) {
        self.policy = policy;
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.mem.capacity()
    }

    /// The memory this half works on.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Slots ready to read, refreshing the producer's counter when our cache says none.
    pub fn available(&mut self) -> Result<u64, RingError> {
        let ready = self.cached_tail.wrapping_sub(self.head);
        if ready > 0 {
            return Ok(ready);
        }
        let tail = self.mem.ctrl().producer.0.tail.load(Ordering::Acquire);
        // Valid: the producer never goes back, nor runs more than `capacity` ahead of what we
        // released (wrapping arithmetic: the starting value may be anything).
        let ahead = tail.wrapping_sub(self.released);
        if ahead > self.mask + 1 || ahead < self.cached_tail.wrapping_sub(self.released) {
            return Err(RingError::Corrupt {
                ours: self.head,
                theirs: tail,
            });
        }
        self.cached_tail = tail;
        Ok(tail.wrapping_sub(self.head))
    }

    /// Copy the next slot out, without waiting, and give its place back to the producer.
    pub fn try_pop(&mut self) -> Result<Slot, RingError> {
        let slot = self.read()?;
        self.release();
        Ok(slot)
    }

    /// Copy the next slot out without giving its place back yet (see [`Consumer::release`]):
    /// several reads then one release cost one publication and one fence, not one each.
    pub fn read(&mut self) -> Result<Slot, RingError> {
        if self.available()? == 0 {
            return Err(RingError::WouldBlock);
        }
        let index = (self.head & self.mask) as usize;
        // SAFETY: `index <= mask < capacity`. The producer published this slot (we loaded its
        // `tail` with Acquire) and will not write it again until we publish a `head` past it
        // (`release` publishes at most our private `head`, which is past it only after this
        // copy). We are the only consumer.
        let slot = unsafe { self.mem.read_slot(index) };
        self.head = self.head.wrapping_add(1);
        Ok(slot)
    }

    /// Slots known to be ready without looking at the producer's counter (no shared-memory
    /// access; 0 means "none known", not "none").
    pub fn ready_cached(&self) -> u64 {
        self.cached_tail.wrapping_sub(self.head)
    }

    /// Slots read and not yet given back.
    pub fn unreleased(&self) -> u64 {
        self.head.wrapping_sub(self.released)
    }

    /// Give every slot read so far back to the producer, and wake it if it sleeps for space.
    pub fn release(&mut self) {
        if self.released == self.head {
            return;
        }
        self.released = self.head;
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

    /// Wait until a slot is ready or `timeout` passes (`None`: no limit). Spins, yields, then
    /// sleeps on the futex. Returns [`RingError::WouldBlock`] when woken before the deadline
    /// with nothing to read (a nudge, a wake-up without a publish, a signal),
    /// [`RingError::TimedOut`] on timeout.
    pub fn wait_data(&mut self, timeout: Option<Duration>) -> Result<(), RingError> {
        self.wait_data_with(timeout, self.policy)
    }

    /// [`Consumer::wait_data`] with an explicit spin policy.
    pub fn wait_data_with(
        &mut self,
        timeout: Option<Duration>,
        policy: SpinPolicy,
    ) -> Result<(), RingError> {
        self.wait_data_or(timeout, policy, &|| false)
    }

    /// [`Consumer::wait_data`] that also gives up, with [`RingError::WouldBlock`], once
    /// `cancel()` returns true. `cancel` is checked after the waiter flag is raised and before
    /// sleeping, so a canceller that sets its condition (with `SeqCst`) and then bumps and wakes
    /// `data_futex` (as [`Consumer::nudge`] does) is never missed.
    pub fn wait_data_or(
        &mut self,
        timeout: Option<Duration>,
        policy: SpinPolicy,
        cancel: &dyn Fn() -> bool,
    ) -> Result<(), RingError> {
        // Never wait holding slots the producer may be waiting for.
        self.release();
        if self.available()? > 0 {
            return Ok(());
        }
        for _ in 0..policy.spins {
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
                return Err(RingError::WouldBlock);
            }
        }
        let deadline = deadline_of(timeout);
        loop {
            let seq = self.mem.ctrl().wake.0.data_futex.load(Ordering::SeqCst);
            self.mem
                .ctrl()
                .wake
                .0
                .data_waiting
                .store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.available()? > 0 {
                self.mem
                    .ctrl()
                    .wake
                    .0
                    .data_waiting
                    .store(0, Ordering::Relaxed);
                return Ok(());
            }
            if cancel() {
                self.mem
                    .ctrl()
                    .wake
                    .0
                    .data_waiting
                    .store(0, Ordering::Relaxed);
                return Err(RingError::WouldBlock);
            }
            let left = match remaining(deadline) {
                Ok(left) => left,
                Err(e) => {
                    self.mem
                        .ctrl()
                        .wake
                        .0
                        .data_waiting
                        .store(0, Ordering::Relaxed);
                    return Err(e);
                }
            };
            self.mem
                .waker()
                .wait(&self.mem.ctrl().wake.0.data_futex, seq, left);
            if self.available()? > 0 {
                return Ok(());
            }
            // Woken before the deadline with nothing to read (a nudge, or anyone waking the
            // word, changed or not): let the caller look around (shutdown, a departed peer)
            // and count a wake-up that had no reason.
            if self.mem.ctrl().wake.0.data_futex.load(Ordering::SeqCst) != seq
                || remaining(deadline).is_ok()
            {
                return Err(RingError::WouldBlock);
            }
        }
    }

    /// Wake a consumer sleeping on `mem`'s data futex without publishing anything (its wait
    /// returns [`RingError::WouldBlock`]). Set the condition the waiter's `cancel` checks first.
    pub fn nudge(mem: &M) {
        let wake = &mem.ctrl().wake.0;
        wake.data_futex.fetch_add(1, Ordering::SeqCst);
        mem.waker().wake(&wake.data_futex);
    }

    /// Pop one slot, waiting up to `timeout`.
    pub fn pop(&mut self, timeout: Option<Duration>) -> Result<Slot, RingError> {
        let deadline = deadline_of(timeout);
        loop {
            match self.wait_data(remaining(deadline)?) {
                Ok(()) => return self.try_pop(),
                Err(RingError::WouldBlock) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::region::{HeapRingMem, SLOT_SIZE};
    use crate::sync::Arc;

    fn slot(n: u64) -> Slot {
        let mut s = [0u8; SLOT_SIZE];
        s[..8].copy_from_slice(&n.to_le_bytes());
        s[SLOT_SIZE - 1] = (n % 251) as u8;
        s
    }

    fn num(s: &Slot) -> u64 {
        u64::from_le_bytes(s[..8].try_into().unwrap())
    }

    #[test]
    fn fifo_full_empty_and_wraparound() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(4)));
        assert_eq!(c.try_pop(), Err(RingError::WouldBlock));
        for round in 0..10u64 {
            for i in 0..4 {
                p.try_push(&slot(round * 4 + i)).unwrap();
            }
            assert_eq!(p.try_push(&slot(99)), Err(RingError::WouldBlock));
            for i in 0..4 {
                let s = c.try_pop().unwrap();
                assert_eq!(num(&s), round * 4 + i);
                assert_eq!(s, slot(round * 4 + i));
            }
            assert_eq!(c.try_pop(), Err(RingError::WouldBlock));
        }
    }

    #[test]
    fn unpublished_writes_are_invisible_until_publish() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(8)));
        p.write(&slot(1)).unwrap();
        p.write(&slot(2)).unwrap();
        assert_eq!(c.try_pop(), Err(RingError::WouldBlock));
        p.publish();
        assert_eq!(num(&c.try_pop().unwrap()), 1);
        assert_eq!(num(&c.try_pop().unwrap()), 2);
    }

    #[test]
    fn counters_starting_near_u64_max_wrap_cleanly() {
        // A hostile peer may leave any counter value in shared memory before a side is built.
        let mem = Arc::new(HeapRingMem::new(2));
        mem.ctrl()
            .producer
            .0
            .tail
            .store(u64::MAX - 1, Ordering::SeqCst);
        mem.ctrl()
            .consumer
            .0
            .head
            .store(u64::MAX - 1, Ordering::SeqCst);
        let (mut p, mut c) = channel(mem);
        for i in 0..10 {
            p.try_push(&slot(i)).unwrap();
            p.try_push(&slot(i + 100)).unwrap();
            assert_eq!(p.try_push(&slot(0)), Err(RingError::WouldBlock));
            assert_eq!(num(&c.try_pop().unwrap()), i);
            assert_eq!(num(&c.try_pop().unwrap()), i + 100);
            assert_eq!(c.try_pop(), Err(RingError::WouldBlock));
        }
    }

    #[test]
    fn reads_hold_their_slots_until_release() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(2)));
        p.try_push(&slot(1)).unwrap();
        p.try_push(&slot(2)).unwrap();
        assert_eq!(num(&c.read().unwrap()), 1);
        assert_eq!(num(&c.read().unwrap()), 2);
        assert_eq!(c.read(), Err(RingError::WouldBlock));
        // Not released: the producer still sees a full ring.
        assert_eq!(p.try_push(&slot(3)), Err(RingError::WouldBlock));
        c.release();
        p.try_push(&slot(3)).unwrap();
        p.try_push(&slot(4)).unwrap();
        assert_eq!(num(&c.try_pop().unwrap()), 3);
        assert_eq!(num(&c.try_pop().unwrap()), 4);
    }

    #[test]
    fn unpublished_writes_count_against_capacity() {
        let (mut p, _c) = channel(Arc::new(HeapRingMem::new(2)));
        p.write(&slot(1)).unwrap();
        p.write(&slot(2)).unwrap();
        assert_eq!(p.write(&slot(3)), Err(RingError::WouldBlock));
    }

    #[test]
    fn timeouts_expire() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(1)));
        c.set_policy(SpinPolicy::BLOCK);
        p.set_policy(SpinPolicy::BLOCK);
        assert_eq!(
            c.pop(Some(Duration::from_millis(5))),
            Err(RingError::TimedOut)
        );
        p.try_push(&slot(1)).unwrap();
        assert_eq!(
            p.push(&slot(2), Some(Duration::from_millis(5))),
            Err(RingError::TimedOut)
        );
    }

    #[test]
    fn corrupt_peer_counters_are_refused() {
        let mem = Arc::new(HeapRingMem::new(4));
        let (mut p, mut c) = channel(mem.clone());
        // A tail more than capacity ahead.
        mem.ctrl().producer.0.tail.store(100, Ordering::SeqCst);
        assert!(matches!(c.try_pop(), Err(RingError::Corrupt { .. })));
        // A head past our tail.
        for i in 0..4 {
            p.write(&slot(i)).unwrap();
        }
        mem.ctrl().consumer.0.head.store(77, Ordering::SeqCst);
        assert!(matches!(p.write(&slot(5)), Err(RingError::Corrupt { .. })));
    }

    #[test]
    fn threads_stream_in_order_with_blocking() {
        for policy in [SpinPolicy::DEFAULT, SpinPolicy::BLOCK] {
            let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(8)));
            p.set_policy(policy);
            c.set_policy(policy);
            // Miri interprets every step: a few hundred slots still wrap the 8-slot ring often.
            const N: u64 = if cfg!(miri) { 300 } else { 20_000 };
            let t = std::thread::spawn(move || {
                for i in 0..N {
                    p.push(&slot(i), None).unwrap();
                }
            });
            for i in 0..N {
                assert_eq!(num(&c.pop(None).unwrap()), i);
            }
            t.join().unwrap();
        }
    }

    #[test]
    fn errors_say_what_happened() {
        assert_eq!(RingError::WouldBlock.to_string(), "ring would block");
        assert_eq!(
            RingError::TimedOut.to_string(),
            "timed out waiting on the ring"
        );
        assert_eq!(
            RingError::Corrupt { ours: 3, theirs: 9 }.to_string(),
            "ring counters corrupt: ours 3, peer's 9 (peer broken or hostile)"
        );
    }

    #[test]
    fn remaining_time_runs_out_at_the_deadline() {
        assert_eq!(remaining(None), Ok(None));
        let now = Instant::now();
        assert_eq!(remaining(Some(now)), Err(RingError::TimedOut));
        let left = remaining(Some(now + Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert!(deadline_of(None).is_none());
        assert!(deadline_of(Some(Duration::from_secs(60))).unwrap() > now);
    }

    #[test]
    fn free_space_and_unpublished_slots_are_counted() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(4)));
        assert_eq!((p.capacity(), c.capacity()), (4, 4));
        assert_eq!(p.free(), Ok(4));
        p.write(&slot(1)).unwrap();
        p.write(&slot(2)).unwrap();
        assert_eq!(p.unpublished(), 2);
        assert_eq!(p.free(), Ok(2));
        p.publish();
        assert_eq!(p.unpublished(), 0);
        assert_eq!(p.free(), Ok(2));
        c.try_pop().unwrap();
        // Our cache of the consumer's counter still says 2 free; it is refreshed only when it
        // says none.
        assert_eq!(p.free(), Ok(2));
        p.write(&slot(3)).unwrap();
        p.write(&slot(4)).unwrap();
        assert_eq!(p.free(), Ok(1));
        p.write(&slot(5)).unwrap();
        assert_eq!(p.free(), Ok(0));
        assert_eq!(p.unpublished(), 3);
    }

    #[test]
    fn waits_with_a_zero_timeout_return_at_once() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(1)));
        p.set_policy(SpinPolicy::BLOCK);
        c.set_policy(SpinPolicy::BLOCK);
        assert_eq!(p.wait_space(Some(Duration::ZERO)), Ok(()));
        assert_eq!(c.wait_data(Some(Duration::ZERO)), Err(RingError::TimedOut));
        p.try_push(&slot(1)).unwrap();
        assert_eq!(p.wait_space(Some(Duration::ZERO)), Err(RingError::TimedOut));
        assert_eq!(c.wait_data(Some(Duration::ZERO)), Ok(()));
    }

    #[test]
    fn policies_are_kept_and_cached_counts_need_no_look() {
        let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(4)));
        assert_eq!(
            (p.policy, c.policy),
            (SpinPolicy::DEFAULT, SpinPolicy::DEFAULT)
        );
        p.set_policy(SpinPolicy::BLOCK);
        c.set_policy(SpinPolicy::BLOCK);
        assert_eq!((p.policy, c.policy), (SpinPolicy::BLOCK, SpinPolicy::BLOCK));
        for i in 0..3 {
            p.try_push(&slot(i)).unwrap();
        }
        // Nothing read yet: the cache knows of nothing.
        assert_eq!(c.ready_cached(), 0);
        c.read().unwrap();
        // The read loaded the producer's counter: two more are known without looking.
        assert_eq!(c.ready_cached(), 2);
        assert_eq!(c.unreleased(), 1);
        c.read().unwrap();
        assert_eq!(c.ready_cached(), 1);
        assert_eq!(c.unreleased(), 2);
        c.release();
        assert_eq!(c.unreleased(), 0);
    }

    /// A wait that runs out reports `TimedOut`, whatever the policy (not `Ok` after a spin or
    /// a yield finds no room, nor `WouldBlock` when the futex word did not change).
    /// A wake-up that does not change the futex word (any peer can issue one) ends the wait
    /// with WouldBlock before its deadline, so that the waiter's caller sees and counts it,
    /// instead of going back to sleep unseen.
    #[test]
    fn wakes_without_a_changed_word_are_reported() {
        let wait_for_flag = |flag: &crate::sync::AtomicU32| {
            let end = Instant::now() + Duration::from_secs(10);
            while flag.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < end, "the waiter never slept");
                std::thread::yield_now();
            }
        };
        let mem = Arc::new(HeapRingMem::new(1));
        let (mut p, mut c) = channel(mem.clone());
        c.set_policy(SpinPolicy::BLOCK);
        p.set_policy(SpinPolicy::BLOCK);
        let long = Some(Duration::from_secs(30));
        let waiter = std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = c.wait_data(long);
            (r, t0.elapsed(), c)
        });
        wait_for_flag(&mem.ctrl().wake.0.data_waiting);
        // Wake until it returns: a wake that comes before it sleeps is lost, as with futex(2).
        let wake_until_done = |word: &crate::sync::AtomicU32, done: &dyn Fn() -> bool| {
            let end = Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(
                    Instant::now() < end,
                    "the waiter slept on through the wake-ups"
                );
                mem.waker().wake(word);
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wake_until_done(&mem.ctrl().wake.0.data_futex, &|| waiter.is_finished());
        let (r, took, _c) = waiter.join().unwrap();
        assert_eq!(r, Err(RingError::WouldBlock));
        assert!(took < Duration::from_secs(20), "{took:?}");

        p.try_push(&slot(1)).unwrap();
        let waiter = std::thread::spawn(move || {
            let r = p.wait_space(long);
            (r, p)
        });
        wait_for_flag(&mem.ctrl().wake.0.space_waiting);
        wake_until_done(&mem.ctrl().wake.0.space_futex, &|| waiter.is_finished());
        assert_eq!(waiter.join().unwrap().0, Err(RingError::WouldBlock));
    }

    #[test]
    fn direct_waits_report_their_timeout() {
        for policy in [SpinPolicy::BLOCK, SpinPolicy::DEFAULT] {
            let (mut p, mut c) = channel(Arc::new(HeapRingMem::new(1)));
            p.set_policy(policy);
            c.set_policy(policy);
            let t = Some(Duration::from_millis(2));
            assert_eq!(c.wait_data(t), Err(RingError::TimedOut), "{policy:?}");
            p.try_push(&slot(1)).unwrap();
            assert_eq!(p.wait_space(t), Err(RingError::TimedOut), "{policy:?}");
            assert_eq!(c.wait_data(t), Ok(()));
        }
    }
}
