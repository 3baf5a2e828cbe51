//! The client modes (sync, pipelined, threads, processes), how each keeps requests in flight,
//! and how latency is taken: every request in the synchronous modes (sync, threads), every
//! [`SAMPLE_EVERY`]th request in the pipelined ones (pipelined, processes), always from the
//! moment the request is submitted to the moment the client has its answer.

use crate::app::Args;
use crate::server::self_cpu_ns;
use crate::workload::{KeySet, Routine, Zipf, cap_seconds, check, check_read_into, deadline, plan};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Serializer as _;
use serde_json::json;
use shmkv::client::{Client, ClientConfig, ClientError, Outcome, Ticket};
use shmkv::wire::Op;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

/// In the pipelined modes, the latency of every this-many-th request is taken (submission
/// to answer); the others cost no clock read.
pub const SAMPLE_EVERY: usize = 16;

/// A client mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One request at a time.
    Sync,
    /// A window of `--pipeline` requests in flight.
    Pipelined,
    /// `--client-threads` threads sharing one connection, each synchronous.
    Threads,
    /// `--client-processes` processes, one connection each, each pipelined.
    Processes,
}

impl Mode {
    /// The mode's name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Pipelined => "pipelined",
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        }
    }

    /// The mode of a name, if it is one.
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "sync" => Mode::Sync,
            "pipelined" => Mode::Pipelined,
            "threads" => Mode::Threads,
            "processes" => Mode::Processes,
            _ => return None,
        })
    }

    /// Whether the mode keeps many requests in flight per client (and samples latency).
    pub fn pipelines(self) -> bool {
        matches!(self, Mode::Pipelined | Mode::Processes)
    }
}

/// What one client (thread or process) measured.
#[derive(Debug)]
pub struct Part {
    /// Answers received and checked.
    pub ops: u64,
    /// Latencies in nanoseconds (every request, or every [`SAMPLE_EVERY`]th).
    pub hist: Histogram<u64>,
    /// CPU time of the client, in nanoseconds.
    pub cpu_ns: u64,
}

/// An empty latency histogram (1 ns to 60 s, 3 significant digits).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Nanoseconds since `t0`, at least 1 (the histogram's lowest value).
pub fn ns_since(t0: Instant) -> u64 {
    (t0.elapsed().as_nanos() as u64).max(1)
}

/// The blocking call a synchronous user makes: a read with `Client::read_into` (the value
/// copied into `value`, which the loop keeps: `None` is returned when it was found), any other
/// operation with `call_view` (as `Client::insert`, ... do: the operation borrowed, not
/// copied). A refusal is an answer to check like any other.
fn call_sync(client: &Client, op: &Op, value: &mut Vec<u8>) -> Result<Option<Outcome>, String> {
    let r = match op {
        Op::Read { key } => client
            .read_into(key, value)
            .map(|found| (!found).then_some(Outcome::NotFound)),
        _ => client.call_view(op.view()).map(Some),
    };
    match r {
        Err(ClientError::Refused(e)) => Ok(Some(Outcome::Refused(e))),
        r => r.map_err(|e| e.to_string()),
    }
}

