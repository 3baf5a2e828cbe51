//! The [`Checker`]: runs actions in pipelined batches against a target and checks every
//! answer (see the parent module's docs), with what it has seen ([`Coverage`]).

use super::{Action, BUCKETS, Expect, Model, Oversize, Target, Val, fill, resolve};
use proptest::prelude::*;
use shmkv::client::{ClientError, Outcome};
use shmkv::engine::Engine;
use shmkv::stats::Stats;
use shmkv::wire::{ErrorCode, Field, Limits, Op};
use std::collections::{HashMap, HashSet};

/// A full scan in progress.
#[derive(Debug, Default)]
struct ScanState {
    /// Where its next step starts.
    cursor: u64,
    /// Steps answered so far.
    steps: u64,
    /// Whether its first step's batch has been checked.
    started: bool,
    /// Keys returned so far.
    returned: HashSet<Vec<u8>>,
    /// Keys present throughout, so far (they must be returned).
    required: HashSet<Vec<u8>>,
    /// Keys present at some moment, so far (no other may be returned).
    ever: HashSet<Vec<u8>>,
}

/// What a submitted request's answer is checked against.
#[derive(Debug)]
enum Planned {
    /// Exactly this.
    Exact(Outcome),
    /// A count of keys within the batch's range.
    Len,
    /// The statistics at this point: entries and memory (checked when alone), workers.
    Stats {
        entries: u64,
        memory: u64,
        workers: u32,
    },
    /// A bucket's pairs.
    Print(u64),
    /// The full scan's next step.
    Scan,
    /// A lone scan step from this cursor.
    ScanFrom(u64),
}

/// How many answers of each kind a checker has seen (to show the actions reach them all).
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    /// Answers by kind (the outcome's variant, refusals by code).
    pub answers: HashMap<&'static str, u64>,
    /// Full scans completed.
    pub scans: u64,
    /// Client-side size refusals.
    pub refused_unsent: u64,
}

/// The kinds of answer (see [`Coverage::answers`]) that every engine gives, Redis included:
/// every outcome of the key-value operations, len and scan, and add's refusals.
pub const KEY_VALUE_ANSWERS: &[&str] = &[
    "created",
    "replaced",
    "value",
    "not found",
    "deleted",
    "exists",
    "swapped",
    "mismatch absent",
    "mismatch value",
    "number",
    "count",
    "keys",
    "refused: not an integer",
    "refused: overflow",
];

impl Coverage {
    /// Adds what `other` has seen to what this has.
    pub fn add(&mut self, other: Coverage) {
        for (k, n) in other.answers {
            *self.answers.entry(k).or_default() += n;
        }
        self.scans += other.scans;
        self.refused_unsent += other.refused_unsent;
    }

    /// The kinds of answer among `lists` that were never seen.
    pub fn missing(&self, lists: &[&[&'static str]]) -> Vec<&'static str> {
        lists
            .iter()
            .flat_map(|l| l.iter().copied())
            .filter(|k| self.answers.get(k).copied().unwrap_or(0) == 0)
            .collect()
    }
}

/// Runs actions against a [`Target`] in batches and checks every answer (see the module
/// docs).
pub struct Checker<'a> {
    /// The model.
    pub model: Model,
    /// The pool's keys.
    pub keys: Vec<Vec<u8>>,
    /// The server's limits.
    pub limits: Limits,
    /// The bucket of each key of the pool.
    pub bucket_of: &'a dyn Fn(&[u8]) -> u64,
    /// Keys this checker owns (answers of Print and Scan are filtered to them).
    pub mine: &'a dyn Fn(&[u8]) -> bool,
    /// Whether the client is alone on the server (then Len and Stats are exact).
    pub alone: bool,
    /// The client's slot (whose worker count Stats reports).
    pub slot: u32,
    /// What has been seen.
    pub coverage: Coverage,
    /// Whether a full scan must return each key at most once (shmkv: yes; Redis: no).
    pub scan_once: bool,
    /// Most steps a full scan may take (shmkv: one bucket at least per step).
    pub max_scan_steps: u64,
    scan: Option<ScanState>,
    ops: Vec<Op>,
    plans: Vec<Planned>,
    /// The model when the batch began.
    start: HashMap<Vec<u8>, Vec<u8>>,
    /// States the keys the batch touches take after each of its operations.
    after: HashMap<Vec<u8>, Vec<Option<Vec<u8>>>>,
}

/// A proptest failure unless `cond`.
fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(msg()))
    }
}

