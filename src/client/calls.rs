//! The blocking calls: one operation submitted and waited for, its answer as a plain value.

use super::lone::Sink;
use super::{Client, ClientError, Keys, Outcome, Pairs, Ticket, check_view_limits};
use crate::stats::Stats;
use crate::wire::{Op, OpView};

impl Client {
    /// Submit `op`, wait for its answer; a refusal is an error.
    pub fn call(&self, op: Op) -> Result<Outcome, ClientError> {
        self.call_view(op.view())
    }

    /// [`Client::call`] of an operation whose keys and values are borrowed.
    pub fn call_view(&self, op: OpView<'_>) -> Result<Outcome, ClientError> {
        self.call_sink(op, Sink::Outcome)
    }

    /// [`Client::call_view`], a value answer put where `sink` says when the call is lone: a
    /// lone call if it can be one, else booked and waited for on the shared path.
    fn call_sink(&self, op: OpView<'_>, sink: Sink<'_>) -> Result<Outcome, ClientError> {
        check_view_limits(&op, &self.info.limits)?;
        let outcome = match self.call_lone(&op, sink) {
            Some(result) => result?,
            None => {
                let (id, leading) = self.submit_leading(std::iter::once(op), true)?;
                self.wait_as(Ticket(id), leading)?
            }
        };
        match outcome {
            Outcome::Refused(e) => Err(ClientError::Refused(e)),
            o => Ok(o),
        }
    }

    /// Create or replace `key` → `value`; returns the previous value (`None`: created).
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::Insert { key, value })? {
            Outcome::Created => Ok(None),
            Outcome::Replaced(v) => Ok(Some(v)),
            o => Err(unexpected(o)),
        }
    }

    /// Read `key`'s value.
    pub fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::Read { key })? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    /// Read `key`'s value into `buf` (replacing its contents; its allocation is reused when
    /// large enough). Returns whether the key was found (`buf` is then empty if not). A call
    /// made while no other thread of this client waits copies the value from the response
    /// record into `buf` and allocates nothing for it; otherwise the value is copied from the
    /// answer the shared path assembles.
    pub fn read_into(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<bool, ClientError> {
        buf.clear();
        match self.call_sink(OpView::Read { key }, Sink::Buffer(buf))? {
            // (Empty when a lone call has put the value in `buf` already.)
            Outcome::Value(v) => {
                buf.extend_from_slice(&v);
                Ok(true)
            }
            Outcome::NotFound => {
                buf.clear();
                Ok(false)
            }
            o => Err(unexpected(o)),
        }
    }

    /// Delete `key`; returns its value (`None`: it was absent).
    pub fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::Delete { key })? {
            Outcome::Deleted(v) => Ok(Some(v)),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    /// Create `key` → `value` only if `key` is absent (Redis `SET NX`). `None`: created;
    /// `Some(current)`: it was present with that value and nothing changed.
    pub fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call_view(OpView::InsertNew { key, value })? {
            Outcome::Created => Ok(None),
            Outcome::Exists(v) => Ok(Some(v)),
            o => Err(unexpected(o)),
        }
    }

    /// Set `key` to `new` if its value is `expected` (`None`: if it is absent). `Ok(Ok(()))`:
    /// swapped; `Ok(Err(current))`: it held `current` (`None`: absent) and nothing changed.
    pub fn cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, ClientError> {
        match self.call_view(OpView::Cas { key, expected, new })? {
            Outcome::Swapped => Ok(Ok(())),
            Outcome::Mismatch(cur) => Ok(Err(cur)),
            o => Err(unexpected(o)),
        }
    }

    /// Add `delta` to the decimal integer stored at `key` (a missing key counts as 0, Redis
    /// `INCRBY`); returns the new value. A value that is not a decimal `i64`, or a result
    /// that overflows, is refused and changes nothing.
    pub fn add(&self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        match self.call_view(OpView::Add { key, delta })? {
            Outcome::Number(n) => Ok(n),
            o => Err(unexpected(o)),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> Result<u64, ClientError> {
        match self.call(Op::Len)? {
            Outcome::Count(n) => Ok(n),
            o => Err(unexpected(o)),
        }
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> Result<bool, ClientError> {
        Ok(self.len()? == 0)
    }

    /// One step of a scan (Redis `SCAN`): keys from `cursor` on (0 starts), about `count` of
    /// them, and the cursor of the next step (0 when the scan is complete). A full scan
    /// returns every key present from its start to its end at least once.
    pub fn scan(&self, cursor: u64, count: u32) -> Result<(u64, Keys), ClientError> {
        match self.call(Op::Scan {
            cursor,
            count: count.max(1),
        })? {
            Outcome::Keys { cursor, keys } => Ok((cursor, keys)),
            o => Err(unexpected(o)),
        }
    }

    /// Every key, by a full scan (see [`Client::scan`]).
    pub fn keys(&self) -> Result<Keys, ClientError> {
        let (mut cursor, mut all) = (0, Vec::new());
        loop {
            let (next, keys) = self.scan(cursor, 1000)?;
            all.extend(keys);
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// The pairs of one bucket.
    pub fn print(&self, bucket: u64) -> Result<Pairs, ClientError> {
        match self.call(Op::Print { bucket })? {
            Outcome::Entries(e) => Ok(e),
            o => Err(unexpected(o)),
        }
    }

    /// Start `n` more server worker threads for this client; returns the count now.
    pub fn start_threads(&self, n: u32) -> Result<u32, ClientError> {
        if n == 0 {
            return Err(ClientError::Protocol(
                "thread start needs at least 1 thread".into(),
            ));
        }
        match self.call(Op::ThreadsStart { n })? {
            Outcome::Threads(c) => Ok(c),
            o => Err(unexpected(o)),
        }
    }

    /// Stop one of this client's server worker threads; returns the count now.
    pub fn stop_thread(&self) -> Result<u32, ClientError> {
        match self.call(Op::ThreadsStop)? {
            Outcome::Threads(c) => Ok(c),
            o => Err(unexpected(o)),
        }
    }

    /// The server's statistics: request counts, refusals, table size and memory, client slots
    /// and worker threads, sampled service times. They are taken after every request this
    /// client sent before has been answered, and before any it sends after.
    pub fn stats(&self) -> Result<Stats, ClientError> {
        match self.call(Op::Stats)? {
            Outcome::Stats(s) => Ok(Stats::from_stats(&s)),
            o => Err(unexpected(o)),
        }
    }

    /// Ask the server to shut down.
    pub fn quit(&self) -> Result<(), ClientError> {
        match self.call(Op::Quit)? {
            Outcome::Done => Ok(()),
            o => Err(unexpected(o)),
        }
    }
}

fn unexpected(o: Outcome) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {o:?}"))
}