/// Run `ops` on `client`, `window` in flight (1 = synchronous), checking every answer and
/// recording latency (every request when synchronous, every [`SAMPLE_EVERY`]th otherwise).
/// Stops submitting after `stop_at` (`None`: runs every op).
pub fn drive(
    client: &Client,
    ops: &[Op],
    window: usize,
    stop_at: Option<Instant>,
) -> Result<Part, String> {
    let mut hist = new_hist();
    let mut done = 0u64;
    let past = |s: Option<Instant>| s.is_some_and(|s| Instant::now() > s);
    if window <= 1 {
        let mut value = Vec::new();
        for op in ops {
            let t0 = Instant::now();
            let o = call_sync(client, op, &mut value)?;
            let dt = ns_since(t0);
            match o {
                Some(o) => check(op, &o)?,
                None => check_read_into(op, &value)?,
            }
            let _ = hist.record(dt);
            done += 1;
            if done % 1024 == 0 && past(stop_at) {
                break;
            }
        }
    } else {
        // Keep at most `window` in flight: submit half a window whenever the oldest half
        // is answered, so that the client checks answers while the server works on the
        // rest (a full window submitted and drained in turn leaves each side idle half
        // the time). A sampled request's latency runs from the submission of its batch to
        // the return of its `wait`: what a user of a pipeline sees.
        let half = (window / 2).max(1);
        let mut in_flight: VecDeque<(usize, Ticket, Option<Instant>)> =
            VecDeque::with_capacity(window);
        let mut next = 0;
        let mut submitting = true;
        while (submitting && next < ops.len()) || !in_flight.is_empty() {
            if submitting && next < ops.len() && in_flight.len() + half <= window {
                if past(stop_at) {
                    // Stop submitting; collect what is in flight.
                    submitting = false;
                    continue;
                }
                let end = (next + half).min(ops.len());
                // One clock read per batch that holds a sampled request, none otherwise.
                let t0 = (next.div_ceil(SAMPLE_EVERY) * SAMPLE_EVERY < end).then(Instant::now);
                let tickets = client
                    .submit_all(&ops[next..end])
                    .map_err(|e| e.to_string())?;
                for (i, t) in (next..end).zip(tickets) {
                    let stamp = if i % SAMPLE_EVERY == 0 { t0 } else { None };
                    in_flight.push_back((i, t, stamp));
                }
                next = end;
                continue;
            }
            let take = half.min(in_flight.len());
            for _ in 0..take {
                let (i, t, t0) = in_flight.pop_front().expect("counted");
                let o = client.wait(t).map_err(|e| e.to_string())?;
                if let Some(t0) = t0 {
                    let _ = hist.record(ns_since(t0));
                }
                check(&ops[i], &o)?;
                done += 1;
            }
        }
    }
    Ok(Part {
        ops: done,
        hist,
        cpu_ns: 0,
    })
}

/// The measurements of several clients as one.
pub fn merge(parts: Vec<Part>) -> Part {
    let mut hist = new_hist();
    let mut ops = 0;
    let mut cpu_ns = 0;
    for p in parts {
        ops += p.ops;
        cpu_ns += p.cpu_ns;
        let _ = hist.add(&p.hist);
    }
    Part { ops, hist, cpu_ns }
}

