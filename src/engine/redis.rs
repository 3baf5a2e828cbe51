//! The Redis engines (feature `redis`): one Redis or Valkey server, or a Redis Cluster, behind
//! [`Engine`].
//!
//! # How each operation maps to Redis (7.0 or later)
//!
//! | operation | Redis | answer |
//! |-----------|-------|--------|
//! | insert | `SET k v GET` | old value: Replaced; nil: Created |
//! | read | `GET k` | Value or NotFound |
//! | delete | `GETDEL k` | Deleted(old) or NotFound |
//! | insert-new | `SET k v NX GET` | nil: Created; a value: Exists (nothing set) |
//! | cas | a script ([`CAS_SCRIPT`]): `GET`, compare, `SET`, atomically | Swapped or Mismatch |
//! | add | `INCRBY` inside a script ([`ADD_SCRIPT`]) that turns its refusal into an answer | Number, or Refused NotAnInteger / Overflow |
//! | len | `DBSIZE` (cluster: summed over the masters) | Count |
//! | scan | `SCAN cursor COUNT n` (cluster: master after master) | Keys |
//! | print, threads, stats, quit | none | [`EngineError::Unsupported`], nothing sent |
//!
//! `add` runs `INCRBY` in a script so that a refusal is an answer, not a Redis error: a batch
//! is one pipeline, and in a cluster one error reply fails the whole pipeline's results.
//!
//! # Differences that cannot be hidden
//!
//! * **Limits.** Keys of 1 byte to 512 MiB and values up to 512 MiB (Redis's default
//!   `proto-max-bulk-len`), refused before sending when longer; an empty key is refused as on
//!   shmkv. A server configured lower refuses with an error reply (the batch fails).
//! * **`add`** accepts what Redis's `INCRBY` accepts (the same canonical decimal `i64` rules
//!   as shmkv); there is no "result longer than the value limit" refusal.
//! * **In a cluster, `len`** is the sum of each master's `DBSIZE`, asked one after the other:
//!   not a snapshot, and a key migrating between masters meanwhile may count twice or not at
//!   all. **`scan`** walks the masters in address order; its cursor is the master's index in
//!   the top 16 bits and that master's `SCAN` cursor below (a master cursor of 2^48 or more is
//!   an error, which no table of fewer than 2^48 slots produces). The guarantee holds for keys
//!   that stay on one master during the scan; a resharding in the middle can hide a key. The
//!   masters are read (`CLUSTER SLOTS`) when the engine connects.
//! * **Order.** Operations on one key keep batch order (one key, one node, one connection).
//!   Len and scan in a batch run after every earlier operation of the batch is answered.
//! * The database should hold only string keys: a key of another type makes `SET … GET` and
//!   `GETDEL` fail with `WRONGTYPE`.

use super::{Engine, EngineError, EngineUrl, check_batch};
use crate::sync::Mutex;
use crate::wire::{ErrorCode, Limits, Op, Outcome, Verb};
use redis::cluster::{ClusterClient, ClusterConnection, cluster_pipe};
use redis::{Cmd, ConnectionLike, Value};
use std::time::Duration;

/// The largest key and value a Redis engine accepts (Redis's default `proto-max-bulk-len`).
pub const REDIS_LIMITS: Limits = Limits {
    max_key: 512 << 20,
    max_value: 512 << 20,
};

/// How long connecting to a node, and waiting for a reply, may take.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// Compare-and-swap: `KEYS[1]`; `ARGV[1]` "1" to expect the key absent, else `ARGV[2]` is the
/// value expected; `ARGV[3]` the new value. Returns `{1}` (swapped), `{0}` (absent, not
/// swapped) or `{0, current}`.
pub const CAS_SCRIPT: &str = "local cur = redis.call('GET', KEYS[1]) \
if (ARGV[1] == '1' and cur == false) or (ARGV[1] ~= '1' and cur == ARGV[2]) then \
redis.call('SET', KEYS[1], ARGV[3]) return {1} end \
if cur == false then return {0} end return {0, cur}";

/// Atomic add: `INCRBY KEYS[1] ARGV[1]`, returning `{1, sum as decimal text}` or `{0, error
/// message}`. The sum is read back with `GET`: a Lua number is a double, which would round a
/// sum beyond 2^53. (A refusal is a string in Redis 7.0, a table with `err` in later versions.)
pub const ADD_SCRIPT: &str = "local ok, r = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1]) \
if ok then return {1, redis.call('GET', KEYS[1])} end \
if type(r) == 'table' then r = r['err'] end return {0, tostring(r)}";

