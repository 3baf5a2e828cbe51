//! The bare rings: single-producer single-consumer rings of two-word messages in the shared
//! memory, every position read from the peer checked.

use super::shm::{RingAt, Shm};
use super::watch::Halt;
use std::sync::atomic::Ordering;

/// The producing side of a ring of two-word messages.
pub(super) struct Producer<'a> {
    shm: &'a Shm,
    pub(super) at: RingAt,
    /// Next position to write (published up to it by `publish`).
    pub(super) head: u64,
    /// The consumer's position as last read.
    tail: u64,
}

impl<'a> Producer<'a> {
    pub(super) fn new(shm: &'a Shm, at: RingAt) -> Self {
        Producer {
            shm,
            at,
            head: 0,
            tail: 0,
        }
    }

    /// Write one message if there is room (unpublished until [`Producer::publish`]).
    #[inline(always)]
    pub(super) fn push(&mut self, a: u64, b: u64) -> Result<bool, Halt> {
        if self.head.wrapping_sub(self.tail) >= self.at.cap {
            let tail = self.shm.word(self.at.tail).load(Ordering::Acquire);
            // The consumer cannot be ahead of us, nor more than a ring behind.
            if self.head.wrapping_sub(tail) > self.at.cap {
                return Err(Halt::Fail(format!(
                    "limit: ring consumer position {tail} out of range (producer at {})",
                    self.head
                )));
            }
            self.tail = tail;
            if self.head.wrapping_sub(tail) >= self.at.cap {
                return Ok(false);
            }
        }
        let slot = self.at.slots + (self.head & (self.at.cap - 1)) as usize * 16;
        self.shm.word(slot).store(a, Ordering::Relaxed);
        self.shm.word(slot + 8).store(b, Ordering::Relaxed);
        self.head = self.head.wrapping_add(1);
        Ok(true)
    }

    /// Make every written message visible to the consumer.
    #[inline(always)]
    pub(super) fn publish(&self) {
        self.shm
            .word(self.at.head)
            .store(self.head, Ordering::Release);
    }
}

/// The consuming side of a ring of two-word messages.
pub(super) struct Consumer<'a> {
    shm: &'a Shm,
    at: RingAt,
    /// Next position to read (released up to it by `release`).
    pub(super) tail: u64,
    /// The producer's position as last read.
    head: u64,
}

impl<'a> Consumer<'a> {
    pub(super) fn new(shm: &'a Shm, at: RingAt) -> Self {
        Consumer {
            shm,
            at,
            tail: 0,
            head: 0,
        }
    }

    /// How many messages can be read now.
    #[inline(always)]
    pub(super) fn available(&mut self) -> Result<u64, Halt> {
        if self.head == self.tail {
            let head = self.shm.word(self.at.head).load(Ordering::Acquire);
            // The producer cannot be behind us, nor more than a ring ahead.
            if head.wrapping_sub(self.tail) > self.at.cap {
                return Err(Halt::Fail(format!(
                    "limit: ring producer position {head} out of range (consumer at {})",
                    self.tail
                )));
            }
            self.head = head;
        }
        Ok(self.head.wrapping_sub(self.tail))
    }

    /// Read the next message; only after [`Consumer::available`] said there is one.
    #[inline(always)]
    pub(super) fn read(&mut self) -> (u64, u64) {
        debug_assert!(self.head != self.tail);
        let slot = self.at.slots + (self.tail & (self.at.cap - 1)) as usize * 16;
        let a = self.shm.word(slot).load(Ordering::Relaxed);
        let b = self.shm.word(slot + 8).load(Ordering::Relaxed);
        self.tail = self.tail.wrapping_add(1);
        (a, b)
    }

    /// Give every read slot back to the producer.
    #[inline(always)]
    pub(super) fn release(&self) {
        self.shm
            .word(self.at.tail)
            .store(self.tail, Ordering::Release);
    }
}
