//! The server engine: creates one client object per slot, runs each slot's worker threads over
//! the shared table, notices clients that detach or die, and shuts down gracefully (answering
//! what it took, unlinking every object it created).
//!
//! # Logging
//!
//! With [`ServerConfig::log`] set, the server emits [`tracing`] events (target `shmkv::server`,
//! field `server` = its name); a program sees them once it installs a subscriber, as
//! `shmkv-server` does. One event per: client connected (info), client disconnected (info when
//! it detached, warn when its process died without detaching, with `reason`), client dropped
//! for breaking its ring (warn, `reason`), worker threads started or stopped (info, with the
//! slot's count now), quit requested, shut down (info); at debug level also each worker
//! thread's start and exit, stale objects removed at start, and the configuration.
//!
//! # Misbehaving clients
//!
//! A client can make a worker do pointless work without sending requests: wake it with
//! nothing to take, make it reset the slot again and again (by writing the owner or closing
//! word), send requests that do not decode, or wake it while it waits for room for answers.
//! Each slot may cause at most [`TROUBLE_LIMIT`] such events a second; and, however slowly it
//! causes them, it may not run up more than [`STRIKE_LIMIT`] strikes (one a pointless event; one
//! taken off for every request that decodes, and [`STRIKE_LEAK`] a second). Beyond either the
//! client is dropped (warn, with the counts as `reason`) and the slot is not served for
//! [`QUIET_PERIOD`]. (The rate alone was not enough: on a busy machine a futex storm made the
//! server do a few hundred pointless wake-ups a second, under the rate, and was never dropped.) Log lines about one slot's clients are limited to [`LOG_LIMIT`] a second
//! (the rest are counted and reported).

use crate::channel::{
    self, HeaderInfo, MAX_RING, MIN_RING, Object, ObjectParams, STATE_RUNNING, STATE_STOPPING,
};
use crate::protocol::Stat;
use crate::serve::{Control, Lane, Misbehavior, ServedTable, Step};
use crate::shm::{Mapping, ShmRingMem};
use crate::stats::{ErrorCounts, Latency, OpCounts, SlotStats, Stats, table_stats};
use crate::sync::{Arc, AtomicBool, AtomicU32, Condvar, Mutex, Ordering, thread};
use crate::table::{MAX_BUCKETS, Table, TableError};
use nix::errno::Errno;
use std::time::{Duration, Instant};

/// The most client slots a server may have.
pub const MAX_CLIENTS: u32 = 1024;
/// The most worker threads one client may have (the default for `max_threads`).
pub const MAX_THREADS_PER_CLIENT: u32 = 64;
/// How often an idle worker wakes to look for a detached or dead client.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a shutting-down server waits for clients to take their last responses before it
/// drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The most pointless events one slot's client may cause in a second (wake-ups with nothing to
/// take, slot resets, requests that do not decode, wake-ups with still no room for answers);
/// beyond it the client is dropped. A well-behaved client causes one (the reset when it leaves).
pub const TROUBLE_LIMIT: u32 = 500;
/// The most strikes a slot's clients may run up: a pointless event (as for [`TROUBLE_LIMIT`])
/// adds one, each request that decodes takes one off, and [`STRIKE_LEAK`] leak away a second.
/// A well-behaved client stays near zero (at most one benign pointless wake-up per real
/// request, in a race with its own publish, and one reset when it leaves); a hostile one that
/// keeps the server busy with nothing reaches the limit however slowly it can make it work.
pub const STRIKE_LIMIT: u32 = 100;
/// Strikes forgiven a second (see [`STRIKE_LIMIT`]): a client causing fewer pointless events
/// than this costs the server nothing measurable and is left alone.
pub const STRIKE_LEAK: u32 = 10;
/// How long a slot is not served after its client was dropped for exceeding [`TROUBLE_LIMIT`]
/// or [`STRIKE_LIMIT`].
pub const QUIET_PERIOD: Duration = Duration::from_millis(500);
/// The most log lines about one slot's clients in a second; the others are counted and their
/// number logged.
pub const LOG_LIMIT: u32 = 20;
/// How often a slot's owner is checked for having the slot's object mapped (see
/// [`channel::maps_object`]); whether it lives is checked at every idle poll.
const MAPS_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The owner word while the server cleans a slot nobody owns (no pid is `u32::MAX`).
const RESERVED: u32 = u32::MAX;

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Prefix of every object the server creates (`<name>-client-<i>`).
    pub name: String,
    /// Table buckets, 1 to [`MAX_BUCKETS`].
    pub buckets: usize,
    /// Client slots, 1 to [`MAX_CLIENTS`].
    pub clients: u32,
    /// Worker threads each client starts with, 1 to `max_threads`.
    pub threads: u32,
    /// Most worker threads per client, 1 to [`MAX_THREADS_PER_CLIENT`].
    pub max_threads: u32,
    /// Slots in each request ring and each response ring: a power of two in
    /// [`MIN_RING`]..=[`MAX_RING`].
    pub ring_capacity: u32,
    /// Emit log events through [`tracing`] (connects, disconnects, thread changes, dropped
    /// clients, shutdown; see the [module](self) docs). They show only where the program has
    /// installed a subscriber.
    pub log: bool,
    /// Whether a client's workers share its backlog (see [`Lane::set_share_backlog`]): `None`
    /// decides by the machine, on with three cores or more (a worker woken to share needs a
    /// core besides the client's and the ring holder's).
    pub share_backlog: Option<bool>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "shmkv".into(),
            buckets: 5000,
            clients: 4,
            threads: 1,
            max_threads: MAX_THREADS_PER_CLIENT,
            ring_capacity: 1024,
            log: false,
            share_backlog: None,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The table could not be made.
    #[error("table: {0}")]
    Table(#[from] TableError),
    /// Another live server holds the name.
    #[error(
        "a server named '{name}' is already running (pid {pid}); stop it or pick another --name"
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The live server's pid.
        pid: u32,
    },
    /// An object exists that is not ours to remove.
    #[error(
        "/dev/shm/{object} exists and is not a stale shmkv object of this user; remove it or pick another --name"
    )]
    ForeignObject {
        /// The object's name.
        object: String,
    },
    /// A system call failed.
    #[error("creating /dev/shm/{object}: {errno}")]
    Create {
        /// The object's name.
        object: String,
        /// The error.
        errno: Errno,
    },
    /// A thread could not be spawned.
    #[error("cannot start a worker thread: {0}")]
    Spawn(std::io::Error),
}

