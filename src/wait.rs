//! Blocking on a 32-bit word: the process-shared Linux futex, a model of it for heap memory and
//! loom, and the spin-then-block policy that decides how long to spin before sleeping.
//!
//! The record ring (see [`crate::record`]) never sleeps on anything but a [`Wake`]
//! implementation, so the same wait/wake protocol runs over the real `futex(2)` system call in
//! the binaries and over a mutex and condition variable from [`crate::sync`] in tests and under
//! loom.

use crate::sync::{AtomicU32, Condvar, Mutex, Ordering};
use std::time::Duration;

/// Sleeping on a 32-bit word until another thread or process changes it and wakes us, with the
/// semantics of Linux's `FUTEX_WAIT`/`FUTEX_WAKE`.
pub trait Wake: Send + Sync {
    /// Block while `word` holds `expected`, for at most `timeout` (`None`: no limit).
    ///
    /// The check of the word and the start of the sleep are one atomic step with respect to
    /// [`Wake::wake`]: a wake issued after the word changed is never lost. The call may return
    /// early (spuriously, on a signal, or on timeout); callers re-check their condition.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>);

    /// Wake every thread blocked in [`Wake::wait`] on `word`.
    fn wake(&self, word: &AtomicU32);
}

/// How long a waiter spins and yields before it sleeps on the futex.
///
/// Spinning costs tens of nanoseconds when the peer runs on another core and hundreds of
/// microseconds when the peer needs the core we spin on; sleeping costs tens of microseconds.
/// A short spin, a few `sched_yield`s (which hand the core to the peer when oversubscribed), then
/// the futex is the compromise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinPolicy {
    /// Iterations of a busy-wait hint before yielding.
    pub spins: u32,
    /// Calls to `yield_now` before sleeping.
    pub yields: u32,
}

impl SpinPolicy {
    /// The default: 2000 spin hints, then 16 yields.
    pub const DEFAULT: SpinPolicy = SpinPolicy {
        spins: 2000,
        yields: 16,
    };
    /// Never spin: go straight to the futex (tests and models; `shmkv-server --spin off`
    /// and `ClientConfig::spin(false)`).
    pub const BLOCK: SpinPolicy = SpinPolicy {
        spins: 0,
        yields: 0,
    };
}

impl Default for SpinPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A futex emulated with a mutex and a condition variable, for rings in heap memory (unit tests,
/// Miri, loom). Under `--cfg loom` the mutex and condition variable are loom's, so the model
/// checker sees every sleep and wake, and reports a lost wake-up as a deadlock.
#[derive(Debug)]
pub struct ModelFutex {
    lock: Mutex<()>,
    cond: Condvar,
}

impl Default for ModelFutex {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelFutex {
    /// A new emulated futex.
    pub fn new() -> Self {
        Self {
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }
}

impl Wake for ModelFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let guard = self.lock.lock();
        // Checked under the lock that `wake` takes: a waker that changed the word before taking
        // the lock is seen here; one that takes the lock later finds us waiting.
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        match timeout {
            Some(t) => drop(self.cond.wait_timeout(guard, t)),
            None => drop(self.cond.wait(guard)),
        }
    }

    fn wake(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock();
        self.cond.notify_all();
    }
}

#[cfg(not(loom))]
pub use sys::SysFutex;

#[cfg(not(loom))]
mod sys {
    use super::Wake;
    use crate::sync::AtomicU32;
    use std::time::Duration;

    /// The Linux futex, process-shared (no `FUTEX_PRIVATE_FLAG`), so that a thread of one
    /// process can sleep on a word in a shared mapping and be woken by another process.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct SysFutex;

    impl Wake for SysFutex {
        fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `word.as_ptr()` points to a live, aligned 32-bit atomic for the duration of
            // the call (we hold a reference to it); FUTEX_WAIT only reads it. `ts_ptr` is null or
            // points to a timespec on our stack that outlives the call. The result (EAGAIN,
            // EINTR, ETIMEDOUT or 0) needs no handling: callers re-check their condition.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT,
                    expected,
                    ts_ptr,
                    std::ptr::null::<u32>(),
                    0u32,
                );
            }
        }

        fn wake(&self, word: &AtomicU32) {
            // SAFETY: `word.as_ptr()` is a live, aligned 32-bit atomic; FUTEX_WAKE does not
            // access memory through the other arguments.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAKE,
                    i32::MAX,
                    std::ptr::null::<libc::timespec>(),
                    std::ptr::null::<u32>(),
                    0u32,
                );
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;
    use std::time::Instant;

    fn wait_returns_when_word_differs(w: &dyn Wake) {
        let word = AtomicU32::new(5);
        let start = Instant::now();
        w.wait(&word, 4, Some(Duration::from_secs(5)));
        assert!(start.elapsed() < Duration::from_secs(4));
    }

    fn wake_releases_waiter<W: Wake + 'static>(w: Arc<W>) {
        let word = Arc::new(AtomicU32::new(0));
        let (w2, word2) = (w.clone(), word.clone());
        let t = std::thread::spawn(move || {
            while word2.load(Ordering::SeqCst) == 0 {
                w2.wait(&word2, 0, Some(Duration::from_secs(10)));
            }
        });
        word.store(1, Ordering::SeqCst);
        w.wake(&word);
        let start = Instant::now();
        t.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(9));
    }

    #[test]
    #[cfg(not(miri))] // futex(2)
    fn sys_futex_semantics() {
        wait_returns_when_word_differs(&SysFutex);
        wake_releases_waiter(Arc::new(SysFutex));
        let word = AtomicU32::new(0);
        let start = Instant::now();
        SysFutex.wait(&word, 0, Some(Duration::from_millis(20)));
        assert!(
            start.elapsed() >= Duration::from_millis(10),
            "timeout honoured"
        );
    }

    #[test]
    fn model_futex_semantics() {
        wait_returns_when_word_differs(&ModelFutex::new());
        wake_releases_waiter(Arc::new(ModelFutex::new()));
    }
}
