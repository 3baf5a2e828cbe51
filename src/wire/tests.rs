//! Unit tests of `wire`.

use super::*;
use std::collections::HashSet;

mod strict;

const TAG: usize = 8;
const FLAGS: usize = 9;
const RESERVED: usize = 10;

const L: Limits = Limits {
    max_key: 64,
    max_value: 1024,
};

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn all_ops() -> Vec<Op> {
    vec![
        Op::Insert {
            key: b("k"),
            value: b("v"),
        },
        Op::Read { key: vec![0; 64] },
        Op::Delete { key: vec![0xFF] },
        Op::InsertNew {
            key: b("new"),
            value: Vec::new(),
        },
        Op::Cas {
            key: b("c"),
            expected: None,
            new: b("x"),
        },
        Op::Cas {
            key: b("c"),
            expected: Some(Vec::new()),
            new: Vec::new(),
        },
        Op::Cas {
            key: b("c"),
            expected: Some(b("old")),
            new: vec![7; 1024],
        },
        Op::Add {
            key: b("n"),
            delta: i64::MIN,
        },
        Op::Len,
        Op::Scan {
            cursor: u64::MAX,
            count: 1,
        },
        Op::Print { bucket: 4999 },
        Op::ThreadsStart { n: u32::MAX },
        Op::ThreadsStop,
        Op::Stats,
        Op::Quit,
    ]
}

#[test]
fn views_encode_and_decode_as_the_owned_operations() {
    for op in all_ops() {
        let mut owned = Vec::new();
        encode_op(9, &op, &mut owned);
        let mut viewed = Vec::new();
        encode_view(9, &op.view(), &mut viewed);
        assert_eq!(viewed, owned, "{op:?}");
        let (id, view) = decode_request_view(&owned, &L).unwrap();
        assert_eq!((id, view.to_op()), (9, op.clone()));
        assert_eq!(view.verb(), op.verb());
    }
}

#[test]
fn value_responses_encode_as_their_replies() {
    type Make = fn(Vec<u8>) -> Reply;
    let kinds: [(ReplyKind, Make); 4] = [
        (ReplyKind::Value, Reply::Value),
        (ReplyKind::Replaced, Reply::Replaced),
        (ReplyKind::Deleted, Reply::Deleted),
        (ReplyKind::Exists, Reply::Exists),
    ];
    for (kind, make) in kinds {
        for v in [Vec::new(), b("v"), vec![3; 1024]] {
            let mut direct = Vec::new();
            encode_value_response(77, kind, &v, &mut direct);
            let mut built = Vec::new();
            encode_response(
                &Response {
                    id: 77,
                    reply: make(v),
                },
                &mut built,
            );
            assert_eq!(direct, built, "{kind:?}");
        }
    }
}

#[test]
#[should_panic(expected = "does not carry one value")]
fn value_responses_are_only_for_value_kinds() {
    encode_value_response(1, ReplyKind::Count, b"x", &mut Vec::new());
}

