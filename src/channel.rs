//! The session object: one sealed shared-memory object per client session, created by the
//! server and handed to the client over the server's socket (see [`crate::door`]), holding a
//! header and a request ring and a response ring.
//!
//! # Byte layout (layout version [`LAYOUT_VERSION`])
//!
//! | offset | size | field | written by |
//! |-------:|-----:|-------|-----------|
//! | 0 | 8 | magic `b"SHMKV\0\0\x02"` (written last at creation) | server |
//! | 8 | 4 | layout version | server |
//! | 12 | 4 | slot size (32) | server |
//! | 16 | 4 | request ring capacity (power of two) | server |
//! | 20 | 4 | response ring capacity (power of two) | server |
//! | 24 | 8 | object length in bytes | server |
//! | 32 | 4 | the session's slot number | server |
//! | 36 | 4 | number of client slots of the server | server |
//! | 44 | 4 | session state (1 running, 2 server stopping, 3 client dropped) | server |
//! | 48 | 8 | table bucket count (for clients' information) | server |
//! | 128 | 192 | request ring control block (see [`crate::region::RingCtrl`]) | both |
//! | 320 | 192 | response ring control block | both |
//! | 512 | 32 × req cap | request slots | client |
//! | … | 32 × resp cap | response slots | server |
//!
//! The client produces requests and consumes responses; the server consumes requests and
//! produces responses. Both rings are single-producer/single-consumer across the two processes.
//! The object is never given to a second session, so nothing in it ever needs resetting, and the
//! server never reads the header back: a client that scribbles on it harms only itself.

use crate::region::SLOT_SIZE;
use crate::shm::{Mapping, SealError, ShmRingMem};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{SysFutex, Wake};
use nix::errno::Errno;
use std::os::fd::OwnedFd;

/// Identifies a shmkv session object.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKV\0\0\x02");
/// Version of the byte layout above; a client refuses any other.
pub const LAYOUT_VERSION: u32 = 2;
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

/// Session state: serving.
pub const STATE_RUNNING: u32 = 1;
/// Session state: the server is shutting down (or gone).
pub const STATE_STOPPING: u32 = 2;
/// Session state: the server dropped this client (it broke its ring or made the server do
/// pointless work); the server hangs up right after writing it.
pub const STATE_DROPPED: u32 = 3;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_SLOT_SIZE: usize = 12;
const OFF_REQ_CAP: usize = 16;
const OFF_RESP_CAP: usize = 20;
const OFF_LEN: usize = 24;
const OFF_INDEX: usize = 32;
const OFF_CLIENTS: usize = 36;
const OFF_STATE: usize = 44;
const OFF_BUCKETS: usize = 48;

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
    /// The session's slot number.
    pub index: u32,
    /// Number of client slots the server has.
    pub clients: u32,
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
    /// The object is not sealed against resizing, or its size is out of range.
    Unsealed(SealError),
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
            HeaderError::Unsealed(e) => write!(f, "{e}"),
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
    /// Wake whoever sleeps on the response ring's data futex (a waiting client).
    pub fn nudge_client(&self) {
        if let Some(ctrl) = self.map.ring_ctrl(RESP_CTRL) {
            ctrl.wake.0.data_futex.fetch_add(1, Ordering::SeqCst);
            SysFutex.wake(&ctrl.wake.0.data_futex);
        }
    }
}

/// Parameters of a session object, chosen by the server.
#[derive(Debug, Clone, Copy)]
pub struct ObjectParams {
    /// The session's slot number.
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

/// Create a fresh sealed session object, fill its header and publish the magic last. The
/// descriptor is what the client is handed.
pub fn create_object(p: &ObjectParams) -> Result<(OwnedFd, Object, HeaderInfo), Errno> {
    let len = object_len(p.req_capacity, p.resp_capacity);
    let (fd, map) = Mapping::create_sealed(len)?;
    let o = Object { map: Arc::new(map) };
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
    o.u64_at(OFF_BUCKETS).store(p.buckets, Ordering::Relaxed);
    o.state().store(STATE_RUNNING, Ordering::Relaxed);
    o.u64_at(OFF_MAGIC).store(MAGIC, Ordering::Release);
    let (o, info) = Object::validate(o.map).map_err(|_| Errno::EINVAL)?;
    Ok((fd, o, info))
}

/// Map a session object received from the server (after checking its seals and size) and
/// validate its header.
pub fn open_object(fd: &impl std::os::fd::AsFd) -> Result<(Object, HeaderInfo), HeaderError> {
    let map = Mapping::open_sealed(fd).map_err(HeaderError::Unsealed)?;
    Object::validate(Arc::new(map))
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
    #[cfg(not(miri))] // memfd_create/mmap
    fn header_round_trip_and_mismatches() {
        let (fd, o, info) = create_object(&params()).unwrap();
        assert_eq!(info.req_capacity, 8);
        assert_eq!(info.resp_capacity, 16);
        assert_eq!(info.index, 3);
        assert_eq!(info.buckets, 100);
        let (o2, info2) = open_object(&fd).unwrap();
        assert_eq!(info, info2);
        assert_eq!(o2.state().load(Ordering::SeqCst), STATE_RUNNING);

        o.u32_at(OFF_VERSION).store(9, Ordering::SeqCst);
        assert_eq!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Version(9)
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
