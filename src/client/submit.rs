//! Submitting requests: check them, book them, and write them into the request ring, making
//! room when it is full.

use super::book::Pending;
use super::{Client, ClientError, SCRATCH_KEEP, Sender, Ticket, check_view_limits};
use crate::record::{RecordError, RecordProducer, ShmRecordMem};
use crate::sync::Ordering;
use crate::wire::{Assembly, Op, OpView, encode_view};
use std::time::{Duration, Instant};

impl Client {
    /// Submit one request; its response is collected with [`Client::wait`]. A key or value
    /// over the server's limits is refused here ([`ClientError::TooLarge`]), unsent.
    pub fn submit(&self, op: Op) -> Result<Ticket, ClientError> {
        self.submit_view(op.view())
    }

    /// [`Client::submit`] of an operation whose keys and values are borrowed: nothing is
    /// copied but into the ring.
    pub fn submit_view(&self, op: OpView<'_>) -> Result<Ticket, ClientError> {
        self.submit_ops(std::iter::once(op)).map(Ticket)
    }

    /// Submit many requests at once (one publication of the ring, one wake of the server).
    /// They are taken in this order, so same-key operations take effect in this order. If one
    /// is over the server's limits, none is sent.
    pub fn submit_all(&self, ops: &[Op]) -> Result<Vec<Ticket>, ClientError> {
        let first = self.submit_ops(ops.iter().map(Op::view))?;
        Ok((first..first + ops.len() as u64).map(Ticket).collect())
    }

    /// Check, book and send `ops`; the id of the first (the others follow it).
    fn submit_ops<'a>(
        &self,
        ops: impl ExactSizeIterator<Item = OpView<'a>> + Clone,
    ) -> Result<u64, ClientError> {
        for op in ops.clone() {
            check_view_limits(&op, &self.info.limits)?;
        }
        self.submit_leading(ops, false).map(|(first, _)| first)
    }

    /// Book and send `ops`, whose limits the caller checked; if `lead` and nobody leads, the
    /// caller takes the lead under the same lock as the booking (the second value says
    /// whether it did).
    pub(super) fn submit_leading<'a>(
        &self,
        ops: impl ExactSizeIterator<Item = OpView<'a>> + Clone,
        lead: bool,
    ) -> Result<(u64, bool), ClientError> {
        let n = ops.len() as u64;
        let first = self.next_id.fetch_add(n, Ordering::Relaxed);
        let leading = self.book_pending(first..first + n, lead)?;
        if let Err(e) = self.send(first, ops) {
            if leading {
                self.book.lock().leader = false;
                self.cond.notify_all();
            }
            return Err(e);
        }
        Ok((first, leading))
    }

    /// Enter requests `ids` as waiting for their answers (before they are sent, so that an
    /// answer always finds its entry).
    fn book_pending(
        &self,
        ids: impl Iterator<Item = u64>,
        lead: bool,
    ) -> Result<bool, ClientError> {
        let mut book = self.book.lock();
        if let Some(e) = &book.failed {
            return Err(e.clone());
        }
        for id in ids {
            book.pending
                .insert(id, Pending::Waiting(Assembly::default()));
        }
        let leading = lead && !book.leader;
        book.leader |= leading;
        Ok(leading)
    }

    /// Write `ops` with ids from `first` on into the request ring and publish them.
    fn send<'a>(
        &self,
        first: u64,
        ops: impl Iterator<Item = OpView<'a>>,
    ) -> Result<(), ClientError> {
        let mut guard = self.producer.lock();
        let Sender { ring, buf } = &mut *guard;
        let mut since = None;
        for (id, op) in (first..).zip(ops) {
            buf.clear();
            encode_view(id, &op, buf);
            loop {
                match ring.write(buf) {
                    Ok(()) => break,
                    Err(RecordError::WouldBlock) => {
                        ring.publish();
                        let since = *since.get_or_insert_with(Instant::now);
                        self.make_room(ring, buf.len(), since)?;
                    }
                    Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
                }
            }
        }
        ring.publish();
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        Ok(())
    }

    /// The request ring has no room for a `len`-byte request: drain responses if nobody else
    /// is, then wait a little for space, checking that the server lives and has made progress
    /// since `since`.
    fn make_room(
        &self,
        producer: &mut RecordProducer<ShmRecordMem>,
        len: usize,
        since: Instant,
    ) -> Result<(), ClientError> {
        if let Some(mut rx) = self.receiver.try_lock() {
            let got = self.drain(&mut rx, None)?.n;
            drop(rx);
            if got > 0 {
                return Ok(());
            }
        }
        match producer.wait_space(len, Some(Duration::from_millis(1))) {
            Ok(()) => {
                self.book.lock().progress_marks += 1;
                Ok(())
            }
            Err(RecordError::WouldBlock) => Ok(()),
            Err(RecordError::TimedOut) => {
                self.check_server()?;
                self.check_stall(since)
            }
            Err(e) => Err(self.fail(ClientError::Protocol(e.to_string()))),
        }
    }
}
