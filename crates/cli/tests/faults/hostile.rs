//! Hostile clients harm only themselves: a session object resized or hole-punched; futex
//! storms and a stopped client with a full response ring (what each costs the server);
//! hostile writers scribbling over their own object, and every lie in a request ring; a
//! connection that never says hello; and the pointless-work limits, which never drop a
//! well-behaved client.

use super::{
    Checker, Kid, acked, alive, connect_within, drops, fill, honest, names_pid, serial,
    server_share, server_waits_for_room, session_object_of, signal, wait_dropped,
};
use crate::common::*;
use crate::roles;
use crate::roles::{Hostility, Model, Rng, Workload};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use shmkv::channel::{REQ_CTRL, RESP_CTRL};
use shmkv::client::{Client, ClientConfig};
use shmkv::record::record_size;
use shmkv::wire::Op;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

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
    // The storms' pointless events are counted, not logged one by one: no session had more
    // than LOG_LIMIT lines in a second, so no line reports lines suppressed.
    assert!(
        !log.contains("log lines about this session suppressed"),
        "{log}"
    );
    eprintln!("server CPU: {}", figures.join("; "));
}

/// The thread of process `pid` named `name` (its id), once it has that name (a thread names
/// itself as it starts).
fn thread_named(pid: u32, name: &str) -> u32 {
    let find = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|tid| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                    .is_ok_and(|c| c.trim() == name)
            })
    };
    wait_until(DEADLINE, || find().is_some());
    find().expect("just found")
}

/// How many times thread `tid` of process `pid` has gone to sleep (its voluntary context
/// switches).
fn sleeps(pid: u32, tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// A connection that never sends its hello is closed after the handshake timeout (1 s), with
/// no answer; meanwhile the front door sleeps until that deadline (it does not poll for it
/// every millisecond), and another connection that stays silent holds up no client.
#[test]
fn a_connection_that_never_says_hello_is_closed_after_the_timeout() {
    use std::io::Read;
    let _g = serial();
    let s = ServerProc::start(&["--clients", "1"]);
    let door = thread_named(s.pid(), "shmkv-door");
    let path = shmkv::door::socket_path(&s.name);
    let mut silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let (t0, sleeps0) = (Instant::now(), sleeps(s.pid(), door));
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap(), 0, "closed without a word");
    let (took, woken) = (t0.elapsed(), sleeps(s.pid(), door) - sleeps0);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    assert!(woken < 50, "the front door slept {woken} times meanwhile");
    let _still_silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    s.quit_and_check_clean();
    eprintln!(
        "a silent connection: closed after {took:?}; the front door slept {woken} times meanwhile"
    );
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
