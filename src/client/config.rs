//! How to connect: the [`ClientConfig`] a session is opened with.

#[cfg(doc)]
use super::{ClientError, LIVENESS_POLL};
use crate::door;
use std::path::PathBuf;
use std::time::Duration;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's name.
    pub name: String,
    /// Connect to this socket instead of the one the name gives (the server's `--socket`).
    pub socket: Option<PathBuf>,
    /// The client slot to take; `None` takes the first free one.
    pub slot: Option<u32>,
    /// How long to wait for a slot that is being freed (a client that just left), and for
    /// the server's answer to the handshake.
    pub attach_timeout: Duration,
    /// How long a call waits while the server makes no progress on this connection (answers
    /// nothing, takes no request) before it fails with [`ClientError::Timeout`] and the
    /// connection is given up. A server that shut down or died is noticed sooner, within
    /// about [`LIVENESS_POLL`]; this bounds the rest (a stopped or hung server, a server pid
    /// reused by another process). Default 1 s.
    pub timeout: Duration,
    /// Fault the session object in at connect ([`ClientConfig::prefault`]). Default off.
    pub prefault: bool,
    /// Whether a call spins before it sleeps when it waits ([`ClientConfig::spin`]). Default
    /// on.
    pub spin: bool,
}

impl ClientConfig {
    /// Connect to server `name`, first free slot.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            socket: None,
            slot: None,
            attach_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            prefault: false,
            spin: true,
        }
    }

    /// Fault the whole session object in at connect, so that the rings' first lap takes no
    /// page faults: for a long-lived client. The object is about 12 MiB with the default
    /// limits (its rings are sized for the longest key and value), so connecting takes a few
    /// milliseconds longer and the object's memory is used at once rather than as the rings
    /// first fill. Without it every 4 KiB page of the rings costs a page fault (and the
    /// zeroing of a page) the first time it is used: on 8-byte values that is one request in
    /// a hundred, for the first 12 MiB of traffic. Ignored where the kernel cannot do it
    /// (`MADV_POPULATE_WRITE`, Linux 5.14). See design.md §10a.
    pub fn prefault(mut self, on: bool) -> Self {
        self.prefault = on;
        self
    }

    /// Whether a call that waits for an answer or for room in the request ring spins (and
    /// yields) before it sleeps on the futex (`true`, the default), or sleeps at once
    /// (`false`). Spinning hears the server's answer within nanoseconds while each waiting
    /// thread has a core of its own; where waiting threads outnumber the cores it burns the
    /// core another thread needs. Sleeping at once costs a wake-up (a system call on each
    /// side, microseconds) per wait and burns nothing: for clients that share a few cores
    /// with many others (design.md §4 has the measurements; the server's `--spin off` is
    /// the same for its workers).
    pub fn spin(mut self, on: bool) -> Self {
        self.spin = on;
        self
    }

    /// Give up on a server that makes no progress for `timeout` (see [`ClientConfig::timeout`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Take slot `slot`.
    pub fn slot(mut self, slot: u32) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Connect to the socket at `path` (see [`ClientConfig::socket`]).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// The socket path this configuration connects to.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| door::socket_path(&self.name))
    }
}
