//! The synchronisation facade: every atomic, cell, lock and thread used by shmkv, from std and
//! parking_lot normally and from [loom](https://docs.rs/loom) under `--cfg loom`.
//!
//! Code above this module never names `std::sync`, `parking_lot` or `loom` directly, so the
//! ring, the wait/wake protocol, the table and the worker loop that the model checker explores
//! are exactly the ones the binaries run (the pattern of tokio's `src/loom/`).
//!
//! The locks here are process-private: they live in the server's (or a client's) own heap and
//! are never placed in shared memory, where they would not work (parking_lot parks waiters in a
//! per-process table).

#[cfg(not(loom))]
mod imp {
    pub use std::sync::Arc;
    pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

    /// Thread spawning and yielding.
    pub mod thread {
        pub use std::thread::{JoinHandle, spawn, yield_now};
    }

    /// Busy-wait hint for spin loops.
    #[inline]
    pub fn spin_hint() {
        std::hint::spin_loop();
    }

    /// Ask the CPU to bring the cache line at `addr` into its caches, without waiting for it.
    /// Any address will do: a prefetch reads nothing the program sees and never faults (an
    /// address that is not mapped, or no longer holds what the caller thought, only costs the
    /// hint its use).
    #[inline]
    pub fn prefetch(addr: usize) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in the target's
        // baseline); the instruction accesses no memory in the program's sense and cannot
        // fault, whatever the address.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(addr));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// Whether cache hints ([`prefetch`] and what builds on it) are worth their cost.
    pub const CACHE_HINTS: bool = true;

    /// A process-private mutex (parking_lot).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(parking_lot::Mutex<T>);
    /// Guard of [`Mutex`].
    pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex.
        pub fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }
        /// Lock, blocking.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
        /// Lock if free.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock()
        }
    }

    /// A process-private condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }
        /// Block until notified (or spuriously woken).
        pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }
        /// Block until notified or `timeout` passes.
        pub fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: std::time::Duration,
        ) -> MutexGuard<'a, T> {
            let _ = self.0.wait_for(&mut guard, timeout);
            guard
        }
        /// Wake every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
        /// Wake one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }
    }

    /// A process-private reader-writer lock (parking_lot): the bucket lock.
    #[derive(Debug, Default)]
    pub struct RwLock<T>(parking_lot::RwLock<T>);
    /// Shared guard of [`RwLock`].
    pub type RwLockReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
    /// Exclusive guard of [`RwLock`].
    pub type RwLockWriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// A new unlocked lock.
        pub fn new(value: T) -> Self {
            Self(parking_lot::RwLock::new(value))
        }
        /// Shared access, blocking.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read()
        }
        /// Exclusive access, blocking.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write()
        }
    }

    /// An `UnsafeCell` with loom's closure API (`with`, `with_mut`), so that loom can track
    /// every access to the cell in the model build.
    #[derive(Debug)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wrap a value.
        pub const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }
        /// Read access through a raw pointer.
        #[inline]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        /// Write access through a raw pointer.
        #[inline]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
mod imp {
    pub use loom::cell::UnsafeCell;
    pub use loom::sync::Arc;
    pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

    /// Thread spawning and yielding (loom's).
    pub mod thread {
        pub use loom::thread::{JoinHandle, spawn, yield_now};
    }

    /// Under loom a spin is a yield, so that the model explores the other threads.
    #[inline]
    pub fn spin_hint() {
        loom::thread::yield_now();
    }

    /// A cache hint: nothing to model.
    #[inline]
    pub fn prefetch(_addr: usize) {}

    /// Whether cache hints are worth their cost: not under loom, where they model nothing
    /// and any lock they take only adds interleavings.
    pub const CACHE_HINTS: bool = false;

    /// A mutex (loom's).
    #[derive(Debug)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);
    /// Guard of [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        /// Lock, blocking.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        /// Lock if free.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
    }

    /// A condition variable (loom's).
    #[derive(Debug)]
    pub struct Condvar(loom::sync::Condvar);

    impl Default for Condvar {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Condvar {
        /// A new condition variable.
        pub fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }
        /// Block until notified.
        pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
        }
        /// Loom has no time: a timed wait is an untimed one, so a model never relies on a
        /// timeout for progress.
        pub fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _timeout: std::time::Duration,
        ) -> MutexGuard<'a, T> {
            self.wait(guard)
        }
        /// Wake every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
        /// Wake one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }
    }

    /// A reader-writer lock (loom's): the bucket lock.
    #[derive(Debug)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);
    /// Shared guard of [`RwLock`].
    pub type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    /// Exclusive guard of [`RwLock`].
    pub type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// A new unlocked lock.
        pub fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }
        /// Shared access, blocking.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }
        /// Exclusive access, blocking.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
    }
}

pub use imp::*;

/// Atomics and a lock that the model checker does not explore, for statistics only.
///
/// They are `std`'s under `--cfg loom` too: what they guard (the lanes' counters and the
/// latency histogram of [`crate::stats`]) orders nothing that the ring, the table or the
/// worker loop relies on, so exploring every counter bump would only slow the models down.
/// Nothing that synchronises may use them.
pub mod unmodeled {
    pub use std::sync::Mutex;
    pub use std::sync::atomic::{AtomicU64, Ordering};
}
