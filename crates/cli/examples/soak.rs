//! Soak: a real `shmkv-server` process under a mix of faults for several minutes, ending with
//! an oracle check of everything acknowledged.
//!
//! ```sh
//! cargo build --release --bin shmkv-server
//! cargo run --release --example soak -- --minutes 5
//! ```
//!
//! What runs (each client is a child process, this program run again with `role ...`; the
//! roles are those of `tests/faults/`, in `tests/common/roles.rs`):
//!
//! * 4 steady clients (slots 0..=3) pipelining batches of inserts, reads and deletes over keys
//!   of their own, each checking every answer against its own model;
//! * 2 victims (slots 4, 5) doing the same, SIGKILLed at random moments (50 ms to 2 s) and
//!   replaced by a new process with new keys; each killed session must be ended by the server
//!   (its slot open to a new client) within a second;
//! * 1 hostile client (slot 6) attacking its own session object, a different way every 3 s
//!   (arbitrary values anywhere, record headers and counters that lie, futex storms with and
//!   without changing the word, a ring kept full, garbage floods, the state word and magic
//!   flipped, holes punched, resize attempts), then killed;
//! * half-way, the server is SIGKILLed and one of the same name started (on the stale socket):
//!   the steady clients must fail with "the server died" within a second, then new ones start
//!   on the new server.
//!
//! At the end of each server lifetime (before the kill, and before the final quit) every client
//! is stopped and a checker on slot 7 reads every key every client ever used in that lifetime:
//! each must hold what the acknowledged batches left (for a batch in flight when its client was
//! stopped, any state along that batch). What was acknowledged before the restart is gone with
//! the first server's memory, so each lifetime is checked on its own. Exit status 0 if every
//! check held, 1 otherwise.

#[cfg(loom)]
fn main() {
    eprintln!("built with --cfg loom: this example needs real shared memory");
}

#[cfg(not(loom))]
#[path = "../tests/common/roles.rs"]
mod roles;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    soak::main()
}

#[cfg(not(loom))]
mod soak {
    use super::roles::{self, Hostility, Rng, Workload};
    use clap::Parser;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use shmkv::client::{Client, ClientConfig};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::fd::AsRawFd;
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Run a shmkv-server under killed clients, hostile writers and a server restart, then
    /// check everything acknowledged.
    #[derive(Parser, Debug)]
    #[command(name = "soak")]
    struct Args {
        /// How long to run, in minutes.
        #[arg(long, default_value_t = 5.0)]
        minutes: f64,
        /// The shmkv-server binary [default: next to this example's directory].
        #[arg(long)]
        server: Option<std::path::PathBuf>,
        /// Server name [default: soak-<pid>].
        #[arg(long)]
        name: Option<String>,
        /// Seed for kill moments and workloads.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run a child role (internal).
        #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
        role: Vec<String>,
    }

    const STEADY: u32 = 4;
    const VICTIMS: [u32; 2] = [4, 5];
    const HOSTILE: u32 = 6;
    const CHECKER: u32 = 7;
    const SLOTS: u32 = 8;
    const HOSTILE_FOR: Duration = Duration::from_secs(3);

    /// What a client child reported so far.
    #[derive(Debug, Default)]
    struct Report {
        acked: u64,
        pid: Option<u32>,
        err: Option<String>,
        ended: bool,
    }

    struct Kid {
        child: Child,
        report: Arc<Mutex<Report>>,
        /// Its stdout pipe (a descriptor of our own; the reader thread reads another).
        pipe: std::os::fd::OwnedFd,
        /// Set while the reader thread waits in `read` with every line before handled.
        reader_idle: Arc<AtomicBool>,
        /// Its workload, for pipeline clients.
        work: Option<Workload>,
        kill_at: Instant,
    }

