//! The client library: attach to a server's client slot, send requests, and match responses to
//! requests by id. A [`Client`] is `Send + Sync`: many threads share one connection, each call
//! may be blocking ([`Client::insert`], …) or pipelined ([`Client::submit`] many, then
//! [`Client::wait`] for each).
//!
//! Threads submitting requests take turns on the request ring (a process-private lock). One
//! waiting thread at a time (the "leader") drains the response ring and files every response
//! under its request id; the others sleep on a condition variable until their response is
//! filed or the leader role is free. A thread that finds the request ring full drains responses
//! itself, so a client that submits far more than the rings hold never deadlocks with the
//! server.

use crate::channel::{self, HeaderError, HeaderInfo, Object, STATE_RUNNING};
use crate::protocol::{
    DecodeError, ErrorCode, Op, Reply, Request, Stat, decode_response, encode_request,
};
use crate::ring::{Consumer, Producer, RingError};
use crate::shm::ShmRingMem;
use crate::stats::Stats;
use crate::sync::{AtomicU64, Condvar, Mutex, Ordering};
use nix::errno::Errno;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a waiting client sleeps between checks that its server is alive.
pub const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's name.
    pub name: String,
    /// The client slot to take; `None` takes the first free one.
    pub slot: Option<u32>,
    /// How long to wait for a slot that is being freed (a client that just left).
    pub attach_timeout: Duration,
    /// How long a call waits while the server makes no progress on this connection (answers
    /// nothing, takes no request) before it fails with [`ClientError::Timeout`] and the
    /// connection is given up. A server that shut down or died is noticed sooner, within
    /// about [`LIVENESS_POLL`]; this bounds the rest (a stopped or hung server, a server pid
    /// reused by another process). Default 1 s.
    pub timeout: Duration,
}

impl ClientConfig {
    /// Connect to server `name`, first free slot.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            slot: None,
            attach_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }

    /// Give up on a server that makes no progress for `timeout` (see [`ClientConfig::timeout`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Take slot `slot`.
    pub fn slot(mut self, slot: u32) -> Self {
        self.slot = Some(slot);
        self
    }
}

/// What went wrong for a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server name is not valid.
    #[error("{0}")]
    InvalidName(String),
    /// No server of that name.
    #[error(
        "no shmkv server named '{name}' is running (start one with: shmkv-server --name {name})"
    )]
    NoServer {
        /// The name.
        name: String,
    },
    /// The slot index does not exist.
    #[error("client id {slot} is out of range: server '{name}' has {slots} client slots (0..={})", slots.saturating_sub(1))]
    SlotOutOfRange {
        /// The name.
        name: String,
        /// Asked for.
        slot: u32,
        /// Slots the server has.
        slots: u32,
    },
    /// Another client holds the slot.
    #[error("client id {slot} is in use by process {pid}; pick another id or omit it")]
    SlotBusy {
        /// The slot.
        slot: u32,
        /// Its owner.
        pid: u32,
    },
    /// Every slot is taken.
    #[error("all {slots} client slots of server '{name}' are in use")]
    AllSlotsBusy {
        /// The name.
        name: String,
        /// Slots the server has.
        slots: u32,
    },
    /// The object is not one this build can use.
    #[error("/dev/shm/{object}: {reason}")]
    BadObject {
        /// The object.
        object: String,
        /// What is wrong.
        reason: HeaderError,
    },
    /// A system call failed.
    #[error("/dev/shm/{object}: {errno}")]
    Os {
        /// The object.
        object: String,
        /// The error.
        errno: Errno,
    },
    /// The object belongs to another user: only the server's user may connect.
    #[error(
        "/dev/shm/{object}: permission denied (the server runs as another user; only that user may connect)"
    )]
    PermissionDenied {
        /// The object.
        object: String,
    },
    /// The server shut down or died.
    #[error("the server {0}")]
    ServerGone(&'static str),
    /// The server made no progress on this connection for this long (see
    /// [`ClientConfig::timeout`]); the connection is given up.
    #[error(
        "the server did not answer within {0:?} (stopped or hung?); gave up on this connection"
    )]
    Timeout(Duration),
    /// The server sent something this client does not understand, or broke the ring protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the request.
    #[error("{0}")]
    Refused(ErrorCode),
    /// The ticket is not one this client is waiting for.
    #[error("unknown ticket {0}")]
    UnknownTicket(u64),
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Protocol(format!("undecodable response: {e}"))
    }
}

