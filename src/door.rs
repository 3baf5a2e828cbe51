//! The front door: the unix stream socket through which a client asks the server for a session
//! and receives its sealed shared-memory object. Used by both sides.
//!
//! What it holds: where the socket lives and the checks of its directory ([`socket_dir`],
//! [`prepare_dir`]), the server's listening socket with its lock against a second server of
//! the same name ([`Listener`]), who is on the other end ([`peer`], [`trusted`]), and the two
//! handshake messages ([`Hello`], [`Welcome`]) with the descriptor passing (`SCM_RIGHTS`).
//!
//! # Handshake
//!
//! 1. The client connects and checks the server's credentials (`SO_PEERCRED`): its own user or
//!    root, else it refuses before sending a byte.
//! 2. The client sends a [`Hello`] (24 bytes, one write): magic, version, the slot it asks for,
//!    and whether it only asks who holds that slot (a probe: no session is opened).
//! 3. The server checks the client's credentials the same way, creates a fresh sealed object
//!    for the session, and answers with a [`Welcome`] (32 bytes) carrying the object's
//!    descriptor, or with a refusal and no descriptor.
//! 4. The connection stays open for the life of the session and carries nothing more: its
//!    hang-up, which the kernel delivers when either process exits or dies, ends the session.

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, getsockopt, recvmsg, sendmsg,
    sockopt::PeerCredentials,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Version of the handshake messages; both sides refuse any other.
pub const HANDSHAKE_VERSION: u32 = 1;
/// The slot number a [`Hello`] carries to ask for any free slot.
pub const ANY_SLOT: u32 = u32::MAX;
/// Bytes of a [`Hello`].
pub const HELLO_LEN: usize = 24;
/// Bytes of a [`Welcome`].
pub const WELCOME_LEN: usize = 32;
/// The one byte a client writes on its connection after the hello, just before it closes it:
/// it is leaving on purpose (the server logs "detached" rather than "died").
pub const GOODBYE: u8 = b'B';

const HELLO_MAGIC: u64 = u64::from_le_bytes(*b"SHMKVHI\x01");
const WELCOME_MAGIC: u64 = u64::from_le_bytes(*b"SHMKVWE\x01");

/// What can go wrong at the front door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoorError {
    /// The socket directory is not private to this user.
    #[error(
        "{dir}: {reason}; refusing to use it (it must be a directory owned by uid {uid} with mode 0700)"
    )]
    UnsafeDir {
        /// The directory.
        dir: String,
        /// What is wrong.
        reason: String,
        /// Our effective uid.
        uid: u32,
    },
    /// Something that is not a socket sits at the socket's path.
    #[error("{0} exists and is not a socket; remove it or pick another --name/--socket")]
    NotASocket(String),
    /// A live server already listens there.
    #[error("a server named '{name}' is already running{}; stop it or pick another --name", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The name (or socket path).
        name: String,
        /// Its pid, when it could be asked.
        pid: Option<u32>,
    },
    /// A system call failed.
    #[error("{what} {path}: {errno}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The error.
        errno: Errno,
    },
}

/// The directory server sockets live in: `$XDG_RUNTIME_DIR/shmkv` when that variable names an
/// absolute path, else `/tmp/shmkv-<euid>` (as tmux does).
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_absolute() => Path::new(&d).join("shmkv"),
        _ => PathBuf::from(format!("/tmp/shmkv-{}", nix::unistd::geteuid().as_raw())),
    }
}

/// The default socket path of server `name`: `<socket_dir>/<name>.sock`.
pub fn socket_path(name: &str) -> PathBuf {
    socket_dir().join(format!("{name}.sock"))
}

/// Check that `dir` is private to us: a real directory (not a link), owned by our effective
/// uid, with no permission for group or others. With `create`, make it (mode 0700) first if
/// it does not exist. Checked on every use, by the server before it listens and by the client
/// before it connects.
pub fn prepare_dir(dir: &Path, create: bool) -> Result<(), DoorError> {
    let uid = nix::unistd::geteuid().as_raw();
    let unsafe_dir = |reason: String| DoorError::UnsafeDir {
        dir: dir.display().to_string(),
        reason,
        uid,
    };
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(DoorError::Os {
                    what: "creating",
                    path: dir.display().to_string(),
                    errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                });
            }
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| DoorError::Os {
        what: "checking",
        path: dir.display().to_string(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(unsafe_dir(format!("owned by uid {}", meta.uid())));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(unsafe_dir(format!("mode {mode:04o}")));
    }
    Ok(())
}