/// A client object this server created; unlinked by [`OwnedObject::unlink`] or when dropped,
/// once.
struct OwnedObject {
    name: String,
    object: Object,
    unlinked: AtomicBool,
}

impl OwnedObject {
    fn unlink(&self) {
        if !self.unlinked.swap(true, Ordering::SeqCst) {
            let _ = Mapping::unlink(&self.name);
        }
    }
}

impl Drop for OwnedObject {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// One client slot: its object and its lane.
struct SlotState {
    index: u32,
    owned: OwnedObject,
    lane: Lane<ShmRingMem>,
    /// The owner pid we last logged as connected (0: none).
    seen_owner: AtomicU32,
    /// The header as created: the server never reads it back from shared memory.
    info: HeaderInfo,
    /// What this slot's clients made the server do lately (see [`TROUBLE_LIMIT`]).
    trouble: Mutex<Trouble>,
    /// The client exceeded [`TROUBLE_LIMIT`] and is to be dropped (reason in `trouble`).
    abusive: AtomicBool,
    /// The slot sits out a [`QUIET_PERIOD`] (until `trouble.quiet_until`).
    quiet: AtomicBool,
}

/// Pointless events and log lines of one slot in the current one-second window.
struct Trouble {
    window: Instant,
    wakeups: u32,
    resets: u32,
    malformed: u32,
    spurious: u32,
    lines: u32,
    suppressed: u32,
    /// Why the client is being dropped, until a worker drops it.
    why: Option<String>,
    quiet_until: Option<Instant>,
    /// When the owner was last checked for having the object mapped.
    maps_checked: Instant,
    /// Strikes of the slot's clients (see [`STRIKE_LIMIT`]).
    strikes: Strikes,
}

/// A slot's strikes (see [`STRIKE_LIMIT`]): a leaky count of pointless events, paid off by
/// requests that decode.
#[derive(Debug)]
struct Strikes {
    count: u32,
    /// When the leak was last applied.
    leaked_at: Instant,
    /// The slot's decoded requests when last looked at.
    valid_seen: u64,
}

impl Strikes {
    fn new(now: Instant) -> Strikes {
        Strikes {
            count: 0,
            leaked_at: now,
            valid_seen: 0,
        }
    }

    /// Add a strike at `now`, when the slot has decoded `valid` requests in all; first take
    /// off one for each request decoded since the last look and the leak since the last
    /// leak. Returns the strikes now.
    fn strike(&mut self, now: Instant, valid: u64) -> u32 {
        let paid = valid.saturating_sub(self.valid_seen);
        self.valid_seen = valid;
        let ms = now.saturating_duration_since(self.leaked_at).as_millis();
        let leak = ms * u128::from(STRIKE_LEAK) / 1000;
        if leak > 0 {
            self.leaked_at = now;
        }
        let off = u128::from(paid).saturating_add(leak);
        let left = u128::from(self.count).saturating_sub(off) as u32;
        self.count = left.saturating_add(1);
        self.count
    }

