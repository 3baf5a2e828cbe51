//! `shmkv-server`: holds the table and serves client processes over POSIX shared memory.

// The binaries need real shared memory; under `--cfg loom` (model checking) they are stubs so
// that `RUSTFLAGS="--cfg loom" cargo test` still builds the whole package.
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
mod app {

    use clap::Parser;
    use nix::sys::signal::{SigSet, Signal};
    use shmkv::server::{MAX_CLIENTS, MAX_THREADS_PER_CLIENT, Server, ServerConfig};
    use shmkv::table::MAX_BUCKETS;
    use std::io::Write;
    use std::process::ExitCode;

    const AFTER_HELP: &str = "\
Examples:
  shmkv-server                     5000 buckets, 4 client slots, 1 worker thread per client
  shmkv-server 100 2 3             100 buckets, 2 client slots, 3 worker threads per client
  shmkv-server 100 2 3 --name t1   the same, objects named /dev/shm/t1-client-<i>

Stop it with Ctrl-C, SIGTERM, or `shmkv-client <id> quit`: it answers the requests it took,
removes its objects from /dev/shm and exits with status 0.

Exit status: 0 after a graceful shutdown, 1 if it could not start, 2 on a bad command line.";

    /// Serve a concurrent hash table to other processes over POSIX shared memory.
    #[derive(Parser, Debug)]
    #[command(name = "shmkv-server", version, after_help = AFTER_HELP)]
    struct Args {
        /// Table buckets (same as --buckets).
        #[arg(value_name = "BUCKETS", conflicts_with = "buckets")]
        buckets_pos: Option<usize>,
        /// Client slots (same as --clients).
        #[arg(value_name = "CLIENTS", conflicts_with = "clients")]
        clients_pos: Option<u32>,
        /// Worker threads per client at start (same as --threads).
        #[arg(value_name = "THREADS", conflicts_with = "threads")]
        threads_pos: Option<u32>,
        /// Table buckets [default: 5000, at most 16777216].
        #[arg(long)]
        buckets: Option<usize>,
        /// Client slots, one shared-memory object each [default: 4, at most 1024].
        #[arg(long)]
        clients: Option<u32>,
        /// Worker threads per client at start [default: 1, at most --max-threads].
        #[arg(long)]
        threads: Option<u32>,
        /// Most worker threads a client may have (ThStart beyond it is refused).
        #[arg(long, default_value_t = MAX_THREADS_PER_CLIENT)]
        max_threads: u32,
        /// Server name: objects are /dev/shm/<name>-client-<i>.
        #[arg(long, default_value = "shmkv")]
        name: String,
        /// Slots in each request and response ring (a power of two, 2 to 65536).
        #[arg(long, default_value_t = 1024)]
        ring: u32,
        /// Log nothing to stderr (connects, disconnects, thread changes, shutdown).
        #[arg(long, short)]
        quiet: bool,
    }

    fn usage_error(e: clap::Error) -> ExitCode {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("bad command line");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        eprintln!("shmkv-server: {first} (see shmkv-server --help)");
        ExitCode::from(2)
    }

    pub fn main() -> ExitCode {
        let args = match Args::try_parse() {
            Ok(a) => a,
            Err(e) => return usage_error(e),
        };
        let config = ServerConfig {
            name: args.name,
            buckets: args.buckets_pos.or(args.buckets).unwrap_or(5000),
            clients: args.clients_pos.or(args.clients).unwrap_or(4),
            threads: args.threads_pos.or(args.threads).unwrap_or(1),
            max_threads: args.max_threads,
            ring_capacity: args.ring,
            log: !args.quiet,
        };
        let _ = (MAX_BUCKETS, MAX_CLIENTS);

        // Block the stop signals in every thread (workers inherit the mask); one thread takes them.
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGINT);
        signals.add(Signal::SIGTERM);
        signals.add(Signal::SIGHUP);
        if let Err(e) = signals.thread_block() {
            eprintln!("shmkv-server: cannot block signals: {e}");
            return ExitCode::from(1);
        }

        let server = match Server::start(config) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("shmkv-server: {e}");
                return ExitCode::from(1);
            }
        };
        let stop = server.stop_handle();
        let quiet = args.quiet;
        std::thread::spawn(move || {
            if let Ok(sig) = signals.wait() {
                if !quiet {
                    eprintln!("shmkv-server: {sig:?} received, shutting down");
                }
                stop.stop();
            }
        });

        let c = server.config();
        let last = c.clients - 1;
        println!(
            "shmkv-server: ready: name '{}', {} buckets, {} client slots (/dev/shm/{}-client-0..{last}), {} worker thread(s) per client; connect with: shmkv-client --name {} <0..{last}> <ops...>",
            c.name, c.buckets, c.clients, c.name, c.threads, c.name
        );
        let _ = std::io::stdout().flush();
        server.wait();
        ExitCode::SUCCESS
    }
}
