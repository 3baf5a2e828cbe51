//! `--url`: the same routines through `shmkv::engine::Engine` against each engine given
//! (shmkv's own server, a Redis server, a Redis Cluster), in the sync, pipelined and threads
//! modes, every answer checked as in the other runs, then their figures side by side.
//!
//! Every engine goes through the same code: sync sends one operation at a time, pipelined a
//! batch of `--pipeline` operations (`Engine::execute_all`) and waits for its answers before
//! sending the next, threads runs `--client-threads` synchronous threads on one shared engine.

use crate::app::Args;
use crate::limit::Limit;
use crate::modes::{Mode, Part, SAMPLE_EVERY, merge, new_hist, ns_since};
use crate::report::{Record, fmt_ns, fmt_rate, fmt_size, print_record, record_of};
use crate::server::{ServerChild, pid_cpu_ns_all, self_cpu_ns};
use crate::workload::{KeySet, Routine, Zipf, cap_seconds, check, deadline, key_bytes, plan};
use shmkv::engine::{self, Engine, EngineUrl};
use shmkv::wire::{Op, Outcome};
use std::path::Path;
use std::time::Instant;

/// `--url`'s entry for the bench's own shmkv-server child.
pub const OWN: &str = "shm://";

/// One engine of `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    /// The URL as given (`shm://` alone: the bench's own server).
    pub url: String,
    /// `"shm"`, `"redis"` or `"redis-cluster"`.
    pub kind: &'static str,
}

impl EngineSpec {
    /// Whether the bench starts this engine's server itself.
    pub fn own(&self) -> bool {
        self.url == OWN
    }

    /// The system column of its records: `"shmkv"` for shmkv's server, else the kind.
    fn system(&self) -> &'static str {
        if self.kind == "shm" {
            "shmkv"
        } else {
            self.kind
        }
    }
}

/// The engines of the `--url` values: each value is one URL or several separated by commas,
/// where a piece without `://` continues the URL before it (a cluster's further nodes:
/// `redis-cluster://h:1,h:2`). A malformed URL is an error naming it.
pub fn parse_urls(values: &[String]) -> Result<Vec<EngineSpec>, String> {
    let mut urls: Vec<String> = Vec::new();
    for value in values {
        for piece in value.split(',') {
            match urls.last_mut() {
                Some(last) if !piece.contains("://") && !last.ends_with(OWN) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => urls.push(piece.to_string()),
            }
        }
    }
    if let Some(twice) = urls
        .iter()
        .enumerate()
        .find_map(|(i, u)| urls[..i].contains(u).then_some(u))
    {
        return Err(format!("--url lists {twice} twice"));
    }
    urls.into_iter()
        .map(|url| {
            let kind = if url == OWN {
                "shm"
            } else {
                EngineUrl::parse(&url).map_err(|e| e.to_string())?.kind()
            };
            Ok(EngineSpec { url, kind })
        })
        .collect()
}

/// An engine connected for the run, and the server the bench started for it, if any.
struct Connected {
    engine: Box<dyn Engine>,
    server: Option<ServerChild>,
}

impl Connected {
    /// Connects to `spec`, starting the bench's own server first for `shm://`.
    fn open(spec: &EngineSpec, args: &Args, bin: Option<&Path>) -> Result<Connected, String> {
        if !spec.own() {
            let engine = engine::connect(&spec.url).map_err(|e| format!("{}: {e}", spec.url))?;
            return Ok(Connected {
                engine,
                server: None,
            });
        }
        let bin = bin.ok_or("no shmkv-server binary")?;
        let name = format!("bench-{}-url", std::process::id());
        let largest = args.value_size.iter().copied().max().unwrap_or(8);
        let threads = args.server_threads[0];
        // Two slots: the engine, and the client that stops the server.
        let server = ServerChild::start(bin, &name, args.buckets, 2, threads, largest)?;
        let engine = engine::connect(&format!("shm://{name}")).map_err(|e| e.to_string())?;
        Ok(Connected {
            engine,
            server: Some(server),
        })
    }

    /// The CPU time of the server so far, if the bench started it.
    fn server_cpu_ns(&self) -> Option<u64> {
        self.server.as_ref().map(|s| pid_cpu_ns_all(s.pid()))
    }

    /// Disconnects, and stops the bench's own server.
    fn close(self) -> Result<(), String> {
        drop(self.engine);
        self.server.map_or(Ok(()), ServerChild::stop)
    }
}

/// What `--url` prints of an engine.
fn describe(spec: &EngineSpec, args: &Args) -> String {
    if spec.own() {
        format!(
            "shm:// (the bench's own shmkv-server, {} worker thread{})",
            args.server_threads[0],
            if args.server_threads[0] == 1 { "" } else { "s" }
        )
    } else {
        spec.url.clone()
    }
}

