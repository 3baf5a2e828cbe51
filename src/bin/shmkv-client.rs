//! `shmkv-client`: runs operations against a running shmkv-server, from its command line, from
//! an interactive shell, or from standard input.

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
    use serde_json::{Value, json};
    use shmkv::client::{Client, ClientConfig, ClientError, Outcome};
    use shmkv::protocol::Op;
    use shmkv::stats::Stats;
    use std::io::{BufRead, IsTerminal, Write};
    use std::process::ExitCode;

    const OPERATIONS: &str = "\
Operations (any number, run in order, pipelined):
  insert <key> <value>    insert or replace            -> insert 1 2: ok
  read <key>              read                         -> read 1: 2   |  read 9: not found
  delete <key>            delete                       -> delete 1: ok  |  delete 1: not found
  print <bucket>          list a bucket's pairs        -> print 0: (1, 2) (7, 3)  |  print 0: empty
  threads start <n>       n more server worker threads -> threads start 2: ok, 3 threads
  threads stop            one fewer (never the last)   -> threads stop: ok, 2 threads
  stats                   the server's statistics      -> stats: and an indented block
  quit                    shut the server down         -> quit: ok

Keys and values are unsigned 64-bit integers (0..=18446744073709551615).";

    const AFTER_HELP: &str = "\
ID is the client slot asked for (0, 1, ...); give '-' or leave it out to take any free one.

Without operations, on a terminal, it opens an interactive shell (prompt, line editing,
history in $SHMKV_HISTORY or ~/.shmkv_history, Tab completion; 'help', 'exit' or Ctrl-D).
Without operations and without a terminal, it reads operations from standard input, one or
more per line ('#' starts a comment); a line that does not parse stops it (status 2).

