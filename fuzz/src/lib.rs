//! Helpers shared by the fuzz targets: turning fuzzer bytes into slots and values, and the wire
//! layout of `shmkv::protocol` spelled out independently of the crate (which bytes carry a
//! decodable slot's meaning), so that a decoder reading the wrong bytes is caught.

use shmkv::protocol::{Request, Response, encode_request, encode_response};
use shmkv::region::{SLOT_SIZE, Slot};
use std::ops::Range;

const ID: Range<usize> = 0..8;
const TAG: usize = 8;
const CODE: Range<usize> = 10..12;
const INDEX: Range<usize> = 12..16;
const A: Range<usize> = 16..24;
const B: Range<usize> = 24..32;

/// The first 32 bytes of `data`, zero-padded.
pub fn slot_from(data: &[u8]) -> Slot {
    let mut s = [0u8; SLOT_SIZE];
    let n = data.len().min(SLOT_SIZE);
    s[..n].copy_from_slice(&data[..n]);
    s
}

/// Reads fuzzer bytes front to back; past the end every read is zero, so any input is a
/// complete program.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// The next 8 bytes as a little-endian u64 (zero-padded).
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_le_bytes(b)
    }

    /// The next 32 bytes as a slot (zero-padded).
    pub fn slot(&mut self) -> Slot {
        slot_from(self.take(SLOT_SIZE))
    }
}

fn mask_of(fields: &[Range<usize>]) -> [bool; SLOT_SIZE] {
    let mut m = [false; SLOT_SIZE];
    for r in fields {
        m[r.clone()].fill(true);
    }
    m
}

/// Which bytes carry a request with op tag `tag` (id, tag and the fields the op uses), or
/// `None` for a tag the layout does not define.
pub fn request_mask(tag: u8) -> Option<[bool; SLOT_SIZE]> {
    let head = [ID, TAG..TAG + 1];
    Some(mask_of(&match tag {
        1 => [&head[..], &[A, B]].concat(),
        2..=5 => [&head[..], &[A]].concat(),
        6..=8 => head.to_vec(),
        _ => return None,
    }))
}

/// Which bytes carry a response with reply tag `tag` and code/stat id `code` (bytes 10..12),
/// or `None` when the layout does not define it.
pub fn response_mask(tag: u8, code: u16) -> Option<[bool; SLOT_SIZE]> {
    let head = [ID, TAG..TAG + 1];
    Some(mask_of(&match tag {
        1 | 3 => head.to_vec(),
        2 | 4 | 6 | 7 | 10 => [&head[..], &[A]].concat(),
        5 => [&head[..], &[A, B]].concat(),
        8 => match code {
            1 | 2 => [&head[..], &[CODE, A, B]].concat(),
            3..=5 => [&head[..], &[CODE]].concat(),
            _ => return None,
        },
        9 if code != 0 => [&head[..], &[CODE, INDEX, A]].concat(),
        _ => return None,
    }))
}

/// The error code / stat id field of a slot.
pub fn code_of(s: &Slot) -> u16 {
    u16::from_le_bytes([s[CODE.start], s[CODE.start + 1]])
}

/// Panics unless `t` equals `s` on the masked bytes and is zero elsewhere.
pub fn assert_same_meaning(s: &Slot, t: &Slot, mask: &[bool; SLOT_SIZE]) {
    for i in 0..SLOT_SIZE {
        if mask[i] {
            assert_eq!(
                s[i], t[i],
                "byte {i} carries meaning: {s:?} re-encoded as {t:?}"
            );
        } else {
            assert_eq!(t[i], 0, "byte {i} is unused but encoded non-zero: {t:?}");
        }
    }
}

/// For a request slot `s` that decoded to `r`: re-encoding gives `s`'s meaningful bytes back
/// and zeros elsewhere, and decodes to `r` again.
pub fn check_request_reencodes(s: &Slot, r: &Request) {
    let mask = request_mask(s[TAG]).expect("a slot that decodes has a known op tag");
    let t = encode_request(r);
    assert_same_meaning(s, &t, &mask);
    assert_eq!(shmkv::protocol::decode_request(&t), Ok(*r));
}

/// For a response slot `s` that decoded to `r`: as [`check_request_reencodes`].
pub fn check_response_reencodes(s: &Slot, r: &Response) {
    let mask = response_mask(s[TAG], code_of(s)).expect("a slot that decodes is in the layout");
    let t = encode_response(r);
    assert_same_meaning(s, &t, &mask);
    assert_eq!(shmkv::protocol::decode_response(&t), Ok(*r));
}
