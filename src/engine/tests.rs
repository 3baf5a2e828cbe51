//! Unit tests of `engine`: URL parsing and the checks made before a batch is sent.

use super::*;

#[test]
fn urls_of_every_engine_parse() {
    assert_eq!(
        EngineUrl::parse("shm://kv").unwrap(),
        EngineUrl::Shm { name: "kv".into() }
    );
    assert_eq!(
        EngineUrl::parse("redis://127.0.0.1:6379").unwrap(),
        EngineUrl::Redis {
            url: "redis://127.0.0.1:6379".into()
        }
    );
    assert_eq!(
        EngineUrl::parse("redis://localhost:7000/2").unwrap(),
        EngineUrl::Redis {
            url: "redis://localhost:7000/2".into()
        }
    );
    assert_eq!(
        EngineUrl::parse("redis+unix:///run/redis.sock").unwrap(),
        EngineUrl::Redis {
            url: "redis+unix:///run/redis.sock".into()
        }
    );
    assert_eq!(
        EngineUrl::parse("redis-cluster://10.0.0.1:7000,10.0.0.2:7001").unwrap(),
        EngineUrl::Cluster {
            nodes: vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ]
        }
    );
    assert_eq!(
        EngineUrl::parse("redis-cluster://h:1").unwrap().kind(),
        "redis-cluster"
    );
}

#[test]
fn bad_urls_say_what_is_wrong() {
    let reason = |u: &str| match EngineUrl::parse(u) {
        Err(EngineError::BadUrl { url, reason }) => {
            assert_eq!(url, u);
            reason
        }
        other => panic!("{u}: {other:?}"),
    };
    assert!(reason("kv").contains("not a URL"));
    assert!(reason("http://x:1").contains("unknown scheme 'http'"));
    assert!(
        reason("shm://a/b").contains("'/'"),
        "{}",
        reason("shm://a/b")
    );
    assert!(reason("shm://").contains("1 to 64"));
    assert!(reason("redis://localhost").contains("port is required"));
    assert!(reason("redis://:6379").contains("no host"));
    assert!(reason("redis://h:0").contains("not a port"));
    assert!(reason("redis://h:99999").contains("not a port"));
    assert!(reason("redis+unix://relative").contains("ABSOLUTE"));
    assert!(reason("redis-cluster://a:1,b").contains("'b'"));
    let shown = EngineUrl::parse("ftp://x").unwrap_err().to_string();
    assert!(shown.starts_with("ftp://x: unknown scheme"), "{shown}");
    assert!(shown.contains("redis-cluster://"), "{shown}");
}

#[test]
fn a_batch_is_refused_whole_before_sending() {
    let limits = Limits {
        max_key: 4,
        max_value: 8,
    };
    let ok = [
        Op::Insert {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        Op::Len,
    ];
    let no_print = |v: Verb| v != Verb::Print;
    check_batch(&ok, "test", &limits, no_print).unwrap();
    let with_print = [Op::Len, Op::Print { bucket: 0 }];
    match check_batch(&with_print, "test", &limits, no_print) {
        Err(
            e @ EngineError::Unsupported {
                op: "print",
                engine: "test",
            },
        ) => assert_eq!(
            e.to_string(),
            "'print' is not supported by the test engine (only shmkv's own server has it)"
        ),
        other => panic!("{other:?}"),
    }
    let long = [Op::Read {
        key: b"12345".to_vec(),
    }];
    match check_batch(&long, "test", &limits, no_print) {
        Err(EngineError::TooLarge(e)) => {
            assert!(e.to_string().contains("key of 5 bytes"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let empty = [Op::Delete { key: Vec::new() }];
    assert!(matches!(
        check_batch(&empty, "test", &limits, no_print),
        Err(EngineError::TooLarge(_))
    ));
}

#[cfg(not(feature = "redis"))]
#[test]
fn without_the_feature_a_redis_url_says_how_to_get_it() {
    let e = connect("redis://127.0.0.1:6379")
        .err()
        .expect("no Redis engine");
    assert!(matches!(e, EngineError::NoRedis(_)), "{e:?}");
    assert!(e.to_string().contains("`redis` feature"), "{e}");
}