/// A submitted request, to be redeemed with [`Client::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a ticket must be waited for, or its response is never collected"]
pub struct Ticket(u64);

impl Ticket {
    /// The request id.
    pub fn id(self) -> u64 {
        self.0
    }
}

/// The complete answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Insert of a new key; Quit accepted.
    Done,
    /// Read found it / Delete removed it.
    Value(u64),
    /// Read/Delete: no such key.
    NotFound,
    /// Insert replaced this value.
    Replaced(u64),
    /// Print: the bucket's pairs (in the server's order).
    Entries(Vec<(u64, u64)>),
    /// ThStart/ThStop: this client's worker count now.
    Threads(u32),
    /// Stats: the server's statistics.
    Stats(Box<Stats>),
    /// Refused with a reason.
    Refused(ErrorCode),
}

#[derive(Debug)]
enum Pending {
    Waiting,
    Printing(Vec<(u64, u64)>),
    Stating(Vec<Stat>),
    Done(Outcome),
}

#[derive(Debug, Default)]
struct Book {
    /// Requests not yet collected, by id (foldhash: ids are trusted, and SipHash costs more
    /// than the rest of a round trip's bookkeeping).
    pending: HashMap<u64, Pending, foldhash::fast::RandomState>,
    /// A thread is draining the response ring.
    leader: bool,
    /// Set once the connection is unusable; every waiter gets it.
    failed: Option<ClientError>,
    /// Responses whose id matched no pending request.
    strays: u64,
    /// When the server last made progress on this connection (answered, or took requests
    /// off a full ring), if it did.
    progress: Option<Instant>,
}

/// A connection to one client slot of a server.
pub struct Client {
    object: Object,
    info: HeaderInfo,
    slot: u32,
    producer: Mutex<Producer<ShmRingMem>>,
    receiver: Mutex<Consumer<ShmRingMem>>,
    book: Mutex<Book>,
    cond: Condvar,
    next_id: AtomicU64,
    /// The slot's session number when we attached: the server bumps it when it resets the
    /// slot, so a different value means we were dropped.
    session: u32,
    /// [`ClientConfig::timeout`].
    timeout: Duration,
    /// The object's name (`<server>-client-<slot>`).
    object_name: String,
    /// When the server's pid is next checked for mapping the object ([`MAPS_CHECK_EVERY`]).
    maps_due: Mutex<Instant>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("slot", &self.slot)
            .field("info", &self.info)
            .finish()
    }
}

fn pid_gone(pid: u32) -> bool {
    !channel::pid_alive(pid)
}

/// How often a waiting client looks whether its server's pid still maps the client's object
/// (`/proc/<pid>/maps`): a server that died and whose pid was reused is then noticed as dead
/// rather than by the timeout. That it lives is checked every [`LIVENESS_POLL`].
const MAPS_CHECK_EVERY: Duration = Duration::from_secs(1);

enum Claim {
    Got(Object, HeaderInfo),
    Busy(u32),
}

fn open(name: &str, slot: u32) -> Result<(Object, HeaderInfo), ClientError> {
    let object = channel::object_name(name, slot);
    match channel::open_object(name, slot) {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(reason)) => Err(ClientError::BadObject { object, reason }),
        Err(Errno::ENOENT) => {
            // Is there a server at all? Slot 0 always exists when one runs.
            if slot != 0 {
                if let Ok(Ok((_, info))) = channel::open_object(name, 0) {
                    return Err(ClientError::SlotOutOfRange {
                        name: name.to_string(),
                        slot,
                        slots: info.clients,
                    });
                }
            }
            Err(ClientError::NoServer {
                name: name.to_string(),
            })
        }
        Err(Errno::EACCES | Errno::EPERM) => Err(ClientError::PermissionDenied { object }),
        Err(errno) => Err(ClientError::Os { object, errno }),
    }
}

