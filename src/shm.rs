//! Sealed shared-memory objects: create one (`memfd_create` + `F_SEAL_SHRINK | F_SEAL_GROW |
//! F_SEAL_SEAL`), and map one received from a peer after checking its seals and size. A ring's
//! memory inside a mapping is [`crate::record::ShmRecordMem`], built on [`Mapping`]'s checked
//! accessors.
//!
//! This is the only module that calls `memfd_create`/`mmap`. A [`Mapping`] is only ever accessed
//! through atomics (`&AtomicU32`/`&AtomicU64`, whose interior mutability makes sharing them with
//! another process sound): no `&T` or `&mut T` to plain data in the mapping is ever created, and
//! every offset is checked against the mapping's length before use. Because the object is sealed
//! against shrinking and growing before anyone else sees it, no peer can truncate it under a
//! mapping (which would make the next access a SIGBUS) or change its size; hole punching
//! (`fallocate(PUNCH_HOLE)`) only zeroes pages, which a peer could do by writing anyway.

use crate::region::{RING_CTRL_SIZE, RingCtrl};
use crate::sync::{AtomicU32, AtomicU64};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use nix::sys::stat::fstat;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;

/// The largest object shmkv maps (1 GiB): a bound on what a size read from a peer can make us map.
pub const MAX_OBJECT_SIZE: usize = 1 << 30;

/// The seals every shmkv object carries: its size can never change again, nor its seals.
pub const REQUIRED_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_SEAL);

/// Why a descriptor received from a peer was not mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// It lacks one of [`REQUIRED_SEALS`] (or is not a sealable object at all): the seals it has.
    Unsealed(i32),
    /// Its size is 0 or above [`MAX_OBJECT_SIZE`].
    Size(i64),
    /// A system call failed.
    Os(Errno),
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Unsealed(s) => write!(
                f,
                "the object is not sealed against resizing (seals {s:#x}); refusing to map it"
            ),
            SealError::Size(n) => write!(f, "the object's size {n} is out of range"),
            SealError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SealError {}

/// A shared mapping of a whole sealed shared-memory object, unmapped on drop.
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

