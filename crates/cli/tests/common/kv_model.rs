//! The sequential model of the key-value operations (insert, read, delete, insert-new, cas,
//! add) over a `HashMap<Vec<u8>, Vec<u8>>`: what the server must answer, written
//! independently of its code. Shared by the workload checkers and the property tests.

use shmkv::client::Outcome;
use shmkv::wire::{ErrorCode, Op};
use std::collections::HashMap;

/// The canonical decimal `i64` `v` spells, as the server's add reads one (Redis rules: an
/// optional `-`, digits without leading zeros, `0` alone for zero, no `-0`, no `+`, no
/// spaces), written here independently of the server's parser.
pub fn canonical_i64(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// The table as one client sees its own keys, its operations applied in order.
#[derive(Debug, Default, Clone)]
pub struct KvModel {
    pub map: HashMap<Vec<u8>, Vec<u8>>,
}

impl KvModel {
    /// Apply `op`; the outcome the server must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Insert { key, value } => self
                .map
                .insert(key.clone(), value.clone())
                .map_or(Outcome::Created, Outcome::Replaced),
            Op::Read { key } => self
                .map
                .get(key)
                .map_or(Outcome::NotFound, |v| Outcome::Value(v.clone())),
            Op::Delete { key } => self
                .map
                .remove(key)
                .map_or(Outcome::NotFound, Outcome::Deleted),
            Op::InsertNew { key, value } => match self.map.get(key) {
                Some(v) => Outcome::Exists(v.clone()),
                None => {
                    self.map.insert(key.clone(), value.clone());
                    Outcome::Created
                }
            },
            Op::Cas { key, expected, new } => {
                let current = self.map.get(key);
                if current != expected.as_ref() {
                    return Outcome::Mismatch(current.cloned());
                }
                self.map.insert(key.clone(), new.clone());
                Outcome::Swapped
            }
            Op::Add { key, delta } => {
                let current = match self.map.get(key) {
                    None => 0,
                    Some(v) => match canonical_i64(v) {
                        Some(n) => n,
                        None => return Outcome::Refused(ErrorCode::NotAnInteger),
                    },
                };
                let Some(n) = current.checked_add(*delta) else {
                    return Outcome::Refused(ErrorCode::Overflow);
                };
                self.map.insert(key.clone(), n.to_string().into_bytes());
                Outcome::Number(n)
            }
            other => panic!("the key-value model does not apply {other:?}"),
        }
    }
}