fn try_claim(name: &str, slot: u32, me: u32) -> Result<Claim, ClientError> {
    let (object, info) = open(name, slot)?;
    // A live pid that does not map the object is not its server: the server died and its
    // pid was reused (or the header was forged).
    if !channel::pid_holds(info.server_pid, &channel::object_name(name, slot)) {
        return Err(ClientError::ServerGone("died"));
    }
    if object.state().load(Ordering::Acquire) != STATE_RUNNING {
        return Err(ClientError::ServerGone(
            "is not running (starting or shutting down)",
        ));
    }
    match object
        .owner()
        .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
    {
        // The server leaves a free slot's rings zeroed. A departed client that wrote into its
        // object (and 0 into the owner word) can leave it otherwise; the server cleans such a
        // slot when a worker is next idle. Leave it until then.
        Ok(_) if !object.rings_are_fresh() => {
            let _ = object
                .owner()
                .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire);
            Ok(Claim::Busy(0))
        }
        Ok(_) => Ok(Claim::Got(object, info)),
        Err(pid) => Ok(Claim::Busy(pid)),
    }
}

impl Client {
    /// Attach to a server's client slot (the given one, or the first free one). A slot whose
    /// previous client is leaving is waited for up to `attach_timeout`.
    pub fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        channel::validate_name(&config.name).map_err(ClientError::InvalidName)?;
        let me = std::process::id();
        let deadline = Instant::now() + config.attach_timeout;
        loop {
            let (slots, busy) = match config.slot {
                Some(slot) => match try_claim(&config.name, slot, me)? {
                    Claim::Got(o, i) => {
                        return Ok(Self::attached(o, i, &config.name, slot, config.timeout));
                    }
                    Claim::Busy(pid) => (1, Some((slot, pid))),
                },
                None => {
                    let (_, info0) = open(&config.name, 0)?;
                    let mut last = None;
                    for slot in 0..info0.clients {
                        match try_claim(&config.name, slot, me) {
                            Ok(Claim::Got(o, i)) => {
                                return Ok(Self::attached(
                                    o,
                                    i,
                                    &config.name,
                                    slot,
                                    config.timeout,
                                ));
                            }
                            Ok(Claim::Busy(pid)) => last = Some((slot, pid)),
                            Err(ClientError::SlotOutOfRange { .. }) => break,
                            Err(e) => return Err(e),
                        }
                    }
                    (info0.clients, last)
                }
            };
            if Instant::now() >= deadline {
                return Err(match (config.slot, busy) {
                    (Some(slot), Some((_, pid))) => ClientError::SlotBusy { slot, pid },
                    _ => ClientError::AllSlotsBusy {
                        name: config.name.clone(),
                        slots,
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn attached(
        object: Object,
        info: HeaderInfo,
        name: &str,
        slot: u32,
        timeout: Duration,
    ) -> Client {
        let producer = Producer::new(object.request_ring(&info));
        let receiver = Consumer::new(object.response_ring(&info));
        let session = object.session().load(Ordering::SeqCst);
        Client {
            session,
            timeout,
            object_name: channel::object_name(name, slot),
            maps_due: Mutex::new(Instant::now() + MAPS_CHECK_EVERY),
            object,
            info,
            slot,
            producer: Mutex::new(producer),
            receiver: Mutex::new(receiver),
            book: Mutex::new(Book::default()),
            cond: Condvar::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The slot this client holds.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The server's header, as read on attach.
    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Responses received whose id matched no request (should stay 0).
    pub fn stray_responses(&self) -> u64 {
        self.book.lock().strays
    }

    /// Submit one request; its response is collected with [`Client::wait`].
    pub fn submit(&self, op: Op) -> Result<Ticket, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.book_pending(std::iter::once(id))?;
        self.send(id, std::slice::from_ref(&op))?;
        Ok(Ticket(id))
    }

    /// Submit many requests at once (one publication of the ring, one wake of the server).
    /// They are taken in this order, so same-key operations take effect in this order.
    pub fn submit_all(&self, ops: &[Op]) -> Result<Vec<Ticket>, ClientError> {
        let first = self.next_id.fetch_add(ops.len() as u64, Ordering::Relaxed);
        let ids = first..first + ops.len() as u64;
        self.book_pending(ids.clone())?;
        self.send(first, ops)?;
        Ok(ids.map(Ticket).collect())
    }

    /// Enter requests `ids` as waiting for their answers (before they are sent, so that an
    /// answer always finds its entry).
    fn book_pending(&self, ids: impl Iterator<Item = u64>) -> Result<(), ClientError> {
        let mut book = self.book.lock();
        if let Some(e) = &book.failed {
            return Err(e.clone());
        }
        for id in ids {
            book.pending.insert(id, Pending::Waiting);
        }
        Ok(())
    }

    /// Write `ops` with ids from `first` on into the request ring and publish them.
    fn send(&self, first: u64, ops: &[Op]) -> Result<(), ClientError> {
        let mut producer = self.producer.lock();
        let mut since = None;
        for (id, op) in (first..).zip(ops) {
            let slot = encode_request(&Request { id, op: *op });
            loop {
                match producer.write(&slot) {
                    Ok(()) => break,
                    Err(RingError::WouldBlock) => {
                        producer.publish();
                        let since = *since.get_or_insert_with(Instant::now);
                        self.make_room(&mut producer, since)?;
                    }
                    Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
                }
            }
        }
        producer.publish();
        Ok(())
    }

    /// The request ring is full: drain responses if nobody else is, then wait a little for
    /// space, checking that the server lives and has made progress since `since`.
    fn make_room(
        &self,
        producer: &mut Producer<ShmRingMem>,
        since: Instant,
    ) -> Result<(), ClientError> {
        if let Some(mut rx) = self.receiver.try_lock() {
            let got = self.drain(&mut rx, None)?.n;
            drop(rx);
            if got > 0 {
                return Ok(());
            }
        }
        match producer.wait_space(Some(Duration::from_millis(1))) {
            Ok(()) => {
                self.book.lock().progress = Some(Instant::now());
                Ok(())
            }
            Err(RingError::WouldBlock) => Ok(()),
            Err(RingError::TimedOut) => {
                self.check_server()?;
                self.check_stall(since)
            }
            Err(e) => Err(self.fail(ClientError::Protocol(e.to_string()))),
        }
    }

    /// File every response in the ring, under one lock of the book and with one release of
    /// the ring (one fence). If `mine` is given, the caller is the leader waiting for that
    /// ticket: once the responses are filed without error, leadership is given up under the
    /// same lock and the ticket's outcome, if it came, taken.
    fn drain(
        &self,
        rx: &mut Consumer<ShmRingMem>,
        mine: Option<u64>,
    ) -> Result<Drained, ClientError> {
        let mut raw = match rx.read() {
            Ok(raw) => raw,
            Err(RingError::WouldBlock) => return Ok(Drained::default()),
            Err(e) => return Err(self.fail(ClientError::Protocol(e.to_string()))),
        };
        let mut book = self.book.lock();
        let mut n = 0;
        let mut bad = None;
        loop {
            match decode_response(&raw) {
                Ok(resp) => {
                    file(&mut book, resp.id, resp.reply);
                    n += 1;
                }
                Err(e) => {
                    bad = Some(ClientError::from(e));
                    break;
                }
            }
            match rx.read() {
                Ok(next) => raw = next,
                Err(RingError::WouldBlock) => break,
                Err(e) => {
                    bad = Some(ClientError::Protocol(e.to_string()));
                    break;
                }
            }
        }
        rx.release();
        book.progress = Some(Instant::now());
        let result = match bad {
            Some(e) => Err(book.failed.get_or_insert(e).clone()),
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

    fn fail(&self, e: ClientError) -> ClientError {
        let mut book = self.book.lock();
        let e = book.failed.get_or_insert(e).clone();
        self.cond.notify_all();
        e
    }

    /// Err if the server has shut down or died.
    fn check_server(&self) -> Result<(), ClientError> {
        if self.object.state().load(Ordering::Acquire) != STATE_RUNNING {
            return Err(self.fail(ClientError::ServerGone("shut down")));
        }
        if pid_gone(self.info.server_pid) || !self.server_maps_us() {
            return Err(self.fail(ClientError::ServerGone("died")));
        }
        if !self.still_attached() {
            return Err(self.fail(ClientError::ServerGone(
                "dropped this client (its slot was reset)",
            )));
        }
        Ok(())
    }

    /// Err (and the connection given up) if the server has made no progress for
    /// [`ClientConfig::timeout`] since `since` (when the caller started waiting) or since its
    /// last progress, whichever is later.
    fn check_stall(&self, since: Instant) -> Result<(), ClientError> {
        let last = self.book.lock().progress.map_or(since, |p| p.max(since));
        if last.elapsed() >= self.timeout {
            return Err(self.fail(ClientError::Timeout(self.timeout)));
        }
        Ok(())
    }

    /// Whether the server's pid, as far as `/proc` tells, still maps our object (looked at
    /// once every [`MAPS_CHECK_EVERY`]; true in between).
    fn server_maps_us(&self) -> bool {
        {
            let mut due = self.maps_due.lock();
            let now = Instant::now();
            if now < *due {
                return true;
            }
            *due = now + MAPS_CHECK_EVERY;
        }
        channel::maps_object(self.info.server_pid, &self.object_name) != Some(false)
    }

    /// Whether the slot is still ours: same session, our pid as owner.
    fn still_attached(&self) -> bool {
        self.object.session().load(Ordering::SeqCst) == self.session
            && self.object.owner().load(Ordering::SeqCst) == std::process::id()
    }

    /// Wait for a ticket's complete answer.
    pub fn wait(&self, ticket: Ticket) -> Result<Outcome, ClientError> {
        let mut since = None;
        loop {
            {
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
            }
            let led = self.lead(*since.get_or_insert_with(Instant::now), ticket.0);
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
    /// comes.
    fn lead(&self, since: Instant, mine: u64) -> Result<Drained, ClientError> {
        let mut rx = self.receiver.lock();
        match rx.wait_data(Some(LIVENESS_POLL)) {
            Ok(()) => self.drain(&mut rx, Some(mine)),
            Err(RingError::TimedOut) | Err(RingError::WouldBlock) => {
                // Take what arrived before judging the server.
                let d = self.drain(&mut rx, Some(mine))?;
                if d.n > 0 {
                    return Ok(d);
                }
                self.check_server()?;
                self.check_stall(since)?;
                Ok(d)
            }
            Err(e) => Err(self.fail(ClientError::Protocol(e.to_string()))),
        }
    }

    fn call(&self, op: Op) -> Result<Outcome, ClientError> {
        let t = self.submit(op)?;
        match self.wait(t)? {
            Outcome::Refused(e) => Err(ClientError::Refused(e)),
            o => Ok(o),
        }
    }

    /// Insert or replace; returns the previous value.
    pub fn insert(&self, key: u64, value: u64) -> Result<Option<u64>, ClientError> {
        match self.call(Op::Insert { key, value })? {
            Outcome::Done => Ok(None),
            Outcome::Replaced(v) => Ok(Some(v)),
            o => Err(unexpected(o)),
        }
    }

    /// Read a key.
    pub fn read(&self, key: u64) -> Result<Option<u64>, ClientError> {
        match self.call(Op::Read { key })? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    /// Delete a key; returns its value.
    pub fn delete(&self, key: u64) -> Result<Option<u64>, ClientError> {
        match self.call(Op::Delete { key })? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    /// The pairs of one bucket.
    pub fn print(&self, bucket: u64) -> Result<Vec<(u64, u64)>, ClientError> {
        match self.call(Op::Print { bucket })? {
            Outcome::Entries(e) => Ok(e),
            o => Err(unexpected(o)),
        }
    }

    /// Start `n` more server worker threads for this client; returns the count now.
    pub fn start_threads(&self, n: u32) -> Result<u32, ClientError> {
        if n == 0 {
            return Err(ClientError::Protocol(
                "thread start needs at least 1 thread".into(),
            ));
        }
        match self.call(Op::ThStart { n })? {
            Outcome::Threads(c) => Ok(c),
            o => Err(unexpected(o)),
        }
    }

    /// Stop one of this client's server worker threads; returns the count now.
    pub fn stop_thread(&self) -> Result<u32, ClientError> {
        match self.call(Op::ThStop)? {
            Outcome::Threads(c) => Ok(c),
            o => Err(unexpected(o)),
        }
    }

    /// The server's statistics: request counts, refusals, table size, client slots and worker
    /// threads, sampled service times. They are taken after every request this client sent
    /// before has been answered, and before any it sends after.
    pub fn stats(&self) -> Result<Stats, ClientError> {
        match self.call(Op::Stats)? {
            Outcome::Stats(s) => Ok(*s),
            o => Err(unexpected(o)),
        }
    }

    /// Ask the server to shut down.
    pub fn quit(&self) -> Result<(), ClientError> {
        match self.call(Op::Quit)? {
            Outcome::Done => Ok(()),
            o => Err(unexpected(o)),
        }
    }
}

fn unexpected(o: Outcome) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {o:?}"))
}

/// File one response slot under its request.
/// What [`Client::drain`] did.
#[derive(Default)]
struct Drained {
    /// Responses filed.
    n: usize,
    /// Leadership was given up (the caller led and the drain filed without error).
    resigned: bool,
    /// The leader's own outcome, if it came.
    took: Option<Outcome>,
}

/// Take ticket `id`'s outcome out of the book if it is complete.
fn take_done(book: &mut Book, id: u64) -> Option<Outcome> {
    if matches!(book.pending.get(&id), Some(Pending::Done(_))) {
        if let Some(Pending::Done(o)) = book.pending.remove(&id) {
            return Some(o);
        }
    }
    None
}

fn file(book: &mut Book, id: u64, reply: Reply) {
    let Some(entry) = book.pending.get_mut(&id) else {
        book.strays += 1;
        return;
    };
    let done = match (reply, &mut *entry) {
        (_, Pending::Done(_)) => {
            book.strays += 1;
            return;
        }
        (Reply::Entry { key, value }, Pending::Waiting) => {
            *entry = Pending::Printing(vec![(key, value)]);
            return;
        }
        (Reply::Entry { key, value }, Pending::Printing(v)) => {
            v.push((key, value));
            return;
        }
        (Reply::PrintEnd { .. }, Pending::Printing(v)) => Outcome::Entries(std::mem::take(v)),
        (Reply::PrintEnd { .. }, Pending::Waiting) => Outcome::Entries(Vec::new()),
        (Reply::Stat(st), Pending::Waiting) => {
            *entry = Pending::Stating(vec![st]);
            return;
        }
        (Reply::Stat(st), Pending::Stating(v)) => {
            v.push(st);
            return;
        }
        (Reply::StatsEnd { .. }, Pending::Stating(v)) => {
            Outcome::Stats(Box::new(Stats::from_stats(v)))
        }
        (Reply::StatsEnd { .. }, Pending::Waiting) => Outcome::Stats(Box::default()),
        (_, Pending::Printing(_) | Pending::Stating(_)) => {
            book.strays += 1;
            return;
        }
        (Reply::Done, _) => Outcome::Done,
        (Reply::Value(v), _) => Outcome::Value(v),
        (Reply::NotFound, _) => Outcome::NotFound,
        (Reply::Replaced(v), _) => Outcome::Replaced(v),
        (Reply::Threads(n), _) => Outcome::Threads(n),
        (Reply::Error(e), _) => Outcome::Refused(e),
    };
    *entry = Pending::Done(done);
}

impl Drop for Client {
    fn drop(&mut self) {
        // Tell the server we are leaving; it resets the slot once our ring is drained. Not if
        // the slot is no longer ours (the server reset it; another client may hold it now).
        if self.still_attached() {
            self.object.closing().store(1, Ordering::SeqCst);
            self.object.nudge_server();
        }
    }
}
