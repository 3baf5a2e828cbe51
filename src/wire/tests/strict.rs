//! Unit tests of `wire`'s strict decoding: every malformed message is refused, with its error.

use super::*;

#[test]
fn short_header_is_refused() {
    let s = enc_req(Op::Len);
    assert_eq!(s.len(), HEADER_LEN);
    for n in 0..HEADER_LEN {
        assert_eq!(
            decode_request(&s[..n], &L),
            Err(WireError::ShortHeader { len: n })
        );
        assert_eq!(
            decode_response(&s[..n], &L),
            Err(WireError::ShortHeader { len: n })
        );
    }
    // The id is readable from what there is.
    assert_eq!(request_id(&s[..3]), 7);
    assert_eq!(request_id(&[]), 0);
    assert_eq!(
        request_id(&[1, 2, 3, 4, 5, 6, 7, 8, 9]),
        0x0807_0605_0403_0201
    );
}

#[test]
fn unknown_tags_are_refused() {
    let mut s = enc_req(Op::Len);
    for t in [0u8, 14, 200, 255] {
        s[TAG] = t;
        assert_eq!(decode_request(&s, &L), Err(WireError::UnknownTag(t)));
    }
    for t in [0u8, 17, 255] {
        s[TAG] = t;
        assert_eq!(decode_response(&s, &L), Err(WireError::UnknownTag(t)));
    }
}

#[test]
fn reserved_bytes_and_flags_are_checked() {
    let mut s = enc_req(Op::Len);
    s[RESERVED + 1] = 1;
    assert_eq!(decode_request(&s, &L), Err(WireError::Reserved(0x0100)));
    let mut s = enc_req(Op::Read { key: b("k") });
    s[FLAGS] = FLAG_ABSENT;
    assert_eq!(
        decode_request(&s, &L),
        Err(WireError::BadFlags {
            tag: 2,
            flags: FLAG_ABSENT
        })
    );
    let mut s = enc_req(Op::Cas {
        key: b("k"),
        expected: None,
        new: b("n"),
    });
    s[FLAGS] |= FLAG_MORE;
    assert!(matches!(
        decode_request(&s, &L),
        Err(WireError::BadFlags { tag: 10, .. })
    ));
    // MORE only on list replies, ABSENT only on Mismatch.
    let mut s = enc_resp(Reply::Value(b("v")));
    s[FLAGS] = FLAG_MORE;
    assert!(matches!(
        decode_response(&s, &L),
        Err(WireError::BadFlags { tag: 3, .. })
    ));
    let mut s = enc_resp(Reply::Entries {
        pairs: Vec::new(),
        more: false,
    });
    s[FLAGS] = FLAG_ABSENT;
    assert!(matches!(
        decode_response(&s, &L),
        Err(WireError::BadFlags { tag: 12, .. })
    ));
    s[FLAGS] = 0x80;
    assert!(matches!(
        decode_response(&s, &L),
        Err(WireError::BadFlags { .. })
    ));
}

#[test]
fn cas_expecting_absent_and_a_value_is_refused() {
    let mut s = enc_req(Op::Cas {
        key: b("k"),
        expected: Some(b("old")),
        new: b("n"),
    });
    s[FLAGS] = FLAG_ABSENT;
    assert_eq!(
        decode_request(&s, &L),
        Err(WireError::AbsentWithValue { len: 3 })
    );
    let mut s = enc_resp(Reply::Mismatch(Some(b("v"))));
    s[FLAGS] = FLAG_ABSENT;
    assert_eq!(
        decode_response(&s, &L),
        Err(WireError::AbsentWithValue { len: 1 })
    );
    // Absent and present-but-empty are different messages.
    assert_ne!(
        enc_req(Op::Cas {
            key: b("k"),
            expected: None,
            new: b("n")
        }),
        enc_req(Op::Cas {
            key: b("k"),
            expected: Some(Vec::new()),
            new: b("n")
        })
    );
}

#[test]
fn empty_keys_are_refused() {
    let s = enc_req(Op::Read { key: Vec::new() });
    assert_eq!(decode_request(&s, &L), Err(WireError::EmptyKey));
    let s = enc_resp(Reply::Entries {
        pairs: vec![(b("a"), b("1")), (Vec::new(), b("2"))],
        more: false,
    });
    assert_eq!(decode_response(&s, &L), Err(WireError::EmptyKey));
}

#[test]
fn zero_counts_and_stat_ids_are_refused() {
    for op in [
        Op::ThreadsStart { n: 0 },
        Op::Scan {
            cursor: 3,
            count: 0,
        },
    ] {
        assert_eq!(decode_request(&enc_req(op), &L), Err(WireError::ZeroCount));
    }
    let s = enc_resp(Reply::Stats {
        stats: vec![Stat {
            id: StatId(0),
            index: 0,
            value: 0,
        }],
        more: false,
    });
    assert_eq!(decode_response(&s, &L), Err(WireError::ZeroStatId));
}

