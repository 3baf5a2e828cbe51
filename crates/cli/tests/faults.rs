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

mod common;
#[path = "common/roles.rs"]
mod roles;

use common::*;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use roles::{Hostility, Model, Rng, Workload};
use shmkv::channel::{REQ_CTRL, RESP_CTRL};
use shmkv::client::{Client, ClientConfig, ClientError};
use shmkv::record::record_size;
use shmkv::shm::Mapping;
use shmkv::wire::{Limits, Op, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
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

/// A client's session object resized every way there is through the descriptor it holds
/// (truncated to 0 and to a page, grown to 512 MiB by `ftruncate`, `fallocate` and a write past
/// the end, its seals changed, through its own descriptor and one reopened from /proc): every
/// attempt fails with EPERM, and the session goes on unaffected. Then a hostile process punches
/// holes over its whole object again and again (zeroing header, ring counters and slots) while
/// it queues requests: the server drops it (or it stays unaffected). All along, two other
/// clients, checked against their models, see no error and no wrong answer; the server never
/// dies, and answers afterwards.
#[test]
fn a_resized_or_hole_punched_object_harms_only_its_session() {
    let _g = serial();
    let s = ServerProc::start(&[
        "--buckets",
        "256",
        "--clients",
        "4",
        "--threads",
        "2",
        "--max-value",
        "1K",
    ]);
    let spid = s.pid();
    let mut others: Vec<Checker> = (1..3)
        .map(|slot| Checker::start(&s.name, slot, honest(slot, 0)))
        .collect();
    // In this process: a client whose own object is resized.
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let fd = c.object_fd();
    let len = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap().st_size;
    assert_eq!(nix::unistd::ftruncate(fd, 0), Err(Errno::EPERM));
    assert_eq!(nix::unistd::ftruncate(fd, 4096), Err(Errno::EPERM));
    assert_eq!(
        nix::unistd::ftruncate(fd, roles::GROW_TO),
        Err(Errno::EPERM)
    );
    for round in 0..100u64 {
        let wrong = roles::resize_attempts(fd, len);
        assert!(wrong.is_empty(), "round {round}: {wrong:?}");
        // Its session is unaffected.
        let (key, value) = (round.to_le_bytes(), (round + 1).to_string());
        assert_eq!(c.insert(&key, value.as_bytes()).unwrap(), None);
        assert_eq!(c.read(&key).unwrap(), Some(value.into_bytes()));
    }
    assert_eq!(nix::sys::stat::fstat(fd.as_raw_fd()).unwrap().st_size, len);
    drop(c);
    for o in &mut others {
        o.progresses(3, DEADLINE);
    }
    // The same from another process, while the others work: it is never dropped.
    let mut kid = Kid::spawn(&format!("hostile {} 0 resize 1", s.name));
    kid.expect("READY", DEADLINE);
    kid.expect("ROUNDS 300", DEADLINE);
    for o in &mut others {
        o.progresses(5, DEADLINE);
    }
    assert!(kid.running(), "the resizing client stopped: {:?}", kid.seen);
    let lines = kid.kill();
    assert!(
        !lines.iter().any(|l| l.starts_with("ERR")),
        "a resize went through, or the session broke: {lines:?}"
    );
    assert!(drops(&s.log()).is_empty(), "{}", s.log());

    // Hole punching.
    let mut kid = Kid::spawn(&format!("hostile {} 0 punch 2", s.name));
    let pid: u32 = kid.expect("READY", DEADLINE)[6..].parse().unwrap();
    kid.expect("ROUNDS 300", DEADLINE);
    for o in &mut others {
        o.progresses(10, DEADLINE);
    }
    // Dropped, once the punch has set the ring's counters back under the server's.
    let dropped = wait_dropped(&s, pid, Duration::from_secs(5));
    assert!(kid.running(), "the punching client stopped: {:?}", kid.seen);
    let lines = kid.kill();
    assert!(
        !lines.iter().any(|l| l.starts_with("ERR")),
        "the hole punch failed: {lines:?}"
    );
    if let Some(l) = &dropped {
        assert!(l.contains("reason="), "{l}");
    }
    for o in &mut others {
        o.progresses(5, DEADLINE);
    }
    for o in others {
        assert!(o.finish() > 20);
    }
    // The server lives and answers, on every slot, the attacked one too.
    assert!(alive(spid), "the server died");
    let c = connect_within(&s.name, 0, DEADLINE);
    let stop = AtomicBool::new(false);
    let ran = roles::run_checked(
        &c,
        &honest(0, 1),
        &mut Model::default(),
        0,
        3,
        &stop,
        |_| {},
    );
    assert_eq!(ran, Ok(3));
    drop(c);
    for slot in 1..4 {
        s.client(&[&slot.to_string(), "read", "99999"])
            .ok("read 99999: not found\n");
    }
    let log = s.quit_and_check_clean();
    assert!(!log.contains("panicked"), "{log}");
    eprintln!(
        "resize attempts: all EPERM, the session unaffected; hole punching: {}",
        dropped.as_deref().unwrap_or("the session was not dropped")
    );
}

/// Whether the test runs as root (it must run processes as other users); if not, say that
/// `test` is skipped and why.
fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("{test}: skipped: not root, so it cannot run processes as other users");
    }
    root
}