fn all_replies() -> Vec<Reply> {
    vec![
        Reply::Created,
        Reply::Replaced(b("old")),
        Reply::Value(Vec::new()),
        Reply::NotFound,
        Reply::Deleted(vec![1; 1024]),
        Reply::Exists(b("cur")),
        Reply::Swapped,
        Reply::Mismatch(None),
        Reply::Mismatch(Some(Vec::new())),
        Reply::Mismatch(Some(b("x"))),
        Reply::Number(-1),
        Reply::Count(u64::MAX),
        Reply::Keys {
            cursor: 0,
            keys: Vec::new(),
            more: false,
        },
        Reply::Keys {
            cursor: 17,
            keys: vec![b("a"), vec![9; 64]],
            more: true,
        },
        Reply::Entries {
            pairs: vec![(b("a"), Vec::new()), (b("b"), b("2"))],
            more: true,
        },
        Reply::Entries {
            pairs: Vec::new(),
            more: false,
        },
        Reply::Threads(0),
        Reply::Stats {
            stats: vec![
                Stat {
                    id: StatId::SLOT_OWNER,
                    index: u32::MAX,
                    value: u64::MAX,
                },
                Stat {
                    id: StatId(u16::MAX),
                    index: 0,
                    value: 1,
                },
            ],
            more: false,
        },
        Reply::Stats {
            stats: Vec::new(),
            more: true,
        },
        Reply::Done,
        Reply::Error(ErrorCode::BadBucket {
            bucket: 10,
            buckets: 5,
        }),
        Reply::Error(ErrorCode::ThreadLimit {
            current: 64,
            max: u32::MAX,
        }),
        Reply::Error(ErrorCode::LastWorker),
        Reply::Error(ErrorCode::ShuttingDown),
        Reply::Error(ErrorCode::Malformed),
        Reply::Error(ErrorCode::TooLarge {
            what: Field::Key,
            len: u64::MAX,
            max: 64,
        }),
        Reply::Error(ErrorCode::TooLarge {
            what: Field::Value,
            len: 1025,
            max: 1024,
        }),
        Reply::Error(ErrorCode::OutOfMemory),
        Reply::Error(ErrorCode::NotAnInteger),
        Reply::Error(ErrorCode::Overflow),
    ]
}

fn enc_req(op: Op) -> Vec<u8> {
    let mut v = Vec::new();
    encode_request(&Request { id: 7, op }, &mut v);
    v
}

fn enc_resp(reply: Reply) -> Vec<u8> {
    let mut v = Vec::new();
    encode_response(&Response { id: 7, reply }, &mut v);
    v
}

#[test]
fn the_lists_cover_every_kind() {
    let verbs: HashSet<_> = all_ops().iter().map(Op::verb).collect();
    assert_eq!(verbs.len(), VERBS.len());
    let kinds: HashSet<_> = all_replies().iter().map(Reply::kind).collect();
    assert_eq!(kinds.len(), REPLIES.len());
    let codes: HashSet<_> = all_replies()
        .iter()
        .filter_map(|r| match r {
            Reply::Error(e) => Some(e.code()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, (1..=9).collect());
}

#[test]
fn verb_tags_and_names_are_unique_and_round_trip() {
    let mut tags = HashSet::new();
    let mut names = HashSet::new();
    let mut stat_names = HashSet::new();
    for (i, v) in VERBS.iter().enumerate() {
        assert_eq!(v.verb.index(), i);
        assert_eq!(Verb::ALL[i], v.verb);
        assert_eq!(v.verb.info(), v);
        assert!(tags.insert(v.tag), "tag {} twice", v.tag);
        assert!(names.insert(v.name), "name {} twice", v.name);
        assert!(stat_names.insert(v.stat_name));
        assert_eq!(Verb::from_tag(v.tag), Some(v.verb));
        assert_eq!(Verb::from_name(v.name), Some(v.verb));
        assert_eq!(v.stat_id, StatId(u16::from(v.tag)));
        assert!(!v.replies.is_empty() && !v.replies.contains(&ReplyKind::Error));
        // Names are lower-case words separated by one space; stat names are identifiers.
        assert!(
            v.name
                .split(' ')
                .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase() || c == b'-'))
        );
        assert!(
            v.stat_name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c == b'_')
        );
    }
    let known: HashSet<u8> = tags.iter().copied().collect();
    for t in 0..=255u8 {
        assert_eq!(Verb::from_tag(t).is_some(), known.contains(&t));
    }
    assert_eq!(Verb::from_name("threads"), None);
    assert_eq!(Verb::from_name("INSERT"), None);
    assert_eq!(Verb::from_name("threads  start"), None);
    // Every verb's statistic, every error's statistic, and every reply's tag and name.
    let mut kinds = HashSet::new();
    for (i, r) in REPLIES.iter().enumerate() {
        assert_eq!(r.kind as usize, i);
        assert_eq!(r.kind.info(), r);
        assert_eq!(ReplyKind::from_tag(r.tag), Some(r.kind));
        assert!(kinds.insert(r.name));
    }
    let answered: HashSet<_> = VERBS.iter().flat_map(|v| v.replies).copied().collect();
    assert_eq!(
        answered.len(),
        REPLIES.len() - 1,
        "every reply but Error answers a verb"
    );
}

