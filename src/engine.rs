//! One interface over two engines: shmkv's own server through shared memory, and Redis (one
//! server or a cluster) for processes that outgrow one machine.
//!
//! A program written against [`Engine`] runs unchanged on either: [`connect`] takes a URL and
//! returns the engine it names.
//!
//! | URL | engine |
//! |-----|--------|
//! | `shm://NAME` | the shmkv server named `NAME` on this machine ([`Client`]) |
//! | `redis://HOST:PORT[/DB]` | one Redis (or Valkey) server over TCP |
//! | `redis+unix:///PATH` | one Redis server on a unix socket |
//! | `redis-cluster://HOST:PORT[,HOST:PORT…]` | a Redis Cluster, found from any of its nodes |
//!
//! The Redis engines need the crate's `redis` feature (the library alone compiles no Redis
//! code); without it a Redis URL is refused with [`EngineError::NoRedis`].
//!
//! # Operations on each engine
//!
//! Insert, read, delete, insert-new, cas, add, len and scan work on every engine, with the
//! same answers ([`Outcome`]); [`Engine::execute_all`] pipelines a batch on every engine.
//! Print, threads start/stop, stats and quit belong to shmkv's own server: elsewhere they are
//! refused before anything is sent ([`EngineError::Unsupported`]). What differs and cannot be
//! hidden (the size limits, what len and scan mean in a cluster) is in design.md,
//! "One API on Redis", and in each engine's documentation.
//!
//! ```no_run
//! # shmkv::__unless_loom! {
//! use shmkv::engine::{self, Engine};
//!
//! // The same code on shared memory, on a Redis server, or on a Redis Cluster.
//! for url in ["shm://default", "redis://127.0.0.1:6379"] {
//!     let db = engine::connect(url).unwrap();
//!     db.insert(b"fruit", b"apple").unwrap();
//!     assert_eq!(db.read(b"fruit").unwrap(), Some(b"apple".to_vec()));
//!     assert_eq!(db.add(b"visits", 2).unwrap(), 2);
//!     db.delete(b"visits").unwrap();
//! }
//! # }
//! ```
//!
//! [`Client`]: crate::Client

mod shm;
mod url;

#[cfg(feature = "redis")]
pub mod redis;

pub use url::EngineUrl;

use crate::client::{ClientConfig, ClientError, check_limits};
use crate::wire::{ErrorCode, Limits, Op, Outcome};
use crate::{Client, wire::Verb};

