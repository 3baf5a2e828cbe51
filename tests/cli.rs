//! End-to-end tests of the real `shmkv-server` and `shmkv-client` binaries (and the library
//! client) over real POSIX shared memory.
#![cfg(not(loom))]

mod common;

use common::*;
use shmkv::client::{Client, ClientConfig, ClientError};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn readme_examples_verbatim() {
    let s = ServerProc::start(&["100", "2", "3"]);
    let out = s.client(&["0", "insert", "1", "2", "insert", "2", "4"]);
    out.ok("insert 1 2: ok\ninsert 2 4: ok\n");
    s.client(&["1", "read", "1", "read", "2"])
        .ok("read 1: 2\nread 2: 4\n");
    s.client(&["0", "read", "1", "read", "9", "delete", "1", "delete", "1"])
        .ok("read 1: 2\nread 9: not found\ndelete 1: ok\ndelete 1: not found\n");
    s.client(&["0", "insert", "5", "6", "read", "5"])
        .ok("insert 5 6: ok\nread 5: 6\n");
    s.quit_and_check_clean();
}

#[test]
fn id_may_be_dash_or_omitted_and_u32_keys_work() {
    let s = ServerProc::start(&["--buckets", "10", "--clients", "2"]);
    s.client(&["-", "insert", "4294967295", "4294967295"])
        .ok("insert 4294967295 4294967295: ok\n");
    s.client(&["read", "4294967295"])
        .ok("read 4294967295: 4294967295\n");
    s.client(&[
        "insert",
        "18446744073709551615",
        "1",
        "read",
        "18446744073709551615",
    ])
    .ok("insert 18446744073709551615 1: ok\nread 18446744073709551615: 1\n");
    s.quit_and_check_clean();
}

#[test]
fn print_threads_and_quit_output() {
    let s = ServerProc::start(&["1", "1", "1"]);
    s.client(&["0", "insert", "3", "30", "insert", "1", "10", "print", "0"])
        .ok("insert 3 30: ok\ninsert 1 10: ok\nprint 0: (1, 10) (3, 30)\n");
    s.client(&[
        "0", "threads", "start", "2", "threads", "stop", "threads", "stop",
    ])
    .ok(
        "threads start 2: ok, 3 threads\nthreads stop: ok, 2 threads\nthreads stop: ok, 1 thread\n",
    );
    let out = s.client(&["0", "threads", "stop"]);
    out.fails(1, "threads stop: error: cannot stop the last worker thread");
    let out = s.client(&["0", "print", "1"]);
    out.fails(1, "bucket 1 out of range");
    s.quit_and_check_clean();
}

/// The example, many times, with 3 workers per client: a read issued after an insert
/// of the same key in one pipelined command line always sees it.
#[test]
fn same_key_order_with_three_workers_cli() {
    // (Backlog sharing on, so that workers hand the ring over on this 2-core machine too.)
    let s = ServerProc::start(&["100", "2", "3", "--share-backlog", "on"]);
    for i in 0..40 {
        let v = i.to_string();
        s.client(&[
            "0", "insert", "5", &v, "read", "5", "delete", "5", "read", "5",
        ])
        .ok(&format!(
            "insert 5 {v}: ok\nread 5: {v}\ndelete 5: ok\nread 5: not found\n"
        ));
    }
    s.quit_and_check_clean();
}

