//! The [`Model`]: what the server must answer in the checked run, from a `HashMap`, the
//! memory charged and the lane's worker count.

use crate::rig::Rig;
use crate::{BUCKETS, LIMITS, MAX_WORKERS};
use shmkv::serve::Step;
use shmkv::stats::Stats;
use shmkv::store::entry_cost;
use shmkv::wire::{Assembly, ErrorCode, Op, Outcome, Response, decode_request, request_id};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

/// Whether `v` is a canonical decimal `i64` as `add` reads it (optional `-`, no `+`, no
/// leading zeros, no spaces, not `-0`), and its value; spelled out here independently of the
/// store.
pub(crate) fn decimal(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

/// What the server must answer, from a `HashMap`, the memory charged and the lane's worker
/// count.
pub(crate) struct Model {
    pub(crate) map: HashMap<Vec<u8>, Vec<u8>>,
    /// Whether `map` holds the whole store (else Len, Scan, Print and Stats are not checked).
    pub(crate) whole: bool,
    pub(crate) used: u64,
    pub(crate) budget: u64,
    pub(crate) workers: u32,
    /// Requests sent and not yet served.
    pub(crate) pending: VecDeque<Vec<u8>>,
    /// Requests served whose answers have not all come (a lone worker may leave up to
    /// `PUBLISH_BATCH` answers unpublished while more requests wait), with whether serving
    /// them returned `Step::Exit`.
    pub(crate) served: VecDeque<(Vec<u8>, bool)>,
    /// Responses received and not yet matched to a served request.
    pub(crate) unmatched: VecDeque<Response>,
}

impl Model {
    pub(crate) fn new(rig: &Rig, whole: bool) -> Self {
        Model {
            map: HashMap::new(),
            whole,
            used: rig.store.memory_used(),
            budget: rig.store.budget(),
            workers: rig.s.lane.workers(),
            pending: VecDeque::new(),
            served: VecDeque::new(),
            unmatched: VecDeque::new(),
        }
    }

    /// Set `key` to `value` if the budget allows; the previous value, or the refusal.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ErrorCode> {
        let old = self
            .map
            .get(key)
            .map_or(0, |v| entry_cost(key.len(), v.len()));
        let new = entry_cost(key.len(), value.len());
        if new > old && self.used + (new - old) > self.budget {
            return Err(ErrorCode::OutOfMemory);
        }
        self.used = self.used - old + new;
        Ok(self.map.insert(key.to_vec(), value.to_vec()))
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.map.remove(key)?;
        self.used -= entry_cost(key.len(), v.len());
        Some(v)
    }

    pub(crate) fn bucket(&self, rig: &Rig, b: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(k, _)| rig.store.bucket_of(k) as u64 == b)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Check the complete answer `got` to request `raw`; returns whether the worker must exit.
    pub(crate) fn check(&mut self, raw: &[u8], got: Outcome, rig: &Rig) -> bool {
        let mut exit = false;
        let want = match decode_request(raw, &LIMITS) {
            Err(e) => Outcome::Refused(e.reply_code()),
            Ok(req) => match req.op {
                Op::Insert { key, value } => match self.put(&key, &value) {
                    Err(e) => Outcome::Refused(e),
                    Ok(None) => Outcome::Created,
                    Ok(Some(p)) => Outcome::Replaced(p),
                },
                Op::Read { key } => match self.map.get(&key) {
                    Some(v) => Outcome::Value(v.clone()),
                    None => Outcome::NotFound,
                },
                Op::Delete { key } => match self.remove(&key) {
                    Some(v) => Outcome::Deleted(v),
                    None => Outcome::NotFound,
                },
                Op::InsertNew { key, value } => match self.map.get(&key) {
                    Some(v) => Outcome::Exists(v.clone()),
                    None => match self.put(&key, &value) {
                        Err(e) => Outcome::Refused(e),
                        Ok(_) => Outcome::Created,
                    },
                },
                Op::Cas { key, expected, new } => {
                    let current = self.map.get(&key).cloned();
                    if current != expected {
                        Outcome::Mismatch(current)
                    } else {
                        match self.put(&key, &new) {
                            Err(e) => Outcome::Refused(e),
                            Ok(_) => Outcome::Swapped,
                        }
                    }
                }
                Op::Add { key, delta } => {
                    let current = match self.map.get(&key) {
                        None => Some(0),
                        Some(v) => decimal(v),
                    };
                    match current.map(|c| c.checked_add(delta)) {
                        None => Outcome::Refused(ErrorCode::NotAnInteger),
                        Some(None) => Outcome::Refused(ErrorCode::Overflow),
                        Some(Some(n)) => match self.put(&key, n.to_string().as_bytes()) {
                            Err(e) => Outcome::Refused(e),
                            Ok(_) => Outcome::Number(n),
                        },
                    }
                }
                Op::Len => {
                    assert!(self.whole);
                    Outcome::Count(self.map.len() as u64)
                }
                Op::Scan { cursor, count } => {
                    assert!(self.whole);
                    // Whole buckets from `cursor` on, until `count` keys or the end.
                    let mut next = cursor;
                    let mut keys = Vec::new();
                    while next < BUCKETS as u64 {
                        keys.extend(self.bucket(rig, next).into_iter().map(|(k, _)| k));
                        next += 1;
                        if keys.len() >= count as usize {
                            break;
                        }
                    }
                    if next >= BUCKETS as u64 {
                        next = 0;
                    }
                    match got {
                        Outcome::Keys {
                            cursor: c,
                            keys: mut k,
                        } => {
                            k.sort();
                            keys.sort();
                            assert_eq!((c, k), (next, keys), "scan {cursor} {count}");
                            return false;
                        }
                        other => panic!("scan {cursor} {count} answered {other:?}"),
                    }
                }
                Op::Print { bucket } if bucket >= BUCKETS as u64 => {
                    Outcome::Refused(ErrorCode::BadBucket {
                        bucket,
                        buckets: BUCKETS as u64,
                    })
                }
                Op::Print { bucket } => {
                    assert!(self.whole);
                    match got {
                        Outcome::Entries(mut pairs) => {
                            pairs.sort();
                            assert_eq!(pairs, self.bucket(rig, bucket), "bucket {bucket}");
                            return false;
                        }
                        other => panic!("print {bucket} answered {other:?}"),
                    }
                }
                Op::ThreadsStart { n } => {
                    match self.workers.checked_add(n).filter(|&t| t <= MAX_WORKERS) {
                        Some(t) => {
                            self.workers = t;
                            Outcome::Threads(t)
                        }
                        None => Outcome::Refused(ErrorCode::ThreadLimit {
                            current: self.workers,
                            max: MAX_WORKERS,
                        }),
                    }
                }
                Op::ThreadsStop => {
                    if self.workers > 1 {
                        self.workers -= 1;
                        exit = true;
                        Outcome::Threads(self.workers)
                    } else {
                        Outcome::Refused(ErrorCode::LastWorker)
                    }
                }
                Op::Quit => {
                    assert!(
                        rig.ctl.quit.load(Ordering::SeqCst),
                        "Quit reached the server"
                    );
                    Outcome::Done
                }
                Op::Stats => {
                    assert!(self.whole);
                    let longest = (0..BUCKETS as u64)
                        .map(|b| self.bucket(rig, b).len() as u64)
                        .max()
                        .unwrap_or(0);
                    let want = Stats {
                        entries: self.map.len() as u64,
                        buckets: BUCKETS as u64,
                        longest_bucket: longest,
                        memory_used: self.used,
                        memory_limit: self.budget,
                        ..Stats::default()
                    };
                    match got {
                        Outcome::Stats(list) => {
                            assert_eq!(Stats::from_stats(&list), want);
                            return false;
                        }
                        other => panic!("stats answered {other:?}"),
                    }
                }
            },
        };
        assert_eq!(got, want, "request {raw:?}");
        exit
    }

    /// Check every served request whose answer is complete among the responses received, in
    /// order; once all are, the store and the worker count must match the model.
    pub(crate) fn match_answers(&mut self, rig: &Rig) {
        while let Some((raw, exit_expected)) = self.served.front().cloned() {
            // An answer is its parts (`more` on all but the last), each with the request's id.
            let id = request_id(&raw);
            let mut assembly = Assembly::default();
            let mut n = 0;
            let mut outcome = None;
            for r in &self.unmatched {
                assert_eq!(r.id, id, "response carries the request's id");
                n += 1;
                if let Some(o) = assembly.add(r.reply.clone()).expect("parts of one kind") {
                    outcome = Some(o);
                    break;
                }
            }
            let Some(outcome) = outcome else {
                break;
            };
            for _ in 0..n {
                self.unmatched.pop_front();
            }
            self.served.pop_front();
            let exit = self.check(&raw, outcome, rig);
            assert_eq!(exit_expected, exit, "request {raw:?}");
        }
        if self.served.is_empty() {
            assert!(self.unmatched.is_empty(), "responses without a request");
            assert_eq!(rig.s.lane.workers(), self.workers);
            assert_eq!(rig.store.memory_used(), self.used);
            if self.whole {
                assert_eq!(rig.store.len(), self.map.len() as u64);
            }
        }
    }

    /// One checked serving step: the oldest requests sent are served (a burst; their answers
    /// may wait unpublished while more requests wait), or Idle when none is left, by which time
    /// every answer must have come.
    pub(crate) fn serve(&mut self, rig: &mut Rig) {
        let before = rig.s.lane.counters().requests();
        let step = rig.serve();
        // A step serves a burst: the request it took first and those already waiting behind
        // it (up to `serve::BURST`), in order; a lone worker whose burst was one request goes
        // on (`serve::CHAIN`), so a step takes up to CHAIN - 1 bursts of one and a last burst.
        // Only the last request can be the one that stops the worker.
        let taken = rig.s.lane.counters().requests() - before;
        self.unmatched.extend(rig.drain_checked());
        match step {
            Step::Idle => {
                assert!(self.pending.is_empty(), "idle with a request waiting");
                assert_eq!(taken, 0, "idle after taking requests");
            }
            Step::Served | Step::Exit => {
                assert!(
                    (1..=u64::from(shmkv::serve::CHAIN - 1 + shmkv::serve::BURST))
                        .contains(&taken),
                    "{taken} requests taken in one step"
                );
                for i in 0..taken {
                    let raw = self
                        .pending
                        .pop_front()
                        .expect("served a request never sent");
                    self.served
                        .push_back((raw, step == Step::Exit && i + 1 == taken));
                }
            }
            Step::Corrupt(e) => panic!("corrupt without hostile stores: {e}"),
        }
        self.match_answers(rig);
        if matches!(step, Step::Idle) {
            assert!(self.served.is_empty(), "idle with answers unpublished");
        }
    }

    /// Serve until every request sent is answered, then once more (Idle).
    pub(crate) fn flush(&mut self, rig: &mut Rig) {
        while !self.pending.is_empty() {
            self.serve(rig);
        }
        self.serve(rig);
    }
}
