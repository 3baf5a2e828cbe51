//! The session lifecycle: the front door thread accepts connections on the server's socket,
//! checks who connected, answers the handshake with a fresh sealed object, and ends a session
//! when the kernel reports its hang-up.
//!
//! A *session* is one accepted connection: its slot number, its object (never given to
//! another session), its lane and its worker threads. It *ends* when the client hangs up (it
//! detached, or its process died: the kernel closes its end of the socket either way), when the
//! server drops it (see [`super::abuse`]), or at shutdown. An ended session takes no new
//! requests once its ring is empty; its workers exit and the object is unmapped when the last
//! of them lets go.

use super::abuse::Abuse;
use super::{Shared, log_event, workers};
use crate::channel::{self, ObjectParams, STATE_DROPPED, STATE_STOPPING};
use crate::door::{self, ANY_SLOT, GOODBYE, HELLO_LEN, Hello, Peer, Welcome};
use crate::record::ShmRecordMem;
use crate::serve::Lane;
use crate::stats::{ErrorCounts, OpCounts};
use crate::sync::{Arc, AtomicBool, AtomicU32, Ordering};
use crate::wait::SpinPolicy;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long a connection may take to send its hello before it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// The most connections waiting for their hello at once; more are closed at once.
pub const MAX_PENDING: usize = 64;

/// Counters of the sessions that have finished, kept for the server's statistics. Changed
/// only with the slots' lock held, so that a session's counts are either in its slot or here.
#[derive(Debug, Default)]
pub(super) struct Retired {
    /// Requests by kind.
    pub ops: OpCounts,
    /// Refusals by reason.
    pub errors: ErrorCounts,
    /// Requests taken, by slot.
    pub by_slot: Vec<u64>,
}

/// One client's session.
pub(super) struct Session {
    /// Its slot number.
    pub slot: u32,
    /// The client's process, as the kernel reported it at connect.
    pub peer: Peer,
    /// The server's mapping of the session object.
    object: channel::Object,
    /// The request ring's consumer, the response ring's producer, the worker count.
    pub lane: Lane<ShmRecordMem>,
    /// The connection: the front door watches it for the hang-up.
    stream: UnixStream,
    /// The session has ended: take nothing once the ring is empty.
    ended: AtomicBool,
    /// Its record under the abuse policy.
    pub abuse: Abuse,
    /// Its worker threads alive (the last one out of an ended session finishes it).
    threads: AtomicU32,
    /// The session is finished: its slot freed, its counts moved to [`Retired`].
    finished: AtomicBool,
    /// Its workers counted busy (see `placement`).
    pub busy: AtomicU32,
    /// The object's resident pages have been mapped (see [`Session::map_resident`]).
    mapped: AtomicBool,
}

impl Session {
    /// Once per session, after its first request is answered: map into the server's page
    /// tables the pages of the session object that the client has already faulted in (a
    /// client that prefaults, `ClientConfig::prefault`, faults all of them at connect), so
    /// that the worker's first lap of the rings takes no page fault on them (it took one per
    /// 4 KiB page of the response ring it wrote, about one request in a hundred). Pages the
    /// client has not touched stay unmapped, so nothing is allocated.
    pub fn map_resident(&self) {
        // (A plain load first: a swap on every request would be a locked instruction each.)
        if self.mapped.load(Ordering::Relaxed) || self.mapped.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.object.populate_resident() {
            tracing::debug!(slot = self.slot, "session object not mapped ahead: {e}");
        }
    }

    /// Whether the session has ended (hang-up, drop or shutdown).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// End the session (once; true the first time): responses are dropped from now on, and
    /// its waiting workers are woken to drain the ring and exit.
    fn end(&self) -> bool {
        if self.ended.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.lane.abandon();
        self.lane.nudge();
        true
    }

    /// The server is shutting down: say so in the object (the client reads it when it sees
    /// the hang-up) and wake the workers, which refuse what is left.
    pub fn server_stopping(&self) {
        self.object.state().store(STATE_STOPPING, Ordering::SeqCst);
        self.lane.nudge();
    }