/// A Redis server or cluster, as an [`Engine`].
pub struct RedisEngine {
    kind: &'static str,
    target: Mutex<Target>,
}

/// The connections of an engine.
enum Target {
    /// One server.
    Single(redis::Connection),
    /// A cluster: the routed connection for keys, and one connection per master (address
    /// order) for len and scan.
    Cluster {
        keys: Box<ClusterConnection>,
        masters: Vec<redis::Connection>,
    },
}

impl RedisEngine {
    /// Connects to the server or cluster `url` names (`EngineUrl::Redis` or `Cluster`).
    pub fn connect(url: &EngineUrl) -> Result<RedisEngine, EngineError> {
        let kind = url.kind();
        let err = |e: redis::RedisError| redis_error(kind, e);
        let target = match url {
            EngineUrl::Redis { url } => Target::Single(open(url).map_err(err)?),
            EngineUrl::Cluster { nodes } => {
                let client = ClusterClient::builder(nodes.clone())
                    .connection_timeout(REDIS_TIMEOUT)
                    .response_timeout(REDIS_TIMEOUT)
                    .build()
                    .map_err(err)?;
                let mut keys = client.get_connection().map_err(err)?;
                let masters = master_addresses(&mut keys, kind)?
                    .iter()
                    .map(|a| open(&format!("redis://{a}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                Target::Cluster {
                    keys: Box::new(keys),
                    masters,
                }
            }
            EngineUrl::Shm { .. } => {
                return Err(EngineError::BadUrl {
                    url: "shm://…".into(),
                    reason: "not a Redis URL".into(),
                });
            }
        };
        Ok(RedisEngine {
            kind,
            target: Mutex::new(target),
        })
    }
}

/// Opens one node's connection with the engine's timeouts.
fn open(url: &str) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(url)?.get_connection_with_timeout(REDIS_TIMEOUT)?;
    c.set_read_timeout(Some(REDIS_TIMEOUT))?;
    c.set_write_timeout(Some(REDIS_TIMEOUT))?;
    Ok(c)
}

/// The masters' `HOST:PORT`s, sorted, from `CLUSTER SLOTS`.
fn master_addresses(
    con: &mut ClusterConnection,
    kind: &'static str,
) -> Result<Vec<String>, EngineError> {
    let slots = redis::cmd("CLUSTER").arg("SLOTS").query::<Value>(con);
    let Value::Array(ranges) = slots.map_err(|e| redis_error(kind, e))? else {
        return Err(odd(kind, "CLUSTER SLOTS"));
    };
    let mut masters = Vec::new();
    for range in ranges {
        // [start, end, [host, port, id, …], replicas…]
        let Value::Array(fields) = range else {
            return Err(odd(kind, "CLUSTER SLOTS"));
        };
        let Some(Value::Array(master)) = fields.get(2) else {
            return Err(odd(kind, "CLUSTER SLOTS"));
        };
        let (Some(host), Some(Value::Int(port))) = (master.first().and_then(text), master.get(1))
        else {
            return Err(odd(kind, "CLUSTER SLOTS"));
        };
        masters.push(format!("{host}:{port}"));
    }
    masters.sort();
    masters.dedup();
    Ok(masters)
}

impl Engine for RedisEngine {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn limits(&self) -> Limits {
        REDIS_LIMITS
    }

    fn supports(&self, verb: Verb) -> bool {
        supported(verb)
    }

    fn execute_all(&self, ops: &[Op]) -> Result<Vec<Result<Outcome, EngineError>>, EngineError> {
        check_batch(ops, self.kind, &REDIS_LIMITS, supported)?;
        let mut target = self.target.lock();
        let mut out = Vec::with_capacity(ops.len());
        // Runs of keyed operations go as one pipeline; len and scan between them.
        let mut rest = ops;
        while !rest.is_empty() {
            let run = rest.iter().take_while(|op| keyed(op)).count();
            if run > 0 {
                let (now, later) = rest.split_at(run);
                self.pipeline(&mut target, now, &mut out)?;
                rest = later;
            } else {
                out.push(self.whole(&mut target, &rest[0]));
                rest = &rest[1..];
            }
        }
        Ok(out)
    }
}

impl RedisEngine {
    /// Sends `ops` (all keyed) as one pipeline and files their answers in `out`. `Err` only
    /// when nothing was answered: the first run of a batch failing to send fails the batch.
    fn pipeline(
        &self,
        target: &mut Target,
        ops: &[Op],
        out: &mut Vec<Result<Outcome, EngineError>>,
    ) -> Result<(), EngineError> {
        let cmds: Vec<Cmd> = ops.iter().map(command).collect();
        let replies = match target {
            Target::Single(con) => {
                let mut pipe = redis::pipe();
                for c in cmds {
                    pipe.add_command(c);
                }
                // Straight to the connection, so an error reply stays one command's answer.
                con.req_packed_commands(&pipe.get_packed_pipeline(), 0, ops.len())
            }
            Target::Cluster { keys, .. } => {
                let mut pipe = cluster_pipe();
                for c in cmds {
                    pipe.add_command(c);
                }
                pipe.query::<Vec<Value>>(keys)
            }
        };
        match replies {
            Ok(values) if values.len() == ops.len() => {
                out.extend(ops.iter().zip(values).map(|(op, v)| self.outcome(op, v)));
                Ok(())
            }
            Ok(_) => Err(odd(self.kind, "a pipeline's answer count")),
            Err(e) if out.is_empty() => Err(redis_error(self.kind, e)),
            Err(e) => {
                let message = e.to_string();
                out.extend(ops.iter().map(|_| {
                    Err(EngineError::Redis {
                        engine: self.kind,
                        message: message.clone(),
                    })
                }));
                Ok(())
            }
        }
    }

