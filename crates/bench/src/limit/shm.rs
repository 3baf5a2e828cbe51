//! The memory both sides share: its layout (control words, two rings), the sealed memfd that
//! holds it, and its mapping.

use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// Distance between words written by different sides (two cache lines: the adjacent-line
/// prefetcher pairs lines).
const LINE: usize = 128;
/// Control words: the magic (written by the parent before the child starts), the child's
/// words (ready, failed), the parent's word (stop), the ping-pong word.
pub(super) const MAGIC_AT: usize = 0;
pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"shmkvlim");
pub(super) const READY_AT: usize = LINE;
pub(super) const FAILED_AT: usize = LINE + 8;
pub(super) const STOP_AT: usize = 2 * LINE;
pub(super) const PING_AT: usize = 3 * LINE;
/// The parent's last word to the ping-pong child: go on to the rings (odd, never an n).
pub(super) const PING_DONE: u64 = u64::MAX;
/// The largest ring (slots) a child accepts.
pub(super) const MAX_CAP: u64 = 1 << 20;

/// Where one ring lies in the shared memory: its producer's position (`head`), its
/// consumer's position (`tail`), each on its own line, then `cap` slots of two words.
#[derive(Debug, Clone, Copy)]
pub(super) struct RingAt {
    pub(super) head: usize,
    pub(super) tail: usize,
    pub(super) slots: usize,
    pub(super) cap: u64,
}

impl RingAt {
    fn bytes(cap: u64) -> usize {
        2 * LINE + cap as usize * 16
    }
}

/// The shared memory's layout for rings of `cap` slots.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) req: RingAt,
    pub(super) resp: RingAt,
    pub(super) len: usize,
}

impl Layout {
    pub(super) fn new(cap: u64) -> Layout {
        let ring = |at: usize| RingAt {
            head: at,
            tail: at + LINE,
            slots: at + 2 * LINE,
            cap,
        };
        let req_at = 4 * LINE;
        let resp_at = (req_at + RingAt::bytes(cap)).next_multiple_of(LINE);
        let len = (resp_at + RingAt::bytes(cap)).next_multiple_of(4096);
        Layout {
            req: ring(req_at),
            resp: ring(resp_at),
            len,
        }
    }
}

/// A shared mapping, unmapped on drop; only ever accessed through [`Shm::word`].
pub(super) struct Shm {
    ptr: NonNull<u8>,
    len: usize,
}

impl Shm {
    /// Map all `len` bytes of `fd`, shared.
    pub(super) fn map(fd: &OwnedFd, len: usize) -> Result<Shm, String> {
        // SAFETY: a fresh shared mapping of a descriptor we hold open; it replaces no memory
        // of ours (the kernel picks the address). The object is sealed against shrinking, so
        // every page stays backed.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast()).ok_or("mmap returned null")?;
        Ok(Shm { ptr, len })
    }

    /// The 8-byte word at byte offset `at`, as an atomic (panics if out of bounds).
    #[inline(always)]
    pub(super) fn word(&self, at: usize) -> &AtomicU64 {
        assert!(
            at % 8 == 0 && at.checked_add(8).is_some_and(|end| end <= self.len),
            "shared word at {at} out of the mapping ({} bytes)",
            self.len
        );
        // SAFETY: the 8 bytes at `at` lie inside the mapping (checked above) and are 8-byte
        // aligned (the mapping is page-aligned, `at` a multiple of 8); they stay mapped for
        // as long as `self` is borrowed (unmapped only in Drop). Both processes access this
        // memory only as whole 8-byte atomics, as `AtomicU64::from_ptr` requires.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(at).cast()) }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are what mmap returned; no reference into the mapping outlives
        // `self` (every `word` borrows `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Create the sealed shared object of `len` bytes; its descriptor is close-on-exec (cleared
/// only in the limit child, between fork and exec).
pub(super) fn create_object(len: usize) -> Result<OwnedFd, String> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    let e = |what: &str, e: nix::Error| format!("limit: {what}: {e}");
    let fd = memfd_create(
        c"shmkv-bench-limit",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|x| e("memfd_create", x))?;
    nix::unistd::ftruncate(&fd, len as libc::off_t).map_err(|x| e("ftruncate", x))?;
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
    fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(|x| e("seal", x))?;
    Ok(fd)
}
