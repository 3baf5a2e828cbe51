//! The library's `Server` and `Client` in one process: what the programs' tests do not reach
//! directly (a dropped `Server` shuts down, the configuration's bounds are inclusive, a
//! client's `Debug` and `is_empty`).
#![cfg(not(loom))]

use shmkv::server::{MAX_CLIENTS, MAX_THREADS_PER_CLIENT};
use shmkv::{Client, ClientConfig, ClientError, Server, ServerConfig, ServerError};
use std::sync::atomic::{AtomicU32, Ordering};

/// A server name no other test uses.
fn name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A small server's configuration.
fn config(name: &str) -> ServerConfig {
    ServerConfig {
        name: name.to_string(),
        buckets: 16,
        clients: 2,
        log: false,
        ..ServerConfig::default()
    }
}

#[test]
fn a_dropped_server_shuts_down_and_frees_its_name() {
    let name = name("drop");
    let server = Server::start(config(&name)).unwrap();
    let client = Client::connect(&ClientConfig::new(&name)).unwrap();
    client.insert(b"k", b"v").unwrap();
    drop(client);
    drop(server);
    match Client::connect(&ClientConfig::new(&name)) {
        Err(ClientError::NoServer { name: n }) => assert_eq!(n, name),
        other => panic!("a dropped server still answers: {other:?}"),
    }
    // Its socket and lock are gone: a new server of the name starts, with an empty table.
    let again = Server::start(config(&name)).unwrap();
    assert_eq!(again.len(), 0);
    again.shutdown();
}

#[test]
fn the_configurations_bounds_are_inclusive() {
    let most = ServerConfig {
        clients: MAX_CLIENTS,
        threads: 2,
        max_threads: 2,
        ..config(&name("bounds"))
    };
    Server::start(most.clone())
        .expect("the largest slot count and threads == max_threads")
        .shutdown();
    let too_many = ServerConfig {
        clients: MAX_CLIENTS + 1,
        ..most.clone()
    };
    assert!(
        matches!(Server::start(too_many), Err(ServerError::Config(m)) if m.contains("clients must be 1 to 1024"))
    );
    let over = ServerConfig {
        threads: 3,
        ..most.clone()
    };
    assert!(
        matches!(Server::start(over), Err(ServerError::Config(m)) if m.contains("threads per client must be 1 to 2"))
    );
    let max = ServerConfig {
        max_threads: MAX_THREADS_PER_CLIENT + 1,
        ..most
    };
    assert!(matches!(Server::start(max), Err(ServerError::Config(m)) if m.contains("1 to 64")));
}

#[test]
fn a_client_shows_its_slot_and_knows_an_empty_table() {
    let name = name("client");
    let server = Server::start(config(&name)).unwrap();
    let client = Client::connect(&ClientConfig::new(&name).slot(1)).unwrap();
    let shown = format!("{client:?}");
    assert!(
        shown.starts_with("Client") && shown.contains("slot: 1"),
        "{shown}"
    );
    assert!(client.is_empty().unwrap());
    client.insert(b"k", b"").unwrap();
    assert!(!client.is_empty().unwrap());
    drop(client);
    server.shutdown();
}
