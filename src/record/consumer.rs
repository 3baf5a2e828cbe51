//! [`RecordConsumer`], the reading half of a record ring: read, release, wait for data.

#[cfg(doc)] // Names the item docs link to.
use super::valid_capacity;
use super::{
    KIND_DATA, KIND_PADDING, RecordError, RecordMem, checked_capacity, deadline_of, max_payload,
    record_size, remaining,
};
use crate::region::Side;
use crate::sync::{Ordering, fence, spin_hint, thread};
use crate::wait::{SpinPolicy, Wake};
use std::time::Duration;

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