/// The kind of an answer, for [`Coverage`].
fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Replaced(_) => "replaced",
        Outcome::Value(_) => "value",
        Outcome::NotFound => "not found",
        Outcome::Deleted(_) => "deleted",
        Outcome::Exists(_) => "exists",
        Outcome::Swapped => "swapped",
        Outcome::Mismatch(None) => "mismatch absent",
        Outcome::Mismatch(Some(_)) => "mismatch value",
        Outcome::Number(_) => "number",
        Outcome::Count(_) => "count",
        Outcome::Keys { .. } => "keys",
        Outcome::Entries(_) => "entries",
        Outcome::Threads(_) => "threads",
        Outcome::Stats(_) => "stats",
        Outcome::Done => "done",
        Outcome::Refused(ErrorCode::BadBucket { .. }) => "refused: bad bucket",
        Outcome::Refused(ErrorCode::ThreadLimit { .. }) => "refused: thread limit",
        Outcome::Refused(ErrorCode::LastWorker) => "refused: last worker",
        Outcome::Refused(ErrorCode::NotAnInteger) => "refused: not an integer",
        Outcome::Refused(ErrorCode::Overflow) => "refused: overflow",
        Outcome::Refused(_) => "refused: other",
    }
}

impl<'a> Checker<'a> {
    /// A checker for a client with `workers` worker threads, over the pool `keys`.
    pub fn new(
        keys: Vec<Vec<u8>>,
        limits: Limits,
        workers: u32,
        bucket_of: &'a dyn Fn(&[u8]) -> u64,
        mine: &'a dyn Fn(&[u8]) -> bool,
        alone: bool,
    ) -> Checker<'a> {
        Checker {
            model: Model {
                kv: Default::default(),
                workers,
            },
            keys,
            limits,
            bucket_of,
            mine,
            alone,
            slot: 0,
            coverage: Coverage::default(),
            scan_once: true,
            max_scan_steps: BUCKETS,
            scan: None,
            ops: Vec::new(),
            plans: Vec::new(),
            start: HashMap::new(),
            after: HashMap::new(),
        }
    }

    /// The model's keys, sorted.
    pub fn model_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<_> = self.model.kv.map.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Reads every key of the pool through `e`: each must hold the model's value, or be absent
    /// as in the model.
    pub fn read_back(&self, e: &dyn Engine) -> Result<(), TestCaseError> {
        for k in &self.keys {
            let got = e.read(k).unwrap();
            prop_assert_eq!(got.as_ref(), self.model.kv.map.get(k), "key {:?}", k);
        }
        Ok(())
    }

    /// The key-value operation of a keyed action (a cas's `Current` resolved by the model).
    pub fn keyed_op(&self, a: &Action) -> Op {
        let key = |k: &usize| self.keys[k % self.keys.len()].clone();
        let v = |v: &Val| resolve(v, self.limits);
        match a {
            Action::Insert(k, x) => Op::Insert {
                key: key(k),
                value: v(x),
            },
            Action::Read(k) => Op::Read { key: key(k) },
            Action::Delete(k) => Op::Delete { key: key(k) },
            Action::InsertNew(k, x) => Op::InsertNew {
                key: key(k),
                value: v(x),
            },
            Action::Cas(k, e, x) => Op::Cas {
                key: key(k),
                expected: match e {
                    Expect::Absent => None,
                    Expect::Current => self.model.kv.map.get(&key(k)).cloned(),
                    Expect::Other(o) => Some(v(o)),
                },
                new: v(x),
            },
            Action::Add(k, d) => Op::Add {
                key: key(k),
                delta: *d,
            },
            other => panic!("not a key-value action: {other:?}"),
        }
    }

    /// The over-limit operation of `o` on pool key `k`, and the refusal it must get.
    fn oversize(&self, k: usize, o: Oversize) -> (Op, ClientError) {
        let key = self.keys[k % self.keys.len()].clone();
        let (max_key, max_value) = (self.limits.max_key, self.limits.max_value);
        let long = fill(max_value as usize + 1, 7);
        let too_long = |what, len: usize, max| ClientError::TooLarge {
            what,
            len: len as u64,
            max,
        };
        let value_refusal = too_long(Field::Value, long.len(), max_value);
        match o {
            Oversize::EmptyKey => (
                Op::Read { key: Vec::new() },
                too_long(Field::Key, 0, max_key),
            ),
            Oversize::LongKey => {
                let key = fill(max_key as usize + 1, 3);
                let e = too_long(Field::Key, key.len(), max_key);
                (Op::Add { key, delta: 1 }, e)
            }
            Oversize::LongValue => (Op::Insert { key, value: long }, value_refusal),
            Oversize::LongNewValue => (Op::InsertNew { key, value: long }, value_refusal),
            Oversize::LongCasNew => (
                Op::Cas {
                    key,
                    expected: None,
                    new: long,
                },
                value_refusal,
            ),
            Oversize::LongExpected => (
                Op::Cas {
                    key,
                    expected: Some(long),
                    new: Vec::new(),
                },
                value_refusal,
            ),
        }
    }

    /// Queue (or, for [`Action::Flush`] and [`Action::TooLarge`], do) one action.
    pub fn act(&mut self, t: &dyn Target, a: &Action) -> Result<(), TestCaseError> {
        if self.ops.is_empty() {
            self.start = self.model.kv.map.clone();
            self.after.clear();
        }
        match a {
            Action::Flush => return self.flush(t),
            Action::TooLarge(k, o) => {
                self.flush(t)?;
                let (op, want) = self.oversize(*k, *o);
                let got = t.refuse(&op);
                self.coverage.refused_unsent += 1;
                return ensure(got.as_ref() == Some(&want), || {
                    format!("{o:?}: want {want:?}, got {got:?}")
                });
            }
            _ if a.is_keyed() => {
                let op = self.keyed_op(a);
                let want = self.model.apply(&op);
                let key = op_key(&op).to_vec();
                let now = self.model.kv.map.get(&key).cloned();
                self.after.entry(key).or_default().push(now);
                self.plans.push(Planned::Exact(want));
                self.ops.push(op);
            }
            Action::ThreadsStart(n) => {
                let op = Op::ThreadsStart { n: *n };
                self.plans.push(Planned::Exact(self.model.apply(&op)));
                self.ops.push(op);
            }
            Action::ThreadsStop => {
                self.plans
                    .push(Planned::Exact(self.model.apply(&Op::ThreadsStop)));
                self.ops.push(Op::ThreadsStop);
            }
            Action::Stats => {
                self.plans.push(Planned::Stats {
                    entries: self.model.kv.map.len() as u64,
                    memory: self.model.memory(),
                    workers: self.model.workers,
                });
                self.ops.push(Op::Stats);
            }
            Action::Len => {
                self.plans.push(Planned::Len);
                self.ops.push(Op::Len);
            }
            Action::Print(b) => {
                self.plans.push(Planned::Print(*b));
                self.ops.push(Op::Print { bucket: *b });
            }
            Action::ScanFrom(c, n) => {
                self.plans.push(Planned::ScanFrom(*c));
                self.ops.push(Op::Scan {
                    cursor: *c,
                    count: *n,
                });
            }
            Action::Scan(n) => {
                // One step of the full scan per batch: the next needs this one's cursor.
                if self.plans.iter().any(|p| matches!(p, Planned::Scan)) {
                    self.flush(t)?;
                    return self.act(t, a);
                }
                let cursor = self.scan.get_or_insert_with(ScanState::default).cursor;
                self.plans.push(Planned::Scan);
                self.ops.push(Op::Scan { cursor, count: *n });
            }
            _ => unreachable!(),
        }
        Ok(())
    }

    /// Run `actions` and then complete the scan in progress, if any; every answer checked.
    pub fn run(&mut self, t: &dyn Target, actions: &[Action]) -> Result<(), TestCaseError> {
        for a in actions {
            self.act(t, a)?;
        }
        self.finish(t)
    }

    /// Submit what is queued, then complete the scan in progress (one step per batch).
    pub fn finish(&mut self, t: &dyn Target) -> Result<(), TestCaseError> {
        self.flush(t)?;
        while self.scan.is_some() {
            self.act(t, &Action::Scan(2))?;
            self.flush(t)?;
        }
        Ok(())
    }

    /// Submit the batch, wait for every answer, check them.
    pub fn flush(&mut self, t: &dyn Target) -> Result<(), TestCaseError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.ops);
        let plans = std::mem::take(&mut self.plans);
        let got = t.batch(&ops);
        // Every state each key takes during the batch: where it began, then after each
        // operation on it.
        let mut must: HashSet<Vec<u8>> = HashSet::new();
        let mut may: HashSet<Vec<u8>> = HashSet::new();
        let mut values: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        let keys: HashSet<&Vec<u8>> = self.start.keys().chain(self.after.keys()).collect();
        for k in keys {
            let states: Vec<Option<&Vec<u8>>> = std::iter::once(self.start.get(k))
                .chain(self.after.get(k).into_iter().flatten().map(Option::as_ref))
                .collect();
            if states.iter().all(Option::is_some) {
                must.insert(k.clone());
            }
            if states.iter().any(Option::is_some) {
                may.insert(k.clone());
            }
            values.insert(k.clone(), states.into_iter().flatten().cloned().collect());
        }
        if let Some(s) = &mut self.scan {
            if s.started {
                s.required.retain(|k| must.contains(k));
                s.ever.extend(may.iter().cloned());
            } else {
                s.required = must.clone();
                s.ever = may.clone();
                s.started = true;
            }
        }
        for ((op, plan), got) in ops.iter().zip(plans).zip(got) {
            *self.coverage.answers.entry(kind(&got)).or_default() += 1;
            self.check(op, plan, got, &must, &may, &values)?;
        }
        Ok(())
    }

    fn check(
        &mut self,
        op: &Op,
        plan: Planned,
        got: Outcome,
        must: &HashSet<Vec<u8>>,
        may: &HashSet<Vec<u8>>,
        values: &HashMap<Vec<u8>, Vec<Vec<u8>>>,
    ) -> Result<(), TestCaseError> {
        let mine = self.mine;
        let bucket_of = self.bucket_of;
        match plan {
            Planned::Exact(want) => {
                ensure(got == want, || {
                    format!(
                        "{}: want {}, got {}",
                        brief(op),
                        brief_o(&want),
                        brief_o(&got)
                    )
                })?;
            }
            Planned::Len => {
                let Outcome::Count(n) = got else {
                    return Err(TestCaseError::fail(format!("len answered {got:?}")));
                };
                if self.alone {
                    let (lo, hi) = (must.len() as u64, may.len() as u64);
                    ensure((lo..=hi).contains(&n), || {
                        format!("len {n}, not within {lo}..={hi}")
                    })?;
                }
            }
            Planned::Stats {
                entries,
                memory,
                workers,
            } => {
                let Outcome::Stats(s) = got else {
                    return Err(TestCaseError::fail(format!("stats answered {got:?}")));
                };
                let s = Stats::from_stats(&s);
                ensure(
                    s.buckets == BUCKETS
                        && s.max_key == u64::from(self.limits.max_key)
                        && s.max_value == u64::from(self.limits.max_value),
                    || format!("stats table and limits: {s:?}"),
                )?;
                let slot = s.slots.iter().find(|x| x.slot == self.slot);
                ensure(
                    slot.is_some_and(|x| x.workers == u64::from(workers)),
                    || {
                        format!(
                            "stats: slot {} should have {workers} workers: {slot:?}",
                            self.slot
                        )
                    },
                )?;
                if self.alone {
                    ensure(s.entries == entries && s.memory_used == memory, || {
                        format!(
                            "stats: entries {} memory {}, want {entries} and {memory}",
                            s.entries, s.memory_used
                        )
                    })?;
                }
            }
            Planned::Print(bucket) => {
                if bucket >= BUCKETS {
                    let want = Outcome::Refused(ErrorCode::BadBucket {
                        bucket,
                        buckets: BUCKETS,
                    });
                    return ensure(got == want, || format!("print {bucket}: {got:?}"));
                }
                let Outcome::Entries(pairs) = got else {
                    return Err(TestCaseError::fail(format!("print answered {got:?}")));
                };
                let mut shown = HashSet::new();
                for (k, v) in pairs.iter().filter(|(k, _)| mine(k)) {
                    ensure(shown.insert(k.clone()), || {
                        format!("print {bucket}: key {k:?} twice")
                    })?;
                    ensure(bucket_of(k) == bucket, || {
                        format!("print {bucket}: key {k:?} of bucket {}", bucket_of(k))
                    })?;
                    ensure(values.get(k).is_some_and(|vs| vs.contains(v)), || {
                        format!("print {bucket}: ({k:?}, {v:?}) never held")
                    })?;
                }
                for k in must.iter().filter(|k| bucket_of(k) == bucket) {
                    ensure(shown.contains(k), || {
                        format!("print {bucket}: key {k:?} missing")
                    })?;
                }
            }
            Planned::ScanFrom(cursor) => {
                let Outcome::Keys { cursor: next, keys } = got else {
                    return Err(TestCaseError::fail(format!("scan answered {got:?}")));
                };
                if cursor >= BUCKETS {
                    return ensure(next == 0 && keys.is_empty(), || {
                        format!("scan from {cursor} past the end: {next} {keys:?}")
                    });
                }
                ensure(next == 0 || (cursor < next && next < BUCKETS), || {
                    format!("scan from {cursor}: next cursor {next}")
                })?;
                for k in keys.iter().filter(|k| mine(k)) {
                    ensure(may.contains(k) && bucket_of(k) >= cursor, || {
                        format!("scan from {cursor}: key {k:?} (bucket {})", bucket_of(k))
                    })?;
                }
            }
            Planned::Scan => {
                let Outcome::Keys { cursor: next, keys } = got else {
                    return Err(TestCaseError::fail(format!("scan answered {got:?}")));
                };
                let s = self.scan.as_mut().expect("a scan in progress");
                s.steps += 1;
                for k in keys.into_iter().filter(|k| mine(k)) {
                    ensure(s.ever.contains(&k), || {
                        format!("scan returned {k:?}, never present during it")
                    })?;
                    let first = s.returned.insert(k.clone());
                    ensure(first || !self.scan_once, || {
                        format!("full scan returned {k:?} twice")
                    })?;
                }
                let max = self.max_scan_steps;
                ensure(s.steps <= max, || {
                    format!("scan not done after {} steps", s.steps)
                })?;
                if next == 0 {
                    let missing: Vec<_> = s.required.difference(&s.returned).collect();
                    ensure(missing.is_empty(), || {
                        format!("full scan missed keys present throughout: {missing:?}")
                    })?;
                    self.scan = None;
                    self.coverage.scans += 1;
                } else {
                    s.cursor = next;
                }
            }
        }
        Ok(())
    }
}

