//! POSIX shared-memory objects: create (`O_EXCL`, mode 0600), open, map, unlink; and
//! [`ShmRingMem`], a ring's memory inside a mapping.
//!
//! This is the only module that calls `shm_open`/`mmap`. A [`Mapping`] is only ever accessed
//! through atomics (`&AtomicU32`/`&AtomicU64`, whose interior mutability makes sharing them with
//! another process sound): no `&T` or `&mut T` to plain data in the mapping is ever created, and
//! every offset is checked against the mapping's length before use.

use crate::region::{RING_CTRL_SIZE, RingCtrl, RingMem, SLOT_SIZE, Slot};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::SysFutex;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap, shm_open, shm_unlink};
use nix::sys::stat::{Mode, fchmod, fstat};
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;

/// The largest object shmkv maps (1 GiB): a bound on what a size read from a peer can make us map.
pub const MAX_OBJECT_SIZE: usize = 1 << 30;

/// A shared mapping of a whole POSIX shared-memory object, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, accessed only through atomics; it is not tied to
// the thread that created it.
unsafe impl Send for Mapping {}
// SAFETY: as above: every access goes through atomics, so shared use from threads is sound.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no reference into the mapping
        // outlives `self` (every accessor borrows `self`).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

fn object_path(name: &str) -> String {
    format!("/{name}")
}

fn map_fd(fd: &OwnedFd, len: usize) -> Result<Mapping, Errno> {
    let nz = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
    // SAFETY: a fresh shared mapping of an object we hold open; no existing memory is affected.
    let ptr = unsafe {
        mmap(
            None,
            nz,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )?
    };
    Ok(Mapping {
        ptr: ptr.cast(),
        len,
    })
}

impl Mapping {
    /// Create the object `/<name>` exclusively (`O_EXCL`) with mode 0600, size it to `len`
    /// bytes (zero-filled) and map it.
    pub fn create(name: &str, len: usize) -> Result<Mapping, Errno> {
        if len == 0 || len > MAX_OBJECT_SIZE {
            return Err(Errno::EINVAL);
        }
        let path = object_path(name);
        let fd = shm_open(
            path.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )?;
        let made = (|| {
            // The umask can only remove bits; set 0600 explicitly all the same.
            fchmod(fd.as_raw_fd(), Mode::S_IRUSR | Mode::S_IWUSR)?;
            nix::unistd::ftruncate(&fd, len as libc::off_t)?;
            map_fd(&fd, len)
        })();
        if made.is_err() {
            let _ = shm_unlink(path.as_str());
        }
        made
    }

    /// Open and map the existing object `/<name>`, whatever its size (up to
    /// [`MAX_OBJECT_SIZE`]).
    pub fn open(name: &str) -> Result<Mapping, Errno> {
        let fd = shm_open(object_path(name).as_str(), OFlag::O_RDWR, Mode::empty())?;
        let st = fstat(fd.as_raw_fd())?;
        let len = usize::try_from(st.st_size).map_err(|_| Errno::EINVAL)?;
        if len == 0 || len > MAX_OBJECT_SIZE {
            return Err(Errno::EINVAL);
        }
        map_fd(&fd, len)
    }

    /// Remove the object `/<name>` (existing mappings stay valid).
    pub fn unlink(name: &str) -> Result<(), Errno> {
        shm_unlink(object_path(name).as_str())
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, size: usize, align: usize) -> Option<*mut u8> {
        let end = offset.checked_add(size)?;
        if end > self.len || offset % align != 0 {
            return None;
        }
        // SAFETY: `offset + size <= len`, so the result stays inside the mapping.
        Some(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// The 64-bit atomic at `offset`, or `None` when it would not lie inside the mapping or is
    /// misaligned.
    pub fn atomic_u64(&self, offset: usize) -> Option<&AtomicU64> {
        let p = self.check(offset, 8, 8)?;
        // SAFETY: in bounds and 8-aligned (checked); the mapping lives as long as `&self`; an
        // AtomicU64 has the layout of u64 and every bit pattern is valid; other processes access
        // the word only atomically (or, if hostile, write bytes we read atomically).
        Some(unsafe { &*(p as *const AtomicU64) })
    }

    /// The 32-bit atomic at `offset`, or `None` when it would not lie inside the mapping or is
    /// misaligned.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        let p = self.check(offset, 4, 4)?;
        // SAFETY: as for `atomic_u64`, with 4 bytes and 4-alignment.
        Some(unsafe { &*(p as *const AtomicU32) })
    }

    /// The ring control block at `offset`, or `None` when out of bounds or not 64-aligned.
    pub fn ring_ctrl(&self, offset: usize) -> Option<&RingCtrl> {
        let p = self.check(offset, RING_CTRL_SIZE, 64)?;
        // SAFETY: in bounds and aligned (checked); RingCtrl is `repr(C)` and made only of
        // atomics (any bit pattern valid, interior mutability), so sharing it with another
        // process that writes it is sound.
        Some(unsafe { &*(p as *const RingCtrl) })
    }
}

/// Words per slot: slots are accessed as four 64-bit atomics, so that a peer writing the same
/// slot at the same time (a hostile peer can) is a race on atomics, never undefined behaviour.
const SLOT_WORDS: usize = SLOT_SIZE / 8;

/// A ring's memory inside a [`Mapping`]: a control block and `capacity` slots at checked offsets.
#[derive(Debug, Clone)]
pub struct ShmRingMem {
    map: Arc<Mapping>,
    ctrl_offset: usize,
    slots_offset: usize,
    capacity: usize,
    waker: SysFutex,
}

impl ShmRingMem {
    /// The ring whose control block is at `ctrl_offset` and whose `capacity` slots start at
    /// `slots_offset`. `None` when `capacity` is not a power of two or any part lies outside
    /// the mapping or is misaligned.
    pub fn new(
        map: Arc<Mapping>,
        ctrl_offset: usize,
        slots_offset: usize,
        capacity: usize,
    ) -> Option<Self> {
        if !capacity.is_power_of_two() {
            return None;
        }
        map.ring_ctrl(ctrl_offset)?;
        map.check(slots_offset, capacity.checked_mul(SLOT_SIZE)?, 8)?;
        Some(Self {
            map,
            ctrl_offset,
            slots_offset,
            capacity,
            waker: SysFutex,
        })
    }

