//! The session object: one sealed shared-memory object per client session, created by the
//! server and handed to the client over the server's socket (see [`crate::door`]), holding a
//! header, a request ring and a response ring (variable-length [`crate::record`] rings).
//!
//! # Byte layout (layout version [`LAYOUT_VERSION`])
//!
//! | offset | size | field | written by |
//! |-------:|-----:|-------|-----------|
//! | 0 | 8 | magic `b"SHMKV\0\0\x03"` (written last at creation) | server |
//! | 8 | 4 | layout version | server |
//! | 16 | 4 | request ring bytes `R` (power of two) | server |
//! | 20 | 4 | response ring bytes `S` (power of two) | server |
//! | 24 | 8 | object length in bytes | server |
//! | 32 | 4 | the session's slot number | server |
//! | 36 | 4 | number of client slots of the server | server |
//! | 40 | 4 | longest key accepted (`max_key`) | server |
//! | 44 | 4 | session state (1 running, 2 server stopping, 3 client dropped) | server |
//! | 48 | 8 | table bucket count (for clients' information) | server |
//! | 56 | 4 | longest value accepted (`max_value`) | server |
//! | 128 | 192 | request ring control block (see [`crate::region::RingCtrl`]) | both |
//! | 320 | 192 | response ring control block | both |
//! | 512 | `R` | request ring data | client |
//! | 512 + `R` | `S` | response ring data | server |
//!
//! The limits are the server's [`Limits`], told to the client in the object it is handed: the
//! client refuses a key or value over them before sending it (the server refuses it anyway).
//! The rings are sized for them ([`ring_sizes`]): every request and every part of an answer
//! is one record, so the request ring's largest record holds a `cas` with the longest key and
//! two longest values, and the response ring's an answer with the longest value.
//!
//! The client produces requests and consumes responses; the server consumes requests and
//! produces responses. Both rings are single-producer/single-consumer across the two processes.
//! The object is never given to a second session, so nothing in it ever needs resetting, and the
//! server never reads the header back: a client that scribbles on it harms only itself.

use crate::record::{MAX_CAPACITY, ShmRecordMem, max_payload, valid_capacity};
use crate::shm::{Mapping, SealError};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{SysFutex, Wake};
use crate::wire::Limits;
use nix::errno::Errno;
use std::os::fd::OwnedFd;

/// Identifies a shmkv session object.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKV\0\0\x03");
/// Version of the byte layout above; a client refuses any other.
pub const LAYOUT_VERSION: u32 = 3;
/// Offset of the request ring's control block.
pub const REQ_CTRL: usize = 128;
/// Offset of the response ring's control block.
pub const RESP_CTRL: usize = 320;
/// Offset of the request ring's data.
pub const DATA: usize = 512;
/// Smallest ring: 64 KiB (many small records in flight, whatever the limits).
pub const MIN_RING: u32 = 1 << 16;
/// Largest ring: [`MAX_CAPACITY`] (1 GiB).
pub const MAX_RING: u32 = MAX_CAPACITY as u32;
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
const OFF_REQ_CAP: usize = 16;
const OFF_RESP_CAP: usize = 20;
const OFF_LEN: usize = 24;
const OFF_INDEX: usize = 32;
const OFF_CLIENTS: usize = 36;
const OFF_MAX_KEY: usize = 40;
const OFF_STATE: usize = 44;
const OFF_BUCKETS: usize = 48;
const OFF_MAX_VALUE: usize = 56;

