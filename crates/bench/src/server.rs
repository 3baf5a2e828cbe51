//! The `shmkv-server` child (started, checked ready, stopped), the CPU and memory accounting
//! of processes, and the two reports about the server's footprint: memory per entry and CPU
//! while idle.

use crate::modes::drive;
use crate::report::fmt_ns;
use crate::workload::{key_bytes, key_of, value_bytes};
use shmkv::client::{Client, ClientConfig, Outcome};
use shmkv::wire::Op;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// How long a starting server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `--spin` of the servers this process starts (on, off), set once by the bench's
/// command line.
static SPIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Start the servers of this process with `--spin spin`.
pub fn set_spin(spin: &str) {
    let _ = SPIN.set(spin.to_string());
}

/// A running shmkv-server child; stopped (SIGTERM, then SIGKILL) on drop.
pub struct ServerChild {
    name: String,
    child: Child,
}

/// The shmkv-server binary: `explicit`, or the one next to this executable (built with cargo
/// if it is missing or older than this one).
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no directory for this executable")?;
    let sibling = dir.join("shmkv-server");
    let fresh = |p: &Path| {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(p), m(&me)), (Some(a), Some(b)) if a >= b)
    };
    if !fresh(&sibling) {
        // `cargo run --bin shmkv-bench` builds only this binary: build the server too.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = dir.ends_with("release");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--bin",
            "shmkv-server",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/Cargo.toml"));
        if release {
            cmd.arg("--release");
        }
        let st = cmd
            .status()
            .map_err(|e| format!("cannot run cargo to build shmkv-server: {e}"))?;
        if !st.success() || !sibling.exists() {
            return Err(format!(
                "shmkv-server not found at {} (build it with: cargo build --release)",
                sibling.display()
            ));
        }
    }
    Ok(sibling)
}

/// Wait up to `limit` for `child` to exit; its status if it did.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
            _ => return None,
        }
    }
}