    /// Drop the client: mark the object, end the session and hang up. Returns false if the
    /// session had ended already.
    pub fn drop_client(&self) -> bool {
        self.object.state().store(STATE_DROPPED, Ordering::SeqCst);
        let first = self.end();
        self.hang_up();
        first
    }

    /// Close the connection (the client sees the hang-up at once) and wake a waiting client.
    pub fn hang_up(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.object.nudge_client();
    }
}

/// A worker thread of `session` is starting.
pub(super) fn worker_starts(session: &Session) {
    session.threads.fetch_add(1, Ordering::SeqCst);
}

/// A worker thread of `session` has exited (or never started): the last one out of an ended
/// session finishes it.
pub(super) fn worker_exits(shared: &Shared, session: &Arc<Session>) {
    if session.threads.fetch_sub(1, Ordering::SeqCst) == 1 && session.ended() {
        finish(shared, session);
    }
}

/// Finish an ended session whose workers have all exited (once): free its slot and keep its
/// counts. Until then the slot stays taken, so that a new session of the slot never runs
/// beside the old one's workers.
fn finish(shared: &Shared, session: &Arc<Session>) {
    if session.finished.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut slots = shared.slots.lock();
    let i = session.slot as usize;
    if slots[i].as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
        slots[i] = None;
    }
    let mut r = shared.retired.lock();
    let c = session.lane.counters();
    r.ops += c.op_counts();
    r.errors += c.error_counts();
    if r.by_slot.len() <= i {
        r.by_slot.resize(i + 1, 0);
    }
    r.by_slot[i] += c.requests();
}

/// A connection that has not sent its hello yet.
struct Pending {
    stream: UnixStream,
    peer: Peer,
    since: Instant,
}

/// The front door thread's state.
pub(super) struct FrontDoor {
    shared: Arc<Shared>,
    listener: door::Listener,
    bell: UnixStream,
    pending: Vec<Pending>,
}

/// Why a session ended, as the front door saw it.
enum HangUp {
    /// The client said goodbye, then closed.
    Detached,
    /// The connection closed without a goodbye: the client's process died or was killed.
    Died,
    /// The client wrote something other than a goodbye on its socket.
    Garbage,
}

impl FrontDoor {
    pub(super) fn new(shared: Arc<Shared>, listener: door::Listener, bell: UnixStream) -> Self {
        FrontDoor {
            shared,
            listener,
            bell,
            pending: Vec::new(),
        }
    }

    /// Serve the socket until the server stops: accept, handshake, notice hang-ups. At the
    /// end the listening socket is removed; the sessions stay open for the shutdown.
    pub(super) fn run(mut self) {
        while !self.shared.stopping() {
            // An ended session is finished by its last worker: its connection (at end of
            // file, readable for ever) needs no more watching.
            let open: Vec<Arc<Session>> = self
                .shared
                .slots
                .lock()
                .iter()
                .flatten()
                .filter(|s| !s.ended())
                .cloned()
                .collect();
            let (ready, bell, listener) = self.wait(&open);
            if bell {
                let mut buf = [0u8; 64];
                let _ = (&self.bell).read(&mut buf);
            }
            for (i, s) in open.iter().enumerate() {
                if ready.get(i).copied().unwrap_or(false) {
                    self.hang_up(s);
                }
            }
            let pend: Vec<bool> = ready[open.len()..].to_vec();
            self.handshakes(&pend);
            if listener {
                self.accept();
            }
        }
    }