/// The ring sizes (request, response) for `limits`: the smallest powers of two, at least
/// [`MIN_RING`], whose largest record holds the longest request and the longest answer part.
/// `None` when that is more than [`MAX_RING`].
pub fn ring_sizes(limits: &Limits) -> Option<(u32, u32)> {
    let size = |len: u64| -> Option<u32> {
        // max_payload(c) = c / 2 - 8
        let need = len.checked_add(8)?.checked_mul(2)?.max(u64::from(MIN_RING));
        let c = need.checked_next_power_of_two()?;
        (c <= u64::from(MAX_RING)).then_some(c as u32)
    };
    Some((
        size(limits.max_request_len())?,
        size(limits.max_response_len())?,
    ))
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

/// Total object size for the given ring sizes.
pub fn object_len(req_cap: u32, resp_cap: u32) -> usize {
    DATA + req_cap as usize + resp_cap as usize
}

/// The header fields, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Request ring bytes.
    pub req_capacity: u32,
    /// Response ring bytes.
    pub resp_capacity: u32,
    /// The session's slot number.
    pub index: u32,
    /// Number of client slots the server has.
    pub clients: u32,
    /// The table's bucket count.
    pub buckets: u64,
    /// The longest key and value the server accepts.
    pub limits: Limits,
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

    /// Validate the header of a freshly mapped object (magic, version, ring sizes, length,
    /// limits) and read it. Every value is read once.
    pub fn validate(map: Arc<Mapping>) -> Result<(Object, HeaderInfo), HeaderError> {
        if map.len() < DATA {
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
        let cap_ok = |c: u32| valid_capacity(c as usize) && (MIN_RING..=MAX_RING).contains(&c);
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
        let limits = Limits {
            max_key: o.u32_at(OFF_MAX_KEY).load(Ordering::Relaxed),
            max_value: o.u32_at(OFF_MAX_VALUE).load(Ordering::Relaxed),
        };
        if limits.max_key == 0 {
            return Err(HeaderError::Field("max_key", 0));
        }
        // Every request and answer part the limits allow must fit in one record.
        if limits.max_request_len() > max_payload(req as usize) as u64 {
            return Err(HeaderError::Field("max_value", u64::from(limits.max_value)));
        }
        if limits.max_response_len() > max_payload(resp as usize) as u64 {
            return Err(HeaderError::Field("max_value", u64::from(limits.max_value)));
        }
        let info = HeaderInfo {
            req_capacity: req,
            resp_capacity: resp,
            index: o.u32_at(OFF_INDEX).load(Ordering::Relaxed),
            clients: o.u32_at(OFF_CLIENTS).load(Ordering::Relaxed),
            buckets: o.u64_at(OFF_BUCKETS).load(Ordering::Relaxed),
            limits,
        };
        Ok((o, info))
    }

    /// Fault the whole object in now (see [`Mapping::populate`]).
    pub fn populate(&self) -> Result<(), Errno> {
        self.map.populate()
    }

    /// Map the object's pages that a peer has already faulted in (see
    /// [`Mapping::populate_resident`]); returns how many.
    pub fn populate_resident(&self) -> Result<usize, Errno> {
        self.map.populate_resident()
    }

    /// The request ring's memory.
    pub fn request_ring(&self, info: &HeaderInfo) -> ShmRecordMem {
        ShmRecordMem::new(self.map.clone(), REQ_CTRL, DATA, info.req_capacity as usize)
            .expect("validated layout")
    }

    /// The response ring's memory.
    pub fn response_ring(&self, info: &HeaderInfo) -> ShmRecordMem {
        ShmRecordMem::new(
            self.map.clone(),
            RESP_CTRL,
            DATA + info.req_capacity as usize,
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
    /// Table buckets, for information.
    pub buckets: u64,
    /// The longest key and value accepted; the rings are sized for them ([`ring_sizes`]).
    pub limits: Limits,
}

/// Create a fresh sealed session object, fill its header and publish the magic last. The
/// descriptor is what the client is handed.
pub fn create_object(p: &ObjectParams) -> Result<(OwnedFd, Object, HeaderInfo), Errno> {
    let (req, resp) = ring_sizes(&p.limits).ok_or(Errno::EINVAL)?;
    let len = object_len(req, resp);
    let (fd, map) = Mapping::create_sealed(len)?;
    let o = Object { map: Arc::new(map) };
    o.u32_at(OFF_VERSION)
        .store(LAYOUT_VERSION, Ordering::Relaxed);
    o.u32_at(OFF_REQ_CAP).store(req, Ordering::Relaxed);
    o.u32_at(OFF_RESP_CAP).store(resp, Ordering::Relaxed);
    o.u32_at(OFF_MAX_KEY)
        .store(p.limits.max_key, Ordering::Relaxed);
    o.u32_at(OFF_MAX_VALUE)
        .store(p.limits.max_value, Ordering::Relaxed);
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
            buckets: 100,
            limits: Limits {
                max_key: 16,
                max_value: 100,
            },
        }
    }

    #[test]
    fn rings_are_sized_for_the_limits() {
        let small = Limits {
            max_key: 16,
            max_value: 100,
        };
        assert_eq!(ring_sizes(&small), Some((MIN_RING, MIN_RING)));
        let big = Limits {
            max_key: 4096,
            max_value: 1 << 20,
        };
        let (req, resp) = ring_sizes(&big).unwrap();
        assert!(big.max_request_len() <= max_payload(req as usize) as u64);
        assert!(big.max_response_len() <= max_payload(resp as usize) as u64);
        // The smallest such powers of two.
        assert!(big.max_request_len() > max_payload(req as usize / 2) as u64);
        assert!(big.max_response_len() > max_payload(resp as usize / 2) as u64);
        assert_eq!(ring_sizes(&Limits::UNLIMITED), None);
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
        assert_eq!(info.req_capacity, MIN_RING);
        assert_eq!(info.resp_capacity, MIN_RING);
        assert_eq!(info.limits.max_value, 100);
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
        o.u32_at(OFF_REQ_CAP).store(MIN_RING + 8, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("req_capacity", _)
        ));
        o.u32_at(OFF_REQ_CAP).store(MAX_RING, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("length", _)
        ));
        o.u32_at(OFF_REQ_CAP).store(MIN_RING, Ordering::SeqCst);
        // Limits the rings cannot carry, or no key at all.
        o.u32_at(OFF_MAX_VALUE).store(MIN_RING, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("max_value", _)
        ));
        o.u32_at(OFF_MAX_VALUE).store(100, Ordering::SeqCst);
        o.u32_at(OFF_MAX_KEY).store(0, Ordering::SeqCst);
        assert!(matches!(
            Object::validate(o2.map.clone()).unwrap_err(),
            HeaderError::Field("max_key", 0)
        ));
        o.u32_at(OFF_MAX_KEY).store(16, Ordering::SeqCst);
        assert!(Object::validate(o2.map.clone()).is_ok());
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