    fn word(&self, index: usize, word: usize) -> &AtomicU64 {
        let off = self.slots_offset + (index * SLOT_WORDS + word) * 8;
        self.map
            .atomic_u64(off)
            .expect("slot offsets were checked when the ring was built")
    }
}

impl RingMem for ShmRingMem {
    type Waker = SysFutex;

    fn ctrl(&self) -> &RingCtrl {
        self.map
            .ring_ctrl(self.ctrl_offset)
            .expect("control offset was checked when the ring was built")
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn waker(&self) -> &SysFutex {
        &self.waker
    }
    unsafe fn read_slot(&self, index: usize) -> Slot {
        let mut out = [0u8; SLOT_SIZE];
        let index = index & (self.capacity - 1);
        for w in 0..SLOT_WORDS {
            let v = self.word(index, w).load(Ordering::Relaxed);
            out[w * 8..w * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
    unsafe fn write_slot(&self, index: usize, slot: &Slot) {
        let index = index & (self.capacity - 1);
        for w in 0..SLOT_WORDS {
            let mut b = [0u8; 8];
            b.copy_from_slice(&slot[w * 8..w * 8 + 8]);
            self.word(index, w)
                .store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    // Every test here calls shm_open/mmap, which Miri cannot run: each is compiled out under
    // Miri, and so are the helpers only they use.
    #![cfg_attr(miri, allow(unused_imports))]
    use super::*;
    use crate::ring;
    use std::os::unix::fs::PermissionsExt;

    #[cfg(not(miri))]
    fn unique(tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "shmkv-unit-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    #[test]
    #[cfg(not(miri))]
    fn create_is_exclusive_0600_and_unlinks() {
        let name = unique("excl");
        let m = Mapping::create(&name, 4096).unwrap();
        assert_eq!(m.len(), 4096);
        assert_eq!(Mapping::create(&name, 4096).unwrap_err(), Errno::EEXIST);
        let mode = std::fs::metadata(format!("/dev/shm/{name}"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = Mapping::open(&name).unwrap();
        m.atomic_u64(8).unwrap().store(42, Ordering::SeqCst);
        assert_eq!(other.atomic_u64(8).unwrap().load(Ordering::SeqCst), 42);
        Mapping::unlink(&name).unwrap();
        assert_eq!(Mapping::open(&name).unwrap_err(), Errno::ENOENT);
    }

    #[test]
    #[cfg(not(miri))]
    fn offsets_are_checked() {
        let name = unique("bounds");
        let m = Mapping::create(&name, 4096).unwrap();
        Mapping::unlink(&name).unwrap();
        assert!(m.atomic_u64(4088).is_some());
        assert!(m.atomic_u64(4096).is_none());
        assert!(m.atomic_u64(usize::MAX - 3).is_none());
        assert!(m.atomic_u64(4).is_none(), "misaligned");
        let m = Arc::new(m);
        assert!(ShmRingMem::new(m.clone(), 0, 256, 8).is_some());
        assert!(ShmRingMem::new(m.clone(), 0, 256, 3).is_none());
        assert!(ShmRingMem::new(m.clone(), 0, 256, 1 << 20).is_none());
        assert!(ShmRingMem::new(m, 4000, 256, 8).is_none());
    }

    #[test]
    #[cfg(not(miri))]
    fn ring_over_two_mappings_of_one_object() {
        let name = unique("ring");
        let a = Arc::new(Mapping::create(&name, 4096).unwrap());
        let b = Arc::new(Mapping::open(&name).unwrap());
        Mapping::unlink(&name).unwrap();
        let mut p = ring::Producer::new(ShmRingMem::new(a, 0, 256, 16).unwrap());
        let mut c = ring::Consumer::new(ShmRingMem::new(b, 0, 256, 16).unwrap());
        let t = std::thread::spawn(move || {
            for i in 0..5000u64 {
                let mut s = [0u8; SLOT_SIZE];
                s[..8].copy_from_slice(&i.to_le_bytes());
                s[24..].copy_from_slice(&(!i).to_le_bytes());
                p.push(&s, None).unwrap();
            }
        });
        for i in 0..5000u64 {
            let s = c.pop(None).unwrap();
            assert_eq!(u64::from_le_bytes(s[..8].try_into().unwrap()), i);
            assert_eq!(u64::from_le_bytes(s[24..].try_into().unwrap()), !i);
        }
        t.join().unwrap();
    }
}
