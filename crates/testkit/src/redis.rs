//! Real Redis servers for tests: one `redis-server` ([`RedisServer`], optionally listening on
//! a unix socket too) or a three-master Redis Cluster ([`RedisCluster`]) as child processes on
//! free loopback ports, each in its own temporary directory, waited for on a condition with a deadline, and killed (their
//! directories removed) when dropped; and [`command`], a minimal RESP client to talk to a node
//! directly (flush it, count its keys, read its counters).
//!
//! The programs `redis-server` and `redis-cli` must be on the `PATH` (Redis 7.0 or later).
//! When they cannot be run, or are older, starting panics with one line that names the Debian
//! package: a test that needs Redis fails, it never passes without it.
//!
//! Ports: a port is taken from the kernel (bind to port 0, read it, close), so another process
//! may take it before `redis-server` binds it; a start that fails that way (the server exits,
//! or a different process answers on the port) is retried on another port. A cluster node's
//! port `P` also needs `P + 10000` free (its cluster bus).
//!
//! Like the rest of the crate, std only (no Redis client crate).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer `PING` after it is started.
pub const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a cluster may take to be created and report `cluster_state:ok` on every node.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// How long [`command`] waits to connect, and for a reply.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts tried before giving up (a port taken meanwhile is retried on another).
const ATTEMPTS: u32 = 5;
/// The oldest Redis the engine supports: 7.0.
const MIN_MAJOR: u32 = 7;
/// The cluster bus of a node on port `P` listens on `P + BUS_OFFSET`.
const BUS_OFFSET: u16 = 10000;

/// The panic message when a Redis program cannot be run.
fn missing(program: &str, e: &std::io::Error) -> String {
    format!(
        "these tests need redis-server and redis-cli: install the Debian package redis-server \
         (apt-get install redis-server): cannot run {program}: {e}"
    )
}

/// A reply of a Redis server (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a simple string.
    Simple(String),
    /// `-ERR …`: an error reply.
    Error(String),
    /// `:n`: an integer.
    Integer(i64),
    /// `$n`: a bulk string (`None`: nil).
    Bulk(Option<Vec<u8>>),
    /// `*n`: an array (`None`: nil).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a simple or bulk string reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// One command as RESP: an array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply.
pub fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!("a reply line without CRLF: {line:?}")));
    }
    line.truncate(line.len() - 2);
    let (kind, rest) = (line[0], String::from_utf8_lossy(&line[1..]).into_owned());
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("not a number in a reply: {rest:?}")))
    };
    Ok(match kind {
        b'+' => Reply::Simple(rest),
        b'-' => Reply::Error(rest),
        b':' => Reply::Integer(number()?),
        b'$' => match number()? {
            -1 => Reply::Bulk(None),
            n if n >= 0 => {
                let mut b = vec![0; n as usize + 2];
                r.read_exact(&mut b)?;
                if !b.ends_with(b"\r\n") {
                    return Err(bad("a bulk string without CRLF".into()));
                }
                b.truncate(n as usize);
                Reply::Bulk(Some(b))
            }
            n => return Err(bad(format!("bulk length {n}"))),
        },
        b'*' => match number()? {
            -1 => Reply::Array(None),
            n if n >= 0 => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<Result<_, _>>()?,
            )),
            n => return Err(bad(format!("array length {n}"))),
        },
        other => return Err(bad(format!("unknown reply type {:?}", other as char))),
    })
}

/// Sends one command to the server at `addr` (`HOST:PORT`) on a new connection and returns
/// its reply (an error reply is `Ok(Reply::Error)`).
pub fn command(addr: &str, args: &[&[u8]]) -> std::io::Result<Reply> {
    let sa: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let mut s = TcpStream::connect_timeout(&sa, COMMAND_TIMEOUT)?;
    s.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    s.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    s.write_all(&encode(args))?;
    read_reply(&mut BufReader::new(s))
}

/// [`command`] with text arguments, panicking on an I/O failure or an error reply.
fn must(addr: &str, args: &[&str]) -> Reply {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match command(addr, &bytes) {
        Ok(Reply::Error(e)) => panic!("redis {addr}: {args:?}: {e}"),
        Ok(r) => r,
        Err(e) => panic!("redis {addr}: {args:?}: {e}"),
    }
}

