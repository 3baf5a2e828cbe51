//! Attaching to a hostile session object (layout version 3, `shmkv::channel`): the fuzzer's
//! input describes the object, which is written into a fresh sealed object
//! (`Mapping::create_sealed`) through the mapping's atomics, as a server (or anyone who hands a
//! client a descriptor) that scribbles on it would.
//!
//! A real object is at least 512 + 2 × 64 KiB bytes, too large to be the input itself, so the
//! input is:
//!
//! | input bytes | meaning |
//! |---|---|
//! | 0 | flags: bit 0 set: the object's size is bytes 1..5 (mod [`MAX_OBJECT`]); clear: it is what the header's ring sizes make it ([`object_len`]) when they are powers of two up to [`MAX_FUZZ_RING`], else bytes 1..5 mod 4 KiB |
//! | 1..5 | a size (see flags) |
//! | 5..517 | the first 512 bytes of the object: the header (0..128) and both rings' control blocks (128..512) |
//! | then | up to 64 patches of 12 bytes each: a 4-byte offset (reduced mod the size, rounded down to 8) and an 8-byte word written there, e.g. a lying record header in a ring's data area |
//!
//! `Object::validate` on a second mapping of it must return Ok or a `HeaderError`, never
//! panic, and decide as `open_object` (the client's way in: seals and size checked, then the
//! header) does. An accepted header must describe the object: valid ring sizes whose total is
//! the object's size, limits whose longest request and answer part fit a record of their ring,
//! so that the rings the server would size for those limits (`ring_sizes`) are no larger. Both
//! rings built from it must work without panicking or touching memory outside the mapping
//! (the sanitizer checks), whatever their control blocks and data areas hold: pushes and pops
//! return Ok, `WouldBlock` or `Corrupt`, a record popped is at most the ring's largest payload
//! and decodes (as a request) without panicking. An accepted header must also round-trip:
//! `create_object` with the limits and fields it was read as gives an object whose header reads
//! back the same, with the same header bytes when its rings have the sizes the fuzzed one
//! declared, and a record goes through each ring of that fresh object intact, from one mapping
//! to the other. (Objects are never reused, so there is no reset to check.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::channel::{
    DATA, HeaderInfo, MAX_RING, MIN_RING, Object, ObjectParams, STATE_RUNNING, create_object,
    object_len, open_object, ring_sizes,
};
use shmkv::record::{RecordConsumer, RecordError, RecordMem, RecordProducer, max_payload};
use shmkv::shm::Mapping;
use shmkv::wire::decode_request;
use shmkv_fuzz::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Largest ring the input's header may size the object for: objects stay at most
/// `512 + 2 * 128 KiB` bytes, so that an execution stays cheap.
const MAX_FUZZ_RING: u32 = 1 << 17;
/// Largest object a raw size (flags bit 0) makes.
const MAX_OBJECT: u32 = DATA as u32 + 2 * MAX_FUZZ_RING;
/// Patches applied at most.
const MAX_PATCHES: usize = 64;

/// Header fields `Object::validate` reads and `create_object` writes, as (offset, bytes): magic,
/// version, ring sizes, length, slot number, client count, longest key, bucket count, longest
/// value. (12..16 and 60..128 are unused; 44..48 is the session state, which the server writes
/// and a client may change.)
const HEADER_FIELDS: [(usize, usize); 10] = [
    (0, 8),
    (8, 4),
    (16, 4),
    (20, 4),
    (24, 8),
    (32, 4),
    (36, 4),
    (40, 4),
    (48, 8),
    (56, 4),
];

/// Copy `data` into the mapping from offset `at` through its atomics (whole words; trailing
/// bytes that do not fill a word stay as they are).
fn fill(map: &Mapping, at: usize, data: &[u8]) {
    let mut off = 0;
    while off + 8 <= data.len() {
        let w = u64::from_le_bytes(data[off..off + 8].try_into().unwrap());
        if let Some(a) = map.atomic_u64(at + off) {
            a.store(w, Ordering::Relaxed);
        }
        off += 8;
    }
    if off + 4 <= data.len() {
        let w = u32::from_le_bytes(data[off..off + 4].try_into().unwrap());
        if let Some(a) = map.atomic_u32(at + off) {
            a.store(w, Ordering::Relaxed);
        }
    }
}

