//! Attaching to a hostile session object: the object's bytes are the fuzzer's input (0 to
//! `MAX_OBJECT` bytes), written into a fresh sealed object (`Mapping::create_sealed`) through
//! the mapping's atomics, as a client that scribbles on its object would. `Object::validate` on
//! a second mapping of it must return Ok or a `HeaderError`, never panic, and decide as
//! `open_object` (the client's way in: seals and size checked, then the header) does. When it
//! accepts the header, both rings built from it must work without panicking or touching memory
//! outside the mapping (the sanitizer checks), whatever their control blocks hold. An accepted
//! header must also round-trip: `create_object` with the fields it was read as writes the same
//! header bytes, `open_object` reads the same fields back, and a slot goes through each ring of
//! that fresh object intact, from one mapping to the other. (Objects are never reused, so there
//! is no reset to check.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::channel::{
    HeaderInfo, MAX_RING, MIN_RING, Object, ObjectParams, STATE_RUNNING, create_object, object_len,
    open_object,
};
use shmkv::protocol::decode_request;
use shmkv::region::{RingMem, SLOT_SIZE};
use shmkv::ring::{Consumer, Producer, RingError};
use shmkv::shm::Mapping;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Largest object tried: room for a header and two 64-slot rings.
const MAX_OBJECT: usize = 512 + 2 * 64 * SLOT_SIZE;

/// Header bytes whose meaning `Object::validate` reads and `create_object` writes: magic,
/// version, slot size, capacities, length (0..32), slot number and client count (32..40), and
/// the bucket count (48..56). (40..44 is unused, 44..48 the session state, which the server
/// writes and a client may change.)
const HEADER_FIELDS: [(usize, usize); 3] = [(0, 32), (32, 40), (48, 56)];

/// Copy `data` into the mapping through its atomics (whole words; 1 to 3 trailing bytes of an
/// object whose size is not a multiple of 4 stay zero).
fn fill(map: &Mapping, data: &[u8]) {
    let mut off = 0;
    while off + 8 <= data.len() {
        let w = u64::from_le_bytes(data[off..off + 8].try_into().unwrap());
        map.atomic_u64(off)
            .expect("in bounds")
            .store(w, Ordering::Relaxed);
        off += 8;
    }
    if off + 4 <= data.len() {
        let w = u32::from_le_bytes(data[off..off + 4].try_into().unwrap());
        map.atomic_u32(off)
            .expect("in bounds")
            .store(w, Ordering::Relaxed);
    }
}

/// The 64-bit words of `map` in `range`.
fn words(map: &Mapping, (start, end): (usize, usize)) -> Vec<u64> {
    (start..end)
        .step_by(8)
        .map(|off| {
            map.atomic_u64(off)
                .expect("header words lie inside every accepted object")
                .load(Ordering::Relaxed)
        })
        .collect()
}

/// A few pushes and pops on both halves of a ring whose counters may be anything: each must
/// return (Ok, WouldBlock or Corrupt), and a popped slot must decode without panicking. (Shared
/// memory lets a process build both halves: another process writes it anyway.)
fn exercise<M: RingMem + Clone>(mem: &M, data: &[u8]) {
    let mut p = Producer::new(mem.clone());
    let mut c = Consumer::new(mem.clone());
    for chunk in data.chunks(SLOT_SIZE).take(3) {
        let s = shmkv_fuzz::slot_from(chunk);
        match p.try_push(&s) {
            Ok(()) | Err(RingError::WouldBlock) | Err(RingError::Corrupt { .. }) => {}
            Err(e) => panic!("try_push without waiting returned {e:?}"),
        }
        match c.try_pop() {
            Ok(s) => {
                let _ = decode_request(&s);
            }
            Err(RingError::WouldBlock) | Err(RingError::Corrupt { .. }) => {}
            Err(e) => panic!("try_pop without waiting returned {e:?}"),
        }
    }
}

/// A fresh ring is empty and FIFO: what the producer (over one mapping) puts in, the consumer
/// (over another mapping of the same object) takes out unchanged.
fn round_trip<M: RingMem>(producer_mem: M, consumer_mem: M, data: &[u8]) {
    let mut p = Producer::new(producer_mem);
    let mut c = Consumer::new(consumer_mem);
    assert_eq!(c.try_pop(), Err(RingError::WouldBlock));
    let s = shmkv_fuzz::slot_from(data);
    p.try_push(&s).expect("a fresh ring has room");
    assert_eq!(c.try_pop(), Ok(s));
    assert_eq!(c.try_pop(), Err(RingError::WouldBlock));
}

/// Create a fresh object with the header `info` describes; check that it carries the same
/// header bytes as the accepted `fuzzed` object, that the client's way in reads `info` back,
/// and that a slot goes through each of its rings intact.
fn check_round_trip(fuzzed: &Mapping, info: &HeaderInfo, data: &[u8]) {
    let params = ObjectParams {
        index: info.index,
        clients: info.clients,
        req_capacity: info.req_capacity,
        resp_capacity: info.resp_capacity,
        buckets: info.buckets,
    };
    let (fd, server, created) =
        create_object(&params).expect("a header that validates is one the server can create");
    assert_eq!(created, *info, "create_object reads back what it wrote");
    let (client, opened) = open_object(&fd).expect("the client accepts a fresh object");
    assert_eq!(opened, *info);
    assert_eq!(client.state().load(Ordering::SeqCst), STATE_RUNNING);
    let raw = Mapping::open_sealed(&fd).expect("a fresh object maps");
    assert_eq!(raw.len(), fuzzed.len());
    for range in HEADER_FIELDS {
        assert_eq!(
            words(&raw, range),
            words(fuzzed, range),
            "header bytes {range:?}: validate read a field where create_object does not write it"
        );
    }
    // The client produces requests, the server responses.
    round_trip(
        client.request_ring(&opened),
        server.request_ring(&created),
        data,
    );
    round_trip(
        server.response_ring(&created),
        client.response_ring(&opened),
        data,
    );
}

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_OBJECT)];
    if data.is_empty() {
        // An empty object cannot be created: refused, not mapped.
        assert!(Mapping::create_sealed(0).is_err());
        return;
    }
    let (fd, writer) = Mapping::create_sealed(data.len()).expect("create a fresh sealed object");
    let reader = Arc::new(Mapping::open_sealed(&fd).expect("map the object just created"));
    assert_eq!(reader.len(), data.len());
    fill(&writer, data);

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

    let req = obj.request_ring(&info);
    let resp = obj.response_ring(&info);
    assert_eq!(req.capacity(), info.req_capacity as usize);
    assert_eq!(resp.capacity(), info.resp_capacity as usize);
    let _ = obj.state().load(Ordering::Relaxed);
    exercise(&req, data);
    exercise(&resp, data);
    obj.nudge_client();

    check_round_trip(&reader, &info, data);
});
