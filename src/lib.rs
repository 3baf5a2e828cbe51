//! shmkv: a concurrent hash table held by a server process and used by other processes through
//! shared memory: each client's session is a sealed shared-memory object that the server hands
//! it over a unix socket.
//!
//! The crate is layered; each layer depends only on the ones above it in this list:
//!
//! | layer | module | what it holds |
//! |-------|--------|---------------|
//! | sync facade | `sync`, `wait`, `affinity` | atomics, cells, locks, threads (std/parking_lot or loom); futex wait/wake; a thread's CPU affinity |
//! | memory region | `region`, `shm` | where a ring lives: heap (tests, loom) or a sealed shared-memory mapping |
//! | record ring | `record` | the lock-free SPSC ring of variable-length records (padding at the wrap) with its spin-then-futex wait/wake protocol |
//! | wire protocol | [`wire`] | requests and responses with byte-string keys and values, one record each, every operation defined once in a table |
//! | channel | `channel` | the session object: header, layout version, the two rings |
//! | front door | `door` | the unix socket: its directory, peer credentials, the handshake, descriptor passing |
//! | table | [`table`] | the hash table with one reader-writer lock per bucket |
//! | store | [`store`] | the byte-string table: one allocation per entry, a memory budget, `add`, `cas`, `scan`  |
//! | serving | `serve` | one client's workers: take, execute, answer, in order per key |
//! | statistics | [`stats`] | counters, sampled latency histogram, the typed Stats answer |
//! | server / client | [`server`], [`client`] | the server (sessions, workers, abuse policy) and the client library |
//!
//! The layers below the table (`sync`, `wait`, `region`, `shm`, `record`, `channel`, `door`)
//! and `serve` are public for the model checker, the fuzz targets and the tests, but are not
//! the advertised API and are hidden from these pages: their documentation is in the source
//! and in design.md. A program needs [`client`] and [`server`], the operations of [`wire`],
//! and the [`stats`] a server reports; [`table`] is usable on its own.
//!
//! The rest of the workspace sits on this crate: `crates/cli` (`shmkv-cli`) holds the programs
//! `shmkv-server` and `shmkv-client`, thin command lines over [`server`] and [`client`], with
//! the text layer they share; `crates/bench` (`shmkv-bench`) drives a real `shmkv-server`
//! child with library clients; `crates/testkit` (`shmkv-testkit`) is the linearizability
//! checker the tests use. A program that uses the library compiles none of them.
//!
//! The types a library user needs are re-exported here: [`Client`], [`ClientConfig`],
//! [`ClientError`], [`Outcome`] and [`Ticket`]; [`Server`], [`ServerConfig`] and
//! [`ServerError`]; the operations [`Op`] and the server's refusals [`ErrorCode`].
//!
//! # Example
//!
//! Connecting to a running `shmkv-server` (started as `shmkv-server 64 4 1`: 64 buckets,
//! 4 client slots, 1 worker each; its default name is `shmkv`):
//!
//! ```no_run
//! # shmkv::__unless_loom! {
//! use shmkv::{Client, ClientConfig};
//!
//! let client = Client::connect(&ClientConfig::new("shmkv")).expect("connect");
//! client.insert(b"greeting", b"hello").expect("insert");
//! assert_eq!(client.read(b"greeting").expect("read"), Some(b"hello".to_vec()));
//! drop(client); // ends the session
//! # }
//! ```
//!
//! A server and a client in one process, over real shared memory:
//!
//! ```
//! # shmkv::__unless_loom! {
//! use shmkv::{Client, ClientConfig, Server, ServerConfig};
//!
//! let name = format!("doc-{}", std::process::id());
//! let server = Server::start(ServerConfig { name: name.clone(), ..ServerConfig::default() }).unwrap();
//! let client = Client::connect(&ClientConfig::new(&name)).unwrap();
//! assert_eq!(client.insert(b"fruit", b"apple").unwrap(), None);
//! assert_eq!(client.read(b"fruit").unwrap(), Some(b"apple".to_vec()));
//! assert_eq!(client.add(b"visits", 3).unwrap(), 3);
//! assert_eq!(client.cas(b"fruit", Some(b"apple"), b"pear").unwrap(), Ok(()));
//! assert_eq!(client.delete(b"fruit").unwrap(), Some(b"pear".to_vec()));
//! assert_eq!(client.read(b"fruit").unwrap(), None);
//! drop(client);
//! server.shutdown();
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(not(loom))]
pub mod client;
#[cfg(not(loom))]
pub mod engine;
#[cfg(not(loom))]
pub mod server;
pub mod stats;
pub mod store;
pub mod table;
pub mod wire;

// The layers below: public for loom, fuzz and tests, not the advertised API.
#[cfg(not(loom))]
mod affinity;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod channel;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod door;
#[cfg(not(loom))]
mod hugepage;
#[doc(hidden)]
pub mod record;
#[doc(hidden)]
pub mod region;
#[doc(hidden)]
pub mod serve;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod shm;
#[doc(hidden)]
pub mod sync;
#[doc(hidden)]
pub mod wait;

#[cfg(not(loom))]
pub use client::{Client, ClientConfig, ClientError, Outcome, Ticket};
#[cfg(not(loom))]
pub use engine::{Engine, EngineError, connect};
#[cfg(not(loom))]
pub use server::{Server, ServerConfig, ServerError};
pub use wire::{ErrorCode, Op};

/// Expands to its input, unless the crate was built with `--cfg loom`: then to nothing. Doc
/// examples use it, since rustdoc builds them without the cfg against a library built with it.
#[doc(hidden)]
#[macro_export]
#[cfg(not(loom))]
macro_rules! __unless_loom {
    ($($t:tt)*) => { $($t)* };
}

/// Expands to nothing: this build is for model checking (see the other definition).
#[doc(hidden)]
#[macro_export]
#[cfg(loom)]
macro_rules! __unless_loom {
    ($($t:tt)*) => {};
}
