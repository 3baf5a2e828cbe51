//! Operator experience, end to end with the real binaries: the interactive shell (driven
//! through a pseudo-terminal), operations piped through standard input, `--json`, the Stats
//! operation, and the server's log lines. Then every operation on byte strings through a real
//! server (in this process or the binary): insert-new, cas, add, len, scan; the largest values
//! beside a client that keeps working; empty values and binary keys; keys and values over the
//! limits, refused by the client and, sent raw past it, by the server; the memory budget; and
//! many workers answering a pipelining client.
#![cfg(not(loom))]

#[path = "../common/mod.rs"]
mod common;

mod bytes;
mod limits;
mod logs;
mod shell;
mod stats;
mod stdin_and_json;

use common::*;
use serde_json::Value;
use shmkv::client::ClientError;
use shmkv::server::{Server, ServerConfig};
use shmkv::wire::{ErrorCode, Field};

fn json_lines(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A server in this process with a unique name, `buckets` buckets, `clients` slots and
/// `threads` workers per client, configured further by `tweak`.
fn serve(
    buckets: usize,
    clients: u32,
    threads: u32,
    tweak: impl FnOnce(&mut ServerConfig),
) -> (Server, String) {
    let name = unique_name();
    let mut config = ServerConfig {
        name: name.clone(),
        buckets,
        clients,
        threads,
        ..ServerConfig::default()
    };
    tweak(&mut config);
    (Server::start(config).unwrap(), name)
}

fn refused(code: ErrorCode) -> Result<i64, ClientError> {
    Err(ClientError::Refused(code))
}

fn too_large<T>(what: Field, len: u64, max: u32) -> Result<T, ClientError> {
    Err(ClientError::TooLarge { what, len, max })
}
