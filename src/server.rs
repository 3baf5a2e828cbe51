//! The server engine: creates one client object per slot, runs each slot's worker threads over
//! the shared table, notices clients that detach or die, and shuts down gracefully (answering
//! what it took, unlinking every object it created).

use crate::channel::{
    self, HeaderInfo, MAX_RING, MIN_RING, Object, ObjectParams, STATE_RUNNING, STATE_STOPPING,
};
use crate::serve::{Control, Lane, ServedTable, Step};
use crate::shm::{Mapping, ShmRingMem};
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
    /// Log connects and disconnects to stderr.
    pub log: bool,
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
}

struct Shared {
    config: ServerConfig,
    table: ServedTable,
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
fn clear_stale(name: &str, index: u32) -> Result<(), ServerError> {
    let object = channel::object_name(name, index);
    match channel::open_object(name, index) {
        Err(Errno::ENOENT) => Ok(()),
        Err(_) => Err(ServerError::ForeignObject { object }),
        Ok(Ok((_, info))) => {
            if channel::pid_alive(info.server_pid) && info.server_pid != std::process::id() {
                Err(ServerError::NameInUse {
                    name: name.to_string(),
                    pid: info.server_pid,
                })
            } else {
                let _ = Mapping::unlink(&object);
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
            clear_stale(&config.name, index)?;
        }
        let mut slots = Vec::with_capacity(config.clients as usize);
        for index in 0..config.clients {
            clear_stale(&config.name, index)?;
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
            let lane = Lane::new(
                object.request_ring(&info),
                object.response_ring(&info),
                config.threads,
                config.max_threads,
            );
            slots.push(SlotState {
                index,
                owned: OwnedObject {
                    name: channel::object_name(&config.name, index),
                    object,
                    unlinked: AtomicBool::new(false),
                },
                lane,
                seen_owner: AtomicU32::new(0),
            });
        }
        let shared = Arc::new(Shared {
            config,
            table,
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
        shared.log(format_args!("shut down"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Shared {
    fn log(&self, args: std::fmt::Arguments<'_>) {
        if self.config.log {
            eprintln!("shmkv-server[{}]: {args}", self.config.name);
        }
    }

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
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                slot.lane.refuse_pending(&ctl);
                return;
            }
            self.watch_peer(slot, false);
            match slot.lane.serve_one(&self.table, &ctl, Some(IDLE_POLL)) {
                Step::Served => {}
                Step::Idle => self.watch_peer(slot, true),
                Step::Exit => {
                    self.log(format_args!(
                        "client {}: worker stopped ({} left)",
                        slot.index,
                        slot.lane.workers()
                    ));
                    return;
                }
                Step::Corrupt(e) => {
                    self.log(format_args!("client {}: dropped: {e}", slot.index));
                    let owner = slot.owned.object.owner().load(Ordering::Acquire);
                    self.reset_slot(slot, owner, "dropped");
                }
            }
        }
    }

    /// Notice a new client, a detaching one, or (when `idle`) a dead one.
    fn watch_peer(&self, slot: &SlotState, idle: bool) {
        let obj = &slot.owned.object;
        let owner = obj.owner().load(Ordering::Acquire);
        if owner != 0 && slot.seen_owner.swap(owner, Ordering::Relaxed) != owner {
            self.log(format_args!(
                "client {} connected (pid {owner})",
                slot.index
            ));
        }
        if owner == 0 || !idle {
            if owner != 0 && obj.closing().load(Ordering::Acquire) != 0 {
                // Stop waiting on its response ring; reset once its ring is drained (idle).
                slot.lane.abandon();
            }
            return;
        }
        let closing = obj.closing().load(Ordering::Acquire) != 0;
        if closing {
            self.reset_slot(slot, owner, "disconnected");
        } else if !channel::pid_alive(owner) {
            self.reset_slot(slot, owner, "died");
        }
    }

    /// Make the slot free for a new client: rings zeroed, session bumped, owner cleared. Done
    /// only if the owner is still the one `why` speaks of (another worker may have reset the
    /// slot already, and a new client attached).
    fn reset_slot(&self, slot: &SlotState, owner: u32, why: &str) {
        let obj = &slot.owned.object;
        let done = slot.lane.reset(
            || obj.owner().load(Ordering::Acquire) == owner,
            || {
                obj.reset_rings();
                obj.session().fetch_add(1, Ordering::SeqCst);
                obj.closing().store(0, Ordering::SeqCst);
                obj.owner().store(0, Ordering::Release);
            },
        );
        if done {
            slot.seen_owner.store(0, Ordering::Relaxed);
            self.log(format_args!("client {} {why} (pid {owner})", slot.index));
        }
    }
}

struct SlotControl<'a> {
    shared: &'a Arc<Shared>,
    index: usize,
}

impl Control for SlotControl<'_> {
    fn start_workers(&self, n: u32) -> u32 {
        let mut started = 0;
        while started < n && self.shared.spawn_worker(self.index).is_ok() {
            started += 1;
        }
        self.shared.log(format_args!(
            "client {}: {started} worker(s) started",
            self.index
        ));
        started
    }

    fn request_quit(&self) {
        self.shared
            .log(format_args!("quit requested by client {}", self.index));
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
        owner == 0 || obj.closing().load(Ordering::SeqCst) != 0 || !channel::pid_alive(owner)
    }
}
