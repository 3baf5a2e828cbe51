//! The served table of byte strings: keys and values are byte strings, every entry is one heap
//! allocation, and the entries' memory is counted against a budget.
//!
//! # Entries
//!
//! An entry (`store/entry.rs`) is one allocation laid out as `[key length: u32][value length:
//! u32][key][value]` behind a thin pointer, stored as the key of a
//! [`Table<Entry, ()>`](Table): a bucket's slot is that pointer (8 bytes), and the key and
//! value share the allocation. An entry hashes and compares by its key bytes only and borrows
//! as its key (`&[u8]`), so lookups take the key without building an entry. Replacing a value
//! puts the new entry in the old one's slot ([`KeyWrite::try_replace`], one lookup), and the
//! old entry, with its allocation, is freed; a value as long as the old one is written over it
//! in place. A key found absent is inserted without another lookup
//! ([`KeyWrite::try_insert_absent`]).
//!
//! The store itself limits nothing but memory: key and value lengths (keys `1..=max_key` bytes,
//! values `0..=max_value`) are checked by the protocol's decoder before a request gets here. A
//! key or value must fit the `u32` lengths of the header; a longer one is refused as
//! [`StoreError::OutOfMemory`].
//!
//! # Memory accounting
//!
//! Every entry is charged [`entry_cost`]: the heap chunk that glibc's malloc uses for the
//! entry's allocation plus [`ENTRY_OVERHEAD`], the bucket table's slot and control byte
//! amortised over its load factor. [`Store::memory_used`] is the sum over all entries (the
//! fixed bucket array, about 64 bytes a bucket, is not counted). At 16-byte keys and values an
//! entry is charged 61 bytes. The real heap per entry also depends on how full each bucket's
//! table happens to be, that is on the number of entries per bucket: estimated from the
//! tables' capacities at 200 000 such entries (with the 64-byte bucket headers), it is about
//! 68.7 bytes at 16 entries a bucket, 66.0 at 24, 64.7 at 40, 61.8 at 100 and 60.5 at 200 (a
//! bucket's table doubles when it passes 7, 14, 28, 56, 112 entries). The server's real
//! resident memory per entry is measured by `shmkv-bench`'s memory report.
//!
//! A write that would take the total past the [budget](Store::budget) is refused with
//! [`StoreError::OutOfMemory`] and changes nothing: the increase is reserved (a
//! compare-and-swap on the counter) before anything is allocated, and given back if the
//! allocation fails. A write that keeps or shrinks an entry's cost, and every delete, is always
//! allowed, so a full store can still be read, overwritten in place and emptied. Allocations
//! are fallible (`try_reserve`), so a failing allocator also gives `OutOfMemory` rather than
//! aborting the server.
//!
//! # Guards
//!
//! [`Store::write`] and [`Store::read`] lock the key's bucket and return a guard; the operation
//! is done later through the guard, which is consumed (for a write) and releases the lock. The
//! server takes the guard while it still holds its client's ring, so that same-key operations
//! of one client keep their order.
//!
//! ```
//! # shmkv::__unless_loom! {
//! use shmkv::store::{Store, StoreError};
//! let s = Store::new(16, u64::MAX).unwrap();
//! assert_eq!(s.write(b"k").insert(b"v1").unwrap(), None);
//! assert_eq!(s.write(b"k").insert(b"v2").unwrap(), Some(b"v1".to_vec()));
//! assert_eq!(s.read(b"k").get(), Some(&b"v2"[..]));
//! assert_eq!(s.write(b"n").add(5).unwrap(), 5);
//! assert_eq!(s.write(b"k").add(1), Err(StoreError::NotAnInteger));
//! assert_eq!(s.write(b"k").delete(), Some(b"v2".to_vec()));
//! assert_eq!(s.len(), 1);
//! # }
//! ```

use crate::sync::{AtomicU64, Ordering};
use crate::table::{DefaultHashBuilder, KeyHash, KeyRead, KeyWrite, Table, TableError};
use entry::Entry;

