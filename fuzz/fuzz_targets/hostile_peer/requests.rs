//! The request records the input chooses: valid requests (keys and values near and over the
//! limits), mutated ones and raw bytes.

use crate::LIMITS;
use crate::rig::Rig;
use shmkv::wire::{Op, Request, encode_request};
use shmkv_fuzz::Bytes;

impl Rig {
    /// A key: usually one of a few short ones (so that operations meet), sometimes empty or
    /// over the limit (refused).
    pub(crate) fn key(b: &mut Bytes) -> Vec<u8> {
        let k = b.u8();
        match k % 16 {
            0..=9 => vec![b'a' + k % 4],
            10..=12 => vec![b'a' + k % 4, b'0' + k / 16 % 4],
            13 => Vec::new(),
            14 => vec![b'k'; LIMITS.max_key as usize + 1 + usize::from(k / 16)],
            _ => vec![k; LIMITS.max_key as usize],
        }
    }

    /// A value: bytes from the input, a decimal number (for `add`), or over the limit.
    pub(crate) fn value(b: &mut Bytes) -> Vec<u8> {
        let v = b.u8();
        match v % 8 {
            0..=3 => b.take(usize::from(v / 8) % 12).to_vec(),
            4 | 5 => {
                let n = match v / 8 % 4 {
                    0 => i64::MAX - i64::from(b.u8()),
                    1 => i64::MIN + i64::from(b.u8()),
                    _ => i64::from(b.u8() as i8),
                };
                n.to_string().into_bytes()
            }
            6 => vec![b'v'; LIMITS.max_value as usize],
            _ => vec![b'v'; LIMITS.max_value as usize + 1 + usize::from(v / 8)],
        }
    }

    pub(crate) fn valid_op(b: &mut Bytes) -> Op {
        let kind = b.u8();
        match kind % 18 {
            0 | 1 => Op::Insert {
                key: Self::key(b),
                value: Self::value(b),
            },
            2 | 3 => Op::Read { key: Self::key(b) },
            4 => Op::Delete { key: Self::key(b) },
            5 => Op::InsertNew {
                key: Self::key(b),
                value: Self::value(b),
            },
            6 | 7 => Op::Cas {
                key: Self::key(b),
                expected: (kind & 0x80 == 0).then(|| Self::value(b)),
                new: Self::value(b),
            },
            8 | 9 => Op::Add {
                key: Self::key(b),
                delta: match b.u8() % 4 {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    _ => i64::from(b.u8() as i8),
                },
            },
            10 => Op::Len,
            11 => Op::Scan {
                cursor: u64::from(b.u8() % 6),
                count: u32::from(b.u8() % 5),
            },
            12 => Op::Print {
                bucket: match b.u8() {
                    255 => u64::MAX,
                    n => u64::from(n % 6),
                },
            },
            13 => Op::ThreadsStart {
                n: u32::from(b.u8() % 6),
            },
            14 => Op::ThreadsStop,
            15 => Op::Quit,
            _ => Op::Stats,
        }
    }

    /// An encoded request: valid (its fields may still be over the limits, or a count 0).
    pub(crate) fn valid_request(&mut self, b: &mut Bytes) -> Vec<u8> {
        let op = Self::valid_op(b);
        self.next_id += 1;
        let mut out = Vec::new();
        encode_request(
            &Request {
                id: self.next_id,
                op,
            },
            &mut out,
        );
        out
    }

    /// An encoded valid request with one change: a byte flipped, the end cut, or bytes added.
    pub(crate) fn mutated_request(&mut self, b: &mut Bytes) -> Vec<u8> {
        let mut r = self.valid_request(b);
        let at = usize::from(b.u8());
        let x = b.u8();
        match x % 3 {
            0 => {
                let i = at % r.len();
                r[i] ^= x | 1;
            }
            1 => r.truncate(at % r.len()),
            _ => r.extend(std::iter::repeat_n(x, at % 4 + 1)),
        }
        r
    }

    /// Any bytes as a request record.
    pub(crate) fn raw_request(b: &mut Bytes) -> Vec<u8> {
        let n = usize::from(b.u8());
        b.take(n).to_vec()
    }

    /// One request record of any of the three sorts.
    pub(crate) fn any_request(&mut self, b: &mut Bytes) -> Vec<u8> {
        match b.u8() % 4 {
            0 => Self::raw_request(b),
            1 => self.mutated_request(b),
            _ => self.valid_request(b),
        }
    }
}
