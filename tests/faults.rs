//! Faults, hostile clients and security, with real processes and signals: clients SIGKILLed
//! mid-pipeline, a server SIGKILLed or stopped under its clients, races for one slot, hostile
//! processes writing into their own client object, another user, names and limits.
//!
//! Child processes are this test binary run again (`child_role` with `SHMKV_FAULTS_ROLE`
//! set); their roles are in `tests/common/roles.rs`. Tests wait on conditions with deadlines.
//! They run one at a time (`serial`): several measure times and CPU use, on a small machine.
#![cfg(not(loom))]

mod common;
#[path = "common/roles.rs"]
mod roles;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use roles::{Hostility, Model, Rng, Workload};
use shmkv::client::{Client, ClientConfig, ClientError};
use shmkv::protocol::Op;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "SHMKV_FAULTS_ROLE";

/// One test at a time: they measure detection times and CPU use on a 2-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The entry point of the child processes the other tests start (this binary, run again with
/// `SHMKV_FAULTS_ROLE` set to a role of `tests/common/roles.rs`). Run as an ordinary test, it
/// runs each role briefly in this process against an in-process server, so that the roles the
/// other tests rely on are themselves checked.
#[test]
fn child_role() {
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        let code = roles::run_role(&spec, &AtomicBool::new(false));
        std::process::exit(code);
    }
    let _g = serial();
    let name = unique_name();
    let server = shmkv::server::Server::start(shmkv::server::ServerConfig {
        name: name.clone(),
        buckets: 64,
        clients: 6,
        threads: 2,
        ring_capacity: 16,
        ..Default::default()
    })
    .unwrap();
    // A pipeline, checked against its model, then what it left checked from another slot.
    let w = Workload {
        base: 1 << 40,
        keys: 50,
        seed: 7,
        batch: 40,
    };
    let c = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
    let mut acks = Vec::new();
    let stop = AtomicBool::new(false);
    let ran = roles::run_checked(&c, &w, &mut Model::default(), 0, 6, &stop, |b| acks.push(b));
    assert_eq!(ran, Ok(6));
    assert_eq!(acks, [0, 1, 2, 3, 4, 5]);
    drop(c);
    let v = Client::connect(&ClientConfig::new(&name).slot(1)).unwrap();
    assert_eq!(roles::verify_left_behind(&v, &w, 6), Ok(50));
    // Claiming "6 acknowledged" when 6 batches ran but checking against fewer must fail
    // somewhere (else the check could not catch anything).
    let strict = (1..6).any(|a| {
        let states = roles::possible_states(&w, a);
        states.values().any(|s| s.len() == 1) && roles::verify_left_behind(&v, &w, a - 1).is_err()
    });
    assert!(strict, "verify_left_behind accepts anything");
    drop(v);
    // Every hostility runs for a moment against a slot of its own without hurting the last.
    for (slot, h) in Hostility::ALL.into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (name.clone(), stop.clone());
        let t = std::thread::spawn(move || {
            roles::run_role(&format!("hostile {n} {slot} {} 1", h.name()), &s)
        });
        let c = Client::connect(&ClientConfig::new(&name).slot(5)).unwrap();
        c.insert(1, 2).unwrap();
        assert_eq!(c.read(1).unwrap(), Some(2));
        stop.store(true, Ordering::SeqCst);
        assert_eq!(t.join().unwrap(), 0, "{h:?}");
    }
    server.shutdown();
}

/// A child process running `spec`, with its stdout lines delivered on a channel.
struct Kid {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Kid {
    fn spawn(spec: &str) -> Kid {
        Self::spawn_with(spec, Stdio::null())
    }