/// The processes mode's child: connect to `name`, say "ready", run its part once the parent
/// says "go" (it exits if the parent goes away instead), print one JSON line.
pub fn run_child(spec: &str) -> ExitCode {
    let f: Vec<&str> = spec.split(':').collect();
    let parsed = (|| {
        Some((
            f.first()?.to_string(),
            Routine::parse(f.get(1)?)?,
            f.get(2)?.parse::<u64>().ok()?,
            f.get(3)?.parse::<u64>().ok()?,
            f.get(4)?.parse::<u64>().ok()?,
            f.get(5)?.parse::<usize>().ok()?,
            f.get(6)?.parse::<f64>().ok()?,
            f.get(7)?.parse::<usize>().ok()?,
            f.get(8)? == &"prefault",
            f.get(9)?.to_string(),
        ))
    })();
    let Some((name, routine, keys, part, parts, window, max_s, value_size, prefault, spin)) =
        parsed
    else {
        eprintln!("shmkv-bench: bad --child spec");
        return ExitCode::from(2);
    };
    let zipf = (routine == Routine::Zipf).then(|| Zipf::new(keys, 0.99));
    let set = KeySet { keys, value_size };
    let ops = plan(routine, set, part, parts, zipf.as_ref());
    let client = match Client::connect(&spin_as(ClientConfig::new(&name).prefault(prefault), &spin))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmkv-bench child: {e}");
            return ExitCode::from(1);
        }
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    // The parent's "go", or end of input if it is gone (then there is nobody to report to).
    let mut go = String::new();
    if std::io::stdin().read_line(&mut go).is_err() || go.trim() != "go" {
        eprintln!("shmkv-bench child: the parent went away before the start");
        return ExitCode::from(1);
    }
    let cpu0 = self_cpu_ns();
    match drive(&client, &ops, window, deadline(max_s)) {
        Ok(p) => {
            let mut buf = Vec::new();
            let _ = hdrhistogram::serialization::V2Serializer::new().serialize(&p.hist, &mut buf);
            println!(
                "{}",
                json!({"ops": p.ops, "cpu_ns": self_cpu_ns() - cpu0, "hist": hex(&buf)})
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmkv-bench child: {e}");
            ExitCode::from(1)
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Run one routine in one mode against the server `name`; returns the merged measurements
/// and the run's wall-clock seconds.
pub fn run_mode(
    args: &Args,
    name: &str,
    (routine, set): (Routine, KeySet),
    mode: Mode,
    zipf: Option<&Zipf>,
) -> Result<(Part, f64), String> {
    let limit = cap_seconds(routine, args.max_seconds);
    match mode {
        Mode::Sync | Mode::Pipelined => {
            let client = Client::connect(&config(args, name)).map_err(|e| e.to_string())?;
            let ops = plan(routine, set, 0, 1, zipf);
            let window = if mode == Mode::Sync { 1 } else { args.pipeline };
            let cpu0 = self_cpu_ns();
            let t0 = Instant::now();
            let mut p = drive(&client, &ops, window, deadline(limit))?;
            let secs = t0.elapsed().as_secs_f64();
            p.cpu_ns = self_cpu_ns() - cpu0;
            Ok((p, secs))
        }
        Mode::Threads => {
            let client = Arc::new(Client::connect(&config(args, name)).map_err(|e| e.to_string())?);
            let n = args.client_threads.max(1) as u64;
            let plans: Vec<Vec<Op>> = (0..n).map(|i| plan(routine, set, i, n, zipf)).collect();
            let cpu0 = self_cpu_ns();
            let t0 = Instant::now();
            let until = deadline(limit);
            let handles: Vec<_> = plans
                .into_iter()
                .map(|ops| {
                    let c = client.clone();
                    std::thread::spawn(move || drive(&c, &ops, 1, until))
                })
                .collect();
            let mut parts = Vec::new();
            for h in handles {
                parts.push(
                    h.join()
                        .map_err(|_| "client thread panicked".to_string())??,
                );
            }
            let secs = t0.elapsed().as_secs_f64();
            let mut p = merge(parts);
            p.cpu_ns = self_cpu_ns() - cpu0;
            Ok((p, secs))
        }
        Mode::Processes => run_processes(args, name, (routine, set), limit),
    }
}

/// How the bench's clients connect: long-lived clients, so with the session object faulted in
/// at connect unless `--no-prefault`.
fn config(args: &Args, name: &str) -> ClientConfig {
    spin_as(
        ClientConfig::new(name).prefault(!args.no_prefault),
        &args.spin,
    )
}

/// `config` with `--spin` (on, off).
fn spin_as(config: ClientConfig, spin: &str) -> ClientConfig {
    config.spin(spin != "off")
}

/// The processes mode: `--client-processes` children of this executable (`--child`), started
/// together once all are connected.
fn run_processes(
    args: &Args,
    name: &str,
    (routine, set): (Routine, KeySet),
    limit: f64,
) -> Result<(Part, f64), String> {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let n = args.client_processes.max(1);
    let mut kids = Vec::new();
    for i in 0..n {
        let spec = format!(
            "{name}:{}:{}:{i}:{n}:{}:{}:{}:{}:{}",
            routine.name(),
            set.keys,
            args.pipeline,
            limit,
            set.value_size,
            if args.no_prefault {
                "fault"
            } else {
                "prefault"
            },
            args.spin
        );
        let mut cmd = Command::new(&me);
        cmd.args(["--child", &spec])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of
        // ours; nothing else runs between fork and exec. A client dies with the bench.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut c = cmd.spawn().map_err(|e| e.to_string())?;
        let out = BufReader::new(c.stdout.take().ok_or("no stdout")?);
        kids.push((c, out));
    }
    // Wait until every child is connected, then start them together.
    for (_, out) in &mut kids {
        let mut l = String::new();
        out.read_line(&mut l).map_err(|e| e.to_string())?;
        if l.trim() != "ready" {
            return Err("a client process failed to connect".into());
        }
    }
    let t0 = Instant::now();
    for (c, _) in &mut kids {
        let _ = c.stdin.take().map(|mut s| s.write_all(b"go\n"));
    }
    let mut parts = Vec::new();
    for (mut c, mut out) in kids {
        let mut l = String::new();
        out.read_line(&mut l).map_err(|e| e.to_string())?;
        let st = c.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("a client process failed ({st})"));
        }
        let v: serde_json::Value = serde_json::from_str(&l).map_err(|e| e.to_string())?;
        let bytes = unhex(v["hist"].as_str().unwrap_or("")).ok_or("bad histogram")?;
        let hist: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| format!("{e:?}"))?;
        parts.push(Part {
            ops: v["ops"].as_u64().unwrap_or(0),
            hist,
            cpu_ns: v["cpu_ns"].as_u64().unwrap_or(0),
        });
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok((merge(parts), secs))
}
