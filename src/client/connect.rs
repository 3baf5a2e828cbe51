//! Opening a session: the handshake over the server's socket, and the probe of a slot's holder.

use super::book::Book;
use super::{Client, ClientConfig, ClientError, Receiver, Sender};
use crate::channel::{self, HeaderInfo, Object};
use crate::door::{self, ANY_SLOT, Hello, WELCOME_LEN, Welcome};
use crate::record::{RecordConsumer, RecordError, RecordProducer};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex};
use crate::wait::SpinPolicy;
use nix::errno::Errno;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What one handshake gave.
enum Answer {
    /// A session.
    Session(Box<Client>),
    /// Not now (the slot, or every slot, is held): try again until the deadline.
    Busy(ClientError),
}

/// Connect to `path`, check who listens there, and send the hello: nothing is sent to a
/// process of another user.
fn knock(
    config: &ClientConfig,
    path: &std::path::Path,
    probe: bool,
) -> Result<UnixStream, ClientError> {
    let shown = path.display().to_string();
    let stream = UnixStream::connect(path).map_err(|e| {
        match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
            Errno::ENOENT | Errno::ECONNREFUSED => ClientError::NoServer {
                name: config.name.clone(),
            },
            Errno::EACCES | Errno::EPERM => ClientError::PermissionDenied {
                path: shown.clone(),
            },
            errno => ClientError::Os {
                path: shown.clone(),
                errno,
            },
        }
    })?;
    let peer = door::peer(&stream).map_err(|errno| ClientError::Os {
        path: shown.clone(),
        errno,
    })?;
    if !door::trusted(peer.uid) {
        return Err(ClientError::UntrustedServer {
            path: shown,
            pid: peer.pid,
            uid: peer.uid,
        });
    }
    let os = |e: std::io::Error| ClientError::Os {
        path: shown.clone(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    };
    stream
        .set_read_timeout(Some(handshake_wait(config)))
        .map_err(os)?;
    let hello = Hello {
        slot: config.slot.unwrap_or(ANY_SLOT),
        probe,
    };
    match std::io::Write::write_all(&mut &stream, &hello.encode()) {
        // The server may have answered and closed already (a refusal): read its answer.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {}
        r => r.map_err(os)?,
    }
    Ok(stream)
}

/// How long a handshake waits for the server's answer: `attach_timeout`, at least 100 ms.
fn handshake_wait(config: &ClientConfig) -> Duration {
    config.attach_timeout.max(Duration::from_millis(100))
}

/// Knock (a probe or not) and read the welcome, with the descriptor it carries.
fn ask(
    config: &ClientConfig,
    path: &std::path::Path,
    probe: bool,
) -> Result<(UnixStream, Welcome, Option<std::os::fd::OwnedFd>), ClientError> {
    let stream = knock(config, path, probe)?;
    let mut buf = [0u8; WELCOME_LEN];
    let shown = path.display().to_string();
    let (n, fd) = door::recv_with_fd(&stream, &mut buf).map_err(|errno| match errno {
        Errno::EAGAIN => ClientError::Timeout(handshake_wait(config)),
        Errno::ECONNRESET => ClientError::HungUp {
            path: shown.clone(),
        },
        errno => ClientError::Os {
            path: shown.clone(),
            errno,
        },
    })?;
    if n == 0 {
        return Err(ClientError::HungUp { path: shown });
    }
    let welcome = Welcome::decode(&buf[..n]).ok_or_else(|| {
        ClientError::Protocol("the server's handshake answer is not understood".into())
    })?;
    Ok((stream, welcome, fd))
}

/// The checks of the socket path every connection makes: the default directory must be ours
/// and private.
fn door_path(config: &ClientConfig) -> Result<PathBuf, ClientError> {
    channel::validate_name(&config.name).map_err(ClientError::InvalidName)?;
    if config.socket.is_none() {
        let dir = door::socket_dir();
        if !dir.exists() {
            return Err(ClientError::NoServer {
                name: config.name.clone(),
            });
        }
        door::prepare_dir(&dir, false).map_err(ClientError::Door)?;
    }
    Ok(config.socket_path())
}

