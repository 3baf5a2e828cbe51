//! End-to-end tests of the real `shmkv-server` and `shmkv-client` binaries (and the library
//! client) over real shared memory.
#![cfg(not(loom))]

mod common;

use common::*;
use serde_json::Value;
use shmkv::client::{Client, ClientConfig, ClientError, Outcome};
use shmkv::wire::{ErrorCode, Op};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Local helpers.
// ---------------------------------------------------------------------------------------------

/// Run the client of server `s` with `args`, feeding it `input` on standard input (then
/// closing it); waits with the common deadline.
fn client_stdin(s: &ServerProc, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(CLIENT)
        .args(["--name", &s.name])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.as_bytes().to_vec();
    // A writer thread: a client that stops reading early must not block the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = finish(child);
    writer.join().unwrap();
    out
}

/// A library client of server `s` on slot 1 (the client binary takes slot 0).
fn lib(s: &ServerProc) -> Client {
    Client::connect(&ClientConfig::new(&s.name).slot(1)).unwrap()
}

/// The one line of `out`'s stdout that starts with `prefix`, without the prefix.
fn after<'a>(out: &'a Output, prefix: &str) -> &'a str {
    let mut found = out.stdout.lines().filter_map(|l| l.strip_prefix(prefix));
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in {out:?}"));
    assert!(
        found.next().is_none(),
        "two lines start {prefix:?}: {out:?}"
    );
    first
}

