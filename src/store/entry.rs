//! One entry of the store: a key and its value in one heap allocation behind a thin pointer,
//! so that a bucket's slot holds 8 bytes.
//!
//! The allocation is `[key length: u32][value length: u32][key][value]` (lengths in native
//! byte order), allocated as a byte array (`Layout::array::<u8>`, alignment 1), the layout of a
//! `Vec<u8>` of that capacity: a removed entry's value is handed back in its own allocation
//! ([`Entry::into_value`] moves it down over the header and key) without a copy into a new
//! one. The bytes are written by [`Entry::new`], and afterwards only the value's, in place, by
//! [`Entry::overwrite_value`] (through `&mut`, so never while a reader looks).
//!
//! Why thin: a lookup reads the bucket's control bytes, then the slot, then the entry. With a
//! 16-byte slot (`Box<[u8]>`, pointer and length) the slots of the default table (5000
//! buckets, 100,000 keys) took about 2.5 MB and the slot load was the lookup's costliest miss
//! (docs/tuning.md, 2026-12-01); with 8 bytes they take half.
//!
//! The pointer also carries the key's [`tag`](crate::table::tag) (15 bits of its hash) in
//! its top bits, which a user-space address on a 64-bit Linux leaves free (an address below
//! 2⁴⁸; bit 63 says the tag is there): a bucket's table that grows re-hashes its entries from
//! their slots alone ([`Table::with_stored_tags`](crate::table::Table::with_stored_tags)),
//! without a cache miss on each entry. Every access to the bytes goes through the address
//! with the tag masked off (strict provenance: the pointer is never rebuilt from an integer).

use super::{StoreError, entry_cost};
use std::alloc::{Layout, alloc, dealloc};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

/// Bytes before the key: the key's and the value's length, `u32` each.
pub(super) const HEADER: usize = 8;

/// In a tagged pointer's address: bit 63 set, the tag in bits 48 to 62.
const TAGGED: u64 = 1 << 63;
/// The address bits of a tagged pointer.
const ADDRESS: u64 = (1 << 48) - 1;

/// One entry, owning its allocation (see the [module](self) docs), its pointer tagged where
/// it can be. Hashes, compares and borrows as its key.
pub(super) struct Entry(NonNull<u8>);

// SAFETY: an `Entry` owns its allocation exclusively, as a `Box<[u8]>` does; moving it to
// another thread moves that ownership.
unsafe impl Send for Entry {}
// SAFETY: through `&Entry` the bytes are only read (they are written only by `new` and through
// `&mut Entry`), so shared references from several threads are as sound as `&[u8]`'s.
unsafe impl Sync for Entry {}

impl Entry {
    /// A new entry, allocated fallibly, whose pointer carries `tag` (the low 15 bits) if the
    /// address leaves room: a key or value longer than `u32::MAX` bytes, or a failed
    /// allocation, is [`StoreError::OutOfMemory`].
    pub(super) fn new(key: &[u8], value: &[u8], tag: u16) -> Result<Entry, StoreError> {
        let key_len = u32::try_from(key.len()).map_err(|_| StoreError::OutOfMemory)?;
        let value_len = u32::try_from(value.len()).map_err(|_| StoreError::OutOfMemory)?;
        let total = HEADER
            .checked_add(key.len())
            .and_then(|n| n.checked_add(value.len()))
            .ok_or(StoreError::OutOfMemory)?;
        let layout = Layout::array::<u8>(total).map_err(|_| StoreError::OutOfMemory)?;
        #[cfg(not(loom))]
        crate::hugepage::note_entry(total);
        // SAFETY: `layout` has a non-zero size (at least HEADER bytes).
        let p = NonNull::new(unsafe { alloc(layout) }).ok_or(StoreError::OutOfMemory)?;
        let base = p.as_ptr();
        // SAFETY: `base` is valid for writes of `total` bytes (just allocated with that size);
        // the four copies fill exactly the ranges [0, 4), [4, 8), [8, 8 + key_len) and
        // [8 + key_len, total), from sources that cannot overlap a fresh allocation.
        unsafe {
            ptr::copy_nonoverlapping(key_len.to_ne_bytes().as_ptr(), base, 4);
            ptr::copy_nonoverlapping(value_len.to_ne_bytes().as_ptr(), base.add(4), 4);
            ptr::copy_nonoverlapping(key.as_ptr(), base.add(HEADER), key.len());
            ptr::copy_nonoverlapping(value.as_ptr(), base.add(HEADER + key.len()), value.len());
        }
        let address = base.addr() as u64;
        if usize::BITS == 64 && address & !ADDRESS == 0 {
            let tagged = address | TAGGED | (u64::from(tag & 0x7FFF) << 48);
            let p = base.map_addr(|_| tagged as usize);
            return Ok(Entry(NonNull::new(p).expect("bit 63 is set")));
        }
        Ok(Entry(p))
    }