/// Why an engine could not connect, or could not run an operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The URL names no engine this library knows, or is malformed.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Redis URL, in a build without the `redis` feature.
    #[error("{0}: this build of shmkv has no Redis engine (build shmkv with the `redis` feature)")]
    NoRedis(String),
    /// The shared-memory engine failed (connecting, a key over the limits, the server gone…).
    #[error("{0}")]
    Shm(#[from] ClientError),
    /// The operation belongs to shmkv's own server, and this engine has no such thing.
    #[error("'{op}' is not supported by the {engine} engine (only shmkv's own server has it)")]
    Unsupported {
        /// The operation's command-line name.
        op: &'static str,
        /// The engine's name ([`Engine::kind`]).
        engine: &'static str,
    },
    /// The engine refused the operation (out of memory, not an integer, an overflow…) and
    /// changed nothing; in a batch this is an outcome, `Outcome::Refused`.
    #[error("{0}")]
    Refused(ErrorCode),
    /// A key or value over the engine's limits, or an empty key: nothing was sent.
    #[error("{0}")]
    TooLarge(ClientError),
    /// The Redis engine failed: connecting, the connection, or an answer it did not expect.
    #[error("{engine}: {message}")]
    Redis {
        /// The engine's name.
        engine: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// A key-value store that shmkv's API can drive: shmkv's shared memory or Redis.
///
/// Every method takes `&self` and an engine is `Send + Sync`, so threads may share one (the
/// shared-memory engine pipelines their requests on one session; the Redis engines take
/// turns on one connection per node).
pub trait Engine: Send + Sync {
    /// The engine's name: `"shm"`, `"redis"` or `"redis-cluster"`.
    fn kind(&self) -> &'static str;

    /// The longest key and value the engine accepts (keys are at least 1 byte).
    fn limits(&self) -> Limits;

    /// Whether the engine has the operation `verb`. Every engine has insert, read, delete,
    /// insert-new, cas, add, len and scan; print, threads start/stop, stats and quit belong
    /// to shmkv's own server, and an engine without one refuses a batch that holds it
    /// ([`EngineError::Unsupported`], nothing sent). By default, every operation.
    fn supports(&self, verb: Verb) -> bool {
        let _ = verb;
        true
    }

    /// Executes `ops` as one pipelined batch, answering each in order.
    ///
    /// `Err` means nothing was sent: an operation the engine does not support, a key or value
    /// over the limits, or a connection that could not send. Otherwise each operation has its
    /// own result: its [`Outcome`] (a refusal such as
    /// [`ErrorCode::NotAnInteger`] is an outcome, `Outcome::Refused`), or the error that
    /// left it unanswered (the connection failed after the batch was sent: the operation may
    /// or may not have taken effect).
    ///
    /// Operations on one key take effect in batch order, on every engine; operations on
    /// different keys may run in parallel (on different cluster nodes, or server workers).
    fn execute_all(&self, ops: &[Op]) -> Result<Vec<Result<Outcome, EngineError>>, EngineError>;

    /// [`Engine::execute_all`], handing each answer to `each`, in batch order, as soon as
    /// this engine has it (the shared-memory engine as each answer arrives; an engine that
    /// gets a batch's answers together, after the batch). `Err` as for `execute_all`: nothing
    /// was sent and `each` was not called.
    fn execute_each(
        &self,
        ops: &[Op],
        each: &mut dyn FnMut(Result<Outcome, EngineError>),
    ) -> Result<(), EngineError> {
        self.execute_all(ops)?.into_iter().for_each(each);
        Ok(())
    }

    /// Executes one operation.
    fn execute(&self, op: Op) -> Result<Outcome, EngineError> {
        let mut all = self.execute_all(std::slice::from_ref(&op))?;
        all.pop()
            .unwrap_or_else(|| Err(unexpected(self.kind(), "no answer")))
    }

    /// Sets `key` to `value`; returns the value it replaced, if any.
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let op = Op::Insert {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        match self.execute(op)? {
            Outcome::Created => Ok(None),
            Outcome::Replaced(old) => Ok(Some(old)),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// The value of `key`, if present.
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        match self.execute(Op::Read { key: key.to_vec() })? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// Removes `key`; returns the value it had, if it was present.
    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        match self.execute(Op::Delete { key: key.to_vec() })? {
            Outcome::Deleted(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// Sets `key` to `value` only if it is absent: `None` if it was set, else the value
    /// present (nothing changed).
    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let op = Op::InsertNew {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        match self.execute(op)? {
            Outcome::Created => Ok(None),
            Outcome::Exists(v) => Ok(Some(v)),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// Sets `key` to `new` if its value is `expected` (`None`: if it is absent). `Ok(Ok(()))`
    /// if it was swapped, `Ok(Err(current))` if not (`current` `None`: absent).
    #[allow(clippy::type_complexity)]
    fn cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, EngineError> {
        let op = Op::Cas {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.to_vec(),
        };
        match self.execute(op)? {
            Outcome::Swapped => Ok(Ok(())),
            Outcome::Mismatch(current) => Ok(Err(current)),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// Adds `delta` to the decimal integer at `key` (absent counts as 0); returns the sum.
    /// A value that is not a decimal 64-bit integer, or a sum that overflows, is refused
    /// ([`EngineError::Refused`]) and changes nothing.
    fn add(&self, key: &[u8], delta: i64) -> Result<i64, EngineError> {
        match self.execute(Op::Add {
            key: key.to_vec(),
            delta,
        })? {
            Outcome::Number(n) => Ok(n),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// The number of keys (in a cluster: the sum over its masters, see the engine).
    fn len(&self) -> Result<u64, EngineError> {
        match self.execute(Op::Len)? {
            Outcome::Count(n) => Ok(n),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }

    /// Whether the store holds no key ([`Engine::len`] is 0).
    fn is_empty(&self) -> Result<bool, EngineError> {
        Ok(self.len()? == 0)
    }

    /// One step of a scan: the next cursor (0: done) and some keys. A scan from cursor 0 until
    /// the cursor comes back 0 returns every key present from its start to its end at least
    /// once (Redis `SCAN`'s guarantee, on every engine).
    fn scan(&self, cursor: u64, count: u32) -> Result<(u64, Vec<Vec<u8>>), EngineError> {
        match self.execute(Op::Scan { cursor, count })? {
            Outcome::Keys { cursor, keys } => Ok((cursor, keys)),
            o => Err(refusal_or_unexpected(self.kind(), o)),
        }
    }
}

/// Connects to the engine `url` names (see the table in the module documentation).
///
/// `shm://NAME` connects like [`Client::connect`] with [`ClientConfig::new`]`(NAME)`; use
/// [`connect_with`] to set the shared-memory client's options.
pub fn connect(url: &str) -> Result<Box<dyn Engine>, EngineError> {
    connect_with(url, |config| config)
}

/// [`connect`], with `shm` adjusting the shared-memory client's configuration (its slot,
/// timeout, socket) when the URL names a shmkv server; it is not called for other engines.
pub fn connect_with(
    url: &str,
    shm: impl FnOnce(ClientConfig) -> ClientConfig,
) -> Result<Box<dyn Engine>, EngineError> {
    match EngineUrl::parse(url)? {
        EngineUrl::Shm { name } => Ok(Box::new(Client::connect(&shm(ClientConfig::new(&name)))?)),
        #[cfg(feature = "redis")]
        other => Ok(Box::new(redis::RedisEngine::connect(&other)?)),
        #[cfg(not(feature = "redis"))]
        _ => Err(EngineError::NoRedis(url.to_string())),
    }
}

/// Refuses, before anything is sent, a batch with an operation `engine` does not support
/// (`supports` says which) or a key or value over `limits`.
pub fn check_batch(
    ops: &[Op],
    engine: &'static str,
    limits: &Limits,
    supports: impl Fn(Verb) -> bool,
) -> Result<(), EngineError> {
    for op in ops {
        let verb = op.verb();
        if !supports(verb) {
            return Err(EngineError::Unsupported {
                op: verb.info().name,
                engine,
            });
        }
        check_limits(op, limits).map_err(EngineError::TooLarge)?;
    }
    Ok(())
}

/// An answer of a kind the operation cannot get.
fn unexpected(engine: &'static str, what: &str) -> EngineError {
    EngineError::Redis {
        engine,
        message: format!("unexpected answer: {what}"),
    }
}

/// The error for an outcome a typed method did not expect: a refusal keeps its code.
fn refusal_or_unexpected(engine: &'static str, o: Outcome) -> EngineError {
    match o {
        Outcome::Refused(code) => EngineError::Refused(code),
        o => unexpected(engine, &format!("{o:?}")),
    }
}

#[cfg(test)]
mod tests;