#[test]
fn unknown_error_codes_and_fields_are_refused() {
    let mut s = enc_resp(Reply::Error(ErrorCode::Overflow));
    s[HEADER_LEN] = 10;
    assert_eq!(
        decode_response(&s, &L),
        Err(WireError::UnknownErrorCode(10))
    );
    let mut s = enc_resp(Reply::Error(ErrorCode::TooLarge {
        what: Field::Key,
        len: 1,
        max: 0,
    }));
    s[HEADER_LEN + 2] = 3;
    assert_eq!(decode_response(&s, &L), Err(WireError::UnknownField(3)));
}

#[test]
fn lengths_beyond_the_input_are_refused() {
    // A key length that claims more than is left (but within the limit).
    let mut s = enc_req(Op::Read { key: b("abc") });
    s[HEADER_LEN] = 4;
    assert_eq!(
        decode_request(&s, &L),
        Err(WireError::Truncated {
            at: HEADER_LEN + 4,
            need: 4,
            have: 3
        })
    );
    // A list count that cannot fit: refused before anything is reserved.
    let mut s = enc_resp(Reply::Keys {
        cursor: 0,
        keys: vec![b("a")],
        more: false,
    });
    s[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_response(&s, &Limits::UNLIMITED),
        Err(WireError::Truncated { .. })
    ));
    let mut s = enc_resp(Reply::Stats {
        stats: Vec::new(),
        more: false,
    });
    s[HEADER_LEN..].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        decode_response(&s, &L),
        Err(WireError::Truncated {
            need: 14,
            have: 0,
            ..
        })
    ));
    // A fixed-size field cut short.
    let s = enc_req(Op::Print { bucket: 1 });
    assert!(matches!(
        decode_request(&s[..s.len() - 1], &L),
        Err(WireError::Truncated {
            need: 8,
            have: 7,
            ..
        })
    ));
}

#[test]
fn every_strict_prefix_is_refused() {
    for op in all_ops() {
        let s = enc_req(op);
        for n in 0..s.len() {
            assert!(decode_request(&s[..n], &L).is_err(), "{n} of {s:?}");
        }
    }
    for reply in all_replies() {
        let s = enc_resp(reply);
        for n in 0..s.len() {
            assert!(decode_response(&s[..n], &L).is_err(), "{n} of {s:?}");
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for op in all_ops() {
        let mut s = enc_req(op);
        let at = s.len();
        s.push(0);
        assert_eq!(
            decode_request(&s, &L),
            Err(WireError::TrailingBytes { at, extra: 1 })
        );
    }
    for reply in all_replies() {
        let mut s = enc_resp(reply);
        let at = s.len();
        s.extend_from_slice(&[0; 5]);
        assert_eq!(
            decode_response(&s, &L),
            Err(WireError::TrailingBytes { at, extra: 5 })
        );
    }
}

#[test]
fn fields_over_the_limits_are_too_large() {
    let small = Limits {
        max_key: 2,
        max_value: 3,
    };
    let s = enc_req(Op::Insert {
        key: b("abc"),
        value: b("v"),
    });
    let e = decode_request(&s, &small);
    assert_eq!(
        e,
        Err(WireError::TooLarge {
            what: Field::Key,
            len: 3,
            max: 2
        })
    );
    assert_eq!(
        e.unwrap_err().reply_code(),
        ErrorCode::TooLarge {
            what: Field::Key,
            len: 3,
            max: 2
        }
    );
    let s = enc_req(Op::Cas {
        key: b("ab"),
        expected: Some(b("abc")),
        new: b("abcd"),
    });
    assert_eq!(
        decode_request(&s, &small),
        Err(WireError::TooLarge {
            what: Field::Value,
            len: 4,
            max: 3
        })
    );
    // Exactly at the limit is fine.
    let s = enc_req(Op::Insert {
        key: b("ab"),
        value: b("abc"),
    });
    assert!(decode_request(&s, &small).is_ok());
    // A lying length over the limit is TooLarge (checked before the input's end), and
    // nothing is copied.
    let mut s = enc_req(Op::Read { key: b("a") });
    s[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_request(&s, &L),
        Err(WireError::TooLarge {
            what: Field::Key,
            len: u32::MAX,
            max: 64
        })
    );
    assert!(matches!(
        decode_request(&s, &Limits::UNLIMITED),
        Err(WireError::Truncated { .. })
    ));
    // Responses are held to the limits too.
    let s = enc_resp(Reply::Entries {
        pairs: vec![(b("ab"), b("abcd"))],
        more: false,
    });
    assert_eq!(
        decode_response(&s, &small),
        Err(WireError::TooLarge {
            what: Field::Value,
            len: 4,
            max: 3
        })
    );
    // Every other decode error is answered Malformed.
    assert_eq!(WireError::EmptyKey.reply_code(), ErrorCode::Malformed);
}
