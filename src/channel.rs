//! The client object: one POSIX shared-memory object per client slot, named
//! `<name>-client-<i>`, holding a header and a request ring and a response ring.
//!
//! # Byte layout (layout version [`LAYOUT_VERSION`])
//!
//! | offset | size | field | written by |
//! |-------:|-----:|-------|-----------|
//! | 0 | 8 | magic `b"SHMKV\0\0\x01"` (written last at creation) | server |
//! | 8 | 4 | layout version | server |
//! | 12 | 4 | slot size (32) | server |
//! | 16 | 4 | request ring capacity (power of two) | server |
//! | 20 | 4 | response ring capacity (power of two) | server |
//! | 24 | 8 | object length in bytes | server |
//! | 32 | 4 | this object's slot index `i` | server |
//! | 36 | 4 | number of client slots of the server | server |
//! | 40 | 4 | server pid | server |
//! | 44 | 4 | server state (0 starting, 1 running, 2 stopping) | server |
//! | 48 | 8 | table bucket count (for clients' information) | server |
//! | 64 | 4 | owner: pid of the attached client, 0 when free (claimed by CAS) | client, server |
//! | 68 | 4 | closing: set to 1 by a detaching client | client, server |
//! | 72 | 4 | session: bumped by the server at every reset | server |
//! | 128 | 192 | request ring control block (see [`crate::region::RingCtrl`]) | both |
//! | 320 | 192 | response ring control block | both |
//! | 512 | 32 × req cap | request slots | client |
//! | … | 32 × resp cap | response slots | server |
//!
//! The client produces requests and consumes responses; the server consumes requests and
//! produces responses. Both rings are single-producer/single-consumer across the two processes.

use crate::region::SLOT_SIZE;
use crate::shm::{Mapping, ShmRingMem};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{SysFutex, Wake};
use nix::errno::Errno;

/// Identifies a shmkv client object.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKV\0\0\x01");
/// Version of the byte layout above; a client refuses any other.
pub const LAYOUT_VERSION: u32 = 1;
/// Offset of the request ring's control block.
pub const REQ_CTRL: usize = 128;
/// Offset of the response ring's control block.
pub const RESP_CTRL: usize = 320;
/// Offset of the first request slot.
pub const SLOTS: usize = 512;
/// Smallest ring capacity.
pub const MIN_RING: u32 = 2;
/// Largest ring capacity (2¹⁶ slots, 2 MiB a ring).
pub const MAX_RING: u32 = 1 << 16;
/// Longest server name.
pub const MAX_NAME_LEN: usize = 64;

/// Server state: objects created, not yet serving.
pub const STATE_STARTING: u32 = 0;
/// Server state: serving.
pub const STATE_RUNNING: u32 = 1;
/// Server state: shutting down (or gone).
pub const STATE_STOPPING: u32 = 2;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_SLOT_SIZE: usize = 12;
const OFF_REQ_CAP: usize = 16;
const OFF_RESP_CAP: usize = 20;
const OFF_LEN: usize = 24;
const OFF_INDEX: usize = 32;
const OFF_CLIENTS: usize = 36;
const OFF_SERVER_PID: usize = 40;
const OFF_STATE: usize = 44;
const OFF_BUCKETS: usize = 48;
const OFF_OWNER: usize = 64;
const OFF_CLOSING: usize = 68;
const OFF_SESSION: usize = 72;

/// Whether process `pid` is alive: it exists and is not a zombie (a killed process whose
/// parent has not reaped it yet still answers `kill(pid, 0)`). `kill(pid, 0)` failing with
/// EPERM means it exists under another user, so it counts as alive. A reused pid reads as alive;
/// see design.md, "Failure model".
pub fn pid_alive(pid: u32) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    if matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
        Err(Errno::ESRCH)
    ) {
        return false;
    }
    // /proc/<pid>/stat: "pid (comm) S ...": the state follows the last ')'.
    match std::fs::read_to_string(format!("/proc/{p}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z') | Some('X')
        ),
        Err(_) => true,
    }
}