mod entry;

/// What [`Store::prefetch`] brings into the cache, in the order a lookup needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// The key's bucket: its lock, its table's header and layout hint.
    Bucket,
    /// The first control bytes and slots of the key's bucket table.
    Slots,
    /// The entries a lookup of the key will compare (their slots are read under the bucket's
    /// read lock, taken briefly).
    Entries,
}

/// The part of an entry's cost that is not its own allocation: the bucket table's 8-byte slot
/// and 1-byte control byte, divided by the table's load factor (between 7/16 and 7/8 as it
/// grows; 13 bytes is the slot and control byte at a load factor of about 0.7).
pub const ENTRY_OVERHEAD: u64 = 13;

/// What one entry is charged against the budget, in bytes:
///
/// ```text
/// max(round_up(8 + key_len + value_len + 8, 16), 32) + ENTRY_OVERHEAD
/// ```
///
/// The first term is the chunk glibc's malloc uses for the entry's allocation (the 8-byte
/// header of the two lengths, key and value, plus malloc's 8-byte header, in 16-byte steps, at
/// least 32); the second is [`ENTRY_OVERHEAD`]. A 16-byte key with a 16-byte value costs
/// 48 + 13 = 61. Saturates rather than overflowing.
pub const fn entry_cost(key_len: usize, value_len: usize) -> u64 {
    let bytes = (key_len as u64)
        .saturating_add(value_len as u64)
        .saturating_add(8 + 8 + 15);
    if bytes == u64::MAX {
        return u64::MAX;
    }
    let chunk = bytes & !15;
    let chunk = if chunk < 32 { 32 } else { chunk };
    chunk.saturating_add(ENTRY_OVERHEAD)
}

/// Why a write was refused; in every case nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreError {
    /// The write would take the memory in use past the budget, or an allocation failed.
    OutOfMemory,
    /// `add` found a value that is not a canonical decimal `i64`.
    NotAnInteger,
    /// `add`'s result does not fit an `i64`.
    Overflow,
    /// `add`'s result, as text, is longer than the longest value allowed.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreError::OutOfMemory => "out of memory",
            StoreError::NotAnInteger => "the value is not a decimal 64-bit integer",
            StoreError::Overflow => "the result would overflow a 64-bit integer",
            StoreError::TooLong { .. } => "the result is longer than the longest value allowed",
        })
    }
}

impl std::error::Error for StoreError {}

/// The canonical decimal `i64` that `bytes` spells, as Redis reads a number: an optional `-`,
/// then digits without leading zeros (`0` alone is zero), at most 20 bytes, in range; no `+`,
/// no spaces, no `-0`.
fn parse_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 20 {
        return None;
    }
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] => return None,
        [b'0'] if negative => return None,
        [b'0', _, ..] => return None,
        _ => {}
    }
    // Accumulate downwards, so that i64::MIN (one further than i64::MAX) fits.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// `n` in canonical decimal, written at the end of `buf` (20 bytes hold `i64::MIN`).
fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// The served byte-string table with its memory budget. See the [module](self) docs.
pub struct Store {
    table: Table<Entry, ()>,
    /// The sum of [`entry_cost`] over the entries, plus increases reserved by writes in
    /// progress.
    used: AtomicU64,
    budget: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("buckets", &self.bucket_count())
            .field("len", &self.len())
            .field("memory_used", &self.memory_used())
            .field("budget", &self.budget)
            .finish()
    }
}

impl Store {
    /// An empty store of `buckets` buckets (1 to [`MAX_BUCKETS`](crate::table::MAX_BUCKETS))
    /// whose entries may cost at most `budget` bytes in all (`u64::MAX`: unlimited).
    pub fn new(buckets: usize, budget: u64) -> Result<Store, TableError> {
        Ok(Store {
            table: Table::with_stored_tags(buckets, DefaultHashBuilder::default(), Entry::tag)?,
            used: AtomicU64::new(0),
            budget,
        })
    }