/// The modes of `modes` that run through the engine trait (processes does not: its children
/// connect to shmkv's own server by name); says so when it is left out.
pub fn engine_modes(modes: &[Mode]) -> Vec<Mode> {
    if modes.contains(&Mode::Processes) {
        println!(
            "note: the processes mode is not run with --url (its client processes connect to shmkv's own server by name); run without --url for it"
        );
    }
    modes
        .iter()
        .copied()
        .filter(|m| *m != Mode::Processes)
        .collect()
}

/// Runs every value size × mode × routine against each engine of `specs`, in order, then
/// prints them side by side. `bin`: the shmkv-server binary, for `shm://`; `modes` as
/// [`engine_modes`] leaves them.
pub fn bench_engines(
    args: &Args,
    bin: Option<&Path>,
    specs: &[EngineSpec],
    (routines, modes): (&[Routine], &[Mode]),
    limit: Option<&Limit>,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    let first = out.len();
    for (i, spec) in specs.iter().enumerate() {
        println!("engine [{}] {}", i + 1, describe(spec, args));
        let conn = Connected::open(spec, args, bin)?;
        for &size in &args.value_size {
            let set = KeySet::new(args.keys, args.data_budget, size);
            let zipf = Zipf::new(set.keys, 0.99);
            for &mode in modes {
                for &routine in routines {
                    let z = (routine == Routine::Zipf).then_some(&zipf);
                    let srv0 = conn.server_cpu_ns();
                    let (p, secs) =
                        run_engine_mode(conn.engine.as_ref(), args, (routine, set), mode, z)
                            .map_err(|e| {
                                format!(
                                    "{}: {} {} with {size}-byte values: {e}",
                                    spec.url,
                                    routine.name(),
                                    mode.name()
                                )
                            })?;
                    let srv = conn
                        .server_cpu_ns()
                        .zip(srv0)
                        .map(|(b, a)| b.saturating_sub(a));
                    let threads = if spec.own() {
                        args.server_threads[0]
                    } else {
                        1
                    };
                    let mut r = record_of(
                        spec.system(),
                        (routine, set),
                        mode,
                        threads,
                        args,
                        &p,
                        secs,
                        srv,
                        limit,
                    );
                    r.engine = spec.url.clone();
                    print_record(&r);
                    out.push(r);
                }
            }
            if !spec.own() {
                clean_up(conn.engine.as_ref(), set, args.pipeline)
                    .map_err(|e| format!("{}: removing the bench's keys: {e}", spec.url))?;
            }
        }
        conn.close()?;
    }
    print_side_by_side(specs, args, &out[first..]);
    Ok(())
}

/// Deletes the key set from an engine the bench did not start (what a capped or absent
/// delete routine left).
fn clean_up(engine: &dyn Engine, set: KeySet, batch: usize) -> Result<(), String> {
    let ops: Vec<Op> = (0..set.keys)
        .map(|i| Op::Delete { key: key_bytes(i) })
        .collect();
    for chunk in ops.chunks(batch.max(1)) {
        for answer in engine.execute_all(chunk).map_err(|e| e.to_string())? {
            match answer.map_err(|e| e.to_string())? {
                Outcome::Deleted(_) | Outcome::NotFound => {}
                o => return Err(format!("unexpected answer to a delete: {o:?}")),
            }
        }
    }
    Ok(())
}

/// One routine in one mode through `engine`: the measurements and the run's seconds.
fn run_engine_mode(
    engine: &dyn Engine,
    args: &Args,
    (routine, set): (Routine, KeySet),
    mode: Mode,
    zipf: Option<&Zipf>,
) -> Result<(Part, f64), String> {
    let parts = if mode == Mode::Threads {
        args.client_threads.max(1) as u64
    } else {
        1
    };
    let plans: Vec<Vec<Op>> = (0..parts)
        .map(|i| plan(routine, set, i, parts, zipf))
        .collect();
    let batch = if mode == Mode::Pipelined {
        args.pipeline
    } else {
        1
    };
    let until = deadline(cap_seconds(routine, args.max_seconds));
    let cpu0 = self_cpu_ns();
    let t0 = Instant::now();
    let mut p = if let [ops] = plans.as_slice() {
        drive_engine(engine, ops, batch, until)?
    } else {
        let results: Vec<Result<Part, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = plans
                .iter()
                .map(|ops| s.spawn(move || drive_engine(engine, ops, 1, until)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a client thread panicked".into()))
                })
                .collect()
        });
        merge(results.into_iter().collect::<Result<Vec<Part>, String>>()?)
    };
    let secs = t0.elapsed().as_secs_f64();
    p.cpu_ns = self_cpu_ns() - cpu0;
    Ok((p, secs))
}

