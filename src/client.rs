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
//! server.

use crate::channel::{
    self, HeaderError, HeaderInfo, Object, STATE_DROPPED, STATE_RUNNING, STATE_STOPPING,
};
use crate::door::{self, ANY_SLOT, DoorError, GOODBYE, Hello, WELCOME_LEN, Welcome};
use crate::record::{RecordConsumer, RecordError, RecordProducer, ShmRecordMem};
use crate::stats::Stats;
use crate::sync::{AtomicU64, Condvar, Mutex, Ordering};
pub use crate::wire::Outcome;
use crate::wire::{Assembly, ErrorCode, Field, Limits, Op, OpView, decode_response, encode_view};
use nix::errno::Errno;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a waiting client sleeps between checks that its server is alive (that its
/// connection has not been hung up).
pub const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's name.
    pub name: String,
    /// Connect to this socket instead of the one the name gives (the server's `--socket`).
    pub socket: Option<PathBuf>,
    /// The client slot to take; `None` takes the first free one.
    pub slot: Option<u32>,
    /// How long to wait for a slot that is being freed (a client that just left), and for
    /// the server's answer to the handshake.
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
            socket: None,
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

    /// Connect to the socket at `path` (see [`ClientConfig::socket`]).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// The socket path this configuration connects to.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| door::socket_path(&self.name))
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
    /// The session object is not one this build can use.
    #[error("the server's session object: {reason}")]
    BadObject {
        /// What is wrong.
        reason: HeaderError,
    },
    /// A system call failed.
    #[error("{path}: {errno}")]
    Os {
        /// The socket.
        path: String,
        /// The error.
        errno: Errno,
    },
    /// The socket's directory is not private to this user, or the socket is not ours to use.
    #[error("{0}")]
    Door(DoorError),
    /// The server closed the connection before answering the handshake (it died, or shut
    /// down).
    #[error("{path}: the server closed the connection during the handshake")]
    HungUp {
        /// The socket.
        path: String,
    },
    /// The server runs as another user: only that user may connect.
    #[error(
        "{path}: permission denied (the server runs as another user; only that user may connect)"
    )]
    PermissionDenied {
        /// The socket.
        path: String,
    },
    /// The process listening on the socket runs as another user (not ours, not root): it is
    /// not trusted with our data, and nothing was sent to it.
    #[error(
        "{path}: the process listening there (pid {pid}) runs as uid {uid}, not as this user or root; refusing to talk to it"
    )]
    UntrustedServer {
        /// The socket.
        path: String,
        /// The listener's pid.
        pid: u32,
        /// The listener's uid.
        uid: u32,
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
    /// A key or value longer than the server's limit (or an empty key): refused before
    /// anything was sent.
    #[error("{what} of {len} bytes is {}", if *len == 0 { "not allowed (keys are 1 byte or more)".to_string() } else { format!("longer than the server's limit of {max} bytes") })]
    TooLarge {
        /// Which field.
        what: Field,
        /// Its length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The ticket is not one this client is waiting for.
    #[error("unknown ticket {0}")]
    UnknownTicket(u64),
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

#[derive(Debug)]
enum Pending {
    /// Parts of the answer so far (none yet, or some of a long answer).
    Waiting(Assembly),
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
    /// When the server was last seen to have made progress on this connection (answered, or
    /// took requests off a full ring), if it did: set by [`Client::check_stall`] when
    /// `progress_marks` moved since its last look, so that the request path reads no clock.
    progress: Option<Instant>,
    /// Counts progress (bumped by every drain that took responses, and when room came).
    progress_marks: u64,
    /// `progress_marks` when `progress` was last set.
    marks_seen: u64,
}

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

/// What one handshake gave.
enum Answer {
    /// A session.
    Session(Box<Client>),
    /// Not now (the slot, or every slot, is held): try again until the deadline.
    Busy(ClientError),
}

/// Connect to `path`, check who listens there, and send the hello: nothing is sent to a
/// process of another user.
fn knock(
    config: &ClientConfig,
    path: &std::path::Path,
    probe: bool,
) -> Result<UnixStream, ClientError> {
    let shown = path.display().to_string();
    let stream = UnixStream::connect(path).map_err(|e| {
        match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
            Errno::ENOENT | Errno::ECONNREFUSED => ClientError::NoServer {
                name: config.name.clone(),
            },
            Errno::EACCES | Errno::EPERM => ClientError::PermissionDenied {
                path: shown.clone(),
            },
            errno => ClientError::Os {
                path: shown.clone(),
                errno,
            },
        }
    })?;
    let peer = door::peer(&stream).map_err(|errno| ClientError::Os {
        path: shown.clone(),
        errno,
    })?;
    if !door::trusted(peer.uid) {
        return Err(ClientError::UntrustedServer {
            path: shown,
            pid: peer.pid,
            uid: peer.uid,
        });
    }
    let os = |e: std::io::Error| ClientError::Os {
        path: shown.clone(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    };
    stream
        .set_read_timeout(Some(handshake_wait(config)))
        .map_err(os)?;
    let hello = Hello {
        slot: config.slot.unwrap_or(ANY_SLOT),
        probe,
    };
    match std::io::Write::write_all(&mut &stream, &hello.encode()) {
        // The server may have answered and closed already (a refusal): read its answer.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {}
        r => r.map_err(os)?,
    }
    Ok(stream)
}

/// How long a handshake waits for the server's answer: `attach_timeout`, at least 100 ms.
fn handshake_wait(config: &ClientConfig) -> Duration {
    config.attach_timeout.max(Duration::from_millis(100))
}

/// Knock (a probe or not) and read the welcome, with the descriptor it carries.
fn ask(
    config: &ClientConfig,
    path: &std::path::Path,
    probe: bool,
) -> Result<(UnixStream, Welcome, Option<std::os::fd::OwnedFd>), ClientError> {
    let stream = knock(config, path, probe)?;
    let mut buf = [0u8; WELCOME_LEN];
    let shown = path.display().to_string();
    let (n, fd) = door::recv_with_fd(&stream, &mut buf).map_err(|errno| match errno {
        Errno::EAGAIN => ClientError::Timeout(handshake_wait(config)),
        Errno::ECONNRESET => ClientError::HungUp {
            path: shown.clone(),
        },
        errno => ClientError::Os {
            path: shown.clone(),
            errno,
        },
    })?;
    if n == 0 {
        return Err(ClientError::HungUp { path: shown });
    }
    let welcome = Welcome::decode(&buf[..n]).ok_or_else(|| {
        ClientError::Protocol("the server's handshake answer is not understood".into())
    })?;
    Ok((stream, welcome, fd))
}

/// The checks of the socket path every connection makes: the default directory must be ours
/// and private.
fn door_path(config: &ClientConfig) -> Result<PathBuf, ClientError> {
    channel::validate_name(&config.name).map_err(ClientError::InvalidName)?;
    if config.socket.is_none() {
        let dir = door::socket_dir();
        if !dir.exists() {
            return Err(ClientError::NoServer {
                name: config.name.clone(),
            });
        }
        door::prepare_dir(&dir, false).map_err(ClientError::Door)?;
    }
    Ok(config.socket_path())
}

/// Which process holds slot `slot` of the server `config` names (`None`: the slot is free),
/// asked without opening a session: nothing on the server changes.
pub fn slot_holder(config: &ClientConfig, slot: u32) -> Result<Option<u32>, ClientError> {
    let path = door_path(config)?;
    let config = ClientConfig {
        slot: Some(slot),
        ..config.clone()
    };
    match ask(&config, &path, true)?.1 {
        Welcome::Free { .. } => Ok(None),
        Welcome::SlotBusy { pid, .. } => Ok(Some(pid)),
        Welcome::OutOfRange { slot, clients } => Err(ClientError::SlotOutOfRange {
            name: config.name.clone(),
            slot,
            slots: clients,
        }),
        Welcome::Stopping => Err(ClientError::ServerGone("is shutting down")),
        Welcome::Refused => Err(ClientError::PermissionDenied {
            path: path.display().to_string(),
        }),
        _ => Err(ClientError::Protocol(
            "the server's answer to a probe is not understood".into(),
        )),
    }
}

/// One handshake: knock, read the welcome, map the object.
fn handshake(config: &ClientConfig, path: &std::path::Path) -> Result<Answer, ClientError> {
    let (stream, welcome, fd) = ask(config, path, false)?;
    let name = config.name.clone();
    let shown = path.display().to_string();
    match welcome {
        Welcome::Session { slot } => {
            let fd = fd
                .ok_or_else(|| ClientError::Protocol("the server sent no session object".into()))?;
            let (object, info) =
                channel::open_object(&fd).map_err(|reason| ClientError::BadObject { reason })?;
            stream.set_read_timeout(None).ok();
            stream.set_nonblocking(true).ok();
            Ok(Answer::Session(Box::new(Client::attached(
                object,
                info,
                slot,
                (stream, fd),
                config.timeout,
            )?)))
        }
        Welcome::SlotBusy { slot, pid } => Ok(Answer::Busy(ClientError::SlotBusy { slot, pid })),
        Welcome::AllBusy { clients } => Ok(Answer::Busy(ClientError::AllSlotsBusy {
            name,
            slots: clients,
        })),
        Welcome::OutOfRange { slot, clients } => Err(ClientError::SlotOutOfRange {
            name,
            slot,
            slots: clients,
        }),
        Welcome::Stopping => Err(ClientError::ServerGone("is shutting down")),
        Welcome::Refused => Err(ClientError::PermissionDenied { path: shown }),
        Welcome::Failed | Welcome::Free { .. } => Err(ClientError::Protocol(
            "the server could not open a session (see its log)".into(),
        )),
    }
}

impl Client {
    /// Open a session with server `config.name` through its socket (in the given slot, or any
    /// free one). A slot that is held is asked for again until `attach_timeout`: its previous
    /// client may be leaving.
    pub fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let path = door_path(config)?;
        let deadline = Instant::now() + config.attach_timeout;
        loop {
            match handshake(config, &path)? {
                Answer::Session(c) => return Ok(*c),
                Answer::Busy(e) if Instant::now() >= deadline => return Err(e),
                Answer::Busy(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn attached(
        object: Object,
        info: HeaderInfo,
        slot: u32,
        (stream, fd): (UnixStream, std::os::fd::OwnedFd),
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let broken = |e: RecordError| ClientError::Protocol(e.to_string());
        let producer = RecordProducer::new(object.request_ring(&info)).map_err(broken)?;
        let receiver = RecordConsumer::new(object.response_ring(&info)).map_err(broken)?;
        Ok(Client {
            timeout,
            object,
            info,
            slot,
            stream,
            fd,
            producer: Mutex::new(Sender {
                ring: producer,
                buf: Vec::new(),
            }),
            receiver: Mutex::new(Receiver {
                ring: receiver,
                buf: Vec::new(),
            }),
            book: Mutex::new(Book::default()),
            cond: Condvar::new(),
            next_id: AtomicU64::new(1),
        })
    }

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
        self.submit_leading(ops, false).map(|(first, _)| first)
    }

    /// [`Client::submit_ops`]; if `lead` and nobody leads, the caller takes the lead under
    /// the same lock as the booking (the second value says whether it did).
    fn submit_leading<'a>(
        &self,
        ops: impl ExactSizeIterator<Item = OpView<'a>> + Clone,
        lead: bool,
    ) -> Result<(u64, bool), ClientError> {
        for op in ops.clone() {
            check_view_limits(&op, &self.info.limits)?;
        }
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

    /// File every response in the ring, under one lock of the book and with one release of
    /// the ring (one fence). If `mine` is given, the caller is the leader waiting for that
    /// ticket: once the responses are filed without error, leadership is given up under the
    /// same lock and the ticket's outcome, if it came, taken.
    fn drain(&self, rx: &mut Receiver, mine: Option<u64>) -> Result<Drained, ClientError> {
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

    /// Err if the server has shut down, died or dropped this client: the session's state
    /// word says which, and the hang-up of the connection (which the kernel delivers when the
    /// server's process dies, whatever killed it) says that it is over.
    fn check_server(&self) -> Result<(), ClientError> {
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
    fn check_stall(&self, since: Instant) -> Result<(), ClientError> {
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
    /// the request, so the answer cannot have been filed yet).
    fn wait_as(&self, ticket: Ticket, mut leading: bool) -> Result<Outcome, ClientError> {
        let mut since = None;
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
            }
            leading = false;
            let led = self.lead(&mut since, ticket.0);
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
    fn lead(&self, since: &mut Option<Instant>, mine: u64) -> Result<Drained, ClientError> {
        let mut rx = self.receiver.lock();
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

    /// Submit `op`, wait for its answer; a refusal is an error.
    pub fn call(&self, op: Op) -> Result<Outcome, ClientError> {
        self.call_view(op.view())
    }

    /// [`Client::call`] of an operation whose keys and values are borrowed.
    pub fn call_view(&self, op: OpView<'_>) -> Result<Outcome, ClientError> {
        let (id, leading) = self.submit_leading(std::iter::once(op), true)?;
        match self.wait_as(Ticket(id), leading)? {
            Outcome::Refused(e) => Err(ClientError::Refused(e)),
            o => Ok(o),
        }
    }

    /// Create or replace `key` → `value`; returns the previous value (`None`: created).
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::Insert { key, value })? {
            Outcome::Created => Ok(None),
            Outcome::Replaced(v) => Ok(Some(v)),
            o => Err(unexpected(o)),
        }
    }

    /// Read `key`'s value.
    pub fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::Read { key })? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    /// Read `key`'s value into `buf` (replacing its contents; its allocation is reused when
    /// large enough). Returns whether the key was found (`buf` is then empty if not).
    pub fn read_into(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<bool, ClientError> {
        buf.clear();
        match self.read(key)? {
            Some(v) => {
                buf.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Delete `key`; returns its value (`None`: it was absent).
    pub fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::Delete { key })? {
            Outcome::Deleted(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    /// Create `key` → `value` only if `key` is absent (Redis `SET NX`). `None`: created;
    /// `Some(current)`: it was present with that value and nothing changed.
    pub fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::InsertNew { key, value })? {
            Outcome::Created => Ok(None),
            Outcome::Exists(v) => Ok(Some(v)),
            o => Err(unexpected(o)),
        }
    }

    /// Set `key` to `new` if its value is `expected` (`None`: if it is absent). `Ok(Ok(()))`:
    /// swapped; `Ok(Err(current))`: it held `current` (`None`: absent) and nothing changed.
    pub fn cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, ClientError> {
        match self.call_view(OpView::Cas { key, expected, new })? {
            Outcome::Swapped => Ok(Ok(())),
            Outcome::Mismatch(cur) => Ok(Err(cur)),
            o => Err(unexpected(o)),
        }
    }

    /// Add `delta` to the decimal integer stored at `key` (a missing key counts as 0, Redis
    /// `INCRBY`); returns the new value. A value that is not a decimal `i64`, or a result
    /// that overflows, is refused and changes nothing.
    pub fn add(&self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        match self.call_view(OpView::Add { key, delta })? {
            Outcome::Number(n) => Ok(n),
            o => Err(unexpected(o)),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> Result<u64, ClientError> {
        match self.call(Op::Len)? {
            Outcome::Count(n) => Ok(n),
            o => Err(unexpected(o)),
        }
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> Result<bool, ClientError> {
        Ok(self.len()? == 0)
    }

    /// One step of a scan (Redis `SCAN`): keys from `cursor` on (0 starts), about `count` of
    /// them, and the cursor of the next step (0 when the scan is complete). A full scan
    /// returns every key present from its start to its end at least once.
    pub fn scan(&self, cursor: u64, count: u32) -> Result<(u64, Keys), ClientError> {
        match self.call(Op::Scan {
            cursor,
            count: count.max(1),
        })? {
            Outcome::Keys { cursor, keys } => Ok((cursor, keys)),
            o => Err(unexpected(o)),
        }
    }

    /// Every key, by a full scan (see [`Client::scan`]).
    pub fn keys(&self) -> Result<Keys, ClientError> {
        let (mut cursor, mut all) = (0, Vec::new());
        loop {
            let (next, keys) = self.scan(cursor, 1000)?;
            all.extend(keys);
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// The pairs of one bucket.
    pub fn print(&self, bucket: u64) -> Result<Pairs, ClientError> {
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
        match self.call(Op::ThreadsStart { n })? {
            Outcome::Threads(c) => Ok(c),
            o => Err(unexpected(o)),
        }
    }

    /// Stop one of this client's server worker threads; returns the count now.
    pub fn stop_thread(&self) -> Result<u32, ClientError> {
        match self.call(Op::ThreadsStop)? {
            Outcome::Threads(c) => Ok(c),
            o => Err(unexpected(o)),
        }
    }

    /// The server's statistics: request counts, refusals, table size and memory, client slots
    /// and worker threads, sampled service times. They are taken after every request this
    /// client sent before has been answered, and before any it sends after.
    pub fn stats(&self) -> Result<Stats, ClientError> {
        match self.call(Op::Stats)? {
            Outcome::Stats(s) => Ok(Stats::from_stats(&s)),
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

/// A list of keys.
pub type Keys = Vec<Vec<u8>>;
/// A list of (key, value) pairs.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A client's buffer larger than this after a message is given back to the allocator.
const SCRATCH_KEEP: usize = 256 * 1024;

/// Refuse an operation whose key or value the server would refuse (an empty key too).
pub fn check_limits(op: &Op, limits: &Limits) -> Result<(), ClientError> {
    check_view_limits(&op.view(), limits)
}

/// [`check_limits`] of a borrowed operation.
pub fn check_view_limits(op: &OpView<'_>, limits: &Limits) -> Result<(), ClientError> {
    let key = |k: &[u8]| {
        if k.is_empty() || k.len() > limits.max_key as usize {
            return Err(ClientError::TooLarge {
                what: Field::Key,
                len: k.len() as u64,
                max: limits.max_key,
            });
        }
        Ok(())
    };
    let value = |v: &[u8]| {
        if v.len() > limits.max_value as usize {
            return Err(ClientError::TooLarge {
                what: Field::Value,
                len: v.len() as u64,
                max: limits.max_value,
            });
        }
        Ok(())
    };
    match *op {
        OpView::Insert { key: k, value: v } | OpView::InsertNew { key: k, value: v } => {
            key(k)?;
            value(v)
        }
        OpView::Read { key: k } | OpView::Delete { key: k } | OpView::Add { key: k, .. } => key(k),
        OpView::Cas {
            key: k,
            expected,
            new,
        } => {
            key(k)?;
            if let Some(e) = expected {
                value(e)?;
            }
            value(new)
        }
        OpView::Len
        | OpView::Scan { .. }
        | OpView::Print { .. }
        | OpView::ThreadsStart { .. }
        | OpView::ThreadsStop
        | OpView::Stats
        | OpView::Quit => Ok(()),
    }
}

fn unexpected(o: Outcome) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {o:?}"))
}

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

/// File one response under its request. A response for no request (or for one already
/// answered) is counted as a stray; a part that does not continue its answer breaks the
/// connection.
fn file(book: &mut Book, id: u64, reply: crate::wire::Reply) -> Result<(), ClientError> {
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
        Err(e) => Err(ClientError::Protocol(format!(
            "a {:?} part in a {:?} answer",
            e.got, e.expected
        ))),
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Tell the server we are leaving on purpose (its log says "detached"); closing the
        // connection then ends the session.
        let _ = std::io::Write::write(&mut &self.stream, &[GOODBYE]);
    }
}
