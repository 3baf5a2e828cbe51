//! Races for one slot (exactly one wins), names validated by both binaries, and limits with
//! clear errors beyond their maximum.

use super::{Kid, serial};
use crate::common::*;
use shmkv::client::{Client, ClientConfig, ClientError};
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

/// Many processes, then many threads, ask for the same slot at the same moment: exactly one
/// gets it each time, the others a clear "in use by process <winner>" error.
#[test]
fn racing_clients_exactly_one_wins() {
    let _g = serial();
    let s = ServerProc::start(&["--buckets", "16", "--clients", "2"]);
    for _round in 0..4 {
        let mut kids: Vec<Kid> = (0..8)
            .map(|_| Kid::spawn_with(&format!("claim {} 0", s.name), Stdio::piped(), None))
            .collect();
        for k in &mut kids {
            k.expect("READY", DEADLINE);
        }
        for k in &mut kids {
            k.child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        }
        let results: Vec<String> = kids
            .iter_mut()
            .map(|k| k.expect_one_of(&["WON", "LOST"], DEADLINE))
            .collect();
        let winners: Vec<&String> = results.iter().filter(|l| l.starts_with("WON")).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let winner = &winners[0][4..];
        assert_eq!(owner_of(&s.name, 0).to_string(), winner);
        for l in results.iter().filter(|l| l.starts_with("LOST")) {
            assert!(
                l.contains(&format!("client id 0 is in use by process {winner}")),
                "{l}"
            );
        }
        for k in &mut kids {
            drop(k.child.stdin.take());
        }
        for mut k in kids {
            k.child.wait().unwrap();
        }
        wait_until(Duration::from_secs(2), || owner_of(&s.name, 0) == 0);
    }
    // Threads of one process (same pid): the server's slot table still lets one in.
    let threads = 12;
    for _round in 0..50 {
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (b, name) = (barrier.clone(), s.name.clone());
                std::thread::spawn(move || {
                    let mut config = ClientConfig::new(&name).slot(1);
                    config.attach_timeout = Duration::ZERO;
                    b.wait();
                    Client::connect(&config)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1);
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, ClientError::SlotBusy { slot: 1, .. }), "{e}");
            }
        }
        drop(results);
        wait_until(Duration::from_secs(2), || owner_of(&s.name, 1) == 0);
    }
    s.quit_and_check_clean();
}

/// Names are validated, with one clear line, by both binaries (server status 1, client 2);
/// the longest valid name works.
#[test]
fn names_are_validated_by_both_binaries() {
    let _g = serial();
    let long = "n".repeat(65);
    let bad = [
        ("", "must be 1 to 64 characters"),
        ("a/b", "character '/' not allowed"),
        ("../x", "not allowed"),
        ("..", "must not start with '.' or '-' nor contain '..'"),
        ("a..b", "nor contain '..'"),
        (".x", "must not start with '.'"),
        ("-x", "must not start with '.' or '-'"),
        ("sp ace", "character ' ' not allowed"),
        ("caf\u{e9}", "not allowed"),
        (long.as_str(), "must be 1 to 64 characters"),
    ];
    for (name, msg) in bad {
        let flag = format!("--name={name}");
        run(SERVER, &[&flag]).fails(2, msg);
        run(CLIENT, &[&flag, "0", "read", "1"]).fails(2, msg);
    }
    let longest = format!("{}-{}", "m".repeat(50), std::process::id())
        .chars()
        .rev()
        .take(64)
        .collect::<String>();
    let s = ServerProc::start_named(&longest, &["--clients", "1"]);
    s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    s.quit_and_check_clean();
}

/// Every limit has a clear error one past its maximum, and the maximum itself is accepted.
#[test]
fn limits_have_clear_errors_beyond_their_maximum() {
    let _g = serial();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--clients", "1025"],
            "clients must be 1 to 1024, got 1025",
        ),
        (
            &["--max-threads", "65"],
            "max threads per client must be 1 to 64, got 65",
        ),
        (
            &["--max-threads", "0"],
            "max threads per client must be 1 to 64, got 0",
        ),
        (
            &["--threads", "3", "--max-threads", "2"],
            "threads per client must be 1 to 2, got 3",
        ),
        (
            &["--max-key", "65537"],
            "max key must be 1 to 65536 bytes, got 65537",
        ),
        (
            &["--max-key", "0"],
            "max key must be 1 to 65536 bytes, got 0",
        ),
        (
            &["--max-value", "67108865"],
            "max value must be 0 to 67108864 bytes, got 67108865",
        ),
        (
            &["--buckets", "16777217"],
            "buckets must be 1 to 16777216, got 16777217",
        ),
    ];
    // Settings out of range are usage errors (status 2), like the rest of a bad command line.
    for (args, msg) in cases {
        run_server_expect_fail(args).fails(2, msg);
    }
    // A size that does not fit the wire's 32-bit length: a usage error.
    run_server_expect_fail(&["--max-value", "4G"]).fails(
        2,
        "--max-value 4294967296 is too large (at most 67108864 bytes)",
    );
    run_server_expect_fail(&["--max-key", "64X"]).fails(2, "unknown unit 'X'");
    // The maxima themselves (and the smallest limits: 1-byte keys, empty values).
    let s = ServerProc::start(&[
        "--clients",
        "1024",
        "--buckets",
        "16777216",
        "--max-key",
        "1",
        "--max-value",
        "0",
    ]);
    s.client(&["1023", "insert", "1", "\"\"", "read", "1"])
        .ok("insert 1 \"\": ok\nread 1: \"\"\n");
    s.client(&["1024", "read", "1"])
        .fails(3, "client id 1024 is out of range: server");
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    assert_eq!(
        c.insert(b"2", b"x"),
        Err(ClientError::TooLarge {
            what: shmkv::wire::Field::Value,
            len: 1,
            max: 0
        })
    );
    assert_eq!(
        c.read(b"12"),
        Err(ClientError::TooLarge {
            what: shmkv::wire::Field::Key,
            len: 2,
            max: 1
        })
    );
    assert_eq!(c.read(b"1").unwrap(), Some(Vec::new()));
    drop(c);
    s.quit_and_check_clean();
    let s = ServerProc::start(&[
        "--clients",
        "1",
        "--threads",
        "64",
        "--max-key",
        "64K",
        "--max-value",
        "64M",
    ]);
    s.client(&["0", "threads", "start", "1"]).fails(
        1,
        "thread limit: this client has 64 worker threads and at most 64 are allowed",
    );
    s.client(&["0", "threads", "stop", "read", "1"])
        .ok("threads stop: ok, 63 threads\nread 1: not found\n");
    // The longest key with the longest value, through the library, and cas with two values
    // of the longest (the largest request there is).
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);
    // (Patient: the server copies 64 MiB several times per request, with no answer between.)
    let patient = ClientConfig::new(&s.name)
        .slot(0)
        .timeout(Duration::from_secs(60));
    let c = Client::connect(&patient).unwrap();
    let key: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big: Vec<u8> = (0..64 << 20u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(c.insert(&key, &big).unwrap(), None);
    let mut other = big.clone();
    other[12345] ^= 1;
    assert_eq!(c.cas(&key, Some(&big), &other).unwrap(), Ok(()));
    assert!(c.read(&key).unwrap() == Some(other));
    let mut too_long = key.clone();
    too_long.push(0);
    assert!(matches!(
        c.read(&too_long),
        Err(ClientError::TooLarge {
            len: 65537,
            max: 65536,
            ..
        })
    ));
    drop(c);
    s.quit_and_check_clean();
}