    /// Number of buckets (fixed for the store's life).
    pub fn bucket_count(&self) -> usize {
        self.table.bucket_count()
    }

    /// The bucket `key` lives in (what [`print`](Self::print) and [`scan`](Self::scan) number).
    pub fn bucket_of(&self, key: &[u8]) -> usize {
        self.table.bucket_of(key)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.table.len() as u64
    }

    /// True when the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes charged for the entries (see [`entry_cost`]); while a write is in progress it
    /// includes the increase that write reserved.
    pub fn memory_used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The most the entries may cost in all (`u64::MAX`: unlimited).
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The most entries in one bucket, found by visiting the buckets one at a time under their
    /// read locks (a statistic: the buckets may change while it walks).
    pub fn longest_bucket(&self) -> u64 {
        (0..self.bucket_count())
            .filter_map(|b| self.table.read_bucket(b).map(|g| g.len() as u64))
            .max()
            .unwrap_or(0)
    }

    /// Write-lock `key`'s bucket; the operation is done through the guard.
    pub fn write<'a>(&'a self, key: &'a [u8]) -> StoreWrite<'a> {
        self.write_hashed(key, self.key_hash(key))
    }

    /// Read-lock `key`'s bucket; the value is read through the guard.
    pub fn read<'a>(&'a self, key: &'a [u8]) -> StoreRead<'a> {
        self.read_hashed(key, self.key_hash(key))
    }

    /// `key`'s hash, taken once for [`Store::prefetch`] and the `_hashed` guards.
    pub fn key_hash(&self, key: &[u8]) -> KeyHash {
        self.table.hash_key(key)
    }

    /// Start bringing into the cache what a lookup of the key of hash `hash` will read:
    /// [`Prefetch::Bucket`] its bucket (lock and layout hint), then, once that has had time to
    /// arrive, [`Prefetch::Slots`] where the lookup starts in the bucket's table. A worker
    /// holding several requests prefetches every one's bucket, then every one's slots, then
    /// serves them, so that their cache misses overlap (see [`Table::prefetch_slots`]).
    pub fn prefetch(&self, hash: KeyHash, what: Prefetch) {
        match what {
            Prefetch::Bucket => self.table.prefetch_bucket(hash),
            Prefetch::Slots => self.table.prefetch_slots(hash),
            Prefetch::Entries => self.table.prefetch_pairs(hash, |(e, ())| e.addr()),
        }
    }

    /// [`Store::write`] with the key's hash already taken (`hash`: [`Store::key_hash`] of
    /// `key`).
    pub fn write_hashed<'a>(&'a self, key: &'a [u8], hash: KeyHash) -> StoreWrite<'a> {
        StoreWrite {
            bucket: self.table.lock_hashed(key, hash),
            key,
            store: self,
        }
    }

    /// [`Store::read`] with the key's hash already taken (`hash`: [`Store::key_hash`] of
    /// `key`).
    pub fn read_hashed<'a>(&'a self, key: &'a [u8], hash: KeyHash) -> StoreRead<'a> {
        StoreRead {
            bucket: self.table.read_hashed(key, hash),
            key,
        }
    }