/// Ports handed out by this process and not yet given back (so that two servers started at
/// once by one test binary do not pick the same port).
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that is free now and not handed out by this process; with `bus`, port
/// `P + 10000` is free too. Call [`give_back`] when done with it.
fn free_port(bus: bool) -> u16 {
    let bind = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p));
    for _ in 0..1000 {
        let Ok(l) = bind(0) else { continue };
        let Ok(port) = l.local_addr().map(|a| a.port()) else {
            continue;
        };
        if bus && (port > u16::MAX - BUS_OFFSET || bind(port + BUS_OFFSET).is_err()) {
            continue;
        }
        drop(l);
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if taken.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found");
}

fn give_back(port: u16) {
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = taken.as_mut() {
        t.remove(&port);
    }
}

/// A fresh directory for one server.
fn temp_dir(port: u16) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shmkv-redis-{}-{}-{port}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The last lines of a file (a server's log), for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The name of a server's unix socket in its directory.
const UNIX_SOCKET: &str = "r.sock";

/// One `redis-server` child process on `127.0.0.1` (and on a unix socket in its directory,
/// when started so); killed, waited for and its directory removed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// Its unix socket, if it listens on one.
    unix: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a server (not a cluster node) and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        Self::start_with(false, false)
    }

    /// Starts a server (not a cluster node) that listens on a unix socket too, `r.sock` in
    /// its directory (mode 700; see [`RedisServer::unix_url`]), and waits until it answers
    /// `PING` (on its loopback port, as every server here).
    pub fn start_with_unix_socket() -> RedisServer {
        Self::start_with(false, true)
    }

    /// Starts a server, a cluster node when `cluster`, listening on a unix socket too when
    /// `unix`, retrying on another port when the one chosen was taken meanwhile.
    fn start_with(cluster: bool, unix: bool) -> RedisServer {
        let mut why = Vec::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(cluster, unix) {
                Ok(s) => return s,
                Err(e) => why.push(e),
            }
        }
        panic!(
            "redis-server did not start in {ATTEMPTS} attempts:\n{}",
            why.join("\n")
        );
    }

    /// One attempt; `Err` says why it is worth another port (the server exited before
    /// answering, or another process answers on the port).
    fn try_start(cluster: bool, unix: bool) -> Result<RedisServer, String> {
        let port = free_port(cluster);
        let dir = temp_dir(port);
        let log = dir.join("redis.log");
        let stderr = File::create(dir.join("stderr.txt"))
            .unwrap_or_else(|e| panic!("cannot create a file in {}: {e}", dir.display()));
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--protected-mode", "no"])
            .arg("--logfile")
            .arg(&log);
        let unix = unix.then(|| dir.join(UNIX_SOCKET));
        if let Some(path) = &unix {
            cmd.arg("--unixsocket")
                .arg(path)
                .args(["--unixsocketperm", "700"]);
        }
        if cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "5000"]);
        }
        let child = match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                give_back(port);
                let _ = std::fs::remove_dir_all(&dir);
                panic!("{}", missing("redis-server", &e));
            }
        };
        // From here on, dropping `server` cleans up.
        let mut server = RedisServer {
            child,
            port,
            dir,
            unix,
        };
        let end = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let err =
                    std::fs::read_to_string(server.dir.join("stderr.txt")).unwrap_or_default();
                return Err(format!(
                    "redis-server on port {port} exited ({status}) before answering; stderr: \
                     {}; log:\n{}",
                    err.trim(),
                    tail(&log)
                ));
            }
            let pong = matches!(
                command(&server.addr(), &[b"PING"]),
                Ok(Reply::Simple(s)) if s == "PONG"
            );
            if pong {
                // The answer must be our server's, not another process's on a port taken
                // meanwhile.
                let pid = server.info_field("server", "process_id");
                if pid.as_deref() == Some(&server.child.id().to_string()) {
                    server.check_version();
                    return Ok(server);
                }
                return Err(format!(
                    "port {port} is answered by process {pid:?}, not by our redis-server"
                ));
            }
            if Instant::now() > end {
                panic!(
                    "redis-server on port {port} did not answer PING within \
                     {START_DEADLINE:?}; log:\n{}",
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panics unless the server is Redis 7.0 or later (what the Redis engine needs: `SET …
    /// NX GET`, `GETDEL`).
    fn check_version(&self) {
        let version = self
            .info_field("server", "redis_version")
            .unwrap_or_default();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(
            major >= MIN_MAJOR,
            "these tests need Redis {MIN_MAJOR}.0 or later; redis-server is version \
             {version:?}: install a newer Debian package redis-server"
        );
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// The server's unix socket, when it was started with one
    /// ([`RedisServer::start_with_unix_socket`]).
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix.as_deref()
    }

    /// `redis+unix:///PATH` of the server's unix socket, when it was started with one.
    pub fn unix_url(&self) -> Option<String> {
        self.unix
            .as_ref()
            .map(|p| format!("redis+unix://{}", p.display()))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's own directory (its log, its cluster configuration).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends one command on a new connection (see [`command`]); panics when the server
    /// cannot be reached.
    pub fn command(&self, args: &[&[u8]]) -> Reply {
        command(&self.addr(), args).unwrap_or_else(|e| panic!("redis {}: {e}", self.addr()))
    }

    /// Field `field` of section `section` of `INFO` (`None`: no such field, or no answer).
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let text = command(&self.addr(), &[b"INFO", section.as_bytes()])
            .ok()?
            .text()?;
        text.lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    }

    /// Commands the server has processed so far (`total_commands_processed`; each `INFO`
    /// that reads it counts too).
    pub fn commands_processed(&self) -> u64 {
        self.info_field("stats", "total_commands_processed")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("redis {}: no total_commands_processed", self.addr()))
    }

    /// The number of keys (`DBSIZE`).
    pub fn dbsize(&self) -> u64 {
        match must(&self.addr(), &["DBSIZE"]) {
            Reply::Integer(n) if n >= 0 => n as u64,
            other => panic!("redis {}: DBSIZE answered {other:?}", self.addr()),
        }
    }

    /// Removes every key (`FLUSHALL`).
    pub fn flushall(&self) {
        let r = must(&self.addr(), &["FLUSHALL"]);
        assert_eq!(r, Reply::Simple("OK".into()), "FLUSHALL on {}", self.addr());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        give_back(self.port);
    }
}

