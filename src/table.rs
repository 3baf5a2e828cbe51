//! The concurrent hash table: a fixed number of buckets, each a hash table of pairs behind its
//! own reader-writer lock, generic over key, value and hasher.
//!
//! Operations on different buckets never block each other; reads of one bucket run in parallel.
//! Besides the plain `insert`/`get`/`remove`, the table hands out guards that hold a key's
//! bucket lock: [`Table::lock_key`] write-locks it ([`KeyWrite`]) and [`Table::read_key`]
//! read-locks it ([`KeyRead`]). The server takes one while it still holds its client's ring,
//! which is how same-key operations of a client keep their order (see design.md, "The ordering
//! guarantee"); it then does the operation through the guard.
//!
//! A key is hashed once per operation: the one 64-bit hash picks the bucket and finds the key
//! inside the bucket's table (hashbrown's `HashTable`, the table behind std's `HashMap`), and
//! a guard keeps it for every step of the operation. A replace through a guard swaps the pair
//! in its slot: one lookup, no remove and insert. A bucket's table works with 15 bits of the
//! hash (the key's [`tag`]), enough for the small share of keys one bucket holds; a key type
//! that keeps its tag (the store's entries keep it in their pointer) lets a growing bucket
//! re-hash its pairs without reading their keys ([`Table::with_stored_tags`]).
//!
//! Lookups take the key in any borrowed form, as `HashMap`'s do: a `Table<String, _>` is
//! searched with a `&str`, a table of byte-string entries with a `&[u8]`. The borrowed form
//! must hash and compare exactly like the key (the [`Borrow`] contract), since the bucket is
//! chosen from its hash.

use crate::sync::{AtomicU64, AtomicUsize, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard};
use hashbrown::HashTable;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// The default hasher: foldhash's fast, randomly seeded hasher.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// The most buckets a table may have (2²⁴, about 1 GiB of bucket headers).
pub const MAX_BUCKETS: usize = 1 << 24;

/// Why a table could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// A table needs at least one bucket.
    ZeroBuckets,
    /// More buckets than [`MAX_BUCKETS`].
    TooManyBuckets {
        /// Asked for.
        asked: usize,
    },
    /// The bucket array could not be allocated.
    OutOfMemory {
        /// Asked for.
        asked: usize,
    },
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::ZeroBuckets => f.write_str("a table needs at least 1 bucket"),
            TableError::TooManyBuckets { asked } => {
                write!(f, "{asked} buckets is more than the limit of {MAX_BUCKETS}")
            }
            TableError::OutOfMemory { asked } => {
                write!(f, "cannot allocate {asked} buckets: out of memory")
            }
        }
    }
}

impl std::error::Error for TableError {}

/// Whether a table may have `buckets` buckets (1 to [`MAX_BUCKETS`]).
fn check_bucket_count(buckets: usize) -> Result<(), TableError> {
    if buckets == 0 {
        return Err(TableError::ZeroBuckets);
    }
    if buckets > MAX_BUCKETS {
        return Err(TableError::TooManyBuckets { asked: buckets });
    }
    Ok(())
}

/// One bucket on its own cache line, so that locking one bucket does not slow its neighbours:
/// its lock and table, and a [layout hint](layout_hint) for [`Table::prefetch_slots`].
#[repr(align(64))]
struct Bucket<K, V>(RwLock<HashTable<(K, V)>>, AtomicU64);

impl<K, V> Bucket<K, V> {
    fn new() -> Self {
        Self(RwLock::new(HashTable::new()), AtomicU64::new(0))
    }

    /// Renew the layout hint after `map` (this bucket's table, write-locked) may have grown.
    fn renew_hint(&self, map: &HashTable<(K, V)>) {
        let log2 = u64::from(map.num_buckets().trailing_zeros());
        let hint = self.1.load(Ordering::Relaxed);
        if hint == 0 || hint >> HINT_SHIFT != log2 {
            self.1.store(layout_hint(map), Ordering::Relaxed);
        }
    }
}

/// Where log2 of the slot count starts in a layout hint: above the address bits (a user-space
/// address on 64-bit Linux is below 2⁴⁸).
const HINT_SHIFT: u32 = 48;
/// The address bits of a layout hint.
const HINT_ADDRESS: u64 = (1 << HINT_SHIFT) - 1;