fn map_fd(fd: impl AsFd, len: usize) -> Result<Mapping, Errno> {
    let nz = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
    // SAFETY: a fresh shared mapping of an object we hold open; no existing memory is affected.
    // The object is sealed against shrinking, so every page of the mapping stays backed.
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
    /// Create a fresh anonymous object of `len` bytes (zero-filled), seal it with
    /// [`REQUIRED_SEALS`] and map it. The descriptor is what a peer is handed (it can map the
    /// object but never resize it).
    pub fn create_sealed(len: usize) -> Result<(OwnedFd, Mapping), Errno> {
        if len == 0 || len > MAX_OBJECT_SIZE {
            return Err(Errno::EINVAL);
        }
        let fd = memfd_create(
            c"shmkv-session",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )?;
        nix::unistd::ftruncate(&fd, len as libc::off_t)?;
        fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(REQUIRED_SEALS))?;
        let map = map_fd(&fd, len)?;
        Ok((fd, map))
    }

    /// Map an object received from a peer, after checking that it carries every seal of
    /// [`REQUIRED_SEALS`] and that its size is in range. Its size cannot change afterwards.
    pub fn open_sealed(fd: &impl AsFd) -> Result<Mapping, SealError> {
        let fd = fd.as_fd();
        let seals =
            fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS).map_err(|_| SealError::Unsealed(0))?;
        if !SealFlag::from_bits_truncate(seals).contains(REQUIRED_SEALS) {
            return Err(SealError::Unsealed(seals));
        }
        let st = fstat(fd.as_raw_fd()).map_err(SealError::Os)?;
        let len = usize::try_from(st.st_size)
            .ok()
            .filter(|&n| n > 0 && n <= MAX_OBJECT_SIZE)
            .ok_or(SealError::Size(st.st_size))?;
        map_fd(fd, len).map_err(SealError::Os)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fault every page of the mapping in now, writable (`MADV_POPULATE_WRITE`, Linux 5.14
    /// and later): the object's pages are allocated and zeroed, and this process's page
    /// tables map them, so that later accesses take no page fault. The contents do not
    /// change (a peer may be writing them meanwhile). Fails with `EINVAL` on older kernels,
    /// and with `ENOMEM`/`EFAULT` when memory runs out; nothing is lost either way.
    pub fn populate(&self) -> Result<(), Errno> {
        // SAFETY: the range is exactly this live mapping; MADV_POPULATE_WRITE only faults
        // pages in (as a write of each page would, without writing), so no memory that Rust
        // code can see changes.
        let r = unsafe {
            libc::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if r == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// Map into this process's page tables the pages of the mapping that are already resident
    /// (a peer faulted them in: a client that prefaults its session object), writable, so
    /// that this process takes no page fault on them later; pages not resident are left
    /// alone, so nothing is allocated. Returns how many pages it mapped. The contents do not
    /// change (`MADV_POPULATE_WRITE` on each run of resident pages, which `mincore` finds).
    /// Fails as [`Mapping::populate`] does; nothing is lost either way.
    pub fn populate_resident(&self) -> Result<usize, Errno> {
        // SAFETY: no arguments, no memory handed over.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| Errno::EINVAL)?;
        let pages = self.len.div_ceil(page);
        let mut resident = vec![0u8; pages];
        // SAFETY: the range is exactly this live mapping (page-aligned: mmap returned it), and
        // `resident` has one byte for each of its pages, which mincore writes.
        let r = unsafe { libc::mincore(self.ptr.as_ptr().cast(), self.len, resident.as_mut_ptr()) };
        if r != 0 {
            return Err(Errno::last());
        }
        let mut mapped = 0;
        let mut at = 0;
        while at < pages {
            if resident[at] & 1 == 0 {
                at += 1;
                continue;
            }
            let run = resident[at..].iter().take_while(|&&b| b & 1 != 0).count();
            let len = (run * page).min(self.len - at * page);
            // SAFETY: `at * page .. at * page + len` lies inside this live mapping; as in
            // `populate`, MADV_POPULATE_WRITE only faults pages in and changes no byte.
            let r = unsafe {
                libc::madvise(
                    self.ptr.as_ptr().add(at * page).cast(),
                    len,
                    libc::MADV_POPULATE_WRITE,
                )
            };
            if r != 0 {
                return Err(Errno::last());
            }
            mapped += run;
            at += run;
        }
        Ok(mapped)
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

    /// The `count` 64-bit atomics from `offset` on, or `None` when they would not lie inside
    /// the mapping or `offset` is misaligned.
    pub fn atomic_u64_slice(&self, offset: usize, count: usize) -> Option<&[AtomicU64]> {
        let p = self.check(offset, count.checked_mul(8)?, 8)?;
        // SAFETY: `count` words in bounds and 8-aligned (checked); as for `atomic_u64`, each
        // is a valid AtomicU64 for the mapping's life, accessed by others only atomically.
        Some(unsafe { std::slice::from_raw_parts(p as *const AtomicU64, count) })
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

#[cfg(all(test, not(loom)))]
mod tests {
    // Every test here calls memfd_create/mmap, which Miri cannot run.
    #![cfg_attr(miri, allow(unused_imports))]
    use super::*;
    use crate::sync::Ordering;

    /// The resident size of the mapping that starts at `addr`, from /proc/self/smaps.
    #[cfg(not(miri))]
    fn resident_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        let head = format!("{addr:x}-");
        lines
            .by_ref()
            .find(|l| l.starts_with(&head))
            .expect("the mapping is listed");
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        rss.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// `populate` makes every page of the mapping resident and leaves the contents alone; a
    /// fresh mapping has none resident.
    #[test]
    #[cfg(not(miri))]
    fn populate_faults_every_page_in_and_changes_nothing() {
        let (fd, m) = Mapping::create_sealed(1 << 20).unwrap();
        let other = Mapping::open_sealed(&fd).unwrap();
        assert_eq!(resident_kib(m.ptr.as_ptr() as usize), 0);
        m.atomic_u64(8192).unwrap().store(7, Ordering::Relaxed);
        assert_eq!(resident_kib(m.ptr.as_ptr() as usize), 4, "the page written");
        m.populate().unwrap();
        assert_eq!(resident_kib(m.ptr.as_ptr() as usize), 1024);
        assert_eq!(m.atomic_u64(8192).unwrap().load(Ordering::Relaxed), 7);
        assert_eq!(m.atomic_u64(0).unwrap().load(Ordering::Relaxed), 0);
        // Another process's (here: another) mapping of the object sees the same contents and
        // has its own page tables.
        assert_eq!(other.atomic_u64(8192).unwrap().load(Ordering::Relaxed), 7);
        assert!(resident_kib(other.ptr.as_ptr() as usize) < 1024);
    }

    /// `populate_resident` maps, in its own page tables, exactly the pages that another
    /// mapping faulted in, allocates none, and changes no byte.
    #[test]
    #[cfg(not(miri))]
    fn populate_resident_maps_what_the_peer_touched_and_allocates_nothing() {
        let (fd, client) = Mapping::create_sealed(256 << 10).unwrap();
        let server = Mapping::open_sealed(&fd).unwrap();
        assert_eq!(
            server.populate_resident().unwrap(),
            0,
            "nothing resident yet"
        );
        assert_eq!(resident_kib(server.ptr.as_ptr() as usize), 0);
        // The client writes pages 1, 3 and 4 (two runs).
        for (page, value) in [(1usize, 11u64), (3, 33), (4, 44)] {
            let word = client.atomic_u64(page * 4096 + 8).unwrap();
            word.store(value, Ordering::Relaxed);
        }
        assert_eq!(resident_kib(server.ptr.as_ptr() as usize), 0);
        assert_eq!(server.populate_resident().unwrap(), 3);
        assert_eq!(
            resident_kib(server.ptr.as_ptr() as usize),
            12,
            "mapped, not faulted"
        );
        for (page, value) in [(1usize, 11u64), (3, 33), (4, 44)] {
            let word = server.atomic_u64(page * 4096 + 8).unwrap();
            assert_eq!(word.load(Ordering::Relaxed), value);
        }
        // Nothing new was allocated: the object still has three resident pages.
        assert_eq!(client.populate_resident().unwrap(), 3);
        assert_eq!(resident_kib(client.ptr.as_ptr() as usize), 12);
    }

    #[test]
    #[cfg(not(miri))]
    fn sealed_objects_cannot_be_resized_and_map_alike() {
        let (fd, m) = Mapping::create_sealed(4096).unwrap();
        assert_eq!(m.len(), 4096);
        for len in [0, 100, 8192, 1 << 29] {
            assert_eq!(
                nix::unistd::ftruncate(&fd, len).unwrap_err(),
                Errno::EPERM,
                "{len}"
            );
        }
        let other = Mapping::open_sealed(&fd).unwrap();
        m.atomic_u64(8).unwrap().store(42, Ordering::SeqCst);
        assert_eq!(other.atomic_u64(8).unwrap().load(Ordering::SeqCst), 42);
    }

    #[test]
    #[cfg(not(miri))]
    fn unsealed_objects_are_refused() {
        let fd = memfd_create(c"plain", MemFdCreateFlag::MFD_ALLOW_SEALING).unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        assert!(matches!(
            Mapping::open_sealed(&fd),
            Err(SealError::Unsealed(_))
        ));
        fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
        )
        .unwrap();
        assert!(
            matches!(Mapping::open_sealed(&fd), Err(SealError::Unsealed(_))),
            "F_SEAL_SEAL is required too"
        );
        let unsealable = memfd_create(c"plain", MemFdCreateFlag::empty()).unwrap();
        nix::unistd::ftruncate(&unsealable, 4096).unwrap();
        assert!(Mapping::open_sealed(&unsealable).is_err());
        let (fd, _m) = Mapping::create_sealed(4096).unwrap();
        assert!(Mapping::open_sealed(&fd).is_ok());
        assert!(Mapping::create_sealed(0).is_err());
        assert!(Mapping::create_sealed(MAX_OBJECT_SIZE + 1).is_err());
    }

    #[test]
    #[cfg(not(miri))]
    fn offsets_are_checked() {
        let (_fd, m) = Mapping::create_sealed(4096).unwrap();
        assert!(m.atomic_u64(4088).is_some());
        assert!(m.atomic_u64(4096).is_none());
        assert!(m.atomic_u64(usize::MAX - 3).is_none());
        assert!(m.atomic_u64(4).is_none(), "misaligned");
        assert!(m.atomic_u32(4092).is_some());
        assert!(m.atomic_u32(4094).is_none(), "misaligned");
        assert!(m.ring_ctrl(4096 - RING_CTRL_SIZE).is_some());
        assert!(
            m.ring_ctrl(4096 - RING_CTRL_SIZE + 64).is_none(),
            "past the end"
        );
        assert!(m.ring_ctrl(8).is_none(), "misaligned");
    }
}
