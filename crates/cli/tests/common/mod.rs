//! Helpers for tests that run the real binaries: unique server names, a server process that
//! is waited for by its ready line, client runs with deadlines, socket-directory inspection,
//! and the interactive shell on a pseudo-terminal ([`pty`]).
#![allow(dead_code)]

pub mod pty;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const SERVER: &str = env!("CARGO_BIN_EXE_shmkv-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_shmkv-client");

/// Longest any single process of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Wait for `cond` to hold, polling, until `limit`; panics on timeout.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "condition not met within {limit:?}");
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGSTOP process `pid` and wait until every one of its threads is stopped (the signal is
/// delivered asynchronously: a thread running on another core may go on for a moment).
pub fn stop_and_wait(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    wait_until(Duration::from_secs(10), || {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        dir.filter_map(|e| e.ok()).all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.trim_start().chars().next())
                })
                .is_some_and(|c| c == 'T' || c == 't')
        })
    });
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

/// Remove what a killed server of `name` left in the socket directory.
pub fn remove_server_files(name: &str) {
    for f in server_files(name) {
        let _ = std::fs::remove_file(shmkv::door::socket_dir().join(f));
    }
}

/// The pid of the client holding slot `slot` of server `name` (0: free), asked without
/// opening a session; `u32::MAX` when it cannot be told.
pub fn owner_of(name: &str, slot: u32) -> u32 {
    let config = shmkv::client::ClientConfig::new(name);
    match shmkv::client::slot_holder(&config, slot) {
        Ok(None) => 0,
        Ok(Some(pid)) => pid,
        Err(_) => u32::MAX,
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit 0, exactly this stdout, nothing on stderr.
    pub fn ok(&self, stdout: &str) {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        assert_eq!(self.stdout, stdout);
        assert_eq!(self.stderr, "");
    }

    /// Exit `code`, one line on stderr containing `msg`.
    pub fn fails(&self, code: i32, msg: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(self.stderr.contains(msg), "want {msg:?} in {self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
    }
}

/// Wait for a child with a deadline and collect its output.
pub fn finish(mut child: Child) -> Output {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
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

pub fn spawn(bin: &str, args: &[&str]) -> Child {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn run(bin: &str, args: &[&str]) -> Output {
    finish(spawn(bin, args))
}

pub fn run_client_named(name: &str, args: &[&str]) -> Output {
    let mut a = vec!["--name", name];
    a.extend_from_slice(args);
    run(CLIENT, &a)
}

pub fn run_server_expect_fail(args: &[&str]) -> Output {
    let name = unique_name();
    let mut a: Vec<&str> = args.to_vec();
    if !args.contains(&"--name") {
        a.extend(["--name", &name]);
    }
    let out = run(SERVER, &a);
    assert!(server_files(&name).is_empty());
    out
}

/// A running `shmkv-server` with a unique name; killed (and its objects removed) on drop.
pub struct ServerProc {
    pub name: String,
    child: Option<Child>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// The server's stderr so far, line by line, for [`ServerProc::wait_log`].
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProc {
    pub fn start(args: &[&str]) -> ServerProc {
        Self::start_named(&unique_name(), args)
    }

    pub fn start_named(name: &str, args: &[&str]) -> ServerProc {
        Self::start_as(None, name, args)
    }

    /// Start the server as user and group `uid` (the caller must be root) when given.
    pub fn start_as(uid: Option<u32>, name: &str, args: &[&str]) -> ServerProc {
        use std::os::unix::process::CommandExt;
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--name", name]);
        let mut cmd = Command::new(SERVER);
        cmd.args(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(id) = uid {
            cmd.uid(id).gid(id);
        }
        let mut child = cmd.spawn().unwrap();
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
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = log.clone();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            for line in BufReader::new(&mut stderr).lines() {
                let Ok(line) = line else { break };
                s.push_str(&line);
                s.push('\n');
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            s
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("server printed no ready line");
        assert!(line.contains("ready"), "{line}");
        assert!(line.contains(name), "{line}");
        ServerProc {
            name: name.to_string(),
            child: Some(child),
            stderr: Some(err),
            log,
        }
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log has a line containing every one of `parts`; returns that line.
    pub fn wait_log(&self, limit: Duration, parts: &[&str]) -> String {
        let end = Instant::now() + limit;
        loop {
            if let Some(l) = self
                .log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.to_string();
            }
            assert!(
                Instant::now() < end,
                "no log line with {parts:?} within {limit:?} in:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn client(&self, args: &[&str]) -> Output {
        run_client_named(&self.name, args)
    }

    pub fn spawn_client(&self, args: &[&str]) -> Child {
        let mut a = vec!["--name", &self.name];
        a.extend_from_slice(args);
        spawn(CLIENT, &a)
    }

    /// Wait for the server to exit by itself; it must exit 0 and leave nothing behind.
    pub fn wait_exit_and_check_clean(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < end, "server did not exit");
            std::thread::sleep(Duration::from_millis(2));
        };
        let log = self.stderr.take().unwrap().join().unwrap();
        assert_eq!(status.code(), Some(0), "server log: {log}");
        assert!(
            server_files(&self.name).is_empty(),
            "left behind: {:?}",
            server_files(&self.name)
        );
        log
    }

    /// SIGKILL the server and reap it; its socket file stays (stale; removed when this is
    /// dropped, or replaced by the next server of the name).
    pub fn kill_hard(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    pub fn quit_and_check_clean(self) -> String {
        self.client(&["-", "quit"]).ok("quit: ok\n");
        self.wait_exit_and_check_clean()
    }

    pub fn signal_and_check_clean(self, sig: nix::sys::signal::Signal) -> String {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
        self.wait_exit_and_check_clean()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_server_files(&self.name);
    }
}

/// CPU time (user + system) process `pid` has used so far, from /proc/<pid>/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // "pid (comm) S ppid ...": utime and stime are fields 14 and 15, i.e. 11 and 12 after ')'.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// The number of threads of process `pid`, from /proc/<pid>/status.
pub fn threads_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Resident set size of process `pid` in KiB, from /proc/<pid>/status.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
