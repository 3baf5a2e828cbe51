//! What runs the operations: the [`Target`] trait, for a client, an engine and the store.

use shmkv::client::{Client, ClientError, Outcome};
use shmkv::engine::{Engine, EngineError};
use shmkv::store::{Store, StoreError};
use shmkv::wire::{ErrorCode, Op};

/// What runs the operations.
pub trait Target {
    /// Submit `ops` together and return their answers in order (panics on a client error).
    fn batch(&self, ops: &[Op]) -> Vec<Outcome>;
    /// Submit `op` alone and return the client's refusal (`None`: it was sent).
    fn refuse(&self, op: &Op) -> Option<ClientError>;
}

impl Target for Client {
    fn batch(&self, ops: &[Op]) -> Vec<Outcome> {
        let tickets = self.submit_all(ops).expect("submit");
        tickets
            .into_iter()
            .map(|t| self.wait(t).expect("wait"))
            .collect()
    }

    fn refuse(&self, op: &Op) -> Option<ClientError> {
        match self.submit(op.clone()) {
            Err(e) => Some(e),
            Ok(t) => {
                let _ = self.wait(t);
                None
            }
        }
    }
}

/// An [`Engine`] as a [`Target`]: a batch is one `execute_all`.
pub struct EngineTarget<'a>(pub &'a dyn Engine);

impl Target for EngineTarget<'_> {
    fn batch(&self, ops: &[Op]) -> Vec<Outcome> {
        let kind = self.0.kind();
        self.0
            .execute_all(ops)
            .unwrap_or_else(|e| panic!("{kind}: batch refused: {e}"))
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{kind}: no answer: {e}")))
            .collect()
    }

    fn refuse(&self, op: &Op) -> Option<ClientError> {
        match self.0.execute_all(std::slice::from_ref(op)) {
            Err(EngineError::TooLarge(e)) => Some(e),
            Err(e) => panic!(
                "{}: {op:?} refused, but not as too large: {e}",
                self.0.kind()
            ),
            Ok(_) => None,
        }
    }
}

/// A store error as the server reports it.
fn code(e: StoreError) -> ErrorCode {
    match e {
        StoreError::OutOfMemory => ErrorCode::OutOfMemory,
        StoreError::NotAnInteger => ErrorCode::NotAnInteger,
        StoreError::Overflow => ErrorCode::Overflow,
        // (Only `add_within` gives it; these tests' limits hold any integer's text.)
        StoreError::TooLong { len } => ErrorCode::TooLarge {
            what: shmkv::wire::Field::Value,
            len: len as u64,
            max: u32::MAX,
        },
    }
}

impl Target for Store {
    /// Each operation through the store's own API, one after the other.
    fn batch(&self, ops: &[Op]) -> Vec<Outcome> {
        ops.iter()
            .map(|op| match op {
                Op::Insert { key, value } => match self.write(key).insert(value) {
                    Ok(None) => Outcome::Created,
                    Ok(Some(p)) => Outcome::Replaced(p),
                    Err(e) => Outcome::Refused(code(e)),
                },
                Op::Read { key } => self
                    .read(key)
                    .get()
                    .map_or(Outcome::NotFound, |v| Outcome::Value(v.to_vec())),
                Op::Delete { key } => self
                    .write(key)
                    .delete()
                    .map_or(Outcome::NotFound, Outcome::Deleted),
                Op::InsertNew { key, value } => match self.write(key).insert_new(value) {
                    Ok(None) => Outcome::Created,
                    Ok(Some(v)) => Outcome::Exists(v),
                    Err(e) => Outcome::Refused(code(e)),
                },
                Op::Cas { key, expected, new } => {
                    match self.write(key).cas(expected.as_deref(), new) {
                        Ok(Ok(())) => Outcome::Swapped,
                        Ok(Err(cur)) => Outcome::Mismatch(cur),
                        Err(e) => Outcome::Refused(code(e)),
                    }
                }
                Op::Add { key, delta } => match self.write(key).add(*delta) {
                    Ok(n) => Outcome::Number(n),
                    Err(e) => Outcome::Refused(code(e)),
                },
                Op::Len => Outcome::Count(self.len()),
                Op::Scan { cursor, count } => {
                    let (cursor, keys) = self.scan(*cursor, *count);
                    Outcome::Keys { cursor, keys }
                }
                Op::Print { bucket } => match self.print(*bucket) {
                    Some(pairs) => Outcome::Entries(pairs),
                    None => Outcome::Refused(ErrorCode::BadBucket {
                        bucket: *bucket,
                        buckets: self.bucket_count() as u64,
                    }),
                },
                other => panic!("not a store operation: {other:?}"),
            })
            .collect()
    }

    fn refuse(&self, _: &Op) -> Option<ClientError> {
        unreachable!("the store has no size limits to check")
    }
}