    /// The key's tag, if the pointer carries it.
    pub(super) fn tag(&self) -> Option<u16> {
        let address = self.0.as_ptr().addr() as u64;
        (address & TAGGED != 0).then_some(((address >> 48) & 0x7FFF) as u16)
    }

    /// Where the entry's bytes start (for a prefetch), without the tag.
    pub(super) fn addr(&self) -> usize {
        self.base().addr()
    }

    /// The allocation's address, without the tag.
    fn base(&self) -> *mut u8 {
        let p = self.0.as_ptr();
        if p.addr() as u64 & TAGGED != 0 {
            p.map_addr(|a| (a as u64 & ADDRESS) as usize)
        } else {
            p
        }
    }

    /// The key's and the value's lengths, from the header.
    fn lens(&self) -> (usize, usize) {
        let mut header = [0u8; HEADER];
        // SAFETY: the allocation starts with HEADER bytes written by `new`, and lives as long
        // as `self`.
        unsafe { ptr::copy_nonoverlapping(self.base(), header.as_mut_ptr(), HEADER) };
        let [a, b, c, d, e, f, g, h] = header;
        (
            u32::from_ne_bytes([a, b, c, d]) as usize,
            u32::from_ne_bytes([e, f, g, h]) as usize,
        )
    }

    /// The whole allocation: header, key and value.
    fn bytes(&self) -> &[u8] {
        let (k, v) = self.lens();
        // SAFETY: the allocation holds HEADER + k + v bytes, all written by `new` and never
        // written again; it is freed only when `self` is dropped, which the borrow prevents
        // while the slice lives.
        unsafe { std::slice::from_raw_parts(self.base(), HEADER + k + v) }
    }

    /// Bytes of the allocation (header, key and value).
    #[cfg(all(test, not(loom)))]
    pub(super) fn allocation_len(&self) -> usize {
        self.bytes().len()
    }

    /// The allocation's bytes (header, key and value).
    #[cfg(all(test, not(loom)))]
    pub(super) fn allocation(&self) -> Vec<u8> {
        self.bytes().to_vec()
    }

    /// The key.
    pub(super) fn key(&self) -> &[u8] {
        let (k, _) = self.lens();
        &self.bytes()[HEADER..HEADER + k]
    }

    /// The value.
    pub(super) fn value(&self) -> &[u8] {
        let (k, _) = self.lens();
        &self.bytes()[HEADER + k..]
    }

    /// Overwrite the value with `value`, of the same length (checked: a different length
    /// panics, as a slice copy would).
    pub(super) fn overwrite_value(&mut self, value: &[u8]) {
        let (k, v) = self.lens();
        assert_eq!(
            v,
            value.len(),
            "an entry's value is overwritten by one as long"
        );
        // SAFETY: the allocation holds HEADER + k + v bytes, of which the last v are the
        // value's; `value` is v bytes and cannot overlap an allocation this entry owns
        // exclusively (`&mut self`: no reader holds a reference into it).
        unsafe {
            let at = self.base().add(HEADER + k);
            ptr::copy_nonoverlapping(value.as_ptr(), at, v);
        }
    }

    /// The value's length, from the header.
    pub(super) fn value_len(&self) -> usize {
        self.lens().1
    }

    /// What this entry is charged ([`entry_cost`]).
    pub(super) fn cost(&self) -> u64 {
        let (k, v) = self.lens();
        entry_cost(k, v)
    }

    /// The value, in the entry's own allocation (moved down over the header and key; no new
    /// allocation).
    pub(super) fn into_value(self) -> Vec<u8> {
        let (k, v) = self.lens();
        let total = HEADER + k + v;
        let me = ManuallyDrop::new(self);
        // SAFETY: the allocation was made by the global allocator with
        // `Layout::array::<u8>(total)`, the layout of a `Vec<u8>` of capacity `total`, and all
        // `total` bytes are initialised; `me` is never dropped, so the `Vec` is its only owner.
        let mut bytes = unsafe { Vec::from_raw_parts(me.base(), total, total) };
        bytes.drain(..HEADER + k);
        bytes
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let total = self.bytes().len();
        let layout = Layout::array::<u8>(total).expect("the layout `new` allocated with");
        // SAFETY: allocated by `new` with exactly this layout (the lengths in the header never
        // change), and not freed before: `into_value` hands the allocation on without
        // dropping `self`.
        unsafe { dealloc(self.base(), layout) }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Exactly as the borrowed form (`[u8]`) hashes, as `Borrow` requires.
        self.key().hash(state);
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key())
            .field("value_len", &self.value().len())
            .finish()
    }
}