    /// Len or scan.
    fn whole(&self, target: &mut Target, op: &Op) -> Result<Outcome, EngineError> {
        let err = |e| redis_error(self.kind, e);
        match (op, target) {
            (Op::Len, Target::Single(con)) => Ok(Outcome::Count(dbsize(con).map_err(err)?)),
            (Op::Len, Target::Cluster { masters, .. }) => {
                let mut n = 0u64;
                for m in masters {
                    n = n.saturating_add(dbsize(m).map_err(err)?);
                }
                Ok(Outcome::Count(n))
            }
            (Op::Scan { cursor, count }, Target::Single(con)) => {
                let (next, keys) = scan(con, *cursor, *count, self.kind)?;
                Ok(Outcome::Keys { cursor: next, keys })
            }
            (Op::Scan { cursor, count }, Target::Cluster { masters, .. }) => {
                self.scan_cluster(masters, *cursor, *count)
            }
            _ => Err(odd(self.kind, "an operation that is neither len nor scan")),
        }
    }

    /// One scan step over the masters: the cursor's top 16 bits pick the master.
    fn scan_cluster(
        &self,
        masters: &mut [redis::Connection],
        cursor: u64,
        count: u32,
    ) -> Result<Outcome, EngineError> {
        let index = (cursor >> NODE_SHIFT) as usize;
        let Some(con) = masters.get_mut(index) else {
            return Err(EngineError::Redis {
                engine: self.kind,
                message: format!(
                    "cursor {cursor} names master {index}, and there are {}",
                    masters.len()
                ),
            });
        };
        let (next, keys) = scan(con, cursor & NODE_MASK, count, self.kind)?;
        if next > NODE_MASK {
            return Err(EngineError::Redis {
                engine: self.kind,
                message: format!(
                    "master {index} returned scan cursor {next}, too large to combine"
                ),
            });
        }
        let cursor = match (next, index + 1 < masters.len()) {
            (0, true) => ((index as u64) + 1) << NODE_SHIFT,
            (0, false) => 0,
            (n, _) => ((index as u64) << NODE_SHIFT) | n,
        };
        Ok(Outcome::Keys { cursor, keys })
    }

