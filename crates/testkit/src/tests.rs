//! Unit tests of this crate, by what they test, and the history-building helpers they share.

mod brute_force;
mod limits;
mod operations;
mod order;

use super::*;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
fn ins(c: u64, key: &str, value: &str, prev: Option<&str>, a: u64, z: u64) -> Call {
    let out = prev.map_or(Output::Created, |p| Output::Replaced(b(p)));
    let op = KvOp::Insert {
        key: b(key),
        value: b(value),
    };
    Call::new(c, op, out, a, z)
}
fn read(c: u64, key: &str, v: Option<&str>, a: u64, z: u64) -> Call {
    let out = v.map_or(Output::NotFound, |v| Output::Value(b(v)));
    Call::new(c, KvOp::Read { key: b(key) }, out, a, z)
}
fn del(c: u64, key: &str, v: Option<&str>, a: u64, z: u64) -> Call {
    let out = v.map_or(Output::NotFound, |v| Output::Deleted(b(v)));
    Call::new(c, KvOp::Delete { key: b(key) }, out, a, z)
}
/// Insert-new answering Created (`current` None) or Exists(current).
fn new(c: u64, key: &str, value: &str, current: Option<&str>, a: u64, z: u64) -> Call {
    let out = current.map_or(Output::Created, |v| Output::Exists(b(v)));
    let op = KvOp::InsertNew {
        key: b(key),
        value: b(value),
    };
    Call::new(c, op, out, a, z)
}
/// Cas answering Swapped (`Ok`) or Mismatch (`Err(current)`).
fn cas(
    c: u64,
    key: &str,
    expected: Option<&str>,
    value: &str,
    out: Result<(), Option<&str>>,
    a: u64,
    z: u64,
) -> Call {
    let out = match out {
        Ok(()) => Output::Swapped,
        Err(cur) => Output::Mismatch(cur.map(b)),
    };
    let op = KvOp::Cas {
        key: b(key),
        expected: expected.map(b),
        new: b(value),
    };
    Call::new(c, op, out, a, z)
}
fn add(c: u64, key: &str, delta: i64, out: Output, a: u64, z: u64) -> Call {
    Call::new(c, KvOp::Add { key: b(key), delta }, out, a, z)
}
fn num(n: i64) -> Output {
    Output::Number(n)
}

fn not_lin(h: &[Call]) -> Violation {
    match check(h) {
        Err(CheckError::NotLinearizable(v)) => *v,
        other => panic!("expected a violation, got {other:?}"),
    }
}
