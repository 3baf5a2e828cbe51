//! [`RecordProducer`], the writing half of a record ring: write, publish, wait for room.

#[cfg(doc)] // Names the item docs link to.
use super::valid_capacity;
use super::{
    KIND_DATA, KIND_PADDING, RecordError, RecordMem, checked_capacity, deadline_of, header,
    max_payload, record_size, remaining,
};
use crate::region::Side;
use crate::sync::{Ordering, fence, spin_hint, thread};
use crate::wait::{SpinPolicy, Wake};
use std::time::Duration;

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