/// Who is on the other end of a connected unix socket, as the kernel recorded it at
/// `connect`/`listen` time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its process id.
    pub pid: u32,
    /// Its effective user id.
    pub uid: u32,
}

/// The credentials of the process on the other end (`SO_PEERCRED`).
pub fn peer(stream: &impl AsFd) -> Result<Peer, Errno> {
    let c = getsockopt(stream, PeerCredentials)?;
    Ok(Peer {
        pid: u32::try_from(c.pid()).unwrap_or(0),
        uid: c.uid(),
    })
}

/// Whether a peer of user `uid` may be talked to: our own effective user or root.
pub fn trusted(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// The server's listening socket, with the lock file (`<path>.lock`, `flock`ed) that keeps a
/// second server from taking the same path while this one lives. The kernel releases the lock
/// when the process dies, so a server killed with SIGKILL leaves a socket file that the next
/// server recognises as stale and replaces. The socket file is removed on drop.
#[derive(Debug)]
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    lock_path: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Open and `flock` the lock file at `lock_path`, for the server `name` at socket `path`.
/// The lock is on the file's inode: if the path was removed or replaced between our open and
/// our lock (a server removing it as it shut down), lock the new file instead.
fn lock_file(
    lock_path: &Path,
    name: &str,
    path: &Path,
) -> Result<nix::fcntl::Flock<std::fs::File>, DoorError> {
    let shown = lock_path.display().to_string();
    let os = |what, e: std::io::Error| DoorError::Os {
        what,
        path: shown.clone(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    };
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode_0600()
            .open(lock_path)
            .map_err(|e| os("opening", e))?;
        let lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        {
            Ok(l) => l,
            Err((_, Errno::EWOULDBLOCK)) => {
                let pid = UnixStream::connect(path)
                    .ok()
                    .and_then(|s| peer(&s).ok())
                    .map(|p| p.pid);
                return Err(DoorError::InUse {
                    name: name.to_string(),
                    pid,
                });
            }
            Err((_, errno)) => {
                return Err(DoorError::Os {
                    what: "locking",
                    path: shown,
                    errno,
                });
            }
        };
        let held = lock.metadata().map_err(|e| os("checking", e))?;
        match std::fs::metadata(lock_path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(lock),
            _ => continue,
        }
    }
}

impl Listener {
    /// Take `path` for a server called `name` (used in messages): lock it, remove a stale
    /// socket left by a dead server, bind and listen (the socket file mode 0600). A live server
    /// there gives [`DoorError::InUse`]; a file that is not a socket, [`DoorError::NotASocket`].
    pub fn bind(path: &Path, name: &str) -> Result<Listener, DoorError> {
        let shown = path.display().to_string();
        let os = |what, e: std::io::Error| DoorError::Os {
            what,
            path: shown.clone(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        };
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock = lock_file(&lock_path, name, path)?;
        // We hold the lock: whatever socket is there belongs to a server that is gone.
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| os("removing the stale socket", e))?;
            }
            Ok(_) => return Err(DoorError::NotASocket(shown)),
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(|e| os("listening on", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| os("setting the mode of", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| os("configuring", e))?;
        Ok(Listener {
            listener,
            path: path.to_path_buf(),
            lock_path,
            _lock: lock,
        })
    }

    /// The listening socket (non-blocking).
    pub fn socket(&self) -> &UnixListener {
        &self.listener
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The socket first, then the lock file, and only then is the lock released (the field
        // is dropped after this): a server starting meanwhile finds the name free or in use,
        // never half taken.
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// `OpenOptions` with mode 0600 for new files.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// The client's request for a session (or, as a probe, for who holds a slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The slot asked for, or [`ANY_SLOT`].
    pub slot: u32,
    /// Only ask who holds `slot`: the answer is [`Welcome::Free`] or [`Welcome::SlotBusy`],
    /// and no session is opened.
    pub probe: bool,
}

impl Hello {
    /// The 24 bytes sent: magic, [`HANDSHAKE_VERSION`], slot, flags (bit 0: probe), zero
    /// (little-endian).
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..8].copy_from_slice(&HELLO_MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.slot.to_le_bytes());
        b[16..20].copy_from_slice(&u32::from(self.probe).to_le_bytes());
        b
    }

    /// Decode a hello: `None` unless it is exactly one of this version with known flags.
    pub fn decode(b: &[u8]) -> Option<Hello> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        if b.len() != HELLO_LEN
            || u64::from_le_bytes(b[..8].try_into().ok()?) != HELLO_MAGIC
            || u32_at(8)? != HANDSHAKE_VERSION
            || u32_at(16)? > 1
            || u32_at(20)? != 0
        {
            return None;
        }
        Some(Hello {
            slot: u32_at(12)?,
            probe: u32_at(16)? == 1,
        })
    }
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Welcome {
    /// A session in slot `slot`; the descriptor of its object comes with the message.
    Session {
        /// The slot.
        slot: u32,
    },
    /// The slot asked for is held by another session (of process `pid`).
    SlotBusy {
        /// The slot.
        slot: u32,
        /// The holder's pid.
        pid: u32,
    },
    /// The slot asked for does not exist: the server has `clients` slots.
    OutOfRange {
        /// The slot.
        slot: u32,
        /// Slots the server has.
        clients: u32,
    },
    /// Every one of the server's `clients` slots is held.
    AllBusy {
        /// Slots the server has.
        clients: u32,
    },
    /// The server is shutting down.
    Stopping,
    /// The server could not make the session (a system call failed, or the hello was not
    /// understood).
    Failed,
    /// Answer to a probe: the slot is free.
    Free {
        /// The slot.
        slot: u32,
    },
    /// The client runs as another user (neither the server's nor root): no session.
    Refused,
}

impl Welcome {
    /// The 32 bytes sent: magic, [`HANDSHAKE_VERSION`], status, two numbers (little-endian).
    pub fn encode(&self) -> [u8; WELCOME_LEN] {
        let (status, a, b) = match *self {
            Welcome::Session { slot } => (0u32, slot, 0u32),
            Welcome::SlotBusy { slot, pid } => (1, slot, pid),
            Welcome::OutOfRange { slot, clients } => (2, slot, clients),
            Welcome::AllBusy { clients } => (3, 0, clients),
            Welcome::Stopping => (4, 0, 0),
            Welcome::Failed => (5, 0, 0),
            Welcome::Free { slot } => (6, slot, 0),
            Welcome::Refused => (7, 0, 0),
        };
        let mut out = [0u8; WELCOME_LEN];
        out[..8].copy_from_slice(&WELCOME_MAGIC.to_le_bytes());
        out[8..12].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&status.to_le_bytes());
        out[16..20].copy_from_slice(&a.to_le_bytes());
        out[20..24].copy_from_slice(&b.to_le_bytes());
        out
    }

    /// Decode a welcome: `None` unless it is exactly one of this version with a known status.
    pub fn decode(b: &[u8]) -> Option<Welcome> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        if b.len() != WELCOME_LEN
            || u64::from_le_bytes(b[..8].try_into().ok()?) != WELCOME_MAGIC
            || u32_at(8)? != HANDSHAKE_VERSION
        {
            return None;
        }
        let (a, n) = (u32_at(16)?, u32_at(20)?);
        Some(match u32_at(12)? {
            0 => Welcome::Session { slot: a },
            1 => Welcome::SlotBusy { slot: a, pid: n },
            2 => Welcome::OutOfRange {
                slot: a,
                clients: n,
            },
            3 => Welcome::AllBusy { clients: n },
            4 => Welcome::Stopping,
            5 => Welcome::Failed,
            6 => Welcome::Free { slot: a },
            7 => Welcome::Refused,
            _ => return None,
        })
    }
}

