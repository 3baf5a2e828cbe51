//! The limit child: map the parent's object, answer the ping-pong, then the request ring
//! from a map of the run's keys.

use super::ring::{Consumer, Producer};
use super::shm::{FAILED_AT, Layout, MAGIC, MAGIC_AT, MAX_CAP, PING_AT, PING_DONE, READY_AT, Shm};
use super::watch::{Halt, Peer, Watch};
use crate::workload::{key_of, value_of};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The limit child (`--limit-child FD:CAP:KEYS:PARENT:LIFETIME`): map the parent's object,
/// fill a map with the run's keys, answer the ping-pong, then the request ring, until the
/// parent says stop.
pub fn run_child(spec: &str) -> ExitCode {
    let f: Vec<&str> = spec.split(':').collect();
    let parsed = (|| {
        Some((
            f.first()?.parse::<RawFd>().ok()?,
            f.get(1)?.parse::<u64>().ok()?,
            f.get(2)?.parse::<u64>().ok()?,
            f.get(3)?.parse::<i32>().ok()?,
            f.get(4)?.parse::<f64>().ok()?,
        ))
    })();
    let Some((fd, cap, keys, parent, lifetime)) = parsed else {
        eprintln!("shmkv-bench: bad --limit-child spec");
        return ExitCode::from(2);
    };
    match child(fd, cap, keys, parent, lifetime) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmkv-bench limit child: {e}");
            ExitCode::from(1)
        }
    }
}

fn child(fd: RawFd, cap: u64, keys: u64, parent: i32, lifetime: f64) -> Result<(), String> {
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err("the parent went away before the start".into());
    }
    if !cap.is_power_of_two() || !(2..=MAX_CAP).contains(&cap) || keys == 0 || fd < 3 {
        return Err(format!(
            "bad parameters: fd {fd}, ring of {cap}, {keys} keys"
        ));
    }
    let deadline = Duration::try_from_secs_f64(lifetime)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
        .ok_or("bad lifetime")?;
    let layout = Layout::new(cap);
    // The descriptor must be open, and the object exactly the size of the layout.
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
        .map_err(|e| format!("descriptor {fd}: {e}"))?;
    // SAFETY: `fd` is open (checked just above) and was handed to this process by the parent
    // for this alone: nothing else in this process owns or closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| format!("fstat: {e}"))?;
    if st.st_size != layout.len as libc::off_t || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return Err(format!(
            "the shared object is {} bytes (mode {:o}), not the {} of a ring of {cap}",
            st.st_size, st.st_mode, layout.len
        ));
    }
    let shm = Shm::map(&fd, layout.len)?;
    drop(fd);
    let failed = |e: String| {
        shm.word(FAILED_AT).store(1, Ordering::Release);
        e
    };
    if shm.word(MAGIC_AT).load(Ordering::Acquire) != MAGIC {
        return Err(failed("the shared object is not the parent's".into()));
    }
    let map: HashMap<u64, u64> = (0..keys)
        .map(|i| (key_of(i), value_of(key_of(i))))
        .collect();
    shm.word(READY_AT).store(1, Ordering::Release);
    let watch = Watch {
        shm: &shm,
        deadline,
        peer: Peer::Parent(parent),
        what: "the limit child",
    };
    match serve(&shm, layout, &map, &watch) {
        Ok(()) | Err(Halt::Stop) => Ok(()),
        Err(Halt::Fail(e)) => Err(failed(e)),
    }
}

/// The child's work: answer the ping-pong until [`PING_DONE`], then answer requests from
/// the map until stopped.
fn serve(
    shm: &Shm,
    layout: Layout,
    map: &HashMap<u64, u64>,
    watch: &Watch<'_>,
) -> Result<(), Halt> {
    let w = shm.word(PING_AT);
    let mut last = 0u64;
    loop {
        let mut v = 0;
        watch.spin_until(|| {
            v = w.load(Ordering::Acquire);
            Ok(v % 2 == 1 && v != last)
        })?;
        if v == PING_DONE {
            break;
        }
        w.store(v + 1, Ordering::Release);
        last = v;
    }
    let mut rx = Consumer::new(shm, layout.req);
    let mut tx = Producer::new(shm, layout.resp);
    loop {
        let mut n = 0;
        watch.spin_until(|| {
            n = rx.available()?;
            Ok(n > 0)
        })?;
        for _ in 0..n {
            let (tag, key) = rx.read();
            let value = map.get(&key).copied().unwrap_or(0);
            if !tx.push(tag, value)? {
                // The parent keeps fewer in flight than the ring holds; wait all the same.
                tx.publish();
                watch.spin_until(|| tx.push(tag, value))?;
            }
        }
        rx.release();
        tx.publish();
    }
}
