//! The library's `Server` and `Client` in one process: what the programs' tests do not reach
//! directly (a dropped `Server` shuts down, the configuration's bounds are inclusive, a
//! client's `Debug` and `is_empty`, a dropped client is told so, a shutdown refuses the
//! requests it had not taken, a lone call files the answers to other threads' requests).
#![cfg(not(loom))]

use shmkv::channel::{REQ_CTRL, RESP_CTRL, STATE_DROPPED};
use shmkv::server::{MAX_CLIENTS, MAX_THREADS_PER_CLIENT};
use shmkv::shm::Mapping;
use shmkv::wait::{SysFutex, Wake};
use shmkv::wire::{ErrorCode, Limits, Op};
use shmkv::{Client, ClientConfig, ClientError, Outcome, Server, ServerConfig, ServerError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

/// Wait for `cond` to hold, polling, for up to 20 s; panics then.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < end, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(1));
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

/// The resident size, in KiB, of every mapping in this process of the object whose inode is
/// `ino` (the client's mapping and, the server being in this process, the server's), from
/// /proc/self/smaps: a mapping line names the backing file's inode in its fifth field.
fn object_resident_kib(ino: u64) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut total = 0;
    let mut in_object = false;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.contains('-') && fields.len() >= 5 && !line.ends_with("kB") {
            in_object = line.contains("memfd:shmkv-session") && fields[4] == ino.to_string();
        } else if in_object && line.starts_with("Rss:") {
            total += fields[1].parse::<u64>().unwrap();
        }
    }
    total
}

/// The inode and size of a client's session object.
fn object_of(client: &Client) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::from(client.object_fd().try_clone_to_owned().unwrap());
    let meta = file.metadata().unwrap();
    (meta.ino(), meta.len())
}

/// A client that asks for it has its whole session object faulted in at connect, and works
/// as any other; once its first request is answered, the server's mapping of the object (a
/// second mapping in this one process) maps those pages too, so its worker takes no page
/// fault on them.
#[test]
fn a_prefaulting_client_has_its_object_resident() {
    let name = name("prefault");
    let server = Server::start(config(&name)).unwrap();
    assert!(!ClientConfig::new(&name).prefault, "off by default");
    let client = Client::connect(&ClientConfig::new(&name).prefault(true)).unwrap();
    let (ino, len) = object_of(&client);
    let kib = len / 1024;
    let after = object_resident_kib(ino);
    assert!(
        (kib..2 * kib).contains(&after),
        "{after} KiB resident after a prefaulting connect, object {len} bytes"
    );
    client.insert(b"k", b"v").unwrap();
    assert_eq!(client.read(b"k").unwrap(), Some(b"v".to_vec()));
    wait_until("the server's mapping mapped too", || {
        object_resident_kib(ino) >= 2 * kib
    });
    drop(client);
    server.shutdown();
}

/// A client that does not prefault leaves its object mostly untouched, and the server's
/// mapping of what the client touched allocates nothing more.
#[test]
fn the_server_maps_only_what_a_client_touched() {
    let name = name("noprefault");
    let server = Server::start(config(&name)).unwrap();
    let client = Client::connect(&ClientConfig::new(&name)).unwrap();
    for i in 0..10u8 {
        client.insert(&[i], b"v").unwrap();
    }
    // (The worker maps the resident pages after the first answer and before it takes the
    // second request, so by now it has: a mapping of the whole object would show here.)
    let (ino, len) = object_of(&client);
    let after = object_resident_kib(ino);
    assert!(
        (1..len / 1024 / 8).contains(&after),
        "{after} KiB resident after ten requests, object {len} bytes"
    );
    drop(client);
    server.shutdown();
}

/// A client the server drops (here for a request ring whose tail it made misaligned) is told
/// that it was dropped, not that the server died; its slot is free again.
#[test]
fn a_dropped_client_is_told_it_was_dropped() {
    let name = name("dropped");
    let server = Server::start(config(&name)).unwrap();
    let client = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
    client.insert(b"k", b"v").unwrap();
    let map = Mapping::open_sealed(&client.object_fd()).unwrap();
    let (object, _) = shmkv::channel::open_object(&client.object_fd()).unwrap();
    let ring = map.ring_ctrl(REQ_CTRL).unwrap();
    ring.producer.0.tail.fetch_add(3, Ordering::SeqCst);
    ring.wake.0.data_futex.fetch_add(1, Ordering::SeqCst);
    SysFutex.wake(&ring.wake.0.data_futex);
    wait_until("the client dropped", || {
        object.state().load(Ordering::SeqCst) == STATE_DROPPED
    });
    let gone = client.read(b"k").unwrap_err();
    assert_eq!(
        gone,
        ClientError::ServerGone("dropped this client (see its log for why)")
    );
    assert_eq!(
        gone.to_string(),
        "the server dropped this client (see its log for why)"
    );
    assert_eq!(client.read(b"k"), Err(gone), "for good");
    let config = ClientConfig::new(&name);
    wait_until("slot 0 free", || {
        shmkv::client::slot_holder(&config, 0) == Ok(None)
    });
    drop((client, map, object));
    let again = Client::connect(&ClientConfig::new(&name).slot(0)).unwrap();
    assert_eq!(again.read(b"k").unwrap(), Some(b"v".to_vec()));
    drop(again);
    server.shutdown();
}

