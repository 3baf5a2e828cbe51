//! The command line and the order of a run: check the server starts, measure the machine's
//! limit, run every server-thread count × value size × mode × routine against a fresh
//! server, then the memory, idle and Redis reports, the summary, JSON and plot.

use crate::engines::{EngineSpec, bench_engines, engine_modes, parse_urls};
use crate::limit::{self, Limit};
use crate::modes::{Mode, run_mode};
use crate::redis_cmp::{bench_redis, summarize_vs_redis};
use crate::report::{
    Record, plot, print_header, print_legend, print_limit, print_record, print_summary, record_of,
    write_json,
};
use crate::server::{ServerChild, idle_report, memory_report, pid_cpu_ns_all, server_binary};
use crate::workload::{KeySet, Routine, Zipf};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Each routine runs over a generated key set, in each client mode, against a fresh real
shmkv-server child for each server worker-thread count (1 2 4 8 16 by default). Every answer is
checked (a read must return what was written); a wrong answer fails the run (exit 1); the
summary says how many answers were checked.

Routines: insert (all keys), read (all keys), mixed (80% read / 20% insert, uniform keys),
zipf (the same with Zipf(0.99)-skewed keys), delete (all keys). Keys are 8 bytes; values are
--value-size bytes (each size runs every routine; a size of S bytes uses at most
--data-budget / S keys, so that 1 MiB values do not need 100 GB).
Modes: sync (one request at a time, the library's blocking call), pipelined (a window of --pipeline requests in flight),
threads (--client-threads threads sharing one connection, each synchronous), processes
(--client-processes processes, one connection each, each pipelined).
Latency runs from submitting a request to having its answer: every request is timed in the
sync and threads modes, every 16th in the pipelined and processes modes (no clock read for
the others). CPU columns are in % of ONE core.

The machine's limit is measured first, in every run (--no-limit skips it), by code that
shares nothing with shmkv: a cache-line ping-pong between two processes; a bare
request/response between two processes over two shared-memory rings of 16-byte messages, a
std HashMap of the run's keys answering, at depth 1 and at depth --pipeline; memcpy of each
value size. Each shmkv row is then also a ratio: sync p50 to the bare depth-1 p50;
pipelined, threads and processes ops/s to the bare pipelined ops/s; MB/s to memcpy.

Examples:
  shmkv-bench                                  the default run (about 4 minutes on 2 cores)
  shmkv-bench --keys 100000 --json out.json --plot out.svg
  shmkv-bench --vs-redis --server-threads 1    side by side with redis-server
  shmkv-bench --value-size 8,64,1024,65536,1048576 --server-threads 1 --modes sync,pipelined
  shmkv-bench --url shm://,redis://127.0.0.1:6379 --keys 2000 --modes sync,pipelined --no-limit

--url runs the routines through shmkv's Engine trait (shmkv::engine) against each engine
listed, in order, and prints them side by side: for each routine, mode and value size, each
engine's ops/s as a ratio to the first engine's, then its ops/s, p50 and p99. URLs are
separated by commas or given by repeating --url; a piece without '://' continues the URL
before it (redis-cluster://H:P1,H:P2,H:P3 is one URL). shm:// alone is the bench's own
shmkv-server child, started and stopped by the bench with one --server-threads value (1 if
none is given); shm://NAME is a shmkv-server already running under that name, and
redis://HOST:PORT[/DB], redis+unix:///PATH and redis-cluster://HOST:PORT[,HOST:PORT...]
are Redis, used as they are (server CPU is shown only for the bench's own server). Modes
with --url: sync (one operation at a time), pipelined (a batch of --pipeline operations,
Engine::execute_all, answered before the next is sent: no overlap, unlike the run without
--url) and threads (--client-threads threads sharing one engine); processes is skipped with
a note, and so are the memory and idle reports. Every answer is checked as in every run. On
an engine the bench did not start, its keys (8-byte binary keys) are deleted after each value
size. --json records carry \"engine\" (the URL) beside \"system\".

Exit status: 0 all runs correct, 1 a wrong answer or a failed run, 2 bad command line.";

/// Benchmark shmkv (and optionally Redis) with every answer checked, beside this machine's
/// own limit.
#[derive(Parser, Debug, Clone)]
#[command(name = "shmkv-bench", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Keys in the key set (each routine touches each key once, or does this many ops).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Value sizes in bytes, comma separated (suffixes K, M: KiB, MiB).
    #[arg(long, value_delimiter = ',', default_value = "8,64K", value_parser = shmkv_cli::parse_size)]
    pub value_size: Vec<u64>,
    /// Bytes of values a key set may hold: a value size S uses min(--keys, this / S) keys
    /// (at least 16).
    #[arg(long, default_value = "256M", value_parser = shmkv_cli::parse_size)]
    pub data_budget: u64,
    /// Server worker-thread counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub server_threads: Vec<u32>,
    /// Routines, comma separated (insert,read,mixed,zipf,delete; insert always runs first).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "insert,read,mixed,zipf,delete"
    )]
    pub routines: Vec<String>,
    /// Modes, comma separated (sync,pipelined,threads,processes).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sync,pipelined,threads,processes"
    )]
    pub modes: Vec<String>,
    /// Requests in flight in pipelined modes (and in the bare pipelined baseline).
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// Client threads in the threads mode.
    #[arg(long, default_value_t = 4)]
    pub client_threads: usize,
    /// Client processes in the processes mode.
    #[arg(long, default_value_t = 2)]
    pub client_processes: usize,
    /// Table buckets of the server (by default the server's own default, as
    /// `shmkv-server` runs without --buckets).
    #[arg(long, default_value_t = shmkv::server::ServerConfig::default().buckets)]
    pub buckets: usize,
    /// Write every result (and the limit baselines, "system": "limit") as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw throughput against server threads per mode into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also run the sync and pipelined modes against a real redis-server on a unix socket.
    #[arg(long)]
    pub vs_redis: bool,
    /// Run through shmkv's Engine trait against these engines instead, side by side:
    /// shm:// (the bench's own server), shm://NAME, redis://HOST:PORT, redis+unix:///PATH,
    /// redis-cluster://HOST:PORT[,HOST:PORT...]; comma separated or repeated.
    #[arg(long, value_name = "URL[,URL...]")]
    pub url: Vec<String>,
    /// Whether --server-threads was given (not defaulted).
    #[arg(skip)]
    pub server_threads_given: bool,
    /// The shmkv-server binary (default: next to this one, built if missing).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Stop a run after this many seconds (its ops so far count; insert always completes;
    /// `inf` or any huge number: no cap).
    #[arg(long, default_value_t = 5.0)]
    pub max_seconds: f64,
    /// Skip measuring the machine's limit (then no ratios are given).
    #[arg(long)]
    pub no_limit: bool,
    /// Seconds each limit baseline measures (after a short warm-up; memcpy: half of it for
    /// each value size).
    #[arg(long, default_value_t = 0.5)]
    pub limit_seconds: f64,
    /// Keys to insert for the memory report (table bytes per entry); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_keys: u64,
    /// Skip the idle report (server and waiting client CPU while nothing happens).
    #[arg(long)]
    pub no_idle: bool,
    /// Connect the bench's clients without `ClientConfig::prefault` (then every run's first
    /// lap of the rings pays a page fault per 4 KiB page, as a short-lived client does).
    #[arg(long)]
    pub no_prefault: bool,
    /// Whether the bench's server workers and clients spin before they sleep when they wait
    /// (`shmkv-server --spin`, `ClientConfig::spin`), or sleep at once.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    pub spin: String,
    /// Internal: run as a client process of the processes mode.
    #[arg(long, hide = true)]
    pub child: Option<String>,
    /// Internal: run as the answering process of the limit baselines.
    #[arg(long, hide = true)]
    pub limit_child: Option<String>,
}

