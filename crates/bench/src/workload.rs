//! What the routines do: the key set, the keys and values (each value derived from its key,
//! so that every answer can be checked), the operations of each routine and the check.

use shmkv::client::Outcome;
use shmkv::wire::Op;

/// A routine: what the operations of one run are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routine {
    /// Insert every key.
    Insert,
    /// Read every key.
    Read,
    /// 80 % reads, 20 % inserts, uniform keys.
    Mixed,
    /// As mixed, with Zipf(0.99) keys.
    Zipf,
    /// Delete every key.
    Delete,
}

impl Routine {
    /// The routine's name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Routine::Insert => "insert",
            Routine::Read => "read",
            Routine::Mixed => "mixed",
            Routine::Zipf => "zipf",
            Routine::Delete => "delete",
        }
    }

    /// The routine of a name, if it is one.
    pub fn parse(s: &str) -> Option<Routine> {
        Some(match s {
            "insert" => Routine::Insert,
            "read" => Routine::Read,
            "mixed" => Routine::Mixed,
            "zipf" => Routine::Zipf,
            "delete" => Routine::Delete,
            _ => return None,
        })
    }
}

/// What one routine works on: how many keys, and how long each value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySet {
    /// Keys in the set.
    pub keys: u64,
    /// Bytes of each value.
    pub value_size: usize,
}

impl KeySet {
    /// The key set of values of `value_size` bytes: at most `keys`, and at most
    /// `data_budget / value_size` (at least 16).
    pub fn new(keys: u64, data_budget: u64, value_size: u64) -> KeySet {
        let fit = (data_budget / value_size.max(1)).max(16);
        KeySet {
            keys: keys.min(fit),
            value_size: value_size as usize,
        }
    }
}

/// The 8-byte key of index `i`.
pub fn key_bytes(i: u64) -> Vec<u8> {
    key_of(i).to_le_bytes().to_vec()
}

/// The key's number back from its bytes.
fn key_number(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_le_bytes(b)
}

/// The value every routine stores for `key`, `len` bytes long: its 8-byte pattern
/// repeated, so that any read can be checked.
pub fn value_bytes(key: u64, len: usize) -> Vec<u8> {
    let pat = value_of(key).to_le_bytes();
    let mut v = Vec::with_capacity(len);
    // Whole patterns, then the tail: fixed-size copies (a byte at a time cost the client
    // more than the server's work on 64 KiB values).
    for _ in 0..len / 8 {
        v.extend_from_slice(&pat);
    }
    v.extend_from_slice(&pat[..len % 8]);
    v
}

/// Whether `v` is the value of `key` for some size (a key set of another size may have
/// left it).
pub fn value_ok(key: &[u8], v: &[u8]) -> bool {
    let pat = value_of(key_number(key)).to_le_bytes();
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    // (A fold without early exit: the compiler turns it into wide compares.)
    let whole = chunks.fold(true, |ok, c| ok & (c == pat));
    whole && *tail == pat[..tail.len()]
}

/// The key of index `i`: spread over the u64 range (splitmix64).
pub fn key_of(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The value every routine stores for `key`, so that any read can be checked.
pub fn value_of(key: u64) -> u64 {
    key.rotate_left(17) ^ 0x5A5A_5A5A_5A5A_5A5A
}

/// xorshift64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Zipf(s) over ranks 0..n by inverse CDF (binary search in a precomputed table).
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Zipf(`s`) over `n` ranks.
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

/// The ops one client (thread or process) `part` of `parts` performs in a routine.
pub fn plan(routine: Routine, set: KeySet, part: u64, parts: u64, zipf: Option<&Zipf>) -> Vec<Op> {
    let keys = set.keys;
    let insert = |i: u64| Op::Insert {
        key: key_bytes(i),
        value: value_bytes(key_of(i), set.value_size),
    };
    match routine {
        Routine::Insert | Routine::Read | Routine::Delete => (part..keys)
            .step_by(parts as usize)
            .map(|i| match routine {
                Routine::Insert => insert(i),
                Routine::Read => Op::Read { key: key_bytes(i) },
                _ => Op::Delete { key: key_bytes(i) },
            })
            .collect(),
        Routine::Mixed | Routine::Zipf => {
            let mut rng = Rng(0x1234_5678_9ABC_DEF1 ^ (part + 1).wrapping_mul(0x9E37));
            (0..keys / parts)
                .map(|_| {
                    let i = match (routine, zipf) {
                        (Routine::Zipf, Some(z)) => z.sample(&mut rng),
                        _ => rng.next() % keys,
                    };
                    if rng.next() % 10 < 8 {
                        Op::Read { key: key_bytes(i) }
                    } else {
                        insert(i)
                    }
                })
                .collect()
        }
    }
}

/// The time cap of a run in seconds (infinite: none): none for insert, which must complete
/// (the later routines check every read against the full key set).
pub fn cap_seconds(routine: Routine, max_seconds: f64) -> f64 {
    if routine == Routine::Insert {
        f64::INFINITY
    } else {
        max_seconds
    }
}

/// The moment `seconds` from now, or `None` if that is too far to tell (no cap: `inf`,
/// `1e30`).
pub fn deadline(seconds: f64) -> Option<std::time::Instant> {
    let d = std::time::Duration::try_from_secs_f64(seconds).ok()?;
    std::time::Instant::now().checked_add(d)
}

/// Check one answer; the key set is fully present during read/mixed/zipf.
pub fn check(op: &Op, o: &Outcome) -> Result<(), String> {
    let ok = match (op, o) {
        (Op::Insert { .. }, Outcome::Created) => true,
        (Op::Insert { key, .. }, Outcome::Replaced(v))
        | (Op::Read { key }, Outcome::Value(v))
        | (Op::Delete { key }, Outcome::Deleted(v)) => value_ok(key, v),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("wrong answer: {op:?} -> {o:?}"))
    }
}

/// Check a read whose value was found and copied into `v` (`Client::read_into`).
pub fn check_read_into(op: &Op, v: &[u8]) -> Result<(), String> {
    match op {
        Op::Read { key } if value_ok(key, v) => Ok(()),
        _ => Err(format!(
            "wrong answer: {op:?} -> a value of {} bytes",
            v.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_check_as_written_and_any_changed_byte_is_caught() {
        for len in 0..40 {
            let key = key_of(len as u64).to_le_bytes();
            let v = value_bytes(key_number(&key), len);
            assert_eq!(v.len(), len);
            assert!(value_ok(&key, &v), "len {len}");
            for i in 0..len {
                let mut bad = v.clone();
                bad[i] ^= 1;
                assert!(!value_ok(&key, &bad), "len {len}, byte {i}");
            }
            let other = key_of(len as u64 + 1000).to_le_bytes();
            assert!(len == 0 || !value_ok(&other, &v), "len {len}, another key");
        }
    }
}
