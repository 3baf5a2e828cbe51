//! `--vs-redis`: the same routines against a real `redis-server` on a unix socket, in the
//! sync and pipelined modes, with the same window, latency sampling and answer check.

use crate::app::Args;
use crate::limit::Limit;
use crate::modes::{Mode, Part, SAMPLE_EVERY, new_hist, ns_since};
use crate::report::{Record, fmt_ns, fmt_rate, fmt_size, print_record, record_of};
use crate::server::{pid_cpu_ns, self_cpu_ns};
use crate::workload::{KeySet, Routine, Zipf, cap_seconds, deadline, plan, value_ok};
use shmkv::wire::Op;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server child on a unix socket, persistence off.
struct RedisChild {
    child: Child,
    socket: PathBuf,
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn start_redis() -> Result<(RedisChild, redis::Connection), String> {
    let socket =
        std::env::temp_dir().join(format!("shmkv-bench-redis-{}.sock", std::process::id()));
    let child = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args([
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!("--vs-redis needs redis-server on the PATH ({e}); install it, e.g. apt-get install redis-server")
        })?;
    let rc = RedisChild { child, socket };
    let url = format!("unix://{}", rc.socket.display());
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if rc.socket.exists() {
            if let Ok(c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
                return Ok((rc, c));
            }
        }
        if Instant::now() > end {
            return Err("redis-server did not open its socket within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn redis_cmd(op: &Op) -> redis::Cmd {
    match op {
        Op::Insert { key, value } => {
            let mut c = redis::cmd("SET");
            c.arg(key).arg(value);
            c
        }
        Op::Read { key } => {
            let mut c = redis::cmd("GET");
            c.arg(key);
            c
        }
        Op::Delete { key } => {
            let mut c = redis::cmd("DEL");
            c.arg(key);
            c
        }
        _ => redis::cmd("PING"),
    }
}

fn redis_check(op: &Op, v: &redis::Value) -> Result<(), String> {
    use redis::Value as V;
    let ok = match (op, v) {
        (Op::Insert { .. }, V::Okay) => true,
        (Op::Read { key }, V::BulkString(b)) => value_ok(key, b),
        (Op::Delete { .. }, V::Int(1)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("redis: wrong answer: {op:?} -> {v:?}"))
    }
}

/// Run the routines against redis-server in the sync and pipelined modes of `modes`.
pub fn bench_redis(
    args: &Args,
    routines: &[Routine],
    modes: &[Mode],
    limit: Option<&Limit>,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    let (rc, mut con) = start_redis()?;
    let runs = args.value_size.iter().flat_map(|&size| {
        modes
            .iter()
            .filter(|m| matches!(m, Mode::Sync | Mode::Pipelined))
            .flat_map(move |&mode| routines.iter().map(move |&r| (size, mode, r)))
    });
    for (size, mode, routine) in runs {
        let set = KeySet::new(args.keys, args.data_budget, size);
        let zipf = Zipf::new(set.keys, 0.99);
        let z = (routine == Routine::Zipf).then_some(&zipf);
        let ops = plan(routine, set, 0, 1, z);
        let window = if mode == Mode::Sync { 1 } else { args.pipeline };
        let mut hist = new_hist();
        let srv0 = pid_cpu_ns(rc.child.id());
        let cpu0 = self_cpu_ns();
        let t0 = Instant::now();
        let stop_at = deadline(cap_seconds(routine, args.max_seconds));
        let past = || stop_at.is_some_and(|s| Instant::now() > s);
        let mut done = 0u64;
        if window == 1 {
            for op in &ops {
                let s = Instant::now();
                let v: redis::Value = redis_cmd(op).query(&mut con).map_err(|e| e.to_string())?;
                let _ = hist.record(ns_since(s));
                redis_check(op, &v)?;
                done += 1;
                if done % 1024 == 0 && past() {
                    break;
                }
            }
        } else {
            // As for shmkv: at most `window` in flight, half a window sent (one write)
            // whenever the oldest half has been answered; every SAMPLE_EVERYth timed.
            let half = (window / 2).max(1);
            let mut in_flight: VecDeque<(usize, Option<Instant>)> = VecDeque::with_capacity(window);
            let mut next = 0;
            let mut submitting = true;
            while (submitting && next < ops.len()) || !in_flight.is_empty() {
                if submitting && next < ops.len() && in_flight.len() + half <= window {
                    if past() {
                        submitting = false;
                        continue;
                    }
                    let end = (next + half).min(ops.len());
                    let mut packed = Vec::new();
                    for op in &ops[next..end] {
                        packed.extend(redis_cmd(op).get_packed_command());
                    }
                    let s = (next.div_ceil(SAMPLE_EVERY) * SAMPLE_EVERY < end).then(Instant::now);
                    con.send_packed_command(&packed)
                        .map_err(|e| e.to_string())?;
                    in_flight.extend(
                        (next..end).map(|i| (i, if i % SAMPLE_EVERY == 0 { s } else { None })),
                    );
                    next = end;
                    continue;
                }
                for _ in 0..half.min(in_flight.len()) {
                    let (i, s) = in_flight.pop_front().expect("counted");
                    let v = con.recv_response().map_err(|e| e.to_string())?;
                    if let Some(s) = s {
                        let _ = hist.record(ns_since(s));
                    }
                    redis_check(&ops[i], &v)?;
                    done += 1;
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let p = Part {
            ops: done,
            hist,
            cpu_ns: self_cpu_ns() - cpu0,
        };
        let srv = pid_cpu_ns(rc.child.id()).saturating_sub(srv0);
        let mut r = record_of(
            "redis",
            (routine, set),
            mode,
            1,
            args,
            &p,
            secs,
            Some(srv),
            limit,
        );
        r.engine = format!("redis+unix://{}", rc.socket.display());
        print_record(&r);
        out.push(r);
    }
    Ok(())
}

/// shmkv against redis, same routine, mode and value size, 1 server thread.
pub fn summarize_vs_redis(records: &[Record]) {
    println!("\nshmkv vs redis (same routine, mode and value size, 1 server thread):");
    for r in records.iter().filter(|r| r.system == "redis") {
        if let Some(s) = records.iter().find(|s| {
            s.system == "shmkv"
                && s.routine == r.routine
                && s.mode == r.mode
                && s.value_size == r.value_size
                && s.server_threads == 1
        }) {
            println!(
                "  {:<7} {:<10} {:>5} shmkv {:>10}/s  redis {:>10}/s  ratio {:>6.1}x  (p50 {} vs {})",
                r.routine,
                r.mode.name(),
                fmt_size(r.value_size),
                fmt_rate(s.ops_per_sec()),
                fmt_rate(r.ops_per_sec()),
                s.ops_per_sec() / r.ops_per_sec().max(1e-9),
                fmt_ns(s.p50_ns),
                fmt_ns(r.p50_ns)
            );
        }
    }
}