    /// The pairs of bucket `bucket`, copied under its read lock, in no particular order (the
    /// Print operation); `None` when there is no such bucket.
    pub fn print(&self, bucket: u64) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let guard = self.table.read_bucket(usize::try_from(bucket).ok()?)?;
        Some(
            guard
                .keys()
                .map(|e| (e.key().to_vec(), e.value().to_vec()))
                .collect(),
        )
    }

    /// One step of a scan (Redis `SCAN`): the keys of the buckets from `cursor` on, and the
    /// cursor of the next step.
    ///
    /// The cursor is a bucket index: 0 starts a scan, and the cursor returned is the first
    /// bucket not yet visited, or 0 when the last bucket has been visited. One call visits
    /// whole buckets, at least one, in order, until it has at least `count` keys or reaches
    /// the end, holding one bucket's read lock at a time. A cursor past the last bucket
    /// returns `(0, [])`.
    ///
    /// The guarantee: since the buckets never change (a key always lives in the same bucket
    /// and the store never rehashes), a full scan (from cursor 0 until it returns 0) returns
    /// every key that was present throughout the scan exactly once, and takes at most
    /// [`bucket_count`](Self::bucket_count) calls. A key inserted or deleted during the scan
    /// may or may not be returned (at most once).
    pub fn scan(&self, cursor: u64, count: u32) -> (u64, Vec<Vec<u8>>) {
        let buckets = self.bucket_count() as u64;
        let mut keys = Vec::new();
        let mut next = cursor;
        while next < buckets {
            if let Some(guard) = self.table.read_bucket(next as usize) {
                keys.extend(guard.keys().map(|e| e.key().to_vec()));
            }
            next += 1;
            if keys.len() >= count as usize {
                break;
            }
        }
        if next >= buckets {
            next = 0;
        }
        (next, keys)
    }

    /// Reserve `bytes` more of the budget, or refuse without changing anything.
    fn charge(&self, bytes: u64) -> Result<(), StoreError> {
        if bytes == 0 {
            return Ok(());
        }
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used
                .checked_add(bytes)
                .filter(|&n| n <= self.budget)
                .ok_or(StoreError::OutOfMemory)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Give back `bytes` of the budget.
    fn credit(&self, bytes: u64) {
        if bytes != 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// A key's write-locked bucket (from [`Store::write`]). Each operation consumes the guard and
/// releases the lock when it returns.
pub struct StoreWrite<'a> {
    bucket: KeyWrite<'a, 'a, Entry, (), DefaultHashBuilder, [u8]>,
    key: &'a [u8],
    store: &'a Store,
}

impl std::fmt::Debug for StoreWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWrite")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl StoreWrite<'_> {
    /// The key's current value.
    pub fn get(&self) -> Option<&[u8]> {
        self.entry().map(Entry::value)
    }

    /// Set the key's value; returns the previous value.
    pub fn insert(self, value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.insert_with(value, |prev| prev.map(<[u8]>::to_vec))
    }

    /// Set the key's value, handing the previous one (if any) to `seen` before it goes, and
    /// return what `seen` returns. A value as long as the previous one is written over it in
    /// place: no allocation, no change to the budget.
    pub fn insert_with<R>(
        mut self,
        value: &[u8],
        seen: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        match self.bucket.stored_key_mut() {
            Some(e) if e.value_len() == value.len() => {
                let r = seen(Some(e.value()));
                e.overwrite_value(value);
                Ok(r)
            }
            Some(_) => {
                let old = self.put(value)?;
                Ok(seen(old.as_ref().map(Entry::value)))
            }
            None => {
                self.create(value)?;
                Ok(seen(None))
            }
        }
    }

    /// Set the key's value only if the key is absent: `None` when it was set, `Some(current)`
    /// when the key exists (nothing changed).
    pub fn insert_new(mut self, value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(current) = self.get() {
            return Ok(Some(current.to_vec()));
        }
        self.create(value)?;
        Ok(None)
    }

    /// Compare and set: when the key's value is `expected` (`None`: the key is absent), set it
    /// to `new` and return `Ok(Ok(()))`; otherwise change nothing and return `Ok(Err(current))`
    /// (`None`: absent). The budget is checked only when the values match.
    pub fn cas(
        mut self,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, StoreError> {
        let current = self.get();
        if current != expected {
            return Ok(Err(current.map(<[u8]>::to_vec)));
        }
        self.put(new)?;
        Ok(Ok(()))
    }

    /// Add `delta` to the key's value read as a decimal integer (Redis `INCRBY`): a missing key
    /// counts as 0, the value must be a canonical decimal `i64` (optional `-`, no `+`, no
    /// leading zeros, no spaces, not `-0`) else [`StoreError::NotAnInteger`], and a result out
    /// of `i64` range is [`StoreError::Overflow`]; on any error nothing changes. The result is
    /// stored as canonical decimal text and returned.
    #[allow(
        clippy::should_implement_trait,
        reason = "the protocol's verb is `add`; this is not `std::ops::Add`"
    )]
    pub fn add(self, delta: i64) -> Result<i64, StoreError> {
        self.add_within(delta, usize::MAX)
    }

    /// [`StoreWrite::add`] whose result's text may be at most `max_len` bytes (the server's
    /// longest value): a longer one is refused with [`StoreError::TooLong`], nothing changed.
    pub fn add_within(mut self, delta: i64, max_len: usize) -> Result<i64, StoreError> {
        let current = match self.get() {
            None => 0,
            Some(v) => parse_i64(v).ok_or(StoreError::NotAnInteger)?,
        };
        let result = current.checked_add(delta).ok_or(StoreError::Overflow)?;
        let mut buf = [0u8; 20];
        let text = format_i64(result, &mut buf);
        if text.len() > max_len {
            return Err(StoreError::TooLong { len: text.len() });
        }
        self.put(text)?;
        Ok(result)
    }

    /// Remove the key; returns its value.
    pub fn delete(mut self) -> Option<Vec<u8>> {
        let (entry, ()) = self.bucket.remove_entry()?;
        self.store.credit(entry.cost());
        Some(entry.into_value())
    }

    /// The key's entry.
    fn entry(&self) -> Option<&Entry> {
        self.bucket.get_key_value().map(|(e, ())| e)
    }

    /// Store `value` for the key, which the caller found absent under this lock (one probe of
    /// the bucket's table, for a free slot). The cost is reserved first and every allocation
    /// is fallible, so on an error nothing changed.
    fn create(&mut self, value: &[u8]) -> Result<(), StoreError> {
        let cost = entry_cost(self.key.len(), value.len());
        self.store.charge(cost)?;
        let inserted = Entry::new(self.key, value, self.bucket.tag()).and_then(|e| {
            (self.bucket.try_insert_absent(e, ())).map_err(|_| StoreError::OutOfMemory)
        });
        if inserted.is_err() {
            self.store.credit(cost);
        }
        inserted
    }

    /// Store `value` for the key, replacing its entry; returns the old entry. Any increase in
    /// cost is reserved first and every allocation is fallible, so on an error nothing changed.
    fn put(&mut self, value: &[u8]) -> Result<Option<Entry>, StoreError> {
        let old_cost = self.entry().map_or(0, Entry::cost);
        let new_cost = entry_cost(self.key.len(), value.len());
        let increase = new_cost.saturating_sub(old_cost);
        self.store.charge(increase)?;
        let entry = match Entry::new(self.key, value, self.bucket.tag()) {
            Ok(e) => e,
            Err(e) => {
                self.store.credit(increase);
                return Err(e);
            }
        };
        // One lookup: the new entry takes the old one's slot, or a new slot when the table has
        // room for it (a table that cannot grow hands the entry back).
        match self.bucket.try_replace(entry, ()) {
            Ok(old) => {
                self.store.credit(old_cost.saturating_sub(new_cost));
                Ok(old.map(|(e, ())| e))
            }
            Err(_) => {
                self.store.credit(increase);
                Err(StoreError::OutOfMemory)
            }
        }
    }
}

/// A key's read-locked bucket (from [`Store::read`]); the lock is released when it is dropped.
pub struct StoreRead<'a> {
    bucket: KeyRead<'a, 'a, Entry, (), [u8]>,
    key: &'a [u8],
}

impl std::fmt::Debug for StoreRead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRead")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl StoreRead<'_> {
    /// The key's value.
    pub fn get(&self) -> Option<&[u8]> {
        self.bucket.get_key_value().map(|(e, ())| e.value())
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
