//! Waiting for answers: one waiter at a time leads, draining the response ring and filing
//! what comes, and checks that the server lives and makes progress.

#[cfg(doc)]
use super::ClientConfig;
use super::book::{Drained, Pending, file, take_done};
use super::{Client, ClientError, LIVENESS_POLL, Outcome, Receiver, SCRATCH_KEEP, Ticket};
use crate::channel::{STATE_DROPPED, STATE_RUNNING, STATE_STOPPING};
use crate::door;
use crate::record::RecordError;
use crate::sync::Ordering;
use crate::wire::decode_response;
use std::time::Instant;

impl Client {
    /// File every response in the ring, under one lock of the book and with one release of
    /// the ring (one fence). If `mine` is given, the caller is the leader waiting for that
    /// ticket: once the responses are filed without error, leadership is given up under the
    /// same lock and the ticket's outcome, if it came, taken.
    pub(super) fn drain(
        &self,
        rx: &mut Receiver,
        mine: Option<u64>,
    ) -> Result<Drained, ClientError> {
        let Receiver { ring, buf } = rx;
        match ring.read_into(buf) {
            Ok(_) => {}
            Err(RecordError::WouldBlock) => return Ok(Drained::default()),
            Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
        }
        let limits = self.info.limits;
        let mut book = self.book.lock();
        let mut n = 0;
        let mut bad = None;
        loop {
            match decode_response(buf, &limits) {
                Ok(resp) => {
                    if let Err(e) = file(&mut book, resp.id, resp.reply) {
                        bad = Some(e);
                        break;
                    }
                    n += 1;
                }
                Err(e) => {
                    bad = Some(ClientError::Protocol(format!("undecodable response: {e}")));
                    break;
                }
            }
            match ring.read_into(buf) {
                Ok(_) => {}
                Err(RecordError::WouldBlock) => break,
                Err(e) => {
                    bad = Some(ClientError::Protocol(e.to_string()));
                    break;
                }
            }
        }
        ring.release();
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        book.progress_marks += 1;
        let result = match bad {
            Some(e) => {
                self.has_failed.store(true, Ordering::Release);
                Err(book.failed.get_or_insert(e).clone())
            }
            None => {
                let mut d = Drained {
                    n,
                    ..Drained::default()
                };
                if let Some(id) = mine {
                    book.leader = false;
                    d.resigned = true;
                    d.took = take_done(&mut book, id);
                }
                Ok(d)
            }
        };
        self.cond.notify_all();
        result
    }

    pub(super) fn fail(&self, e: ClientError) -> ClientError {
        let mut book = self.book.lock();
        let e = book.failed.get_or_insert(e).clone();
        self.has_failed.store(true, Ordering::Release);
        self.cond.notify_all();
        e
    }

    /// Err if the server has shut down, died or dropped this client: the session's state
    /// word says which, and the hang-up of the connection (which the kernel delivers when the
    /// server's process dies, whatever killed it) says that it is over.
    pub(super) fn check_server(&self) -> Result<(), ClientError> {
        let gone = match self.object.state().load(Ordering::Acquire) {
            STATE_RUNNING if !door::hung_up(&self.stream) => return Ok(()),
            // Read again: the server writes the state before it hangs up.
            _ => match self.object.state().load(Ordering::Acquire) {
                STATE_STOPPING => "shut down",
                STATE_DROPPED => "dropped this client (see its log for why)",
                _ => "died",
            },
        };
        Err(self.fail(ClientError::ServerGone(gone)))
    }

    /// Err (and the connection given up) if the server has made no progress for
    /// [`ClientConfig::timeout`] since `since` (when the caller started waiting) or since its
    /// last progress, whichever is later.
    pub(super) fn check_stall(&self, since: Instant) -> Result<(), ClientError> {
        let last = {
            let mut book = self.book.lock();
            if book.progress_marks != book.marks_seen {
                book.marks_seen = book.progress_marks;
                book.progress = Some(Instant::now());
            }
            book.progress.map_or(since, |p| p.max(since))
        };
        if last.elapsed() >= self.timeout {
            return Err(self.fail(ClientError::Timeout(self.timeout)));
        }
        Ok(())
    }