/// The words of a printed list (keys of a scan), read back as the client reads a line.
fn words(text: &str) -> Vec<Vec<u8>> {
    shmkv_cli::split_line(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .into_iter()
        .map(|t| t.bytes)
        .collect()
}

/// `out`'s stdout as JSON objects, one a line.
fn json_lines(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Every byte 0..=255 once, in order.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

// ---------------------------------------------------------------------------------------------
// The seeds' examples and the classic operations.
// ---------------------------------------------------------------------------------------------

#[test]
fn readme_examples_verbatim() {
    let s = ServerProc::start(&["100", "2", "3"]);
    let out = s.client(&["0", "insert", "1", "2", "insert", "2", "4"]);
    out.ok("insert 1 2: ok\ninsert 2 4: ok\n");
    s.client(&["1", "read", "1", "read", "2"])
        .ok("read 1: 2\nread 2: 4\n");
    s.client(&["0", "read", "1", "read", "9", "delete", "1", "delete", "1"])
        .ok("read 1: 2\nread 9: not found\ndelete 1: ok\ndelete 1: not found\n");
    s.client(&["0", "insert", "5", "6", "read", "5", "insert", "5", "7"])
        .ok("insert 5 6: ok\nread 5: 6\ninsert 5 7: ok, replaced 6\n");
    // The other examples of --help.
    s.client(&["0", "insert", "a key", r#""\x00\xff""#, "read", "a key"])
        .ok("insert \"a key\" \"\\x00\\xff\": ok\nread \"a key\": \"\\x00\\xff\"\n");
    client_stdin(&s, &["0"], "insert 1 2\nread 1\n").ok("insert 1 2: ok\nread 1: 2\n");
    s.quit_and_check_clean();
}

/// The client id may be `-` or left out; keys and values are byte strings, so words that
/// look like numbers (of any size, with signs or leading zeros) are just bytes.
#[test]
fn id_may_be_dash_or_omitted_and_numbers_are_just_bytes() {
    let s = ServerProc::start(&["--buckets", "10", "--clients", "2"]);
    s.client(&["-", "insert", "4294967295", "4294967295"])
        .ok("insert 4294967295 4294967295: ok\n");
    s.client(&["read", "4294967295"])
        .ok("read 4294967295: 4294967295\n");
    // Past u64: was "out of range", now a key like any other.
    s.client(&[
        "insert",
        "18446744073709551616",
        "1",
        "read",
        "18446744073709551616",
    ])
    .ok("insert 18446744073709551616 1: ok\nread 18446744073709551616: 1\n");
    // "7", "07" and "+7" are three keys; "-1" and "x" are keys too.
    s.client(&[
        "-", "insert", "7", "a", "insert", "07", "b", "insert", "+7", "c", "insert", "-1", "d",
        "insert", "x", "e", "read", "7", "read", "07", "read", "+7", "read", "-1", "read", "x",
    ])
    .ok(
        "insert 7 a: ok\ninsert 07 b: ok\ninsert +7 c: ok\ninsert -1 d: ok\ninsert x e: ok\n\
         read 7: a\nread 07: b\nread +7: c\nread -1: d\nread x: e\n",
    );
    s.quit_and_check_clean();
}

#[test]
fn print_threads_and_quit_output() {
    let s = ServerProc::start(&["1", "1", "1"]);
    s.client(&["0", "insert", "3", "30", "insert", "1", "10", "print", "0"])
        .ok("insert 3 30: ok\ninsert 1 10: ok\nprint 0: (1, 10) (3, 30)\n");
    // Sorted by bytes, keys and values quoted where they need it.
    s.client(&["0", "insert", "10", "a b", "insert", "a", "", "print", "0"])
        .ok("insert 10 \"a b\": ok\ninsert a \"\": ok\nprint 0: (1, 10) (10, \"a b\") (3, 30) (a, \"\")\n");
    s.client(&[
        "0", "threads", "start", "2", "threads", "stop", "threads", "stop",
    ])
    .ok(
        "threads start 2: ok, 3 threads\nthreads stop: ok, 2 threads\nthreads stop: ok, 1 thread\n",
    );
    let out = s.client(&["0", "threads", "stop"]);
    out.fails(1, "threads stop: error: cannot stop the last worker thread");
    let out = s.client(&["0", "print", "1"]);
    out.fails(1, "print 1: error: bucket 1 out of range");
    s.quit_and_check_clean();
}

/// The issue's example, many times, with 3 workers per client: a read issued after an insert
/// of the same key in one pipelined command line always sees it.
#[test]
fn same_key_order_with_three_workers_cli() {
    // (Backlog sharing on, so that workers hand the ring over on this 2-core machine too.)
    let s = ServerProc::start(&["100", "2", "3", "--share-backlog", "on"]);
    for i in 0..40 {
        let v = i.to_string();
        s.client(&[
            "0", "insert", "5", &v, "read", "5", "add", "5", "1", "read", "5", "delete", "5",
            "read", "5",
        ])
        .ok(&format!(
            "insert 5 {v}: ok\nread 5: {v}\nadd 5 1: {n}\nread 5: {n}\ndelete 5: ok\nread 5: not found\n",
            n = i + 1
        ));
    }
    s.quit_and_check_clean();
}

/// The model of [`same_key_order_pipelined_library`]: the answer `op` must get after the
/// operations before it.
fn model_answer(model: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Op) -> Outcome {
    match op {
        Op::Insert { key, value } => model
            .insert(key.clone(), value.clone())
            .map_or(Outcome::Created, Outcome::Replaced),
        Op::Read { key } => model
            .get(key)
            .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
        Op::Delete { key } => model
            .remove(key)
            .map_or(Outcome::NotFound, Outcome::Deleted),
        Op::InsertNew { key, value } => match model.get(key) {
            Some(v) => Outcome::Exists(v.clone()),
            None => {
                model.insert(key.clone(), value.clone());
                Outcome::Created
            }
        },
        Op::Cas { key, expected, new } => {
            if model.get(key) == expected.as_ref() {
                model.insert(key.clone(), new.clone());
                Outcome::Swapped
            } else {
                Outcome::Mismatch(model.get(key).cloned())
            }
        }
        Op::Add { key, delta } => {
            // The values here are canonical decimals or start with 'v'.
            let current = match model.get(key) {
                None => 0,
                Some(v) => match std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()) {
                    Some(n) => n,
                    None => return Outcome::Refused(ErrorCode::NotAnInteger),
                },
            };
            let Some(n) = i64::checked_add(current, *delta) else {
                return Outcome::Refused(ErrorCode::Overflow);
            };
            model.insert(key.clone(), n.to_string().into_bytes());
            Outcome::Number(n)
        }
        _ => unreachable!(),
    }
}

/// Long pipelined batches over few keys with 4 workers, every operation that changes or reads
/// a key: every reply equals a sequential model. Values up to ~600 bytes make a batch larger
/// than the request ring, so it fills and wraps.
#[test]
fn same_key_order_pipelined_library() {
    let s = ServerProc::start(&["64", "1", "4", "--max-value", "1K", "--share-backlog", "on"]);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rng = 0x1234_5678_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let value = |r: u64| -> Vec<u8> {
        match r % 4 {
            0 => b"1".to_vec(),
            1 => (r % 100).to_string().into_bytes(),
            // Long non-integers, few distinct ones (so that cas sometimes matches).
            _ => {
                let mut v = format!("v{}-", r % 3).into_bytes();
                v.resize(100 + (r % 3) as usize * 450, b'a' + (r % 3) as u8);
                v
            }
        }
    };
    let mut kinds = [0usize; 6];
    for _round in 0..20 {
        let mut ops = Vec::new();
        for _ in 0..500 {
            let r = next();
            let key = format!("k{}", r % 4).into_bytes();
            let kind = (r >> 8) % 6;
            kinds[kind as usize] += 1;
            ops.push(match kind {
                0 => Op::Insert {
                    key,
                    value: value(next()),
                },
                1 => Op::Read { key },
                2 => Op::Delete { key },
                3 => Op::InsertNew {
                    key,
                    value: value(next()),
                },
                4 => {
                    let r = next();
                    Op::Cas {
                        key,
                        expected: (r % 3 != 0).then(|| value(r >> 2)),
                        new: value(next()),
                    }
                }
                _ => Op::Add {
                    key,
                    delta: (next() % 7) as i64 - 3,
                },
            });
        }
        let tickets = c.submit_all(&ops).unwrap();
        for (op, t) in ops.iter().zip(tickets) {
            let got = c.wait(t).unwrap();
            let want = model_answer(&mut model, op);
            assert_eq!(got, want, "{op:?}");
        }
    }
    assert!(kinds.iter().all(|&n| n > 1000), "{kinds:?}");
    assert_eq!(c.stray_responses(), 0);
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn many_threads_share_one_connection() {
    let s = ServerProc::start(&["1000", "1", "2"]);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    let key = |t: u64, i: u64| format!("t{t}-{i}").into_bytes();
    let hs: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let k = key(t, i);
                    let v = i.to_string().into_bytes();
                    assert_eq!(c.insert(&k, &v).unwrap(), None);
                    assert_eq!(c.read(&k).unwrap(), Some(v.clone()));
                    if i % 3 == 0 {
                        assert_eq!(c.delete(&k).unwrap(), Some(v));
                        assert_eq!(c.read(&k).unwrap(), None);
                    }
                }
                // And some pipelined batches from every thread.
                let ops: Vec<_> = (0..200u64)
                    .map(|i| Op::Insert {
                        key: key(t, 500 + i),
                        value: i.to_string().into_bytes(),
                    })
                    .collect();
                let ts = c.submit_all(&ops).unwrap();
                for t in ts {
                    assert_eq!(c.wait(t).unwrap(), Outcome::Created);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    for t in 0..8u64 {
        for i in 0..300u64 {
            let want = (i % 3 != 0).then(|| i.to_string().into_bytes());
            assert_eq!(c.read(&key(t, i)).unwrap(), want);
        }
    }
    assert_eq!(c.len().unwrap(), 8 * (200 + 200));
    assert_eq!(c.stray_responses(), 0);
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn two_client_processes_at_once() {
    let s = ServerProc::start(&["100", "2", "2"]);
    let mut args0 = vec!["0".to_string()];
    let mut args1 = vec!["1".to_string()];
    let mut want0 = String::new();
    let mut want1 = String::new();
    for i in 0..300 {
        args0.extend([
            "insert".into(),
            i.to_string(),
            (i * 2).to_string(),
            "read".into(),
            i.to_string(),
        ]);
        want0 += &format!("insert {i} {}: ok\nread {i}: {}\n", i * 2, i * 2);
        let k = 10_000 + i;
        args1.extend([
            "insert".into(),
            k.to_string(),
            (i * 3).to_string(),
            "read".into(),
            k.to_string(),
        ]);
        want1 += &format!("insert {k} {}: ok\nread {k}: {}\n", i * 3, i * 3);
    }
    let a = s.spawn_client(&args0.iter().map(String::as_str).collect::<Vec<_>>());
    let b = s.spawn_client(&args1.iter().map(String::as_str).collect::<Vec<_>>());
    finish(a).ok(&want0);
    finish(b).ok(&want1);
    s.client(&["0", "len"]).ok("len: 600\n");
    s.quit_and_check_clean();
}

#[test]
fn threads_start_and_stop_while_traffic_flows() {
    let s = ServerProc::start(&["100", "1", "1"]);
    let c = Arc::new(Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap());
    let c2 = c.clone();
    let traffic = std::thread::spawn(move || {
        for i in 0..3000u64 {
            let k = (i % 50).to_string().into_bytes();
            let v = i.to_string().into_bytes();
            c2.insert(&k, &v).unwrap();
            assert_eq!(c2.read(&k).unwrap(), Some(v));
        }
    });
    for round in 0..20 {
        assert_eq!(c.start_threads(2).unwrap(), 3, "round {round}");
        assert_eq!(c.stop_thread().unwrap(), 2);
        assert_eq!(c.stop_thread().unwrap(), 1);
    }
    assert!(matches!(
        c.stop_thread(),
        Err(ClientError::Refused(ErrorCode::LastWorker))
    ));
    assert!(matches!(
        c.start_threads(1000),
        Err(ClientError::Refused(ErrorCode::ThreadLimit { .. }))
    ));
    traffic.join().unwrap();
    drop(c);
    s.quit_and_check_clean();
}

// ---------------------------------------------------------------------------------------------
// The new operations.
// ---------------------------------------------------------------------------------------------

#[test]
fn insert_new_and_cas_text_output() {
    let s = ServerProc::start(&["10", "1", "1"]);
    s.client(&[
        "0",
        "insert-new",
        "k",
        "v",
        "insert-new",
        "k",
        "w",
        "read",
        "k",
    ])
    .ok("insert-new k v: ok\ninsert-new k w: exists, value v\nread k: v\n");
    s.client(&[
        "0", "cas", "k", "v", "x", "cas", "k", "v", "y", "read", "k", "cas", "k", "--absent", "z",
        "cas", "n", "v", "z", "cas", "n", "--absent", "1", "read", "n",
    ])
    .ok("cas k v x: ok\ncas k v y: mismatch, value x\nread k: x\n\
         cas k --absent z: mismatch, value x\ncas n v z: mismatch, absent\n\
         cas n --absent 1: ok\nread n: 1\n");
    // A quoted "--absent" is that value, not absence; an empty expected value is not absence.
    s.client(&[
        "0",
        "insert",
        "q",
        "--absent",
        "cas",
        "q",
        r#""--absent""#,
        "",
        "cas",
        "q",
        "--absent",
        "no",
        "cas",
        "q",
        "",
        "e",
        "read",
        "q",
    ])
    .ok("insert q --absent: ok\ncas q \"--absent\" \"\": ok\ncas q --absent no: mismatch, value \"\"\n\
         cas q \"\" e: ok\nread q: e\n");
    // "exists" and "mismatch" are answers, not refusals: the status is 0 (checked by ok).
    s.quit_and_check_clean();
}

#[test]
fn add_text_output_and_its_errors() {
    let s = ServerProc::start(&["10", "1", "1"]);
    s.client(&[
        "0", "add", "n", "5", "add", "n", "-7", "add", "n", "+2", "read", "n",
    ])
    .ok("add n 5: 5\nadd n -7: -2\nadd n 2: 0\nread n: 0\n");
    // Not an integer: refused (status 1), one line, the value unchanged; the batch goes on.
    let out = s.client(&[
        "0", "insert", "s", "abc", "add", "s", "1", "read", "s", "add", "n", "1",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "insert s abc: ok\nread s: abc\nadd n 1: 1\n");
    assert_eq!(
        out.stderr,
        "shmkv-client: add s 1: error: the value is not a decimal 64-bit integer\n"
    );
    // Non-canonical decimals are not integers either.
    for v in ["+1", "01", " 1", "1.0", "-0", ""] {
        let out = s.client(&["0", "insert", "t", v, "add", "t", "1"]);
        out.fails(
            1,
            "add t 1: error: the value is not a decimal 64-bit integer",
        );
        s.client(&["0", "read", "t"])
            .ok(&format!("read t: {}\n", shmkv_cli::quote(v.as_bytes())));
    }
    // Overflow, both ways: refused, the value unchanged.
    s.client(&["0", "insert", "m", "9223372036854775806", "add", "m", "1"])
        .ok("insert m 9223372036854775806: ok\nadd m 1: 9223372036854775807\n");
    s.client(&["0", "add", "m", "1"]).fails(
        1,
        "add m 1: error: the result would overflow a 64-bit integer",
    );
    s.client(&["0", "read", "m"])
        .ok("read m: 9223372036854775807\n");
    s.client(&["0", "insert", "l", "-9223372036854775808", "add", "l", "-1"])
        .fails(
            1,
            "add l -1: error: the result would overflow a 64-bit integer",
        );
    s.client(&["0", "read", "l"])
        .ok("read l: -9223372036854775808\n");
    // A delta past i64 is a bad command line, not a refusal.
    s.client(&["0", "add", "m", "9223372036854775808"])
        .fails(2, "out of range");
    s.client(&["0", "read", "m"])
        .ok("read m: 9223372036854775807\n");
    s.quit_and_check_clean();
}

#[test]
fn len_and_scan_until_cursor_zero_collect_every_key() {
    let s = ServerProc::start(&["16", "1", "1"]);
    s.client(&["0", "len", "scan", "0"])
        .ok("len: 0\nscan 0 10: cursor 0, 0 keys\n");
    // Keys of every awkward kind, inserted through standard input.
    let mut want: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut input = String::new();
    for i in 0..40 {
        want.insert(format!("key{i}").into_bytes());
        input += &format!("insert key{i} {i}\n");
    }
    for (line_word, bytes) in [
        (r#""a b""#, b"a b".to_vec()),
        (r#""\x00""#, vec![0]),
        (r#""\xff\xfe""#, vec![0xff, 0xfe]),
        (r##""#x""##, b"#x".to_vec()),
        (r#"'it\'s'"#, b"it's".to_vec()),
        (r#""\n""#, b"\n".to_vec()),
        (r#""say \"hi\"""#, b"say \"hi\"".to_vec()),
    ] {
        want.insert(bytes);
        input += &format!("insert {line_word} x\n");
    }
    let out = client_stdin(&s, &["0"], &input);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), want.len());
    s.client(&["0", "len"])
        .ok(&format!("len: {}\n", want.len()));

    // Scan 3 at a time from 0 until the cursor comes back to 0.
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps <= 16, "a full scan takes at most one step per bucket");
        let c = cursor.to_string();
        let out = s.client(&["0", "scan", &c, "3"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
        let rest = after(&out, &format!("scan {c} 3: cursor ")).to_string();
        let (next, rest) = rest.split_once(", ").unwrap();
        let (n, rest) = rest.split_once(' ').unwrap();
        let n: usize = n.parse().unwrap();
        let keys = match rest {
            "keys" | "key" => Vec::new(),
            _ => words(
                rest.strip_prefix("keys: ")
                    .or_else(|| rest.strip_prefix("key: "))
                    .unwrap_or_else(|| panic!("{rest:?}")),
            ),
        };
        assert_eq!(keys.len(), n, "{out:?}");
        assert_eq!(rest.starts_with("key:") || rest == "key", n == 1);
        // Buckets are visited whole until there are at least 3 keys (or the end).
        cursor = next.parse().unwrap();
        if cursor != 0 {
            assert!(n >= 3, "{out:?}");
        }
        got.extend(keys);
        if cursor == 0 {
            break;
        }
    }
    let set: BTreeSet<Vec<u8>> = got.iter().cloned().collect();
    assert_eq!(set.len(), got.len(), "a key came twice: {got:?}");
    assert_eq!(set, want);
    // Scan's count defaults to 10; a count past the keys takes all in one step.
    let out = s.client(&["0", "scan", "0", "1000"]);
    let rest = after(&out, "scan 0 1000: cursor 0, ");
    assert!(
        rest.starts_with(&format!("{} keys: ", want.len())),
        "{rest}"
    );
    s.client(&["0", "scan", "99"])
        .ok("scan 99 10: cursor 0, 0 keys\n");
    s.quit_and_check_clean();
}

// ---------------------------------------------------------------------------------------------
// Quoting.
// ---------------------------------------------------------------------------------------------

/// Command-line arguments are taken as they are, except that one starting with a quote is
/// read as one quoted word (escapes and all).
#[test]
fn quoting_and_escapes_on_the_command_line() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    // A quoted word never names an operation.
    s.client(&["0", r#""a b""#, "1"])
        .fails(2, "unknown operation '\"a b\"'");
    s.client(&["0", "insert", r#""a b""#, r#""x\ny""#, "read", "a b"])
        .ok("insert \"a b\" \"x\\ny\": ok\nread \"a b\": \"x\\ny\"\n");
    assert_eq!(c.read(b"a b").unwrap(), Some(b"x\ny".to_vec()));
    s.client(&["0", "insert", r#""\x00""#, r#""\xff""#, "read", r#""\x00""#])
        .ok("insert \"\\x00\" \"\\xff\": ok\nread \"\\x00\": \"\\xff\"\n");
    assert_eq!(c.read(&[0]).unwrap(), Some(vec![0xff]));
    // Every escape.
    s.client(&["0", "insert", "e", r#""\n\r\t\b\a\\\"\x41'""#])
        .ok("insert e \"\\n\\r\\t\\b\\a\\\\\\\"A'\": ok\n");
    assert_eq!(
        c.read(b"e").unwrap(),
        Some(b"\n\r\t\x08\x07\\\"A'".to_vec())
    );
    // Single quotes: only \' is an escape.
    s.client(&["0", "insert", "sq", r"'it\'s \x00'"])
        .ok("insert sq \"it's \\\\x00\": ok\n");
    assert_eq!(c.read(b"sq").unwrap(), Some(br"it's \x00".to_vec()));
    // An argument that does not start with a quote is taken literally, backslashes included.
    s.client(&["0", "insert", r"\x00", r#"a"b"#])
        .ok("insert \"\\\\x00\" \"a\\\"b\": ok\n");
    assert_eq!(c.read(br"\x00").unwrap(), Some(br#"a"b"#.to_vec()));
    // A bad \x escape is no error (as in redis-cli): the backslash goes, the chars stay.
    s.client(&["0", "insert", r#""\xZZ""#, r#""\x4""#, "read", "xZZ"])
        .ok("insert xZZ x4: ok\nread xZZ: x4\n");
    assert_eq!(c.read(b"xZZ").unwrap(), Some(b"x4".to_vec()));
    // The empty value; a quoted verb is a word, not the operation.
    s.client(&["0", "insert", "empty", r#""""#, "read", "empty"])
        .ok("insert empty \"\": ok\nread empty: \"\"\n");
    assert_eq!(c.read(b"empty").unwrap(), Some(Vec::new()));
    s.client(&["0", r#""read""#, "1"])
        .fails(2, "unknown operation '\"read\"'");
    drop(c);
    s.quit_and_check_clean();
}

/// Lines on standard input split as redis-cli splits: quotes, escapes, comments.
#[test]
fn quoting_and_escapes_on_stdin() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    let input = "\
insert \"a b\" \"x\\ny\"   # a comment \"with an open quote
read 'a b'
insert \"\\x00\" \"\\xff\" read \"\\x00\"
insert e \"\\n\\r\\t\\b\\a\\\\\\\"\\x41'\"
insert sq 'it\\'s \\x00'
insert \\x00 a\\b
# only a comment

insert \"\\xZZ\" \"\\x4\"
insert empty \"\"
read empty
";
    client_stdin(&s, &["0"], input).ok("\
insert \"a b\" \"x\\ny\": ok
read \"a b\": \"x\\ny\"
insert \"\\x00\" \"\\xff\": ok
read \"\\x00\": \"\\xff\"
insert e \"\\n\\r\\t\\b\\a\\\\\\\"A'\": ok
insert sq \"it's \\\\x00\": ok
insert \"\\\\x00\" \"a\\\\b\": ok
insert xZZ x4: ok
insert empty \"\": ok
read empty: \"\"
");
    assert_eq!(c.read(b"a b").unwrap(), Some(b"x\ny".to_vec()));
    assert_eq!(c.read(&[0]).unwrap(), Some(vec![0xff]));
    assert_eq!(
        c.read(b"e").unwrap(),
        Some(b"\n\r\t\x08\x07\\\"A'".to_vec())
    );
    assert_eq!(c.read(b"sq").unwrap(), Some(br"it's \x00".to_vec()));
    assert_eq!(c.read(br"\x00").unwrap(), Some(br"a\b".to_vec()));
    assert_eq!(c.read(b"xZZ").unwrap(), Some(b"x4".to_vec()));
    assert_eq!(c.read(b"empty").unwrap(), Some(Vec::new()));
    // A line that does not split stops the client there (status 2), after the lines before it.
    let out = client_stdin(&s, &["0"], "insert u 1\nread \"u\nread u\n");
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "insert u 1: ok\n");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("line 2: unbalanced quotes"),
        "{}",
        out.stderr
    );
    let out = client_stdin(&s, &["0"], "read \"u\"x\n");
    out.fails(
        2,
        "line 1: the closing \" at column 8 must be followed by a space",
    );
    let out = client_stdin(&s, &["0"], "read \"\"\n");
    out.fails(2, "line 1: empty key for 'read'");
    drop(c);
    s.quit_and_check_clean();
}

/// What the client prints can be given back to it: a binary value read, then inserted from
/// the printed word, through standard input and as an argument, reads back byte-identical.
#[test]
fn printed_values_and_keys_can_be_fed_back_in() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    let binary = all_bytes();
    // A binary value, inserted through the client binary.
    let mut arg = String::from("\"");
    for b in &binary {
        arg += &format!("\\x{b:02x}");
    }
    arg.push('"');
    let out = s.client(&["0", "insert", "bin", &arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c.read(b"bin").unwrap(), Some(binary.clone()));

    let out = s.client(&["0", "read", "bin"]);
    assert_eq!(out.code, 0, "{out:?}");
    let token = after(&out, "read bin: ").to_string();
    assert!(token.starts_with('"') && token.ends_with('"'), "{token}");
    assert!(token.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{token}");
    // Back in through standard input, and as one argument.
    client_stdin(&s, &["0"], &format!("insert copy {token}\n"))
        .ok(&format!("insert copy {token}: ok\n"));
    s.client(&["0", "insert", "copy2", &token])
        .ok(&format!("insert copy2 {token}: ok\n"));
    assert_eq!(c.read(b"copy").unwrap(), Some(binary.clone()));
    assert_eq!(c.read(b"copy2").unwrap(), Some(binary.clone()));
    assert_eq!(c.read(b"bin").unwrap(), Some(binary.clone()));
    s.client(&["0", "read", "copy", "read", "copy2"])
        .ok(&format!("read copy: {token}\nread copy2: {token}\n"));

    // A binary key, inserted through the library: its printed form (from scan) reads it.
    let key = b"\x00k e\"y\xff#\\".to_vec();
    c.insert(&key, b"found").unwrap();
    let out = s.client(&["0", "scan", "0", "100"]);
    let line = after(&out, "scan 0 100: cursor 0, 4 keys: ");
    let keys = words(line);
    assert!(keys.contains(&key), "{out:?}");
    // The other keys print bare: the quoted word is the binary key's, to its closing quote.
    let printed = {
        let b = line.as_bytes();
        let start = line.find('"').unwrap();
        let mut end = start + 1;
        while b[end] != b'"' {
            end += if b[end] == b'\\' { 2 } else { 1 };
        }
        line[start..=end].to_string()
    };
    assert_eq!(words(&printed), std::slice::from_ref(&key));
    s.client(&["0", "read", &printed])
        .ok(&format!("read {printed}: found\n"));
    client_stdin(
        &s,
        &["0"],
        &format!("read {printed}\ninsert {printed} again\n"),
    )
    .ok(&format!(
        "read {printed}: found\ninsert {printed} again: ok, replaced found\n"
    ));
    assert_eq!(c.read(&key).unwrap(), Some(b"again".to_vec()));
    drop(c);
    s.quit_and_check_clean();
}

#[test]
fn json_output_for_utf8_and_binary_values() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let c = lib(&s);
    c.insert(b"bin", &[0xff, 0x00, 0xfe]).unwrap();
    let out = s.client(&[
        "--json",
        "0",
        "insert",
        "u",
        "héllo wörld",
        "read",
        "u",
        "read",
        "bin",
        "read",
        "missing",
        "insert",
        r#""\xc3""#,
        "x",
        "add",
        "n",
        "3",
        "len",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    let lines = json_lines(&out);
    assert_eq!(
        out.stdout.lines().next().unwrap(),
        r#"{"op":"insert","key":"u","value":"héllo wörld","previous":null,"status":"ok"}"#
    );
    assert_eq!(
        lines[1],
        serde_json::json!({"op": "read", "key": "u", "value": "héllo wörld", "status": "ok"})
    );
    assert_eq!(
        lines[2],
        serde_json::json!({"op": "read", "key": "bin", "value": {"base64": "/wD+"}, "status": "ok"})
    );
    assert_eq!(
        lines[3],
        serde_json::json!({"op": "read", "key": "missing", "value": null, "status": "not_found"})
    );
    // A key that is not UTF-8 (half a character) is base64 too.
    assert_eq!(lines[4]["key"], serde_json::json!({"base64": "ww=="}));
    assert_eq!(
        lines[5],
        serde_json::json!({"op": "add", "key": "n", "delta": 3, "value": 3, "status": "ok"})
    );
    assert_eq!(
        lines[6],
        serde_json::json!({"op": "len", "count": 4, "status": "ok"})
    );
    assert_eq!(lines.len(), 7);
    // Decoding the base64 gives the bytes back.
    assert_eq!(
        shmkv_cli::bytes_from_json(&lines[2]["value"]),
        Some(vec![0xff, 0x00, 0xfe])
    );
    // Refusals are objects on stdout too, with status 1.
    let out = s.client(&["--json", "0", "insert", "s", "x", "add", "s", "1"]);
    assert_eq!(out.code, 1, "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines[1]["status"], "error");
    assert_eq!(
        lines[1]["error"],
        "the value is not a decimal 64-bit integer"
    );
    drop(c);
    s.quit_and_check_clean();
}

// ---------------------------------------------------------------------------------------------
// Limits and memory.
// ---------------------------------------------------------------------------------------------

/// A key or value longer than the server takes is refused by the client before anything is
/// sent: one line, status 2, nothing of its batch done.
#[test]
fn keys_and_values_over_the_limits_are_refused_by_the_client() {
    let s = ServerProc::start(&["10", "1", "1", "--max-key", "8", "--max-value", "16"]);
    // Exactly at the limits: fine.
    s.client(&["0", "insert", "12345678", "0123456789abcdef"])
        .ok("insert 12345678 0123456789abcdef: ok\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["0", "insert", "123456789", "v"],
            "key of 9 bytes is longer than the server's limit of 8 bytes",
        ),
        (
            &["0", "insert", "k", "0123456789abcdefg"],
            "value of 17 bytes is longer than the server's limit of 16 bytes",
        ),
        // Bytes, not characters: 5 two-byte characters are 10 bytes.
        (
            &["0", "read", "ééééé"],
            "key of 10 bytes is longer than the server's limit of 8 bytes",
        ),
        (
            &["0", "read", r#""\xff\xff\xff\xff\xff\xff\xff\xff\xff""#],
            "key of 9 bytes",
        ),
        (
            &["0", "cas", "k", "0123456789abcdefg", "v"],
            "value of 17 bytes",
        ),
        (
            &["0", "cas", "k", "--absent", "0123456789abcdefg"],
            "value of 17 bytes",
        ),
        (&["0", "insert-new", "123456789", "v"], "key of 9 bytes"),
        (&["0", "add", "123456789", "1"], "key of 9 bytes"),
        (&["0", "delete", "123456789"], "key of 9 bytes"),
        // In a batch: nothing of it is sent, the operations before it included.
        (
            &["0", "insert", "a", "1", "insert", "123456789", "x"],
            "key of 9 bytes",
        ),
    ];
    for (args, msg) in cases {
        let out = s.client(args);
        out.fails(2, msg);
        assert_eq!(out.stdout, "", "{out:?}");
    }
    s.client(&["0", "read", "a"]).ok("read a: not found\n");
    // On standard input: the lines before are done, the bad one stops the client.
    let out = client_stdin(
        &s,
        &["0"],
        "insert b 1\ninsert c 0123456789abcdefg\ninsert d 1\n",
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "insert b 1: ok\n");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("line 2: value of 17 bytes is longer than the server's limit of 16 bytes"),
        "{out:?}"
    );
    s.client(&["0", "read", "b", "read", "c", "read", "d"])
        .ok("read b: 1\nread c: not found\nread d: not found\n");
    // The server never saw them: it refused nothing as too large.
    let out = s.client(&["--json", "0", "stats"]);
    let st = &json_lines(&out)[0]["stats"];
    assert_eq!(st["errors"]["too_large"], 0, "{st}");
    assert_eq!(st["errors"]["total"], 0, "{st}");
    assert_eq!(
        st["limits"],
        serde_json::json!({"max_key": 8, "max_value": 16})
    );
    let out = s.client(&["0", "stats"]);
    assert!(
        out.stdout
            .contains("  limits     keys up to 8 bytes, values up to 16 bytes\n"),
        "{out:?}"
    );
    s.quit_and_check_clean();
}

/// With a small --max-memory, inserts are eventually refused with "out of memory" (status 1)
/// while reads and deletes go on, and stats shows the memory used.
#[test]
fn small_max_memory_refuses_writes_but_not_reads_and_deletes() {
    let s = ServerProc::start(&["10", "1", "1", "--max-memory", "4K"]);
    let value = "0123456789abcdef";
    let mut args = vec!["0".to_string()];
    for i in 100..300 {
        args.extend(["insert".into(), format!("k{i}"), value.into()]);
    }
    let out = s.client(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 1, "{out:?}");
    let done = out.stdout.lines().count();
    assert!(done > 0 && done < 200, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 200 - done, "{out:?}");
    for l in out.stderr.lines() {
        assert!(
            l.starts_with("shmkv-client: insert k")
                && l.ends_with(": error: out of memory (the server's --max-memory)"),
            "{l}"
        );
    }
    // The first ones went in, then none (every entry costs the same).
    for (i, l) in out.stdout.lines().enumerate() {
        assert_eq!(l, format!("insert k{} {value}: ok", 100 + i));
    }
    let cost = shmkv::store::entry_cost(4, value.len());
    assert_eq!(done as u64, 4096 / cost, "entry cost {cost}");
    // Reads and deletes go on; the memory a delete frees takes a new entry; replacing a value
    // with a longer one is refused.
    s.client(&["0", "read", "k100", "len"])
        .ok(&format!("read k100: {value}\nlen: {done}\n"));
    s.client(&["0", "insert", "k999", value])
        .fails(1, "insert k999 0123456789abcdef: error: out of memory");
    s.client(&["0", "read", "k999", "insert-new", "k999", value])
        .fails(1, "insert-new k999 0123456789abcdef: error: out of memory");
    s.client(&[
        "0", "delete", "k100", "insert", "k999", value, "read", "k999",
    ])
    .ok(&format!(
        "delete k100: ok\ninsert k999 {value}: ok\nread k999: {value}\n"
    ));
    let long = "0123456789abcdef0123456789abcdef0123456789abcdef";
    s.client(&["0", "insert", "k101", long]).fails(
        1,
        "insert k101 0123456789abcdef0123456789abcdef0123456789abcdef: error: out of memory",
    );
    s.client(&["0", "read", "k101"])
        .ok(&format!("read k101: {value}\n"));
    // Stats shows the memory used, and the refusals.
    let used = done as u64 * cost;
    let out = s.client(&["0", "stats"]);
    assert_eq!(out.code, 0, "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("  memory "))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.ends_with(" used of 4 KiB"), "{line}");
    let out = s.client(&["--json", "0", "stats"]);
    let st = &json_lines(&out)[0]["stats"];
    assert_eq!(
        st["memory"],
        serde_json::json!({"used": used, "limit": 4096})
    );
    assert_eq!(st["errors"]["out_of_memory"], 200 - done as u64 + 3, "{st}");
    s.quit_and_check_clean();
}

// ---------------------------------------------------------------------------------------------
// Bad input.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_client_input_is_one_line_and_nonzero() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["0", "frob", "1"], 2, "unknown operation 'frob'"),
        (&["0", "Read", "1"], 2, "unknown operation 'Read'"),
        (&["0", "insert", "1"], 2, "'insert' needs a value"),
        (&["0", "read"], 2, "'read' needs a key"),
        (&["0", "cas", "k", "v"], 2, "'cas' needs a new value"),
        (&["0", "add", "k"], 2, "'add' needs a delta"),
        (&["0", "read", r#""abc"#], 2, "unbalanced quotes"),
        (&["0", "read", r#"'abc"#], 2, "unbalanced quotes"),
        (
            &["0", "read", r#""a"b"#],
            2,
            "goes on after its closing quote",
        ),
        (&["0", "read", r#""""#], 2, "empty key for 'read'"),
        (&["0", "insert", "", "v"], 2, "empty key for 'insert'"),
        (
            &["0", "add", "k", "x"],
            2,
            "delta 'x' of 'add' is not an integer",
        ),
        (&["0", "add", "k", "9223372036854775808"], 2, "out of range"),
        (
            &["0", "print", "-1"],
            2,
            "bucket '-1' of 'print' is not a non-negative integer",
        ),
        (
            &["0", "scan", "x"],
            2,
            "cursor 'x' of 'scan' is not a non-negative integer",
        ),
        (&["0", "threads", "start", "0"], 2, "at least 1"),
        (&["0", "threads", "go"], 2, "unknown 'threads go'"),
        (&["0", "threads"], 2, "'threads' needs"),
        (
            &["0"],
            2,
            "no operations given on the command line or standard input",
        ),
        (
            &["7", "read", "1"],
            3,
            "client id 7 is out of range: server",
        ),
        (&["99999999999", "read", "1"], 2, "not a valid id"),
        (&["--timeout", "0", "0", "read", "1"], 2, "--timeout"),
    ];
    for (args, code, msg) in cases {
        let out = s.client(args);
        out.fails(*code, msg);
        assert_eq!(out.stdout, "", "{args:?}");
    }
    // Nothing of a command line with a bad word is sent.
    s.client(&["0", "insert", "z", "1", "frob"])
        .fails(2, "unknown operation 'frob'");
    s.client(&["0", "read", "z"]).ok("read z: not found\n");
    // What was invalid with u64 keys is fine now.
    s.client(&["0", "read", "x", "read", "-1", "read", "1.5"])
        .ok("read x: not found\nread -1: not found\nread 1.5: not found\n");
    // Slot in use: hold slot 0 from this process.
    let held = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    s.client(&["0", "read", "1"])
        .fails(3, "client id 0 is in use by process");
    drop(held);
    // No server.
    let out = run_client_named("no-such-server-x", &["0", "read", "1"]);
    out.fails(
        3,
        "no shmkv server named 'no-such-server-x' is running (start one with",
    );
    // Bad name.
    run_client_named("a/b", &["0", "read", "1"]).fails(2, "invalid name");
    s.quit_and_check_clean();
}

#[test]
fn bad_server_input_is_one_line_and_nonzero() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["0"], 2, "buckets must be 1 to"),
        (&["10", "0"], 2, "clients must be 1 to"),
        (&["10", "1", "0"], 2, "threads per client must be 1 to"),
        (&["10", "1", "65"], 2, "threads per client must be 1 to 64"),
        (&["abc"], 2, "invalid value 'abc'"),
        // The slot ring's size is gone with the slots.
        (&["--ring", "64"], 2, "unexpected argument '--ring'"),
        (&["--name", "../x"], 2, "invalid name"),
        (&["100000000"], 2, "buckets must be 1 to 16777216"),
        (&["10", "--buckets", "20"], 2, "cannot be used with"),
        // The limits.
        (&["--max-memory", "x"], 2, "'x' is not a size"),
        (&["--max-memory", "4T"], 2, "unknown unit 'T'"),
        (
            &["--max-value", "5G"],
            2,
            "--max-value 5368709120 is too large",
        ),
    ];
    for (args, code, msg) in cases {
        let out = run_server_expect_fail(args);
        assert_eq!(out.stdout, "", "{args:?}");
        out.fails(*code, msg);
    }
    // The largest limits are fine.
    let s = ServerProc::start(&["10", "1", "1", "--max-key", "64K", "--max-value", "64M"]);
    let out = s.client(&["--json", "0", "stats"]);
    let st = &json_lines(&out)[0]["stats"];
    assert_eq!(
        st["limits"],
        serde_json::json!({"max_key": 65536, "max_value": 64 << 20})
    );
    s.quit_and_check_clean();
}

/// Limits out of their range are bad command lines like any other bad flag value (`--max-value
/// 5G`, `--max-memory x`): status 2, as --help says ("2 on a bad command line").
#[test]
fn out_of_range_limits_are_usage_errors() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--max-value", "65M"],
            2,
            "max value must be 0 to 67108864 bytes",
        ),
        (&["--max-key", "0"], 2, "max key must be 1 to 65536 bytes"),
        (&["--max-key", "65K"], 2, "max key must be 1 to 65536 bytes"),
    ];
    for (args, code, msg) in cases {
        let out = run_server_expect_fail(args);
        assert_eq!(out.stdout, "", "{args:?}");
        out.fails(*code, msg);
    }
}

// ---------------------------------------------------------------------------------------------
// Servers, sockets, signals.
// ---------------------------------------------------------------------------------------------

#[test]
fn second_server_with_same_name_is_refused_and_other_names_coexist() {
    let a = ServerProc::start(&["10", "1", "1"]);
    let out = run_server_expect_fail(&["10", "1", "1", "--name", &a.name]);
    out.fails(1, "is already running");
    let b = ServerProc::start(&["10", "1", "1"]);
    a.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    b.client(&["0", "read", "1"]).ok("read 1: not found\n");
    a.quit_and_check_clean();
    b.quit_and_check_clean();
}

#[test]
fn the_socket_is_private_and_nothing_lives_in_dev_shm() {
    let s = ServerProc::start(&["10", "3", "1"]);
    let dir = shmkv::door::socket_dir();
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{}", dir.display());
    let sock = dir.join(format!("{}.sock", s.name));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", sock.display());
    s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
    let in_dev_shm = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(&s.name))
        .count();
    assert_eq!(in_dev_shm, 0, "sessions are anonymous sealed objects");
    s.quit_and_check_clean();
}

#[test]
fn sigint_and_sigterm_shut_down_cleanly() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let s = ServerProc::start(&["10", "2", "2"]);
        s.client(&["0", "insert", "1", "1"]).ok("insert 1 1: ok\n");
        s.signal_and_check_clean(sig);
    }
}

#[test]
fn client_reports_a_server_that_dies_while_it_waits() {
    let s = ServerProc::start(&["10", "1", "1"]);
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    let c = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    // Freeze the server so the request stays unanswered, then kill it.
    stop_and_wait(s.pid());
    let t = c.submit(Op::Read { key: b"1".to_vec() }).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let start = Instant::now();
    let r = c.wait(t);
    assert_eq!(r, Err(ClientError::ServerGone("died")));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    drop(c);
    // A new server with the same name replaces the dead one's socket and starts.
    let s2 = ServerProc::start_named(&s.name, &["10", "1", "1"]);
    s2.client(&["0", "read", "1"]).ok("read 1: not found\n");
    s2.quit_and_check_clean();
    drop(s);
}

#[test]
fn client_binary_fails_fast_when_server_is_killed() {
    use std::io::BufRead;
    let s = ServerProc::start(&["10", "1", "1"]);
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    let mut child = Command::new(CLIENT)
        .args(["--name", &s.name, "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    // The client is connected once its first answer comes.
    writeln!(stdin, "read 1").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "read 1: not found\n");
    stop_and_wait(s.pid());
    // Whether the client takes this line before or after the kill, its call waits on a dead
    // server and must fail fast.
    writeln!(stdin, "read 2").unwrap();
    stdin.flush().unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let start = Instant::now();
    let end = start + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "client did not exit");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(3));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("read 2: the server died"), "{err}");
}

#[test]
fn slot_is_reused_after_a_client_leaves() {
    let s = ServerProc::start(&["10", "1", "2"]);
    s.client(&["0", "insert", "1", "0"]).ok("insert 1 0: ok\n");
    for i in 1..30 {
        s.client(&["0", "insert", "1", &i.to_string(), "read", "1"])
            .ok(&format!(
                "insert 1 {i}: ok, replaced {}\nread 1: {i}\n",
                i - 1
            ));
    }
    s.quit_and_check_clean();
}

#[test]
fn quit_from_library_and_help_version() {
    let s = ServerProc::start(&["10", "1", "1"]);
    let c = Client::connect(&ClientConfig::new(&s.name)).unwrap();
    c.quit().unwrap();
    drop(c);
    s.wait_exit_and_check_clean();
    for bin in [SERVER, CLIENT] {
        let h = run(bin, &["--help"]);
        assert_eq!(h.code, 0);
        assert!(h.stdout.contains("Examples:"), "{bin}");
        assert!(h.stdout.contains("Exit status:"), "{bin}");
        let v = run(bin, &["--version"]);
        assert_eq!(v.code, 0);
        assert!(v.stdout.contains(env!("CARGO_PKG_VERSION")));
    }
    // The client's help lists every operation; the server's the limits.
    let h = run(CLIENT, &["--help"]).stdout;
    for v in &shmkv::wire::VERBS {
        assert!(h.contains(&format!("  {}", v.name)), "{} in {h}", v.name);
    }
    let h = run(SERVER, &["--help"]).stdout;
    for flag in ["--max-key", "--max-value", "--max-memory"] {
        assert!(h.contains(flag), "{flag} in {h}");
    }
    assert!(!h.contains("--ring"), "{h}");
}
