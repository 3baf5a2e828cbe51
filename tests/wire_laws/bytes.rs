//! [`ArbBytes`]: bytes for the decoders, mostly valid encodings with a few mutations aimed at
//! what a decoder checks.

use crate::generators::{ArbRequest, ArbResponse};
use quickcheck::{Arbitrary, Gen};
use shmkv::wire::{encode_request, encode_response};

/// Bytes for the decoders: a valid request or response encoding with a few mutations (most
/// cases), or plain random bytes. Mutations aim at what a decoder checks: a 4-byte length or
/// count overwritten with a boundary, the tag, flags or reserved bytes, a cut, bytes added,
/// removed or flipped.
#[derive(Debug, Clone)]
pub(crate) struct ArbBytes(pub(crate) Vec<u8>);

fn mutate(v: &mut Vec<u8>, g: &mut Gen) {
    let at = |g: &mut Gen, v: &Vec<u8>| usize::arbitrary(g) % (v.len() + 1);
    match u8::arbitrary(g) % 9 {
        0 => {
            // A u32 (length or count) overwritten.
            let i = at(g, v);
            let x: u32 = *g
                .choose(&[0, 1, 2, 3, 5, 14, 255, 256, 1 << 16, u32::MAX - 1, u32::MAX])
                .unwrap();
            for (j, b) in x.to_le_bytes().into_iter().enumerate() {
                if let Some(s) = v.get_mut(i + j) {
                    *s = b;
                }
            }
        }
        1 => {
            if let Some(t) = v.get_mut(8) {
                *t = u8::arbitrary(g) % 18;
            }
        }
        2 => {
            if let Some(f) = v.get_mut(9) {
                *f = *g.choose(&[0, 1, 2, 3, 4, 0x80]).unwrap();
            }
        }
        3 => {
            if let Some(r) = v.get_mut(10 + usize::from(bool::arbitrary(g))) {
                *r = 1;
            }
        }
        4 => {
            let n = at(g, v);
            v.truncate(n);
        }
        5 => {
            for _ in 0..1 + usize::arbitrary(g) % 4 {
                v.push(u8::arbitrary(g));
            }
        }
        6 => {
            if !v.is_empty() {
                let i = usize::arbitrary(g) % v.len();
                v.remove(i);
            }
        }
        7 => {
            let i = at(g, v);
            v.insert(i, u8::arbitrary(g));
        }
        _ => {
            if !v.is_empty() {
                let i = usize::arbitrary(g) % v.len();
                v[i] ^= 1 << (u8::arbitrary(g) % 8);
            }
        }
    }
}

impl Arbitrary for ArbBytes {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut v = Vec::new();
        match u8::arbitrary(g) % 8 {
            0 => {
                let n = usize::arbitrary(g) % 64;
                v.extend((0..n).map(|_| u8::arbitrary(g)));
            }
            k => {
                if k % 2 == 0 {
                    encode_request(&ArbRequest::arbitrary(g).0, &mut v);
                } else {
                    encode_response(&ArbResponse::arbitrary(g).0, &mut v);
                }
                for _ in 0..u8::arbitrary(g) % 4 {
                    mutate(&mut v, g);
                }
            }
        }
        ArbBytes(v)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // Drop one byte at a time (from the end first), then zero one byte at a time.
        let v = self.0.clone();
        let drops = (0..v.len()).rev().map({
            let v = v.clone();
            move |i| {
                let mut t = v.clone();
                t.remove(i);
                ArbBytes(t)
            }
        });
        let zeros = (0..v.len()).filter(move |&i| v[i] != 0).map({
            let v = self.0.clone();
            move |i| {
                let mut t = v.clone();
                t[i] = 0;
                ArbBytes(t)
            }
        });
        Box::new(drops.chain(zeros))
    }
}