/// A Redis Cluster of three masters (no replicas), each a [`RedisServer`] started with
/// cluster support, joined with `redis-cli --cluster create`; every node killed and its
/// directory removed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster, and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let mut why = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(c) => return c,
                Err(e) => why.push(e),
            }
        }
        panic!(
            "the Redis Cluster did not form in 3 attempts:\n{}",
            why.join("\n")
        );
    }

    fn try_start() -> Result<RedisCluster, String> {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(true, false))
            .collect();
        let cluster = RedisCluster { nodes };
        let mut cli = Command::new("redis-cli");
        cli.args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cli
            .spawn()
            .unwrap_or_else(|e| panic!("{}", missing("redis-cli", &e)));
        let output = collect(&mut child);
        let end = Instant::now() + CLUSTER_DEADLINE;
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-cli --cluster create did not finish within {CLUSTER_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (out, err) = output.join().unwrap_or_default();
        if !status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({status}):\n{out}\n{err}"
            ));
        }
        loop {
            let states: Vec<Option<String>> = cluster
                .nodes
                .iter()
                .map(|n| n.cluster_info_field("cluster_state"))
                .collect();
            if states.iter().all(|s| s.as_deref() == Some("ok")) {
                return Ok(cluster);
            }
            if Instant::now() > end {
                return Err(format!(
                    "the cluster's nodes report {states:?} after {CLUSTER_DEADLINE:?}, not all \
                     ok; redis-cli said:\n{out}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The three nodes, all masters.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(RedisServer::addr).collect();
        format!("redis-cluster://{}", addrs.join(","))
    }

    /// Removes every key on every node (each is a master).
    pub fn flushall(&self) {
        for n in &self.nodes {
            n.flushall();
        }
    }

    /// The number of keys over all nodes.
    pub fn dbsize(&self) -> u64 {
        self.nodes.iter().map(RedisServer::dbsize).sum()
    }
}

impl RedisServer {
    /// Field `field` of `CLUSTER INFO` (`None`: no answer, or no such field).
    pub fn cluster_info_field(&self, field: &str) -> Option<String> {
        let text = command(&self.addr(), &[b"CLUSTER", b"INFO"]).ok()?.text()?;
        text.lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    }
}

/// Reads a child's stdout and stderr to the end on a thread (so that it cannot block on a
/// full pipe).
fn collect(child: &mut Child) -> std::thread::JoinHandle<(String, String)> {
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let e = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        (s, e.join().unwrap_or_default())
    })
}

#[cfg(all(test, not(miri)))]
mod tests;