/// Whether process `pid` has the shared-memory object `object` (a name from [`object_name`])
/// mapped, from `/proc/<pid>/maps`: `Some(true)` or `Some(false)`. A live pid that does not map
/// the object is not the client (or server) that wrote its pid there: the pid was reused after
/// that process died, or the word was forged.
///
/// When that file cannot be read (another user's process), the process's user decides: objects
/// are mode 0600, so only a process of our effective user, or root, can have one mapped; a
/// process of any other user is `Some(false)`. `None` only when even that cannot be told (no
/// `/proc`).
pub fn maps_object(pid: u32, object: &str) -> Option<bool> {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
        let me = nix::unistd::geteuid().as_raw();
        return if uid == me || uid == 0 {
            None
        } else {
            Some(false)
        };
    };
    let path = format!("/dev/shm/{object}");
    Some(maps.lines().any(|l| {
        let l = l.strip_suffix(" (deleted)").unwrap_or(l);
        l.ends_with(&path) && l[..l.len() - path.len()].ends_with(' ')
    }))
}

/// Whether process `pid` is alive and, as far as `/proc` tells, has `object` mapped: the test
/// the server applies to a slot's owner and a client to its server.
pub fn pid_holds(pid: u32, object: &str) -> bool {
    pid_alive(pid) && maps_object(pid, object) != Some(false)
}

/// The shared-memory object name of client slot `index` of server `name`.
pub fn object_name(name: &str, index: u32) -> String {
    format!("{name}-client-{index}")
}

/// Check a server name: 1 to [`MAX_NAME_LEN`] characters from `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`, and not containing `..`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "invalid name {name:?}: must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid name {name:?}: character {c:?} not allowed (use A-Z a-z 0-9 _ . -)"
        ));
    }
    if name.starts_with('.') || name.starts_with('-') || name.contains("..") {
        return Err(format!(
            "invalid name {name:?}: must not start with '.' or '-' nor contain '..'"
        ));
    }
    Ok(())
}

/// Total object size for the given ring capacities.
pub fn object_len(req_cap: u32, resp_cap: u32) -> usize {
    SLOTS + (req_cap as usize + resp_cap as usize) * SLOT_SIZE
}

/// The header fields, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Request ring slots.
    pub req_capacity: u32,
    /// Response ring slots.
    pub resp_capacity: u32,
    /// This object's slot index.
    pub index: u32,
    /// Number of client slots the server has.
    pub clients: u32,
    /// The server's pid.
    pub server_pid: u32,
    /// The table's bucket count.
    pub buckets: u64,
}