/// A shutdown answers the requests it took and refuses with "shutting down" those still in a
/// client's request ring: here deletes waiting behind a response ring the client let fill up.
/// Every ticket gets its answer, in order: a prefix deleted, the rest refused.
#[test]
fn a_shutdown_refuses_the_requests_it_had_not_taken() {
    let name = name("refuse");
    let server = Server::start(ServerConfig {
        threads: 1,
        // The smallest rings (64 KiB each).
        limits: Limits {
            max_key: 64,
            max_value: 1024,
        },
        ..config(&name)
    })
    .unwrap();
    let client = Client::connect(&ClientConfig::new(&name)).unwrap();
    let keys = 200u64;
    let value = vec![b'v'; 1000];
    for k in 0..keys {
        client.insert(&k.to_le_bytes(), &value).unwrap();
    }
    // Each delete's answer carries the 1000-byte value: the response ring holds about 60.
    let deletes: Vec<Op> = (0..keys)
        .map(|k| Op::Delete {
            key: k.to_le_bytes().to_vec(),
        })
        .collect();
    let tickets = client.submit_all(&deletes).unwrap();
    let map = Mapping::open_sealed(&client.object_fd()).unwrap();
    let (req, resp) = (
        map.ring_ctrl(REQ_CTRL).unwrap(),
        map.ring_ctrl(RESP_CTRL).unwrap(),
    );
    wait_until("the worker waits for room with requests left", || {
        resp.wake.0.space_waiting.load(Ordering::SeqCst) == 1
            && req.producer.0.tail.load(Ordering::SeqCst)
                > req.consumer.0.head.load(Ordering::SeqCst)
    });
    server.stop_handle().stop();
    let finished = std::thread::spawn(move || server.wait());
    let outcomes: Vec<Result<Outcome, ClientError>> =
        tickets.into_iter().map(|t| client.wait(t)).collect();
    finished.join().unwrap();
    let deleted = outcomes
        .iter()
        .take_while(|o| **o == Ok(Outcome::Deleted(value.clone())))
        .count();
    assert!(
        deleted > 0 && deleted < keys as usize,
        "{deleted} of {keys} deleted"
    );
    for (i, o) in outcomes.iter().enumerate().skip(deleted) {
        assert_eq!(
            *o,
            Ok(Outcome::Refused(ErrorCode::ShuttingDown)),
            "delete {i}"
        );
    }
}

/// Spinning is on by default; a server whose workers never spin, with clients that never spin
/// (`spin: false`: every wait goes straight to the futex), answers everything right,
/// synchronously and pipelined, from several threads of two clients. (The futex protocol's
/// lost wake-ups are the loom models' business: they run with no spinning.)
#[test]
fn waiters_that_sleep_at_once_answer_everything() {
    let name = name("nospin");
    let server = Server::start(ServerConfig {
        spin: false,
        threads: 2,
        ..config(&name)
    })
    .unwrap();
    assert!(
        ServerConfig::default().spin && ClientConfig::new(&name).spin,
        "on by default"
    );
    let a = Client::connect(&ClientConfig::new(&name).spin(false)).unwrap();
    let b = Client::connect(&ClientConfig::new(&name).spin(false)).unwrap();
    std::thread::scope(|s| {
        for (c, t) in [(&a, 0u8), (&a, 1), (&b, 2), (&b, 3)] {
            s.spawn(move || {
                for i in 0..500u32 {
                    let key = [t, (i % 7) as u8];
                    c.insert(&key, &i.to_le_bytes()).unwrap();
                    assert_eq!(c.read(&key).unwrap(), Some(i.to_le_bytes().to_vec()));
                }
                let ops: Vec<Op> = (0..300u32)
                    .map(|i| Op::Insert {
                        key: vec![t, 9, (i % 11) as u8],
                        value: i.to_le_bytes().to_vec(),
                    })
                    .collect();
                for t in c.submit_all(&ops).unwrap() {
                    assert!(matches!(
                        c.wait(t).unwrap(),
                        Outcome::Created | Outcome::Replaced(_)
                    ));
                }
            });
        }
    });
    assert_eq!(a.len().unwrap(), 4 * 7 + 4 * 11);
    drop((a, b));
    server.shutdown();
}

#[test]
fn a_lone_call_files_the_answers_it_reads_for_other_requests() {
    let name = name("lone");
    let server = Server::start(ServerConfig {
        threads: 1,
        ..config(&name)
    })
    .unwrap();
    let c = Client::connect(&ClientConfig::new(&name).timeout(Duration::from_secs(20))).unwrap();
    let t = c
        .submit(Op::Insert {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
        })
        .unwrap();
    // Nobody waits for `t`, so the response ring is free and this read is a lone call; one
    // worker answers in order, so `t`'s answer comes first and the lone call must file it.
    assert_eq!(c.read(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        c.lone_filings(),
        1,
        "the read was a lone call and filed t's answer"
    );
    assert_eq!(c.wait(t).unwrap(), Outcome::Created);
    assert_eq!(c.stray_responses(), 0);
    // A lone call with nothing else in flight files nothing.
    assert_eq!(c.insert(b"a", b"2").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.lone_filings(), 1);
    // The server's refusal of a lone call comes back as an error.
    assert_eq!(c.insert(b"n", b"x").unwrap(), None);
    assert!(matches!(c.add(b"n", 1), Err(ClientError::Refused(_))));
    drop(c);
    server.shutdown();
}
