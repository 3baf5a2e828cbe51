//! The client library: open a session with a server (through its socket, see [`crate::door`]),
//! send requests, and match responses to requests by id. A [`Client`] is `Send + Sync`: many threads share one connection, each call
//! may be blocking ([`Client::insert`], …) or pipelined ([`Client::submit`] many, then
//! [`Client::wait`] for each).
//!
//! Threads submitting requests take turns on the request ring (a process-private lock). One
//! waiting thread at a time (the "leader") drains the response ring and files every response
//! under its request id; the others sleep on a condition variable until their response is
//! filed or the leader role is free. A thread that finds the request ring full drains responses
//! itself, so a client that submits far more than the rings hold never deadlocks with the
//! server. A blocking call made while no thread drains the response ring is a lone call
//! (`client/lone.rs`): it holds the response ring until its own answer is in, and skips the
//! book.

mod book;
mod calls;
mod config;
mod connect;
mod error;
mod limits;
mod lone;
mod submit;
mod wait;

pub use crate::wire::Outcome;
pub use book::Ticket;
pub use config::ClientConfig;
pub use connect::slot_holder;
pub use error::ClientError;
pub use limits::{check_limits, check_view_limits};

use crate::channel::{HeaderInfo, Object};
use crate::door::GOODBYE;
use crate::record::{RecordConsumer, RecordProducer, ShmRecordMem};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex};
use crate::wire::Limits;
use book::Book;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long a waiting client sleeps between checks that its server is alive (that its
/// connection has not been hung up).
pub const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// The response ring's consumer and the buffer each response is copied into.
#[derive(Debug)]
struct Receiver {
    ring: RecordConsumer<ShmRecordMem>,
    buf: Vec<u8>,
}

/// The request ring's producer and the buffer each request is encoded into.
#[derive(Debug)]
struct Sender {
    ring: RecordProducer<ShmRecordMem>,
    buf: Vec<u8>,
}

/// A session with a server: its connection, its object's two rings, and the book of
/// requests waiting for their answers.
pub struct Client {
    object: Object,
    info: HeaderInfo,
    slot: u32,
    /// The connection: it carries nothing after the handshake; the server's hang-up on it is
    /// how a dead server is noticed.
    stream: UnixStream,
    /// The session object's descriptor (see [`Client::object_fd`]).
    fd: std::os::fd::OwnedFd,
    producer: Mutex<Sender>,
    receiver: Mutex<Receiver>,
    book: Mutex<Book>,
    cond: Condvar,
    /// Whether the book's `failed` is set: read without the book's lock by a lone call
    /// (`client/lone.rs`), which then leaves the error to the shared path.
    has_failed: AtomicBool,
    /// Responses that lone calls filed in the book for other threads' requests, counted
    /// under the book's lock: a leader that finds it changed looks in the book before it
    /// waits on the ring.
    lone_filings: AtomicU64,
    next_id: AtomicU64,
    /// [`ClientConfig::timeout`].
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("slot", &self.slot)
            .field("info", &self.info)
            .finish()
    }
}

impl Client {
    /// The session object's descriptor, for tests that play a hostile client (map it again,
    /// try to resize it, punch holes in it). Not needed to use the client.
    #[doc(hidden)]
    pub fn object_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// The slot this client holds.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The server's header, as read on attach.
    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// The longest key and value the server accepts (told in the session object).
    pub fn limits(&self) -> Limits {
        self.info.limits
    }

    /// Responses received whose id matched no request (should stay 0).
    pub fn stray_responses(&self) -> u64 {
        self.book.lock().strays
    }

    /// Responses to other threads' requests that lone calls (blocking calls made while no
    /// thread drained the response ring) read and filed, for tests. Not needed to use the
    /// client.
    #[doc(hidden)]
    pub fn lone_filings(&self) -> u64 {
        self.lone_filings.load(crate::sync::Ordering::Relaxed)
    }
}

/// A list of keys.
pub type Keys = Vec<Vec<u8>>;
/// A list of (key, value) pairs.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A client's buffer larger than this after a message is given back to the allocator.
const SCRATCH_KEEP: usize = 256 * 1024;

impl Drop for Client {
    fn drop(&mut self) {
        // Tell the server we are leaving on purpose (its log says "detached"); closing the
        // connection then ends the session.
        let _ = std::io::Write::write(&mut &self.stream, &[GOODBYE]);
    }
}
