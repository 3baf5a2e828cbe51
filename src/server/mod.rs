//! The server engine: listens on its socket, gives each accepted client a session (a fresh
//! sealed shared-memory object and its own worker threads over the shared table), ends the
//! session when the kernel reports the client's hang-up, and shuts down gracefully (answering
//! what it took).
//!
//! It is three modules, one vocabulary each:
//! - `sessions`: the session lifecycle: the front door's accept, handshake
//!   and hang-up (words: *session*, *slot*, *hang-up*, *front door*);
//! - `workers`: the threads that serve a session's lane, and the one narrow
//!   trait through which serving code reaches the server ([`crate::serve::Control`]);
//! - `abuse`: the policy that drops a client making the server work for nothing
//!   (words: *pointless event*, *strike*, *drop*).
//!
//! # Logging
//!
//! With [`ServerConfig::log`] set, the server emits [`tracing`] events (target
//! `shmkv::server`, field `server` = its name); a program sees them once it installs a
//! subscriber, as `shmkv-server` does. One event per: client connected (info, with `slot` and
//! `pid`), client disconnected (info when it detached, warn when its connection closed without
//! a goodbye: its process died), client dropped (warn, with `reason`), connection refused
//! (warn: another user), worker threads started or stopped (info), quit requested, shut down
//! (info); at debug level also each worker thread's start and exit, failed handshakes and the
//! configuration.

mod abuse;
mod placement;
mod sessions;
mod workers;

pub use abuse::{LOG_LIMIT, STRIKE_LEAK, STRIKE_LIMIT, TROUBLE_LIMIT};

use crate::channel;
use crate::door::{self, DoorError};
use crate::stats::Latency;
use crate::store::Store;
use crate::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering, thread};
use crate::table::{MAX_BUCKETS, TableError};
use crate::wire::Limits;
use sessions::{FrontDoor, Retired, Session};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The most client slots (concurrent sessions) a server may have.
pub const MAX_CLIENTS: u32 = 1024;
/// The most worker threads one client may have (the default for `max_threads`).
pub const MAX_THREADS_PER_CLIENT: u32 = 64;
/// How long an idle worker sleeps before it looks around (its session ended, a shutdown).
/// Both wake it at once; this only bounds a lost wake-up.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a shutting-down server waits for clients to take their last responses before it
/// drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The longest key a server may accept (`--max-key`): 64 KiB.
pub const MAX_KEY_LIMIT: u32 = 64 * 1024;
/// The longest value a server may accept (`--max-value`): 64 MiB.
pub const MAX_VALUE_LIMIT: u32 = 64 * 1024 * 1024;
/// The default limits: keys up to 4 KiB, values up to 1 MiB.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_key: 4096,
    max_value: 1024 * 1024,
};

/// The default memory budget for the table: half the machine's physical memory (from
/// `/proc/meminfo`), or 1 GiB where that cannot be read.
pub fn default_max_memory() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    total_kib.map_or(1 << 30, |k| k.saturating_mul(1024) / 2)
}

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's name: its socket is `<socket dir>/<name>.sock` (see
    /// [`crate::door::socket_path`]) unless `socket` says otherwise.
    pub name: String,
    /// Listen on this path instead of the one the name gives. Its directory is not checked
    /// (the default one is: ours, mode 0700); the peer-credential checks still hold.
    pub socket: Option<PathBuf>,
    /// Table buckets, 1 to [`MAX_BUCKETS`].
    pub buckets: usize,
    /// Client slots: how many sessions may be open at once, 1 to [`MAX_CLIENTS`].
    pub clients: u32,
    /// Worker threads each session starts with, 1 to `max_threads`.
    pub threads: u32,
    /// Most worker threads per session, 1 to [`MAX_THREADS_PER_CLIENT`].
    pub max_threads: u32,
    /// The longest key (1 to [`MAX_KEY_LIMIT`]) and value (0 to [`MAX_VALUE_LIMIT`]) accepted.
    /// Each session's rings are sized for them ([`crate::channel::ring_sizes`]).
    pub limits: Limits,
    /// The table's memory budget in bytes, as the store accounts it
    /// ([`crate::store::entry_cost`]): a write that would pass it is refused with "out of
    /// memory"; reads and deletes go on.
    pub max_memory: u64,
    /// Emit log events through [`tracing`] (see the [module](self) docs). They show only where
    /// the program has installed a subscriber.
    pub log: bool,
    /// Whether a session's workers share its backlog (see
    /// [`crate::serve::Lane::set_share_backlog`]): `None` decides by the machine, on with three
    /// cores or more (a worker woken to share needs a core besides the client's and the ring
    /// holder's).
    pub share_backlog: Option<bool>,
    /// Whether workers waiting for requests or for room for answers spin (and yield) before
    /// they sleep on the futex (`true`, the default), or sleep at once (`false`: no core
    /// burnt while waiting, where waiting threads outnumber cores; see
    /// [`crate::client::ClientConfig::spin`] and design.md §4).
    pub spin: bool,
    /// Whether each worker thread makes its heap writable well ahead of use and marks it for
    /// transparent huge pages when it starts (`true`, the default; see design.md §10a, "Huge
    /// pages for the workers' heaps"): the table then grows by 2 MiB page faults instead of a
    /// 4 KiB one every few dozen inserts. It changes nothing where the kernel's transparent
    /// huge pages are off, or under an allocator other than glibc's.
    pub huge_pages: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "shmkv".into(),
            socket: None,
            buckets: 5000,
            clients: 4,
            threads: 1,
            max_threads: MAX_THREADS_PER_CLIENT,
            limits: DEFAULT_LIMITS,
            max_memory: default_max_memory(),
            log: false,
            share_backlog: None,
            spin: true,
            huge_pages: true,
        }
    }
}

