//! `shmkv-server`: holds the table and serves client processes over shared memory, one sealed
//! object per session, handed out through its unix socket.

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
    use shmkv::server::{
        DEFAULT_LIMITS, MAX_CLIENTS, MAX_KEY_LIMIT, MAX_THREADS_PER_CLIENT, MAX_VALUE_LIMIT,
        Server, ServerConfig, default_max_memory,
    };
    use shmkv::table::MAX_BUCKETS;
    use shmkv::wire::Limits;
    use std::io::{IsTerminal, Write};
    use std::process::ExitCode;
    use tracing_subscriber::EnvFilter;

    const AFTER_HELP: &str = "\
Examples:
  shmkv-server                     5000 buckets, 4 client slots, 1 worker thread per client
  shmkv-server 100 2 3             100 buckets, 2 client slots, 3 worker threads per client
  shmkv-server 100 2 3 --name t1   the same, socket $XDG_RUNTIME_DIR/shmkv/t1.sock
                                   (or /tmp/shmkv-<uid>/t1.sock)
  shmkv-server --verbose           log each worker thread too (debug level)
  RUST_LOG=warn shmkv-server       log only clients that died or were dropped

On start it prints one ready line on stdout. It logs to stderr, one line per client connect
and disconnect (with the reason), worker thread change, dropped client and shutdown; RUST_LOG
(e.g. 'warn', 'shmkv=debug') chooses what, unless --quiet or --verbose is given.

Each client that connects gets a session: a fresh shared-memory object, sealed so that
nobody can resize it, handed over the socket; the session ends when the client's connection
closes (it detached, or its process died). Only processes of the server's own user (or root)
may connect.

Stop it with Ctrl-C, SIGTERM, or `shmkv-client quit`: it answers the requests it took,
removes its socket and exits with status 0.

