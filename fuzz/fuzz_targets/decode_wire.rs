//! Byte-string wire decoding (`shmkv::wire`) on arbitrary bytes: byte 0 picks the limits, the
//! rest is the message. Both decoders must return, never panic; `request_id` must be bytes 0..8
//! (zero-padded) whatever the rest holds; a message that decodes must re-encode to exactly its
//! bytes (the encoding is canonical) and decode to the same value again; and the limits only
//! ever turn an Ok into a `TooLarge`: what decodes under a limit decodes the same without one,
//! and what decodes without one decodes the same under a limit or is `TooLarge`. The borrowing
//! decoder of value responses (`value_response_view`) returns exactly what `decode_response`
//! decodes as a `Value`, and nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::wire::{
    Limits, Reply, Response, WireError, decode_request, decode_response, encode_request,
    encode_response, request_id, value_response_view,
};

const LIMITS: [Limits; 5] = [
    Limits::UNLIMITED,
    Limits {
        max_key: 16,
        max_value: 64,
    },
    Limits {
        max_key: 1,
        max_value: 0,
    },
    Limits {
        max_key: 0,
        max_value: 0,
    },
    Limits {
        max_key: 250,
        max_value: 4000,
    },
];

/// `limited` is the decode under some limits, `unlimited` the same bytes without them.
fn consistent<T: PartialEq + std::fmt::Debug>(
    limited: &Result<T, WireError>,
    unlimited: &Result<T, WireError>,
) {
    match (limited, unlimited) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Ok(a), Err(e)) => panic!("{a:?} under a limit but {e:?} without"),
        (Err(WireError::TooLarge { .. }), _) | (Err(_), Err(_)) => {}
        (Err(e), Ok(b)) => panic!("{b:?} without a limit but {e:?} under one"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (l, msg) = match data.split_first() {
        Some((&b, rest)) => (LIMITS[usize::from(b) % LIMITS.len()], rest),
        None => (Limits::UNLIMITED, data),
    };

    let mut id = [0u8; 8];
    let n = msg.len().min(8);
    id[..n].copy_from_slice(&msg[..n]);
    assert_eq!(request_id(msg), u64::from_le_bytes(id));

    let req = decode_request(msg, &l);
    if let Ok(r) = &req {
        assert_eq!(r.id, request_id(msg));
        let mut out = Vec::new();
        encode_request(r, &mut out);
        assert_eq!(out, msg, "{r:?} re-encodes differently");
        assert_eq!(r.encoded_len(), msg.len());
        assert_eq!(decode_request(&out, &l).as_ref(), Ok(r));
    }
    consistent(&req, &decode_request(msg, &Limits::UNLIMITED));

    let resp = decode_response(msg, &l);
    if let Ok(r) = &resp {
        let mut out = Vec::new();
        encode_response(r, &mut out);
        assert_eq!(out, msg, "{r:?} re-encodes differently");
        assert_eq!(r.encoded_len(), msg.len());
        assert_eq!(decode_response(&out, &l).as_ref(), Ok(r));
    }
    consistent(&resp, &decode_response(msg, &Limits::UNLIMITED));

    let view = value_response_view(msg, &l).map(|(id, v)| Response {
        id,
        reply: Reply::Value(v.to_vec()),
    });
    match &resp {
        Ok(r) if matches!(r.reply, Reply::Value(_)) => assert_eq!(view.as_ref(), Some(r)),
        _ => assert_eq!(view, None, "the value view disagrees with {resp:?}"),
    }
});
