//! Other users (needs root): another user at the front door, and a socket planted by another
//! user.

use super::{Kid, serial};
use crate::common::*;
use shmkv::client::{Client, ClientConfig, ClientError};
use std::process::{Command, Stdio};
use std::time::Duration;

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
