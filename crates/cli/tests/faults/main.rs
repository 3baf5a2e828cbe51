//! Faults, hostile clients and security, with real processes and signals: a client that
//! truncates, grows or punches holes in its session object; another user at the front door, and
//! a socket planted by another user; clients SIGKILLed by the hundred mid-pipeline; a server
//! SIGKILLed or stopped under its waiting clients; futex storms and a stopped client with a full
//! response ring (what each costs the server); hostile clients scribbling over their own object
//! and lying in its record rings; races for one slot; names and limits.
//!
//! Servers here are mostly started with `--max-value 1K`: the smallest rings (64 KiB each, see
//! `shmkv::channel::ring_sizes`), so that rings fill up; the workloads write values of at most
//! `roles::MAX_WORKLOAD_VALUE` (1000) bytes.
//!
//! Child processes are this test binary run again (`child_role` with `SHMKV_FAULTS_ROLE`
//! set); their roles are in `tests/common/roles.rs`. Tests wait on conditions, polled with
//! deadlines (a sleep only spaces the polls, or picks a random moment to strike). They run one
//! at a time (`serial`): several measure times and CPU use, on a small machine. The figures
//! each measures are printed on stderr (`--nocapture`).
#![cfg(not(loom))]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/roles.rs"]
mod roles;

mod hostile;
mod killed;
mod races_and_limits;
mod users;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use roles::{Hostility, Model, Workload};
use shmkv::channel::RESP_CTRL;
use shmkv::client::{Client, ClientConfig};
use shmkv::record::record_size;
use shmkv::shm::Mapping;
use shmkv::wire::{Limits, Op, Request};
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
/// runs each role briefly against an in-process server, so that the roles the other tests rely
/// on are themselves checked.
#[test]
fn child_role() {
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        let code = roles::run_role(&spec, &AtomicBool::new(false));
        std::process::exit(code);
    }
    let _g = serial();
    let name = unique_name();
    let hostile_slots = Hostility::ALL.len() as u32;
    let server = shmkv::server::Server::start(shmkv::server::ServerConfig {
        name: name.clone(),
        buckets: 64,
        clients: hostile_slots + 1,
        threads: 2,
        // The smallest rings (64 KiB).
        limits: Limits {
            max_key: 4096,
            max_value: 1024,
        },
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
        let c = Client::connect(&ClientConfig::new(&name).slot(hostile_slots)).unwrap();
        c.insert(b"1", b"2").unwrap();
        assert_eq!(c.read(b"1").unwrap(), Some(b"2".to_vec()));
        stop.store(true, Ordering::SeqCst);
        assert_eq!(t.join().unwrap(), 0, "{h:?}");
        drop(c);
        wait_until(DEADLINE, || owner_of(&name, hostile_slots) == 0);
    }
    // The publisher, stopped before it starts: it publishes its batch, then takes every
    // answer.
    let stop = AtomicBool::new(true);
    assert_eq!(roles::run_role(&format!("publish {name} 0 5"), &stop), 0);
    let c = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
    for k in 0..5u64 {
        assert_eq!(
            c.read(&k.to_le_bytes()).unwrap(),
            Some(roles::published_value(k))
        );
    }
    drop(c);
    server.shutdown();
    // The listener counts what a client sends it (the planted-socket test relies on it).
    let path = std::env::temp_dir().join(format!("shmkv-listen-{}.sock", std::process::id()));
    let mut kid = Kid::spawn(&format!("listen {}", path.display()));
    kid.expect("LISTENING", DEADLINE);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(&[7u8; 23]).unwrap();
    drop(s);
    assert_eq!(kid.expect("READ", DEADLINE), "READ 23");
}

/// A child process running `spec`, with its stdout lines delivered on a channel.
struct Kid {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Kid {
    fn spawn(spec: &str) -> Kid {
        Self::spawn_with(spec, Stdio::null(), None)
    }

    /// Run the role as user and group `uid` (the caller must be root).
    fn spawn_as(uid: u32, spec: &str) -> Kid {
        Self::spawn_with(spec, Stdio::null(), Some(uid))
    }

    fn spawn_with(spec: &str, stdin: Stdio, uid: Option<u32>) -> Kid {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "child_role",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_ENV, spec)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(id) = uid {
            cmd.uid(id).gid(id);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run this test binary (as uid {uid:?}) for role {spec:?}: {e}")
        });
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

    fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
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

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
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

/// Connect to `slot`, retrying until `limit` (its previous session may still be ending).
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

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap();
}

/// Whether process `pid` (a child of ours, perhaps not reaped) is alive: it exists and is
/// neither a zombie nor dead.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .is_some_and(|c| c != 'Z' && c != 'X')
}

/// The session object client process `pid` holds, mapped here: the memfd the server created
/// ("shmkv-session") found among the process's descriptors and opened again through /proc.
fn session_object_of(pid: u32) -> Mapping {
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let path = e.unwrap().path();
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        if target.to_string_lossy().starts_with("/memfd:shmkv-session") {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            return Mapping::open_sealed(&f).unwrap();
        }
    }
    panic!("process {pid} holds no session object");
}

/// A ring's fill level (published and not yet taken) in a mapped session object, its control
/// block at `ctrl` (`REQ_CTRL` or `RESP_CTRL`): tail (offset 0) minus head (offset 64).
fn fill(map: &Mapping, ctrl: usize) -> u64 {
    let tail = map.atomic_u64(ctrl).unwrap().load(Ordering::SeqCst);
    let head = map.atomic_u64(ctrl + 64).unwrap().load(Ordering::SeqCst);
    tail.wrapping_sub(head)
}

/// Whether the server sleeps (or is about to) waiting for room in the response ring of a mapped
/// session object: its waiter flag (`space_waiting`, offset 136 of the control block) is set.
fn server_waits_for_room(map: &Mapping) -> bool {
    map.atomic_u32(RESP_CTRL + 136)
        .unwrap()
        .load(Ordering::SeqCst)
        == 1
}

/// Bytes the request record of `op` takes in a ring.
fn request_record(op: &Op) -> u64 {
    let r = Request {
        id: 1,
        op: op.clone(),
    };
    record_size(r.encoded_len()) as u64
}

/// A read of key number `k` (its 8 little-endian bytes).
fn read_op(k: u64) -> Op {
    Op::Read {
        key: k.to_le_bytes().to_vec(),
    }
}

/// Log lines saying a client was dropped.
fn drops(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("client dropped"))
        .map(str::to_string)
        .collect()
}

/// Whether log line `line` has the field `pid=<pid>`.
fn names_pid(line: &str, pid: u32) -> bool {
    let field = format!("pid={pid}");
    line.split_whitespace().any(|w| w == field)
}

/// Wait until the server's log says client process `pid` was dropped; returns that line.
fn wait_dropped(s: &ServerProc, pid: u32, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    loop {
        if let Some(l) = drops(&s.log()).into_iter().find(|l| names_pid(l, pid)) {
            return Some(l);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The server's share of one core over the next `window` (CPU time / wall time).
fn server_share(pid: u32, window: Duration) -> f64 {
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    wait_until(window + DEADLINE, || t0.elapsed() >= window);
    (cpu_time(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64()
}

fn median_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}
