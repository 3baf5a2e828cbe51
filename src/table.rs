//! The concurrent hash table: a fixed number of buckets, each a `HashMap` behind its own
//! reader-writer lock, generic over key, value and hasher.
//!
//! Operations on different buckets never block each other; reads of one bucket run in parallel.
//! Besides the plain `insert`/`get`/`remove`, the table hands out per-key guards
//! ([`Table::lock_key`], [`Table::read_key`]) that hold the key's bucket lock: the server takes
//! one while it still holds its client's ring, which is how same-key operations of a client keep
//! their order (see design.md, "The ordering guarantee").

use crate::sync::{AtomicUsize, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::collections::HashMap;
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

/// One bucket on its own cache line, so that locking one bucket does not slow its neighbours.
#[repr(align(64))]
struct Bucket<K, V, S>(RwLock<HashMap<K, V, S>>);

/// A concurrent hash table with one reader-writer lock per bucket.
///
/// ```
/// # shmkv::__unless_loom! {
/// use shmkv::table::Table;
/// let t: Table<String, u32> = Table::new(16).unwrap();
/// assert_eq!(t.insert("a".into(), 1), None);
/// assert_eq!(t.insert("a".into(), 2), Some(1));
/// assert_eq!(t.get(&"a".to_string()), Some(2));
/// assert_eq!(t.remove(&"a".to_string()), Some(2));
/// assert!(t.is_empty());
/// # }
/// ```
pub struct Table<K, V, S = DefaultHashBuilder> {
    buckets: Box<[Bucket<K, V, S>]>,
    hasher: S,
    len: AtomicUsize,
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

impl<K: Hash + Eq, V, S: BuildHasher + Clone> Table<K, V, S> {
    /// A table of `buckets` buckets (1 to [`MAX_BUCKETS`]) hashing with `hasher`.
    pub fn with_hasher(buckets: usize, hasher: S) -> Result<Self, TableError> {
        check_bucket_count(buckets)?;
        let mut v = Vec::new();
        v.try_reserve_exact(buckets)
            .map_err(|_| TableError::OutOfMemory { asked: buckets })?;
        for _ in 0..buckets {
            v.push(Bucket(RwLock::new(HashMap::with_hasher(hasher.clone()))));
        }
        Ok(Self {
            buckets: v.into_boxed_slice(),
            hasher,
            len: AtomicUsize::new(0),
        })
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket `key` lives in.
    pub fn bucket_of(&self, key: &K) -> usize {
        // Scramble first (Fibonacci hashing): the bucket's own HashMap uses the top 7 bits of the
        // same hash as lookup tags, and a range reduction of the raw hash would give every key
        // of a bucket the same top bits (and the same tag).
        let h = self
            .hasher
            .hash_one(key)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
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

    /// Exclusive access to `key`'s bucket, for one key. The bucket stays locked until the guard
    /// is dropped.
    pub fn lock_key(&self, key: K) -> KeyWrite<'_, K, V, S> {
        let bucket = self.bucket_of(&key);
        KeyWrite {
            guard: self.buckets[bucket].0.write(),
            len: &self.len,
            key,
        }
    }

    /// Shared access to `key`'s bucket, for one key. The bucket stays read-locked until the
    /// guard is dropped.
    pub fn read_key<'a>(&'a self, key: &'a K) -> KeyRead<'a, K, V, S> {
        let bucket = self.bucket_of(key);
        KeyRead {
            guard: self.buckets[bucket].0.read(),
            key,
        }
    }

    /// Shared access to bucket `index`, or `None` when `index >= bucket_count()`.
    pub fn read_bucket(&self, index: usize) -> Option<BucketRead<'_, K, V, S>> {
        self.buckets
            .get(index)
            .map(|b| BucketRead { guard: b.0.read() })
    }

    /// Insert or replace; returns the previous value.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.lock_key(key).insert(value)
    }

    /// The value of `key`, cloned.
    pub fn get(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        self.read_key(key).get().cloned()
    }

    /// Remove `key`; returns its value.
    pub fn remove(&self, key: &K) -> Option<V>
    where
        K: Clone,
    {
        self.lock_key(key.clone()).remove()
    }

    /// The pairs of bucket `index`, cloned (the Print operation), or `None` when out of range.
    pub fn bucket_entries(&self, index: usize) -> Option<Vec<(K, V)>>
    where
        K: Clone,
        V: Clone,
    {
        self.read_bucket(index).map(|b| b.entries())
    }
}

/// A write-locked bucket, bound to one key.
pub struct KeyWrite<'a, K, V, S> {
    guard: RwLockWriteGuard<'a, HashMap<K, V, S>>,
    len: &'a AtomicUsize,
    key: K,
}

impl<K: Hash + Eq, V, S: BuildHasher> KeyWrite<'_, K, V, S> {
    /// Insert or replace the key's value; returns the previous value.
    pub fn insert(mut self, value: V) -> Option<V> {
        let prev = self.guard.insert(self.key, value);
        if prev.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        prev
    }

    /// Remove the key; returns its value.
    pub fn remove(mut self) -> Option<V> {
        let prev = self.guard.remove(&self.key);
        if prev.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        prev
    }

    /// The key's value.
    pub fn get(&self) -> Option<&V> {
        self.guard.get(&self.key)
    }
}

/// A read-locked bucket, bound to one key.
pub struct KeyRead<'a, K, V, S> {
    guard: RwLockReadGuard<'a, HashMap<K, V, S>>,
    key: &'a K,
}

impl<K: Hash + Eq, V, S: BuildHasher> KeyRead<'_, K, V, S> {
    /// The key's value.
    pub fn get(&self) -> Option<&V> {
        self.guard.get(self.key)
    }
}

/// A read-locked bucket.
pub struct BucketRead<'a, K, V, S> {
    guard: RwLockReadGuard<'a, HashMap<K, V, S>>,
}

impl<K: Clone, V: Clone, S> BucketRead<'_, K, V, S> {
    /// The bucket's pairs, cloned, in no particular order.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.guard
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Number of pairs in the bucket.
    pub fn len(&self) -> usize {
        self.guard.len()
    }

    /// True when the bucket is empty.
    pub fn is_empty(&self) -> bool {
        self.guard.is_empty()
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
        assert_eq!(t.get(&"x".to_string()), Some(vec![1, 2]));
        assert_eq!(t.remove(&"y".to_string()), Some(vec![]));
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
        assert_eq!(t.lock_key(9).insert("a"), None);
        let g = t.read_key(&9);
        assert_eq!(g.get(), Some(&"a"));
        drop(g);
        assert_eq!(t.lock_key(9).get(), Some(&"a"));
        assert_eq!(t.lock_key(9).remove(), Some("a"));
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
}
