//! What went wrong for a client: [`ClientError`].

#[cfg(doc)]
use super::ClientConfig;
use crate::channel::HeaderError;
use crate::door::DoorError;
use crate::wire::{ErrorCode, Field};
use nix::errno::Errno;
use std::time::Duration;

/// What went wrong for a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server name is not valid.
    #[error("{0}")]
    InvalidName(String),
    /// No server of that name.
    #[error(
        "no shmkv server named '{name}' is running (start one with: shmkv-server --name {name})"
    )]
    NoServer {
        /// The name.
        name: String,
    },
    /// The slot index does not exist.
    #[error("client id {slot} is out of range: server '{name}' has {slots} client slots (0..={})", slots.saturating_sub(1))]
    SlotOutOfRange {
        /// The name.
        name: String,
        /// Asked for.
        slot: u32,
        /// Slots the server has.
        slots: u32,
    },
    /// Another client holds the slot.
    #[error("client id {slot} is in use by process {pid}; pick another id or omit it")]
    SlotBusy {
        /// The slot.
        slot: u32,
        /// Its owner.
        pid: u32,
    },
    /// Every slot is taken.
    #[error("all {slots} client slots of server '{name}' are in use")]
    AllSlotsBusy {
        /// The name.
        name: String,
        /// Slots the server has.
        slots: u32,
    },
    /// The session object is not one this build can use.
    #[error("the server's session object: {reason}")]
    BadObject {
        /// What is wrong.
        reason: HeaderError,
    },
    /// A system call failed.
    #[error("{path}: {errno}")]
    Os {
        /// The socket.
        path: String,
        /// The error.
        errno: Errno,
    },
    /// The socket's directory is not private to this user, or the socket is not ours to use.
    #[error("{0}")]
    Door(DoorError),
    /// The server closed the connection before answering the handshake (it died, or shut
    /// down).
    #[error("{path}: the server closed the connection during the handshake")]
    HungUp {
        /// The socket.
        path: String,
    },
    /// The server runs as another user: only that user may connect.
    #[error(
        "{path}: permission denied (the server runs as another user; only that user may connect)"
    )]
    PermissionDenied {
        /// The socket.
        path: String,
    },
    /// The process listening on the socket runs as another user (not ours, not root): it is
    /// not trusted with our data, and nothing was sent to it.
    #[error(
        "{path}: the process listening there (pid {pid}) runs as uid {uid}, not as this user or root; refusing to talk to it"
    )]
    UntrustedServer {
        /// The socket.
        path: String,
        /// The listener's pid.
        pid: u32,
        /// The listener's uid.
        uid: u32,
    },
    /// The server shut down or died.
    #[error("the server {0}")]
    ServerGone(&'static str),
    /// The server made no progress on this connection for this long (see
    /// [`ClientConfig::timeout`]); the connection is given up.
    #[error(
        "the server did not answer within {0:?} (stopped or hung?); gave up on this connection"
    )]
    Timeout(Duration),
    /// The server sent something this client does not understand, or broke the ring protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the request.
    #[error("{0}")]
    Refused(ErrorCode),
    /// A key or value longer than the server's limit (or an empty key): refused before
    /// anything was sent.
    #[error("{what} of {len} bytes is {}", if *len == 0 { "not allowed (keys are 1 byte or more)".to_string() } else { format!("longer than the server's limit of {max} bytes") })]
    TooLarge {
        /// Which field.
        what: Field,
        /// Its length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The ticket is not one this client is waiting for.
    #[error("unknown ticket {0}")]
    UnknownTicket(u64),
}
