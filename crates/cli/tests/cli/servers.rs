//! Servers, sockets, signals: names that coexist, the private socket, SIGINT and SIGTERM, a
//! server that dies or is killed under a client, slot reuse, quit, `--help` and `--version`.

use crate::common::*;
use shmkv::client::{Client, ClientConfig, ClientError};
use shmkv::wire::Op;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Servers, sockets, signals.
// ---------------------------------------------------------------------------------------------

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
    let t = c.submit(Op::Read { key: b"1".to_vec() }).unwrap();
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
    use std::io::BufRead;
    let s = ServerProc::start(&["10", "1", "1"]);
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    let mut child = Command::new(CLIENT)
        .args(["--name", &s.name, "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    s.client(&["0", "insert", "1", "0"]).ok("insert 1 0: ok\n");
    for i in 1..30 {
        s.client(&["0", "insert", "1", &i.to_string(), "read", "1"])
            .ok(&format!(
                "insert 1 {i}: ok, replaced {}\nread 1: {i}\n",
                i - 1
            ));
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
    // The client's help lists every operation; the server's the limits.
    let h = run(CLIENT, &["--help"]).stdout;
    for v in &shmkv::wire::VERBS {
        assert!(h.contains(&format!("  {}", v.name)), "{} in {h}", v.name);
    }
    let h = run(SERVER, &["--help"]).stdout;
    for flag in ["--max-key", "--max-value", "--max-memory"] {
        assert!(h.contains(flag), "{flag} in {h}");
    }
    assert!(!h.contains("--ring"), "{h}");
}

/// Whether some mapping of process `pid` carries `flag` in its `VmFlags` (`hg`: marked for
/// huge pages, `nh`: marked against them).
fn some_mapping_has(pid: u32, flag: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("VmFlags:"))
        .any(|flags| flags.split_ascii_whitespace().any(|f| f == flag))
}

#[test]
fn workers_heaps_on_huge_pages_unless_off_or_values_are_large() {
    // The kernel marks a mapping only where it has transparent huge pages at all.
    let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists();
    let on = ServerProc::start(&["10", "1", "1"]);
    let off = ServerProc::start(&["10", "1", "1", "--huge-pages", "off"]);
    // A worker marks its heap when it starts, before it serves: an answer comes after it.
    on.client(&["0", "insert", "a", "b"]).ok("insert a b: ok\n");
    off.client(&["0", "insert", "a", "b"])
        .ok("insert a b: ok\n");
    assert_eq!(some_mapping_has(on.pid(), "hg"), thp);
    assert!(!some_mapping_has(off.pid(), "hg"));
    // The first entry of 4 KiB or more turns them off for the worker's heap.
    let big = "v".repeat(5000);
    on.client(&["0", "insert", "big", &big])
        .ok(&format!("insert big {big}: ok\n"));
    assert!(!some_mapping_has(on.pid(), "hg"));
    assert_eq!(some_mapping_has(on.pid(), "nh"), thp);
    on.quit_and_check_clean();
    off.quit_and_check_clean();
    run_server_expect_fail(&["--huge-pages", "maybe"]).fails(2, "invalid value 'maybe'");
}