impl ServerConfig {
    /// The socket path this configuration listens on.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| door::socket_path(&self.name))
    }

    fn check(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        channel::validate_name(&self.name).map_err(ServerError::Config)?;
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return bad(format!(
                "clients must be 1 to {MAX_CLIENTS}, got {}",
                self.clients
            ));
        }
        if self.max_threads == 0 || self.max_threads > MAX_THREADS_PER_CLIENT {
            return bad(format!(
                "max threads per client must be 1 to {MAX_THREADS_PER_CLIENT}, got {}",
                self.max_threads
            ));
        }
        if self.threads == 0 || self.threads > self.max_threads {
            return bad(format!(
                "threads per client must be 1 to {}, got {}",
                self.max_threads, self.threads
            ));
        }
        let Limits { max_key, max_value } = self.limits;
        if max_key == 0 || max_key > MAX_KEY_LIMIT {
            return bad(format!(
                "max key must be 1 to {MAX_KEY_LIMIT} bytes, got {max_key}"
            ));
        }
        if max_value > MAX_VALUE_LIMIT {
            return bad(format!(
                "max value must be 0 to {MAX_VALUE_LIMIT} bytes, got {max_value}"
            ));
        }
        if self.buckets == 0 || self.buckets > MAX_BUCKETS {
            return bad(format!(
                "buckets must be 1 to {MAX_BUCKETS}, got {}",
                self.buckets
            ));
        }
        Ok(())
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
    /// The socket could not be taken (another live server, an unsafe directory, …).
    #[error("{0}")]
    Door(#[from] DoorError),
    /// A thread could not be spawned.
    #[error("cannot start a thread: {0}")]
    Spawn(std::io::Error),
}

/// Emit a tracing event if the server logs, with the server's name as field `server`.
macro_rules! log_event {
    ($shared:expr, $level:ident, $($rest:tt)+) => {
        if $shared.config.log {
            tracing::$level!(server = %$shared.config.name, $($rest)+);
        }
    };
}
pub(crate) use log_event;

/// What the server's threads share.
struct Shared {
    config: ServerConfig,
    store: Store,
    latency: Latency,
    started: Instant,
    share_backlog: bool,
    /// The open sessions, by slot.
    slots: Mutex<Vec<Option<Arc<Session>>>>,
    /// Counters of the sessions that have finished (changed with `slots` locked).
    retired: Mutex<Retired>,
    stopping: AtomicBool,
    stop_lock: Mutex<bool>,
    stop_cond: Condvar,
    /// Wakes the front door (a byte written by [`Shared::request_stop`]).
    door_bell: std::os::unix::net::UnixStream,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    /// The busy threads, for the placement of workers.
    busy: placement::Busy,
}

/// A running server. Dropping it shuts it down.
pub struct Server {
    shared: Arc<Shared>,
    front_door: Option<std::thread::JoinHandle<()>>,
    socket: PathBuf,
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

impl Server {
    /// Validate `config`, create the table, take the socket (replacing a stale one, refusing a
    /// live server's) and open the front door.
    pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
        config.check()?;
        let store = Store::new(config.buckets, config.max_memory)?;
        let socket = config.socket_path();
        if config.socket.is_none() {
            door::prepare_dir(&door::socket_dir(), true)?;
        }
        let listener = door::Listener::bind(&socket, &config.name)?;
        let (bell_rx, bell_tx) =
            std::os::unix::net::UnixStream::pair().map_err(ServerError::Spawn)?;
        bell_tx.set_nonblocking(true).map_err(ServerError::Spawn)?;
        bell_rx.set_nonblocking(true).map_err(ServerError::Spawn)?;
        let share_backlog = config
            .share_backlog
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) > 2);
        let shared = Arc::new(Shared {
            slots: Mutex::new(vec![None; config.clients as usize]),
            config,
            store,
            latency: Latency::default(),
            started: Instant::now(),
            share_backlog,
            retired: Mutex::new(Retired::default()),
            stopping: AtomicBool::new(false),
            stop_lock: Mutex::new(false),
            stop_cond: Condvar::new(),
            door_bell: bell_tx,
            threads: Mutex::new(Vec::new()),
            busy: placement::Busy::new(),
        });
        let door = FrontDoor::new(shared.clone(), listener, bell_rx);
        let front_door = std::thread::Builder::new()
            .name("shmkv-door".into())
            .spawn(move || door.run())
            .map_err(ServerError::Spawn)?;
        let c = &shared.config;
        log_event!(
            shared,
            debug,
            buckets = c.buckets,
            clients = c.clients,
            threads = c.threads,
            max_threads = c.max_threads,
            max_key = c.limits.max_key,
            max_value = c.limits.max_value,
            max_memory = c.max_memory,
            socket = %socket.display(),
            "started"
        );
        Ok(Server {
            shared,
            front_door: Some(front_door),
            socket,
            done: false,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// A handle to stop the server from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.shared.store.len() as usize
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.shared.store.is_empty()
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

    /// Shut down now: close the front door, stop taking requests, answer those taken (the rest
    /// get a "shutting down" error), join every worker, hang up on every client.
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
        if let Some(h) = self.front_door.take() {
            let _ = h.join();
        }
        workers::join_all(shared);
        let open: Vec<_> = shared
            .slots
            .lock()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for s in open {
            s.hang_up();
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
        for s in self.slots.lock().iter().flatten() {
            s.server_stopping();
        }
        let _ = std::io::Write::write(&mut &self.door_bell, b"s");
        let mut stopped = self.stop_lock.lock();
        *stopped = true;
        self.stop_cond.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}