    fn spawn_with(spec: &str, stdin: Stdio) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_role",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE_ENV, spec)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Kid {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for a line starting with `word`; returns it. Panics on an `ERR` line or timeout.
    fn expect(&mut self, word: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    assert!(!l.starts_with("ERR"), "child reported: {l}");
                    if l.starts_with(word) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "no {word} line from the child within {limit:?} ({e}): {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Wait for a line starting with one of `words`; returns it.
    fn expect_one_of(&mut self, words: &[&str], limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if words.iter().any(|w| l.starts_with(w)) {
                        return l;
                    }
                }
                Err(e) => panic!("no {words:?} line within {limit:?} ({e}): {:?}", self.seen),
            }
        }
    }

    /// SIGKILL it, reap it, and collect every line it wrote.
    fn kill(mut self) -> Vec<String> {
        let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        while let Ok(l) = self.lines.recv_timeout(DEADLINE) {
            self.seen.push(l);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `ACK <b>` in `lines`: how many batches were acknowledged.
fn acked(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .filter_map(|b| b.parse::<u64>().ok())
        .max()
        .map_or(0, |b| b + 1)
}

/// A well-behaved client on `slot` of `name`, in a thread of this process: runs `w` in batches
/// checked against its model until stopped; counts the batches it completed.
struct Checker {
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Checker {
    fn start(name: &str, slot: u32, w: Workload) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(AtomicU64::new(0));
        let c = Client::connect(&ClientConfig::new(name).slot(slot)).unwrap();
        let (s, b) = (stop.clone(), batches.clone());
        let handle = std::thread::spawn(move || {
            let mut model = Model::default();
            roles::run_checked(&c, &w, &mut model, 0, u64::MAX, &s, |_| {
                b.fetch_add(1, Ordering::SeqCst);
            })
        });
        Checker {
            stop,
            batches,
            handle: Some(handle),
        }
    }

    fn batches(&self) -> u64 {
        self.batches.load(Ordering::SeqCst)
    }

    /// Wait until it completed `n` more batches than now (it is making progress).
    fn progresses(&mut self, n: u64, limit: Duration) {
        let from = self.batches();
        wait_until(limit, || {
            self.handle.as_ref().unwrap().is_finished() || self.batches() >= from + n
        });
        if self.handle.as_ref().unwrap().is_finished() {
            let r = self.handle.take().unwrap().join().unwrap();
            panic!("a well-behaved client stopped: {r:?}");
        }
    }

    /// Stop it; it must not have seen a single error or wrong answer.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let r = self.handle.take().unwrap().join().unwrap();
        r.expect("a well-behaved client saw an error or a wrong answer")
    }
}

/// Clients SIGKILLed at random moments while they pipeline requests (some in the request ring,
/// some being answered, the response ring often full): the server notices each within a
/// second and frees the slot; a new client there sees none of the dead one's answers; every
/// acknowledged operation of the dead client is in the table; clients on the other slots,
/// checked against their models all along, see no error; no worker stays blocked.
#[test]
fn killed_clients_are_noticed_and_their_slot_reused() {
    let _g = serial();
    let s = ServerProc::start(&[
        "--buckets",
        "256",
        "--clients",
        "3",
        "--threads",
        "2",
        "--ring",
        "64",
    ]);
    let mut others: Vec<Checker> = (1..3)
        .map(|slot| {
            Checker::start(
                &s.name,
                slot,
                Workload {
                    base: u64::from(slot) << 48,
                    keys: 200,
                    seed: u64::from(slot),
                    batch: 100,
                },
            )
        })
        .collect();
    let mut rng = Rng::new(42);
    let mut detect = Vec::new();
    for round in 0..10u64 {
        let w = Workload {
            base: (round + 1) << 32,
            keys: 64,
            seed: 1000 + round,
            batch: 200,
        };
        let mut kid = Kid::spawn(&w.spec(&s.name, Some(0)));
        let line = kid.expect("ATTACHED", DEADLINE);
        let pid: u32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(owner_of(&s.name, 0), pid);
        // A random moment: right away, or after a few acknowledged batches, plus a few ms.
        let want = rng.below(4);
        if want > 0 {
            kid.expect(&format!("ACK {}", want - 1), DEADLINE);
        }
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        let killed = Instant::now();
        let lines = kid.kill();
        assert!(
            !lines.iter().any(|l| l.starts_with("ERR")),
            "the child saw an error: {lines:?}"
        );
        // The server notices (the owner word changes) within a second.
        wait_until(Duration::from_secs(3), || owner_of(&s.name, 0) != pid);
        let took = killed.elapsed();
        assert!(took < Duration::from_secs(1), "noticed after {took:?}");
        detect.push(took);
        // A new client in the slot: first what the dead one left, then a fresh checked
        // pipeline (its request ids start at 1 again, like the dead one's).
        let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
        roles::verify_left_behind(&c, &w, acked(&lines)).unwrap();
        let fresh = Workload {
            base: (round + 1) << 32 | 1 << 31,
            ..w
        };
        let stop = AtomicBool::new(false);
        let ran = roles::run_checked(&c, &fresh, &mut Model::default(), 0, 3, &stop, |_| {});
        assert_eq!(ran, Ok(3));
        assert_eq!(c.stray_responses(), 0, "answers meant for the dead client");
        drop(c);
        for o in &mut others {
            o.progresses(1, Duration::from_secs(5));
        }
    }
    for o in others {
        assert!(o.finish() > 10);
    }
    // Every slot still answers (no worker is stuck on a dead client's ring).
    for slot in 0..3 {
        s.client(&[&slot.to_string(), "read", "1"])
            .ok("read 1: not found\n");
    }
    let log = s.quit_and_check_clean();
    assert!(!log.contains("panicked"), "{log}");
    detect.sort();
    eprintln!(
        "killed clients noticed after: min {:?}, median {:?}, max {:?}",
        detect[0],
        detect[detect.len() / 2],
        detect[detect.len() - 1]
    );
}

/// Connect to `slot`, retrying until `limit` (the server may still be freeing or repairing
/// the slot).
fn connect_within(name: &str, slot: u32, limit: Duration) -> Client {
    let end = Instant::now() + limit;
    loop {
        match Client::connect(&ClientConfig::new(name).slot(slot)) {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < end, "slot {slot} still unusable: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A well-behaved workload for `slot`, with keys of its own (`phase` makes them fresh).
fn honest(slot: u32, phase: u64) -> Workload {
    Workload {
        base: u64::from(slot) << 48 | phase << 32,
        keys: 200,
        seed: u64::from(slot) * 1000 + phase,
        batch: 100,
    }
}

/// Hostile processes, each scribbling over its own client object in one way (arbitrary values
/// anywhere, futex storms, a ring kept full, a garbage flood, owner/closing flips): the server
/// does not spin (its CPU use is measured while the hostile writer runs alone), drops each
/// writer with a logged reason, keeps serving the other clients (checked against their models)
/// while it goes on, serves a new client on that slot once the writer is gone, and its memory
/// does not grow.
#[test]
fn hostile_writers_harm_only_themselves() {
    let _g = serial();
    let s = ServerProc::start(&["--buckets", "256", "--clients", "3", "--ring", "64"]);
    let spid = s.pid();
    // Warm up (table, histograms, thread stacks) before taking the memory baseline.
    let warm: Vec<Checker> = (1..3)
        .map(|slot| Checker::start(&s.name, slot, honest(slot, 0)))
        .collect();
    for mut c in warm {
        c.progresses(5, DEADLINE);
        c.finish();
    }
    let rss0 = rss_kib(spid);
    let mut figures = Vec::new();
    for (i, h) in Hostility::ALL.into_iter().enumerate() {
        let drops = |log: &str| log.lines().filter(|l| l.contains("client dropped")).count();
        let dropped_before = drops(&s.log());
        let mut kid = Kid::spawn(&format!("hostile {} 0 {} {i}", s.name, h.name()));
        let pid: u32 = kid.expect("READY", DEADLINE)[6..].parse().unwrap();
        // The server's CPU use while the hostile writer runs alone.
        let (cpu0, t0) = (cpu_time(spid), Instant::now());
        wait_until(DEADLINE, || t0.elapsed() >= Duration::from_millis(1500));
        let share = (cpu_time(spid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
        // Meanwhile the others are served, correctly.
        let phase = i as u64 + 1;
        let mut others: Vec<Checker> = (1..3)
            .map(|slot| Checker::start(&s.name, slot, honest(slot, phase)))
            .collect();
        for o in &mut others {
            o.progresses(5, DEADLINE);
        }
        for o in others {
            o.finish();
        }
        // It is dropped with a logged reason: a corrupt ring, or pointless work past the
        // per-second rate or past the strike limit (which catches it however slowly this
        // machine lets it make the server work).
        let dropped_by = Instant::now();
        while drops(&s.log()) == dropped_before {
            assert!(
                dropped_by.elapsed() < DEADLINE,
                "{h:?}: the hostile writer was not dropped within {DEADLINE:?}:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let dropped = drops(&s.log()) - dropped_before;
        let drop_wait = dropped_by.elapsed();
        drop(kid.kill());
        // Once it is gone the slot is freed, repaired, and serves a new client correctly.
        let gone = Instant::now();
        let c = connect_within(&s.name, 0, DEADLINE);
        let repaired = gone.elapsed();
        assert_ne!(owner_of(&s.name, 0), pid);
        let stop = AtomicBool::new(false);
        let w = honest(0, phase);
        assert_eq!(
            roles::run_checked(&c, &w, &mut Model::default(), 0, 3, &stop, |_| {}),
            Ok(3)
        );
        drop(c);
        figures.push(format!(
            "{}: server CPU {:.1}% of a core; dropped {dropped} time(s) (waited {drop_wait:?} more); slot usable again {repaired:?} after the writer was killed",
            h.name(),
            share * 100.0
        ));
        assert!(
            share < 0.25,
            "{h:?}: the server used {:.0}% of a core",
            share * 100.0
        );
    }
    let rss1 = rss_kib(spid);
    let log = s.quit_and_check_clean();
    eprintln!(
        "{}\nserver RSS {rss0} KiB before, {rss1} KiB after",
        figures.join("\n")
    );
    // SHOWLOG=1 cargo test --test faults -- --nocapture hostile: the server's whole log.
    if std::env::var_os("SHOWLOG").is_some() {
        eprintln!("{log}");
    }
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("reason=its ring is corrupt"), "{log}");
    // Pointless work was a reason at least once (the futex storm causes nothing else).
    let budget = log
        .lines()
        .filter(|l| l.contains("such events a second") || l.contains("strikes: more than"))
        .count();
    assert!(budget > 0, "{log}");
    assert!(
        rss1 < rss0 + 4096,
        "server memory grew from {rss0} KiB to {rss1} KiB"
    );
}

/// The pointless-work limits never drop a well-behaved client: many worker threads woken at
/// once by each detach, clients that come and go without a request, a pipelined client whose
/// small response ring is full most of the time.
#[test]
fn well_behaved_clients_are_never_dropped() {
    let _g = serial();
    let s = ServerProc::start(&["--clients", "1", "--ring", "8"]);
    let threads0 = threads_of(s.pid());
    let mut rss_warm = 0;
    for round in 0..60u64 {
        if round == 10 {
            rss_warm = rss_kib(s.pid());
        }
        let c = connect_within(&s.name, 0, DEADLINE);
        assert_eq!(c.start_threads(15).unwrap(), 16);
        assert_eq!(c.insert(round, round * 3).unwrap(), None);
        assert_eq!(c.read(round).unwrap(), Some(round * 3));
        drop(c);
    }
    // The 750 threads started after the warm-up exited and were joined: their stacks did
    // not pile up (unjoined, they grew the server by about 8 MB here).
    let rss = rss_kib(s.pid());
    assert!(
        rss < rss_warm + 2048,
        "server grew from {rss_warm} KiB to {rss} KiB"
    );
    for _ in 0..60 {
        drop(connect_within(&s.name, 0, DEADLINE));
    }
    let c = connect_within(&s.name, 0, DEADLINE);
    for round in 0..20u64 {
        let keys = 1000 + round * 64..1000 + round * 64 + 64;
        let tickets = c
            .submit_all(
                &keys
                    .clone()
                    .map(|k| Op::Insert { key: k, value: k })
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        for t in tickets {
            c.wait(t).unwrap();
        }
    }
    drop(c);
    // The threads the clients started have retired: a new client starts with `--threads`.
    wait_until(DEADLINE, || threads_of(s.pid()) == threads0);
    let log = s.quit_and_check_clean();
    assert!(!log.contains("client dropped"), "{log}");
}

/// The request ring's fill level of `slot` (published and not yet taken), read from /dev/shm.
fn request_ring_fill(name: &str, slot: u32) -> u64 {
    let map = shmkv::shm::Mapping::open(&shmkv::channel::object_name(name, slot)).unwrap();
    let tail = map.atomic_u64(shmkv::channel::REQ_CTRL).unwrap();
    let head = map.atomic_u64(shmkv::channel::REQ_CTRL + 64).unwrap();
    tail.load(Ordering::SeqCst)
        .wrapping_sub(head.load(Ordering::SeqCst))
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap();
}

/// SIGSTOP `pid` and wait until every thread of it has stopped (the signal is asynchronous: a
/// thread running on another core may still answer a request).
fn freeze(pid: u32) {
    signal(pid, Signal::SIGSTOP);
    wait_until(DEADLINE, || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
    });
}

/// A server SIGKILLed under its clients: a thread waiting for a pipeline's answers, a thread
/// blocked on a full request ring and a later call all fail with "the server died" well
/// within the 1 s bound; so do new connections and the command line. A server of the same
/// name then starts (removing the dead one's objects). A server that is stopped (SIGSTOP),
/// whose pid therefore lives on, is given up after the configured timeout (library and
/// `--timeout`), and when it resumes it still holds every acknowledged insert.
#[test]
fn a_killed_or_stopped_server_fails_every_call_in_bounded_time() {
    let _g = serial();
    let args = [
        "--buckets",
        "64",
        "--clients",
        "4",
        "--threads",
        "2",
        "--ring",
        "16",
    ];
    let s = ServerProc::start(&args);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    for k in 0..50 {
        assert_eq!(c.insert(k, k + 1).unwrap(), None);
    }
    // Freeze it so that requests pile up, start both kinds of waiters, then kill it.
    freeze(s.pid());
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || {
            let ts = c.submit_all(&[Op::Read { key: 1 }; 8])?;
            let r = c.wait(ts[0]);
            Ok::<_, ClientError>((r, Instant::now()))
        })
    };
    wait_until(DEADLINE, || request_ring_fill(&s.name, 0) == 8);
    let submitter = {
        let c = c.clone();
        std::thread::spawn(move || {
            let r = c.submit_all(&[Op::Read { key: 2 }; 100]).map(|_| ());
            (r, Instant::now())
        })
    };
    wait_until(DEADLINE, || request_ring_fill(&s.name, 0) == 16);
    let killed = Instant::now();
    signal(s.pid(), Signal::SIGKILL);
    let (r, at) = waiter.join().unwrap().unwrap();
    assert_eq!(r, Err(ClientError::ServerGone("died")));
    let waited = at - killed;
    let (r, at) = submitter.join().unwrap();
    assert_eq!(r, Err(ClientError::ServerGone("died")));
    let submitted = at - killed;
    for t in [waited, submitted] {
        assert!(t < Duration::from_millis(500), "{t:?}");
    }
    assert_eq!(c.read(1), Err(ClientError::ServerGone("died")));
    assert_eq!(
        Client::connect(&ClientConfig::new(&s.name).slot(1)).unwrap_err(),
        ClientError::ServerGone("died")
    );
    run_client_named(&s.name, &["1", "read", "1"]).fails(3, "the server died");
    drop(c);
    // A new server of that name removes the dead one's objects and starts afresh.
    let name = s.name.clone();
    drop(s);
    let s = ServerProc::start_named(&name, &args);
    s.client(&["0", "read", "1"]).ok("read 1: not found\n");

    // Stopped, not dead: the timeout gives up on it.
    let c = Arc::new(
        Client::connect(
            &ClientConfig::new(&s.name)
                .slot(0)
                .timeout(Duration::from_millis(300)),
        )
        .unwrap(),
    );
    assert_eq!(c.insert(7, 70).unwrap(), None);
    freeze(s.pid());
    let t0 = Instant::now();
    let r = c.read(7);
    let read_took = t0.elapsed();
    assert_eq!(r, Err(ClientError::Timeout(Duration::from_millis(300))));
    assert_eq!(
        c.read(7),
        Err(ClientError::Timeout(Duration::from_millis(300)))
    );
    let c2 = Client::connect(
        &ClientConfig::new(&s.name)
            .slot(1)
            .timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let t0 = Instant::now();
    let r = c2.submit_all(&[Op::Read { key: 2 }; 100]).map(|_| ());
    let submit_took = t0.elapsed();
    assert_eq!(r, Err(ClientError::Timeout(Duration::from_millis(300))));
    let t0 = Instant::now();
    let out = s.client(&["--timeout", "0.3", "2", "read", "7"]);
    let cli_took = t0.elapsed();
    out.fails(3, "read 7: the server did not answer within 300ms");
    for t in [read_took, submit_took, cli_took] {
        assert!(
            t >= Duration::from_millis(300) && t < Duration::from_millis(1500),
            "{t:?}"
        );
    }
    // The default is 1 s.
    let t0 = Instant::now();
    s.client(&["3", "read", "7"])
        .fails(3, "the server did not answer within 1s");
    let default_took = t0.elapsed();
    assert!(default_took >= Duration::from_secs(1) && default_took < Duration::from_secs(3));
    drop((c, c2));
    // It resumes: the acknowledged insert is there; the given-up slots are freed.
    signal(s.pid(), Signal::SIGCONT);
    let c = connect_within(&s.name, 0, DEADLINE);
    assert_eq!(c.read(7).unwrap(), Some(70));
    drop(c);
    s.quit_and_check_clean();
    eprintln!(
        "server SIGKILLed: a waiting call failed after {waited:?}, a blocked submit after {submitted:?}; \
         server SIGSTOPped, timeout 300ms: read {read_took:?}, submit {submit_took:?}, command line {cli_took:?}; default timeout: {default_took:?}"
    );
}

/// Many processes, then many threads, ask for the same slot at the same moment: exactly one
/// gets it each time, the others a clear "in use by process <winner>" error.
#[test]
fn racing_clients_exactly_one_wins() {
    let _g = serial();
    let s = ServerProc::start(&["--buckets", "16", "--clients", "2"]);
    for _round in 0..4 {
        let mut kids: Vec<Kid> = (0..8)
            .map(|_| Kid::spawn_with(&format!("claim {} 0", s.name), Stdio::piped()))
            .collect();
        for k in &mut kids {
            k.expect("READY", DEADLINE);
        }
        for k in &mut kids {
            k.child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        }
        let results: Vec<String> = kids
            .iter_mut()
            .map(|k| k.expect_one_of(&["WON", "LOST"], DEADLINE))
            .collect();
        let winners: Vec<&String> = results.iter().filter(|l| l.starts_with("WON")).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let winner = &winners[0][4..];
        assert_eq!(owner_of(&s.name, 0).to_string(), winner);
        for l in results.iter().filter(|l| l.starts_with("LOST")) {
            assert!(
                l.contains(&format!("client id 0 is in use by process {winner}")),
                "{l}"
            );
        }
        for k in &mut kids {
            drop(k.child.stdin.take());
        }
        for mut k in kids {
            k.child.wait().unwrap();
        }
        wait_until(Duration::from_secs(2), || owner_of(&s.name, 0) == 0);
    }
    // Threads of one process (same pid): the owner word's compare-and-swap still lets one in.
    let threads = 12;
    for _round in 0..50 {
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (b, name) = (barrier.clone(), s.name.clone());
                std::thread::spawn(move || {
                    let mut config = ClientConfig::new(&name).slot(1);
                    config.attach_timeout = Duration::ZERO;
                    b.wait();
                    Client::connect(&config)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1);
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, ClientError::SlotBusy { slot: 1, .. }), "{e}");
            }
        }
        drop(results);
        wait_until(Duration::from_secs(2), || owner_of(&s.name, 1) == 0);
    }
    s.quit_and_check_clean();
}

/// Run `bin` as user and group `id` (another user than the server's).
/// Whether the test runs as root (it must run processes as other users); if not, say that
/// `test` is skipped and why.
fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("{test}: skipped: not root, so it cannot run processes as other users");
    }
    root
}

fn run_as(id: u32, bin: &str, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let child = Command::new(bin)
        .args(args)
        .uid(id)
        .gid(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

/// Objects are mode 0600 and owned by the server's user; a client of another user cannot
/// attach (a clear "permission denied", status 3), a server of another user cannot take the
/// name, and a server does not remove another user's object that looks stale. Needs root to
/// run processes as another user.
#[test]
fn another_user_can_neither_attach_nor_take_the_name() {
    let _g = serial();
    if !root_or_skip("another_user_can_neither_attach_nor_take_the_name") {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let other = 65534; // nobody
    let s = ServerProc::start(&["--buckets", "16", "--clients", "2"]);
    for o in shm_objects(&s.name) {
        let m = std::fs::metadata(format!("/dev/shm/{o}")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{o}");
        assert_eq!(m.uid(), nix::unistd::geteuid().as_raw(), "{o}");
    }
    for args in [&["0", "read", "1"][..], &["read", "1"][..]] {
        let mut a = vec!["--name", s.name.as_str()];
        a.extend_from_slice(args);
        run_as(other, CLIENT, &a).fails(3, "permission denied");
    }
    run_as(other, SERVER, &["--name", &s.name])
        .fails(1, "is not a stale shmkv object of this user");
    s.client(&["0", "insert", "1", "2", "read", "1"])
        .ok("insert 1 2: ok\nread 1: 2\n");
    s.quit_and_check_clean();

    // Another user's object with a dead server pid is not ours to remove.
    let name = unique_name();
    let params = shmkv::channel::ObjectParams {
        index: 0,
        clients: 1,
        req_capacity: 2,
        resp_capacity: 2,
        buckets: 1,
    };
    drop(shmkv::channel::create_object(&name, &params).unwrap());
    let mut t = Command::new("true").spawn().unwrap();
    let dead = t.id();
    t.wait().unwrap();
    let path = format!("/dev/shm/{name}-client-0");
    {
        let map = shmkv::shm::Mapping::open(&format!("{name}-client-0")).unwrap();
        // Offset 40: the server pid (design.md, "Byte layout").
        map.atomic_u32(40).unwrap().store(dead, Ordering::SeqCst);
    }
    std::os::unix::fs::chown(&path, Some(other), Some(other)).unwrap();
    run_server_expect_fail_named(&name).fails(1, "is not a stale shmkv object of this user");
    assert!(std::path::Path::new(&path).exists());
    std::fs::remove_file(&path).unwrap();
    // Once it is gone, the server starts.
    let s = ServerProc::start_named(&name, &["--clients", "1"]);
    s.quit_and_check_clean();
}

/// A dead server's pid taken by another process (here: a live `sleep`, written into the
/// header as the server pid) is not mistaken for the server: a client says "the server died"
/// at once instead of waiting for its timeout, and a new server of that name starts, removing
/// the stale objects.
#[test]
fn a_reused_server_pid_is_not_taken_for_the_server() {
    let _g = serial();
    let mut s = ServerProc::start(&["--buckets", "16", "--clients", "2"]);
    s.client(&["0", "insert", "1", "2"]).ok("insert 1 2: ok\n");
    s.kill_hard();
    let mut impostor = Command::new("sleep").arg("60").spawn().unwrap();
    for slot in 0..2 {
        let map = shmkv::shm::Mapping::open(&shmkv::channel::object_name(&s.name, slot)).unwrap();
        // Offset 40: the server pid (design.md, "Byte layout").
        map.atomic_u32(40)
            .unwrap()
            .store(impostor.id(), Ordering::SeqCst);
    }
    // (A timeout of 60 s: only the pid check can make it fail sooner, and it says "died".)
    s.client(&["--timeout", "60", "0", "read", "1"])
        .fails(3, "the server died");
    s.client(&["--timeout", "60", "read", "1"])
        .fails(3, "the server died");
    let s2 = ServerProc::start_named(&s.name, &["--clients", "2"]);
    s2.client(&["1", "read", "1"]).ok("read 1: not found\n");
    s2.quit_and_check_clean();
    impostor.kill().unwrap();
    impostor.wait().unwrap();
}

/// A server that cannot read a process's `/proc/<pid>/maps` (one of another user) still does
/// not let that process hold a slot by a forged owner word: objects are 0600, so only its own
/// user (or root) can map one. Needs root (the server runs as nobody, the forged pid is a
/// process of a third user).
#[test]
fn a_forged_owner_of_another_user_does_not_hold_a_slot() {
    let _g = serial();
    if !root_or_skip("a_forged_owner_of_another_user_does_not_hold_a_slot") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let (server_user, third_user) = (65534, 1); // nobody, daemon
    let name = unique_name();
    let s = ServerProc::start_as(Some(server_user), &name, &["--clients", "1"]);
    let mut other = Command::new("sleep")
        .arg("60")
        .uid(third_user)
        .gid(third_user)
        .spawn()
        .unwrap();
    {
        let map = shmkv::shm::Mapping::open(&shmkv::channel::object_name(&name, 0)).unwrap();
        // Offset 64: the owner word (design.md, "Byte layout").
        map.atomic_u32(64)
            .unwrap()
            .store(other.id(), Ordering::SeqCst);
    }
    let line = s.wait_log(
        DEADLINE,
        &[
            "client disconnected",
            "does not have the slot's object mapped",
        ],
    );
    assert!(line.contains(&format!("pid={}", other.id())), "{line}");
    let mut a = vec!["--name", name.as_str()];
    a.extend_from_slice(&["0", "insert", "3", "4", "read", "3"]);
    run_as(server_user, CLIENT, &a).ok("insert 3 4: ok\nread 3: 4\n");
    other.kill().unwrap();
    other.wait().unwrap();
    let mut a = vec!["--name", name.as_str()];
    a.extend_from_slice(&["-", "quit"]);
    run_as(server_user, CLIENT, &a).ok("quit: ok\n");
    s.wait_exit_and_check_clean();
}

fn run_server_expect_fail_named(name: &str) -> Output {
    run(SERVER, &["--name", name, "--clients", "1"])
}

/// Names are validated, with one clear line, by both binaries (server status 1, client 2);
/// the longest valid name works.
#[test]
fn names_are_validated_by_both_binaries() {
    let _g = serial();
    let long = "n".repeat(65);
    let bad = [
        ("", "must be 1 to 64 characters"),
        ("a/b", "character '/' not allowed"),
        ("../x", "not allowed"),
        ("..", "must not start with '.' or '-' nor contain '..'"),
        ("a..b", "nor contain '..'"),
        (".x", "must not start with '.'"),
        ("-x", "must not start with '.' or '-'"),
        ("sp ace", "character ' ' not allowed"),
        ("caf\u{e9}", "not allowed"),
        (long.as_str(), "must be 1 to 64 characters"),
    ];
    for (name, msg) in bad {
        let flag = format!("--name={name}");
        run(SERVER, &[&flag]).fails(1, msg);
        run(CLIENT, &[&flag, "0", "read", "1"]).fails(2, msg);
    }
    let longest = format!("{}-{}", "m".repeat(50), std::process::id())
        .chars()
        .rev()
        .take(64)
        .collect::<String>();
    let s = ServerProc::start_named(&longest, &["--clients", "1"]);
    s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    s.quit_and_check_clean();
}

/// Every limit has a clear error one past its maximum, and the maximum itself is accepted.
#[test]
fn limits_have_clear_errors_beyond_their_maximum() {
    let _g = serial();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--clients", "1025"],
            "clients must be 1 to 1024, got 1025",
        ),
        (
            &["--max-threads", "65"],
            "max threads per client must be 1 to 64, got 65",
        ),
        (
            &["--max-threads", "0"],
            "max threads per client must be 1 to 64, got 0",
        ),
        (
            &["--threads", "3", "--max-threads", "2"],
            "threads per client must be 1 to 2, got 3",
        ),
        (
            &["--ring", "131072"],
            "ring capacity must be a power of two from 2 to 65536, got 131072",
        ),
        (
            &["--ring", "1"],
            "ring capacity must be a power of two from 2 to 65536, got 1",
        ),
        (
            &["--buckets", "16777217"],
            "buckets must be 1 to 16777216, got 16777217",
        ),
    ];
    for (args, msg) in cases {
        run_server_expect_fail(args).fails(1, msg);
    }
    // The maxima themselves.
    let s = ServerProc::start(&["--clients", "1024", "--ring", "2", "--buckets", "16777216"]);
    s.client(&["1023", "insert", "1", "2", "read", "1"])
        .ok("insert 1 2: ok\nread 1: 2\n");
    s.client(&["1024", "read", "1"])
        .fails(3, "client id 1024 is out of range: server");
    s.quit_and_check_clean();
    let s = ServerProc::start(&["--clients", "1", "--ring", "65536", "--threads", "64"]);
    s.client(&["0", "threads", "start", "1"]).fails(
        1,
        "thread limit: this client has 64 worker threads and at most 64 are allowed",
    );
    s.client(&["0", "threads", "stop", "read", "1"])
        .ok("threads stop: ok, 63 threads\nread 1: not found\n");
    s.quit_and_check_clean();
}