/// The value of header field `(offset, bytes)` of `map`.
fn field(map: &Mapping, (off, len): (usize, usize)) -> u64 {
    let missing = "header fields lie inside every accepted object";
    match len {
        8 => map.atomic_u64(off).expect(missing).load(Ordering::Relaxed),
        _ => u64::from(map.atomic_u32(off).expect(missing).load(Ordering::Relaxed)),
    }
}

/// The u32 at `off` of the input's header bytes (zero past their end).
fn header_u32(header: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = header.get(off + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

/// The object's size the input asks for (see the module docs).
fn object_size(flags: u8, raw: u32, header: &[u8]) -> usize {
    if flags & 1 != 0 {
        return (raw % MAX_OBJECT) as usize;
    }
    let ok = |c: u32| c.is_power_of_two() && (MIN_RING..=MAX_FUZZ_RING).contains(&c);
    let (req, resp) = (header_u32(header, 16), header_u32(header, 20));
    if ok(req) && ok(resp) {
        object_len(req, resp)
    } else {
        (raw % 4096) as usize
    }
}

/// A few pushes (of the payloads, cut to the ring's largest) and pops on both halves of a ring
/// whose counters and data may be anything: each must return Ok, `WouldBlock` or `Corrupt`; a record popped must be at most the largest
/// payload, and decode as a request without panicking. (Shared memory lets a process build
/// both halves: another process writes it anyway.)
fn exercise<M: RecordMem + Clone>(mem: &M, info: &HeaderInfo, payloads: &[&[u8]]) {
    let max = max_payload(mem.capacity());
    let mut p = RecordProducer::new(mem.clone()).ok();
    let mut c = RecordConsumer::new(mem.clone()).ok();
    let mut buf = Vec::new();
    for payload in payloads {
        let payload = &payload[..payload.len().min(max)];
        if let Some(p) = p.as_mut() {
            match p.try_push(payload) {
                Ok(()) | Err(RecordError::WouldBlock) | Err(RecordError::Corrupt { .. }) => {}
                Err(e) => panic!("try_push of {} bytes returned {e:?}", payload.len()),
            }
        }
        if let Some(c) = c.as_mut() {
            // Several records may wait (the fuzzed counters say so): take a few.
            for _ in 0..3 {
                match c.try_pop_into(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, buf.len());
                        assert!(n <= max, "a record of {n} bytes, over the maximum {max}");
                        let _ = decode_request(&buf, &info.limits);
                    }
                    Err(RecordError::WouldBlock) | Err(RecordError::Corrupt { .. }) => break,
                    Err(e) => panic!("try_pop_into returned {e:?}"),
                }
            }
        }
    }
}

/// A fresh ring is empty and FIFO: what the producer (over one mapping) puts in, the consumer
/// (over another mapping of the same object) takes out unchanged, also a record of the
/// largest payload.
fn round_trip<M: RecordMem>(producer_mem: M, consumer_mem: M, payload: &[u8]) {
    let max = max_payload(producer_mem.capacity());
    let mut p = RecordProducer::new(producer_mem).expect("a fresh ring");
    let mut c = RecordConsumer::new(consumer_mem).expect("a fresh ring");
    let mut buf = Vec::new();
    assert_eq!(c.try_pop_into(&mut buf), Err(RecordError::WouldBlock));
    let largest: Vec<u8> = payload.iter().copied().cycle().take(max).collect();
    for r in [payload, &largest[..]] {
        p.try_push(r).expect("a fresh ring has room");
        assert_eq!(c.try_pop_into(&mut buf), Ok(r.len()));
        assert_eq!(buf, r);
    }
    assert_eq!(c.try_pop_into(&mut buf), Err(RecordError::WouldBlock));
}