/// Why an object's header was refused on attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The object is smaller than a header.
    TooSmall(usize),
    /// Magic is 0: the server has not finished creating it.
    NotReady,
    /// Not a shmkv object.
    BadMagic(u64),
    /// Another layout version.
    Version(u32),
    /// A size field disagrees with this build or with the object's real size.
    Field(&'static str, u64),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::TooSmall(n) => write!(f, "object is {n} bytes, smaller than a header"),
            HeaderError::NotReady => f.write_str("the server has not finished creating it"),
            HeaderError::BadMagic(m) => write!(f, "not a shmkv object (magic {m:#018x})"),
            HeaderError::Version(v) => write!(
                f,
                "layout version {v}, this build speaks version {LAYOUT_VERSION}"
            ),
            HeaderError::Field(name, v) => write!(f, "header field {name} = {v} is invalid"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Typed access to a mapped client object. Every accessor goes through a bounds-checked atomic.
#[derive(Debug, Clone)]
pub struct Object {
    map: Arc<Mapping>,
}

impl Object {
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.map
            .atomic_u32(off)
            .expect("header offsets lie inside every validated object")
    }
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.map
            .atomic_u64(off)
            .expect("header offsets lie inside every validated object")
    }

    /// Validate the header of a freshly mapped object (magic, version, slot size, capacities,
    /// length) and read it. Every value is read once.
    pub fn validate(map: Arc<Mapping>) -> Result<(Object, HeaderInfo), HeaderError> {
        if map.len() < SLOTS {
            return Err(HeaderError::TooSmall(map.len()));
        }
        let o = Object { map };
        let magic = o.u64_at(OFF_MAGIC).load(Ordering::Acquire);
        if magic == 0 {
            return Err(HeaderError::NotReady);
        }
        if magic != MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        let version = o.u32_at(OFF_VERSION).load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let slot = o.u32_at(OFF_SLOT_SIZE).load(Ordering::Relaxed);
        if slot as usize != SLOT_SIZE {
            return Err(HeaderError::Field("slot_size", u64::from(slot)));
        }
        let cap_ok = |c: u32| c.is_power_of_two() && (MIN_RING..=MAX_RING).contains(&c);
        let req = o.u32_at(OFF_REQ_CAP).load(Ordering::Relaxed);
        if !cap_ok(req) {
            return Err(HeaderError::Field("req_capacity", u64::from(req)));
        }
        let resp = o.u32_at(OFF_RESP_CAP).load(Ordering::Relaxed);
        if !cap_ok(resp) {
            return Err(HeaderError::Field("resp_capacity", u64::from(resp)));
        }
        let len = o.u64_at(OFF_LEN).load(Ordering::Relaxed);
        if len != object_len(req, resp) as u64 || len as usize != o.map.len() {
            return Err(HeaderError::Field("length", len));
        }
        let info = HeaderInfo {
            req_capacity: req,
            resp_capacity: resp,
            index: o.u32_at(OFF_INDEX).load(Ordering::Relaxed),
            clients: o.u32_at(OFF_CLIENTS).load(Ordering::Relaxed),
            server_pid: o.u32_at(OFF_SERVER_PID).load(Ordering::Relaxed),
            buckets: o.u64_at(OFF_BUCKETS).load(Ordering::Relaxed),
        };
        Ok((o, info))
    }

    /// The request ring's memory.
    pub fn request_ring(&self, info: &HeaderInfo) -> ShmRingMem {
        ShmRingMem::new(
            self.map.clone(),
            REQ_CTRL,
            SLOTS,
            info.req_capacity as usize,
        )
        .expect("validated layout")
    }

    /// The response ring's memory.
    pub fn response_ring(&self, info: &HeaderInfo) -> ShmRingMem {
        ShmRingMem::new(
            self.map.clone(),
            RESP_CTRL,
            SLOTS + info.req_capacity as usize * SLOT_SIZE,
            info.resp_capacity as usize,
        )
        .expect("validated layout")
    }

    /// The server state word.
    pub fn state(&self) -> &AtomicU32 {
        self.u32_at(OFF_STATE)
    }
    /// The owner word: pid of the attached client, 0 when free.
    pub fn owner(&self) -> &AtomicU32 {
        self.u32_at(OFF_OWNER)
    }
    /// The closing word: 1 once the attached client detaches.
    pub fn closing(&self) -> &AtomicU32 {
        self.u32_at(OFF_CLOSING)
    }
    /// The session counter.
    pub fn session(&self) -> &AtomicU32 {
        self.u32_at(OFF_SESSION)
    }

    /// Whether both rings' counters and the closing word are zero, as the server leaves a free
    /// slot: what a client checks after claiming one. Only loads.
    pub fn rings_are_fresh(&self) -> bool {
        [REQ_CTRL, RESP_CTRL].iter().all(|&base| {
            let ctrl = self.map.ring_ctrl(base).expect("validated layout");
            ctrl.producer.0.tail.load(Ordering::Acquire) == 0
                && ctrl.consumer.0.head.load(Ordering::Acquire) == 0
        }) && self.closing().load(Ordering::Acquire) == 0
    }

    /// Whether the header holds what `info` and `state` say, and the rings' counters, the
    /// client's waiting flags and the closing word are zero (as a reset leaves them): what a
    /// free slot must look like for the next client. (The server's own flags, request-ring
    /// `data_waiting` and response-ring `space_waiting`, are raised by its idle workers.) Only
    /// loads.
    pub fn is_pristine(&self, info: &HeaderInfo, state: u32) -> bool {
        let req = self.map.ring_ctrl(REQ_CTRL).expect("validated layout");
        let resp = self.map.ring_ctrl(RESP_CTRL).expect("validated layout");
        let ring_clean = [req, resp].iter().all(|ctrl| {
            ctrl.producer.0.tail.load(Ordering::Relaxed) == 0
                && ctrl.consumer.0.head.load(Ordering::Relaxed) == 0
        }) && req.wake.0.space_waiting.load(Ordering::Relaxed) == 0
            && resp.wake.0.data_waiting.load(Ordering::Relaxed) == 0;
        ring_clean
            && self.closing().load(Ordering::Relaxed) == 0
            && self.state().load(Ordering::Relaxed) == state
            && self.u64_at(OFF_MAGIC).load(Ordering::Relaxed) == MAGIC
            && self.u32_at(OFF_VERSION).load(Ordering::Relaxed) == LAYOUT_VERSION
            && self.u32_at(OFF_SLOT_SIZE).load(Ordering::Relaxed) == SLOT_SIZE as u32
            && self.u32_at(OFF_REQ_CAP).load(Ordering::Relaxed) == info.req_capacity
            && self.u32_at(OFF_RESP_CAP).load(Ordering::Relaxed) == info.resp_capacity
            && self.u64_at(OFF_LEN).load(Ordering::Relaxed) == self.map.len() as u64
            && self.u32_at(OFF_INDEX).load(Ordering::Relaxed) == info.index
            && self.u32_at(OFF_CLIENTS).load(Ordering::Relaxed) == info.clients
            && self.u32_at(OFF_SERVER_PID).load(Ordering::Relaxed) == info.server_pid
            && self.u64_at(OFF_BUCKETS).load(Ordering::Relaxed) == info.buckets
    }

    /// Write the header again from the server's own copy (`info`, `state`), magic last: a
    /// client may have scribbled over it, and the next client of the slot must find it intact.
    /// The server itself never reads these fields back.
    pub fn restore_header(&self, info: &HeaderInfo, state: u32) {
        self.u32_at(OFF_VERSION)
            .store(LAYOUT_VERSION, Ordering::Relaxed);
        self.u32_at(OFF_SLOT_SIZE)
            .store(SLOT_SIZE as u32, Ordering::Relaxed);
        self.u32_at(OFF_REQ_CAP)
            .store(info.req_capacity, Ordering::Relaxed);
        self.u32_at(OFF_RESP_CAP)
            .store(info.resp_capacity, Ordering::Relaxed);
        self.u64_at(OFF_LEN)
            .store(self.map.len() as u64, Ordering::Relaxed);
        self.u32_at(OFF_INDEX).store(info.index, Ordering::Relaxed);
        self.u32_at(OFF_CLIENTS)
            .store(info.clients, Ordering::Relaxed);
        self.u32_at(OFF_SERVER_PID)
            .store(info.server_pid, Ordering::Relaxed);
        self.u64_at(OFF_BUCKETS)
            .store(info.buckets, Ordering::Relaxed);
        self.state().store(state, Ordering::SeqCst);
        self.u64_at(OFF_MAGIC).store(MAGIC, Ordering::Release);
    }

    /// Wake whoever sleeps on the request ring's data futex (the server's waiting worker).
    pub fn nudge_server(&self) {
        if let Some(ctrl) = self.map.ring_ctrl(REQ_CTRL) {
            ctrl.wake.0.data_futex.fetch_add(1, Ordering::SeqCst);
            SysFutex.wake(&ctrl.wake.0.data_futex);
        }
    }

    /// Wake whoever sleeps on the response ring's data futex (a waiting client).
    pub fn nudge_client(&self) {
        if let Some(ctrl) = self.map.ring_ctrl(RESP_CTRL) {
            ctrl.wake.0.data_futex.fetch_add(1, Ordering::SeqCst);
            SysFutex.wake(&ctrl.wake.0.data_futex);
        }
    }

    /// Zero both rings' control blocks (counters, flags). Only the server calls this, while the
    /// departed client's owner word still bars new clients and none of the server's own
    /// threads uses the rings.
    pub fn reset_rings(&self) {
        for base in [REQ_CTRL, RESP_CTRL] {
            let ctrl = self.map.ring_ctrl(base).expect("validated layout");
            ctrl.producer.0.tail.store(0, Ordering::Relaxed);
            ctrl.consumer.0.head.store(0, Ordering::Relaxed);
            ctrl.wake.0.data_waiting.store(0, Ordering::Relaxed);
            ctrl.wake.0.space_waiting.store(0, Ordering::Relaxed);
        }
    }
}