/// Where a bucket's table keeps its control bytes, and how many slots it has, packed as the
/// control bytes' address (bits 0 to 47) with log2 of the slot count above it (0: no hint).
///
/// A hint read without the bucket's lock only says where to *prefetch* ([`prefetch`]), never
/// what to read: hashbrown keeps a table's control bytes after its slots, slot `i` at
/// `ctrl - (i + 1) * size_of::<T>()` (found from any full slot's address; an implementation
/// detail of hashbrown checked by a test here, which only a slower lookup would show).
/// An empty table, one of zero-sized pairs, or one above 2⁴⁸ has no hint.
fn layout_hint<T>(map: &HashTable<T>) -> u64 {
    let size = std::mem::size_of::<T>();
    let Some(i) = map.iter_buckets().next() else {
        return 0;
    };
    let Some(pair) = map.get_bucket(i) else {
        return 0;
    };
    let ctrl = (std::ptr::from_ref(pair).addr()).wrapping_add((i + 1) * size) as u64;
    if size == 0 || ctrl & !HINT_ADDRESS != 0 {
        return 0;
    }
    ctrl | u64::from(map.num_buckets().trailing_zeros()) << HINT_SHIFT
}

/// A key's hash by a table's hasher ([`Table::hash_key`]), taken once and given to the
/// table's prefetches and lookups of that key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

/// A concurrent hash table with one reader-writer lock per bucket.
///
/// ```
/// # shmkv::__unless_loom! {
/// use shmkv::table::Table;
/// let t: Table<String, u32> = Table::new(16).unwrap();
/// assert_eq!(t.insert("a".into(), 1), None);
/// assert_eq!(t.insert("a".into(), 2), Some(1));
/// assert_eq!(t.get("a"), Some(2)); // looked up as a &str
/// let mut g = t.lock_key("b"); // write-locks the bucket of "b"
/// assert_eq!(g.insert("b".into(), 3), None);
/// assert_eq!(g.remove_entry(), Some(("b".to_string(), 3)));
/// drop(g);
/// assert_eq!(t.remove("a"), Some(2));
/// assert!(t.is_empty());
/// # }
/// ```
pub struct Table<K, V, S = DefaultHashBuilder> {
    buckets: Box<[Bucket<K, V>]>,
    hasher: S,
    len: AtomicUsize,
    /// Where a key keeps its [`tag`], if it does (see [`Table::with_stored_tags`]).
    stored: Option<fn(&K) -> Option<u16>>,
}

/// The 15 bits of a key's hash that its bucket's table works with (a bucket's table needs
/// few: it holds a small share of the keys). A key type may keep them beside its data, so
/// that a growing bucket re-hashes without reading the keys ([`Table::with_stored_tags`]).
pub const fn tag(hash: u64) -> u16 {
    (hash >> 49) as u16
}