/// The tags and statistics ids of the first protocol's operations are kept.
#[test]
fn old_tags_and_stat_ids_are_kept() {
    let old = [
        (Verb::Insert, StatId::OPS_INSERT),
        (Verb::Read, StatId::OPS_READ),
        (Verb::Delete, StatId::OPS_DELETE),
        (Verb::Print, StatId::OPS_PRINT),
        (Verb::ThreadsStart, StatId::OPS_THREADS_START),
        (Verb::ThreadsStop, StatId::OPS_THREADS_STOP),
        (Verb::Quit, StatId::OPS_QUIT),
        (Verb::Stats, StatId::OPS_STATS),
    ];
    for (v, id) in old {
        assert_eq!(v.info().stat_id, id);
    }
    // New verbs stay below the refusal ids (16..).
    assert!(VERBS.iter().all(|v| v.stat_id.0 < 16));
    assert_eq!(ErrorCode::Malformed.stat_id(), StatId::ERRORS_MALFORMED);
    assert_eq!(ErrorCode::LastWorker.stat_id(), StatId::ERRORS_LAST_WORKER);
    assert!(ErrorCode::Overflow.stat_id().0 < StatId::ENTRIES.0);
}

/// The body of every operation is the wire form of its shape's arguments, in order: the
/// table's shapes describe the codec.
#[test]
fn bodies_follow_the_shapes() {
    for op in all_ops() {
        let s = enc_req(op.clone());
        let args = op.verb().info().shape.args();
        let mut at = HEADER_LEN;
        for a in args {
            let len = match a.kind {
                ArgKind::Key | ArgKind::Value | ArgKind::Expected => {
                    u32::from_le_bytes(s[at..at + 4].try_into().unwrap()) as usize
                }
                _ => 0,
            };
            at += a.kind.wire_len(len);
        }
        assert_eq!(at, s.len(), "{op:?}");
        assert_eq!(s[TAG], op.verb().info().tag);
    }
}

#[test]
fn every_request_round_trips() {
    for (i, op) in all_ops().into_iter().enumerate() {
        let r = Request {
            id: 0xDEAD_BEEF_0000 + i as u64,
            op,
        };
        let mut s = Vec::new();
        encode_request(&r, &mut s);
        assert_eq!(s.len(), r.encoded_len());
        assert_eq!(decode_request(&s, &L), Ok(r.clone()));
        assert_eq!(request_id(&s), r.id);
        assert!(s.len() as u64 <= L.max_request_len());
    }
}

#[test]
fn every_response_round_trips() {
    for reply in all_replies() {
        let r = Response { id: 77, reply };
        let mut s = Vec::new();
        encode_response(&r, &mut s);
        assert_eq!(s.len(), r.encoded_len());
        assert_eq!(decode_response(&s, &L), Ok(r));
    }
}

#[test]
fn encode_appends() {
    let mut s = vec![1, 2, 3];
    encode_request(&Request { id: 1, op: Op::Len }, &mut s);
    assert_eq!(s[..3], [1, 2, 3]);
    assert_eq!(decode_request(&s[3..], &L).unwrap().op, Op::Len);
}

