//! Answering: writing a request's answer into the response ring (waiting for room while the
//! client is there), publishing in batches, and refusing what is left at shutdown.

use super::execute::Answer;
use super::{Answerer, Control, Lane, Misbehavior, PUBLISH_BATCH, PUBLISH_BYTES, RESPOND_POLL};
use crate::record::{RecordError, RecordMem};
use crate::wire::{ErrorCode, Reply, Response, decode_request_view, encode_response, request_id};

impl<M: RecordMem + Clone> Lane<M> {
    /// Encode the replies (the parts of one answer to request `id`) and write them to the
    /// response ring, publishing unless `defer` (see [`Lane::serve_one`]); `kept`: the
    /// producer when the caller holds its lock already, else it is locked here.
    pub(super) fn respond_all(
        &self,
        ctl: &dyn Control,
        id: u64,
        replies: Answer,
        defer: bool,
        buf: &mut Vec<u8>,
        kept: Option<&mut Answerer<M>>,
    ) -> Result<bool, RecordError> {
        match kept {
            Some(p) => self.respond_locked(ctl, p, id, replies, defer, buf),
            None => self.respond_locked(ctl, &mut self.producer.lock(), id, replies, defer, buf),
        }
    }

    /// [`Lane::respond_all`] with the producer locked (`p`).
    fn respond_locked(
        &self,
        ctl: &dyn Control,
        p: &mut Answerer<M>,
        id: u64,
        replies: Answer,
        defer: bool,
        buf: &mut Vec<u8>,
    ) -> Result<bool, RecordError> {
        let mut write = |reply: Option<Reply>| {
            if let Some(reply) = reply {
                buf.clear();
                encode_response(&Response { id, reply }, buf);
            }
            self.write_answer(ctl, p, buf)
        };
        let written = match replies {
            Answer::Encoded => write(None)?,
            Answer::One(reply) => write(Some(reply))?,
            Answer::Parts(parts) => {
                let mut all = true;
                for reply in parts {
                    if !write(Some(reply))? {
                        all = false;
                        break;
                    }
                }
                all
            }
        };
        if !written {
            return Ok(false);
        }
        p.unpublished += 1;
        if !(defer && p.unpublished < PUBLISH_BATCH && p.ring.unpublished() < PUBLISH_BYTES) {
            p.ring.publish();
            p.unpublished = 0;
        }
        Ok(true)
    }

    /// Publish every answer written, unless the lane is abandoned (its answers are dropped,
    /// including those written and not yet published).
    pub(super) fn publish(&self) {
        if self.is_abandoned() {
            return;
        }
        let mut p = self.producer.lock();
        p.ring.publish();
        p.unpublished = 0;
    }

    /// Write and publish one answer (for tests and tools; the workers batch publications).
    /// Ok(false) if it was dropped (the lane is abandoned); an error if the client broke the
    /// ring's counters (the lane is then abandoned).
    pub fn respond(&self, ctl: &dyn Control, response: &Response) -> Result<bool, RecordError> {
        let mut buf = Vec::new();
        self.respond_all(
            ctl,
            response.id,
            Answer::One(response.reply.clone()),
            false,
            &mut buf,
            None,
        )
    }

    /// Write one encoded answer, waiting for room while the lane is not abandoned and the
    /// client is there ([`Control::peer_gone`], checked every [`RESPOND_POLL`]).
    fn write_answer(
        &self,
        ctl: &dyn Control,
        p: &mut Answerer<M>,
        bytes: &[u8],
    ) -> Result<bool, RecordError> {
        loop {
            if self.is_abandoned() {
                return Ok(false);
            }
            let e = match p.ring.write(bytes) {
                Ok(()) => return Ok(true),
                Err(e) => e,
            };
            if e != RecordError::WouldBlock {
                self.abandon();
                return Err(e);
            }
            p.unpublished = 0;
            // Publishes what was written, then waits; cut short once the lane is abandoned
            // (see `Lane::nudge`).
            match p
                .ring
                .wait_space_or(bytes.len(), Some(RESPOND_POLL), &|| self.is_abandoned())
            {
                Ok(()) => {}
                // (Woken by a nudge: the loop looks at `abandoned` first.)
                Err(RecordError::WouldBlock) if self.is_abandoned() => {}
                Err(RecordError::WouldBlock) => {
                    if ctl.misbehaved(Misbehavior::SpuriousWake) {
                        self.abandon();
                        return Ok(false);
                    }
                }
                Err(RecordError::TimedOut) => {
                    if ctl.peer_gone() {
                        self.abandon();
                    }
                }
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            }
        }
    }

    /// Answer every request still in the ring with [`ErrorCode::ShuttingDown`], without
    /// executing it (used at shutdown). Returns how many were refused.
    pub fn refuse_pending(&self, ctl: &dyn Control) -> usize {
        let mut consumer = self.consumer.lock();
        let mut n = 0;
        let mut buf = Vec::new();
        // At most one ring's worth (a record takes at least 16 bytes): a client that keeps
        // refilling its ring must not hold a shutting-down worker forever.
        let limit = self.requests.capacity() / 16;
        while n < limit {
            if consumer.ring.read_into(&mut buf).is_err() {
                break;
            }
            consumer.ring.release();
            consumer.unreleased = 0;
            n += 1;
            self.counters.taken();
            if let Ok((_, op)) = decode_request_view(&buf, &self.limits) {
                self.counters.op(op.verb());
            }
            self.counters.error(&ErrorCode::ShuttingDown);
            let id = request_id(&buf);
            let _ = self.respond(
                ctl,
                &Response {
                    id,
                    reply: Reply::Error(ErrorCode::ShuttingDown),
                },
            );
        }
        n
    }
}