    /// The outcome of `op` from its reply.
    fn outcome(&self, op: &Op, v: Value) -> Result<Outcome, EngineError> {
        let bad = || {
            odd(
                self.kind,
                &format!("the reply to {}", op.verb().info().name),
            )
        };
        if let Value::ServerError(e) = v {
            let message = format!("{} {}", e.code(), e.details().unwrap_or(""));
            return Err(EngineError::Redis {
                engine: self.kind,
                message,
            });
        }
        Ok(match (op, v) {
            (Op::Insert { .. }, Value::Nil) => Outcome::Created,
            (Op::Insert { .. }, Value::BulkString(old)) => Outcome::Replaced(old),
            (Op::Read { .. }, Value::Nil) | (Op::Delete { .. }, Value::Nil) => Outcome::NotFound,
            (Op::Read { .. }, Value::BulkString(v)) => Outcome::Value(v),
            (Op::Delete { .. }, Value::BulkString(v)) => Outcome::Deleted(v),
            (Op::InsertNew { .. }, Value::Nil) => Outcome::Created,
            (Op::InsertNew { .. }, Value::BulkString(v)) => Outcome::Exists(v),
            (Op::Cas { .. }, Value::Array(a)) => match a.as_slice() {
                [Value::Int(1)] => Outcome::Swapped,
                [Value::Int(0)] => Outcome::Mismatch(None),
                [Value::Int(0), Value::BulkString(cur)] => Outcome::Mismatch(Some(cur.clone())),
                _ => return Err(bad()),
            },
            (Op::Add { .. }, Value::Array(a)) => match a.as_slice() {
                [Value::Int(1), sum] => {
                    Outcome::Number(text(sum).and_then(|t| t.parse().ok()).ok_or_else(bad)?)
                }
                [Value::Int(0), message] => Outcome::Refused(add_refusal(message).ok_or_else(bad)?),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        })
    }
}

/// Bits of a cluster scan cursor below the master's index.
const NODE_SHIFT: u32 = 48;
/// The master's own cursor in a cluster scan cursor.
const NODE_MASK: u64 = (1 << NODE_SHIFT) - 1;

/// The operations the Redis engines have ([`Engine::supports`]): all but print, threads
/// start/stop, stats and quit.
pub fn supported(v: Verb) -> bool {
    !matches!(
        v,
        Verb::Print | Verb::ThreadsStart | Verb::ThreadsStop | Verb::Stats | Verb::Quit
    )
}

/// Operations on one key (pipelined, routed by key in a cluster).
fn keyed(op: &Op) -> bool {
    !matches!(op, Op::Len | Op::Scan { .. })
}

/// The Redis command of a keyed operation.
fn command(op: &Op) -> Cmd {
    let mut c;
    match op {
        Op::Insert { key, value } => {
            c = redis::cmd("SET");
            c.arg(key).arg(value).arg("GET");
        }
        Op::Read { key } => {
            c = redis::cmd("GET");
            c.arg(key);
        }
        Op::Delete { key } => {
            c = redis::cmd("GETDEL");
            c.arg(key);
        }
        Op::InsertNew { key, value } => {
            c = redis::cmd("SET");
            c.arg(key).arg(value).arg("NX").arg("GET");
        }
        Op::Cas { key, expected, new } => {
            c = redis::cmd("EVAL");
            let absent = if expected.is_none() { "1" } else { "0" };
            let expected: &[u8] = expected.as_deref().unwrap_or(b"");
            c.arg(CAS_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(absent)
                .arg(expected)
                .arg(new);
        }
        Op::Add { key, delta } => {
            c = redis::cmd("EVAL");
            c.arg(ADD_SCRIPT).arg(1).arg(key).arg(*delta);
        }
        // Not keyed, never reaches here (`keyed`); a harmless command if it did.
        _ => c = redis::cmd("PING"),
    }
    c
}

/// The refusal of an `INCRBY` from its error message.
fn add_refusal(message: &Value) -> Option<ErrorCode> {
    let text = text(message)?;
    if text.contains("overflow") {
        Some(ErrorCode::Overflow)
    } else if text.contains("not an integer") {
        Some(ErrorCode::NotAnInteger)
    } else {
        None
    }
}

/// `DBSIZE` of one node.
fn dbsize(con: &mut redis::Connection) -> redis::RedisResult<u64> {
    redis::cmd("DBSIZE").query(con)
}

/// `SCAN cursor COUNT count` on one node.
fn scan(
    con: &mut redis::Connection,
    cursor: u64,
    count: u32,
    kind: &'static str,
) -> Result<(u64, Vec<Vec<u8>>), EngineError> {
    let reply = redis::cmd("SCAN")
        .arg(cursor)
        .arg("COUNT")
        .arg(count)
        .query::<Value>(con);
    let reply = reply.map_err(|e| redis_error(kind, e))?;
    let Value::Array(mut parts) = reply else {
        return Err(odd(kind, "SCAN"));
    };
    let (Some(Value::Array(keys)), Some(next)) = (parts.pop(), parts.pop()) else {
        return Err(odd(kind, "SCAN"));
    };
    let next = text(&next)
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| odd(kind, "SCAN"))?;
    let keys = keys
        .into_iter()
        .map(|k| match k {
            Value::BulkString(k) => Ok(k),
            _ => Err(odd(kind, "SCAN")),
        })
        .collect::<Result<_, _>>()?;
    Ok((next, keys))
}

/// A string reply's text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// A Redis error as the engine's.
fn redis_error(engine: &'static str, e: redis::RedisError) -> EngineError {
    EngineError::Redis {
        engine,
        message: e.to_string(),
    }
}

/// An answer the engine did not expect.
fn odd(engine: &'static str, what: &str) -> EngineError {
    EngineError::Redis {
        engine,
        message: format!("unexpected answer to {what}"),
    }
}