/// Send `bytes` in one message, with `fd` attached (`SCM_RIGHTS`) when given.
pub fn send_with_fd(stream: &UnixStream, bytes: &[u8], fd: Option<&OwnedFd>) -> Result<(), Errno> {
    let iov = [IoSlice::new(bytes)];
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(fd) => {
            fds = [fd.as_raw_fd()];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    let n = sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n != bytes.len() {
        return Err(Errno::EMSGSIZE);
    }
    Ok(())
}

/// Receive one message into `buf`, with the descriptor it carries, if any (close-on-exec).
/// Returns the bytes received (0: the peer hung up). Any further descriptors are closed.
pub fn recv_with_fd(
    stream: &UnixStream,
    buf: &mut [u8],
) -> Result<(usize, Option<OwnedFd>), Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got = None;
    for c in msg.cmsgs().map_err(|_| Errno::EBADMSG)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel just installed `raw` in our table for this message; nothing
                // else owns it, so taking ownership (and closing the extra ones) is sound.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, got))
}

/// Whether the peer of `stream` has hung up (or sent something, which on this socket only a
/// misbehaving peer does), without blocking.
pub fn hung_up(stream: &UnixStream) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => true,
        Err(Errno::EINTR) => false,
        Err(_) => true,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_reject_garbage() {
        for slot in [0, 7, ANY_SLOT] {
            for probe in [false, true] {
                let h = Hello { slot, probe };
                assert_eq!(Hello::decode(&h.encode()), Some(h));
            }
        }
        for w in [
            Welcome::Session { slot: 3 },
            Welcome::SlotBusy { slot: 1, pid: 99 },
            Welcome::OutOfRange {
                slot: 9,
                clients: 4,
            },
            Welcome::AllBusy { clients: 4 },
            Welcome::Stopping,
            Welcome::Failed,
            Welcome::Free { slot: 5 },
            Welcome::Refused,
        ] {
            assert_eq!(Welcome::decode(&w.encode()), Some(w));
        }
        let hello = Hello {
            slot: 1,
            probe: false,
        };
        let mut h = hello.encode();
        assert_eq!(Hello::decode(&h[..15]), None);
        h[8] = 9;
        assert_eq!(Hello::decode(&h), None, "other version");
        h = hello.encode();
        h[0] ^= 1;
        assert_eq!(Hello::decode(&h), None, "bad magic");
        h = hello.encode();
        h[16] = 2;
        assert_eq!(Hello::decode(&h), None, "unknown flag");
        let mut w = Welcome::Stopping.encode();
        w[12] = 77;
        assert_eq!(Welcome::decode(&w), None, "unknown status");
        let mut w = [0u8; WELCOME_LEN];
        w[..HELLO_LEN].copy_from_slice(&hello.encode());
        assert_eq!(Welcome::decode(&w), None, "a hello is no welcome");
    }

    #[test]
    #[cfg(not(miri))]
    fn private_dirs_only() {
        let base = std::env::temp_dir().join(format!("shmkv-door-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        prepare_dir(&base, true).unwrap();
        let mode = std::fs::metadata(&base).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = prepare_dir(&base, true).unwrap_err();
        assert!(e.to_string().contains("mode 0755"), "{e}");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = base.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&base, &link).unwrap();
        assert!(prepare_dir(&link, false).is_err(), "a link is refused");
        assert!(prepare_dir(&base.join("missing"), false).is_err());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    #[cfg(not(miri))]
    fn a_second_listener_is_refused_and_a_stale_socket_replaced() {
        let dir = std::env::temp_dir().join(format!("shmkv-door-l-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        prepare_dir(&dir, true).unwrap();
        let path = dir.join("t.sock");
        let first = Listener::bind(&path, "t").unwrap();
        match Listener::bind(&path, "t").unwrap_err() {
            DoorError::InUse { pid, .. } => assert_eq!(pid, Some(std::process::id())),
            e => panic!("{e}"),
        }
        // A stale socket: a bound socket whose listener is gone (as after SIGKILL), no lock.
        drop(first);
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let again = Listener::bind(&path, "t").unwrap();
        let s = UnixStream::connect(&path).unwrap();
        let me = peer(&s).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(trusted(me.uid));
        drop(again);
        assert!(!path.exists(), "removed on drop");
        assert!(!dir.join("t.sock.lock").exists(), "the lock file too");
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            Listener::bind(&path, "t").unwrap_err(),
            DoorError::NotASocket(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg(not(miri))]
    fn descriptors_travel_with_their_message() {
        let (a, b) = UnixStream::pair().unwrap();
        let (fd, map) = crate::shm::Mapping::create_sealed(4096).unwrap();
        map.atomic_u64(0)
            .unwrap()
            .store(77, std::sync::atomic::Ordering::SeqCst);
        send_with_fd(&a, &Welcome::Session { slot: 2 }.encode(), Some(&fd)).unwrap();
        let mut buf = [0u8; 64];
        let (n, got) = recv_with_fd(&b, &mut buf).unwrap();
        assert_eq!(
            Welcome::decode(&buf[..n]),
            Some(Welcome::Session { slot: 2 })
        );
        let other = crate::shm::Mapping::open_sealed(&got.unwrap()).unwrap();
        assert_eq!(
            other
                .atomic_u64(0)
                .unwrap()
                .load(std::sync::atomic::Ordering::SeqCst),
            77
        );
        assert!(!hung_up(&b));
        drop(a);
        assert!(hung_up(&b));
        assert_eq!(recv_with_fd(&b, &mut buf).unwrap().0, 0);
    }
}