/// Long pipelined batches over few keys with 4 workers: every reply equals a sequential model.
#[test]
fn same_key_order_pipelined_library() {
    let s = ServerProc::start(&["64", "1", "4", "--ring", "64", "--share-backlog", "on"]);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut rng = 0x1234_5678_u64;
    for _round in 0..20 {
        let mut ops = Vec::new();
        for _ in 0..500 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = rng % 4;
            ops.push(match rng % 3 {
                0 => shmkv::protocol::Op::Insert {
                    key,
                    value: rng >> 8,
                },
                1 => shmkv::protocol::Op::Read { key },
                _ => shmkv::protocol::Op::Delete { key },
            });
        }
        let tickets = c.submit_all(&ops).unwrap();
        for (op, t) in ops.iter().zip(tickets) {
            use shmkv::client::Outcome;
            use shmkv::protocol::Op;
            let got = c.wait(t).unwrap();
            let want = match *op {
                Op::Insert { key, value } => model
                    .insert(key, value)
                    .map_or(Outcome::Done, Outcome::Replaced),
                Op::Read { key } => model
                    .get(&key)
                    .map_or(Outcome::NotFound, |v| Outcome::Value(*v)),
                Op::Delete { key } => model.remove(&key).map_or(Outcome::NotFound, Outcome::Value),
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{op:?}");
        }
    }
    assert_eq!(c.stray_responses(), 0);
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn many_threads_share_one_connection() {
    let s = ServerProc::start(&["1000", "1", "2"]);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    let hs: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let k = t * 1_000_000 + i;
                    assert_eq!(c.insert(k, i).unwrap(), None);
                    assert_eq!(c.read(k).unwrap(), Some(i));
                    if i % 3 == 0 {
                        assert_eq!(c.delete(k).unwrap(), Some(i));
                        assert_eq!(c.read(k).unwrap(), None);
                    }
                }
                // And some pipelined batches from every thread.
                let ops: Vec<_> = (0..200u64)
                    .map(|i| shmkv::protocol::Op::Insert {
                        key: t * 1_000_000 + 500 + i,
                        value: i,
                    })
                    .collect();
                let ts = c.submit_all(&ops).unwrap();
                for t in ts {
                    assert_eq!(c.wait(t).unwrap(), shmkv::client::Outcome::Done);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    for t in 0..8u64 {
        for i in 0..300u64 {
            let want = if i % 3 == 0 { None } else { Some(i) };
            assert_eq!(c.read(t * 1_000_000 + i).unwrap(), want);
        }
    }
    assert_eq!(c.stray_responses(), 0);
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn two_client_processes_at_once() {
    let s = ServerProc::start(&["100", "2", "2"]);
    let mut args0 = vec!["0".to_string()];
    let mut args1 = vec!["1".to_string()];
    let mut want0 = String::new();
    let mut want1 = String::new();
    for i in 0..300 {
        args0.extend([
            "insert".into(),
            i.to_string(),
            (i * 2).to_string(),
            "read".into(),
            i.to_string(),
        ]);
        want0 += &format!("insert {i} {}: ok\nread {i}: {}\n", i * 2, i * 2);
        let k = 10_000 + i;
        args1.extend([
            "insert".into(),
            k.to_string(),
            (i * 3).to_string(),
            "read".into(),
            k.to_string(),
        ]);
        want1 += &format!("insert {k} {}: ok\nread {k}: {}\n", i * 3, i * 3);
    }
    let a = s.spawn_client(&args0.iter().map(String::as_str).collect::<Vec<_>>());
    let b = s.spawn_client(&args1.iter().map(String::as_str).collect::<Vec<_>>());
    finish(a).ok(&want0);
    finish(b).ok(&want1);
    s.quit_and_check_clean();
}

#[test]
fn threads_start_and_stop_while_traffic_flows() {
    let s = ServerProc::start(&["100", "1", "1"]);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    let c2 = c.clone();
    let traffic = std::thread::spawn(move || {
        for i in 0..3000u64 {
            c2.insert(i % 50, i).unwrap();
            assert_eq!(c2.read(i % 50).unwrap(), Some(i));
        }
    });
    for round in 0..20 {
        assert_eq!(c.start_threads(2).unwrap(), 3, "round {round}");
        assert_eq!(c.stop_thread().unwrap(), 2);
        assert_eq!(c.stop_thread().unwrap(), 1);
    }
    assert!(matches!(
        c.stop_thread(),
        Err(ClientError::Refused(shmkv::protocol::ErrorCode::LastWorker))
    ));
    assert!(matches!(
        c.start_threads(1000),
        Err(ClientError::Refused(
            shmkv::protocol::ErrorCode::ThreadLimit { .. }
        ))
    ));
    traffic.join().unwrap();
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn bad_client_input_is_one_line_and_nonzero() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["0", "frob", "1"], 2, "unknown operation 'frob'"),
        (&["0", "insert", "1"], 2, "'insert' needs a value"),
        (&["0", "read"], 2, "'read' needs a key"),
        (
            &["0", "read", "x"],
            2,
            "key 'x' of 'read' is not a non-negative integer",
        ),
        (
            &["0", "read", "-1"],
            2,
            "key '-1' of 'read' is not a non-negative integer",
        ),
        (
            &["0", "insert", "1", "18446744073709551616"],
            2,
            "out of range",
        ),
        (&["0", "threads", "start", "0"], 2, "at least 1"),
        (&["0", "threads", "go"], 2, "unknown 'threads go'"),
        (
            &["0"],
            2,
            "no operations given on the command line or standard input",
        ),
        (
            &["7", "read", "1"],
            3,
            "client id 7 is out of range: server",
        ),
        (&["99999999999", "read", "1"], 2, "not a valid id"),
    ];
    for (args, code, msg) in cases {
        s.client(args).fails(*code, msg);
    }
    // Slot in use: hold slot 0 from this process.
    let held = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    s.client(&["0", "read", "1"])
        .fails(3, "client id 0 is in use by process");
    drop(held);
    // No server.
    let out = run_client_named("no-such-server-x", &["0", "read", "1"]);
    out.fails(
        3,
        "no shmkv server named 'no-such-server-x' is running (start one with",
    );
    // Bad name.
    run_client_named("a/b", &["0", "read", "1"]).fails(2, "invalid name");
    s.quit_and_check_clean();
}