/// The key of a key-value operation.
pub fn op_key(op: &Op) -> &[u8] {
    match op {
        Op::Insert { key, .. }
        | Op::Read { key }
        | Op::Delete { key }
        | Op::InsertNew { key, .. }
        | Op::Cas { key, .. }
        | Op::Add { key, .. } => key,
        other => panic!("no key: {other:?}"),
    }
}

/// Bytes shortened for messages (maximum-size values are long).
fn short(b: &[u8]) -> String {
    if b.len() <= 24 {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        format!(
            "{:?}..({} bytes)",
            String::from_utf8_lossy(&b[..16]),
            b.len()
        )
    }
}

fn brief(op: &Op) -> String {
    match op {
        Op::Insert { key, value } => format!("insert {} {}", short(key), short(value)),
        Op::InsertNew { key, value } => format!("insert-new {} {}", short(key), short(value)),
        Op::Cas { key, expected, new } => format!(
            "cas {} {} {}",
            short(key),
            expected.as_deref().map_or("(absent)".into(), short),
            short(new)
        ),
        Op::Read { key } => format!("read {}", short(key)),
        Op::Delete { key } => format!("delete {}", short(key)),
        Op::Add { key, delta } => format!("add {} {delta}", short(key)),
        other => format!("{other:?}"),
    }
}