Exit status: 0 after a graceful shutdown, 1 if it could not start, 2 on a bad command line.";

    /// Serve a concurrent hash table to other processes over shared memory (one sealed memfd
    /// per session, handed over a unix socket).
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
        /// Client slots: sessions open at once [default: 4, at most 1024].
        #[arg(long)]
        clients: Option<u32>,
        /// Worker threads per client at start [default: 1, at most --max-threads].
        #[arg(long)]
        threads: Option<u32>,
        /// Most worker threads a client may have (ThStart beyond it is refused).
        #[arg(long, default_value_t = MAX_THREADS_PER_CLIENT)]
        max_threads: u32,
        #[arg(
            long,
            default_value = "shmkv",
            help = "Server name: the socket is <dir>/<name>.sock, dir $XDG_RUNTIME_DIR/shmkv or /tmp/shmkv-<uid> (created 0700)"
        )]
        name: String,
        /// Listen on this socket path instead (its directory is not checked: pick a private one).
        #[arg(long, value_name = "PATH")]
        socket: Option<std::path::PathBuf>,
        /// Longest key accepted, in bytes (suffixes K, M: KiB, MiB) [default: 4K, at most 64K].
        #[arg(long, value_name = "SIZE", value_parser = shmkv_cli::parse_size)]
        max_key: Option<u64>,
        /// Longest value accepted, in bytes [default: 1M, at most 64M]. Each session's rings
        /// are sized for it: twice the longest request (a cas: key + 2 values) and twice the
        /// longest answer, rounded up to powers of two (8 MiB + 4 MiB at the defaults).
        #[arg(long, value_name = "SIZE", value_parser = shmkv_cli::parse_size)]
        max_value: Option<u64>,
        /// Memory budget for the table's keys, values and per-entry overhead (suffixes K, M,
        /// G); past it writes are refused with "out of memory" [default: half the RAM].
        #[arg(long, value_name = "SIZE", value_parser = shmkv_cli::parse_size)]
        max_memory: Option<u64>,
        /// Whether a client's worker threads share its backlog of requests (hand the ring over
        /// while more wait): auto turns it on with three cores or more.
        #[arg(long, value_name = "auto|on|off", default_value = "auto", value_parser = ["auto", "on", "off"])]
        share_backlog: String,
        /// Whether workers waiting for requests or for room spin before they sleep (on), or
        /// sleep at once (off: no core burnt while waiting; clients choose with
        /// ClientConfig::spin).
        #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
        spin: String,
        /// Whether each worker thread's heap is made writable ahead of use and marked for
        /// transparent huge pages (on: the table grows by 2 MiB page faults instead of many
        /// 4 KiB ones; off: 4 KiB pages only).
        #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
        huge_pages: String,
        /// Log nothing to stderr (connects, disconnects, thread changes, shutdown).
        #[arg(long, short, conflicts_with = "verbose")]
        quiet: bool,
        /// Log at debug level too (each worker thread, failed handshakes, the configuration).
        #[arg(long, short)]
        verbose: bool,
    }

    /// Install the stderr log: --quiet and --verbose win over RUST_LOG, which wins over the
    /// default (info).
    fn init_logging(quiet: bool, verbose: bool) {
        let filter = if quiet {
            EnvFilter::new("off")
        } else if verbose {
            EnvFilter::new("debug")
        } else {
            match std::env::var("RUST_LOG") {
                Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
                    eprintln!("shmkv-server: ignoring RUST_LOG={v:?}: {e}");
                    EnvFilter::new("info")
                }),
                _ => EnvFilter::new("info"),
            }
        };
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init();
    }

    /// A limit that must fit a u32 (the wire's length prefix); `most`: the largest the server
    /// takes, named in the message (the server checks the range itself).
    fn limit(v: Option<u64>, default: u32, what: &str, most: u32) -> Result<u32, String> {
        match v {
            None => Ok(default),
            Some(n) => u32::try_from(n)
                .map_err(|_| format!("{what} {n} is too large (at most {most} bytes)")),
        }
    }

    fn usage_error(e: clap::Error) -> ExitCode {
        shmkv_cli::clap_outcome(e).unwrap_or_else(|msg| {
            eprintln!("shmkv-server: {msg} (see shmkv-server --help)");
            ExitCode::from(2)
        })
    }

    pub fn main() -> ExitCode {
        let args = match Args::try_parse() {
            Ok(a) => a,
            Err(e) => return usage_error(e),
        };
        init_logging(args.quiet, args.verbose);
        let limits = match (
            limit(
                args.max_key,
                DEFAULT_LIMITS.max_key,
                "--max-key",
                MAX_KEY_LIMIT,
            ),
            limit(
                args.max_value,
                DEFAULT_LIMITS.max_value,
                "--max-value",
                MAX_VALUE_LIMIT,
            ),
        ) {
            (Ok(max_key), Ok(max_value)) => Limits { max_key, max_value },
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("shmkv-server: {e} (see shmkv-server --help)");
                return ExitCode::from(2);
            }
        };
        let config = ServerConfig {
            name: args.name,
            socket: args.socket,
            buckets: args.buckets_pos.or(args.buckets).unwrap_or(5000),
            clients: args.clients_pos.or(args.clients).unwrap_or(4),
            threads: args.threads_pos.or(args.threads).unwrap_or(1),
            max_threads: args.max_threads,
            limits,
            max_memory: args.max_memory.unwrap_or_else(default_max_memory),
            log: !args.quiet,
            share_backlog: match args.share_backlog.as_str() {
                "on" => Some(true),
                "off" => Some(false),
                _ => None,
            },
            spin: args.spin == "on",
            huge_pages: args.huge_pages == "on",
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
            // A setting out of range is a bad command line (2); the rest (another server has
            // the name, no memory, ...) a failure to start (1).
            Err(e @ shmkv::server::ServerError::Config(_)) => {
                eprintln!("shmkv-server: {e} (see shmkv-server --help)");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("shmkv-server: {e}");
                return ExitCode::from(1);
            }
        };
        let stop = server.stop_handle();
        let name = server.config().name.clone();
        std::thread::spawn(move || {
            if let Ok(sig) = signals.wait() {
                tracing::info!(server = %name, signal = ?sig, "signal received, shutting down");
                stop.stop();
            }
        });

        let c = server.config();
        let last = c.clients - 1;
        let connect = if c.socket.is_some() {
            format!("--socket {}", server.socket().display())
        } else {
            format!("--name {}", c.name)
        };
        println!(
            "shmkv-server: ready: name '{}', {} buckets, {} client slots (0..{last}), {} worker thread(s) per client, keys up to {} bytes, values up to {} bytes, memory budget {} bytes, socket {}; connect with: shmkv-client {connect} [0..{last}] <ops...>",
            c.name,
            c.buckets,
            c.clients,
            c.threads,
            c.limits.max_key,
            c.limits.max_value,
            c.max_memory,
            server.socket().display()
        );
        let _ = std::io::stdout().flush();
        server.wait();
        ExitCode::SUCCESS
    }
}
