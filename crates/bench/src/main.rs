//! `shmkv-bench`: starts a real `shmkv-server`, runs insert/read/delete/mixed routines in
//! several client modes with the server's worker threads doubling, checks every answer, and
//! reports throughput, latency percentiles and CPU time, each beside this machine's own limit
//! measured in the same run (optionally against Redis too).
//!
//! Modules: [`app`] (command line, the order of the run), [`limit`] (the machine's limit,
//! written without any shmkv code), [`modes`] (the client modes and their latency sampling),
//! [`server`] (the `shmkv-server` child and CPU accounting), [`workload`] (keys, values, the
//! routines' operations and the answer check), [`report`] (table, summary, JSON, plot),
//! [`redis_cmp`] (`--vs-redis`) and [`engines`] (`--url`: any engine through
//! `shmkv::engine::Engine`, side by side).

// The benchmark needs real shared memory; under `--cfg loom` it is a stub.
#[cfg(loom)]
fn main() {
    eprintln!("built with --cfg loom: the binaries are disabled in model-checking builds");
    std::process::exit(2);
}

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    app::main()
}

#[cfg(not(loom))]
mod app;
#[cfg(not(loom))]
mod engines;
#[cfg(not(loom))]
mod limit;
#[cfg(not(loom))]
mod modes;
#[cfg(not(loom))]
mod redis_cmp;
#[cfg(not(loom))]
mod report;
#[cfg(not(loom))]
mod server;
#[cfg(not(loom))]
mod workload;
