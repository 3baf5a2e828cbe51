//! CPU affinity of the calling thread (`sched_getaffinity`, `sched_setaffinity`): how the
//! server places a worker on its client's CPU while threads outnumber cores (design.md §10a).

/// A set of CPUs, as the kernel's `cpu_set_t` (CPUs `0..CpuSet::SIZE`).
#[derive(Clone, Copy)]
pub struct CpuSet(libc::cpu_set_t);

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpus: Vec<u32> = (0..Self::SIZE).filter(|&c| self.contains(c)).collect();
        f.debug_tuple("CpuSet").field(&cpus).finish()
    }
}

impl CpuSet {
    /// The number of CPUs a set can name.
    pub const SIZE: u32 = libc::CPU_SETSIZE as u32;

    /// The CPUs the calling thread may run on now, or `None` if the kernel does not say.
    pub fn of_this_thread() -> Option<CpuSet> {
        // SAFETY: an all-zero `cpu_set_t` (an array of integers) is a valid, empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`, which
        // we own; pid 0 is the calling thread.
        let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        (r == 0).then_some(CpuSet(set))
    }

    /// The set of CPU `cpu` alone; `None` when `cpu >= SIZE`.
    pub fn only(cpu: u32) -> Option<CpuSet> {
        if cpu >= Self::SIZE {
            return None;
        }
        // SAFETY: as in `of_this_thread`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu < SIZE`, so the bit it sets lies within `set`.
        unsafe { libc::CPU_SET(cpu as usize, &mut set) };
        Some(CpuSet(set))
    }

    /// Whether `cpu` is in the set (never for `cpu >= SIZE`).
    pub fn contains(&self, cpu: u32) -> bool {
        // SAFETY: `cpu < SIZE` (checked first), so the bit it reads lies within the set.
        cpu < Self::SIZE && unsafe { libc::CPU_ISSET(cpu as usize, &self.0) }
    }

    /// Let the calling thread run on these CPUs only; false when the kernel refuses (a CPU
    /// not online, or outside the thread's cgroup).
    pub fn apply(&self) -> bool {
        // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes of `self.0`, which we own;
        // pid 0 is the calling thread.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.0) == 0 }
    }
}

#[cfg(all(test, not(miri)))] // sched_getaffinity, sched_setaffinity, sched_getcpu
mod tests {
    use super::CpuSet;

    #[test]
    fn a_thread_pinned_to_one_cpu_runs_there_and_is_let_go() {
        std::thread::spawn(|| {
            let all = CpuSet::of_this_thread().expect("the kernel names our CPUs");
            let cpu = (0..CpuSet::SIZE).find(|&c| all.contains(c)).expect("a CPU");
            let one = CpuSet::only(cpu).unwrap();
            assert!(one.contains(cpu) && !one.contains(cpu + 1));
            assert!(one.apply());
            // SAFETY: no arguments; returns -1 on failure.
            assert_eq!(unsafe { libc::sched_getcpu() }, cpu as i32);
            let now = CpuSet::of_this_thread().unwrap();
            assert!((0..CpuSet::SIZE).all(|c| now.contains(c) == (c == cpu)));
            assert!(all.apply());
            let back = CpuSet::of_this_thread().unwrap();
            assert!((0..CpuSet::SIZE).all(|c| back.contains(c) == all.contains(c)));
        })
        .join()
        .unwrap();
        assert!(CpuSet::only(CpuSet::SIZE).is_none());
    }
}
