//! Unit tests of the Redis harness: the RESP codec, a server's life (start, answer, cleanup)
//! and a cluster's (formed, three masters sharing the slots, cleanup).

use super::*;

fn parse(bytes: &[u8]) -> Reply {
    let mut r = BufReader::new(bytes);
    let reply = read_reply(&mut r).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "left unread: {rest:?}");
    reply
}

#[test]
fn resp_encodes_commands_and_parses_every_reply() {
    assert_eq!(
        encode(&[b"SET", b"k\r\n", b""]),
        b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n".to_vec()
    );
    assert_eq!(parse(b"+PONG\r\n"), Reply::Simple("PONG".into()));
    assert_eq!(parse(b"-ERR no\r\n"), Reply::Error("ERR no".into()));
    assert_eq!(parse(b":-42\r\n"), Reply::Integer(-42));
    assert_eq!(parse(b"$-1\r\n"), Reply::Bulk(None));
    assert_eq!(
        parse(b"$4\r\n\x00\r\n\xff\r\n"),
        Reply::Bulk(Some(b"\x00\r\n\xff".to_vec()))
    );
    assert_eq!(parse(b"*-1\r\n"), Reply::Array(None));
    assert_eq!(
        parse(b"*2\r\n:1\r\n*1\r\n$0\r\n\r\n"),
        Reply::Array(Some(vec![
            Reply::Integer(1),
            Reply::Array(Some(vec![Reply::Bulk(Some(Vec::new()))]))
        ]))
    );
    for bad in [
        &b""[..],
        b"+no crlf",
        b"?x\r\n",
        b":x\r\n",
        b"$3\r\nab\r\n",
        b"$-2\r\n",
    ] {
        assert!(read_reply(&mut BufReader::new(bad)).is_err(), "{bad:?}");
    }
    assert_eq!(
        Reply::Bulk(Some(b"a".to_vec())).text().as_deref(),
        Some("a")
    );
    assert_eq!(Reply::Integer(1).text(), None);
}

/// Whether process `pid` exists (it is reaped once waited for).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_server_answers_and_is_gone_when_dropped() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.url(), format!("redis://127.0.0.1:{}", a.port()));
    assert_eq!(a.command(&[b"PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        a.info_field("server", "process_id"),
        Some(a.pid().to_string())
    );
    // Binary keys and values, the database counted and flushed, nothing persisted.
    let (k, v) = (&b"k\x00\xff \"q\""[..], &b"\r\n\x00"[..]);
    assert_eq!(a.command(&[b"SET", k, v]), Reply::Simple("OK".into()));
    assert_eq!(a.command(&[b"GET", k]), Reply::Bulk(Some(v.to_vec())));
    assert_eq!((a.dbsize(), b.dbsize()), (1, 0));
    let before = a.commands_processed();
    assert_eq!(a.commands_processed(), before + 1, "INFO counts itself");
    a.flushall();
    assert_eq!(a.dbsize(), 0);
    assert_eq!(a.command(&[b"CONFIG", b"GET", b"save"]).text(), None);
    match a.command(&[b"CONFIG", b"GET", b"appendonly"]) {
        Reply::Array(Some(v)) => assert_eq!(v[1].text().as_deref(), Some("no")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(a.command(&[b"NOSUCHCOMMAND"]), Reply::Error(_)));
    let (pid, dir, addr) = (a.pid(), a.dir().to_path_buf(), a.addr());
    assert!(alive(pid) && dir.join("redis.log").exists());
    drop(a);
    assert!(!alive(pid), "redis-server {pid} still running");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(command(&addr, &[b"PING"]).is_err(), "{addr} still answers");
    assert_eq!(b.command(&[b"PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn a_server_started_with_a_unix_socket_answers_on_it() {
    use std::os::unix::net::UnixStream;
    let tcp_only = RedisServer::start();
    assert_eq!((tcp_only.unix_socket(), tcp_only.unix_url()), (None, None));
    let s = RedisServer::start_with_unix_socket();
    let path = s.dir().join("r.sock");
    assert_eq!(s.unix_socket(), Some(path.as_path()));
    assert_eq!(
        s.unix_url(),
        Some(format!("redis+unix://{}", path.display()))
    );
    // Written on the socket, read on the port: one server.
    let mut sock = UnixStream::connect(&path).unwrap();
    sock.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    sock.write_all(&encode(&[b"SET", b"k", b"on the socket"]))
        .unwrap();
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    assert_eq!(read_reply(&mut reader).unwrap(), Reply::Simple("OK".into()));
    assert_eq!(
        s.command(&[b"GET", b"k"]),
        Reply::Bulk(Some(b"on the socket".to_vec()))
    );
    assert_eq!(tcp_only.dbsize(), 0);
    drop(reader);
    drop(sock);
    let dir = s.dir().to_path_buf();
    drop(s);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        UnixStream::connect(&path).is_err(),
        "the socket still answers"
    );
}

#[test]
fn a_cluster_has_three_masters_sharing_the_slots() {
    let c = RedisCluster::start();
    let addrs: Vec<String> = c.nodes().iter().map(RedisServer::addr).collect();
    assert_eq!(addrs.len(), 3);
    assert_eq!(c.url(), format!("redis-cluster://{}", addrs.join(",")));
    for n in c.nodes() {
        assert_eq!(n.cluster_info_field("cluster_state").as_deref(), Some("ok"));
        assert_eq!(
            n.cluster_info_field("cluster_known_nodes").as_deref(),
            Some("3")
        );
        assert_eq!(n.cluster_info_field("cluster_size").as_deref(), Some("3"));
        assert_eq!(
            n.cluster_info_field("cluster_slots_assigned").as_deref(),
            Some("16384")
        );
        assert_eq!(
            n.info_field("replication", "role").as_deref(),
            Some("master")
        );
    }
    // A key lives on exactly one node: the others redirect.
    let mut owners = 0;
    for n in c.nodes() {
        match n.command(&[b"SET", b"some key", b"v"]) {
            Reply::Simple(ok) if ok == "OK" => owners += 1,
            Reply::Error(e) => assert!(e.starts_with("MOVED "), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(owners, 1);
    assert_eq!(c.dbsize(), 1);
    c.flushall();
    assert_eq!(c.dbsize(), 0);
    let pids: Vec<u32> = c.nodes().iter().map(RedisServer::pid).collect();
    let dirs: Vec<PathBuf> = c.nodes().iter().map(|n| n.dir().to_path_buf()).collect();
    assert!(dirs.iter().all(|d| d.join("nodes.conf").exists()));
    drop(c);
    assert!(pids.iter().all(|&p| !alive(p)), "a node still runs");
    assert!(dirs.iter().all(|d| !d.exists()), "a directory left behind");
}