/// Parameters of a client object, chosen by the server.
#[derive(Debug, Clone, Copy)]
pub struct ObjectParams {
    /// Slot index `i`.
    pub index: u32,
    /// Number of client slots.
    pub clients: u32,
    /// Request ring capacity (power of two in [`MIN_RING`]..=[`MAX_RING`]).
    pub req_capacity: u32,
    /// Response ring capacity (power of two in [`MIN_RING`]..=[`MAX_RING`]).
    pub resp_capacity: u32,
    /// Table buckets, for information.
    pub buckets: u64,
}

/// Create the client object `<name>-client-<i>` (exclusive, 0600), fill its header and publish
/// the magic last. The caller owns the object and unlinks it.
pub fn create_object(name: &str, p: &ObjectParams) -> Result<(Object, HeaderInfo), Errno> {
    let len = object_len(p.req_capacity, p.resp_capacity);
    let map = Arc::new(Mapping::create(&object_name(name, p.index), len)?);
    let o = Object { map };
    o.u32_at(OFF_VERSION)
        .store(LAYOUT_VERSION, Ordering::Relaxed);
    o.u32_at(OFF_SLOT_SIZE)
        .store(SLOT_SIZE as u32, Ordering::Relaxed);
    o.u32_at(OFF_REQ_CAP)
        .store(p.req_capacity, Ordering::Relaxed);
    o.u32_at(OFF_RESP_CAP)
        .store(p.resp_capacity, Ordering::Relaxed);
    o.u64_at(OFF_LEN).store(len as u64, Ordering::Relaxed);
    o.u32_at(OFF_INDEX).store(p.index, Ordering::Relaxed);
    o.u32_at(OFF_CLIENTS).store(p.clients, Ordering::Relaxed);
    o.u32_at(OFF_SERVER_PID)
        .store(std::process::id(), Ordering::Relaxed);
    o.u64_at(OFF_BUCKETS).store(p.buckets, Ordering::Relaxed);
    o.state().store(STATE_STARTING, Ordering::Relaxed);
    o.u64_at(OFF_MAGIC).store(MAGIC, Ordering::Release);
    let (o, info) = Object::validate(o.map).map_err(|_| Errno::EINVAL)?;
    Ok((o, info))
}

