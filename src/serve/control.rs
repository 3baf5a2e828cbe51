//! What the server provides a lane ([`Control`]), and the misbehaviour a lane reports to it.

#[cfg(doc)]
use super::Lane;
use crate::stats::Stats;
use crate::store::Store;
use crate::wire::Stat;
use std::time::Duration;

/// What the server provides a lane: its control operations and its view of the client.
pub trait Control: Sync {
    /// Start `n` more worker threads for this lane; the lane's worker count already includes
    /// them. Returns how many were started (the count of the others is taken back).
    fn start_workers(&self, n: u32) -> u32;
    /// Begin a graceful shutdown of the whole server.
    fn request_quit(&self);
    /// The server is shutting down: take no more requests.
    fn stopping(&self) -> bool;
    /// A waiting worker should stop waiting and return (shutdown, or the client detaching).
    /// Read with `SeqCst`; whoever makes it true then calls [`Lane::nudge`].
    fn cancel_wait(&self) -> bool;
    /// The client has gone (detached or died): its responses can be dropped.
    fn peer_gone(&self) -> bool;
    /// The client made a worker do something pointless, which a well-behaved client never
    /// does ([`Misbehavior`]). Returns true once the server has decided to drop the client: a
    /// worker waiting for room for its answers then stops waiting and drops them. The default
    /// ignores it.
    fn misbehaved(&self, what: Misbehavior) -> bool {
        let _ = what;
        false
    }
    /// Record the service time of a sampled request (one in [`Lane::sample_every`]). The
    /// default drops it.
    fn record_latency(&self, took: Duration) {
        let _ = took;
    }
    /// The statistics a Stats request answers with, in the order they are sent. Called with the
    /// asking lane's consumer lock held, once every earlier request of that client has been
    /// answered. The default reports the table only.
    fn stats(&self, store: &Store) -> Vec<Stat> {
        Stats {
            entries: store.len(),
            buckets: store.bucket_count() as u64,
            longest_bucket: store.longest_bucket(),
            memory_used: store.memory_used(),
            memory_limit: store.budget(),
            ..Stats::default()
        }
        .to_stats()
    }
}

/// Something pointless a client made a worker do (see [`Control::misbehaved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehavior {
    /// A request that does not decode, or carries a key or value over the limits (it is still
    /// answered, with Malformed or TooLarge).
    Malformed,
    /// The worker waiting for room for answers was woken, and there is still no room: only a
    /// client writing the response ring's futex word by hand does that.
    SpuriousWake,
}