impl ServerChild {
    /// Start `bin` as a server named `name` and wait until it says it is ready. A server that
    /// exits, prints something else or stays silent is a one-line error (its own messages,
    /// if any, are on stderr above it).
    pub fn start(
        bin: &Path,
        name: &str,
        buckets: usize,
        clients: usize,
        threads: u32,
        max_value: u64,
    ) -> Result<ServerChild, String> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin);
        cmd.args([
            "--max-value",
            &max_value.max(1 << 20).to_string(),
            "--buckets",
            &buckets.to_string(),
            "--clients",
            &clients.to_string(),
            "--threads",
            &threads.to_string(),
            "--name",
            name,
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        // Not when on (the server's default): a server binary older than the option (an A/B
        // run's) still starts.
        if let Some(spin) = SPIN.get().filter(|s| *s != "on") {
            cmd.args(["--spin", spin]);
        }
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe; nothing else runs between
        // fork and exec. It makes the server stop (SIGTERM: graceful) if the bench dies.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start shmkv-server {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let why = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) if line.contains("ready") => {
                return Ok(ServerChild {
                    name: name.to_string(),
                    child,
                });
            }
            Ok(Some(Ok(line))) => format!("it printed {line:?} where it says it is ready"),
            Ok(Some(Err(e))) => format!("its output could not be read ({e})"),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                "it closed its output without saying it is ready".to_string()
            }
            Err(RecvTimeoutError::Timeout) => format!(
                "it did not say it is ready within {} s",
                READY_TIMEOUT.as_secs()
            ),
        };
        Err(match exit_within(&mut child, Duration::from_secs(1)) {
            Some(st) => format!(
                "shmkv-server {} exited before it was ready ({st}): {why}",
                bin.display()
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                format!(
                    "shmkv-server {} did not start: {why} (it was killed)",
                    bin.display()
                )
            }
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ask the server to quit and wait until it has exited successfully.
    pub fn stop(mut self) -> Result<(), String> {
        let c = Client::connect(&ClientConfig::new(&self.name)).map_err(|e| e.to_string())?;
        c.quit().map_err(|e| e.to_string())?;
        drop(c);
        match exit_within(&mut self.child, Duration::from_secs(10)) {
            Some(st) if st.success() => Ok(()),
            Some(st) => Err(format!("shmkv-server exited with {st}")),
            None => Err("shmkv-server did not exit after quit".into()),
        }
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if exit_within(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// CPU time (user + system) of this process so far, in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    // SAFETY: rusage is a plain C struct; all zeroes is a valid value of it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    // SAFETY: timespec is a plain C struct; all zeroes is a valid value of it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of process `pid` in nanoseconds: the sum of its live threads' run time from
/// `/proc/<pid>/task/*/schedstat` (nanosecond resolution; threads that already exited are
/// not counted: see [`pid_cpu_ns_all`]).
pub fn pid_cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of process `pid` in nanoseconds, threads that have exited included: user +
/// system time from `/proc/<pid>/stat` (clock-tick resolution, 10 ms here). A session's
/// worker threads exit when its client leaves, so a run's server time is taken this way;
/// [`pid_cpu_ns`] (live threads, nanoseconds) serves the idle measurement, whose sessions
/// stay open.
pub fn pid_cpu_ns_all(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // "pid (comm) S ppid ...": utime and stime are fields 14 and 15, 11 and 12 after ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (ticks(11) + ticks(12)) * 1_000_000_000 / hz
}

/// Resident private memory of process `pid` in bytes (`RssAnon`: its heap and stacks; the
/// session objects' pages, shared with the clients, are `RssShmem` and not counted).
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Insert `keys` entries of 16-byte keys and 16-byte values into a fresh server (`window`
/// in flight) and report the table's bytes per entry (growth of the server's resident
/// memory, bucket headers included) next to the server's own accounting, and each client
/// object's size.
pub fn memory_report(bin: &Path, keys: u64, window: usize) -> Result<(), String> {
    let name = format!("bench-{}-mem", std::process::id());
    // The server's default bucket count: the map of a bucket grows by doubling, so the
    // bytes per entry depend on the entries per bucket (see the store module's docs).
    let buckets = shmkv::server::ServerConfig::default().buckets;
    let server = ServerChild::start(bin, &name, buckets, 1, 1, 0)?;
    let client = Client::connect(&ClientConfig::new(&name)).map_err(|e| e.to_string())?;
    let before = rss_bytes(server.pid());
    let ops: Vec<Op> = (0..keys)
        .map(|i| {
            let mut key = key_bytes(i);
            key.extend_from_slice(&i.to_le_bytes());
            Op::Insert {
                key,
                value: value_bytes(key_of(i), 16),
            }
        })
        .collect();
    drive(&client, &ops, window.max(1), None)?;
    let after = rss_bytes(server.pid());
    let accounted = client.stats().map_err(|e| e.to_string())?.memory_used;
    let info = *client.info();
    drop(client);
    server.stop()?;
    let n = keys as f64;
    let per = after.saturating_sub(before) as f64 / n;
    let obj = shmkv::channel::object_len(info.req_capacity, info.resp_capacity);
    println!(
        "\nmemory: {keys} entries of 16-byte keys and 16-byte values in {buckets} buckets grew the server's private resident memory (RssAnon) by {:.1} MiB: {per:.1} bytes per entry (bucket headers included; the server accounts {:.1}); each client object (keys up to {} bytes, values up to {} bytes) is {obj} bytes of virtual memory",
        after.saturating_sub(before) as f64 / (1 << 20) as f64,
        accounted as f64 / n,
        info.limits.max_key,
        info.limits.max_value,
    );
    Ok(())
}

/// CPU used, over two seconds, by a server with two connected idle clients, and by a
/// client waiting for an answer that does not come (the server is stopped with SIGSTOP);
/// then how fast that answer arrives once the server continues.
pub fn idle_report(bin: &Path) -> Result<(), String> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let name = format!("bench-{}-idle", std::process::id());
    let server = ServerChild::start(bin, &name, 1024, 2, 4, 0)?;
    // `a` waits on a stopped server for longer than the default 1 s client timeout.
    let mut patient = ClientConfig::new(&name);
    patient.timeout = Duration::from_secs(30);
    let a = Client::connect(&patient).map_err(|e| e.to_string())?;
    let b = Client::connect(&ClientConfig::new(&name)).map_err(|e| e.to_string())?;
    a.insert(b"1", b"1").map_err(|e| e.to_string())?;
    b.read(b"1").map_err(|e| e.to_string())?;
    let window = Duration::from_secs(2);
    let s0 = pid_cpu_ns(server.pid());
    std::thread::sleep(window);
    let server_idle = (pid_cpu_ns(server.pid()) - s0) as f64 / window.as_nanos() as f64;
    // A client blocked on a slow answer: stop the server, wait, measure our own CPU.
    let pid = Pid::from_raw(server.pid() as i32);
    kill(pid, Signal::SIGSTOP).map_err(|e| e.to_string())?;
    // The signal is delivered asynchronously: wait until every server thread is stopped.
    let end = Instant::now() + Duration::from_secs(5);
    while !all_stopped(server.pid()) {
        if Instant::now() > end {
            return Err("idle check: the server did not stop on SIGSTOP".into());
        }
        std::thread::yield_now();
    }
    let t = a
        .submit(Op::Read { key: b"1".to_vec() })
        .map_err(|e| e.to_string())?;
    let waiter = std::thread::spawn(move || {
        let c0 = thread_cpu_ns();
        let r = a.wait(t);
        (r, thread_cpu_ns() - c0, Instant::now())
    });
    std::thread::sleep(window);
    let resumed = Instant::now();
    kill(pid, Signal::SIGCONT).map_err(|e| e.to_string())?;
    let (r, cpu, answered) = waiter.join().map_err(|_| "waiter panicked".to_string())?;
    let got = r.map_err(|e| e.to_string())?;
    if got != Outcome::Value(b"1".to_vec()) {
        return Err(format!("idle check: wrong answer {got:?}"));
    }
    let waited = answered.duration_since(resumed);
    drop(b);
    server.stop()?;
    println!(
        "idle: server with 2 idle clients used {:.2}% of one core; a client waiting {:.0} s for an answer used {:.2}% of one core, and got it {} after the server resumed",
        server_idle * 100.0,
        window.as_secs_f64(),
        cpu as f64 / (window.as_nanos() as f64) * 100.0,
        fmt_ns(waited.as_nanos() as u64)
    );
    Ok(())
}

/// Whether every thread of process `pid` is stopped (state T in `/proc/<pid>/task/*/stat`).
fn all_stopped(pid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.filter_map(|e| e.ok()).all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.trim_start().chars().next())
            })
            .is_some_and(|c| c == 'T' || c == 't')
    })
}