/// The hash a bucket's table is given for a key of tag `tag`: the tag spread over 64 bits (the
/// bucket's table takes its probe position from the low bits and its 7-bit control tag from
/// the top ones).
const fn inner_hash(tag: u16) -> u64 {
    (tag as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<K, V, S> std::fmt::Debug for Table<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("buckets", &self.buckets.len())
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl<K: Hash + Eq, V> Table<K, V, DefaultHashBuilder> {
    /// A table of `buckets` buckets with the default hasher.
    pub fn new(buckets: usize) -> Result<Self, TableError> {
        Self::with_hasher(buckets, DefaultHashBuilder::default())
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Table<K, V, S> {
    /// A table of `buckets` buckets (1 to [`MAX_BUCKETS`]) hashing with `hasher`.
    pub fn with_hasher(buckets: usize, hasher: S) -> Result<Self, TableError> {
        check_bucket_count(buckets)?;
        let mut v = Vec::new();
        v.try_reserve_exact(buckets)
            .map_err(|_| TableError::OutOfMemory { asked: buckets })?;
        for _ in 0..buckets {
            v.push(Bucket::new());
        }
        Ok(Self {
            buckets: v.into_boxed_slice(),
            hasher,
            len: AtomicUsize::new(0),
            stored: None,
        })
    }

    /// [`Table::with_hasher`] for keys that keep their [`tag`]: `stored` returns it (`None`:
    /// not kept, the key is hashed again). It must return `tag` of the key's hash by this
    /// table's hasher: a growing bucket re-hashes its keys with it alone, reading no key.
    pub fn with_stored_tags(
        buckets: usize,
        hasher: S,
        stored: fn(&K) -> Option<u16>,
    ) -> Result<Self, TableError> {
        let mut t = Self::with_hasher(buckets, hasher)?;
        t.stored = Some(stored);
        Ok(t)
    }

    /// The hash `key`'s bucket table knows it by (from its stored tag if it keeps one).
    fn inner_of(&self, key: &K) -> u64 {
        let t = self
            .stored
            .and_then(|f| f(key))
            .unwrap_or_else(|| tag(self.hasher.hash_one(key)));
        inner_hash(t)
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket `key` lives in.
    pub fn bucket_of<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.bucket_of_hash(self.hasher.hash_one(key))
    }

    /// The bucket of a key whose hash is `hash`.
    fn bucket_of_hash(&self, hash: u64) -> usize {
        // Scramble first (Fibonacci hashing): the bucket's own table uses the top 7 bits of the
        // same hash as lookup tags, and a range reduction of the raw hash would give every key
        // of a bucket the same top bits (and the same tag).
        let h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Lemire's multiply-shift range reduction: uniform in 0..n without a division.
        ((u128::from(h) * self.buckets.len() as u128) >> 64) as usize
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exclusive access to `key`'s bucket, for operations on `key`. The bucket stays
    /// write-locked until the guard is dropped; every operation through the guard keeps the
    /// table's entry count.
    pub fn lock_key<'q, Q>(&self, key: &'q Q) -> KeyWrite<'_, 'q, K, V, S, Q>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock_hashed(key, self.hash_key(key))
    }

    /// [`Table::lock_key`] with the key's hash already taken: `hash` must be
    /// [`hash_key`](Self::hash_key) of `key` by this table (checked in debug builds; another
    /// hash would look in the wrong place, and an insert through the guard would then make a
    /// second pair for the key).
    pub fn lock_hashed<'q, Q>(&self, key: &'q Q, hash: KeyHash) -> KeyWrite<'_, 'q, K, V, S, Q>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert_eq!(
            hash,
            self.hash_key(key),
            "a KeyHash of another key or table"
        );
        let KeyHash(hash) = hash;
        let bucket = &self.buckets[self.bucket_of_hash(hash)];
        KeyWrite {
            guard: bucket.0.write(),
            bucket,
            hash: inner_hash(tag(hash)),
            tag: tag(hash),
            key,
            table: self,
        }
    }

    /// `key`'s hash by this table's hasher, for [`prefetch_bucket`](Self::prefetch_bucket),
    /// [`prefetch_slots`](Self::prefetch_slots), [`lock_hashed`](Self::lock_hashed) and
    /// [`read_hashed`](Self::read_hashed).
    pub fn hash_key<Q>(&self, key: &Q) -> KeyHash
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        KeyHash(self.hasher.hash_one(key))
    }

    /// Start bringing the key's bucket (its lock, its table's header and layout hint) into
    /// the cache, without waiting: a worker with several requests in hand does this for all of
    /// them first, so that their cache misses overlap instead of following one another.
    pub fn prefetch_bucket(&self, hash: KeyHash) {
        let bucket = &self.buckets[self.bucket_of_hash(hash.0)];
        crate::sync::prefetch(std::ptr::from_ref(bucket).addr());
    }

    /// Start bringing the part of the key's bucket table where a lookup of the key starts (its
    /// first group of control bytes and the first slots they describe) into the cache, from
    /// the bucket's layout hint (best after [`prefetch_bucket`](Self::prefetch_bucket) of the
    /// same key has had time to bring the hint). Takes no lock and reads nothing of the table:
    /// a hint made stale by a concurrent write only wastes the prefetch.
    pub fn prefetch_slots(&self, hash: KeyHash) {
        let bucket = &self.buckets[self.bucket_of_hash(hash.0)];
        let hint = bucket.1.load(Ordering::Relaxed);
        if hint == 0 {
            return;
        }
        // (On a 64-bit target, where the hint has an address, these casts lose nothing.)
        let ctrl = (hint & HINT_ADDRESS) as usize;
        let mask = (1usize << (hint >> HINT_SHIFT)) - 1;
        // hashbrown's first probe position (`h1`: the hash's low bits) for the hash the
        // bucket's table is given.
        let pos = (inner_hash(tag(hash.0)) as usize) & mask;
        let size = std::mem::size_of::<(K, V)>();
        crate::sync::prefetch(ctrl.wrapping_add(pos));
        // Slots pos, pos+1, ... lie below the control bytes, downwards.
        crate::sync::prefetch(ctrl.wrapping_sub((pos + 1) * size));
        crate::sync::prefetch(ctrl.wrapping_sub((pos + 8).min(mask + 1) * size));
    }

    /// Shared access to `key`'s bucket, for reading `key`. The bucket stays read-locked until
    /// the guard is dropped.
    pub fn read_key<'q, Q>(&self, key: &'q Q) -> KeyRead<'_, 'q, K, V, Q>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read_hashed(key, self.hash_key(key))
    }

    /// [`Table::read_key`] with the key's hash already taken (`hash` must be
    /// [`hash_key`](Self::hash_key) of `key` by this table; checked in debug builds).
    pub fn read_hashed<'q, Q>(&self, key: &'q Q, hash: KeyHash) -> KeyRead<'_, 'q, K, V, Q>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert_eq!(
            hash,
            self.hash_key(key),
            "a KeyHash of another key or table"
        );
        let KeyHash(hash) = hash;
        KeyRead {
            guard: self.buckets[self.bucket_of_hash(hash)].0.read(),
            hash: inner_hash(tag(hash)),
            key,
        }
    }

    /// Start bringing the pairs a lookup of the key will compare into the cache: under the
    /// bucket's read lock, held only for this, the pairs whose control byte matches the key's
    /// (found without comparing keys), at the address `at` gives for each (for a key that
    /// points to its bytes, as the store's entries do: the slot itself is already read here).
    /// Best after [`prefetch_slots`](Self::prefetch_slots) of the same key has brought them.
    pub fn prefetch_pairs(&self, hash: KeyHash, at: impl Fn(&(K, V)) -> usize) {
        let map = self.buckets[self.bucket_of_hash(hash.0)].0.read();
        // A search that never finds: its comparison, called for each pair whose control byte
        // matches, only prefetches (hashbrown's probe loop, inlined, instead of an iterator).
        let _ = map.find(inner_hash(tag(hash.0)), |pair| {
            crate::sync::prefetch(at(pair));
            false
        });
    }

    /// Shared access to bucket `index`, or `None` when `index >= bucket_count()`.
    pub fn read_bucket(&self, index: usize) -> Option<BucketRead<'_, K, V>> {
        self.buckets
            .get(index)
            .map(|b| BucketRead { guard: b.0.read() })
    }

    /// Insert or replace; returns the previous value (the key already in the table stays, as
    /// with `HashMap::insert`).
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let hash = self.hasher.hash_one(&key);
        let bucket = &self.buckets[self.bucket_of_hash(hash)];
        let mut guard = bucket.0.write();
        self.insert_into(bucket, &mut guard, inner_hash(tag(hash)), key, value)
    }

    /// Insert `key` (whose bucket-table hash is `hash`) into `bucket`'s table `map` (locked),
    /// or replace its value; returns the previous value.
    fn insert_into(
        &self,
        bucket: &Bucket<K, V>,
        map: &mut HashTable<(K, V)>,
        hash: u64,
        key: K,
        value: V,
    ) -> Option<V> {
        match map.find_mut(hash, |(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                map.insert_unique(hash, (key, value), |(k, _)| self.inner_of(k));
                bucket.renew_hint(map);
                self.len.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The value of `key`, cloned.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read_key(key).get().cloned()
    }

    /// Remove `key`; returns its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock_key(key).remove()
    }

    /// The pairs of bucket `index`, cloned (the Print operation), or `None` when out of range.
    pub fn bucket_entries(&self, index: usize) -> Option<Vec<(K, V)>>
    where
        K: Clone,
        V: Clone,
    {
        self.read_bucket(index).map(|b| b.entries())
    }

    /// Append the keys of bucket `index`, cloned, to `out` (the Scan operation, one bucket per
    /// call and one read lock at a time); false, with `out` unchanged, when out of range.
    pub fn bucket_keys(&self, index: usize, out: &mut Vec<K>) -> bool
    where
        K: Clone,
    {
        match self.read_bucket(index) {
            Some(b) => {
                out.extend(b.keys().cloned());
                true
            }
            None => false,
        }
    }
}