    /// Start afresh (after a drop), knowing the slot has decoded `valid` requests.
    fn clear(&mut self, now: Instant, valid: u64) {
        *self = Strikes::new(now);
        self.valid_seen = valid;
    }
}

impl Trouble {
    fn new() -> Trouble {
        let now = Instant::now();
        Trouble {
            window: now,
            wakeups: 0,
            resets: 0,
            malformed: 0,
            spurious: 0,
            lines: 0,
            suppressed: 0,
            why: None,
            quiet_until: None,
            maps_checked: now,
            strikes: Strikes::new(now),
        }
    }

    /// Start a new window if a second has passed; returns the lines suppressed in the old one.
    fn roll(&mut self, now: Instant) -> u32 {
        if now.duration_since(self.window) < Duration::from_secs(1) {
            return 0;
        }
        self.window = now;
        self.wakeups = 0;
        self.resets = 0;
        self.malformed = 0;
        self.spurious = 0;
        self.lines = 0;
        std::mem::take(&mut self.suppressed)
    }

    fn events(&self) -> u32 {
        self.wakeups + self.resets + self.malformed + self.spurious
    }
}

/// A pointless event (see [`TROUBLE_LIMIT`]).
#[derive(Debug, Clone, Copy)]
enum Pointless {
    Wakeup,
    Reset,
    Malformed,
    Spurious,
}

/// Emit a tracing event if the server logs, with the server's name as field `server`.
macro_rules! log_event {
    ($shared:expr, $level:ident, $($rest:tt)+) => {
        if $shared.config.log {
            tracing::$level!(server = %$shared.config.name, $($rest)+);
        }
    };
}

/// Why a client's slot is being reset.
#[derive(Debug)]
enum Gone {
    /// It detached (closing set).
    Detached,
    /// Its process died without detaching.
    Died,
    /// Its pid is alive but does not have the slot's object mapped: the pid was reused after
    /// the client died, or the owner word was forged.
    Impostor,
    /// It broke its request ring's counters.
    Dropped(String),
    /// It exceeded [`TROUBLE_LIMIT`]; the slot sits out a [`QUIET_PERIOD`].
    Abused(String),
    /// Nobody owned the slot, but its words were not as a reset leaves them.
    Scrubbed,
}

struct Shared {
    config: ServerConfig,
    table: ServedTable,
    latency: Latency,
    started: Instant,
    slots: Vec<SlotState>,
    stopping: AtomicBool,
    stop_lock: Mutex<bool>,
    stop_cond: Condvar,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

/// A running server. Dropping it shuts it down.
pub struct Server {
    shared: Arc<Shared>,
    done: bool,
}

/// A handle that asks a server to stop, usable from any thread (a signal thread, say).
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Ask the server to shut down gracefully.
    pub fn stop(&self) {
        self.0.request_stop();
    }
}

/// Remove `<name>-client-<i>` if it is a stale object: a shmkv object whose server is dead.
/// Ok(()) if it is gone now; an error if a live server holds it or it is not ours.
fn clear_stale(name: &str, index: u32, log: bool) -> Result<(), ServerError> {
    let object = channel::object_name(name, index);
    match channel::open_object(name, index) {
        Err(Errno::ENOENT) => Ok(()),
        Err(_) => Err(ServerError::ForeignObject { object }),
        Ok(Ok((_, info))) => {
            // Only objects of this user are ours to remove (root may unlink anyone's).
            use std::os::unix::fs::MetadataExt;
            let mine = std::fs::metadata(format!("/dev/shm/{object}"))
                .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw());
            if !mine {
                return Err(ServerError::ForeignObject { object });
            }
            // A live pid that does not map the object is not its server: the server died
            // and its pid was reused.
            if channel::pid_holds(info.server_pid, &object) && info.server_pid != std::process::id()
            {
                Err(ServerError::NameInUse {
                    name: name.to_string(),
                    pid: info.server_pid,
                })
            } else {
                let _ = Mapping::unlink(&object);
                if log {
                    tracing::debug!(server = %name, object = %object, dead_pid = info.server_pid, "removed a stale object");
                }
                Ok(())
            }
        }
        Ok(Err(_)) => Err(ServerError::ForeignObject { object }),
    }
}

/// Slot indices `>= from` of objects named `<name>-client-<i>` in /dev/shm.
fn stale_indices(name: &str, from: u32) -> Vec<u32> {
    let prefix = format!("{name}-client-");
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(&prefix)?.parse::<u32>().ok()
        })
        .filter(|&i| i >= from)
        .collect()
}