/// Parse the command line and run (or be one of the bench's own child processes).
pub fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            return shmkv_cli::clap_outcome(e).unwrap_or_else(|msg| {
                eprintln!("shmkv-bench: {msg} (see shmkv-bench --help)");
                ExitCode::from(2)
            });
        }
    };
    if let Some(spec) = &args.child {
        return crate::modes::run_child(spec);
    }
    if let Some(spec) = &args.limit_child {
        return limit::run_child(spec);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("shmkv-bench: {msg}");
            ExitCode::from(code)
        }
    }
}

/// The command line, noting whether `--server-threads` was given.
fn parse_args() -> Result<Args, clap::Error> {
    let matches = Args::command().try_get_matches()?;
    let mut args = Args::from_arg_matches(&matches)?;
    args.server_threads_given =
        matches.value_source("server_threads") == Some(ValueSource::CommandLine);
    Ok(args)
}

/// The engines of `--url` (empty without it), with `args.server_threads` set to the one value
/// the bench's own server then runs with; a usage error for what does not go with `--url`.
fn check_url_args(args: &mut Args) -> Result<Vec<EngineSpec>, String> {
    if args.url.is_empty() {
        return Ok(Vec::new());
    }
    let specs = parse_urls(&args.url)?;
    if args.vs_redis {
        return Err(
            "--vs-redis and --url do not go together: list the Redis server in --url".into(),
        );
    }
    if args.spin != "on" {
        return Err("--spin and --url do not go together: the engines wait as they do".into());
    }
    if !args.server_threads_given {
        args.server_threads = vec![1];
    } else if args.server_threads.len() != 1 {
        return Err(
            "with --url, give one --server-threads value (the worker threads of the bench's own shm:// server)"
                .into(),
        );
    }
    Ok(specs)
}

