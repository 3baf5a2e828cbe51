//! Transparent huge pages for a worker thread's heap: the memory its entries are allocated
//! from made writable well ahead of use and marked `MADV_HUGEPAGE`, so that the table grows
//! by 2 MiB page faults instead of one 4 KiB fault every few dozen inserts (design.md §10a,
//! "Huge pages for the workers' heaps").
//!
//! What it relies on, and what happens elsewhere: glibc gives each thread (up to eight per
//! core) an arena whose heap is an anonymous mapping reserved `PROT_NONE` and made writable
//! with `mprotect` a page at a time as the heap grows, and never made inaccessible again when
//! it shrinks (unless the kernel's overcommit mode is strict). A fault may be served by a huge
//! page only where a whole aligned 2 MiB range is writable, so a heap that grows a page at a
//! time gets none: [`advise_thread_heap`] first allocates and frees blocks until the writable
//! part reaches [`HEAP_AHEAD`] past the thread's current allocations (their memory is given
//! back to the kernel by glibc's trim; only the block headers were touched), then marks the
//! heap's mapping. Under another allocator, for a thread on the main arena (the `[heap]`
//! mapping, grown with `brk`), or with transparent huge pages off, it changes nothing but
//! the hint, and the table runs on 4 KiB pages as before.
//!
//! Huge pages pay for small entries only: the first entry of [`LARGE_ENTRY`] bytes or more a
//! worker creates turns them off for its heap again ([`note_entry`]).

use std::cell::Cell;
use std::io;

/// How far past a worker's allocations its heap is made writable (at most to the end of the
/// heap's reservation: glibc reserves 64 MiB per heap on 64-bit machines, and an arena whose
/// heap is full starts another, which runs on 4 KiB pages).
pub const HEAP_AHEAD: usize = 48 << 20;

/// An entry of at least this many bytes (header, key and value) turns huge pages off for the
/// heap of the worker that creates it (see [`note_entry`]).
pub const LARGE_ENTRY: usize = 4096;

thread_local! {
    /// The heap mapping this thread marked for huge pages (start, bytes), until a large
    /// entry turns them off.
    static ADVISED: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The block allocated to extend the heap: under glibc's mmap threshold (128 KiB), so that it
/// is taken from the heap's top.
const BLOCK: usize = 120 << 10;

/// The allocation whose address tells the thread's heap.
const PROBE: usize = 4096;

/// What [`advise_thread_heap`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapAdvice {
    /// The heap's mapping (`bytes` long) is marked for huge pages; its writable part reaches
    /// `ahead` bytes past the probe allocation.
    Advised {
        /// The bytes of the mapping marked.
        bytes: usize,
        /// The writable bytes past the thread's allocations.
        ahead: usize,
    },
    /// The thread allocates from the main arena (`brk`): left as it is.
    MainHeap,
    /// The allocation lies in no mapping this module knows (another allocator): left as it is.
    Unknown,
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    /// No access at all (`---p`): a heap's reserved, not yet writable part.
    reserved: bool,
    /// Anonymous (no path) and not `[heap]`.
    anonymous: bool,
    main_heap: bool,
}

/// Parse one line of `/proc/self/maps` (`start-end perms offset dev inode [path]`).
fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    Some(Mapping {
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        writable: perms.starts_with("rw"),
        reserved: perms.starts_with("---"),
        anonymous: path.is_empty(),
        main_heap: path == "[heap]",
    })
}

/// The heap holding address `at`: its writable mapping and the end of its reservation (the
/// reserved mapping right after it, if any), from `maps` (the text of `/proc/self/maps`).
fn heap_of(maps: &str, at: usize) -> Result<(Mapping, usize), HeapAdvice> {
    let all: Vec<Mapping> = maps.lines().filter_map(parse_line).collect();
    let i = all
        .iter()
        .position(|m| m.start <= at && at < m.end)
        .ok_or(HeapAdvice::Unknown)?;
    let m = all[i];
    if m.main_heap {
        return Err(HeapAdvice::MainHeap);
    }
    if !(m.writable && m.anonymous) {
        return Err(HeapAdvice::Unknown);
    }
    let end = match all.get(i + 1) {
        Some(r) if r.start == m.end && r.reserved && r.anonymous => r.end,
        _ => m.end,
    };
    Ok((m, end))
}