/// Create a fresh object for the limits and fields `info` describes; check that its header
/// reads back the same (the rings the server sizes for those limits), that it carries the
/// same header bytes as the accepted `fuzzed` object when the ring sizes agree, that the
/// client's way in reads it alike, and that a record goes through each of its rings intact.
fn check_round_trip(fuzzed: &Mapping, info: &HeaderInfo, payload: &[u8]) {
    let params = ObjectParams {
        index: info.index,
        clients: info.clients,
        buckets: info.buckets,
        limits: info.limits,
    };
    let (req, resp) = ring_sizes(&info.limits).expect("accepted limits fit some ring");
    assert!(
        req <= info.req_capacity && resp <= info.resp_capacity,
        "accepted rings of {}/{} bytes, smaller than the {req}/{resp} the server sizes for {:?}",
        info.req_capacity,
        info.resp_capacity,
        info.limits
    );
    let (fd, server, created) =
        create_object(&params).expect("a header that validates is one the server can create");
    assert_eq!(
        created,
        HeaderInfo {
            req_capacity: req,
            resp_capacity: resp,
            ..*info
        },
        "create_object reads back what it wrote"
    );
    let (client, opened) = open_object(&fd).expect("the client accepts a fresh object");
    assert_eq!(opened, created);
    assert_eq!(client.state().load(Ordering::SeqCst), STATE_RUNNING);
    if (req, resp) == (info.req_capacity, info.resp_capacity) {
        let raw = Mapping::open_sealed(&fd).expect("a fresh object maps");
        assert_eq!(raw.len(), fuzzed.len());
        for f in HEADER_FIELDS {
            assert_eq!(
                field(&raw, f),
                field(fuzzed, f),
                "header field {f:?}: validate read a field where create_object does not write \
                 it (or not the same way)"
            );
        }
    }
    // The client produces requests, the server responses.
    round_trip(
        client.request_ring(&opened),
        server.request_ring(&created),
        payload,
    );
    round_trip(
        server.response_ring(&created),
        client.response_ring(&opened),
        payload,
    );
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let raw = b.u32();
    let header = b.take(DATA);
    let len = object_size(flags, raw, header);
    if len == 0 {
        // An empty object cannot be created: refused, not mapped.
        assert!(Mapping::create_sealed(0).is_err());
        return;
    }
    let (fd, writer) = Mapping::create_sealed(len).expect("create a fresh sealed object");
    let reader = Arc::new(Mapping::open_sealed(&fd).expect("map the object just created"));
    assert_eq!(reader.len(), len);
    fill(&writer, 0, &header[..header.len().min(len)]);
    for _ in 0..MAX_PATCHES {
        if b.len() < 12 {
            break;
        }
        let off = (b.u32() as usize % len) & !7;
        fill(&writer, off, &b.u64().to_le_bytes());
    }

    let validated = Object::validate(reader.clone());
    // The client's way in decides alike.
    let opened = open_object(&fd);
    assert_eq!(
        validated.as_ref().map(|(_, info)| *info),
        opened.as_ref().map(|(_, info)| *info)
    );
    let Ok((obj, info)) = validated else {
        return;
    };
    // Accepted: the header must really describe this object.
    for cap in [info.req_capacity, info.resp_capacity] {
        assert!(cap.is_power_of_two() && (MIN_RING..=MAX_RING).contains(&cap));
    }
    assert_eq!(
        object_len(info.req_capacity, info.resp_capacity),
        reader.len()
    );
    let l = info.limits;
    assert!(l.max_key >= 1, "a key of at most 0 bytes accepted");
    assert!(l.max_request_len() <= max_payload(info.req_capacity as usize) as u64);
    assert!(l.max_response_len() <= max_payload(info.resp_capacity as usize) as u64);

    let req = obj.request_ring(&info);
    let resp = obj.response_ring(&info);
    assert_eq!(req.capacity(), info.req_capacity as usize);
    assert_eq!(resp.capacity(), info.resp_capacity as usize);
    let _ = obj.state().load(Ordering::Relaxed);
    // Payloads: pieces of the header bytes (some decode as requests), empty, and the largest.
    let largest = vec![0xA5u8; max_payload(req.capacity())];
    let payloads: [&[u8]; 4] = [&header[..header.len().min(40)], &[], header, &largest];
    exercise(&req, &info, &payloads);
    exercise(&resp, &info, &payloads);
    obj.nudge_client();

    check_round_trip(&reader, &info, &header[..header.len().min(64)]);
});