fn brief_o(o: &Outcome) -> String {
    match o {
        Outcome::Replaced(v) => format!("Replaced({})", short(v)),
        Outcome::Value(v) => format!("Value({})", short(v)),
        Outcome::Deleted(v) => format!("Deleted({})", short(v)),
        Outcome::Exists(v) => format!("Exists({})", short(v)),
        Outcome::Mismatch(Some(v)) => format!("Mismatch({})", short(v)),
        other => format!("{other:?}"),
    }
}

/// The bucket of each of `keys` on the shmkv server `c` is a client of (a `Client`, or the
/// shared-memory engine): insert them all, find them with Print, delete them (the server's
/// hasher is seeded at random).
pub fn learn_buckets(c: &dyn Engine, keys: &[Vec<u8>]) -> HashMap<Vec<u8>, u64> {
    for k in keys {
        c.insert(k, b"").unwrap();
    }
    let mut map = HashMap::new();
    for b in 0..BUCKETS {
        let Outcome::Entries(pairs) = c.execute(Op::Print { bucket: b }).unwrap() else {
            panic!("print {b}: not entries");
        };
        for (k, _) in pairs {
            map.insert(k, b);
        }
    }
    for k in keys {
        c.delete(k).unwrap();
    }
    assert!(
        keys.iter().all(|k| map.contains_key(k)),
        "a key in no bucket"
    );
    map
}