/// Run `bin` as user and group `id` (another user than the server's).
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

/// Another user can neither connect nor take the socket. The socket directory is private (mode
/// 0700, the server's user), so its connect fails with EACCES: a clear "permission denied",
/// status 3; by name it looks in its own directory and finds no server; a server of its own
/// cannot bind the socket. A socket in a directory anyone may enter is itself mode 0600: the
/// same "permission denied". And one made writable for everyone: the server checks the
/// client's credentials (SO_PEERCRED), logs the refusal and gives it nothing. Needs root (to
/// run processes as another user).
#[test]
fn another_user_can_neither_connect_nor_take_the_socket() {
    let _g = serial();
    if !root_or_skip("another_user_can_neither_connect_nor_take_the_socket") {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let other = 65534; // nobody
    let me = nix::unistd::geteuid().as_raw();
    let s = ServerProc::start(&["--buckets", "16", "--clients", "2"]);
    let sock = shmkv::door::socket_path(&s.name);
    let sock_s = sock.to_str().unwrap();
    let dir = std::fs::metadata(shmkv::door::socket_dir()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    assert_eq!(dir.uid(), me);
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!(m.uid(), me);
    for args in [&["0", "read", "1"][..], &["read", "1"][..]] {
        let mut a = vec!["--socket", sock_s];
        a.extend_from_slice(args);
        run_as(other, CLIENT, &a).fails(3, "permission denied");
    }
    run_as(other, CLIENT, &["--name", &s.name, "0", "read", "1"]).fails(3, "no shmkv server named");
    let out = run_as(other, SERVER, &["--name", &s.name, "--socket", sock_s]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("EACCES"), "{out:?}");
    s.client(&["0", "insert", "1", "2", "read", "1"])
        .ok("insert 1 2: ok\nread 1: 2\n");
    let log = s.quit_and_check_clean();
    assert!(!log.contains(&format!("uid={other}")), "{log}");

    // A socket of its own path, in a directory anyone may enter.
    let open = std::env::temp_dir().join(format!("shmkv-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&open);
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = open.join("s.sock");
    let path_s = path.to_str().unwrap();
    let s = ServerProc::start(&["--buckets", "16", "--clients", "2", "--socket", path_s]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    run_as(other, CLIENT, &["--socket", path_s, "0", "read", "1"]).fails(3, "permission denied");
    // Writable for everyone: the server itself refuses another user.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_as(
        other,
        CLIENT,
        &["--socket", path_s, "0", "insert", "5", "6"],
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    // The server answers with a refusal before it closes the connection.
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    let line = s.wait_log(
        DEADLINE,
        &[
            "connection refused: the client runs as another user",
            &format!("uid={other}"),
        ],
    );
    assert!(line.contains("WARN"), "{line}");
    assert!(!s.log().contains("client connected"), "{}", s.log());
    run(CLIENT, &["--socket", path_s, "0", "read", "5"]).ok("read 5: not found\n");
    run(CLIENT, &["--socket", path_s, "-", "quit"]).ok("quit: ok\n");
    s.wait_exit_and_check_clean();
    assert!(!path.exists());
    std::fs::remove_dir_all(&open).unwrap();
    eprintln!(
        "another user's client, the server refusing it: {}",
        out.stderr.trim()
    );
}

/// A socket planted by another user (a listener running as uid 1, where a client is pointed
/// with `--socket`): the client checks who listens (SO_PEERCRED) before it sends a byte, and
/// refuses with one line naming the uid, status 3. The listener counts what it received: zero
/// bytes (the same listener run as root receives the client's hello). Needs root.
#[test]
fn a_socket_planted_by_another_user_gets_nothing() {
    let _g = serial();
    if !root_or_skip("a_socket_planted_by_another_user_gets_nothing") {
        return;
    }
    let planter = 1; // daemon
    let path = format!("/tmp/shmkv-planted-{}.sock", std::process::id());
    // The control: a listener of our own user receives the client's hello (and then never
    // answers, so the client gives up).
    let _ = std::fs::remove_file(&path);
    let mut kid = Kid::spawn(&format!("listen {path}"));
    kid.expect("LISTENING", DEADLINE);
    let mut config = ClientConfig::new("planted").socket(&path);
    config.attach_timeout = Duration::from_millis(200);
    assert!(matches!(
        Client::connect(&config),
        Err(ClientError::Timeout(_))
    ));
    assert_eq!(
        kid.expect("READ", DEADLINE),
        format!("READ {}", shmkv::door::HELLO_LEN)
    );

    let _ = std::fs::remove_file(&path);
    let mut kid = Kid::spawn_as(planter, &format!("listen {path}"));
    let pid: u32 = kid.expect("LISTENING", DEADLINE)[10..].parse().unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), planter);
    }
    let out = run(CLIENT, &["--socket", &path, "0", "insert", "42", "4242"]);
    out.fails(3, &format!("runs as uid {planter}"));
    assert!(out.stderr.contains(&format!("pid {pid}")), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(kid.expect("READ", DEADLINE), "READ 0");
    // The library, the same.
    let _ = std::fs::remove_file(&path);
    let mut kid = Kid::spawn_as(planter, &format!("listen {path}"));
    kid.expect("LISTENING", DEADLINE);
    match Client::connect(&ClientConfig::new("planted").socket(&path)) {
        Err(ClientError::UntrustedServer { uid, .. }) => assert_eq!(uid, planter),
        other => panic!("{other:?}"),
    }
    assert_eq!(kid.expect("READ", DEADLINE), "READ 0");
    let _ = std::fs::remove_file(&path);
    eprintln!("planted socket: {}", out.stderr.trim());
}

/// How many clients `killed_clients_are_freed_within_100ms_and_hurt_no_one` kills.
const KILLS: usize = 200;

/// After the SIGKILL (at `killed`) of client process `pid` holding slot `slot`: poll until the
/// server has logged its disconnection, and until a new session on that slot opens (a handshake
/// asking for exactly that slot, with no retry in the library), within `limit`. Returns the new
/// client and how long after the kill each came.
fn freed_after(
    s: &ServerProc,
    slot: u32,
    pid: u32,
    killed: Instant,
    limit: Duration,
) -> (Client, Duration, Duration) {
    let mut config = ClientConfig::new(&s.name).slot(slot);
    config.attach_timeout = Duration::ZERO;
    let (mut logged, mut got) = (None, None);
    loop {
        if logged.is_none()
            && s.log()
                .lines()
                .rev()
                .any(|l| l.contains("client disconnected") && names_pid(l, pid))
        {
            logged = Some(killed.elapsed());
        }
        if got.is_none() {
            match Client::connect(&config) {
                Ok(c) => got = Some((c, killed.elapsed())),
                Err(ClientError::SlotBusy { .. }) => {}
                Err(e) => panic!("slot {slot}: {e}"),
            }
        }
        if let (Some(l), Some(_)) = (logged, &got) {
            let (c, t) = got.take().expect("just seen");
            return (c, l, t);
        }
        assert!(
            killed.elapsed() < limit,
            "{limit:?} after the kill of the client on slot {slot}: logged {logged:?}, slot free {:?}",
            got.as_ref().map(|g| g.1)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// 200 clients SIGKILLed one after another at random moments while they pipeline requests
/// (some in the request ring, some being answered, the response ring often full), while two
/// other clients work: each killed session is freed within 100 ms of the kill (its slot
/// opens to a new client; the server logs the death); the new client finds every acknowledged
/// operation of the dead one in the table and none of its answers; the other clients, checked
/// against their models all along, see no error and no wrong answer.
#[test]
fn killed_clients_are_freed_within_100ms_and_hurt_no_one() {
    let _g = serial();
    let s = ServerProc::start(&[
        "--buckets",
        "256",
        "--clients",
        "3",
        "--threads",
        "2",
        "--max-value",
        "1K",
    ]);
    let mut others: Vec<Checker> = (1..3)
        .map(|slot| Checker::start(&s.name, slot, honest(slot, 0)))
        .collect();
    let mut rng = Rng::new(42);
    let (mut freed, mut noticed) = (Vec::with_capacity(KILLS), Vec::with_capacity(KILLS));
    let mut acks = 0;
    let t0 = Instant::now();
    for round in 0..KILLS as u64 {
        let w = Workload {
            base: (round + 1) << 32,
            keys: 64,
            seed: 1000 + round,
            batch: 100,
        };
        let mut kid = Kid::spawn(&w.spec(&s.name, Some(0)));
        kid.expect("ATTACHED", DEADLINE);
        let pid = kid.pid();
        // A random moment: right away, or after a batch or two, plus up to 3 ms.
        let want = rng.below(3);
        if want > 0 {
            kid.expect(&format!("ACK {}", want - 1), DEADLINE);
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        let killed = Instant::now();
        kid.signal(Signal::SIGKILL);
        let (c, seen, took) = freed_after(&s, 0, pid, killed, Duration::from_secs(3));
        noticed.push(seen);
        freed.push(took);
        let lines = kid.kill();
        assert!(
            !lines.iter().any(|l| l.starts_with("ERR")),
            "the child saw an error: {lines:?}"
        );
        acks += acked(&lines);
        // What the dead one left; now and then a fresh checked pipeline (its request ids
        // start at 1 again, like the dead one's).
        roles::verify_left_behind(&c, &w, acked(&lines)).unwrap();
        if round % 20 == 0 {
            let fresh = Workload {
                base: (round + 1) << 32 | 1 << 31,
                ..w
            };
            let stop = AtomicBool::new(false);
            let ran = roles::run_checked(&c, &fresh, &mut Model::default(), 0, 3, &stop, |_| {});
            assert_eq!(ran, Ok(3));
        }
        assert_eq!(c.stray_responses(), 0, "answers meant for the dead client");
        drop(c);
        if round % 25 == 24 {
            for o in &mut others {
                o.progresses(1, Duration::from_secs(5));
            }
        }
    }
    let elapsed = t0.elapsed();
    let batches: Vec<u64> = others.into_iter().map(Checker::finish).collect();
    // Every slot still answers (no worker is stuck on a dead client's ring).
    for slot in 0..3 {
        s.client(&[&slot.to_string(), "read", "1"])
            .ok("read 1: not found\n");
    }
    let log = s.quit_and_check_clean();
    assert!(!log.contains("panicked"), "{log}");
    let deaths = log
        .lines()
        .filter(|l| l.contains("died without detaching") && l.contains("slot=0"))
        .count();
    assert_eq!(deaths, KILLS, "{log}");
    assert!(drops(&log).is_empty(), "{log}");
    let (median, max) = median_max(freed);
    let (seen_median, seen_max) = median_max(noticed);
    eprintln!(
        "{KILLS} clients SIGKILLed in {elapsed:?} ({acks} of their batches acknowledged): death logged after median {seen_median:?}, max {seen_max:?}; slot free again after median {median:?}, max {max:?}; the other two clients checked {batches:?} batches"
    );
    assert!(
        seen_max < Duration::from_millis(100),
        "a death was noticed after {seen_max:?}"
    );
    assert!(
        max < Duration::from_millis(100),
        "a slot was freed after {max:?}"
    );
}

/// A server SIGKILLed under several waiting clients (it is SIGSTOPped first, so that their calls
/// are pending: threads waiting for pipelined answers, threads blocked on a full request ring, a
/// command-line client in the middle of a read): every call fails with "the server died" within
/// 100 ms of the kill, though the clients' timeouts are 30 s (the kernel's hang-up of each
/// connection says it). New connections find no server; a new server of the same name starts
/// at once, replacing the stale socket.
#[test]
fn a_killed_server_fails_every_waiting_call_within_100ms() {
    let _g = serial();
    let args = [
        "--buckets",
        "64",
        "--clients",
        "5",
        "--threads",
        "2",
        "--max-value",
        "1K",
    ];
    let mut s = ServerProc::start(&args);
    let name = s.name.clone();
    let patient = Duration::from_secs(30);
    let clients: Vec<Arc<Client>> = (0..4)
        .map(|slot| {
            Arc::new(
                Client::connect(&ClientConfig::new(&name).slot(slot).timeout(patient)).unwrap(),
            )
        })
        .collect();
    for (k, c) in clients.iter().enumerate() {
        assert_eq!(c.insert(&(k as u64).to_le_bytes(), b"1").unwrap(), None);
    }
    // Every read here takes the same number of bytes in a ring; the request rings are 64 KiB.
    let read = request_record(&read_op(1));
    let ring = u64::from(clients[0].info().req_capacity);
    let full = ring / read + 100;
    let maps: Vec<Mapping> = clients
        .iter()
        .map(|c| Mapping::open_sealed(&c.object_fd()).unwrap())
        .collect();
    // A command-line client reading its operations from stdin, connected.
    let mut cli = Command::new(CLIENT)
        .args(["--name", &name, "--timeout", "30", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cli_in = cli.stdin.take().unwrap();
    let mut cli_out = BufReader::new(cli.stdout.take().unwrap());
    cli_in.write_all(b"insert 9 9\n").unwrap();
    let mut line = String::new();
    cli_out.read_line(&mut line).unwrap();
    assert_eq!(line, "insert 9 9: ok\n");
    let cli_map = session_object_of(cli.id());

    stop_and_wait(s.pid());
    type Call = std::thread::JoinHandle<(String, Result<(), ClientError>, Instant)>;
    let mut calls: Vec<Call> = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let c2 = c.clone();
        calls.push(std::thread::spawn(move || {
            let r = c2
                .submit_all(&vec![read_op(1); 8])
                .and_then(|ts| c2.wait(ts[0]).map(drop));
            (
                format!("client {i}: waiting for answers"),
                r,
                Instant::now(),
            )
        }));
        wait_until(DEADLINE, || fill(&maps[i], REQ_CTRL) == 8 * read);
        if i < 2 {
            // A second waiter (not the one draining the ring), and a submitter blocked on
            // the full request ring.
            let c2 = c.clone();
            calls.push(std::thread::spawn(move || {
                let r = c2.read(&3u64.to_le_bytes()).map(drop);
                (format!("client {i}: a second waiter"), r, Instant::now())
            }));
            wait_until(DEADLINE, || fill(&maps[i], REQ_CTRL) == 9 * read);
            let c2 = c.clone();
            calls.push(std::thread::spawn(move || {
                let r = c2.submit_all(&vec![read_op(2); full as usize]).map(drop);
                (
                    format!("client {i}: blocked on a full ring"),
                    r,
                    Instant::now(),
                )
            }));
            // Full: no room for one more.
            wait_until(DEADLINE, || ring - fill(&maps[i], REQ_CTRL) < read);
        }
    }
    cli_in.write_all(b"read 9\n").unwrap();
    let cli_read = request_record(&Op::Read { key: b"9".to_vec() });
    wait_until(DEADLINE, || fill(&cli_map, REQ_CTRL) == cli_read);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = cli.wait().unwrap();
        let _ = tx.send((status, Instant::now()));
    });

    let killed = Instant::now();
    s.kill_hard();
    let mut failed = Vec::new();
    for h in calls {
        let (what, r, at) = h.join().unwrap();
        assert_eq!(r, Err(ClientError::ServerGone("died")), "{what}");
        failed.push((what, at - killed));
    }
    let (status, at) = rx.recv_timeout(DEADLINE).unwrap();
    assert_eq!(status.code(), Some(3));
    failed.push(("command-line client: read 9".into(), at - killed));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut cli_out, &mut err).unwrap();
    drop(cli_in);
    for (what, t) in &failed {
        assert!(
            *t < Duration::from_millis(100),
            "{what}: failed {t:?} after the kill"
        );
    }
    // Later calls fail at once; new connections find no server.
    assert_eq!(
        clients[0].read(&1u64.to_le_bytes()),
        Err(ClientError::ServerGone("died"))
    );
    assert!(matches!(
        Client::connect(&ClientConfig::new(&name)),
        Err(ClientError::NoServer { .. })
    ));
    run_client_named(&name, &["1", "read", "1"]).fails(3, "no shmkv server named");
    assert!(
        server_files(&name).contains(&format!("{name}.sock")),
        "the dead server's socket file is gone: {:?}",
        server_files(&name)
    );
    drop((clients, maps, cli_map));
    // A new server of that name starts at once, on the stale socket's path.
    let t0 = Instant::now();
    let s2 = ServerProc::start_named(&name, &args);
    let restart = t0.elapsed();
    assert!(restart < Duration::from_secs(2), "{restart:?}");
    s2.client(&["0", "read", "0"]).ok("read 0: not found\n");
    s2.quit_and_check_clean();
    drop(s);
    let figures: Vec<String> = failed
        .iter()
        .map(|(what, t)| format!("{what}: {t:?}"))
        .collect();
    eprintln!(
        "server SIGKILLed: calls failed after {}; a new server was ready {restart:?} later",
        figures.join(", ")
    );
}

/// A server that is stopped (SIGSTOP), not dead, is given up after the configured timeout (a
/// waiting read, a submit blocked on a full ring); a new connection gives up once the handshake
/// times out. When it resumes it holds every acknowledged insert, and the given-up sessions
/// end.
#[test]
fn a_stopped_server_is_given_up_after_the_timeout() {
    let _g = serial();
    let s = ServerProc::start(&[
        "--buckets",
        "64",
        "--clients",
        "4",
        "--threads",
        "2",
        "--max-value",
        "1K",
    ]);
    let t = Duration::from_millis(300);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0).timeout(t)).unwrap();
    assert_eq!(c.insert(b"7", b"70").unwrap(), None);
    let c2 = Client::connect(&ClientConfig::new(&s.name).slot(1).timeout(t)).unwrap();
    stop_and_wait(s.pid());
    let t0 = Instant::now();
    let r = c.read(b"7");
    let read_took = t0.elapsed();
    assert_eq!(r, Err(ClientError::Timeout(t)));
    assert_eq!(c.read(b"7"), Err(ClientError::Timeout(t)), "given up");
    // More reads than the request ring (64 KiB) holds.
    let more = u64::from(c2.info().req_capacity) / request_record(&read_op(2)) + 100;
    let t0 = Instant::now();
    let r = c2.submit_all(&vec![read_op(2); more as usize]).map(|_| ());
    let submit_took = t0.elapsed();
    assert_eq!(r, Err(ClientError::Timeout(t)));
    for took in [read_took, submit_took] {
        assert!(took >= t && took < Duration::from_millis(1500), "{took:?}");
    }
    // A new connection waits for the handshake's answer (the attach timeout, 1 s).
    let t0 = Instant::now();
    let out = s.client(&["--timeout", "0.3", "2", "read", "7"]);
    let cli_took = t0.elapsed();
    out.fails(3, "the server did not answer within");
    assert!(cli_took < Duration::from_secs(3), "{cli_took:?}");
    drop((c, c2));
    // It resumes: the acknowledged insert is there; the given-up slots are freed.
    signal(s.pid(), Signal::SIGCONT);
    let c = connect_within(&s.name, 0, DEADLINE);
    assert_eq!(c.read(b"7").unwrap(), Some(b"70".to_vec()));
    drop(connect_within(&s.name, 1, DEADLINE));
    drop(c);
    s.quit_and_check_clean();
    eprintln!(
        "server SIGSTOPped, timeout 300ms: read failed after {read_took:?}, submit {submit_took:?}; a new command-line client ({}) after {cli_took:?}",
        out.stderr.trim()
    );
}

/// What the server costs under a futex storm (the request ring's data futex and the response
/// ring's space futex bumped and woken, or only woken, as fast as a process can), and while a
/// pipelining client is stopped (SIGSTOP) with its response ring full and requests still
/// waiting: under 5 % of one core over a few seconds each. The storms get their client dropped
/// with a logged reason (the abuse policy); the stopped client is not dropped, and once it
/// resumes it goes on with every answer right. An idle client is connected throughout.
#[test]
fn futex_storms_and_a_stopped_client_cost_the_server_little() {
    let _g = serial();
    const WINDOW: Duration = Duration::from_secs(3);
    let s = ServerProc::start(&[
        "--buckets",
        "256",
        "--clients",
        "4",
        "--threads",
        "2",
        "--max-value",
        "1K",
    ]);
    let spid = s.pid();
    let idle = Client::connect(&ClientConfig::new(&s.name).slot(3)).unwrap();
    assert_eq!(idle.insert(b"1", b"1").unwrap(), None);
    let baseline = server_share(spid, Duration::from_secs(1));
    let mut figures = vec![format!("idle: {:.2}% of a core", baseline * 100.0)];
    for (i, h) in [Hostility::Futex, Hostility::WakeOnly]
        .into_iter()
        .enumerate()
    {
        let mut kid = Kid::spawn(&format!("hostile {} 0 {} {i}", s.name, h.name()));
        let pid: u32 = kid.expect("READY", DEADLINE)[6..].parse().unwrap();
        let (cpu0, t0) = (cpu_time(spid), Instant::now());
        let line = wait_dropped(&s, pid, DEADLINE)
            .unwrap_or_else(|| panic!("{h:?}: the storm was not dropped:\n{}", s.log()));
        let dropped_after = t0.elapsed();
        assert!(
            line.contains("such events a second") || line.contains("strikes: more than"),
            "{line}"
        );
        // The storm goes on (on an object the server no longer looks at) to the window's end.
        wait_until(WINDOW + DEADLINE, || t0.elapsed() >= WINDOW);
        let share = (cpu_time(spid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
        assert!(kid.running(), "{h:?}: the storm stopped: {:?}", kid.seen);
        drop(kid.kill());
        figures.push(format!(
            "{} storm: {:.2}% of a core over {:?}; dropped after {dropped_after:?}",
            h.name(),
            share * 100.0,
            WINDOW
        ));
        assert!(
            share < 0.05,
            "{h:?}: the server used {:.1}% of a core",
            share * 100.0
        );
        // The others are served, correctly.
        let mut others: Vec<Checker> = (1..3)
            .map(|slot| Checker::start(&s.name, slot, honest(slot, i as u64)))
            .collect();
        for o in &mut others {
            o.progresses(3, DEADLINE);
        }
        for o in others {
            o.finish();
        }
        assert_eq!(idle.read(b"1").unwrap(), Some(b"1".to_vec()));
    }

    // A pipelining client that submits several rings' worth at a time (2000 requests of
    // about 100 bytes on average, into rings of 64 KiB), stopped with its response ring full
    // and requests still waiting.
    let ring = u64::from(idle.info().resp_capacity);
    // The longest answer record of the workload (a value of 1000 bytes); with the padding
    // that may go before it, the response ring is full when less than twice that is free.
    let answer = record_size(1100) as u64;
    let w = Workload {
        base: 7 << 40,
        keys: 500,
        seed: 9,
        batch: 2000,
    };
    let mut kid = Kid::spawn(&format!("{} 60", w.spec(&s.name, Some(0))));
    let pid: u32 = kid
        .expect("ATTACHED", DEADLINE)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    kid.expect("ACK 0", DEADLINE);
    let obj = session_object_of(pid);
    let mut tries = 0;
    loop {
        tries += 1;
        stop_and_wait(pid);
        // The server answers what is in the request ring until the response ring is full.
        let end = Instant::now() + Duration::from_secs(1);
        let full = loop {
            if server_waits_for_room(&obj)
                && ring - fill(&obj, RESP_CTRL) < 2 * answer
                && fill(&obj, REQ_CTRL) > 0
            {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if full {
            break;
        }
        assert!(tries < 20, "never stopped with a full response ring");
        signal(pid, Signal::SIGCONT);
        std::thread::sleep(Duration::from_micros(Rng::new(tries).below(20_000)));
    }
    let (waiting, answers) = (fill(&obj, REQ_CTRL), fill(&obj, RESP_CTRL));
    let share = server_share(spid, WINDOW);
    assert_eq!(fill(&obj, RESP_CTRL), answers, "still full");
    assert_eq!(fill(&obj, REQ_CTRL), waiting, "nothing more taken");
    figures.push(format!(
        "a stopped client, response ring full ({answers} of {ring} bytes), {waiting} bytes of requests waiting: {:.2}% of a core over {WINDOW:?}",
        share * 100.0
    ));
    assert!(
        share < 0.05,
        "stopped client: the server used {:.1}% of a core",
        share * 100.0
    );
    // It resumes and goes on, every answer checked.
    signal(pid, Signal::SIGCONT);
    let last = acked(&kid.seen);
    kid.expect(&format!("ACK {}", last + 1), DEADLINE);
    let lines = kid.kill();
    assert!(!lines.iter().any(|l| l.starts_with("ERR")), "{lines:?}");
    assert_eq!(idle.read(b"1").unwrap(), Some(b"1".to_vec()));
    drop(idle);
    let log = s.quit_and_check_clean();
    assert!(
        !drops(&log).iter().any(|l| names_pid(l, pid)),
        "the stopped client was dropped:\n{log}"
    );
    assert_eq!(drops(&log).len(), 2, "exactly the two storms:\n{log}");
    eprintln!("server CPU: {}", figures.join("; "));
}

/// Hostile processes, each attacking its own session object in one way (arbitrary values
/// anywhere, futex storms, a ring kept full, a garbage flood, the state word and magic flipped,
/// holes punched): the server does not spin (its CPU use is measured while the hostile one
/// runs alone), drops each with a logged reason, keeps serving the other clients (checked
/// against their models) while it goes on, serves a new client on that slot once it is gone,
/// and its memory does not grow.
#[test]
fn hostile_writers_harm_only_themselves() {
    let _g = serial();
    let s = ServerProc::start(&["--buckets", "256", "--clients", "3", "--max-value", "1K"]);
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
    let writers = Hostility::ALL.into_iter().filter(|h| h.must_be_dropped());
    for (i, h) in writers.enumerate() {
        let mut kid = Kid::spawn(&format!("hostile {} 0 {} {i}", s.name, h.name()));
        let pid: u32 = kid.expect("READY", DEADLINE)[6..].parse().unwrap();
        // The server's CPU use while the hostile one runs alone.
        let share = server_share(spid, Duration::from_secs(1));
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
        let line = wait_dropped(&s, pid, DEADLINE).unwrap_or_else(|| {
            panic!(
                "{h:?}: the hostile client was not dropped within {DEADLINE:?}:\n{}",
                s.log()
            )
        });
        assert!(line.contains("reason="), "{line}");
        let drop_wait = dropped_by.elapsed();
        drop(kid.kill());
        // Once it is gone the slot serves a new client correctly.
        let gone = Instant::now();
        let c = connect_within(&s.name, 0, DEADLINE);
        let reused = gone.elapsed();
        let stop = AtomicBool::new(false);
        let w = honest(0, phase);
        assert_eq!(
            roles::run_checked(&c, &w, &mut Model::default(), 0, 3, &stop, |_| {}),
            Ok(3)
        );
        drop(c);
        let why = line.split("reason=").nth(1).unwrap_or("").to_string();
        figures.push(format!(
            "{}: server CPU {:.1}% of a core; dropped (waited {drop_wait:?} more): {why}; slot usable again {reused:?} after it was killed",
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
    // Pointless work was a reason at least once (the futex storms cause nothing else).
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

/// Every lie a client can tell in its request ring (a record longer than the ring's maximum
/// or than what is published, a padding record that does not end at the end of the data area,
/// an unknown kind, a misaligned tail, a tail more than the capacity ahead) gets it dropped at
/// once, with the lie named in the log; the other client, checked against its model, never
/// notices, and the slot serves a new client afterwards.
#[test]
fn every_lie_in_a_request_ring_gets_its_client_dropped() {
    let _g = serial();
    let s = ServerProc::start(&["--clients", "2", "--threads", "2", "--max-value", "1K"]);
    let mut other = Checker::start(&s.name, 1, honest(1, 0));
    for (k, lie) in roles::LIES.iter().enumerate() {
        let mut kid = Kid::spawn(&format!("hostile {} 0 lying {k}", s.name));
        let pid: u32 = kid.expect("READY", DEADLINE)[6..].parse().unwrap();
        let line = wait_dropped(&s, pid, DEADLINE)
            .unwrap_or_else(|| panic!("lie {k} ({lie}): not dropped:\n{}", s.log()));
        assert!(
            line.contains(&format!(
                "reason=its ring is corrupt: record ring corrupt: {lie}"
            )),
            "lie {k}: {line}"
        );
        drop(kid.kill());
        other.progresses(2, DEADLINE);
        let c = connect_within(&s.name, 0, DEADLINE);
        let stop = AtomicBool::new(false);
        let w = honest(0, k as u64 + 1);
        assert_eq!(
            roles::run_checked(&c, &w, &mut Model::default(), 0, 2, &stop, |_| {}),
            Ok(2)
        );
    }
    assert!(other.finish() > 10);
    let log = s.quit_and_check_clean();
    assert_eq!(drops(&log).len(), roles::LIES.len(), "{log}");
}

/// The pointless-work limits never drop a well-behaved client: many worker threads woken at
/// once by each detach, clients that come and go without a request, a pipelined client whose
/// small response ring is full most of the time.
#[test]
fn well_behaved_clients_are_never_dropped() {
    let _g = serial();
    let s = ServerProc::start(&["--clients", "1", "--max-value", "1K"]);
    let threads0 = threads_of(s.pid());
    let mut rss_warm = 0;
    for round in 0..60u64 {
        if round == 10 {
            rss_warm = rss_kib(s.pid());
        }
        let c = connect_within(&s.name, 0, DEADLINE);
        assert_eq!(c.start_threads(15).unwrap(), 16);
        let (key, value) = (round.to_le_bytes(), (round * 3).to_string());
        assert_eq!(c.insert(&key, value.as_bytes()).unwrap(), None);
        assert_eq!(c.read(&key).unwrap(), Some(value.into_bytes()));
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
    // Rounds of 1000 inserts over 500 keys with 200-byte values: each answer after the first
    // round carries the value it replaced, and a round's answers (about 220 KB) are more than
    // three times the 64 KiB response ring.
    let c = connect_within(&s.name, 0, DEADLINE);
    let value = |round: u64, k: u64| vec![(round * 7 + k) as u8; 200];
    for round in 0..20u64 {
        let ops: Vec<Op> = (0..1000u64)
            .map(|i| Op::Insert {
                key: format!("wb{}", i % 500).into_bytes(),
                value: value(round, i),
            })
            .collect();
        let tickets = c.submit_all(&ops).unwrap();
        for (i, t) in (0..1000u64).zip(tickets) {
            let want = match (round, i) {
                (0, 0..500) => shmkv::client::Outcome::Created,
                (_, 0..500) => shmkv::client::Outcome::Replaced(value(round - 1, i + 500)),
                _ => shmkv::client::Outcome::Replaced(value(round, i - 500)),
            };
            assert_eq!(c.wait(t).unwrap(), want, "round {round} insert {i}");
        }
    }
    drop(c);
    // The threads the clients started have retired: a new client starts with `--threads`.
    wait_until(DEADLINE, || threads_of(s.pid()) == threads0);
    let log = s.quit_and_check_clean();
    assert!(!log.contains("client dropped"), "{log}");
}

/// Many processes, then many threads, ask for the same slot at the same moment: exactly one
/// gets it each time, the others a clear "in use by process <winner>" error.
#[test]
fn racing_clients_exactly_one_wins() {
    let _g = serial();
    let s = ServerProc::start(&["--buckets", "16", "--clients", "2"]);
    for _round in 0..4 {
        let mut kids: Vec<Kid> = (0..8)
            .map(|_| Kid::spawn_with(&format!("claim {} 0", s.name), Stdio::piped(), None))
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
    // Threads of one process (same pid): the server's slot table still lets one in.
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
        run(SERVER, &[&flag]).fails(2, msg);
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
            &["--max-key", "65537"],
            "max key must be 1 to 65536 bytes, got 65537",
        ),
        (
            &["--max-key", "0"],
            "max key must be 1 to 65536 bytes, got 0",
        ),
        (
            &["--max-value", "67108865"],
            "max value must be 0 to 67108864 bytes, got 67108865",
        ),
        (
            &["--buckets", "16777217"],
            "buckets must be 1 to 16777216, got 16777217",
        ),
    ];
    // Settings out of range are usage errors (status 2), like the rest of a bad command line.
    for (args, msg) in cases {
        run_server_expect_fail(args).fails(2, msg);
    }
    // A size that does not fit the wire's 32-bit length: a usage error.
    run_server_expect_fail(&["--max-value", "4G"]).fails(2, "--max-value 4294967296 is too large");
    run_server_expect_fail(&["--max-key", "64X"]).fails(2, "unknown unit 'X'");
    // The maxima themselves (and the smallest limits: 1-byte keys, empty values).
    let s = ServerProc::start(&[
        "--clients",
        "1024",
        "--buckets",
        "16777216",
        "--max-key",
        "1",
        "--max-value",
        "0",
    ]);
    s.client(&["1023", "insert", "1", "\"\"", "read", "1"])
        .ok("insert 1 \"\": ok\nread 1: \"\"\n");
    s.client(&["1024", "read", "1"])
        .fails(3, "client id 1024 is out of range: server");
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    assert_eq!(
        c.insert(b"2", b"x"),
        Err(ClientError::TooLarge {
            what: shmkv::wire::Field::Value,
            len: 1,
            max: 0
        })
    );
    assert_eq!(
        c.read(b"12"),
        Err(ClientError::TooLarge {
            what: shmkv::wire::Field::Key,
            len: 2,
            max: 1
        })
    );
    assert_eq!(c.read(b"1").unwrap(), Some(Vec::new()));
    drop(c);
    s.quit_and_check_clean();
    let s = ServerProc::start(&[
        "--clients",
        "1",
        "--threads",
        "64",
        "--max-key",
        "64K",
        "--max-value",
        "64M",
    ]);
    s.client(&["0", "threads", "start", "1"]).fails(
        1,
        "thread limit: this client has 64 worker threads and at most 64 are allowed",
    );
    s.client(&["0", "threads", "stop", "read", "1"])
        .ok("threads stop: ok, 63 threads\nread 1: not found\n");
    // The longest key with the longest value, through the library, and cas with two values
    // of the longest (the largest request there is).
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);
    // (Patient: the server copies 64 MiB several times per request, with no answer between.)
    let patient = ClientConfig::new(&s.name)
        .slot(0)
        .timeout(Duration::from_secs(60));
    let c = Client::connect(&patient).unwrap();
    let key: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big: Vec<u8> = (0..64 << 20u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(c.insert(&key, &big).unwrap(), None);
    let mut other = big.clone();
    other[12345] ^= 1;
    assert_eq!(c.cas(&key, Some(&big), &other).unwrap(), Ok(()));
    assert!(c.read(&key).unwrap() == Some(other));
    let mut too_long = key.clone();
    too_long.push(0);
    assert!(matches!(
        c.read(&too_long),
        Err(ClientError::TooLarge {
            len: 65537,
            max: 65536,
            ..
        })
    ));
    drop(c);
    s.quit_and_check_clean();
}