/// Map an existing client object and validate its header.
pub fn open_object(
    name: &str,
    index: u32,
) -> Result<Result<(Object, HeaderInfo), HeaderError>, Errno> {
    let map = Arc::new(Mapping::open(&object_name(name, index))?);
    Ok(Object::validate(map))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[cfg(not(miri))]
    fn params() -> ObjectParams {
        ObjectParams {
            index: 3,
            clients: 4,
            req_capacity: 8,
            resp_capacity: 16,
            buckets: 100,
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("shmkv").is_ok());
        assert!(validate_name("test_1.a-b").is_ok());
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            ".x",
            "-x",
            "sp ace",
            &"x".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    #[cfg(not(miri))] // shm_open/mmap
    fn header_round_trip_and_mismatches() {
        let name = format!("shmkv-unit-chan-{}", std::process::id());
        let (o, info) = create_object(&name, &params()).unwrap();
        assert_eq!(info.req_capacity, 8);
        assert_eq!(info.resp_capacity, 16);
        assert_eq!(info.index, 3);
        assert_eq!(info.buckets, 100);
        let (o2, info2) = open_object(&name, 3).unwrap().unwrap();
        assert_eq!(info, info2);
        Mapping::unlink(&object_name(&name, 3)).unwrap();

        o.u32_at(OFF_VERSION).store(2, Ordering::SeqCst);
        assert_eq!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Version(2)
        );
        o.u32_at(OFF_VERSION)
            .store(LAYOUT_VERSION, Ordering::SeqCst);
        o.u32_at(OFF_REQ_CAP).store(7, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("req_capacity", 7)
        ));
        o.u32_at(OFF_REQ_CAP).store(MAX_RING, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("length", _)
        ));
        o.u32_at(OFF_REQ_CAP).store(8, Ordering::SeqCst);
        o.u32_at(OFF_SLOT_SIZE).store(64, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("slot_size", 64)
        ));
        o.u64_at(OFF_MAGIC).store(0, Ordering::SeqCst);
        assert_eq!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::NotReady
        );
        o.u64_at(OFF_MAGIC).store(1234, Ordering::SeqCst);
        assert_eq!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::BadMagic(1234)
        );
    }
}
