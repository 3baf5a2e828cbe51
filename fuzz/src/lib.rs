//! Helpers shared by the fuzz targets: a reader that turns fuzzer bytes into a program of
//! actions ([`Bytes`]), and the check every wire message a server writes must pass
//! ([`canonical_response`]).

use shmkv::wire::{Limits, Response, decode_response, encode_response};

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

    /// Bytes not yet read.
    pub fn len(&self) -> usize {
        self.data.len()
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

    /// The next 2 bytes as a little-endian u16 (zero-padded).
    pub fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let t = self.take(2);
        b[..t.len()].copy_from_slice(t);
        u16::from_le_bytes(b)
    }

    /// The next 4 bytes as a little-endian u32 (zero-padded).
    pub fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let t = self.take(4);
        b[..t.len()].copy_from_slice(t);
        u32::from_le_bytes(b)
    }

    /// The next 8 bytes as a little-endian u64 (zero-padded).
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_le_bytes(b)
    }
}

/// Decode a response a server wrote (`bytes`, one record of its response ring) under
/// `limits`, and check that it is canonical: it re-encodes to exactly `bytes`. Panics
/// otherwise: an honest server never writes anything else, whatever its client did.
pub fn canonical_response(bytes: &[u8], limits: &Limits) -> Response {
    let r = decode_response(bytes, limits)
        .unwrap_or_else(|e| panic!("the server wrote a response that does not decode: {e}"));
    let mut again = Vec::with_capacity(bytes.len());
    encode_response(&r, &mut again);
    assert_eq!(again, bytes, "{r:?} re-encodes differently");
    r
}