    impl Kid {
        fn spawn(spec: &str, work: Option<Workload>, kill_at: Instant) -> Kid {
            let mut child = Command::new(std::env::current_exe().expect("own path"))
                .arg("--role")
                .args(spec.split_whitespace())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn a client");
            let out = child.stdout.take().expect("piped");
            let pipe = std::os::fd::AsFd::as_fd(&out)
                .try_clone_to_owned()
                .expect("dup a pipe");
            let report = Arc::new(Mutex::new(Report::default()));
            let reader_idle = Arc::new(AtomicBool::new(false));
            let r = report.clone();
            let out = Watched {
                inner: out,
                idle: reader_idle.clone(),
            };
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut r = r.lock().unwrap();
                    if let Some(b) = line.strip_prefix("ACK ") {
                        r.acked = b.parse::<u64>().map_or(r.acked, |b| b + 1);
                    } else if let Some(rest) = line.strip_prefix("ATTACHED ") {
                        // ATTACHED <slot> <pid>
                        r.pid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("READY ") {
                        r.pid = rest.split_whitespace().next().and_then(|p| p.parse().ok());
                    } else if let Some(e) = line.strip_prefix("ERR ") {
                        r.err.get_or_insert_with(|| e.to_string());
                    }
                }
                r.lock().unwrap().ended = true;
            });
            Kid {
                child,
                report,
                pipe,
                reader_idle,
                work,
                kill_at,
            }
        }

        /// Whether every line a stopped child wrote has been handled: the reader reached the
        /// end of file, or it waits in `read` (so it handled every line it read) and nothing
        /// is left in the pipe. (A child writes each line with one write; a stopped one writes
        /// no more.)
        fn all_read(&self) -> bool {
            if self.report.lock().unwrap().ended {
                return true;
            }
            let mut left: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int through the pointer, which points to `left`;
            // `pipe` is a descriptor we own.
            let r = unsafe { libc::ioctl(self.pipe.as_raw_fd(), libc::FIONREAD, &mut left) };
            self.reader_idle.load(Ordering::SeqCst) && r == 0 && left == 0
        }

        fn signal(&self, sig: Signal) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
        }

        /// SIGKILL, reap, and wait for its last report lines.
        fn kill(mut self) -> Report {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
            let end = Instant::now() + Duration::from_secs(5);
            while !self.report.lock().unwrap().ended && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::mem::take(&mut *self.report.lock().unwrap())
        }
    }

    /// A reader that says when it waits in `read` (see [`Kid::all_read`]).
    struct Watched<R> {
        inner: R,
        idle: Arc<AtomicBool>,
    }

    impl<R: Read> Read for Watched<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.idle.store(true, Ordering::SeqCst);
            let r = self.inner.read(buf);
            self.idle.store(false, Ordering::SeqCst);
            r
        }
    }

    struct Server {
        child: Child,
        log: Arc<Mutex<LogCounts>>,
    }

    #[derive(Debug, Default, Clone)]
    struct LogCounts {
        dropped: u64,
        died: u64,
        detached: u64,
        panics: u64,
        lines: u64,
    }

    fn start_server(bin: &std::path::Path, name: &str) -> Result<Server, String> {
        let mut child = Command::new(bin)
            .args(["--name", name, "--buckets", "4096", "--clients"])
            .arg(SLOTS.to_string())
            .args(["--threads", "2"])
            // Values of at most 4 KiB (workloads write at most 1000 bytes): rings of 64 KiB,
            // full now and then.
            .args(["--max-value", "4K"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut ready = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        out.read_line(&mut ready).map_err(|e| e.to_string())?;
        if !ready.contains("ready") {
            let mut err = String::new();
            let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
            return Err(format!("shmkv-server did not start: {ready}{err}"));
        }
        std::thread::spawn(move || for _ in out.lines() {});
        let log = Arc::new(Mutex::new(LogCounts::default()));
        let l = log.clone();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut c = l.lock().unwrap();
                c.lines += 1;
                if line.contains("client dropped") {
                    c.dropped += 1;
                }
                if line.contains("died without detaching") {
                    c.died += 1;
                }
                if line.contains("reason=\"detached\"") {
                    c.detached += 1;
                }
                if line.contains("panicked") {
                    c.panics += 1;
                    eprintln!("soak: server: {line}");
                }
            }
        });
        Ok(Server { child, log })
    }

    /// Wait (up to 5 s) until every thread of `pid` is stopped.
    fn wait_stopped(pid: u32) {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| {
                    d.filter_map(|e| e.ok()).all(|t| {
                        std::fs::read_to_string(t.path().join("stat"))
                            .ok()
                            .and_then(|s| {
                                s.rsplit_once(')')
                                    .map(|(_, r)| r.trim_start().starts_with('T'))
                            })
                            .unwrap_or(true)
                    })
                })
                .unwrap_or(true);
            if stopped {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether `slot` is free (asked with a probe: no session is opened).
    fn slot_free(name: &str, slot: u32) -> bool {
        matches!(
            shmkv::client::slot_holder(&ClientConfig::new(name), slot),
            Ok(None)
        )
    }

    fn proc_stat(pid: u32) -> Option<(Duration, u64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some((Duration::from_micros(ticks * 1_000_000 / hz), rss))
    }

    /// Everything one server lifetime saw.
    #[derive(Default)]
    struct Tally {
        acked_batches: u64,
        victims_killed: u64,
        detect: Vec<Duration>,
        hostiles: u64,
        workloads: Vec<(Workload, u64)>,
        failures: Vec<String>,
    }

    struct Soak {
        name: String,
        rng: Rng,
        lifetime: u64,
        incarnation: u64,
        t0: Instant,
    }

    impl Soak {
        fn workload(&mut self, slot: u32) -> Workload {
            self.incarnation += 1;
            Workload {
                base: self.lifetime << 56 | u64::from(slot) << 48 | self.incarnation << 16,
                keys: 256,
                seed: self.rng.next(),
                batch: 128,
            }
        }

        fn pipeline(&mut self, slot: u32, kill_at: Instant) -> Kid {
            let w = self.workload(slot);
            Kid::spawn(&w.spec(&self.name, Some(slot)), Some(w), kill_at)
        }

        fn stamp(&self) -> String {
            let s = self.t0.elapsed().as_secs();
            format!("[{:02}:{:02}]", s / 60, s % 60)
        }

        /// One server lifetime of `length`; `last` ends with a quit instead of a SIGKILL.
        fn lifetime(&mut self, bin: &std::path::Path, length: Duration, last: bool) -> Tally {
            let mut tally = Tally::default();
            let server = match start_server(bin, &self.name) {
                Ok(s) => s,
                Err(e) => {
                    tally.failures.push(e);
                    return tally;
                }
            };
            let spid = server.child.id();
            let start = Instant::now();
            let end = start + length;
            let (cpu0, rss0) = proc_stat(spid).unwrap_or_default();
            println!(
                "{} lifetime {}: shmkv-server pid {spid} started, RSS {rss0} KiB",
                self.stamp(),
                self.lifetime
            );
            let far = end + Duration::from_secs(3600);
            let steady: Vec<Kid> = (0..STEADY).map(|s| self.pipeline(s, far)).collect();
            let mut victims: Vec<Option<Kid>> = VICTIMS.iter().map(|_| None).collect();
            let mut hostile: Option<Kid> = None;
            let mut next_hostile = Instant::now();
            let mut modes = Hostility::ALL.iter().cycle();
            let mut next_report = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                for (i, v) in victims.iter_mut().enumerate() {
                    let slot = VICTIMS[i];
                    match v.take() {
                        None => {
                            let at =
                                Instant::now() + Duration::from_millis(50 + self.rng.below(1950));
                            *v = Some(self.pipeline(slot, at));
                        }
                        Some(kid) if Instant::now() >= kid.kill_at => {
                            let w = kid.work.expect("pipeline");
                            let report = kid.kill();
                            let killed = Instant::now();
                            if let Some(e) = report.err {
                                tally.failures.push(format!("victim on slot {slot}: {e}"));
                            }
                            if report.pid.is_some() {
                                let limit = killed + Duration::from_secs(2);
                                while !slot_free(&self.name, slot) && Instant::now() < limit {
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                                let took = killed.elapsed();
                                if took >= Duration::from_secs(1) {
                                    tally.failures.push(format!(
                                        "killed client on slot {slot} noticed only after {took:?}"
                                    ));
                                }
                                tally.detect.push(took);
                            }
                            tally.victims_killed += 1;
                            tally.acked_batches += report.acked;
                            tally.workloads.push((w, report.acked));
                        }
                        Some(kid) => {
                            if kid.report.lock().unwrap().ended {
                                let w = kid.work.expect("pipeline");
                                let r = kid.kill();
                                tally.failures.push(format!(
                                    "victim on slot {slot} ended by itself: {:?}",
                                    r.err
                                ));
                                tally.workloads.push((w, r.acked));
                            } else {
                                *v = Some(kid);
                            }
                        }
                    }
                }
                match hostile.take() {
                    None if Instant::now() < next_hostile => {}
                    None => {
                        let mode = modes.next().expect("cycle");
                        let spec = format!(
                            "hostile {} {HOSTILE} {} {}",
                            self.name,
                            mode.name(),
                            self.rng.next()
                        );
                        hostile = Some(Kid::spawn(&spec, None, Instant::now() + HOSTILE_FOR));
                    }
                    Some(h) if Instant::now() >= h.kill_at || h.report.lock().unwrap().ended => {
                        // (A hostile that could not attach, because the previous one's
                        // session had not ended yet, just ends; the next one tries a little
                        // later.)
                        let r = h.kill();
                        if r.pid.is_some() {
                            tally.hostiles += 1;
                        }
                        next_hostile = Instant::now() + Duration::from_millis(200);
                    }
                    Some(h) => hostile = Some(h),
                }
                for (slot, k) in steady.iter().enumerate() {
                    let r = k.report.lock().unwrap();
                    if r.ended || r.err.is_some() {
                        tally
                            .failures
                            .push(format!("steady client on slot {slot} stopped: {:?}", r.err));
                    }
                }
                if !tally.failures.is_empty() {
                    break;
                }
                if Instant::now() >= next_report {
                    next_report += Duration::from_secs(30);
                    let acked: u64 = steady.iter().map(|k| k.report.lock().unwrap().acked).sum();
                    let (cpu, rss) = proc_stat(spid).unwrap_or_default();
                    let log = server.log.lock().unwrap().clone();
                    println!(
                        "{} lifetime {}: steady clients {acked} batches acknowledged, {} victims killed, {} hostile writers, server CPU {:.0}% of a core on average, RSS {rss} KiB, {} drops logged",
                        self.stamp(),
                        self.lifetime,
                        tally.victims_killed,
                        tally.hostiles,
                        100.0 * (cpu - cpu0).as_secs_f64() / start.elapsed().as_secs_f64(),
                        log.dropped
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Stop everything; freeze the steady clients (their answers so far are checked).
            if let Some(h) = hostile.take() {
                if h.kill().pid.is_some() {
                    tally.hostiles += 1;
                }
            }
            for (i, v) in victims.iter_mut().enumerate() {
                if let Some(kid) = v.take() {
                    let w = kid.work.expect("pipeline");
                    let r = kid.kill();
                    if let Some(e) = r.err {
                        tally
                            .failures
                            .push(format!("victim on slot {}: {e}", VICTIMS[i]));
                    }
                    tally.acked_batches += r.acked;
                    tally.workloads.push((w, r.acked));
                }
            }
            for k in &steady {
                k.signal(Signal::SIGSTOP);
            }
            for k in &steady {
                wait_stopped(k.child.id());
            }
            // Let the readers take the last lines the frozen clients wrote.
            let limit = Instant::now() + Duration::from_secs(10);
            while !steady.iter().all(Kid::all_read) {
                if Instant::now() > limit {
                    tally
                        .failures
                        .push("the steady clients' last lines were not read within 10 s".into());
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let frozen: Vec<(Workload, u64)> = steady
                .iter()
                .map(|k| (k.work.expect("pipeline"), k.report.lock().unwrap().acked))
                .collect();
            // The oracle: every key every client of this lifetime used.
            let checked = self.check(&frozen, &tally.workloads, &mut tally.failures);
            let (cpu, rss) = proc_stat(spid).unwrap_or_default();
            let log = server.log.lock().unwrap().clone();
            tally.acked_batches += frozen.iter().map(|(_, a)| a).sum::<u64>();
            let mut server = server;
            if last {
                for k in steady {
                    drop(k.kill());
                }
                match Client::connect(&ClientConfig::new(&self.name).slot(CHECKER))
                    .and_then(|c| c.quit())
                {
                    Ok(()) => {}
                    Err(e) => tally.failures.push(format!("quit: {e}")),
                }
                let limit = Instant::now() + Duration::from_secs(10);
                let status = loop {
                    if let Ok(Some(st)) = server.child.try_wait() {
                        break Some(st);
                    }
                    if Instant::now() > limit {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                if !status.is_some_and(|s| s.success()) {
                    tally
                        .failures
                        .push(format!("server did not exit cleanly: {status:?}"));
                }
            } else {
                // SIGKILL the server under the (resumed) steady clients: each must fail with
                // "the server died" within a second.
                let _ = server.child.kill();
                let _ = server.child.wait();
                let killed = Instant::now();
                for k in &steady {
                    k.signal(Signal::SIGCONT);
                }
                for (slot, mut k) in steady.into_iter().enumerate() {
                    let limit = killed + Duration::from_secs(3);
                    let status = loop {
                        if let Ok(Some(st)) = k.child.try_wait() {
                            break Some(st);
                        }
                        if Instant::now() > limit {
                            break None;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    };
                    let took = killed.elapsed();
                    let r = k.kill();
                    let err = r.err.unwrap_or_default();
                    if status.and_then(|s| s.code()) != Some(3)
                        || !err.contains("the server died")
                        || took > Duration::from_secs(2)
                    {
                        tally.failures.push(format!(
                            "steady client on slot {slot} after the server was killed: status {status:?} after {took:?}, {err:?}"
                        ));
                    }
                }
            }
            tally.detect.sort();
            let d = &tally.detect;
            println!(
                "{} lifetime {} done: {} batches acknowledged ({} keys checked against them), {} victims killed (noticed after median {:?}, max {:?}), {} hostile writers ({} clients dropped), server CPU {:.0}% of a core on average, RSS {rss0} -> {rss} KiB, {} log lines, {} failure(s)",
                self.stamp(),
                self.lifetime,
                tally.acked_batches,
                checked,
                tally.victims_killed,
                d.get(d.len() / 2).copied().unwrap_or_default(),
                d.last().copied().unwrap_or_default(),
                tally.hostiles,
                log.dropped,
                100.0 * (cpu - cpu0).as_secs_f64() / start.elapsed().as_secs_f64(),
                log.lines,
                tally.failures.len()
            );
            if log.panics > 0 {
                tally.failures.push("the server panicked".into());
            }
            tally
        }

        /// Read every key of every workload through a client on the checker slot.
        fn check(
            &self,
            frozen: &[(Workload, u64)],
            done: &[(Workload, u64)],
            failures: &mut Vec<String>,
        ) -> usize {
            let c = match Client::connect(&ClientConfig::new(&self.name).slot(CHECKER)) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("checker: {e}"));
                    return 0;
                }
            };
            let mut keys = 0;
            for (w, acked) in frozen.iter().chain(done) {
                match roles::verify_left_behind(&c, w, *acked) {
                    Ok(n) => keys += n,
                    Err(e) => failures.push(format!("oracle: {e}")),
                }
            }
            keys
        }
    }

    pub fn main() -> ExitCode {
        let args = match Args::try_parse() {
            Ok(a) => a,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(2);
            }
        };
        if !args.role.is_empty() {
            let code = roles::run_role(&args.role.join(" "), &AtomicBool::new(false));
            return ExitCode::from(code as u8);
        }
        let bin = args.server.clone().unwrap_or_else(|| {
            let me = std::env::current_exe().expect("own path");
            me.parent()
                .and_then(|p| p.parent())
                .map(|p| p.join("shmkv-server"))
                .unwrap_or_default()
        });
        if !bin.is_file() {
            eprintln!(
                "soak: no shmkv-server at {}; build it first (cargo build --release --bin shmkv-server) or pass --server <path>",
                bin.display()
            );
            return ExitCode::from(2);
        }
        if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
            eprintln!("soak: --minutes must be more than 0 and at most 1440");
            return ExitCode::from(2);
        }
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("soak-{}", std::process::id()));
        let total = Duration::from_secs_f64(args.minutes * 60.0);
        println!(
            "soak: {:.1} minutes against {} (name '{name}', {SLOTS} slots: {STEADY} steady clients, {} victims, 1 hostile writer, 1 checker); server restarted once half-way",
            args.minutes,
            bin.display(),
            VICTIMS.len()
        );
        let mut soak = Soak {
            name,
            rng: Rng::new(args.seed),
            lifetime: 0,
            incarnation: 0,
            t0: Instant::now(),
        };
        let mut failures = Vec::new();
        let mut acked = 0;
        for last in [false, true] {
            soak.lifetime += 1;
            let t = soak.lifetime(&bin, total / 2, last);
            acked += t.acked_batches;
            failures.extend(
                t.failures
                    .into_iter()
                    .map(|f| format!("lifetime {}: {f}", soak.lifetime)),
            );
            if !failures.is_empty() {
                break;
            }
        }
        // The server removes its socket (and lock file) when it exits cleanly.
        let leftover: Vec<String> = std::fs::read_dir(shmkv::door::socket_dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{}.sock", soak.name)))
                    .collect()
            })
            .unwrap_or_default();
        if !leftover.is_empty() {
            failures.push(format!(
                "left in {}: {leftover:?}",
                shmkv::door::socket_dir().display()
            ));
            for f in leftover {
                let _ = std::fs::remove_file(shmkv::door::socket_dir().join(f));
            }
        }
        let _ = std::io::stdout().flush();
        if failures.is_empty() {
            println!(
                "{} soak: PASSED ({acked} batches acknowledged over two server lifetimes, every one found in the table)",
                soak.stamp()
            );
            ExitCode::SUCCESS
        } else {
            for f in &failures {
                println!("soak: FAILED: {f}");
            }
            ExitCode::from(1)
        }
    }
}