    /// Wait for a ticket's complete answer.
    pub fn wait(&self, ticket: Ticket) -> Result<Outcome, ClientError> {
        self.wait_as(ticket, false)
    }

    /// [`Client::wait`]; `leading`: the caller already leads (it took the lead when it booked
    /// the request; only a lone call can have filed the answer since).
    pub(super) fn wait_as(
        &self,
        ticket: Ticket,
        mut leading: bool,
    ) -> Result<Outcome, ClientError> {
        let mut since = None;
        // `lone_filings` when we last looked in the book (`None`: not looked).
        let mut seen = None;
        loop {
            if !leading {
                let mut book = self.book.lock();
                match book.pending.get(&ticket.0) {
                    None => return Err(ClientError::UnknownTicket(ticket.0)),
                    Some(Pending::Done(_)) => {
                        if let Some(Pending::Done(o)) = book.pending.remove(&ticket.0) {
                            return Ok(o);
                        }
                    }
                    Some(_) => {}
                }
                if let Some(e) = &book.failed {
                    let e = e.clone();
                    book.pending.remove(&ticket.0);
                    return Err(e);
                }
                if book.leader {
                    drop(self.cond.wait_timeout(book, LIVENESS_POLL));
                    continue;
                }
                book.leader = true;
                seen = Some(self.lone_filings.load(Ordering::Relaxed));
            }
            leading = false;
            let led = self.lead(&mut since, ticket.0, seen);
            if let Ok(d) = &led {
                if d.resigned {
                    // The drain gave up leadership and took our answer if it came.
                    match led {
                        Ok(Drained { took: Some(o), .. }) => return Ok(o),
                        _ => continue,
                    }
                }
            }
            {
                let mut book = self.book.lock();
                book.leader = false;
                self.cond.notify_all();
                // The answer may have come in (filed by another drain) meanwhile.
                if let Some(o) = take_done(&mut book, ticket.0) {
                    return Ok(o);
                }
                if let Err(e) = led {
                    book.pending.remove(&ticket.0);
                    return Err(e);
                }
            }
        }
    }

    /// As the leader: wait for responses and file them (once; see [`Client::drain`] for
    /// `mine`), checking the server's liveness and progress (since `since`) when nothing
    /// comes. `seen`: `lone_filings` when the caller last found its answer not in the book.
    fn lead(
        &self,
        since: &mut Option<Instant>,
        mine: u64,
        seen: Option<u64>,
    ) -> Result<Drained, ClientError> {
        let mut rx = self.receiver.lock();
        if seen != Some(self.lone_filings.load(Ordering::Acquire)) {
            // A lone call (client/lone.rs) may have filed our answer while it held the ring.
            let mut book = self.book.lock();
            if let Some(o) = take_done(&mut book, mine) {
                book.leader = false;
                self.cond.notify_all();
                return Ok(Drained {
                    resigned: true,
                    took: Some(o),
                    ..Drained::default()
                });
            }
        }
        match rx.ring.wait_data(Some(LIVENESS_POLL)) {
            Ok(()) => self.drain(&mut rx, Some(mine)),
            Err(RecordError::TimedOut) | Err(RecordError::WouldBlock) => {
                // Take what arrived before judging the server.
                let d = self.drain(&mut rx, Some(mine))?;
                if d.n > 0 {
                    return Ok(d);
                }
                self.check_server()?;
                // The wait began about one poll ago (no clock is read on the way to an
                // answer that comes in time).
                let began = *since.get_or_insert_with(|| Instant::now() - LIVENESS_POLL);
                self.check_stall(began)?;
                Ok(d)
            }
            Err(e) => Err(self.fail(ClientError::Protocol(e.to_string()))),
        }
    }
}
