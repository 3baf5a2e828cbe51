//! The parent's side: start the limit child, then run the ping-pong and both bare pipes
//! against it.

use super::ring::{Consumer, Producer};
use super::shm::{
    Layout, MAGIC, MAGIC_AT, MAX_CAP, PING_AT, PING_DONE, READY_AT, STOP_AT, Shm, create_object,
};
use super::watch::{Halt, Peer, Watch};
use super::{PingPong, Pipe, warmup};
use crate::modes::{SAMPLE_EVERY, new_hist, ns_since};
use crate::workload::{key_of, value_of};
use hdrhistogram::Histogram;
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The limit child, killed (and reaped) on drop if it is still running.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Wait up to `limit` for `child` to exit.
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(1)),
            _ => return None,
        }
    }
}

/// The ping-pong and both pipes, against one child.
pub(super) fn measure_processes(
    keys: u64,
    depth: usize,
    secs: f64,
) -> Result<(PingPong, Pipe, Pipe), String> {
    use std::os::unix::process::CommandExt;
    let cap = (depth.max(2).next_power_of_two() as u64).min(MAX_CAP);
    let depth = depth.min(cap as usize);
    let layout = Layout::new(cap);
    let fd = create_object(layout.len)?;
    let shm = Shm::map(&fd, layout.len)?;
    shm.word(MAGIC_AT).store(MAGIC, Ordering::Release);
    // The child's lifetime: three baselines and their warm-ups, and a wide margin.
    let lifetime = 3.0 * (secs + 0.1) + 30.0;
    let raw: RawFd = fd.as_raw_fd();
    let spec = format!("{raw}:{cap}:{keys}:{}:{lifetime}", std::process::id());
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(me);
    cmd.args(["--limit-child", &spec])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec only async-signal-safe calls that touch no memory of
    // ours: fcntl clears close-on-exec on the child's copy of the object's descriptor (the
    // parent's keeps it, so no other child inherits it), prctl makes the child die with us.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut peer = ChildGuard(
        cmd.spawn()
            .map_err(|e| format!("limit: cannot start the child: {e}"))?,
    );
    // The child fills its map first: allow for a large key set.
    let ready_by = Instant::now() + Duration::from_secs(30 + keys / 1_000_000 * 2);
    while shm.word(READY_AT).load(Ordering::Acquire) == 0 {
        if let Ok(Some(st)) = peer.0.try_wait() {
            return Err(format!(
                "limit: the child exited before it was ready ({st})"
            ));
        }
        if Instant::now() > ready_by {
            return Err("limit: the child was not ready in time".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let res = (|| -> Result<_, Halt> {
        let child = Peer::Child(peer.0.id() as i32);
        let pp = ping_pong(&shm, child, secs)?;
        let mut tx = Producer::new(&shm, layout.req);
        let mut rx = Consumer::new(&shm, layout.resp);
        let d1 = pipe(&shm, child, (&mut tx, &mut rx), keys, 1, secs)?;
        let dd = pipe(&shm, child, (&mut tx, &mut rx), keys, depth, secs)?;
        Ok((pp, d1, dd))
    })();
    shm.word(STOP_AT).store(1, Ordering::Release);
    let res = res.map_err(Halt::into_message)?;
    match exit_within(&mut peer.0, Duration::from_secs(5)) {
        Some(st) if st.success() => Ok(res),
        Some(st) => Err(format!("limit: the child failed ({st})")),
        None => Err("limit: the child did not stop".into()),
    }
}

/// The ping-pong, parent's side: write odd n, wait for n+1.
fn ping_pong(shm: &Shm, child: Peer, secs: f64) -> Result<PingPong, Halt> {
    let w = shm.word(PING_AT);
    let start = Instant::now();
    let warm_end = start + warmup(secs);
    let end = warm_end + Duration::from_secs_f64(secs);
    let watch = Watch {
        shm,
        deadline: end + Duration::from_secs(5),
        peer: child,
        what: "the ping-pong",
    };
    let mut n = 1u64;
    let mut count = 0u64;
    let mut t0 = start;
    let mut measuring = false;
    loop {
        for _ in 0..256 {
            w.store(n, Ordering::Release);
            watch.spin_until(|| Ok(w.load(Ordering::Acquire) == n + 1))?;
            n += 2;
        }
        count += 256;
        let now = Instant::now();
        if !measuring && now >= warm_end {
            measuring = true;
            count = 0;
            t0 = now;
        } else if measuring && now >= end {
            w.store(PING_DONE, Ordering::Release);
            return Ok(PingPong {
                round_trips: count,
                seconds: now.duration_since(t0).as_secs_f64(),
            });
        }
    }
}

/// A bare pipe, parent's side: keep `depth` requests in flight for `secs` (after a warm-up),
/// refilling as answers arrive; check every answer; time every request at depth 1, every
/// [`SAMPLE_EVERY`]th otherwise.
fn pipe(
    shm: &Shm,
    child: Peer,
    (tx, rx): (&mut Producer<'_>, &mut Consumer<'_>),
    keys: u64,
    depth: usize,
    secs: f64,
) -> Result<Pipe, Halt> {
    let cap = tx.at.cap;
    let mask = cap - 1;
    let every = if depth == 1 { 1 } else { SAMPLE_EVERY as u64 };
    let start = Instant::now();
    let warm_end = start + warmup(secs);
    let end = warm_end + Duration::from_secs_f64(secs);
    let watch = Watch {
        shm,
        deadline: end + Duration::from_secs(5),
        peer: child,
        what: "the bare request/response",
    };
    // Per ring position (mod cap): the value its answer must carry, and when it was sent.
    let mut expect = vec![0u64; cap as usize];
    let mut sent_at = vec![start; cap as usize];
    let mut hist: Histogram<u64> = new_hist();
    let mut key_index = 0u64;
    let mut in_flight = 0usize;
    let (mut ops, mut checked, mut since_clock) = (0u64, 0u64, 0u32);
    let mut t0 = start;
    let mut measuring = false;
    let mut submitting = true;
    let mut last = start;
    loop {
        if submitting && in_flight < depth {
            while in_flight < depth {
                let pos = tx.head;
                let key = key_of(key_index);
                key_index = if key_index + 1 == keys {
                    0
                } else {
                    key_index + 1
                };
                expect[(pos & mask) as usize] = value_of(key);
                if pos % every == 0 {
                    sent_at[(pos & mask) as usize] = Instant::now();
                }
                if !tx.push(pos, key)? {
                    return Err(Halt::Fail("limit: request ring full".into()));
                }
                in_flight += 1;
            }
            tx.publish();
        }
        if in_flight == 0 {
            break;
        }
        let mut n = 0;
        watch.spin_until(|| {
            n = rx.available()?;
            Ok(n > 0)
        })?;
        for _ in 0..n {
            let pos = rx.tail;
            let (tag, value) = rx.read();
            if tag != pos || value != expect[(pos & mask) as usize] {
                return Err(Halt::Fail(format!(
                    "limit: wrong answer at position {pos}: tag {tag}, value {value:#x}, expected {:#x}",
                    expect[(pos & mask) as usize]
                )));
            }
            if pos % every == 0 {
                let _ = hist.record(ns_since(sent_at[(pos & mask) as usize]));
            }
            in_flight -= 1;
            ops += 1;
            checked += 1;
        }
        rx.release();
        since_clock += n as u32;
        if since_clock >= 1024 {
            since_clock = 0;
            let now = Instant::now();
            if !measuring && now >= warm_end {
                measuring = true;
                ops = 0;
                hist.reset();
                t0 = now;
            } else if measuring && now >= end {
                submitting = false;
            }
            last = now;
        }
        if !submitting && in_flight == 0 {
            last = Instant::now();
        }
    }
    Ok(Pipe {
        depth,
        keys,
        ops,
        seconds: last.duration_since(t0).as_secs_f64(),
        sampled_every: every as usize,
        p50_ns: hist.value_at_quantile(0.5),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        checked,
    })
}