fn read_maps() -> io::Result<String> {
    std::fs::read_to_string("/proc/self/maps")
}

/// Make the calling thread's heap writable [`HEAP_AHEAD`] past its allocations and mark it
/// for transparent huge pages (see the [module](self) docs). Call it once when a worker
/// thread starts, before it allocates entries: the first call on an arena touches a page per
/// [`BLOCK`] it allocates (about 400, a fraction of a millisecond); a later call on a heap
/// already extended allocates nothing.
pub fn advise_thread_heap() -> io::Result<HeapAdvice> {
    // (Larger than glibc's per-thread cache takes, which may hold a chunk of another arena
    // freed by this thread: this one comes from the thread's own arena.)
    let probe = try_block(PROBE)?;
    let at = probe.as_ptr().addr();
    let (heap, reserved_end) = match heap_of(&read_maps()?, at) {
        Ok(h) => h,
        Err(other) => return Ok(other),
    };
    let want = at.saturating_add(HEAP_AHEAD).min(reserved_end);
    if heap.end < want {
        extend(heap.start, want)?;
    }
    let (heap, reserved_end) = match heap_of(&read_maps()?, at) {
        Ok(h) => h,
        Err(other) => return Ok(other),
    };
    let bytes = reserved_end - heap.start;
    // SAFETY: `madvise(MADV_HUGEPAGE)` changes no byte and no protection of the range: it only
    // marks its mappings so that later faults may be served by huge pages. The range is the
    // heap's mappings as `/proc/self/maps` listed them just now; if another thread changed
    // them meanwhile, the call fails (ENOMEM) or marks what is there, harmless either way.
    let r = unsafe {
        libc::madvise(
            std::ptr::without_provenance_mut::<libc::c_void>(heap.start),
            bytes,
            libc::MADV_HUGEPAGE,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    ADVISED.set(Some((heap.start, bytes)));
    drop(probe);
    Ok(HeapAdvice::Advised {
        bytes,
        ahead: heap.end - at,
    })
}

/// Note that the calling thread creates an entry of `bytes`. The first entry of at least
/// [`LARGE_ENTRY`] bytes on a heap this thread marked turns huge pages off for that heap
/// (`MADV_NOHUGEPAGE`; the huge pages already there stay): a 2 MiB fault holds only a few
/// such entries, and zeroing it at once cost large-value workloads more than the 4 KiB
/// faults it saves (design.md §10a).
#[inline]
pub fn note_entry(bytes: usize) {
    if bytes >= LARGE_ENTRY {
        large_entry();
    }
}

#[cold]
fn large_entry() {
    let Some((start, bytes)) = ADVISED.take() else {
        return;
    };
    // SAFETY: as in `advise_thread_heap`: `MADV_NOHUGEPAGE` changes no byte and no protection,
    // only how later faults in the range are served; a range changed meanwhile makes it fail
    // or mark what is there, harmless either way.
    unsafe {
        libc::madvise(
            std::ptr::without_provenance_mut::<libc::c_void>(start),
            bytes,
            libc::MADV_NOHUGEPAGE,
        );
    }
}

/// Allocate blocks from the heap at `start` until one ends at `want` or later (or one comes
/// from elsewhere: the heap is full, or the allocator is not glibc's), then free them all:
/// the heap's writable part now reaches past `want`.
///
/// A failed allocation (a strict overcommit mode or a memory limit may refuse the heap's
/// growth) ends the extension with an error instead of aborting the server.
fn extend(start: usize, want: usize) -> io::Result<()> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let most = (want - start) / BLOCK + 1;
    blocks.try_reserve_exact(most).map_err(io::Error::other)?;
    while blocks.len() < most {
        let block = try_block(BLOCK)?;
        let addr = block.as_ptr().addr();
        let inside = addr >= start && addr < want;
        let reached = addr.saturating_add(BLOCK) >= want;
        blocks.push(block);
        if !inside || reached {
            break;
        }
    }
    std::hint::black_box(&blocks);
    Ok(())
}

/// An empty buffer of `bytes` capacity, or the allocator's refusal as an error.
fn try_block(bytes: usize) -> io::Result<Vec<u8>> {
    let mut block = Vec::new();
    block.try_reserve_exact(bytes).map_err(io::Error::other)?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d4c0a00000-55d4c0a21000 rw-p 00000000 00:00 0                          [heap]
7f66b0000000-7f66b0021000 rw-p 00000000 00:00 0 
7f66b0021000-7f66b4000000 ---p 00000000 00:00 0 
7f66b8000000-7f66b8100000 r-xp 00000000 08:01 1234                       /usr/lib/libc.so.6
";

    #[test]
    fn the_heap_and_its_reservation_are_found() {
        let (m, end) = heap_of(MAPS, 0x7f66b0000ca0).unwrap();
        assert_eq!(
            (m.start, m.end, end),
            (0x7f66b0000000, 0x7f66b0021000, 0x7f66b4000000)
        );
        assert_eq!(heap_of(MAPS, 0x55d4c0a00010), Err(HeapAdvice::MainHeap));
        assert_eq!(heap_of(MAPS, 0x7f66b8000010), Err(HeapAdvice::Unknown));
        assert_eq!(heap_of(MAPS, 0x7f66b0021010), Err(HeapAdvice::Unknown));
        assert_eq!(heap_of(MAPS, 0x1000), Err(HeapAdvice::Unknown));
    }

    /// The flags `/proc/self/smaps` gives the mapping holding `at`, and its end.
    #[cfg(not(miri))] // reads /proc
    fn smaps_of(at: usize) -> (String, usize) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = None;
        for line in smaps.lines() {
            if let Some(m) = parse_line(line).filter(|m| line.contains('-') && m.start < m.end) {
                inside = (m.start <= at && at < m.end).then_some(m.end);
            } else if let (Some(end), Some(flags)) = (inside, line.strip_prefix("VmFlags:")) {
                return (flags.to_string(), end);
            }
        }
        panic!("no mapping holds {at:#x}");
    }

    #[test]
    #[cfg(not(miri))] // /proc and madvise
    fn a_thread_heap_is_extended_and_marked() {
        // A new thread of this process (a handful of threads, far below glibc's eight arenas
        // a core) allocates from an arena of its own, not from `[heap]`.
        std::thread::spawn(|| {
            let advice = advise_thread_heap().unwrap();
            let HeapAdvice::Advised { bytes, ahead } = advice else {
                panic!("a thread's heap not advised: {advice:?}");
            };
            assert!(ahead >= HEAP_AHEAD / 2, "{advice:?}");
            assert!(bytes >= ahead, "{advice:?}");
            // Entries made now come from the marked heap (all but the few that glibc's
            // per-thread cache may hand back from chunks of other arenas this thread freed).
            let entries: Vec<Vec<u8>> = (0..1000).map(|_| vec![7u8; 24]).collect();
            let marked = entries
                .iter()
                .filter(|e| {
                    let (flags, end) = smaps_of(e.as_ptr().addr());
                    let hg = flags.split_ascii_whitespace().any(|f| f == "hg");
                    hg && end - e.as_ptr().addr() >= HEAP_AHEAD / 2
                })
                .count();
            assert!(marked >= 990, "{marked} of 1000 entries on the marked heap");
            // A second call finds the heap extended and allocates nothing new.
            assert!(matches!(
                advise_thread_heap(),
                Ok(HeapAdvice::Advised { .. })
            ));
            // Small entries leave the advice; the first large one turns it off.
            let flags = |at: usize| smaps_of(at).0;
            let has = |at: usize, flag: &str| flags(at).split_ascii_whitespace().any(|f| f == flag);
            let at = entries[500].as_ptr().addr();
            note_entry(LARGE_ENTRY - 1);
            assert!(has(at, "hg"), "{}", flags(at));
            note_entry(LARGE_ENTRY);
            assert!(has(at, "nh") && !has(at, "hg"), "{}", flags(at));
        })
        .join()
        .unwrap();
    }
}