impl Server {
    /// Validate `config`, create the table and every client object, start the workers, and
    /// mark the objects running. On error, everything created so far is removed.
    pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
        channel::validate_name(&config.name).map_err(ServerError::Config)?;
        if config.clients == 0 || config.clients > MAX_CLIENTS {
            return Err(ServerError::Config(format!(
                "clients must be 1 to {MAX_CLIENTS}, got {}",
                config.clients
            )));
        }
        if config.max_threads == 0 || config.max_threads > MAX_THREADS_PER_CLIENT {
            return Err(ServerError::Config(format!(
                "max threads per client must be 1 to {MAX_THREADS_PER_CLIENT}, got {}",
                config.max_threads
            )));
        }
        if config.threads == 0 || config.threads > config.max_threads {
            return Err(ServerError::Config(format!(
                "threads per client must be 1 to {}, got {}",
                config.max_threads, config.threads
            )));
        }
        let rc = config.ring_capacity;
        if !rc.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&rc) {
            return Err(ServerError::Config(format!(
                "ring capacity must be a power of two from {MIN_RING} to {MAX_RING}, got {rc}"
            )));
        }
        if config.buckets == 0 || config.buckets > MAX_BUCKETS {
            return Err(ServerError::Config(format!(
                "buckets must be 1 to {MAX_BUCKETS}, got {}",
                config.buckets
            )));
        }
        let table = Table::new(config.buckets)?;
        // Objects of an earlier, larger server of this name: stale ones go, a live one refuses.
        for index in stale_indices(&config.name, config.clients) {
            clear_stale(&config.name, index, config.log)?;
        }
        let mut slots = Vec::with_capacity(config.clients as usize);
        let share_backlog = config
            .share_backlog
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) > 2);
        for index in 0..config.clients {
            clear_stale(&config.name, index, config.log)?;
            let params = ObjectParams {
                index,
                clients: config.clients,
                req_capacity: rc,
                resp_capacity: rc,
                buckets: config.buckets as u64,
            };
            let (object, info): (Object, HeaderInfo) =
                channel::create_object(&config.name, &params).map_err(|errno| {
                    ServerError::Create {
                        object: channel::object_name(&config.name, index),
                        errno,
                    }
                })?;
            let mut lane = Lane::new(
                object.request_ring(&info),
                object.response_ring(&info),
                config.threads,
                config.max_threads,
            );
            lane.set_share_backlog(share_backlog);
            slots.push(SlotState {
                index,
                owned: OwnedObject {
                    name: channel::object_name(&config.name, index),
                    object,
                    unlinked: AtomicBool::new(false),
                },
                lane,
                seen_owner: AtomicU32::new(0),
                info,
                trouble: Mutex::new(Trouble::new()),
                abusive: AtomicBool::new(false),
                quiet: AtomicBool::new(false),
            });
        }
        let shared = Arc::new(Shared {
            config,
            table,
            latency: Latency::default(),
            started: Instant::now(),
            slots,
            stopping: AtomicBool::new(false),
            stop_lock: Mutex::new(false),
            stop_cond: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        let server = Server {
            shared: shared.clone(),
            done: false,
        };
        for index in 0..shared.slots.len() {
            for _ in 0..shared.config.threads {
                shared.spawn_worker(index).map_err(ServerError::Spawn)?;
            }
        }
        for s in &shared.slots {
            s.owned
                .object
                .state()
                .store(STATE_RUNNING, Ordering::SeqCst);
        }
        let c = &shared.config;
        log_event!(
            shared,
            debug,
            buckets = c.buckets,
            clients = c.clients,
            threads = c.threads,
            max_threads = c.max_threads,
            ring = c.ring_capacity,
            "started"
        );
        Ok(server)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// A handle to stop the server from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.shared.table.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.shared.table.is_empty()
    }

    /// Block until a stop is requested (Quit, [`StopHandle::stop`]), then shut down.
    pub fn wait(mut self) {
        {
            let mut stopped = self.shared.stop_lock.lock();
            while !*stopped {
                stopped = self.shared.stop_cond.wait(stopped);
            }
        }
        self.finish();
    }

    /// Shut down now: stop taking requests, answer those taken (the rest get a
    /// "shutting down" error), join every worker, unlink every object.
    pub fn shutdown(mut self) {
        self.shared.request_stop();
        self.finish();
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let shared = &self.shared;
        shared.request_stop();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        loop {
            let handles: Vec<_> = std::mem::take(&mut *shared.threads.lock());
            if handles.is_empty() {
                break;
            }
            for h in handles {
                while !h.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if !h.is_finished() {
                    // Clients that stopped reading: drop their responses so workers can exit.
                    if !shared.slots.iter().all(|s| s.lane.is_abandoned()) {
                        log_event!(
                            shared,
                            warn,
                            grace = ?SHUTDOWN_GRACE,
                            "clients did not take their last responses; dropping them"
                        );
                    }
                    for s in &shared.slots {
                        s.lane.abandon();
                    }
                }
                let _ = h.join();
            }
        }
        for s in &shared.slots {
            s.owned.object.nudge_client();
            s.owned.unlink();
        }
        log_event!(shared, info, "shut down");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Shared {
    fn request_stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in &self.slots {
            s.owned
                .object
                .state()
                .store(STATE_STOPPING, Ordering::SeqCst);
            s.lane.nudge();
        }
        let mut stopped = self.stop_lock.lock();
        *stopped = true;
        self.stop_cond.notify_all();
    }

    fn spawn_worker(self: &Arc<Self>, index: usize) -> std::io::Result<()> {
        let mut threads = self.threads.lock();
        if self.stopping.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("server is stopping"));
        }
        // Join the workers that have exited (ThStop, retired): an exited thread that is never
        // joined keeps its stack, and clients that start threads and leave would grow the
        // server without bound.
        let mut i = 0;
        while i < threads.len() {
            if threads[i].is_finished() {
                let _ = threads.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
        let me = self.clone();
        let h = std::thread::Builder::new()
            .name(format!("shmkv-c{index}"))
            .spawn(move || me.worker(index))?;
        threads.push(h);
        Ok(())
    }

    fn worker(self: Arc<Self>, index: usize) {
        let slot = &self.slots[index];
        let ctl = SlotControl {
            shared: &self,
            index,
        };
        log_event!(self, debug, slot = slot.index, "worker thread running");
        let mut last_idle = Instant::now();
        loop {
            if slot.abusive.load(Ordering::Relaxed) {
                self.drop_abuser(slot);
            }
            if slot.lane.retire() {
                slot.lane.leave();
                log_event!(
                    self,
                    debug,
                    slot = slot.index,
                    "worker thread exits: started by a client that has left"
                );
                return;
            }
            if self.stopping.load(Ordering::SeqCst) {
                let refused = slot.lane.refuse_pending(&ctl);
                slot.lane.leave();
                log_event!(
                    self,
                    debug,
                    slot = slot.index,
                    refused,
                    "worker thread exits: shutting down"
                );
                return;
            }
            if slot.quiet.load(Ordering::Relaxed) {
                if let Some(left) = self.quiet_left(slot) {
                    // Not the ring's futex: a client that keeps waking it costs nothing now.
                    std::thread::sleep(left.min(Duration::from_millis(20)));
                    continue;
                }
            }
            self.watch_peer(slot, false);
            let session = slot.owned.object.session().load(Ordering::SeqCst);
            match slot.lane.serve_one(&self.table, &ctl, Some(IDLE_POLL)) {
                Step::Served => {}
                Step::Idle => {
                    // An idle step sooner than IDLE_POLL after the last one: the worker was
                    // woken (or its wait cancelled) with nothing to take. Not pointless if the
                    // client left meanwhile: its detach wakes every worker of the slot, and one
                    // of them resets it (the slot's session changes).
                    let now = Instant::now();
                    let early = now.duration_since(last_idle) < IDLE_POLL;
                    last_idle = now;
                    let reset = self.watch_peer(slot, true)
                        || slot.owned.object.session().load(Ordering::SeqCst) != session;
                    if early && !reset && !self.stopping.load(Ordering::SeqCst) {
                        self.pointless(slot, Pointless::Wakeup);
                    }
                }
                Step::Exit => {
                    self.note_owner(slot);
                    log_event!(
                        self,
                        info,
                        slot = slot.index,
                        workers = slot.lane.workers(),
                        reason = "threads stop requested by the client",
                        "worker thread stopped"
                    );
                    return;
                }
                Step::Corrupt(e) => {
                    let session = slot.owned.object.session().load(Ordering::SeqCst);
                    let owner = slot.owned.object.owner().load(Ordering::SeqCst);
                    self.reset_slot(
                        slot,
                        session,
                        owner,
                        Gone::Dropped(format!("its ring is corrupt: {e}")),
                    );
                }
            }
        }
    }

    /// Notice a new client, a detaching one, or (when `idle`) a dead one or a free slot that a
    /// client left dirty. Returns whether it reset the slot.
    fn watch_peer(&self, slot: &SlotState, idle: bool) -> bool {
        let obj = &slot.owned.object;
        // The session first: a reset bumps it after clearing `closing`, so a `closing` read
        // after it belongs to this session or a later one, never to an earlier one.
        let session = obj.session().load(Ordering::SeqCst);
        let owner = self.note_owner(slot);
        // Only an idle worker acts. (Abandoning the lane here, outside the consumer lock, once
        // raced with a concurrent reset and poisoned the next client's session: its responses
        // were all dropped. A worker blocked on a full response ring of a departed client
        // abandons it itself, in `Lane::respond`, while its request is in flight, which a
        // reset waits for.)
        if !idle {
            return false;
        }
        if owner == 0 {
            // A free slot must look as a reset left it, or the next client would start from
            // whatever a departed (hostile) client wrote: header, counters, closing.
            if !obj.is_pristine(&slot.info, self.expected_state()) {
                return self.reset_slot(slot, session, 0, Gone::Scrubbed);
            }
            return false;
        }
        let closing = obj.closing().load(Ordering::SeqCst) != 0;
        if closing {
            return self.reset_slot(slot, session, owner, Gone::Detached);
        }
        if !channel::pid_alive(owner) {
            return self.reset_slot(slot, session, owner, Gone::Died);
        }
        let look = {
            let mut t = slot.trouble.lock();
            let now = Instant::now();
            let due = now.duration_since(t.maps_checked) >= MAPS_CHECK_EVERY;
            if due {
                t.maps_checked = now;
            }
            due
        };
        if look && channel::maps_object(owner, &slot.owned.name) == Some(false) {
            return self.reset_slot(slot, session, owner, Gone::Impostor);
        }
        false
    }

    /// The state word every object should hold now.
    fn expected_state(&self) -> u32 {
        if self.stopping.load(Ordering::SeqCst) {
            STATE_STOPPING
        } else {
            STATE_RUNNING
        }
    }

    /// Count a pointless event of the slot's client; past [`TROUBLE_LIMIT`] in a second, mark
    /// the client for dropping. Returns whether it is marked.
    fn pointless(&self, slot: &SlotState, what: Pointless) -> bool {
        let valid = slot.lane.counters().op_counts().total();
        let mut t = slot.trouble.lock();
        let now = Instant::now();
        let suppressed = t.roll(now);
        match what {
            Pointless::Wakeup => t.wakeups += 1,
            Pointless::Reset => t.resets += 1,
            Pointless::Malformed => t.malformed += 1,
            Pointless::Spurious => t.spurious += 1,
        }
        let strikes = t.strikes.strike(now, valid);
        let over_rate = t.events() > TROUBLE_LIMIT;
        if (over_rate || strikes > STRIKE_LIMIT) && t.why.is_none() && t.quiet_until.is_none() {
            let rule = if over_rate {
                format!("more than {TROUBLE_LIMIT} such events a second")
            } else {
                format!(
                    "{strikes} strikes: more than {STRIKE_LIMIT} such events not paid off by \
                     valid requests ({STRIKE_LEAK} forgiven a second)"
                )
            };
            t.why = Some(format!(
                "within the last second it made the server wake {} time(s) with nothing to \
                 take, reset its slot {} time(s), answer {} malformed request(s) and wake {} \
                 time(s) with no room for answers ({rule}); the slot is not served for \
                 {QUIET_PERIOD:?}",
                t.wakeups, t.resets, t.malformed, t.spurious
            ));
            slot.abusive.store(true, Ordering::SeqCst);
        }
        let marked = t.why.is_some();
        drop(t);
        self.report_suppressed(slot, suppressed);
        marked
    }

    /// Whether a log line about the slot's clients may be written now (at most [`LOG_LIMIT`]
    /// a second; the others are counted).
    fn may_log(&self, slot: &SlotState) -> bool {
        if !self.config.log {
            return false;
        }
        let mut t = slot.trouble.lock();
        let suppressed = t.roll(Instant::now());
        let ok = t.lines < LOG_LIMIT;
        if ok {
            t.lines += 1;
        } else {
            t.suppressed += 1;
        }
        drop(t);
        self.report_suppressed(slot, suppressed);
        ok
    }

    fn report_suppressed(&self, slot: &SlotState, n: u32) {
        if n > 0 {
            log_event!(
                self,
                warn,
                slot = slot.index,
                suppressed = n,
                "log lines about this slot's clients suppressed (more than {LOG_LIMIT} in a second)"
            );
        }
    }

    /// Drop the client marked by [`Shared::pointless`] and start the slot's quiet period.
    fn drop_abuser(&self, slot: &SlotState) {
        let why = {
            let mut t = slot.trouble.lock();
            let Some(why) = t.why.take() else {
                return;
            };
            let until = Instant::now() + QUIET_PERIOD;
            t.quiet_until = Some(until);
            // Counting starts afresh when the slot is served again.
            t.window = until;
            (t.wakeups, t.resets, t.malformed, t.spurious) = (0, 0, 0, 0);
            t.strikes
                .clear(until, slot.lane.counters().op_counts().total());
            slot.quiet.store(true, Ordering::SeqCst);
            slot.abusive.store(false, Ordering::SeqCst);
            why
        };
        let obj = &slot.owned.object;
        let session = obj.session().load(Ordering::SeqCst);
        let owner = obj.owner().load(Ordering::SeqCst);
        self.reset_slot(slot, session, owner, Gone::Abused(why));
    }

    /// The rest of the slot's quiet period, or None (and the period is over).
    fn quiet_left(&self, slot: &SlotState) -> Option<Duration> {
        let mut t = slot.trouble.lock();
        let left = t
            .quiet_until
            .map(|u| u.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero());
        if left.is_none() {
            t.quiet_until = None;
            slot.quiet.store(false, Ordering::SeqCst);
        }
        left
    }

    /// Log a client that attached since the last look; returns the owner pid (0: none). Also
    /// called before logging anything a client asked for, so that its "connected" comes first.
    fn note_owner(&self, slot: &SlotState) -> u32 {
        let owner = slot.owned.object.owner().load(Ordering::Acquire);
        // A plain load first: this runs before every request, and a swap is a locked write.
        if owner != 0
            && owner != RESERVED
            && slot.seen_owner.load(Ordering::Relaxed) != owner
            && slot.seen_owner.swap(owner, Ordering::Relaxed) != owner
            && self.may_log(slot)
        {
            log_event!(
                self,
                info,
                slot = slot.index,
                pid = owner,
                "client connected"
            );
        }
        owner
    }

    /// Make the slot free for a new client: rings zeroed, session bumped, owner cleared. Done
    /// only if the owner is still the one `why` speaks of (another worker may have reset the
    /// slot already, and a new client attached).
    ///
    /// The session number, not the owner pid alone, identifies the client: a process that
    /// detaches and attaches again has the same pid, and a stale decision to reset its old
    /// session once reset its new one (found by shmkv-bench, which reconnects in a loop).
    ///
    /// Returns whether it reset. A slot nobody owns (`owner` 0) is first reserved, so that no
    /// client attaches while it is cleaned.
    fn reset_slot(&self, slot: &SlotState, session: u32, owner: u32, why: Gone) -> bool {
        let obj = &slot.owned.object;
        let owner = if owner == 0 { RESERVED } else { owner };
        // A client dropped for abuse goes whoever holds the slot now: it may be rewriting the
        // owner and session words all the time.
        let force = matches!(why, Gone::Abused(_));
        let done = slot.lane.reset(
            || {
                force
                    || obj.session().load(Ordering::SeqCst) == session
                        && (owner != RESERVED
                            || obj
                                .owner()
                                .compare_exchange(0, RESERVED, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok())
                        && obj.owner().load(Ordering::SeqCst) == owner
            },
            || {
                obj.reset_rings();
                obj.closing().store(0, Ordering::SeqCst);
                if !obj.is_pristine(&slot.info, self.expected_state()) {
                    obj.restore_header(&slot.info, self.expected_state());
                    // A stop request may have stored STOPPING meanwhile: keep it.
                    obj.state().store(self.expected_state(), Ordering::SeqCst);
                }
                obj.session().fetch_add(1, Ordering::SeqCst);
                obj.owner().store(0, Ordering::SeqCst);
            },
        );
        if !done {
            return false;
        }
        slot.seen_owner.store(0, Ordering::Relaxed);
        if !matches!(why, Gone::Abused(_)) {
            self.pointless(slot, Pointless::Reset);
        }
        let i = slot.index;
        let pid = if owner == RESERVED { 0 } else { owner };
        // A drop for abuse is always logged (at most once a quiet period); the others count
        // against the slot's log limit.
        if !matches!(why, Gone::Abused(_)) && !self.may_log(slot) {
            return true;
        }
        match why {
            Gone::Detached => {
                log_event!(
                    self,
                    info,
                    slot = i,
                    pid,
                    reason = "detached",
                    "client disconnected"
                );
            }
            Gone::Died => log_event!(
                self,
                warn,
                slot = i,
                pid,
                reason = "its process died without detaching",
                "client disconnected"
            ),
            Gone::Impostor => log_event!(
                self,
                warn,
                slot = i,
                pid,
                reason = "that process does not have the slot's object mapped (the client died and its pid was reused, or the owner word was forged)",
                "client disconnected"
            ),
            Gone::Dropped(reason) | Gone::Abused(reason) => {
                log_event!(self, warn, slot = i, pid, reason = %reason, "client dropped");
            }
            Gone::Scrubbed => log_event!(
                self,
                debug,
                slot = i,
                reason = "a departed client left it dirty",
                "free slot cleaned"
            ),
        }
        true
    }
}

struct SlotControl<'a> {
    shared: &'a Arc<Shared>,
    index: usize,
}

impl Control for SlotControl<'_> {
    fn start_workers(&self, n: u32) -> u32 {
        self.shared.note_owner(&self.shared.slots[self.index]);
        let mut started = 0;
        let mut failure = None;
        while started < n {
            match self.shared.spawn_worker(self.index) {
                Ok(()) => started += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // The lane counted the n new workers before calling; it takes back those not started.
        let workers = self.shared.slots[self.index]
            .lane
            .workers()
            .saturating_sub(n - started);
        match failure {
            None => log_event!(
                self.shared,
                info,
                slot = self.index,
                started,
                workers,
                reason = "threads start requested by the client",
                "worker threads started"
            ),
            Some(e) => log_event!(
                self.shared,
                warn,
                slot = self.index,
                asked = n,
                started,
                workers,
                error = %e,
                "worker threads started: fewer than asked"
            ),
        }
        started
    }

    fn request_quit(&self) {
        self.shared.note_owner(&self.shared.slots[self.index]);
        log_event!(
            self.shared,
            info,
            slot = self.index,
            "quit requested by a client"
        );
        self.shared.request_stop();
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    fn cancel_wait(&self) -> bool {
        self.stopping()
            || self.shared.slots[self.index]
                .owned
                .object
                .closing()
                .load(Ordering::SeqCst)
                != 0
    }

    fn peer_gone(&self) -> bool {
        let obj = &self.shared.slots[self.index].owned.object;
        let owner = obj.owner().load(Ordering::Acquire);
        owner == 0
            || owner == RESERVED
            || obj.closing().load(Ordering::SeqCst) != 0
            || !channel::pid_holds(owner, &self.shared.slots[self.index].owned.name)
    }

    fn misbehaved(&self, what: Misbehavior) -> bool {
        let slot = &self.shared.slots[self.index];
        let what = match what {
            Misbehavior::Malformed => Pointless::Malformed,
            Misbehavior::SpuriousWake => Pointless::Spurious,
        };
        self.shared.pointless(slot, what)
    }

    fn record_latency(&self, took: Duration) {
        self.shared.latency.record(took);
    }

    fn stats(&self, table: &ServedTable) -> Vec<Stat> {
        let shared = &self.shared;
        let mut ops = OpCounts::default();
        let mut errors = ErrorCounts::default();
        let mut slots = Vec::with_capacity(shared.slots.len());
        for s in &shared.slots {
            let c = s.lane.counters();
            ops += c.op_counts();
            errors += c.error_counts();
            slots.push(SlotStats {
                slot: s.index,
                owner_pid: u64::from(s.owned.object.owner().load(Ordering::Acquire)),
                workers: u64::from(s.lane.workers()),
                requests: c.requests(),
            });
        }
        let (entries, buckets, longest_bucket) = table_stats(table);
        let mut latency = shared.latency.snapshot();
        latency.sample_every = shared.slots[self.index].lane.sample_every();
        Stats {
            ops,
            errors,
            entries,
            buckets,
            longest_bucket,
            client_slots: shared.slots.len() as u64,
            slots,
            latency,
            uptime_ms: shared.started.elapsed().as_millis() as u64,
            other: Vec::new(),
        }
        .to_stats()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn strikes_add_up_when_nothing_pays_them_off() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for i in 1..=STRIKE_LIMIT + 1 {
            assert_eq!(s.strike(t0, 0), i);
        }
    }

    #[test]
    fn valid_requests_pay_strikes_off() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for _ in 0..50 {
            s.strike(t0, 0);
        }
        // 30 requests decoded since: 50 - 30 + 1.
        assert_eq!(s.strike(t0, 30), 21);
        // No new requests: no pay-off.
        assert_eq!(s.strike(t0, 30), 22);
        // More requests than strikes: down to zero, then this one.
        assert_eq!(s.strike(t0, 1000), 1);
        // A well-behaved client's one benign wake-up a request never adds up.
        for k in 0..10_000u64 {
            assert!(s.strike(t0, 1001 + k) <= 1);
        }
    }

    #[test]
    fn strikes_leak_with_time() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for _ in 0..40 {
            s.strike(t0, 0);
        }
        // One second later STRIKE_LEAK are forgiven.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.strike(t1, 0), 40 - STRIKE_LEAK + 1);
        // Less than one strike's worth of time forgives nothing, and is not lost.
        let t2 = t1 + Duration::from_millis(1000 / u64::from(STRIKE_LEAK) / 2);
        assert_eq!(s.strike(t2, 0), 40 - STRIKE_LEAK + 2);
        // A long quiet time forgives everything.
        assert_eq!(s.strike(t2 + Duration::from_secs(3600), 0), 1);
        // A client slower than the leak never gets anywhere.
        let mut t = t2 + Duration::from_secs(3600);
        for _ in 0..1000 {
            t += Duration::from_millis(1000 / u64::from(STRIKE_LEAK));
            assert!(s.strike(t, 0) <= 1);
        }
    }

    #[test]
    fn cleared_strikes_start_from_the_requests_seen() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for _ in 0..STRIKE_LIMIT {
            s.strike(t0, 5);
        }
        s.clear(t0, 500);
        // The 500 requests before the clear pay nothing off; counting starts at zero.
        assert_eq!(s.strike(t0, 500), 1);
        assert_eq!(s.strike(t0, 500), 2);
    }
}