#[test]
fn layout_is_as_documented() {
    let s = enc_req(Op::Cas {
        key: b("ab"),
        expected: None,
        new: b("xyz"),
    });
    let mut want = 7u64.to_le_bytes().to_vec();
    want.extend_from_slice(&[10, FLAG_ABSENT, 0, 0]);
    want.extend_from_slice(&[2, 0, 0, 0, b'a', b'b']);
    want.extend_from_slice(&[0, 0, 0, 0]);
    want.extend_from_slice(&[3, 0, 0, 0, b'x', b'y', b'z']);
    assert_eq!(s, want);
    let s = enc_resp(Reply::Keys {
        cursor: 0x0102,
        keys: vec![b("k")],
        more: true,
    });
    let mut want = 7u64.to_le_bytes().to_vec();
    want.extend_from_slice(&[11, FLAG_MORE, 0, 0]);
    want.extend_from_slice(&0x0102u64.to_le_bytes());
    want.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, b'k']);
    assert_eq!(s, want);
    let s = enc_resp(Reply::Error(ErrorCode::TooLarge {
        what: Field::Value,
        len: 5,
        max: 4,
    }));
    assert_eq!(s[TAG], 16);
    assert_eq!(
        s[HEADER_LEN..],
        [6, 0, 2, 5, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]
    );
    let s = enc_resp(Reply::Stats {
        stats: vec![Stat {
            id: StatId(0x0304),
            index: 0x05,
            value: 0x06,
        }],
        more: false,
    });
    assert_eq!(
        s[HEADER_LEN..],
        [1, 0, 0, 0, 4, 3, 5, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn limits_bound_the_messages() {
    for (k, v) in [(1usize, 0usize), (2, 1), (5, 7), (300, 700)] {
        let l = Limits {
            max_key: k as u32,
            max_value: v as u32,
        };
        // Every request with its fields as long as allowed.
        let (key, val) = (vec![1; k], vec![2; v]);
        let ops = [
            Op::Insert {
                key: key.clone(),
                value: val.clone(),
            },
            Op::Cas {
                key: key.clone(),
                expected: Some(val.clone()),
                new: val.clone(),
            },
            Op::Add {
                key: key.clone(),
                delta: 0,
            },
            Op::Scan {
                cursor: 0,
                count: 1,
            },
            Op::Print { bucket: 0 },
        ];
        let longest = ops
            .into_iter()
            .map(|op| Request { id: 0, op }.encoded_len() as u64)
            .max();
        assert_eq!(longest, Some(l.max_request_len()));
        // Every reply with one list item and fields as long as allowed.
        let stat = Stat {
            id: StatId(1),
            index: 0,
            value: 0,
        };
        let one_item = [
            Reply::Entries {
                pairs: vec![(key.clone(), val.clone())],
                more: true,
            },
            Reply::Keys {
                cursor: 1,
                keys: vec![key.clone()],
                more: true,
            },
            Reply::Stats {
                stats: vec![stat],
                more: true,
            },
            Reply::Value(val.clone()),
            Reply::Mismatch(Some(val.clone())),
            Reply::Number(0),
            Reply::Error(ErrorCode::BadBucket {
                bucket: 0,
                buckets: 0,
            }),
            Reply::Error(ErrorCode::TooLarge {
                what: Field::Key,
                len: 9,
                max: 5,
            }),
        ];
        let longest = one_item
            .into_iter()
            .map(|reply| Response { id: 0, reply }.encoded_len() as u64)
            .max()
            .unwrap();
        assert_eq!(longest, l.max_response_len(), "{l:?}");
        let p = l.max_request_len().max(l.max_response_len()) as usize;
        assert!(l.fit(p));
        assert!(!l.fit(p - 1));
    }
    let top = crate::record::max_payload(crate::record::MAX_CAPACITY);
    assert!(!Limits::UNLIMITED.fit(top));
    let l = Limits {
        max_key: 250,
        max_value: 4000,
    };
    assert!(l.fit(crate::record::max_payload(1 << 15)));
    assert!(!l.fit(crate::record::max_payload(1 << 14)));
}

#[test]
fn errors_display() {
    let e = ErrorCode::TooLarge {
        what: Field::Value,
        len: 9,
        max: 8,
    };
    assert_eq!(
        e.to_string(),
        "value of 9 bytes is longer than the server's limit of 8 bytes"
    );
    assert_eq!(
        ErrorCode::LastWorker.to_string(),
        "cannot stop the last worker thread of a client"
    );
    assert!(
        WireError::Truncated {
            at: 12,
            need: 4,
            have: 1
        }
        .to_string()
        .contains("offset 12")
    );
}
