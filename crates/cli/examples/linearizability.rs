//! A large linearizability check of the served table: several client processes (this program
//! run again with `--child`) with several threads each run random operations of every
//! key-value kind (insert, read, delete, insert-new, cas, add) on a small shared set of binary
//! keys, record each call's invoke and return time on `CLOCK_MONOTONIC`, and the merged
//! history is checked with `shmkv_testkit` (Wing–Gong–Lowe, per key).
//!
//! ```sh
//! cargo run --release --example linearizability -- --ops 100000 --processes 4
//! ```
//!
//! Options: `--ops N` calls in all (default 100000), `--processes P` (4), `--threads T` per
//! process (2), `--keys K` (8), `--batch B` largest pipelined batch (4), `--workers W` server
//! worker threads per client (2), `--server PATH` a `shmkv-server` binary to run (default: the
//! one next to this example's directory if it was built, else a server inside this process).
//! Exit status 0: linearizable; 1: not (the violation is printed); 2: bad arguments.

// Needs real processes and shared memory: a stub under `--cfg loom`, like the binaries.
#[cfg(not(loom))]
#[path = "../tests/lin/record.rs"]
mod record;

#[cfg(loom)]
fn main() {
    eprintln!("built with --cfg loom: this example is disabled in model-checking builds");
    std::process::exit(2);
}

#[cfg(not(loom))]
fn main() {
    app::main()
}

#[cfg(not(loom))]
mod app {
    use super::record;

    use record::Role;
    use shmkv_testkit::{self as lincheck, Call};
    use std::io::{BufRead, BufReader, Read};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    struct Args {
        ops: u64,
        processes: u64,
        threads: u64,
        keys: u64,
        batch: u64,
        workers: u32,
        server: Option<PathBuf>,
    }

    fn parse_args() -> Result<Args, String> {
        let mut a = Args {
            ops: 100_000,
            processes: 4,
            threads: 2,
            keys: 8,
            batch: 4,
            workers: 2,
            server: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut val = || it.next().ok_or(format!("{flag} needs a value"));
            let num = |s: String| s.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
            match flag.as_str() {
                "--ops" => a.ops = num(val()?)?,
                "--processes" => a.processes = num(val()?)?,
                "--threads" => a.threads = num(val()?)?,
                "--keys" => a.keys = num(val()?)?,
                "--batch" => a.batch = num(val()?)?,
                "--workers" => a.workers = num(val()?)? as u32,
                "--server" => a.server = Some(PathBuf::from(val()?)),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if a.ops == 0 || a.processes == 0 || a.threads == 0 || a.keys == 0 || a.batch == 0 {
            return Err("every count must be at least 1".into());
        }
        Ok(a)
    }

    /// A server: the real binary as a child, or one inside this process.
    enum Served {
        Binary(Child),
        InProcess(shmkv::server::Server),
    }

    fn start_server(a: &Args, name: &str) -> Served {
        let sibling = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.join("shmkv-server")))
            .filter(|p| p.exists());
        match a.server.clone().or(sibling) {
            Some(bin) => {
                println!("server: {} (a separate process)", bin.display());
                let mut child = Command::new(&bin)
                    .args(["--name", name, "--quiet", "--buckets", "64"])
                    .args(["--clients", &a.processes.to_string()])
                    .args(["--threads", &a.workers.to_string()])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("cannot run the server");
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert!(line.contains("ready"), "server said {line:?}");
                Served::Binary(child)
            }
            None => {
                println!("server: inside this process (build shmkv-server to use the binary)");
                Served::InProcess(
                    shmkv::server::Server::start(shmkv::server::ServerConfig {
                        name: name.to_string(),
                        buckets: 64,
                        clients: a.processes as u32,
                        threads: a.workers,
                        ..Default::default()
                    })
                    .expect("cannot start the server"),
                )
            }
        }
    }

    pub fn main() {
        let argv: Vec<String> = std::env::args().collect();
        if argv.len() == 3 && argv[1] == "--child" {
            record::run_child(&argv[2]);
            return;
        }
        let a = match parse_args() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("linearizability: {e}");
                std::process::exit(2);
            }
        };
        let name = format!("lin-{}", std::process::id());
        let server = start_server(&a, &name);
        let per_thread = a.ops.div_ceil(a.processes * a.threads);
        let t0 = Instant::now();
        let kids: Vec<Child> = (0..a.processes)
            .map(|p| {
                let role = Role {
                    name: name.clone(),
                    process: p,
                    threads: a.threads,
                    ops: per_thread,
                    keys: a.keys,
                    batch: a.batch,
                    thread_changes: 1000,
                    seed: 0x5eed_0000 + p,
                };
                Command::new(std::env::current_exe().unwrap())
                    .args(["--child", &role.spec()])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("cannot start a client process")
            })
            .collect();
        let mut calls: Vec<Call> = Vec::new();
        for mut k in kids {
            let mut s = String::new();
            k.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            let st = k.wait().unwrap();
            assert!(st.success(), "a client process failed: {st}");
            calls.extend(s.lines().map(|l| record::parse_call(l).expect("bad line")));
        }
        let recorded = t0.elapsed();
        match server {
            Served::Binary(mut c) => {
                let client = shmkv::client::Client::connect(&record::patient(&name))
                    .expect("connect to quit");
                client.quit().unwrap();
                drop(client);
                let st = c.wait().unwrap();
                assert!(st.success(), "server: {st}");
            }
            Served::InProcess(s) => s.shutdown(),
        }
        let overlaps = record::overlapping_pairs(&calls);
        println!(
            "recorded {} calls from {} processes x {} threads on {} keys in {:.2?} ({overlaps} overlapping pairs of calls from different processes)",
            calls.len(),
            a.processes,
            a.threads,
            a.keys,
            recorded
        );
        let counts: Vec<String> = record::answer_counts(&calls)
            .into_iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!("answers: {}", counts.join(", "));
        let t1 = Instant::now();
        let result = lincheck::check(&calls);
        let took: Duration = t1.elapsed();
        match result {
            Ok(r) => println!(
                "linearizable: {} calls on {} keys, {} configurations explored, checked in {took:.2?}",
                r.calls, r.keys, r.configurations
            ),
            Err(e) => {
                println!("NOT linearizable (checked in {took:.2?}):\n{e}");
                std::process::exit(1);
            }
        }
    }
}
