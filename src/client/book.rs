//! The ticket book: the requests a client waits for, by id, and the answers filed under them.

#[cfg(doc)]
use super::Client;
use super::{ClientError, Outcome};
use crate::wire::Assembly;
use std::collections::HashMap;
use std::time::Instant;

/// A submitted request, to be redeemed with [`Client::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a ticket must be waited for, or its response is never collected"]
pub struct Ticket(pub(super) u64);

impl Ticket {
    /// The request id.
    pub fn id(self) -> u64 {
        self.0
    }
}

#[derive(Debug)]
pub(super) enum Pending {
    /// Parts of the answer so far (none yet, or some of a long answer).
    Waiting(Assembly),
    Done(Outcome),
}

#[derive(Debug, Default)]
pub(super) struct Book {
    /// Requests not yet collected, by id (foldhash: ids are trusted, and SipHash costs more
    /// than the rest of a round trip's bookkeeping).
    pub(super) pending: HashMap<u64, Pending, foldhash::fast::RandomState>,
    /// A thread is draining the response ring.
    pub(super) leader: bool,
    /// Set once the connection is unusable; every waiter gets it.
    pub(super) failed: Option<ClientError>,
    /// Responses whose id matched no pending request.
    pub(super) strays: u64,
    /// When the server was last seen to have made progress on this connection (answered, or
    /// took requests off a full ring), if it did: set by [`Client::check_stall`] when
    /// `progress_marks` moved since its last look, so that the request path reads no clock.
    pub(super) progress: Option<Instant>,
    /// Counts progress (bumped by every drain that took responses, and when room came).
    pub(super) progress_marks: u64,
    /// `progress_marks` when `progress` was last set.
    pub(super) marks_seen: u64,
}

/// What [`Client::drain`] did.
#[derive(Default)]
pub(super) struct Drained {
    /// Responses filed.
    pub(super) n: usize,
    /// Leadership was given up (the caller led and the drain filed without error).
    pub(super) resigned: bool,
    /// The leader's own outcome, if it came.
    pub(super) took: Option<Outcome>,
}

/// Take ticket `id`'s outcome out of the book if it is complete.
pub(super) fn take_done(book: &mut Book, id: u64) -> Option<Outcome> {
    if matches!(book.pending.get(&id), Some(Pending::Done(_))) {
        if let Some(Pending::Done(o)) = book.pending.remove(&id) {
            return Some(o);
        }
    }
    None
}

/// File one response under its request. A response for no request (or for one already
/// answered) is counted as a stray; a part that does not continue its answer breaks the
/// connection.
pub(super) fn file(book: &mut Book, id: u64, reply: crate::wire::Reply) -> Result<(), ClientError> {
    let Some(entry) = book.pending.get_mut(&id) else {
        book.strays += 1;
        return Ok(());
    };
    let Pending::Waiting(assembly) = entry else {
        book.strays += 1;
        return Ok(());
    };
    match assembly.add(reply) {
        Ok(None) => Ok(()),
        Ok(Some(o)) => {
            *entry = Pending::Done(o);
            Ok(())
        }
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Reply;

    /// An answer under an id nobody waits for, or under one already answered, is counted as a
    /// stray and changes nothing; the awaited answer is filed.
    #[test]
    fn answers_nobody_waits_for_are_counted_as_strays() {
        let mut book = Book::default();
        book.pending
            .insert(7, Pending::Waiting(Assembly::default()));
        assert_eq!(file(&mut book, 8, Reply::Created), Ok(()));
        assert_eq!(book.strays, 1, "an unknown id");
        assert_eq!(file(&mut book, 7, Reply::Created), Ok(()));
        assert_eq!(book.strays, 1, "the awaited answer is no stray");
        assert_eq!(file(&mut book, 7, Reply::NotFound), Ok(()));
        assert_eq!(book.strays, 2, "a second answer to the same request");
        assert_eq!(take_done(&mut book, 7), Some(Outcome::Created));
        assert!(book.pending.is_empty());
    }
}
