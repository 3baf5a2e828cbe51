//! Killed and stopped processes: clients SIGKILLed by the hundred mid-pipeline, a server
//! SIGKILLed under its waiting clients, and a stopped server given up after the timeout.

use super::{
    Checker, Kid, acked, connect_within, drops, fill, honest, median_max, names_pid, read_op,
    request_record, serial, server_waits_for_room, session_object_of, signal,
};
use crate::common::*;
use crate::roles;
use crate::roles::{Model, Rng, Workload};
use nix::sys::signal::Signal;
use shmkv::channel::REQ_CTRL;
use shmkv::client::{Client, ClientConfig, ClientError};
use shmkv::shm::Mapping;
use shmkv::wire::Op;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

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

/// A client SIGKILLed with requests it had published and the server had not taken (they
/// wait behind its response ring, full: it never read an answer): once the server sees the
/// death, it executes every one of them, in order, and their effects stay; then it frees the
/// slot. Each key gets a delete, whose answer carries the key's 1000-byte value (so that the
/// 64 KiB response ring is full after about 60), then an insert of a new value: a key left
/// with its old value, or with none, is a request not executed, or not in order.
#[test]
fn a_killed_clients_published_requests_are_all_executed_in_order() {
    let _g = serial();
    let s = ServerProc::start(&[
        "--buckets",
        "256",
        "--clients",
        "2",
        "--threads",
        "1",
        "--max-value",
        "1K",
    ]);
    const KEYS: u64 = 300;
    let c = Client::connect(&ClientConfig::new(&s.name).slot(1)).unwrap();
    let old = vec![b'o'; 1000];
    for k in 0..KEYS {
        assert_eq!(c.insert(&k.to_le_bytes(), &old).unwrap(), None);
    }
    let mut kid = Kid::spawn(&format!("publish {} 0 {KEYS}", s.name));
    let pid: u32 = kid.expect("PUBLISHED", DEADLINE)["PUBLISHED ".len()..]
        .parse()
        .unwrap();
    let obj = session_object_of(pid);
    wait_until(DEADLINE, || {
        server_waits_for_room(&obj) && fill(&obj, REQ_CTRL) > 0
    });
    let waiting = fill(&obj, REQ_CTRL);
    drop(obj);
    let lines = kid.kill();
    assert!(!lines.iter().any(|l| l.starts_with("ERR")), "{lines:?}");
    // The slot is freed once the session's worker has exited: after the last request it
    // was going to execute.
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);
    for k in 0..KEYS {
        assert_eq!(
            c.read(&k.to_le_bytes()).unwrap(),
            Some(roles::published_value(k)),
            "key {k}"
        );
    }
    assert_eq!(c.len().unwrap(), KEYS);
    drop(c);
    let log = s.quit_and_check_clean();
    assert!(
        log.lines()
            .any(|l| l.contains("died without detaching") && names_pid(l, pid)),
        "{log}"
    );
    eprintln!(
        "a client killed with {waiting} bytes of requests waiting behind its full response ring: all {} requests it published took effect, in order",
        2 * KEYS
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
