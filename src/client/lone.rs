//! A lone call: a blocking call made while no other thread of the client drains the response
//! ring, answered without the ticket book.
//!
//! The caller takes the response ring's lock first (only if it is free) and keeps it until its
//! answer is in, so no other thread can read that answer: the request needs no entry in the
//! book, and the book's lock is not taken at all unless a response of another thread's request
//! turns up, which is filed as the leader would file it. A thread that becomes the leader
//! meanwhile waits for the ring's lock and then looks in the book before it waits on the ring
//! ([`Client::lead`]), as its answer may have been filed by the lone caller.
//!
//! Measured on the synchronous bench (docs/tuning.md, "A lone call without the ticket book"):
//! the book's two lock pairs were about a tenth of a synchronous round trip.

use super::book::file;
use super::{Client, ClientError, LIVENESS_POLL, Outcome, Receiver, SCRATCH_KEEP, Sender};
use crate::record::RecordError;
use crate::sync::{MutexGuard, Ordering};
use crate::wire::{Assembly, OpView, Response, decode_response, encode_view, value_response_view};
use std::time::Instant;

impl Client {
    /// Send `op` and wait for its answer as a lone call. `None` when the call must take the
    /// shared path instead: another thread holds the response ring, the client has failed (the
    /// shared path reports how), or the request ring has no room now (waiting for room needs
    /// the response ring drained by whoever holds it).
    ///
    /// `sink`: where a value answer goes instead of the outcome (see [`Sink`]).
    pub(super) fn call_lone(
        &self,
        op: &OpView<'_>,
        sink: Sink<'_>,
    ) -> Option<Result<Outcome, ClientError>> {
        if self.has_failed.load(Ordering::Acquire) {
            return None;
        }
        let mut rx = self.receiver.try_lock()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match self.send_lone(id, op) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some(self.await_lone(&mut rx, id, sink))
    }

    /// Write and publish request `id` if it fits now: `Ok(false)` if it does not.
    fn send_lone(&self, id: u64, op: &OpView<'_>) -> Result<bool, ClientError> {
        let mut guard = self.producer.lock();
        let Sender { ring, buf } = &mut *guard;
        buf.clear();
        encode_view(id, op, buf);
        let sent = match ring.write(buf) {
            Ok(()) => true,
            Err(RecordError::WouldBlock) => false,
            Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
        };
        ring.publish();
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        Ok(sent)
    }

    /// Read responses until request `id`'s answer is whole, filing any other in the book;
    /// between them, wait on the ring and check that the server lives and moves.
    fn await_lone(
        &self,
        rx: &mut MutexGuard<'_, Receiver>,
        id: u64,
        mut sink: Sink<'_>,
    ) -> Result<Outcome, ClientError> {
        let mut own = Assembly::default();
        let mut since = None;
        let result = loop {
            match self.read_lone(rx, id, &mut own, &mut sink) {
                Ok(Some(o)) => break Ok(o),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            if let Err(e) = self.wait_lone(rx, &mut since) {
                break Err(e);
            }
        };
        let Receiver { ring, buf } = &mut **rx;
        ring.release();
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        result
    }

    /// Read the responses published so far: `Some` once `id`'s answer is whole.
    fn read_lone(
        &self,
        rx: &mut Receiver,
        id: u64,
        own: &mut Assembly,
        sink: &mut Sink<'_>,
    ) -> Result<Option<Outcome>, ClientError> {
        let Receiver { ring, buf } = rx;
        loop {
            match ring.read_into(buf) {
                Ok(_) => {}
                Err(RecordError::WouldBlock) => return Ok(None),
                Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
            }
            // A value answer (one part) goes straight into the caller's buffer.
            if let Sink::Buffer(out) = sink
                && let Some((rid, value)) = value_response_view(buf, &self.info.limits)
                && rid == id
                && !own.is_partial()
            {
                out.clear();
                out.extend_from_slice(value);
                return Ok(Some(Outcome::Value(Vec::new())));
            }
            let resp = decode_response(buf, &self.info.limits).map_err(|e| {
                self.fail(ClientError::Protocol(format!("undecodable response: {e}")))
            })?;
            if resp.id != id {
                self.file_other(resp)?;
                continue;
            }
            match own.add(resp.reply) {
                Ok(Some(o)) => return Ok(Some(o)),
                Ok(None) => {}
                Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
            }
        }
    }

    /// File a response to another thread's request in the book, and wake its waiter.
    fn file_other(&self, resp: Response) -> Result<(), ClientError> {
        let mut book = self.book.lock();
        let filed = file(&mut book, resp.id, resp.reply);
        book.progress_marks += 1;
        self.lone_filings.fetch_add(1, Ordering::Release);
        self.cond.notify_all();
        drop(book);
        filed.map_err(|e| self.fail(e))
    }

    /// Wait for the next response (up to [`LIVENESS_POLL`]); when none comes, check that the
    /// server is alive and the session not stalled past the client's timeout.
    fn wait_lone(&self, rx: &mut Receiver, since: &mut Option<Instant>) -> Result<(), ClientError> {
        match rx.ring.wait_data(Some(LIVENESS_POLL)) {
            Ok(()) => Ok(()),
            Err(RecordError::TimedOut) | Err(RecordError::WouldBlock) => {
                let ready = rx.ring.available();
                if ready.map_err(|e| self.fail(ClientError::Protocol(e.to_string())))? > 0 {
                    return Ok(());
                }
                self.check_server()?;
                let began = *since.get_or_insert_with(|| Instant::now() - LIVENESS_POLL);
                self.check_stall(began)
            }
            Err(e) => Err(self.fail(ClientError::Protocol(e.to_string()))),
        }
    }
}

/// Where a lone call puts its answer's value.
pub(super) enum Sink<'b> {
    /// In the outcome, as every answer.
    Outcome,
    /// A [`Reply::Value`](crate::wire::Reply::Value) answer's value is copied into this buffer
    /// (replacing its contents) straight from the response record, and the outcome is
    /// `Outcome::Value` with an empty vector: no allocation for the value. Any other answer
    /// goes in the outcome.
    Buffer(&'b mut Vec<u8>),
}
