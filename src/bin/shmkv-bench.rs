//! `shmkv-bench`: starts a real `shmkv-server`, runs insert/read/delete/mixed routines in
//! several client modes with the server's worker threads doubling, checks every answer, and
//! reports throughput, latency percentiles and CPU time (optionally against Redis).

// The benchmark needs real shared memory; under `--cfg loom` it is a stub.
#[cfg(loom)]
fn main() {
    eprintln!("built with --cfg loom: the binaries are disabled in model-checking builds");
    std::process::exit(2);
}

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    app::main()
}

#[cfg(not(loom))]
mod app {
    use clap::Parser;
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Serializer as _;
    use serde_json::json;
    use shmkv::client::{Client, ClientConfig, Outcome};
    use shmkv::wire::Op;
    use std::io::{BufRead, BufReader, IsTerminal, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const AFTER_HELP: &str = "\
Each routine runs over a generated key set, in each client mode, against a fresh real
shmkv-server child for each server worker-thread count (1 2 4 8 16 by default). Every answer is
checked (a read must return what was written); a wrong answer fails the run (exit 1).

Routines: insert (all keys), read (all keys), mixed (80% read / 20% insert, uniform keys),
zipf (the same with Zipf(0.99)-skewed keys), delete (all keys). Keys are 8 bytes; values are
--value-size bytes (each size runs every routine; a size of S bytes uses at most
--data-budget / S keys, so that 1 MiB values do not need 100 GB).
Modes: sync (one request at a time), pipelined (a window of --pipeline requests in flight),
threads (--client-threads threads sharing one connection, each synchronous), processes
(--client-processes processes, one connection each, each pipelined).

Examples:
  shmkv-bench                                  the default run (under a minute)
  shmkv-bench --keys 100000 --json out.json --plot out.svg
  shmkv-bench --vs-redis --server-threads 1    side by side with redis-server
  shmkv-bench --value-size 8,64,1024,65536,1048576 --server-threads 1 --modes sync,pipelined

Exit status: 0 all runs correct, 1 a wrong answer or a failed run, 2 bad command line.";

    /// Benchmark shmkv (and optionally Redis) with every answer checked.
    #[derive(Parser, Debug, Clone)]
    #[command(name = "shmkv-bench", version, after_help = AFTER_HELP)]
    struct Args {
        /// Keys in the key set (each routine touches each key once, or does this many ops).
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// Value sizes in bytes, comma separated (suffixes K, M: KiB, MiB).
        #[arg(long, value_delimiter = ',', default_value = "8", value_parser = shmkv::cli::parse_size)]
        value_size: Vec<u64>,
        /// Bytes of values a key set may hold: a value size S uses min(--keys, this / S) keys
        /// (at least 16).
        #[arg(long, default_value = "256M", value_parser = shmkv::cli::parse_size)]
        data_budget: u64,
        /// Server worker-thread counts to run, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
        server_threads: Vec<u32>,
        /// Routines, comma separated (insert,read,mixed,zipf,delete; insert always runs first).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "insert,read,mixed,zipf,delete"
        )]
        routines: Vec<String>,
        /// Modes, comma separated (sync,pipelined,threads,processes).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "sync,pipelined,threads,processes"
        )]
        modes: Vec<String>,
        /// Requests in flight in pipelined modes.
        #[arg(long, default_value_t = 64)]
        pipeline: usize,
        /// Client threads in the threads mode.
        #[arg(long, default_value_t = 4)]
        client_threads: usize,
        /// Client processes in the processes mode.
        #[arg(long, default_value_t = 2)]
        client_processes: usize,
        /// Table buckets of the server.
        #[arg(long, default_value_t = 65_536)]
        buckets: usize,
        /// Write every result as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw throughput against server threads per mode into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Also run the sync and pipelined modes against a real redis-server on a unix socket.
        #[arg(long)]
        vs_redis: bool,
        /// The shmkv-server binary (default: next to this one, built if missing).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// Stop a run after this many seconds (its ops so far count; insert always completes).
        #[arg(long, default_value_t = 5.0)]
        max_seconds: f64,
        /// Keys to insert for the memory report (table bytes per entry); 0 skips it.
        #[arg(long, default_value_t = 1_000_000)]
        memory_keys: u64,
        /// Skip the idle report (server and waiting client CPU while nothing happens).
        #[arg(long)]
        no_idle: bool,
        /// Internal: run as a client process of the processes mode.
        #[arg(long, hide = true)]
        child: Option<String>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Routine {
        Insert,
        Read,
        Mixed,
        Zipf,
        Delete,
    }

    impl Routine {
        fn name(self) -> &'static str {
            match self {
                Routine::Insert => "insert",
                Routine::Read => "read",
                Routine::Mixed => "mixed",
                Routine::Zipf => "zipf",
                Routine::Delete => "delete",
            }
        }
        fn parse(s: &str) -> Option<Routine> {
            Some(match s {
                "insert" => Routine::Insert,
                "read" => Routine::Read,
                "mixed" => Routine::Mixed,
                "zipf" => Routine::Zipf,
                "delete" => Routine::Delete,
                _ => return None,
            })
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Sync,
        Pipelined,
        Threads,
        Processes,
    }

    impl Mode {
        fn name(self) -> &'static str {
            match self {
                Mode::Sync => "sync",
                Mode::Pipelined => "pipelined",
                Mode::Threads => "threads",
                Mode::Processes => "processes",
            }
        }
        fn parse(s: &str) -> Option<Mode> {
            Some(match s {
                "sync" => Mode::Sync,
                "pipelined" => Mode::Pipelined,
                "threads" => Mode::Threads,
                "processes" => Mode::Processes,
                _ => return None,
            })
        }
    }

    /// What one routine works on: how many keys, and how long each value is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct KeySet {
        keys: u64,
        value_size: usize,
    }

    impl KeySet {
        fn new(args: &Args, value_size: u64) -> KeySet {
            let fit = (args.data_budget / value_size.max(1)).max(16);
            KeySet {
                keys: args.keys.min(fit),
                value_size: value_size as usize,
            }
        }
    }

    /// The 8-byte key of index `i`.
    fn key_bytes(i: u64) -> Vec<u8> {
        key_of(i).to_le_bytes().to_vec()
    }

    /// The key's number back from its bytes.
    fn key_number(key: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        let n = key.len().min(8);
        b[..n].copy_from_slice(&key[..n]);
        u64::from_le_bytes(b)
    }

    /// The value every routine stores for `key`, `len` bytes long: its 8-byte pattern
    /// repeated, so that any read can be checked.
    fn value_bytes(key: u64, len: usize) -> Vec<u8> {
        let pat = value_of(key).to_le_bytes();
        (0..len).map(|i| pat[i % 8]).collect()
    }

    /// Whether `v` is the value of `key` for some size (a key set of another size may have
    /// left it).
    fn value_ok(key: u64, v: &[u8]) -> bool {
        let pat = value_of(key).to_le_bytes();
        v.iter().enumerate().all(|(i, b)| *b == pat[i % 8])
    }

    /// The key of index `i`: spread over the u64 range (splitmix64).
    fn key_of(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The value every routine stores for `key`, so that any read can be checked.
    fn value_of(key: u64) -> u64 {
        key.rotate_left(17) ^ 0x5A5A_5A5A_5A5A_5A5A
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Zipf(s) over ranks 0..n by inverse CDF (binary search in a precomputed table).
    struct Zipf {
        cdf: Vec<f64>,
    }
    impl Zipf {
        fn new(n: u64, s: f64) -> Zipf {
            let mut cdf = Vec::with_capacity(n as usize);
            let mut sum = 0.0;
            for k in 1..=n {
                sum += 1.0 / (k as f64).powf(s);
                cdf.push(sum);
            }
            for c in &mut cdf {
                *c /= sum;
            }
            Zipf { cdf }
        }
        fn sample(&self, rng: &mut Rng) -> u64 {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            self.cdf.partition_point(|&c| c < u) as u64
        }
    }

    /// The ops one client (thread or process) `part` of `parts` performs in a routine.
    fn plan(routine: Routine, set: KeySet, part: u64, parts: u64, zipf: Option<&Zipf>) -> Vec<Op> {
        let keys = set.keys;
        let insert = |i: u64| Op::Insert {
            key: key_bytes(i),
            value: value_bytes(key_of(i), set.value_size),
        };
        match routine {
            Routine::Insert | Routine::Read | Routine::Delete => (part..keys)
                .step_by(parts as usize)
                .map(|i| match routine {
                    Routine::Insert => insert(i),
                    Routine::Read => Op::Read { key: key_bytes(i) },
                    _ => Op::Delete { key: key_bytes(i) },
                })
                .collect(),
            Routine::Mixed | Routine::Zipf => {
                let mut rng = Rng(0x1234_5678_9ABC_DEF1 ^ (part + 1).wrapping_mul(0x9E37));
                (0..keys / parts)
                    .map(|_| {
                        let i = match (routine, zipf) {
                            (Routine::Zipf, Some(z)) => z.sample(&mut rng),
                            _ => rng.next() % keys,
                        };
                        if rng.next() % 10 < 8 {
                            Op::Read { key: key_bytes(i) }
                        } else {
                            insert(i)
                        }
                    })
                    .collect()
            }
        }
    }

    /// The time cap of a run: none for insert, which must complete (the later routines check
    /// every read against the full key set).
    fn cap_seconds(routine: Routine, max_seconds: f64) -> f64 {
        if routine == Routine::Insert {
            1e7
        } else {
            max_seconds
        }
    }

    /// Check one answer; the key set is fully present during read/mixed/zipf.
    fn check(op: &Op, o: &Outcome) -> Result<(), String> {
        let ok = match (op, o) {
            (Op::Insert { .. }, Outcome::Created) => true,
            (Op::Insert { key, .. }, Outcome::Replaced(v))
            | (Op::Read { key }, Outcome::Value(v))
            | (Op::Delete { key }, Outcome::Deleted(v)) => value_ok(key_number(key), v),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("wrong answer: {op:?} -> {o:?}"))
        }
    }

    /// What one client (thread or process) measured.
    #[derive(Debug)]
    struct Part {
        ops: u64,
        hist: Histogram<u64>,
        cpu_ns: u64,
    }

    fn new_hist() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
    }

    /// Run `ops` on `client`, `window` in flight (1 = synchronous), recording each op's latency.
    fn drive(client: &Client, ops: &[Op], window: usize, stop_at: Instant) -> Result<Part, String> {
        let mut hist = new_hist();
        let mut done = 0u64;
        if window <= 1 {
            for op in ops {
                let t0 = Instant::now();
                let t = client.submit(op.clone()).map_err(|e| e.to_string())?;
                let o = client.wait(t).map_err(|e| e.to_string())?;
                let dt = t0.elapsed().as_nanos() as u64;
                check(op, &o)?;
                let _ = hist.record(dt.max(1));
                done += 1;
                if done % 1024 == 0 && Instant::now() > stop_at {
                    break;
                }
            }
        } else {
            // Keep at most `window` in flight: submit half a window whenever the oldest half
            // is answered, so that the client checks answers while the server works on the
            // rest (a full window submitted and drained in turn leaves each side idle half
            // the time). Each op's latency runs from its own submission.
            let half = (window / 2).max(1);
            let mut in_flight: std::collections::VecDeque<(usize, shmkv::client::Ticket, Instant)> =
                std::collections::VecDeque::with_capacity(window);
            let mut next = 0;
            while next < ops.len() || !in_flight.is_empty() {
                if in_flight.len() + half <= window && next < ops.len() && Instant::now() <= stop_at
                {
                    let end = (next + half).min(ops.len());
                    let t0 = Instant::now();
                    let tickets = client
                        .submit_all(&ops[next..end])
                        .map_err(|e| e.to_string())?;
                    for (i, t) in (next..end).zip(tickets) {
                        in_flight.push_back((i, t, t0));
                    }
                    next = end;
                    continue;
                }
                let take = half.min(in_flight.len());
                for _ in 0..take {
                    let (i, t, t0) = in_flight.pop_front().expect("counted");
                    let o = client.wait(t).map_err(|e| e.to_string())?;
                    let _ = hist.record((t0.elapsed().as_nanos() as u64).max(1));
                    check(&ops[i], &o)?;
                    done += 1;
                }
                if Instant::now() > stop_at && next < ops.len() {
                    // Stop submitting; collect what is in flight.
                    next = ops.len();
                }
            }
        }
        Ok(Part {
            ops: done,
            hist,
            cpu_ns: 0,
        })
    }

    /// CPU time (user + system) of this process so far, in nanoseconds.
    fn self_cpu_ns() -> u64 {
        // SAFETY: getrusage writes the struct we pass; a zeroed rusage is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
    }

    /// CPU time of process `pid` in nanoseconds: the sum of its live threads' run time from
    /// `/proc/<pid>/task/*/schedstat` (nanosecond resolution; threads that already exited are
    /// not counted: see [`pid_cpu_ns_all`]).
    fn pid_cpu_ns(pid: u32) -> u64 {
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
    fn pid_cpu_ns_all(pid: u32) -> u64 {
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

    /// One measured run, as printed and as written to JSON.
    #[derive(Debug, Clone)]
    struct Record {
        system: &'static str,
        routine: &'static str,
        mode: &'static str,
        value_size: usize,
        server_threads: u32,
        client_threads: usize,
        client_processes: usize,
        pipeline: usize,
        ops: u64,
        seconds: f64,
        p50_ns: u64,
        p99_ns: u64,
        p999_ns: u64,
        server_cpu: f64,
        client_cpu: f64,
    }

    impl Record {
        fn ops_per_sec(&self) -> f64 {
            self.ops as f64 / self.seconds.max(1e-9)
        }
        /// Value bytes moved per second (written or read), in MB/s.
        fn mb_per_sec(&self) -> f64 {
            self.ops_per_sec() * self.value_size as f64 / 1e6
        }
        fn to_json(&self) -> serde_json::Value {
            json!({
                "system": self.system,
                "routine": self.routine,
                "mode": self.mode,
                "value_size": self.value_size,
                "mb_per_sec": self.mb_per_sec(),
                "server_threads": self.server_threads,
                "client_threads": self.client_threads,
                "client_processes": self.client_processes,
                "pipeline": self.pipeline,
                "ops": self.ops,
                "seconds": self.seconds,
                "ops_per_sec": self.ops_per_sec(),
                "p50_ns": self.p50_ns,
                "p99_ns": self.p99_ns,
                "p999_ns": self.p999_ns,
                "server_cpu_cores": self.server_cpu,
                "client_cpu_cores": self.client_cpu,
            })
        }
    }

    /// A running shmkv-server child; stopped (Quit, then SIGKILL) on drop.
    struct ServerChild {
        name: String,
        child: Child,
    }

    fn server_binary(args: &Args) -> Result<PathBuf, String> {
        if let Some(p) = &args.server_bin {
            return Ok(p.clone());
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
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
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

    impl ServerChild {
        fn start(
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
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = tx.send(lines.next());
                for _ in lines {}
            });
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Some(Ok(line))) if line.contains("ready") => Ok(ServerChild {
                    name: name.to_string(),
                    child,
                }),
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(format!("shmkv-server did not become ready: {other:?}"))
                }
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        fn stop(mut self) -> Result<(), String> {
            let c = Client::connect(&ClientConfig::new(&self.name)).map_err(|e| e.to_string())?;
            c.quit().map_err(|e| e.to_string())?;
            drop(c);
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                    return if st.success() {
                        Ok(())
                    } else {
                        Err(format!("shmkv-server exited with {st}"))
                    };
                }
                if Instant::now() > end {
                    return Err("shmkv-server did not exit after quit".into());
                }
                std::thread::sleep(Duration::from_millis(2));
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
                let end = Instant::now() + Duration::from_secs(5);
                while Instant::now() < end {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    fn merge(parts: Vec<Part>) -> Part {
        let mut hist = new_hist();
        let mut ops = 0;
        let mut cpu_ns = 0;
        for p in parts {
            ops += p.ops;
            cpu_ns += p.cpu_ns;
            let _ = hist.add(&p.hist);
        }
        Part { ops, hist, cpu_ns }
    }

    /// The processes mode's child: connect to `name`, run its part, print one JSON line.
    fn run_child(spec: &str) -> ExitCode {
        let f: Vec<&str> = spec.split(':').collect();
        let parsed = (|| {
            Some((
                f.first()?.to_string(),
                Routine::parse(f.get(1)?)?,
                f.get(2)?.parse::<u64>().ok()?,
                f.get(3)?.parse::<u64>().ok()?,
                f.get(4)?.parse::<u64>().ok()?,
                f.get(5)?.parse::<usize>().ok()?,
                f.get(6)?.parse::<f64>().ok()?,
                f.get(7)?.parse::<usize>().ok()?,
            ))
        })();
        let Some((name, routine, keys, part, parts, window, max_s, value_size)) = parsed else {
            eprintln!("shmkv-bench: bad --child spec");
            return ExitCode::from(2);
        };
        let zipf = (routine == Routine::Zipf).then(|| Zipf::new(keys, 0.99));
        let set = KeySet { keys, value_size };
        let ops = plan(routine, set, part, parts, zipf.as_ref());
        let client = match Client::connect(&ClientConfig::new(&name)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("shmkv-bench child: {e}");
                return ExitCode::from(1);
            }
        };
        println!("ready");
        let _ = std::io::stdout().flush();
        let mut go = String::new();
        let _ = std::io::stdin().read_line(&mut go);
        let cpu0 = self_cpu_ns();
        let stop_at = Instant::now() + Duration::from_secs_f64(max_s);
        match drive(&client, &ops, window, stop_at) {
            Ok(p) => {
                let mut buf = Vec::new();
                let _ =
                    hdrhistogram::serialization::V2Serializer::new().serialize(&p.hist, &mut buf);
                println!(
                    "{}",
                    json!({"ops": p.ops, "cpu_ns": self_cpu_ns() - cpu0, "hist": hex(&buf)})
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shmkv-bench child: {e}");
                ExitCode::from(1)
            }
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Option<Vec<u8>> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }

    /// Run one routine in one mode against the server; returns the merged measurements.
    fn run_mode(
        args: &Args,
        name: &str,
        (routine, set): (Routine, KeySet),
        mode: Mode,
        zipf: Option<&Zipf>,
    ) -> Result<(Part, f64), String> {
        let limit = cap_seconds(routine, args.max_seconds);
        let stop_at = || Instant::now() + Duration::from_secs_f64(limit);
        match mode {
            Mode::Sync | Mode::Pipelined => {
                let client =
                    Client::connect(&ClientConfig::new(name)).map_err(|e| e.to_string())?;
                let ops = plan(routine, set, 0, 1, zipf);
                let window = if mode == Mode::Sync { 1 } else { args.pipeline };
                let cpu0 = self_cpu_ns();
                let t0 = Instant::now();
                let mut p = drive(&client, &ops, window, stop_at())?;
                let secs = t0.elapsed().as_secs_f64();
                p.cpu_ns = self_cpu_ns() - cpu0;
                Ok((p, secs))
            }
            Mode::Threads => {
                let client =
                    Arc::new(Client::connect(&ClientConfig::new(name)).map_err(|e| e.to_string())?);
                let n = args.client_threads.max(1) as u64;
                let plans: Vec<Vec<Op>> = (0..n).map(|i| plan(routine, set, i, n, zipf)).collect();
                let cpu0 = self_cpu_ns();
                let t0 = Instant::now();
                let until = stop_at();
                let handles: Vec<_> = plans
                    .into_iter()
                    .map(|ops| {
                        let c = client.clone();
                        std::thread::spawn(move || drive(&c, &ops, 1, until))
                    })
                    .collect();
                let mut parts = Vec::new();
                for h in handles {
                    parts.push(
                        h.join()
                            .map_err(|_| "client thread panicked".to_string())??,
                    );
                }
                let secs = t0.elapsed().as_secs_f64();
                let mut p = merge(parts);
                p.cpu_ns = self_cpu_ns() - cpu0;
                Ok((p, secs))
            }
            Mode::Processes => {
                let me = std::env::current_exe().map_err(|e| e.to_string())?;
                let n = args.client_processes.max(1);
                let mut kids = Vec::new();
                for i in 0..n {
                    let spec = format!(
                        "{name}:{}:{}:{i}:{n}:{}:{}:{}",
                        routine.name(),
                        set.keys,
                        args.pipeline,
                        limit,
                        set.value_size
                    );
                    let mut c = Command::new(&me)
                        .args(["--child", &spec])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::inherit())
                        .spawn()
                        .map_err(|e| e.to_string())?;
                    let out = BufReader::new(c.stdout.take().ok_or("no stdout")?);
                    kids.push((c, out));
                }
                // Wait until every child is connected, then start them together.
                for (_, out) in &mut kids {
                    let mut l = String::new();
                    out.read_line(&mut l).map_err(|e| e.to_string())?;
                    if l.trim() != "ready" {
                        return Err("a client process failed to connect".into());
                    }
                }
                let t0 = Instant::now();
                for (c, _) in &mut kids {
                    let _ = c.stdin.take().map(|mut s| s.write_all(b"go\n"));
                }
                let mut parts = Vec::new();
                for (mut c, mut out) in kids {
                    let mut l = String::new();
                    out.read_line(&mut l).map_err(|e| e.to_string())?;
                    let st = c.wait().map_err(|e| e.to_string())?;
                    if !st.success() {
                        return Err(format!("a client process failed ({st})"));
                    }
                    let v: serde_json::Value =
                        serde_json::from_str(&l).map_err(|e| e.to_string())?;
                    let bytes = unhex(v["hist"].as_str().unwrap_or("")).ok_or("bad histogram")?;
                    let hist: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                        .deserialize(&mut &bytes[..])
                        .map_err(|e| format!("{e:?}"))?;
                    parts.push(Part {
                        ops: v["ops"].as_u64().unwrap_or(0),
                        hist,
                        cpu_ns: v["cpu_ns"].as_u64().unwrap_or(0),
                    });
                }
                let secs = t0.elapsed().as_secs_f64();
                Ok((merge(parts), secs))
            }
        }
    }

    fn fmt_ns(ns: u64) -> String {
        if ns < 10_000 {
            format!("{ns} ns")
        } else if ns < 10_000_000 {
            format!("{:.1} µs", ns as f64 / 1e3)
        } else {
            format!("{:.1} ms", ns as f64 / 1e6)
        }
    }

    fn fmt_size(n: usize) -> String {
        match n {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}K", n >> 10),
            n => n.to_string(),
        }
    }

    fn fmt_rate(r: f64) -> String {
        if r >= 1e6 {
            format!("{:.2} M", r / 1e6)
        } else {
            format!("{:.1} k", r / 1e3)
        }
    }

    fn print_header() {
        println!(
            "{:<6} {:<7} {:<10} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "system",
            "routine",
            "mode",
            "value",
            "srv thr",
            "ops/s",
            "MB/s",
            "p50",
            "p99",
            "p99.9",
            "srv CPU",
            "cli CPU"
        );
    }

    fn print_record(r: &Record) {
        println!(
            "{:<6} {:<7} {:<10} {:>7} {:>7} {:>10} {:>9.1} {:>9} {:>9} {:>9} {:>7.0}% {:>7.0}%",
            r.system,
            r.routine,
            r.mode,
            fmt_size(r.value_size),
            r.server_threads,
            fmt_rate(r.ops_per_sec()),
            r.mb_per_sec(),
            fmt_ns(r.p50_ns),
            fmt_ns(r.p99_ns),
            fmt_ns(r.p999_ns),
            r.server_cpu * 100.0,
            r.client_cpu * 100.0
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn record_of(
        system: &'static str,
        (routine, set): (Routine, KeySet),
        mode: Mode,
        t: u32,
        args: &Args,
        p: &Part,
        secs: f64,
        srv_ns: u64,
    ) -> Record {
        Record {
            system,
            routine: routine.name(),
            mode: mode.name(),
            value_size: set.value_size,
            server_threads: t,
            client_threads: if mode == Mode::Threads {
                args.client_threads
            } else {
                1
            },
            client_processes: if mode == Mode::Processes {
                args.client_processes
            } else {
                1
            },
            pipeline: match mode {
                Mode::Pipelined | Mode::Processes => args.pipeline,
                _ => 1,
            },
            ops: p.ops,
            seconds: secs,
            p50_ns: p.hist.value_at_quantile(0.5),
            p99_ns: p.hist.value_at_quantile(0.99),
            p999_ns: p.hist.value_at_quantile(0.999),
            server_cpu: srv_ns as f64 / 1e9 / secs.max(1e-9),
            client_cpu: p.cpu_ns as f64 / 1e9 / secs.max(1e-9),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bench_shmkv(
        args: &Args,
        bin: &Path,
        routines: &[Routine],
        modes: &[Mode],
        bar: &Option<indicatif::ProgressBar>,
        out: &mut Vec<Record>,
    ) -> Result<(), String> {
        for &t in &args.server_threads {
            let name = format!("bench-{}-{t}", std::process::id());
            let largest = args.value_size.iter().copied().max().unwrap_or(8);
            let server = ServerChild::start(
                bin,
                &name,
                args.buckets,
                args.client_processes.max(1) + 1,
                t,
                largest,
            )?;
            for &size in &args.value_size {
                let set = KeySet::new(args, size);
                let zipf = &Zipf::new(set.keys, 0.99);
                for &mode in modes {
                    for &routine in routines {
                        let z = (routine == Routine::Zipf).then_some(zipf);
                        let srv0 = pid_cpu_ns_all(server.pid());
                        let (p, secs) =
                            run_mode(args, &name, (routine, set), mode, z).map_err(|e| {
                                format!(
                                    "{} {} with {size}-byte values and {t} server threads: {e}",
                                    routine.name(),
                                    mode.name()
                                )
                            })?;
                        let srv = pid_cpu_ns_all(server.pid()).saturating_sub(srv0);
                        let r = record_of("shmkv", (routine, set), mode, t, args, &p, secs, srv);
                        if let Some(b) = bar {
                            b.suspend(|| print_record(&r));
                            b.inc(1);
                        } else {
                            print_record(&r);
                        }
                        out.push(r);
                    }
                }
            }
            server.stop()?;
        }
        Ok(())
    }

    /// A redis-server child on a unix socket, persistence off.
    struct RedisChild {
        child: Child,
        socket: PathBuf,
    }

    impl Drop for RedisChild {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.socket);
        }
    }

    fn start_redis() -> Result<(RedisChild, redis::Connection), String> {
        let socket =
            std::env::temp_dir().join(format!("shmkv-bench-redis-{}.sock", std::process::id()));
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!("--vs-redis needs redis-server on the PATH ({e}); install it, e.g. apt-get install redis-server")
            })?;
        let rc = RedisChild { child, socket };
        let url = format!("unix://{}", rc.socket.display());
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if rc.socket.exists() {
                if let Ok(c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
                    return Ok((rc, c));
                }
            }
            if Instant::now() > end {
                return Err("redis-server did not open its socket within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn redis_cmd(op: &Op) -> redis::Cmd {
        match op {
            Op::Insert { key, value } => {
                let mut c = redis::cmd("SET");
                c.arg(key).arg(value);
                c
            }
            Op::Read { key } => {
                let mut c = redis::cmd("GET");
                c.arg(key);
                c
            }
            Op::Delete { key } => {
                let mut c = redis::cmd("DEL");
                c.arg(key);
                c
            }
            _ => redis::cmd("PING"),
        }
    }

    fn redis_check(op: &Op, v: &redis::Value) -> Result<(), String> {
        use redis::Value as V;
        let ok = match (op, v) {
            (Op::Insert { .. }, V::Okay) => true,
            (Op::Read { key }, V::BulkString(b)) => value_ok(key_number(key), b),
            (Op::Delete { .. }, V::Int(1)) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("redis: wrong answer: {op:?} -> {v:?}"))
        }
    }

    fn bench_redis(
        args: &Args,
        routines: &[Routine],
        modes: &[Mode],
        out: &mut Vec<Record>,
    ) -> Result<(), String> {
        let (rc, mut con) = start_redis()?;
        let runs = args.value_size.iter().flat_map(|&size| {
            modes
                .iter()
                .filter(|m| matches!(m, Mode::Sync | Mode::Pipelined))
                .flat_map(move |&mode| routines.iter().map(move |&r| (size, mode, r)))
        });
        for (size, mode, routine) in runs {
            let set = KeySet::new(args, size);
            {
                let zipf = Zipf::new(set.keys, 0.99);
                let z = (routine == Routine::Zipf).then_some(&zipf);
                let ops = plan(routine, set, 0, 1, z);
                let window = if mode == Mode::Sync { 1 } else { args.pipeline };
                let mut hist = new_hist();
                let srv0 = pid_cpu_ns(rc.child.id());
                let cpu0 = self_cpu_ns();
                let t0 = Instant::now();
                let stop_at = t0 + Duration::from_secs_f64(cap_seconds(routine, args.max_seconds));
                let mut done = 0u64;
                if window == 1 {
                    for op in &ops {
                        let s = Instant::now();
                        let v: redis::Value =
                            redis_cmd(op).query(&mut con).map_err(|e| e.to_string())?;
                        let _ = hist.record((s.elapsed().as_nanos() as u64).max(1));
                        redis_check(op, &v)?;
                        done += 1;
                        if done % 1024 == 0 && Instant::now() > stop_at {
                            break;
                        }
                    }
                } else {
                    // As for shmkv: at most `window` in flight, half a window sent (one write)
                    // whenever the oldest half has been answered.
                    let half = (window / 2).max(1);
                    let mut in_flight: std::collections::VecDeque<(usize, Instant)> =
                        std::collections::VecDeque::with_capacity(window);
                    let mut next = 0;
                    while next < ops.len() || !in_flight.is_empty() {
                        if in_flight.len() + half <= window
                            && next < ops.len()
                            && Instant::now() <= stop_at
                        {
                            let end = (next + half).min(ops.len());
                            let mut packed = Vec::new();
                            for op in &ops[next..end] {
                                packed.extend(redis_cmd(op).get_packed_command());
                            }
                            let s = Instant::now();
                            con.send_packed_command(&packed)
                                .map_err(|e| e.to_string())?;
                            in_flight.extend((next..end).map(|i| (i, s)));
                            next = end;
                            continue;
                        }
                        for _ in 0..half.min(in_flight.len()) {
                            let (i, s) = in_flight.pop_front().expect("counted");
                            let v = con.recv_response().map_err(|e| e.to_string())?;
                            let _ = hist.record((s.elapsed().as_nanos() as u64).max(1));
                            redis_check(&ops[i], &v)?;
                            done += 1;
                        }
                        if Instant::now() > stop_at {
                            next = ops.len();
                        }
                    }
                }
                let secs = t0.elapsed().as_secs_f64();
                let p = Part {
                    ops: done,
                    hist,
                    cpu_ns: self_cpu_ns() - cpu0,
                };
                let srv = pid_cpu_ns(rc.child.id()).saturating_sub(srv0);
                let r = record_of("redis", (routine, set), mode, 1, args, &p, secs, srv);
                print_record(&r);
                out.push(r);
            }
        }
        Ok(())
    }

    fn plot(path: &Path, records: &[Record], routines: &[Routine]) -> Result<(), String> {
        use plotters::prelude::*;
        let n = routines.len().max(1);
        let root = SVGBackend::new(path, (900, 300 * n as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((n, 1));
        let colors = [RED, BLUE, GREEN, MAGENTA, BLACK, CYAN];
        for (panel, routine) in panels.iter().zip(routines) {
            let rs: Vec<&Record> = records
                .iter()
                .filter(|r| r.routine == routine.name())
                .collect();
            let max_t = rs
                .iter()
                .map(|r| r.server_threads)
                .max()
                .unwrap_or(1)
                .max(2);
            let max_y = rs.iter().map(|r| r.ops_per_sec()).fold(1.0, f64::max) * 1.1;
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{}: throughput vs server threads", routine.name()),
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(70)
                .build_cartesian_2d((1u32..max_t).log_scale(), 0f64..max_y)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("server worker threads")
                .y_desc("ops/s")
                .y_label_formatter(&|y| fmt_rate(*y))
                .draw()
                .map_err(|e| e.to_string())?;
            let mut series: Vec<(String, Vec<(u32, f64)>)> = Vec::new();
            for r in &rs {
                let label = format!("{} {}", r.system, r.mode);
                match series.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, v)) => v.push((r.server_threads, r.ops_per_sec())),
                    None => series.push((label, vec![(r.server_threads, r.ops_per_sec())])),
                }
            }
            for (i, (label, pts)) in series.into_iter().enumerate() {
                let c = colors[i % colors.len()];
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    }

    pub fn main() -> ExitCode {
        let args = match Args::try_parse() {
            Ok(a) => a,
            Err(e) => {
                return shmkv::cli::clap_outcome(e).unwrap_or_else(|msg| {
                    eprintln!("shmkv-bench: {msg} (see shmkv-bench --help)");
                    ExitCode::from(2)
                });
            }
        };
        if let Some(spec) = &args.child {
            return run_child(spec);
        }
        match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, msg)) => {
                eprintln!("shmkv-bench: {msg}");
                ExitCode::from(code)
            }
        }
    }

    fn run(args: &Args) -> Result<(), (u8, String)> {
        let usage = |m: String| (2u8, m);
        let mut routines = Vec::new();
        for r in &args.routines {
            routines.push(Routine::parse(r).ok_or_else(|| {
                usage(format!(
                    "unknown routine '{r}' (insert, read, mixed, zipf, delete)"
                ))
            })?);
        }
        // The key set must be present for read/mixed/zipf/delete: insert runs first, always.
        routines.retain(|r| *r != Routine::Insert);
        routines.insert(0, Routine::Insert);
        if let Some(pos) = routines.iter().position(|r| *r == Routine::Delete) {
            routines.remove(pos);
            routines.push(Routine::Delete);
        }
        let mut modes = Vec::new();
        for m in &args.modes {
            modes.push(Mode::parse(m).ok_or_else(|| {
                usage(format!(
                    "unknown mode '{m}' (sync, pipelined, threads, processes)"
                ))
            })?);
        }
        if args.keys == 0 || args.keys > 100_000_000 {
            return Err(usage("--keys must be 1 to 100000000".into()));
        }
        if args.pipeline == 0 || args.pipeline > 65_536 {
            return Err(usage("--pipeline must be 1 to 65536".into()));
        }
        if args.client_threads == 0
            || args.client_threads > 256
            || args.client_processes == 0
            || args.client_processes > 64
        {
            return Err(usage(
                "--client-threads must be 1 to 256 and --client-processes 1 to 64".into(),
            ));
        }
        if args
            .server_threads
            .iter()
            .any(|&t| t == 0 || t > shmkv::server::MAX_THREADS_PER_CLIENT)
        {
            return Err(usage(format!(
                "--server-threads values must be 1 to {}",
                shmkv::server::MAX_THREADS_PER_CLIENT
            )));
        }
        if let Some(&bad) = args
            .value_size
            .iter()
            .find(|&&v| v > u64::from(shmkv::server::MAX_VALUE_LIMIT))
        {
            return Err(usage(format!(
                "--value-size {bad} is more than the server's largest value ({} bytes)",
                shmkv::server::MAX_VALUE_LIMIT
            )));
        }
        if args.max_seconds.is_nan() || args.max_seconds <= 0.0 {
            return Err(usage("--max-seconds must be positive".into()));
        }
        let bin = server_binary(args).map_err(|e| (1, e))?;
        println!(
            "shmkv-bench: {} keys, value sizes {:?}, routines {:?}, modes {:?}, server threads {:?}, pipeline {}, {} client threads, {} client processes; server {}",
            args.keys,
            args.value_size,
            routines.iter().map(|r| r.name()).collect::<Vec<_>>(),
            modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
            args.server_threads,
            args.pipeline,
            args.client_threads,
            args.client_processes,
            bin.display()
        );
        let total =
            (args.server_threads.len() * args.value_size.len() * modes.len() * routines.len())
                as u64;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        print_header();
        let mut records = Vec::new();
        let res = bench_shmkv(args, &bin, &routines, &modes, &bar, &mut records);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        res.map_err(|e| (1, e))?;
        if args.memory_keys > 0 {
            memory_report(args, &bin).map_err(|e| (1, e))?;
        }
        if !args.no_idle {
            idle_report(&bin).map_err(|e| (1, e))?;
        }
        if args.vs_redis {
            bench_redis(args, &routines, &modes, &mut records).map_err(|e| (1, e))?;
            summarize_vs_redis(&records);
        }
        if let Some(path) = &args.json {
            let doc = json!({ "results": records.iter().map(Record::to_json).collect::<Vec<_>>() });
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
                .map_err(|e| (1, format!("writing {}: {e}", path.display())))?;
            println!("wrote {}", path.display());
        }
        if let Some(path) = &args.plot {
            plot(path, &records, &routines)
                .map_err(|e| (1, format!("plotting {}: {e}", path.display())))?;
            println!("wrote {}", path.display());
        }
        Ok(())
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

    /// Insert `--memory-keys` entries of 16-byte keys and 16-byte values into a fresh server
    /// and report the table's bytes per entry (growth of the server's resident memory, bucket
    /// headers included) next to the server's own accounting, and each client object's size.
    fn memory_report(args: &Args, bin: &Path) -> Result<(), String> {
        let name = format!("bench-{}-mem", std::process::id());
        // The server's default bucket count: the map of a bucket grows by doubling, so the
        // bytes per entry depend on the entries per bucket (see the store module's docs).
        let buckets = shmkv::server::ServerConfig::default().buckets;
        let server = ServerChild::start(bin, &name, buckets, 1, 1, 0)?;
        let client = Client::connect(&ClientConfig::new(&name)).map_err(|e| e.to_string())?;
        let before = rss_bytes(server.pid());
        let ops: Vec<Op> = (0..args.memory_keys)
            .map(|i| {
                let mut key = key_bytes(i);
                key.extend_from_slice(&i.to_le_bytes());
                Op::Insert {
                    key,
                    value: value_bytes(key_of(i), 16),
                }
            })
            .collect();
        let far = Instant::now() + Duration::from_secs(3600);
        drive(&client, &ops, args.pipeline.max(1), far)?;
        let after = rss_bytes(server.pid());
        let accounted = client.stats().map_err(|e| e.to_string())?.memory_used;
        let info = *client.info();
        drop(client);
        server.stop()?;
        let n = args.memory_keys as f64;
        let per = after.saturating_sub(before) as f64 / n;
        let obj = shmkv::channel::object_len(info.req_capacity, info.resp_capacity);
        println!(
            "\nmemory: {} entries of 16-byte keys and 16-byte values in {buckets} buckets grew the server's private resident memory (RssAnon) by {:.1} MiB: {per:.1} bytes per entry (bucket headers included; the server accounts {:.1}); each client object (keys up to {} bytes, values up to {} bytes) is {obj} bytes of virtual memory",
            args.memory_keys,
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
    fn idle_report(bin: &Path) -> Result<(), String> {
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
            "idle: server with 2 idle clients used {:.2}% of a core; a client waiting {:.0} s for an answer used {:.2}% of a core, and got it {} after the server resumed",
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

    /// CPU time of the calling thread, in nanoseconds.
    fn thread_cpu_ns() -> u64 {
        // SAFETY: clock_gettime writes the timespec we pass; a zeroed timespec is valid.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn summarize_vs_redis(records: &[Record]) {
        println!("\nshmkv vs redis (same routine, mode and value size, 1 server thread):");
        for r in records.iter().filter(|r| r.system == "redis") {
            if let Some(s) = records.iter().find(|s| {
                s.system == "shmkv"
                    && s.routine == r.routine
                    && s.mode == r.mode
                    && s.value_size == r.value_size
                    && s.server_threads == 1
            }) {
                println!(
                    "  {:<7} {:<10} {:>5} shmkv {:>10}/s  redis {:>10}/s  ratio {:>6.1}x  (p50 {} vs {})",
                    r.routine,
                    r.mode,
                    fmt_size(r.value_size),
                    fmt_rate(s.ops_per_sec()),
                    fmt_rate(r.ops_per_sec()),
                    s.ops_per_sec() / r.ops_per_sec().max(1e-9),
                    fmt_ns(s.p50_ns),
                    fmt_ns(r.p50_ns)
                );
            }
        }
    }
}
