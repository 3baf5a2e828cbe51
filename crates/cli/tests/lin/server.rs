//! A real `shmkv-server` child for the linearizability and property tests: started with a
//! unique name and waited for by its ready line, quit through the library client and checked
//! to exit 0 and leave nothing in the socket directory, killed (and its files removed) when
//! dropped. Included with `#[path]` by `tests/linearizability.rs` and `tests/proptest/main.rs`;
//! self-contained, so that it does not move with `tests/common`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The server binary Cargo built for this test.
pub const SERVER: &str = env!("CARGO_BIN_EXE_shmkv-server");

/// Longest any single process of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A server name no other test of this process (or any other process) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Files in the socket directory that belong to server `name` (its socket and lock file).
pub fn server_files(name: &str) -> Vec<String> {
    let prefix = format!("{name}.sock");
    let Ok(dir) = std::fs::read_dir(shmkv::door::socket_dir()) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// What a finished child process printed, and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1: killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

/// Wait for `child` (with piped stdout and stderr) within [`DEADLINE`], collecting its output;
/// kills it and panics when it takes longer.
pub fn finish(mut child: Child) -> Output {
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let to = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: to.join().unwrap(),
        stderr: te.join().unwrap(),
    }
}

/// A running `shmkv-server`; killed (and its files removed) on drop.
pub struct ServerProc {
    /// Its name (what clients connect to).
    pub name: String,
    child: Option<Child>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl ServerProc {
    /// Start the server with `args` (and `--name`), and wait for its ready line.
    pub fn start(args: &[&str]) -> ServerProc {
        let name = unique_name("lin");
        let mut child = Command::new(SERVER)
            .args(args)
            .args(["--name", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run shmkv-server");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut server = ServerProc {
            name: name.clone(),
            child: Some(child),
            stderr: Some(err),
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(line) => {
                assert!(line.contains("ready") && line.contains(&name), "{line}");
            }
            Err(_) => {
                server.kill();
                let log = server.stderr.take().unwrap().join().unwrap_or_default();
                panic!("shmkv-server {args:?} printed no ready line; its log:\n{log}");
            }
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Ask the server to quit (through a library client); it must exit 0 within
    /// [`DEADLINE`] and leave nothing in the socket directory. Returns its log.
    pub fn quit_and_check_clean(mut self) -> String {
        let mut config = shmkv::client::ClientConfig::new(&self.name).timeout(DEADLINE);
        config.attach_timeout = DEADLINE;
        let client = shmkv::client::Client::connect(&config).expect("connect to quit");
        client.quit().expect("quit");
        drop(client);
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not exit within {DEADLINE:?} of quit");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let log = self.stderr.take().unwrap().join().unwrap_or_default();
        assert_eq!(status.code(), Some(0), "server log: {log}");
        assert!(
            server_files(&self.name).is_empty(),
            "left behind: {:?}",
            server_files(&self.name)
        );
        log
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
        for f in server_files(&self.name) {
            let _ = std::fs::remove_file(shmkv::door::socket_dir().join(f));
        }
    }
}