/// A key's write-locked bucket (from [`Table::lock_key`]): any number of operations on that
/// key, each one lookup with the hash taken when the bucket was locked. The lock is released
/// when the guard is dropped.
pub struct KeyWrite<'a, 'q, K, V, S, Q: ?Sized> {
    guard: RwLockWriteGuard<'a, HashTable<(K, V)>>,
    /// The bucket (for its layout hint, renewed after an insert).
    bucket: &'a Bucket<K, V>,
    /// The key's hash as its bucket's table knows it.
    hash: u64,
    /// The key's [`tag`].
    tag: u16,
    key: &'q Q,
    table: &'a Table<K, V, S>,
}

impl<K, V, S, Q> KeyWrite<'_, '_, K, V, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    S: BuildHasher,
    Q: Hash + Eq + ?Sized,
{
    /// The key's value.
    pub fn get(&self) -> Option<&V> {
        self.get_key_value().map(|(_, v)| v)
    }

    /// The key's [`tag`], for a key type that keeps it ([`Table::with_stored_tags`]).
    pub fn tag(&self) -> u16 {
        self.tag
    }

    /// The key as stored and its value.
    pub fn get_key_value(&self) -> Option<(&K, &V)> {
        find(&self.guard, self.hash, self.key)
    }

    /// The key as stored, to change in place what is not its key (a value kept in the key
    /// type, as the store's entries do): what it hashes and compares as must not change.
    pub fn stored_key_mut(&mut self) -> Option<&mut K> {
        let key = self.key;
        let found = self.guard.find_mut(self.hash, |(k, _)| k.borrow() == key);
        found.map(|(k, _)| k)
    }

    /// Insert or replace the value; returns the previous value. On a replace the stored key
    /// stays (as with `HashMap::insert`); [`try_replace`](Self::try_replace) replaces the key too.
    ///
    /// `key` must equal the guard's key (checked in debug builds).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        debug_assert!(key.borrow() == self.key, "a KeyWrite inserts its own key");
        self.table
            .insert_into(self.bucket, &mut self.guard, self.hash, key, value)
    }

    /// Insert the pair, or replace the stored key and value in their slot (one lookup);
    /// returns the pair replaced. When the key is new and the bucket's table must grow but
    /// cannot allocate, nothing changes and the pair is handed back as the error: a full
    /// allocator never aborts the process here.
    ///
    /// `key` must equal the guard's key (checked in debug builds).
    pub fn try_replace(&mut self, key: K, value: V) -> Result<Option<(K, V)>, (K, V)> {
        debug_assert!(key.borrow() == self.key, "a KeyWrite replaces its own key");
        let hash = self.hash;
        let wanted = self.key;
        if let Some(slot) = self.guard.find_mut(hash, |(k, _)| k.borrow() == wanted) {
            return Ok(Some(std::mem::replace(slot, (key, value))));
        }
        self.try_insert_absent(key, value).map(|()| None)
    }

    /// Insert the pair of a key the caller found absent under this guard: no lookup, only a
    /// free slot sought (a create then costs one probe of the table, not three). When the
    /// table must grow but cannot allocate, nothing changes and the pair is handed back.
    ///
    /// `key` must equal the guard's key, and be absent: a second pair for one key would
    /// break the table (both checked in debug builds).
    pub fn try_insert_absent(&mut self, key: K, value: V) -> Result<(), (K, V)> {
        debug_assert!(key.borrow() == self.key, "a KeyWrite inserts its own key");
        debug_assert!(self.get().is_none(), "try_insert_absent of a present key");
        let table = self.table;
        if self
            .guard
            .try_reserve(1, |(k, _)| table.inner_of(k))
            .is_err()
        {
            return Err((key, value));
        }
        self.guard
            .insert_unique(self.hash, (key, value), |(k, _)| table.inner_of(k));
        self.bucket.renew_hint(&self.guard);
        self.table.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Remove the key; returns its value.
    pub fn remove(&mut self) -> Option<V> {
        self.remove_entry().map(|(_, v)| v)
    }

    /// Remove the key; returns the stored key and its value.
    pub fn remove_entry(&mut self) -> Option<(K, V)> {
        let key = self.key;
        let found = self.guard.find_entry(self.hash, |(k, _)| k.borrow() == key);
        let (pair, _) = found.ok()?.remove();
        self.table.len.fetch_sub(1, Ordering::Relaxed);
        Some(pair)
    }
}