    /// Poll the bell, the sessions, the pending connections and the listener. Returns which
    /// sessions and pending connections are ready (in that order), and whether the bell and
    /// the listener are.
    fn wait(&self, open: &[Arc<Session>]) -> (Vec<bool>, bool, bool) {
        let watch = PollFlags::POLLIN;
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(open.len() + self.pending.len() + 2);
        fds.push(PollFd::new(self.bell.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(
            self.listener.socket().as_fd(),
            PollFlags::POLLIN,
        ));
        for s in open {
            fds.push(PollFd::new(s.stream.as_fd(), watch));
        }
        for p in &self.pending {
            fds.push(PollFd::new(p.stream.as_fd(), watch));
        }
        let timeout = self
            .pending
            .iter()
            .map(|p| (p.since + HANDSHAKE_TIMEOUT).saturating_duration_since(Instant::now()))
            .min()
            .map_or(PollTimeout::NONE, |d| {
                PollTimeout::try_from(d.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX)
            });
        if poll(&mut fds, timeout).is_err() {
            return (vec![false; open.len() + self.pending.len()], false, false);
        }
        let is = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        let ready = fds[2..].iter().map(is).collect();
        (ready, is(&fds[0]), is(&fds[1]))
    }

    /// Accept every waiting connection: check who it is, and wait for its hello.
    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.socket().accept() {
            let peer = match door::peer(&stream) {
                Ok(p) => p,
                Err(_) => continue,
            };
            if !door::trusted(peer.uid) {
                let _ = stream.set_nonblocking(true);
                let _ = door::send_with_fd(&stream, &Welcome::Refused.encode(), None);
                log_event!(
                    self.shared,
                    warn,
                    pid = peer.pid,
                    uid = peer.uid,
                    "connection refused: the client runs as another user"
                );
                continue;
            }
            if self.pending.len() >= MAX_PENDING || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.pending.push(Pending {
                stream,
                peer,
                since: Instant::now(),
            });
        }
    }