/// Runs `ops` through `engine` in batches of `batch` (1: synchronous), checking every answer;
/// stops sending after `until`. Latency runs from sending a batch to having its answers: of
/// every operation when synchronous, of every [`SAMPLE_EVERY`]th otherwise.
pub fn drive_engine(
    engine: &dyn Engine,
    ops: &[Op],
    batch: usize,
    until: Option<Instant>,
) -> Result<Part, String> {
    let batch = batch.max(1);
    let sample = if batch == 1 { 1 } else { SAMPLE_EVERY };
    let mut hist = new_hist();
    let mut done = 0u64;
    let mut next_look = 1024u64;
    for (n, chunk) in ops.chunks(batch).enumerate() {
        let t0 = Instant::now();
        let answers = engine.execute_all(chunk).map_err(|e| e.to_string())?;
        let dt = ns_since(t0);
        if answers.len() != chunk.len() {
            return Err(format!(
                "{} answers to {} operations",
                answers.len(),
                chunk.len()
            ));
        }
        for (i, (op, answer)) in chunk.iter().zip(answers).enumerate() {
            check(op, &answer.map_err(|e| e.to_string())?)?;
            if (n * batch + i) % sample == 0 {
                let _ = hist.record(dt);
            }
        }
        done += chunk.len() as u64;
        if done >= next_look {
            next_look = done + 1024;
            if until.is_some_and(|u| Instant::now() > u) {
                break;
            }
        }
    }
    Ok(Part {
        ops: done,
        hist,
        cpu_ns: 0,
    })
}

/// One engine's cell of the side-by-side table: ratio first, then ops/s, p50 and p99.
fn cell(r: &Record, base: &Record) -> String {
    let ratio = r.ops_per_sec() / base.ops_per_sec().max(1e-9);
    format!(
        "{:>6} {:>9}/s p50 {:>9} p99 {:>9}",
        format!("{ratio:.2}×"),
        fmt_rate(r.ops_per_sec()),
        fmt_ns(r.p50_ns),
        fmt_ns(r.p99_ns)
    )
}

/// The engines' figures side by side: a row per routine, mode and value size, a column per
/// engine, each its ops/s as a ratio to the first engine's, then ops/s, p50 and p99.
fn print_side_by_side(specs: &[EngineSpec], args: &Args, records: &[Record]) {
    println!(
        "\nside by side (through shmkv's Engine trait; ×: ops/s as a ratio to engine [1]; latency from sending a batch to having its answers):"
    );
    for (i, spec) in specs.iter().enumerate() {
        println!("  [{}] {}", i + 1, describe(spec, args));
    }
    let mut header = format!("  {:<7} {:<10} {:>6}", "routine", "mode", "value");
    for i in 0..specs.len() {
        header.push_str(&format!("   {:<46}", format!("[{}]", i + 1)));
    }
    println!("{}", header.trim_end());
    let Some(first) = specs.first() else { return };
    for base in records.iter().filter(|r| r.engine == first.url) {
        let mut line = format!(
            "  {:<7} {:<10} {:>6}",
            base.routine,
            base.mode.name(),
            fmt_size(base.value_size)
        );
        for spec in specs {
            let same = records.iter().find(|r| {
                r.engine == spec.url
                    && r.routine == base.routine
                    && r.mode == base.mode
                    && r.value_size == base.value_size
            });
            let text = same.map_or("-".to_string(), |r| cell(r, base));
            line.push_str(&format!("   {text:<46}"));
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(values: &[&str]) -> Result<Vec<(String, &'static str)>, String> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        parse_urls(&values).map(|v| v.into_iter().map(|s| (s.url, s.kind)).collect())
    }

    #[test]
    fn url_lists_split_on_commas_but_keep_a_clusters_nodes() {
        let got = urls(&["shm://,redis://h:1,redis-cluster://a:1,b:2,c:3,shm://x"]).unwrap();
        let want = [
            ("shm://", "shm"),
            ("redis://h:1", "redis"),
            ("redis-cluster://a:1,b:2,c:3", "redis-cluster"),
            ("shm://x", "shm"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(u, k)| (u.to_string(), *k)).collect();
        assert_eq!(got, want);
        assert_eq!(
            urls(&["redis://h:1", "redis+unix:///tmp/r.sock"])
                .unwrap()
                .len(),
            2
        );
        assert!(urls(&["redis://h"]).unwrap_err().contains("HOST:PORT"));
        assert!(urls(&["shm://,h:1"]).unwrap_err().contains("not a URL"));
        assert!(urls(&["ftp://x"]).unwrap_err().contains("unknown scheme"));
        assert!(urls(&["shm://", "shm://"]).unwrap_err().contains("twice"));
    }
}
