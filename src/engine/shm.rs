//! The shared-memory engine: [`Client`] driving shmkv's own server.

use super::{Engine, EngineError};
use crate::Client;
use crate::wire::{Limits, Op, Outcome};

impl Engine for Client {
    fn kind(&self) -> &'static str {
        "shm"
    }

    fn limits(&self) -> Limits {
        Client::limits(self)
    }

    /// Submits the batch at once (one publication) and waits for every answer.
    fn execute_all(&self, ops: &[Op]) -> Result<Vec<Result<Outcome, EngineError>>, EngineError> {
        let mut out = Vec::with_capacity(ops.len());
        self.execute_each(ops, &mut |r| out.push(r))?;
        Ok(out)
    }

    /// Submits the batch at once and hands over each answer as it arrives.
    fn execute_each(
        &self,
        ops: &[Op],
        each: &mut dyn FnMut(Result<Outcome, EngineError>),
    ) -> Result<(), EngineError> {
        let tickets = self.submit_all(ops).map_err(|e| match e {
            e @ crate::ClientError::TooLarge { .. } => EngineError::TooLarge(e),
            e => EngineError::Shm(e),
        })?;
        for t in tickets {
            each(self.wait(t).map_err(EngineError::Shm));
        }
        Ok(())
    }
}