#[test]
fn bad_server_input_is_one_line_and_nonzero() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["0"], 1, "buckets must be 1 to"),
        (&["10", "0"], 1, "clients must be 1 to"),
        (&["10", "1", "0"], 1, "threads per client must be 1 to"),
        (&["10", "1", "65"], 1, "threads per client must be 1 to 64"),
        (&["abc"], 2, "invalid value 'abc'"),
        (
            &["--ring", "1000"],
            1,
            "ring capacity must be a power of two",
        ),
        (&["--name", "../x"], 1, "invalid name"),
        (&["100000000"], 1, "buckets must be 1 to 16777216"),
        (&["10", "--buckets", "20"], 2, "cannot be used with"),
    ];
    for (args, code, msg) in cases {
        run_server_expect_fail(args).fails(*code, msg);
    }
}

#[test]
fn second_server_with_same_name_is_refused_and_other_names_coexist() {
    let a = ServerProc::start(&["10", "1", "1"]);
    let out = run_server_expect_fail(&["10", "1", "1", "--name", &a.name]);
    out.fails(1, "is already running");
    let b = ServerProc::start(&["10", "1", "1"]);
    a.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    b.client(&["0", "read", "1"]).ok("read 1: not found\n");
    a.quit_and_check_clean();
    b.quit_and_check_clean();
}

#[test]
fn the_socket_is_private_and_nothing_lives_in_dev_shm() {
    let s = ServerProc::start(&["10", "3", "1"]);
    let dir = shmkv::door::socket_dir();
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{}", dir.display());
    let sock = dir.join(format!("{}.sock", s.name));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", sock.display());
    s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    let in_dev_shm = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(&s.name))
        .count();
    assert_eq!(in_dev_shm, 0, "sessions are anonymous sealed objects");
    s.quit_and_check_clean();
}

#[test]
fn sigint_and_sigterm_shut_down_cleanly() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let s = ServerProc::start(&["10", "2", "2"]);
        s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
        s.signal_and_check_clean(sig);
    }
}

#[test]
fn client_reports_a_server_that_dies_while_it_waits() {
    let s = ServerProc::start(&["10", "1", "1"]);
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    // Freeze the server so the request stays unanswered, then kill it.
    stop_and_wait(s.pid());
    let t = c.submit(shmkv::protocol::Op::Read { key: 1 }).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let start = Instant::now();
    let r = c.wait(t);
    assert_eq!(r, Err(ClientError::ServerGone("died")));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    drop(c);
    // A new server with the same name replaces the dead one's socket and starts.
    let s2 = ServerProc::start_named(&s.name, &["10", "1", "1"]);
    s2.client(&["0", "read", "1"]).ok("read 1: not found\n");
    s2.quit_and_check_clean();
    drop(s);
}

#[test]
fn client_binary_fails_fast_when_server_is_killed() {
    use std::io::{BufRead, Write};
    let s = ServerProc::start(&["10", "1", "1"]);
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    let mut child = std::process::Command::new(CLIENT)
        .args(["--name", &s.name, "0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    // The client is connected once its first answer comes.
    writeln!(stdin, "read 1").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "read 1: not found\n");
    stop_and_wait(s.pid());
    // Whether the client takes this line before or after the kill, its call waits on a dead
    // server and must fail fast.
    writeln!(stdin, "read 2").unwrap();
    stdin.flush().unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let start = Instant::now();
    let end = start + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "client did not exit");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(3));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("read 2: the server died"), "{err}");
}

#[test]
fn slot_is_reused_after_a_client_leaves() {
    let s = ServerProc::start(&["10", "1", "2"]);
    for i in 0..30 {
        s.client(&["0", "insert", "1", &i.to_string(), "read", "1"])
            .ok(&format!("insert 1 {i}: ok\nread 1: {i}\n"));
    }
    s.quit_and_check_clean();
}

#[test]
fn quit_from_library_and_help_version() {
    let s = ServerProc::start(&["10", "1", "1"]);
    let c = Client::connect(&ClientConfig::new(&s.name)).unwrap();
    c.quit().unwrap();
    drop(c);
    s.wait_exit_and_check_clean();
    for bin in [SERVER, CLIENT] {
        let h = run(bin, &["--help"]);
        assert_eq!(h.code, 0);
        assert!(h.stdout.contains("Examples:"), "{bin}");
        assert!(h.stdout.contains("Exit status:"), "{bin}");
        let v = run(bin, &["--version"]);
        assert_eq!(v.code, 0);
        assert!(v.stdout.contains(env!("CARGO_PKG_VERSION")));
    }
}