/// The pair of `key` (whose hash is `hash`) in a bucket's table.
fn find<'m, K, V, Q>(map: &'m HashTable<(K, V)>, hash: u64, key: &Q) -> Option<(&'m K, &'m V)>
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    map.find(hash, |(k, _)| k.borrow() == key)
        .map(|(k, v)| (k, v))
}

/// A key's read-locked bucket (from [`Table::read_key`]). The lock is released when the guard
/// is dropped.
pub struct KeyRead<'a, 'q, K, V, Q: ?Sized> {
    guard: RwLockReadGuard<'a, HashTable<(K, V)>>,
    hash: u64,
    key: &'q Q,
}

impl<K, V, Q> KeyRead<'_, '_, K, V, Q>
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    /// The key's value.
    pub fn get(&self) -> Option<&V> {
        self.get_key_value().map(|(_, v)| v)
    }

    /// The key as stored and its value.
    pub fn get_key_value(&self) -> Option<(&K, &V)> {
        find(&self.guard, self.hash, self.key)
    }
}

/// A read-locked bucket, by index (from [`Table::read_bucket`]). The lock is released when the
/// guard is dropped.
pub struct BucketRead<'a, K, V> {
    guard: RwLockReadGuard<'a, HashTable<(K, V)>>,
}

impl<K, V> BucketRead<'_, K, V> {
    /// The bucket's pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.guard.iter().map(|(k, v)| (k, v))
    }

    /// The bucket's keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.guard.iter().map(|(k, _)| k)
    }

    /// The bucket's pairs, cloned, in no particular order.
    pub fn entries(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.guard.iter().cloned().collect()
    }

    /// Number of pairs in the bucket.
    pub fn len(&self) -> usize {
        self.guard.len()
    }

    /// True when the bucket is empty.
    pub fn is_empty(&self) -> bool {
        self.guard.is_empty()
    }

    /// How many pairs the bucket's table holds before it must grow (for memory estimates: the
    /// table has about `capacity * 8 / 7` slots, rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.guard.capacity()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn u64_table_basic_operations() {
        let t: Table<u64, u64> = Table::new(7).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.insert(1, 10), None);
        assert!(!t.is_empty());
        assert_eq!(t.insert(1, 11), Some(10));
        assert_eq!(t.insert(2, 20), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&1), Some(11));
        assert_eq!(t.get(&3), None);
        assert_eq!(t.remove(&1), Some(11));
        assert_eq!(t.remove(&1), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn string_keys_and_vec_values() {
        let t: Table<String, Vec<u8>> = Table::new(3).unwrap();
        t.insert("x".to_string(), vec![1, 2]);
        t.insert("y".to_string(), vec![]);
        assert_eq!(t.get("x"), Some(vec![1, 2]));
        assert_eq!(t.remove("y"), Some(vec![]));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn u32_keys() {
        let t: Table<u32, u32> = Table::new(1).unwrap();
        t.insert(u32::MAX, 1);
        assert_eq!(t.get(&u32::MAX), Some(1));
    }

    #[test]
    fn bucket_dump_holds_exactly_its_keys() {
        let t: Table<u64, u64> = Table::new(5).unwrap();
        for k in 0..100 {
            t.insert(k, k * 2);
        }
        let mut seen = HashSet::new();
        for b in 0..5 {
            for (k, v) in t.bucket_entries(b).unwrap() {
                assert_eq!(t.bucket_of(&k), b);
                assert_eq!(v, k * 2);
                assert!(seen.insert(k));
            }
        }
        assert_eq!(seen.len(), 100);
        assert!(t.bucket_entries(5).is_none());
        let sizes: Vec<usize> = (0..5).map(|b| t.read_bucket(b).unwrap().len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.iter().all(|&n| n > 1), "{sizes:?}");
        assert!((0..5).all(|b| !t.read_bucket(b).unwrap().is_empty()));
        let empty: Table<u64, u64> = Table::new(2).unwrap();
        assert!(empty.read_bucket(1).unwrap().is_empty());
        assert_eq!(empty.read_bucket(1).unwrap().len(), 0);
    }

    #[test]
    fn bad_bucket_counts_are_errors() {
        assert_eq!(
            Table::<u64, u64>::new(0).unwrap_err(),
            TableError::ZeroBuckets
        );
        assert!(matches!(
            Table::<u64, u64>::new(MAX_BUCKETS + 1).unwrap_err(),
            TableError::TooManyBuckets { .. }
        ));
    }

    #[test]
    fn key_guards_see_their_key() {
        let t: Table<u64, &str> = Table::new(4).unwrap();
        assert_eq!(t.lock_key(&9).insert(9, "a"), None);
        let g = t.read_key(&9);
        assert_eq!(g.get(), Some(&"a"));
        assert_eq!(g.get_key_value(), Some((&9, &"a")));
        assert_eq!(t.read_key(&10).get(), None);
        drop(g);
        assert_eq!(t.lock_key(&9).get(), Some(&"a"));
        assert_eq!(t.lock_key(&9).get_key_value(), Some((&9, &"a")));
        assert_eq!(t.lock_key(&10).get(), None);
        assert_eq!(t.lock_key(&9).remove(), Some("a"));
        assert_eq!(t.lock_key(&9).remove(), None);
        assert!(t.is_empty());
    }

    /// Several operations through one write guard keep the entry count; lookups by a borrowed
    /// form find owned keys; a replace swaps the stored key too.
    #[test]
    fn one_write_guard_many_operations() {
        let t: Table<String, u32> = Table::new(1).unwrap();
        t.insert("y".to_string(), 2);
        let mut g = t.lock_key("x");
        assert_eq!(g.get(), None);
        assert_eq!(g.insert("x".to_string(), 1), None);
        assert_eq!(g.insert("x".to_string(), 3), Some(1));
        assert_eq!(g.get(), Some(&3));
        assert_eq!(
            g.try_replace("x".to_string(), 4),
            Ok(Some(("x".to_string(), 3)))
        );
        assert_eq!(g.remove_entry(), Some(("x".to_string(), 4)));
        assert_eq!(g.remove_entry(), None);
        assert_eq!(g.try_replace("x".to_string(), 5), Ok(None));
        assert_eq!(g.remove_entry(), Some(("x".to_string(), 5)));
        assert_eq!(g.try_insert_absent("x".to_string(), 6), Ok(()));
        assert_eq!(g.get(), Some(&6));
        drop(g);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("x"), Some(6));
        assert_eq!(t.get("y"), Some(2));
        assert_eq!(t.bucket_of("x"), t.bucket_of(&"x".to_string()));
        let r = t.read_key("x");
        assert_eq!(r.get_key_value(), Some((&"x".to_string(), &6)));
        drop(r);
        let b = t.read_bucket(0).unwrap();
        assert_eq!(b.iter().count(), 2);
        assert!(b.capacity() >= 2);
        drop(b);
        // A slice-keyed lookup of a boxed-slice table.
        let b: Table<Box<[u8]>, ()> = Table::new(8).unwrap();
        b.insert(Box::from(&b"key"[..]), ());
        assert_eq!(b.get(&b"key"[..]), Some(()));
        assert_eq!(b.remove(&b"key"[..]), Some(()));
        assert!(b.is_empty());
    }

    /// A replace keeps the slot's pair apart from the other keys of the bucket, and the table
    /// still finds every key after it grew many times (the growth re-hashes with the table's
    /// hasher, the same hash that picked the bucket).
    #[test]
    fn replaces_and_growth_keep_every_key() {
        let t: Table<u64, u64> = Table::new(2).unwrap();
        for k in 0..2000 {
            assert_eq!(t.lock_key(&k).try_replace(k, k), Ok(None));
        }
        for k in (0..2000).step_by(3) {
            assert_eq!(t.lock_key(&k).try_replace(k, k + 1), Ok(Some((k, k))));
        }
        assert_eq!(t.len(), 2000);
        for k in 0..2000 {
            let want = if k % 3 == 0 { k + 1 } else { k };
            assert_eq!(t.get(&k), Some(want), "key {k}");
        }
    }

    #[test]
    fn bucket_keys_appends_each_bucket() {
        let t: Table<u64, u64> = Table::new(3).unwrap();
        for k in 0..30 {
            t.insert(k, k);
        }
        let mut keys = vec![99];
        for b in 0..3 {
            assert!(t.bucket_keys(b, &mut keys));
        }
        assert!(!t.bucket_keys(3, &mut keys));
        assert_eq!(keys.remove(0), 99);
        keys.sort_unstable();
        assert_eq!(keys, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn threads_on_disjoint_keys() {
        // Keys per thread (fewer under Miri, which interprets every step).
        const K: u64 = if cfg!(miri) { 100 } else { 1000 };
        let t = std::sync::Arc::new(Table::<u64, u64>::new(64).unwrap());
        let hs: Vec<_> = (0..4u64)
            .map(|i| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for k in 0..K {
                        t.insert(i * K + k, k);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(t.len(), 4 * K as usize);
        for i in 0..4u64 {
            for k in 0..K {
                assert_eq!(t.get(&(i * K + k)), Some(k));
            }
        }
    }

    #[test]
    fn bucket_count_limits_and_messages() {
        assert_eq!(check_bucket_count(0), Err(TableError::ZeroBuckets));
        assert_eq!(check_bucket_count(1), Ok(()));
        assert_eq!(check_bucket_count(MAX_BUCKETS), Ok(()));
        assert_eq!(
            check_bucket_count(MAX_BUCKETS + 1),
            Err(TableError::TooManyBuckets {
                asked: MAX_BUCKETS + 1
            })
        );
        assert_eq!(
            TableError::ZeroBuckets.to_string(),
            "a table needs at least 1 bucket"
        );
        assert_eq!(
            TableError::TooManyBuckets { asked: 5 }.to_string(),
            format!("5 buckets is more than the limit of {MAX_BUCKETS}")
        );
        assert_eq!(
            TableError::OutOfMemory { asked: 9 }.to_string(),
            "cannot allocate 9 buckets: out of memory"
        );
        let t: Table<u64, u64> = Table::new(3).unwrap();
        t.insert(1, 1);
        assert_eq!(format!("{t:?}"), "Table { buckets: 3, len: 1 }");
    }

    /// Keys spread evenly over the buckets (a constant or broken bucket function would keep
    /// every operation correct and make the table one long list).
    #[test]
    fn keys_spread_over_the_buckets() {
        let t: Table<u64, u64> = Table::new(64).unwrap();
        let mut counts = [0u32; 64];
        for k in 0..6400u64 {
            let b = t.bucket_of(&k);
            assert!(b < 64);
            counts[b] += 1;
        }
        // 100 expected per bucket (standard deviation about 10).
        assert!(
            counts.iter().all(|&c| (50..=150).contains(&c)),
            "{counts:?}"
        );
    }

    /// The layout hint of a one-bucket table, checked against hashbrown after every insert (its
    /// slot count) and after every growth (every full slot where the hint says slots are). (Fails when a
    /// hashbrown version lays its tables out differently: prefetches would then miss.)
    fn check_layout_hints<K: Hash + Eq + Copy, V: Copy>(pairs: impl Iterator<Item = (K, V)>) {
        let t: Table<K, V> = Table::new(1).unwrap();
        let mut grown = 0;
        for (k, v) in pairs {
            t.insert(k, v);
            let hint = t.buckets[0].1.load(Ordering::Relaxed);
            let map = t.buckets[0].0.read();
            assert_eq!(1 << (hint >> HINT_SHIFT), map.num_buckets(), "slot count");
            if map.num_buckets() == grown {
                continue; // (checked at this size already: keeps the test short under Miri)
            }
            let ctrl = (hint & HINT_ADDRESS) as usize;
            let size = std::mem::size_of::<(K, V)>();
            for i in map.iter_buckets() {
                let at = std::ptr::from_ref(map.get_bucket(i).unwrap()).addr();
                assert_eq!(
                    at,
                    ctrl - (i + 1) * size,
                    "slot {i} of {}",
                    map.num_buckets()
                );
            }
            grown = grown.max(map.num_buckets());
        }
        assert!(
            grown >= 256,
            "the table grew through several sizes ({grown})"
        );
    }

    #[test]
    fn layout_hints_say_where_the_slots_are() {
        // (Fewer under Miri, which is slow: 300 still grow the table to 512 slots.)
        let n = if cfg!(miri) { 300 } else { 3000 };
        check_layout_hints((0..n).map(|k| (k, k)));
        check_layout_hints((0..n as u32).map(|k| (k, ())));
    }

    #[test]
    fn hashed_lookups_find_what_plain_ones_do() {
        let t: Table<u64, u64> = Table::new(8).unwrap();
        for k in 0..100 {
            let h = t.hash_key(&k);
            t.prefetch_bucket(h);
            t.prefetch_slots(h);
            assert_eq!(t.lock_hashed(&k, h).insert(k, k * 2), None);
        }
        for k in 0..100 {
            let h = t.hash_key(&k);
            t.prefetch_slots(h);
            assert_eq!(t.read_hashed(&k, h).get(), Some(&(k * 2)));
            assert_eq!(t.read_key(&k).get(), Some(&(k * 2)));
        }
        assert_eq!(t.read_hashed(&500, t.hash_key(&500)).get(), None);
    }
}