    /// Answer the pending connections that are ready; close those that took too long.
    fn handshakes(&mut self, ready: &[bool]) {
        let now = Instant::now();
        let mut keep = Vec::with_capacity(self.pending.len());
        for (i, p) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            if ready.get(i).copied().unwrap_or(false) {
                self.greet(p);
            } else if now.duration_since(p.since) < HANDSHAKE_TIMEOUT {
                keep.push(p);
            } else {
                log_event!(self.shared, debug, pid = p.peer.pid, "handshake timed out");
            }
        }
        self.pending = keep;
    }

    /// Read a hello and answer it: a session, or a refusal.
    fn greet(&mut self, p: Pending) {
        let mut buf = [0u8; HELLO_LEN + 1];
        let hello = match (&p.stream).read(&mut buf) {
            Ok(n) => Hello::decode(&buf[..n]),
            Err(_) => None,
        };
        let Some(hello) = hello else {
            log_event!(
                self.shared,
                debug,
                pid = p.peer.pid,
                "handshake failed: no valid hello"
            );
            let _ = door::send_with_fd(&p.stream, &Welcome::Failed.encode(), None);
            return;
        };
        if hello.probe {
            let _ = door::send_with_fd(&p.stream, &self.probe(hello.slot).encode(), None);
            return;
        }
        match self.open_session(hello, &p) {
            Ok(session) => self.welcome(session, p),
            Err(refusal) => {
                let _ = door::send_with_fd(&p.stream, &refusal.encode(), None);
            }
        }
    }

    /// Who holds `slot`, without opening a session.
    fn probe(&self, slot: u32) -> Welcome {
        let slots = self.shared.slots.lock();
        match slots.get(slot as usize) {
            None => Welcome::OutOfRange {
                slot,
                clients: self.shared.config.clients,
            },
            Some(None) => Welcome::Free { slot },
            Some(Some(s)) => Welcome::SlotBusy {
                slot,
                pid: s.peer.pid,
            },
        }
    }

    /// Pick the slot, make the object and the lane, and take the slot.
    fn open_session(
        &self,
        hello: Hello,
        p: &Pending,
    ) -> Result<(Arc<Session>, std::os::fd::OwnedFd), Welcome> {
        let shared = &self.shared;
        let c = &shared.config;
        if shared.stopping() {
            return Err(Welcome::Stopping);
        }
        let mut slots = shared.slots.lock();
        let slot = match hello.slot {
            ANY_SLOT => slots
                .iter()
                .position(Option::is_none)
                .ok_or(Welcome::AllBusy { clients: c.clients })? as u32,
            s if s >= c.clients => {
                return Err(Welcome::OutOfRange {
                    slot: s,
                    clients: c.clients,
                });
            }
            s => match &slots[s as usize] {
                Some(holder) => {
                    return Err(Welcome::SlotBusy {
                        slot: s,
                        pid: holder.peer.pid,
                    });
                }
                None => s,
            },
        };
        let params = ObjectParams {
            index: slot,
            clients: c.clients,
            buckets: c.buckets as u64,
            limits: c.limits,
        };
        let (fd, object, info) = channel::create_object(&params).map_err(|e| {
            log_event!(shared, warn, slot, error = %e, "cannot create a session object");
            Welcome::Failed
        })?;
        let stream = p.stream.try_clone().map_err(|_| Welcome::Failed)?;
        let mut lane = Lane::new(
            object.request_ring(&info),
            object.response_ring(&info),
            c.limits,
            c.threads,
            c.max_threads,
        )
        .map_err(|_| Welcome::Failed)?;
        lane.set_share_backlog(shared.share_backlog);
        if !c.spin {
            lane.set_policy(SpinPolicy::BLOCK);
        }
        let session = Arc::new(Session {
            slot,
            peer: p.peer,
            object,
            lane,
            stream,
            ended: AtomicBool::new(false),
            abuse: Abuse::new(),
            threads: AtomicU32::new(0),
            finished: AtomicBool::new(false),
            mapped: AtomicBool::new(false),
            busy: AtomicU32::new(0),
        });
        slots[slot as usize] = Some(session.clone());
        Ok((session, fd))
    }

    /// Start the session's workers and hand the client its object.
    fn welcome(&mut self, (session, fd): (Arc<Session>, std::os::fd::OwnedFd), p: Pending) {
        let shared = &self.shared;
        let started = (0..shared.config.threads)
            .take_while(|_| workers::spawn(shared, &session).is_ok())
            .count();
        if started == shared.config.threads as usize && session.abuse.may_log().0 {
            log_event!(
                shared,
                info,
                slot = session.slot,
                pid = session.peer.pid,
                "client connected"
            );
        }
        let welcome = Welcome::Session { slot: session.slot };
        if started < shared.config.threads as usize
            || door::send_with_fd(&p.stream, &welcome.encode(), Some(&fd)).is_err()
        {
            log_event!(
                shared,
                warn,
                slot = session.slot,
                started,
                "cannot start a session"
            );
            self.close(&session);
            let _ = door::send_with_fd(&p.stream, &Welcome::Failed.encode(), None);
        }
    }

    /// End a session; finish it at once if no worker is left to.
    fn close(&self, session: &Arc<Session>) {
        session.end();
        if session.threads.load(Ordering::SeqCst) == 0 {
            finish(&self.shared, session);
        }
    }

    /// The session's connection is readable: a goodbye, a hang-up, or garbage. End it.
    fn hang_up(&self, session: &Arc<Session>) {
        let mut buf = [0u8; 16];
        let why = match (&session.stream).read(&mut buf) {
            Ok(0) => HangUp::Died,
            Ok(1) if buf[0] == GOODBYE => HangUp::Detached,
            Ok(_) => HangUp::Garbage,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => HangUp::Died,
        };
        // A session the server dropped itself was logged when it was dropped.
        let was_open = !session.ended();
        self.close(session);
        if !was_open || !session.abuse.may_log().0 {
            return;
        }
        let (slot, pid) = (session.slot, session.peer.pid);
        match why {
            HangUp::Detached => log_event!(
                self.shared,
                info,
                slot,
                pid,
                reason = "detached",
                "client disconnected"
            ),
            HangUp::Died => log_event!(
                self.shared,
                warn,
                slot,
                pid,
                reason = "its process died without detaching",
                "client disconnected"
            ),
            HangUp::Garbage => log_event!(
                self.shared,
                warn,
                slot,
                pid,
                reason = "it wrote unexpected bytes on its socket",
                "client dropped"
            ),
        }
        if matches!(why, HangUp::Garbage) {
            session.drop_client();
        }
    }
}