/// The routines and modes asked for, in the order they run; a usage error if the command
/// line is out of range.
fn check_args(args: &Args) -> Result<(Vec<Routine>, Vec<Mode>), String> {
    let mut routines = Vec::new();
    for r in &args.routines {
        routines.push(
            Routine::parse(r).ok_or_else(|| {
                format!("unknown routine '{r}' (insert, read, mixed, zipf, delete)")
            })?,
        );
    }
    // The key set must be present for read/mixed/zipf/delete: insert runs first, always.
    routines.retain(|r| *r != Routine::Insert);
    routines.insert(0, Routine::Insert);
    if let Some(pos) = routines.iter().position(|r| *r == Routine::Delete) {
        routines.remove(pos);
        routines.push(Routine::Delete);
    }
    let mut modes = Vec::new();
    for m in &args.modes {
        modes.push(
            Mode::parse(m).ok_or_else(|| {
                format!("unknown mode '{m}' (sync, pipelined, threads, processes)")
            })?,
        );
    }
    if args.keys == 0 || args.keys > 100_000_000 {
        return Err("--keys must be 1 to 100000000".into());
    }
    if args.pipeline == 0 || args.pipeline > 65_536 {
        return Err("--pipeline must be 1 to 65536".into());
    }
    if args.client_threads == 0
        || args.client_threads > 256
        || args.client_processes == 0
        || args.client_processes > 64
    {
        return Err("--client-threads must be 1 to 256 and --client-processes 1 to 64".into());
    }
    if args
        .server_threads
        .iter()
        .any(|&t| t == 0 || t > shmkv::server::MAX_THREADS_PER_CLIENT)
    {
        return Err(format!(
            "--server-threads values must be 1 to {}",
            shmkv::server::MAX_THREADS_PER_CLIENT
        ));
    }
    if let Some(&bad) = args
        .value_size
        .iter()
        .find(|&&v| v > u64::from(shmkv::server::MAX_VALUE_LIMIT))
    {
        return Err(format!(
            "--value-size {bad} is more than the server's largest value ({} bytes)",
            shmkv::server::MAX_VALUE_LIMIT
        ));
    }
    if args.max_seconds.is_nan() || args.max_seconds <= 0.0 {
        return Err("--max-seconds must be positive (inf: no cap)".into());
    }
    if !(0.01..=60.0).contains(&args.limit_seconds) {
        return Err("--limit-seconds must be 0.01 to 60".into());
    }
    Ok((routines, modes))
}