/// Which process holds slot `slot` of the server `config` names (`None`: the slot is free),
/// asked without opening a session: nothing on the server changes.
pub fn slot_holder(config: &ClientConfig, slot: u32) -> Result<Option<u32>, ClientError> {
    let path = door_path(config)?;
    let config = ClientConfig {
        slot: Some(slot),
        ..config.clone()
    };
    match ask(&config, &path, true)?.1 {
        Welcome::Free { .. } => Ok(None),
        Welcome::SlotBusy { pid, .. } => Ok(Some(pid)),
        Welcome::OutOfRange { slot, clients } => Err(ClientError::SlotOutOfRange {
            name: config.name.clone(),
            slot,
            slots: clients,
        }),
        Welcome::Stopping => Err(ClientError::ServerGone("is shutting down")),
        Welcome::Refused => Err(ClientError::PermissionDenied {
            path: path.display().to_string(),
        }),
        _ => Err(ClientError::Protocol(
            "the server's answer to a probe is not understood".into(),
        )),
    }
}

/// One handshake: knock, read the welcome, map the object.
fn handshake(config: &ClientConfig, path: &std::path::Path) -> Result<Answer, ClientError> {
    let (stream, welcome, fd) = ask(config, path, false)?;
    let name = config.name.clone();
    let shown = path.display().to_string();
    match welcome {
        Welcome::Session { slot } => {
            let fd = fd
                .ok_or_else(|| ClientError::Protocol("the server sent no session object".into()))?;
            let (object, info) =
                channel::open_object(&fd).map_err(|reason| ClientError::BadObject { reason })?;
            if config.prefault {
                // An optimisation only: a kernel without MADV_POPULATE_WRITE, or a failure
                // to allocate now, leaves the pages to be faulted in as they are used.
                if let Err(e) = object.populate() {
                    tracing::debug!("session object not prefaulted: {e}");
                }
            }
            stream.set_read_timeout(None).ok();
            stream.set_nonblocking(true).ok();
            Ok(Answer::Session(Box::new(Client::attached(
                object,
                info,
                slot,
                (stream, fd),
                config,
            )?)))
        }
        Welcome::SlotBusy { slot, pid } => Ok(Answer::Busy(ClientError::SlotBusy { slot, pid })),
        Welcome::AllBusy { clients } => Ok(Answer::Busy(ClientError::AllSlotsBusy {
            name,
            slots: clients,
        })),
        Welcome::OutOfRange { slot, clients } => Err(ClientError::SlotOutOfRange {
            name,
            slot,
            slots: clients,
        }),
        Welcome::Stopping => Err(ClientError::ServerGone("is shutting down")),
        Welcome::Refused => Err(ClientError::PermissionDenied { path: shown }),
        Welcome::Failed | Welcome::Free { .. } => Err(ClientError::Protocol(
            "the server could not open a session (see its log)".into(),
        )),
    }
}

impl Client {
    /// Open a session with server `config.name` through its socket (in the given slot, or any
    /// free one). A slot that is held is asked for again until `attach_timeout`: its previous
    /// client may be leaving.
    pub fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let path = door_path(config)?;
        let deadline = Instant::now() + config.attach_timeout;
        loop {
            match handshake(config, &path)? {
                Answer::Session(c) => return Ok(*c),
                Answer::Busy(e) if Instant::now() >= deadline => return Err(e),
                Answer::Busy(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn attached(
        object: Object,
        info: HeaderInfo,
        slot: u32,
        (stream, fd): (UnixStream, std::os::fd::OwnedFd),
        config: &ClientConfig,
    ) -> Result<Client, ClientError> {
        let timeout = config.timeout;
        let broken = |e: RecordError| ClientError::Protocol(e.to_string());
        let mut producer = RecordProducer::new(object.request_ring(&info)).map_err(broken)?;
        let mut receiver = RecordConsumer::new(object.response_ring(&info)).map_err(broken)?;
        if !config.spin {
            producer.set_policy(SpinPolicy::BLOCK);
            receiver.set_policy(SpinPolicy::BLOCK);
        }
        Ok(Client {
            timeout,
            object,
            info,
            slot,
            stream,
            fd,
            producer: Mutex::new(Sender {
                ring: producer,
                buf: Vec::new(),
            }),
            receiver: Mutex::new(Receiver {
                ring: receiver,
                buf: Vec::new(),
            }),
            book: Mutex::new(Book::default()),
            cond: Condvar::new(),
            has_failed: AtomicBool::new(false),
            lone_filings: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        })
    }
}