--json prints one JSON object per operation on standard output, refused ones included:
  {\"op\":\"read\",\"key\":1,\"value\":2,\"status\":\"ok\"}

Examples:
  shmkv-client 0 insert 1 2 insert 2 4
  shmkv-client 1 read 1 read 2
  shmkv-client --name t1 - insert 5 6 read 5
  shmkv-client 0                                  (interactive shell on a terminal)
  printf 'insert 1 2\\nread 1\\n' | shmkv-client 0
  shmkv-client --json 0 read 1 stats

Exit status: 0 all operations done, 1 the server refused an operation, 2 bad command line
(or a bad line on standard input), 3 could not connect or lost the server, 4 the terminal or
standard input could not be read.";

    const SHELL_HELP: &str = "\
Shell commands:
  help                    this text
  exit                    leave (so do Ctrl-D and 'quit', which also stops the server)
  Tab completes operation names; Up and Down walk the history; Ctrl-C clears the line.
Several operations on one line are sent together, as on the command line.";

    /// Run operations against a shmkv server.
    #[derive(Parser, Debug)]
    #[command(
        name = "shmkv-client",
        version,
        after_help = format!("{OPERATIONS}\n\n{AFTER_HELP}")
    )]
    struct Args {
        #[arg(
            long,
            default_value = "shmkv",
            help = "Server name: connects to its socket, <dir>/<name>.sock, dir $XDG_RUNTIME_DIR/shmkv or /tmp/shmkv-<uid>"
        )]
        name: String,
        /// Connect to this socket path instead (the server's --socket).
        #[arg(long, value_name = "PATH")]
        socket: Option<std::path::PathBuf>,
        /// Print one JSON object per operation instead of text lines.
        #[arg(long)]
        json: bool,
        /// Give up (status 3) on a server that answers nothing for this many seconds.
        #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        #[arg(
            help = "[ID] then operations",
            value_name = "[ID] OPS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        words: Vec<String>,
    }

    /// Exit statuses.
    const REFUSED: u8 = 1;
    const USAGE: u8 = 2;
    const CONNECTION: u8 = 3;
    const INPUT: u8 = 4;

    /// One parsed operation and the label printed before its result.
    #[derive(Debug, Clone)]
    struct Item {
        label: String,
        op: Op,
    }

    fn number<T: std::str::FromStr<Err = std::num::ParseIntError>>(
        what: &str,
        op: &str,
        word: Option<&str>,
    ) -> Result<T, String> {
        let Some(w) = word else {
            return Err(format!("'{op}' needs a {what}"));
        };
        w.parse::<T>().map_err(|e| {
            use std::num::IntErrorKind::*;
            match e.kind() {
                PosOverflow | NegOverflow => format!(
                    "{what} '{w}' of '{op}' is out of range (0..={})",
                    max_of::<T>()
                ),
                _ => format!("{what} '{w}' of '{op}' is not a non-negative integer"),
            }
        })
    }

    fn max_of<T>() -> u64 {
        match std::mem::size_of::<T>() {
            4 => u64::from(u32::MAX),
            _ => u64::MAX,
        }
    }

    /// Take a leading client id (`-`, or a number) off `words`: the slot (None: first free) and
    /// the remaining words.
    fn split_id<'a>(words: &'a [&'a str]) -> Result<(Option<u32>, &'a [&'a str]), String> {
        match words.first() {
            Some(&"-") => Ok((None, &words[1..])),
            Some(w) if w.starts_with(|c: char| c.is_ascii_digit() || c == '+') => {
                let slot = w
                    .parse::<u32>()
                    .map_err(|_| format!("client id '{w}' is not a valid id (0..={})", u32::MAX))?;
                Ok((Some(slot), &words[1..]))
            }
            Some(w) if w.starts_with('-') => Err(format!(
                "client id '{w}' is not a valid id (use 0, 1, ... or '-')"
            )),
            _ => Ok((None, words)),
        }
    }

    /// Parse the operations in `words` (a command line after the id, or one line of the shell
    /// or of standard input). An empty list is not an error here.
    fn parse_ops(words: &[&str]) -> Result<Vec<Item>, String> {
        let mut it = words.iter().copied();
        let mut items = Vec::new();
        while let Some(word) = it.next() {
            let (label, op) = match word {
                "insert" => {
                    let key = number::<u64>("key", "insert", it.next())?;
                    let value = number::<u64>("value", "insert", it.next())?;
                    (format!("insert {key} {value}"), Op::Insert { key, value })
                }
                "read" => {
                    let key = number::<u64>("key", "read", it.next())?;
                    (format!("read {key}"), Op::Read { key })
                }
                "delete" => {
                    let key = number::<u64>("key", "delete", it.next())?;
                    (format!("delete {key}"), Op::Delete { key })
                }
                "print" => {
                    let bucket = number::<u64>("bucket", "print", it.next())?;
                    (format!("print {bucket}"), Op::Print { bucket })
                }
                "threads" => match it.next() {
                    Some("start") => {
                        let n = number::<u32>("count", "threads start", it.next())?;
                        if n == 0 {
                            return Err("'threads start' needs a count of at least 1".into());
                        }
                        (format!("threads start {n}"), Op::ThStart { n })
                    }
                    Some("stop") => ("threads stop".to_string(), Op::ThStop),
                    Some(other) => {
                        return Err(format!(
                            "unknown 'threads {other}': use 'threads start <n>' or 'threads stop'"
                        ));
                    }
                    None => return Err("'threads' needs 'start <n>' or 'stop'".into()),
                },
                "stats" => ("stats".to_string(), Op::Stats),
                "quit" => ("quit".to_string(), Op::Quit),
                other => {
                    return Err(format!(
                        "unknown operation '{other}' (operations: insert, read, delete, print, threads start, threads stop, stats, quit)"
                    ));
                }
            };
            items.push(Item { label, op });
        }
        Ok(items)
    }

    fn plural(n: u64, one: &str, many: &str) -> String {
        format!("{n} {}", if n == 1 { one } else { many })
    }

    fn duration_ns(ns: u64) -> String {
        match ns {
            0..=999 => format!("{ns}ns"),
            1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
            1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
            _ => format!("{:.1}s", ns as f64 / 1e9),
        }
    }

    /// The text form of a Stats answer: `stats:` and an indented block.
    fn render_stats(label: &str, s: &Stats) -> String {
        let o = &s.ops;
        let e = &s.errors;
        let mut out = format!("{label}:\n");
        out += &format!(
            "  requests   {} (insert {}, read {}, delete {}, print {}, threads start {}, threads stop {}, stats {}, quit {})\n",
            o.total(),
            o.insert,
            o.read,
            o.delete,
            o.print,
            o.threads_start,
            o.threads_stop,
            o.stats,
            o.quit
        );
        out += &format!(
            "  refused    {} (bad bucket {}, thread limit {}, last worker {}, shutting down {}, malformed {})\n",
            e.total(),
            e.bad_bucket,
            e.thread_limit,
            e.last_worker,
            e.shutting_down,
            e.malformed
        );
        out += &format!(
            "  table      {}, {}, longest bucket {}\n",
            plural(s.entries, "entry", "entries"),
            plural(s.buckets, "bucket", "buckets"),
            s.longest_bucket
        );
        out += &format!(
            "  clients    {} of {} connected, {} in all\n",
            s.connected(),
            plural(s.client_slots, "slot", "slots"),
            plural(s.worker_threads(), "worker thread", "worker threads")
        );
        for slot in s.slots.iter().filter(|x| x.connected()) {
            out += &format!(
                "    slot {}   pid {}, {}, {}\n",
                slot.slot,
                slot.owner_pid,
                plural(slot.workers, "worker thread", "worker threads"),
                plural(slot.requests, "request", "requests")
            );
        }
        let l = &s.latency;
        if l.samples == 0 {
            out += &format!(
                "  latency    no samples yet (1 in {} requests is timed)\n",
                l.sample_every
            );
        } else {
            out += &format!(
                "  latency    p50 {}, p99 {}, p99.9 {}, max {} ({} over the last {:.1}s, 1 in {} requests timed)\n",
                duration_ns(l.p50_ns),
                duration_ns(l.p99_ns),
                duration_ns(l.p999_ns),
                duration_ns(l.max_ns),
                plural(l.samples, "sample", "samples"),
                l.window_ms as f64 / 1000.0,
                l.sample_every
            );
        }
        out += &format!("  uptime     {:.1}s", s.uptime_ms as f64 / 1000.0);
        out
    }

    /// The text line(s) for one answer: Ok on stdout, Err (a refusal) on stderr.
    fn render_text(item: &Item, outcome: &Outcome) -> Result<String, String> {
        let label = &item.label;
        Ok(match outcome {
            Outcome::Done | Outcome::Replaced(_) => format!("{label}: ok"),
            Outcome::Value(v) if matches!(item.op, Op::Read { .. }) => format!("{label}: {v}"),
            Outcome::Value(_) => format!("{label}: ok"),
            Outcome::NotFound => format!("{label}: not found"),
            Outcome::Entries(e) if e.is_empty() => format!("{label}: empty"),
            Outcome::Entries(e) => {
                let mut e = e.clone();
                e.sort_unstable();
                let pairs: Vec<String> = e.iter().map(|(k, v)| format!("({k}, {v})")).collect();
                format!("{label}: {}", pairs.join(" "))
            }
            Outcome::Threads(n) => {
                format!("{label}: ok, {n} thread{}", if *n == 1 { "" } else { "s" })
            }
            Outcome::Stats(s) => render_stats(label, s),
            Outcome::Refused(e) => return Err(format!("{label}: error: {e}")),
        })
    }

    fn stats_json(s: &Stats) -> Value {
        let o = &s.ops;
        let e = &s.errors;
        let l = &s.latency;
        json!({
            "requests": {
                "insert": o.insert, "read": o.read, "delete": o.delete, "print": o.print,
                "threads_start": o.threads_start, "threads_stop": o.threads_stop,
                "stats": o.stats, "quit": o.quit, "total": o.total(),
            },
            "errors": {
                "bad_bucket": e.bad_bucket, "thread_limit": e.thread_limit,
                "last_worker": e.last_worker, "shutting_down": e.shutting_down,
                "malformed": e.malformed, "total": e.total(),
            },
            "table": {
                "entries": s.entries, "buckets": s.buckets, "longest_bucket": s.longest_bucket,
            },
            "client_slots": s.client_slots,
            "connected": s.connected(),
            "worker_threads": s.worker_threads(),
            "slots": s.slots.iter().map(|x| json!({
                "slot": x.slot,
                "pid": if x.connected() { json!(x.owner_pid) } else { Value::Null },
                "workers": x.workers,
                "requests": x.requests,
            })).collect::<Vec<_>>(),
            "latency": {
                "samples": l.samples, "p50_ns": l.p50_ns, "p99_ns": l.p99_ns,
                "p999_ns": l.p999_ns, "max_ns": l.max_ns, "window_ms": l.window_ms,
                "sample_every": l.sample_every,
            },
            "uptime_ms": s.uptime_ms,
        })
    }

    /// The JSON object for one answer; the bool says whether it was refused.
    fn render_json(item: &Item, outcome: &Outcome) -> (Value, bool) {
        let mut v = match item.op {
            Op::Insert { key, value } => json!({"op": "insert", "key": key, "value": value}),
            Op::Read { key } => json!({"op": "read", "key": key}),
            Op::Delete { key } => json!({"op": "delete", "key": key}),
            Op::Print { bucket } => json!({"op": "print", "bucket": bucket}),
            Op::ThStart { n } => json!({"op": "threads_start", "count": n}),
            Op::ThStop => json!({"op": "threads_stop"}),
            Op::Stats => json!({"op": "stats"}),
            Op::Quit => json!({"op": "quit"}),
        };
        let m = v.as_object_mut().expect("an object");
        let mut status = "ok";
        match outcome {
            Outcome::Done => {
                if let Op::Insert { .. } = item.op {
                    m.insert("previous".into(), Value::Null);
                }
            }
            Outcome::Replaced(p) => {
                m.insert("previous".into(), json!(p));
            }
            Outcome::Value(x) => {
                m.insert("value".into(), json!(x));
            }
            Outcome::NotFound => {
                m.insert("value".into(), Value::Null);
                status = "not_found";
            }
            Outcome::Entries(e) => {
                let mut e = e.clone();
                e.sort_unstable();
                m.insert("entries".into(), json!(e));
            }
            Outcome::Threads(n) => {
                m.insert("threads".into(), json!(n));
            }
            Outcome::Stats(s) => {
                m.insert("stats".into(), stats_json(s));
            }
            Outcome::Refused(e) => {
                m.insert("error".into(), json!(e.to_string()));
                status = "error";
            }
        }
        m.insert("status".into(), json!(status));
        (v, status == "error")
    }

    /// How a batch ended, short of losing the connection.
    #[derive(Debug, Default)]
    struct Ran {
        refused: bool,
        quit: bool,
    }

    /// Send `items` as one pipelined batch and print each answer, in order. Err: the connection
    /// failed (the message is printed); the status is 3.
    fn run_batch(client: &Client, items: &[Item], json: bool) -> Result<Ran, ()> {
        let ops: Vec<Op> = items.iter().map(|i| i.op).collect();
        let tickets = match client.submit_all(&ops) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shmkv-client: {e}");
                return Err(());
            }
        };
        let mut ran = Ran::default();
        let mut out = std::io::stdout().lock();
        for (item, ticket) in items.iter().zip(tickets) {
            match client.wait(ticket) {
                Ok(outcome) => {
                    if json {
                        let (v, refused) = render_json(item, &outcome);
                        ran.refused |= refused;
                        let _ = writeln!(out, "{v}");
                    } else {
                        match render_text(item, &outcome) {
                            Ok(text) => {
                                let _ = writeln!(out, "{text}");
                            }
                            Err(line) => {
                                let _ = out.flush();
                                eprintln!("shmkv-client: {line}");
                                ran.refused = true;
                            }
                        }
                    }
                    if item.op == Op::Quit && outcome == Outcome::Done {
                        ran.quit = true;
                    }
                }
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("shmkv-client: {}: {e}", item.label);
                    return Err(());
                }
            }
        }
        let _ = out.flush();
        Ok(ran)
    }

    /// `--timeout`, set once in `main` (a static keeps it out of the signatures of the three
    /// ways of running operations, which all connect here).
    static TIMEOUT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    static SOCKET: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

    fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
        match s.parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs <= 86400.0 => {
                Ok(std::time::Duration::from_secs_f64(secs))
            }
            Ok(_) => Err("must be more than 0 and at most 86400 seconds".into()),
            Err(_) => Err("not a number of seconds".into()),
        }
    }

    fn connect(name: &str, slot: Option<u32>) -> Result<Client, ExitCode> {
        let mut config = ClientConfig::new(name);
        config.slot = slot;
        if let Some(t) = TIMEOUT.get() {
            config.timeout = *t;
            config.attach_timeout = *t;
        }
        config.socket = SOCKET.get().cloned();
        Client::connect(&config).map_err(|e| {
            eprintln!("shmkv-client: {e}");
            ExitCode::from(match e {
                ClientError::InvalidName(_) => USAGE,
                _ => CONNECTION,
            })
        })
    }

    fn usage(msg: &str) -> ExitCode {
        eprintln!("shmkv-client: {msg} (see shmkv-client --help)");
        ExitCode::from(USAGE)
    }

    pub fn main() -> ExitCode {
        let args = match Args::try_parse() {
            Ok(a) => a,
            Err(e) => {
                return shmkv::cli::clap_outcome(e).unwrap_or_else(|msg| usage(&msg));
            }
        };
        let _ = TIMEOUT.set(args.timeout);
        if let Some(p) = &args.socket {
            let _ = SOCKET.set(p.clone());
        }
        let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
        let (slot, rest) = match split_id(&words) {
            Ok(x) => x,
            Err(msg) => return usage(&msg),
        };
        let items = match parse_ops(rest) {
            Ok(x) => x,
            Err(msg) => return usage(&msg),
        };
        if !items.is_empty() {
            let client = match connect(&args.name, slot) {
                Ok(c) => c,
                Err(code) => return code,
            };
            return match run_batch(&client, &items, args.json) {
                Ok(ran) if ran.refused => ExitCode::from(REFUSED),
                Ok(_) => ExitCode::SUCCESS,
                Err(()) => ExitCode::from(CONNECTION),
            };
        }
        if std::io::stdin().is_terminal() {
            shell::run(&args.name, slot, args.json)
        } else {
            from_stdin(&args.name, slot, args.json)
        }
    }

    /// What one line of the shell or of standard input asks for.
    enum Line {
        Nothing,
        Help,
        Exit,
        Ops(Vec<Item>),
    }

    fn parse_line(line: &str) -> Result<Line, String> {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        Ok(match words.as_slice() {
            [] => Line::Nothing,
            ["help"] => Line::Help,
            ["exit"] => Line::Exit,
            _ => Line::Ops(parse_ops(&words)?),
        })
    }

    /// Operations from standard input, one or more per line; a line is one pipelined batch.
    /// Connects at the first line with operations.
    fn from_stdin(name: &str, slot: Option<u32>, json: bool) -> ExitCode {
        let mut client = None;
        let mut refused = false;
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("shmkv-client: standard input: {e}");
                    return ExitCode::from(INPUT);
                }
            };
            let items = match parse_line(&line) {
                Ok(Line::Nothing) => continue,
                Ok(Line::Help) => {
                    println!("{OPERATIONS}");
                    continue;
                }
                Ok(Line::Exit) => break,
                Ok(Line::Ops(items)) => items,
                Err(msg) => {
                    eprintln!(
                        "shmkv-client: line {}: {msg}; stopped there (see shmkv-client --help)",
                        n + 1
                    );
                    return ExitCode::from(USAGE);
                }
            };
            if client.is_none() {
                match connect(name, slot) {
                    Ok(c) => client = Some(c),
                    Err(code) => return code,
                }
            }
            let c = client.as_ref().expect("connected above");
            match run_batch(c, &items, json) {
                Ok(ran) => {
                    refused |= ran.refused;
                    if ran.quit {
                        break;
                    }
                }
                Err(()) => return ExitCode::from(CONNECTION),
            }
        }
        if client.is_none() {
            return usage(
                "no operations given on the command line or standard input (e.g. shmkv-client 0 insert 1 2 read 1)",
            );
        }
        if refused {
            ExitCode::from(REFUSED)
        } else {
            ExitCode::SUCCESS
        }
    }

    mod shell {
        //! The interactive shell (rustyline).

        use super::*;
        use rustyline::completion::{Completer, Pair};
        use rustyline::error::ReadlineError;
        use rustyline::highlight::Highlighter;
        use rustyline::hint::Hinter;
        use rustyline::history::DefaultHistory;
        use rustyline::validate::Validator;
        use rustyline::{CompletionType, Config, Context, Editor, Helper};

        const COMMANDS: &[&str] = &[
            "insert", "read", "delete", "print", "threads", "stats", "quit", "help", "exit",
        ];

        /// Completes operation names (and `start`/`stop` after `threads`).
        struct ShellHelper;

        /// The words that may come next after `before` (complete words of the line).
        fn candidates(before: &[&str]) -> &'static [&'static str] {
            let mut numbers = 0;
            let mut after_threads = false;
            let mut first = true;
            for w in before {
                if numbers > 0 {
                    numbers -= 1;
                } else if after_threads {
                    after_threads = false;
                    if *w == "start" {
                        numbers = 1;
                    }
                } else {
                    match *w {
                        "insert" => numbers = 2,
                        "read" | "delete" | "print" => numbers = 1,
                        "threads" => after_threads = true,
                        _ => {}
                    }
                }
                first = false;
            }
            if numbers > 0 {
                &[]
            } else if after_threads {
                &["start", "stop"]
            } else if first {
                COMMANDS
            } else {
                &COMMANDS[..7]
            }
        }

        impl Completer for ShellHelper {
            type Candidate = Pair;

            fn complete(
                &self,
                line: &str,
                pos: usize,
                _ctx: &Context<'_>,
            ) -> rustyline::Result<(usize, Vec<Pair>)> {
                let head = &line[..pos];
                let start = head.rfind(char::is_whitespace).map_or(0, |i| {
                    i + head[i..].chars().next().map_or(1, char::len_utf8)
                });
                let before: Vec<&str> = head[..start].split_whitespace().collect();
                let partial = &head[start..];
                let found = candidates(&before)
                    .iter()
                    .filter(|c| c.starts_with(partial))
                    .map(|c| Pair {
                        display: c.to_string(),
                        replacement: format!("{c} "),
                    })
                    .collect();
                Ok((start, found))
            }
        }

        impl Hinter for ShellHelper {
            type Hint = String;
        }
        impl Highlighter for ShellHelper {}
        impl Validator for ShellHelper {}
        impl Helper for ShellHelper {}

        fn history_file() -> Option<std::path::PathBuf> {
            match std::env::var_os("SHMKV_HISTORY") {
                Some(p) if p.is_empty() => None,
                Some(p) => Some(p.into()),
                None => std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| std::path::Path::new(&h).join(".shmkv_history")),
            }
        }

        pub(super) fn run(name: &str, slot: Option<u32>, json: bool) -> ExitCode {
            let client = match connect(name, slot) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let config = Config::builder()
                .completion_type(CompletionType::List)
                .auto_add_history(false)
                .max_history_size(1000)
                .and_then(|b| b.history_ignore_dups(true))
                .map(|b| b.build())
                .unwrap_or_default();
            let mut rl: Editor<ShellHelper, DefaultHistory> = match Editor::with_config(config) {
                Ok(rl) => rl,
                Err(e) => {
                    eprintln!("shmkv-client: cannot use the terminal: {e}");
                    return ExitCode::from(INPUT);
                }
            };
            rl.set_helper(Some(ShellHelper));
            let history = history_file();
            if let Some(h) = &history {
                let _ = rl.load_history(h);
            }
            let info = client.info();
            println!(
                "connected to server '{name}' as client {} ({} slots, {} buckets); type help, or exit or Ctrl-D to leave",
                client.slot(),
                info.clients,
                info.buckets
            );
            let prompt = format!("shmkv[{name}:{}]> ", client.slot());
            let code = loop {
                let line = match rl.readline(&prompt) {
                    Ok(l) => l,
                    Err(ReadlineError::Interrupted) => continue,
                    Err(ReadlineError::Eof) => break ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("shmkv-client: terminal: {e}");
                        break ExitCode::from(INPUT);
                    }
                };
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                match parse_line(&line) {
                    Ok(Line::Nothing) => {}
                    Ok(Line::Help) => println!("{OPERATIONS}\n\n{SHELL_HELP}"),
                    Ok(Line::Exit) => break ExitCode::SUCCESS,
                    Ok(Line::Ops(items)) => match run_batch(&client, &items, json) {
                        Ok(ran) if ran.quit => break ExitCode::SUCCESS,
                        Ok(_) => {}
                        Err(()) => break ExitCode::from(CONNECTION),
                    },
                    Err(msg) => eprintln!("shmkv-client: {msg} (type help)"),
                }
            };
            if let Some(h) = &history {
                let _ = rl.save_history(h);
            }
            code
        }

        #[cfg(test)]
        mod tests {
            use super::candidates;

            #[test]
            fn completion_follows_the_grammar() {
                assert!(candidates(&[]).contains(&"help"));
                assert!(!candidates(&["read", "1"]).contains(&"help"));
                assert!(candidates(&["read", "1"]).contains(&"insert"));
                assert!(candidates(&["insert", "1"]).is_empty());
                assert_eq!(candidates(&["threads"]), &["start", "stop"]);
                assert!(candidates(&["threads", "start"]).is_empty());
                assert!(candidates(&["threads", "start", "2"]).contains(&"stats"));
                assert!(candidates(&["threads", "stop"]).contains(&"read"));
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_parser_for_command_lines_and_lines() {
            let (slot, rest) = split_id(&["3", "insert", "1", "2"]).unwrap();
            assert_eq!(slot, Some(3));
            let items = parse_ops(rest).unwrap();
            assert_eq!(items[0].op, Op::Insert { key: 1, value: 2 });
            let Line::Ops(from_line) = parse_line("  insert 1 2   # comment").unwrap() else {
                panic!("not ops");
            };
            assert_eq!(from_line[0].op, items[0].op);
            assert_eq!(from_line[0].label, items[0].label);
            assert!(matches!(parse_line("# only a comment"), Ok(Line::Nothing)));
            assert!(matches!(parse_line(" help "), Ok(Line::Help)));
            assert!(matches!(parse_line("exit"), Ok(Line::Exit)));
            assert!(parse_line("help me").is_err());
            assert_eq!(split_id(&["-"]).unwrap(), (None, &[][..]));
            assert!(split_id(&["-1"]).is_err());
        }

        #[test]
        fn json_objects_carry_op_key_value_status() {
            let read = Item {
                label: "read 1".into(),
                op: Op::Read { key: 1 },
            };
            assert_eq!(
                render_json(&read, &Outcome::Value(2)).0,
                json!({"op": "read", "key": 1, "value": 2, "status": "ok"})
            );
            assert_eq!(
                render_json(&read, &Outcome::NotFound).0,
                json!({"op": "read", "key": 1, "value": null, "status": "not_found"})
            );
            let (v, refused) = render_json(
                &read,
                &Outcome::Refused(shmkv::protocol::ErrorCode::ShuttingDown),
            );
            assert!(refused);
            assert_eq!(v["status"], "error");
            assert_eq!(v["error"], "the server is shutting down");
        }
    }
}