fn run(args: &Args) -> Result<(), (u8, String)> {
    let mut args = args.clone();
    let specs = check_url_args(&mut args).map_err(|m| (2, m))?;
    let args = &args;
    let (routines, modes) = check_args(args).map_err(|m| (2, m))?;
    if !specs.is_empty() {
        return run_engines(args, &specs, (&routines, &modes));
    }
    let fail = |e: String| (1u8, e);
    let bin = server_binary(args.server_bin.as_deref()).map_err(fail)?;
    println!(
        "shmkv-bench: {} keys, value sizes {:?}, routines {:?}, modes {:?}, server threads {:?}, pipeline {}, {} client threads, {} client processes, clients {}{}; server {}",
        args.keys,
        args.value_size,
        routines.iter().map(|r| r.name()).collect::<Vec<_>>(),
        modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
        args.server_threads,
        args.pipeline,
        args.client_threads,
        args.client_processes,
        if args.no_prefault {
            "fault their session objects in as they go (--no-prefault)"
        } else {
            "prefault their session objects at connect (ClientConfig::prefault)"
        },
        if args.spin == "off" {
            ", server and clients sleep at once when they wait (--spin off)"
        } else {
            ""
        },
        bin.display()
    );
    crate::server::set_spin(&args.spin);
    probe_server(args, &bin).map_err(fail)?;
    let limit = measure_limit(args).map_err(fail)?;
    let total =
        (args.server_threads.len() * args.value_size.len() * modes.len() * routines.len()) as u64;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    print_legend(limit.is_some(), args.pipeline);
    print_header();
    let mut records = Vec::new();
    let res = bench_shmkv(
        args,
        &bin,
        (&routines, &modes),
        limit.as_ref(),
        &bar,
        &mut records,
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    res.map_err(fail)?;
    if args.memory_keys > 0 {
        memory_report(&bin, args.memory_keys, args.pipeline).map_err(fail)?;
    }
    if !args.no_idle {
        idle_report(&bin).map_err(fail)?;
    }
    if args.vs_redis {
        bench_redis(args, &routines, &modes, limit.as_ref(), &mut records).map_err(fail)?;
        summarize_vs_redis(&records);
    }
    print_summary(&records, limit.as_ref(), args.pipeline, args.client_threads);
    if let Some(path) = &args.json {
        write_json(path, &records, limit.as_ref()).map_err(fail)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, &records, &routines)
            .map_err(|e| (1, format!("plotting {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Starts and stops a server, so that one that cannot start fails the run now, not after the
/// limit's seconds.
fn probe_server(args: &Args, bin: &Path) -> Result<(), String> {
    let largest = args.value_size.iter().copied().max().unwrap_or(8);
    let probe = format!("bench-{}-probe", std::process::id());
    ServerChild::start(bin, &probe, 1024, 1, 1, largest).and_then(ServerChild::stop)
}

/// The machine's limit (printed), unless `--no-limit`.
fn measure_limit(args: &Args) -> Result<Option<Limit>, String> {
    if args.no_limit {
        return Ok(None);
    }
    // The map holds as many keys as the largest key set of the run.
    let smallest = args.value_size.iter().copied().min().unwrap_or(8);
    let keys = KeySet::new(args.keys, args.data_budget, smallest).keys;
    let sizes: Vec<usize> = args.value_size.iter().map(|&s| s as usize).collect();
    let l = limit::measure(keys, args.pipeline, &sizes, args.limit_seconds)?;
    print_limit(&l);
    Ok(Some(l))
}

/// A `--url` run: the engines one after the other, side by side, then the summary and the
/// JSON and plot asked for.
fn run_engines(
    args: &Args,
    specs: &[EngineSpec],
    (routines, modes): (&[Routine], &[Mode]),
) -> Result<(), (u8, String)> {
    let fail = |e: String| (1u8, e);
    let names: Vec<&str> = specs.iter().map(|s| s.url.as_str()).collect();
    println!(
        "shmkv-bench --url: engines {names:?}, {} keys, value sizes {:?}, routines {:?}, modes {:?}, pipeline {}, {} client threads",
        args.keys,
        args.value_size,
        routines.iter().map(|r| r.name()).collect::<Vec<_>>(),
        modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
        args.pipeline,
        args.client_threads,
    );
    let bin = if specs.iter().any(EngineSpec::own) {
        let bin = server_binary(args.server_bin.as_deref()).map_err(fail)?;
        probe_server(args, &bin).map_err(fail)?;
        Some(bin)
    } else {
        None
    };
    let limit = measure_limit(args).map_err(fail)?;
    println!("note: the memory and idle reports are not run with --url");
    let modes = &engine_modes(modes);
    print_legend(limit.is_some(), args.pipeline);
    print_header();
    let mut records = Vec::new();
    bench_engines(
        args,
        bin.as_deref(),
        specs,
        (routines, modes),
        limit.as_ref(),
        &mut records,
    )
    .map_err(fail)?;
    print_summary(&records, limit.as_ref(), args.pipeline, args.client_threads);
    if let Some(path) = &args.json {
        write_json(path, &records, limit.as_ref()).map_err(fail)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, &records, routines)
            .map_err(|e| (1, format!("plotting {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Every server-thread count × value size × mode × routine against shmkv.
fn bench_shmkv(
    args: &Args,
    bin: &Path,
    (routines, modes): (&[Routine], &[Mode]),
    limit: Option<&Limit>,
    bar: &Option<indicatif::ProgressBar>,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    for &t in &args.server_threads {
        let name = format!("bench-{}-{t}", std::process::id());
        let largest = args.value_size.iter().copied().max().unwrap_or(8);
        let server = ServerChild::start(
            bin,
            &name,
            args.buckets,
            args.client_processes.max(1) + 1,
            t,
            largest,
        )?;
        for &size in &args.value_size {
            let set = KeySet::new(args.keys, args.data_budget, size);
            let zipf = &Zipf::new(set.keys, 0.99);
            for &mode in modes {
                for &routine in routines {
                    let z = (routine == Routine::Zipf).then_some(zipf);
                    let srv0 = pid_cpu_ns_all(server.pid());
                    let (p, secs) =
                        run_mode(args, &name, (routine, set), mode, z).map_err(|e| {
                            format!(
                                "{} {} with {size}-byte values and {t} server threads: {e}",
                                routine.name(),
                                mode.name()
                            )
                        })?;
                    let srv = pid_cpu_ns_all(server.pid()).saturating_sub(srv0);
                    let r = record_of(
                        "shmkv",
                        (routine, set),
                        mode,
                        t,
                        args,
                        &p,
                        secs,
                        Some(srv),
                        limit,
                    );
                    if let Some(b) = bar {
                        b.suspend(|| print_record(&r));
                        b.inc(1);
                    } else {
                        print_record(&r);
                    }
                    out.push(r);
                }
            }
        }
        server.stop()?;
    }
    Ok(())
}
